/**
 * Generates the room vectors (docs/protocol/rooms.md §1, §2, §4, §5, §8) from the rooms engine
 * (web/src/engine/rooms/room-link.ts, host.ts, wire.ts):
 *
 *   docs/vectors/rooms-v1.json  room links (fragment, full link, room hash, binding), texts the
 *                               link parser takes or refuses, host-signed room states (the
 *                               commitment, the body, every hand-over and the signed record), room
 *                               frames of every `t`, and invalid frames with the error code each
 *                               must give.
 *
 * web/src/engine/rooms/docs.test.ts checks that rooms.md prints what the file holds and that this
 * script regenerates the file byte for byte; test/interop/vectorcheck/rooms.py recomputes it from
 * rooms.md.
 *
 *   npx tsx scripts/gen-room-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-room-vectors.ts --check  # exit 1 if the committed file differs
 */

import { fileURLToPath } from "node:url";
import { ed25519 } from "@noble/curves/ed25519.js";
import { toHex } from "../core/bytes.ts";
import { encodeCanonical } from "../core/codec/codec.ts";
import { padToBucket } from "../core/codec/padding.ts";
import {
  type Handover,
  MAX_STATE_BYTES,
  type RoomState,
  secretCommitment,
  signHandover,
  signState,
  verifyState,
} from "../web/src/engine/rooms/host.ts";
import {
  formatRoomLink,
  parseRoomLink,
  type RoomLink,
  roomBinding,
  roomFragment,
  roomHash,
} from "../web/src/engine/rooms/room-link.ts";
import { decodeRoomFrame, encodeRoomFrame, type RoomMessage } from "../web/src/engine/rooms/wire.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const ROOM_VECTOR_FILE = fileURLToPath(new URL("../docs/vectors/rooms-v1.json", import.meta.url));

const fill = (n: number, byte: number) => new Uint8Array(n).fill(byte);
const count = (n: number, from: number) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

/** The docs' link (rooms.md §1): id 00 01 … 0f, secret 20 21 … 3f, host key 40 41 … 5f. */
const DOCS_LINK: RoomLink = { id: count(16, 0), secret: count(32, 0x20), host: count(32, 0x40) };
/** The docs' host private key (rooms.md §8): 60 61 … 7f. */
const HOST_SEED = count(32, 0x60);
const ORIGIN = "https://loft.example";

/** JSON for any message: byte strings as `{ bin: hex }`, so a reader knows bin from str. */
function json(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bin: toHex(value) };
  if (Array.isArray(value)) return value.map(json);
  if (typeof value === "object" && value !== null)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, json(v)]));
  return value;
}

const LINKS: { label: string; link: RoomLink }[] = [
  { label: "the docs' link (§1, §2, §4)", link: DOCS_LINK },
  {
    label: "the docs' room with the §8 host key",
    link: { ...DOCS_LINK, host: ed25519.getPublicKey(HOST_SEED) },
  },
  {
    label: "id of ff, secret of zeros",
    link: { id: fill(16, 0xff), secret: fill(32, 0), host: count(32, 0x80) },
  },
];

function parseCases() {
  const f = roomFragment(DOCS_LINK);
  const [room, k, h] = f.split("&") as [string, string, string];
  const cases: { label: string; text: string }[] = [
    { label: "the full link", text: formatRoomLink(ORIGIN, DOCS_LINK) },
    { label: "the fragment with #", text: `#${f}` },
    { label: "the fragment alone", text: f },
    { label: "the fragment alone, with whitespace around it", text: `  ${f}\n` },
    { label: "the fields in another order", text: `${h}&${room}&${k}` },
    { label: "a full link with a path and a query", text: `${ORIGIN}/x?y=1#${k}&${h}&${room}` },
    { label: "no secret", text: `${room}&${h}` },
    { label: "a 15-byte id", text: f.replace(room, "room=AAECAwQFBgcICQoLDA0O") },
    { label: "a field twice", text: `${f}&${k}` },
    { label: "an unknown field", text: `${f}&x=1` },
    { label: "padding (=)", text: f.replace(room, `${room}==`) },
    {
      label: "non-zero unused bits in the last character of the id",
      text: f.replace(room, "room=AAECAwQFBgcICQoLDA0ODx"),
    },
    { label: "a character outside base64url (+)", text: f.replace(k, `k=+${k.slice(3)}`) },
    { label: "an empty part (a trailing &)", text: `${f}&` },
    { label: "a part without a name (=x)", text: `${f}&=x` },
    { label: "whitespace inside the fragment after #", text: `# ${f}` },
    { label: "garbage", text: "hello" },
    { label: "513 characters", text: `${f}&${"a".repeat(512 - f.length)}` },
  ];
  return cases.map(({ label, text }) => {
    const r = parseRoomLink(text);
    return r.ok
      ? { label, text, id: toHex(r.value.id), secret: toHex(r.value.secret), host: toHex(r.value.host) }
      : { label, text, code: r.error.code };
  });
}

