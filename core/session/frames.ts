/**
 * Transport frames of a Loft session (docs/protocol/session.md, "Transport frames"). After the
 * handshake every Link message is one Noise transport message (Noise rev 34 §5.1 EncryptWithAd
 * with empty associated data, at most 65535 bytes, §3) whose plaintext is
 *
 *   0x00 ‖ message            DATA: one whole application message (≤ 65518 bytes)
 *   0x01 ‖ CHUNKED_MESSAGE    CHUNK: one piece of a larger message (SREMP §chunking)
 *   0x02 ‖ reason (UTF-8)     CLOSE: the sender is closing, and why (≤ 256 bytes)
 *
 * CHUNKED_MESSAGE is SREMP §chunking's tagged frame from core/codec/chunk.ts: `{t:
 * "CHUNKED_MESSAGE", header: {message_id, chunk_index, total_chunks, chunk_size}, payload: bin}`,
 * canonical MessagePack, sized so that the frame fits one Noise transport message.
 *
 * Reassembly relies on the Link's ordering (every Link is reliable and ordered, and Noise
 * transport nonces already enforce order): the chunks of one message arrive contiguously with
 * consecutive indices, message ids count up from 0 by one per chunked message, and the size is
 * bounded by `maxMessageBytes` before anything is buffered (core/codec/chunk.ts
 * `ChunkReassembler`, one message at a time). Any deviation is a typed error and the session
 * closes.
 */
import { fromUtf8, utf8 } from "../bytes.ts";
import { ChunkReassembler, chunkCodec, chunkMessage, MAX_CHUNKS } from "../codec/chunk.ts";
import { err, ok, type Result } from "../errors.ts";
import { MAX_MESSAGE_LEN, TAGLEN } from "../noise/primitives.ts";

export const FRAME_DATA = 0x00;
export const FRAME_CHUNK = 0x01;
export const FRAME_CLOSE = 0x02;

/** Largest plaintext of one Noise transport message: 65535 − 16-byte tag. */
export const MAX_FRAME_PLAINTEXT = MAX_MESSAGE_LEN - TAGLEN;
/** Largest message sent as one DATA frame (one type byte). */
export const MAX_DATA_PAYLOAD = MAX_FRAME_PLAINTEXT - 1;
export const MAX_CLOSE_REASON = 256;

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
  // SREMP §chunking via core/codec/chunk.ts; each chunk frame leaves room for our type byte.
  return chunkMessage(messageId, message, MAX_DATA_PAYLOAD).map((chunk) => {
    const frame = new Uint8Array(1 + chunk.length + TAGLEN);
    frame[0] = FRAME_CHUNK;
    frame.set(chunk, 1);
    return frame;
  });
}

/**
 * The DATA frame plaintext of one message given as parts (their concatenation), with 16 spare
 * bytes; `length` is the parts' total, at most MAX_DATA_PAYLOAD. Each part is copied once, into
 * the frame: a layer that prefixes its own bytes (a type, a channel, a head) needs no copy of its own.
 */
export function dataFrameOf(parts: readonly Uint8Array[], length: number): Uint8Array {
  if (length > MAX_DATA_PAYLOAD) throw new RangeError("dataFrameOf: message over one DATA frame");
  const frame = new Uint8Array(1 + length + TAGLEN);
  frame[0] = FRAME_DATA;
  let at = 1;
  for (const part of parts) {
    frame.set(part, at);
    at += part.length;
  }
  if (at !== 1 + length) throw new RangeError("dataFrameOf: length is not the parts' total");
  return frame;
}

/** A CLOSE frame plaintext (reason cut to ≤ 256 bytes of whole UTF-8 characters), with 16 spare bytes. */
export function closeFrame(reason: string): Uint8Array {
  const bytes = utf8(reason);
  let end = Math.min(bytes.length, MAX_CLOSE_REASON);
  while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end--; // not inside a character
  const text = bytes.subarray(0, end);
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
  readonly #chunks: ChunkReassembler;
  #nextMessageId = 0;
  /** Chunks received of the message in progress (0: none in progress). */
  #received = 0;

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
    // Ordered link: one message at a time and no clock (the deadline is never reached).
    this.#chunks = new ChunkReassembler({
      maxMessageBytes,
      maxChunks: MAX_CHUNKS,
      maxPartialMessages: 1,
      timeoutMs: Number.MAX_SAFE_INTEGER,
    });
  }

  /** Feed one decrypted frame plaintext. */
  push(plaintext: Uint8Array): Result<Inbound> {
    if (plaintext.length === 0) return err("LOFT_ERR_MALFORMED", "empty transport frame");
    const type = plaintext[0];
    const body = plaintext.subarray(1);
    if (type === FRAME_CLOSE) {
      if (body.length > MAX_CLOSE_REASON) return err("LOFT_ERR_MALFORMED", "close reason too long");
      try {
        return ok({ kind: "close", reason: fromUtf8(body) });
      } catch {
        return err("LOFT_ERR_MALFORMED", "close reason is not UTF-8");
      }
    }
    if (this.#received > 0 && type !== FRAME_CHUNK)
      return err("LOFT_ERR_MALFORMED", "frame interleaved with a chunked message");
    if (type === FRAME_DATA) {
      if (body.length > this.#maxMessageBytes)
        return err("LOFT_ERR_FRAME_TOO_LARGE", `message of ${body.length} bytes exceeds the limit`);
      return ok({ kind: "message", message: body });
    }
    if (type !== FRAME_CHUNK) return err("LOFT_ERR_UNKNOWN_TYPE", `transport frame type ${type}`);
    const chunk = chunkCodec.decode(body);
    if (!chunk.ok) return { ok: false, error: chunk.error };
    const { message_id, chunk_index } = chunk.value.header;
    if (message_id !== this.#nextMessageId)
      return err("LOFT_ERR_MALFORMED", `unexpected message_id ${message_id}`);
    if (chunk_index !== this.#received)
      return err("LOFT_ERR_MALFORMED", `chunk ${chunk_index} out of sequence`);
    const progress = this.#chunks.accept(chunk.value, 0);
    if (!progress.ok) return progress as Result<never>;
    if (progress.value.status === "duplicate") return err("LOFT_ERR_MALFORMED", "duplicate chunk");
    if (progress.value.status === "partial") {
      this.#received++;
      return ok({ kind: "partial" });
    }
    this.#received = 0;
    this.#nextMessageId++;
    return ok({ kind: "message", message: progress.value.payload });
  }
}
