/**
 * The file-transfer codecs (docs/protocol/files.md §2–§4) under bad input: FILE_CHUNK and FILE_ACK
 * frames mutated, truncated, oversized or random give typed errors and never throw; a chunk changed
 * in any bit, moved to another index or transfer, or opened under another key fails its AEAD
 * (LOFT_ERR_DECRYPT); the receiver's rule refuses replayed, out-of-order and wrongly sized chunks;
 * the `file.*` application messages refuse out-of-range fields. The bulk lane's decoder (§2,
 * "The bulk lane") takes chunk frames only, fed the same mutated, random and oversized input.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../../../core/codec/codec.ts";
import { padToBucket } from "../../../../core/codec/padding.ts";
import { nobleCrypto } from "../../../../core/crypto/noble.ts";
import { expectTyped, fieldSwapArb, mutate, mutationArb } from "../../../../test/fuzz/mutations.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import { decodeAppMessage } from "../wire.ts";
import {
  CHUNK_HEADER_BYTES,
  checkChunk,
  chunkCount,
  chunkPlainBytes,
  decodeBulkFrame,
  decodeFileFrame,
  encodeAckFrame,
  encodeChunkFrame,
  encodeChunkFrameInto,
  encodeChunkHeader,
  FILE_CHUNK_BYTES,
  FILE_FAIL_REASONS,
  FILE_FRAME,
  type FileChunkFrame,
  fileHash,
  LANE_CHUNK_BYTES,
  LANE_MESSAGE_BYTES,
  MAX_CHUNK_BYTES,
  MAX_FILE_BYTES,
  MAX_FILE_NAME_CHARS,
  MAX_THUMB_BYTES,
  openChunk,
  SEALED_CHUNK_BYTES,
  sealChunk,
  validChunking,
  WIDE_CHUNK_HEADER_BYTES,
} from "./wire.ts";

const KEY = new Uint8Array(32).fill(7);
const FRAME_CODES = [
  "LOFT_ERR_MALFORMED",
  "LOFT_ERR_FRAME_TOO_LARGE",
  "LOFT_ERR_UNKNOWN_TYPE",
  "LOFT_ERR_CHUNK_LIMIT",
] as const;

async function chunkFrame(size: number, index: number, id = 9): Promise<Uint8Array> {
  const plain = new Uint8Array(chunkPlainBytes(size, index)).fill(index & 0xff);
  return sealChunk(
    nobleCrypto,
    KEY,
    { id, index, total: chunkCount(size), chunkSize: SEALED_CHUNK_BYTES },
    plain,
  );
}

/** Chunk `index` of a file of `size` bytes in chunks of `cs` (the offer's size: FILE_CHUNK_WIDE). */
async function wideFrame(size: number, index: number, cs = LANE_CHUNK_BYTES, id = 9): Promise<Uint8Array> {
  const plain = new Uint8Array(chunkPlainBytes(size, index, cs)).fill(index & 0xff);
  const header = { id, index, total: chunkCount(size, cs), chunkSize: cs + 16 };
  return sealChunk(nobleCrypto, KEY, header, plain);
}

function decodedChunk(bytes: Uint8Array): FileChunkFrame {
  const f = decodeFileFrame(bytes);
  if (!f.ok || f.value.type !== "chunk") throw new Error("not a chunk");
  return f.value.chunk;
}

