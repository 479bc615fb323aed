/**
 * The relay mailbox protocol: SMP-like queues over WebSocket frames, encoded as canonical
 * MessagePack and validated with valibot through core/codec/codec.ts.
 *
 * Follows the SimpleX Messaging Protocol (simplexmq protocol/simplex-messaging.md, v9) in its model
 * — recipient-created simplex queues with separate recipient and sender ids, commands signed by
 * per-queue Ed25519 keys, the session identifier bound into every signature, server→recipient
 * re-encryption with a per-queue DH secret and the message id as nonce, AUTH for every
 * authorization failure — and departs from it in encoding (MessagePack maps instead of SMP's
 * ABNF blocks) and in a few semantics written down in docs/protocol/relay.md.
 *
 * Frame layout (docs/protocol/relay.md §Encoding):
 *   client → relay: `{ t: bin, a?: bin(64) }` where `t` is the canonical encoding of a Command
 *                   and `a` an Ed25519 signature over `AUTH_DOMAIN ‖ sessionId ‖ t`.
 *   relay → client: a ServerFrame map, unsigned (the transport is TLS).
 */
import * as v from "valibot";
import { concatBytes, equalBytes, utf8 } from "../bytes.ts";
import {
  type DecodeLimits,
  decodeRaw,
  encodeCanonical,
  requireCanonical,
  uintSchema,
  validate,
} from "../codec/codec.ts";
import { CURRENT_VERSION, type VersionHeader } from "../codec/version.ts";
import { err, ok, type Result } from "../errors.ts";
import { WIRE_CODE_SHAPE, WIRE_ERROR_CODES } from "./errors.ts";

// ---------------------------------------------------------------------------------------------
// Sizes (docs/protocol/relay.md §Limits, §Padding)

/**
 * Fixed block every delivered message is padded to, inside the server→recipient layer; at rest a
 * body is padded only to a size bucket of at most this (docs/protocol/relay.md §At rest).
 */
export const BLOCK_SIZE = 16_384;
/** Padding header: the body length, u16 big-endian. */
export const PAD_HEADER = 2;
/** Largest message body a SEND may carry. */
export const MAX_BODY = BLOCK_SIZE - PAD_HEADER;
/** Recipient id, sender id and message id: random bytes chosen by the relay. */
export const ID_LENGTH = 24;
/** Session identifier chosen by the relay per connection (HELLO). */
export const SESSION_ID_LENGTH = 32;
/** Client-chosen SEND id used to refuse replays and retries (DUPLICATE). */
export const SEND_ID_LENGTH = 16;
export const KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;
/**
 * A command authenticator of protocol 1.1 (HMAC-SHA256 under the per-connection, per-queue
 * authentication key; docs/protocol/relay.md §Command authorization).
 */
export const AUTHENTICATOR_LENGTH = 32;
/** The server→recipient plaintext: u64 timestamp (seconds) ‖ padded block. */
export const RCV_PLAINTEXT_LENGTH = 8 + BLOCK_SIZE;
/** …and its XChaCha20-Poly1305 ciphertext (16-byte tag). */
export const RCV_CIPHERTEXT_LENGTH = RCV_PLAINTEXT_LENGTH + 16;
/**
 * Protocol 1.2 delivers a body padded only to its size bucket (docs/protocol/relay.md §Padding):
 * `bucket = min(BLOCK_SIZE, max(MIN_DELIVERY_BUCKET, 2^⌈log2(len + 2)⌉))`, the at-rest bucket.
 */
export const MIN_DELIVERY_BUCKET = 256;

/** The delivery bucket of a body of `length` bytes (protocol 1.2; docs/protocol/relay.md §Padding). */
export function deliveryBucket(length: number): number {
  let size = MIN_DELIVERY_BUCKET;
  while (size < length + PAD_HEADER && size < BLOCK_SIZE) size *= 2;
  return size;
}

/**
 * Whether `n` is the length of a server→recipient ciphertext: `8 + bucket + 16` with `bucket` a
 * power of two from MIN_DELIVERY_BUCKET to BLOCK_SIZE under 1.2, exactly RCV_CIPHERTEXT_LENGTH
 * under 1.0/1.1 (`bucketed` false; undefined: either).
 */
