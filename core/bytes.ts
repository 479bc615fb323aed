/**
 * Small byte helpers used across core/. Constant-time comparison and wiping follow the habits of
 * noble (`equalBytes`, `clean`): secrets are compared without early exit and zeroed when done.
 */

/** Throws at the call site when a byte input has the wrong type or length (noble's `abytes`). */
export function abytes(value: unknown, length?: number, name = "bytes"): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name}: expected Uint8Array`);
  if (length !== undefined && value.length !== length)
    throw new RangeError(`${name}: expected ${length} bytes, got ${value.length}`);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Constant-time equality for equal-length inputs; unequal lengths return false immediately. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Zero every given buffer (secrets are wiped when done; docs/design.md, "Cryptography"). */
export function wipe(...buffers: (Uint8Array | undefined | null)[]): void {
  for (const b of buffers) b?.fill(0);
}

/**
 * Secrets made concurrently, each given with how to wipe it: their values in order once every one
 * is made. If any fails (a provider exception), the ones that were made would be returned to no
 * one, so each is wiped here by its own `wipe`, and the first failure (in argument order) is thrown.
 * A `wipe` that throws (a provider's `forget`) keeps no later one from running; its fault is then
 * thrown with that failure, in an AggregateError, rather than in its place.
 */
export async function allOrWipe<T extends readonly unknown[]>(
  ...made: { [K in keyof T]: readonly [secret: Promise<T[K]>, wipe: (value: T[K]) => void] }
): Promise<T> {
  const settled = await Promise.allSettled(made.map(([secret]) => secret));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed === undefined)
    return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
  const wipeFaults: unknown[] = [];
  settled.forEach((r, i) => {
    if (r.status !== "fulfilled") return;
    try {
      made[i]![1](r.value);
    } catch (e) {
      wipeFaults.push(e);
    }
  });
  if (wipeFaults.length > 0)
    throw new AggregateError(
      [failed.reason, ...wipeFaults],
      "a secret failed, and wiping another failed too",
    );
  throw failed.reason;
}

const HEX = "0123456789abcdef";

export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += HEX[b >> 4]! + HEX[b & 15]!;
  return s;
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError("fromHex: invalid hex string");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

const utf8Encoder = new TextEncoder();
// ignoreBOM: a leading ef bb bf is U+FEFF, a character of the text like any other (wire.md,
// "Canonical MessagePack"); without it the decoder drops it, and the text read is not the one written.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export const utf8 = (s: string): Uint8Array => utf8Encoder.encode(s);
/** Strict UTF-8 decode: invalid sequences throw (callers turn that into a typed error); keeps a leading U+FEFF. */
export const fromUtf8 = (b: Uint8Array): string => utf8Decoder.decode(b);

/**
 * Whether `bytes[start, end)` is well-formed UTF-8 (Unicode §3.9, Table 3-7; RFC 3629 §4): no
 * overlong forms, no surrogate code points (ED A0..BF), nothing above U+10FFFF, no truncated
 * sequence. The same bytes a fatal TextDecoder accepts (core/bytes.test.ts checks that on random
 * bytes), without a copy or a call into the host per string: MessagePack strings are short and
 * many (core/codec/codec.ts checks every one), and most are ASCII, which the first loop passes.
 */
export function isUtf8(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
  let i = asciiUntil(bytes, start, end);
  while (i < end) {
    const b = bytes[i++]!;
    if (b < 0x80) {
      if (end - i >= 64) i = asciiUntil(bytes, i, end);
      continue;
    }
    // Lead byte: how many continuation bytes follow, and the range of the first one (Table 3-7).
    let more: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) more = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      more = 2;
      if (b === 0xe0) lo = 0xa0;
      else if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      more = 3;
      if (b === 0xf0) lo = 0x90;
      else if (b === 0xf4) hi = 0x8f;
    } else return false; // 80..C1 (a continuation or an overlong lead) and F5..FF
    if (i + more > end) return false;
    const c = bytes[i++]!;
    if (c < lo || c > hi) return false;
    for (let k = 1; k < more; k++) {
      const d = bytes[i++]!;
      if (d < 0x80 || d > 0xbf) return false;
    }
  }
  return true;
}

/**
 * The first index in [start, end) of a byte ≥ 0x80, or `end`. Long runs are read four bytes at a
 * time (a Uint32Array over the aligned middle; the mask is the same in either byte order): a
 * 2 000-character text checks in about a third of the time (bench/README.md, "bench:codec").
 */
function asciiUntil(bytes: Uint8Array, start: number, end: number): number {
  let i = start;
  if (end - i >= 64) {
    while ((bytes.byteOffset + i) & 3) {
      if (bytes[i]! >= 0x80) return i;
      i++;
    }
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset + i, (end - i) >>> 2);
    let w = 0;
    while (w < words.length && (words[w]! & 0x80808080) === 0) w++;
    i += w * 4;
  }
  while (i < end && bytes[i]! < 0x80) i++;
  return i;
}

/** UTF-8 of `s`, cut to at most `max` bytes on a character boundary. */
export function cutUtf8(s: string, max: number): Uint8Array {
  const bytes = utf8(s);
  let end = Math.min(bytes.length, max);
  while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}
