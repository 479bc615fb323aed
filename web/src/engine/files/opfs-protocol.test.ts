/**
 * The OPFS store's slot layout (docs/protocol/files.md §6, "Where the chunks are"): what the page
 * lays out (`packSlots`) the worker takes (`validSlots`) and reads back (`readSlots`) chunk for
 * chunk; a layout cut short, grown, or with a length field changed is refused by the worker's
 * check and never throws; chunks a slot cannot hold are refused on the page.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { equalBytes } from "../../../../core/bytes.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import {
  CHUNK_KEY_BYTES,
  CHUNK_NONCE_BYTES,
  checkOpen,
  MAX_CHUNK_AAD_BYTES,
  MAX_READ_BYTES,
  MAX_SLOT_BYTES,
  packSlots,
  readSlots,
  SLOT_BYTES,
  SLOT_HEADER_BYTES,
  slotBufferBytes,
  slotBytesFor,
  slotsPerRead,
  validRead,
  validSlotBytes,
  validSlots,
} from "./opfs-protocol.ts";
import {
  AEAD_TAG_BYTES,
  chunkAad,
  chunkNonce,
  LANE_CHUNK_BYTES,
  MAX_CHUNK_BYTES,
  SEALED_CHUNK_BYTES,
} from "./wire.ts";

const full = (seed: number) => new Uint8Array(SEALED_CHUNK_BYTES).fill(seed);

describe("OPFS slots", () => {
  it("a slot holds a full sealed chunk (the worker's bundle does not import wire.ts)", () => {
    expect(SLOT_BYTES - SLOT_HEADER_BYTES).toBe(SEALED_CHUNK_BYTES);
  });

  it("a transfer in chunks of another size has slots of that size; the worker takes only sizes a transfer can have", () => {
    const sealed = LANE_CHUNK_BYTES + AEAD_TAG_BYTES;
    const slot = slotBytesFor(sealed);
    expect(slot).toBe(SLOT_HEADER_BYTES + sealed);
    expect(slotBytesFor(undefined)).toBe(SLOT_BYTES);
    // The largest slot holds the largest chunk an offer may name (wire.ts; the worker cannot import it).
    expect(MAX_SLOT_BYTES).toBe(SLOT_HEADER_BYTES + MAX_CHUNK_BYTES + AEAD_TAG_BYTES);
    for (const ok of [SLOT_BYTES, slot, MAX_SLOT_BYTES, SLOT_HEADER_BYTES + 1])
      expect(validSlotBytes(ok)).toBe(true);
    for (const bad of [MAX_SLOT_BYTES + 1, SLOT_HEADER_BYTES, 0, -1, 1.5, "65044", undefined, 2 ** 53])
      expect(validSlotBytes(bad)).toBe(false);
    const chunks = [
      new Uint8Array(sealed).fill(1),
      new Uint8Array(sealed).fill(2),
      new Uint8Array(40).fill(3),
    ];
    const packed = packSlots(chunks, slot);
    expect(packed.length).toBe(2 * slot + SLOT_HEADER_BYTES + 40);
    expect(validSlots(packed, slot)).toBe(true);
    // Read with the default size, the same bytes are not these chunks.
    expect(validSlots(packed)).toBe(false);
    const back = readSlots(packed, 7, false, slot);
    expect(back.indexes).toEqual([7, 8, 9]);
    expect(back.chunks).toEqual(chunks);
    expect(() => packSlots([new Uint8Array(sealed + 1)], slot)).toThrow(RangeError);
    expect(() => packSlots([new Uint8Array(sealed)])).toThrow(RangeError); // larger than a default slot
  });

  it("packed slots are valid and read back as the same chunks, by index; views share the read buffer", () => {
    const chunks = [full(1), full(2), Uint8Array.of(7, 8, 9)];
    const slots = packSlots(chunks);
    expect(slots.length).toBe(2 * SLOT_BYTES + SLOT_HEADER_BYTES + 3);
    expect(validSlots(slots)).toBe(true);
    const copies = readSlots(slots, 40);
    expect(copies.indexes).toEqual([40, 41, 42]);
    // equalBytes, not toEqual: vitest's deep compare of 64 KiB arrays takes seconds.
    expect(copies.chunks.every((c, k) => equalBytes(c, chunks[k] as Uint8Array))).toBe(true);
    expect(copies.chunks.every((c) => c.buffer !== slots.buffer)).toBe(true);
    const views = readSlots(slots, 40, true);
    expect(views.chunks.every((c, k) => equalBytes(c, chunks[k] as Uint8Array))).toBe(true);
    expect(views.chunks.every((c) => c.buffer === slots.buffer)).toBe(true);
    expect(packSlots([])).toHaveLength(0);
    expect(validSlots(new Uint8Array(0))).toBe(false);
  });

  it("slots laid out in a buffer given back (`into`) are the bytes a new buffer gets, whatever it held (fuzzed)", () => {
    // The page lays each put out in a buffer the worker gave back (opfs-store.ts `#slotBuffer`):
    // it still holds an earlier batch's bytes, so every byte of the layout must be written again —
    // the zeros to the end of a short slot too, which a new buffer has for free. A buffer too small
    // is not used (a new one is).
    const chunkLength = fc.oneof(
      fc.integer({ min: 1, max: SEALED_CHUNK_BYTES }),
      fc.constantFrom(1, SEALED_CHUNK_BYTES - 1, SEALED_CHUNK_BYTES),
    );
    fc.assert(
      fc.property(
        fc.array(chunkLength, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: -SLOT_BYTES, max: SLOT_BYTES }),
        (lengths, dirt, extra) => {
          const chunks = lengths.map((n, k) => new Uint8Array(n).fill(k + 1));
          const fresh = packSlots(chunks);
          const into = new Uint8Array(Math.max(0, fresh.length + extra)).fill(dirt).buffer;
          const again = packSlots(chunks, SLOT_BYTES, into);
          expect(equalBytes(again, fresh)).toBe(true);
          expect(validSlots(again)).toBe(true);
          expect(again.buffer === into).toBe(into.byteLength >= fresh.length);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
    // A buffer of whole slots takes every later batch of as many chunks or fewer.
    const into = new ArrayBuffer(slotBufferBytes(3, SLOT_BYTES)).slice(0);
    expect(packSlots([full(1), full(2), full(3)], SLOT_BYTES, into).buffer).toBe(into);
    expect(packSlots([full(1), Uint8Array.of(1)], SLOT_BYTES, into).buffer).toBe(into);
  });

  it("an empty chunk, or one larger than a slot, is refused on the page", () => {
    expect(() => packSlots([full(1), new Uint8Array(0)])).toThrow(RangeError);
    expect(() => packSlots([new Uint8Array(SEALED_CHUNK_BYTES + 1)])).toThrow(RangeError);
  });

  it("slots cut short, grown, or with a length changed are refused, never thrown on (fuzzed)", () => {
    // Two slots at most: a slot is 65 044 bytes, and the rule is the same for every one.
    const lastLength = fc.integer({ min: 1, max: SEALED_CHUNK_BYTES });
    const edit = fc.oneof(
      fc.record({ kind: fc.constant("cut" as const), n: fc.integer({ min: 1, max: 70_000 }) }),
      fc.record({ kind: fc.constant("grow" as const), n: fc.integer({ min: 1, max: 70_000 }) }),
      fc.record({
        kind: fc.constant("length" as const),
        slot: fc.nat(1),
        byte: fc.nat(SLOT_HEADER_BYTES - 1),
        value: fc.integer({ min: 0, max: 255 }),
      }),
    );
    fc.assert(
      fc.property(fc.boolean(), lastLength, edit, (two, n, e) => {
        const chunks = two ? [full(3), new Uint8Array(n).fill(4)] : [new Uint8Array(n).fill(4)];
        const good = packSlots(chunks);
        let bad: Uint8Array;
        if (e.kind === "cut") bad = good.subarray(0, Math.max(0, good.length - e.n));
        else if (e.kind === "grow") {
          bad = new Uint8Array(good.length + e.n);
          bad.set(good);
        } else {
          bad = good.slice();
          const at = Math.min(e.slot, chunks.length - 1) * SLOT_BYTES + e.byte;
          if (bad[at] === e.value) return; // not a change
          bad[at] = e.value;
        }
        const ok = validSlots(bad);
        if (!ok) return;
        // What the check lets through is a layout `packSlots` could have made: it reads back as
        // chunks that pack to the same bytes (a length changed to another valid one in the first
        // of two slots only moves where that chunk ends, within its slot).
        const { chunks: back } = readSlots(bad, 0);
        expect(back.length).toBeGreaterThan(0);
        expect(back.every((c) => c.length > 0 && c.length <= SEALED_CHUNK_BYTES)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("validSlots takes exactly the layouts packSlots makes: any byte changed, cut or added (fuzzed)", () => {
    // Chunks of any length (a short one before the last leaves zeros to the end of its slot), and
    // any byte of the layout changed — a length, a chunk's byte, the zeros of a short slot — or
    // bytes cut or added (any value). What the worker takes must be what packSlots would lay out
    // for the chunks it reads back (an empty batch is nothing to write); everything else refused,
    // never thrown on. Before, a short slot's zeros changed were taken.
    const chunkLength = fc.oneof(
      fc.integer({ min: 1, max: SEALED_CHUNK_BYTES }),
      fc.constantFrom(1, SEALED_CHUNK_BYTES - 1, SEALED_CHUNK_BYTES),
    );
    const edit = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant("cut" as const), n: fc.integer({ min: 1, max: 70_000 }) }),
      fc.record({
        kind: fc.constant("grow" as const),
        n: fc.integer({ min: 1, max: 70_000 }),
        value: fc.integer({ min: 0, max: 255 }),
      }),
    );
    fc.assert(
      fc.property(fc.array(chunkLength, { minLength: 1, maxLength: 3 }), edit, (lengths, e) => {
        const good = packSlots(lengths.map((n, k) => new Uint8Array(n).fill(k + 1)));
        let bad: Uint8Array;
        if (e.kind === "set") {
          bad = good.slice();
          bad[e.at % bad.length] = e.value;
        } else if (e.kind === "cut") bad = good.subarray(0, Math.max(0, good.length - e.n));
        else {
          bad = new Uint8Array(good.length + e.n).fill(e.value);
          bad.set(good);
        }
        const { chunks } = readSlots(bad, 0);
        expect(validSlots(bad)).toBe(chunks.length > 0 && equalBytes(bad, packSlots(chunks)));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

/**
 * What the worker checks of a `get` before it reads (opfs-worker.ts): slots a read of the store's
 * holds, and an `open` (a put's or a get's) with a chunk key and one nonce and one AAD of the
 * right sizes per chunk — anything else refused with a RangeError, nothing opened as far as it goes.
 */
