import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { GONE_SENDS_CHAIN_MAX, GoneSends } from "./gone-sends.ts";

const key = (rid: Uint8Array, send: Uint8Array) => Buffer.concat([rid, send]).toString("hex");

describe("GoneSends", () => {
  it("answers as a model ring of slots does, under any sequence of adds, deletes and prunes", () => {
    // Few distinct rids and send ids, so keys repeat, share buckets and get deleted again, and
    // long runs of operations, so the ring fills, wraps and evicts with holes in it.
    const rid = fc.integer({ min: 0, max: 1 }).map((i) => Buffer.alloc(24, i));
    const send = fc.integer({ min: 0, max: 11 }).map((i) => {
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
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(op, { minLength: 20, maxLength: 300 }),
        (max, ops) => {
          const gone = new GoneSends(max, randomBytes);
          // The model: slots oldest first, each a key and its expiry or a hole (undefined) a
          // deletion left; a full ring drops its oldest slot; a deletion drops the holes at the
          // ends, and all of them past max/16; a prune drops them all.
          let slots: ({ k: string; exp: number } | undefined)[] = [];
          // The reference the ring replaced: a Map in insertion order, its oldest entry evicted
          // when it holds `max` (lmdb.ts before gone-sends.ts).
          const ref = new Map<string, number>();
          for (const o of ops) {
            if (o.k === "add") {
              const k = key(o.rid, o.send.subarray(2, 18));
              const held = slots.find((x) => x?.k === k);
              if (held) held.exp = Math.max(held.exp, o.exp);
              else {
                if (slots.length === max) slots.shift();
                slots.push({ k, exp: o.exp });
              }
              if (!ref.has(k) && ref.size >= max) ref.delete(ref.keys().next().value!);
              ref.set(k, Math.max(ref.get(k) ?? 0, o.exp));
              gone.add(o.rid, o.send, 2, o.exp);
            } else if (o.k === "del") {
              const k = key(o.rid, o.send.subarray(2, 18));
              if (slots.some((x) => x?.k === k)) {
                slots = slots.map((x) => (x?.k === k ? undefined : x));
                while (slots.length > 0 && slots.at(-1) === undefined) slots.pop();
                while (slots.length > 0 && slots[0] === undefined) slots.shift();
                if (slots.filter((x) => !x).length > max >> 4) slots = slots.filter(Boolean);
              }
              ref.delete(k);
              gone.delete(o.rid, o.send, 2);
            } else {
              const n = slots.filter((x) => x && x.exp <= o.now).length;
              slots = slots.filter((x) => x && x.exp > o.now);
              for (const [k, exp] of ref) if (exp <= o.now) ref.delete(k);
              expect(gone.prune(o.now)).toBe(n);
            }
            expect(gone.size).toBe(slots.filter(Boolean).length);
            // Against the reference: the ring holds the newest of its keys (a suffix in insertion
            // order) and nothing else — never a key it had forgotten, deleted or pruned.
            const order = [...ref.keys()];
            const heldFrom = order.findIndex((k) => slots.some((x) => x?.k === k));
            if (heldFrom >= 0)
              for (const k of order.slice(heldFrom)) expect(slots.some((x) => x?.k === k)).toBe(true);
            for (const x of slots) if (x) expect(ref.has(x.k)).toBe(true);
          }
          for (let r = 0; r < 2; r++)
            for (let i = 0; i <= 11; i++) {
              const b = Buffer.alloc(16, 0xee);
              b.writeUInt16BE(i, 14);
              const k = key(Buffer.alloc(24, r), b);
              expect(gone.has(Buffer.alloc(24, r), b), k).toBe(slots.some((x) => x?.k === k));
            }
        },
      ),
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

describe("GoneSends against send ids chosen to collide", () => {
  // The hash is universal, not a PRF (gone-sends.ts): a sender who learned the coefficients (here
  // handed to it: all 1, the hash is the sum of the key's 16-bit words) can pick ids that all
  // share one bucket. Unbounded, that chain makes every SEND of that bucket walk all of them.
  const weakThenStrong = () => {
    let calls = 0;
    const random = (n: number): Uint8Array => (calls++ === 0 ? new Uint8Array(n) : randomBytes(n));
    return { random, calls: () => calls };
  };
  const colliding = (i: number) => {
    const b = Buffer.alloc(16);
    b.writeUInt16BE(i, 0);
    b.writeUInt16BE(60_000 - i, 2);
    return b;
  };

  it("keeps every chain short: past the bound the coefficients are drawn again, nothing forgotten", () => {
    const r = weakThenStrong();
    const gone = new GoneSends(8192, r.random);
    const rid = Buffer.alloc(24, 7);
    const sends = Array.from({ length: 5000 }, (_, i) => colliding(i));
    for (const s of sends) gone.add(rid, s, 0, 1000);
    expect(gone.longestChain()).toBeLessThanOrEqual(GONE_SENDS_CHAIN_MAX);
    expect(r.calls()).toBeGreaterThan(1);
    expect(gone.size).toBe(5000);
    for (const [i, s] of sends.entries()) expect(gone.has(rid, s), `send ${i}`).toBe(true);
    expect(gone.has(rid, colliding(5000))).toBe(false);
  });

  it("answers as a set under any adds, deletes and prunes of colliding ids", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            i: fc.integer({ min: 0, max: 300 }),
            del: fc.boolean(),
            exp: fc.integer({ min: 1, max: 9 }),
          }),
          { minLength: 100, maxLength: 400 },
        ),
        fc.integer({ min: 0, max: 9 }),
        (ops, now) => {
          const gone = new GoneSends(1000, weakThenStrong().random);
          const rid = Buffer.alloc(24, 1);
          const ref = new Map<number, number>();
          for (const o of ops)
            if (o.del) {
              gone.delete(rid, colliding(o.i));
              ref.delete(o.i);
            } else {
              gone.add(rid, colliding(o.i), 0, o.exp);
              ref.set(o.i, Math.max(ref.get(o.i) ?? 0, o.exp));
            }
          expect(gone.longestChain()).toBeLessThanOrEqual(GONE_SENDS_CHAIN_MAX);
          gone.prune(now);
          for (let i = 0; i <= 300; i++) expect(gone.has(rid, colliding(i))).toBe((ref.get(i) ?? 0) > now);
        },
      ),
      { numRuns: FUZZ_RUNS / 100 },
    );
  });
});

