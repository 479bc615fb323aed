/**
 * Strings that are not UTF-8 at every string position of real frames and records
 * (docs/protocol/wire.md, "Canonical MessagePack"): every SREMP example message, the signaling
 * envelope, a chat message and every room frame type with text, drafts and room names. The
 * position's bytes (a map key or a value) are replaced by a marker of the same length with one bad
 * sequence inside; the marker as written still parses, the bad one is LOFT_ERR_MALFORMED (a draft or
 * name record reads as none) — before any later check could give another code or let it through.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../core/codec/codec.ts";
import { padToBucket } from "../../core/codec/padding.ts";
import { srempCodec } from "../../core/wire/sremp.ts";
import { decodeDraftRecord, decodeRoomName } from "../../web/src/engine/local-notes.ts";
import { decodeRoomFrame, ROOM_FRAME } from "../../web/src/engine/rooms/wire.ts";
import { decodeAppMessage } from "../../web/src/engine/wire.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";
import { invalidUtf8Arb, spoilString, stringsOf } from "../support/invalid-utf8.ts";
import { exampleMessages } from "./sremp-examples.ts";

const malformed = { ok: false, error: { code: "LOFT_ERR_MALFORMED" } };

const roomFrame = (m: unknown) => {
  const body = padToBucket(encodeCanonical(m));
  const out = new Uint8Array(1 + body.length);
  out[0] = ROOM_FRAME;
  out.set(body, 1);
  return out;
};

interface Subject {
  name: string;
  values: unknown[];
  encode: (v: unknown) => Uint8Array;
  /** The result of reading the bytes: a Result, or for records what they read as. */
  read: (b: Uint8Array) => unknown;
  refused: unknown;
}

const subjects: Subject[] = [
  {
    name: "SREMP messages",
    values: await exampleMessages(),
    encode: encodeCanonical,
    read: (b) => srempCodec.decode(b),
    refused: malformed,
  },
  {
    name: "chat messages",
    values: [{ t: "msg", id: "AAECAwQFBgcICQoLDA0ODw", at: 1, text: "hi 👋" }],
    encode: (v) => padToBucket(encodeCanonical(v)),
    read: decodeAppMessage,
    refused: malformed,
  },
  {
    name: "room frames",
    values: [
      { t: "room.hi", name: "Ann", rk: new Uint8Array(32) },
      { t: "room.msg", id: "AAECAwQFBgcICQoLDA0ODw", at: 1, text: "see you 🕗" },
      { t: "room.rcpt", ids: ["AAECAwQFBgcICQoLDA0ODw", "m1AAAAAAAAAAAAAAAAAAAA"] },
      { t: "room.mbox", u: "wss://relay.loft.example/relay", s: new Uint8Array(24), k: new Uint8Array(32) },
    ],
    encode: roomFrame,
    read: decodeRoomFrame,
    refused: malformed,
  },
  {
    name: "draft records",
    values: [{ at: 1_700_000_000_000, t: "half a thought", v: 1 }],
    encode: encodeCanonical,
    read: (b) => decodeDraftRecord(b),
    refused: undefined,
  },
  {
    name: "room-name records",
    values: [{ n: "Book club", v: 1 }],
    encode: encodeCanonical,
    read: (b) => decodeRoomName(b),
    refused: undefined,
  },
];

describe("strings that are not UTF-8 in frames and records (property)", () => {
  for (const s of subjects)
    it(`${s.name}: at every string position, refused`, () => {
      const cases = fc.nat({ max: s.values.length - 1 }).chain((which) =>
        fc.record({
          value: fc.constant(s.values[which]),
          at: fc.nat({ max: stringsOf(s.values[which]).length - 1 }),
          bad: invalidUtf8Arb,
          before: fc.nat({ max: 8 }),
        }),
      );
      fc.assert(
        fc.property(cases, ({ value, at, bad, before }) => {
          const { good, spoiled } = spoilString(value, at, bad, before, s.encode);
          // The marker as written is UTF-8: whatever the reader says of it (often a schema error:
          // the marker is no valid tag or id), it is not the refusal a bad string gets.
          const asWritten = s.read(good) as { error?: { message: string } } | undefined;
          expect(asWritten?.error?.message ?? "").not.toMatch(/not UTF-8/);
          if (s.refused === undefined) expect(s.read(spoiled)).toBeUndefined();
          else expect(s.read(spoiled)).toMatchObject(s.refused as object);
        }),
        { numRuns: FUZZ_RUNS },
      );
    });
});
