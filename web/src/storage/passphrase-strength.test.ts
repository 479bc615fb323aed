/** The passphrase strength meter (passphrase-strength.ts): fixed cases and properties. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import { passphraseProblem } from "./backup.ts";
import { passphraseStrength } from "./passphrase-strength.ts";

describe("passphraseStrength", () => {
  it.each([
    ["password", "too weak"],
    ["Password1!", "too weak"],
    ["12345678", "too weak"],
    ["aaaaaaaaaaaa", "too weak"],
    ["abcdefghijkl", "too weak"],
    ["qwertyuiop", "too weak"],
    ["wrong passphrase", "weak"],
    ["correct horse battery", "fair"],
    ["Sommerferien2024", "fair"],
    ["x7#Kp2!qLm9@", "good"],
    ["blue-train-seven-lamp-river", "strong"],
  ])("%s is %s", (pass, label) => {
    expect(passphraseStrength(pass).label).toBe(label);
  });

  it("more unrelated words make it stronger; advice is empty only when strong", () => {
    const words = ["lamp", "river", "orbit", "velvet", "cactus"];
    let last = -1;
    for (let n = 2; n <= words.length; n++) {
      const s = passphraseStrength(words.slice(0, n).join(" "));
      expect(s.bits).toBeGreaterThan(last);
      last = s.bits;
      expect(s.advice === "").toBe(s.score === 4);
    }
  });

  it("never throws, and scores any string 0..4 with a matching label", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (s) => {
        const r = passphraseStrength(s);
        expect(r.score).toBeGreaterThanOrEqual(0);
        expect(r.score).toBeLessThanOrEqual(4);
        expect(["too weak", "weak", "fair", "good", "strong"][r.score]).toBe(r.label);
        expect(Number.isFinite(r.bits) && r.bits >= 0).toBe(true);
      }),
      { numRuns: Math.min(FUZZ_RUNS, 20_000) },
    );
  });

  it("new passphrases: at least 8 characters and not too weak, with a reason in words", () => {
    expect(passphraseProblem("short")).toMatch(/at least 8/);
    expect(passphraseProblem("password123")).toMatch(/too easy to guess/);
    expect(passphraseProblem("backup passphrase 1")).toBeNull();
  });
});
