/**
 * SREMP identities (SREMP 0.1-draft §identity; docs/design.md, "Cryptography"): an Ed25519 identity key
 * that never changes and *is* the contact id, an X25519 noise key used only as the Noise static
 * key (may rotate), a username, flags, optional extensions, a version (+1 on every change) and a
 * creation time. `IdentityVerifiedData` is MessagePack-encoded canonically and signed with the
 * identity key; nothing in an Identity is trusted before `verifyIdentity` / `decodeIdentity`.
 *
 * Exact bytes, with a worked example: docs/protocol/identity.md. Vectors:
 * docs/vectors/identity-vectors.json (scripts/gen-identity-vectors.ts).
 *
 * Representation decisions (documented in identity.md):
 * - `created` (SREMP `DateTime<Utc>`) is milliseconds since the Unix epoch, an unsigned integer
 *   ≤ 2^53−1, not a MessagePack timestamp extension: integers have one shortest encoding, which
 *   keeps the signed bytes canonical, and every MessagePack library reads them.
 * - `version` (SREMP u64) is an unsigned integer ≤ 2^53−1 so it round-trips through a JS number;
 *   a new identity starts at version 1.
 * - Optional fields are absent, never nil.
 * - The signature covers `"loft/sremp/identity/v1" ‖ 0x00 ‖ canonical(IdentityVerifiedData)`
 *   (signature.ts explains the context prefix).
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes } from "@noble/hashes/utils.js";
import * as v from "valibot";
import { abytes, equalBytes, utf8, wipe } from "../bytes.ts";
import { decodeRaw, encodeCanonical, uintSchema, validate } from "../codec/codec.ts";
import { binSchema } from "../codec/envelope.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { err, LoftError, ok, type Result } from "../errors.ts";
import {
  SIGNATURE_CONTEXTS,
  signedBytes,
  signWithContext,
  signWithContextNoble,
  verifyWithContext,
} from "./signature.ts";
import { checkUsername, USERNAME_MAX_UTF8_BYTES, validateUsername } from "./username.ts";

/** SREMP §identity `Flags`. */
export interface IdentityFlags {
  uses_relay: boolean;
  is_machine_account: boolean;
  is_relay_server: boolean;
  prefers_async: boolean;
}

/** SREMP §identity `Extensions`, with Loft's bounds (see the MAX_* constants). */
export interface IdentityExtensions {
  profile_picture?: Uint8Array;
  /** Keys: 1–64 of `[a-z0-9._-]`, starting with a letter or digit (one sort order in every language). */
  additional_metadata?: Record<string, Uint8Array>;
}

/** SREMP §identity `IdentityVerifiedData`: every field here is covered by the signature. */
export interface IdentityVerifiedData {
  username: string;
  identity_key: Uint8Array;
  noise_key: Uint8Array;
  flags: IdentityFlags;
  extensions?: IdentityExtensions;
  version: number;
  /** Milliseconds since the Unix epoch (UTC). */
  created: number;
}

/** SREMP §identity `Identity`. */
export interface Identity {
  verified: IdentityVerifiedData;
  signature: Uint8Array;
}

/** SREMP §identity `UserIdentity`: MUST never leave the client. */
export interface UserIdentity {
  identity: Identity;
  /** Ed25519 secret key (RFC 8032 32-byte seed). */
  privateIdentityKey: Uint8Array;
  /** X25519 secret key (RFC 7748 scalar, clamped when used). */
  privateNoiseKey: Uint8Array;
}

export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const MAX_PROFILE_PICTURE_BYTES = 16 * 1024;
export const MAX_METADATA_ENTRIES = 16;
export const MAX_METADATA_KEY_CHARS = 64;
export const MAX_METADATA_VALUE_BYTES = 1024;
/** Bound on an encoded Identity: fits a Noise handshake payload and a 64 KiB frame with room to spare. */
export const MAX_IDENTITY_BYTES = 32 * 1024;
export const MAX_VERSION = Number.MAX_SAFE_INTEGER;

export const DEFAULT_FLAGS: Readonly<IdentityFlags> = Object.freeze({
  uses_relay: false,
  is_machine_account: false,
  is_relay_server: false,
  prefers_async: false,
});

const METADATA_KEY = /^[a-z0-9][a-z0-9._-]{0,63}$/;

// --- schemas (shape only; semantic checks follow in checkIdentityFields) -----------------------

export const identityFlagsSchema = v.strictObject({
  uses_relay: v.boolean(),
  is_machine_account: v.boolean(),
  is_relay_server: v.boolean(),
  prefers_async: v.boolean(),
});