describe("GoneSends after deletions (a removal whose commit failed)", () => {
  it("a deletion frees its slot: add-then-delete at full does not push the held ids out", () => {
    // lmdb.ts #deleteMessage adds a send id before its commit and deletes it when the commit
    // fails: a disk refusing every commit repeats that for each ACK retried. The ids the list
    // held must stay held as they did with a Map (one evicted by the first add, no more).
    const max = 100;
    const gone = new GoneSends(max, randomBytes);
    const rid = randomBytes(24);
    const held = Array.from({ length: max }, () => randomBytes(16));
    for (const s of held) gone.add(rid, s, 0, 1000);
    for (let i = 0; i < 10 * max; i++) {
      const s = randomBytes(16);
      gone.add(rid, s, 0, 1000);
      gone.delete(rid, s);
    }
    expect(gone.size).toBe(max - 1);
    for (const [i, s] of held.entries()) expect(gone.has(rid, s), `held ${i}`).toBe(i > 0);
  });

  it("deletions anywhere in the ring cost at most a sixteenth of it before it is compacted", () => {
    const max = 1024;
    const gone = new GoneSends(max, randomBytes);
    const rid = randomBytes(24);
    const sends = Array.from({ length: max }, () => randomBytes(16));
    for (const s of sends) gone.add(rid, s, 0, 1000);
    // Every other one of the older half deleted: holes, none at either end of the ring.
    for (let i = 1; i < max / 2; i += 2) gone.delete(rid, sends[i]!);
    const more = Array.from({ length: max / 4 }, () => randomBytes(16));
    for (const s of more) gone.add(rid, s, 0, 1000);
    expect(gone.size).toBeGreaterThanOrEqual(max - max / 16);
    // The newest max − max/16 adds that were not deleted are all held.
    const order = [...sends.filter((_, i) => !(i < max / 2 && i % 2 === 1)), ...more];
    for (const s of order.slice(-(max - max / 16))) expect(gone.has(rid, s)).toBe(true);
  });
});

describe("GoneSends with arbitrary bytes", () => {
  it("answers as a Map of rid ‖ send id for any rids, ids and offsets", () => {
    const rid = fc.uint8Array({ minLength: 24, maxLength: 24 });
    const send = fc.uint8Array({ minLength: 16, maxLength: 16 });
    fc.assert(
      fc.property(
        fc.array(fc.record({ rid, send, pad: fc.nat(7), del: fc.boolean() }), {
          minLength: 1,
          maxLength: 200,
        }),
        (ops) => {
          const gone = new GoneSends(1000, randomBytes);
          const ref = new Set<string>();
          for (const o of ops) {
            // The id read from inside a larger buffer, as lmdb.ts reads it from a record.
            const record = Buffer.concat([Buffer.alloc(o.pad, 0xa5), o.send, Buffer.alloc(3, 0x5a)]);
            if (o.del) {
              gone.delete(o.rid, record, o.pad);
              ref.delete(key(o.rid, o.send));
            } else {
              gone.add(o.rid, record, o.pad, 10);
              ref.add(key(o.rid, o.send));
            }
          }
          expect(gone.size).toBe(ref.size);
          for (const o of ops) expect(gone.has(o.rid, o.send)).toBe(ref.has(key(o.rid, o.send)));
          // A key that differs in any one byte is another key.
          const o = ops[0]!;
          for (let i = 0; i < 40; i++) {
            const r = Buffer.from(o.rid);
            const s = Buffer.from(o.send);
            if (i < 24) r[i]! ^= 1;
            else s[i - 24]! ^= 1;
            expect(gone.has(r, s)).toBe(ref.has(key(r, s)));
          }
        },
      ),
      { numRuns: FUZZ_RUNS / 100 },
    );
  });
});
