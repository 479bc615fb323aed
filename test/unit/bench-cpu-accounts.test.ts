/**
 * bench/browser-cpu.ts `CpuAccounts`: which run's CPU goes to which subject's tally when subjects
 * alternate (bench/harness.ts `alternate`), as bench:chat and bench:files read them. The reader
 * here counts the units of work the subjects say they did instead of a browser's /proc: what is
 * tested is the bookkeeping (no figure, no timing), the measuring is BrowserCpu's.
 */
import { describe, expect, it } from "vitest";
import { CpuAccounts, type CpuReader, type CpuSnapshot } from "../../bench/browser-cpu.ts";
import { alternate, type Subject } from "../../bench/harness.ts";

const MIB = 1024 * 1024;

/** CPU "seconds" = units of work done so far, all of it one page's main thread. */
function workReader(): { reader: CpuReader; work: (units: number) => void } {
  let done = 0;
  const reader: CpuReader = {
    snapshot: async (): Promise<CpuSnapshot> =>
      new Map([[1, { total: done, threads: new Map([["chromium", done]]) }]]),
    spent: async (before, after) => {
      const d = (after.get(1)?.total ?? 0) - (before.get(1)?.total ?? 0);
      return { byRole: new Map([["page", d]]), byThread: new Map([["page: chromium", d]]) };
    },
  };
  return { reader, work: (units) => (done += units) };
}

describe("CpuAccounts", () => {
  it("tallies a subject's timed runs only: its first run, alternate's warm-up, apart as <name>-warmup", async () => {
    const { reader, work } = workReader();
    const accounts = new CpuAccounts(reader, MIB);
    let coldRuns = 0;
    // The first run of "cold" costs 100 units (code compiled, keys imported), every later one 1.
    const cold: Subject = {
      name: "cold",
      run: async () => {
        work(coldRuns++ === 0 ? 100 : 1);
        return 1;
      },
    };
    const warm: Subject = {
      name: "warm",
      run: async () => {
        work(1);
        return 1;
      },
    };
    const rates = await alternate(
      [cold, warm].map((s) => accounts.accounted(s)),
      {
        rounds: 4,
        sliceSeconds: 0,
        warmupSeconds: 0,
      },
    );
    // The rates count the 4 rounds' runs, not the warm-up's; so does the CPU.
    expect(rates.get("cold")?.ops).toBe(4);
    expect(accounts.total("cold")).toBe(1000);
    expect(accounts.total("warm")).toBe(1000);
    expect(accounts.total("cold-warmup")).toBe(100_000);
    expect(accounts.total("warm-warmup")).toBe(1000);
    expect(accounts.threads("cold")).toEqual({ "page: chromium": 1000 });
  });

  it("keeps the subject's enter, and splits a run's preparation (`note`) the same way", async () => {
    const { reader, work } = workReader();
    const accounts = new CpuAccounts(reader, MIB);
    const entered: string[] = [];
    const files: Subject = {
      name: "files",
      enter: () => {
        entered.push("files");
      },
      run: async () => {
        work(3); // the untimed part: hash and sealed copy
        await accounts.note();
        work(1);
        return 1;
      },
    };
    await alternate([accounts.accounted(files)], { rounds: 2, sliceSeconds: 0, warmupSeconds: 0 });
    expect(entered).toEqual(["files", "files", "files"]);
    expect(accounts.perMib()).toEqual({
      "files-warmup-prepare": { page: 3000, total: 3000 },
      "files-warmup": { page: 1000, total: 1000 },
      "files-prepare": { page: 3000, total: 3000 },
      files: { page: 1000, total: 1000 },
    });
  });

  it("keeps each timed run's figure, and pairs two subjects' runs round by round", async () => {
    const { reader, work } = workReader();
    const accounts = new CpuAccounts(reader, MIB);
    // The load rises round by round: each run costs `load` units, "files" 1.25 times what "raw" does.
    let load = 1;
    const raw: Subject = {
      name: "raw",
      run: async () => {
        work(4 * load);
        return 1;
      },
    };
    const files: Subject = {
      name: "files",
      run: async () => {
        work(5 * load);
        load *= 2;
        return 1;
      },
    };
    await alternate(
      [raw, files].map((s) => accounts.accounted(s)),
      { rounds: 3, sliceSeconds: 0, warmupSeconds: 0 },
    );
    // Warm-ups (load 1), then rounds at loads 2, 4 and 8 (files runs last in round 0 and 2, first in 1).
    expect(accounts.rounds("raw-warmup")).toEqual([4000]);
    expect(accounts.rounds("raw")).toEqual([8000, 32_000, 32_000]);
    expect(accounts.rounds("files")).toEqual([10_000, 20_000, 40_000]);
    expect(accounts.roundRatios("files", "raw")).toEqual([1.25, 0.625, 1.25]);
    expect(accounts.roundRatios("files", "none")).toEqual([]);
    expect(accounts.rounds("none")).toEqual([]);
  });

  it("counts nothing without a reader: every figure NaN", async () => {
    const accounts = new CpuAccounts(undefined, MIB);
    await alternate([accounts.accounted({ name: "x", run: async () => 1 })], {
      rounds: 1,
      sliceSeconds: 0,
      warmupSeconds: 0,
    });
    expect(accounts.total("x")).toBeNaN();
    expect(accounts.perMib()).toEqual({});
  });
});
