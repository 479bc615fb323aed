/**
 * The relay's at-rest formats (docs/protocol/relay.md §At rest), as pure functions: the size
 * bucket a blob is padded to, a blob sealed under its data key, and the key record that wraps the
 * data key under an epoch key. AES-256-GCM (NIST SP 800-38D) from node:crypto, as for every blob at
 * rest (docs/decisions.md (Relay), "node:crypto on the relay's hot path"). The IV is a parameter
 * only so that docs/vectors/relay-at-rest-v1.json can be reproduced; callers draw a fresh one.
 */
import { createCipheriv } from "node:crypto";
import { unpadBlock } from "../../core/relay/protocol.ts";
import { AT_REST_IV_LENGTH, AT_REST_KEY_LENGTH, openAtRest } from "../node-crypto.ts";
import { pooledRandomBytes } from "../random-pool.ts";

/** Smallest at-rest bucket: bodies are padded to max(256, next power of two of 2 + length). */
export const MIN_BUCKET = 256;
/** A key record: u32 epoch ‖ iv(12) ‖ wrapped data key(32) ‖ tag(16). */
export const KEY_RECORD_LENGTH = 4 + AT_REST_IV_LENGTH + AT_REST_KEY_LENGTH + 16;
const WRAP_AAD = Buffer.from("loft-relay/1 dk", "latin1");
/** Key-record tags, the first byte of a blob's key-key: which kind of blob a key belongs to (every store seals the same). */
export const TAG_MSG = 0x6d; // 'm'
export const TAG_BUNDLE = 0x62; // 'b'
export const TAG_OTK = 0x6f; // 'o'
export const TAG_QUEUE = 0x71; // 'q': a queue's server→recipient key

/** The at-rest size of a body of `length` bytes in a block of at most `max` (docs/decisions.md). */
export function bucketSize(length: number, max: number): number {
  let size = MIN_BUCKET;
  while (size < length + 2 && size < max) size *= 2;
  return Math.min(size, max);
}

/**
 * The body of a block padded at rest (`padBlock` to its size bucket, opened and widened to the
 * wire block: `u16be(length) ‖ body ‖ zeros`): core/relay/protocol.ts `unpadBlock` at the block's
 * own size, which checks the length header and the zero fill. Every store reads its prekey
 * blocks through this one function. A block given here has opened under its AEAD, so one that
 * does not unpad is a store fault: thrown, never returned as a body cut to some length.
 */
export function blockBody(block: Uint8Array): Uint8Array {
  // As a plain Uint8Array, so `unpadBlock`'s slice is a copy (a Buffer's slice is a view, and the
  // stores wipe the opened block as soon as its body is out).
  const body = unpadBlock(new Uint8Array(block.buffer, block.byteOffset, block.length), block.length);
  if (!body.ok) throw new Error(`a stored block does not unpad (${body.error.message})`);
  return body.value;
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

function gcmSeal(key: Uint8Array, iv: Uint8Array, plain: Uint8Array, aad: Uint8Array): Buffer {
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(aad);
  return Buffer.concat([iv, c.update(plain), c.final(), c.getAuthTag()]);
}

/** iv ‖ AES-GCM(dataKey, block, aad = key-key) ‖ tag. */
export function sealBlob(
  dataKey: Uint8Array,
  block: Uint8Array,
  keyKey: Uint8Array,
  iv: Uint8Array = pooledRandomBytes(AT_REST_IV_LENGTH),
): Buffer {
  return gcmSeal(dataKey, iv, block, keyKey);
}

/** The padded block of a sealed blob, or undefined if it does not authenticate. */
export function openBlob(dataKey: Uint8Array, sealed: Uint8Array, keyKey: Uint8Array): Buffer | undefined {
  return openAtRest(dataKey, sealed, keyKey);
}

/** u32 epoch ‖ iv ‖ AES-GCM(epochKey, dataKey, aad = "loft-relay/1 dk" ‖ u32 epoch ‖ key-key) ‖ tag. */
export function wrapDataKey(
  epoch: number,
  epochKey: Uint8Array,
  dataKey: Uint8Array,
  keyKey: Uint8Array,
  iv: Uint8Array = pooledRandomBytes(AT_REST_IV_LENGTH),
): Buffer {
  return Buffer.concat([
    u32(epoch),
    gcmSeal(epochKey, iv, dataKey, Buffer.concat([WRAP_AAD, u32(epoch), keyKey])),
  ]);
}

/** The epoch a key record is wrapped under (undefined if it is not a key record). */
export function epochOf(record: Uint8Array): number | undefined {
  if (record.length !== KEY_RECORD_LENGTH) return undefined;
  return Buffer.from(record.buffer, record.byteOffset, record.byteLength).readUInt32BE(0);
}

/** The data key of a key record, given its epoch's key; undefined if it does not authenticate. */
export function unwrapDataKey(
  record: Uint8Array,
  epochKey: Uint8Array,
  keyKey: Uint8Array,
): Buffer | undefined {
  const epoch = epochOf(record);
  if (epoch === undefined) return undefined;
  return openAtRest(epochKey, record.subarray(4), Buffer.concat([WRAP_AAD, u32(epoch), keyKey]));
}