describe("file frames", () => {
  it("a full chunk fits one Noise DATA frame; sizes follow the offer", async () => {
    const full = await chunkFrame(3 * FILE_CHUNK_BYTES, 0);
    expect(full.length).toBe(CHUNK_HEADER_BYTES + SEALED_CHUNK_BYTES);
    expect(full.length).toBeLessThanOrEqual(65_518);
    expect(chunkCount(0)).toBe(1);
    expect(chunkCount(FILE_CHUNK_BYTES)).toBe(1);
    expect(chunkCount(FILE_CHUNK_BYTES + 1)).toBe(2);
    expect(chunkCount(MAX_FILE_BYTES)).toBe(0xffff);
  });

  it("a frame written into the sender's one buffer is the frame, whatever was there before", async () => {
    const scratch = new Uint8Array(CHUNK_HEADER_BYTES + SEALED_CHUNK_BYTES).fill(0xee);
    const size = 2 * FILE_CHUNK_BYTES + 5;
    for (const index of [0, 1, 2, 0]) {
      const chunk = decodedChunk(await chunkFrame(size, index));
      const into = encodeChunkFrameInto(scratch, chunk);
      expect(into.buffer).toBe(scratch.buffer);
      expect(into).toEqual(encodeChunkFrame(chunk)); // the short last chunk, then a full one again
      // The header alone, then the sealed bytes (Session.sendParts): the same frame.
      const header = encodeChunkHeader(chunk.header);
      expect(header.length).toBe(CHUNK_HEADER_BYTES);
      expect(new Uint8Array([...header, ...chunk.sealed])).toEqual(encodeChunkFrame(chunk));
    }
    const full = decodedChunk(await chunkFrame(size, 0));
    expect(() => encodeChunkFrameInto(new Uint8Array(CHUNK_HEADER_BYTES + 100), full)).toThrow(RangeError);
  });

  it("mutated, truncated or extended frames give typed errors, never a throw", async () => {
    const pool = [
      await chunkFrame(10, 0),
      await chunkFrame(FILE_CHUNK_BYTES + 3, 1),
      encodeAckFrame({ id: 9, next: 1 }),
    ];
    fc.assert(
      fc.property(fc.nat(pool.length - 1), mutationArb, (which, m) => {
        expectTyped(() => decodeFileFrame(mutate(pool[which] as Uint8Array, m, pool)), FRAME_CODES);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("the bulk lane takes chunk frames only; mutated, random, oversized input gives typed errors", async () => {
    const chunk = await chunkFrame(FILE_CHUNK_BYTES + 3, 1);
    const pool = [await chunkFrame(10, 0), chunk, encodeAckFrame({ id: 9, next: 1 })];
    expect(decodeBulkFrame(chunk)).toMatchObject({ ok: true, value: decodedChunk(chunk) });
    expect(decodeBulkFrame(encodeAckFrame({ id: 9, next: 1 }))).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_UNKNOWN_TYPE" },
    });
    expect(decodeBulkFrame(new Uint8Array(0)).ok).toBe(false);
    const oversized = new Uint8Array(CHUNK_HEADER_BYTES + SEALED_CHUNK_BYTES + 1);
    oversized.set(chunk.subarray(0, CHUNK_HEADER_BYTES));
    expect(decodeBulkFrame(oversized)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_FRAME_TOO_LARGE" },
    });
    fc.assert(
      fc.property(fc.nat(pool.length - 1), mutationArb, (which, m) => {
        const r = expectTyped(() => decodeBulkFrame(mutate(pool[which] as Uint8Array, m, pool)), FRAME_CODES);
        if (r.ok) expect(r.value.header.index).toBeLessThan(r.value.header.total);
      }),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expectTyped(() => decodeBulkFrame(bytes), FRAME_CODES);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("random bytes and oversized chunks give typed errors", async () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0x10, max: 0x17 }), (body, type) => {
        expectTyped(() => decodeFileFrame(Uint8Array.from([type, ...body])), FRAME_CODES);
        expectTyped(() => decodeFileFrame(body), FRAME_CODES);
      }),
      { numRuns: FUZZ_RUNS },
    );
    const full = await chunkFrame(3 * FILE_CHUNK_BYTES, 0);
    const over = new Uint8Array(full.length + 1);
    over.set(full);
    expect(decodeFileFrame(over)).toMatchObject({ ok: false, error: { code: "LOFT_ERR_FRAME_TOO_LARGE" } });
    expect(decodeFileFrame(new Uint8Array(0))).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_UNKNOWN_TYPE" },
    });
  });

  it("any bit changed in a sealed chunk fails its AEAD, or its header check", async () => {
    const frame = await chunkFrame(FILE_CHUNK_BYTES + 40, 1);
    await fc.assert(
      fc.asyncProperty(fc.nat(frame.length * 8 - 1), async (bit) => {
        const bad = frame.slice();
        bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
        const f = decodeFileFrame(bad);
        if (!f.ok) expect(FRAME_CODES).toContain(f.error.code);
        else if (f.value.type !== "chunk") throw new Error("type changed to something decodable");
        else
          expect(await openChunk(nobleCrypto, KEY, f.value.chunk)).toMatchObject({
            ok: false,
            error: { code: "LOFT_ERR_DECRYPT" },
          });
      }),
      { numRuns: Math.min(FUZZ_RUNS, frame.length * 8) },
    );
  });

  it("a chunk moved to another index or transfer, or under another key, does not open", async () => {
    const c = decodedChunk(await chunkFrame(5 * FILE_CHUNK_BYTES, 2));
    const moved = { ...c, header: { ...c.header, index: 3 } };
    const other = { ...c, header: { ...c.header, id: 10 } };
    const fewer = { ...c, header: { ...c.header, total: 4 } };
    for (const x of [moved, other, fewer])
      expect(await openChunk(nobleCrypto, KEY, x)).toMatchObject({
        ok: false,
        error: { code: "LOFT_ERR_DECRYPT" },
      });
    expect(await openChunk(nobleCrypto, new Uint8Array(32), c)).toMatchObject({ ok: false });
    expect((await openChunk(nobleCrypto, KEY, c)).ok).toBe(true);
  });
});

