import { ExtData } from "@msgpack/msgpack";
import fc from "fast-check";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { invalidUtf8Arb, spoilString, stringsOf } from "../../test/support/invalid-utf8.ts";
import { fromHex, toHex } from "../bytes.ts";
import { decodeOwnRecord, decodeRaw, decodeWith, encodeCanonical, requireCanonical } from "./codec.ts";

const schema = v.strictObject({ a: v.number(), b: v.string() });
const limits = { maxBytes: 1024 };

describe("core/codec/codec", () => {
  it("refuses oversized input before parsing, empty input and trailing bytes", () => {
    expect(decodeRaw(new Uint8Array(1025), limits)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_FRAME_TOO_LARGE" },
    });
    expect(decodeRaw(new Uint8Array(0), limits)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_MALFORMED" },
    });
    expect(decodeRaw(new Uint8Array([0x01, 0x02]), limits)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_MALFORMED" },
    });
  });

  it("bounds lengths inside the message", () => {
    const long = encodeCanonical({ s: "x".repeat(100) });
    expect(decodeRaw(long, { maxBytes: 1024, maxStrLength: 10 })).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_MALFORMED" },
    });
  });

  it("names the failing path on a schema error", () => {
    const r = decodeWith(encodeCanonical({ a: 1, b: 2 }), schema, limits);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/LOFT_ERR_SCHEMA: b:/);
  });

  it("requireCanonical accepts exactly the canonical encoding", () => {
    const bytes = encodeCanonical({ a: 1, b: "x" });
    expect(requireCanonical(decodeWith(bytes, schema, limits), bytes).ok).toBe(true);
    // Unsorted keys: { b: "x", a: 1 }
    const unsorted = new Uint8Array([0x82, 0xa1, 0x62, 0xa1, 0x78, 0xa1, 0x61, 0x01]);
    expect(requireCanonical(decodeWith(unsorted, schema, limits), unsorted)).toMatchObject({
      ok: false,
      error: { code: "LOFT_ERR_MALFORMED" },
    });
    // Non-minimal integer: a = uint8(1)
    const wide = new Uint8Array([0x82, 0xa1, 0x61, 0xcc, 0x01, 0xa1, 0x62, 0xa1, 0x78]);
    expect(requireCanonical(decodeWith(wide, schema, limits), wide).ok).toBe(false);
  });
});