interface StateCase {
  label: string;
  /** The private keys of the chain: [0] is the link's `h`, each next one is handed the role. */
  hostSeeds: Uint8Array[];
  secret: Uint8Array;
  body: Omit<RoomState, "c" | "host" | "id">;
}

const STATES: StateCase[] = [
  {
    label: "the docs' state (§8): v 1, e 0, two members, no removals, no hand-overs",
    hostSeeds: [HOST_SEED],
    secret: DOCS_LINK.secret,
    body: { e: 0, hid: fill(32, 0xa1), m: [fill(32, 0xb2), fill(32, 0xc3)], v: 1, x: [] },
  },
  {
    label: "after a removal (e 1, a new secret) and a hand-over; lists given unsorted, one key twice",
    hostSeeds: [HOST_SEED, count(32, 0x80)],
    secret: fill(32, 0x99),
    body: {
      e: 1,
      hid: fill(32, 0xb2),
      m: [fill(32, 0xc3), fill(32, 0xa1), fill(32, 0xb2), fill(32, 0xa1)],
      v: 7,
      x: [fill(32, 0xe5), fill(32, 0xd4)],
    },
  },
  {
    label: "two hand-overs, no members listed",
    hostSeeds: [HOST_SEED, count(32, 0x80), count(32, 0xa0)],
    secret: fill(32, 0x77),
    body: { e: 300, hid: fill(32, 0xc3), m: [], v: 70_000, x: [fill(32, 0x01)] },
  },
];

/** The docs' signed state (§8), as `room.state` carries it. */
const docsState = () => Uint8Array.from(Buffer.from(stateCase(STATES[0]!).state, "hex"));

function stateCase({ label, hostSeeds, secret, body }: StateCase) {
  const id = DOCS_LINK.id;
  const keys = hostSeeds.map((s) => ed25519.getPublicKey(s));
  const chain: Handover[] = keys.slice(1).map((k, i) => signHandover(id, i, k, hostSeeds[i]!));
  const c = secretCommitment(id, body.e, secret);
  const state: RoomState = { ...body, c, host: keys[keys.length - 1]!, id };
  const signed = signState(state, hostSeeds[hostSeeds.length - 1]!, chain);
  return {
    label,
    id: toHex(id),
    hostSeeds: hostSeeds.map(toHex),
    hostKeys: keys.map(toHex),
    secret: toHex(secret),
    fields: json({ e: body.e, hid: body.hid, m: body.m, v: body.v, x: body.x }),
    c: toHex(c),
    handovers: chain.map((ho) => ({ k: toHex(ho.k), sig: toHex(ho.sig) })),
    body: toHex(encodeCanonical(signed.state)),
    state: toHex(signed.bytes),
  };
}

/**
 * Signed states verified against the docs' room (its id and `h`), valid or not: bodies and outer
 * records made by hand (any fields, any order), signed after the hand-overs given.
 */
