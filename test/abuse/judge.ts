/**
 * The assertions every abuse scenario makes of the innocent user (test/abuse/README.md). Apart
 * from support.ts because the attackers' child process (flood-child.ts) loads support.ts and
 * must not load the test runner.
 */
import { expect } from "vitest";
import { type FloodFigures, JUDGE_LATENCY, type LatencyStats, P99_BUDGET_MS } from "./support.ts";

/**
 * What every flood scenario asserts of the innocent: the flood was real, none of the innocent's
 * round trips failed and its relay PING kept being answered. What the flood costs the server in
 * CPU time depends on how fast the attackers manage to send (a quieter or faster machine sends
 * more), so like latency it is judged in the long form only (JUDGE_LATENCY), on a machine doing
 * nothing else: the server's cores, the p99 of the relay PING and of the `judged` probes, and the
 * event loop's p99. The short form records them.
 */
export function expectInnocentUnaffected<K extends string>(
  figures: FloodFigures<K>,
  maxCores: number,
  judged: readonly K[] = [],
): void {
  const { attack, underFlood, serverEventLoop, serverCores } = figures;
  expect(attack.frames).toBeGreaterThan(1_000);
  for (const [name, seen] of Object.entries<LatencyStats>(underFlood)) expect(seen.failures, name).toBe(0);
  expect(underFlood.relay.count).toBeGreaterThan(10);
  if (JUDGE_LATENCY) {
    expect(serverCores).toBeLessThanOrEqual(maxCores);
    expect(underFlood.relay.p99Ms).toBeLessThanOrEqual(P99_BUDGET_MS);
    for (const name of judged) expect(underFlood[name].p99Ms, name).toBeLessThanOrEqual(P99_BUDGET_MS);
    expect(serverEventLoop.p99Ms).toBeLessThanOrEqual(P99_BUDGET_MS);
  }
}
