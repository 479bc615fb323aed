/**
 * What the relay and proxy benchmarks (bench/relay.ts, bench/smp.ts, bench/proxy.ts) share
 * besides bench/harness.ts: their `--name value` flags and the latency percentile they report.
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
