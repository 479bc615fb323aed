/**
 * Signed SREMP requests (SREMP 0.1-draft §rendezvous REGISTER_REQUEST "The signature prevents
 * unauthorized registration", §relay RELAY_REGISTER / RETRIEVE_MESSAGES `auth_signature`,
 * STORE_MESSAGE `sender_signature`, DELIVERY_CONFIRMATION `signature`).
 *
 * The draft does not say what is signed. Loft's definition (docs/protocol/wire.md, "Signed
 * requests"): the identity key signs
 *
 *     context ‖ 0x00 ‖ canonical MessagePack of the message without its signature field and `id`
 *
 * (core/identity/signature.ts; `t` stays in, `id` is transport correlation and is not signed).
 * Each type has its own context, so no signature can be moved to another type. REGISTER_REQUEST,
 * RELAY_REGISTER and RETRIEVE_MESSAGES carry a millisecond `timestamp` and a random 16-byte
 * `nonce`: a server refuses a timestamp outside ±maxSkewMs of its clock and a (key, nonce) pair
 * it has already seen inside that window (`ReplayGuard`), so a captured request cannot be
 * replayed. An optional `audience` (the server's URL or host) binds a request to one server.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { toHex } from "../bytes.ts";
import { encodeCanonical, validate } from "../codec/codec.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { err, ok, type Result } from "../errors.ts";
import { decodeIdentity, encodeIdentity, type Identity, type UserIdentity } from "../identity/identity.ts";
import { SIGNATURE_CONTEXTS, signWithContext, verifyWithContext } from "../identity/signature.ts";
import {
  type DeliveryConfirmation,
  type DnsEndpoint,
  deliveryConfirmationSchema,
  NONCE_BYTES,
  type RegisterRequest,
  type RelayCapabilities,
  type RelayRegister,
  type RetrieveMessages,
  registerRequestSchema,
  relayRegisterSchema,
  retrieveMessagesSchema,
  type StoreMessage,
  storeMessageSchema,
} from "./sremp.ts";

/** Default accepted clock difference between a signed request and the server (±5 minutes). */
export const DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000;

/** The payload under a request signature: the message minus `id` and minus its signature field. */
export function requestSignedPayload(message: Record<string, unknown>, signatureField: string): Uint8Array {
  const rest: Record<string, unknown> = {};
  for (const k of Object.keys(message)) if (k !== "id" && k !== signatureField) rest[k] = message[k];
  return encodeCanonical(rest);
}

export interface FreshnessOptions {
  /** The verifier's clock, ms since the epoch. */
  now: number;
  /** Accepted |now − timestamp| (default DEFAULT_MAX_SKEW_MS). */
  maxSkewMs?: number;
  /** When set, the request must name exactly this audience. */
  audience?: string;
}

function checkFreshness(
  m: { timestamp: number; audience?: string | undefined },
  opts: FreshnessOptions,
): Result<true> {
  const skew = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  if (Math.abs(opts.now - m.timestamp) > skew)
    return err("LOFT_ERR_REPLAY", `timestamp ${m.timestamp} is outside ±${skew} ms of ${opts.now}`);
  if (opts.audience !== undefined && m.audience !== opts.audience)
    return err("LOFT_ERR_REPLAY", "request is addressed to another server (audience)");
  return ok(true);
}

function freshNonce(nonce: Uint8Array | undefined): Uint8Array {
  if (nonce === undefined) return randomBytes(NONCE_BYTES);
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) throw new RangeError("nonce: 16 bytes");
  return nonce;
}

function withOptional<T extends object>(base: T, extra: Record<string, unknown>): T {
  const out = { ...base } as Record<string, unknown>;
  for (const [k, value] of Object.entries(extra)) if (value !== undefined) out[k] = value;
  return out as T;
}

function finish<M>(unsigned: Record<string, unknown>, schema: Parameters<typeof validate>[1]): M {
  const checked = validate(unsigned, schema);
  if (!checked.ok) throw new RangeError(`cannot sign: ${checked.error.message}`);
  return checked.value as M;
}

// --- REGISTER_REQUEST ---------------------------------------------------------------------------

