/**
 * Decoders of what the Redis relay store reads back (relay-ws/store/redis.ts): script replies and
 * the instances' pub/sub messages. Redis is shared by every instance and reachable by whoever runs
 * it, so what comes back is untrusted input like a frame from the network: every reply is checked
 * for shape, lengths and digits, and anything else is `undefined` (the caller treats the record as
 * missing or damaged, never crashes). Fuzzed in redis-codec.test.ts.
 */
import { KEY_RECORD_LENGTH } from "./at-rest.ts";

/** Queue ids are 24 bytes (core/relay/protocol.ts ID_LENGTH), in key names as 48 hex digits. */
const RID_HEX = /^[0-9a-f]{48}$/;
/** A subscription token: 16 hex digits. */
const TOKEN_HEX = /^[0-9a-f]{16}$/;
const DIGITS = /^\d{1,15}$/;
/** msgId(24) ‖ u64 timestamp ‖ u64 expiresAt. */
export const MSG_HEADER_LENGTH = 40;
/** iv(12) ‖ ciphertext ‖ tag(16): the smallest sealed blob holds one byte. */
const MIN_SEALED = 12 + 1 + 16;
/** A sealed server→recipient key: iv ‖ 32 bytes ‖ tag. */
const SEALED_RCV_LENGTH = 12 + 32 + 16;

const isBuf = (v: unknown): v is Buffer => Buffer.isBuffer(v);
const text = (v: unknown): string | undefined => (isBuf(v) ? v.toString("latin1") : undefined);
const count = (v: unknown): number | undefined => {
  const t = typeof v === "number" ? String(v) : text(v);
  return t !== undefined && DIGITS.test(t) ? Number(t) : undefined;
};

export interface QueueReply {
  ridHex: string;
  sidHex: string;
  recipientKey: Buffer;
  /** The server→recipient key, sealed at rest. */
  sealedRcv: Buffer;
  senderKey: Buffer | undefined;
  suspended: boolean;
  /** The key record wrapping the data key of `sealedRcv`. */
  rcvKeyRecord: Buffer;
}

/** byRecipient / bySender: {rid, sid, rk, rcv, sk|nil, susp|nil, key record}. */
export function decodeQueueReply(reply: unknown): QueueReply | undefined {
  if (reply === null || reply === undefined) return undefined;
  if (!Array.isArray(reply) || reply.length !== 7) return undefined;
  const [rid, sid, rk, rcv, sk, susp, kr] = reply as unknown[];
  const ridHex = text(rid);
  const sidHex = text(sid);
  if (!ridHex || !RID_HEX.test(ridHex) || !sidHex || !RID_HEX.test(sidHex)) return undefined;
  // Public keys: raw Ed25519 (32), or an SMP client's DER-encoded Ed25519 / Ed448 / X25519 key.
  if (!isBuf(rk) || rk.length === 0 || rk.length > 256) return undefined;
  if (!isBuf(rcv) || rcv.length !== SEALED_RCV_LENGTH) return undefined;
  if (sk !== null && (!isBuf(sk) || sk.length === 0 || sk.length > 256)) return undefined;
  if (susp !== null && text(susp) !== "1") return undefined;
  if (!isBuf(kr) || kr.length !== KEY_RECORD_LENGTH) return undefined;
  return {
    ridHex,
    sidHex,
    recipientKey: rk,
    sealedRcv: rcv,
    senderKey: sk === null ? undefined : (sk as Buffer),
    suspended: susp !== null,
    rcvKeyRecord: kr,
  };
}

export interface NextReply {
  seq: number;
  msgId: Buffer;
  timestamp: number;
  expiresAt: number;
  deliveries: number;
  /** The sealed block and its key record, when they came whole (else read them separately). */
  sealed: Buffer | undefined;
  keyRecord: Buffer | undefined;
}

