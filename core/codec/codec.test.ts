import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { decodeRaw, decodeWith, encodeCanonical, requireCanonical } from "./codec.ts";

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