export interface RegisterFields {
  ttl_seconds: number;
  /** ms since the epoch; the server checks it against its clock. */
  timestamp: number;
  endpoint?: DnsEndpoint;
  audience?: string;
  /** 16 bytes; random when omitted (tests pass one for determinism). */
  nonce?: Uint8Array;
  id?: number;
}

/** Build and sign a REGISTER_REQUEST carrying the user's current identity. */
export async function signRegisterRequest(
  crypto: CryptoProvider,
  user: UserIdentity,
  fields: RegisterFields,
): Promise<RegisterRequest> {
  const unsigned = withOptional(
    {
      t: "REGISTER_REQUEST" as const,
      identity: encodeIdentity(user.identity),
      ttl_seconds: fields.ttl_seconds,
      timestamp: fields.timestamp,
      nonce: freshNonce(fields.nonce),
    },
    { endpoint: fields.endpoint, audience: fields.audience },
  );
  const signature = await signWithContext(
    crypto,
    user.privateIdentityKey,
    SIGNATURE_CONTEXTS.registerRequest,
    requestSignedPayload(unsigned, "signature"),
  );
  return finish<RegisterRequest>(
    withOptional({ ...unsigned, signature }, { id: fields.id }),
    registerRequestSchema,
  );
}

export interface VerifiedRegister {
  request: RegisterRequest;
  /** The decoded, signature-checked identity from the request. */
  identity: Identity;
}

/**
 * Verify a REGISTER_REQUEST: the embedded identity (canonical bytes, valid fields, identity
 * signature), the request signature under that identity's key, the timestamp window and the
 * audience. The caller still checks the nonce with a `ReplayGuard`.
 * Errors: LOFT_ERR_SCHEMA, LOFT_ERR_MALFORMED / LOFT_ERR_BAD_IDENTITY / LOFT_ERR_BAD_SIGNATURE
 * (identity), LOFT_ERR_BAD_SIGNATURE (request), LOFT_ERR_REPLAY (timestamp, audience).
 */
export async function verifyRegisterRequest(
  crypto: CryptoProvider,
  req: RegisterRequest,
  opts: FreshnessOptions,
): Promise<Result<VerifiedRegister>> {
  const checked = validate(req, registerRequestSchema);
  if (!checked.ok) return checked;
  const request = checked.value as RegisterRequest;
  const identity = await decodeIdentity(crypto, request.identity);
  if (!identity.ok) return identity;
  const good = await verifyWithContext(
    crypto,
    identity.value.verified.identity_key,
    SIGNATURE_CONTEXTS.registerRequest,
    requestSignedPayload(request, "signature"),
    request.signature,
  );
  if (!good) return err("LOFT_ERR_BAD_SIGNATURE", "REGISTER_REQUEST signature does not verify");
  const fresh = checkFreshness(request, opts);
  if (!fresh.ok) return fresh;
  return ok({ request, identity: identity.value });
}

// --- RELAY_REGISTER -----------------------------------------------------------------------------

export interface RelayRegisterFields {
  capabilities: RelayCapabilities;
  timestamp: number;
  audience?: string;
  nonce?: Uint8Array;
  id?: number;
}

export async function signRelayRegister(
  crypto: CryptoProvider,
  user: UserIdentity,
  fields: RelayRegisterFields,
): Promise<RelayRegister> {
  const unsigned = withOptional(
    {
      t: "RELAY_REGISTER" as const,
      identity: user.identity.verified.identity_key,
      capabilities: {
        max_message_size: fields.capabilities.max_message_size,
        max_storage_duration: fields.capabilities.max_storage_duration,
      },
      timestamp: fields.timestamp,
      nonce: freshNonce(fields.nonce),
    },
    { audience: fields.audience },
  );
  const auth_signature = await signWithContext(
    crypto,
    user.privateIdentityKey,
    SIGNATURE_CONTEXTS.relayRegister,
    requestSignedPayload(unsigned, "auth_signature"),
  );
  return finish<RelayRegister>(
    withOptional({ ...unsigned, auth_signature }, { id: fields.id }),
    relayRegisterSchema,
  );
}

