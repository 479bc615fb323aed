/**
 * What every engine module shares (engine.ts): the per-contact `Peer` record, the `EngineContext`
 * state object, events (`emit`, service status, message states; docs/protocol/chat.md §7), the
 * per-contact task chain that serializes ratchet use (chat.md §4) and the engine-wide one for the
 * prekey store. A contact's presence and timers are set only by its link controller
 * (link/controller.ts; docs/design.md, "The link controller"). The refusal rules for Rejected
 * contacts, pending identity changes and contact requests are in outgoing.ts (`refusalFor`).
 */

import { fromHex } from "../../../core/bytes.ts";
import { nobleCrypto } from "../../../core/crypto/noble.ts";
import type { CryptoProvider } from "../../../core/crypto/provider.ts";
import type { SenderQueue } from "../../../core/relay/client.ts";
import type { Session } from "../../../core/session/index.ts";
import type { SignalingClient } from "../../../core/signaling/client.ts";
import type {
  ContactId,
  ContactRecord,
  EngineEvent,
  EngineListener,
  EngineStartOptions,
  EngineStorage,
  IceServerConfig,
  LinkPath,
  MessageId,
  MessageState,
  Presence,
  ServiceStatus,
  StoredMessage,
} from "./api.ts";
import type { CallSignal } from "./calls/wire.ts";
import type { EngineConfig } from "./config.ts";
import type { EngineCloseReason } from "./errors.ts";
import type { FileAppMessage } from "./files/wire.ts";
import { type AddressQueue, PieceBuffer, type RxQueue, type TxQueue } from "./mailbox.ts";
import { refusalFor } from "./outgoing.ts";
import {
  ADDRESS_REF,
  type AddressRef,
  decodeAddressRef,
  type IntroState,
  type PrekeyState,
} from "./prekeys.ts";
import type { ChatRatchet } from "./ratchet-store.ts";
import { LinkTimers } from "./timers.ts";
import type { BulkLane, DialedLink, LiveTransport, RelayConnections } from "./transport.ts";

export interface Live {
  session: Session;
  path: LinkPath;
  lastInbound: number;
  /** Outgoing message ids sent on this session (resent on the next one until receipted). */
  sent: Set<MessageId>;
  /** Our mailbox for the peer was announced on this session. */
  announced: boolean;
  /**
   * The peer cannot send until our first ratchet message arrives, and the outbox is to carry it
   * instead of a `sync` (link/controller.ts `#runSession`); cleared by any ratchet message sent.
   */
  syncOwed?: boolean;
  /** A heartbeat PING is being sent (session.ts `heartbeat`): the next tick sends none. */
  pinging: boolean;
  /**
   * When the previous heartbeat tick ran (session.ts `heartbeat`): a tick far later says the loop
   * stalled.
   */
  tickAt: number;
  /**
   * When a stalled tick last spared the session instead of closing it (session.ts `heartbeat`):
   * one grace per silence, so a peer that stays silent is still closed at the next tick.
   */
  sparedAt?: number;
  /**
   * The session left the link state, its close applied (link/controller.ts `#retire`): set once,
   * by our own close or by its close event, whichever came first.
   */
  retired?: boolean;
  /** Waits while the link's send buffer is full (bulk senders: files/transfers.ts). */
  drain?: () => Promise<void>;
  /**
   * The link's bulk lane, claimed for this session (direct links only): file chunks go on it
   * instead of inside the session once the peer reads it (docs/protocol/files.md §2).
   */
  bulk?: BulkLane;
}

export interface Attempt {
  link: DialedLink;
  direction: "out" | "in";
  path: LinkPath;
  startedAt: number;
}

/** File transfers (files/transfers.ts), reached by the link controller and the messages step. */
export interface FileLane {
  /** A `file.*` application message from the contact (inside its serial chain). */
  onMessage(peer: Peer, message: FileAppMessage): Promise<void>;
  /** A session frame of the files range (0x10–0x17) from the live session, in order. */
  onFrame(peer: Peer, live: Live, bytes: Uint8Array): Promise<void>;
  /** A frame from the live session's bulk lane, in order (docs/protocol/files.md §2). */
  onBulk(peer: Peer, live: Live, bytes: Uint8Array): Promise<void>;
  /** A new live session with the contact: held messages go, transfers resume. */
  sessionUp(peer: Peer, live: Live): void;
}