function stateVerifications() {
  const id = DOCS_LINK.id;
  const h = ed25519.getPublicKey(HOST_SEED);
  const member = count(32, 0x80);
  const rk = ed25519.getPublicKey(member);
  const stranger = count(32, 0xc0);
  const key = (b: number) => fill(32, b);
  const body = (over: Record<string, unknown> = {}) =>
    encodeCanonical({
      c: secretCommitment(id, 0, DOCS_LINK.secret),
      e: 0,
      hid: key(0xa1),
      host: h,
      id,
      m: [key(0xb2), key(0xc3)],
      v: 1,
      x: [],
      ...over,
    });
  const sign = (b: Uint8Array, seed: Uint8Array) =>
    ed25519.sign(Uint8Array.from([...new TextEncoder().encode("loft/room/state/v1"), 0, ...b]), seed);
  const signed = (b: Uint8Array, seed: Uint8Array, ho: Handover[] = [], extra = {}) =>
    encodeCanonical({ ho, s: b, sig: sign(b, seed), ...extra });
  const toMember = signHandover(id, 0, rk, HOST_SEED);
  const docs = Uint8Array.from(Buffer.from(stateCase(STATES[0]!).state, "hex"));
  const flipped = docs.slice();
  flipped[flipped.length - 1]! ^= 1;
  // The docs' body with e before c (88, "c" bin(32), "e" 0, …): not canonical, signed all the same.
  const canonical = body();
  const swapped = Uint8Array.from([
    0x88,
    0xa1,
    0x65,
    0x00,
    ...canonical.subarray(1, 37),
    ...canonical.subarray(40),
  ]);
  // The docs' body with v written as float 64 1.0 (a1 76 cb 3ff0…): a whole number, not canonical.
  const floatV = hexBytes(toHex(canonical).replace("a17601a178", "a176cb3ff0000000000000a178"));
  // The record with sig before s: not canonical.
  const sigFirst = Uint8Array.from([
    0x83,
    ...encodeCanonical("ho"),
    0x90,
    ...encodeCanonical("sig"),
    ...encodeCanonical(sign(canonical, HOST_SEED)),
    ...encodeCanonical("s"),
    ...encodeCanonical(canonical),
  ]);
  const cases: { label: string; state: Uint8Array }[] = [
    { label: "the docs' state", state: docs },
    {
      label: "members not sorted: one state, one encoding",
      state: signed(body({ m: [key(0xc3), key(0xb2)] }), HOST_SEED),
    },
    {
      label: "a removed key twice: one state, one encoding",
      state: signed(body({ x: [key(0xd4), key(0xd4)] }), HOST_SEED),
    },
    {
      label: "after a hand-over, signed by the member's room key",
      state: signed(body({ host: rk, v: 2 }), member, [toMember]),
    },
    { label: "the signature's last byte changed", state: flipped },
    { label: "cut short", state: docs.subarray(0, 100) },
    { label: "empty", state: new Uint8Array() },
    { label: "a body of another room", state: signed(body({ id: fill(16, 0xee) }), HOST_SEED) },
    { label: "signed by a key that is not the host", state: signed(body(), stranger) },
    { label: "a body naming a host its chain does not", state: signed(body({ host: rk }), member) },
    {
      label: "a hand-over not signed by h",
      state: signed(body({ host: rk, v: 2 }), member, [signHandover(id, 0, rk, stranger)]),
    },
    {
      label: "a hand-over signed for another position in the chain",
      state: signed(body({ host: rk, v: 2 }), member, [signHandover(id, 1, rk, HOST_SEED)]),
    },
    {
      label: "signed by the former host after it handed the role on",
      state: signed(body({ host: rk, v: 3 }), HOST_SEED, [toMember]),
    },
    { label: "version 0", state: signed(body({ v: 0 }), HOST_SEED) },
    { label: "an epoch beyond 2^32 - 1", state: signed(body({ e: 2 ** 32 }), HOST_SEED) },
    { label: "a member key of 31 bytes", state: signed(body({ m: [fill(31, 1)] }), HOST_SEED) },
    {
      label: "65 members",
      state: signed(body({ m: Array.from({ length: 65 }, (_, i) => key(i)) }), HOST_SEED),
    },
    {
      label: "17 hand-overs",
      state: signed(
        body(),
        HOST_SEED,
        Array.from({ length: 17 }, () => toMember),
      ),
    },
    {
      label: "a field the body does not have, in place of x",
      state: signed(body({ x: undefined, z: 1 }), HOST_SEED),
    },
    { label: "a ninth field in the body: past the reader's bound", state: signed(body({ z: 1 }), HOST_SEED) },
    { label: "a field the record does not have", state: signed(body(), HOST_SEED, [], { z: 1 }) },
    {
      label: "a key of 9 characters: past the reader's bound",
      state: signed(body(), HOST_SEED, [], { signature: 1 }),
    },
    { label: "a body that is not canonical (e before c)", state: signed(swapped, HOST_SEED) },
    { label: "a version of 1.5 (a float)", state: signed(body({ v: 1.5 }), HOST_SEED) },
    { label: "a version of 1.0 as a float: not canonical", state: signed(floatV, HOST_SEED) },
    { label: "a record that is not canonical (sig before s)", state: sigFirst },
  ];
  return cases.map(({ label, state }) => {
    const r = verifyState(state, id, h);
    return { label, state: toHex(state), ...(r.ok ? { verifies: true } : { code: r.error.code }) };
  });
}

