/** The in-memory blocks awaiting their first delivery: bounded in bytes, zeroed when dropped. */
import { describe, expect, it } from "vitest";
import { HotBlocks } from "./hot-blocks.ts";

const key = (n: number) => Buffer.concat([Buffer.alloc(24, 7), Buffer.from([0, 0, 0, 0, 0, 0, 0, n])]);
const block = (fill: number, length = 256) => Buffer.alloc(length, fill);

describe("HotBlocks", () => {
  it("hands a block over once (take), then forgets it", () => {
    const hot = new HotBlocks(1024);
    const b = block(1);
    expect(hot.put(key(1), b)).toBe(true);
    expect(hot.take(key(1))).toBe(b);
    expect(b.every((x) => x === 1)).toBe(true); // handed over, not wiped: the caller wipes it
    expect(hot.take(key(1))).toBeUndefined();
    expect(hot.bytes).toBe(0);
  });

  it("stays within its byte budget: the oldest blocks leave first, zeroed", () => {
    const hot = new HotBlocks(1024);
    const blocks = [1, 2, 3, 4, 5].map((n) => block(n));
    for (const [i, b] of blocks.entries()) hot.put(key(i), b);
    expect(hot.bytes).toBe(1024);
    expect(hot.size).toBe(4);
    expect(blocks[0]!.every((x) => x === 0)).toBe(true);
    expect(hot.take(key(0))).toBeUndefined();
    expect(hot.take(key(4))).toBe(blocks[4]);
  });

  it("refuses a block larger than the budget, and a budget of 0 keeps nothing", () => {
    expect(new HotBlocks(100).put(key(1), block(1))).toBe(false);
    const none = new HotBlocks(0);
    expect(none.put(key(1), block(1, 0))).toBe(true); // an empty block fits in nothing
    expect(none.put(key(2), block(1))).toBe(false);
    expect(none.bytes).toBe(0);
  });

  it("drop and clear zero what they forget; the same key again replaces (and zeroes) the old block", () => {
    const hot = new HotBlocks(4096);
    const a = block(1);
    const b = block(2);
    const c = block(3);
    hot.put(key(1), a);
    hot.put(key(1), b);
    expect(a.every((x) => x === 0)).toBe(true);
    expect(hot.bytes).toBe(256);
    hot.put(key(2), c);
    hot.drop(key(1));
    expect(b.every((x) => x === 0)).toBe(true);
    hot.clear();
    expect(c.every((x) => x === 0)).toBe(true);
    expect(hot.size).toBe(0);
    expect(hot.bytes).toBe(0);
  });
});