/** Ciphertext of one outgoing message on its way into the contact's mailbox (kept for retries). */
export interface Deposit {
  messageId: MessageId;
  /** The contact's mailbox (`tx`) or, for a first contact, their contact-address queue (`intro`). */
  route: "tx" | "intro";
  target: { url: string; queue: SenderQueue };
  bodies: { body: Uint8Array; sendId: Uint8Array }[];
  next: number;
}

export interface Peer {
  readonly id: ContactId;
  readonly key: Uint8Array;
  name: string;
  presence: Presence;
  /** What signaling last said. */
  online: boolean;
  /** `disconnect()` was called: no dialing until `connect()` or an incoming connection. */
  manualOff: boolean;
  /** Rejected, or an identity change awaits the user: never dialed, never accepted. */
  blocked: boolean;
  /** Rejected by the user: not even watched for presence. */
  rejected: boolean;
  live?: Live;
  attempt?: Attempt;
  ratchet?: ChatRatchet;
  /** Every timer of this contact (retry, mailbox, receipt, upgrade, heartbeat): set only by its link controller. */
  readonly timers: LinkTimers;
  failures: number;
  /** Whether the contact answers a Noise suite offer (noise-suites.ts): undefined, not known yet (offered). */
  answersSuiteOffers?: boolean;
  /** Serializes every ratchet operation and the storage writes that go with it. */
  queue: Promise<unknown>;
  flushing: boolean;
  flushAgain: boolean;
  /** Our receiving queue for this contact (created on our relay, announced to the contact). */
  rx?: RxQueue;
  rxCreating?: Promise<RxQueue | undefined>;
  /**
   * Our former receiving queue for this contact, on a relay we moved off because it was dead
   * (queues.ts `moveRx`; docs/protocol/mailbox.md §1, "Moving off a dead relay"): still read
   * until retired.
   */
  rxOld?: RxQueue;
  /** The contact's queue for us (from their announcement). */
  tx?: TxQueue;
  /** From this time on, the outbox may go to the contact's mailbox (Infinity: not now). */
  mailboxAt: number;
  deposit?: Deposit;
  relayFailures: number;
  pieces: PieceBuffer;
  /**
   * A body of our mailbox was left on the relay (not readable now): the later ones of that queue
   * wait for it, unread and unacknowledged, until a new SUB redelivers it (mailbox.md §4, "In
   * order"). `msgId`/`rid`: the first body not acknowledged, on which queue; `rereads`: SUBs sent
   * for it so far.
   */
  rxHeld?: { msgId: Uint8Array; rid: Uint8Array; rereads: number };
  /** Receipts for messages that came through the mailbox, waiting to go back. */
  receipts: Set<string>;
  /**
   * Incoming chat messages stored but never shown, by the sender's message id: the ratchet state
   * write that read them failed, or a later message of their bundle failed to store (messages.ts
   * `receive`, `storeAll`). The sender sends them again (no receipt went), the copy is then a
   * duplicate of the stored record, and this lets that record be shown once. At most MAX_UNSHOWN,
   * in memory only: after a reload the screens read them from storage.
   */
  unshown?: Map<string, StoredMessage>;
  upgradeFailures: number;
  /**
   * The live direct session ended because its path died (ICE failed, or it stopped answering):
   * the next dial goes through the relay at once, and direct is tried again from there in the
   * background (dialing.ts `directPathLost`; docs/design.md, "Relay first after a lost path").
   */
  relayFirst?: boolean;
  /** The contact-address reference from their link (offline first contact). */
  addressRef?: AddressRef;
  /** A first contact we started through their contact address, until they reply. */
  intro?: IntroState;
  /** A first-contact request the user has not accepted (ContactRecord.request). */
  request: boolean;
  /** The contact's device refused our connection (we are not its contact yet). */
  refusedUs?: boolean;
  /**
   * A device paired over a cable (ContactRecord.device; docs/device.md §13): it joins no
   * signaling and takes no direct link, so it is neither watched nor dialled; the relay reaches it.
   */
  device?: boolean;
}

/** A step refused to go on; `reason` closes the link and is looked up in errors.ts's table. */
export class Refused extends Error {
  constructor(readonly reason: EngineCloseReason) {
    super(reason);
  }
}

export function timeout<T>(p: Promise<T>, ms: number, reason: EngineCloseReason): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Refused(reason)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Whether `p` settled (resolved or rejected) within `ms`: a bounded wait that never rejects, its
 * timer cleared either way (the engine's and the file transfers' `stop`).
 */
