/**
 * What the server benches read of another process from /proc (Linux): CPU seconds used (utime +
 * stime, in the kernel's clock ticks, `getconf CLK_TCK`) and resident memory.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** `getconf` answers in milliseconds; this bounds a hung one (a bench must not hang at import). */
const GETCONF_TIMEOUT_MS = 2_000;

/**
 * The kernel's clock ticks per second (`getconf CLK_TCK`), or 100 — USER_HZ on every Linux
 * architecture — when `getconf` is missing, fails, says something else or does not answer within
 * `timeoutMs` (it is killed then).
 */
export function clockTicks(getconf = "getconf", timeoutMs = GETCONF_TIMEOUT_MS): number {
  const r = spawnSync(getconf, ["CLK_TCK"], { timeout: timeoutMs, killSignal: "SIGKILL", encoding: "utf8" });
  const ticks = r.status === 0 ? Number(r.stdout.trim()) : Number.NaN;
  return Number.isSafeInteger(ticks) && ticks > 0 ? ticks : 100;
}

const CLOCK_TICKS = clockTicks();

export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * CPU seconds of one thread of another process (`/proc/<pid>/task/<tid>/stat`); the main thread's
 * tid is the pid — for Node, the event loop alone, without worker threads, lmdb-js's writer or GC helpers.
 */
export function threadCpuSeconds(pid: number, tid = pid): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export function rssKib(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : Number.NaN;
}

/**
 * System calls a process made so far (`syscr` + `syscw` of /proc/<pid>/io, all its threads): reads
 * and writes of sockets and files, LMDB's commits included — what a server pays per wake-up, so
 * their count per message shows how much work each one carries.
 */
export function processSyscalls(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, "m").exec(io)?.[1] ?? Number.NaN);
  return field("syscr") + field("syscw");
}
