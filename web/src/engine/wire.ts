/**
 * What travels inside a chat session (docs/protocol/chat.md): session frames over the Noise
 * session (core/session), and application messages inside Double Ratchet messages (core/ratchet).
 *
 * Session frames — one per Noise session message, first byte is the type:
 *   0x01 HELLO    canonical MessagePack { v: 1, rid?: bin(16), send: bool }  (first frame, both sides)
 *   0x02 RATCHET  one Double Ratchet message (core/ratchet/message.ts layout)
 *   0x03 PING     8 bytes, echoed in a PONG
 *   0x04 PONG     the PING's 8 bytes
 *   0x20 PROXY    one E2EE fetch proxy message: channel byte ‖ proxy frame (docs/protocol/proxy.md)
 *
 * Application messages — the plaintext of a RATCHET frame, canonical MessagePack padded to a
 * power-of-two bucket (core/codec/padding.ts, ISO/IEC 7816-4) before encryption:
 *   { t: "msg",  id: str(22), at: uint, text: str }   a chat message (id = the sender's message id)
 *   { t: "rcpt", ids: [str(22), ...] }                 end-to-end delivery receipt for those ids
 *   { t: "sync" }                                      nothing; lets a ratchet responder start sending
 *   { t: "mbox", u: str, s: bin(24), k: bin(32), n?: uint }      our mailbox for the peer: relay URL, sender id,
 *                                                      sender auth key (docs/protocol/mailbox.md)
 *   { t: "intro", i: bin, u: str, s: bin(24), k: bin(32) } first contact: our signed identity and our
 *                                                      mailbox for the peer (docs/protocol/mailbox.md)
 *   { t: "file.offer" | "file.accept" | "file.decline" | "file.cancel" | "file.done", … }
 *                                                      file transfer (docs/protocol/files.md; the
 *                                                      chunks are session frames 0x10 and 0x11)
 *   { t: "call.*", c: bin(16), ... }                   a one-to-one call's signals (calls/wire.ts;
 *                                                      docs/protocol/calls.md)
 *   { t: "dev.telemetry" | "dev.cmd" | "dev.out", … } a paired device and its owner through the relay
 *                                                      (core/device/relay.ts; docs/device.md §13)
 * A bundle — to a peer that listed `chat.bundle` — is the plaintext of one RATCHET frame holding
 * several padded `msg` messages: 00 ‖ k ‖ log2 of each bucket ‖ the messages (chat.md §5, "Bundles").
 */

import * as v from "valibot";
import { equalBytes } from "../../../core/bytes.ts";
import { bytesSchema, decodeWith, encodeCanonical, uintSchema } from "../../../core/codec/codec.ts";
import { padToBucket, unpadBucket } from "../../../core/codec/padding.ts";
// A paired device's messages through the relay (`dev.*`, docs/device.md §13).
import { DEVICE_APP_MAX_FIELDS, DEVICE_APP_SCHEMAS } from "../../../core/device/relay.ts";
import { err, ok, type Result } from "../../../core/errors.ts";
import { MIN_MESSAGE_LEN, RATCHET_ID_BYTES } from "../../../core/ratchet/index.ts";
import { MAX_DETACHED_MESSAGE } from "../../../core/session/index.ts";
import { CALL_SCHEMAS } from "./calls/wire.ts";
// File transfer: its session frames (0x10–0x17) and `file.*` messages (docs/protocol/files.md).
import { FILE_APP_MAX_FIELDS, FILE_FRAME, fileAppSchemas } from "./files/wire.ts";
// Longest text in one message: one source for the wire and the UI (outgoing.ts).
import { MAX_TEXT_CHARS } from "./outgoing.ts";

export const CHAT_PROTOCOL_VERSION = 1;
export const FRAME = {
  HELLO: 0x01,
  RATCHET: 0x02,
  PING: 0x03,
  PONG: 0x04,
  FILE_CHUNK: FILE_FRAME.CHUNK,
  FILE_ACK: FILE_FRAME.ACK,
  /** A `file.*` message on a room member's session (files/room-files.ts; docs/protocol/files.md §8). */
  FILE_MSG: FILE_FRAME.MSG,
  /** A chunk of a transfer offered with another chunk size (files.md §2, since session 18). */
  FILE_CHUNK_WIDE: FILE_FRAME.CHUNK_WIDE,
  /** A room app message on a room member's session (rooms/wire.ts; docs/protocol/rooms.md §5). */
  ROOM: 0x40,
  /** The E2EE fetch proxy's frames on a contact's session (proxy-link.ts; docs/protocol/proxy.md). */
  PROXY: 0x20,
} as const;
/** The ratchet id of a session (core/ratchet/from-session.ts). */
export { RATCHET_ID_BYTES };
export const PING_BYTES = 8;
/** Receipts acknowledge at most this many ids per message. */
export const MAX_RECEIPT_IDS = 64;
/** Relay URLs in mailbox announcements. */
export const MAX_RELAY_URL_CHARS = 256;
const QUEUE_ID_BYTES = 24;
/** An identity in a first-contact message must leave room in one relay block. */
export const MAX_INTRO_IDENTITY_BYTES = 8 * 1024;

