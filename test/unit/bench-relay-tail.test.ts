/**
 * bench:relay `--tail` (bench/relay-tail.ts): on made-up rounds whose answer is known, which GC
 * pauses fall inside a message's wait, the slowest 1 % against the middle, and the commit
 * histogram's bounds of one round.
 */
import { describe, expect, it } from "vitest";
import {
  commitBucketsOf,
  commitLine,
  GC_MARK_COMPACT,
  type Pause,
  parsePauses,
  pausedIn,
  tailLines,
} from "../../bench/relay-tail.ts";

describe("bench:relay --tail (bench/relay-tail.ts)", () => {
  it("counts only the part of a pause inside the interval, and only pauses of the kind asked", () => {
    const pauses: Pause[] = [
      { start: 10, end: 20, kind: 1 },
      { start: 30, end: 50, kind: GC_MARK_COMPACT },
    ];
    expect(pausedIn(pauses, 0, 100)).toBe(30);
    expect(pausedIn(pauses, 15, 40)).toBe(15); // 5 of the scavenge, 10 of the mark-compact
    expect(pausedIn(pauses, 15, 40, GC_MARK_COMPACT)).toBe(10);
    expect(pausedIn(pauses, 20, 30)).toBe(0); // touching is not inside
  });

  it("reads gc-log.cjs lines back as pauses", () => {
    expect(parsePauses("1000.5 2.5 4\n2000 1 1\n")).toEqual([
      { start: 1000.5, end: 1003, kind: 4 },
      { start: 2000, end: 2001, kind: 1 },
    ]);
    expect(parsePauses("")).toEqual([]);
  });

  it("puts a mark-compact in the slowest 1 % when it held exactly those messages back", () => {
    // 1 000 messages, one a ms, each waiting 10 ms, but 10 sent between 490 and 494.5 that waited
    // 50 ms, across the whole of a 40 ms mark-compact in the relay (495–535).
    const latencies: number[] = [];
    const arrivals: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const slow = i >= 500 && i < 510;
      arrivals.push(slow ? 540 + (i - 500) / 2 : 100 + i);
      latencies.push(slow ? 50 : 10);
    }
    const relay: Pause[] = [
      { start: 495, end: 535, kind: GC_MARK_COMPACT },
      { start: 900, end: 902, kind: 1 },
    ];
    const [round, slowest, middle] = tailLines(latencies, arrivals, relay, []);
    expect(round).toContain("2 pauses");
    expect(round).toContain("mark-compact 1, 40 ms");
    expect(slowest).toMatch(
      /slowest 1 % +10 msgs: latency 50\.0 ms, in relay GC 40\.0 ms \(100 % with a mark-compact\)/,
    );
    expect(slowest).toContain("rest 10.0 ms");
    expect(middle).toMatch(
      /middle \(p45–p55\) +100 msgs: latency 10\.0 ms, in relay GC 0\.0 ms \(0 % with a mark-compact\)/,
    );
  });

  it("charges the clients' own GC to the client, not to the relay", () => {
    const latencies = Array.from({ length: 100 }, (_, i) => (i === 99 ? 30 : 5));
    const arrivals = latencies.map((_, i) => 1000 + 10 * i + latencies[i]!);
    const client: Pause[] = [{ start: 1990 + 5, end: 2015, kind: 1 }];
    const [, slowest] = tailLines(latencies, arrivals, [], client);
    expect(slowest).toContain("in relay GC 0.0 ms");
    expect(slowest).toContain("in client GC 20.0 ms");
    expect(slowest).toContain("rest 10.0 ms");
  });

  it("takes the round's commits as the histogram's difference, and its p50/p99 bucket bounds", () => {
    const page = (counts: number[]) =>
      ["0.001", "0.01", "0.1", "1", "+Inf"]
        .map((le, i) => `loft_relay_send_commit_seconds_bucket{le="${le}"} ${counts[i]}`)
        .join("\n");
    // before: 100 commits all under 1 ms; the round adds 100: 60 ≤ 10 ms, 39 ≤ 100 ms, 1 over 1 s.
    const before = commitBucketsOf(`# HELP x\n${page([100, 100, 100, 100, 100])}\nother_metric 5`);
    const after = commitBucketsOf(page([100, 160, 199, 199, 200]));
    expect(before.get("0.001")).toBe(100);
    const line = commitLine(before, after);
    expect(line).toContain("100 commands");
    expect(line).toContain("p50 ≤ 10 ms");
    expect(line).toContain("p99 ≤ 100 ms");
    expect(commitLine(after, commitBucketsOf(page([100, 160, 199, 199, 205])))).toContain("p50 > 1000 ms");
  });

  it("a round of a few hundred thousand messages (--n × --messages) is described, not a stack overflow", () => {
    const n = 400_000;
    const latencies = Array.from({ length: n }, (_, i) => (i % 1000 === 0 ? 40 : 4));
    const arrivals = latencies.map((l, i) => 1000 + i / 100 + l);
    const relay: Pause[] = [{ start: 1500, end: 1520, kind: GC_MARK_COMPACT }];
    const [round, slowest] = tailLines(latencies, arrivals, relay, []);
    expect(round).toContain("1 pauses, 20 ms of");
    expect(round).toContain("longest 20.0 ms");
    expect(slowest).toMatch(/slowest 1 % +4000 msgs/);
  });

  it("a round with no commit counted says so, not the first bucket's bound", () => {
    const page =
      'loft_relay_send_commit_seconds_bucket{le="0.001"} 7\nloft_relay_send_commit_seconds_bucket{le="+Inf"} 7';
    expect(commitLine(commitBucketsOf(page), commitBucketsOf(page))).toContain("no commands in the round");
    expect(commitLine(new Map(), new Map())).toContain("no commands in the round");
  });
});
