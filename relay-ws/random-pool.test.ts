/** The hot path's random bytes (random-pool.ts): never repeated, never left in the pool. */
import { describe, expect, it } from "vitest";
import { RandomPool } from "./random-pool.ts";

describe("RandomPool", () => {
  it("hands out distinct values across refills, each a buffer of its own", () => {
    const pool = new RandomPool();
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const b = pool.take(24);
      expect(b).toHaveLength(24);
      seen.add(b.toString("hex"));
    }
    expect(seen.size).toBe(2000);
    const a = pool.take(32);
    const copy = Buffer.from(a);
    a.fill(0);
    expect(pool.take(32).equals(copy)).toBe(false);
    expect(pool.take(1000)).toHaveLength(1000);
  });

  it("zeroes what it handed out: the pool never holds a value given away", () => {
    const buf = Buffer.alloc(256);
    const pool = new RandomPool(buf);
    const first = pool.take(32);
    expect(buf.subarray(0, 32).every((x) => x === 0)).toBe(true);
    expect(buf.subarray(32).some((x) => x !== 0)).toBe(true);
    expect(first.some((x) => x !== 0)).toBe(true);
    // Drain it: every byte handed out is zeroed; the next take refills.
    for (let i = 0; i < 7; i++) pool.take(32);
    expect(buf.every((x) => x === 0)).toBe(true);
    const next = pool.take(32);
    expect(next.equals(first)).toBe(false);
    expect(buf.subarray(32).some((x) => x !== 0)).toBe(true);
  });
});
