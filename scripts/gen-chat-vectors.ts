/**
 * Generates the chat vectors (docs/protocol/chat.md §1 signaling payloads, §3 session frames and
 * HELLO, §5 application messages) from web/src/net/signal-payload.ts and web/src/engine/wire.ts:
 *
 *   docs/vectors/chat-v1.json  each signaling payload (every `bye` reason, offers, answers,
 *                              candidates, the relay link's offer and answer) from its fields;
 *                              HELLO, PING and PONG frames; application messages before and after
 *                              padding; and invalid payloads, frames and messages with the error
 *                              code each is refused with.
 *
 * web/src/engine/chat-vectors.test.ts checks that chat.md prints what the file holds, that the code
 * reads every vector as the file says and that this script regenerates the file byte for byte;
 * test/interop/vectorcheck/chat.py recomputes it from chat.md.
 *
 *   npx tsx scripts/gen-chat-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-chat-vectors.ts --check  # exit 1 if the committed file differs
 */

import { fileURLToPath } from "node:url";
import { encode } from "@msgpack/msgpack";
import { concatBytes, fromHex, toHex, utf8 } from "../core/bytes.ts";
import { encodeCanonical } from "../core/codec/codec.ts";
import { padToBucket } from "../core/codec/padding.ts";
import type { SignalKind } from "../core/wire/signaling.ts";
import {
  type AppMessage,
  CHAT_PROTOCOL_VERSION,
  decodeAppMessage,
  decodeAppPlaintext,
  decodeSessionFrame,
  encodeAppMessage,
  encodeBundle,
  encodeHello,
  encodePing,
  encodePong,
  type Hello,
} from "../web/src/engine/wire.ts";
import {
  decodeSignalPayload,
  encodeSignalPayload,
  envelopeKind,
  type SignalPayload,
} from "../web/src/net/signal-payload.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const CHAT_VECTOR_FILE = fileURLToPath(new URL("../docs/vectors/chat-v1.json", import.meta.url));

const bytes = (byte: number, n: number) => new Uint8Array(n).fill(byte);
const SDP =
  "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
const CAND = "candidate:1 1 udp 2122260223 192.0.2.7 54321 typ host";

/** Fields as the page names them; byte strings as hex, listed in `bin`. */
function fieldsOf(value: Record<string, unknown>) {
  const fields: Record<string, unknown> = {};
  const bin: string[] = [];
  for (const [k, x] of Object.entries(value)) {
    if (x === undefined) continue;
    if (x instanceof Uint8Array) {
      fields[k] = toHex(x);
      bin.push(k);
    } else fields[k] = x;
  }
  return { fields, ...(bin.length ? { bin: bin.sort() } : {}) };
}

/** The payload map as chat.md §1's table names its keys. */
function payloadMap(p: SignalPayload): Record<string, unknown> {
  switch (p.kind) {
    case "offer":
    case "answer":
      return { c: p.conn, sdp: p.sdp, rm: p.room };
    case "ice":
      return { c: p.conn, cand: p.candidate, mid: p.mid, idx: p.index };
    case "bye":
      return { c: p.conn, r: p.reason };
    case "relay-offer":
      return { c: p.conn, rm: p.room, rs: p.sid, ru: p.url };
    case "relay-answer":
      return { c: p.conn, rs: p.sid };
  }
}

const SIGNALS: { label: string; payload: SignalPayload }[] = [
  {
    label: "the docs' bye: glare, attempt ab…ab",
    payload: { kind: "bye", conn: bytes(0xab, 8), reason: "glare" },
  },
  ...(["refused", "cancelled", "busy", "no-direct"] as const).map((reason, i) => ({
    label: `bye ${reason}`,
    payload: { kind: "bye" as const, conn: bytes(i + 1, 8), reason },
  })),
  { label: "offer", payload: { kind: "offer", conn: bytes(0x11, 8), sdp: SDP } },
  {
    label: "offer of a room member's link (rm)",
    payload: { kind: "offer", conn: bytes(0x12, 8), sdp: SDP, room: bytes(0x5e, 32) },
  },
  { label: "answer", payload: { kind: "answer", conn: bytes(0x11, 8), sdp: SDP } },
  {
    label: "ice with mid and idx",
    payload: { kind: "ice", conn: bytes(0x11, 8), candidate: CAND, mid: "0", index: 0 },
  },
  {
    label: "ice, end of candidates (empty cand, no mid, no idx)",
    payload: { kind: "ice", conn: bytes(0x11, 8), candidate: "" },
  },
  {
    label: "ice with idx 65535",
    payload: { kind: "ice", conn: bytes(0x11, 8), candidate: CAND, mid: "data", index: 65_535 },
  },
  {
    label: "relay offer (a live link through the relay)",
    payload: {
      kind: "relay-offer",
      conn: bytes(0x21, 8),
      url: "wss://relay.example/ws",
      sid: bytes(0x5a, 24),
    },
  },
  {
    label: "relay offer of a room member's link",
    payload: {
      kind: "relay-offer",
      conn: bytes(0x22, 8),
      url: "ws://127.0.0.1:8787",
      sid: bytes(0x5b, 24),
      room: bytes(0x5e, 32),
    },
  },
  { label: "relay answer", payload: { kind: "relay-answer", conn: bytes(0x21, 8), sid: bytes(0xa5, 24) } },
];

