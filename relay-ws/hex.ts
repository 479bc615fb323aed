/**
 * Lowercase hex of bytes through Buffer (native): the same string as core/bytes.ts `toHex`, which
 * builds it in JavaScript a byte at a time (~2.5× slower for an id). The relay turns queue and
 * message ids into map keys several times per message, so its hot path uses this one.
 */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}