export function isDeliveryLength(n: number, bucketed?: boolean): boolean {
  // A body of more than 8190 bytes fills the whole block under either rule.
  if (n === RCV_CIPHERTEXT_LENGTH) return true;
  if (bucketed === false) return false;
  const bucket = n - 8 - 16;
  return bucket >= MIN_DELIVERY_BUCKET && bucket < BLOCK_SIZE && (bucket & (bucket - 1)) === 0;
}
/** Largest prekey bundle blob (padded to one BLOCK_SIZE block at rest). */
export const MAX_BUNDLE = BLOCK_SIZE - PAD_HEADER;
/** Block size one-time prekeys are padded to at rest, and the largest one. */
export const OTK_BLOCK_SIZE = 4096;
export const MAX_OTK = OTK_BLOCK_SIZE - PAD_HEADER;
/** Most one-time prekeys one PKSET may carry. */
export const MAX_OTKS_PER_FRAME = 64;
/** Largest SUB window (messages in flight to the subscriber before an ACK). */
export const MAX_WINDOW = 255;
/** Frames this small or smaller are always accepted by a relay (a SEND of MAX_BODY fits). */
export const MIN_FRAME_LIMIT = 20_480;
/** Default frame limit: the SREMP frame bound. */
export const DEFAULT_FRAME_LIMIT = 65_535;

/** Domain separation for command signatures. */
export const AUTH_DOMAIN = utf8("loft-relay/1 auth\0");

/**
 * The client's version header selects how its commands are authorized (docs/protocol/relay.md
 * §Versions): SREMP 1.0 — an Ed25519 signature per command (`AUTH_SIGNATURE`); SREMP 1.1 — an
 * HMAC-SHA256 authenticator per command under a key agreed once per queue per connection
 * (`AUTH_AUTHENTICATOR`, SMP v7's "deniable client authentication scheme" on our primitives).
 * The relay sends the 1.0 header in both cases (it speaks first, before it knows the client's).
 */
export const RELAY_VERSION_SIGNATURE: Readonly<VersionHeader> = CURRENT_VERSION;
export const RELAY_VERSION_AUTHENTICATOR: Readonly<VersionHeader> = Object.freeze({
  protocol_name: CURRENT_VERSION.protocol_name,
  version_major: 1,
  version_minor: 1,
});
/**
 * SREMP 1.2: authorized as 1.1, and every delivered message padded to its size bucket instead of
 * the 16 KiB block (docs/protocol/relay.md §Versions, §Padding).
 */
export const RELAY_VERSION_BUCKETED: Readonly<VersionHeader> = Object.freeze({
  protocol_name: CURRENT_VERSION.protocol_name,
  version_major: 1,
  version_minor: 2,
});
/**
 * SREMP 1.3: as 1.2, plus several messages per frame — `SENDS` (up to MAX_BATCH messages for one
 * queue under one authenticator, one `RES` listing each message's result), `ACKS` (up to
 * MAX_BATCH message ids of one queue) and `MSGS` (several deliveries of one queue in one frame)
 * (docs/protocol/relay.md §Batches).
 */
export const RELAY_VERSION_BATCHED: Readonly<VersionHeader> = Object.freeze({
  protocol_name: CURRENT_VERSION.protocol_name,
  version_major: 1,
  version_minor: 3,
});
/** Most messages one SENDS, ACKS or MSGS frame carries (docs/protocol/relay.md §Batches). */
export const MAX_BATCH = 32;
/**
 * Most bytes of one MSGS frame the relay writes: the default frame limit, which every client
 * decodes (a client reads frames up to max(HELLO.fl, DEFAULT_FRAME_LIMIT)).
 */
export const MAX_MSGS_FRAME = 65_535;
export type RelayAuthMode = "signature" | "authenticator";
/** How deliveries are padded: one 16 KiB block each (1.0, 1.1) or the body's size bucket (1.2). */
export type RelayDeliveryPadding = "block" | "bucket";

/** HKDF info prefix of the per-connection, per-queue authentication key (protocol 1.1). */
export const AUTH_KEY_INFO = utf8("loft-relay/1.1 auth");

