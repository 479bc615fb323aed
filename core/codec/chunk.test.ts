import { Encoder } from "@msgpack/msgpack";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { type ChunkedMessage, ChunkReassembler, chunkCodec, chunkFrameCount, chunkMessage } from "./chunk.ts";
import { MAX_FRAME_BYTES } from "./envelope.ts";

const T0 = 1_000_000;
const limits = { maxMessageBytes: 1 << 20, maxChunks: 1000, maxPartialMessages: 4, timeoutMs: 30_000 };
const bytes = (n: number, salt = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + salt) & 0xff);
const canChunk = (f: () => unknown) => {
  try {
    f();
    return true;
  } catch {
    return false;
  }
};
const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? "ok" : r.error!.code);
const decode = (frame: Uint8Array): ChunkedMessage => {
  const d = chunkCodec.decode(frame);
  if (!d.ok) throw d.error;
  return d.value;
};
const chunk = (
  id: number,
  index: number,
  total: number,
  size: number,
  payload: Uint8Array,
): ChunkedMessage => ({
  t: "CHUNKED_MESSAGE",
  header: { message_id: id, chunk_index: index, total_chunks: total, chunk_size: size },
  payload: payload as Uint8Array<ArrayBuffer>,
});

describe("chunkMessage (SREMP §chunking)", () => {
  it("every frame fits the frame limit; chunk_size is the same everywhere; the last chunk holds the rest", () => {
    const payload = bytes(200_000);
    const frames = chunkMessage(Number.MAX_SAFE_INTEGER, payload);
    expect(frames.length).toBe(4);
    const chunks = frames.map(decode);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    const size = chunks[0]!.header.chunk_size;
    expect(chunks.every((c) => c.header.chunk_size === size && c.header.total_chunks === 4)).toBe(true);
    expect(chunks.slice(0, 3).every((c) => c.payload.length === size)).toBe(true);
    expect(chunks[3]!.payload.length).toBe(200_000 - 3 * size);
    // the frame budget is used well: less than 64 bytes of overhead per full chunk
    expect(MAX_FRAME_BYTES - frames[0]!.length).toBeLessThan(64);
  });

  it("small and empty messages are one chunk whose chunk_size is their length (min 1)", () => {
    const one = chunkMessage(1, bytes(10)).map(decode);
    expect(one).toHaveLength(1);
    expect(one[0]!.header).toEqual({ message_id: 1, chunk_index: 0, total_chunks: 1, chunk_size: 10 });
    const empty = chunkMessage(2, new Uint8Array()).map(decode);
    expect(empty[0]!.header.chunk_size).toBe(1);
    expect(empty[0]!.payload.length).toBe(0);
  });

  it("respects a small frame limit exactly, and refuses impossible ones", () => {
    for (const limit of [100, 101, 150, 257, 1000]) {
      const frames = chunkMessage(7, bytes(5000), limit);
      for (const f of frames) expect(f.length).toBeLessThanOrEqual(limit);
    }
    expect(() => chunkMessage(7, bytes(10), 40)).toThrow(RangeError);
    let smallest = 40;
    while (smallest < 200 && !canChunk(() => chunkMessage(7, bytes(1), smallest))) smallest++;
    expect(smallest).toBeLessThan(100); // the header costs < 100 bytes
    expect(chunkMessage(7, bytes(65_535), smallest)).toHaveLength(65_535); // one byte per chunk
    expect(() => chunkMessage(7, bytes(65_536), smallest)).toThrow(RangeError); // > 65535 chunks
    expect(() => chunkMessage(-1, bytes(1))).toThrow(RangeError);
  });
});

