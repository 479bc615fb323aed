/**
 * bench:relay `--tail` (bench/relay.ts, bench/README-relay.md): where a round's slowest messages
 * waited — pure functions over what the bench gathered (latencies and arrival times, GC pauses of
 * the relay and of the bench's own process, the relay's commit histogram), so
 * test/unit/bench-relay-tail.test.ts can check them on made-up rounds.
 */

/** A GC pause: wall-clock start and end (ms, performance.timeOrigin-based) and its kind. */
export interface Pause {
  start: number;
  end: number;
  kind: number;
}
/** perf_hooks' NODE_PERFORMANCE_GC_MAJOR: a full mark-compact. */
export const GC_MARK_COMPACT = 4;

/** The lines bench/support/gc-log.cjs writes (`start-ms duration-ms kind`), as pauses. */
export function parsePauses(text: string): Pause[] {
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [start, ms, kind] = l.split(" ").map(Number) as [number, number, number];
      return { start, end: start + ms, kind };
    });
}

/** `loft_relay_send_commit_seconds`' cumulative buckets in a Prometheus text page: le → count. */
export function commitBucketsOf(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^loft_relay_send_commit_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\d+)/gm))
    out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
  return out;
}

/** The round's SENDs (histogram after − before): the bucket bounds of their p50 and p99 wait for the commit. */
export function commitLine(before: Map<string, number>, after: Map<string, number>): string {
  const bound0 = (le: string) => (le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le));
  const les = [...after.keys()].sort((a, b) => bound0(a) - bound0(b));
  const count = (le: string) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const total = count("+Inf");
  // No SEND in the round (a metrics page without the histogram, or nothing committed): no bounds
  // to give — not the first bucket's, which every count passes at 0.
  if (total <= 0) return "    SEND/SENDS → durable commit (the relay's histogram): no commands in the round";
  const bound = (q: number) => {
    const le = les.find((l) => count(l) >= q * total) ?? "+Inf";
    return le === "+Inf" ? "> 1000 ms" : `≤ ${+(Number(le) * 1000).toFixed(1)} ms`;
  };
  return `    SEND/SENDS → durable commit (the relay's histogram, ${total} commands): p50 ${bound(0.5)}, p99 ${bound(0.99)}`;
}

/** ms of `pauses` inside [from, to]. */
export function pausedIn(pauses: Pause[], from: number, to: number, kind?: number): number {
  let ms = 0;
  for (const p of pauses) {
    if (kind !== undefined && p.kind !== kind) continue;
    const a = Math.max(from, p.start);
    const b = Math.min(to, p.end);
    if (b > a) ms += b - a;
  }
  return ms;
}

/**
 * `--tail`: for the slowest 1 % of a round's messages and for its middle 10 % (p45–p55), the
 * median latency and the median of what of it the relay's event loop spent in GC pauses (all
 * kinds; share of messages with a mark-compact inside), what the clients' process did (this
 * one: its GC can hold an arrival back too), and the rest (waiting on the commit, queueing).
 */
export function tailLines(
  latencies: number[],
  arrivals: number[],
  relay: Pause[],
  clientPauses: Pause[],
): string[] {
  const order = latencies.map((_, i) => i).sort((a, b) => latencies[a]! - latencies[b]!);
  const n = order.length;
  const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const describe = (label: string, idx: number[]) => {
    const lat: number[] = [];
    const rgc: number[] = [];
    const cgc: number[] = [];
    const rest: number[] = [];
    let withMarkCompact = 0;
    for (const i of idx) {
      const to = arrivals[i]!;
      const from = to - latencies[i]!;
      // Only the round's pauses (`inRound`, below): a message lies inside the round, and the GC log
      // holds every round and subject so far — scanning it whole per message grew with each round.
      const r = pausedIn(inRound, from, to);
      const c = pausedIn(clientPauses, from, to);
      if (pausedIn(inRound, from, to, GC_MARK_COMPACT) > 0) withMarkCompact++;
      lat.push(latencies[i]!);
      rgc.push(r);
      cgc.push(c);
      rest.push(latencies[i]! - r - c);
    }
    return `    ${label.padEnd(16)} ${String(idx.length).padStart(5)} msgs: latency ${med(lat).toFixed(1)} ms, in relay GC ${med(rgc).toFixed(1)} ms (${((100 * withMarkCompact) / Math.max(1, idx.length)).toFixed(0)} % with a mark-compact), in client GC ${med(cgc).toFixed(1)} ms, rest ${med(rest).toFixed(1)} ms (medians)`;
  };
  // Loops, not Math.min(...xs): a round has N × --messages arrivals, and spreading a few hundred
  // thousand arguments overflows the stack.
  let first = arrivals.length ? Number.POSITIVE_INFINITY : 0;
  let last = arrivals.length ? Number.NEGATIVE_INFINITY : 0;
  for (const [i, a] of arrivals.entries()) {
    first = Math.min(first, a - latencies[i]!);
    last = Math.max(last, a);
  }
  const inRound = relay.filter((p) => p.end > first && p.start < last);
  const total = (k?: number) => pausedIn(inRound, first, last, k);
  let longest = 0;
  for (const p of inRound) longest = Math.max(longest, p.end - p.start);
  return [
    `    relay GC in the round: ${inRound.length} pauses, ${total().toFixed(0)} ms of ${(last - first).toFixed(0)} (mark-compact ${inRound.filter((p) => p.kind === GC_MARK_COMPACT).length}, ${total(GC_MARK_COMPACT).toFixed(0)} ms; longest ${longest.toFixed(1)} ms)`,
    describe("slowest 1 %", order.slice(n - Math.max(1, Math.floor(n / 100)))),
    describe("middle (p45–p55)", order.slice(Math.floor(n * 0.45), Math.floor(n * 0.55))),
  ];
}