/** Verify RELAY_REGISTER under its `identity` key, then the timestamp window and audience. */
export async function verifyRelayRegister(
  crypto: CryptoProvider,
  req: RelayRegister,
  opts: FreshnessOptions,
): Promise<Result<RelayRegister>> {
  const checked = validate(req, relayRegisterSchema);
  if (!checked.ok) return checked;
  const m = checked.value as RelayRegister;
  const good = await verifyWithContext(
    crypto,
    m.identity,
    SIGNATURE_CONTEXTS.relayRegister,
    requestSignedPayload(m, "auth_signature"),
    m.auth_signature,
  );
  if (!good) return err("LOFT_ERR_BAD_SIGNATURE", "RELAY_REGISTER auth_signature does not verify");
  const fresh = checkFreshness(m, opts);
  return fresh.ok ? ok(m) : fresh;
}

// --- RETRIEVE_MESSAGES --------------------------------------------------------------------------

export interface RetrieveFields {
  timestamp: number;
  since?: number;
  audience?: string;
  nonce?: Uint8Array;
  id?: number;
}

export async function signRetrieveMessages(
  crypto: CryptoProvider,
  user: UserIdentity,
  fields: RetrieveFields,
): Promise<RetrieveMessages> {
  const unsigned = withOptional(
    {
      t: "RETRIEVE_MESSAGES" as const,
      identity: user.identity.verified.identity_key,
      timestamp: fields.timestamp,
      nonce: freshNonce(fields.nonce),
    },
    { since: fields.since, audience: fields.audience },
  );
  const auth_signature = await signWithContext(
    crypto,
    user.privateIdentityKey,
    SIGNATURE_CONTEXTS.retrieveMessages,
    requestSignedPayload(unsigned, "auth_signature"),
  );
  return finish<RetrieveMessages>(
    withOptional({ ...unsigned, auth_signature }, { id: fields.id }),
    retrieveMessagesSchema,
  );
}

/** Verify RETRIEVE_MESSAGES under its `identity` key, then the timestamp window and audience. */
export async function verifyRetrieveMessages(
  crypto: CryptoProvider,
  req: RetrieveMessages,
  opts: FreshnessOptions,
): Promise<Result<RetrieveMessages>> {
  const checked = validate(req, retrieveMessagesSchema);
  if (!checked.ok) return checked;
  const m = checked.value as RetrieveMessages;
  const good = await verifyWithContext(
    crypto,
    m.identity,
    SIGNATURE_CONTEXTS.retrieveMessages,
    requestSignedPayload(m, "auth_signature"),
    m.auth_signature,
  );
  if (!good) return err("LOFT_ERR_BAD_SIGNATURE", "RETRIEVE_MESSAGES auth_signature does not verify");
  const fresh = checkFreshness(m, opts);
  return fresh.ok ? ok(m) : fresh;
}

// --- DELIVERY_CONFIRMATION ----------------------------------------------------------------------

/**
 * Signed by the recipient (`delivered_to`). Confirmations travel back to the sender long after
 * the fact, so there is no freshness window; `(message_id, delivered_to)` identifies one.
 */
export async function signDeliveryConfirmation(
  crypto: CryptoProvider,
  user: UserIdentity,
  fields: { message_id: number; timestamp: number; id?: number },
): Promise<DeliveryConfirmation> {
  const unsigned = {
    t: "DELIVERY_CONFIRMATION" as const,
    message_id: fields.message_id,
    delivered_to: user.identity.verified.identity_key,
    timestamp: fields.timestamp,
  };
  const signature = await signWithContext(
    crypto,
    user.privateIdentityKey,
    SIGNATURE_CONTEXTS.deliveryConfirmation,
    requestSignedPayload(unsigned, "signature"),
  );
  return finish<DeliveryConfirmation>(
    withOptional({ ...unsigned, signature }, { id: fields.id }),
    deliveryConfirmationSchema,
  );
}

export async function verifyDeliveryConfirmation(
  crypto: CryptoProvider,
  m: DeliveryConfirmation,
): Promise<Result<DeliveryConfirmation>> {
  const checked = validate(m, deliveryConfirmationSchema);
  if (!checked.ok) return checked;
  const c = checked.value as DeliveryConfirmation;
  return (await verifyWithContext(
    crypto,
    c.delivered_to,
    SIGNATURE_CONTEXTS.deliveryConfirmation,
    requestSignedPayload(c, "signature"),
    c.signature,
  ))
    ? ok(c)
    : err("LOFT_ERR_BAD_SIGNATURE", "DELIVERY_CONFIRMATION signature does not verify");
}

