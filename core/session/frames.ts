/**
 * Transport frames of a Loft session (docs/protocol/session.md, "Transport frames"). After the
 * handshake every Link message is one Noise transport message (Noise rev 34 §5.1 EncryptWithAd
 * with empty associated data, at most 65535 bytes, §3) whose plaintext is
 *
 *   0x00 ‖ message            DATA: one whole application message (≤ 65518 bytes)
 *   0x01 ‖ CHUNKED_MESSAGE    CHUNK: one piece of a larger message (SREMP §chunking)
 *   0x02 ‖ reason (UTF-8)     CLOSE: the sender is closing, and why (≤ 256 bytes)
 *
 * CHUNKED_MESSAGE := { header: CHUNK_HEADER, payload: bin }, CHUNK_HEADER := { message_id,
 * chunk_index, total_chunks, chunk_size } (SREMP §chunking), canonical MessagePack.
 *
 * TEMPORARY: the chunk encoding below is a minimal internal stand-in for core/wire/chunk.ts
 * (being written by another engineer). When that lands, `encodeChunk` / `decodeChunk` are
 * replaced by its codec; the frame type bytes and the reassembly rules stay.
 *
 * Reassembly relies on the Link's ordering (every Link is reliable and ordered, and Noise
 * transport nonces already enforce order): the chunks of one message arrive contiguously with
 * consecutive indices, message ids increase by one per chunked message, and the total is bounded
 * by `maxMessageBytes` before anything is buffered. Any deviation is a typed error and the
 * session closes.
 */
import * as v from "valibot";
import { fromUtf8, utf8 } from "../bytes.ts";
import { err, ok, type Result } from "../errors.ts";
import { MAX_MESSAGE_LEN, TAGLEN } from "../noise/primitives.ts";
import { bytesSchema, decodeWith, encodeCanonical, uintSchema } from "../wire/codec.ts";

export const FRAME_DATA = 0x00;
export const FRAME_CHUNK = 0x01;
export const FRAME_CLOSE = 0x02;

/** Largest plaintext of one Noise transport message: 65535 − 16-byte tag. */
export const MAX_FRAME_PLAINTEXT = MAX_MESSAGE_LEN - TAGLEN;
/** Largest message sent as one DATA frame (one type byte). */
export const MAX_DATA_PAYLOAD = MAX_FRAME_PLAINTEXT - 1;
/**
 * Payload bytes per chunk: 65280 = 255 × 256, leaving 238 bytes in the frame for the type byte
 * and the MessagePack CHUNK_HEADER (≤ 60 bytes encoded) with ample margin.
 */
export const CHUNK_PAYLOAD = 65_280;
export const MAX_CLOSE_REASON = 256;
/** SREMP CHUNK_HEADER uses u16 for the chunk count. */
export const MAX_CHUNKS = 0xffff;

// --- TEMPORARY chunk codec (replace with core/wire/chunk.ts) ------------------------------------

const chunkSchema = v.strictObject({
  header: v.strictObject({
    message_id: uintSchema(),
    chunk_index: uintSchema(0xffff),
    total_chunks: uintSchema(0xffff),
    chunk_size: uintSchema(0xffff),
  }),
  payload: bytesSchema(0, CHUNK_PAYLOAD),
});

export interface Chunk {
  messageId: number;
  index: number;
  total: number;
  payload: Uint8Array;
}

function encodeChunk(c: Chunk): Uint8Array {
  return encodeCanonical({
    header: {
      message_id: c.messageId,
      chunk_index: c.index,
      total_chunks: c.total,
      chunk_size: c.payload.length,
    },
    payload: c.payload,
  });
}

function decodeChunk(bytes: Uint8Array): Result<Chunk> {
  const d = decodeWith(bytes, chunkSchema, {
    maxBytes: MAX_FRAME_PLAINTEXT,
    maxStrLength: 16,
    maxArrayLength: 0,
    maxMapLength: 4,
  });
  if (!d.ok) return d;
  const { header, payload } = d.value;
  if (header.chunk_size !== payload.length)
    return err("LOFT_ERR_MALFORMED", "chunk_size differs from the payload");
  if (header.total_chunks < 2 || header.chunk_index >= header.total_chunks)
    return err("LOFT_ERR_MALFORMED", "chunk index/total out of range");
  return ok({ messageId: header.message_id, index: header.chunk_index, total: header.total_chunks, payload });
}

// --- frames ------------------------------------------------------------------------------------

/**
 * The frame plaintexts for one application message: a single DATA frame, or CHUNK frames.
 * Each returned buffer has 16 spare bytes at its end so it can be encrypted in place.
 */
