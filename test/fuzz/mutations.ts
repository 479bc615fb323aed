/**
 * Input generators shared by the decoder property tests (docs/contributing.md, Tests: "Each decoder
 * is fed garbage, truncated, oversized, replayed and reordered input and must return a typed error,
 * never throw anything else").
 */
import fc from "fast-check";
import { expect } from "vitest";
import { encodeCanonical } from "../../core/codec/codec.ts";
import { LoftError, type LoftErrorCode, type Result } from "../../core/errors.ts";

/** One way to damage a valid encoding. */
export type Mutation =
  | { kind: "truncate"; at: number }
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "insert"; at: number; value: number }
  | { kind: "delete"; at: number }
  | { kind: "append"; extra: Uint8Array }
  | { kind: "splice"; at: number; other: number; from: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("append" as const), extra: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("splice" as const), at: fc.nat(), other: fc.nat(), from: fc.nat() }),
);

/** Apply one mutation; `pool` supplies the other frame for splices. */
export function mutate(bytes: Uint8Array, m: Mutation, pool: readonly Uint8Array[]): Uint8Array {
  const n = bytes.length;
  const at = n === 0 ? 0 : ("at" in m ? m.at : 0) % n;
  switch (m.kind) {
    case "truncate":
      return bytes.slice(0, at);
    case "flip": {
      const out = bytes.slice();
      out[at] = out[at]! ^ (1 << m.bit);
      return out;
    }
    case "set": {
      const out = bytes.slice();
      out[at] = m.value;
      return out;
    }
    case "insert": {
      const out = new Uint8Array(n + 1);
      out.set(bytes.subarray(0, at), 0);
      out[at] = m.value;
      out.set(bytes.subarray(at), at + 1);
      return out;
    }
    case "delete":
      return new Uint8Array([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
    case "append":
      return new Uint8Array([...bytes, ...m.extra]);
    case "splice": {
      const other = pool[m.other % pool.length]!;
      const from = other.length === 0 ? 0 : m.from % other.length;
      return new Uint8Array([...bytes.subarray(0, at), ...other.subarray(from)]);
    }
  }
}

/** MessagePack-encodable junk values to put where a field belongs ("wrong types"). */
export const junkValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
  fc.double(),
  fc.string({ maxLength: 20 }),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 70 }),
  fc.array(fc.integer(), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

/** Replace, delete or add one top-level field of a valid message, then encode canonically. */
export function fieldSwapArb(examples: readonly Record<string, unknown>[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(
      fc.nat(),
      fc.nat(),
      fc.oneof(
        fc.constant<"replace" | "delete" | "add">("replace"),
        fc.constant("delete"),
        fc.constant("add"),
      ),
      junkValueArb,
      fc.string({ minLength: 1, maxLength: 12 }),
    )
    .map(([which, field, op, junk, newKey]) => {
      const base = { ...examples[which % examples.length]! };
      const keys = Object.keys(base);
      const key = keys[field % keys.length]!;
      if (op === "replace") base[key] = junk;
      else if (op === "delete") delete base[key];
      else if (newKey !== "__proto__") base[newKey] = junk;
      return encodeCanonical(base);
    });
}

/** The decoder returned a value or a LoftError whose code is one of `allowed`; it did not throw. */
export function expectTyped<T>(run: () => Result<T>, allowed: readonly LoftErrorCode[]): Result<T> {
  let r: Result<T>;
  try {
    r = run();
  } catch (e) {
    throw threw(e);
  }
  return typed(r, allowed);
}

/** `expectTyped` for an async decoder (one that verifies signatures through the crypto provider). */
export async function expectTypedAsync<T>(
  run: () => Promise<Result<T>>,
  allowed: readonly LoftErrorCode[],
): Promise<Result<T>> {
  let r: Result<T>;
  try {
    r = await run();
  } catch (e) {
    throw threw(e);
  }
  return typed(r, allowed);
}

const threw = (e: unknown) => new Error(`decoder threw instead of returning a typed error: ${String(e)}`);

function typed<T>(r: Result<T>, allowed: readonly LoftErrorCode[]): Result<T> {
  if (!r.ok) {
    expect(r.error).toBeInstanceOf(LoftError);
    expect(allowed).toContain(r.error.code);
  }
  return r;
}
