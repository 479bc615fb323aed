/**
 * Room links (docs/protocol/rooms.md §1, §2, §4): the fragment format, its strict parser (fuzzed),
 * and the derivation vectors — checked here against values computed independently (Python
 * hashlib/hmac, RFC 5869 HKDF), so the code and the document cannot drift together.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../../../core/bytes.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import {
  formatRoomLink,
  isRoomFragment,
  parseRoomLink,
  roomBinding,
  roomFragment,
  roomHash,
} from "./room-link.ts";

const id = Uint8Array.from({ length: 16 }, (_, i) => i);
const secret = Uint8Array.from({ length: 32 }, (_, i) => 0x20 + i);
const host = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);
const FRAGMENT =
  "room=AAECAwQFBgcICQoLDA0ODw&k=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8&h=QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8";

describe("room links", () => {
  it("vector: the fragment, the room hash and the binding", () => {
    expect(roomFragment({ id, secret, host })).toBe(FRAGMENT);
    expect(toHex(roomHash(id))).toBe("f08b4d5ca18dcfb6b1f8982afeb5f8140232bbf33a78ae92b8e8d69f3a702260");
    expect(toHex(roomBinding({ id, secret, host }))).toBe(
      "e683a005dfe648f49f11599cff4182e92cbc4c459be341d015d71e160dfefe3d",
    );
  });

  it("another secret or another host key gives another binding; the hash depends on the id only", () => {
    const b = toHex(roomBinding({ id, secret, host }));
    expect(toHex(roomBinding({ id, secret: secret.map((x) => x ^ 1), host }))).not.toBe(b);
    expect(toHex(roomBinding({ id, secret, host: host.map((x) => x ^ 1) }))).not.toBe(b);
  });

  it("parses a full URL, a fragment with or without #, fields in any order", () => {
    for (const text of [
      formatRoomLink("https://loft.example/", { id, secret, host }),
      `#${FRAGMENT}`,
      FRAGMENT,
      FRAGMENT.split("&").reverse().join("&"),
    ]) {
      const r = parseRoomLink(text);
      expect(r.ok && toHex(r.value.id) + toHex(r.value.secret) + toHex(r.value.host)).toBe(
        toHex(id) + toHex(secret) + toHex(host),
      );
    }
    expect(formatRoomLink("https://loft.example/", { id, secret, host })).toBe(
      `https://loft.example/#${FRAGMENT}`,
    );
    expect(isRoomFragment(`#${FRAGMENT}`)).toBe(true);
    expect(isRoomFragment("#/chat/ab")).toBe(false);
  });

  it.each([
    ["no secret", FRAGMENT.replace(/&k=[^&]*/, "")],
    ["a short id", FRAGMENT.replace("room=AAECAwQFBgcICQoLDA0ODw", "room=AAECAwQFBgcICQoLDA0O")],
    ["a field twice", `${FRAGMENT}&k=x`],
    ["an unknown field", `${FRAGMENT}&x=1`],
    ["padding", FRAGMENT.replace("Dw&", "Dw==&")],
    ["garbage", "hello"],
    ["too long", `${FRAGMENT}&${"a".repeat(600)}`],
  ])("refuses %s (LOFT_ERR_MALFORMED)", (_, text) => {
    const r = parseRoomLink(text);
    expect(r.ok ? "ok" : r.error.code).toBe("LOFT_ERR_MALFORMED");
  });

  it("fuzz: any text is parsed or refused, never thrown; what parses formats back to the same fields", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.constant(FRAGMENT).chain((f) => fc.nat(f.length).map((n) => f.slice(0, n))),
        ),
        (text) => {
          const r = parseRoomLink(text);
          if (r.ok) expect(parseRoomLink(roomFragment(r.value)).ok).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});
