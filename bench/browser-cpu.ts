/**
 * CPU time per Chromium process and per thread over a stretch of a bench (bench:files,
 * bench:chat): which
 * process of the browser — each page's renderer, the browser process, the network service, the
 * GPU process — spends how much, and in which of its threads. The processes and their types come
 * from CDP `SystemInfo.getProcessInfo` (as bench:calls reads the whole browser's CPU); each
 * process's threads from /proc/<pid>/task (Linux), grouped by thread name (`CrRendererMain`,
 * `WebRTC_Network`, `ThreadPoolForeg`…), so a share can be named: a page's main thread, the
 * WebRTC network thread that runs SCTP and DTLS, the browser's IndexedDB and Blob work.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import type { Browser, CDPSession, Page } from "playwright-core";
import { log, type Subject } from "./harness.ts";

const CLOCK_TICKS =
  Number(spawnSync("getconf", ["CLK_TCK"], { timeout: 5000 }).stdout?.toString().trim()) || 100;

/** CPU seconds (user + system) per thread name of each process, and each process's total. */
export type CpuSnapshot = Map<number, { total: number; threads: Map<string, number> }>;

/** A process as the bench names it: its role (`sender`, `receiver`, or Chromium's type). */
export interface NamedProcess {
  pid: number;
  role: string;
}

