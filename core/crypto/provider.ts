/**
 * The one seam between Loft's protocols and the primitives they use (docs/decisions.md,
 * "Cryptography: one async provider, carried explicitly"). Noise (X25519, ChaChaPoly or AES-GCM,
 * BLAKE2s, HMAC — Noise §4, §12), the Double Ratchet (X25519, HKDF-SHA-256, HMAC-SHA-256,
 * XChaCha20-Poly1305 — Signal DR §5.2), the prekeys (ML-KEM-768, FIPS 203) and identities
 * (Ed25519, RFC 8032) call these functions and nothing else.
 *
 * Backends: `nobleCrypto` (noble.ts — the reference, and the fallback of every other backend),
 * `createWebCryptoProvider` (webcrypto.ts — isomorphic, feature-detected per primitive), and the
 * node:crypto backend, which lives outside core (host/crypto-node.ts) and is injected by the Node
 * composition roots. `backends` names which implementation serves each primitive, for /health and
 * the benchmarks.
 *
 * Everything that WebCrypto can implement is async (`Promise`), so one interface fits every
 * backend; `randomBytes` stays synchronous (`crypto.getRandomValues` is synchronous everywhere).
 *
 * Contracts every backend keeps (checked against noble at startup by core/crypto/self-test.ts, and
 * for every backend by core/crypto/provider.test.ts):
 * - Inputs are never modified and outputs are fresh arrays, except an AEAD's `output`: when given
 *   it must be exactly the output's length, and the input may be its own prefix (in place).
 * - Received data never makes a function throw: a low-order X25519 public key (an all-zero shared
 *   secret, which Noise §12.1 allows to refuse) gives `undefined`, a bad tag gives `undefined`, a
 *   bad Ed25519 signature or key gives `false`, an invalid ML-KEM key gives `undefined`.
 * - Ed25519 verification is strict (RFC 8032 §5.1.7 with canonical encodings): non-canonical
 *   A or R, S ≥ L and small-order keys are refused, in every backend (ed25519-strict.ts).
 */

/** The primitives a provider serves, each by one named backend. */
export const PRIMITIVES = [
  "random",
  "x25519",
  "ed25519",
  "chacha20poly1305",
  "xchacha20poly1305",
  "aes256gcm",
  "sha256",
  "sha512",
  "blake2s",
  "hmacSha256",
  "hmacBlake2s",
  "hkdfSha256",
  "mlkem768",
] as const;
export type Primitive = (typeof PRIMITIVES)[number];

/**
 * An AEAD whose key was imported once (`Aead.withKey`): the same `seal` / `open` contracts as
 * `Aead`'s, without the key argument. Holds no raw key bytes (a non-extractable WebCrypto
 * `CryptoKey`); dropping the object is all there is to forget it.
 */
export interface KeyedAead {
  seal(nonce: Uint8Array, ad: Uint8Array, plaintext: Uint8Array, output?: Uint8Array): Promise<Uint8Array>;
  open(
    nonce: Uint8Array,
    ad: Uint8Array,
    ciphertext: Uint8Array,
    output?: Uint8Array,
  ): Promise<Uint8Array | undefined>;
}

/**
 * HMAC-SHA-256 under a key imported once (`CryptoProvider.hmacSha256Key`): the same answers as
 * `hmacSha256(key, ...parts)`, without importing the key per call — for a key that signs many
 * messages (the relay's per-connection authentication key, docs/protocol/relay.md, one HMAC per
 * command). Holds no raw key bytes where the backend can avoid it (a non-extractable WebCrypto
 * `CryptoKey`, a node:crypto `KeyObject`, noble's keyed inner and outer states); dropping the
 * object is all there is to forget it.
 */
export interface KeyedHmac {
  /** RFC 2104 HMAC-SHA-256 of the concatenation of `parts` under the handle's key. */
  sign(...parts: Uint8Array[]): Promise<Uint8Array>;
}

/** An AEAD with a fixed nonce length (12 bytes for the IETF ciphers, 24 for XChaCha). */
export interface Aead {
  readonly nonceLength: number;
  /**
   * Optional: `key` (32 bytes, not retained) imported once for many calls, where importing per
   * call costs (WebCrypto: an `importKey` per message is about 40 % of a 16 KiB AES-GCM seal in
   * Chromium). Undefined when this backend gains nothing from it; callers then use `seal`/`open`.
   */
  withKey?(key: Uint8Array): Promise<KeyedAead | undefined>;
  /** ciphertext ‖ 16-byte tag, into `output` (`plaintext.length + 16` bytes) when given. */
  seal(
    key: Uint8Array,
    nonce: Uint8Array,
    ad: Uint8Array,
    plaintext: Uint8Array,
    output?: Uint8Array,
  ): Promise<Uint8Array>;
  /** The plaintext (into `output`, `ciphertext.length - 16` bytes, when given), or undefined. */
  open(
    key: Uint8Array,
    nonce: Uint8Array,
    ad: Uint8Array,
    ciphertext: Uint8Array,
    output?: Uint8Array,
  ): Promise<Uint8Array | undefined>;
}

