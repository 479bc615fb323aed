/**
 * Relay mailboxes as the chat engine uses them (docs/protocol/mailbox.md; docs/design.md, "Relay
 * mailbox"): what goes into a relay SEND body, and the queue records the engine keeps (sealed at
 * rest through `EngineStorage.saveSecret`).
 *
 * Mailbox body — every SEND body has its transport's size, so SENDs look alike on the wire (the
 * relay pads what it delivers; this pads what it receives): 16382 bytes into a relay queue
 * (MAX_BODY), 16088 into an SMP queue (SMP_MAX_MESSAGE_LENGTH, the largest SEND an SMP server
 * takes; docs/protocol/mailbox.md §2):
 *
 *   body := type(1) ‖ part ‖ 0x80 ‖ 0x00 …            (ISO/IEC 7816-4 padding to the body size)
 *   type 0x01  RATCHET      one whole Double Ratchet message (the RATCHET frame's body)
 *   type 0x02  RATCHET_MORE a piece of one; more pieces follow on the same queue
 *   type 0x03  RATCHET_END  the last piece
 *   type 0x11  INTRO        one PQXDH initial message (core/prekey), first contact only
 *
 * Pieces need no sequence numbers: one queue has one sender, whose SENDs are stored in order and
 * delivered in order. The receiver acknowledges the pieces only once the whole message is
 * processed, so a crash in between redelivers all of them.
 *
 * Queue records (canonical MessagePack, v = 1):
 *   rx   (ours, per contact)  { v, u: relay URL, r: rid(24), s: sid(24), a: recipient auth secret(32),
 *                              k: rcv key(32), sk: sender auth secret(32) handed to the contact }
 *   tx   (theirs, per contact){ v, u, s: sid(24), k: sender auth secret(32) }
 *   addr (ours, one)          { v, u, r, s, a, k } — the contact-address queue of the contact link
 *   rx-old (ours, per contact) an rx record: the queue on a dead relay we moved off, read until
 *                              retired (docs/protocol/mailbox.md §1, "Moving off a dead relay")
 *   health (ours, one)        { v, d: [[relay URL, ms] …] sorted by URL } — since when each of our
 *                              relays has been unreachable without a break (relay-health.ts)
 */
import * as v from "valibot";
import { equalBytes } from "../../../core/bytes.ts";
import {
  bytesSchema,
  decodeVersioned,
  encodeCanonical,
  requireCanonical,
  uintSchema,
} from "../../../core/codec/codec.ts";
import { err, ok, type Result } from "../../../core/errors.ts";
import type { RecipientQueue, SenderQueue } from "../../../core/relay/client.ts";
import { MAX_BODY } from "../../../core/relay/protocol.ts";
import { announcesFlag, type Extensions } from "../../../core/session/index.ts";
import { formatSmpServerAddress, parseSmpServerAddress, withoutPassword } from "../../../core/smp/address.ts";
import { SMP_MAX_MESSAGE_LENGTH } from "../../../core/smp/transport.ts";

export const MAILBOX = { RATCHET: 0x01, RATCHET_MORE: 0x02, RATCHET_END: 0x03, INTRO: 0x11 } as const;
/**
 * The body size of each transport, one constant each (docs/protocol/mailbox.md §2): a Loft
 * relay's largest SEND body, and SMP's largest message (docs/protocol/smp.md, "Commands").
 */
export const MAILBOX_BODY = { relay: MAX_BODY, smp: SMP_MAX_MESSAGE_LENGTH } as const;
/** The largest part one relay body carries: type byte and padding marker take two bytes. */
export const MAX_PART = MAX_BODY - 2;

/** True for a mailbox on an SMP server (its `u` is an `smp://` server address). */
export function isSmpMailbox(url: string): boolean {
  return url.startsWith("smp://");
}

/** The SEND body size of the mailbox at `url`. */
export function mailboxBodySize(url: string): number {
  return isSmpMailbox(url) ? MAILBOX_BODY.smp : MAILBOX_BODY.relay;
}

/** How records and announcements name a mailbox server: an SMP address loses its password. */
export function mailboxName(url: string): string {
  const smp = isSmpMailbox(url) ? parseSmpServerAddress(url) : undefined;
  return smp ? formatSmpServerAddress(withoutPassword(smp)) : url;
}

