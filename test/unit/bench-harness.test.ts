/**
 * bench/harness.ts `alternate` and `sliceRatio`: the machinery every comparing bench relies on to
 * put a figure and its baseline under the same machine load. No timing is asserted: the order of
 * slices, the bookkeeping of operations and the ratio arithmetic are. Also bench/baseline-dir.ts:
 * which `--baseline DIR` bench/relay-store.ts may load beside its own store, and bench/proc-stats.ts
 * `clockTicks`, which a hung `getconf` must not hang.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { inProcessBaselineProblem } from "../../bench/baseline-dir.ts";
import {
  alternate,
  latencyRows,
  rateOf,
  type SliceRate,
  type Subject,
  sliceRatio,
} from "../../bench/harness.ts";
import { clockTicks } from "../../bench/proc-stats.ts";

function recorder(names: string[], trace: string[]): Subject[] {
  return names.map((name) => ({
    name,
    enter: () => {
      trace.push(name);
    },
    run: async () => 1,
  }));
}

describe("alternate", () => {
  it("warms each subject, then runs rounds forwards and backwards (A B C, C B A, A B C)", async () => {
    const trace: string[] = [];
    await alternate(recorder(["A", "B", "C"], trace), { rounds: 3, sliceSeconds: 0, warmupSeconds: 0 });
    expect(trace).toEqual(["A", "B", "C", "A", "B", "C", "C", "B", "A", "A", "B", "C"]);
  });

  it("keeps one rate per round and counts every operation of the timed rounds only", async () => {
    let calls = 0;
    const subject: Subject = {
      name: "batch",
      run: async () => {
        calls++;
        return 5;
      },
    };
    const rates = await alternate([subject], { rounds: 4, sliceSeconds: 0, warmupSeconds: 0 });
    const r = rateOf(rates, "batch");
    expect(calls).toBe(5); // one warm-up call + one per round
    expect(r.slices).toHaveLength(4);
    expect(r.ops).toBe(20);
    expect(r.perSecond).toBeCloseTo(r.ops / r.seconds);
  });

  it("uses the seconds a self-timed subject reports instead of the wall time around it", async () => {
    const subject: Subject = { name: "page", run: async () => ({ ops: 100, seconds: 2 }) };
    const r = rateOf(await alternate([subject], { rounds: 3, sliceSeconds: 0, warmupSeconds: 0 }), "page");
    expect(r.slices).toEqual([50, 50, 50]);
    expect(r.perSecond).toBe(50);
  });

  it("counts this process's CPU time for in-process subjects, none for self-timed ones", async () => {
    const busy: Subject = {
      name: "busy",
      run: async () => {
        const until = process.cpuUsage().user + 2_000; // µs of CPU, not of wall time
        while (process.cpuUsage().user < until) {}
        return 1;
      },
    };
    const page: Subject = { name: "page", run: async () => ({ ops: 1, seconds: 1 }) };
    const rates = await alternate([busy, page], { rounds: 2, sliceSeconds: 0, warmupSeconds: 0 });
    const b = rateOf(rates, "busy");
    expect(b.cpuSlices).toHaveLength(2);
    expect(b.perCpuSecond).toBeGreaterThan(0);
    expect(rateOf(rates, "page").cpuSlices).toBeUndefined();
    expect(() => sliceRatio(b, rateOf(rates, "page"), "cpu")).toThrow(RangeError);
  });

  it("propagates a subject's failure instead of reporting a figure", async () => {
    const broken: Subject = {
      name: "broken",
      run: async () => {
        throw new Error("peer returned the wrong plaintext");
      },
    };
    await expect(alternate([broken], { rounds: 1, sliceSeconds: 0, warmupSeconds: 0 })).rejects.toThrow(
      "wrong plaintext",
    );
  });

  it("rateOf refuses a subject that was not measured", async () => {
    const rates = await alternate(recorder(["A"], []), { rounds: 1, sliceSeconds: 0, warmupSeconds: 0 });
    expect(() => rateOf(rates, "B")).toThrow("no subject named B");
  });
});

describe("sliceRatio", () => {
  const rate = (slices: number[]): SliceRate => ({ ops: 0, seconds: 1, perSecond: 0, slices });

  it("is the median of the per-round ratios, so one disturbed round does not move it", () => {
    // Round 3 ran under a load spike that hit only `a`; the whole-run ratio would be skewed.
    const a = rate([100, 110, 10, 105, 95]);
    const b = rate([200, 220, 210, 210, 190]);
    expect(sliceRatio(a, b)).toBeCloseTo(0.5);
  });

  it("pairs rounds by index (shared load cancels within a round)", () => {
    expect(sliceRatio(rate([10, 40]), rate([20, 80]))).toBeCloseTo(0.5);
    expect(sliceRatio(rate([30]), rate([10]))).toBe(3);
  });

  it("compares per CPU-second when asked", () => {
    const a = { ...rate([1, 1]), cpuSlices: [30, 60] };
    const b = { ...rate([1, 1]), cpuSlices: [10, 20] };
    expect(sliceRatio(a, b, "cpu")).toBe(3);
    expect(sliceRatio(a, b)).toBe(1);
  });

  it("refuses subjects without rounds", () => {
    expect(() => sliceRatio(rate([]), rate([1]))).toThrow(RangeError);
  });
});

describe("latencyRows", () => {
  it("gives one row per percentile, subject and baseline at the same rank", () => {
    const subject = Array.from({ length: 100 }, (_, i) => i + 1);
    const baseline = subject.map((x) => x / 10);
    expect(latencyRows((p) => `latency p${p}`, subject, { name: "direct", samples: baseline })).toEqual([
      { name: "latency p50", value: 51, unit: "ms", baseline: { name: "direct", value: 5.1 } },
      { name: "latency p99", value: 100, unit: "ms", baseline: { name: "direct", value: 10 } },
    ]);
    expect(latencyRows(() => "p90 alone", subject, { name: "b", samples: [] }, [90])).toEqual([
      { name: "p90 alone", value: 91, unit: "ms", baseline: { name: "b", value: Number.NaN } },
    ]);
  });
});

describe("bench:relay-store --baseline DIR (bench/baseline-dir.ts)", () => {
  const checkout = fileURLToPath(new URL("../..", import.meta.url));
  const withDir = (f: (dir: string) => void) => {
    const dir = mkdtempSync(join(tmpdir(), "loft-baseline-dir-"));
    try {
      f(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it("accepts this checkout and a DIR whose node_modules links to this checkout's", () => {
    expect(inProcessBaselineProblem(checkout, checkout)).toBeUndefined();
    withDir((dir) => {
      symlinkSync(join(checkout, "node_modules"), join(dir, "node_modules"));
      expect(inProcessBaselineProblem(dir, checkout)).toBeUndefined();
      // Given relative to the working directory, as on a command line (`--baseline ../before`).
      expect(inProcessBaselineProblem(relative(process.cwd(), dir), checkout)).toBeUndefined();
    });
    expect(inProcessBaselineProblem(relative(process.cwd(), checkout) || ".", checkout)).toBeUndefined();
  });

  it("refuses a DIR with its own lmdb-js (a copy, e.g. hard-linked) or none, saying how to link it", () => {
    withDir((dir) => {
      expect(inProcessBaselineProblem(dir, checkout)).toMatch(
        /^--baseline .*: it loads no lmdb-js, not this/,
      );
      // A second copy: another path, whatever its bytes (a hard-linked node_modules is one).
      const lmdb = join(dir, "node_modules", "lmdb");
      mkdirSync(lmdb, { recursive: true });
      writeFileSync(join(lmdb, "package.json"), JSON.stringify({ name: "lmdb", main: "index.js" }));
      writeFileSync(join(lmdb, "index.js"), "module.exports = {};\n");
      const problem = inProcessBaselineProblem(dir, checkout);
      expect(problem).toContain(`it loads lmdb-js from ${join(lmdb, "index.js")}`);
      expect(problem).toContain("must share one lmdb-js");
      expect(problem).toContain(`ln -s ${join(checkout, "node_modules")} DIR/node_modules`);
      // The bench refuses it before it opens any store: exit code 2, the reason on stderr.
      const r = spawnSync(
        process.execPath,
        ["--import", "tsx", join(checkout, "bench/relay-store.ts"), "--baseline", dir, "--json"],
        { cwd: checkout, encoding: "utf8", timeout: 60_000 },
      );
      expect([r.status, r.stdout, r.stderr.trim()]).toEqual([2, "", problem]);
    });
  });
});

describe("clockTicks (bench/proc-stats.ts)", () => {
  it("reads getconf CLK_TCK; one that hangs, fails, is missing or says nonsense gives 100 (killed at its bound)", () => {
    expect(Number.isSafeInteger(clockTicks())).toBe(true);
    expect(clockTicks()).toBeGreaterThan(0);
    const dir = mkdtempSync(join(tmpdir(), "loft-getconf-"));
    try {
      const fake = (name: string, body: string) => {
        const path = join(dir, name);
        writeFileSync(path, `#!/bin/sh\n${body}\n`);
        chmodSync(path, 0o755);
        return path;
      };
      // `exec`: the sleep is the process spawnSync kills (a child of a shell would keep the pipe).
      // Before the bound, a getconf like this one hung every bench at import.
      expect(clockTicks(fake("hangs", "exec sleep 60"), 200)).toBe(100);
      // The others answer at once, but a shell can take seconds to start on a loaded machine: with
      // the 2 s default a slow start read as a hang (100), so "other" passed only when it won.
      const ANSWERS_MS = 30_000;
      expect(clockTicks(fake("fails", "echo 250; exit 1"), ANSWERS_MS)).toBe(100);
      expect(clockTicks(fake("nonsense", "echo many"), ANSWERS_MS)).toBe(100);
      expect(clockTicks(fake("zero", "echo 0"), ANSWERS_MS)).toBe(100);
      expect(clockTicks(fake("other", "echo 250"), ANSWERS_MS)).toBe(250);
      expect(clockTicks(join(dir, "missing"), ANSWERS_MS)).toBe(100);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
