import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { concatBytes } from "../bytes.ts";
import {
  decodeFrame,
  encodeFrame,
  encodeFrameParts,
  LEGACY_CHUNK,
  MAX_CHUNK,
  MAX_HEAD_BYTES,
  MAX_WINDOW,
  METHODS,
  type ProxyFrame,
  REQUEST_HEADERS,
  RESET_CODES,
  RESPONSE_HEADERS,
  type ResetCode,
} from "./frames.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const code = (b: Uint8Array) => {
  const r = decodeFrame(b);
  return r.ok ? "ok" : r.error.code;
};

const headerValue = fc.stringMatching(/^[\t\x20-\x7e]{0,40}$/);
const arbFrame: fc.Arbitrary<ProxyFrame> = fc.oneof(
  fc
    .record(
      {
        type: fc.constant("request" as const),
        id: fc.integer({ min: 1, max: 0xffffffff }),
        method: fc.constantFrom(...METHODS),
        window: fc.integer({ min: 0, max: MAX_WINDOW }),
        path: fc.string({ minLength: 1, maxLength: 200 }).map((s) => `/${s}`),
        headers: fc.array(fc.tuple(fc.constantFrom(...REQUEST_HEADERS), headerValue), { maxLength: 8 }),
        // NO_BODY (docs/protocol/proxy.md, "Body-less requests"): present as `true` or absent.
        noBody: fc.constantFrom(true as const, undefined),
      },
      { requiredKeys: ["type", "id", "method", "window", "path", "headers"] },
    )
    .map((f) => {
      const { noBody, ...rest } = f;
      return noBody ? { ...rest, noBody } : rest;
    }),
  fc.record({
    type: fc.constant("response" as const),
    id: fc.integer({ min: 1, max: 0xffffffff }),
    status: fc.integer({ min: 100, max: 599 }),
    headers: fc.array(fc.tuple(fc.constantFrom(...RESPONSE_HEADERS), headerValue), { maxLength: 8 }),
  }),
  fc.record({
    type: fc.constant("data" as const),
    id: fc.integer({ min: 1, max: 0xffffffff }),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 300 }),
  }),
  fc.record({ type: fc.constant("end" as const), id: fc.integer({ min: 1, max: 0xffffffff }) }),
  fc.record({
    type: fc.constant("credit" as const),
    id: fc.integer({ min: 1, max: 0xffffffff }),
    bytes: fc.integer({ min: 1, max: MAX_WINDOW }),
  }),
  fc.record({
    type: fc.constant("reset" as const),
    id: fc.integer({ min: 1, max: 0xffffffff }),
    code: fc.constantFrom(...(Object.keys(RESET_CODES) as ResetCode[])),
    reason: fc.string({ maxLength: 60 }),
  }),
);

