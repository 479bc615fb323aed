import { describe, expect, it } from "vitest";
import { fromHex, toHex, utf8 } from "../bytes.ts";
import { createUserIdentity } from "./identity.ts";
import {
  compareScannedSafetyCode,
  fingerprintDigits,
  formatSafetyCode,
  iteratedFingerprint,
  parseSafetyCode,
  SAFETY_CODE_ITERATIONS,
  safetyCode,
  safetyCodeQr,
  safetyCodesMatch,
} from "./safety-code.ts";

// Published test vectors of Signal's NumericFingerprintGenerator (libsignal,
// rust/protocol/src/fingerprint.rs, `fingerprint_test_v1`, same values as the Java
// NumericFingerprintGeneratorTest.testVectorsVersion1): 33-byte serialized keys, phone-number
// stable ids, 5200 iterations. They prove the construction Loft reuses with its own key/id choice.
const SIGNAL = {
  aliceKey: "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868",
  bobKey: "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b",
  aliceId: "+14152222222",
  bobId: "+14153333333",
  display: "300354477692869396892869876765458257569162576843440918079131",
  // LogicalFingerprint contents inside ALICE_SCANNABLE_FINGERPRINT_V1 (local, then remote)
  aliceScannable: "1e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df",
  bobScannable: "d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d",
};

const T0 = 1_700_000_000_000;
const alice = createUserIdentity({ username: "alice", now: T0, seed: new Uint8Array(32).fill(1) });
const bob = createUserIdentity({ username: "bob", now: T0, seed: new Uint8Array(32).fill(2) });
const mallory = createUserIdentity({ username: "bob", now: T0, seed: new Uint8Array(32).fill(3) });
const A = alice.identity.verified.identity_key;
const B = bob.identity.verified.identity_key;
const M = mallory.identity.verified.identity_key;

describe("iterated fingerprint = Signal NumericFingerprint", () => {
  it("reproduces libsignal's published v1 vectors", () => {
    const a = iteratedFingerprint(fromHex(SIGNAL.aliceKey), utf8(SIGNAL.aliceId), SAFETY_CODE_ITERATIONS);
    const b = iteratedFingerprint(fromHex(SIGNAL.bobKey), utf8(SIGNAL.bobId), SAFETY_CODE_ITERATIONS);
    expect(toHex(a.subarray(0, 32))).toBe(SIGNAL.aliceScannable);
    expect(toHex(b.subarray(0, 32))).toBe(SIGNAL.bobScannable);
    const da = fingerprintDigits(a);
    const db = fingerprintDigits(b);
    expect(da < db ? da + db : db + da).toBe(SIGNAL.display);
  });
});

describe("safety code", () => {
  it("is 60 digits, identical on both sides (order-independent)", () => {
    const ab = safetyCode(A, B);
    expect(ab).toMatch(/^\d{60}$/);
    expect(safetyCode(B, A)).toBe(ab);
  });

  it("changes when either key changes (a man in the middle shows a different code)", () => {
    expect(safetyCode(A, M)).not.toBe(safetyCode(A, B));
    expect(safetyCode(M, B)).not.toBe(safetyCode(A, B));
  });

  it("formats in 12 groups of 5 and parses back what users type", () => {
    const code = safetyCode(A, B);
    const shown = formatSafetyCode(code);
    expect(shown).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(parseSafetyCode(shown)).toEqual({ ok: true, value: code });
    expect(parseSafetyCode(`${shown.slice(0, -1)}`).ok).toBe(false);
    expect(safetyCodesMatch(shown, code)).toBe(true);
    expect(safetyCodesMatch(code, safetyCode(A, M))).toBe(false);
    expect(safetyCodesMatch("garbage", code)).toBe(false);
  });

  it("QR: each side scans the other's code; crosswise halves must match", () => {
    const aliceShows = safetyCodeQr(A, B);
    const bobShows = safetyCodeQr(B, A);
    expect(aliceShows).toMatch(/^LOFT:SC1:[0-9A-F]{128}$/);
    expect(compareScannedSafetyCode(aliceShows, B, A)).toEqual({ ok: true, value: true });
    expect(compareScannedSafetyCode(bobShows, A, B)).toEqual({ ok: true, value: true });
    // scanning my own screen (a mirror) or a code made with mallory's key does not match
    expect(compareScannedSafetyCode(aliceShows, A, B)).toEqual({ ok: true, value: false });
    expect(compareScannedSafetyCode(safetyCodeQr(M, A), A, B)).toEqual({ ok: true, value: false });
  });

  it("QR: foreign texts and other versions are typed errors", () => {
    const code = (s: string) => {
      const r = compareScannedSafetyCode(s, A, B);
      return r.ok ? "ok" : r.error.code;
    };
    expect(code("https://example.com")).toBe("LOFT_ERR_MALFORMED");
    expect(code(`LOFT:SC2:${"0".repeat(128)}`)).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    expect(code(`LOFT:SC1:${"0".repeat(127)}`)).toBe("LOFT_ERR_MALFORMED");
    expect(code(`LOFT:SC1:${"g".repeat(128)}`)).toBe("LOFT_ERR_MALFORMED");
  });
});
