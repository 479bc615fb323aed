/**
 * Wire messages of the signaling/rendezvous service (docs/protocol/signaling.md), after the
 * SREMP 0.1 draft §rendezvous (REGISTER / LOOKUP / LIST_SERVERS) extended with what a browser
 * needs to set up a WebRTC data channel: signed OFFER / ANSWER / ICE / BYE envelopes forwarded
 * between registered identities, and presence subscriptions.
 *
 * Every frame is one canonical MessagePack map in the type-tagged envelope of
 * core/codec/envelope.ts (string tag `t`, optional u32 request `id`), preceded in each direction by
 * the VERSION_HEADER of core/codec/version.ts. Client requests carry an `id` that the server echoes
 * in the reply (or in a typed ERROR) so a client can match answers to requests; pushes carry none.
 *
 * Signatures (Ed25519, RFC 8032, by the identity key) follow core/identity/signature.ts: each
 * covers `context ‖ 0x00 ‖ canonical MessagePack`, so a signature made for one purpose can never
 * be replayed as another (REGISTER vs envelope vs identity).
 */
import * as v from "valibot";
import { bytesSchema, encodeCanonical, uintSchema } from "../codec/codec.ts";
import { createWireCodec, defineMessage, type MessageOf, messageSchema } from "../codec/envelope.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { err, ok, type Result } from "../errors.ts";
import { signWithContext, verifyWithContext } from "../identity/signature.ts";
import {
  errorReplySchema,
  listServersRequestSchema,
  listServersResponseSchema,
  lookupRequestSchema,
  lookupResponseSchema,
  registerRequestSchema,
  registerResponseSchema,
} from "./sremp.ts";

/** Protocol constants (docs/protocol/signaling.md, Limits). */
export const SIGNALING = {
  /** Signature context of SIGNAL envelopes (core/identity/signature.ts). */
  ENVELOPE_CONTEXT: "loft/signal/envelope/v1",
  KEY_BYTES: 32,
  SIGNATURE_BYTES: 64,
  NONCE_BYTES: 16,
  /** Hard ceiling of an envelope payload whatever the operator sets (the server may lower it). */
  MAX_PAYLOAD_BYTES: 60_000,
  /** Keys in one SUBSCRIBE (and entries in one PRESENCE): 1024 × 35 bytes fits one frame. */
  MAX_KEYS_PER_SUBSCRIBE: 1_024,
  /** A room rendezvous is named by a SHA-256 of the room id (docs/protocol/rooms.md §2). */
  ROOM_HASH_BYTES: 32,
  /** Hard ceiling of a room's member cap whatever a client asks (the server may lower it). */
  MAX_ROOM_MEMBERS: 255,
  /** ICE_SERVERS: servers in one push, URLs per server, characters per URL / username / credential. */
  MAX_ICE_SERVERS: 8,
  MAX_ICE_URLS: 8,
  MAX_ICE_URL_CHARS: 512,
  MAX_ICE_CREDENTIAL_CHARS: 256,
} as const;

/** Stable error codes carried by ERROR replies (docs/protocol/signaling.md, Error codes). */
export const SIGNALING_ERROR_CODES = [
  "MALFORMED",
  "UNKNOWN_TYPE",
  "BAD_IDENTITY",
  "BAD_SIGNATURE",
  "STALE_TIMESTAMP",
  "WRONG_AUDIENCE",
  "REPLAY",
  "BAD_CHALLENGE",
  "NOT_REGISTERED",
  "ALREADY_REGISTERED",
  "STALE_IDENTITY",
  "FROM_MISMATCH",
  "PEER_OFFLINE",
  "PAYLOAD_TOO_LARGE",
  "RATE_LIMITED",
  "REGISTRY_FULL",
  "SOURCE_LIMIT",
  "BUSY",
  "TOO_MANY_SUBSCRIPTIONS",
  "LIST_ALL_DISABLED",
  "INTERNAL",
  "ROOM_FULL",
  "TOO_MANY_ROOMS",
  "UNAVAILABLE",
] as const;
export type SignalingErrorCode = (typeof SIGNALING_ERROR_CODES)[number];

/** WebSocket close codes used by the service (docs/protocol/signaling.md, Close codes). */
export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  MESSAGE_TOO_BIG: 1009,
  TRY_AGAIN_LATER: 1013,
  VERSION_EXPECTED: 4400,
  HELLO_TIMEOUT: 4408,
  UNSUPPORTED_VERSION: 4426,
  RATE_LIMIT: 4429,
} as const;

export const SIGNAL_KINDS = ["offer", "answer", "ice", "bye"] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];

// ---- schemas -------------------------------------------------------------------------------

