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

function u32le(bytes: Uint8Array, words: number): Uint32Array {
  const out = new Uint32Array(words);
  const view = new DataView(bytes.buffer, bytes.byteOffset, words * 4);
  for (let i = 0; i < words; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}

function hchachaSubkey(key: Uint8Array, nonce: Uint8Array): Buffer {
  const out = new Uint32Array(8);
  hchacha(SIGMA, u32le(key, 8), u32le(nonce, 4), out);
  const bytes = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) bytes.writeUInt32LE(out[i]!, i * 4);
  out.fill(0);
  return bytes;
}

/**
 * XChaCha20-Poly1305 encrypt (empty AAD) of the concatenation of `parts`, as the cipher's output
 * pieces (ciphertext pieces, then the tag): concatenated, exactly noble's
 * `xchacha20poly1305(key, nonce).encrypt(plain)`.
 */
export function xchachaSealParts(key: Uint8Array, nonce24: Uint8Array, parts: Uint8Array[]): Buffer[] {
  if (key.length !== 32 || nonce24.length !== 24) throw new RangeError("xchachaSeal: key 32, nonce 24");
  const subkey = hchachaSubkey(key, nonce24);
  const iv = Buffer.alloc(12);
  iv.set(nonce24.subarray(16, 24), 4);
  const c = createCipheriv("chacha20-poly1305", subkey, iv, { authTagLength: 16 });
  const out: Buffer[] = [];
  for (const p of parts) out.push(c.update(p));
  out.push(c.final(), c.getAuthTag());
  subkey.fill(0);
  return out;
}

/** XChaCha20-Poly1305 decrypt (empty AAD) of `ciphertext ‖ tag`; undefined if it does not open. */
export function xchachaOpen(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array): Buffer | undefined {
  if (key.length !== 32 || nonce24.length !== 24 || sealed.length < 16) return undefined;
  const subkey = hchachaSubkey(key, nonce24);
  const iv = Buffer.alloc(12);
  iv.set(nonce24.subarray(16, 24), 4);
  try {
    const d = createDecipheriv("chacha20-poly1305", subkey, iv, { authTagLength: 16 });
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
  } catch {
    return undefined;
  } finally {
    subkey.fill(0);
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
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(timestampSeconds))));
  if (padding === "bucket") return xchachaSealParts(rcvKey, msgId, [ts, ownBucket(bucket)]);
  const parts = [ts, bucket];
  if (bucket.length < BLOCK_SIZE) parts.push(ZERO_FILL.subarray(0, BLOCK_SIZE - bucket.length));
  return xchachaSealParts(rcvKey, msgId, parts);
}

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