describe("proxy frames", () => {
  it("every frame survives encode then decode, byte for byte", () => {
    fc.assert(
      fc.property(arbFrame, (frame) => {
        const bytes = encodeFrame(frame);
        const back = decodeFrame(bytes);
        expect(back.ok).toBe(true);
        if (back.ok) expect(hex(encodeFrame(back.value))).toBe(hex(bytes));
        if (back.ok && back.value.type === "request" && frame.type === "request")
          expect(back.value.noBody).toBe(frame.noBody);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a frame's parts join into its bytes; DATA's body is its own part, uncopied", () => {
    fc.assert(
      fc.property(arbFrame, (frame) => {
        const parts = encodeFrameParts(frame);
        expect(hex(concatBytes(...parts))).toBe(hex(encodeFrame(frame)));
        if (frame.type === "data") {
          expect(parts).toHaveLength(2);
          expect(parts[1]).toBe(frame.bytes);
        } else expect(parts).toHaveLength(1);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a decoded DATA body is a view of the frame's bytes (the receiver hands the buffer over)", () => {
    const bytes = encodeFrame({ type: "data", id: 7, bytes: Uint8Array.of(1, 2, 3) });
    const r = decodeFrame(bytes);
    expect(r.ok && r.value.type === "data" && r.value.bytes.buffer).toBe(bytes.buffer);
    expect(r.ok && r.value).toEqual({ type: "data", id: 7, bytes: Uint8Array.of(1, 2, 3) });
  });

  it("the decoder returns a typed error, never throws, on any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const r = decodeFrame(bytes);
        if (!r.ok) expect(r.error.code).toMatch(/^LOFT_ERR_/);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("the decoder survives every mutation of a valid frame (flip, cut, extend)", () => {
    fc.assert(
      fc.property(
        arbFrame,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.nat({ max: 3 }),
        (frame, at, xor, how) => {
          const bytes = encodeFrame(frame);
          const i = at % bytes.length;
          const mutated =
            how === 0
              ? bytes.map((b, j) => (j === i ? b ^ xor : b))
              : how === 1
                ? bytes.subarray(0, i)
                : Uint8Array.from([...bytes, xor]);
          const r = decodeFrame(mutated);
          if (!r.ok) expect(r.error.code).toMatch(/^LOFT_ERR_/);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("refuses malformed frames with the code that says why", () => {
    const req = encodeFrame({ type: "request", id: 1, method: "GET", window: 1000, path: "/a", headers: [] });
    expect(code(req)).toBe("ok");
    // NO_BODY is bit 0x80 of the method byte (offset 6); the low 7 bits must still be a method.
    const flagged = (m: number) => req.map((b, i) => (i === 6 ? m : b));
    const get = decodeFrame(flagged(0x81));
    expect(get.ok && get.value).toMatchObject({ type: "request", method: "GET", noBody: true });
    expect(decodeFrame(req).ok && "noBody" in (decodeFrame(req) as { value: object }).value).toBe(false);
    expect(code(flagged(0x80))).toBe("LOFT_ERR_SCHEMA");
    expect(code(flagged(0x88))).toBe("LOFT_ERR_SCHEMA");
    expect(code(flagged(0xff))).toBe("LOFT_ERR_SCHEMA");
    expect(code(req.subarray(0, 5))).toBe("LOFT_ERR_MALFORMED");
    expect(code(Uint8Array.from([...req, 0]))).toBe("LOFT_ERR_MALFORMED");
    expect(code(Uint8Array.from([2, ...req.subarray(1)]))).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
    expect(code(Uint8Array.from([1, 0x7f, ...req.subarray(2)]))).toBe("LOFT_ERR_UNKNOWN_TYPE");
    const id0 = req.slice();
    id0.fill(0, 2, 6);
    expect(code(id0)).toBe("LOFT_ERR_SCHEMA");
    const badMethod = req.slice();
    badMethod[6] = 99;
    expect(code(badMethod)).toBe("LOFT_ERR_SCHEMA");
    const bigWindow = req.slice();
    new DataView(bigWindow.buffer).setUint32(7, MAX_WINDOW + 1);
    expect(code(bigWindow)).toBe("LOFT_ERR_SCHEMA");
    // A header outside the allowlist (cookie) written by hand: refused, not dropped.
    const cookie = Uint8Array.from([
      ...req.subarray(0, req.length - 1),
      1,
      6,
      ...Buffer.from("cookie"),
      0,
      1,
      0x61,
    ]);
    expect(code(cookie)).toBe("LOFT_ERR_SCHEMA");
    // A CR LF in a header value (response splitting) is refused.
    const crlf = Uint8Array.from([
      ...req.subarray(0, req.length - 1),
      1,
      5,
      ...Buffer.from("range"),
      0,
      2,
      13,
      10,
    ]);
    expect(code(crlf)).toBe("LOFT_ERR_SCHEMA");
    // Invalid UTF-8 in the path.
    const badUtf8 = req.slice();
    badUtf8[13] = 0xff;
    expect(code(badUtf8)).toBe("LOFT_ERR_MALFORMED");
  });

  it("refuses oversized heads and chunks, and empty or zero frames", () => {
    const bigHead = new Uint8Array(MAX_HEAD_BYTES + 1);
    bigHead.set([1, 1, 0, 0, 0, 1]);
    expect(code(bigHead)).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    const bigChunk = new Uint8Array(6 + MAX_CHUNK + 1);
    bigChunk.set([1, 3, 0, 0, 0, 1]);
    expect(code(bigChunk)).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    expect(code(bigChunk.subarray(0, 6 + MAX_CHUNK))).toBe("ok"); // the largest DATA: one session frame
    expect(code(bigChunk.subarray(0, 6 + LEGACY_CHUNK + 1))).toBe("ok"); // over 16 KiB: accepted now
    expect(code(Uint8Array.from([1, 3, 0, 0, 0, 1]))).toBe("LOFT_ERR_SCHEMA"); // empty DATA
    expect(code(Uint8Array.from([1, 5, 0, 0, 0, 1, 0, 0, 0, 0]))).toBe("LOFT_ERR_SCHEMA"); // zero CREDIT
    expect(code(Uint8Array.from([1, 6, 0, 0, 0, 1, 200]))).toBe("LOFT_ERR_SCHEMA"); // unknown RESET code
    expect(() => encodeFrame({ type: "data", id: 1, bytes: new Uint8Array(MAX_CHUNK + 1) })).toThrow(
      RangeError,
    );
    expect(() =>
      encodeFrame({
        type: "request",
        id: 1,
        method: "GET",
        window: 0,
        path: "/",
        headers: [["cookie", "x"]],
      }),
    ).toThrow(RangeError);
    // A head over the limits is what a page asked for: a LoftError the client answers too_large.
    const long = { type: "request" as const, id: 1, method: "GET" as const, window: 0, headers: [] };
    expect(() => encodeFrame({ ...long, path: `/${"a".repeat(2048)}` })).toThrow(
      expect.objectContaining({ code: "LOFT_ERR_FRAME_TOO_LARGE" }),
    );
    expect(() =>
      encodeFrame({
        ...long,
        path: "/",
        headers: Array.from({ length: 3 }, () => ["accept", "x".repeat(3000)]),
      }),
    ).toThrow(expect.objectContaining({ code: "LOFT_ERR_FRAME_TOO_LARGE" }));
  });
});