describe("chunkFrameCount", () => {
  it("is how many frames chunkMessage gives, for any id, length and frame limit", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.nat(300), fc.constantFrom(0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 32, 2 ** 40)),
        fc.oneof(fc.nat(20_000), fc.constantFrom(65_518, 200_000, 261_149, 1_000_000)),
        fc.constantFrom(65_518, MAX_FRAME_BYTES, 200, 4096),
        (id, bytes, max) => {
          const length = max < 65_518 ? bytes % 20_000 : bytes; // a few hundred chunks at most
          let frames: number;
          try {
            frames = chunkMessage(id, new Uint8Array(length), max).length;
          } catch {
            return; // more than 65535 chunks: refused, nothing to count
          }
          expect(chunkFrameCount(id, length, max)).toBe(frames);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("ChunkReassembler", () => {
  it("reassembles in order and out of order; exact duplicates are ignored", () => {
    const payload = bytes(10_000, 3);
    const frames = chunkMessage(5, payload, 1000);
    const r = new ChunkReassembler(limits);
    const order = [...frames.keys()].reverse();
    let last: unknown;
    for (const i of order) {
      last = r.acceptFrame(frames[i]!, T0);
      expect(codeOf(r.acceptFrame(frames[i]!, T0))).toBe("ok"); // duplicate right away
    }
    expect(last).toEqual({ ok: true, value: { status: "complete", messageId: 5, payload } });
    expect(r.partialCount).toBe(0);
    // a chunk of a completed message is a harmless duplicate, not the start of a new message
    expect(r.acceptFrame(frames[0]!, T0)).toEqual({ ok: true, value: { status: "duplicate", messageId: 5 } });
    expect(r.partialCount).toBe(0);
  });

  it("interleaves several messages", () => {
    const a = chunkMessage(1, bytes(3000, 1), 500);
    const b = chunkMessage(2, bytes(2500, 2), 500);
    const r = new ChunkReassembler(limits);
    const done: number[] = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++)
      for (const f of [a[i], b[i]])
        if (f) {
          const res = r.acceptFrame(f, T0);
          if (res.ok && res.value.status === "complete") done.push(res.value.messageId);
        }
    expect(done.sort()).toEqual([1, 2]);
  });

  it("a chunk whose header disagrees with earlier chunks drops the message (LOFT_ERR_MALFORMED)", () => {
    const r = new ChunkReassembler(limits);
    expect(codeOf(r.accept(chunk(9, 0, 3, 4, bytes(4)), T0))).toBe("ok");
    expect(codeOf(r.accept(chunk(9, 1, 4, 4, bytes(4)), T0))).toBe("LOFT_ERR_MALFORMED");
    expect(r.partialCount).toBe(0);
    expect(codeOf(r.accept(chunk(10, 0, 3, 4, bytes(4)), T0))).toBe("ok");
    expect(codeOf(r.accept(chunk(10, 1, 3, 5, bytes(5)), T0))).toBe("LOFT_ERR_MALFORMED");
    // same index, different bytes
    expect(codeOf(r.accept(chunk(11, 0, 2, 4, bytes(4)), T0))).toBe("ok");
    expect(codeOf(r.accept(chunk(11, 0, 2, 4, bytes(4, 9)), T0))).toBe("LOFT_ERR_MALFORMED");
    expect(r.partialCount).toBe(0);
  });

  it("refuses self-inconsistent chunks (LOFT_ERR_MALFORMED)", () => {
    const r = new ChunkReassembler(limits);
    expect(codeOf(r.accept(chunk(1, 3, 3, 4, bytes(4)), T0))).toBe("LOFT_ERR_MALFORMED"); // index ≥ total
    expect(codeOf(r.accept(chunk(1, 0, 3, 4, bytes(3)), T0))).toBe("LOFT_ERR_MALFORMED"); // short middle chunk
    expect(codeOf(r.accept(chunk(1, 2, 3, 4, bytes(5)), T0))).toBe("LOFT_ERR_MALFORMED"); // over chunk_size
    expect(codeOf(r.accept(chunk(1, 2, 3, 4, bytes(0)), T0))).toBe("LOFT_ERR_MALFORMED"); // empty last chunk
  });

  it("enforces the limits before buffering (LOFT_ERR_CHUNK_LIMIT)", () => {
    const r = new ChunkReassembler({ ...limits, maxMessageBytes: 100, maxChunks: 10, maxPartialMessages: 2 });
    expect(codeOf(r.accept(chunk(1, 0, 11, 1, bytes(1)), T0))).toBe("LOFT_ERR_CHUNK_LIMIT"); // too many chunks
    expect(codeOf(r.accept(chunk(1, 0, 3, 60, bytes(60)), T0))).toBe("LOFT_ERR_CHUNK_LIMIT"); // ≥ 121 bytes
    expect(codeOf(r.accept(chunk(1, 0, 1, 101, bytes(101)), T0))).toBe("LOFT_ERR_CHUNK_LIMIT"); // single chunk
    expect(codeOf(r.accept(chunk(1, 0, 2, 2, bytes(2)), T0))).toBe("ok");
    expect(codeOf(r.accept(chunk(2, 0, 2, 2, bytes(2)), T0))).toBe("ok");
    expect(codeOf(r.accept(chunk(3, 0, 2, 2, bytes(2)), T0))).toBe("LOFT_ERR_CHUNK_LIMIT"); // 3rd partial
    expect(r.partialCount).toBe(2);
    expect(r.bufferedBytes).toBe(4);
  });

  it("times out a message counted from its first chunk; late chunks get LOFT_ERR_CHUNK_TIMEOUT", () => {
    const r = new ChunkReassembler({ ...limits, timeoutMs: 1000 });
    expect(codeOf(r.accept(chunk(1, 0, 3, 2, bytes(2)), T0))).toBe("ok");
    expect(codeOf(r.accept(chunk(1, 1, 3, 2, bytes(2)), T0 + 999))).toBe("ok"); // activity does not extend it
    expect(r.expire(T0 + 999)).toEqual([]);
    expect(codeOf(r.accept(chunk(1, 2, 3, 2, bytes(2)), T0 + 1000))).toBe("LOFT_ERR_CHUNK_TIMEOUT");
    expect(r.partialCount).toBe(0);
    // expiry frees the slot for other messages
    expect(codeOf(r.accept(chunk(2, 0, 2, 2, bytes(2)), T0 + 1000))).toBe("ok");
    expect(r.expire(T0 + 5000)).toEqual([2]);
  });

  it("acceptFrame maps undecodable frames to the codec's codes", () => {
    const r = new ChunkReassembler(limits);
    expect(codeOf(r.acceptFrame(new Uint8Array([0xc1]), T0))).toBe("LOFT_ERR_MALFORMED");
    expect(codeOf(r.acceptFrame(new Encoder().encode({ t: "OTHER" }), T0))).toBe("LOFT_ERR_UNKNOWN_TYPE");
    const zeroTotal = new Encoder({ sortKeys: true }).encode({
      t: "CHUNKED_MESSAGE",
      header: { message_id: 1, chunk_index: 0, total_chunks: 0, chunk_size: 1 },
      payload: new Uint8Array(),
    });
    expect(codeOf(r.acceptFrame(zeroTotal, T0))).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(r.acceptFrame(new Uint8Array(MAX_FRAME_BYTES + 1), T0))).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });

  it("refuses nonsensical limits at construction", () => {
    expect(() => new ChunkReassembler({ ...limits, timeoutMs: 0 })).toThrow(RangeError);
    expect(() => new ChunkReassembler({ ...limits, maxChunks: 70_000 })).toThrow(RangeError);
  });
});
