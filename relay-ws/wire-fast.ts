/**
 * Byte-level fast paths for the frames of a stored-and-forwarded message (docs/protocol/relay.md
 * §Encoding): decoding a client frame carrying SEND or ACK, and encoding OK and MSG. The generic
 * path (core/relay/protocol.ts: MessagePack decode, valibot schema, then a re-encode to prove the
 * bytes canonical) cost ~40 µs per command and ~16 µs per MSG on the relay's event loop
 * (bench/README-relay.md, profile); these read and write the one canonical layout directly.
 *
 * Exactness: `fastDecode` accepts only bytes that are the canonical encoding of a valid SEND or
 * ACK frame and answers exactly what the generic decoders answer for them; anything else —
 * another command, a malformed or non-canonical frame, an oversized one — is `undefined`, and the
 * caller falls back to the generic path, which gives the typed error. The encoders produce the
 * bytes `encodeServerFrame` produces. relay-ws/wire-fast.test.ts checks both against the generic
 * codec with fast-check.
 */

import type { ClientFrame, Command } from "../core/relay/protocol.ts";
import {
  AUTHENTICATOR_LENGTH,
  ID_LENGTH,
  isDeliveryLength,
  MAX_BATCH,
  MAX_BODY,
  SEND_ID_LENGTH,
  SIGNATURE_LENGTH,
} from "../core/relay/protocol.ts";

const FIXSTR_1 = 0xa1;
const BIN8 = 0xc4;
const BIN16 = 0xc5;
const BIN32 = 0xc6;
const UINT8 = 0xcc;
const UINT16 = 0xcd;
const UINT32 = 0xce;
const K_A = 0x61; // "a"
const K_B = 0x62;
const K_I = 0x69;
const K_K = 0x6b;
const K_M = 0x6d;
const K_N = 0x6e;
const K_Q = 0x71;
const K_T = 0x74;
/** fixstr "SEND" and "ACK"; 1.3's "SENDS" and "ACKS", and the key "ms". */
const SEND = [0xa4, 0x53, 0x45, 0x4e, 0x44];
const ACK = [0xa3, 0x41, 0x43, 0x4b];
const SENDS = [0xa5, 0x53, 0x45, 0x4e, 0x44, 0x53];
const ACKS = [0xa4, 0x41, 0x43, 0x4b, 0x53];
const MS = [0xa2, 0x6d, 0x73];

/** A reader that fails (returns -1) on any byte that is not the expected canonical form. */
class Cursor {
  at = 0;
  constructor(readonly b: Uint8Array) {}

  /** A one-letter fixstr key. */
  key(letter: number): boolean {
    const b = this.b;
    if (this.at + 2 > b.length || b[this.at] !== FIXSTR_1 || b[this.at + 1] !== letter) return false;
    this.at += 2;
    return true;
  }

  /** Exactly these bytes. */
  literal(bytes: readonly number[]): boolean {
    const b = this.b;
    if (this.at + bytes.length > b.length) return false;
    for (let i = 0; i < bytes.length; i++) if (b[this.at + i] !== bytes[i]) return false;
    this.at += bytes.length;
    return true;
  }

  /** A bin in its shortest header, of min..max bytes: the view, or undefined. */
  bin(min: number, max: number): Uint8Array | undefined {
    const b = this.b;
    const at = this.at;
    if (at + 2 > b.length) return undefined;
    let len: number;
    let head: number;
    if (b[at] === BIN8) {
      len = b[at + 1]!;
      head = 2;
    } else if (b[at] === BIN16) {
      if (at + 3 > b.length) return undefined;
      len = (b[at + 1]! << 8) | b[at + 2]!;
      if (len < 0x100) return undefined;
      head = 3;
    } else if (b[at] === BIN32) {
      if (at + 5 > b.length) return undefined;
      len = ((b[at + 1]! << 24) | (b[at + 2]! << 16) | (b[at + 3]! << 8) | b[at + 4]!) >>> 0;
      if (len < 0x10000) return undefined;
      head = 5;
    } else return undefined;
    if (len < min || len > max || at + head + len > b.length) return undefined;
    this.at = at + head + len;
    return b.subarray(at + head, at + head + len);
  }

