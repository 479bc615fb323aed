/**
 * Length-hiding padding of plaintext before encryption (docs/protocol/wire.md, "Padding";
 * docs/design.md, "Padding"). Used today: `padToBucket` for every chat application message,
 * inside the ratchet (web/src/engine/wire.ts `encodeAppMessage`). `padToBlock` is specified and
 * tested but nothing sends with it. The relay does NOT use this scheme: its delivery blocks and
 * at-rest buckets are `padBlock` in core/relay/protocol.ts (docs/protocol/relay.md, "Padding").
 *
 * Scheme: ISO/IEC 7816-4 (also NIST SP 800-38A Appendix A's "1 then 0s"): append one 0x80 byte,
 * then 0x00 bytes up to the target size. There is always at least one padding byte, so unpadding
 * is unambiguous for every input, including data that itself ends in 0x80 or 0x00.
 *
 * Two target sizes:
 * - fixed blocks: the next multiple of `blockBytes` (16384 by default) that leaves room for the
 *   0x80 marker — a 16383-byte message takes one block, a 16384-byte one takes two;
 * - power-of-two buckets: the smallest power of two ≥ max(len + 1, minBucket), minBucket = 256
 *   by default. This leaks only ⌈log2⌉ of the length at ≤ 2× overhead (≤ 100 %), the trade-off
 *   Padmé-style schemes improve on; chat application messages use it, live or through a mailbox.
 *
 * Unpadding checks that the input has a size the scheme can produce and that the marker is
 * where it must be; anything else is LOFT_ERR_PADDING. Padding is applied to plaintext before
 * encryption and removed after decryption, so the scan's timing reveals only the length the
 * receiver learns anyway.
 */
import { err, ok, type Result } from "../errors.ts";

/** The default block: 16 KiB like the relay's, whose own padding is `padBlock` (core/relay/protocol.ts). */
export const RELAY_BLOCK_BYTES = 16 * 1024;
export const MIN_BUCKET_BYTES = 256;
/** Buckets stop at 2^30: beyond that a caller has a bug, not a message. */
export const MAX_BUCKET_BYTES = 2 ** 30;

const MARKER = 0x80;

function assertBlock(blockBytes: number): void {
  if (!Number.isSafeInteger(blockBytes) || blockBytes < 1)
    throw new RangeError("blockBytes: positive integer");
}

function assertPowerOfTwo(n: number, name: string): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_BUCKET_BYTES || (n & (n - 1)) !== 0)
    throw new RangeError(`${name}: a power of two ≤ 2^30`);
}

function padTo(data: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(data, 0);
  out[data.length] = MARKER;
  return out;
}

/** Strip ISO/IEC 7816-4 padding: the last non-zero byte must be 0x80. */
function strip(padded: Uint8Array): Result<Uint8Array> {
  let i = padded.length - 1;
  while (i >= 0 && padded[i] === 0) i--;
  if (i < 0 || padded[i] !== MARKER) return err("LOFT_ERR_PADDING", "no 0x80 padding marker");
  return ok(padded.slice(0, i));
}

/** Size after block padding: the next multiple of `blockBytes` strictly greater than `length`. */
export function paddedBlockSize(length: number, blockBytes = RELAY_BLOCK_BYTES): number {
  assertBlock(blockBytes);
  return (Math.floor(length / blockBytes) + 1) * blockBytes;
}

/** Pad to whole blocks (16 KiB by default; not the relay's blocks, see the header). */
export function padToBlock(data: Uint8Array, blockBytes = RELAY_BLOCK_BYTES): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new TypeError("data: expected Uint8Array");
  return padTo(data, paddedBlockSize(data.length, blockBytes));
}

/** Remove block padding; the input must be a positive multiple of `blockBytes`. */
export function unpadBlock(padded: Uint8Array, blockBytes = RELAY_BLOCK_BYTES): Result<Uint8Array> {
  assertBlock(blockBytes);
  if (!(padded instanceof Uint8Array)) return err("LOFT_ERR_PADDING", "not a byte array");
  if (padded.length === 0 || padded.length % blockBytes !== 0)
    return err(
      "LOFT_ERR_PADDING",
      `${padded.length} bytes is not a whole number of ${blockBytes}-byte blocks`,
    );
  const r = strip(padded);
  // A marker in an earlier block means the sender added a whole block of zeros: not what padToBlock makes.
  if (r.ok && paddedBlockSize(r.value.length, blockBytes) !== padded.length)
    return err("LOFT_ERR_PADDING", "more padding than one block");
  return r;
}

/** Size after bucket padding: the smallest power of two ≥ max(length + 1, minBucket). */
export function paddedBucketSize(length: number, minBucket = MIN_BUCKET_BYTES): number {
  assertPowerOfTwo(minBucket, "minBucket");
  let size = minBucket;
  while (size < length + 1) size *= 2;
  if (size > MAX_BUCKET_BYTES) throw new RangeError(`${length} bytes exceeds the largest bucket`);
  return size;
}

/** Pad to a power-of-two bucket (at least `minBucket`, 256 by default). */
export function padToBucket(data: Uint8Array, minBucket = MIN_BUCKET_BYTES): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new TypeError("data: expected Uint8Array");
  return padTo(data, paddedBucketSize(data.length, minBucket));
}

/** Remove bucket padding; the input size must be a bucket size this scheme produces. */
export function unpadBucket(padded: Uint8Array, minBucket = MIN_BUCKET_BYTES): Result<Uint8Array> {
  assertPowerOfTwo(minBucket, "minBucket");
  if (!(padded instanceof Uint8Array)) return err("LOFT_ERR_PADDING", "not a byte array");
  const n = padded.length;
  if (n < minBucket || n > MAX_BUCKET_BYTES || (n & (n - 1)) !== 0)
    return err("LOFT_ERR_PADDING", `${n} bytes is not a bucket size (power of two ≥ ${minBucket})`);
  const r = strip(padded);
  if (r.ok && paddedBucketSize(r.value.length, minBucket) !== n)
    return err("LOFT_ERR_PADDING", "padded to a larger bucket than needed");
  return r;
}