// ---------------------------------------------------------------------------------------------
// Commands (client → relay)

/** A byte string of `min..max` bytes (typed as plain `Uint8Array`, whatever its buffer). */
export const bytesSchema = (min: number, max: number = min) =>
  v.pipe(
    v.custom<Uint8Array>((x) => x instanceof Uint8Array, "expected bytes"),
    v.check(
      (b) => b.length >= min && b.length <= max,
      `expected ${min === max ? min : `${min}..${max}`} bytes`,
    ),
  );

const id = bytesSchema(ID_LENGTH);
const key = bytesSchema(KEY_LENGTH);
const corr = uintSchema(0xffff_ffff);

export const COMMAND_KINDS = [
  "PING",
  "NEW",
  "KEY",
  "SKEY",
  "SEND",
  "SUB",
  "GET",
  "ACK",
  "OFF",
  "DEL",
  "PKSET",
  "PKGET",
  "SENDS",
  "ACKS",
] as const;
export type CommandKind = (typeof COMMAND_KINDS)[number];

export const commandSchema = v.variant("k", [
  /** Keep-alive; unsigned. */
  v.strictObject({ k: v.literal("PING"), i: corr }),
  /** Create a queue. `rk` recipient auth key (Ed25519), `dk` recipient DH key (X25519). Signed by rk. */
  v.strictObject({ k: v.literal("NEW"), i: corr, rk: key, dk: key, sub: v.boolean() }),
  /** Recipient secures the queue with the sender's key. Recipient id, signed by the recipient key. */
  v.strictObject({ k: v.literal("KEY"), i: corr, q: id, sk: key }),
  /** Sender secures the queue itself. Sender id, signed by `sk`. */
  v.strictObject({ k: v.literal("SKEY"), i: corr, q: id, sk: key }),
  /** Send a message. Sender id; signed by the sender key once the queue is secured. */
  v.strictObject({
    k: v.literal("SEND"),
    i: corr,
    q: id,
    n: bytesSchema(SEND_ID_LENGTH),
    b: bytesSchema(0, MAX_BODY),
  }),
  /** Subscribe this connection (push delivery, `w` messages in flight). Recipient id, signed. */
  v.strictObject({ k: v.literal("SUB"), i: corr, q: id, w: v.pipe(uintSchema(MAX_WINDOW), v.minValue(1)) }),
  /** Poll one message. Recipient id, signed. */
  v.strictObject({ k: v.literal("GET"), i: corr, q: id }),
  /** Acknowledge (and delete) the message `m`. Recipient id, signed. */
  v.strictObject({ k: v.literal("ACK"), i: corr, q: id, m: id }),
  /** Suspend sending. Recipient id, signed. */
  v.strictObject({ k: v.literal("OFF"), i: corr, q: id }),
  /** Delete the queue and its messages. Recipient id, signed. */
  v.strictObject({ k: v.literal("DEL"), i: corr, q: id }),
  /** Publish a prekey bundle and/or one-time prekeys. Recipient id, signed. */
  v.strictObject({
    k: v.literal("PKSET"),
    i: corr,
    q: id,
    pb: v.optional(bytesSchema(1, MAX_BUNDLE)),
    po: v.pipe(v.array(bytesSchema(1, MAX_OTK)), v.maxLength(MAX_OTKS_PER_FRAME)),
    pr: v.boolean(),
  }),
  /** Fetch the bundle and one one-time prekey (removed). Sender id, unsigned. */
  v.strictObject({ k: v.literal("PKGET"), i: corr, q: id }),
  /**
   * 1.3: send 1..MAX_BATCH messages into one queue, `[send id, body]` each, stored in this order;
   * one authorization as SEND's, one `RES` (docs/protocol/relay.md §Batches).
   */
  v.strictObject({
    k: v.literal("SENDS"),
    i: corr,
    q: id,
    ms: v.pipe(
      v.array(v.strictTuple([bytesSchema(SEND_ID_LENGTH), bytesSchema(0, MAX_BODY)])),
      v.minLength(1),
      v.maxLength(MAX_BATCH),
    ),
  }),
  /** 1.3: acknowledge 1..MAX_BATCH messages of one queue; recipient id, signed; one `RES`. */
  v.strictObject({
    k: v.literal("ACKS"),
    i: corr,
    q: id,
    ms: v.pipe(v.array(id), v.minLength(1), v.maxLength(MAX_BATCH)),
  }),
]);

