/**
 * Shared bench plumbing: run a function for a time budget (after a warm-up), report operations
 * per second, and print either a human table or — with `--json` — one JSON object on the last
 * line. Every figure is printed next to the baseline it is compared with, measured in the same
 * process and run, so ratios stay meaningful across machines (bench/README.md).
 */
import { cpus, totalmem } from "node:os";
import { percentile } from "./relay-cli.ts";

export const JSON_OUTPUT = process.argv.includes("--json");
export const QUICK = process.argv.includes("--quick");

/** Progress for a person; nothing with `--json`, whose last line must be the summary. */
export function log(message: string): void {
  if (!JSON_OUTPUT) console.log(message);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Rate {
  ops: number;
  seconds: number;
  perSecond: number;
}

/** Calls `fn` repeatedly for `seconds` (after a short warm-up); `fn` returns ops it performed. */
export function measure(fn: () => number, seconds = QUICK ? 0.3 : 2): Rate {
  const warmUntil = performance.now() + Math.min(300, seconds * 250);
  while (performance.now() < warmUntil) fn();
  let ops = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    ops += fn();
    now = performance.now();
  }
  const elapsed = (now - start) / 1000;
  return { ops, seconds: elapsed, perSecond: ops / elapsed };
}

/** Operations a subject timed itself (e.g. inside a browser page, without the round trip to it). */
export interface SelfTimed {
  ops: number;
  seconds: number;
}

/**
 * One subject of an alternating comparison: Loft or a peer doing the same work. `run` performs
 * one operation (or a batch) and resolves with how many it performed — or with the ops and the
 * seconds it measured itself, which then replace the wall time around the call; `enter` runs
 * before each of this subject's slices (e.g. to select a crypto backend), outside the timed span.
 */
export interface Subject {
  name: string;
  run: () => Promise<number | SelfTimed>;
  enter?: () => void | Promise<void>;
}

export interface SliceRate extends Rate {
  /** ops/s of each slice, in slice order; slice i of every subject ran next to the others' slice i. */
  slices: number[];
  /**
   * ops per CPU-second of this process (user + system, all its threads) for each slice: what the
   * work costs, whatever else the machine runs. Absent for self-timed subjects (their work is not
   * in this process).
   */
  cpuSlices?: number[];
  /** All ops over all CPU-seconds of the slices (absent as `cpuSlices` is). */
  perCpuSecond?: number;
}

/** What a ratio compares: wall-clock rates (what a user waits for) or rates per CPU-second. */
export type RatioBasis = "wall" | "cpu";

interface TimedSlice extends Rate {
  cpuSeconds?: number;
}

export interface AlternationOptions {
  /** Rounds; each runs every subject for one slice, forwards on even rounds, backwards on odd. */
  rounds?: number;
  sliceSeconds?: number;
  /** Untimed warm-up per subject before the first round (JIT, caches, lazy native loading). */
  warmupSeconds?: number;
}

const envNumber = (name: string): number | undefined => {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`${name} must be a non-negative number, got ${v}`);
  return n;
};

/**
 * Defaults of `alternate` (shorter with `--quick`); `LOFT_BENCH_ROUNDS` and
 * `LOFT_BENCH_SLICE_SECONDS` override them (more rounds: a steadier median on a loaded machine).
 */
export const ALTERNATION: Readonly<Required<AlternationOptions>> = {
  ...(QUICK
    ? { rounds: 2, sliceSeconds: 0.15, warmupSeconds: 0.05 }
    : { rounds: 20, sliceSeconds: 0.15, warmupSeconds: 0.3 }),
  ...(envNumber("LOFT_BENCH_ROUNDS") !== undefined ? { rounds: envNumber("LOFT_BENCH_ROUNDS")! } : {}),
  ...(envNumber("LOFT_BENCH_SLICE_SECONDS") !== undefined
    ? { sliceSeconds: envNumber("LOFT_BENCH_SLICE_SECONDS")! }
    : {}),
};

async function timedSlice(subject: Subject, seconds: number): Promise<TimedSlice> {
  await subject.enter?.();
  let ops = 0;
  let selfSeconds: number | undefined;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  // At least one operation per slice, however long it takes; then until the slice's time is up.
  do {
    const done = await subject.run();
    if (typeof done === "number") ops += done;
    else {
      ops += done.ops;
      selfSeconds = (selfSeconds ?? 0) + done.seconds;
    }
    now = performance.now();
  } while (now < end);
  const cpu = process.cpuUsage(cpuStart);
  const elapsed = selfSeconds ?? (now - start) / 1000;
  const rate: TimedSlice = { ops, seconds: elapsed, perSecond: ops / elapsed };
  if (selfSeconds === undefined) rate.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return rate;
}

/**
 * Measures the subjects in alternating slices — A B, B A, A B, … — so that each figure and the
 * baseline it is compared with share the machine's noise (load from other work, CPU frequency,
 * GC): on a shared 2-core machine a subject measured once after another moved by 3× between runs.
 * Returns each subject's whole rate (all its ops over all its slices) and its per-slice rates.
 */