function statSeconds(path: string): number {
  const stat = readFileSync(path, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15 (proc(5)).
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Thread names without a trailing number, so a pool's threads add up under one name. */
function threadName(pid: number, tid: string): string {
  try {
    return readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8")
      .trim()
      .replace(/[\d/]+$/, "");
  } catch {
    return "?";
  }
}

/** What `CpuAccounts` reads: `BrowserCpu`, every process of one Chromium. */
export interface CpuReader {
  snapshot(): Promise<CpuSnapshot>;
  spent(
    before: CpuSnapshot,
    after: CpuSnapshot,
  ): Promise<{ byRole: Map<string, number>; byThread: Map<string, number> }>;
}

export class BrowserCpu implements CpuReader {
  readonly #cdp: CDPSession;
  /** Pages' renderer pids, found by `namePages`. */
  readonly #roles = new Map<number, string>();

  private constructor(cdp: CDPSession) {
    this.#cdp = cdp;
  }

  static async open(browser: Browser): Promise<BrowserCpu> {
    return new BrowserCpu(await browser.newBrowserCDPSession());
  }

  async processes(): Promise<NamedProcess[]> {
    const info = (await this.#cdp.send("SystemInfo.getProcessInfo")) as {
      processInfo: { type: string; id: number; cpuTime: number }[];
    };
    return info.processInfo.map((p) => ({
      pid: p.id,
      role: this.#roles.get(p.id) ?? (p.type === "renderer" ? "other renderer" : p.type),
    }));
  }

  /**
   * Tell which renderer runs which page: each page in turn keeps its main thread busy for 0.3 s,
   * and the renderer whose CPU time grew the most is that page's.
   */
  async namePages(pages: Record<string, Page>): Promise<void> {
    for (const [role, page] of Object.entries(pages)) {
      const before = await this.snapshot();
      await page.evaluate(() => {
        const end = performance.now() + 300;
        while (performance.now() < end) {
          /* busy */
        }
      });
      const after = await this.snapshot();
      let best: { pid: number; grew: number } | undefined;
      for (const p of await this.processes()) {
        const grew = (after.get(p.pid)?.total ?? 0) - (before.get(p.pid)?.total ?? 0);
        if (!this.#roles.has(p.pid) && (!best || grew > best.grew)) best = { pid: p.pid, grew };
      }
      if (best) this.#roles.set(best.pid, role);
    }
  }

  async snapshot(): Promise<CpuSnapshot> {
    const out: CpuSnapshot = new Map();
    for (const { pid } of await this.processes()) {
      try {
        const threads = new Map<string, number>();
        for (const tid of readdirSync(`/proc/${pid}/task`)) {
          try {
            const name = threadName(pid, tid);
            threads.set(name, (threads.get(name) ?? 0) + statSeconds(`/proc/${pid}/task/${tid}/stat`));
          } catch {
            // the thread ended meanwhile; its time is still in the process's total
          }
        }
        out.set(pid, { total: statSeconds(`/proc/${pid}/stat`), threads });
      } catch {
        // the process ended meanwhile
      }
    }
    return out;
  }

  /**
   * CPU seconds spent between two snapshots, per role (`sender`, `receiver`, `browser`,
   * `utility`…, processes of one role added up) and per role and thread name.
   */
  async spent(
    before: CpuSnapshot,
    after: CpuSnapshot,
  ): Promise<{ byRole: Map<string, number>; byThread: Map<string, number> }> {
    const byRole = new Map<string, number>();
    const byThread = new Map<string, number>();
    for (const { pid, role } of await this.processes()) {
      const a = after.get(pid);
      if (!a) continue;
      const b = before.get(pid);
      byRole.set(role, (byRole.get(role) ?? 0) + a.total - (b?.total ?? 0));
      for (const [name, s] of a.threads) {
        const key = `${role}: ${name}`;
        const d = s - (b?.threads.get(name) ?? 0);
        // A pool thread that ended since `before` takes its time out of the name's sum: not a cost.
        if (d > 0) byThread.set(key, (byThread.get(key) ?? 0) + d);
      }
    }
    return { byRole, byThread };
  }
}

/** CPU seconds per role and per thread, added up over the rounds of one subject. */
export class CpuTally {
  readonly byRole = new Map<string, number>();
  readonly byThread = new Map<string, number>();
  bytes = 0;
  /** Each run's CPU milliseconds per MiB of the whole browser, in the order the runs came. */
  readonly runs: number[] = [];

  add(spent: { byRole: Map<string, number>; byThread: Map<string, number> }, bytes: number): void {
    for (const [k, v] of spent.byRole) this.byRole.set(k, (this.byRole.get(k) ?? 0) + v);
    for (const [k, v] of spent.byThread) this.byThread.set(k, (this.byThread.get(k) ?? 0) + v);
    this.bytes += bytes;
    let run = 0;
    for (const v of spent.byRole.values()) run += v;
    this.runs.push((run * 1000) / (bytes / (1024 * 1024) || 1));
  }

  /** CPU milliseconds per MiB moved, per role, with `total`. */
  msPerMib(): Record<string, number> {
    const mib = this.bytes / (1024 * 1024) || 1;
    const out: Record<string, number> = {};
    let total = 0;
    for (const [k, v] of [...this.byRole].sort((x, y) => y[1] - x[1])) {
      out[k] = Math.round((v * 1000 * 10) / mib) / 10;
      total += v;
    }
    out.total = Math.round((total * 1000 * 10) / mib) / 10;
    return out;
  }

  /** The `top` threads by CPU milliseconds per MiB. */
  topThreads(top = 12): [string, number][] {
    const mib = this.bytes / (1024 * 1024) || 1;
    return [...this.byThread]
      .sort((x, y) => y[1] - x[1])
      .slice(0, top)
      .map(([k, v]) => [k, Math.round((v * 1000 * 10) / mib) / 10]);
  }
}

/**
 * CPU per subject of a bench that alternates subjects (harness.ts `alternate`): `accounted` wraps
 * a subject so that what the whole browser spent during each of its timed runs adds to its tally,
 * and `bytesPerRun` bytes moved. Its first run is `alternate`'s warm-up (one call per subject before
 * the rounds with `warmupSeconds: 0`, as every bench here runs it): tallied apart, as
 * `<name>-warmup`, as its rate is left out of the subject's — counted in, a run that costs more
 * than the timed ones (bench/README.md, session 21's review note: 1.45–1.65× in --ratchet-cpu)
 * raised each figure by a share that depends on the number of rounds.
 * Without a `BrowserCpu` (a bench run that cannot read it) it counts nothing and every figure is NaN.
 */
export class CpuAccounts {
  readonly tallies = new Map<string, CpuTally>();
  readonly #cpu: CpuReader | undefined;
  readonly #bytesPerRun: number;
  /** Set while a subject runs: what it spent so far goes to `<name>-prepare` (untimed work). */
  #note: (() => Promise<void>) | undefined;

  constructor(cpu: CpuReader | undefined, bytesPerRun: number) {
    this.#cpu = cpu;
    this.#bytesPerRun = bytesPerRun;
  }

  async #tally(name: string, before?: CpuSnapshot, after?: CpuSnapshot): Promise<void> {
    if (!this.#cpu || !before || !after) return;
    const t = this.tallies.get(name) ?? new CpuTally();
    t.add(await this.#cpu.spent(before, after), this.#bytesPerRun);
    this.tallies.set(name, t);
  }

  accounted(subject: Subject): Subject {
    let runs = 0;
    return {
      ...subject,
      run: async () => {
        const name = runs++ === 0 ? `${subject.name}-warmup` : subject.name;
        let before = await this.#cpu?.snapshot();
        this.#note = async () => {
          const now = await this.#cpu?.snapshot();
          await this.#tally(`${name}-prepare`, before, now);
          before = now;
        };
        const r = await subject.run();
        this.#note = undefined;
        await this.#tally(name, before, await this.#cpu?.snapshot());
        return r;
      },
    };
  }

  /** In a running subject: what it spent so far is its preparation's (`<name>-prepare`), not timed. */
  async note(): Promise<void> {
    await this.#note?.();
  }

  /** CPU ms per MiB of each subject, per role and `total`. */
  perMib(): Record<string, Record<string, number>> {
    return Object.fromEntries([...this.tallies].map(([name, t]) => [name, t.msPerMib()]));
  }

  /** One subject's CPU ms per MiB of the whole browser (NaN when not measured). */
  total(name: string): number {
    return this.tallies.get(name)?.msPerMib().total ?? Number.NaN;
  }

  /** One subject's CPU ms per MiB of the whole browser in each of its timed runs, in order. */
  rounds(name: string): number[] {
    return (this.tallies.get(name)?.runs ?? []).map((ms) => Math.round(ms * 10) / 10);
  }

  /**
   * `a`'s CPU per MiB over `b`'s, run by run: run i of each is round i of `alternate`, back to
   * back, so the load of that moment is on both — where `total(a) / total(b)` of two subjects
   * measured in different stretches of a bench (bench:files' two sessions) compares two loads as
   * well. Empty when either was not measured.
   */
  roundRatios(a: string, b: string): number[] {
    const as = this.tallies.get(a)?.runs ?? [];
    const bs = this.tallies.get(b)?.runs ?? [];
    return Array.from({ length: Math.min(as.length, bs.length) }, (_, i) => as[i]! / bs[i]!);
  }

  /** One subject's busiest threads, ms per MiB (`role: thread name`). */
  threads(name: string, top?: number): Record<string, number> {
    return Object.fromEntries(this.tallies.get(name)?.topThreads(top) ?? []);
  }

  /** Each subject's CPU per MiB and its `top` busiest threads, to the log. */
  log(top?: number): void {
    for (const [name, t] of this.tallies) {
      log(`CPU per MiB, ${name}: ${JSON.stringify(t.msPerMib())}`);
      for (const [thread, ms] of t.topThreads(top)) log(`    ${ms.toFixed(1).padStart(7)} ms/MiB  ${thread}`);
    }
  }
}
