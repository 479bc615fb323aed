/**
 * REGISTER verification on the server, cheap enough to face unauthenticated floods
 * (issue #17; docs/decisions.md, "Native verification, per-source CPU budgets").
 *
 * Same rules as core `decodeIdentity` + `verifyWithContext` (docs/protocol/identity.md,
 * docs/protocol/signaling.md "REGISTER_REQUEST"), with the expensive parts on node:crypto
 * (OpenSSL) instead of pure JS, and in an order where the cheap refusals come first:
 *
 *  1. structure: canonical MessagePack, schema, username, size — no curve arithmetic;
 *  2. the identity's own signature, natively (Ed25519, RFC 8032) — a forged or garbage identity
 *     stops here at ~0.1 ms instead of ~3 ms;
 *  3. only for a self-signed identity: identity key canonical and not of small order (y < p, no
 *     "negative zero", not one of the eight small-order points — the point itself is on the curve,
 *     or OpenSSL would not have verified under it), noise key canonical and not of low order
 *     (native X25519 with a probe key: OpenSSL refuses an all-zero shared secret, RFC 7748 §6.1);
 *  4. the REGISTER signature under the identity key, natively.
 *
 * Verified identities are remembered by the SHA-256 of their bytes (bounded, least recently used
 * first out), so a renewal costs one native verification. Only identities that passed every
 * check enter the cache, so nobody can fill it without paying for verification, and a full cache
 * evicts (never refuses). signaling/register-check.test.ts checks this module against the core
 * functions on valid, hostile and random inputs.
 */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import { toHex } from "../core/bytes.ts";
import { decodeRaw, validate } from "../core/codec/codec.ts";
import type { Result } from "../core/errors.ts";
import { err, ok } from "../core/errors.ts";
import {
  encodeIdentity,
  IDENTITY_DECODE_LIMITS,
  type Identity,
  identitySchema,
  identitySignedBytes,
  MAX_IDENTITY_BYTES,
} from "../core/identity/identity.ts";
import { SIGNATURE_CONTEXTS, signedBytes } from "../core/identity/signature.ts";
import { checkUsername } from "../core/identity/username.ts";
import { requestSignedPayload } from "../core/wire/signed.ts";
import type { RegisterRequest } from "../core/wire/sremp.ts";
import { ed25519PublicKey, ed25519Verify } from "../host/node-ed25519.ts";

/** What the server needs to know about a verified identity. */
export interface CheckedIdentity {
  readonly key: Uint8Array<ArrayBuffer>;
  readonly keyHex: string;
  readonly version: number;
  /** OpenSSL key object of `key`, for verifying this identity's REGISTERs and envelopes. */
  readonly publicKey: KeyObject;
}

const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");
const P25519 = 2n ** 255n - 19n;
/** Any fixed scalar works: a low-order point gives an all-zero output for every scalar. */
const PROBE = createPrivateKey({
  key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), Buffer.alloc(32, 0x42)]),
  format: "der",
  type: "pkcs8",
});

/**
 * The Ed25519 points of small order (the torsion subgroup, order dividing 8) in canonical
 * encoding (RFC 8032 §5.1.2; the list libsodium refuses as public keys). Other encodings of them
 * are non-canonical and refused by `nativeIdentityKeyValid` before this list is consulted.
 */
const SMALL_ORDER_POINTS = new Set([
  "0100000000000000000000000000000000000000000000000000000000000000", // identity
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
  "0000000000000000000000000000000000000000000000000000000000000000", // order 4
  "0000000000000000000000000000000000000000000000000000000000000080", // order 4
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
]);

/**
 * The rule of core `isValidIdentityKey` (strict RFC 8032 §5.1.3 decoding, not of small order)
 * for a key OpenSSL already verified a signature under — so it is a curve point — without
 * pure-JS point decompression: y < p, x = 0 only with the sign bit clear, not small order.
 */
export function nativeIdentityKeyValid(key: Uint8Array): boolean {
  if (key.length !== 32) return false;
  let y = BigInt(key[31]! & 0x7f);
  for (let i = 30; i >= 0; i--) y = (y << 8n) | BigInt(key[i]!);
  if (y >= P25519) return false;
  // x = 0 exactly when y = ±1; its "negative" encoding is not canonical.
  if ((key[31]! & 0x80) !== 0 && (y === 1n || y === P25519 - 1n)) return false;
  return !SMALL_ORDER_POINTS.has(toHex(key));
}

