/**
 * Call signals inside application messages (calls/wire.ts, docs/protocol/calls.md §2): round
 * trips, the byte example of calls.md, limits, and the decoder fed mutated, truncated and
 * non-canonical input — always a typed error, never a throw.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../../../core/codec/codec.ts";
import { padToBucket } from "../../../../core/codec/padding.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import { type AppMessage, decodeAppMessage, encodeAppMessage } from "../wire.ts";
import {
  CALL_ID_BYTES,
  type CallSignal,
  END_REASONS,
  isCallSignal,
  MAX_CANDIDATE_CHARS,
  MAX_SDP_CHARS,
} from "./wire.ts";

const doc = readFileSync(new URL("../../../../docs/protocol/calls.md", import.meta.url), "utf8");
const hex = (b: Uint8Array) =>
  Buffer.from(b)
    .toString("hex")
    .replace(/(..)(?!$)/g, "$1 ");

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => new Uint8Array(b));
const id = bytes(CALL_ID_BYTES);
const signal: fc.Arbitrary<CallSignal> = fc.oneof(
  fc.record({
    t: fc.constant("call.offer" as const),
    c: id,
    v: fc.boolean(),
    sdp: fc.string({ minLength: 1, maxLength: 200 }),
    fp: bytes(32),
  }),
  fc.record({
    t: fc.constant("call.answer" as const),
    c: id,
    sdp: fc.string({ minLength: 1, maxLength: 200 }),
    fp: bytes(32),
  }),
  fc.record({
    t: fc.constant("call.ice" as const),
    c: id,
    cand: fc.string({ minLength: 1, maxLength: 100 }),
    mid: fc.string({ maxLength: 8 }),
    ml: fc.integer({ min: 0, max: 64 }),
  }),
  fc.record({ t: fc.constant("call.ring" as const), c: id }),
  fc.record({ t: fc.constant("call.media" as const), c: id, a: fc.boolean(), v: fc.boolean() }),
  fc.record({ t: fc.constant("call.end" as const), c: id, r: fc.constantFrom(...END_REASONS) }),
);

const raw = (m: Record<string, unknown>) => padToBucket(encodeCanonical(m));

describe("call signals", () => {
  it("round-trip through the application message codec", () => {
    fc.assert(
      fc.property(signal, (m) => {
        const r = decodeAppMessage(encodeAppMessage(m as AppMessage));
        expect(r.ok).toBe(true);
        if (r.ok) {
          expect(r.value).toEqual(m);
          expect(isCallSignal(r.value)).toBe(true);
        }
      }),
      { numRuns: FUZZ_RUNS / 10 },
    );
  });

  it("match the byte example of docs/protocol/calls.md", () => {
    const end = encodeCanonical({ t: "call.end", c: new Uint8Array(16).fill(0x11), r: "busy" });
    expect(doc).toContain(hex(end));
  });

  it("refuse wrong lengths, unknown reasons, extra fields and oversized SDP", () => {
    const c = new Uint8Array(16);
    const bad: Record<string, unknown>[] = [
      { t: "call.ring", c: new Uint8Array(15) },
      { t: "call.end", c, r: "bored" },
      { t: "call.ring", c, x: 1 },
      { t: "call.offer", c, v: true, sdp: "", fp: new Uint8Array(32) },
      { t: "call.offer", c, v: true, sdp: "v=0", fp: new Uint8Array(20) },
      { t: "call.answer", c, sdp: "x".repeat(MAX_SDP_CHARS + 1), fp: new Uint8Array(32) },
      { t: "call.ice", c, cand: "x".repeat(MAX_CANDIDATE_CHARS + 1), mid: "0", ml: 0 },
      { t: "call.ice", c, cand: "candidate:1", mid: "0", ml: 65 },
      { t: "call.media", c, a: 1, v: true },
    ];
    for (const m of bad) {
      const r = decodeAppMessage(raw(m));
      expect(r.ok, JSON.stringify(Object.keys(m))).toBe(false);
    }
  });

  it("never throw on mutated or truncated signals", () => {
    fc.assert(
      fc.property(signal, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), (m, at, byte, cut) => {
        const enc = encodeCanonical(m);
        const mutated = enc.slice(0, cut ? at % (enc.length + 1) : enc.length);
        if (!cut && mutated.length > 0) mutated[at % mutated.length] = byte;
        const r = decodeAppMessage(padToBucket(mutated));
        expect(typeof r.ok).toBe("boolean");
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
