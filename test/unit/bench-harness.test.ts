/**
 * bench/harness.ts `alternate` and `sliceRatio`: the machinery every comparing bench relies on to
 * put a figure and its baseline under the same machine load. No timing is asserted: the order of
 * slices, the bookkeeping of operations and the ratio arithmetic are.
 */
import { describe, expect, it } from "vitest";
import {
  alternate,
  latencyRows,
  rateOf,
  type SliceRate,
  type Subject,
  sliceRatio,
} from "../../bench/harness.ts";

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