export function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, ms));
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The engine's shared state, handed to every module explicitly. Owned by `Engine` (engine.ts);
 * modules read and update it, and reach each other only through functions taking it.
 */
export interface EngineContext {
  readonly user: EngineStartOptions["user"];
  readonly storage: EngineStorage;
  readonly cfg: EngineConfig;
  readonly selfKey: Uint8Array;
  readonly selfId: string;
  readonly listeners: Set<EngineListener>;
  readonly peers: Map<ContactId, Peer>;
  service: ServiceStatus;
  signaling: SignalingClient | undefined;
  direct: LiveTransport | undefined;
  relayLive: LiveTransport | undefined;
  pool: RelayConnections | undefined;
  /**
   * Our relays in the user's order (EngineSettings.relayUrls): new mailboxes spread across them,
   * the contact address on the first reachable one (core/relay/choice.ts).
   */
  relayUrls: string[];
  /** How many of our room queues a relay holds (rooms/mailbox.ts): new queues spread over all ours. */
  roomQueuesOn?: (url: string) => number;
  /**
   * Where our new per-contact receiving queues go when not on our relay: an `smp://` server
   * address, perhaps with its password (EngineSettings.mailboxServer).
   */
  mailboxServer?: string;
  /** Our receiving queues: recipient id (hex) → contact. */
  readonly rids: Map<string, ContactId>;
  /** Every one of our relays is down (the error was said once; relay-mailbox.ts). */
  relayDown: boolean;
  /** Our prekey store and contact-address queue (offline first contact). */
  prekeys: PrekeyState | undefined;
  address: AddressQueue | undefined;
  addressReady: Promise<void>;
  addressTimer: ReturnType<typeof setTimeout> | undefined;
  addressFailures: number;
  /** Serializes prekey-store use and contact-address processing (stores retire on each change). */
  addressChain: Promise<unknown>;
  /** Base keys of first contacts we accepted (hex) → contact: routes their repeated headers. */
  readonly bases: Map<string, ContactId>;
  signalingUrl: string;
  started: boolean;
  stopped: boolean;
  everRegistered: boolean;
  /** Consecutive BUSY refusals of our REGISTER (reset once registered; presence.ts). */
  registerBusy: number;
  lastStamp: number;
  /** File transfers (set by the engine; absent in engines built without them). */
  files?: FileLane;
  /** STUN/TURN servers the signaling server pushed (ice-servers.ts); absent until it does. */
  serverIce?: { servers: IceServerConfig[]; expiresAt: number };
  /** Where `call.*` signals from a live session go (calls/calls.ts); set by the engine. */
  calls?: {
    receive(peer: Peer, m: CallSignal): void;
    /** A new live session with the contact: a call's signals the old one may have lost go again. */
    sessionUp(peer: Peer): void;
  };
}

/** Largest message reassembled from mailbox pieces (a 16 000-character text is about 66 KB). */
const MAX_MAILBOX_MESSAGE = 256 * 1024;

/** The contact-address reference from a contact's link, if it carries one. */
export function addressRefOf(c: ContactRecord): { addressRef?: AddressRef } {
  const bytes = c.endpoints?.refs?.[ADDRESS_REF];
  if (!bytes) return {};
  const r = decodeAddressRef(bytes);
  return r.ok ? { addressRef: r.value } : {};
}

/**
 * Local time for `at` / `queuedAt`, strictly increasing within this engine: storage orders
 * history and the outbox by it, and two messages in one millisecond must keep their order.
 */
export function stamp(ctx: Pick<EngineContext, "lastStamp">): number {
  const now = Date.now();
  ctx.lastStamp = now > ctx.lastStamp ? now : ctx.lastStamp + 1;
  return ctx.lastStamp;
}

export function emit(ctx: Pick<EngineContext, "listeners">, event: EngineEvent): void {
  for (const l of ctx.listeners) {
    try {
      l(event);
    } catch (e) {
      console.error("engine listener failed", e);
    }
  }
}

export function setService(
  ctx: Pick<EngineContext, "service" | "listeners">,
  change: Partial<ServiceStatus>,
): void {
  // Unchanged unless a field given differs (every field, so a new one needs no line here).
  if ((Object.keys(change) as (keyof ServiceStatus)[]).every((k) => change[k] === ctx.service[k])) return;
  const next = { ...ctx.service, ...change };
  ctx.service = next;
  emit(ctx, { type: "service", status: { ...next } });
}