const FRAMES: { label: string; message: RoomMessage }[] = [
  { label: "the docs' room.hi (§5)", message: { t: "room.hi", name: "Ann" } },
  {
    label: "room.hi with a member room key and a 40-character name",
    message: { t: "room.hi", name: "Zoë ".repeat(10), rk: count(32, 0x10) },
  },
  {
    label: "room.msg",
    message: {
      t: "room.msg",
      id: "AAECAwQFBgcICQoLDA0ODw",
      at: 1_700_000_000_123,
      text: "see you at eight 🕗",
    },
  },
  {
    label: "room.msg whose text takes the next bucket (300 bytes)",
    message: { t: "room.msg", id: "m1AAAAAAAAAAAAAAAAAAAA", at: 0, text: "é".repeat(150) },
  },
  {
    label: "room.rcpt",
    message: { t: "room.rcpt", ids: ["AAECAwQFBgcICQoLDA0ODw", "m1AAAAAAAAAAAAAAAAAAAA"] },
  },
  { label: "room.bye", message: { t: "room.bye" } },
  { label: "room.state carrying the docs' state", message: { t: "room.state", s: docsState() } },
  { label: "room.key", message: { t: "room.key", e: 4_000_000_000, k: fill(32, 0x99) } },
  { label: "room.host", message: { t: "room.host", k: count(32, 0x10), sig: fill(64, 0x5a) } },
  { label: "room.rs without a ratchet", message: { t: "room.rs" } },
  { label: "room.rs with a ratchet id", message: { t: "room.rs", ri: count(16, 0xf0) } },
  { label: "room.dr", message: { t: "room.dr", d: count(300, 0) } },
  {
    label: "room.mbox",
    message: { t: "room.mbox", u: "wss://relay.loft.example/relay", s: fill(24, 0x24), k: fill(32, 0x32) },
  },
  {
    label: 'room.mbox with its order n (rooms.md §9, "The order of announcements")',
    message: {
      t: "room.mbox",
      u: "wss://relay.loft.example/relay",
      s: fill(24, 0x24),
      k: fill(32, 0x32),
      n: 1_765_000_000_000,
    },
  },
];

/** A room frame of any bytes: 0x40 ‖ padToBucket(body). */
function padded(body: Uint8Array): Uint8Array {
  const p = padToBucket(body);
  const out = new Uint8Array(1 + p.length);
  out[0] = 0x40;
  out.set(p, 1);
  return out;
}

/** A room frame of any map, valid or not: 0x40 ‖ padToBucket(canonical MessagePack). */
const frameOf = (m: unknown) => padded(encodeCanonical(m));

const hexBytes = (hex: string) => Uint8Array.from(Buffer.from(hex, "hex"));