const key = bytesSchema(SIGNALING.KEY_BYTES);
const sig = bytesSchema(SIGNALING.SIGNATURE_BYTES);
const nonce = bytesSchema(SIGNALING.NONCE_BYTES);
const u64 = uintSchema();
const u32 = uintSchema(0xffff_ffff);

/** The signed part of a SIGNAL envelope plus its signature. */
export const envelopeSchema = v.strictObject({
  from: key,
  to: key,
  kind: v.picklist(SIGNAL_KINDS),
  payload: bytesSchema(0, SIGNALING.MAX_PAYLOAD_BYTES),
  timestamp: u64,
  nonce,
  signature: sig,
});
export type SignalEnvelope = v.InferOutput<typeof envelopeSchema>;

// SREMP §rendezvous messages: schemas, signing and verification live in core/wire/sremp.ts and
// core/wire/signed.ts; this module only adds them to its codecs.
const REGISTER_REQUEST = defineMessage(registerRequestSchema);
const REGISTER_RESPONSE = defineMessage(registerResponseSchema);
const LOOKUP_REQUEST = defineMessage(lookupRequestSchema);
const LOOKUP_RESPONSE = defineMessage(lookupResponseSchema);
const LIST_SERVERS_REQUEST = defineMessage(listServersRequestSchema);
const LIST_SERVERS_RESPONSE = defineMessage(listServersResponseSchema);
const ERROR = defineMessage(errorReplySchema);

// Loft signaling messages.
const UNREGISTER = defineMessage(messageSchema("UNREGISTER", {}));
const UNREGISTER_RESPONSE = defineMessage(messageSchema("UNREGISTER_RESPONSE", {}));
const SIGNAL = defineMessage(messageSchema("SIGNAL", { envelope: envelopeSchema }));
const SIGNAL_ACK = defineMessage(messageSchema("SIGNAL_ACK", {}));
const SUBSCRIBE = defineMessage(
  messageSchema("SUBSCRIBE", {
    keys: v.pipe(v.array(key), v.maxLength(SIGNALING.MAX_KEYS_PER_SUBSCRIBE)),
    /** Show this connection's registration only to the identities in `keys` (its contacts). */
    only_watched: v.optional(v.boolean()),
  }),
);
const presenceEntry = v.strictObject({ key, online: v.boolean() });
export type PresenceEntry = v.InferOutput<typeof presenceEntry>;
const PRESENCE = defineMessage(
  messageSchema("PRESENCE", {
    peers: v.pipe(v.array(presenceEntry), v.maxLength(SIGNALING.MAX_KEYS_PER_SUBSCRIBE)),
  }),
);
const REGISTRATION_ENDED = defineMessage(
  messageSchema("REGISTRATION_ENDED", { reason: v.picklist(["expired", "replaced"]) }),
);
const GOING_AWAY = defineMessage(messageSchema("GOING_AWAY", { reconnect_after_ms: u32 }));
/**
 * Pushed once, right after the server's VERSION_HEADER: 16 random bytes that every REGISTER on
 * this connection must carry as its `nonce` (docs/protocol/signaling.md, "Replay protection").
 * A signed REGISTER is thereby bound to one live connection of one server: it cannot be replayed
 * on another connection, after a restart, or at another server.
 */
const CHALLENGE = defineMessage(messageSchema("CHALLENGE", { challenge: nonce }));
// Room rendezvous (docs/protocol/rooms.md §2): members of a room meet under a hash of its id; the
// server never sees the id or the secret, only who is present under which hash.
const roomHash = bytesSchema(SIGNALING.ROOM_HASH_BYTES);
const ROOM_JOIN = defineMessage(
  messageSchema("ROOM_JOIN", {
    room: roomHash,
    /** The most members the joiner accepts in this room, itself included (2..255). */
    max: v.pipe(uintSchema(SIGNALING.MAX_ROOM_MEMBERS), v.minValue(2)),
  }),
);
const ROOM_LEAVE = defineMessage(messageSchema("ROOM_LEAVE", { room: roomHash }));
const ROOM_MEMBERS = defineMessage(
  messageSchema("ROOM_MEMBERS", {
    room: roomHash,
    members: v.pipe(v.array(key), v.maxLength(SIGNALING.MAX_ROOM_MEMBERS)),
  }),
);
const ROOM_LEAVE_RESPONSE = defineMessage(messageSchema("ROOM_LEAVE_RESPONSE", {}));
const ROOM_PRESENCE = defineMessage(
  messageSchema("ROOM_PRESENCE", { room: roomHash, key, present: v.boolean() }),
);
const iceText = (max: number) => v.pipe(v.string(), v.minLength(1), v.maxLength(max));
const iceServerSchema = v.strictObject({
  urls: v.pipe(
    v.array(v.pipe(iceText(SIGNALING.MAX_ICE_URL_CHARS), v.regex(/^(stun|stuns|turn|turns):/))),
    v.minLength(1),
    v.maxLength(SIGNALING.MAX_ICE_URLS),
  ),
  username: v.optional(iceText(SIGNALING.MAX_ICE_CREDENTIAL_CHARS)),
  credential: v.optional(iceText(SIGNALING.MAX_ICE_CREDENTIAL_CHARS)),
});
export type IceServerEntry = v.InferOutput<typeof iceServerSchema>;
/**
 * Pushed after a REGISTER is accepted when the operator configured STUN/TURN servers, and again
 * after a renewal once half the credentials' lifetime has passed (docs/protocol/signaling.md,
 * "ICE_SERVERS"):
 * TURN credentials in coturn's REST scheme (`username` = expiry ":" tag, `credential` =
 * base64 HMAC-SHA1 of the username under the secret shared with the TURN server), valid until
 * `expires_at` (ms). The client adds them to its own servers for new connections and forgets them
 * after `expires_at`.
 */
