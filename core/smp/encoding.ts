/**
 * SMP binary encoding primitives (simplexmq `protocol/simplex-messaging.md`, "SMP Transmission and
 * transport block structure"; the reference's `Simplex.Messaging.Encoding`): `shortString` (1-byte
 * length), `Large` (2-byte big-endian length), Word16, Int64, and the `padded` notation. Pure and
 * isomorphic: the listener (smp/server/) and the browser bridge share it.
 *
 * A `Reader` never throws on bad input: every read returns undefined when the bytes run out, and
 * the caller turns that into the SMP error its context calls for (BLOCK, CMD SYNTAX, …).
 */

/** A cursor over received bytes. */
export class Reader {
  #pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  get pos(): number {
    return this.#pos;
  }
  get remaining(): number {
    return this.bytes.length - this.#pos;
  }
  get done(): boolean {
    return this.#pos === this.bytes.length;
  }

  take(n: number): Uint8Array | undefined {
    if (n < 0 || this.#pos + n > this.bytes.length) return undefined;
    const out = this.bytes.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  byte(): number | undefined {
    if (this.#pos >= this.bytes.length) return undefined;
    return this.bytes[this.#pos++];
  }

  peek(): number | undefined {
    return this.bytes[this.#pos];
  }

  word16(): number | undefined {
    const b = this.take(2);
    return b ? (b[0]! << 8) | b[1]! : undefined;
  }

  /** `shortString`: one length byte, then that many bytes. */
  shortString(): Uint8Array | undefined {
    const n = this.byte();
    return n === undefined ? undefined : this.take(n);
  }

  /** `Large`: a Word16 length, then that many bytes. */
  large(): Uint8Array | undefined {
    const n = this.word16();
    return n === undefined ? undefined : this.take(n);
  }

  /** The rest of the input (`Tail`). */
  tail(): Uint8Array {
    const out = this.bytes.subarray(this.#pos);
    this.#pos = this.bytes.length;
    return out;
  }

  /** Consume one expected byte; false (and nothing consumed) if it is not there. */
  expect(byte: number): boolean {
    if (this.bytes[this.#pos] !== byte) return false;
    this.#pos++;
    return true;
  }
}

/** Build an encoding from parts. */
export class Writer {
  readonly #parts: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  bytes(b: Uint8Array): this {
    this.#parts.push(b);
    this.#length += b.length;
    return this;
  }

  byte(n: number): this {
    return this.bytes(Uint8Array.of(n & 0xff));
  }

  word16(n: number): this {
    if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError(`word16 out of range: ${n}`);
    return this.bytes(Uint8Array.of(n >>> 8, n & 0xff));
  }

  /** Int64 big-endian (the reference encodes it as two Word32). */
  int64(n: number): this {
    if (!Number.isSafeInteger(n)) throw new RangeError(`int64 out of range: ${n}`);
    const hi = Math.floor(n / 2 ** 32);
    const lo = n - hi * 2 ** 32;
    const out = new Uint8Array(8);
    const view = new DataView(out.buffer);
    view.setInt32(0, hi);
    view.setUint32(4, lo);
    return this.bytes(out);
  }

  shortString(b: Uint8Array): this {
    if (b.length > 255) throw new RangeError(`shortString of ${b.length} bytes`);
    return this.byte(b.length).bytes(b);
  }

  large(b: Uint8Array): this {
    return this.word16(b.length).bytes(b);
  }

  ascii(s: string): this {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0x7f;
    return this.bytes(out);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

export const ascii = (s: string): Uint8Array => new Writer().ascii(s).finish();

export function asciiOf(b: Uint8Array): string {
  let s = "";
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

/** The pad byte of `paddedString` ("#"). */
export const PAD_BYTE = 0x23;

/**
 * `<padded(string, paddedLength)>`: originalLength (Word16) ‖ string ‖ "#" × (paddedLength − len − 2).
 * Returns undefined when the string does not fit.
 */
export function pad(msg: Uint8Array, paddedLength: number): Uint8Array | undefined {
  const fill = paddedLength - msg.length - 2;
  if (fill < 0 || msg.length > 0xffff) return undefined;
  const out = new Uint8Array(paddedLength).fill(PAD_BYTE);
  out[0] = msg.length >>> 8;
  out[1] = msg.length & 0xff;
  out.set(msg, 2);
  return out;
}

/**
 * Inverse of `pad`. Like the reference (`unPad`), the pad bytes themselves are not checked: the
 * spec calls them "ignoredPart"-like filler, and a stricter check would refuse the reference.
 */
export function unpad(padded: Uint8Array): Uint8Array | undefined {
  if (padded.length < 2) return undefined;
  const len = (padded[0]! << 8) | padded[1]!;
  if (len > padded.length - 2) return undefined;
  return padded.subarray(2, 2 + len);
}

/** RFC 4648 §5 base64url with padding, as the reference's `strEncode` writes server identities. */
export function base64url(bytes: Uint8Array): string {
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += abc[(n >>> 18) & 63]! + abc[(n >>> 12) & 63]!;
    out += i + 1 < bytes.length ? abc[(n >>> 6) & 63]! : "=";
    out += i + 2 < bytes.length ? abc[n & 63]! : "=";
  }
  return out;
}

/** Decode base64url, padded or not; undefined on any other character. */
export function fromBase64url(s: string): Uint8Array | undefined {
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const clean = s.replace(/=+$/, "");
  if (clean.length % 4 === 1) return undefined;
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const ch of clean) {
    const v = abc.indexOf(ch);
    if (v < 0) return undefined;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >>> bits) & 0xff);
    }
  }
  return Uint8Array.from(out);
}
