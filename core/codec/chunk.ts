/**
 * Chunking of messages larger than one frame (SREMP 0.1-draft §chunking: "The Noise Protocol
 * Framework limits individual transport messages to 65535 bytes … SREMP applications must fragment
 * larger messages"; `CHUNK_HEADER`, `CHUNKED_MESSAGE`). Exact rules: docs/protocol/wire.md,
 * "Chunking".
 *
 * A chunk is a tagged frame `{t: "CHUNKED_MESSAGE", header: {message_id, chunk_index,
 * total_chunks, chunk_size}, payload: bin}`. The draft leaves `chunk_size` undefined; Loft's
 * definition: the nominal chunk size, the same in every chunk of a message — every chunk but the
 * last carries exactly `chunk_size` bytes, the last 1..chunk_size (0..chunk_size when the message
 * is a single chunk). So the message length is fixed by the headers and the payloads, and a chunk
 * that disagrees with its siblings is detectable.
 *
 * `ChunkReassembler` is a pure state machine (the caller passes `now`) with explicit limits
 * checked before buffering, in the style of `ws`'s receiver: message bytes, chunks per message,
 * concurrent partial messages, and a deadline per message counted from its first chunk (so a
 * slow drip cannot keep a slot alive). Out-of-order chunks are fine; an exact duplicate is
 * ignored; a chunk whose header or payload contradicts what was received for the same message
 * drops that message (LOFT_ERR_MALFORMED).
 */
import * as v from "valibot";
import { equalBytes } from "../bytes.ts";
import { err, ok, type Result } from "../errors.ts";
import { uintSchema } from "./codec.ts";
import { binSchema, createWireCodec, defineMessage, MAX_FRAME_BYTES, messageSchema } from "./envelope.ts";

export const MAX_CHUNKS = 0xffff;
export const MAX_CHUNK_PAYLOAD_BYTES = 0xffff;

/** SREMP §chunking `CHUNK_HEADER`. */
export const chunkHeaderSchema = v.strictObject({
  message_id: uintSchema(),
  chunk_index: uintSchema(0xffff),
  total_chunks: v.pipe(uintSchema(MAX_CHUNKS), v.minValue(1)),
  chunk_size: v.pipe(uintSchema(MAX_CHUNK_PAYLOAD_BYTES), v.minValue(1)),
});
export type ChunkHeader = v.InferOutput<typeof chunkHeaderSchema>;

/** SREMP §chunking `CHUNKED_MESSAGE` as a tagged frame. */
export const chunkedMessageSchema = messageSchema("CHUNKED_MESSAGE", {
  header: chunkHeaderSchema,
  payload: binSchema(0, MAX_CHUNK_PAYLOAD_BYTES),
});
export type ChunkedMessage = v.InferOutput<typeof chunkedMessageSchema>;

export const CHUNK_MESSAGES = [defineMessage(chunkedMessageSchema)] as const;
/** Codec for chunk frames alone; a link's own codec can `extend(CHUNK_MESSAGES)`. */
export const chunkCodec = createWireCodec(CHUNK_MESSAGES);

/** Largest encoding of a chunk with an empty payload (all header integers at their widest) + bin16 growth. */
function chunkOverhead(messageId: number): number {
  const empty = chunkCodec.encode({
    t: "CHUNKED_MESSAGE",
    header: { message_id: messageId, chunk_index: 0xffff, total_chunks: 0xffff, chunk_size: 0xffff },
    payload: new Uint8Array(0),
  });
  // An empty payload is `c4 00` (bin 8); a payload of up to 65535 bytes needs `c5 xx xx` (bin 16).
  return empty.length + 1;
}

/**
 * How many frames `chunkMessage(messageId, payload, maxFrameBytes)` gives for a payload of
 * `length` bytes, without building them (a sender counting what it dropped: core/session).
 */
export function chunkFrameCount(messageId: number, length: number, maxFrameBytes = MAX_FRAME_BYTES): number {
  return chunkCountFor(length, Math.max(1, chunkRoom(messageId, maxFrameBytes)));
}

/** The payload bytes one chunk frame carries under `maxFrameBytes` (may be < 1: no room at all). */
function chunkRoom(messageId: number, maxFrameBytes: number): number {
  return Math.min(MAX_CHUNK_PAYLOAD_BYTES, maxFrameBytes - chunkOverhead(messageId));
}