export const identityExtensionsSchema = v.strictObject({
  profile_picture: v.optional(binSchema(0, MAX_PROFILE_PICTURE_BYTES)),
  additional_metadata: v.optional(
    v.pipe(
      v.record(v.pipe(v.string(), v.regex(METADATA_KEY)), binSchema(0, MAX_METADATA_VALUE_BYTES)),
      v.check(
        (m) => Object.keys(m).length <= MAX_METADATA_ENTRIES,
        `at most ${MAX_METADATA_ENTRIES} entries`,
      ),
    ),
  ),
});

export const identityVerifiedDataSchema = v.strictObject({
  username: v.pipe(v.string(), v.maxLength(USERNAME_MAX_UTF8_BYTES)),
  identity_key: binSchema(PUBLIC_KEY_BYTES),
  noise_key: binSchema(PUBLIC_KEY_BYTES),
  flags: identityFlagsSchema,
  extensions: v.optional(identityExtensionsSchema),
  version: uintSchema(MAX_VERSION),
  created: uintSchema(),
});

/** Shape of an Identity; wire messages embed it and then call `verifyIdentity`. */
export const identitySchema = v.strictObject({
  verified: identityVerifiedDataSchema,
  signature: binSchema(SIGNATURE_BYTES),
});

/** Decode limits for a standalone encoded Identity. */
export const IDENTITY_DECODE_LIMITS = {
  maxBytes: MAX_IDENTITY_BYTES,
  maxStrLength: 256,
  maxBinLength: MAX_PROFILE_PICTURE_BYTES,
  maxArrayLength: 0,
  maxMapLength: 32,
} as const;

// --- canonical form -----------------------------------------------------------------------------

/** The plain object that is encoded: only known fields, optional ones omitted when absent. */
function verifiedDataObject(d: IdentityVerifiedData): Record<string, unknown> {
  const out: Record<string, unknown> = {
    username: d.username,
    identity_key: d.identity_key,
    noise_key: d.noise_key,
    flags: {
      uses_relay: d.flags.uses_relay,
      is_machine_account: d.flags.is_machine_account,
      is_relay_server: d.flags.is_relay_server,
      prefers_async: d.flags.prefers_async,
    },
    version: d.version,
    created: d.created,
  };
  if (d.extensions !== undefined) {
    const ext: Record<string, unknown> = {};
    if (d.extensions.profile_picture !== undefined) ext.profile_picture = d.extensions.profile_picture;
    if (d.extensions.additional_metadata !== undefined) {
      const meta: Record<string, Uint8Array> = {};
      for (const k of Object.keys(d.extensions.additional_metadata))
        meta[k] = d.extensions.additional_metadata[k]!;
      ext.additional_metadata = meta;
    }
    out.extensions = ext;
  }
  return out;
}

/** Canonical MessagePack of IdentityVerifiedData (map keys in byte order, shortest integers). */
export function encodeIdentityVerifiedData(d: IdentityVerifiedData): Uint8Array {
  return encodeCanonical(verifiedDataObject(d));
}

/** The exact bytes the identity key signs (SREMP §identity + Loft's context prefix). */
export function identitySignedBytes(d: IdentityVerifiedData): Uint8Array {
  return signedBytes(SIGNATURE_CONTEXTS.identity, encodeIdentityVerifiedData(d));
}

/** Canonical MessagePack of an Identity: `{signature: bin 64, verified: {…}}`. */
export function encodeIdentity(i: Identity): Uint8Array {
  return encodeCanonical({ signature: i.signature, verified: verifiedDataObject(i.verified) });
}

// --- semantic checks ----------------------------------------------------------------------------

/** RFC 8032 §5.1.3 decoding, strict (y < p), and not of small order (RFC 8032 leaves this to us). */
export function isValidIdentityKey(key: Uint8Array): boolean {
  if (!(key instanceof Uint8Array) || key.length !== PUBLIC_KEY_BYTES) return false;
  try {
    return !ed25519.Point.fromBytes(key, false).isSmallOrder();
  } catch {
    return false;
  }
}

const P25519 = 2n ** 255n - 19n;

