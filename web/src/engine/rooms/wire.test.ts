/**
 * The room frame codec (docs/protocol/rooms.md §5): round trips, a byte-exact vector, and every
 * malformed, oversized or non-canonical input refused with a typed error (fuzzed).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../../../core/bytes.ts";
import { encodeCanonical } from "../../../../core/codec/codec.ts";
import { padToBucket } from "../../../../core/codec/padding.ts";
import { isLoftError } from "../../../../core/errors.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import { decodeRoomFrame, encodeRoomFrame, ROOM_FRAME, type RoomMessage } from "./wire.ts";

const ID = "AAAAAAAAAAAAAAAAAAAAAA";

describe("room frames", () => {
  it.each<RoomMessage>([
    { t: "room.hi", name: "Ann" },
    { t: "room.msg", id: ID, at: 1_700_000_000_000, text: "hello room" },
    { t: "room.rcpt", ids: [ID, ID.replace(/A$/, "B")] },
    { t: "room.bye" },
    { t: "room.hi", name: "Bea", rk: new Uint8Array(32).fill(7) },
    { t: "room.state", s: new Uint8Array(300).fill(1) },
    { t: "room.key", e: 3, k: new Uint8Array(32).fill(2) },
    { t: "room.host", k: new Uint8Array(32).fill(3), sig: new Uint8Array(64).fill(4) },
    { t: "room.rs" },
    { t: "room.rs", ri: new Uint8Array(16).fill(5) },
    { t: "room.dr", d: new Uint8Array(200).fill(6) },
    {
      t: "room.mbox",
      u: "wss://r.example/relay",
      s: new Uint8Array(24).fill(1),
      k: new Uint8Array(32).fill(2),
    },
    {
      t: "room.mbox",
      u: "wss://r.example/relay",
      s: new Uint8Array(24).fill(1),
      k: new Uint8Array(32).fill(2),
      n: 1_765_000_000_000,
    },
    { t: "room.mbox", u: "ws://r", s: new Uint8Array(24), k: new Uint8Array(32), n: 0 },
  ])("round trip: %o", (m) => {
    const frame = encodeRoomFrame(m);
    expect(frame[0]).toBe(ROOM_FRAME);
    expect((frame.length - 1) % 256).toBe(0); // padded to a bucket
    expect(decodeRoomFrame(frame)).toEqual({ ok: true, value: m });
  });

  it("vector: room.hi {name: Ann} is 0x40 ‖ the map ‖ 0x80 ‖ zeros to 256 bytes", () => {
    const frame = encodeRoomFrame({ t: "room.hi", name: "Ann" });
    expect(frame.length).toBe(257);
    expect(toHex(frame.subarray(0, 20))).toBe("4082a46e616d65a3416e6ea174a7726f6f6d2e68");
    expect(toHex(frame.subarray(20, 24))).toBe("69800000");
  });

  it.each<[string, Uint8Array]>([
    ["another frame type", new Uint8Array([0x02, 0x80])],
    ["empty", new Uint8Array(0)],
    ["bad padding", new Uint8Array([ROOM_FRAME, 1, 2, 3])],
    ["unknown t", encodeRaw({ t: "room.kick" })],
    ["extra field", encodeRaw({ t: "room.bye", x: 1 })],
    ["empty text", encodeRaw({ t: "room.msg", id: ID, at: 1, text: "" })],
    ["text over the limit", encodeRaw({ t: "room.msg", id: ID, at: 1, text: "x".repeat(16_001) })],
    ["short id", encodeRaw({ t: "room.rcpt", ids: ["abc"] })],
    ["too many receipts", encodeRaw({ t: "room.rcpt", ids: Array(65).fill(ID) })],
    ["name too long", encodeRaw({ t: "room.hi", name: "n".repeat(41) })],
    ["room key of 31 bytes", encodeRaw({ t: "room.hi", name: "n", rk: new Uint8Array(31) })],
    ["state over the limit", encodeRaw({ t: "room.state", s: new Uint8Array(16 * 1024 + 1) })],
    ["secret of 16 bytes", encodeRaw({ t: "room.key", e: 1, k: new Uint8Array(16) })],
    ["hand-over without signature", encodeRaw({ t: "room.host", k: new Uint8Array(32) })],
    ["ratchet id of 15 bytes", encodeRaw({ t: "room.rs", ri: new Uint8Array(15) })],
    ["sealed frame over the limit", encodeRaw({ t: "room.dr", d: new Uint8Array(2049) })],
    [
      "mailbox with an http URL",
      encodeRaw({ t: "room.mbox", u: "https://r.example", s: new Uint8Array(24), k: new Uint8Array(32) }),
    ],
    [
      "mailbox with a short sender id",
      encodeRaw({ t: "room.mbox", u: "wss://r", s: new Uint8Array(23), k: new Uint8Array(32) }),
    ],
    ...(
      [
        ["a negative order", -1],
        ["a fractional order", 1.5],
        ["an order past 2^53 - 1", 2 ** 53],
        ["an order as a string", "7"],
        ["an order as bytes", new Uint8Array(8)],
      ] as const
    ).map(
      ([what, n]) =>
        [
          `mailbox with ${what}`,
          encodeRaw({ t: "room.mbox", u: "wss://r", s: new Uint8Array(24), k: new Uint8Array(32), n }),
        ] as [string, Uint8Array],
    ),
    [
      "mailbox with an order and a sixth field",
      encodeRaw({ t: "room.mbox", u: "wss://r", s: new Uint8Array(24), k: new Uint8Array(32), n: 1, x: 1 }),
    ],
    [
      "not canonical (keys unsorted)",
      rawBody(
        new Uint8Array([
          0x82,
          0xa1,
          0x74,
          0xa7,
          ...new TextEncoder().encode("room.hi"),
          0xa4,
          ...new TextEncoder().encode("name"),
          0xa1,
          0x41,
        ]),
      ),
    ],
  ])("refuses %s with a typed error", (_, frame) => {
    const r = decodeRoomFrame(frame);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toMatch(/^LOFT_ERR_/);
  });

  it("a room.mbox order is written as the smallest MessagePack integer: a wider one is refused", () => {
    // { k, n: 1, s, t, u } with n as uint64 (0xcf) instead of a positive fixint: not canonical.
    const fine = encodeCanonical({
      k: new Uint8Array(32),
      n: 1,
      s: new Uint8Array(24),
      t: "room.mbox",
      u: "wss://r",
    });
    const at = fine.indexOf(0x01, fine.indexOf(0x6e) + 1); // the value after the key "n"
    const wide = new Uint8Array([
      ...fine.subarray(0, at),
      0xcf,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1,
      ...fine.subarray(at + 1),
    ]);
    expect(decodeRoomFrame(rawBody(fine)).ok).toBe(true);
    const r = decodeRoomFrame(rawBody(wide));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("LOFT_ERR_MALFORMED");
  });

  it("fuzz: random and mutated frames never throw, and anything accepted re-encodes to itself", () => {
    const bases = [
      encodeRoomFrame({ t: "room.msg", id: ID, at: 5, text: "hi" }),
      encodeRoomFrame({ t: "room.mbox", u: "wss://r", s: new Uint8Array(24), k: new Uint8Array(32), n: 9 }),
    ];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc
            .tuple(fc.nat(bases.length - 1), fc.nat(255), fc.integer({ min: 0, max: 255 }))
            .map(([which, at, b]) => {
              const f = bases[which]!.slice();
              f[at % f.length] = b;
              return f;
            }),
        ),
        (frame) => {
          let r: ReturnType<typeof decodeRoomFrame>;
          try {
            r = decodeRoomFrame(frame);
          } catch (e) {
            throw new Error(`threw ${isLoftError(e) ? e.code : String(e)}`);
          }
          if (r.ok) expect(toHex(encodeRoomFrame(r.value))).toBe(toHex(frame));
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

function rawBody(body: Uint8Array): Uint8Array {
  const padded = padToBucket(body);
  return new Uint8Array([ROOM_FRAME, ...padded]);
}

function encodeRaw(value: unknown): Uint8Array {
  return rawBody(encodeCanonical(value));
}
