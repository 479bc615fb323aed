/**
 * Call signals: the application messages (`t: "call.*"`) a one-to-one call sends inside the
 * contact's ratchet session (docs/protocol/calls.md §2). They are members of the application
 * message schema of ../wire.ts (spread into its `variant`), so they are canonical MessagePack,
 * padded and ratchet-encrypted like a chat message, and never pass through signaling in clear.
 *
 *   { t: "call.offer",  c: bin(16), v: bool, sdp: str, fp: bin(32) }  start (or ICE-restart) call c
 *   { t: "call.answer", c: bin(16), sdp: str, fp: bin(32) }           accept call c / answer a restart
 *   { t: "call.ice",    c: bin(16), cand: str, mid: str, ml: uint }    one trickled ICE candidate
 *   { t: "call.ring",   c: bin(16) }                                   the callee's device is ringing
 *   { t: "call.media",  c: bin(16), a: bool, v: bool }                 sender's microphone / video on
 *   { t: "call.end",    c: bin(16), r: reason }                        call c is over, and why
 *
 * `fp` is the SHA-256 fingerprint of the sender's DTLS certificate for this call (RFC 8122 §5),
 * the one the media connection must present (calls.md §3).
 */
import * as v from "valibot";
import { bytesSchema, uintSchema } from "../../../../core/codec/codec.ts";

export const CALL_ID_BYTES = 16;
export const FINGERPRINT_BYTES = 32;
/** Longest SDP in an offer or answer (Chromium's audio+video offer is 5–8 KB). */
export const MAX_SDP_CHARS = 32_000;
/** Longest ICE candidate line (RFC 8839 §5.1 attributes fit well below). */
export const MAX_CANDIDATE_CHARS = 1_024;
const MAX_MID_CHARS = 32;

/** Why a call ended, as the other side is told (calls.md §4). */
export const END_REASONS = [
  "hangup", // an answered call ended by this side
  "cancel", // the caller gave up before an answer (the callee records a missed call)
  "decline", // the callee said no
  "busy", // the callee is in another call
  "timeout", // nobody answered in time (the callee records a missed call)
  "refused", // a check failed: the fingerprint, the SDP, an unknown call
  "failed", // the media connection could not be set up or was lost for good
  "unavailable", // no microphone / camera, or permission denied on the callee's side
] as const;
export type CallEndReason = (typeof END_REASONS)[number];

const callId = bytesSchema(CALL_ID_BYTES);
const fingerprint = bytesSchema(FINGERPRINT_BYTES);
const sdp = v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_SDP_CHARS));

export const CALL_SCHEMAS = [
  v.strictObject({ t: v.literal("call.offer"), c: callId, v: v.boolean(), sdp, fp: fingerprint }),
  v.strictObject({ t: v.literal("call.answer"), c: callId, sdp, fp: fingerprint }),
  v.strictObject({
    t: v.literal("call.ice"),
    c: callId,
    cand: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_CANDIDATE_CHARS)),
    mid: v.pipe(v.string(), v.maxLength(MAX_MID_CHARS)),
    ml: uintSchema(64),
  }),
  v.strictObject({ t: v.literal("call.ring"), c: callId }),
  v.strictObject({ t: v.literal("call.media"), c: callId, a: v.boolean(), v: v.boolean() }),
  v.strictObject({ t: v.literal("call.end"), c: callId, r: v.picklist(END_REASONS) }),
] as const;

export type CallSignal = v.InferOutput<(typeof CALL_SCHEMAS)[number]>;

export function isCallSignal(m: { t: string }): m is CallSignal {
  return m.t.startsWith("call.");
}