// --- STORE_MESSAGE ------------------------------------------------------------------------------

/**
 * `sender_signature` by the sender's identity key over {t, recipient, encrypted_blob, message_id}.
 * STORE_MESSAGE does not name its sender (SREMP); the verifier knows it from the authenticated
 * connection (RELAY_REGISTER) or from StoredMessage.sender.
 */
export async function signStoreMessage(
  crypto: CryptoProvider,
  user: UserIdentity,
  fields: { recipient: Uint8Array; encrypted_blob: Uint8Array; message_id: number; id?: number },
): Promise<StoreMessage> {
  const unsigned = {
    t: "STORE_MESSAGE" as const,
    recipient: fields.recipient,
    encrypted_blob: fields.encrypted_blob,
    message_id: fields.message_id,
  };
  const sender_signature = await signWithContext(
    crypto,
    user.privateIdentityKey,
    SIGNATURE_CONTEXTS.storeMessage,
    requestSignedPayload(unsigned, "sender_signature"),
  );
  return finish<StoreMessage>(
    withOptional({ ...unsigned, sender_signature }, { id: fields.id }),
    storeMessageSchema,
  );
}

export async function verifyStoreMessage(
  crypto: CryptoProvider,
  m: StoreMessage,
  senderIdentityKey: Uint8Array,
): Promise<Result<StoreMessage>> {
  const checked = validate(m, storeMessageSchema);
  if (!checked.ok) return checked;
  const s = checked.value as StoreMessage;
  return (await verifyWithContext(
    crypto,
    senderIdentityKey,
    SIGNATURE_CONTEXTS.storeMessage,
    requestSignedPayload(s, "sender_signature"),
    s.sender_signature,
  ))
    ? ok(s)
    : err("LOFT_ERR_BAD_SIGNATURE", "STORE_MESSAGE sender_signature does not verify");
}

// --- replay refusal ---------------------------------------------------------------------------

export interface ReplayGuardOptions {
  /** The freshness window the server enforces (± ms); a nonce is remembered this long past its timestamp. */
  maxSkewMs?: number;
  /** Bound on remembered nonces; when full (after sweeping), new requests are refused. */
  maxEntries: number;
}

/**
 * Remembers (signer key, nonce) pairs for as long as their timestamp is acceptable, so a request
 * is accepted at most once. Pure: the caller passes `now`. Refuses (LOFT_ERR_REPLAY) a stale or
 * future timestamp, a repeated nonce, and — rather than forgetting a nonce early, which would
 * reopen the replay window — any new request while the table is full of live entries.
 */
export class ReplayGuard {
  readonly #maxSkewMs: number;
  readonly #maxEntries: number;
  readonly #seen = new Map<string, number>();

  constructor(options: ReplayGuardOptions) {
    this.#maxSkewMs = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
    this.#maxEntries = options.maxEntries;
    if (!Number.isSafeInteger(this.#maxEntries) || this.#maxEntries < 1) throw new RangeError("maxEntries");
  }

  get size(): number {
    return this.#seen.size;
  }

  check(signer: Uint8Array, nonce: Uint8Array, timestamp: number, now: number): Result<true> {
    if (Math.abs(now - timestamp) > this.#maxSkewMs)
      return err("LOFT_ERR_REPLAY", `timestamp outside ±${this.#maxSkewMs} ms`);
    const entry = `${toHex(signer)}:${toHex(nonce)}`;
    const expiry = this.#seen.get(entry);
    if (expiry !== undefined && expiry >= now) return err("LOFT_ERR_REPLAY", "nonce already used");
    if (this.#seen.size >= this.#maxEntries) this.sweep(now);
    if (this.#seen.size >= this.#maxEntries)
      return err("LOFT_ERR_REPLAY", "replay table full; try again later");
    this.#seen.set(entry, timestamp + this.#maxSkewMs);
    return ok(true);
  }

  /** Forget every nonce whose timestamp can no longer be accepted. */
  sweep(now: number): void {
    for (const [entry, expiry] of this.#seen) if (expiry < now) this.#seen.delete(entry);
  }
}
