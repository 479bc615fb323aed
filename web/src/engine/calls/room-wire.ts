/**
 * Room call signals (docs/protocol/calls.md §7): what sets up a room's voice call travels on the
 * room member sessions (rooms/mesh.ts: one Noise session per pair of members, bound to the room,
 * docs/protocol/rooms.md §4), one frame per message, in the calls range of the session frames:
 *
 *   0x30 ROOM_CALL ‖ padToBucket(canonical MessagePack message)
 *
 *   { t: "call.room.in",     a: bool }                           I am in the room's call (a: my microphone is on)
 *   { t: "call.room.out" }                                       I left the room's call
 *   { t: "call.room.offer",  sdp: str, fp: bin(32) }             the pair's media connection (the lower key offers)
 *   { t: "call.room.answer", sdp: str, fp: bin(32) }
 *   { t: "call.room.ice",    cand: str, mid: str, ml: uint }     one trickled ICE candidate
 *
 * Strict decoding: anything else (unknown key or `t`, wrong lengths, non-canonical encoding, bad
 * padding) is a typed error and the frame is dropped; the member session stays.
 */
import * as v from "valibot";
import { bytesSchema, uintSchema } from "../../../../core/codec/codec.ts";
import type { Result } from "../../../../core/errors.ts";
import { decodeTypedFrame, encodeTypedFrame } from "../rooms/wire.ts";
import { FINGERPRINT_BYTES, MAX_CANDIDATE_CHARS, MAX_SDP_CHARS } from "./wire.ts";

/** Session frame type of room call messages (the calls range 0x30–0x37 of FRAME, ../wire.ts). */
export const ROOM_CALL_FRAME = 0x30;
const MAX_MID_CHARS = 32;

const sdp = v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_SDP_CHARS));
const fp = bytesSchema(FINGERPRINT_BYTES);

const schema = v.variant("t", [
  v.strictObject({ t: v.literal("call.room.in"), a: v.boolean() }),
  v.strictObject({ t: v.literal("call.room.out") }),
  v.strictObject({ t: v.literal("call.room.offer"), sdp, fp }),
  v.strictObject({ t: v.literal("call.room.answer"), sdp, fp }),
  v.strictObject({
    t: v.literal("call.room.ice"),
    cand: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_CANDIDATE_CHARS)),
    mid: v.pipe(v.string(), v.maxLength(MAX_MID_CHARS)),
    ml: uintSchema(64),
  }),
]);

export type RoomCallSignal = v.InferOutput<typeof schema>;

const LIMITS = {
  maxBytes: MAX_SDP_CHARS * 4 + 256,
  maxStrLength: MAX_SDP_CHARS * 4,
  maxBinLength: FINGERPRINT_BYTES,
  maxArrayLength: 0,
  maxMapLength: 4,
};

export function isRoomCallFrame(frame: Uint8Array): boolean {
  return frame[0] === ROOM_CALL_FRAME;
}

export function encodeRoomCallFrame(m: RoomCallSignal): Uint8Array {
  return encodeTypedFrame(ROOM_CALL_FRAME, m);
}

export function decodeRoomCallFrame(frame: Uint8Array): Result<RoomCallSignal> {
  return decodeTypedFrame(frame, ROOM_CALL_FRAME, schema, LIMITS, "room call");
}
