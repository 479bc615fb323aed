/** The hot path's random bytes (random-pool.ts): never repeated, never left in the pool. */
import { describe, expect, it } from "vitest";
import { LASTING_SLAB_BYTES, LastingSlab, lastingRandomBytes, RandomPool } from "./random-pool.ts";

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

  it("connection-long bytes: slices of one slab, never overlapping, each random; large ones their own", () => {
    const slab = new LastingSlab(256);
    const a = slab.take(32);
    const b = slab.take(64);
    const c = slab.take(30);
    expect(a.buffer).toBe(b.buffer);
    expect(b.buffer).toBe(c.buffer);
    expect(a.buffer.byteLength).toBe(256);
    // 8-byte aligned, never overlapping.
    expect(
      [a.byteOffset % 256, b.byteOffset % 256, c.byteOffset % 256].map((o) => o - (a.byteOffset % 256)),
    ).toEqual([0, 32, 96]);
    a.fill(1);
    b.fill(2);
    c.fill(3);
    expect(a.every((x) => x === 1) && b.every((x) => x === 2) && c.every((x) => x === 3)).toBe(true);
    // Past the slab's end: a fresh slab; past a quarter of it: a buffer of its own.
    const d = slab.take(64);
    const e = slab.take(64); // ends exactly at the slab's end
    expect(d.buffer).toBe(a.buffer);
    expect(e.buffer).toBe(a.buffer);
    const f = slab.take(8);
    expect(f.buffer).not.toBe(a.buffer);
    expect(f.byteOffset).toBe(0);
    expect(slab.take(65).buffer).not.toBe(f.buffer);
    const seen = new Set(Array.from({ length: 500 }, () => lastingRandomBytes(32).toString("hex")));
    expect(seen.size).toBe(500);
  });

  it("default slabs are small: one long-lived connection keeps at most 512 bytes alive, five relay connections share one", () => {
    // A relay 1.1 connection's lasting bytes: session id + X25519 pair, one 96-byte take
    // (relay-ws/authenticator.ts). Under churn a survivor pins its whole slab (bench/README.md,
    // "Connection-long bytes under churn").
    const slab = new LastingSlab();
    expect(slab.size).toBe(LASTING_SLAB_BYTES);
    expect(LASTING_SLAB_BYTES).toBe(512);
    const five = Array.from({ length: 5 }, () => slab.take(96));
    expect(new Set(five.map((b) => b.buffer)).size).toBe(1);
    expect(five[0]!.buffer.byteLength).toBe(512);
    expect(slab.take(96).buffer).not.toBe(five[0]!.buffer);
  });
});