/**
 * The canonical (u < p) X25519 public keys whose DH output is all-zero for every private key
 * (RFC 7748 §6.1; X25519 clamps the scalar to a multiple of the cofactor 8): the points of order
 * dividing 8 on the curve and 4 on its twist — u = 0, 1, p − 1 and the two points of order 8;
 * the same list libsodium refuses. Compared byte for byte instead of probing each key with a
 * scalar multiplication in JavaScript, which took about a millisecond — 28 % of a whole session
 * setup's time on node:crypto, where every identity received is checked (docs/decisions.md,
 * "XXhfs handshakes on Node"). core/identity/identity.test.ts checks the list against that probe.
 */
const LOW_ORDER_U: readonly Uint8Array[] = [
  0n,
  1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
  P25519 - 1n,
].map((u) => Uint8Array.from({ length: 32 }, (_, i) => Number((u >> BigInt(8 * i)) & 0xffn)));

/**
 * A usable X25519 public key (RFC 7748 §5): canonical (u < p, top bit clear — the signed bytes
 * are then the only encoding) and not one of the low-order points whose DH output is all-zero
 * (`LOW_ORDER_U`).
 */
export function isValidNoiseKey(key: Uint8Array): boolean {
  if (!(key instanceof Uint8Array) || key.length !== PUBLIC_KEY_BYTES) return false;
  if ((key[31]! & 0x80) !== 0) return false;
  let u = 0n;
  for (let i = 31; i >= 0; i--) u = (u << 8n) | BigInt(key[i]!);
  if (u >= P25519) return false;
  return !LOW_ORDER_U.some((low) => equalBytes(low, key));
}

function checkIdentityFields(d: IdentityVerifiedData): Result<IdentityVerifiedData> {
  const name = checkUsername(d.username);
  if (!name.ok) return name as Result<never>;
  if (!isValidIdentityKey(d.identity_key))
    return err("LOFT_ERR_BAD_IDENTITY", "identity_key: not a valid Ed25519 public key");
  if (!isValidNoiseKey(d.noise_key)) return err("LOFT_ERR_BAD_IDENTITY", "noise_key: not a valid X25519 key");
  return ok(d);
}

// --- verification and decoding ------------------------------------------------------------------

function copyIdentity(i: Identity): Identity {
  const d = i.verified;
  const verified: IdentityVerifiedData = {
    username: d.username,
    identity_key: d.identity_key.slice(),
    noise_key: d.noise_key.slice(),
    flags: { ...d.flags },
    version: d.version,
    created: d.created,
  };
  if (d.extensions !== undefined) {
    const ext: IdentityExtensions = {};
    if (d.extensions.profile_picture !== undefined)
      ext.profile_picture = d.extensions.profile_picture.slice();
    if (d.extensions.additional_metadata !== undefined) {
      const meta: Record<string, Uint8Array> = {};
      for (const [k, value] of Object.entries(d.extensions.additional_metadata)) meta[k] = value.slice();
      ext.additional_metadata = meta;
    }
    verified.extensions = ext;
  }
  return { verified, signature: i.signature.slice() };
}

/**
 * SREMP §identity "Verification": check the shape, the field rules (username, key validity) and the
 * Ed25519 signature, with `crypto`'s Ed25519 (core/crypto/provider.ts: native where the platform
 * has it, strict in every backend). Returns a fresh copy that shares no buffers with the input.
 * Errors: LOFT_ERR_SCHEMA (shape), LOFT_ERR_BAD_IDENTITY (fields), LOFT_ERR_FRAME_TOO_LARGE,
 * LOFT_ERR_BAD_SIGNATURE.
 */
export async function verifyIdentity(crypto: CryptoProvider, i: unknown): Promise<Result<Identity>> {
  const checked = checkIdentityUnsigned(i);
  if (!checked.ok) return checked;
  const identity = checked.value;
  const payload = encodeIdentityVerifiedData(identity.verified);
  const good = await verifyWithContext(
    crypto,
    identity.verified.identity_key,
    SIGNATURE_CONTEXTS.identity,
    payload,
    identity.signature,
  );
  if (!good) return err("LOFT_ERR_BAD_SIGNATURE", "identity signature does not verify");
  return ok(copyIdentity(identity));
}

/** Everything `verifyIdentity` checks but the signature: shape, field rules, size. */
function checkIdentityUnsigned(i: unknown): Result<Identity> {
  const shaped = validate(i, identitySchema);
  if (!shaped.ok) return shaped;
  const identity = shaped.value as Identity;
  const fields = checkIdentityFields(identity.verified);
  if (!fields.ok) return fields as Result<never>;
  if (encodeIdentity(identity).length > MAX_IDENTITY_BYTES)
    return err("LOFT_ERR_FRAME_TOO_LARGE", `identity exceeds ${MAX_IDENTITY_BYTES} bytes`);
  return ok(identity);
}

