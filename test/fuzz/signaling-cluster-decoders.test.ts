/**
 * Property tests for what signaling instances read back from Redis (signaling/cluster-wire.ts;
 * docs/operations.md, "Scale-out on Redis"): pub/sub messages between instances and the replies of
 * the Lua scripts are untrusted input. Valid ones round-trip; garbage, damaged, truncated and
 * oversized ones are typed errors (FUZZ_RUNS each), never a throw, and a damaged message that
 * still decodes is exactly its own canonical encoding (one meaning per byte string).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../core/codec/codec.ts";
import {
  decodeInstanceMessage,
  decodePresenceEvent,
  encodeInstanceMessage,
  encodePresenceEvent,
  type InstanceMessage,
  parseKeyState,
  parseLookupRows,
  parseOwner,
  parseRegisterReply,
  parseRoomJoinReply,
  parseSignalReply,
} from "../../signaling/cluster-wire.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";
import { mutate, mutationArb } from "./mutations.ts";

const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill) as Uint8Array<ArrayBuffer>;
const b = (s: string) => Buffer.from(s, "latin1");
const hex = (c: string) => c.repeat(64);

const valid: InstanceMessage[] = [
  { t: "SIGNAL", c: 1, frame: bytes(200) },
  { t: "REPLACED", c: 42, key: bytes(32, 1), q: 77 },
  { t: "ROOM", c: [1, 2, 3], room: bytes(32, 2), key: bytes(32, 3), present: true },
  { t: "ROOM_MOVED", c: 9, room: bytes(32, 4) },
];
const encoded = [
  ...valid.map(encodeInstanceMessage),
  encodePresenceEvent({ t: "PRESENCE", key: bytes(32, 5), q: 123_456 }),
];

/** Anything ioredis might hand back: nested arrays of buffers, numbers, null. */
const replyArb: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  reply: fc.oneof(
    { depthSize: "small" },
    fc.uint8Array({ maxLength: 80 }).map((u) => Buffer.from(u)),
    fc
      .constantFrom(
        "OK",
        "STALE",
        "FULL",
        "REPLAY",
        "OFFLINE",
        "ROOM_FULL",
        "0",
        "1",
        hex("a"),
        `${"ab".repeat(8)}:12`,
      )
      .map(b),
    fc.integer(),
    fc.constant(null),
    fc.array(tie("reply"), { maxLength: 8 }),
  ),
})).reply;

