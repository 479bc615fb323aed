import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { utf8 } from "../bytes.ts";
import { fromBase64url, toBase64url } from "./base64url.ts";

describe("base64url (RFC 4648 §5, no padding, canonical)", () => {
  it("matches the RFC 4648 §10 test vectors (translated to the URL alphabet, padding removed)", () => {
    const vectors: [string, string][] = [
      ["", ""],
      ["f", "Zg"],
      ["fo", "Zm8"],
      ["foo", "Zm9v"],
      ["foob", "Zm9vYg"],
      ["fooba", "Zm9vYmE"],
      ["foobar", "Zm9vYmFy"],
    ];
    for (const [plain, encoded] of vectors) {
      expect(toBase64url(utf8(plain))).toBe(encoded);
      expect(fromBase64url(encoded)).toEqual({ ok: true, value: utf8(plain) });
    }
    expect(toBase64url(new Uint8Array([0xfb, 0xff]))).toBe("-_8");
  });

  it("refuses padding, foreign characters, impossible lengths and non-zero trailing bits", () => {
    for (const bad of ["Zg==", "Zm9v+", "Zm9v/", "Z", "Zm9v Yg", "Zh", "Zm9", "Zm8=", "é"]) {
      const r = fromBase64url(bad);
      expect(r.ok, bad).toBe(false);
    }
    const r = fromBase64url("Zh");
    expect(r.ok ? undefined : r.error.code).toBe("LOFT_ERR_MALFORMED");
    const long = fromBase64url("AAAA", 3);
    expect(long.ok ? undefined : long.error.code).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });

  it("round-trips any bytes, and any accepted text re-encodes to itself", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = fromBase64url(toBase64url(bytes));
        expect(r).toEqual({ ok: true, value: bytes });
      }),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (text) => {
        const r = fromBase64url(text);
        if (r.ok) expect(toBase64url(r.value)).toBe(text);
        else expect(["LOFT_ERR_MALFORMED"]).toContain(r.error.code);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