/**
 * What an `mbox` or `intro` announcement's `u` may be: a relay's `ws:`/`wss:` URL, or an SMP
 * server address without a password (docs/protocol/mailbox.md §1).
 */
export function isMailboxUrl(u: string): boolean {
  if (/^wss?:\/\/\S+$/.test(u)) return true;
  const smp = parseSmpServerAddress(u);
  return smp !== undefined && smp.password === undefined;
}
export const QUEUE_ID_BYTES = 24;
const MARKER = 0x80;
const RECORD_VERSION = 1;

export type MailboxItem =
  | { type: "ratchet"; part: Uint8Array; last: boolean }
  | { type: "intro"; message: Uint8Array };

function body(type: number, part: Uint8Array, size: number): Uint8Array {
  if (part.length > size - 2) throw new RangeError(`mailbox part of ${part.length} bytes`);
  const out = new Uint8Array(size);
  out[0] = type;
  out.set(part, 1);
  out[1 + part.length] = MARKER;
  return out;
}

/**
 * The SEND bodies that carry one ratchet message (one, or several pieces) into a mailbox whose
 * bodies are `size` bytes (`mailboxBodySize`; a relay's by default).
 */
export function ratchetBodies(message: Uint8Array, size: number = MAILBOX_BODY.relay): Uint8Array[] {
  const maxPart = size - 2;
  if (message.length <= maxPart) return [body(MAILBOX.RATCHET, message, size)];
  const out: Uint8Array[] = [];
  for (let at = 0; at < message.length; at += maxPart) {
    const last = at + maxPart >= message.length;
    const part = message.subarray(at, at + maxPart);
    out.push(body(last ? MAILBOX.RATCHET_END : MAILBOX.RATCHET_MORE, part, size));
  }
  return out;
}

/** The SEND body of a first-contact initial message (a relay's contact address); it must fit one body. */
export function introBody(initialMessage: Uint8Array): Uint8Array {
  return body(MAILBOX.INTRO, initialMessage, MAILBOX_BODY.relay);
}

/** Decode a delivered mailbox body of `size` bytes (after the relay or SMP layer is removed). */
export function decodeMailboxBody(bytes: Uint8Array, size: number = MAILBOX_BODY.relay): Result<MailboxItem> {
  if (bytes.length !== size) return err("LOFT_ERR_PADDING", `mailbox body of ${bytes.length} bytes`);
  let i = bytes.length - 1;
  while (i > 0 && bytes[i] === 0) i--;
  if (i < 1 || bytes[i] !== MARKER) return err("LOFT_ERR_PADDING", "no 0x80 padding marker");
  const part = bytes.slice(1, i);
  switch (bytes[0]) {
    case MAILBOX.RATCHET:
      return ok({ type: "ratchet", part, last: true });
    case MAILBOX.RATCHET_MORE:
      return ok({ type: "ratchet", part, last: false });
    case MAILBOX.RATCHET_END:
      return ok({ type: "ratchet", part, last: true });
    case MAILBOX.INTRO:
      return ok({ type: "intro", message: part });
    default:
      return err("LOFT_ERR_UNKNOWN_TYPE", `mailbox body type ${bytes[0]}`);
  }
}

// ---- queue records ----------------------------------------------------------------------------

/** Our receiving queue for one contact, and the sender key we handed that contact. */
export interface RxQueue {
  url: string;
  queue: RecipientQueue;
  senderSecret: Uint8Array;
  /**
   * Its order among our queues for the same peer (ms since the epoch when made, above the queue it
   * replaced): announced with it, so that the peer can tell an older announcement read late from
   * a newer one (docs/protocol/rooms.md §9, "The order of announcements"). Absent in a record
   * from before it.
   */
  n?: number;
}

/** The contact's queue for us: where our messages to them go. */
export interface TxQueue {
  url: string;
  queue: SenderQueue & { senderAuthSecret: Uint8Array };
  /** The order the peer announced it with (`RxQueue.n`), when it did. */
  n?: number;
}

/**
 * Whether two addresses name the same queue: the same relay and sender id. A new sender key `k`
 * for the same queue is that queue re-keyed, not a move: what we left in it is still read there,
 * so nothing goes again (docs/protocol/mailbox.md §1, "Moving off a dead relay"). The one spelling
 * of "the same queue" for contacts (queues.ts) and rooms (rooms/mailbox.ts).
 */
