/**
 * The opaque `payload` of signaling envelopes as the chat engine fills it (docs/protocol/chat.md,
 * "Signaling payloads"). The signaling service forwards it without looking (core/wire/signaling.ts
 * signs it as part of the envelope); the receiving engine decodes it here, bounded and validated,
 * before anything reaches RTCPeerConnection:
 *
 *   offer / answer := { c: bin(8), sdp: str, rm?: bin(32) }   (`rm`, offers only: the room hash
 *                     the link is for — a room member's link, docs/protocol/rooms.md §3)
 *   ice            := { c: bin(8), cand: str, mid?: str, idx?: uint }
 *   bye            := { c: bin(8), r: "refused" | "glare" | "cancelled" | "busy" | "no-direct" }
 *                     ("no-direct": this peer has no direct transport at all — a headless peer,
 *                     cli/no-direct.ts — so the dialer goes to the relay at once)
 *   relay offer    := { c: bin(8), rm?: bin(32), rs: bin(24), ru: str }   (kind "offer": a live link
 *                     through the relay at `ru`; `rs` is the sender id of the dialer's receiving queue
 *                     there; `rm` as for a direct offer, docs/protocol/rooms.md §3)
 *   relay answer   := { c: bin(8), rs: bin(24) }            (kind "answer": the answerer's queue on
 *                     the same relay; each side secures the other's queue with its own key, SKEY)
 *
 * canonical MessagePack. `c` names one connection attempt: the dialer picks it at random, every
 * answer, candidate and bye for that attempt carries it, so a late candidate from an old attempt
 * cannot reach a new one.
 */
import * as v from "valibot";
import { equalBytes } from "../../../core/bytes.ts";
import { bytesSchema, decodeWith, encodeCanonical, uintSchema } from "../../../core/codec/codec.ts";
import { err, type Result } from "../../../core/errors.ts";
import type { SignalKind } from "../../../core/wire/signaling.ts";

export const CONN_ID_BYTES = 8;
/** A data-channel-only SDP is about 600 bytes; 12 000 leaves room without letting it grow large. */
export const MAX_SDP_CHARS = 12_000;
export const MAX_CANDIDATE_CHARS = 1_024;
export const BYE_REASONS = ["refused", "glare", "cancelled", "busy", "no-direct"] as const;
export type ByeReason = (typeof BYE_REASONS)[number];

const connId = bytesSchema(CONN_ID_BYTES);
export const ROOM_TAG_BYTES = 32;
const descriptionSchema = v.strictObject({
  c: connId,
  sdp: v.pipe(v.string(), v.maxLength(MAX_SDP_CHARS)),
  rm: v.optional(bytesSchema(ROOM_TAG_BYTES)),
});
const iceSchema = v.strictObject({
  c: connId,
  cand: v.pipe(v.string(), v.maxLength(MAX_CANDIDATE_CHARS)),
  mid: v.optional(v.pipe(v.string(), v.maxLength(64))),
  idx: v.optional(uintSchema(0xffff)),
});
const byeSchema = v.strictObject({ c: connId, r: v.picklist(BYE_REASONS) });
export const RELAY_QUEUE_ID_BYTES = 24;
export const MAX_RELAY_URL_CHARS = 256;
const relayOfferSchema = v.strictObject({
  c: connId,
  rm: v.optional(bytesSchema(ROOM_TAG_BYTES)),
  rs: bytesSchema(RELAY_QUEUE_ID_BYTES),
  ru: v.pipe(v.string(), v.maxLength(MAX_RELAY_URL_CHARS), v.regex(/^wss?:\/\/[^\s]+$/)),
});
const relayAnswerSchema = v.strictObject({ c: connId, rs: bytesSchema(RELAY_QUEUE_ID_BYTES) });

const LIMITS = { maxBytes: 16_384, maxStrLength: MAX_SDP_CHARS, maxMapLength: 4, maxArrayLength: 0 };

export type SignalPayload =
  | { kind: "offer" | "answer"; conn: Uint8Array; sdp: string; room?: Uint8Array }
  | { kind: "ice"; conn: Uint8Array; candidate: string; mid?: string; index?: number }
  | { kind: "bye"; conn: Uint8Array; reason: ByeReason }
  | { kind: "relay-offer"; conn: Uint8Array; url: string; sid: Uint8Array; room?: Uint8Array }
  | { kind: "relay-answer"; conn: Uint8Array; sid: Uint8Array };

/** The signaling envelope kind that carries a payload. */
export function envelopeKind(p: SignalPayload): SignalKind {
  return p.kind === "relay-offer" ? "offer" : p.kind === "relay-answer" ? "answer" : p.kind;
}

export function encodeSignalPayload(p: SignalPayload): Uint8Array {
  switch (p.kind) {
    case "offer":
    case "answer":
      return encodeCanonical({ c: p.conn, sdp: p.sdp, ...(p.room ? { rm: p.room } : {}) });
    case "ice":
      return encodeCanonical({ c: p.conn, cand: p.candidate, mid: p.mid, idx: p.index });
    case "bye":
      return encodeCanonical({ c: p.conn, r: p.reason });
    case "relay-offer":
      return encodeCanonical({ c: p.conn, ...(p.room ? { rm: p.room } : {}), rs: p.sid, ru: p.url });
    case "relay-answer":
      return encodeCanonical({ c: p.conn, rs: p.sid });
  }
}

/** Decode the payload of an envelope of `kind`; a typed error for anything malformed. */
export function decodeSignalPayload(kind: SignalKind, bytes: Uint8Array): Result<SignalPayload> {
  const r = decodeAny(kind, bytes);
  if (r.ok && !equalBytes(encodeSignalPayload(r.value), bytes))
    return err("LOFT_ERR_MALFORMED", "signal payload is not canonical MessagePack");
  return r;
}

function decodeAny(kind: SignalKind, bytes: Uint8Array): Result<SignalPayload> {
  switch (kind) {
    case "offer":
    case "answer": {
      const r = decodeWith(bytes, descriptionSchema, LIMITS);
      if (r.ok) {
        if (r.value.rm && kind !== "offer") return err("LOFT_ERR_SCHEMA", "only an offer names a room");
        const room = r.value.rm ? { room: r.value.rm } : {};
        return { ok: true, value: { kind, conn: r.value.c, sdp: r.value.sdp, ...room } };
      }
      if (kind === "offer") {
        const o = decodeWith(bytes, relayOfferSchema, LIMITS);
        if (o.ok)
          return {
            ok: true,
            value: {
              kind: "relay-offer",
              conn: o.value.c,
              url: o.value.ru,
              sid: o.value.rs,
              ...(o.value.rm ? { room: o.value.rm } : {}),
            },
          };
      } else {
        const a = decodeWith(bytes, relayAnswerSchema, LIMITS);
        if (a.ok) return { ok: true, value: { kind: "relay-answer", conn: a.value.c, sid: a.value.rs } };
      }
      return r;
    }
    case "ice": {
      const r = decodeWith(bytes, iceSchema, LIMITS);
      if (!r.ok) return r;
      return {
        ok: true,
        value: {
          kind,
          conn: r.value.c,
          candidate: r.value.cand,
          ...(r.value.mid === undefined ? {} : { mid: r.value.mid }),
          ...(r.value.idx === undefined ? {} : { index: r.value.idx }),
        },
      };
    }
    case "bye": {
      const r = decodeWith(bytes, byeSchema, LIMITS);
      return r.ok ? { ok: true, value: { kind, conn: r.value.c, reason: r.value.r } } : r;
    }
  }
}
