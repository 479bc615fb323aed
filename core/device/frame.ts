/**
 * Serial frames (docs/device.md §2): what crosses the cable between a device and its owner.
 *
 *   body  = type (u8) ‖ seq (u16 BE) ‖ payload (0 .. max payload bytes)
 *   wire  = COBS(body ‖ CRC-32(body) as u32 BE) ‖ 0x00
 *
 * COBS makes 0x00 a frame delimiter that never occurs inside a frame, so resynchronising after
 * garbage, a dropped byte or a sender that reset mid-frame costs at most the frame in flight. The
 * CRC-32 drops frames damaged by line noise (the link layer then retransmits, serial-link.ts).
 */
import { LoftError, type LoftErrorCode } from "../errors.ts";
import { cobsDecode, cobsEncode, cobsMaxEncodedLength } from "./cobs.ts";
import { crc32 } from "./crc32.ts";

export const FRAME_HELLO = 0x01;
/** A fragment of a link message; more fragments follow. */
export const FRAME_DATA = 0x02;
/** The last (or only) fragment of a link message. */
export const FRAME_DATA_END = 0x03;
/** Cumulative acknowledgement and credit: `seq` is the next DATA seq the receiver expects. */
export const FRAME_ACK = 0x04;
/** The sender closes the link; payload is a UTF-8 reason. */
export const FRAME_CLOSE = 0x05;

export type FrameType =
  | typeof FRAME_HELLO
  | typeof FRAME_DATA
  | typeof FRAME_DATA_END
  | typeof FRAME_ACK
  | typeof FRAME_CLOSE;

export const FRAME_HEADER_BYTES = 3;
export const FRAME_CRC_BYTES = 4;
/** Payload bound everyone must accept: enough for a HELLO and a useful fragment. */
export const MIN_FRAME_PAYLOAD = 64;
/** Default payload bound: a whole encoded frame (≤ 249 bytes with its delimiter) fits a 256-byte UART buffer. */
export const DEFAULT_FRAME_PAYLOAD = 240;
/** Protocol maximum; a HELLO may announce any receive bound in [MIN, MAX]. */
export const MAX_FRAME_PAYLOAD = 1024;
/** Longest CLOSE reason, in UTF-8 bytes. */
export const MAX_CLOSE_REASON_BYTES = 128;

export interface Frame {
  type: FrameType;
  seq: number;
  payload: Uint8Array;
}

/** Encoded size of a frame with `payloadBytes` of payload, delimiter included (worst case). */
export function maxWireFrameBytes(payloadBytes: number): number {
  return cobsMaxEncodedLength(FRAME_HEADER_BYTES + payloadBytes + FRAME_CRC_BYTES) + 1;
}

const KNOWN_TYPES = new Set<number>([FRAME_HELLO, FRAME_DATA, FRAME_DATA_END, FRAME_ACK, FRAME_CLOSE]);

/** One frame as it goes on the wire, delimiter included. Throws RangeError on our own misuse. */
export function encodeFrame(frame: Frame): Uint8Array {
  if (!KNOWN_TYPES.has(frame.type)) throw new RangeError(`unknown frame type ${frame.type}`);
  if (!Number.isInteger(frame.seq) || frame.seq < 0 || frame.seq > 0xffff)
    throw new RangeError("seq out of range");
  if (frame.payload.length > MAX_FRAME_PAYLOAD) throw new RangeError("frame payload too large");
  const n = FRAME_HEADER_BYTES + frame.payload.length;
  const body = new Uint8Array(n + FRAME_CRC_BYTES);
  body[0] = frame.type;
  body[1] = frame.seq >>> 8;
  body[2] = frame.seq & 0xff;
  body.set(frame.payload, FRAME_HEADER_BYTES);
  const crc = crc32(body, 0, n);
  body[n] = crc >>> 24;
  body[n + 1] = (crc >>> 16) & 0xff;
  body[n + 2] = (crc >>> 8) & 0xff;
  body[n + 3] = crc & 0xff;
  const stuffed = cobsEncode(body);
  const wire = new Uint8Array(stuffed.length + 1);
  wire.set(stuffed);
  return wire; // last byte stays 0x00: the delimiter
}

/** Why bytes on the line did not make a frame. */
export type DeframeFault = "cobs" | "short" | "crc" | "unknown-type" | "oversized";

const FAULT_CODE: Record<DeframeFault, LoftErrorCode> = {
  cobs: "LOFT_ERR_MALFORMED",
  short: "LOFT_ERR_MALFORMED",
  crc: "LOFT_ERR_MALFORMED",
  "unknown-type": "LOFT_ERR_UNKNOWN_TYPE",
  oversized: "LOFT_ERR_FRAME_TOO_LARGE",
};

