/**
 * Accept-Encoding negotiation: weights, wildcards, refusals, and — for any string at all — an
 * answer drawn from what we hold, never an exception.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../test/support/fuzz.ts";
import { acceptedEncodings, CONTENT_ENCODINGS } from "./accept-encoding.ts";

describe("acceptedEncodings", () => {
  it("follows weights, then prefers brotli", () => {
    expect(acceptedEncodings("gzip, deflate, br, zstd")).toEqual(["br", "gzip"]);
    expect(acceptedEncodings("gzip, deflate")).toEqual(["gzip"]);
    expect(acceptedEncodings("br;q=0.5, gzip;q=0.9")).toEqual(["gzip", "br"]);
    expect(acceptedEncodings("BR ; Q=1.0")).toEqual(["br"]);
    expect(acceptedEncodings("x-gzip")).toEqual(["gzip"]);
    expect(acceptedEncodings("*")).toEqual(["br", "gzip"]);
    expect(acceptedEncodings("*;q=0.1, br;q=0")).toEqual(["gzip"]);
    expect(acceptedEncodings(["gzip", "br"])).toEqual(["br", "gzip"]);
  });

  it("sends the file as is when nothing we hold is accepted", () => {
    for (const h of [
      undefined,
      "",
      "identity",
      "deflate",
      "br;q=0, gzip;q=0",
      "br;q=2",
      "br;q=abc",
      ",,,;;;",
    ])
      expect(acceptedEncodings(h), String(h)).toEqual([]);
    expect(acceptedEncodings(`br, ${"x".repeat(2_000)}`)).toEqual([]);
    expect(acceptedEncodings("gzip, br", [])).toEqual([]);
  });

  it("never throws and answers a subset of what we hold, for any header", () => {
    const token = fc.constantFrom("br", "gzip", "x-gzip", "*", "identity", "deflate", "BR", "q", "");
    const part = fc
      .tuple(token, fc.option(fc.string({ maxLength: 8 })))
      .map(([t, q]) => (q ? `${t};q=${q}` : t));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 1_200 }),
          fc.array(part).map((p) => p.join(", ")),
        ),
        (h) => {
          const out = acceptedEncodings(h);
          expect(out.every((e) => (CONTENT_ENCODINGS as readonly string[]).includes(e))).toBe(true);
          expect(new Set(out).size).toBe(out.length);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});
