/**
 * The relay's hot-path primitives on node:crypto (OpenSSL), the same primitives core/relay uses
 * from noble, chosen where bench/relay.ts measured a large gain on this machine (see
 * docs/decisions.md (Relay), "node:crypto on the relay's hot path"):
 *   - Ed25519 verification (RFC 8032) of command signatures — about 10× noble — lives in
 *     host/node-ed25519.ts, shared with signaling;
 *   - AES-256-GCM (NIST SP 800-38D) for blobs at rest, a fresh key per blob — about 40× noble;
 *   - XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §2.3: HChaCha20 subkey from the first 16 nonce
 *     bytes, then RFC 8439 ChaCha20-Poly1305 with nonce 0x00000000 ‖ last 8 bytes) for the
 *     server→recipient layer — about 15× noble. HChaCha20 itself comes from noble.
 * relay-ws/node-crypto.test.ts checks each against the noble implementation byte for byte.
 */

import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { hchacha } from "@noble/ciphers/chacha.js";
import { BLOCK_SIZE, deliveryBucket, RCV_PLAINTEXT_LENGTH } from "../core/relay/protocol.ts";

// ---------------------------------------------------------------------------------------------
// At rest: AES-256-GCM, one fresh key per blob

export const AT_REST_KEY_LENGTH = 32;
export const AT_REST_IV_LENGTH = 12;
export const AT_REST_TAG_LENGTH = 16;

export interface SealedBlob {
  /** Fresh 32-byte key; the caller stores it in its own record and wipes this copy. */
  key: Buffer;
  /** iv ‖ ciphertext ‖ tag */
  sealed: Buffer;
}

/** Encrypt one (already padded) blob under a fresh key; `aad` binds it to its record. */
export function sealAtRest(plain: Uint8Array, aad: Uint8Array): SealedBlob {
  const key = randomBytes(AT_REST_KEY_LENGTH);
  const iv = randomBytes(AT_REST_IV_LENGTH);
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(aad);
  const head = c.update(plain);
  const tail = c.final();
  return { key, sealed: Buffer.concat([iv, head, tail, c.getAuthTag()]) };
}

