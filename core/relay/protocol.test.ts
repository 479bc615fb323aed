/**
 * Relay codecs (docs/protocol/relay.md §Encoding): round trips, padding, the server→recipient key
 * agreement, and typed errors for malformed frames.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../bytes.ts";
import { encodeCanonical } from "../codec/codec.ts";
import { deriveRcvKey, newDhKeyPair } from "./crypto.ts";
import { codeForWire, WIRE_ERROR_CODES, wireForCode } from "./errors.ts";
import {
  BLOCK_SIZE,
  type Command,
  decodeClientFrame,
  decodeCommand,
  decodeServerFrame,
  encodeClientFrame,
  encodeCommand,
  encodeServerFrame,
  MAX_BATCH,
  MAX_BODY,
  padBlock,
  RCV_CIPHERTEXT_LENGTH,
  type ServerFrame,
  unpadBlock,
} from "./protocol.ts";

const b = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

const commands: Command[] = [
  { k: "PING", i: 0 },
  { k: "NEW", i: 1, rk: b(32), dk: b(32, 2), sub: true },
  { k: "KEY", i: 2, q: b(24), sk: b(32) },
  { k: "SKEY", i: 3, q: b(24), sk: b(32) },
  { k: "SEND", i: 4, q: b(24), n: b(16), b: b(MAX_BODY) },
  { k: "SEND", i: 4, q: b(24), n: b(16), b: b(0) },
  { k: "SUB", i: 5, q: b(24), w: 255 },
  { k: "GET", i: 6, q: b(24) },
  { k: "ACK", i: 7, q: b(24), m: b(24) },
  { k: "OFF", i: 8, q: b(24) },
  { k: "DEL", i: 0xffff_ffff, q: b(24) },
  { k: "PKSET", i: 9, q: b(24), pb: b(100), po: [b(10), b(20)], pr: true },
  { k: "PKSET", i: 9, q: b(24), po: [], pr: false },
  { k: "PKGET", i: 10, q: b(24) },
];

const frames: ServerFrame[] = [
  { k: "HELLO", s: b(32), fl: 65535, qq: 128, mi: 128 },
  { k: "OK", i: 1 },
  { k: "IDS", i: 2, r: b(24), s: b(24, 2), d: b(32) },
  { k: "MSG", q: b(24), m: b(24), b: b(RCV_CIPHERTEXT_LENGTH) },
  { k: "MSG", i: 3, q: b(24), m: b(24), b: b(RCV_CIPHERTEXT_LENGTH) },
  { k: "END", q: b(24) },
  { k: "PK", i: 4, pb: b(10) },
  { k: "PK", i: 4, pb: b(10), po: b(5) },
  ...WIRE_ERROR_CODES.map((e) => ({ k: "ERR", e }) as ServerFrame),
  { k: "ERR", i: 5, e: "AUTH" },
];

describe("relay protocol codecs", () => {
  it("every command round-trips through a client frame", () => {
    for (const c of commands) {
      const frame = encodeClientFrame(encodeCommand(c), b(64, 9));
      const outer = decodeClientFrame(frame, 65_535);
      expect(outer.ok).toBe(true);
      if (!outer.ok) continue;
      expect(toHex(outer.value.a!)).toBe(toHex(b(64, 9)));
      const inner = decodeCommand(outer.value.t, 65_535);
      expect(inner.ok && toHex(encodeCommand(inner.value))).toBe(toHex(encodeCommand(c)));
    }
  });

  it("every server frame round-trips", () => {
    for (const f of frames) {
      const d = decodeServerFrame(encodeServerFrame(f));
      expect(d.ok && toHex(encodeServerFrame(d.value))).toBe(toHex(encodeServerFrame(f)));
    }
  });

  it("typed errors: malformed, schema (with the request id), unknown, too large", () => {
    const e = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? "ok" : r.error!.code);
    expect(e(decodeClientFrame(new Uint8Array([0xc1]), 100))).toBe("LOFT_ERR_MALFORMED");
    expect(e(decodeClientFrame(new Uint8Array(101), 100))).toBe("LOFT_ERR_FRAME_TOO_LARGE");
    expect(e(decodeClientFrame(encodeCanonical({ t: b(3), x: 1 }), 100))).toBe("LOFT_ERR_SCHEMA");
    expect(e(decodeClientFrame(encodeCanonical({ t: b(3), a: b(63) }), 100))).toBe("LOFT_ERR_SCHEMA");
    // Only a 64-byte signature (1.0) or a 32-byte authenticator (1.1), nothing in between.
    for (let n = 0; n <= 80; n++) {
      const r = decodeClientFrame(encodeCanonical({ t: b(3), a: b(n) }), 200);
      if (n === 32 || n === 64) expect(r.ok, `${n} bytes`).toBe(true);
      else expect(e(r), `${n} bytes`).toBe("LOFT_ERR_SCHEMA");
    }
    const bad = decodeCommand(encodeCanonical({ k: "GET", i: 77, q: b(23) }), 1000);
    expect(e(bad)).toBe("LOFT_ERR_SCHEMA");
    expect(bad.corr).toBe(77);
    expect(e(decodeCommand(encodeCanonical({ k: "HELLO", i: 1 }), 1000))).toBe("LOFT_ERR_UNKNOWN_TYPE");
    expect(e(decodeCommand(encodeCanonical({ k: "SUB", i: 1, q: b(24), w: 0 }), 1000))).toBe(
      "LOFT_ERR_SCHEMA",
    );
    expect(e(decodeCommand(encodeCanonical({ k: "PING", i: -1 }), 1000))).toBe("LOFT_ERR_SCHEMA");
    expect(e(decodeServerFrame(encodeCanonical({ k: "ERR", e: "NOPE" })))).toBe("LOFT_ERR_SCHEMA");
    // Arrays decode since 1.3 (RES, MSGS carry up to MAX_BATCH entries): a short one is not a
    // frame of any kind; a longer one is refused by the decoder's limits.
    expect(e(decodeServerFrame(encodeCanonical([1, 2])))).toBe("LOFT_ERR_UNKNOWN_TYPE");
    expect(e(decodeServerFrame(encodeCanonical(new Array(MAX_BATCH + 1).fill(1))))).toBe(
      "LOFT_ERR_MALFORMED",
    );
    expect(e(decodeServerFrame(encodeCanonical({ k: "SEND", i: 1 })))).toBe("LOFT_ERR_UNKNOWN_TYPE");
  });

  it("padding: fixed block, exact round trip, typed errors on bad blocks", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (body) => {
        const block = padBlock(body);
        expect(block.length).toBe(BLOCK_SIZE);
        const back = unpadBlock(block);
        expect(back.ok && toHex(back.value)).toBe(toHex(body));
      }),
      { numRuns: 300 },
    );
    const block = padBlock(b(3));
    block[BLOCK_SIZE - 1] = 1;
    expect(unpadBlock(block).ok ? "ok" : "LOFT_ERR_PADDING").toBe("LOFT_ERR_PADDING");
    const lying = padBlock(b(3));
    lying[0] = 0xff;
    expect(unpadBlock(lying).ok).toBe(false);
    expect(unpadBlock(b(10)).ok).toBe(false);
    expect(() => padBlock(b(MAX_BODY + 1))).toThrow(RangeError);
  });

  it("both ends derive the same server→recipient key; another recipient id gives another key", () => {
    const server = newDhKeyPair();
    const recipient = newDhKeyPair();
    const rid = b(24, 3);
    const k1 = deriveRcvKey(server.secretKey, recipient.publicKey, rid);
    const k2 = deriveRcvKey(recipient.secretKey, server.publicKey, rid);
    expect(k1.ok && k2.ok && toHex(k1.value) === toHex(k2.value)).toBe(true);
    const k3 = deriveRcvKey(recipient.secretKey, server.publicKey, b(24, 4));
    expect(k1.ok && k3.ok && toHex(k1.value) !== toHex(k3.value)).toBe(true);
    // A low-order point (all zeros) is refused with a typed error.
    const low = deriveRcvKey(server.secretKey, new Uint8Array(32), rid);
    expect(low.ok ? "ok" : low.error.code).toBe("LOFT_ERR_DECRYPT");
  });

  it("wire error codes map to stable LOFT_ERR codes and back", () => {
    for (const w of WIRE_ERROR_CODES) expect(wireForCode(codeForWire(w))).toBe(w);
    expect(codeForWire("AUTH")).toBe("LOFT_ERR_RELAY_AUTH");
    expect(codeForWire("VERSION")).toBe("LOFT_ERR_UNSUPPORTED_VERSION");
  });
});
