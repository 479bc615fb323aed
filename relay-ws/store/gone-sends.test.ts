import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { GoneSends } from "./gone-sends.ts";

const key = (rid: Uint8Array, send: Uint8Array) => Buffer.concat([rid, send]).toString("hex");

describe("GoneSends", () => {
  it("answers as a model ring of slots does, under any sequence of adds, deletes and prunes", () => {
    // Few distinct rids and send ids, so keys repeat, share buckets and get deleted again.
    const rid = fc.integer({ min: 0, max: 3 }).map((i) => Buffer.alloc(24, i));
    const send = fc.integer({ min: 0, max: 40 }).map((i) => {
      const b = Buffer.alloc(20, 0xee);
      b.writeUInt16BE(i, 2 + 14);
      return b;
    });
    const op = fc.oneof(
      fc.record({ k: fc.constant("add" as const), rid, send, exp: fc.integer({ min: 1, max: 100 }) }),
      fc.record({ k: fc.constant("del" as const), rid, send }),
      fc.record({ k: fc.constant("prune" as const), now: fc.integer({ min: 0, max: 100 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(op, { maxLength: 300 }), (max, ops) => {
        const gone = new GoneSends(max, randomBytes);
        // The model: slots oldest first, each a key and its expiry or a hole (undefined) a
        // deletion left; a full ring drops its oldest slot; a prune also drops the holes.
        let slots: ({ k: string; exp: number } | undefined)[] = [];
        for (const o of ops) {
          if (o.k === "add") {
            const k = key(o.rid, o.send.subarray(2, 18));
            const held = slots.find((x) => x?.k === k);
            if (held) held.exp = Math.max(held.exp, o.exp);
            else {
              if (slots.length === max) slots.shift();
              slots.push({ k, exp: o.exp });
            }
            gone.add(o.rid, o.send, 2, o.exp);
          } else if (o.k === "del") {
            const k = key(o.rid, o.send.subarray(2, 18));
            slots = slots.map((x) => (x?.k === k ? undefined : x));
            gone.delete(o.rid, o.send, 2);
          } else {
            const n = slots.filter((x) => x && x.exp <= o.now).length;
            slots = slots.filter((x) => x && x.exp > o.now);
            expect(gone.prune(o.now)).toBe(n);
          }
          expect(gone.size).toBe(slots.filter(Boolean).length);
        }
        for (let r = 0; r < 4; r++)
          for (let i = 0; i <= 40; i++) {
            const b = Buffer.alloc(16, 0xee);
            b.writeUInt16BE(i, 14);
            const k = key(Buffer.alloc(24, r), b);
            expect(gone.has(Buffer.alloc(24, r), b), k).toBe(slots.some((x) => x?.k === k));
          }
      }),
      { numRuns: FUZZ_RUNS / 50 },
    );
  });

  it("holds the latest `max` distinct keys exactly, and forgets the oldest first", () => {
    const max = 5000;
    const gone = new GoneSends(max, randomBytes);
    const rid = randomBytes(24);
    const sends = Array.from({ length: max + 1234 }, () => randomBytes(16));
    for (const s of sends) gone.add(rid, s, 0, 1000);
    expect(gone.size).toBe(max);
    for (const [i, s] of sends.entries()) expect(gone.has(rid, s), `send ${i}`).toBe(i >= 1234);
    // Another queue's same send id is another key.
    expect(gone.has(randomBytes(24), sends.at(-1)!)).toBe(false);
  });

  it("delete and prune forget exactly what they name, and a pruned ring fills again", () => {
    const gone = new GoneSends(100, randomBytes);
    const rid = randomBytes(24);
    const sends = Array.from({ length: 100 }, () => randomBytes(16));
    for (const [i, s] of sends.entries()) gone.add(rid, s, 0, i < 50 ? 10 : 20);
    gone.delete(rid, sends[70]!);
    expect(gone.has(rid, sends[70]!)).toBe(false);
    expect(gone.size).toBe(99);
    expect(gone.prune(10)).toBe(50);
    expect(gone.size).toBe(49);
    for (const [i, s] of sends.entries()) expect(gone.has(rid, s)).toBe(i >= 50 && i !== 70);
    // Compacted: 51 new keys fit without evicting any of the 49 held.
    const more = Array.from({ length: 51 }, () => randomBytes(16));
    for (const s of more) gone.add(rid, s, 0, 30);
    expect(gone.size).toBe(100);
    for (const [i, s] of sends.entries()) expect(gone.has(rid, s)).toBe(i >= 50 && i !== 70);
    expect(more.every((s) => gone.has(rid, s))).toBe(true);
  });
});