const ICE_SERVERS = defineMessage(
  messageSchema("ICE_SERVERS", {
    servers: v.pipe(v.array(iceServerSchema), v.maxLength(SIGNALING.MAX_ICE_SERVERS)),
    expires_at: u64,
  }),
);
/** Frames a client sends after its VERSION_HEADER. */
export const CLIENT_MESSAGES = [
  REGISTER_REQUEST,
  UNREGISTER,
  LOOKUP_REQUEST,
  LIST_SERVERS_REQUEST,
  SIGNAL,
  SUBSCRIBE,
  ROOM_JOIN,
  ROOM_LEAVE,
] as const;
/** Frames a server sends after its VERSION_HEADER. */
export const SERVER_MESSAGES = [
  REGISTER_RESPONSE,
  UNREGISTER_RESPONSE,
  LOOKUP_RESPONSE,
  LIST_SERVERS_RESPONSE,
  SIGNAL,
  SIGNAL_ACK,
  PRESENCE,
  REGISTRATION_ENDED,
  GOING_AWAY,
  CHALLENGE,
  ROOM_MEMBERS,
  ROOM_LEAVE_RESPONSE,
  ROOM_PRESENCE,
  ICE_SERVERS,
  ERROR,
] as const;

export type ClientMessage = MessageOf<(typeof CLIENT_MESSAGES)[number]>;
export type ServerMessage = MessageOf<(typeof SERVER_MESSAGES)[number]>;

const codecOptions = { maxArrayLength: SIGNALING.MAX_KEYS_PER_SUBSCRIBE, maxMapLength: 64 };
/** The server's decoder of client frames (and the client's encoder). */
export const clientCodec = createWireCodec(CLIENT_MESSAGES, codecOptions);
/** The client's decoder of server frames (and the server's encoder). */
export const serverCodec = createWireCodec(SERVER_MESSAGES, codecOptions);

// ---- signatures ------------------------------------------------------------------------------

/**
 * Signed bytes of an envelope (core/identity/signature.ts convention: `context ‖ 0x00 ‖ payload`):
 * context `loft/signal/envelope/v1`, payload the canonical MessagePack map
 * {from, to, kind, payload, timestamp, nonce} (keys sorted).
 */
export function envelopeSignedPayload(e: Omit<SignalEnvelope, "signature">): Uint8Array {
  return encodeCanonical({
    from: e.from,
    to: e.to,
    kind: e.kind,
    payload: e.payload,
    timestamp: e.timestamp,
    nonce: e.nonce,
  });
}

/** Sign an envelope with the sender's private identity key (Ed25519, RFC 8032). */
export async function signEnvelope(
  crypto: CryptoProvider,
  privateIdentityKey: Uint8Array,
  fields: Omit<SignalEnvelope, "signature">,
): Promise<SignalEnvelope> {
  const signature = await signWithContext(
    crypto,
    privateIdentityKey,
    SIGNALING.ENVELOPE_CONTEXT,
    envelopeSignedPayload(fields),
  );
  return { ...fields, signature: signature as Uint8Array<ArrayBuffer> };
}

/** Verify an envelope under its `from` key (strict RFC 8032); never throws. */
export async function verifyEnvelope(
  crypto: CryptoProvider,
  e: SignalEnvelope,
): Promise<Result<SignalEnvelope>> {
  return (await verifyWithContext(
    crypto,
    e.from,
    SIGNALING.ENVELOPE_CONTEXT,
    envelopeSignedPayload(e),
    e.signature,
  ))
    ? ok(e)
    : err("LOFT_ERR_BAD_SIGNATURE", "envelope signature does not verify under `from`");
}
