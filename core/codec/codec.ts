/**
 * MessagePack + schema validation, the one way every protocol message is decoded
 * (docs/design.md, "Wire format"). A decode checks the size limit before touching the bytes (as `ws`
 * checks `maxPayload` before allocating), bounds every string/binary/array/map length inside,
 * rejects trailing bytes, then validates the shape with a valibot schema. It returns the typed
 * value or a typed error — it never throws.
 *
 * Encoding is canonical: map keys sorted, `undefined` fields omitted, integers in their shortest
 * form (@msgpack/msgpack does this), so that the same value always has the same bytes and
 * signatures over encodings are reproducible.
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import * as v from "valibot";
import { equalBytes } from "../bytes.ts";
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

/** Canonical MessagePack encoding (sorted keys, no undefined, shortest integers). */
export function encodeCanonical(value: unknown): Uint8Array {
  return encoder.encode(value);
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
    decoders.set(key, d);
  }
  return d;
}

/** Parse MessagePack under limits, without schema. */
export function decodeRaw(bytes: Uint8Array, limits: DecodeLimits): Result<unknown> {
  if (!(bytes instanceof Uint8Array)) return err("LOFT_ERR_MALFORMED", "not a byte array");
  if (bytes.length > limits.maxBytes)
    return err("LOFT_ERR_FRAME_TOO_LARGE", `${bytes.length} bytes exceeds the limit of ${limits.maxBytes}`);
  if (bytes.length === 0) return err("LOFT_ERR_MALFORMED", "empty message");
  try {
    return ok(decoderFor(limits).decode(bytes));
  } catch (e) {
    // RangeError (truncated, extra bytes, length over a limit, too deep) or a DecodeError.
    return err("LOFT_ERR_MALFORMED", `invalid MessagePack: ${(e as Error).message}`);
  }
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