export interface X25519 {
  /** RFC 7748 §6.1: the public key of a 32-byte private key (clamped by X25519 itself). */
  publicKey(privateKey: Uint8Array): Promise<Uint8Array>;
  /** RFC 7748 §6.1 X25519(private, public); undefined when the result is all zeros (low order). */
  sharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Promise<Uint8Array | undefined>;
  /**
   * Optional: the caller wipes `privateKey` now and uses it no more. A backend that keeps something
   * made from it beside the array (node: an OpenSSL KeyObject, a copy of the key) drops it here
   * instead of when the array is collected, which may be much later (a finished Noise handshake
   * keeps its wiped static key). Never throws.
   */
  forget?(privateKey: Uint8Array): void;
}

export interface Ed25519 {
  /** RFC 8032 §5.1.5: the public key of a 32-byte secret key (seed). */
  publicKey(secretKey: Uint8Array): Promise<Uint8Array>;
  /** RFC 8032 §5.1.6: a 64-byte signature (deterministic). */
  sign(secretKey: Uint8Array, message: Uint8Array): Promise<Uint8Array>;
  /** RFC 8032 §5.1.7, strict (see the file comment); never throws. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

export interface MlKem768 {
  /** FIPS 203 §7.1 ML-KEM.KeyGen_internal(d, z) from the 64-byte seed d ‖ z. */
  keyPairFromSeed(seed: Uint8Array): Promise<{ publicKey: Uint8Array; secretKey: Uint8Array }>;
  /** FIPS 203 §7.2 with the 32-byte randomness m; undefined when the key fails the §7.2 check. */
  encapsulate(
    publicKey: Uint8Array,
    randomness: Uint8Array,
  ): Promise<{ ciphertext: Uint8Array; sharedSecret: Uint8Array } | undefined>;
  /** FIPS 203 §7.3 (implicit rejection); undefined only for inputs of the wrong size. */
  decapsulate(secretKey: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array | undefined>;
  /** Optional, as `X25519.forget`: the caller wipes this decapsulation key now. Never throws. */
  forget?(secretKey: Uint8Array): void;
}

export interface CryptoProvider {
  /** "noble", "webcrypto", "node": the backend asked for (see `backends` for what it got). */
  readonly name: string;
  /** Which implementation serves each primitive ("noble", "webcrypto", "node"). */
  readonly backends: Readonly<Record<Primitive, string>>;
  /**
   * `length` bytes from the platform CSPRNG, in a fresh array the caller owns (no pool, no view
   * into a buffer anyone else holds): callers keep a draw as a secret key and wipe it in place
   * (core/noise/primitives.ts `generateKeyPair`, core/ratchet/ratchet.ts `generateRatchetKeyPair`).
   */
  randomBytes(length: number): Uint8Array;
  readonly x25519: X25519;
  readonly ed25519: Ed25519;
  /** RFC 8439 §2.8 (12-byte nonce). */
  readonly chacha20poly1305: Aead;
  /** draft-irtf-cfrg-xchacha-03 §2 (24-byte nonce). */
  readonly xchacha20poly1305: Aead;
  /** NIST SP 800-38D with a 12-byte IV and a 16-byte tag. */
  readonly aes256gcm: Aead;
  sha256(data: Uint8Array): Promise<Uint8Array>;
  sha512(data: Uint8Array): Promise<Uint8Array>;
  /** BLAKE2s-256 (RFC 7693) of the concatenation of `parts`. */
  blake2s(...parts: Uint8Array[]): Promise<Uint8Array>;
  /** RFC 2104 HMAC-SHA-256 of the concatenation of `parts`. */
  hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Promise<Uint8Array>;
  /**
   * Optional: `key` (any length, not retained) imported once for many `hmacSha256` calls, served
   * by the same backend as `hmacSha256` (compose.ts). Callers use `keyedHmacSha256`, which falls
   * back to per-call `hmacSha256` when a provider has none.
   */
  hmacSha256Key?(key: Uint8Array): Promise<KeyedHmac>;
  /** RFC 2104 HMAC with BLAKE2s-256 (block 64 bytes), the HMAC of Noise §4.3. */
  hmacBlake2s(key: Uint8Array, ...parts: Uint8Array[]): Promise<Uint8Array>;
  /** RFC 5869 HKDF-SHA-256 (extract with `salt`, expand with `info`) to `length` bytes. */
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Promise<Uint8Array>;
  readonly mlkem768: MlKem768;
}

/**
 * A keyed HMAC-SHA-256 handle from `crypto` (its `hmacSha256Key`), or, for a provider without one,
 * a handle that calls `hmacSha256` with a copy of `key` (the caller may wipe its own).
 */
export function keyedHmacSha256(crypto: CryptoProvider, key: Uint8Array): Promise<KeyedHmac> {
  if (crypto.hmacSha256Key) return crypto.hmacSha256Key(key);
  const copy = key.slice();
  return Promise.resolve({ sign: (...parts: Uint8Array[]) => crypto.hmacSha256(copy, ...parts) });
}