/** How many chunks of `room` bytes carry `length` bytes: an empty message is still one chunk. */
function chunkCountFor(length: number, room: number): number {
  return Math.max(1, Math.ceil(length / room));
}

/**
 * Split `payload` into encoded CHUNKED_MESSAGE frames of at most `maxFrameBytes` each (SREMP
 * §chunking). Throws RangeError when the message cannot be chunked under these limits (more than
 * 65535 chunks, or a frame too small for any payload) — sizes are the caller's to respect.
 */
export function chunkMessage(
  messageId: number,
  payload: Uint8Array,
  maxFrameBytes = MAX_FRAME_BYTES,
): Uint8Array[] {
  if (!Number.isSafeInteger(messageId) || messageId < 0) throw new RangeError("messageId: safe uint");
  if (!(payload instanceof Uint8Array)) throw new TypeError("payload: expected Uint8Array");
  if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 1) throw new RangeError("maxFrameBytes");
  const room = chunkRoom(messageId, maxFrameBytes);
  if (room < 1) throw new RangeError(`maxFrameBytes ${maxFrameBytes} leaves no room for a chunk payload`);
  const total = chunkCountFor(payload.length, room);
  if (total > MAX_CHUNKS)
    throw new RangeError(`message of ${payload.length} bytes needs more than ${MAX_CHUNKS} chunks`);
  const chunkSize = total === 1 ? Math.max(1, payload.length) : room;
  const frames: Uint8Array[] = [];
  for (let index = 0; index < total; index++) {
    const frame = chunkCodec.encode({
      t: "CHUNKED_MESSAGE",
      header: { message_id: messageId, chunk_index: index, total_chunks: total, chunk_size: chunkSize },
      payload: payload.subarray(index * chunkSize, Math.min(payload.length, (index + 1) * chunkSize)),
    });
    if (frame.length > maxFrameBytes) throw new Error("chunk overhead bound violated"); // unreachable by construction
    frames.push(frame);
  }
  return frames;
}

export interface ChunkLimits {
  /** Largest reassembled message. */
  maxMessageBytes: number;
  /** Most chunks in one message (≤ 65535). */
  maxChunks: number;
  /** Most messages being reassembled at once. */
  maxPartialMessages: number;
  /** A message must complete within this many ms of its first chunk. */
  timeoutMs: number;
  /** How many completed / expired message ids to remember for duplicate and late-chunk detection (default 1024). */
  rememberIds?: number;
}

export type ChunkProgress =
  | { status: "partial"; messageId: number; received: number; total: number }
  | { status: "complete"; messageId: number; payload: Uint8Array }
  /** A chunk already received (same bytes), or one of a message already completed. */
  | { status: "duplicate"; messageId: number };

interface Partial {
  total: number;
  chunkSize: number;
  deadline: number;
  parts: (Uint8Array | undefined)[];
  count: number;
  bytes: number;
}

/** Bounded insertion-ordered set: the oldest ids are forgotten first. */
class RecentIds {
  readonly #ids = new Set<number>();
  constructor(readonly capacity: number) {}
  add(id: number): void {
    this.#ids.delete(id);
    this.#ids.add(id);
    if (this.#ids.size > this.capacity) this.#ids.delete(this.#ids.values().next().value as number);
  }
  has(id: number): boolean {
    return this.#ids.has(id);
  }
}

/** SREMP §chunking reassembly ("appropriate buffering and timeout mechanisms"). Pure: pass `now`. */
export class ChunkReassembler {
  readonly limits: Readonly<Required<ChunkLimits>>;
  readonly #partials = new Map<number, Partial>();
  readonly #completed: RecentIds;
  readonly #expired: RecentIds;