/**
 * Decode an encoded Identity and verify it with `crypto` (see `verifyIdentity`). Any encoding other
 * than the canonical one is refused (LOFT_ERR_MALFORMED), so an identity has exactly one byte form
 * and cannot be malleated.
 */
export async function decodeIdentity(crypto: CryptoProvider, bytes: Uint8Array): Promise<Result<Identity>> {
  const shaped = decodeCanonicalIdentity(bytes);
  return shaped.ok ? verifyIdentity(crypto, shaped.value) : shaped;
}

function decodeCanonicalIdentity(bytes: Uint8Array): Result<unknown> {
  const raw = decodeRaw(bytes, IDENTITY_DECODE_LIMITS);
  if (!raw.ok) return raw;
  const shaped = validate(raw.value, identitySchema);
  if (!shaped.ok) return shaped;
  if (!equalBytes(encodeIdentity(shaped.value as Identity), bytes))
    return err("LOFT_ERR_MALFORMED", "identity is not in canonical MessagePack form");
  return ok(shaped.value);
}

// --- creation and update -----------------------------------------------------------------------

const SEED_SALT = utf8("loft/identity-seed/v1");

/** Derive both secret keys from one 32-byte seed (HKDF-SHA256, RFC 5869), for vectors and restore. */
function deriveSecrets(seed: Uint8Array): { identity: Uint8Array; noise: Uint8Array } {
  abytes(seed, 32, "seed");
  return {
    identity: hkdf(sha256, seed, SEED_SALT, utf8("ed25519 identity key"), 32),
    noise: hkdf(sha256, seed, SEED_SALT, utf8("x25519 noise key"), 32),
  };
}

/** Derive a replacement noise secret from a 32-byte seed (distinct label from deriveSecrets). */
function deriveNoiseSecret(seed: Uint8Array): Uint8Array {
  abytes(seed, 32, "noiseSeed");
  return hkdf(sha256, seed, SEED_SALT, utf8("x25519 rotated noise key"), 32);
}

function assertTime(now: number): void {
  if (!Number.isSafeInteger(now) || now < 0) throw new RangeError("now: expected ms since epoch (safe uint)");
}

function checkedUsername(username: string): string {
  const r = validateUsername(username);
  if (!r.ok) throw r.error;
  return r.value;
}

function normalisedExtensions(ext: IdentityExtensions | undefined): IdentityExtensions | undefined {
  if (ext === undefined) return undefined;
  const out: IdentityExtensions = {};
  if (ext.profile_picture !== undefined) out.profile_picture = ext.profile_picture.slice();
  if (ext.additional_metadata !== undefined && Object.keys(ext.additional_metadata).length > 0) {
    const meta: Record<string, Uint8Array> = {};
    for (const [k, value] of Object.entries(ext.additional_metadata)) meta[k] = value.slice();
    out.additional_metadata = meta;
  }
  const checked = validate(out, identityExtensionsSchema, "LOFT_ERR_BAD_IDENTITY");
  if (!checked.ok) throw checked.error;
  return out.profile_picture === undefined && out.additional_metadata === undefined ? undefined : out;
}

/**
 * Sign with noble, synchronously: creating or updating an identity happens once per user action,
 * off the message path, and stays synchronous for its many callers; Ed25519 is deterministic, so
 * the signature is the one every provider would make (signature.ts, `signWithContextNoble`).
 */
function sign(data: IdentityVerifiedData, privateIdentityKey: Uint8Array): Identity {
  const payload = encodeIdentityVerifiedData(data);
  return sizedIdentity(data, signWithContextNoble(privateIdentityKey, SIGNATURE_CONTEXTS.identity, payload));
}

/** `sign` on a provider (native Ed25519 where the platform has it); the same bytes. */
async function signWith(
  crypto: CryptoProvider,
  data: IdentityVerifiedData,
  privateIdentityKey: Uint8Array,
): Promise<Identity> {
  const payload = encodeIdentityVerifiedData(data);
  return sizedIdentity(
    data,
    await signWithContext(crypto, privateIdentityKey, SIGNATURE_CONTEXTS.identity, payload),
  );
}

function sizedIdentity(data: IdentityVerifiedData, signature: Uint8Array): Identity {
  const identity: Identity = { verified: data, signature };
  if (encodeIdentity(identity).length > MAX_IDENTITY_BYTES)
    throw new LoftError("LOFT_ERR_FRAME_TOO_LARGE", `identity exceeds ${MAX_IDENTITY_BYTES} bytes`);
  return identity;
}