export const sameQueue = (
  a: { url: string; queue: { senderId: Uint8Array } },
  b: { url: string; queue: { senderId: Uint8Array } },
): boolean => a.url === b.url && equalBytes(a.queue.senderId, b.queue.senderId);

/**
 * Whether an announcement (`mbox`, `room.mbox`) that names `next` replaces the queue we held
 * (`held`), so that what we left there without a receipt goes again into `next`: another queue
 * than the one held, or any queue after the held one was dropped on an `AUTH` (`lost`: the relay
 * lost it, and whatever we left there with it). A first address replaces nothing.
 */
export const replacesQueue = (held: TxQueue | undefined, lost: boolean, next: TxQueue): boolean =>
  lost || (held !== undefined && !sameQueue(held, next));

/**
 * Whether an announcement says nothing new: the address we hold, its key, and its order when it
 * has one (each session announces again; nothing is stored then).
 */
export const sameAnnounce = (held: TxQueue | undefined, next: TxQueue): boolean =>
  held !== undefined &&
  sameQueue(held, next) &&
  equalBytes(held.queue.senderAuthSecret, next.queue.senderAuthSecret) &&
  (next.n === undefined || next.n === held.n);

/**
 * Handshake extension (docs/protocol/chat.md §2; rooms.md §9): `01` says this side reads `n` in
 * `mbox` and `room.mbox`. An app from before `n` refuses an announcement that carries it (its
 * `mbox` has a strict key set, its room frames at most 4 keys): the announcement is lost and with
 * it every deposit to the new queue. Exactly that one byte counts. Inside the authenticated
 * handshake payload, like `chat.bundle`.
 */
export const MBOX_ORDER_EXTENSION = "mbox.order";

/** The `mbox.order` extension every engine and room session sends. */
export function mboxOrderExtension(): Record<string, Uint8Array> {
  return { [MBOX_ORDER_EXTENSION]: Uint8Array.of(1) };
}

/** Whether the peer's handshake said it reads an announcement's `n` (exactly `01`). */
export const peerReadsOrder = (remoteExtensions: Extensions): boolean =>
  announcesFlag(remoteExtensions, MBOX_ORDER_EXTENSION);

/**
 * Whether an announcement to the peer may carry `n`: on a live session, when its handshake listed
 * `mbox.order`; through its mailbox (no handshake), when the queue it goes into was announced with
 * an `n` itself (`tx.n`) — the app that reads that queue made it, so it reads `n`.
 */
export const readsOrder = (tx: TxQueue | undefined, live?: { remoteExtensions: Extensions }): boolean =>
  live ? peerReadsOrder(live.remoteExtensions) : tx?.n !== undefined;

/**
 * Our announcement of `rx` (`mbox`, `room.mbox`: docs/protocol/mailbox.md §1), keys copied; `n`
 * only to a peer that reads it (`readsOrder`).
 */
export const announcementOf = (rx: RxQueue, withOrder: boolean) => ({
  u: rx.url,
  s: rx.queue.senderId.slice(),
  k: rx.senderSecret.slice(),
  ...(rx.n === undefined || !withOrder ? {} : { n: rx.n }),
});

/** `n` for a new queue of ours that follows `before` (the one it replaces, or the last one we had). */
export const nextQueueOrder = (now: number, before?: number): number =>
  before === undefined ? now : Math.max(now, before + 1);

/** A peer's announcement (`mbox`, `room.mbox`) as the queue we deposit into, keys copied. */
export const txOfAnnouncement = (m: { u: string; s: Uint8Array; k: Uint8Array; n?: number }): TxQueue => ({
  url: m.u,
  queue: { senderId: m.s.slice(), senderAuthSecret: m.k.slice() },
  ...(m.n === undefined ? {} : { n: m.n }),
});

/**
 * An older queue of the peer's, announced before the one we hold and read after it (one came live,
 * the other from our mailbox; or two mailbox reads): the peer retired it, and a deposit there is
 * refused (AUTH) — nothing would go until its next session (mailbox.md §1, rooms.md §9, "The order
 * of announcements"). One without `n` (an app from before it) is taken, as it always was. One over a
 * live session is taken whatever its `n`: it is the peer's queue now, and its order the one kept —
 * a peer restored onto a device whose clock is behind makes queues below the `n` we hold, and
 * refused, it would get nothing in its mailbox until that clock caught up. `seen`: the `n` of the
 * last announcement taken.
 */
