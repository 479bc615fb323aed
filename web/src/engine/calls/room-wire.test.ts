/**
 * Room call frames (calls/room-wire.ts, docs/protocol/calls.md §7): round trips, the byte example
 * of calls.md, strict refusals, and the decoder fed mutated, truncated and oversized frames —
 * always a typed error, never a throw.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../../../core/codec/codec.ts";
import { padToBucket } from "../../../../core/codec/padding.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import {
  decodeRoomCallFrame,
  encodeRoomCallFrame,
  isRoomCallFrame,
  ROOM_CALL_FRAME,
  type RoomCallSignal,
} from "./room-wire.ts";
import { MAX_CANDIDATE_CHARS, MAX_SDP_CHARS } from "./wire.ts";

const doc = readFileSync(new URL("../../../../docs/protocol/calls.md", import.meta.url), "utf8");
const hex = (b: Uint8Array) =>
  Buffer.from(b)
    .toString("hex")
    .replace(/(..)(?!$)/g, "$1 ");

const fp = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => new Uint8Array(b));
const sdp = fc.string({ minLength: 1, maxLength: 200 });
const signal: fc.Arbitrary<RoomCallSignal> = fc.oneof(
  fc.record({ t: fc.constant("call.room.in" as const), a: fc.boolean() }),
  fc.record({ t: fc.constant("call.room.out" as const) }),
  fc.record({ t: fc.constant("call.room.offer" as const), sdp, fp }),
  fc.record({ t: fc.constant("call.room.answer" as const), sdp, fp }),
  fc.record({
    t: fc.constant("call.room.ice" as const),
    cand: fc.string({ minLength: 1, maxLength: 100 }),
    mid: fc.string({ maxLength: 32 }),
    ml: fc.integer({ min: 0, max: 64 }),
  }),
);

const frameOf = (m: unknown) => {
  const body = padToBucket(encodeCanonical(m));
  const out = new Uint8Array(1 + body.length);
  out[0] = ROOM_CALL_FRAME;
  out.set(body, 1);
  return out;
};

describe("room call frames", () => {
  it("round-trip every signal, in the calls range of the session frames", () => {
    fc.assert(
      fc.property(signal, (m) => {
        const frame = encodeRoomCallFrame(m);
        expect(isRoomCallFrame(frame)).toBe(true);
        expect(frame[0]).toBeGreaterThanOrEqual(0x30);
        expect(frame[0]).toBeLessThanOrEqual(0x37);
        const r = decodeRoomCallFrame(frame);
        expect(r.ok && r.value).toEqual(m);
      }),
      { numRuns: FUZZ_RUNS / 10 },
    );
  });

  it("match the byte example of docs/protocol/calls.md", () => {
    expect(doc).toContain(hex(encodeCanonical({ t: "call.room.in", a: true })));
  });

  it("refuse unknown kinds, extra fields, wrong lengths, oversized SDP and other frame types", () => {
    const bad: unknown[] = [
      { t: "call.room.dance" },
      { t: "call.room.in", a: true, x: 1 },
      { t: "call.room.in", a: 1 },
      { t: "call.room.offer", sdp: "v=0", fp: new Uint8Array(31) },
      { t: "call.room.offer", sdp: "", fp: new Uint8Array(32) },
      { t: "call.room.answer", sdp: "x".repeat(MAX_SDP_CHARS + 1), fp: new Uint8Array(32) },
      { t: "call.room.ice", cand: "x".repeat(MAX_CANDIDATE_CHARS + 1), mid: "0", ml: 0 },
      { t: "call.room.ice", cand: "candidate:1", mid: "0", ml: 65 },
    ];
    for (const m of bad) expect(decodeRoomCallFrame(frameOf(m)).ok, JSON.stringify(m)).toBe(false);
    const room = encodeRoomCallFrame({ t: "call.room.out" });
    room[0] = 0x40;
    const r = decodeRoomCallFrame(room);
    expect(r.ok || r.error.code).toBe("LOFT_ERR_UNKNOWN_TYPE");
    expect(decodeRoomCallFrame(new Uint8Array([ROOM_CALL_FRAME])).ok).toBe(false);
  });

  it("never throw on mutated, truncated or random frames", () => {
    fc.assert(
      fc.property(signal, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), (m, at, byte, cut) => {
        const enc = encodeRoomCallFrame(m);
        const mutated = enc.slice(0, cut ? at % (enc.length + 1) : enc.length);
        if (!cut && mutated.length > 1) mutated[1 + (at % (mutated.length - 1))] = byte;
        expect(typeof decodeRoomCallFrame(mutated).ok).toBe("boolean");
      }),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        expect(typeof decodeRoomCallFrame(Uint8Array.of(ROOM_CALL_FRAME, ...b)).ok).toBe("boolean");
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
