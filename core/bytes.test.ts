/**
 * core/bytes.ts's `allOrWipe`: secrets made together come back in order, and when one fails the
 * others are wiped by their own wipe and the first failure (in argument order, not in time) is
 * thrown (docs/design.md, "Cryptography": secrets are wiped when done); `isUtf8` takes exactly the
 * bytes a fatal TextDecoder does (docs/protocol/wire.md, "Canonical MessagePack").
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../test/support/fuzz.ts";
import { allOrWipe, fromHex, fromUtf8, isUtf8, wipe } from "./bytes.ts";

/** A promise settled when the test says, so the order in time is the test's. */
function later<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("allOrWipe", () => {
  it("returns every value in argument order and wipes none", async () => {
    const a = Uint8Array.of(1, 2);
    const b = { key: Uint8Array.of(3) };
    const wiped: unknown[] = [];
    const [x, y] = await allOrWipe(
      [Promise.resolve(a), (v) => wiped.push(v)],
      [Promise.resolve(b), (v) => wiped.push(v)],
    );
    expect(x).toBe(a);
    expect(y).toBe(b);
    expect(wiped).toEqual([]);
    expect(a).toEqual(Uint8Array.of(1, 2));
  });

  it("one fails: each value that was made is wiped by its own wipe, and the failure is thrown", async () => {
    const made = Uint8Array.of(7, 7, 7);
    const pair = { secretKey: Uint8Array.of(9, 9) };
    const fault = new Error("provider failed");
    await expect(
      allOrWipe(
        [Promise.resolve(made), wipe],
        [Promise.reject(fault), wipe],
        [Promise.resolve(pair), (p) => p.secretKey.fill(0)],
      ),
    ).rejects.toBe(fault);
    expect(made).toEqual(new Uint8Array(3));
    expect(pair.secretKey).toEqual(new Uint8Array(2));
  });

  it("waits for every secret before it throws: one made after the failure is wiped too", async () => {
    const slow = later<Uint8Array>();
    const fault = new Error("first");
    const result = allOrWipe([Promise.reject(fault), wipe], [slow.promise, wipe]);
    const made = Uint8Array.of(5);
    slow.resolve(made);
    await expect(result).rejects.toBe(fault);
    expect(made).toEqual(Uint8Array.of(0));
  });

  it("a wipe that throws (a provider's forget) keeps no other from wiping, and neither fault is lost", async () => {
    const fault = new Error("made nothing");
    const forgot = new Error("forget failed");
    const after = Uint8Array.of(4, 4);
    const result = allOrWipe(
      [
        Promise.resolve(Uint8Array.of(1)),
        () => {
          throw forgot;
        },
      ],
      [Promise.reject(fault), wipe],
      [Promise.resolve(after), wipe],
    );
    const thrown = await result.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(after).toEqual(new Uint8Array(2));
    expect(thrown).toBeInstanceOf(AggregateError);
    expect((thrown as AggregateError).errors).toEqual([fault, forgot]);
  });

  it("several fail: the first in argument order is thrown, whichever failed first in time", async () => {
    const first = later<Uint8Array>();
    const second = later<Uint8Array>();
    const result = allOrWipe([first.promise, wipe], [second.promise, wipe]);
    second.reject(new Error("second"));
    first.reject(new Error("first"));
    await expect(result).rejects.toThrow("first");
  });
});

describe("isUtf8", () => {
  const fatal = new TextDecoder("utf-8", { fatal: true });
  const strict = (b: Uint8Array) => {
    try {
      fatal.decode(b);
      return true;
    } catch {
      return false;
    }
  };

  it("takes well-formed UTF-8 and refuses every other kind of sequence (Unicode Table 3-7)", () => {
    for (const ok of [
      "",
      "41",
      "c280",
      "dfbf",
      "e0a080",
      "ed9fbf",
      "ee8080",
      "efbfbf",
      "f0908080",
      "f48fbfbf",
    ])
      expect([ok, isUtf8(fromHex(ok))]).toEqual([ok, true]);
    const bad = [
      "80", // a lone continuation byte
      "bf",
      "c080", // overlong forms
      "c1bf",
      "e09fbf",
      "f08fbfbf",
      "eda080", // surrogates
      "edbfbf",
      "f4908080", // past U+10FFFF
      "f5808080",
      "ff",
      "fe",
      "c2", // cut short
      "e282",
      "f09f98",
      "e28241",
      "41c3",
    ];
    for (const b of bad) expect([b, isUtf8(fromHex(b))]).toEqual([b, false]);
  });

  it("checks only the range it is given", () => {
    const b = fromHex("ff41e282ac42ff");
    expect(isUtf8(b, 1, 6)).toBe(true);
    expect(isUtf8(b, 1, 4)).toBe(false); // e2 82 cut before its last byte
    expect(isUtf8(b, 0, 6)).toBe(false);
  });

  it("agrees with a fatal TextDecoder on random bytes (property)", () => {
    // Bytes drawn mostly from the lead and continuation ranges, so most inputs are near-misses.
    const b = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0x80, max: 0xf5 }));
    fc.assert(
      fc.property(
        fc.array(b, { maxLength: 12 }).map((a) => Uint8Array.from(a)),
        (bytes) => {
          expect(isUtf8(bytes)).toBe(strict(bytes));
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
    // Long ASCII runs (read a word at a time) with a few other bytes anywhere, at any alignment.
    const long = fc.record({
      ascii: fc.uint8Array({ minLength: 60, maxLength: 400, max: 0x7f }),
      others: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0x80, max: 0xff })), { maxLength: 3 }),
      offset: fc.nat({ max: 7 }),
      cut: fc.nat({ max: 7 }),
    });
    fc.assert(
      fc.property(long, ({ ascii, others, offset, cut }) => {
        const buf = new Uint8Array(offset + ascii.length);
        buf.set(ascii, offset);
        for (const [at, b] of others) buf[offset + (at % ascii.length)] = b;
        const bytes = buf.subarray(offset);
        const end = Math.max(0, bytes.length - cut);
        expect(isUtf8(bytes, 0, end)).toBe(strict(bytes.subarray(0, end)));
        expect(isUtf8(buf, offset, offset + end)).toBe(strict(bytes.subarray(0, end)));
      }),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        const bytes = new TextEncoder().encode(s);
        expect(isUtf8(bytes)).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("fromUtf8", () => {
  it("keeps a leading U+FEFF (ef bb bf is a character, not a mark to drop) and refuses what isUtf8 refuses", () => {
    expect(fromUtf8(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61))).toBe("\ufeffa");
    expect(() => fromUtf8(Uint8Array.of(0xed, 0xa0, 0x80))).toThrow();
    expect(() => fromUtf8(Uint8Array.of(0x61, 0xff))).toThrow();
  });
});
