/**
 * Transport frames of a Loft session (docs/protocol/session.md, "Transport frames"). After the
 * handshake every Link message is one Noise transport message (Noise rev 34 §5.1 EncryptWithAd
 * with empty associated data, at most 65535 bytes, §3) whose plaintext is
 *
 *   0x00 ‖ message            DATA: one whole application message (≤ 65518 bytes)
 *   0x01 ‖ CHUNKED_MESSAGE    CHUNK: one piece of a larger message (SREMP §chunking)
 *   0x02 ‖ reason (UTF-8)     CLOSE: the sender is closing, and why (≤ 256 bytes)
 *   0x03 ‖ D ‖ tail ‖ head    DETACHED: one message `head ‖ detached` whose last D bytes travel
 *                             after the Noise message, not inside it (sessions that negotiated
 *                             `session.detached` only; docs/protocol/session.md §5, "Detached
 *                             frames")
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
import { equalBytes, fromUtf8, utf8 } from "../bytes.ts";
import { ChunkReassembler, chunkCodec, chunkMessage, MAX_CHUNKS } from "../codec/chunk.ts";
import { err, ok, type Result } from "../errors.ts";
import { MAX_MESSAGE_LEN, TAGLEN } from "../noise/primitives.ts";

export const FRAME_DATA = 0x00;
export const FRAME_CHUNK = 0x01;
export const FRAME_CLOSE = 0x02;
export const FRAME_DETACHED = 0x03;

/**
 * Handshake extension (docs/protocol/session.md §5, "Detached frames"): present with the value
 * `01` (exactly that one byte) when this side reads and may write the detached link-message
 * layout. Inside the encrypted, authenticated handshake payload, so it can be neither added nor
 * stripped in transit.
 */
export const DETACHED_EXTENSION = "session.detached";
/** Its value: exactly this one byte (a later layout gets a value of its own; session.md §5). */
export const DETACHED_EXTENSION_VALUE: Uint8Array = Uint8Array.of(0x01);
/** The length prefix of every link message in a detached-framing session: u16 BE. */
export const LINK_PREFIX_LEN = 2;
/** The end of the detached part repeated inside the Noise message (its AEAD tag, for the ratchet). */
export const DETACHED_TAIL_LEN = 16;
/** type ‖ u32 BE D ‖ tail: what a DETACHED frame carries before its head. */
export const DETACHED_FRAME_OVERHEAD = 1 + 4 + DETACHED_TAIL_LEN;

/** Largest plaintext of one Noise transport message: 65535 − 16-byte tag. */
export const MAX_FRAME_PLAINTEXT = MAX_MESSAGE_LEN - TAGLEN;
/** Largest message sent as one DATA frame (one type byte). */
export const MAX_DATA_PAYLOAD = MAX_FRAME_PLAINTEXT - 1;
export const MAX_CLOSE_REASON = 256;
/**
 * Largest `head ‖ detached` sent as one DETACHED frame: a link message is then never longer than
 * the longest plain one (2 + 65535 bytes). Larger messages go the plain way (DATA or CHUNK).
 */
export const MAX_DETACHED_MESSAGE = MAX_FRAME_PLAINTEXT - DETACHED_FRAME_OVERHEAD;
/**
 * The longest link message of a detached-framing session: the prefix and a whole Noise message
 * (2 + 65535 = 65537 bytes). A link that cannot carry it (`Link.maxMessageSize`) gets no
 * `session.detached` announcement.
 */
export const MAX_DETACHED_LINK_MESSAGE = LINK_PREFIX_LEN + MAX_MESSAGE_LEN;

// --- frames ------------------------------------------------------------------------------------

/**
 * A frame of `length` bytes plus 16 spare ones (the tag), as a view `headroom` bytes into a buffer
 * of exactly headroom + length + 16: the bytes before it are the caller's, for the link message's
 * prefix (`linkMessageInPlace`), so that the sealed frame never has to be copied into a link message.
 */
function frameBuffer(length: number, headroom: number): Uint8Array {
  if (headroom !== 0 && headroom !== LINK_PREFIX_LEN) throw new RangeError("frame headroom");
  const buffer = new Uint8Array(headroom + length + TAGLEN);
  return headroom === 0 ? buffer : buffer.subarray(headroom);
}

/**
 * The frame plaintexts for one application message: a single DATA frame, or CHUNK frames.
 * Each returned buffer has 16 spare bytes at its end so it can be encrypted in place, and
 * `headroom` bytes before it (0, or LINK_PREFIX_LEN in a detached-framing session: `frameBuffer`).
 */
