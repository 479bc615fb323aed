/**
 * Session frames, application messages (wire.ts) and signaling payloads (net/signal-payload.ts):
 * round trips, the byte examples of docs/protocol/chat.md, and decoders fed garbage, truncated,
 * mutated and non-canonical input — always a typed error, never a throw.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../../../core/codec/codec.ts";
import { padToBucket } from "../../../core/codec/padding.ts";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import {
  decodeSignalPayload,
  encodeSignalPayload,
  envelopeKind,
  type SignalPayload,
} from "../net/signal-payload.ts";
import { MAX_TEXT_CHARS } from "./outgoing.ts";
import {
  type AppMessage,
  decodeAppMessage,
  decodeSessionFrame,
  encodeAppMessage,
  encodeHello,
  encodePing,
  encodePong,
  encodeRatchetFrame,
} from "./wire.ts";

const hex = (b: Uint8Array) =>
  Buffer.from(b)
    .toString("hex")
    .replace(/(..)(?!$)/g, "$1 ");
const doc = readFileSync(new URL("../../../docs/protocol/chat.md", import.meta.url), "utf8");
const ID = "AAAAAAAAAAAAAAAAAAAAAA";

function neverThrows(decode: (b: Uint8Array) => { ok: boolean }) {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const r = decode(bytes);
      expect(typeof r.ok).toBe("boolean");
    }),
    { numRuns: FUZZ_RUNS },
  );
}

describe("session frames", () => {
  it("round-trip HELLO, RATCHET, PING, PONG", () => {
    const rid = new Uint8Array(16).fill(0x11);
    const h = decodeSessionFrame(encodeHello({ version: 1, ratchetId: rid, canSend: true }));
    expect(h).toEqual({
      ok: true,
      value: { type: "hello", hello: { version: 1, ratchetId: rid, canSend: true } },
    });
    const none = decodeSessionFrame(encodeHello({ version: 1, canSend: false }));
    expect(none).toEqual({ ok: true, value: { type: "hello", hello: { version: 1, canSend: false } } });
    const r = decodeSessionFrame(encodeRatchetFrame(new Uint8Array([9, 9, 9])));
    expect(r.ok && r.value.type === "ratchet" && [...r.value.message]).toEqual([9, 9, 9]);
    const n = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(decodeSessionFrame(encodePing(n))).toEqual({ ok: true, value: { type: "ping", nonce: n } });
    expect(decodeSessionFrame(encodePong(n))).toEqual({ ok: true, value: { type: "pong", nonce: n } });
  });

  it("matches the bytes in docs/protocol/chat.md", () => {
    expect(doc).toContain(
      hex(encodeHello({ version: 1, ratchetId: new Uint8Array(16).fill(0x11), canSend: true })),
    );
    expect(doc).toContain(hex(encodeHello({ version: 1, canSend: false })));
  });

  it("refuses unknown types, bad pings, non-canonical and oversized HELLOs with typed errors", () => {
    expect(decodeSessionFrame(new Uint8Array([])).ok).toBe(false);
    const unknown = decodeSessionFrame(new Uint8Array([0x09, 1]));
    expect(!unknown.ok && unknown.error.code).toBe("LOFT_ERR_UNKNOWN_TYPE");
    expect(decodeSessionFrame(new Uint8Array([0x03, 1, 2])).ok).toBe(false);
    // Same map, keys out of order: not canonical.
    const unsorted = new Uint8Array([0x01, 0x82, 0xa1, 0x76, 0x01, 0xa4, 0x73, 0x65, 0x6e, 0x64, 0xc2]);
    const r = decodeSessionFrame(unsorted);
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_MALFORMED");
    const extra = new Uint8Array([0x01, ...encodeCanonical({ v: 1, send: true, x: 1 })]);
    expect(decodeSessionFrame(extra).ok).toBe(false);
  });

  it("never throws on arbitrary bytes", () => {
    neverThrows(decodeSessionFrame);
    neverThrows((b) => decodeSessionFrame(new Uint8Array([0x01, ...b])));
  });
});

describe("application messages", () => {
  const samples: AppMessage[] = [
    { t: "msg", id: ID, at: 1_700_000_000_000, text: "hi" },
    { t: "rcpt", ids: [ID] },
    { t: "sync" },
  ];

  it("round-trip, padded to a power-of-two bucket of at least 256 bytes", () => {
    for (const m of samples) {
      const bytes = encodeAppMessage(m);
      expect(bytes.length).toBeGreaterThanOrEqual(256);
      expect(bytes.length & (bytes.length - 1)).toBe(0);
      expect(decodeAppMessage(bytes)).toEqual({ ok: true, value: m });
    }
    const long = { t: "msg", id: ID, at: 1, text: "é".repeat(MAX_TEXT_CHARS) } as const;
    expect(decodeAppMessage(encodeAppMessage(long))).toEqual({ ok: true, value: long });
  });

  it("matches the bytes in docs/protocol/chat.md", () => {
    expect(doc).toContain(hex(encodeCanonical({ t: "sync" })));
    const elide = (s: string) => s.replace(/( 41){22}/, " 41 … 41");
    expect(doc).toContain(elide(hex(encodeCanonical(samples[0]))));
    expect(doc).toContain(elide(hex(encodeCanonical(samples[1]))));
  });

  it("refuses what the schema does not allow", () => {
    const bad = [
      { t: "msg", id: "short", at: 1, text: "x" },
      { t: "msg", id: ID, at: 1, text: "" },
      { t: "msg", id: ID, at: 1, text: "x".repeat(MAX_TEXT_CHARS + 1) },
      { t: "msg", id: ID, at: -1, text: "x" },
      { t: "rcpt", ids: [] },
      { t: "rcpt", ids: Array(65).fill(ID) },
      { t: "sync", extra: 1 },
      { t: "typing" },
    ];
    for (const v of bad) expect(decodeAppMessage(padToBucket(encodeCanonical(v))).ok).toBe(false);
    // Not padded at all.
    expect(decodeAppMessage(encodeCanonical({ t: "sync" })).ok).toBe(false);
  });

  it("never throws on arbitrary or mutated input", () => {
    neverThrows(decodeAppMessage);
    neverThrows((b) => decodeAppMessage(padToBucket(b)));
    const valid = encodeAppMessage(samples[0]!);
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const m = valid.slice();
        m[i]! ^= x;
        const r = decodeAppMessage(m);
        if (r.ok) expect(r.value.t).toBeTypeOf("string");
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("signaling payloads", () => {
  const conn = new Uint8Array(8).fill(0xab);
  const samples: SignalPayload[] = [
    { kind: "offer", conn, sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n" },
    { kind: "answer", conn, sdp: "v=0\r\n" },
    { kind: "ice", conn, candidate: "candidate:1 1 udp 1 198.18.0.1 5000 typ host", mid: "0", index: 0 },
    { kind: "ice", conn, candidate: "" },
    { kind: "bye", conn, reason: "glare" },
    { kind: "relay-offer", conn, url: "wss://relay.example/relay", sid: new Uint8Array(24).fill(7) },
    { kind: "relay-answer", conn, sid: new Uint8Array(24).fill(9) },
  ];

  it("round-trip; the bye example of docs/protocol/chat.md", () => {
    for (const p of samples)
      expect(decodeSignalPayload(envelopeKind(p), encodeSignalPayload(p))).toEqual({ ok: true, value: p });
    expect(doc).toContain(hex(encodeSignalPayload({ kind: "bye", conn, reason: "glare" })));
  });

  it("refuses wrong kinds, long SDP, short connection ids, non-canonical maps", () => {
    expect(decodeSignalPayload("ice", encodeSignalPayload(samples[0]!)).ok).toBe(false);
    expect(decodeSignalPayload("offer", encodeCanonical({ c: conn, sdp: "x".repeat(12_001) })).ok).toBe(
      false,
    );
    expect(decodeSignalPayload("offer", encodeCanonical({ c: conn.subarray(0, 7), sdp: "" })).ok).toBe(false);
    expect(decodeSignalPayload("bye", encodeCanonical({ c: conn, r: "because" })).ok).toBe(false);
    // A relay offer must name a WebSocket URL; an answer carries no URL.
    const sid = new Uint8Array(24);
    expect(decodeSignalPayload("offer", encodeCanonical({ c: conn, rs: sid, ru: "http://x/relay" })).ok).toBe(
      false,
    );
    expect(decodeSignalPayload("answer", encodeCanonical({ c: conn, rs: sid, ru: "ws://x/relay" })).ok).toBe(
      false,
    );
    const unsorted = new Uint8Array([0x82, 0xa3, 0x73, 0x64, 0x70, 0xa0, 0xa1, 0x63, 0xc4, 0x08, ...conn]);
    const r = decodeSignalPayload("offer", unsorted);
    expect(!r.ok && r.error.code).toBe("LOFT_ERR_MALFORMED");
  });

  it("never throws on arbitrary bytes for any kind", () => {
    for (const kind of ["offer", "answer", "ice", "bye"] as const)
      neverThrows((b) => decodeSignalPayload(kind, b));
  });
});