describe('core/codec/codec: strings are UTF-8 (docs/protocol/wire.md, "Canonical MessagePack")', () => {
  const malformed = { ok: false, error: { code: "LOFT_ERR_MALFORMED" } };

  it("refuses the reviewer's inputs: a lone surrogate and a byte ff, as a value and as a key", () => {
    for (const bytes of [
      "a3eda080",
      "a1ff",
      "81a3eda08001",
      "81a1ff01",
      `82a16101a164d9ff${"61".repeat(254)}ff`, // str 8 of 255 bytes, past 200
    ])
      expect([bytes.slice(0, 16), decodeRaw(fromHex(bytes), limits)]).toMatchObject([
        bytes.slice(0, 16),
        malformed,
      ]);
    // Long strings (past @msgpack/msgpack's 200-byte switch to a lenient TextDecoder) too.
    const long = encodeCanonical({ s: "x".repeat(300) });
    expect(decodeRaw(long, limits).ok).toBe(true);
    long[long.length - 1] = 0xff;
    expect(decodeRaw(long, limits)).toMatchObject(malformed);
    expect(decodeRaw(fromHex("a2c3bf"), limits)).toEqual({ ok: true, value: "ÿ" });
  });

  it("the string check steps over the heads the encoder never writes: float 32, str/bin/ext 32, array/map 32", () => {
    // [float32 1, bin8 [0 0 db ff ff ff], float64 (last bytes db ff ff ff), str32 "a", bin32 [ff],
    // ext32 type 1 [ff], map32 {"k": <last>}]: a wrong step lands on `db ff ff ff` (a str32 longer
    // than the input) and the walk would miss <last>.
    const frame = (last: string) =>
      fromHex(
        `dd00000007ca3f800000c4060000dbffffffcb3ff00000dbffffffdb0000000161c600000001ffc90000000101ffdf00000001a16b${last}`,
      );
    const good = decodeRaw(frame("a161"), limits);
    expect(good.ok).toBe(true);
    if (good.ok) expect((good.value as unknown[]).slice(0, 1)).toEqual([1]);
    if (good.ok) expect((good.value as unknown[]).slice(3, 4)).toEqual(["a"]);
    expect(decodeRaw(frame("a1ff"), limits)).toMatchObject(malformed);
    expect(decodeRaw(frame("a3eda080"), limits)).toMatchObject(malformed);
  });

  it("bytes that are not UTF-8 at any string of any value are LOFT_ERR_MALFORMED (property)", () => {
    const key = fc.string({ minLength: 0, maxLength: 8, unit: "grapheme" });
    const { tree } = fc.letrec((tie) => ({
      tree: fc.oneof(
        { depthSize: "small" },
        fc.string({ unit: "grapheme", maxLength: 40 }),
        fc.nat(),
        // Every other head the walk in codec.ts steps over (an item boundary it got wrong would
        // let a bad string through or read a number's bytes as one): (u)int 8..64 and negative
        // fixint, float 32/64, nil, bin 8/16, fixext 1..16 and ext 8/16, array/map 16.
        fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.integer({ min: -32, max: -1 })),
        fc.oneof(
          fc.double(),
          fc.float({ noNaN: true }).map((f) => Math.fround(f)),
        ),
        fc.constant(null),
        fc.uint8Array({ maxLength: 300 }),
        fc
          .tuple(fc.integer({ min: 0, max: 127 }), fc.uint8Array({ maxLength: 300 }))
          .map(([type, data]) => new ExtData(type, data)),
        fc.boolean(),
        fc.array(tie("tree"), { maxLength: 4 }),
        fc.array(fc.nat(), { minLength: 16, maxLength: 18 }),
        fc.dictionary(key, tie("tree"), { maxKeys: 4 }),
        fc.dictionary(key, fc.boolean(), { minKeys: 16, maxKeys: 18 }),
      ),
    }));
    const withString = fc
      .tuple(tree, fc.string({ maxLength: 4 }))
      .map(([t, s]) => [t, s] as unknown[])
      .chain((value) =>
        fc.record({
          value: fc.constant(value),
          at: fc.nat({ max: stringsOf(value).length - 1 }),
          bad: invalidUtf8Arb,
          before: fc.nat({ max: 300 }),
        }),
      );
    fc.assert(
      fc.property(withString, ({ value, at, bad, before }) => {
        const { good, spoiled } = spoilString(value, at, bad, before, encodeCanonical);
        const big = { maxBytes: 1 << 20 };
        expect(decodeRaw(good, big).ok).toBe(true);
        const r = decodeRaw(spoiled, big);
        expect(r).toMatchObject(malformed);
        if (!r.ok) expect(r.error.message).toMatch(/is not UTF-8/);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("core/codec/codec: the encoder writes only UTF-8", () => {
  it("writes a lone surrogate as U+FFFD, as TextEncoder does, in short and long strings and keys", () => {
    expect(toHex(encodeCanonical("a\ud800b"))).toBe("a561efbfbd62");
    expect(toHex(encodeCanonical({ "\udc00": "\ud83d\ude00" }))).toBe("81a3efbfbda4f09f9880");
    const long = `${"x".repeat(60)}\udbff`;
    expect(decodeRaw(encodeCanonical(long), limits)).toEqual({ ok: true, value: `${"x".repeat(60)}\ufffd` });
  });

  it("a leading U+FEFF is kept in strings of any length, value or key (the library's long-string reader dropped it)", () => {
    // Over 200 bytes @msgpack/msgpack reads a str with a TextDecoder that drops a leading ef bb bf.
    for (const n of [0, 10, 199, 200, 300, 5000]) {
      const s = `\ufeff${"a".repeat(n)}`;
      const t = `\ufeff\ufeff${"é".repeat(n)}`;
      expect(decodeRaw(encodeCanonical({ [s]: [s, t] }), { maxBytes: 1 << 16 })).toEqual({
        ok: true,
        value: { [s]: [s, t] },
      });
    }
  });

  it("decodeOwnRecord: lenient as the library (a record an earlier version wrote), but keeps a leading U+FEFF", () => {
    const long = `\ufeff${"x".repeat(300)}`;
    expect(decodeOwnRecord(encodeCanonical({ t: [long] }))).toEqual({ t: [long] });
    // ed a0 80, as @msgpack/msgpack wrote "\ud800": read back as written, not refused.
    expect(decodeOwnRecord(fromHex("a3eda080"))).toBe("\ud800");
    expect(() => decodeOwnRecord(fromHex("a3eda0"))).toThrow();
  });

  it("any string encodes, and decodes as itself with each lone surrogate made U+FFFD (property)", () => {
    // Any code point, or one UTF-16 unit of the surrogate range (two in a row may pair up).
    // U+FEFF too: leading, it is a character and not a byte order mark (wire.md, "Canonical MessagePack").
    const withLone = fc.oneof(
      fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
      fc.constant("\ufeff"),
      fc.integer({ min: 0xd800, max: 0xdfff }).map((u) => String.fromCharCode(u)),
    );
    fc.assert(
      fc.property(
        fc.string({ unit: withLone, maxLength: 120 }),
        fc.string({ unit: withLone, maxLength: 8 }),
        (s, k) => {
          const mended = (x: string) => x.replace(/\p{Cs}/gu, "\ufffd");
          expect(decodeRaw(encodeCanonical({ [k]: [s] }), { maxBytes: 4096 })).toEqual({
            ok: true,
            value: { [mended(k)]: [mended(s)] },
          });
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});
