/**
 * Schemas for every SREMP 0.1-draft message (§rendezvous, §relay, §error handling), as tagged
 * envelopes (core/codec/envelope.ts). Field names are SREMP's; Loft's concrete representations
 * (docs/protocol/wire.md, "Types"):
 * - `DateTime<Utc>` → u64 milliseconds since the Unix epoch (≤ 2^53−1);
 * - `Duration`      → u32 seconds;
 * - `MessageId`     → u64 (≤ 2^53−1);
 * - `Ed25519PublicKey` → bin 32, `Ed25519Signature` → bin 64;
 * - `Identity` inside a message → bin holding the canonical encoded Identity (core/identity), so a
 *   request's signature covers the identity's exact bytes and `decodeIdentity` checks them;
 * - `Optional<T>` → the field is absent (never nil);
 * - `DNSEndpoint` → `{host, port}`; `SocketAddr` in LIST_SERVERS_RESPONSE → a server URL
 *   (`wss://…`, `https://…`): browsers can only reach URLs.
 * Deviations from the draft, each for a reason given in wire.md: REGISTER_REQUEST, RELAY_REGISTER
 * and RETRIEVE_MESSAGES carry `timestamp` + 16-byte `nonce` (replay refusal) and may carry an
 * `audience` (the server they are meant for); `endpoint` is optional (a browser peer is reached
 * through signaling, not at a TCP address); the typed ERROR reply is new.
 */
import * as v from "valibot";
import { uintSchema } from "../codec/codec.ts";
import {
  binSchema,
  createWireCodec,
  defineMessage,
  type MessageOf,
  messageSchema,
  textSchema,
} from "../codec/envelope.ts";
import { serverUrlSchema } from "../codec/server-url.ts";
import { MAX_IDENTITY_BYTES } from "../identity/identity.ts";

export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const NONCE_BYTES = 16;
/** An encrypted blob must leave room for its STORE_MESSAGE fields inside one 65535-byte frame. */
export const MAX_ENCRYPTED_BLOB_BYTES = 64 * 1024 - 1024;
export const MAX_ERROR_MESSAGE_CHARS = 256;
export const MAX_HOST_CHARS = 253;
export const MAX_AUDIENCE_CHARS = 512;
export const MAX_SERVERS = 64;
export const MAX_PEERS_PER_LOOKUP = 128;
export const MAX_MESSAGES_PER_BATCH = 256;

const key = binSchema(KEY_BYTES);
const signature = binSchema(SIGNATURE_BYTES);
const nonce = binSchema(NONCE_BYTES);
const u16 = uintSchema(0xffff);
const u32 = uintSchema(0xffff_ffff);
const u64 = uintSchema();
const timeMs = uintSchema();
const encodedIdentity = binSchema(1, MAX_IDENTITY_BYTES);
const text = (max: number) => textSchema(0, max);

/** RFC 1123 host name, IPv4 dotted quad, or bracket-less IPv6 literal; no spaces or controls. */
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|[0-9A-Fa-f:.]{2,45})$/;
/** Stable error code: upper snake case (a LoftErrorCode or a module's own). */
const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;

/** SREMP §rendezvous `DNSEndpoint := { host: DNSName | IPAddress, port: u16 }`. */
export const dnsEndpointSchema = v.strictObject({
  host: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_HOST_CHARS), v.regex(HOST)),
  port: u16,
});
export type DnsEndpoint = v.InferOutput<typeof dnsEndpointSchema>;

/** SREMP §rendezvous `PeerInfo`. */
export const peerInfoSchema = v.strictObject({
  identity: encodedIdentity,
  endpoint: v.optional(dnsEndpointSchema),
  last_seen: timeMs,
  online: v.boolean(),
});
export type PeerInfo = v.InferOutput<typeof peerInfoSchema>;

/** SREMP §relay `RelayCapabilities` (max_storage_duration: seconds). */
export const relayCapabilitiesSchema = v.strictObject({
  max_message_size: u32,
  max_storage_duration: u32,
});
export type RelayCapabilities = v.InferOutput<typeof relayCapabilitiesSchema>;

/** SREMP §relay `StoredMessage`. */
export const storedMessageSchema = v.strictObject({
  message_id: u64,
  sender: key,
  timestamp: timeMs,
  encrypted_blob: binSchema(0, MAX_ENCRYPTED_BLOB_BYTES),
});
export type StoredMessage = v.InferOutput<typeof storedMessageSchema>;

// --- rendezvous (SREMP §rendezvous) -----------------------------------------------------------

export const registerRequestSchema = messageSchema("REGISTER_REQUEST", {
  identity: encodedIdentity,
  endpoint: v.optional(dnsEndpointSchema),
  ttl_seconds: u32,
  timestamp: timeMs,
  nonce,
  audience: v.optional(textSchema(1, MAX_AUDIENCE_CHARS)),
  signature,
});
export type RegisterRequest = v.InferOutput<typeof registerRequestSchema>;

export const registerResponseSchema = messageSchema("REGISTER_RESPONSE", {
  success: v.boolean(),
  expires_at: timeMs,
  renewal_interval: u32,
  error_message: v.optional(text(MAX_ERROR_MESSAGE_CHARS)),
});
export type RegisterResponse = v.InferOutput<typeof registerResponseSchema>;

