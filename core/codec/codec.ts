/**
 * MessagePack + schema validation, the one way every protocol message is decoded
 * (docs/design.md, "Wire format"). A decode checks the size limit before touching the bytes (as `ws`
 * checks `maxPayload` before allocating), bounds every string/binary/array/map length inside,
 * rejects trailing bytes, requires every string (map keys too) to be well-formed UTF-8, then validates
 * the shape with a valibot schema. It returns the typed value or a typed error — it never throws.
 *
 * Encoding is canonical: map keys sorted, `undefined` fields omitted, integers in their shortest
 * form (@msgpack/msgpack does this), so that the same value always has the same bytes and
 * signatures over encodings are reproducible.
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import * as v from "valibot";
import { equalBytes, fromUtf8, isUtf8 } from "../bytes.ts";
import { err, type LoftErrorCode, ok, type Result } from "../errors.ts";

export interface DecodeLimits {
  /** Whole encoded message; larger input is refused before parsing. */
  maxBytes: number;
  /** Bound for any one string / binary / array / map inside (defaults to maxBytes). */
  maxStrLength?: number;
  maxBinLength?: number;
  maxArrayLength?: number;
  maxMapLength?: number;
}

const encoder = new Encoder({ sortKeys: true, ignoreUndefined: true });

/**
 * Canonical MessagePack encoding (sorted keys, no undefined, shortest integers). A lone surrogate
 * in a string has no UTF-8 form: it is written as U+FFFD (`ef bf bd`), as TextEncoder (core/bytes.ts
 * `utf8`) writes it — @msgpack/msgpack writes it as `ed a0 80`… in strings of up to 50 characters,
 * which every decoder refuses (docs/protocol/wire.md, "Canonical MessagePack"), so a person's text
 * holding one (pasted from a clipboard that had it) would be lost on the way.
 */
export function encodeCanonical(value: unknown): Uint8Array {
  const bytes = encoder.encode(value);
  // What the encoder writes is UTF-8 but for encoded surrogates (ed a0..bf): only when those bytes
  // occur (in a string, or by chance in a bin) are the strings walked. indexOf is native.
  for (let k = bytes.indexOf(0xed); k >= 0; k = bytes.indexOf(0xed, k + 1))
    if (bytes[k + 1]! >= 0xa0 && bytes[k + 1]! <= 0xbf) {
      if (invalidStringAt(bytes, true) >= 0)
        throw new RangeError("encodeCanonical: wrote a string that is not UTF-8");
      break;
    }
  return bytes;
}

/** The parts of @msgpack/msgpack's Decoder (3.x) that `keepLeadingBom` wraps; checked at startup. */
interface DecoderInternals {
  bytes: Uint8Array;
  pos: number;
  decodeUtf8String(byteLength: number, headerOffset: number): string;
}

/**
 * A str whose bytes start with `ef bb bf` is read as starting with U+FEFF, at any length (wire.md,
 * "Canonical MessagePack": a leading U+FEFF is a character of the text). @msgpack/msgpack reads a
 * str over 200 bytes with a non-fatal TextDecoder that drops it as a byte order mark, so a longer
 * text starting with one arrived without it (and a frame checked for canonical bytes was refused):
 * such a string (rare) is read again here with `fromUtf8`, which keeps it. One that is not UTF-8 is
 * left as the library read it: the walk below (`invalidStringAt`) refuses the whole input.
 */
function keepLeadingBom(d: Decoder): void {
  const inner = d as unknown as DecoderInternals;
  const read = inner.decodeUtf8String;
  if (typeof read !== "function") throw new Error("@msgpack/msgpack: Decoder.decodeUtf8String is gone");
  inner.decodeUtf8String = function (this: DecoderInternals, byteLength, headerOffset) {
    const at = this.pos + headerOffset;
    const s = read.call(this, byteLength, headerOffset); // checks the limit and the length, moves pos
    const b = this.bytes;
    const bom = b[at] === 0xef && b[at + 1] === 0xbb && b[at + 2] === 0xbf;
    return bom && isUtf8(b, at, at + byteLength) ? fromUtf8(b.subarray(at, at + byteLength)) : s;
  };
}

