/**
 * The NaCl constructions SMP uses (simplexmq `protocol/simplex-messaging.md`, "Cryptographic
 * algorithms"; the reference's `Simplex.Messaging.Crypto`), from @noble primitives:
 *
 * - `crypto_box`: X25519 shared secret → HSalsa20 with a zero nonce (`crypto_box_beforenm`) →
 *   XSalsa20-Poly1305 (`crypto_secretbox`), output tag ‖ ciphertext. The server→recipient layer
 *   of delivered messages, with the message id as the 24-byte nonce.
 * - the v7 command authenticator: crypto_box(SHA-512(authorized)) between the queue's X25519 key
 *   and the server's session key, nonce = the 24-byte correlation id (80 bytes).
 */
import { hsalsa, xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
import { ed448 } from "@noble/curves/ed448.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { equalBytes, wipe } from "../bytes.ts";
import type { PublicKey } from "./keys.ts";

const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]); // "expand 32-byte k"

function words(b: Uint8Array): Uint32Array {
  const out = new Uint32Array(b.length / 4);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}

/** crypto_box_beforenm: HSalsa20(X25519 shared secret, 16 zero bytes). */
export function boxKeyFromShared(shared: Uint8Array): Uint8Array {
  const out = new Uint32Array(8);
  const k = words(shared);
  hsalsa(SIGMA, k, new Uint32Array(4), out);
  k.fill(0);
  const key = new Uint8Array(32);
  const view = new DataView(key.buffer);
  for (let i = 0; i < 8; i++) view.setUint32(i * 4, out[i]!, true);
  out.fill(0);
  return key;
}

/** crypto_box key between a public and a private X25519 key; undefined for a low-order point. */
export function boxKey(publicKey: Uint8Array, privateKey: Uint8Array): Uint8Array | undefined {
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(privateKey, publicKey);
  } catch {
    return undefined;
  }
  if (shared.every((b) => b === 0)) return undefined;
  const key = boxKeyFromShared(shared);
  wipe(shared);
  return key;
}

/** crypto_secretbox with a beforenm key: tag(16) ‖ ciphertext. */
export function secretboxSeal(key: Uint8Array, nonce: Uint8Array, plain: Uint8Array): Uint8Array {
  return xsalsa20poly1305(key, nonce).encrypt(plain);
}

export function secretboxOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
): Uint8Array | undefined {
  if (sealed.length < 16) return undefined;
  try {
    return xsalsa20poly1305(key, nonce).decrypt(sealed);
  } catch {
    return undefined;
  }
}

/** The reference's `cbNonce`: a correlation id cut or zero-extended to 24 bytes. */
export function cbNonce(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(24);
  out.set(b.subarray(0, 24));
  return out;
}

/** v7 authenticator over `authorized` (80 bytes). */
export function cbAuthenticate(key: Uint8Array, corrId: Uint8Array, authorized: Uint8Array): Uint8Array {
  return secretboxSeal(key, cbNonce(corrId), sha512(authorized));
}

export function cbVerify(
  key: Uint8Array,
  corrId: Uint8Array,
  authenticator: Uint8Array,
  authorized: Uint8Array,
): boolean {
  const opened = secretboxOpen(key, cbNonce(corrId), authenticator);
  return opened !== undefined && equalBytes(opened, sha512(authorized));
}

/** Verify a signature with an Ed25519 or Ed448 key; false for anything else or any malformed input. */
export function verifySignature(key: PublicKey, signature: Uint8Array, message: Uint8Array): boolean {
  try {
    if (key.alg === "ed25519") return signature.length === 64 && ed25519.verify(signature, message, key.raw);
    if (key.alg === "ed448") return signature.length === 114 && ed448.verify(signature, message, key.raw);
  } catch {
    return false;
  }
  return false;
}