export function messageFrames(message: Uint8Array, messageId: number, headroom = 0): Uint8Array[] {
  if (message.length <= MAX_DATA_PAYLOAD) {
    const frame = frameBuffer(1 + message.length, headroom);
    frame[0] = FRAME_DATA;
    frame.set(message, 1);
    return [frame];
  }
  // SREMP §chunking via core/codec/chunk.ts; each chunk frame leaves room for our type byte.
  return chunkMessage(messageId, message, MAX_DATA_PAYLOAD).map((chunk) => {
    const frame = frameBuffer(1 + chunk.length, headroom);
    frame[0] = FRAME_CHUNK;
    frame.set(chunk, 1);
    return frame;
  });
}

/**
 * The DATA frame plaintext of one message given as parts (their concatenation), with 16 spare
 * bytes and `headroom` before it (as `messageFrames`); `length` is the parts' total, at most
 * MAX_DATA_PAYLOAD. Each part is copied once, into the frame: a layer that prefixes its own bytes
 * (a type, a channel, a head) needs no copy of its own.
 */
export function dataFrameOf(parts: readonly Uint8Array[], length: number, headroom = 0): Uint8Array {
  if (length > MAX_DATA_PAYLOAD) throw new RangeError("dataFrameOf: message over one DATA frame");
  const frame = frameBuffer(1 + length, headroom);
  frame[0] = FRAME_DATA;
  let at = 1;
  for (const part of parts) {
    frame.set(part, at);
    at += part.length;
  }
  if (at !== 1 + length) throw new RangeError("dataFrameOf: length is not the parts' total");
  return frame;
}

/**
 * The DETACHED frame plaintext (with 16 spare bytes for the Noise tag) of the message
 * `head parts ‖ detached`: 0x03 ‖ u32 BE len(detached) ‖ last 16 bytes of detached ‖ head. The
 * detached bytes themselves are not in it: they follow the sealed frame in the link message.
 */
export function detachedFrameOf(head: readonly Uint8Array[], detached: Uint8Array): Uint8Array {
  let headLength = 0;
  for (const part of head) headLength += part.length;
  if (headLength === 0) throw new RangeError("detachedFrameOf: the head must not be empty");
  if (detached.length < DETACHED_TAIL_LEN) throw new RangeError("detachedFrameOf: detached part too short");
  if (headLength + detached.length > MAX_DETACHED_MESSAGE)
    throw new RangeError("detachedFrameOf: message over one DETACHED frame");
  const frame = new Uint8Array(DETACHED_FRAME_OVERHEAD + headLength + TAGLEN);
  frame[0] = FRAME_DETACHED;
  new DataView(frame.buffer).setUint32(1, detached.length);
  frame.set(detached.subarray(detached.length - DETACHED_TAIL_LEN), 5);
  let at = DETACHED_FRAME_OVERHEAD;
  for (const part of head) {
    frame.set(part, at);
    at += part.length;
  }
  return frame;
}

/** One link message of a detached-framing session: u16 BE len(sealed) ‖ sealed ‖ detached. */
export function linkMessageOf(sealed: Uint8Array, detached: Uint8Array | undefined): Uint8Array {
  if (sealed.length > 0xffff) throw new RangeError("linkMessageOf: Noise message over 65535 bytes");
  const out = new Uint8Array(LINK_PREFIX_LEN + sealed.length + (detached?.length ?? 0));
  out[0] = sealed.length >>> 8;
  out[1] = sealed.length & 0xff;
  out.set(sealed, LINK_PREFIX_LEN);
  if (detached) out.set(detached, LINK_PREFIX_LEN + sealed.length);
  return out;
}

/**
 * `linkMessageOf(sealed, undefined)` without its copy: `sealed` is a frame of `frameBuffer`'s,
 * sealed where it lies (the AEAD wrote into the frame it was given), with LINK_PREFIX_LEN bytes of
 * headroom before it and nothing after it in its buffer. The prefix goes into the headroom; the
 * link message is the whole buffer.
 */
export function linkMessageInPlace(sealed: Uint8Array): Uint8Array {
  if (sealed.length > 0xffff) throw new RangeError("linkMessageInPlace: Noise message over 65535 bytes");
  if (sealed.byteOffset !== LINK_PREFIX_LEN || sealed.buffer.byteLength !== LINK_PREFIX_LEN + sealed.length)
    throw new RangeError("linkMessageInPlace: not a frame with link headroom");
  const out = new Uint8Array(sealed.buffer, 0, LINK_PREFIX_LEN + sealed.length);
  out[0] = sealed.length >>> 8;
  out[1] = sealed.length & 0xff;
  return out;
}

/**
 * A received link message of a detached-framing session split at its length prefix: the Noise
 * message and what follows it (empty for every frame but DETACHED). Checked before any
 * decryption or allocation: the prefix must name at least a Noise tag and no more than is there.
 */