const decoders = new Map<string, Decoder>();
function decoderFor(limits: DecodeLimits): Decoder {
  const key = `${limits.maxBytes}/${limits.maxStrLength}/${limits.maxBinLength}/${limits.maxArrayLength}/${limits.maxMapLength}`;
  let d = decoders.get(key);
  if (!d) {
    d = new Decoder({
      maxStrLength: limits.maxStrLength ?? limits.maxBytes,
      maxBinLength: limits.maxBinLength ?? limits.maxBytes,
      maxArrayLength: limits.maxArrayLength ?? limits.maxBytes,
      maxMapLength: limits.maxMapLength ?? limits.maxBytes,
      maxExtLength: limits.maxBinLength ?? limits.maxBytes,
    });
    keepLeadingBom(d);
    decoders.set(key, d);
  }
  return d;
}

/**
 * Rewrite each encoded surrogate (`ed a0..bf xx`, WTF-8) in `bytes[from, to)` as U+FFFD (`ef bf
 * bd`, the same length, so no header changes); whether the range is UTF-8 then. `ed` is never a
 * continuation byte, so a match is always the start of a sequence.
 */
function mendSurrogates(bytes: Uint8Array, from: number, to: number): boolean {
  for (let k = from; k + 2 < to; k++)
    if (bytes[k] === 0xed && bytes[k + 1]! >= 0xa0) {
      bytes.set([0xef, 0xbf, 0xbd], k);
      k += 2;
    }
  return isUtf8(bytes, from, to);
}

/** The unsigned big-endian integer of `size` (1, 2 or 4) bytes at `at`. */
function bigEndian(bytes: Uint8Array, at: number, size: number): number {
  let x = 0;
  for (let k = 0; k < size; k++) x = x * 256 + bytes[at + k]!;
  return x;
}

/**
 * The offset of the first str (fixstr, str 8/16/32; a map key or a value) whose bytes are not
 * well-formed UTF-8, or -1. docs/protocol/wire.md, "Canonical MessagePack": strings are valid UTF-8
 * without surrogate code points. @msgpack/msgpack reads strings leniently (its own decoder for
 * short ones turns `ed a0 80` into a lone surrogate and `ff` into "ÿ"; TextDecoder without `fatal`
 * for long ones puts U+FFFD in), and it has no hook for string values, so the bytes are checked
 * here, after it parsed them: MessagePack is a prefix encoding, so a walk over the item heads in
 * order meets every string without building anything. `bytes` is one whole item (the decoder
 * refused truncation and trailing bytes); a head the walk does not know stops it (the decoder
 * would have refused the input). With `mend` (the encoder's own output), encoded surrogates are
 * rewritten as U+FFFD first.
 */
function invalidStringAt(bytes: Uint8Array, mend = false): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const head = bytes[i]!;
    if (head < 0xa0 || head >= 0xe0 || head === 0xc0 || head === 0xc2 || head === 0xc3) {
      i += 1; // fixint, fixmap, fixarray (their items follow), nil, false, true
      continue;
    }
    let size = 0; // bytes of the length field
    let skip = 0; // bytes of fixed payload, or of payload after the length
    let str = false;
    if (head <= 0xbf) {
      str = true;
      skip = head & 0x1f;
    } else if (head >= 0xd9 && head <= 0xdb) {
      str = true;
      size = 1 << (head - 0xd9);
    } else if (head >= 0xc4 && head <= 0xc6)
      size = 1 << (head - 0xc4); // bin 8/16/32
    else if (head >= 0xc7 && head <= 0xc9) {
      size = 1 << (head - 0xc7); // ext 8/16/32: the length, then the type byte
      skip = 1;
    } else if (head === 0xca || head === 0xcb) skip = head === 0xca ? 4 : 8;
    else if (head >= 0xcc && head <= 0xd3)
      skip = 1 << ((head - 0xcc) & 3); // (u)int 8..64
    else if (head >= 0xd4 && head <= 0xd8)
      skip = 1 + (1 << (head - 0xd4)); // fixext: type, data
    else if (head >= 0xdc && head <= 0xdf)
      skip = head & 1 ? 4 : 2; // array/map 16/32: the count
    else return -1; // c1: never used
    const length = size === 0 ? skip : bigEndian(bytes, i + 1, size) + skip;
    const from = i + 1 + size;
    if (str && length > 0) {
      const to = Math.min(from + length, n);
      if (!isUtf8(bytes, from, to) && !(mend && mendSurrogates(bytes, from, to))) return i;
    }
    i = from + length;
  }
  return -1;
}

const ownRecordDecoder = new Decoder();
keepLeadingBom(ownRecordDecoder);

/**
 * The lenient reader of the records a device seals for itself and only it reads back (wire.md,
 * "Canonical MessagePack", "Read leniently"): the library's default reader — no limits, no
 * UTF-8 check, an `ed a0 80` an earlier version wrote read back as the lone surrogate it was — but a
 * long string keeps its leading U+FEFF (`keepLeadingBom`), so a text stored reads back as the
 * text that arrived. Throws as the library's `decode` does.
 */