export function messageFrames(message: Uint8Array, messageId: number): Uint8Array[] {
  if (message.length <= MAX_DATA_PAYLOAD) {
    const frame = new Uint8Array(1 + message.length + TAGLEN);
    frame[0] = FRAME_DATA;
    frame.set(message, 1);
    return [frame];
  }
  const total = Math.ceil(message.length / CHUNK_PAYLOAD);
  if (total > MAX_CHUNKS) throw new RangeError("message needs more than 65535 chunks");
  const frames: Uint8Array[] = [];
  for (let index = 0; index < total; index++) {
    const payload = message.subarray(index * CHUNK_PAYLOAD, (index + 1) * CHUNK_PAYLOAD);
    const body = encodeChunk({ messageId, index, total, payload });
    const frame = new Uint8Array(1 + body.length + TAGLEN);
    frame[0] = FRAME_CHUNK;
    frame.set(body, 1);
    frames.push(frame);
  }
  return frames;
}

/** A CLOSE frame plaintext (reason truncated to 256 bytes of UTF-8), with 16 spare bytes. */
export function closeFrame(reason: string): Uint8Array {
  const text = utf8(reason).subarray(0, MAX_CLOSE_REASON);
  const frame = new Uint8Array(1 + text.length + TAGLEN);
  frame[0] = FRAME_CLOSE;
  frame.set(text, 1);
  return frame;
}

export type Inbound =
  | { kind: "message"; message: Uint8Array }
  | { kind: "partial" }
  | { kind: "close"; reason: string };

/** Reassembles frame plaintexts into messages (see the file comment for the rules). */
export class FrameAssembler {
  readonly #maxMessageBytes: number;
  #nextMessageId = 0;
  #parts: Uint8Array[] = [];
  #expectedIndex = 0;
  #total = 0;
  #size = 0;

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Feed one decrypted frame plaintext. */
  push(plaintext: Uint8Array): Result<Inbound> {
    if (plaintext.length === 0) return err("LOFT_ERR_MALFORMED", "empty transport frame");
    const type = plaintext[0];
    const body = plaintext.subarray(1);
    if (type === FRAME_CLOSE) {
      if (body.length > MAX_CLOSE_REASON) return err("LOFT_ERR_MALFORMED", "close reason too long");
      let reason: string;
      try {
        reason = fromUtf8(body);
      } catch {
        return err("LOFT_ERR_MALFORMED", "close reason is not UTF-8");
      }
      return ok({ kind: "close", reason });
    }
    if (this.#total > 0 && type !== FRAME_CHUNK)
      return err("LOFT_ERR_MALFORMED", "frame interleaved with a chunked message");
    if (type === FRAME_DATA) {
      if (body.length > this.#maxMessageBytes)
        return err("LOFT_ERR_FRAME_TOO_LARGE", `message of ${body.length} bytes exceeds the limit`);
      return ok({ kind: "message", message: body });
    }
    if (type !== FRAME_CHUNK) return err("LOFT_ERR_UNKNOWN_TYPE", `transport frame type ${type}`);
    const chunk = decodeChunk(body);
    if (!chunk.ok) return chunk;
    return this.#chunk(chunk.value);
  }

  #chunk(c: Chunk): Result<Inbound> {
    if (this.#total === 0) {
      if (c.messageId !== this.#nextMessageId)
        return err("LOFT_ERR_MALFORMED", `unexpected message_id ${c.messageId}`);
      if (c.index !== 0) return err("LOFT_ERR_MALFORMED", "chunked message does not start at chunk 0");
      // Bound memory before buffering anything: every chunk but the last is full.
      if ((c.total - 1) * CHUNK_PAYLOAD + 1 > this.#maxMessageBytes)
        return err("LOFT_ERR_CHUNK_LIMIT", `${c.total} chunks exceed the message size limit`);
      this.#total = c.total;
      this.#expectedIndex = 0;
      this.#size = 0;
    }
    if (c.messageId !== this.#nextMessageId || c.total !== this.#total || c.index !== this.#expectedIndex)
      return err("LOFT_ERR_MALFORMED", "chunk out of sequence");
    const last = c.index === c.total - 1;
    if (!last && c.payload.length !== CHUNK_PAYLOAD)
      return err("LOFT_ERR_MALFORMED", "short chunk before the last");
    if (last && c.payload.length === 0) return err("LOFT_ERR_MALFORMED", "empty last chunk");
    this.#size += c.payload.length;
    if (this.#size > this.#maxMessageBytes)
      return err("LOFT_ERR_CHUNK_LIMIT", "message exceeds the size limit");
    this.#parts.push(c.payload);
    this.#expectedIndex++;
    if (!last) return ok({ kind: "partial" });
    const message = new Uint8Array(this.#size);
    let offset = 0;
    for (const p of this.#parts) {
      message.set(p, offset);
      offset += p.length;
    }
    this.#parts = [];
    this.#total = 0;
    this.#nextMessageId++;
    return ok({ kind: "message", message });
  }
}
