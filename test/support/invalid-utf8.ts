/**
 * Byte sequences that are not UTF-8 (Unicode §3.9, Table 3-7; RFC 3629 §4), one of each kind a
 * lenient decoder lets through: an encoded surrogate, an overlong form, a code point past
 * U+10FFFF, a lead byte that is never used, a lone continuation byte, and a sequence cut short
 * (at the end of the string, or followed by ASCII). Shared by the codec's property tests
 * (core/codec/codec.test.ts, test/fuzz/utf8-frames.test.ts); docs/protocol/wire.md, "Canonical
 * MessagePack".
 */
import { ExtData } from "@msgpack/msgpack";
import fc from "fast-check";

/** Bytes and MessagePack ext values hold no string: they are items of their own, not maps. */
const isLeaf = (x: object): boolean => x instanceof Uint8Array || x instanceof ExtData;

const byte = (min: number, max: number) => fc.integer({ min, max });
const cont = byte(0x80, 0xbf);
const seq = (...parts: fc.Arbitrary<number>[]) => fc.tuple(...parts).map((b) => Uint8Array.from(b));

/** A valid 2-, 3- or 4-byte sequence cut before its last byte. */
const cutShort = fc.oneof(
  seq(byte(0xc2, 0xdf)),
  seq(byte(0xe1, 0xec), cont),
  seq(byte(0xf1, 0xf3), cont, cont),
  seq(byte(0xf1, 0xf3), cont),
);

export const invalidUtf8Arb: fc.Arbitrary<{ kind: string; bytes: Uint8Array; atEnd: boolean }> = fc
  .oneof(
    fc.record({ kind: fc.constant("surrogate"), bytes: seq(fc.constant(0xed), byte(0xa0, 0xbf), cont) }),
    fc.record({ kind: fc.constant("overlong 2"), bytes: seq(byte(0xc0, 0xc1), cont) }),
    fc.record({ kind: fc.constant("overlong 3"), bytes: seq(fc.constant(0xe0), byte(0x80, 0x9f), cont) }),
    fc.record({
      kind: fc.constant("overlong 4"),
      bytes: seq(fc.constant(0xf0), byte(0x80, 0x8f), cont, cont),
    }),
    fc.record({
      kind: fc.constant("past U+10FFFF"),
      bytes: fc.oneof(
        seq(fc.constant(0xf4), byte(0x90, 0xbf), cont, cont),
        seq(byte(0xf5, 0xf7), cont, cont, cont),
      ),
    }),
    fc.record({ kind: fc.constant("never-used byte"), bytes: seq(byte(0xf8, 0xff)) }),
    fc.record({ kind: fc.constant("lone continuation"), bytes: seq(cont) }),
    fc.record({ kind: fc.constant("cut short"), bytes: cutShort }),
  )
  .chain(({ kind, bytes }) =>
    // A cut-short sequence is tried at the very end of its string too: a lenient decoder reads
    // the next item's bytes as its continuation there.
    fc.boolean().map((atEnd) => ({ kind, bytes, atEnd: kind === "cut short" ? atEnd : false })),
  );

/** Every string of a value (map keys too), in walk order. */
export function stringsOf(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const x of value) stringsOf(x, out);
  else if (typeof value === "object" && value !== null && !isLeaf(value))
    for (const [k, x] of Object.entries(value)) {
      out.push(k);
      stringsOf(x, out);
    }
  return out;
}

/** `value` with its `at`-th string (walk order, as `stringsOf`) replaced by `text`. */
function replaceString(value: unknown, at: number, text: string): unknown {
  let n = 0;
  const walk = (x: unknown): unknown => {
    if (typeof x === "string") return n++ === at ? text : x;
    if (Array.isArray(x)) return x.map(walk);
    if (typeof x === "object" && x !== null && !isLeaf(x))
      return Object.fromEntries(
        Object.entries(x).map(([k, y]) => {
          const key = n++ === at ? text : k;
          return [key, walk(y)];
        }),
      );
    return x;
  };
  return walk(value);
}

const MARK = [1, 2, 3, 4];
const HOLE = 5;

/**
 * The `at`-th string of `value` made a marker holding `bad` after `before` ASCII bytes (and, unless
 * `atEnd`, one more ASCII byte), encoded by `encode`: `good` with the marker as written (valid
 * UTF-8), `spoiled` the same bytes with `bad` in the marker's hole. Same lengths, so only the
 * string's bytes differ.
 */
export function spoilString(
  value: unknown,
  at: number,
  bad: { bytes: Uint8Array; atEnd: boolean },
  before: number,
  encode: (v: unknown) => Uint8Array,
): { good: Uint8Array; spoiled: Uint8Array } {
  const hole = String.fromCharCode(HOLE).repeat(bad.bytes.length);
  const text = `${String.fromCharCode(...MARK)}${"a".repeat(before)}${hole}${bad.atEnd ? "" : "b"}`;
  const good = encode(replaceString(value, at, text));
  const needle = [...MARK, ...new Array(before).fill(0x61), ...new Array(bad.bytes.length).fill(HOLE)];
  const found: number[] = [];
  for (let i = 0; i + needle.length <= good.length; i++)
    if (needle.every((b, k) => good[i + k] === b)) found.push(i);
  if (found.length !== 1) throw new Error(`marker found ${found.length} times`);
  const spoiled = good.slice();
  spoiled.set(bad.bytes, found[0]! + MARK.length + before);
  return { good, spoiled };
}
