/**
 * Shared bench plumbing: run a function for a time budget (after a warm-up), report operations
 * per second, and print either a human table or — with `--json` — one JSON object on the last
 * line. Every figure is printed next to the baseline it is compared with, measured in the same
 * process and run, so ratios stay meaningful across machines (bench/README.md).
 */
import { cpus, totalmem } from "node:os";

export const JSON_OUTPUT = process.argv.includes("--json");
const QUICK = process.argv.includes("--quick");

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

/** `measure` for async work: awaits each call of `fn` (warm-up, then `seconds`). */
export async function measureAsync(fn: () => Promise<number>, seconds = QUICK ? 0.3 : 2): Promise<Rate> {
  const warmUntil = performance.now() + Math.min(300, seconds * 250);
  while (performance.now() < warmUntil) await fn();
  let ops = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    ops += await fn();
    now = performance.now();
  }
  const elapsed = (now - start) / 1000;
  return { ops, seconds: elapsed, perSecond: ops / elapsed };
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
}

const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(3));

/** Prints the rows as a table (unless --json), then the JSON summary line when --json is given. */
export function report(title: string, rows: Row[], summary: Record<string, unknown>): void {
  if (!JSON_OUTPUT) {
    console.log(`\n${title}  (${Object.values(machine()).join(", ")})\n`);
    for (const r of rows) {
      const base = r.baseline
        ? `   vs ${r.baseline.name} ${fmt(r.baseline.value)} ${r.unit}  → ratio ${fmt(r.value / r.baseline.value)}`
        : "";
      console.log(`  ${r.name.padEnd(44)} ${fmt(r.value).padStart(10)} ${r.unit}${base}`);
    }
    console.log("");
  }
  console.log(JSON.stringify({ ...summary, machine: machine() }));
}