describe("chunks of another size (FILE_CHUNK_WIDE, files.md §2)", () => {
  it("a full 255 KiB chunk is one lane message; the header says its size in a u32; it opens", async () => {
    const size = 3 * LANE_CHUNK_BYTES + 5;
    const full = await wideFrame(size, 1);
    expect(full[0]).toBe(FILE_FRAME.CHUNK_WIDE);
    expect(full.length).toBe(WIDE_CHUNK_HEADER_BYTES + LANE_CHUNK_BYTES + 16);
    expect(full.length).toBeLessThanOrEqual(LANE_MESSAGE_BYTES);
    expect(new DataView(full.buffer).getUint32(9)).toBe(LANE_CHUNK_BYTES + 16);
    const chunk = decodedChunk(full);
    expect(chunk.header).toEqual({ id: 9, index: 1, total: 4, chunkSize: LANE_CHUNK_BYTES + 16 });
    expect(decodeBulkFrame(full)).toMatchObject({ ok: true });
    const opened = await openChunk(nobleCrypto, KEY, chunk);
    expect(opened.ok && opened.value.length).toBe(LANE_CHUNK_BYTES);
    const last = decodedChunk(await wideFrame(size, 3));
    expect(last.sealed.length).toBe(5 + 16);
    // The largest chunk an offer may name still fits one lane message.
    expect(WIDE_CHUNK_HEADER_BYTES + MAX_CHUNK_BYTES + 16).toBe(LANE_MESSAGE_BYTES);
    expect(decodedChunk(await wideFrame(MAX_CHUNK_BYTES, 0, MAX_CHUNK_BYTES)).header.chunkSize).toBe(
      MAX_CHUNK_BYTES + 16,
    );
  });

  it("one encoding per chunk; sizes out of range, oversized and short frames give typed errors", async () => {
    const full = await wideFrame(2 * LANE_CHUNK_BYTES, 0);
    const withSize = (n: number, frame = full) => {
      const out = frame.slice();
      new DataView(out.buffer).setUint32(9, n);
      return out;
    };
    const code = (bytes: Uint8Array) => {
      const r = decodeFileFrame(bytes);
      return r.ok ? "ok" : r.error.code;
    };
    // The default size only as FILE_CHUNK (0x10): a wide frame saying it is refused.
    expect(code(withSize(SEALED_CHUNK_BYTES, (await wideFrame(10, 0, 10)).slice()))).toBe(
      "LOFT_ERR_MALFORMED",
    );
    expect(code(withSize(16))).toBe("LOFT_ERR_CHUNK_LIMIT");
    expect(code(withSize(0))).toBe("LOFT_ERR_CHUNK_LIMIT");
    expect(code(withSize(MAX_CHUNK_BYTES + 17))).toBe("LOFT_ERR_CHUNK_LIMIT");
    expect(code(withSize(0xffffffff))).toBe("LOFT_ERR_CHUNK_LIMIT");
    // Not the last chunk, so it must carry exactly chunk_size; nor may any carry more.
    expect(code(withSize(LANE_CHUNK_BYTES + 15))).toBe("LOFT_ERR_MALFORMED");
    expect(code(withSize(LANE_CHUNK_BYTES + 17))).toBe("LOFT_ERR_MALFORMED");
    expect(code(full.subarray(0, full.length - 1))).toBe("LOFT_ERR_MALFORMED");
    expect(code(full.subarray(0, WIDE_CHUNK_HEADER_BYTES + 15))).toBe("LOFT_ERR_MALFORMED");
    const oversized = new Uint8Array(LANE_MESSAGE_BYTES + 1);
    oversized.set(full.subarray(0, WIDE_CHUNK_HEADER_BYTES));
    expect(code(oversized)).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    expect(decodeBulkFrame(oversized)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_FRAME_TOO_LARGE" },
    });
    // A default-size chunk re-labelled wide (and the reverse) does not decode as the other.
    const narrow = await chunkFrame(FILE_CHUNK_BYTES * 2, 0);
    const relabelled = narrow.slice();
    relabelled[0] = FILE_FRAME.CHUNK_WIDE;
    expect(decodeFileFrame(relabelled).ok).toBe(false);
    const back = full.slice();
    back[0] = FILE_FRAME.CHUNK;
    expect(decodeFileFrame(back).ok).toBe(false);
  });

  it("mutated, truncated, extended and random wide frames give typed errors, never a throw", async () => {
    // Chunks of 1 000 bytes: the same decoder paths as 255 KiB ones, at a size a mutation run
    // can copy FUZZ_RUNS times (frames of 255 KiB took minutes on a loaded machine).
    const pool = [
      await wideFrame(10, 0, 1000),
      await wideFrame(2003, 2, 1000),
      await wideFrame(2003, 0, 1000),
    ];
    fc.assert(
      fc.property(fc.nat(pool.length - 1), mutationArb, (which, m) => {
        const bytes = mutate(pool[which] as Uint8Array, m, pool);
        expectTyped(() => decodeFileFrame(bytes), FRAME_CODES);
        const r = expectTyped(() => decodeBulkFrame(bytes), FRAME_CODES);
        if (r.ok) {
          expect(r.value.header.index).toBeLessThan(r.value.header.total);
          expect(r.value.sealed.length).toBeLessThanOrEqual(r.value.header.chunkSize);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 13, maxLength: 300 }), (bytes) => {
        const framed = Uint8Array.of(FILE_FRAME.CHUNK_WIDE, ...bytes);
        expectTyped(() => decodeFileFrame(framed), FRAME_CODES);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a wide chunk moved to another chunk size does not open; the receiver's rule wants the offer's size", async () => {
    const size = 2 * LANE_CHUNK_BYTES;
    const chunk = decodedChunk(await wideFrame(size, 0));
    const moved = { ...chunk, header: { ...chunk.header, chunkSize: chunk.header.chunkSize - 1 } };
    expect(await openChunk(nobleCrypto, KEY, moved)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_DECRYPT" },
    });
    const expect0 = { id: 9, size, cs: LANE_CHUNK_BYTES, next: 0 };
    expect(checkChunk(expect0, chunk).ok).toBe(true);
    // The same chunk for a transfer offered in another size (or none: the default) is malformed.
    expect(checkChunk({ ...expect0, cs: LANE_CHUNK_BYTES - 1 }, chunk)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_MALFORMED" },
    });
    expect(checkChunk({ id: 9, size, next: 0 }, chunk)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_MALFORMED" },
    });
    // And a default-size chunk for a transfer offered in 255 KiB chunks.
    const narrow = decodedChunk(await chunkFrame(size, 0));
    expect(checkChunk(expect0, narrow)).toMatchObject({ ok: false, error: { code: "LOFT_ERR_MALFORMED" } });
  });

  it("the file hash follows the offer's chunking; which chunkings fit the wire", async () => {
    const file = new Uint8Array(LANE_CHUNK_BYTES + 7).map((_, i) => i * 31);
    const byDefault = await fileHash(nobleCrypto, file);
    const byLane = await fileHash(nobleCrypto, file, LANE_CHUNK_BYTES);
    expect(byLane).not.toEqual(byDefault);
    expect(await fileHash(nobleCrypto, file, FILE_CHUNK_BYTES)).toEqual(byDefault);
    expect(validChunking(MAX_FILE_BYTES, FILE_CHUNK_BYTES)).toBe(true);
    expect(validChunking(MAX_FILE_BYTES, LANE_CHUNK_BYTES)).toBe(true);
    expect(validChunking(10, MAX_CHUNK_BYTES)).toBe(true);
    expect(validChunking(10, MAX_CHUNK_BYTES + 1)).toBe(false);
    expect(validChunking(10, 0)).toBe(false);
    expect(validChunking(10, 1.5)).toBe(false);
    // More than 65 535 chunks cannot be counted by a u16.
    expect(validChunking(65_535 * 1000, 1000)).toBe(true);
    expect(validChunking(65_535 * 1000 + 1, 1000)).toBe(false);
  });
});

