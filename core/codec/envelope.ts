/**
 * The type-tagged message envelope every Loft protocol message uses (docs/design.md, "Wire format";
 * SREMP 0.1-draft §messages: "All messages use MessagePack"). Layout and rules:
 * docs/protocol/wire.md, "Envelope".
 *
 * One frame is one canonical MessagePack map. Its string field `t` names the type (the SREMP
 * name, e.g. "REGISTER_REQUEST"); an optional `id` (u32) lets a client match a reply to its
 * request (servers echo it); every other field is the message's own. The map is flat — no nested
 * "body" — so SREMP's field names sit at the top level exactly as the spec writes them.
 *
 * A module adds its own types by defining schemas with `messageSchema` and building a codec over
 * the union: `createWireCodec([...SREMP_MESSAGES, ...MY_MESSAGES])`. Decoding is, in order:
 *   1. size limit before parsing                          → LOFT_ERR_FRAME_TOO_LARGE
 *   2. bounded MessagePack parse, no trailing bytes       → LOFT_ERR_MALFORMED
 *   3. a map with a string `t`                            → LOFT_ERR_SCHEMA
 *   4. `t` registered in this codec                       → LOFT_ERR_UNKNOWN_TYPE
 *   5. the type's own size limit                          → LOFT_ERR_FRAME_TOO_LARGE
 *   6. the type's schema (strict: unknown fields refused) → LOFT_ERR_SCHEMA
 *   7. canonical form (re-encode and compare)             → LOFT_ERR_MALFORMED
 * so every value has exactly one byte form and nothing but a typed error ever escapes.
 */
import * as v from "valibot";
import { equalBytes } from "../bytes.ts";
import { err, type LoftError, ok, type Result } from "../errors.ts";
import { type DecodeLimits, decodeRaw, encodeCanonical, uintSchema, validate } from "./codec.ts";

/**
 * A byte string with inclusive length bounds, typed as plain `Uint8Array` (any backing buffer):
 * codec.ts's `bytesSchema` infers `Uint8Array<ArrayBuffer>`, which subarrays and noble outputs
 * don't satisfy. Same checks, friendlier type.
 */
export const binSchema = (min: number, max: number = min) =>
  v.pipe(
    v.custom<Uint8Array>((x) => x instanceof Uint8Array, "expected a byte array"),
    v.check(
      (b) => b.length >= min && b.length <= max,
      `expected ${min === max ? min : `${min}..${max}`} bytes`,
    ),
  );

/**
 * A text field: SREMP "Text content uses UTF-8", so no lone surrogates (which have no UTF-8 form;
 * @msgpack/msgpack would carry them as WTF-8 `ed a0 80`). Length bounds count UTF-16 code units.
 */
export const textSchema = (min: number, max: number) =>
  v.pipe(
    v.string(),
    v.minLength(min),
    v.maxLength(max),
    v.check((s) => !/\p{Cs}/u.test(s), "lone surrogate in text"),
  );

/** SREMP §constants MAX_FRAME_SIZE: one Noise transport message (65535 bytes). */
export const MAX_FRAME_BYTES = 65_535;
/** Request ids are u32; 0 is a valid id. */
export const requestIdSchema = uintSchema(0xffff_ffff);
/** Type tags: SREMP-style upper snake case, optionally namespaced ("SIGNAL.OFFER"). */
export const TYPE_TAG = /^[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*)*$/;
export const MAX_TYPE_TAG_CHARS = 64;

/**
 * A tagged schema: a valibot strictObject with a literal `t` (from `messageSchema`), possibly
 * inside a `v.pipe(...)` that adds cross-field checks.
 */
export type TaggedSchema = v.GenericSchema<unknown, { t: string }>;

/** The literal `t` of a strictObject schema, or of the object at the head of a pipe. */
function literalTagOf(schema: TaggedSchema): string {
  type Tagged = { entries?: { t?: { literal?: unknown } }; pipe?: readonly unknown[] };
  const s = schema as unknown as Tagged;
  const head = (s.entries ? s : (s.pipe?.[0] as Tagged | undefined)) ?? {};
  const t = head.entries?.t?.literal;
  if (typeof t !== "string") throw new TypeError("message schema without a literal `t`");
  return t;
}

/** A strict object schema `{ t: <literal>, id?: u32, ...entries }`. */
export function messageSchema<const T extends string, const E extends v.ObjectEntries>(t: T, entries: E) {
  if (!TYPE_TAG.test(t) || t.length > MAX_TYPE_TAG_CHARS)
    throw new RangeError(`type tag ${JSON.stringify(t)}`);
  return v.strictObject({ t: v.literal(t), id: v.optional(requestIdSchema), ...entries });
}

export interface MessageDef<S extends TaggedSchema = TaggedSchema> {
  readonly t: v.InferOutput<S>["t"];
  readonly schema: S;
  /** Largest encoded frame of this type (≤ the codec's maxFrameBytes). */
  readonly maxBytes: number;
}

