/**
 * SMP key encodings (simplexmq `protocol/simplex-messaging.md`, "x509encoded"; the reference's
 * `encodePubKey`): a public key travels as the DER of its X.509 SubjectPublicKeyInfo inside a
 * `shortString`. SMP v6–v7 allows Ed25519 and Ed448 signature keys and X25519 keys (command
 * authenticators from v7, DH keys always).
 *
 * How the mailbox store holds them (docs/protocol/smp.md, "Keys in the shared store"): an Ed25519
 * key as its 32 raw bytes — the same bytes the WebSocket mailbox stores, so either protocol can
 * verify it — and an Ed448 or X25519 authorization key as its SPKI DER (44 or 69 bytes), which
 * only the SMP listener verifies.
 */
import { concatBytes, equalBytes } from "../bytes.ts";

export type KeyAlgorithm = "ed25519" | "ed448" | "x25519";

// SEQUENCE { SEQUENCE { OID }, BIT STRING (0 unused bits) key }
export const SPKI_PREFIX: Record<KeyAlgorithm, Uint8Array> = {
  ed25519: Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00),
  x25519: Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00),
  ed448: Uint8Array.of(0x30, 0x43, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71, 0x03, 0x3a, 0x00),
};
const RAW_LENGTH: Record<KeyAlgorithm, number> = { ed25519: 32, x25519: 32, ed448: 57 };

export interface PublicKey {
  alg: KeyAlgorithm;
  raw: Uint8Array;
}

export function encodeSpki(key: PublicKey): Uint8Array {
  if (key.raw.length !== RAW_LENGTH[key.alg])
    throw new RangeError(`${key.alg} key of ${key.raw.length} bytes`);
  return concatBytes(SPKI_PREFIX[key.alg], key.raw);
}

/** The key in an SPKI DER, if it is one of the three algorithms SMP uses; undefined otherwise. */
export function decodeSpki(der: Uint8Array): PublicKey | undefined {
  for (const alg of ["ed25519", "x25519", "ed448"] as const) {
    const prefix = SPKI_PREFIX[alg];
    if (der.length === prefix.length + RAW_LENGTH[alg] && equalBytes(der.subarray(0, prefix.length), prefix))
      return { alg, raw: der.slice(prefix.length) };
  }
  return undefined;
}

/** The store's form of an authorization key: raw for Ed25519 (shared with the WebSocket mailbox), SPKI otherwise. */
export function storedAuthKey(key: PublicKey): Uint8Array {
  return key.alg === "ed25519" ? key.raw : encodeSpki(key);
}

/** Inverse of storedAuthKey. */
export function authKeyFromStore(stored: Uint8Array): PublicKey | undefined {
  if (stored.length === 32) return { alg: "ed25519", raw: stored };
  return decodeSpki(stored);
}

/** Signature lengths by algorithm; an 80-byte authorization is a crypto_box authenticator (v7). */
export const ED25519_SIGNATURE = 64;
export const ED448_SIGNATURE = 114;
export const CB_AUTHENTICATOR = 80;
