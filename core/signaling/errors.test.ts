/**
 * The signaling half of the one error vocabulary (core/signaling/errors.ts): every signaling code
 * has one `LOFT_ERR_*` code, the table reads backwards for the server's replies exactly as the
 * server answered decode failures before the merge, and no code a server sends escapes the closed
 * union.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LoftError, type LoftErrorCode } from "../errors.ts";
import { SIGNALING_ERROR_CODES } from "../wire/signaling.ts";
import {
  SIGNALING_CLIENT_ONLY_CODES,
  SIGNALING_TO_LOFT,
  type SignalingClientErrorCode,
  signalingCodeOfWire,
  signalingError,
  signalingErrorOfWire,
  signalingWireFor,
} from "./errors.ts";

const ALL: SignalingClientErrorCode[] = [...SIGNALING_ERROR_CODES, ...SIGNALING_CLIENT_ONLY_CODES];

describe("signaling codes in the LoftErrorCode vocabulary", () => {
  it("maps every signaling code to its own LOFT_ERR_* code", () => {
    expect(Object.keys(SIGNALING_TO_LOFT).sort()).toEqual([...ALL].sort());
    const loft = ALL.map((c) => SIGNALING_TO_LOFT[c]);
    for (const c of loft) expect(c).toMatch(/^LOFT_ERR_[A-Z0-9_]+$/);
    expect(new Set(loft).size).toBe(loft.length);
  });

  it("reads the table backwards for every wire code", () => {
    for (const wire of SIGNALING_ERROR_CODES) expect(signalingWireFor(SIGNALING_TO_LOFT[wire])).toBe(wire);
  });

  it("answers decode failures with the wire codes the server always used", () => {
    const expected: [LoftErrorCode, string][] = [
      ["LOFT_ERR_UNKNOWN_TYPE", "UNKNOWN_TYPE"],
      ["LOFT_ERR_BAD_SIGNATURE", "BAD_SIGNATURE"],
      ["LOFT_ERR_BAD_IDENTITY", "BAD_IDENTITY"],
      ["LOFT_ERR_MALFORMED", "MALFORMED"],
      ["LOFT_ERR_SCHEMA", "MALFORMED"],
      ["LOFT_ERR_FRAME_TOO_LARGE", "MALFORMED"],
      ["LOFT_ERR_UNSUPPORTED_VERSION", "MALFORMED"],
      ["LOFT_ERR_PADDING", "MALFORMED"],
      ["LOFT_ERR_REPLAY", "MALFORMED"],
    ];
    for (const [code, wire] of expected) expect(signalingWireFor(code)).toBe(wire);
  });

  it("gives each signaling failure its LoftErrorCode as code and its signaling name as wire", () => {
    for (const [wire, code] of [
      ["PEER_OFFLINE", "LOFT_ERR_SIGNALING_PEER_OFFLINE"],
      ["UNREACHABLE", "LOFT_ERR_SIGNALING_UNREACHABLE"],
      ["BAD_SIGNATURE", "LOFT_ERR_BAD_SIGNATURE"],
    ] as const) {
      const e = signalingError(wire, "x");
      expect(e).toBeInstanceOf(LoftError);
      expect(e).toMatchObject({ code, wire });
    }
  });

  it("turns any ERROR code a server sends into a LoftError, an unknown one UNRECOGNIZED with the server's code kept", () => {
    expect(signalingErrorOfWire("PEER_OFFLINE", "m")).toMatchObject({
      code: "LOFT_ERR_SIGNALING_PEER_OFFLINE",
      wire: "PEER_OFFLINE",
    });
    for (const odd of ["FUTURE_CODE", "__proto__", "constructor", "UNREACHABLE", ""])
      expect(signalingErrorOfWire(odd, "m")).toMatchObject({
        code: "LOFT_ERR_SIGNALING_UNRECOGNIZED",
        wire: odd,
      });
    fc.assert(
      fc.property(fc.string(), fc.string(), (wire, message) => {
        const e = signalingErrorOfWire(wire, message);
        expect(e).toBeInstanceOf(LoftError);
        expect(e.wire).toBe(wire);
        expect(Object.values(SIGNALING_TO_LOFT)).toContain(e.code);
      }),
      { numRuns: 1_000 },
    );
  });

  it("keeps any code a server sends inside the closed union", () => {
    expect(signalingCodeOfWire("PEER_OFFLINE")).toBe("PEER_OFFLINE");
    for (const odd of ["FUTURE_CODE", "constructor", "__proto__", "toString", "UNREACHABLE", ""])
      expect(signalingCodeOfWire(odd)).toBe("UNRECOGNIZED");
    fc.assert(
      fc.property(fc.string(), (code) => {
        const known = signalingCodeOfWire(code);
        expect(Object.hasOwn(SIGNALING_TO_LOFT, known)).toBe(true);
        if (known !== "UNRECOGNIZED") expect(known).toBe(code);
      }),
      { numRuns: 2_000 },
    );
  });
});
