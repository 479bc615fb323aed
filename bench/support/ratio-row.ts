/**
 * One report row of subject `a` against its baseline `b`, both rates from the same alternating run
 * (bench/README.md: ratios within one run, the median of the per-round ratios with their range).
 * The ratio per CPU-second is there when both sides have CPU time of their own slices (a
 * self-timed subject has none). bench:core and bench:codec each built this row.
 */
import { type Row, type SliceRate, sliceRatio, sliceRatioRange } from "../harness.ts";

/** `scale` multiplies both rates as printed (bytes per op to MB/s, say); the ratios are unscaled. */
export function ratioRow(
  name: string,
  unit: string,
  a: SliceRate,
  b: { name: string; rate: SliceRate },
  scale = 1,
): Row & { ratio: number; ratioRange: [number, number] } {
  const cpuRatio = a.cpuSlices && b.rate.cpuSlices ? sliceRatio(a, b.rate, "cpu") : undefined;
  return {
    name,
    value: a.perSecond * scale,
    unit,
    baseline: { name: b.name, value: b.rate.perSecond * scale },
    ratio: sliceRatio(a, b.rate),
    ratioRange: sliceRatioRange(a, b.rate),
    ...(cpuRatio !== undefined ? { cpuRatio } : {}),
  };
}