const C = bytes(0xab, 8);
const INVALID_SIGNALS: { label: string; kind: SignalKind; payload: Uint8Array }[] = [
  { label: "bye with an unknown reason", kind: "bye", payload: encode({ c: C, r: "later" }) },
  {
    label: "bye with its keys out of order (not canonical)",
    kind: "bye",
    payload: fromHex("82a172a5676c617265a163c408abababababababab"),
  },
  { label: "bye with a 7-byte c", kind: "bye", payload: encodeCanonical({ c: bytes(0xab, 7), r: "busy" }) },
  { label: "bye with a key more", kind: "bye", payload: encodeCanonical({ c: C, r: "busy", x: 1 }) },
  { label: "bye as an array", kind: "bye", payload: encode([C, "busy"]) },
  {
    label: "bye with a map of 5 keys",
    kind: "bye",
    payload: encodeCanonical({ a: 1, b: 2, c: C, d: 4, r: "busy" }),
  },
  {
    label: "answer naming a room (only an offer does)",
    kind: "answer",
    payload: encodeCanonical({ c: C, rm: bytes(0x5e, 32), sdp: SDP }),
  },
  {
    label: "offer whose sdp is 12 001 bytes",
    kind: "offer",
    payload: encodeCanonical({ c: C, sdp: "s".repeat(12_001) }),
  },
  {
    label: "offer whose sdp is 12 000 bytes",
    kind: "offer",
    payload: encodeCanonical({ c: C, sdp: "s".repeat(12_000) }),
  },
  {
    label: "offer of 16 385 bytes (past 16 384)",
    kind: "offer",
    payload: encodeCanonical({ c: C, sdp: "s".repeat(16_365) }),
  },
  { label: "ice with idx 65536", kind: "ice", payload: encodeCanonical({ c: C, cand: CAND, idx: 65_536 }) },
  {
    label: "ice with a mid of 65 characters",
    kind: "ice",
    payload: encodeCanonical({ c: C, cand: CAND, mid: "m".repeat(65) }),
  },
  {
    label: "relay offer to an http URL",
    kind: "offer",
    payload: encodeCanonical({ c: C, rs: bytes(0x5a, 24), ru: "http://relay.example" }),
  },
  { label: "relay offer without ru", kind: "offer", payload: encodeCanonical({ c: C, rs: bytes(0x5a, 24) }) },
  {
    label: "relay answer with ru",
    kind: "answer",
    payload: encodeCanonical({ c: C, rs: bytes(0x5a, 24), ru: "wss://relay.example" }),
  },
  {
    label: "bye whose reason is not UTF-8",
    kind: "bye",
    payload: fromHex("82a163c408abababababababab a172a4627573ff".replaceAll(" ", "")),
  },
];

const HELLOS: { label: string; hello: Hello }[] = [
  {
    label: "the docs' HELLO with a ratchet that can send",
    hello: { version: 1, ratchetId: bytes(0x11, 16), canSend: true },
  },
  { label: "the docs' HELLO without a ratchet", hello: { version: 1, canSend: false } },
  {
    label: "a ratchet that cannot send yet (a fresh Bob)",
    hello: { version: 1, ratchetId: bytes(0xe7, 16), canSend: false },
  },
  {
    label: "version 2 (reads; the session closes, LOFT_ERR_UNSUPPORTED_VERSION)",
    hello: { version: 2, canSend: true },
  },
];