/** Exactly one of "look up this key" and "list everyone" (SREMP: "at most one peer" vs "all"). */
export const lookupRequestSchema = v.pipe(
  messageSchema("LOOKUP_REQUEST", { target_identity: v.optional(key), list_all: v.boolean() }),
  v.check(
    (m) => (m.target_identity !== undefined) !== m.list_all,
    "give target_identity, or list_all: true — exactly one",
  ),
);
export type LookupRequest = v.InferOutput<typeof lookupRequestSchema>;

export const lookupResponseSchema = messageSchema("LOOKUP_RESPONSE", {
  peers: v.pipe(v.array(peerInfoSchema), v.maxLength(MAX_PEERS_PER_LOOKUP)),
  error_message: v.optional(text(MAX_ERROR_MESSAGE_CHARS)),
});
export type LookupResponse = v.InferOutput<typeof lookupResponseSchema>;

export const listServersRequestSchema = messageSchema("LIST_SERVERS_REQUEST", {});
export type ListServersRequest = v.InferOutput<typeof listServersRequestSchema>;

export const listServersResponseSchema = messageSchema("LIST_SERVERS_RESPONSE", {
  servers: v.pipe(v.array(serverUrlSchema), v.maxLength(MAX_SERVERS)),
  timestamp: timeMs,
});
export type ListServersResponse = v.InferOutput<typeof listServersResponseSchema>;

// --- relay (SREMP §relay) -------------------------------------------------------------------------

export const relayRegisterSchema = messageSchema("RELAY_REGISTER", {
  identity: key,
  capabilities: relayCapabilitiesSchema,
  timestamp: timeMs,
  nonce,
  audience: v.optional(textSchema(1, MAX_AUDIENCE_CHARS)),
  auth_signature: signature,
});
export type RelayRegister = v.InferOutput<typeof relayRegisterSchema>;

export const storeMessageSchema = messageSchema("STORE_MESSAGE", {
  recipient: key,
  encrypted_blob: binSchema(0, MAX_ENCRYPTED_BLOB_BYTES),
  sender_signature: signature,
  message_id: u64,
});
export type StoreMessage = v.InferOutput<typeof storeMessageSchema>;

export const storeResponseSchema = messageSchema("STORE_RESPONSE", {
  success: v.boolean(),
  stored_at: timeMs,
  message_id: u64,
});
export type StoreResponse = v.InferOutput<typeof storeResponseSchema>;

export const retrieveMessagesSchema = messageSchema("RETRIEVE_MESSAGES", {
  identity: key,
  since: v.optional(timeMs),
  timestamp: timeMs,
  nonce,
  audience: v.optional(textSchema(1, MAX_AUDIENCE_CHARS)),
  auth_signature: signature,
});
export type RetrieveMessages = v.InferOutput<typeof retrieveMessagesSchema>;

export const messageBatchSchema = messageSchema("MESSAGE_BATCH", {
  messages: v.pipe(v.array(storedMessageSchema), v.maxLength(MAX_MESSAGES_PER_BATCH)),
  has_more: v.boolean(),
});
export type MessageBatch = v.InferOutput<typeof messageBatchSchema>;

export const deliveryConfirmationSchema = messageSchema("DELIVERY_CONFIRMATION", {
  message_id: u64,
  delivered_to: key,
  timestamp: timeMs,
  signature,
});
export type DeliveryConfirmation = v.InferOutput<typeof deliveryConfirmationSchema>;

// --- errors (SREMP §error handling: "must define consistent error handling") ----------------------

/** A typed error reply: a stable code (LoftErrorCode or a module's own) and a human-readable message. */
export const errorReplySchema = messageSchema("ERROR", {
  code: v.pipe(v.string(), v.regex(ERROR_CODE)),
  message: text(MAX_ERROR_MESSAGE_CHARS),
});
export type ErrorReply = v.InferOutput<typeof errorReplySchema>;

/** Build an ERROR reply from a LoftError (or any code), echoing the request id when known. */
export function errorReply(code: string, message: string, id?: number): ErrorReply {
  let text = message.replace(/\p{Cs}/gu, "\uFFFD");
  if (text.length > MAX_ERROR_MESSAGE_CHARS) {
    text = text.slice(0, MAX_ERROR_MESSAGE_CHARS);
    if (/[\uD800-\uDBFF]$/.test(text)) text = text.slice(0, -1); // never cut a surrogate pair in half
  }
  const reply: ErrorReply = { t: "ERROR", code, message: text };
  if (id !== undefined) reply.id = id;
  return reply;
}

// --- the codec --------------------------------------------------------------------------------

/** Every SREMP message type (VERSION_HEADER lives in version.ts, CHUNKED_MESSAGE in chunk.ts). */
export const SREMP_MESSAGES = [
  defineMessage(registerRequestSchema),
  defineMessage(registerResponseSchema),
  defineMessage(lookupRequestSchema),
  defineMessage(lookupResponseSchema),
  defineMessage(listServersRequestSchema),
  defineMessage(listServersResponseSchema),
  defineMessage(relayRegisterSchema),
  defineMessage(storeMessageSchema),
  defineMessage(storeResponseSchema),
  defineMessage(retrieveMessagesSchema),
  defineMessage(messageBatchSchema),
  defineMessage(deliveryConfirmationSchema),
  defineMessage(errorReplySchema),
] as const;

export type SrempMessage = MessageOf<(typeof SREMP_MESSAGES)[number]>;

/** Codec for all SREMP messages, 65535-byte frames. */
export const srempCodec = createWireCodec(SREMP_MESSAGES);