  /** An unsigned integer < 2³² in its shortest form, or -1. */
  uint(): number {
    const b = this.b;
    const at = this.at;
    if (at >= b.length) return -1;
    const t = b[at]!;
    if (t < 0x80) {
      this.at = at + 1;
      return t;
    }
    if (t === UINT8 && at + 2 <= b.length && b[at + 1]! >= 0x80) {
      this.at = at + 2;
      return b[at + 1]!;
    }
    if (t === UINT16 && at + 3 <= b.length) {
      const v = (b[at + 1]! << 8) | b[at + 2]!;
      if (v < 0x100) return -1;
      this.at = at + 3;
      return v;
    }
    if (t === UINT32 && at + 5 <= b.length) {
      const v = ((b[at + 1]! << 24) | (b[at + 2]! << 16) | (b[at + 3]! << 8) | b[at + 4]!) >>> 0;
      if (v < 0x10000) return -1;
      this.at = at + 5;
      return v;
    }
    return -1;
  }

  /** An array header in its shortest form with 1..MAX_BATCH entries: the count, or -1. */
  arrayOf(): number {
    const b = this.b;
    const at = this.at;
    if (at >= b.length) return -1;
    let n = -1;
    if ((b[at]! & 0xf0) === 0x90) {
      n = b[at]! & 0x0f;
      this.at = at + 1;
    } else if (b[at] === 0xdc && at + 3 <= b.length) {
      n = (b[at + 1]! << 8) | b[at + 2]!;
      if (n < 16) return -1;
      this.at = at + 3;
    }
    return n >= 1 && n <= MAX_BATCH ? n : -1;
  }

  get done(): boolean {
    return this.at === this.b.length;
  }
}

/** `{ t, a? }` → the frame, when it is canonical. */
function outer(bytes: Uint8Array): ClientFrame | undefined {
  const c = new Cursor(bytes);
  if (bytes[0] === 0x81) {
    c.at = 1;
    if (!c.key(K_T)) return undefined;
    const t = c.bin(1, bytes.length);
    return t && c.done ? { t } : undefined;
  }
  if (bytes[0] !== 0x82) return undefined;
  c.at = 1;
  if (!c.key(K_A)) return undefined;
  // A signature (1.0) or an authenticator (1.1); which one the connection takes is checked later.
  const a = c.bin(AUTHENTICATOR_LENGTH, SIGNATURE_LENGTH);
  if (!a || (a.length !== AUTHENTICATOR_LENGTH && a.length !== SIGNATURE_LENGTH) || !c.key(K_T))
    return undefined;
  const t = c.bin(1, bytes.length);
  return t && c.done ? { t, a } : undefined;
}

/** SENDS or ACKS `{i, k, ms, q}` (protocol 1.3), when canonical. */
function batch(c: Cursor): Command | undefined {
  c.at = 1;
  if (!c.key(K_I)) return undefined;
  const i = c.uint();
  if (i < 0 || !c.key(K_K)) return undefined;
  if (c.literal(SENDS)) {
    if (!c.literal(MS)) return undefined;
    let n = c.arrayOf();
    if (n < 0) return undefined;
    const ms: [Uint8Array, Uint8Array][] = [];
    while (n-- > 0) {
      if (!c.literal(PAIR)) return undefined;
      const id = c.bin(SEND_ID_LENGTH, SEND_ID_LENGTH);
      const b = id && c.bin(0, MAX_BODY);
      if (!b) return undefined;
      ms.push([id, b]);
    }
    if (!c.key(K_Q)) return undefined;
    const q = c.bin(ID_LENGTH, ID_LENGTH);
    return q && c.done ? { k: "SENDS", i, q, ms } : undefined;
  }
  if (!c.literal(ACKS) || !c.literal(MS)) return undefined;
  let n = c.arrayOf();
  if (n < 0) return undefined;
  const ms: Uint8Array[] = [];
  while (n-- > 0) {
    const m = c.bin(ID_LENGTH, ID_LENGTH);
    if (!m) return undefined;
    ms.push(m);
  }
  if (!c.key(K_Q)) return undefined;
  const q = c.bin(ID_LENGTH, ID_LENGTH);
  return q && c.done ? { k: "ACKS", i, q, ms } : undefined;
}

/** A fixarray of two: one SENDS entry. */
const PAIR = [0x92];