const INVALID_FRAMES: { label: string; frame: Uint8Array }[] = [
  { label: "empty frame", frame: new Uint8Array(0) },
  { label: "type 05 (unknown)", frame: fromHex("05") },
  { label: "type 7f (unknown)", frame: fromHex("7f00") },
  {
    label: "HELLO with its keys out of order (not canonical)",
    frame: fromHex("0182a176 01a473656e64c3".replaceAll(" ", "")),
  },
  { label: "HELLO with v as a uint 8 (not canonical)", frame: fromHex("0182a473656e64c3a176cc01") },
  {
    label: "HELLO with v as a float 64 (not canonical: no floats)",
    frame: fromHex("0182a473656e64c3a176cb3ff0000000000000"),
  },
  { label: "HELLO without send", frame: concatBytes(fromHex("01"), encodeCanonical({ v: 1 })) },
  { label: "HELLO with send as 1", frame: concatBytes(fromHex("01"), encodeCanonical({ send: 1, v: 1 })) },
  {
    label: "HELLO with a 15-byte rid",
    frame: concatBytes(fromHex("01"), encodeCanonical({ rid: bytes(1, 15), send: true, v: 1 })),
  },
  {
    label: "HELLO with a key more (3 keys)",
    frame: concatBytes(fromHex("01"), encodeCanonical({ send: true, v: 1, x: 0 })),
  },
  {
    label: "HELLO with 4 keys",
    frame: concatBytes(fromHex("01"), encodeCanonical({ rid: bytes(1, 16), send: true, v: 1, x: 0 })),
  },
  {
    label: "HELLO with v 65536",
    frame: concatBytes(fromHex("01"), encodeCanonical({ send: true, v: 65_536 })),
  },
  { label: "HELLO with trailing bytes", frame: fromHex("0182a473656e64c3a17601c0") },
  {
    label: "HELLO whose body is 257 bytes",
    frame: concatBytes(fromHex("01"), encodeCanonical({ send: true, v: 1, z: "z".repeat(243) })),
  },
  {
    label: "HELLO whose body is 256 bytes, with a key more",
    frame: concatBytes(fromHex("01"), encodeCanonical({ send: true, v: 1, z: "z".repeat(242) })),
  },
  { label: "PING of 7 bytes", frame: fromHex("0300000000000000") },
  { label: "PONG of 9 bytes", frame: fromHex("04000000000000000000") },
];

const ID = "A".repeat(22);
const AT = 1_700_000_000_000;
const APPS: { label: string; message: AppMessage }[] = [
  { label: "the docs' sync", message: { t: "sync" } },
  { label: "the docs' msg", message: { t: "msg", id: ID, at: AT, text: "hi" } },
  { label: "the docs' rcpt", message: { t: "rcpt", ids: [ID] } },
  {
    label: "msg with an emoji and a leading U+FEFF",
    message: { t: "msg", id: "abc-_0123456789ABCDEFG", at: 0, text: "\ufeffsee you 👋" },
  },
  {
    label: "msg of 300 characters (a 512-byte bucket)",
    message: { t: "msg", id: ID, at: AT + 1, text: "é".repeat(300) },
  },
  { label: "rcpt of three ids", message: { t: "rcpt", ids: [ID, "B".repeat(22), "_".repeat(22)] } },
  {
    label: "mbox",
    message: { t: "mbox", u: "wss://relay.example/ws", s: bytes(0x5a, 24), k: bytes(0x6b, 32) },
  },
  {
    label: 'mbox with its order n (mailbox.md §1, "The order of announcements")',
    message: {
      t: "mbox",
      u: "wss://relay.example/ws",
      s: bytes(0x5a, 24),
      k: bytes(0x6b, 32),
      n: 1_765_000_000_000,
    },
  },
  {
    label: "mbox with an SMP address",
    message: { t: "mbox", u: "smp://c2VydmVy@smp.example", s: bytes(0x01, 24), k: bytes(0x02, 32) },
  },
  {
    label: "intro",
    message: {
      t: "intro",
      i: bytes(0x49, 40),
      u: "wss://relay.example/ws",
      s: bytes(0x5a, 24),
      k: bytes(0x6b, 32),
    },
  },
];