function invalidFrames() {
  const hi = encodeRoomFrame({ t: "room.hi", name: "Ann" });
  const withByte = (at: number, value: number) => {
    const b = hi.slice();
    b[at] = value;
    return b;
  };
  // {t: "room.hi", name: "Ann"} with its keys in the wrong order (t before name): not canonical.
  const unsorted = hexBytes("82a174a7726f6f6d2e6869a46e616d65a3416e6e");
  const cases: { label: string; frame: Uint8Array }[] = [
    { label: "another frame type (0x41)", frame: withByte(0, 0x41) },
    { label: "the type byte alone", frame: hi.subarray(0, 1) },
    { label: "a padding byte that is not zero", frame: withByte(100, 1) },
    { label: "cut to 200 bytes: not a bucket size", frame: hi.subarray(0, 200) },
    {
      label: "padded to a larger bucket than needed",
      frame: Uint8Array.from([...hi, ...new Uint8Array(256)]),
    },
    { label: "not MessagePack (0xc1)", frame: padded(Uint8Array.of(0xc1)) },
    {
      label: "a byte after the map",
      frame: padded(Uint8Array.from([...encodeCanonical({ t: "room.bye" }), 0])),
    },
    { label: "an unknown t", frame: frameOf({ t: "room.nope" }) },
    { label: "no t", frame: frameOf({ name: "Ann" }) },
    { label: "not a map", frame: frameOf("room.hi") },
    { label: "an extra field", frame: frameOf({ t: "room.bye", x: 1 }) },
    {
      label: "a map of 6 keys: past the reader's bound, before the shape",
      frame: frameOf({ t: "room.hi", name: "Ann", a: 1, b: 2, c: 3, d: 4 }),
    },
    {
      label: "a map of 6 entries, t written twice: counted as written, past the bound",
      frame: padded(
        hexBytes("86a16101a16202a16303a46e616d65a3416e6ea174a7726f6f6d2e6869a174a7726f6f6d2e6869"),
      ),
    },
    {
      label: "65 receipts: past the reader's bound",
      frame: frameOf({ t: "room.rcpt", ids: Array.from({ length: 65 }, () => "A".repeat(22)) }),
    },
    { label: "an empty name", frame: frameOf({ t: "room.hi", name: "" }) },
    { label: "a name of 41 characters", frame: frameOf({ t: "room.hi", name: "x".repeat(41) }) },
    { label: "a room key of 31 bytes", frame: frameOf({ t: "room.hi", name: "Ann", rk: fill(31, 1) }) },
    {
      label: "a message id of 21 characters",
      frame: frameOf({ t: "room.msg", id: "A".repeat(21), at: 1, text: "x" }),
    },
    {
      label: "a time beyond 2^53 - 1",
      frame: frameOf({ t: "room.msg", id: "A".repeat(22), at: 2 ** 53, text: "x" }),
    },
    {
      label: "a time of 1.5 (a float)",
      frame: frameOf({ t: "room.msg", id: "A".repeat(22), at: 1.5, text: "x" }),
    },
    {
      label: "a time of 1.0 as a float: not canonical",
      frame: padded(
        hexBytes(
          toHex(encodeCanonical({ t: "room.msg", id: "A".repeat(22), at: 1.5, text: "x" })).replace(
            "cb3ff8000000000000",
            "cb3ff0000000000000",
          ),
        ),
      ),
    },
    { label: "no receipts", frame: frameOf({ t: "room.rcpt", ids: [] }) },
    { label: "an epoch beyond 2^32 - 1", frame: frameOf({ t: "room.key", e: 2 ** 32, k: fill(32, 1) }) },
    {
      label: "a queue that is not ws: or wss:",
      frame: frameOf({ t: "room.mbox", u: "https://x", s: fill(24, 1), k: fill(32, 1) }),
    },
    {
      label: "a name as bin, not str",
      frame: frameOf({ t: "room.hi", name: new TextEncoder().encode("Ann") }),
    },
    { label: "keys out of order (not canonical)", frame: padded(unsorted) },
    // Strings must be UTF-8 (wire.md, "Canonical MessagePack"); each of these reads, leniently, as
    // a name or a text that re-encodes to the same bytes or passes the shape.
    {
      label: "a name of a lone surrogate (ed a0 80): not UTF-8",
      frame: padded(hexBytes("82a46e616d65a3eda080a174a7726f6f6d2e6869")),
    },
    {
      label: "a name with a byte ff: not UTF-8",
      frame: padded(hexBytes("82a46e616d65a3416effa174a7726f6f6d2e6869")),
    },
    {
      label: "a text with an overlong form (c0 80): not UTF-8",
      frame: padded(
        hexBytes(
          toHex(encodeCanonical({ t: "room.msg", id: "A".repeat(22), at: 1, text: "x\u0001" })).replace(
            "a27801",
            "a3c08021",
          ),
        ),
      ),
    },
    {
      label: "a text cut inside a character (e2 82): not UTF-8",
      frame: padded(
        hexBytes(
          toHex(encodeCanonical({ t: "room.msg", id: "A".repeat(22), at: 1, text: "ab" })).replace(
            "a26162",
            "a2e282",
          ),
        ),
      ),
    },
  ];
  return cases.map(({ label, frame }) => {
    const r = decodeRoomFrame(frame);
    if (r.ok) throw new Error(`invalid frame "${label}" decodes`);
    return { label, frame: toHex(frame), code: r.error.code };
  });
}

export function buildRoomVectors() {
  return {
    description:
      "Rooms (docs/protocol/rooms.md): link fragment room=<id>&k=<secret>&h=<host key> (base64url, §1); room hash = SHA-256('loft/room/rendezvous/v1' ‖ 0x00 ‖ id) (§2); binding = HKDF-SHA256(ikm = secret, salt = id, info = 'loft/room/binding/v1' ‖ h, 32) (§4); frame = 0x40 ‖ padToBucket(canonical MessagePack) (§5); the host-signed room state (§8). Byte strings in messages are written { bin: hex }.",
    origin: ORIGIN,
    links: LINKS.map(({ label, link }) => ({
      label,
      id: toHex(link.id),
      secret: toHex(link.secret),
      host: toHex(link.host),
      fragment: roomFragment(link),
      link: formatRoomLink(ORIGIN, link),
      hash: toHex(roomHash(link.id)),
      binding: toHex(roomBinding(link)),
    })),
    parse: parseCases(),
    states: STATES.map(stateCase),
    maxStateBytes: MAX_STATE_BYTES,
    verify: stateVerifications(),
    frames: FRAMES.map(({ label, message }) => {
      const frame = encodeRoomFrame(message);
      const back = decodeRoomFrame(frame);
      if (!back.ok) throw new Error(`frame "${label}" does not decode`);
      return { label, message: json(message), frame: toHex(frame) };
    }),
    invalidFrames: invalidFrames(),
  };
}

export const roomVectorText = () => `${JSON.stringify(buildRoomVectors(), null, 2)}\n`;

if (isScript(import.meta.url)) writeOrCheck([[ROOM_VECTOR_FILE, roomVectorText()]]);