export type Command = v.InferOutput<typeof commandSchema>;
export type CommandOf<K extends CommandKind> = Extract<Command, { k: K }>;

/** Which key must sign a command (docs/protocol/relay.md §Commands, the "signed by" column). */
export type AuthRule = "none" | "self" | "recipient" | "sender-if-secured";
export const AUTH_RULES: Record<CommandKind, AuthRule> = {
  PING: "none",
  NEW: "self",
  KEY: "recipient",
  SKEY: "self",
  SEND: "sender-if-secured",
  SUB: "recipient",
  GET: "recipient",
  ACK: "recipient",
  OFF: "recipient",
  DEL: "recipient",
  PKSET: "recipient",
  PKGET: "none",
  SENDS: "sender-if-secured",
  ACKS: "recipient",
};

export const clientFrameSchema = v.strictObject({
  t: bytesSchema(1, 1 << 24),
  /** A signature (64 bytes, protocol 1.0) or an authenticator (32 bytes, protocol 1.1). */
  a: v.optional(
    v.pipe(
      bytesSchema(AUTHENTICATOR_LENGTH, SIGNATURE_LENGTH),
      v.check(
        (b) => b.length === AUTHENTICATOR_LENGTH || b.length === SIGNATURE_LENGTH,
        `expected ${AUTHENTICATOR_LENGTH} or ${SIGNATURE_LENGTH} bytes`,
      ),
    ),
  ),
});
export type ClientFrame = v.InferOutput<typeof clientFrameSchema>;

/** The bytes a command signature covers: domain ‖ session id ‖ encoded command. */
export function authInput(sessionId: Uint8Array, transmission: Uint8Array): Uint8Array {
  return concatBytes(AUTH_DOMAIN, sessionId, transmission);
}

export const encodeCommand = (command: Command): Uint8Array => encodeCanonical(command);

/** `{t, a?}`: `authorization` is a signature (1.0) or an authenticator (1.1). */
export function encodeClientFrame(transmission: Uint8Array, authorization?: Uint8Array): Uint8Array {
  return encodeCanonical(authorization ? { t: transmission, a: authorization } : { t: transmission });
}

/** Limits for decoding one client frame; `maxBytes` is the relay's frame limit. */
export function clientFrameLimits(maxBytes: number): DecodeLimits {
  return { maxBytes, maxStrLength: 16, maxArrayLength: 4, maxMapLength: 4 };
}

/** Limits for decoding the command inside a frame. */
export function commandLimits(maxBytes: number): DecodeLimits {
  return {
    maxBytes,
    maxBinLength: BLOCK_SIZE,
    maxStrLength: 16,
    maxArrayLength: MAX_OTKS_PER_FRAME + 1,
    maxMapLength: 8,
  };
}

/** Relay side: the outer frame. */
export function decodeClientFrame(bytes: Uint8Array, maxBytes: number): Result<ClientFrame> {
  const raw = decodeRaw(bytes, clientFrameLimits(maxBytes));
  if (!raw.ok) return raw;
  return requireCanonical(validate(raw.value, clientFrameSchema), bytes, "frame");
}

/**
 * Relay side: the command inside a frame. On a schema error the correlation id, when one can be
 * read, is returned too so that the ERR reply can carry it.
 */