/**
 * SEND `{b, i, k, n, q}` or ACK `{i, k, m, q}` (keys in bytewise order), or 1.3's SENDS and ACKS
 * `{i, k, ms, q}`, when canonical.
 */
function command(t: Uint8Array): Command | undefined {
  const c = new Cursor(t);
  if (t[0] === 0x85) {
    c.at = 1;
    if (!c.key(K_B)) return undefined;
    const b = c.bin(0, MAX_BODY);
    if (!b || !c.key(K_I)) return undefined;
    const i = c.uint();
    if (i < 0 || !c.key(K_K) || !c.literal(SEND) || !c.key(K_N)) return undefined;
    const n = c.bin(SEND_ID_LENGTH, SEND_ID_LENGTH);
    if (!n || !c.key(K_Q)) return undefined;
    const q = c.bin(ID_LENGTH, ID_LENGTH);
    return q && c.done ? { k: "SEND", i, q, n, b } : undefined;
  }
  if (t[0] === 0x84) {
    c.at = 1;
    if (!c.key(K_I)) return undefined;
    const i = c.uint();
    if (i < 0 || !c.key(K_K)) return undefined;
    // `k` is ACK (then `m`) or a 1.3 batch (then `ms`).
    if (t[c.at] !== ACK[0]) return batch(c);
    if (!c.literal(ACK) || !c.key(K_M)) return undefined;
    const m = c.bin(ID_LENGTH, ID_LENGTH);
    if (!m || !c.key(K_Q)) return undefined;
    const q = c.bin(ID_LENGTH, ID_LENGTH);
    return q && c.done ? { k: "ACK", i, q, m } : undefined;
  }
  return undefined;
}

/**
 * A client frame carrying SEND or ACK, decoded without the generic codec; undefined for anything
 * else (the caller then decodes generically and gets the same answer or the typed error).
 */
export function fastDecode(
  bytes: Uint8Array,
  maxBytes: number,
): { frame: ClientFrame; command: Command } | undefined {
  if (bytes.length === 0 || bytes.length > maxBytes) return undefined;
  const frame = outer(bytes);
  if (!frame) return undefined;
  const cmd = command(frame.t);
  return cmd ? { frame, command: cmd } : undefined;
}

// ---------------------------------------------------------------------------------------------
// Encoders

