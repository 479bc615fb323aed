/**
 * What travels on a room member link (docs/protocol/rooms.md §5): one Noise session per pair of
 * members (core/session, bound to the room, §4), each session message one frame:
 *
 *   0x40 ROOM ‖ padToBucket(canonical MessagePack app message)   (FRAME.ROOM, web/src/engine/wire.ts)
 *
 * App messages (`t` prefixed `room.`):
 *   { t: "room.hi",   name: str 1..40, rk?: bin(32) }      first frame each way: display name, room key
 *   { t: "room.msg",  id: str(22), at: uint, text: str }   a chat message (id = the sender's)
 *   { t: "room.rcpt", ids: [str(22), ...] ≤ 64 }           the receiver stored these messages
 *   { t: "room.bye" }                                      leaving the room on purpose
 *   { t: "room.state", s: bin }                            the newest host-signed room state (host.ts)
 *   { t: "room.key", e: uint, k: bin(32) }                 the room secret of epoch e, after a rotation
 *   { t: "room.host", k: bin(32), sig: bin(64) }           the host hands its role to the receiver
 *   { t: "room.rs", ri?: bin(16) }                         our pair ratchet's id (rooms/mailbox.ts)
 *   { t: "room.dr", d: bin ≤ 2048 }                        a frame sealed with the pair ratchet
 *   { t: "room.mbox", u: str, s: bin(24), k: bin(32), n?: uint }  our receiving queue for the
 *                                                          receiver, and its order (rooms.md §9)
 *
 * Everything decoded is bounded and validated; anything else is a typed error and the frame is
 * dropped (the session stays: one bad frame is not a reason to lose the member).
 */
import * as v from "valibot";
import { equalBytes } from "../../../../core/bytes.ts";
import {
  bytesSchema,
  type DecodeLimits,
  decodeWith,
  encodeCanonical,
  uintSchema,
} from "../../../../core/codec/codec.ts";
import { padToBucket, unpadBucket } from "../../../../core/codec/padding.ts";
import { err, ok, type Result } from "../../../../core/errors.ts";
import { MAX_TEXT_CHARS } from "../outgoing.ts";
import { FRAME, MAX_RECEIPT_IDS } from "../wire.ts";
import { MAX_STATE_BYTES } from "./host.ts";

/** Session frame type of room app messages (the rooms range 0x40–0x47 of FRAME). */
export const ROOM_FRAME = FRAME.ROOM;
export const MAX_NAME_CHARS = 40;
/** A `room.dr` carries one small sealed frame (the pair ratchet's first message). */
export const MAX_SEALED_SYNC = 2048;
const ID = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{22}$/));

const schema = v.variant("t", [
  v.strictObject({
    t: v.literal("room.hi"),
    name: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_NAME_CHARS)),
    /** The sender's member room key (Ed25519 public): what the host role is handed over to (§8). */
    rk: v.optional(bytesSchema(32)),
  }),
  v.strictObject({
    t: v.literal("room.msg"),
    id: ID,
    at: uintSchema(),
    text: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_TEXT_CHARS)),
  }),
  v.strictObject({
    t: v.literal("room.rcpt"),
    ids: v.pipe(v.array(ID), v.minLength(1), v.maxLength(MAX_RECEIPT_IDS)),
  }),
  v.strictObject({ t: v.literal("room.bye") }),
  /** The newest host-signed room state the sender holds (host.ts; verified by the receiver). */
  v.strictObject({ t: v.literal("room.state"), s: bytesSchema(1, MAX_STATE_BYTES) }),
  /** The room secret of epoch `e` (checked against the state's commitment). */
  v.strictObject({ t: v.literal("room.key"), e: uintSchema(0xffff_ffff), k: bytesSchema(32) }),
  /** Our pair ratchet's id with the receiver, if we hold one (mailbox.ts; compared like HELLO). */
  v.strictObject({ t: v.literal("room.rs"), ri: v.optional(bytesSchema(16)) }),
  /** A room frame sealed with the pair ratchet (the initiator's first, so both ends can send). */
  v.strictObject({ t: v.literal("room.dr"), d: bytesSchema(1, MAX_SEALED_SYNC) }),
  /** Leave messages for me here (our receiving queue for the receiver; mailbox.md `mbox`). */
  v.strictObject({
    t: v.literal("room.mbox"),
    u: v.pipe(v.string(), v.maxLength(256), v.regex(/^wss?:\/\/\S+$/)),
    s: bytesSchema(24),
    k: bytesSchema(32),
    /** The queue's order among ours for the receiver: an older one read late is ignored (§9). */
    n: v.optional(uintSchema()),
  }),
  /** The host hands its role to the receiver's member room key `k` (host.ts, hand-over). */
  v.strictObject({ t: v.literal("room.host"), k: bytesSchema(32), sig: bytesSchema(64) }),
]);

export type RoomMessage = v.InferOutput<typeof schema>;

const LIMITS = {
  maxBytes: 4 * MAX_TEXT_CHARS + 256,
  maxStrLength: 4 * MAX_TEXT_CHARS,
  maxArrayLength: MAX_RECEIPT_IDS,
  maxMapLength: 5, // room.mbox
  maxBinLength: MAX_STATE_BYTES,
};

export function encodeRoomFrame(m: RoomMessage): Uint8Array {
  return encodeTypedFrame(ROOM_FRAME, m);
}

export function decodeRoomFrame(frame: Uint8Array): Result<RoomMessage> {
  return decodeTypedFrame(frame, ROOM_FRAME, schema, LIMITS, "room");
}

/**
 * `type ‖ padToBucket(canonical MessagePack)`: one frame on a member session, as room messages
 * and room call signals (calls/room-wire.ts) are sent.
 */
export function encodeTypedFrame(type: number, m: unknown): Uint8Array {
  const body = padToBucket(encodeCanonical(m));
  const out = new Uint8Array(1 + body.length);
  out[0] = type;
  out.set(body, 1);
  return out;
}

/** The strict reading of `encodeTypedFrame`: its type, valid padding, the schema, canonical bytes. */
export function decodeTypedFrame<S extends v.GenericSchema>(
  frame: Uint8Array,
  type: number,
  messageSchema: S,
  limits: DecodeLimits,
  what: string,
): Result<v.InferOutput<S>> {
  if (frame.length < 2 || frame[0] !== type) return err("LOFT_ERR_UNKNOWN_TYPE", `not a ${what} frame`);
  const body = unpadBucket(frame.subarray(1));
  if (!body.ok) return body;
  const decoded = decodeWith(body.value, messageSchema, limits);
  if (!decoded.ok) return decoded;
  if (!equalBytes(encodeCanonical(decoded.value), body.value))
    return err("LOFT_ERR_MALFORMED", `${what} message is not canonical MessagePack`);
  return ok(decoded.value);
}