export interface CreateUserIdentityOptions {
  /** Any string; normalised to NFC and checked (`validateUsername`). */
  username: string;
  /** Milliseconds since the Unix epoch; becomes `created`. */
  now: number;
  flags?: Partial<IdentityFlags>;
  extensions?: IdentityExtensions;
  /** 32 bytes: derive both keys deterministically (vectors, restore). Omitted: fresh random keys. */
  seed?: Uint8Array;
}

/**
 * Create a new identity at version 1 (SREMP §identity). Throws LoftError(LOFT_ERR_BAD_IDENTITY) for
 * an invalid username or extensions — validate user input first with `validateUsername`, or use
 * `tryCreateUserIdentity`.
 */
export function createUserIdentity(options: CreateUserIdentityOptions): UserIdentity {
  const { username, secrets } = newIdentityInputs(options, randomBytes);
  const data = newIdentityData(
    options,
    username,
    ed25519.getPublicKey(secrets.identity),
    x25519.getPublicKey(secrets.noise),
  );
  return {
    identity: sign(data, secrets.identity),
    privateIdentityKey: secrets.identity,
    privateNoiseKey: secrets.noise,
  };
}

/**
 * `createUserIdentity` on `crypto` (docs/decisions.md, "Identity creation on the provider"): the
 * private keys from the provider's CSPRNG (or derived from `seed` as before), the public keys and
 * the signature from the provider — native X25519 and Ed25519 where the platform has them
 * (WebCrypto in a browser), so creating an identity does not load noble's curve tables. The same
 * bytes as `createUserIdentity` for the same seed and time on every backend (Ed25519 signatures
 * are deterministic, RFC 8032 §5.1.6; checked by identity.test.ts on each backend).
 */
export async function createUserIdentityWith(
  crypto: CryptoProvider,
  options: CreateUserIdentityOptions,
): Promise<UserIdentity> {
  const { username, secrets } = newIdentityInputs(options, (n) => crypto.randomBytes(n));
  try {
    const [identityKey, noiseKey] = await Promise.all([
      crypto.ed25519.publicKey(secrets.identity),
      crypto.x25519.publicKey(secrets.noise),
    ]);
    const data = newIdentityData(options, username, identityKey, noiseKey);
    return {
      identity: await signWith(crypto, data, secrets.identity),
      privateIdentityKey: secrets.identity,
      privateNoiseKey: secrets.noise,
    };
  } catch (e) {
    wipe(secrets.identity);
    wipe(secrets.noise);
    throw e;
  }
}

function newIdentityInputs(
  options: CreateUserIdentityOptions,
  random: (length: number) => Uint8Array,
): { username: string; secrets: { identity: Uint8Array; noise: Uint8Array } } {
  assertTime(options.now);
  const username = checkedUsername(options.username);
  const secrets =
    options.seed !== undefined ? deriveSecrets(options.seed) : { identity: random(32), noise: random(32) };
  return { username, secrets };
}

function newIdentityData(
  options: CreateUserIdentityOptions,
  username: string,
  identityKey: Uint8Array,
  noiseKey: Uint8Array,
): IdentityVerifiedData {
  const data: IdentityVerifiedData = {
    username,
    identity_key: identityKey,
    noise_key: noiseKey,
    flags: { ...DEFAULT_FLAGS, ...options.flags },
    version: 1,
    created: options.now,
  };
  const extensions = normalisedExtensions(options.extensions);
  if (extensions !== undefined) data.extensions = extensions;
  return data;
}

/** `createUserIdentity` with bad user input as a Result instead of a throw. */
export function tryCreateUserIdentity(options: CreateUserIdentityOptions): Result<UserIdentity> {
  try {
    return ok(createUserIdentity(options));
  } catch (e) {
    if (e instanceof LoftError) return { ok: false, error: e };
    throw e;
  }
}

export interface IdentityChanges {
  username?: string;
  flags?: Partial<IdentityFlags>;
  /** New extensions; `null` removes them. */
  extensions?: IdentityExtensions | null;
  /** Replace the noise key with a fresh random one (or one derived from `noiseSeed`). */
  rotateNoiseKey?: boolean;
  /** 32 bytes: rotate the noise key to one derived from this seed (implies rotateNoiseKey). */
  noiseSeed?: Uint8Array;
}