export async function alternate(
  subjects: readonly Subject[],
  options: AlternationOptions = {},
): Promise<Map<string, SliceRate>> {
  const rounds = options.rounds ?? ALTERNATION.rounds;
  const sliceSeconds = options.sliceSeconds ?? ALTERNATION.sliceSeconds;
  const warmupSeconds = options.warmupSeconds ?? ALTERNATION.warmupSeconds;
  for (const s of subjects) await timedSlice(s, warmupSeconds);
  const slices = new Map<string, TimedSlice[]>(subjects.map((s) => [s.name, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? subjects : [...subjects].reverse();
    for (const s of order) slices.get(s.name)!.push(await timedSlice(s, sliceSeconds));
  }
  const rates = new Map<string, SliceRate>();
  for (const [name, rs] of slices) {
    const ops = rs.reduce((n, r) => n + r.ops, 0);
    const seconds = rs.reduce((n, r) => n + r.seconds, 0);
    const rate: SliceRate = { ops, seconds, perSecond: ops / seconds, slices: rs.map((r) => r.perSecond) };
    if (rs.every((r) => r.cpuSeconds !== undefined && r.cpuSeconds > 0)) {
      rate.cpuSlices = rs.map((r) => r.ops / r.cpuSeconds!);
      rate.perCpuSecond = ops / rs.reduce((n, r) => n + r.cpuSeconds!, 0);
    }
    rates.set(name, rate);
  }
  const slice = sliceSeconds > 0 ? `slices of ${sliceSeconds} s` : "one call per slice";
  log(`  ${subjects.map((s) => s.name).join(" | ")}: ${rounds} alternating rounds, ${slice}`);
  return rates;
}

/**
 * `a / b` as the median of the per-round ratios: round i of `a` and of `b` ran back to back, so
 * each round's ratio cancels the load the machine was under at that moment.
 */
export function sliceRatio(a: SliceRate, b: SliceRate, basis: RatioBasis = "wall"): number {
  return median(roundRatios(a, b, basis));
}

/** The lowest and highest per-round ratio `a / b`: how far one round could be trusted alone. */
export function sliceRatioRange(a: SliceRate, b: SliceRate, basis: RatioBasis = "wall"): [number, number] {
  const rs = roundRatios(a, b, basis);
  return [Math.min(...rs), Math.max(...rs)];
}

function roundRatios(a: SliceRate, b: SliceRate, basis: RatioBasis): number[] {
  const [as, bs] = basis === "wall" ? [a.slices, b.slices] : [a.cpuSlices, b.cpuSlices];
  if (!as || !bs) throw new RangeError("sliceRatio: no CPU time for a self-timed subject");
  const n = Math.min(as.length, bs.length);
  if (n === 0) throw new RangeError("sliceRatio: no slices");
  return Array.from({ length: n }, (_, i) => as[i]! / bs[i]!);
}

/** The rate of `name` in an `alternate` result (throws on a name that was not measured). */
export function rateOf(rates: Map<string, SliceRate>, name: string): SliceRate {
  const r = rates.get(name);
  if (!r) throw new Error(`no subject named ${name}`);
  return r;
}

export function machine(): Record<string, string | number> {
  const cpu = cpus();
  return {
    node: process.version,
    cpu: cpu[0]?.model ?? "unknown",
    cores: cpu.length,
    mem_gib: Math.round(totalmem() / 2 ** 30),
  };
}

export interface Row {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** The ratio to print (e.g. `sliceRatio`); value / baseline.value when absent. */
  ratio?: number;
  /** Lowest and highest per-round ratio (`sliceRatioRange`), printed after the ratio. */
  ratioRange?: [number, number];
  /** The same ratio per CPU-second (`sliceRatio(a, b, "cpu")`), printed last. */
  cpuRatio?: number;
}

/**
 * Latency rows of a subject against its baseline, one per percentile (`ps`, default p50 and p99):
 * `name(p)` names each row; both sample lists ascending, in milliseconds.
 */
export function latencyRows(
  name: (p: number) => string,
  samples: readonly number[],
  baseline: { name: string; samples: readonly number[] },
  ps: readonly number[] = [50, 99],
): Row[] {
  return ps.map((p) => ({
    name: name(p),
    value: percentile(samples, p),
    unit: "ms",
    baseline: { name: baseline.name, value: percentile(baseline.samples, p) },
  }));
}

const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(3));

/** Prints the rows as a table (unless --json), then the JSON summary line when --json is given. */
export function report(title: string, rows: Row[], summary: Record<string, unknown>): void {
  if (!JSON_OUTPUT) {
    console.log(`\n${title}  (${Object.values(machine()).join(", ")})\n`);
    for (const r of rows) {
      const base = r.baseline
        ? `   vs ${r.baseline.name} ${fmt(r.baseline.value)} ${r.unit}  → ratio ${fmt(r.ratio ?? r.value / r.baseline.value)}`
        : "";
      const range = r.ratioRange ? ` (rounds ${fmt(r.ratioRange[0])}–${fmt(r.ratioRange[1])})` : "";
      const cpu = r.cpuRatio !== undefined ? `, per CPU-second ${fmt(r.cpuRatio)}` : "";
      console.log(`  ${r.name.padEnd(44)} ${fmt(r.value).padStart(10)} ${r.unit}${base}${range}${cpu}`);
    }
    console.log("");
  }
  console.log(JSON.stringify({ ...summary, machine: machine() }));
}