/** One message of a next reply: {seq, record (header ‖ sealed), deliveries, key record}. */
export function decodeNextReply(reply: unknown): NextReply | undefined | "damaged" {
  if (reply === null || reply === undefined) return undefined;
  if (!Array.isArray(reply) || reply.length !== 4) return "damaged";
  const [s, rec, d, kr] = reply as unknown[];
  const seq = count(s);
  const deliveries = count(d);
  if (seq === undefined || deliveries === undefined || !isBuf(rec) || rec.length < MSG_HEADER_LENGTH)
    return "damaged";
  const timestamp = rec.readBigUInt64BE(24);
  const expiresAt = rec.readBigUInt64BE(32);
  if (timestamp > BigInt(Number.MAX_SAFE_INTEGER) || expiresAt > BigInt(Number.MAX_SAFE_INTEGER))
    return "damaged";
  const whole = rec.length >= MSG_HEADER_LENGTH + MIN_SEALED && isBuf(kr) && kr.length === KEY_RECORD_LENGTH;
  return {
    seq,
    msgId: Buffer.from(rec.subarray(0, 24)),
    timestamp: Number(timestamp),
    expiresAt: Number(expiresAt),
    deliveries,
    sealed: whole ? rec.subarray(MSG_HEADER_LENGTH) : undefined,
    keyRecord: whole ? (kr as Buffer) : undefined,
  };
}

/**
 * The whole next reply: messages in strictly increasing seq order, or "damaged" (one bad entry,
 * a count that is not a multiple of four, seqs out of order) — never a partial list.
 */
export function decodeNextBatch(reply: unknown): NextReply[] | "damaged" {
  if (reply === null || reply === undefined) return [];
  if (!Array.isArray(reply) || reply.length % 4 !== 0 || reply.length > 4 * 1024) return "damaged";
  const out: NextReply[] = [];
  for (let i = 0; i < reply.length; i += 4) {
    const m = decodeNextReply(reply.slice(i, i + 4));
    if (m === undefined || m === "damaged") return "damaged";
    if (out.length > 0 && m.seq <= out[out.length - 1]!.seq) return "damaged";
    out.push(m);
  }
  return out;
}

/** read: nil | {record (header ‖ sealed), key record}. */
export function decodeReadReply(
  reply: unknown,
): { msgId: Buffer; sealed: Buffer; keyRecord: Buffer } | undefined {
  if (!Array.isArray(reply) || reply.length !== 2) return undefined;
  const [rec, kr] = reply as unknown[];
  if (!isBuf(rec) || rec.length < MSG_HEADER_LENGTH + MIN_SEALED) return undefined;
  if (!isBuf(kr) || kr.length !== KEY_RECORD_LENGTH) return undefined;
  return { msgId: rec.subarray(0, 24), sealed: rec.subarray(MSG_HEADER_LENGTH), keyRecord: kr };
}

export interface TakeReply {
  bundle: Buffer;
  bundleKeyRecord: Buffer;
  oneTime?: { idHex: string; sealed: Buffer; keyRecord: Buffer } | undefined;
}

/** takePrekeys: nil | {bundle, key record} | {bundle, key record, otk id, otk, otk key record}. */
export function decodeTakeReply(reply: unknown): TakeReply | undefined {
  if (!Array.isArray(reply) || (reply.length !== 2 && reply.length !== 5)) return undefined;
  const [b, bkr, id, o, okr] = reply as unknown[];
  if (!isBuf(b) || b.length < MIN_SEALED || !isBuf(bkr) || bkr.length !== KEY_RECORD_LENGTH) return undefined;
  if (reply.length === 2) return { bundle: b, bundleKeyRecord: bkr };
  const idHex = text(id);
  // A one-time prekey whose record is gone or damaged was still taken off the list: the bundle alone.
  if (
    !idHex ||
    !/^[0-9a-f]{32}$/.test(idHex) ||
    !isBuf(o) ||
    o.length < MIN_SEALED ||
    !isBuf(okr) ||
    okr.length !== KEY_RECORD_LENGTH
  )
    return { bundle: b, bundleKeyRecord: bkr };
  return { bundle: b, bundleKeyRecord: bkr, oneTime: { idHex, sealed: o, keyRecord: okr } };
}