/**
 * SREMP §identity "each time the identity changes": version + 1, `created` = now, a new signature.
 * The identity key never changes. The previous private noise key is left to the caller to wipe
 * once no session uses it (`wipe(old.privateNoiseKey)`).
 */
export function updateIdentity(user: UserIdentity, changes: IdentityChanges, now: number): UserIdentity {
  const prev = checkedUpdate(user, now);
  if (!equalBytes(ed25519.getPublicKey(user.privateIdentityKey), prev.identity_key))
    throw new RangeError("privateIdentityKey does not match identity_key");
  const privateNoiseKey = updatedNoiseKey(user, changes, randomBytes);
  const data = updatedData(prev, changes, x25519.getPublicKey(privateNoiseKey), now);
  return {
    identity: sign(data, user.privateIdentityKey),
    privateIdentityKey: user.privateIdentityKey,
    privateNoiseKey,
  };
}

/** `updateIdentity` on `crypto` (see `createUserIdentityWith`): the same bytes, native where it can. */
export async function updateIdentityWith(
  crypto: CryptoProvider,
  user: UserIdentity,
  changes: IdentityChanges,
  now: number,
): Promise<UserIdentity> {
  const prev = checkedUpdate(user, now);
  if (!equalBytes(await crypto.ed25519.publicKey(user.privateIdentityKey), prev.identity_key))
    throw new RangeError("privateIdentityKey does not match identity_key");
  const privateNoiseKey = updatedNoiseKey(user, changes, (n) => crypto.randomBytes(n));
  const data = updatedData(prev, changes, await crypto.x25519.publicKey(privateNoiseKey), now);
  return {
    identity: await signWith(crypto, data, user.privateIdentityKey),
    privateIdentityKey: user.privateIdentityKey,
    privateNoiseKey,
  };
}

function checkedUpdate(user: UserIdentity, now: number): IdentityVerifiedData {
  assertTime(now);
  abytes(user.privateIdentityKey, 32, "privateIdentityKey");
  const prev = user.identity.verified;
  if (prev.version >= MAX_VERSION) throw new RangeError("identity version exhausted");
  return prev;
}

function updatedNoiseKey(
  user: UserIdentity,
  changes: IdentityChanges,
  random: (length: number) => Uint8Array,
): Uint8Array {
  if (changes.noiseSeed !== undefined) return deriveNoiseSecret(changes.noiseSeed);
  return changes.rotateNoiseKey ? random(32) : user.privateNoiseKey;
}

function updatedData(
  prev: IdentityVerifiedData,
  changes: IdentityChanges,
  noiseKey: Uint8Array,
  now: number,
): IdentityVerifiedData {
  const data: IdentityVerifiedData = {
    username: changes.username !== undefined ? checkedUsername(changes.username) : prev.username,
    identity_key: prev.identity_key.slice(),
    noise_key: noiseKey,
    flags: { ...prev.flags, ...changes.flags },
    version: prev.version + 1,
    created: now,
  };
  const extensions =
    changes.extensions === null
      ? undefined
      : normalisedExtensions(changes.extensions !== undefined ? changes.extensions : prev.extensions);
  if (extensions !== undefined) data.extensions = extensions;
  return data;
}

// --- application signatures ---------------------------------------------------------------------

/**
 * Sign application bytes with the identity key. The signed bytes are
 * `"loft/sremp/application/v1" ‖ 0x00 ‖ message`, so nothing signed here can pass for an identity
 * or a request signature; modules that want their own context use `signWithContext`.
 */
export function signWithIdentity(
  crypto: CryptoProvider,
  user: UserIdentity,
  message: Uint8Array,
): Promise<Uint8Array> {
  return signWithContext(crypto, user.privateIdentityKey, SIGNATURE_CONTEXTS.application, message);
}

/** Verify a `signWithIdentity` signature; false for any malformed input, never throws. */
export function verifyIdentitySignature(
  crypto: CryptoProvider,
  identityKey: Uint8Array,
  message: Uint8Array,
  sig: Uint8Array,
): Promise<boolean> {
  return verifyWithContext(crypto, identityKey, SIGNATURE_CONTEXTS.application, message, sig);
}

/** SREMP §identity `ContactId := Ed25519PublicKey`. */
export function contactId(identity: Identity): Uint8Array {
  return identity.verified.identity_key;
}

/** Same identity data (signature excluded: Ed25519 is deterministic, but re-signing is allowed). */
export function sameIdentityData(a: Identity, b: Identity): boolean {
  return equalBytes(encodeIdentityVerifiedData(a.verified), encodeIdentityVerifiedData(b.verified));
}