describe("the receiver's rule for the next chunk", () => {
  const size = 3 * FILE_CHUNK_BYTES + 5;

  it("takes the next chunk; refuses replayed, out-of-order, foreign and wrongly sized ones", async () => {
    const c1 = decodedChunk(await chunkFrame(size, 1));
    expect(checkChunk({ id: 9, size, next: 1 }, c1).ok).toBe(true);
    expect(checkChunk({ id: 9, size, next: 2 }, c1)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_REPLAY" },
    });
    expect(checkChunk({ id: 9, size, next: 0 }, c1)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_MALFORMED" },
    });
    expect(checkChunk({ id: 8, size, next: 1 }, c1).ok).toBe(false);
    // The offer said another size: the header's total or the last chunk's length disagrees.
    expect(checkChunk({ id: 9, size: size + FILE_CHUNK_BYTES, next: 1 }, c1).ok).toBe(false);
    const last = decodedChunk(await chunkFrame(size, 3));
    expect(checkChunk({ id: 9, size, next: 3 }, last).ok).toBe(true);
    expect(checkChunk({ id: 9, size: size + 1, next: 3 }, last).ok).toBe(false);
  });

  it("any sequence of chunk indices is taken exactly in order, once each", () => {
    const sealed = new Uint8Array(SEALED_CHUNK_BYTES);
    fc.assert(
      fc.property(fc.array(fc.nat(7), { maxLength: 40 }), (indices) => {
        const total = 8;
        const sz = total * FILE_CHUNK_BYTES;
        let next = 0;
        for (const index of indices) {
          const chunk: FileChunkFrame = {
            header: { id: 1, index, total, chunkSize: SEALED_CHUNK_BYTES },
            sealed,
          };
          const r = checkChunk({ id: 1, size: sz, next }, chunk);
          expect(r.ok).toBe(index === next);
          if (r.ok) next++;
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("file.* application messages", () => {
  const offer = {
    t: "file.offer",
    id: 1,
    name: "a.txt",
    size: 3,
    type: "text/plain",
    hash: new Uint8Array(32),
    key: new Uint8Array(32),
  };
  const decode = (m: Record<string, unknown>) => decodeAppMessage(padToBucket(encodeCanonical(m)));

  it("refuses out-of-range fields", () => {
    expect(decode(offer).ok).toBe(true);
    expect(decode({ ...offer, id: 0 }).ok).toBe(false);
    expect(decode({ ...offer, id: 2 ** 32 }).ok).toBe(false);
    expect(decode({ ...offer, size: MAX_FILE_BYTES + 1 }).ok).toBe(false);
    expect(decode({ ...offer, name: "" }).ok).toBe(false);
    expect(decode({ ...offer, name: "x".repeat(MAX_FILE_NAME_CHARS + 1) }).ok).toBe(false);
    expect(decode({ ...offer, key: new Uint8Array(31) }).ok).toBe(false);
    expect(decode({ ...offer, thumb: new Uint8Array(MAX_THUMB_BYTES) }).ok).toBe(true);
    expect(decode({ ...offer, thumb: new Uint8Array(MAX_THUMB_BYTES + 1) }).ok).toBe(false);
    expect(decode({ ...offer, thumb: new Uint8Array(0) }).ok).toBe(false);
    // The chunk size (§2): any u32 ≥ 1 decodes — the receiver declines one it does not take, in words.
    expect(decode({ ...offer, cs: LANE_CHUNK_BYTES }).ok).toBe(true);
    expect(decode({ ...offer, cs: 0xffffffff }).ok).toBe(true);
    expect(decode({ ...offer, cs: 0 }).ok).toBe(false);
    expect(decode({ ...offer, cs: 2 ** 32 }).ok).toBe(false);
    expect(decode({ ...offer, cs: -1 }).ok).toBe(false);
    expect(decode({ ...offer, cs: "big" }).ok).toBe(false);
    expect(decode({ t: "file.decline", id: 1, r: "chunks" }).ok).toBe(true);
    expect(decode({ t: "file.accept", id: 1, from: 0x10000 }).ok).toBe(false);
    expect(decode({ t: "file.decline", id: 1, r: "whatever" }).ok).toBe(false);
    expect(decode({ t: "file.cancel", id: 1 }).ok).toBe(false);
    for (const r of FILE_FAIL_REASONS) expect(decode({ t: "file.fail", id: 1, r }).ok).toBe(true);
    expect(decode({ t: "file.fail", id: 1, r: "cancelled" }).ok).toBe(false);
    expect(decode({ t: "file.fail", id: 0, r: "window" }).ok).toBe(false);
    expect(decode({ t: "file.fail", id: 1 }).ok).toBe(false);
    expect(decode({ t: "file.fail", id: 1, r: "window", own: false }).ok).toBe(false);
    // The sender's own (its copy could not give a chunk): `own: true` with `r: "copy"` only.
    expect(decode({ t: "file.fail", id: 1, own: true, r: "copy" }).ok).toBe(true);
    expect(decode({ t: "file.fail", id: 1, r: "copy" }).ok).toBe(false);
    expect(decode({ t: "file.fail", id: 1, own: false, r: "copy" }).ok).toBe(false);
    expect(decode({ t: "file.fail", id: 1, own: true, r: "damaged" }).ok).toBe(false);
    expect(decode({ t: "file.fail", id: 0, own: true, r: "copy" }).ok).toBe(false);
  });

  it("fields swapped, dropped or added give typed errors", () => {
    const examples = [
      offer,
      { ...offer, cs: LANE_CHUNK_BYTES },
      { t: "file.accept", id: 1, from: 2 },
      { t: "file.decline", id: 1, r: "busy" },
      { t: "file.cancel", id: 1, own: false },
      { t: "file.done", id: 1, ok: true },
      { t: "file.fail", id: 1, r: "damaged" },
      { t: "file.fail", id: 1, own: true, r: "copy" },
    ];
    fc.assert(
      fc.property(fieldSwapArb(examples), (bytes) => {
        expectTyped(() => decodeAppMessage(padToBucket(bytes)), ["LOFT_ERR_MALFORMED", "LOFT_ERR_SCHEMA"]);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