/** A list of counters ({n, n, …}, each a number or digits); undefined if any is not one. */
export function decodeCounts(reply: unknown, length: number): number[] | undefined {
  if (!Array.isArray(reply) || reply.length !== length) return undefined;
  const out: number[] = [];
  for (const v of reply as unknown[]) {
    // Counters go negative only if something else wrote them: read as 0.
    const t = typeof v === "number" ? String(v) : text(v);
    if (t !== undefined && /^-\d{1,15}$/.test(t)) {
      out.push(0);
      continue;
    }
    const n = count(v);
    if (n === undefined) return undefined;
    out.push(n);
  }
  return out;
}

/** A keyring reply: {slot|nil, generation}. */
export function decodeKeyringReply(
  reply: unknown,
): { slot: Buffer | undefined; generation: number } | undefined {
  if (!Array.isArray(reply) || reply.length !== 2) return undefined;
  const [slot, gen] = reply as unknown[];
  const generation = count(gen);
  if (generation === undefined) return undefined;
  if (slot !== null && !isBuf(slot)) return undefined;
  return { slot: slot === null ? undefined : (slot as Buffer), generation };
}

export interface EpochRef {
  /** "<rid hex>|<field>" */
  ref: string;
  ridHex: string;
  field: string;
  record: Buffer;
  /** The message id, for a message's key record (its AAD names it); else empty. */
  msgId: Buffer;
}

/** epochRefs: {cursor, ref, record, msgId, …}. Refs are "<rid hex>|<field>"; malformed ones are skipped. */
export function decodeEpochRefs(reply: unknown): { cursor: string; refs: EpochRef[] } | undefined {
  if (!Array.isArray(reply) || reply.length % 3 !== 1) return undefined;
  const cursor = text(reply[0]);
  if (cursor === undefined || !DIGITS.test(cursor)) return undefined;
  const refs: EpochRef[] = [];
  for (let i = 1; i < reply.length; i += 3) {
    const ref = text(reply[i]);
    const record = reply[i + 1] as unknown;
    const msgId = reply[i + 2] as unknown;
    const m = ref ? /^([0-9a-f]{48})\|(q|b|m\d{1,15}|o[0-9a-f]{32})$/.exec(ref) : null;
    if (!m || !isBuf(record) || !isBuf(msgId)) continue;
    if (m[2]!.startsWith("m") ? msgId.length !== 24 : msgId.length !== 0) continue;
    refs.push({ ref: ref!, ridHex: m[1]!, field: m[2]!, record, msgId });
  }
  return { cursor, refs };
}

/** What one instance tells another on its channel. */
export type HubMessage = { kind: "append"; ridHex: string } | { kind: "end"; ridHex: string; token: string };

/** 'a' ‖ rid hex (a message for a queue subscribed here) or 'e' ‖ rid hex ‖ token (end it). */
export function decodeHubMessage(raw: Uint8Array | string): HubMessage | undefined {
  const t = typeof raw === "string" ? raw : Buffer.from(raw).toString("latin1");
  if (t.length === 49 && t[0] === "a") {
    const ridHex = t.slice(1);
    return RID_HEX.test(ridHex) ? { kind: "append", ridHex } : undefined;
  }
  if (t.length === 65 && t[0] === "e") {
    const ridHex = t.slice(1, 49);
    const token = t.slice(49);
    return RID_HEX.test(ridHex) && TOKEN_HEX.test(token) ? { kind: "end", ridHex, token } : undefined;
  }
  return undefined;
}

export const isRidHex = (s: string): boolean => RID_HEX.test(s);
export const isTokenHex = (s: string): boolean => TOKEN_HEX.test(s);