function uintBytes(n: number): number[] {
  if (n < 0x80) return [n];
  if (n < 0x100) return [UINT8, n];
  if (n < 0x10000) return [UINT16, n >>> 8, n & 0xff];
  return [UINT32, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** `{i, k: "OK"}`, as encodeServerFrame writes it. */
export function encodeOk(i: number): Uint8Array {
  return Uint8Array.from([0x82, FIXSTR_1, K_I, ...uintBytes(i), FIXSTR_1, K_K, 0xa2, 0x4f, 0x4b]);
}

/** `k: "MSG"` and the `m` key's bin8 header, between a MSG's `b` (and `i`) and its message id. */
const MSG_TAIL = Uint8Array.of(FIXSTR_1, K_K, 0xa3, 0x4d, 0x53, 0x47, FIXSTR_1, K_M, BIN8, ID_LENGTH);
/** The `q` key and its bin8 header, before the queue id that ends a MSG or MSGS. */
const Q_HEAD = Uint8Array.of(FIXSTR_1, K_Q, BIN8, ID_LENGTH);

/**
 * `{b, i?, k: "MSG", m, q}` around a server→recipient ciphertext (whole, or in the cipher's
 * output pieces), as encodeServerFrame writes it: the frame's pieces in order — its head, the
 * ciphertext pieces as they are, its tail — for a socket that writes them without joining them
 * first (host/websocket.ts `sendParts`).
 */
export function msgParts(
  q: Uint8Array,
  m: Uint8Array,
  b: Uint8Array | Uint8Array[],
  i?: number,
): Uint8Array[] {
  const pieces = b instanceof Uint8Array ? [b] : b;
  let length = 0;
  for (const p of pieces) length += p.length;
  if (!isDeliveryLength(length) || m.length !== ID_LENGTH || q.length !== ID_LENGTH)
    throw new RangeError("encodeMsg: field lengths");
  const head = Uint8Array.of(
    i === undefined ? 0x84 : 0x85,
    FIXSTR_1,
    K_B,
    BIN16,
    length >>> 8,
    length & 0xff,
  );
  const corr = i === undefined ? [] : [FIXSTR_1, K_I, ...uintBytes(i)];
  const tail = Buffer.allocUnsafe(corr.length + MSG_TAIL.length + ID_LENGTH + 4 + ID_LENGTH);
  let at = 0;
  tail.set(corr, at);
  at += corr.length;
  tail.set(MSG_TAIL, at);
  at += MSG_TAIL.length;
  tail.set(m, at);
  at += ID_LENGTH;
  tail.set(Q_HEAD, at);
  at += 4;
  tail.set(q, at);
  return [head, ...pieces, tail];
}

/** The MSG of msgParts in one buffer. */
export function encodeMsg(
  q: Uint8Array,
  m: Uint8Array,
  b: Uint8Array | Uint8Array[],
  i?: number,
): Uint8Array {
  return Buffer.concat(msgParts(q, m, b, i));
}

const RESULT_BYTES = new Map<string, number[]>();

/** `{i, k: "RES", r: [str…]}` (protocol 1.3), as encodeServerFrame writes it. */
export function encodeRes(i: number, results: readonly string[]): Uint8Array {
  if (results.length === 0 || results.length > 0xffff) throw new RangeError("encodeRes: result count");
  const out: number[] = [0x83, FIXSTR_1, K_I, ...uintBytes(i), FIXSTR_1, K_K, 0xa3, 0x52, 0x45, 0x53];
  out.push(FIXSTR_1, 0x72, ...arrayHeader(results.length));
  for (const r of results) {
    let bytes = RESULT_BYTES.get(r);
    if (!bytes) {
      // Wire codes are short ASCII (fixstr); the generic codec checks them (RES schema).
      if (r.length > 31 || !/^[A-Z_]+$/.test(r)) throw new RangeError("encodeRes: result");
      bytes = [0xa0 | r.length, ...Array.from(r, (c) => c.charCodeAt(0))];
      RESULT_BYTES.set(r, bytes);
    }
    for (const x of bytes) out.push(x);
  }
  return Uint8Array.from(out);
}

function arrayHeader(n: number): number[] {
  return n < 16 ? [0x90 | n] : [0xdc, n >>> 8, n & 0xff];
}

/**
 * `{k: "MSGS", ms: [[m, b]…], q}` (protocol 1.3) around server→recipient ciphertexts (each whole
 * or in the cipher's output pieces), as encodeServerFrame writes it.
 */
export function encodeMsgs(
  q: Uint8Array,
  items: readonly { msgId: Uint8Array; parts: Uint8Array[]; length: number }[],
): Uint8Array {
  // One delivery alone is a MSG (docs/protocol/relay.md §Batches: one form per push).
  if (q.length !== ID_LENGTH || items.length < 2 || items.length > 0xffff)
    throw new RangeError("encodeMsgs: field lengths");
  const head = [
    0x83,
    FIXSTR_1,
    K_K,
    0xa4,
    0x4d,
    0x53,
    0x47,
    0x53,
    0xa2,
    K_M,
    0x73,
    ...arrayHeader(items.length),
  ];
  let total = head.length + 4 + ID_LENGTH;
  for (const it of items) {
    if (!isDeliveryLength(it.length) || it.msgId.length !== ID_LENGTH)
      throw new RangeError("encodeMsgs: field lengths");
    total += 1 + 2 + ID_LENGTH + 3 + it.length;
  }
  const out = Buffer.allocUnsafe(total);
  out.set(head, 0);
  let at = head.length;
  for (const it of items) {
    out[at++] = 0x92;
    out[at++] = BIN8;
    out[at++] = ID_LENGTH;
    out.set(it.msgId, at);
    at += ID_LENGTH;
    // Every delivery length is 280..16408 bytes: a bin16 header.
    out[at++] = BIN16;
    out[at++] = it.length >>> 8;
    out[at++] = it.length & 0xff;
    for (const p of it.parts) {
      out.set(p, at);
      at += p.length;
    }
  }
  out.set([FIXSTR_1, K_Q, BIN8, ID_LENGTH], at);
  at += 4;
  out.set(q, at);
  return out;
}