export function decodeCommand(
  transmission: Uint8Array,
  maxBytes: number,
): Result<Command> & { corr?: number } {
  const raw = decodeRaw(transmission, commandLimits(maxBytes));
  if (!raw.ok) return raw;
  const value = raw.value;
  const corrId =
    typeof value === "object" && value !== null && !(value instanceof Uint8Array)
      ? (value as Record<string, unknown>).i
      : undefined;
  const out: Result<Command> & { corr?: number } = (() => {
    const kind =
      typeof value === "object" && value !== null ? (value as Record<string, unknown>).k : undefined;
    if (typeof kind !== "string" || !(COMMAND_KINDS as readonly string[]).includes(kind))
      return err<Command>("LOFT_ERR_UNKNOWN_TYPE", "k: unknown command");
    return requireCanonical(validate(value, commandSchema), transmission, "command");
  })();
  if (
    !out.ok &&
    typeof corrId === "number" &&
    Number.isInteger(corrId) &&
    corrId >= 0 &&
    corrId <= 0xffff_ffff
  )
    out.corr = corrId;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Server frames (relay → client)

/** A server→recipient ciphertext of a delivery length (`isDeliveryLength`). */
const deliverySchema = v.pipe(
  bytesSchema(8 + MIN_DELIVERY_BUCKET + 16, RCV_CIPHERTEXT_LENGTH),
  v.check((b) => isDeliveryLength(b.length), "expected a delivery length"),
);

/** One message's result in a `RES`: stored / acknowledged, or the wire code it was refused with. */
export const BATCH_RESULTS = ["OK", ...WIRE_ERROR_CODES] as const;
export type BatchResult = (typeof BATCH_RESULTS)[number];

export const serverFrameSchema = v.variant("k", [
  /** After the version headers: the session id every signature on this connection binds. */
  v.strictObject({
    k: v.literal("HELLO"),
    s: bytesSchema(SESSION_ID_LENGTH),
    /** The relay's frame limit, queue quota and most messages in flight per connection. */
    fl: uintSchema(),
    qq: uintSchema(),
    mi: uintSchema(),
    /** Protocol 1.1 only: the relay's X25519 key for this connection (command authenticators). */
    x: v.optional(bytesSchema(KEY_LENGTH)),
  }),
  v.strictObject({ k: v.literal("OK"), i: corr }),
  /** NEW → recipient id, sender id, relay's per-queue DH key. */
  v.strictObject({ k: v.literal("IDS"), i: corr, r: id, s: id, d: key }),
  /** A message: pushed (no `i`) or the answer to GET (`i`). `b` is the server→recipient ciphertext. */
  v.strictObject({
    k: v.literal("MSG"),
    i: v.optional(corr),
    q: id,
    m: id,
    /** 16 408 bytes (1.0, 1.1) or 24 + a bucket of 256..8192 (1.2): `isDeliveryLength`. */
    b: deliverySchema,
  }),
  /** The subscription of `q` moved to another connection or the queue was deleted. */
  v.strictObject({ k: v.literal("END"), q: id }),
  /** PKGET → the bundle and one one-time prekey, if any was left. */
  v.strictObject({
    k: v.literal("PK"),
    i: corr,
    pb: bytesSchema(1, MAX_BUNDLE),
    po: v.optional(bytesSchema(1, MAX_OTK)),
  }),
  /** A refused command (`i` when it could be read) or a connection-level error (no `i`). */
  v.strictObject({ k: v.literal("ERR"), i: v.optional(corr), e: v.picklist(WIRE_ERROR_CODES) }),
  /** 1.3: the answer to SENDS or ACKS, one result per message in the command's order. */
  v.strictObject({
    k: v.literal("RES"),
    i: corr,
    r: v.pipe(v.array(v.picklist(BATCH_RESULTS)), v.minLength(1), v.maxLength(MAX_BATCH)),
  }),
  /**
   * 1.3: pushed deliveries of one queue, oldest first, `[message id, b]` each (as MSG's `m`, `b`);
   * at least two — one alone is a MSG, so each push has one form.
   */
  v.strictObject({
    k: v.literal("MSGS"),
    q: id,
    ms: v.pipe(v.array(v.strictTuple([id, deliverySchema])), v.minLength(2), v.maxLength(MAX_BATCH)),
  }),
]);

export type ServerFrame = v.InferOutput<typeof serverFrameSchema>;
export type ServerFrameOf<K extends ServerFrame["k"]> = Extract<ServerFrame, { k: K }>;

export const encodeServerFrame = (frame: ServerFrame): Uint8Array => encodeCanonical(frame);

export function serverFrameLimits(maxBytes: number): DecodeLimits {
  return {
    maxBytes,
    maxBinLength: RCV_CIPHERTEXT_LENGTH,
    maxStrLength: 16,
    // RES and MSGS (1.3) carry up to MAX_BATCH entries; MSGS's are [m, b] pairs.
    maxArrayLength: MAX_BATCH,
    maxMapLength: 8,
  };
}

const SERVER_FRAME_KINDS: readonly string[] = [
  "HELLO",
  "OK",
  "IDS",
  "MSG",
  "END",
  "PK",
  "ERR",
  "RES",
  "MSGS",
];

/** Client side: one frame from the relay. */
export function decodeServerFrame(bytes: Uint8Array, maxBytes = DEFAULT_FRAME_LIMIT): Result<ServerFrame> {
  const raw = decodeRaw(bytes, serverFrameLimits(maxBytes));
  if (!raw.ok) return raw;
  const kind =
    typeof raw.value === "object" && raw.value !== null
      ? (raw.value as Record<string, unknown>).k
      : undefined;
  if (typeof kind !== "string" || !SERVER_FRAME_KINDS.includes(kind))
    return err("LOFT_ERR_UNKNOWN_TYPE", "k: unknown frame");
  return requireCanonical(validate(raw.value, serverFrameSchema), bytes, "frame");
}

/**
 * Client side, for a frame `decodeServerFrame` refused: an `ERR` whose only fault is a code this
 * version does not know (a newer relay's), so the client can still settle the command it answers
 * (as LOFT_ERR_RELAY_UNRECOGNIZED) instead of leaving it to time out. Undefined for anything else —
 * bytes that are not the frame's canonical encoding included, as for an ERR with a known code
 * (docs/protocol/relay.md §Errors, "Reading one"): a newer relay encodes its ERR as this one does.
 */
export function unknownServerError(
  bytes: Uint8Array,
  maxBytes = DEFAULT_FRAME_LIMIT,
): { i?: number; e: string } | undefined {
  const raw = decodeRaw(bytes, serverFrameLimits(maxBytes));
  if (!raw.ok || typeof raw.value !== "object" || raw.value === null || raw.value instanceof Uint8Array)
    return undefined;
  const { k, i, e, ...rest } = raw.value as Record<string, unknown>;
  if (k !== "ERR" || Object.keys(rest).length > 0) return undefined;
  if (
    typeof e !== "string" ||
    !WIRE_CODE_SHAPE.test(e) ||
    (WIRE_ERROR_CODES as readonly string[]).includes(e)
  )
    return undefined;
  if (i !== undefined && (typeof i !== "number" || !Number.isInteger(i) || i < 0 || i > 0xffff_ffff))
    return undefined;
  if (!equalBytes(encodeCanonical(raw.value), bytes)) return undefined;
  return i === undefined ? { e } : { i, e };
}

// ---------------------------------------------------------------------------------------------
// Padding (docs/protocol/relay.md §Padding)

/** `u16be(len) ‖ body ‖ zeros` to exactly `size` bytes. Throws on a body that cannot fit. */
export function padBlock(body: Uint8Array, size = BLOCK_SIZE): Uint8Array {
  if (body.length > size - PAD_HEADER)
    throw new RangeError(`padBlock: ${body.length} bytes exceed ${size - PAD_HEADER}`);
  const out = new Uint8Array(size);
  out[0] = body.length >>> 8;
  out[1] = body.length & 0xff;
  out.set(body, PAD_HEADER);
  return out;
}

/** Inverse of padBlock; checks the length and that the fill is zero. */
export function unpadBlock(block: Uint8Array, size = BLOCK_SIZE): Result<Uint8Array> {
  if (block.length !== size)
    return err("LOFT_ERR_PADDING", `block of ${block.length} bytes, expected ${size}`);
  const len = (block[0]! << 8) | block[1]!;
  if (len > size - PAD_HEADER) return err("LOFT_ERR_PADDING", "length header out of range");
  let fill = 0;
  for (let i = PAD_HEADER + len; i < size; i++) fill |= block[i]!;
  if (fill !== 0) return err("LOFT_ERR_PADDING", "non-zero padding");
  return ok(block.slice(PAD_HEADER, PAD_HEADER + len));
}
