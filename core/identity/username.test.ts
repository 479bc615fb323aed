import { describe, expect, it } from "vitest";
import { checkUsername, validateUsername } from "./username.ts";

describe("usernames (SREMP §identity, Loft's definition in docs/protocol/identity.md)", () => {
  it.each([
    ["alice", "plain ASCII"],
    ["x".repeat(40), "exactly 40 characters"],
    ["😀".repeat(40), "40 astral scalar values (80 UTF-16 units, 160 UTF-8 bytes)"],
    ["Zoë Ångström", "precomposed (NFC) letters and an inner space"],
    ["👩‍💻 dev", "an emoji ZWJ sequence"],
    ["日本語の名前", "CJK"],
  ])("accepts %j (%s)", (name) => {
    expect(checkUsername(name)).toEqual({ ok: true, value: name });
  });

  it.each([
    ["", "empty"],
    ["x".repeat(41), "41 characters"],
    ["😀".repeat(41), "41 astral characters"],
    ["e\u0301", "not NFC"],
    ["a\nb", "a control character"],
    ["a\u0000", "NUL"],
    ["a\u0085b", "C1 control"],
    ["\u202Egnp.exe", "a bidi override"],
    ["a\u2066b", "a bidi isolate"],
    ["a\u2028b", "a line separator"],
    [" alice", "leading space"],
    ["alice\u00a0", "trailing no-break space"],
    ["\ud800", "a lone surrogate"],
    ["a\udc00b", "a lone low surrogate"],
  ])("refuses %j (%s) with LOFT_ERR_BAD_IDENTITY", (name) => {
    const r = checkUsername(name);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("LOFT_ERR_BAD_IDENTITY");
  });

  it("refuses non-strings", () => {
    for (const x of [undefined, null, 5, ["a"], new Uint8Array([97])])
      expect(checkUsername(x).ok).toBe(false);
    expect(validateUsername(42).ok).toBe(false);
  });

  it("validateUsername normalises input to NFC before checking; checkUsername does not", () => {
    expect(validateUsername("Jose\u0301")).toEqual({ ok: true, value: "José" });
    expect(checkUsername("Jose\u0301").ok).toBe(false);
    // 40 decomposed letters normalise to 40 characters, although the input had 80 code points
    expect(validateUsername("e\u0301".repeat(40))).toEqual({ ok: true, value: "é".repeat(40) });
    expect(validateUsername("a\u202Eb").ok).toBe(false);
  });
});