// ---- session frames ---------------------------------------------------------------------------

const helloSchema = v.strictObject({
  v: uintSchema(0xffff),
  rid: v.optional(bytesSchema(RATCHET_ID_BYTES)),
  send: v.boolean(),
});

export interface Hello {
  version: number;
  /** Id of the ratchet session this side holds for the peer, if any. */
  ratchetId?: Uint8Array;
  /** Whether that ratchet can send yet (a ratchet responder cannot before its first receive). */
  canSend: boolean;
}

export type SessionFrame =
  | { type: "hello"; hello: Hello }
  | { type: "ratchet"; message: Uint8Array }
  | { type: "ping"; nonce: Uint8Array }
  | { type: "pong"; nonce: Uint8Array }
  | { type: "proxy"; message: Uint8Array };

function framed(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + body.length);
  out[0] = type;
  out.set(body, 1);
  return out;
}

export function encodeHello(h: Hello): Uint8Array {
  return framed(FRAME.HELLO, encodeCanonical({ v: h.version, rid: h.ratchetId, send: h.canSend }));
}

export const encodeRatchetFrame = (message: Uint8Array): Uint8Array => framed(FRAME.RATCHET, message);
/**
 * The RATCHET frame's type byte, for `Session.sendParts([RATCHET_FRAME_TYPE, message])`: the same
 * bytes as `encodeRatchetFrame(message)`, with the message copied once (into the Noise frame), not twice.
 */
export const RATCHET_FRAME_TYPE = Uint8Array.of(FRAME.RATCHET);
export const encodePing = (nonce: Uint8Array): Uint8Array => framed(FRAME.PING, nonce);
export const encodePong = (nonce: Uint8Array): Uint8Array => framed(FRAME.PONG, nonce);
export const encodeProxyFrame = (message: Uint8Array): Uint8Array => framed(FRAME.PROXY, message);

export function decodeSessionFrame(bytes: Uint8Array): Result<SessionFrame> {
  if (bytes.length === 0) return err("LOFT_ERR_MALFORMED", "empty session frame");
  const body = bytes.subarray(1);
  switch (bytes[0]) {
    case FRAME.HELLO: {
      const r = decodeWith(body, helloSchema, { maxBytes: 256, maxMapLength: 3, maxArrayLength: 0 });
      if (!r.ok) return r;
      if (!equalBytes(encodeCanonical(r.value), body))
        return err("LOFT_ERR_MALFORMED", "HELLO is not canonical MessagePack");
      return ok({
        type: "hello",
        hello: {
          version: r.value.v,
          ...(r.value.rid ? { ratchetId: r.value.rid } : {}),
          canSend: r.value.send,
        },
      });
    }
    case FRAME.RATCHET:
      return ok({ type: "ratchet", message: body });
    case FRAME.PING:
    case FRAME.PONG:
      if (body.length !== PING_BYTES) return err("LOFT_ERR_MALFORMED", "ping/pong carries 8 bytes");
      return ok({ type: bytes[0] === FRAME.PING ? "ping" : "pong", nonce: body });
    case FRAME.PROXY:
      // Checked by the proxy endpoint (core/proxy/endpoint.ts): empty or malformed closes the session.
      return ok({ type: "proxy", message: body });
    default:
      return err("LOFT_ERR_UNKNOWN_TYPE", `unknown session frame type ${bytes[0]}`);
  }
}

// ---- application messages --------------------------------------------------------------------