/** A typed, non-fatal framing error: the bytes were dropped and the stream goes on. */
export class DeframeError extends LoftError {
  readonly fault: DeframeFault;
  /** How many bytes of the stream this error discarded (delimiter excluded). */
  readonly discarded: number;
  constructor(fault: DeframeFault, discarded: number, message: string) {
    super(FAULT_CODE[fault], message);
    this.name = "DeframeError";
    this.fault = fault;
    this.discarded = discarded;
  }
}

export type DeframeEvent = { ok: true; frame: Frame } | { ok: false; error: DeframeError };

/** Decode one COBS block (delimiter removed) into a frame, or say why not. */
export function decodeFrameBlock(block: Uint8Array, maxPayload = MAX_FRAME_PAYLOAD): DeframeEvent {
  const fail = (fault: DeframeFault, message: string): DeframeEvent => ({
    ok: false,
    error: new DeframeError(fault, block.length, message),
  });
  if (block.length > cobsMaxEncodedLength(FRAME_HEADER_BYTES + maxPayload + FRAME_CRC_BYTES))
    return fail(
      "oversized",
      `frame of ${block.length} encoded bytes exceeds the ${maxPayload}-byte payload bound`,
    );
  const decoded = cobsDecode(block);
  if (!decoded.ok) return fail("cobs", decoded.error.message);
  const body = decoded.value;
  if (body.length < FRAME_HEADER_BYTES + FRAME_CRC_BYTES)
    return fail("short", `frame of ${body.length} bytes`);
  const n = body.length - FRAME_CRC_BYTES;
  const want = ((body[n]! << 24) | (body[n + 1]! << 16) | (body[n + 2]! << 8) | body[n + 3]!) >>> 0;
  if (crc32(body, 0, n) !== want) return fail("crc", "CRC-32 mismatch");
  if (n - FRAME_HEADER_BYTES > maxPayload)
    return fail("oversized", `payload of ${n - FRAME_HEADER_BYTES} bytes exceeds ${maxPayload}`);
  const type = body[0]!;
  if (!KNOWN_TYPES.has(type))
    return fail("unknown-type", `unknown frame type 0x${type.toString(16).padStart(2, "0")}`);
  return {
    ok: true,
    frame: {
      type: type as FrameType,
      seq: (body[1]! << 8) | body[2]!,
      payload: body.slice(FRAME_HEADER_BYTES, n),
    },
  };
}

/**
 * Streaming deframer: feed it bytes in any chunking, get frames and typed faults in stream order.
 * It never throws on input and never holds more than one encoded frame: a run of bytes longer than
 * the largest frame is reported once as `oversized` and skipped up to the next 0x00. Empty blocks
 * (0x00 0x00, a sender flushing the line) are ignored.
 */
export class Deframer {
  readonly #maxPayload: number;
  readonly #buffer: Uint8Array;
  #filled = 0;
  /** Bytes of an oversized run being skipped until the next delimiter; -1 when not skipping. */
  #skipped = -1;

  constructor(maxPayload = MAX_FRAME_PAYLOAD) {
    if (!Number.isInteger(maxPayload) || maxPayload < 0 || maxPayload > MAX_FRAME_PAYLOAD)
      throw new RangeError("maxPayload out of range");
    this.#maxPayload = maxPayload;
    this.#buffer = new Uint8Array(cobsMaxEncodedLength(FRAME_HEADER_BYTES + maxPayload + FRAME_CRC_BYTES));
  }

  /** True when bytes of an unfinished frame are buffered (a stream that ends here was cut). */
  get partial(): boolean {
    return this.#filled > 0 || this.#skipped > 0;
  }

  push(chunk: Uint8Array): DeframeEvent[] {
    const events: DeframeEvent[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0) {
        if (this.#skipped >= 0) {
          events.push({
            ok: false,
            error: new DeframeError("oversized", this.#skipped, `${this.#skipped} bytes without a delimiter`),
          });
          this.#skipped = -1;
        } else if (this.#filled > 0) {
          events.push(decodeFrameBlock(this.#buffer.subarray(0, this.#filled), this.#maxPayload));
        }
        this.#filled = 0;
        continue;
      }
      if (this.#skipped >= 0) {
        this.#skipped++;
        continue;
      }
      if (this.#filled === this.#buffer.length) {
        this.#skipped = this.#filled + 1;
        this.#filled = 0;
        continue;
      }
      this.#buffer[this.#filled++] = b;
    }
    return events;
  }

  /** Forget a partial frame (the line was reset). */
  reset(): void {
    this.#filled = 0;
    this.#skipped = -1;
  }
}