/** Register a schema as a message type with its own size limit (defaults to one frame). */
export function defineMessage<S extends TaggedSchema>(
  schema: S,
  maxBytes: number = MAX_FRAME_BYTES,
): MessageDef<S> {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new RangeError("maxBytes");
  return { t: literalTagOf(schema), schema, maxBytes };
}

export type MessageOf<D> = D extends MessageDef<infer S> ? v.InferOutput<S> : never;

/** A decode result; `id` is the request id whenever the frame parsed far enough to carry one. */
export type WireDecoded<M> = ({ ok: true; value: M } | { ok: false; error: LoftError }) & { id?: number };

export interface WireCodecOptions {
  /** Frames larger than this are refused before parsing (default MAX_FRAME_BYTES). */
  maxFrameBytes?: number;
  /** Bounds for any one array / map inside a frame (defaults 4096 / 256). */
  maxArrayLength?: number;
  maxMapLength?: number;
}

export interface WireCodec<D extends MessageDef> {
  readonly types: ReadonlySet<string>;
  readonly maxFrameBytes: number;
  /** Encode a message (validated first: an invalid message or one over its limit is a programming error and throws). */
  encode(message: MessageOf<D>): Uint8Array;
  /** Decode one frame; only typed errors come back, nothing throws. */
  decode(bytes: Uint8Array): WireDecoded<MessageOf<D>>;
  /** Validate an already-parsed value as one of this codec's messages (steps 3, 4, 6). */
  validate(value: unknown): Result<MessageOf<D>>;
  /** A codec with more types (a module adding its own on top of SREMP's). */
  extend<E extends MessageDef>(defs: readonly E[]): WireCodec<D | E>;
}

function requestIdOf(raw: unknown): number | undefined {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw) || raw instanceof Uint8Array)
    return undefined;
  const id = (raw as Record<string, unknown>).id;
  return typeof id === "number" && Number.isInteger(id) && id >= 0 && id <= 0xffff_ffff ? id : undefined;
}

function tagOf(raw: unknown): string | undefined {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw) || raw instanceof Uint8Array)
    return undefined;
  const t = (raw as Record<string, unknown>).t;
  return typeof t === "string" ? t : undefined;
}

/** Build a codec over a set of message types; duplicate tags are a programming error. */
export function createWireCodec<D extends MessageDef>(
  defs: readonly D[],
  options: WireCodecOptions = {},
): WireCodec<D> {
  const maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
  if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 1) throw new RangeError("maxFrameBytes");
  const byTag = new Map<string, D>();
  for (const d of defs) {
    if (byTag.has(d.t)) throw new RangeError(`message type ${d.t} defined twice`);
    byTag.set(d.t, d);
  }
  const limits: DecodeLimits = {
    maxBytes: maxFrameBytes,
    maxArrayLength: options.maxArrayLength ?? 4096,
    maxMapLength: options.maxMapLength ?? 256,
  };

  function validateValue(raw: unknown): Result<MessageOf<D>> {
    const tag = tagOf(raw);
    if (tag === undefined) return err("LOFT_ERR_SCHEMA", "t: expected a map with a string type tag");
    const def = byTag.get(tag);
    if (def === undefined)
      return err(
        "LOFT_ERR_UNKNOWN_TYPE",
        `unknown message type ${JSON.stringify(tag.slice(0, MAX_TYPE_TAG_CHARS))}`,
      );
    return validate(raw, def.schema) as Result<MessageOf<D>>;
  }

  const codec: WireCodec<D> = {
    types: new Set(byTag.keys()),
    maxFrameBytes,
    encode(message) {
      const checked = validateValue(message);
      if (!checked.ok) throw new RangeError(`cannot encode: ${checked.error.message}`);
      const bytes = encodeCanonical(checked.value);
      const def = byTag.get(tagOf(message)!)!;
      const limit = Math.min(def.maxBytes, maxFrameBytes);
      if (bytes.length > limit) throw new RangeError(`${def.t}: ${bytes.length} bytes exceeds ${limit}`);
      return bytes;
    },
    decode(bytes) {
      const raw = decodeRaw(bytes, limits);
      if (!raw.ok) return raw;
      const id = requestIdOf(raw.value);
      const withId = <R extends object>(r: R): R & { id?: number } => (id === undefined ? r : { ...r, id });
      const tag = tagOf(raw.value);
      const def = tag === undefined ? undefined : byTag.get(tag);
      if (def !== undefined && bytes.length > def.maxBytes)
        return withId(
          err("LOFT_ERR_FRAME_TOO_LARGE", `${def.t}: ${bytes.length} bytes exceeds ${def.maxBytes}`),
        );
      const checked = validateValue(raw.value);
      if (!checked.ok) return withId(checked);
      if (!equalBytes(encodeCanonical(checked.value), bytes))
        return withId(err("LOFT_ERR_MALFORMED", `${def!.t}: not in canonical MessagePack form`));
      return withId(ok(checked.value));
    },
    validate: validateValue,
    extend(more) {
      return createWireCodec<D | (typeof more)[number]>([...defs, ...more], options);
    },
  };
  return codec;
}