const messageId = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{22}$/));
const appSchema = v.variant("t", [
  v.strictObject({
    t: v.literal("msg"),
    id: messageId,
    at: uintSchema(),
    text: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_TEXT_CHARS)),
  }),
  v.strictObject({
    t: v.literal("rcpt"),
    ids: v.pipe(v.array(messageId), v.minLength(1), v.maxLength(MAX_RECEIPT_IDS)),
  }),
  v.strictObject({ t: v.literal("sync") }),
  v.strictObject({
    t: v.literal("mbox"),
    u: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_RELAY_URL_CHARS)),
    s: bytesSchema(QUEUE_ID_BYTES),
    k: bytesSchema(32),
    /** The queue's order: an older announcement read late is ignored (mailbox.md §1). */
    n: v.optional(uintSchema()),
  }),
  v.strictObject({
    t: v.literal("intro"),
    i: bytesSchema(1, MAX_INTRO_IDENTITY_BYTES),
    u: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_RELAY_URL_CHARS)),
    s: bytesSchema(QUEUE_ID_BYTES),
    k: bytesSchema(32),
  }),
  ...fileAppSchemas,
  ...CALL_SCHEMAS,
  ...DEVICE_APP_SCHEMAS,
]);

export type AppMessage = v.InferOutput<typeof appSchema>;

const APP_LIMITS = {
  maxBytes: 4 * MAX_TEXT_CHARS + 256,
  maxStrLength: 4 * MAX_TEXT_CHARS,
  maxArrayLength: MAX_RECEIPT_IDS,
  maxMapLength: Math.max(5, FILE_APP_MAX_FIELDS, DEVICE_APP_MAX_FIELDS),
} as const;

/** Canonical MessagePack, padded to a power-of-two bucket (≥ 256 bytes). */
export function encodeAppMessage(m: AppMessage): Uint8Array {
  return padToBucket(encodeCanonical(m));
}

export function decodeAppMessage(padded: Uint8Array): Result<AppMessage> {
  const unpadded = unpadBucket(padded);
  if (!unpadded.ok) return unpadded;
  const r = decodeWith(unpadded.value, appSchema, APP_LIMITS);
  if (r.ok && !equalBytes(encodeCanonical(r.value), unpadded.value))
    return err("LOFT_ERR_MALFORMED", "application message is not canonical MessagePack");
  return r;
}

// ---- bundles: several chat messages under one ratchet message -----------------------------------

/**
 * A bundle's plaintext starts with this byte (docs/protocol/chat.md §5, "Bundles"); a single
 * application message's padded plaintext never does (its first byte is a MessagePack map's).
 */
export const BUNDLE_MARKER = 0x00;
/** Most messages in one bundle: as many as one `rcpt` acknowledges. */
export const MAX_BUNDLE_MESSAGES = MAX_RECEIPT_IDS;
/**
 * Longest bundle plaintext: its ratchet message (prefix, body, tag) behind the RATCHET type byte
 * fits one detached frame (docs/protocol/session.md §5, "Detached frames", 65 498 bytes), so the
 * body still goes beside the Noise frame, one AEAD pass per byte. 65 400 bytes.
 */
export const MAX_BUNDLE_BYTES = MAX_DETACHED_MESSAGE - 1 - MIN_MESSAGE_LEN;
/** Inner buckets are 2^8 … 2^15 bytes: a 2^16 bucket alone is over MAX_BUNDLE_BYTES. */
const MIN_BUCKET_LOG2 = 8;
const MAX_BUCKET_LOG2 = 15;

/** A padded application message's length in a bundle (its bucket), or 0 if it cannot be in one. */
function bucketLog2(padded: Uint8Array): number {
  const e = Math.log2(padded.length);
  return Number.isInteger(e) && e >= MIN_BUCKET_LOG2 && e <= MAX_BUCKET_LOG2 ? e : 0;
}

/**
 * The bundle of padded application messages (`encodeAppMessage`), in order:
 * `00 ‖ k ‖ log2(bucket_1) … log2(bucket_k) ‖ bucket_1 ‖ … ‖ bucket_k`, 2 ≤ k ≤ 64. Each message
 * keeps its own padding, so the bundle's length says no more of their sizes than the k ratchet
 * messages it replaces did — but it does say that they are chat messages (chat.md §5, "Bundles").
 */
export function encodeBundle(padded: readonly Uint8Array[]): Uint8Array {
  const k = padded.length;
  if (k < 2 || k > MAX_BUNDLE_MESSAGES)
    throw new RangeError(`a bundle holds 2..${MAX_BUNDLE_MESSAGES} messages`);
  let length = 2 + k;
  for (const p of padded) {
    if (bucketLog2(p) === 0)
      throw new RangeError("a bundle holds padded application messages of 256..32 768 bytes");
    length += p.length;
  }
  if (length > MAX_BUNDLE_BYTES) throw new RangeError(`bundle of ${length} bytes over ${MAX_BUNDLE_BYTES}`);
  const out = new Uint8Array(length);
  out[0] = BUNDLE_MARKER;
  out[1] = k;
  let at = 2 + k;
  padded.forEach((p, i) => {
    out[2 + i] = bucketLog2(p);
    out.set(p, at);
    at += p.length;
  });
  return out;
}