/**
 * RFC 7748 §5 canonical u (< p, top bit clear) and not of low order — the rule of core
 * `isValidNoiseKey`, decided by OpenSSL instead of a pure-JS ladder.
 */
export function nativeNoiseKeyValid(key: Uint8Array): boolean {
  if (key.length !== 32 || (key[31]! & 0x80) !== 0) return false;
  let u = 0n;
  for (let i = 31; i >= 0; i--) u = (u << 8n) | BigInt(key[i]!);
  if (u >= P25519) return false;
  try {
    const publicKey = createPublicKey({
      key: Buffer.concat([X25519_SPKI_PREFIX, key]),
      format: "der",
      type: "spki",
    });
    diffieHellman({ privateKey: PROBE, publicKey }).fill(0);
    return true;
  } catch {
    return false; // OpenSSL refuses an all-zero shared secret: a low-order point
  }
}

/**
 * Decode and verify an encoded Identity natively. Same acceptance as core `decodeIdentity`;
 * error codes as there (LOFT_ERR_MALFORMED, LOFT_ERR_SCHEMA, LOFT_ERR_BAD_IDENTITY,
 * LOFT_ERR_BAD_SIGNATURE, LOFT_ERR_FRAME_TOO_LARGE).
 */
export function checkIdentityNative(bytes: Uint8Array): Result<CheckedIdentity> {
  if (bytes.length > MAX_IDENTITY_BYTES)
    return err("LOFT_ERR_FRAME_TOO_LARGE", `identity exceeds ${MAX_IDENTITY_BYTES} bytes`);
  const raw = decodeRaw(bytes, IDENTITY_DECODE_LIMITS);
  if (!raw.ok) return raw;
  const shaped = validate(raw.value, identitySchema);
  if (!shaped.ok) return shaped;
  const identity = shaped.value as Identity;
  const encoded = encodeIdentity(identity);
  if (encoded.length !== bytes.length || !Buffer.from(encoded).equals(Buffer.from(bytes)))
    return err("LOFT_ERR_MALFORMED", "identity is not in canonical MessagePack form");
  const d = identity.verified;
  const name = checkUsername(d.username);
  if (!name.ok) return name as Result<never>;
  const publicKey = ed25519PublicKey(d.identity_key);
  if (!publicKey) return err("LOFT_ERR_BAD_IDENTITY", "identity_key: not a valid Ed25519 public key");
  if (!ed25519Verify(publicKey, identitySignedBytes(d), identity.signature))
    return err("LOFT_ERR_BAD_SIGNATURE", "identity signature does not verify");
  // Self-signed: now the curve checks that OpenSSL's verification does not make.
  if (!nativeIdentityKeyValid(d.identity_key))
    return err("LOFT_ERR_BAD_IDENTITY", "identity_key: not a valid Ed25519 public key");
  if (!nativeNoiseKeyValid(d.noise_key))
    return err("LOFT_ERR_BAD_IDENTITY", "noise_key: not a valid X25519 key");
  const key = d.identity_key.slice() as Uint8Array<ArrayBuffer>;
  return ok({ key, keyHex: toHex(key), version: d.version, publicKey });
}

/** The REGISTER signature under an already checked identity key (RFC 8032, natively). */
export function registerSignatureValid(identity: CheckedIdentity, req: RegisterRequest): boolean {
  const payload = requestSignedPayload(req as Record<string, unknown>, "signature");
  return ed25519Verify(
    identity.publicKey,
    signedBytes(SIGNATURE_CONTEXTS.registerRequest, payload),
    req.signature,
  );
}

/** Verified identities by SHA-256 of their encoded bytes; least recently used evicted first. */
export class IdentityCache {
  readonly #map = new Map<string, CheckedIdentity>();
  constructor(readonly max: number) {}

  get size(): number {
    return this.#map.size;
  }

  /** The checked identity for these bytes: from the cache, or verified now (and then cached). */
  check(bytes: Uint8Array): Result<CheckedIdentity> & { cached?: boolean } {
    const digest = createHash("sha256").update(bytes).digest("base64");
    const hit = this.#map.get(digest);
    if (hit) {
      this.#map.delete(digest);
      this.#map.set(digest, hit);
      return { ok: true, value: hit, cached: true };
    }
    const checked = checkIdentityNative(bytes);
    if (!checked.ok) return checked;
    if (this.#map.size >= this.max) {
      const oldest = this.#map.keys().next().value;
      if (oldest !== undefined) this.#map.delete(oldest);
    }
    this.#map.set(digest, checked.value);
    return checked;
  }
}
