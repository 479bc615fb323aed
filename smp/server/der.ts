/**
 * A minimal DER writer for the few X.509 structures the SMP listener makes (RFC 5280 certificates
 * with Ed25519 keys, RFC 8410): definite lengths, the handful of universal types used, nothing
 * parsed. Why our own and not a package: docs/decisions.md, "SMP listener (issue #14, part 1)".
 */

function length(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(content);
  return new Uint8Array(Buffer.concat([Uint8Array.of(tag), length(body.length), body]));
}

export const seq = (...items: Uint8Array[]) => tlv(0x30, ...items);
export const set = (...items: Uint8Array[]) => tlv(0x31, ...items);
/** [n] EXPLICIT, constructed context tag. */
export const explicit = (n: number, inner: Uint8Array) => tlv(0xa0 | n, inner);

export function integer(bytes: Uint8Array): Uint8Array {
  let b = bytes;
  while (b.length > 1 && b[0] === 0 && (b[1]! & 0x80) === 0) b = b.subarray(1);
  if (b[0]! & 0x80) b = Uint8Array.of(0, ...b);
  return tlv(0x02, b);
}

export const smallInt = (n: number) => integer(Uint8Array.of(n));

export function oid(dotted: string): Uint8Array {
  const parts = dotted.split(".").map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [];
    let v = p;
    do {
      chunk.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i]! |= 0x80;
    out.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(out));
}

export const utf8String = (s: string) => tlv(0x0c, new Uint8Array(Buffer.from(s, "utf8")));
export const bitString = (bytes: Uint8Array) => tlv(0x03, Uint8Array.of(0), bytes);
export const octetString = (bytes: Uint8Array) => tlv(0x04, bytes);
export const boolean = (v: boolean) => tlv(0x01, Uint8Array.of(v ? 0xff : 0));

/** UTCTime before 2050, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export function time(d: Date): Uint8Array {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14); // YYYYMMDDHHMMSS
  const year = d.getUTCFullYear();
  return year < 2050
    ? tlv(0x17, new Uint8Array(Buffer.from(`${iso.slice(2)}Z`)))
    : tlv(0x18, new Uint8Array(Buffer.from(`${iso}Z`)));
}