export const announcedLate = (
  from: "live" | "mailbox",
  n: number | undefined,
  seen: number | undefined,
): boolean => from === "mailbox" && n !== undefined && seen !== undefined && n < seen;

/**
 * `n` for a queue of ours made before it, the first time it is announced to a peer that reads it:
 * the time now (it is our newest for that peer), stored first (`save`: the sealed `rx` record). The
 * peer then holds it with an `n`, so what it tells us through our mailbox carries one (`readsOrder`)
 * and an older queue of its read late is ignored — without it, no pair made before `n` would use
 * the order until its queue moved. A failed write is logged and leaves the queue without.
 */
export async function stampOrder(
  rx: RxQueue,
  save: (sealed: Uint8Array) => Promise<void>,
  log: (line: string) => void,
): Promise<void> {
  const n = Date.now();
  try {
    await save(encodeRx({ ...rx, n }));
  } catch (e) {
    log(`not stored: ${(e as Error).message}`);
    return;
  }
  rx.n ??= n;
}

/** Our contact-address queue: first-contact messages and the prekey bundle live there. */
export interface AddressQueue {
  url: string;
  queue: RecipientQueue;
}

const url = v.pipe(v.string(), v.minLength(1), v.maxLength(256));
const qid = bytesSchema(QUEUE_ID_BYTES);
const key32 = bytesSchema(32);
const LIMITS = { maxBytes: 1024, maxStrLength: 256, maxMapLength: 8, maxArrayLength: 0 };

const rxSchema = v.strictObject({
  v: uintSchema(0xffff),
  u: url,
  r: qid,
  s: qid,
  a: key32,
  k: key32,
  sk: key32,
  n: v.optional(uintSchema()),
});
const txSchema = v.strictObject({
  v: uintSchema(0xffff),
  u: url,
  s: qid,
  k: key32,
  n: v.optional(uintSchema()),
});
const addrSchema = v.strictObject({ v: uintSchema(0xffff), u: url, r: qid, s: qid, a: key32, k: key32 });

/** Relays in the health record: our relays (Settings) and any we still hold an old queue on. */
export const MAX_HEALTH_RELAYS = 64;
const healthSchema = v.strictObject({
  v: uintSchema(0xffff),
  d: v.pipe(
    v.array(v.strictTuple([url, uintSchema()])),
    v.maxLength(MAX_HEALTH_RELAYS),
    v.check((d) => d.every((e, i) => i === 0 || d[i - 1]![0] < e[0]), "relays not sorted, or repeated"),
  ),
});

/**
 * Since when (ms since the epoch) each relay has been unreachable without a break; a relay that
 * answers is not in it (relay-health.ts; docs/protocol/mailbox.md §1, "Moving off a dead relay").
 */
export function encodeRelayHealth(downSince: ReadonlyMap<string, number>): Uint8Array {
  const d = [...downSince].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return encodeCanonical({ v: RECORD_VERSION, d });
}

export function decodeRelayHealth(bytes: Uint8Array): Result<Map<string, number>> {
  const r = requireCanonical(
    decodeVersioned(
      bytes,
      RECORD_VERSION,
      healthSchema,
      { maxBytes: 32 * 1024, maxStrLength: 256, maxMapLength: 2, maxArrayLength: MAX_HEALTH_RELAYS },
      "relay health record",
    ),
    bytes,
    "relay health record",
  );
  return r.ok ? ok(new Map(r.value.d)) : r;
}

function decodeRecord<S extends v.GenericSchema>(bytes: Uint8Array, schema: S): Result<v.InferOutput<S>> {
  return requireCanonical(
    decodeVersioned(bytes, RECORD_VERSION, schema, LIMITS, "mailbox record"),
    bytes,
    "mailbox record",
  );
}

/** The record fields of a receive queue, shared by our per-contact queues and the contact address. */
function recipientFields(q: RecipientQueue) {
  return { r: q.recipientId, s: q.senderId, a: q.recipientAuthSecret, k: q.rcvKey };
}

