/**
 * What the relay and proxy benchmarks (bench/relay.ts, bench/smp.ts, bench/proxy.ts) share
 * besides bench/harness.ts: their `--name value` flags, the latency percentile they report, and
 * the rounds of the server benches (bench/relay.ts, bench/relay-store.ts, bench/scale.ts).
 */

const argv = process.argv.slice(2);

/** The number after `--name` on the command line, or `fallback`. */
export function numberFlag(name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
}

/** The word after `--name` on the command line, or undefined. */
export function stringFlag(name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** The `p`-th percentile (0–100) of ascending `sorted` (the nearest rank at or below); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * `rounds` rounds, each running every subject once, the order rotated by one each round so that
 * no subject is always first (a burst of load from elsewhere on the machine hits them alike);
 * `line` prints each run as it ends. Every run, by subject name, in order.
 */
export async function rotatingRounds<S extends { readonly name: string }, T>(
  subjects: readonly S[],
  rounds: number,
  run: (subject: S) => Promise<T>,
  line: (subject: S, round: number, result: T) => void,
): Promise<Map<string, T[]>> {
  const runs = new Map<string, T[]>(subjects.map((s) => [s.name, []]));
  for (let round = 0; round < rounds; round++)
    for (let k = 0; k < subjects.length; k++) {
      const s = subjects[(round + k) % subjects.length]!;
      const r = await run(s);
      runs.get(s.name)!.push(r);
      line(s, round, r);
    }
  return runs;
}
