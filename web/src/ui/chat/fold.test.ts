import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import { excerpt, FOLD_CHARS, FOLD_LINES, isLong } from "./fold.ts";

describe("Read more folding", () => {
  it("folds texts over the character or line limit, not shorter ones", () => {
    expect(isLong("x".repeat(FOLD_CHARS))).toBe(false);
    expect(isLong("x".repeat(FOLD_CHARS + 1))).toBe(true);
    expect(isLong(Array(FOLD_LINES).fill("line").join("\n"))).toBe(false);
    expect(
      isLong(
        Array(FOLD_LINES + 1)
          .fill("line")
          .join("\n"),
      ),
    ).toBe(true);
  });

  it("cuts at a word or after whole lines", () => {
    const words = Array.from({ length: 400 }, (_, i) => `w${i}`).join(" ");
    const cut = excerpt(words);
    expect(cut.endsWith("…")).toBe(true);
    expect(words.startsWith(cut.slice(0, -1))).toBe(true);
    expect(words[cut.length - 1]).toBe(" "); // ends on a whole word
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i}`).join("\n");
    expect(excerpt(lines)).toBe(`${lines.split("\n").slice(0, 10).join("\n")}…`);
  });

  it("an excerpt is always a shorter prefix and never splits an emoji", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", minLength: FOLD_CHARS, maxLength: 3000 }), (text) => {
        const cut = excerpt(text).slice(0, -1);
        expect(text.startsWith(cut)).toBe(true);
        expect(cut.length).toBeLessThanOrEqual(700);
        const last = cut.charCodeAt(cut.length - 1);
        expect(last >= 0xd800 && last <= 0xdbff).toBe(false);
      }),
      { numRuns: Math.max(1000, Math.floor(FUZZ_RUNS / 10)) },
    );
  });
});