describe("OPFS requests checked by the worker", () => {
  /** A well-formed `open` for `n` chunks, as opfs-store.ts makes one. */
  const open = (n: number) => {
    const headers = Array.from({ length: n }, (_, index) => ({
      id: 3,
      index,
      total: n,
      chunkSize: SEALED_CHUNK_BYTES,
    }));
    return {
      key: new Uint8Array(CHUNK_KEY_BYTES).fill(1),
      ivs: headers.map((h) => chunkNonce(h.index)),
      aads: headers.map((h) => chunkAad(h)),
    };
  };

  it("the nonce, key and AAD sizes are wire.ts's (the worker's bundle does not import it)", () => {
    expect(chunkNonce(70).length).toBe(CHUNK_NONCE_BYTES);
    const narrow = chunkAad({ id: 1, index: 0, total: 1, chunkSize: SEALED_CHUNK_BYTES });
    const wide = chunkAad({ id: 1, index: 0, total: 1, chunkSize: MAX_CHUNK_BYTES + AEAD_TAG_BYTES });
    expect(wide.length).toBeGreaterThan(narrow.length);
    expect(wide.length).toBeLessThanOrEqual(MAX_CHUNK_AAD_BYTES);
  });

  it("a read of the store's is at most slotsPerRead slots, from a whole slot on", () => {
    expect(slotsPerRead(SLOT_BYTES)).toBe(64);
    expect(slotsPerRead(MAX_SLOT_BYTES)).toBe(16);
    expect(slotsPerRead(MAX_READ_BYTES + 1)).toBe(1);
    for (const [first, count] of [
      [0, 0],
      [0, 64],
      [65_535, 1],
      [7, 3],
    ])
      expect(validRead(first, count, SLOT_BYTES)).toBe(true);
    expect(validRead(0, 16, MAX_SLOT_BYTES)).toBe(true);
    expect(validRead(0, 17, MAX_SLOT_BYTES)).toBe(false);
    for (const [first, count] of [
      [0, 65],
      [-1, 1],
      [1.5, 1],
      [0, 1.5],
      [0, -1],
      [2 ** 53, 1],
      [2 ** 40, 1], // its offset is past a safe integer
      [Number.NaN, 1],
      [0, Number.POSITIVE_INFINITY],
      ["0", 1],
      [0, "1"],
      [undefined, 1],
      [0, null],
    ])
      expect(validRead(first, count, SLOT_BYTES)).toBe(false);
  });

  it("an open takes a chunk key and one nonce and one AAD per chunk; anything else is refused with what is wrong", () => {
    expect(() => checkOpen(open(3), 3)).not.toThrow();
    expect(() => checkOpen(open(0), 0)).not.toThrow();
    const refused = (o: unknown, n: number) => {
      try {
        checkOpen(o, n);
        return "taken";
      } catch (e) {
        expect(e).toBeInstanceOf(RangeError);
        return (e as Error).message;
      }
    };
    expect(refused({ ...open(3), key: new Uint8Array(31) }, 3)).toBe("not a chunk key");
    expect(refused({ ...open(3), key: Array(32).fill(0) }, 3)).toBe("not a chunk key");
    expect(refused(undefined, 3)).toBe("not a chunk key");
    expect(refused("open", 3)).toBe("not a chunk key");
    // Fewer nonces than slots asked for: before, the slots past them read as "did not open".
    expect(refused(open(3), 4)).toBe("one nonce and one AAD per chunk");
    expect(refused(open(3), 2)).toBe("one nonce and one AAD per chunk");
    expect(refused({ ...open(3), aads: open(2).aads }, 3)).toBe("one nonce and one AAD per chunk");
    expect(refused({ ...open(3), ivs: "abc" }, 3)).toBe("one nonce and one AAD per chunk");
    const o = open(3);
    o.ivs[1] = new Uint8Array(11);
    expect(refused(o, 3)).toBe("not a chunk nonce");
    const p = open(3) as { aads: unknown[] };
    p.aads[2] = "loft/file/v1";
    expect(refused(p, 3)).toBe("not a chunk AAD");
    const q = open(3);
    q.aads[0] = new Uint8Array(MAX_CHUNK_AAD_BYTES + 1);
    expect(refused(q, 3)).toBe("not a chunk AAD");
    q.aads[0] = new Uint8Array(0);
    expect(refused(q, 3)).toBe("not a chunk AAD");
  });

  it("an open of any shape is taken exactly when well-formed, and refused only with a RangeError (fuzzed)", () => {
    const bytes = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 80 }),
      fc.constantFrom(CHUNK_KEY_BYTES, CHUNK_NONCE_BYTES, MAX_CHUNK_AAD_BYTES).map((n) => new Uint8Array(n)),
    );
    const value = fc.oneof(bytes, fc.anything());
    const list = fc.oneof(
      fc.array(value, { maxLength: 5 }),
      fc.array(bytes, { maxLength: 5 }),
      fc.anything(),
    );
    const shape = fc.oneof(
      fc.record({ key: value, ivs: list, aads: list }, { requiredKeys: [] }),
      fc.nat(4).map(open),
      fc.anything(),
    );
    const wellFormed = (o: unknown, n: number): boolean => {
      if (typeof o !== "object" || o === null) return false;
      const { key, ivs, aads } = o as Record<string, unknown>;
      const each = (l: unknown, ok: (b: Uint8Array) => boolean) =>
        Array.isArray(l) && l.length === n && l.every((b) => b instanceof Uint8Array && ok(b));
      return (
        key instanceof Uint8Array &&
        key.length === 32 &&
        each(ivs, (b) => b.length === 12) &&
        each(aads, (b) => b.length >= 1 && b.length <= MAX_CHUNK_AAD_BYTES)
      );
    };
    fc.assert(
      fc.property(shape, fc.nat(5), (o, n) => {
        let taken = true;
        try {
          checkOpen(o, n);
        } catch (e) {
          expect(e).toBeInstanceOf(RangeError);
          taken = false;
        }
        expect(taken).toBe(wellFormed(o, n));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a read's slots of any value are taken exactly when whole, from slot 0 on and at most slotsPerRead (fuzzed)", () => {
    const number = fc.oneof(fc.integer({ min: -5, max: 70 }), fc.double(), fc.integer(), fc.anything());
    fc.assert(
      fc.property(
        number,
        number,
        fc.constantFrom(SLOT_BYTES, MAX_SLOT_BYTES, SLOT_HEADER_BYTES + 1),
        (first, count, slot) => {
          const ok =
            Number.isSafeInteger(first) &&
            (first as number) >= 0 &&
            Number.isSafeInteger((first as number) * slot) &&
            Number.isSafeInteger(count) &&
            (count as number) >= 0 &&
            (count as number) <= slotsPerRead(slot);
          expect(validRead(first, count, slot)).toBe(ok);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});