export function decodeOwnRecord(bytes: Uint8Array): unknown {
  return ownRecordDecoder.decode(bytes);
}

/** Parse MessagePack under limits, without schema. */
export function decodeRaw(bytes: Uint8Array, limits: DecodeLimits): Result<unknown> {
  if (!(bytes instanceof Uint8Array)) return err("LOFT_ERR_MALFORMED", "not a byte array");
  if (bytes.length > limits.maxBytes)
    return err("LOFT_ERR_FRAME_TOO_LARGE", `${bytes.length} bytes exceeds the limit of ${limits.maxBytes}`);
  if (bytes.length === 0) return err("LOFT_ERR_MALFORMED", "empty message");
  let value: unknown;
  try {
    value = decoderFor(limits).decode(bytes);
  } catch (e) {
    // RangeError (truncated, extra bytes, length over a limit, too deep) or a DecodeError.
    return err("LOFT_ERR_MALFORMED", `invalid MessagePack: ${(e as Error).message}`);
  }
  const bad = invalidStringAt(bytes);
  if (bad >= 0)
    return err("LOFT_ERR_MALFORMED", `invalid MessagePack: the string at byte ${bad} is not UTF-8`);
  return ok(value);
}

/** Parse MessagePack under limits, then validate with `schema`. */
export function decodeWith<S extends v.GenericSchema>(
  bytes: Uint8Array,
  schema: S,
  limits: DecodeLimits,
): Result<v.InferOutput<S>> {
  const raw = decodeRaw(bytes, limits);
  if (!raw.ok) return raw;
  return validate(raw.value, schema);
}

/** Validate an already-parsed value; the error names the first failing path. */
export function validate<S extends v.GenericSchema>(
  value: unknown,
  schema: S,
  code: LoftErrorCode = "LOFT_ERR_SCHEMA",
): Result<v.InferOutput<S>> {
  const parsed = v.safeParse(schema, value);
  if (parsed.success) return ok(parsed.output);
  const issue = parsed.issues[0];
  const path = issue?.path?.map((p) => String(p.key)).join(".") || "(root)";
  return err(code, `${path}: ${issue?.message ?? "invalid"}`);
}

/** Schema for a byte string with length bounds (inclusive). */
export const bytesSchema = (min: number, max: number = min) =>
  v.pipe(
    v.instance(Uint8Array),
    v.check(
      (b) => b.length >= min && b.length <= max,
      `expected ${min === max ? min : `${min}..${max}`} bytes`,
    ),
  );

/** Schema for an unsigned integer in [0, max] (defaults to the safe-integer range). */
export const uintSchema = (max: number = Number.MAX_SAFE_INTEGER) =>
  v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(max));

/**
 * Refuse a decoded value unless `bytes` is exactly its canonical encoding. MessagePack lets the
 * same value be written many ways (duplicate map keys — the last silently wins —, unsorted keys,
 * non-minimal integers); accepting only one form means a signed or logged frame has one meaning.
 */
export function requireCanonical<T>(decoded: Result<T>, bytes: Uint8Array, what = "message"): Result<T> {
  if (!decoded.ok) return decoded;
  if (!equalBytes(encodeCanonical(decoded.value), bytes))
    return err("LOFT_ERR_MALFORMED", `${what}: not in canonical MessagePack form`);
  return decoded;
}

/**
 * Decode a stored, versioned map (`{ v: version, ... }`) such as serialized ratchet or prekey
 * state: an unknown version is `LOFT_ERR_STATE_VERSION` (the caller may migrate), anything else
 * malformed is `LOFT_ERR_MALFORMED` / `LOFT_ERR_SCHEMA`.
 */
export function decodeVersioned<S extends v.GenericSchema>(
  bytes: Uint8Array,
  expectedVersion: number,
  schema: S,
  limits: DecodeLimits,
  what: string,
): Result<v.InferOutput<S>> {
  const raw = decodeRaw(bytes, limits);
  if (!raw.ok) return raw;
  const value = raw.value;
  if (typeof value !== "object" || value === null || Array.isArray(value) || !("v" in value))
    return err("LOFT_ERR_SCHEMA", `${what}: not a versioned map`);
  const version = (value as { v: unknown }).v;
  if (version !== expectedVersion)
    return err("LOFT_ERR_STATE_VERSION", `${what}: unknown version ${String(version)}`);
  return validate(value, schema);
}