describe("signaling cluster decoders", () => {
  it("valid instance messages and presence events round-trip", () => {
    for (const m of valid)
      expect(decodeInstanceMessage(encodeInstanceMessage(m))).toEqual({ ok: true, value: m });
    const p = decodePresenceEvent(encoded.at(-1)!);
    expect(p.ok && p.value.q).toBe(123_456);
  });

  it("refuses the wrong shape, an unknown type, a non-canonical form and an oversized frame", () => {
    expect(decodeInstanceMessage(encodeCanonical({ t: "SIGNAL", c: 1 })).ok).toBe(false);
    expect(decodeInstanceMessage(encodeCanonical({ t: "NOPE", c: 1 })).ok).toBe(false);
    expect(decodeInstanceMessage(encodeCanonical({ t: "REPLACED", c: -1, key: bytes(32), q: 1 })).ok).toBe(
      false,
    );
    expect(
      decodeInstanceMessage(
        encodeCanonical({ t: "ROOM", c: [], room: bytes(32), key: bytes(32), present: true }),
      ).ok,
    ).toBe(false);
    expect(decodeInstanceMessage(encodeCanonical({ t: "SIGNAL", c: 1, frame: bytes(70_000) })).ok).toBe(
      false,
    );
    // The same map with its keys out of order is not canonical.
    const unsorted = new Uint8Array([
      0x84,
      ...[0xa1, ...b("t"), 0xa8, ...b("REPLACED")],
      ...[0xa1, ...b("c"), 42],
      ...[0xa3, ...b("key"), 0xc4, 32, ...bytes(32, 1)],
      ...[0xa1, ...b("q"), 77],
    ]);
    const decodedUnsorted = decodeInstanceMessage(unsorted);
    expect(!decodedUnsorted.ok && decodedUnsorted.error.message).toMatch(/canonical/);
    expect(decodePresenceEvent(encodeInstanceMessage(valid[0]!)).ok).toBe(false);
  });

  it("a damaged message never throws, and decodes only as its own canonical form", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: encoded.length - 1 }), mutationArb, (which, m) => {
        const damaged = mutate(encoded[which]!, m, encoded);
        const i = decodeInstanceMessage(damaged);
        if (i.ok) expect(encodeInstanceMessage(i.value)).toEqual(damaged);
        const p = decodePresenceEvent(damaged);
        if (p.ok) expect(encodePresenceEvent(p.value)).toEqual(damaged);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("garbage is a typed error", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (garbage) => {
        const i = decodeInstanceMessage(garbage);
        if (!i.ok) expect(i.error.code).toMatch(/^LOFT_ERR_/);
        const p = decodePresenceEvent(garbage);
        if (!p.ok) expect(p.error.code).toMatch(/^LOFT_ERR_/);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("Lua replies: the valid forms parse", () => {
    const owner = `${"ab".repeat(8)}:12`;
    expect(parseOwner(b(owner))).toEqual({ inst: "ab".repeat(8), conn: 12 });
    expect(parseRegisterReply([b("OK"), b("7"), b(owner)])).toMatchObject({
      ok: true,
      value: { q: 7, previous: { conn: 12 } },
    });
    expect(parseRegisterReply([b("OK"), b("7"), b("")])).toMatchObject({
      ok: true,
      value: { previous: undefined },
    });
    expect(parseRegisterReply([b("STALE")])).toEqual({ ok: true, value: { status: "STALE" } });
    expect(parseSignalReply([b("OK"), b(owner)])).toMatchObject({ ok: true, value: { to: { conn: 12 } } });
    expect(parseSignalReply([b("REPLAY")])).toEqual({ ok: true, value: { status: "REPLAY" } });
    expect(parseKeyState([b("5"), b("1"), b("1"), b(hex("c"))])).toMatchObject({
      ok: true,
      value: { online: true },
    });
    expect(parseKeyState([b("5"), b("0"), b("0")])).toMatchObject({ ok: true, value: { online: false } });
    expect(parseLookupRows([b("identity"), b("1700000000000")], 1, 100)).toMatchObject({ ok: true });
    expect(parseRoomJoinReply([b("OK"), b("1"), b(""), b(hex("d")), b(owner)], 255)).toMatchObject({
      ok: true,
      value: { fresh: true, others: [{ keyHex: hex("d") }] },
    });
    // And a few near misses are refused.
    expect(parseOwner(b("xyz:1"))).toBeUndefined();
    expect(parseOwner(b(`${"ab".repeat(8)}:01`))).toBeUndefined();
    expect(parseKeyState([b("5"), b("1"), b("1"), b("not a key")]).ok).toBe(false);
    expect(parseKeyState([b("5"), b("0"), b("1"), b(hex("c"))]).ok).toBe(false);
    expect(parseRegisterReply([b("OK"), b("-1"), b("")]).ok).toBe(false);
    expect(parseLookupRows([b("identity")], 1, 100).ok).toBe(false);
    expect(parseLookupRows([b("x".repeat(101)), b("1")], 1, 100).ok).toBe(false);
  });

  it("Lua replies: anything else is a typed error, never a throw", () => {
    fc.assert(
      fc.property(replyArb, (reply) => {
        for (const r of [
          parseKeyState(reply),
          parseRegisterReply(reply),
          parseSignalReply(reply),
          parseLookupRows(reply, 4, 64),
          parseRoomJoinReply(reply, 8),
        ])
          if (!r.ok) expect(r.error.code).toBe("LOFT_ERR_MALFORMED");
        parseOwner(reply);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