const pad = (m: unknown) => padToBucket(encodeCanonical(m));
const INVALID_APPS: { label: string; padded: Uint8Array }[] = [
  { label: "no 0x80 marker (256 zero bytes)", padded: new Uint8Array(256) },
  {
    label: "a size that is not a power of two (300 bytes)",
    padded: concatBytes(encodeCanonical({ t: "sync" }), fromHex("80"), new Uint8Array(300 - 9)),
  },
  {
    label: "a bucket of 128 bytes (smaller than 256)",
    padded: concatBytes(encodeCanonical({ t: "sync" }), fromHex("80"), new Uint8Array(128 - 9)),
  },
  {
    label: "padded to 512 when 256 would do",
    padded: concatBytes(encodeCanonical({ t: "sync" }), fromHex("80"), new Uint8Array(512 - 9)),
  },
  { label: "an unknown t", padded: pad({ t: "hey" }) },
  {
    label: "msg with at as a float 64 (not canonical: no floats)",
    padded: padToBucket(encode({ at: AT, id: ID, t: "msg", text: "hi" }, { forceIntegerToFloat: true })),
  },
  { label: "msg with an empty text", padded: pad({ at: AT, id: ID, t: "msg", text: "" }) },
  { label: "msg with a 21-character id", padded: pad({ at: AT, id: "A".repeat(21), t: "msg", text: "hi" }) },
  {
    label: "msg with an id that is not base64url",
    padded: pad({ at: AT, id: `${"A".repeat(21)}+`, t: "msg", text: "hi" }),
  },
  {
    label: "msg with at 2^53 (past the safe integers)",
    padded: pad({ at: 2 ** 53, id: ID, t: "msg", text: "hi" }),
  },
  { label: "msg with at -1", padded: pad({ at: -1, id: ID, t: "msg", text: "hi" }) },
  {
    label: "msg with its keys out of order (not canonical)",
    padded: padToBucket(encode({ t: "msg", id: ID, at: AT, text: "hi" })),
  },
  { label: "msg with a key more", padded: pad({ at: AT, id: ID, t: "msg", text: "hi", x: 1 }) },
  { label: "rcpt with no ids", padded: pad({ ids: [], t: "rcpt" }) },
  { label: "rcpt with 65 ids", padded: pad({ ids: new Array(65).fill(ID), t: "rcpt" }) },
  { label: "sync with a key more", padded: pad({ t: "sync", x: true }) },
  {
    label: "mbox with a 23-byte s",
    padded: pad({ k: bytes(0x6b, 32), s: bytes(0x5a, 23), t: "mbox", u: "wss://relay.example/ws" }),
  },
  {
    label: "mbox with an empty u",
    padded: pad({ k: bytes(0x6b, 32), s: bytes(0x5a, 24), t: "mbox", u: "" }),
  },
  {
    label: "intro with an empty i",
    padded: pad({ i: new Uint8Array(0), k: bytes(0x6b, 32), s: bytes(0x5a, 24), t: "intro", u: "wss://r" }),
  },
  { label: "not a map (an array)", padded: pad(["sync"]) },
  {
    label: "a text that is not UTF-8",
    padded: padToBucket(fromHex(`84a2617400a26964b6${toHex(utf8(ID))}a174a36d7367a474657874a2ffff`)),
  },
];

/** Bundles (chat.md §5, "Bundles"): chat messages of APPS, in order. */
const BUNDLES: { label: string; of: number[] }[] = [
  { label: "two msg in 256-byte buckets", of: [1, 3] },
  { label: "three msg, the last in a larger bucket", of: [1, 3, 4] },
];
const bundleOf = (of: number[]) => encodeBundle(of.map((i) => encodeAppMessage(APPS[i]!.message)));
const twoBuckets = () => bundleOf([1, 3]);
const changed = (b: Uint8Array, at: number, value: number) => {
  const out = b.slice();
  out[at] = value;
  return out;
};
/** Bundles refused whole, each with the code chat.md §5 gives. */
const INVALID_BUNDLES: { label: string; bundle: Uint8Array }[] = [
  { label: "one message (k = 1)", bundle: changed(twoBuckets(), 1, 1) },
  { label: "k = 65", bundle: changed(twoBuckets(), 1, 65) },
  { label: "a bucket of 2^7", bundle: changed(twoBuckets(), 2, 7) },
  { label: "a bucket of 2^16", bundle: changed(twoBuckets(), 2, 16) },
  { label: "buckets longer than the bundle", bundle: changed(twoBuckets(), 3, 9) },
  { label: "a byte past the buckets", bundle: concatBytes(twoBuckets(), Uint8Array.of(0)) },
  { label: "the second message's padding broken", bundle: changed(twoBuckets(), 4 + 511, 1) },
  {
    label: "a sync inside",
    bundle: encodeBundle([encodeAppMessage(APPS[1]!.message), encodeAppMessage({ t: "sync" })]),
  },
  { label: "65 401 bytes", bundle: new Uint8Array(65_401) },
];