  constructor(limits: ChunkLimits) {
    const full = { rememberIds: 1024, ...limits };
    for (const [name, value] of Object.entries(full))
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name}: positive integer`);
    if (full.maxChunks > MAX_CHUNKS) throw new RangeError(`maxChunks ≤ ${MAX_CHUNKS}`);
    this.limits = Object.freeze(full);
    this.#completed = new RecentIds(full.rememberIds);
    this.#expired = new RecentIds(full.rememberIds);
  }

  /** Messages currently being reassembled. */
  get partialCount(): number {
    return this.#partials.size;
  }

  /** Bytes currently buffered across partial messages. */
  get bufferedBytes(): number {
    let n = 0;
    for (const p of this.#partials.values()) n += p.bytes;
    return n;
  }

  /** Drop every partial message whose deadline has passed; returns their ids. */
  expire(now: number): number[] {
    const dropped: number[] = [];
    for (const [id, p] of this.#partials) {
      if (now >= p.deadline) {
        this.#partials.delete(id);
        this.#expired.add(id);
        dropped.push(id);
      }
    }
    return dropped;
  }

  /** Decode one CHUNKED_MESSAGE frame and accept it. */
  acceptFrame(frame: Uint8Array, now: number): Result<ChunkProgress> {
    const decoded = chunkCodec.decode(frame);
    if (!decoded.ok) return { ok: false, error: decoded.error };
    return this.accept(decoded.value, now);
  }

  /** Accept one decoded chunk (SREMP §chunking). */
  accept(chunk: ChunkedMessage, now: number): Result<ChunkProgress> {
    this.expire(now);
    const { message_id: id, chunk_index: index, total_chunks: total, chunk_size: size } = chunk.header;
    const len = chunk.payload.length;
    const last = index === total - 1;
    if (index >= total) return err("LOFT_ERR_MALFORMED", `chunk ${index} of a ${total}-chunk message`);
    if (len > size) return err("LOFT_ERR_MALFORMED", `chunk payload ${len} exceeds chunk_size ${size}`);
    if (!last && len !== size)
      return err("LOFT_ERR_MALFORMED", `chunk ${index} is ${len} bytes, not ${size}`);
    if (last && total > 1 && len === 0) return err("LOFT_ERR_MALFORMED", "empty last chunk");
    if (total > this.limits.maxChunks)
      return err("LOFT_ERR_CHUNK_LIMIT", `${total} chunks exceeds ${this.limits.maxChunks}`);
    const smallest = (total - 1) * size + (total > 1 ? 1 : 0);
    if (smallest > this.limits.maxMessageBytes)
      return err(
        "LOFT_ERR_CHUNK_LIMIT",
        `message of at least ${smallest} bytes exceeds ${this.limits.maxMessageBytes}`,
      );

    if (this.#completed.has(id) && !this.#partials.has(id)) return ok({ status: "duplicate", messageId: id });
    if (this.#expired.has(id) && !this.#partials.has(id))
      return err("LOFT_ERR_CHUNK_TIMEOUT", `message ${id} timed out before this chunk arrived`);

    let p = this.#partials.get(id);
    if (p === undefined) {
      if (total === 1) {
        if (len > this.limits.maxMessageBytes)
          return err(
            "LOFT_ERR_CHUNK_LIMIT",
            `message of ${len} bytes exceeds ${this.limits.maxMessageBytes}`,
          );
        this.#completed.add(id);
        return ok({ status: "complete", messageId: id, payload: chunk.payload.slice() });
      }
      if (this.#partials.size >= this.limits.maxPartialMessages)
        return err("LOFT_ERR_CHUNK_LIMIT", `${this.#partials.size} messages already being reassembled`);
      p = { total, chunkSize: size, deadline: now + this.limits.timeoutMs, parts: [], count: 0, bytes: 0 };
      this.#partials.set(id, p);
    } else if (p.total !== total || p.chunkSize !== size) {
      this.#partials.delete(id);
      return err(
        "LOFT_ERR_MALFORMED",
        `chunk header of message ${id} disagrees with earlier chunks; message dropped`,
      );
    }

    const existing = p.parts[index];
    if (existing !== undefined) {
      if (equalBytes(existing, chunk.payload)) return ok({ status: "duplicate", messageId: id });
      this.#partials.delete(id);
      return err(
        "LOFT_ERR_MALFORMED",
        `chunk ${index} of message ${id} arrived twice with different bytes; dropped`,
      );
    }
    if (p.bytes + len > this.limits.maxMessageBytes) {
      this.#partials.delete(id);
      return err("LOFT_ERR_CHUNK_LIMIT", `message ${id} exceeds ${this.limits.maxMessageBytes} bytes`);
    }
    p.parts[index] = chunk.payload.slice();
    p.count++;
    p.bytes += len;
    if (p.count < p.total) return ok({ status: "partial", messageId: id, received: p.count, total: p.total });

    const payload = new Uint8Array(p.bytes);
    let offset = 0;
    for (const part of p.parts) {
      payload.set(part!, offset);
      offset += part!.length;
    }
    this.#partials.delete(id);
    this.#completed.add(id);
    return ok({ status: "complete", messageId: id, payload });
  }
}