export function peerFor(ctx: Pick<EngineContext, "peers">, c: ContactRecord): Peer {
  let p = ctx.peers.get(c.id);
  if (!p) {
    // The contact id is the hex of the identity key (api.ts `ContactId`), checked when the
    // contact was stored; no signature check here, so a peer can be made synchronously.
    const key = /^[0-9a-f]{64}$/.test(c.id) ? fromHex(c.id) : new Uint8Array(32);
    p = {
      id: c.id,
      key,
      name: c.username,
      presence: { status: "offline", since: Date.now() },
      online: false,
      manualOff: false,
      blocked: refusalFor(c) !== undefined,
      rejected: c.trust === "rejected",
      timers: new LinkTimers(),
      failures: 0,
      queue: Promise.resolve(),
      flushing: false,
      flushAgain: false,
      mailboxAt: Number.POSITIVE_INFINITY,
      request: c.request !== undefined,
      // Stored with the contact (noise-suites.ts): false keeps a reload from offering again.
      ...(c.answersSuiteOffers !== undefined ? { answersSuiteOffers: c.answersSuiteOffers } : {}),
      ...addressRefOf(c),
      relayFailures: 0,
      upgradeFailures: 0,
      pieces: new PieceBuffer(MAX_MAILBOX_MESSAGE),
      receipts: new Set(),
      ...(c.device ? { device: true } : {}),
    };
    ctx.peers.set(c.id, p);
  }
  return p;
}

/** Run `task` after every earlier ratchet/storage task of this contact. */
export function serial<T>(peer: Peer, task: () => Promise<T>): Promise<T> {
  const run = peer.queue.then(task, task);
  peer.queue = run.catch(() => {});
  return run;
}

/** The crypto provider of the engine's configuration, as an option to spread into core calls. */
export function cryptoOf(ctx: { cfg: { crypto?: CryptoProvider } }): { crypto?: CryptoProvider } {
  return ctx.cfg.crypto ? { crypto: ctx.cfg.crypto } : {};
}

/** The engine's crypto provider, noble when the configuration names none. */
export function providerOf(ctx: { cfg: { crypto?: CryptoProvider } }): CryptoProvider {
  return ctx.cfg.crypto ?? nobleCrypto;
}

/** Whether a live session may come up soon (signaling works and says the contact is online). */
export function reachableLive(ctx: Pick<EngineContext, "signaling">, peer: Peer): boolean {
  return ctx.signaling?.state === "registered" && peer.online && !peer.manualOff;
}

/**
 * How long the outbox waits before it may go to the contact's mailbox when a send, a close or an
 * accepted first contact leaves no session (mailbox.md §3): `mailboxDelayMs` while a live session
 * may come up soon, else 0.
 */
export function mailboxDelay(ctx: Pick<EngineContext, "signaling" | "cfg">, peer: Peer): number {
  return reachableLive(ctx, peer) ? ctx.cfg.mailboxDelayMs : 0;
}

/** Store a message's new state, then tell the UI (stored before the event, api.ts). */
export async function setMessageState(
  ctx: Pick<EngineContext, "storage" | "listeners">,
  m: StoredMessage,
  state: MessageState,
): Promise<void> {
  await ctx.storage.setMessageState(m.id, state);
  m.state = state;
  emit(ctx, { type: "message-state", contactId: m.contactId, id: m.id, state });
}

/** Run `task` after every earlier prekey-store / contact-address task (EngineContext.addressChain). */
export function addressSerial<T>(
  ctx: Pick<EngineContext, "addressChain">,
  task: () => Promise<T>,
): Promise<T> {
  const run = ctx.addressChain.then(task, task);
  ctx.addressChain = run.catch(() => {});
  return run;
}

/**
 * Full-jitter backoff after `failures` failures in a row: a random delay below a ceiling that
 * doubles from `initialMs` up to `maxMs`, plus 200 ms so a retry never runs at once.
 */
export function fullJitter(initialMs: number, maxMs: number, failures: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 16));
  return Math.floor(Math.random() * ceiling) + 200;
}

/** Full-jitter backoff for relay work (deposits, receipts, the contact address; mailbox.md §3). */
export function relayBackoff(ctx: Pick<EngineContext, "cfg">, failures: number): number {
  return fullJitter(ctx.cfg.relayBackoffInitialMs, ctx.cfg.relayBackoffMaxMs, failures);
}