/** What the code reads: the value's own fields, or the error code. */
const codeOf = (r: { ok: true } | { ok: false; error: { code: string } }) => (r.ok ? "reads" : r.error.code);

export function buildChatVectors() {
  return {
    description:
      "Chat (docs/protocol/chat.md): §1 signaling payloads — canonical MessagePack maps, the envelope kind carrying each; §3 session frames — type byte ‖ body, HELLO's body canonical MessagePack { v, rid?, send }; §5 application messages — canonical MessagePack, then padded (0x80, zeros) to the next power-of-two bucket of at least 256 bytes; §5 bundles — 00 ‖ k ‖ log2 of each bucket ‖ the padded msg messages (`of`: indexes into `apps`). Byte strings are hex and named in `bin`; in `signalReads`, `frameReads`, `appReads` and `bundleReads`, `code` is the error an input is refused with, or `reads` (the bounds' last accepted value).",
    signals: SIGNALS.map(({ label, payload }) => {
      const bytes = encodeSignalPayload(payload);
      const back = decodeSignalPayload(envelopeKind(payload), bytes);
      if (!back.ok || back.value.kind !== payload.kind) throw new Error(`${label}: does not read back`);
      return {
        label,
        kind: envelopeKind(payload),
        reads: payload.kind,
        ...fieldsOf(payloadMap(payload)),
        payload: toHex(bytes),
      };
    }),
    signalReads: INVALID_SIGNALS.map(({ label, kind, payload }) => ({
      label,
      kind,
      payload: toHex(payload),
      code: codeOf(decodeSignalPayload(kind, payload)),
    })),
    hellos: HELLOS.map(({ label, hello }) => {
      const frame = encodeHello(hello);
      const back = decodeSessionFrame(frame);
      if (!back.ok || back.value.type !== "hello") throw new Error(`${label}: does not read back`);
      return {
        label,
        ...fieldsOf({ v: hello.version, rid: hello.ratchetId, send: hello.canSend }),
        frame: toHex(frame),
        supported: back.value.hello.version === CHAT_PROTOCOL_VERSION,
      };
    }),
    pings: [
      { label: "PING", frame: toHex(encodePing(fromHex("0102030405060708"))) },
      { label: "PONG answering it", frame: toHex(encodePong(fromHex("0102030405060708"))) },
    ],
    frameReads: INVALID_FRAMES.map(({ label, frame }) => ({
      label,
      frame: toHex(frame),
      code: codeOf(decodeSessionFrame(frame)),
    })),
    apps: APPS.map(({ label, message }) => {
      const padded = encodeAppMessage(message);
      if (!decodeAppMessage(padded).ok) throw new Error(`${label}: does not read back`);
      return {
        label,
        ...fieldsOf(message as Record<string, unknown>),
        message: toHex(encodeCanonical(message)),
        padded: toHex(padded),
      };
    }),
    appReads: INVALID_APPS.map(({ label, padded }) => ({
      label,
      padded: toHex(padded),
      code: codeOf(decodeAppMessage(padded)),
    })),
    bundles: BUNDLES.map(({ label, of }) => {
      const bundle = bundleOf(of);
      const back = decodeAppPlaintext(bundle);
      if (!back.ok || back.value.length !== of.length) throw new Error(`${label}: does not read back`);
      return { label, of, bundle: toHex(bundle) };
    }),
    bundleReads: INVALID_BUNDLES.map(({ label, bundle }) => ({
      label,
      // The longest is all zeros but its first byte: its length says it.
      ...(bundle.length > 4096 ? { zeros: bundle.length } : { bundle: toHex(bundle) }),
      code: codeOf(decodeAppPlaintext(bundle)),
    })),
  };
}

export const chatVectorText = () => `${JSON.stringify(buildChatVectors(), null, 2)}\n`;

if (isScript(import.meta.url)) writeOrCheck([[CHAT_VECTOR_FILE, chatVectorText()]]);