/** Decrypt a blob sealed by sealAtRest; undefined if it does not authenticate. */
export function openAtRest(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  if (key.length !== AT_REST_KEY_LENGTH || sealed.length < AT_REST_IV_LENGTH + AT_REST_TAG_LENGTH)
    return undefined;
  try {
    const iv = sealed.subarray(0, AT_REST_IV_LENGTH);
    const tag = sealed.subarray(sealed.length - AT_REST_TAG_LENGTH);
    const d = createDecipheriv("aes-256-gcm", key, iv);
    d.setAAD(aad);
    d.setAuthTag(tag);
    const head = d.update(sealed.subarray(AT_REST_IV_LENGTH, sealed.length - AT_REST_TAG_LENGTH));
    return Buffer.concat([head, d.final()]);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Server→recipient layer: XChaCha20-Poly1305 with the message id as the 24-byte nonce

const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);

// Scratch space of the subkey derivation, reused by every call and zeroed after each (the calls
// are synchronous): the key, nonce and output words and the subkey's bytes were four allocations
// per delivery (bench/README-relay.md, "Results: a delivery written as it was sealed").
const KEY_WORDS = new Uint32Array(8);
const NONCE_WORDS = new Uint32Array(4);
const OUT_WORDS = new Uint32Array(8);
const SUBKEY = Buffer.alloc(32);
const IV = Buffer.alloc(12);

/** Little-endian words of `bytes` into `out` (RFC 8439 §2.3: the state's words). */
function wordsLE(bytes: Uint8Array, out: Uint32Array): void {
  for (let i = 0; i < out.length; i++) {
    const at = 4 * i;
    out[i] = (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
  }
}

/**
 * Run `use` with the HChaCha20 subkey of `key` and the first 16 bytes of `nonce24` and the
 * ChaCha20-Poly1305 nonce (0x00000000 ‖ last 8 bytes; draft-irtf-cfrg-xchacha-03 §2.3), both in
 * scratch buffers wiped when it returns: createCipheriv copies them, so `use` must not keep them.
 */
function withSubkey<T>(key: Uint8Array, nonce24: Uint8Array, use: (subkey: Buffer, iv: Buffer) => T): T {
  wordsLE(key, KEY_WORDS);
  wordsLE(nonce24, NONCE_WORDS);
  hchacha(SIGMA, KEY_WORDS, NONCE_WORDS, OUT_WORDS);
  for (let i = 0; i < 8; i++) SUBKEY.writeUInt32LE(OUT_WORDS[i]!, 4 * i);
  KEY_WORDS.fill(0);
  OUT_WORDS.fill(0);
  IV.set(nonce24.subarray(16, 24), 4);
  try {
    return use(SUBKEY, IV);
  } finally {
    SUBKEY.fill(0);
  }
}

/**
 * XChaCha20-Poly1305 encrypt (empty AAD) of the concatenation of `parts`, as the cipher's output
 * pieces (ciphertext pieces, then the tag): concatenated, exactly noble's
 * `xchacha20poly1305(key, nonce).encrypt(plain)`.
 */
export function xchachaSealParts(key: Uint8Array, nonce24: Uint8Array, parts: Uint8Array[]): Buffer[] {
  if (key.length !== 32 || nonce24.length !== 24) throw new RangeError("xchachaSeal: key 32, nonce 24");
  const c = withSubkey(key, nonce24, chachaCipher);
  const out: Buffer[] = [];
  for (const p of parts) out.push(c.update(p));
  out.push(c.final(), c.getAuthTag());
  return out;
}

// One function each, not a closure per delivery.
const CHACHA_OPTIONS = { authTagLength: 16 } as const;
const chachaCipher = (subkey: Buffer, iv: Buffer) =>
  createCipheriv("chacha20-poly1305", subkey, iv, CHACHA_OPTIONS);

/** XChaCha20-Poly1305 decrypt (empty AAD) of `ciphertext ‖ tag`; undefined if it does not open. */
export function xchachaOpen(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array): Buffer | undefined {
  if (key.length !== 32 || nonce24.length !== 24 || sealed.length < 16) return undefined;
  try {
    const d = withSubkey(key, nonce24, (subkey, iv) =>
      createDecipheriv("chacha20-poly1305", subkey, iv, { authTagLength: 16 }),
    );
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}

/** The server→recipient ciphertext of one delivery: seal(u64be(ts) ‖ block). */
export function sealDelivery(
  rcvKey: Uint8Array,
  msgId: Uint8Array,
  timestampSeconds: number,
  block: Uint8Array,
) {
  if (8 + block.length !== RCV_PLAINTEXT_LENGTH) throw new RangeError("sealDelivery: block size");
  return Buffer.concat(sealDeliveryParts(rcvKey, msgId, timestampSeconds, block));
}

/** Zeros that pad a stored bucket to the wire's block; only ever read. */
const ZERO_FILL = new Uint8Array(BLOCK_SIZE);

/**
 * The same ciphertext, in pieces, from a body padded only to its at-rest bucket (≤ BLOCK_SIZE).
 * `padding` "block" (protocol 1.0, 1.1): the zeros up to BLOCK_SIZE are fed from a shared buffer
 * instead of being allocated and copied per delivery. "bucket" (1.2, docs/protocol/relay.md
 * §Padding): the body's own bucket is sealed, nothing more.
 */
export function sealDeliveryParts(
  rcvKey: Uint8Array,
  msgId: Uint8Array,
  timestampSeconds: number,
  bucket: Uint8Array,
  padding: "block" | "bucket" = "block",
): Buffer[] {
  if (bucket.length > BLOCK_SIZE || bucket.length < 2) throw new RangeError("sealDelivery: block size");
  // u64be seconds in a scratch buffer (the cipher has read it when the call returns): no Buffer
  // and no BigInt per delivery.
  const t = Math.max(0, Math.floor(timestampSeconds));
  TS.writeUInt32BE(Math.floor(t / 0x1_0000_0000) >>> 0, 0);
  TS.writeUInt32BE(t >>> 0, 4);
  if (padding === "bucket") return xchachaSealParts(rcvKey, msgId, [TS, ownBucket(bucket)]);
  const parts = [TS, bucket];
  if (bucket.length < BLOCK_SIZE) parts.push(ZERO_FILL.subarray(0, BLOCK_SIZE - bucket.length));
  return xchachaSealParts(rcvKey, msgId, parts);
}

/** A delivery's timestamp field, reused by every (synchronous) seal. */
const TS = Buffer.alloc(8);

/**
 * A padded block cut (or, never in practice, extended) to its body's delivery bucket: a store
 * written before buckets, or one with another bucket rule, may hold a larger block; the wire of
 * 1.2 has exactly one form per body (`deliveryBucket`). The bytes past the body are zeros either way.
 */
function ownBucket(block: Uint8Array): Uint8Array {
  const size = deliveryBucket((block[0]! << 8) | block[1]!);
  if (block.length === size) return block;
  if (block.length > size) return block.subarray(0, size);
  const out = Buffer.alloc(size);
  out.set(block);
  return out;
}