/**
 * The plaintexts of messages sent together in order (peer-ratchet.ts `sendApps`): consecutive
 * chat messages (`msg`) in bundles of up to MAX_BUNDLE_BYTES when `bundles` (the peer reads them),
 * every other message — a message `alone` names by index, and a bundle that would hold one — as
 * its own padded application message. Throws before anything is returned if a message does not encode.
 */
export function appPlaintexts(
  messages: readonly AppMessage[],
  bundles: boolean,
  alone: ReadonlySet<number> = new Set(),
): Uint8Array[] {
  const padded = messages.map(encodeAppMessage);
  if (!bundles) return padded;
  const out: Uint8Array[] = [];
  let run: Uint8Array[] = [];
  let runBytes = 2;
  const close = () => {
    if (run.length === 1) out.push(run[0]!);
    else if (run.length > 1) {
      out.push(encodeBundle(run));
      for (const p of run) p.fill(0);
    }
    run = [];
    runBytes = 2;
  };
  messages.forEach((m, i) => {
    const p = padded[i]!;
    // A bucket past 2^15 reads 0, so one that passes fits a bundle alone (3 + 32 768 bytes).
    if (m.t !== "msg" || alone.has(i) || bucketLog2(p) === 0) {
      close();
      out.push(p);
      return;
    }
    if (run.length === MAX_BUNDLE_MESSAGES || runBytes + 1 + p.length > MAX_BUNDLE_BYTES) close();
    run.push(p);
    runBytes += 1 + p.length;
  });
  close();
  return out;
}

/** A chat message as a bundle carries it. */
export type ChatMessage = Extract<AppMessage, { t: "msg" }>;

/**
 * The application messages of one ratchet plaintext: a bundle's chat messages in order, or the one
 * padded application message. A bundle is refused whole — nothing of it is used — when its layout
 * is wrong (`LOFT_ERR_MALFORMED`), it is longer than MAX_BUNDLE_BYTES (`LOFT_ERR_FRAME_TOO_LARGE`),
 * one of its messages does not decode (that message's error), or one is not a `msg`
 * (`LOFT_ERR_SCHEMA`).
 */
export function decodeAppPlaintext(plaintext: Uint8Array): Result<AppMessage[]> {
  if (plaintext[0] !== BUNDLE_MARKER) {
    const one = decodeAppMessage(plaintext);
    return one.ok ? ok([one.value]) : one;
  }
  if (plaintext.length > MAX_BUNDLE_BYTES)
    return err("LOFT_ERR_FRAME_TOO_LARGE", `bundle of ${plaintext.length} bytes over ${MAX_BUNDLE_BYTES}`);
  const k = plaintext[1] ?? 0;
  if (k < 2 || k > MAX_BUNDLE_MESSAGES)
    return err("LOFT_ERR_MALFORMED", `bundle: ${k} messages (2..${MAX_BUNDLE_MESSAGES})`);
  let at = 2 + k;
  const bounds: [number, number][] = [];
  for (let i = 0; i < k; i++) {
    const e = plaintext[2 + i];
    if (e === undefined || e < MIN_BUCKET_LOG2 || e > MAX_BUCKET_LOG2)
      return err("LOFT_ERR_MALFORMED", `bundle: message ${i} has no bucket of 2^8..2^15 bytes`);
    bounds.push([at, at + 2 ** e]);
    at += 2 ** e;
  }
  if (at !== plaintext.length)
    return err("LOFT_ERR_MALFORMED", `bundle: its buckets make ${at} bytes, not ${plaintext.length}`);
  const out: AppMessage[] = [];
  for (const [i, [from, to]] of bounds.entries()) {
    const m = decodeAppMessage(plaintext.subarray(from, to));
    if (!m.ok) return err(m.error.code, `bundle: message ${i}: ${m.error.detail}`);
    if (m.value.t !== "msg")
      return err("LOFT_ERR_SCHEMA", `bundle: message ${i} is a ${m.value.t}, not a msg`);
    out.push(m.value);
  }
  return ok(out);
}