export function splitLinkMessage(message: Uint8Array): Result<{ sealed: Uint8Array; rest: Uint8Array }> {
  if (message.length < LINK_PREFIX_LEN + TAGLEN)
    return err("LOFT_ERR_MALFORMED", `link message of ${message.length} bytes is too short`);
  const n = (message[0]! << 8) | message[1]!;
  if (n < TAGLEN) return err("LOFT_ERR_MALFORMED", `Noise message length ${n} is under the tag length`);
  if (n > message.length - LINK_PREFIX_LEN)
    return err("LOFT_ERR_MALFORMED", `Noise message length ${n} exceeds the link message`);
  return ok({
    sealed: message.subarray(LINK_PREFIX_LEN, LINK_PREFIX_LEN + n),
    rest: message.subarray(LINK_PREFIX_LEN + n),
  });
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
  /**
   * `detached`: the message came in a DETACHED frame — its first `head` bytes were under the Noise
   * AEAD, the rest (the detached part but its 16-byte tail) was not.
   */
  | { kind: "message"; message: Uint8Array; detached?: { head: number } }
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

  /**
   * Feed one decrypted frame plaintext; `rest`: in a detached-framing session, the bytes that
   * followed its Noise message in the link message (undefined in any other session); `sealed`:
   * that Noise message, already opened, whose bytes a DETACHED frame may overwrite (`#detached`).
   */
  push(plaintext: Uint8Array, rest?: Uint8Array, sealed?: Uint8Array): Result<Inbound> {
    if (plaintext.length === 0) return err("LOFT_ERR_MALFORMED", "empty transport frame");
    const type = plaintext[0];
    const body = plaintext.subarray(1);
    if (rest !== undefined && type === FRAME_DETACHED) {
      if (this.#received > 0) return err("LOFT_ERR_MALFORMED", "frame interleaved with a chunked message");
      return this.#detached(plaintext, rest, sealed);
    }
    if (rest !== undefined && rest.length > 0)
      return err("LOFT_ERR_MALFORMED", `${rest.length} bytes after a frame that carries none`);
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

  /**
   * A DETACHED frame and the bytes after it: every length checked against the authenticated
   * ones before the message is put together (docs/protocol/session.md §5, "Detached frames").
   */
  #detached(plaintext: Uint8Array, rest: Uint8Array, sealed: Uint8Array | undefined): Result<Inbound> {
    if (plaintext.length <= DETACHED_FRAME_OVERHEAD)
      return err("LOFT_ERR_MALFORMED", "DETACHED frame without a head");
    const declared = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength).getUint32(1);
    if (declared < DETACHED_TAIL_LEN) return err("LOFT_ERR_MALFORMED", "DETACHED part under its tail length");
    const head = plaintext.subarray(DETACHED_FRAME_OVERHEAD);
    // The authenticated length first: a message over the limit is refused before it is assembled.
    // The limit is the sender's (MAX_DETACHED_MESSAGE: a link message never longer than 2 + 65535
    // bytes, session.md §5 and §7) as well as the receiver's maxMessageBytes.
    const limit = Math.min(this.#maxMessageBytes, MAX_DETACHED_MESSAGE);
    if (head.length + declared > limit)
      return err(
        "LOFT_ERR_FRAME_TOO_LARGE",
        `DETACHED message of ${head.length + declared} bytes over ${limit}`,
      );
    if (rest.length !== declared)
      return err("LOFT_ERR_MALFORMED", `DETACHED part of ${rest.length} bytes, ${declared} announced`);
    // The tail (the ratchet body's AEAD tag) is under the Noise AEAD: a part swapped in from
    // another message, or its tag changed, fails here and closes the session as a Noise
    // authentication failure does.
    const tail = plaintext.subarray(5, DETACHED_FRAME_OVERHEAD);
    if (!equalBytes(tail, rest.subarray(rest.length - DETACHED_TAIL_LEN)))
      return err("LOFT_ERR_DECRYPT", "DETACHED part does not end with the authenticated tail");
    // `head ‖ rest` without copying the (large) rest: the head is written over the end of the
    // Noise message it came in, which sits right before rest in the same link message and is
    // longer than the head (its 21-byte frame header and 16-byte tag). The Noise bytes were
    // consumed when they opened; `set` copies correctly even if the head is a view of them.
    if (
      sealed !== undefined &&
      sealed.buffer === rest.buffer &&
      sealed.byteOffset + sealed.length === rest.byteOffset &&
      head.length < sealed.length
    ) {
      const at = rest.byteOffset - head.length;
      const message = new Uint8Array(rest.buffer, at, head.length + rest.length);
      message.set(head, 0);
      return ok({ kind: "message", message, detached: { head: head.length } });
    }
    const message = new Uint8Array(head.length + rest.length);
    message.set(head, 0);
    message.set(rest, head.length);
    return ok({ kind: "message", message, detached: { head: head.length } });
  }
}
