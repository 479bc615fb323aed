import { Encoder } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { concatBytes, fromHex, toHex } from "../bytes.ts";
import {
  CURRENT_VERSION,
  decodeVersionHeader,
  encodeVersionHeader,
  MAX_VERSION_HEADER_BYTES,
  SIGNALING_VERSION,
} from "./version.ts";

// The 1.0 header, byte for byte (docs/protocol/wire.md, "Version header"): a 4-entry map with keys
// in byte order. Written out by hand from the MessagePack spec, not produced by the encoder.
const V1_0 =
  "84" +
  "ad" +
  toHex(new TextEncoder().encode("protocol_name")) +
  "a5" +
  toHex(new TextEncoder().encode("SREMP")) +
  "a1" +
  "74" +
  "ae" +
  toHex(new TextEncoder().encode("VERSION_HEADER")) +
  "ad" +
  toHex(new TextEncoder().encode("version_major")) +
  "01" +
  "ad" +
  toHex(new TextEncoder().encode("version_minor")) +
  "00";

const codeOf = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? "ok" : r.error!.code);

describe("VERSION_HEADER (SREMP §version)", () => {
  it("encodes SREMP 1.0 to the documented 68 bytes and decodes them", () => {
    expect(toHex(encodeVersionHeader())).toBe(V1_0);
    expect(V1_0.length / 2).toBe(68);
    expect(decodeVersionHeader(fromHex(V1_0))).toEqual({ ok: true, value: { ...CURRENT_VERSION } });
  });

  it("the signaling header is SREMP 1.1: the documented bytes, and each side refuses the other's", () => {
    const v11 = `${V1_0.slice(0, -2)}01`; // docs/protocol/signaling.md, "Connection opening"
    expect(toHex(encodeVersionHeader(SIGNALING_VERSION))).toBe(v11);
    expect(decodeVersionHeader(fromHex(v11), SIGNALING_VERSION)).toEqual({
      ok: true,
      value: { ...SIGNALING_VERSION },
    });
    expect(codeOf(decodeVersionHeader(fromHex(V1_0), SIGNALING_VERSION))).toBe(
      "LOFT_ERR_UNSUPPORTED_VERSION",
    );
    expect(codeOf(decodeVersionHeader(fromHex(v11)))).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
  });

  it("refuses another version or protocol with LOFT_ERR_UNSUPPORTED_VERSION", () => {
    for (const h of [
      { protocol_name: "SREMP", version_major: 2, version_minor: 0 },
      { protocol_name: "SREMP", version_major: 1, version_minor: 1 },
      { protocol_name: "SREMP", version_major: 0, version_minor: 9 },
      { protocol_name: "OTHER", version_major: 1, version_minor: 0 },
    ])
      expect(codeOf(decodeVersionHeader(encodeVersionHeader(h)))).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
  });

  it("maps bad bytes, bad shapes and oversize input to their codes", () => {
    expect(codeOf(decodeVersionHeader(new Uint8Array()))).toBe("LOFT_ERR_MALFORMED");
    expect(codeOf(decodeVersionHeader(fromHex(V1_0).subarray(0, 67)))).toBe("LOFT_ERR_MALFORMED");
    expect(codeOf(decodeVersionHeader(concatBytes(fromHex(V1_0), new Uint8Array([0]))))).toBe(
      "LOFT_ERR_MALFORMED",
    );
    expect(codeOf(decodeVersionHeader(new Uint8Array(MAX_VERSION_HEADER_BYTES + 1)))).toBe(
      "LOFT_ERR_FRAME_TOO_LARGE",
    );
    const enc = new Encoder({ sortKeys: true });
    expect(
      codeOf(decodeVersionHeader(enc.encode({ protocol_name: "SREMP", version_major: 1, version_minor: 0 }))),
    ).toBe("LOFT_ERR_SCHEMA");
    expect(
      codeOf(
        decodeVersionHeader(
          enc.encode({ t: "VERSION_HEADER", protocol_name: "SREMP", version_major: 256, version_minor: 0 }),
        ),
      ),
    ).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(decodeVersionHeader(enc.encode({ t: "REGISTER_REQUEST" })))).toBe("LOFT_ERR_SCHEMA");
    // same header with keys unsorted: a second byte form is refused
    const unsorted = new Encoder().encode({
      t: "VERSION_HEADER",
      protocol_name: "SREMP",
      version_major: 1,
      version_minor: 0,
    });
    expect(codeOf(decodeVersionHeader(unsorted))).toBe("LOFT_ERR_MALFORMED");
  });

  it("throws when asked to encode something that is not a header (programming error)", () => {
    expect(() =>
      encodeVersionHeader({ protocol_name: "SREMP", version_major: 300, version_minor: 0 }),
    ).toThrow(RangeError);
  });
});
