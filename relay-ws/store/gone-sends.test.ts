import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { GONE_SENDS_CHAIN_MAX, GoneSends } from "./gone-sends.ts";

const key = (rid: Uint8Array, send: Uint8Array) => Buffer.concat([rid, send]).toString("hex");

describe("GoneSends", () => {
  it("answers as the Map it replaced, under any sequence of adds, deletes and prunes", () => {
    // Few distinct rids and send ids, so keys repeat, share buckets and get deleted again, and
    // long runs of operations, so the list fills, evicts and refills after deletions and prunes;
    // up to 40 held, so the expiry heap has several levels to keep in order.
    const rid = fc.integer({ min: 0, max: 1 }).map((i) => Buffer.alloc(24, i));
    const send = fc.integer({ min: 0, max: 47 }).map((i) => {
      const b = Buffer.alloc(20, 0xee);
      b.writeUInt16BE(i, 2 + 14);
      return b;
    });
    // Prunes rarer than adds and deletions: each one empties much of the list.
    const op = fc.oneof(
      {
        arbitrary: fc.record({
          k: fc.constant("add" as const),
          rid,
          send,
          exp: fc.integer({ min: 1, max: 100 }),
        }),
        weight: 5,
      },
      { arbitrary: fc.record({ k: fc.constant("del" as const), rid, send }), weight: 3 },
      {
        arbitrary: fc.record({ k: fc.constant("prune" as const), now: fc.integer({ min: 0, max: 100 }) }),
        weight: 1,
      },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(op, { minLength: 20, maxLength: 300 }),
        (max, ops) => {
          const gone = new GoneSends(max, randomBytes);
          // The reference: a Map in insertion order, its oldest entry evicted when it holds `max`
          // (lmdb.ts before gone-sends.ts); a key added again keeps its place and the later expiry.
          // A deleted or pruned entry costs nothing: the list holds exactly what the Map holds (it
          // held only a suffix of it when deletions left holes in a ring).
          const ref = new Map<string, number>();
          for (const o of ops) {
            if (o.k === "add") {
              const k = key(o.rid, o.send.subarray(2, 18));
              if (!ref.has(k) && ref.size >= max) ref.delete(ref.keys().next().value!);
              ref.set(k, Math.max(ref.get(k) ?? 0, o.exp));
              gone.add(o.rid, o.send, 2, o.exp);
            } else if (o.k === "del") {
              ref.delete(key(o.rid, o.send.subarray(2, 18)));
              gone.delete(o.rid, o.send, 2);
            } else {
              let n = 0;
              for (const [k, exp] of ref)
                if (exp <= o.now) {
                  ref.delete(k);
                  n++;
                }
              expect(gone.prune(o.now)).toBe(n);
            }
            expect(gone.size).toBe(ref.size);
          }
          for (let r = 0; r < 2; r++)
            for (let i = 0; i <= 47; i++) {
              const b = Buffer.alloc(16, 0xee);
              b.writeUInt16BE(i, 14);
              const k = key(Buffer.alloc(24, r), b);
              expect(gone.has(Buffer.alloc(24, r), b), k).toBe(ref.has(k));
            }
          // And each held key keeps the later expiry: pruning at each reference expiry drops
          // exactly the keys due by then.
          for (const now of [...new Set(ref.values())].sort((a, b) => a - b))
            expect(gone.prune(now)).toBe([...ref.values()].filter((e) => e === now).length);
          expect(gone.size).toBe(0);
        },
      ),
      // Unbiased: fast-check's bias towards small values draws mostly tiny lists and equal expiries,
      // which never reach the heap's removals from its middle that must move an entry up.
      { numRuns: FUZZ_RUNS / 50, unbiased: true },
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

describe("GoneSends pruned at full size", () => {
  it("a prune's work follows what expired, not what is held, and frees the slots it pruned", () => {
    // GC prunes the list every run (lmdb.ts #gc): a full list is 262 144 entries, and almost every
    // run finds nothing or a few expired. The work is the slots the prune read or moved, the heap's
    // levels included: at most a few dozen per expired entry, none per held one.
    const max = 16_384;
    const gone = new GoneSends(max, randomBytes);
    const rid = randomBytes(24);
    const sends = Array.from({ length: max }, () => randomBytes(16));
    // Every 1000th expires at 10 (none at either end of the insertion order), the rest at 1000.
    const early = (i: number) => i % 1000 === 500;
    for (const [i, s] of sends.entries()) gone.add(rid, s, 0, early(i) ? 10 : 1000);
    const perExpired = 4 * (Math.log2(max) + 1);

    expect(gone.prune(9)).toBe(0);
    expect(gone.lastPruneWork).toBeLessThanOrEqual(perExpired);
    const k = sends.filter((_, i) => early(i)).length;
    expect(gone.prune(10)).toBe(k);
    expect(gone.lastPruneWork).toBeLessThanOrEqual((k + 1) * perExpired);
    expect(gone.size).toBe(max - k);
    for (const [i, s] of sends.entries()) expect(gone.has(rid, s), `send ${i}`).toBe(!early(i));
    // The pruned slots are free: k new ids fit without evicting a held one; the next evicts the oldest.
    const more = Array.from({ length: k }, () => randomBytes(16));
    for (const s of more) gone.add(rid, s, 0, 1000);
    expect(gone.size).toBe(max);
    for (const [i, s] of sends.entries()) expect(gone.has(rid, s), `send ${i}`).toBe(!early(i));
    gone.add(rid, randomBytes(16), 0, 1000);
    expect(gone.has(rid, sends[0]!)).toBe(false);
    expect(gone.has(rid, sends[1]!)).toBe(true);
    // Everything due at once: each entry's share of the work stays bounded.
    expect(gone.prune(1000)).toBe(max);
    expect(gone.lastPruneWork).toBeLessThanOrEqual((max + 1) * perExpired);
    expect(gone.size).toBe(0);
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

  it("deletions anywhere in the list cost none of its depth", () => {
    const max = 1024;
    const gone = new GoneSends(max, randomBytes);
    const rid = randomBytes(24);
    const sends = Array.from({ length: max }, () => randomBytes(16));
    for (const s of sends) gone.add(rid, s, 0, 1000);
    // Every other one of the older half deleted: none at either end of the insertion order.
    for (let i = 1; i < max / 2; i += 2) gone.delete(rid, sends[i]!);
    const more = Array.from({ length: max / 4 }, () => randomBytes(16));
    for (const s of more) gone.add(rid, s, 0, 1000);
    // The max/4 new ids took the deleted ids' slots: the newest `max` not deleted are all held.
    expect(gone.size).toBe(max);
    const order = [...sends.filter((_, i) => !(i < max / 2 && i % 2 === 1)), ...more];
    for (const [i, s] of order.entries()) expect(gone.has(rid, s), `${i}`).toBe(i >= order.length - max);
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

describe("GoneSends past its first capacity, and in one bucket", () => {
  it("answers as the Map after growing: deletions, evictions and prunes of slots it copied", () => {
    // The model test above holds at most 40, so its list never grows past the first allocation:
    // here it grows twice with entries held (#grow copies their order links and heap places), then
    // deletes, evicts and prunes them by varied expiries.
    fc.assert(
      fc.property(
        fc.integer({ min: 1025, max: 3000 }),
        fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 3100, maxLength: 3100 }),
        fc.array(fc.nat(), { minLength: 400, maxLength: 400 }),
        fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 5 }),
        (max, exps, dels, nows) => {
          const gone = new GoneSends(max, randomBytes);
          const rid = randomBytes(24);
          const sends = exps.map(() => randomBytes(16));
          const ref = new Map<string, number>();
          for (const [i, s] of sends.entries()) {
            const k = key(rid, s);
            if (ref.size >= max) ref.delete(ref.keys().next().value!);
            ref.set(k, exps[i]!);
            gone.add(rid, s, 0, exps[i]!);
          }
          for (const d of dels) {
            const s = sends[d % sends.length]!;
            ref.delete(key(rid, s));
            gone.delete(rid, s);
          }
          for (const now of [...nows].sort((a, b) => a - b)) {
            let n = 0;
            for (const [k, exp] of ref)
              if (exp <= now) {
                ref.delete(k);
                n++;
              }
            expect(gone.prune(now)).toBe(n);
            expect(gone.size).toBe(ref.size);
          }
          for (const s of sends) expect(gone.has(rid, s)).toBe(ref.has(key(rid, s)));
        },
      ),
      { numRuns: FUZZ_RUNS / 500 },
    );
  });

  it("tells apart keys that differ in any one byte when they share a bucket", () => {
    // One slot: every key is in the index's only bucket, so only the comparison tells them apart
    // (elsewhere the hash sends a key that differs in one byte to another bucket almost always).
    const gone = new GoneSends(1, randomBytes);
    const rid = randomBytes(24);
    const send = randomBytes(16);
    gone.add(rid, send, 0, 10);
    for (let i = 0; i < 40; i++) {
      const r = Buffer.from(rid);
      const s = Buffer.from(send);
      if (i < 24) r[i]! ^= 0x80;
      else s[i - 24]! ^= 0x80;
      expect(gone.has(r, s), `byte ${i}`).toBe(false);
    }
    expect(gone.has(rid, send)).toBe(true);
  });

  it("hashes every 16-bit word of the key: ids differing in any one word spread over the buckets", () => {
    // A word left out of the hash puts every key that differs only there in one bucket: the chain
    // outgrows the bound however often the coefficients are drawn again.
    for (let w = 0; w < 20; w++) {
      const gone = new GoneSends(4096, randomBytes);
      for (let i = 0; i < 2000; i++) {
        const k = Buffer.alloc(40, 0x33);
        k.writeUInt16BE(i, 2 * w);
        gone.add(k.subarray(0, 24), k, 24, 10);
      }
      expect(gone.longestChain(), `word ${w}`).toBeLessThanOrEqual(GONE_SENDS_CHAIN_MAX);
    }
  });

  it("ids not chosen to collide never make it draw its coefficients again", () => {
    // Each redraw rebuilds the whole index (O(max)): an honest workload must not pay it (the odds
    // of a chain of GONE_SENDS_CHAIN_MAX under random coefficients are below 10^-30), whatever
    // lookups and deletions came between the adds.
    let draws = 0;
    const gone = new GoneSends(8192, (n) => {
      draws++;
      return randomBytes(n);
    });
    const rid = randomBytes(24);
    for (let i = 0; i < 20_000; i++) {
      const s = randomBytes(16);
      gone.add(rid, s, 0, 10);
      expect(gone.has(rid, s)).toBe(true);
      if (i % 3 === 0) gone.delete(rid, s);
    }
    expect(draws).toBe(1);
  });
});