function recipientQueue(x: { r: Uint8Array; s: Uint8Array; a: Uint8Array; k: Uint8Array }): RecipientQueue {
  return {
    recipientId: x.r.slice(),
    senderId: x.s.slice(),
    recipientAuthSecret: x.a.slice(),
    rcvKey: x.k.slice(),
  };
}

export function encodeRx(rx: RxQueue): Uint8Array {
  return encodeCanonical({
    v: RECORD_VERSION,
    u: rx.url,
    ...recipientFields(rx.queue),
    sk: rx.senderSecret,
    ...(rx.n === undefined ? {} : { n: rx.n }),
  });
}

export function decodeRx(bytes: Uint8Array): Result<RxQueue> {
  const r = decodeRecord(bytes, rxSchema);
  if (!r.ok) return r;
  return ok({
    url: r.value.u,
    queue: recipientQueue(r.value),
    senderSecret: r.value.sk.slice(),
    ...(r.value.n === undefined ? {} : { n: r.value.n }),
  });
}

export function encodeTx(tx: TxQueue): Uint8Array {
  return encodeCanonical({
    v: RECORD_VERSION,
    u: tx.url,
    s: tx.queue.senderId,
    k: tx.queue.senderAuthSecret,
    ...(tx.n === undefined ? {} : { n: tx.n }),
  });
}

export function decodeTx(bytes: Uint8Array): Result<TxQueue> {
  const r = decodeRecord(bytes, txSchema);
  if (!r.ok) return r;
  return ok({
    url: r.value.u,
    queue: { senderId: r.value.s.slice(), senderAuthSecret: r.value.k.slice() },
    ...(r.value.n === undefined ? {} : { n: r.value.n }),
  });
}

export function encodeAddress(a: AddressQueue): Uint8Array {
  return encodeCanonical({ v: RECORD_VERSION, u: a.url, ...recipientFields(a.queue) });
}

export function decodeAddress(bytes: Uint8Array): Result<AddressQueue> {
  const r = decodeRecord(bytes, addrSchema);
  if (!r.ok) return r;
  return ok({ url: r.value.u, queue: recipientQueue(r.value) });
}

/** Secret names in `EngineStorage` (sealed at rest by storage). */
export const SECRET = {
  rx: (contactId: string) => `relay/rx/${contactId}`,
  tx: (contactId: string) => `relay/tx/${contactId}`,
  address: "relay/address",
  prekeys: "prekeys/store",
  /** First contact we started (initiator), until the first reply. */
  intro: (contactId: string) => `relay/intro/${contactId}`,
  /** First contact we accepted (responder): the initiator's base key, to route repeats. */
  base: (contactId: string) => `relay/base/${contactId}`,
  /** Our former receiving queue for the contact, on a dead relay (mailbox.md §1, "Moving off a dead relay"). */
  rxOld: (contactId: string) => `relay/rx-old/${contactId}`,
  /** Since when each of our relays has been unreachable (relay-health.ts). */
  health: "relay/health",
} as const;

/** Reassembles the pieces of one queue's messages (pieces of one message are contiguous). */
export class PieceBuffer {
  #parts: Uint8Array[] = [];
  #ids: Uint8Array[] = [];
  #size = 0;
  constructor(readonly maxBytes: number) {}

  /**
   * Add one piece with the relay message id that carried it. Returns the whole message and the
   * ids to acknowledge once the last piece is in; `undefined` while more are expected; an error
   * (with the ids to drop) when the message grows beyond the limit.
   */
  add(
    msgId: Uint8Array,
    part: Uint8Array,
    last: boolean,
  ): { message?: Uint8Array; ids: Uint8Array[]; tooLarge?: boolean } | undefined {
    this.#ids.push(msgId);
    this.#size += part.length;
    if (this.#size > this.maxBytes) {
      const ids = this.#ids;
      this.reset();
      return { ids, tooLarge: true };
    }
    this.#parts.push(part);
    if (!last) return undefined;
    const whole = new Uint8Array(this.#size);
    let o = 0;
    for (const p of this.#parts) {
      whole.set(p, o);
      o += p.length;
    }
    const ids = this.#ids;
    this.reset();
    return { message: whole, ids };
  }

  /** The relay message id of the first piece collected (not acknowledged yet), if any. */
  first(): Uint8Array | undefined {
    return this.#ids[0];
  }

  reset(): void {
    this.#parts = [];
    this.#ids = [];
    this.#size = 0;
  }
}
