/**
 * The chat engine (web/src/engine/api.ts `ChatEngine`; docs/protocol/chat.md): direct,
 * browser-to-browser end-to-end encrypted chat.
 *
 *   signaling (core/signaling/client.ts)   register + renew, presence of contacts, signed envelopes
 *   direct links (web/src/net/direct.ts)   WebRTC data channels, offer/answer/ICE through signaling
 *   Noise session (core/session)           XXhfs+ML-KEM-768, link kind "direct", bound to the
 *                                          contact's identity key: the only authentication
 *   HELLO exchange (wire.ts)               do both ends still hold the same ratchet?
 *   Double Ratchet (ratchet-store.ts)      one per contact, kept across connections; every
 *                                          application message under its own key
 *   outbox, receipts, heartbeats           here
 *
 * Per contact there is at most one live session. Dialing happens when a contact comes online
 * (presence), when the user opens the chat (`connect`), when a message is queued, and after a
 * failure with exponential backoff and full jitter; incoming offers are accepted only from
 * known contacts that are neither Rejected nor waiting on an identity decision. When both sides
 * dial at once (glare) the lower identity key's attempt wins (docs/protocol/chat.md, "Glare").
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { equalBytes, toHex, wipe } from "../../../core/bytes.ts";
import { decodeIdentity, encodeIdentity } from "../../../core/identity/identity.ts";
import { decideIdentity } from "../../../core/identity/tofu.ts";
import {
  acceptInitialMessage,
  createPrekeyStore,
  decodeInitialMessage,
  encodeInitialMessage,
  initiateSession,
  replenishOneTimePrekeys,
  rotateSignedPrekeys,
} from "../../../core/prekey/index.ts";
import { canSend, type RatchetKeyPair, ratchetDecrypt, ratchetEncrypt } from "../../../core/ratchet/index.ts";
import type { RelayMessage, SenderQueue } from "../../../core/relay/client.ts";
import { newAuthKeyPair } from "../../../core/relay/crypto.ts";
import { isRelayError, type RelayError } from "../../../core/relay/errors.ts";
import { SEND_ID_LENGTH } from "../../../core/relay/protocol.ts";
import type { WebSocketLike as RelayWebSocketLike } from "../../../core/relay/ws-link.ts";
import { establishSession, type Session } from "../../../core/session/index.ts";
import {
  SignalingClient,
  type SignalingError,
  type SignalingEvent,
  type WebSocketLike,
} from "../../../core/signaling/client.ts";
import { randomId } from "../lib/base64url.ts";
import { type RelayConnState, RelayPool } from "../net/relay-pool.ts";
import {
  type ChatEngine,
  type ContactId,
  type ContactRecord,
  type EngineError,
  type EngineEvent,
  type EngineListener,
  EngineRefusal,
  type EngineStartOptions,
  type EngineStorage,
  type LinkPath,
  type MessageId,
  type MessageState,
  type OutboxEntry,
  type PendingIdentityChange,
  type Presence,
  type ServiceStatus,
  type StoredMessage,
} from "./api.ts";
import { describeFailure, PEER_LEFT_ON_PURPOSE, QUIET_REASONS, relayUnreachable } from "./errors.ts";
import {
  type AddressQueue,
  decodeAddress,
  decodeMailboxBody,
  decodeRx,
  decodeTx,
  encodeAddress,
  encodeRx,
  encodeTx,
  introBody,
  MAX_PART,
  PieceBuffer,
  type RxQueue,
  ratchetBodies,
  SECRET,
  type TxQueue,
} from "./mailbox.ts";
import {
  ADDRESS_REF,
  type AddressRef,
  decodeAddressRef,
  decodeIntro,
  decodePrekeyState,
  encodeAddressRef,
  encodeIntro,
  encodePrekeyState,
  fetchedBundle,
  type IntroState,
  ONE_TIME_TARGET,
  oneTimeEntries,
  type PrekeyState,
  prekeyRatchetId,
  publishedBundle,
  SIGNED_PREKEY_ROTATION_MS,
} from "./prekeys.ts";
import {
  bootstrapChatRatchet,
  type ChatRatchet,
  decodeChatRatchet,
  encodeChatRatchet,
  freshRatchetKeyPair,
  RATCHET_KEY_EXTENSION,
} from "./ratchet-store.ts";
import type { DialedLink, IncomingOffer, LiveTransport, TransportFactory } from "./transport.ts";
import {
  type AppMessage,
  CHAT_PROTOCOL_VERSION,
  decodeAppMessage,
  decodeSessionFrame,
  encodeAppMessage,
  encodeHello,
  encodePing,
  encodePong,
  encodeRatchetFrame,
  type Hello,
  MAX_RECEIPT_IDS,
  MAX_TEXT_CHARS,
  PING_BYTES,
} from "./wire.ts";

export interface EngineConfig {
  /** A PING goes out this often on an idle session. */
  heartbeatIntervalMs: number;
  /** A session with nothing received for this long is dead: closed and replaced. */
  heartbeatTimeoutMs: number;
  handshakeTimeoutMs: number;
  helloTimeoutMs: number;
  /** ICE + DTLS + data channel open. */
  openTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** The higher identity key waits this long before dialing a contact that just came online. */
  glareDelayMs: number;
  /** Our own attempt older than this yields to an incoming offer even when our key is lower. */
  staleDialMs: number;
  webSocket: (url: string) => WebSocketLike;
  /** WebSockets to relays (core/relay `WebSocketLink`). */
  relayWebSocket: (url: string) => RelayWebSocketLike;
  /** The live transport (direct WebRTC links); tests substitute in-memory links. */
  transport: TransportFactory;
  /**
   * The live relay transport (RelayLink over a queue pair, set up through signaling), used when
   * no direct channel opens within `relayFallbackMs`. Absent: no live relay fallback.
   */
  relayTransport?: TransportFactory;
  /** A direct attempt that has not opened after this long gives way to a live relay link. */
  relayFallbackMs: number;
  /**
   * While a chat runs through the relay, try a direct channel again after this long, doubling
   * after each failed try up to `directRetryMaxMs` (a fallback can be spurious: a peer that was
   * reloading when we dialed).
   */
  directRetryMs: number;
  directRetryMaxMs: number;
  /**
   * An outgoing message waits this long for a live session to a contact that signaling says is
   * online before it goes to the contact's relay mailbox (at once when the contact is offline).
   */
  mailboxDelayMs: number;
  /** Relay requests and openings time out after this long. */
  relayTimeoutMs: number;
  relayBackoffInitialMs: number;
  relayBackoffMaxMs: number;
  /**
   * At most this many contact requests (first contacts from strangers) wait on the user; further
   * strangers' first contacts are dropped until the user accepts or declines some.
   */
  maxContactRequests: number;
  /** Diagnostics (close reasons, codes; never secrets or content). */
  log: (message: string) => void;
}

/** Everything but the transport, which index.ts supplies (web/src/net is browser-only). */
export const DEFAULT_ENGINE_CONFIG: Omit<EngineConfig, "transport"> = {
  heartbeatIntervalMs: 5_000,
  heartbeatTimeoutMs: 15_000,
  handshakeTimeoutMs: 10_000,
  helloTimeoutMs: 10_000,
  openTimeoutMs: 20_000,
  backoffInitialMs: 1_000,
  backoffMaxMs: 30_000,
  glareDelayMs: 1_000,
  staleDialMs: 5_000,
  relayFallbackMs: 4_000,
  directRetryMs: 10_000,
  directRetryMaxMs: 60_000,
  mailboxDelayMs: 3_000,
  relayTimeoutMs: 10_000,
  relayBackoffInitialMs: 1_000,
  relayBackoffMaxMs: 15_000,
  maxContactRequests: 50,
  webSocket: (url) => new WebSocket(url) as unknown as WebSocketLike,
  relayWebSocket: (url) => new WebSocket(url) as unknown as RelayWebSocketLike,
  log: (m) => console.debug(`[loft engine] ${m}`),
};

interface Live {
  session: Session;
  path: LinkPath;
  lastInbound: number;
  heartbeat: ReturnType<typeof setInterval>;
  /** Outgoing message ids sent on this session (resent on the next one until receipted). */
  sent: Set<MessageId>;
  /** Our mailbox for the peer was announced on this session. */
  announced: boolean;
}

interface Attempt {
  link: DialedLink;
  direction: "out" | "in";
  path: LinkPath;
  startedAt: number;
}

/** Ciphertext of one outgoing message on its way into the contact's mailbox (kept for retries). */
interface Deposit {
  messageId: MessageId;
  /** The contact's mailbox (`tx`) or, for a first contact, their contact-address queue (`intro`). */
  route: "tx" | "intro";
  target: { url: string; queue: SenderQueue };
  bodies: { body: Uint8Array; sendId: Uint8Array }[];
  next: number;
}

interface Peer {
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
  retryTimer?: ReturnType<typeof setTimeout>;
  failures: number;
  /** Serializes every ratchet operation and the storage writes that go with it. */
  queue: Promise<unknown>;
  flushing: boolean;
  flushAgain: boolean;
  /** Our receiving queue for this contact (created on our relay, announced to the contact). */
  rx?: RxQueue;
  rxCreating?: Promise<RxQueue | undefined>;
  /** The contact's queue for us (from their announcement). */
  tx?: TxQueue;
  /** From this time on, the outbox may go to the contact's mailbox (Infinity: not now). */
  mailboxAt: number;
  mailboxTimer?: ReturnType<typeof setTimeout>;
  deposit?: Deposit;
  relayFailures: number;
  pieces: PieceBuffer;
  /** Receipts for messages that came through the mailbox, waiting to go back. */
  receipts: Set<string>;
  receiptTimer?: ReturnType<typeof setTimeout>;
  upgradeTimer?: ReturnType<typeof setTimeout>;
  upgradeFailures: number;
  /** The contact-address reference from their link (offline first contact). */
  addressRef?: AddressRef;
  /** A first contact we started through their contact address, until they reply. */
  intro?: IntroState;
  /** A first-contact request the user has not accepted (ContactRecord.request). */
  request: boolean;
  /** The contact's device refused our connection (we are not its contact yet). */
  refusedUs?: boolean;
}

class Refused extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

function refusalFor(c: ContactRecord | undefined): EngineError | undefined {
  if (!c) return { kind: "internal", message: "This contact no longer exists." };
  if (c.trust === "rejected")
    return { kind: "contact-rejected", message: `You blocked ${c.username}. Unblock them first.` };
  if (c.request) return { kind: "contact-request", message: `Accept ${c.username}'s contact request first.` };
  if (c.pending)
    return {
      kind: "identity-change-pending",
      message: `${c.username}'s identity changed. Decide whether to trust the new key before sending.`,
    };
  return undefined;
}

function timeout<T>(p: Promise<T>, ms: number, reason: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Refused(reason)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export class Engine implements ChatEngine {
  readonly #user: EngineStartOptions["user"];
  readonly #storage: EngineStorage;
  readonly #cfg: EngineConfig;
  readonly #selfKey: Uint8Array;
  readonly #selfId: string;
  readonly #listeners = new Set<EngineListener>();
  readonly #peers = new Map<ContactId, Peer>();
  #service: ServiceStatus = { signaling: "disabled", relay: "disabled" };
  #signaling: SignalingClient | undefined;
  #direct: LiveTransport | undefined;
  #relayLive: LiveTransport | undefined;
  #pool: RelayPool | undefined;
  /** Our relays, the first one for new queues (EngineSettings.relayUrls). */
  #relayUrls: string[] = [];
  /** Our receiving queues: recipient id (hex) → contact. */
  readonly #rids = new Map<string, ContactId>();
  #relayDown = false;
  /** Our prekey store and contact-address queue (offline first contact). */
  #prekeys: PrekeyState | undefined;
  #address: AddressQueue | undefined;
  #addressReady: Promise<void> = Promise.resolve();
  #addressTimer: ReturnType<typeof setTimeout> | undefined;
  #addressFailures = 0;
  /** Serializes prekey-store use and contact-address processing (stores retire on each change). */
  #addressChain: Promise<unknown> = Promise.resolve();
  /** Base keys of first contacts we accepted (hex) → contact: routes their repeated headers. */
  readonly #bases = new Map<string, ContactId>();
  #signalingUrl = "";
  #started = false;
  #stopped = false;
  #everRegistered = false;
  #lastStamp = 0;

  constructor(options: EngineStartOptions, config: Partial<EngineConfig> & Pick<EngineConfig, "transport">) {
    this.#user = options.user;
    this.#storage = options.storage;
    this.#cfg = { ...DEFAULT_ENGINE_CONFIG, ...config };
    this.#selfKey = options.user.identity.verified.identity_key;
    this.#selfId = toHex(this.#selfKey);
  }

  /**
   * Local time for `at` / `queuedAt`, strictly increasing within this engine: storage orders
   * history and the outbox by it, and two messages in one millisecond must keep their order.
   */
  #stamp(): number {
    const now = Date.now();
    this.#lastStamp = now > this.#lastStamp ? now : this.#lastStamp + 1;
    return this.#lastStamp;
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const settings = await this.#storage.getSettings();
    this.#signalingUrl = settings.signalingUrl;
    for (const c of await this.#storage.listContacts()) this.#peerFor(c);
    this.#relayUrls = (settings.relayUrls ?? []).filter((u) => u.length > 0);
    const ownRelay = this.#relayUrls[0];
    if (ownRelay) {
      this.#pool = new RelayPool({
        webSocket: this.#cfg.relayWebSocket,
        timeoutMs: this.#cfg.relayTimeoutMs,
        backoffInitialMs: this.#cfg.relayBackoffInitialMs,
        backoffMaxMs: this.#cfg.relayBackoffMaxMs,
        window: 16,
        onMessage: (url, m) => this.#onRelayMessage(url, m),
        onState: (url, state, error) => this.#onRelayState(url, state, error),
        log: this.#cfg.log,
      });
      this.#setService({ relay: "connecting" });
      this.#pool.keep(ownRelay);
      await this.#loadMailboxes();
      this.#addressReady = this.#setupAddress();
    }
    if (!settings.signalingUrl) {
      this.#setService({ signaling: "disabled" });
      for (const p of this.#peers.values()) this.#allowMailbox(p, 0);
      return;
    }
    const signaling = new SignalingClient({
      url: settings.signalingUrl,
      user: this.#user,
      connect: this.#cfg.webSocket,
    });
    this.#signaling = signaling;
    this.#direct = this.#cfg.transport({
      signaling,
      iceServers: settings.iceServers ?? [],
      openTimeoutMs: this.#cfg.openTimeoutMs,
      onOffer: (offer) => void this.#onOffer(offer),
      onError: (e) => this.#cfg.log(e.message),
    });
    if (this.#pool && ownRelay && this.#cfg.relayTransport)
      this.#relayLive = this.#cfg.relayTransport({
        signaling,
        iceServers: [],
        openTimeoutMs: this.#cfg.openTimeoutMs,
        onOffer: (offer) => void this.#onOffer(offer),
        onError: (e) => this.#cfg.log(e.message),
        relay: { pool: this.#pool, url: ownRelay },
      });
    signaling.on((e) => this.#onSignaling(e));
    void signaling.subscribe(this.#watchKeys());
    this.#setService({ signaling: "connecting" });
    // Resolves once registered; failures arrive as events and the client retries with backoff.
    signaling.start().catch(() => {});
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const p of this.#peers.values()) {
      clearTimeout(p.retryTimer);
      clearTimeout(p.mailboxTimer);
      clearTimeout(p.receiptTimer);
      clearTimeout(p.upgradeTimer);
      p.attempt?.link.close("stopped");
      p.live?.session.close("stopped");
    }
    clearTimeout(this.#addressTimer);
    this.#direct?.close();
    this.#relayLive?.close();
    this.#signaling?.close();
    await Promise.allSettled([...this.#peers.values()].map((p) => p.queue));
    this.#pool?.close();
    this.#setService({ signaling: "disabled", relay: "disabled" });
  }

  subscribe(listener: EngineListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  presence(contactId: ContactId): Presence {
    return this.#peers.get(contactId)?.presence ?? { status: "offline", since: Date.now() };
  }

  serviceStatus(): ServiceStatus {
    return { ...this.#service };
  }

  // ---- user actions ----------------------------------------------------------------------------

  connect(contactId: ContactId): void {
    void (async () => {
      const c = await this.#storage.getContact(contactId);
      const refusal = refusalFor(c);
      if (refusal || !c) {
        if (refusal) this.#emit({ type: "error", contactId, error: refusal });
        return;
      }
      const peer = this.#peerFor(c);
      peer.manualOff = false;
      if (peer.live || peer.attempt) return;
      if (!peer.online) {
        this.#setPresence(peer, "offline", undefined, describeFailure("PEER_OFFLINE", peer.name));
        return;
      }
      peer.failures = 0;
      clearTimeout(peer.retryTimer);
      void this.#dial(peer);
    })();
  }

  disconnect(contactId: ContactId): void {
    const peer = this.#peers.get(contactId);
    if (!peer) return;
    peer.manualOff = true;
    clearTimeout(peer.retryTimer);
    this.#dropLinks(peer, "user-disconnect");
    this.#setPresence(peer, "offline");
  }

  async send(contactId: ContactId, text: string): Promise<MessageId> {
    const c = await this.#storage.getContact(contactId);
    const refusal = refusalFor(c);
    if (refusal || !c) throw new EngineRefusal(refusal!);
    if (text.length === 0 || text.length > MAX_TEXT_CHARS)
      throw new EngineRefusal({
        kind: "message-refused",
        message: "Messages can be 1 to 16 000 characters.",
      });
    const message: StoredMessage = {
      id: randomId(),
      contactId,
      direction: "out",
      text,
      at: this.#stamp(),
      state: "queued",
    };
    await this.#storage.putMessage(message);
    await this.#storage.putOutbox({ messageId: message.id, contactId, queuedAt: message.at, attempts: 0 });
    this.#emit({ type: "message-state", contactId, id: message.id, state: "queued" });
    this.#afterQueued(this.#peerFor(c));
    return message.id;
  }

  async retry(messageId: MessageId): Promise<void> {
    const m = await this.#storage.getMessage(messageId);
    if (m?.direction !== "out") return;
    const c = await this.#storage.getContact(m.contactId);
    const refusal = refusalFor(c);
    if (refusal || !c) throw new EngineRefusal(refusal!);
    if (m.state === "delivered") return;
    await this.#storage.setMessageState(messageId, "queued");
    await this.#storage.putOutbox({
      messageId,
      contactId: m.contactId,
      queuedAt: this.#stamp(),
      attempts: 0,
    });
    this.#emit({ type: "message-state", contactId: m.contactId, id: messageId, state: "queued" });
    this.#afterQueued(this.#peerFor(c));
  }

  contactChanged(contactId: ContactId): void {
    void (async () => {
      const c = await this.#storage.getContact(contactId);
      const peer = this.#peers.get(contactId);
      if (!c) {
        if (peer) {
          clearTimeout(peer.retryTimer);
          clearTimeout(peer.mailboxTimer);
          clearTimeout(peer.upgradeTimer);
          this.#dropLinks(peer, "contact-blocked");
          this.#peers.delete(contactId);
          void this.#forgetMailbox(peer);
        }
        this.#resubscribe();
        return;
      }
      const p = this.#peerFor(c);
      p.name = c.username;
      const wasRequest = p.request;
      const wasBlocked = p.blocked;
      p.request = c.request !== undefined;
      const ref = addressRefOf(c).addressRef;
      if (ref) p.addressRef = ref;
      const refusal = refusalFor(c);
      p.blocked = refusal !== undefined;
      p.rejected = c.trust === "rejected";
      if (refusal) {
        clearTimeout(p.retryTimer);
        this.#dropLinks(p, c.pending ? "identity-change" : "contact-blocked");
        p.ratchet = undefined;
        this.#setPresence(p, "offline", undefined, refusal);
      } else if (!p.live) {
        // The UI may have replaced the stored identity and dropped the ratchet (accepted key).
        p.ratchet = undefined;
        p.failures = 0;
      }
      this.#resubscribe();
      if (!refusal) {
        this.#maybeDial(p, "changed");
        // A new contact gets its mailbox now, announced on the first session.
        void this.#ensureRx(p);
        // What waited on the relay while the user decided is delivered again (SUB redelivers).
        if (wasBlocked && p.rx) {
          const rx = p.rx;
          void this.#serial(p, async () => {
            p.pieces.reset();
            this.#pool?.subscribe(rx.url, rx.queue);
          });
        }
        if (wasRequest) void this.#afterAccept(p);
        else if (!p.live) this.#allowMailbox(p, this.#reachableLive(p) ? this.#cfg.mailboxDelayMs : 0);
      }
    })();
  }

  // ---- events ----------------------------------------------------------------------------------

  #emit(event: EngineEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch (e) {
        console.error("engine listener failed", e);
      }
    }
  }

  #setService(change: Partial<ServiceStatus>): void {
    const next = { ...this.#service, ...change };
    if (next.signaling === this.#service.signaling && next.relay === this.#service.relay) return;
    this.#service = next;
    this.#emit({ type: "service", status: { ...next } });
  }

  #setPresence(peer: Peer, status: Presence["status"], path?: LinkPath, lastError?: EngineError): void {
    const prev = peer.presence;
    if (
      prev.status === status &&
      prev.path === path &&
      prev.lastError?.kind === lastError?.kind &&
      prev.lastError?.message === lastError?.message
    )
      return;
    peer.presence = {
      status,
      since: prev.status === status ? prev.since : Date.now(),
      ...(path ? { path } : {}),
      ...(lastError ? { lastError } : {}),
    };
    this.#emit({ type: "presence", contactId: peer.id, presence: peer.presence });
  }

  // ---- peers -----------------------------------------------------------------------------------

  #peerFor(c: ContactRecord): Peer {
    let p = this.#peers.get(c.id);
    if (!p) {
      const decoded = decodeIdentity(c.identity);
      const key = decoded.ok ? decoded.value.verified.identity_key : new Uint8Array(32);
      p = {
        id: c.id,
        key,
        name: c.username,
        presence: { status: "offline", since: Date.now() },
        online: false,
        manualOff: false,
        blocked: refusalFor(c) !== undefined,
        rejected: c.trust === "rejected",
        failures: 0,
        queue: Promise.resolve(),
        flushing: false,
        flushAgain: false,
        mailboxAt: Number.POSITIVE_INFINITY,
        request: c.request !== undefined,
        ...addressRefOf(c),
        relayFailures: 0,
        upgradeFailures: 0,
        pieces: new PieceBuffer(MAX_MAILBOX_MESSAGE),
        receipts: new Set(),
      };
      this.#peers.set(c.id, p);
    }
    return p;
  }

  /** Run `task` after every earlier ratchet/storage task of this contact. */
  #serial<T>(peer: Peer, task: () => Promise<T>): Promise<T> {
    const run = peer.queue.then(task, task);
    peer.queue = run.catch(() => {});
    return run;
  }

  #watchKeys(): Uint8Array[] {
    return [...this.#peers.values()].filter((p) => !p.rejected).map((p) => p.key);
  }

  #resubscribe(): void {
    const s = this.#signaling;
    if (!s) return;
    s.subscribe(this.#watchKeys()).then(
      (states) => {
        // An answer to our own (re)subscription after a contact changed: no glare delay needed.
        for (const st of states) this.#onPresence(st.key, st.online, "changed");
      },
      () => {}, // re-sent by the client after its next (re)connect
    );
  }

  #dropLinks(peer: Peer, reason: string): void {
    peer.attempt?.link.close(reason);
    peer.attempt = undefined;
    peer.live?.session.close(reason);
  }

  // ---- signaling -------------------------------------------------------------------------------

  #onSignaling(e: SignalingEvent): void {
    if (this.#stopped) return;
    switch (e.type) {
      case "state":
        if (e.state === "registered") {
          this.#everRegistered = true;
          this.#setService({ signaling: "connected" });
          for (const p of this.#peers.values()) this.#maybeDial(p, "registered");
        } else if (e.state === "reconnecting" || e.state === "connecting") {
          if (this.#service.signaling === "connected") this.#setService({ signaling: "connecting" });
        }
        return;
      case "presence":
        this.#onPresence(e.key, e.online);
        return;
      case "error":
        this.#onSignalingError(e.error);
        return;
      case "rejected":
        this.#cfg.log(`dropped a signaling envelope (${e.reason}) from ${toHex(e.from).slice(0, 8)}`);
        return;
      default:
        return;
    }
  }

  #onSignalingError(error: SignalingError): void {
    this.#cfg.log(`signaling: ${error.code}`);
    if (error.code === "UNREACHABLE" || error.code === "CLOSED" || error.code === "UNSUPPORTED_VERSION") {
      const wasUp = this.#service.signaling !== "unreachable";
      this.#setService({ signaling: "unreachable" });
      for (const p of this.#peers.values()) if (!p.live) this.#allowMailbox(p, this.#cfg.mailboxDelayMs);
      if (wasUp)
        this.#emit({
          type: "error",
          error: {
            kind: "signaling-unreachable",
            url: this.#signalingUrl,
            message:
              error.code === "UNSUPPORTED_VERSION"
                ? "The signaling server runs an incompatible version."
                : this.#everRegistered
                  ? "Lost the connection to the signaling server. Reconnecting…"
                  : "The signaling server can't be reached. Retrying…",
          },
        });
    } else if (error.code === "REPLACED") {
      this.#emit({
        type: "error",
        error: {
          kind: "internal",
          message: "This identity signed in from another tab or device; this one stopped connecting.",
        },
      });
    }
  }

  #onPresence(key: Uint8Array, online: boolean, why: "presence" | "changed" = "presence"): void {
    const peer = this.#peers.get(toHex(key));
    if (!peer || !equalBytes(peer.key, key)) return;
    const was = peer.online;
    peer.online = online;
    if (online && !was) {
      peer.failures = 0;
      this.#maybeDial(peer, why);
    } else if (!online) {
      clearTimeout(peer.retryTimer);
      if (!peer.live && !peer.attempt) this.#setPresence(peer, "offline");
      if (!peer.live) this.#allowMailbox(peer, 0);
    }
  }

  // ---- dialing ---------------------------------------------------------------------------------

  #afterQueued(peer: Peer): void {
    if (peer.live) void this.#flush(peer);
    else {
      this.#maybeDial(peer, "send");
      this.#allowMailbox(peer, this.#reachableLive(peer) ? this.#cfg.mailboxDelayMs : 0);
    }
  }

  /** Whether a live session may come up soon (signaling works and says the contact is online). */
  #reachableLive(peer: Peer): boolean {
    return this.#signaling?.state === "registered" && peer.online && !peer.manualOff;
  }

  #maybeDial(peer: Peer, why: "presence" | "registered" | "changed" | "send" | "retry"): void {
    if (this.#stopped || !this.#direct || this.#signaling?.state !== "registered") return;
    if (peer.live || peer.attempt || peer.manualOff || peer.blocked || !peer.online) return;
    // Glare avoidance: when a contact comes online both ends learn it at once; the lower key
    // dials first, the higher one only if nothing arrived meanwhile.
    const delay =
      (why === "presence" || why === "registered") && this.#selfId > peer.id ? this.#cfg.glareDelayMs : 0;
    clearTimeout(peer.retryTimer);
    if (delay > 0) {
      peer.retryTimer = setTimeout(() => this.#maybeDial(peer, "retry"), delay);
      return;
    }
    void this.#dial(peer);
  }

  #scheduleRetry(peer: Peer): void {
    if (this.#stopped || peer.manualOff || !peer.online || peer.live) return;
    clearTimeout(peer.retryTimer);
    peer.failures++;
    const ceiling = Math.min(
      this.#cfg.backoffMaxMs,
      this.#cfg.backoffInitialMs * 2 ** Math.min(peer.failures, 16),
    );
    const delay = Math.floor(Math.random() * ceiling) + 200;
    peer.retryTimer = setTimeout(() => this.#maybeDial(peer, "retry"), delay);
  }

  /**
   * Dial a direct channel. If it has not opened after `relayFallbackMs` (or the path failed), the
   * chat goes live through the relay instead. `upgrade`: we are on the relay and try direct again
   * (no fallback; a failure leaves the relay session alone).
   */
  async #dial(peer: Peer, upgrade = false): Promise<void> {
    if (peer.blocked || !this.#direct || peer.attempt || this.#stopped) return;
    if (peer.live && !(upgrade && peer.live.path === "relay")) return;
    const link = this.#direct.dial(peer.key);
    const attempt: Attempt = { link, direction: "out", path: "direct", startedAt: Date.now() };
    peer.attempt = attempt;
    if (!peer.live) this.#setPresence(peer, "connecting");
    this.#cfg.log(`dial ${peer.id.slice(0, 8)}${upgrade ? " (direct, while on the relay)" : ""}`);
    try {
      const fallback = !upgrade && this.#relayLive !== undefined;
      const opened = await this.#openedWithin(link, fallback ? this.#cfg.relayFallbackMs : undefined);
      if (!opened) {
        if (peer.attempt !== attempt) {
          if (link.state !== "closed") link.close("superseded");
          return;
        }
        this.#cfg.log(`no direct channel to ${peer.id.slice(0, 8)}: going through the relay`);
        link.close("relay-fallback");
        peer.attempt = undefined;
        await this.#dialRelay(peer);
        return;
      }
      const session = await establishSession({
        link,
        role: "initiator",
        kind: "direct",
        self: this.#user,
        expectedIdentityKey: peer.key,
        handshakeTimeoutMs: this.#cfg.handshakeTimeoutMs,
      });
      await this.#runSession(peer, attempt, session, undefined, "direct");
    } catch (e) {
      await this.#attemptFailed(peer, attempt, e);
      if (upgrade) {
        peer.upgradeFailures++;
        this.#scheduleUpgrade(peer);
      }
    }
  }

  /**
   * Wait for a link to open, at most `ms` (no limit when undefined). False when the time ran out
   * or the path itself failed (ICE, open timeout): a case for the relay. Other failures (refused,
   * glare, peer offline, a forged signal) are thrown as they are.
   */
  async #openedWithin(link: DialedLink, ms: number | undefined): Promise<boolean> {
    if (ms === undefined) {
      await link.opened;
      return true;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      link.opened.then(
        () => "open" as const,
        (e: unknown) => ({ e }),
      ),
      new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), ms);
      }),
    ]);
    clearTimeout(timer);
    if (r === "open") return true;
    if (r === "late") return link.state === "open";
    const info = link.state === "closed" ? await link.closed : undefined;
    if (info && isPathFailure(info.reason)) return false;
    throw r.e;
  }

  /** A live link through the relay (RelayLink over a queue pair), Noise with link kind "relay". */
  async #dialRelay(peer: Peer): Promise<void> {
    const relay = this.#relayLive;
    if (!relay || peer.blocked || peer.attempt || peer.live || this.#stopped) return;
    const link = relay.dial(peer.key);
    const attempt: Attempt = { link, direction: "out", path: "relay", startedAt: Date.now() };
    peer.attempt = attempt;
    this.#setPresence(peer, "connecting");
    this.#cfg.log(`dial ${peer.id.slice(0, 8)} through the relay`);
    try {
      await timeout(link.opened, this.#cfg.openTimeoutMs, "open-timeout");
      const session = await establishSession({
        link,
        role: "initiator",
        kind: "relay",
        self: this.#user,
        expectedIdentityKey: peer.key,
        handshakeTimeoutMs: this.#cfg.handshakeTimeoutMs,
      });
      await this.#runSession(peer, attempt, session, undefined, "relay");
    } catch (e) {
      await this.#attemptFailed(peer, attempt, e);
    }
  }

  /** On the relay path: try a direct channel again later ("switches to direct when it can"). */
  #scheduleUpgrade(peer: Peer): void {
    clearTimeout(peer.upgradeTimer);
    if (this.#stopped || peer.live?.path !== "relay") return;
    peer.upgradeTimer = setTimeout(
      () => {
        if (peer.live?.path !== "relay") return;
        if (peer.attempt || !peer.online || peer.blocked || peer.manualOff) this.#scheduleUpgrade(peer);
        else void this.#dial(peer, true);
      },
      Math.min(this.#cfg.directRetryMaxMs, this.#cfg.directRetryMs * 2 ** Math.min(peer.upgradeFailures, 8)),
    );
  }

  async #onOffer(offer: IncomingOffer): Promise<void> {
    const id = toHex(offer.from);
    const c = await this.#storage.getContact(id);
    const peer = this.#peers.get(id);
    if (this.#stopped || !c || !peer || refusalFor(c)) {
      this.#cfg.log(`refused an offer from ${id.slice(0, 8)}`);
      offer.refuse("refused");
      return;
    }
    const path: LinkPath = offer.path ?? "direct";
    const mine = peer.attempt;
    if (mine?.direction === "out") {
      const fresh = Date.now() - mine.startedAt < this.#cfg.staleDialMs;
      // A relay offer means the peer gave up on a direct channel: it wins over our direct attempt.
      const relayOverDirect = path === "relay" && mine.path === "direct";
      if (!relayOverDirect && this.#selfId < id && fresh && mine.link.state === "connecting") {
        // Glare: both dialed; the lower identity key's attempt wins (docs/protocol/chat.md).
        offer.refuse("glare");
        return;
      }
      mine.link.close("glare-yield");
    } else if (mine) {
      mine.link.close("superseded");
    }
    peer.manualOff = false;
    clearTimeout(peer.retryTimer);
    const link = offer.accept();
    const attempt: Attempt = { link, direction: "in", path, startedAt: Date.now() };
    peer.attempt = attempt;
    if (!peer.live) this.#setPresence(peer, "connecting");
    const keyPair = freshRatchetKeyPair();
    try {
      await link.opened;
      const session = await establishSession({
        link,
        role: "responder",
        kind: path,
        self: this.#user,
        expectedIdentityKey: peer.key,
        extensions: { [RATCHET_KEY_EXTENSION]: keyPair.publicKey },
        handshakeTimeoutMs: this.#cfg.handshakeTimeoutMs,
      });
      await this.#runSession(peer, attempt, session, keyPair, path);
    } catch (e) {
      await this.#attemptFailed(peer, attempt, e);
      if (peer.live?.path === "relay") this.#scheduleUpgrade(peer);
    } finally {
      wipe(keyPair.secretKey);
    }
  }

  async #attemptFailed(peer: Peer, attempt: Attempt, e: unknown): Promise<void> {
    if (peer.attempt === attempt) peer.attempt = undefined;
    let reason: string;
    let detail: string | undefined;
    if (e instanceof Refused) reason = e.reason;
    else if (e instanceof Error && "code" in e && typeof e.code === "string") {
      reason = e.code;
      detail = e.message;
    } else {
      const info = attempt.link.state === "closed" ? await attempt.link.closed : undefined;
      reason = info?.reason ?? "internal";
      detail = info?.detail ?? (e as Error)?.message;
    }
    // A handshake that failed because the link went away reports the link's reason instead.
    if (reason === "LOFT_ERR_LINK_CLOSED" && attempt.link.state === "closed") {
      const info = await attempt.link.closed;
      if (info.reason !== "LOFT_ERR_LINK_CLOSED") {
        reason = info.reason;
        detail = info.detail;
      }
    }
    if (attempt.link.state !== "closed") attempt.link.close(reason, detail);
    this.#cfg.log(`attempt ${attempt.direction} ${peer.id.slice(0, 8)} ended: ${reason}`);
    if (this.#stopped || QUIET_REASONS.has(reason)) return;
    if (reason === "bye-refused" && !peer.refusedUs) {
      peer.refusedUs = true;
      this.#allowMailbox(peer, 0);
    }
    const error = describeFailure(reason, peer.name, detail);
    if (error.kind === "verification-failed") this.#emit({ type: "error", contactId: peer.id, error });
    if (!peer.live && !peer.attempt) this.#setPresence(peer, "offline", undefined, error);
    this.#scheduleRetry(peer);
  }

  // ---- sessions --------------------------------------------------------------------------------

  /** TOFU on the identity the handshake verified (SREMP §identity; DESIGN.md). */
  async #checkIdentity(peer: Peer, session: Session): Promise<void> {
    const c = await this.#storage.getContact(peer.id);
    const refusal = refusalFor(c);
    if (refusal || !c) throw new Refused(c?.pending ? "identity-change" : "contact-blocked");
    const known = decodeIdentity(c.identity);
    if (!known.ok) throw new Refused("contact-blocked");
    const offered = session.remoteIdentity;
    const now = Date.now();
    const d = decideIdentity({
      offered,
      known: { identity: known.value, trust: c.trust, firstSeen: c.firstSeen, lastSeen: c.lastSeen },
      now,
    });
    switch (d.kind) {
      case "unchanged":
        await this.#storage.touchContact(peer.id, now);
        return;
      case "updated":
        await this.#storage.updateContactIdentity(
          peer.id,
          encodeIdentity(offered),
          offered.verified.username,
        );
        await this.#storage.touchContact(peer.id, now);
        peer.name = offered.verified.username;
        this.#emit({ type: "contact-updated", contactId: peer.id });
        return;
      case "noise-key-rotated":
      case "conflict":
      case "downgrade": {
        const change: PendingIdentityChange = {
          kind: d.kind,
          identity: encodeIdentity(offered),
          seenAt: now,
          source: "handshake",
        };
        session.close("identity-change");
        await this.#storage.recordIdentityChange(peer.id, change);
        this.#emit({ type: "identity-change", contactId: peer.id, change, candidate: offered });
        peer.blocked = true;
        this.#setPresence(peer, "offline", undefined, refusalFor({ ...c, pending: change }));
        throw new Refused("identity-change");
      }
      default:
        throw new Refused("contact-blocked");
    }
  }

  async #loadRatchet(peer: Peer): Promise<{ ratchet?: ChatRatchet; unreadable: boolean }> {
    if (peer.ratchet) return { ratchet: peer.ratchet, unreadable: false };
    const blob = await this.#storage.loadSession(peer.id);
    if (!blob) return { unreadable: false };
    const decoded = decodeChatRatchet(blob);
    wipe(blob);
    if (!decoded.ok) {
      this.#cfg.log(`stored ratchet for ${peer.id.slice(0, 8)} unreadable: ${decoded.error.code}`);
      return { unreadable: true };
    }
    peer.ratchet = decoded.value;
    return { ratchet: decoded.value, unreadable: false };
  }

  async #saveRatchet(peer: Peer, ratchet: ChatRatchet): Promise<void> {
    peer.ratchet = ratchet;
    const blob = encodeChatRatchet(ratchet);
    try {
      await this.#storage.saveSession(peer.id, blob);
    } finally {
      wipe(blob);
    }
  }

  /**
   * A verified session: TOFU, HELLO exchange and ratchet choice, then it becomes the contact's
   * live session (replacing an older one) until it closes.
   */
  async #runSession(
    peer: Peer,
    attempt: Attempt,
    session: Session,
    keyPair: RatchetKeyPair | undefined,
    path: LinkPath,
  ): Promise<void> {
    if (this.#stopped) {
      session.close("stopped");
      throw new Refused("stopped");
    }
    await this.#checkIdentity(peer, session);
    if (peer.attempt !== attempt) {
      session.close("superseded");
      throw new Refused("superseded");
    }
    // A newer session replaces the old one at once: the peer dialed because it considers it dead.
    const old = peer.live;
    if (old) {
      peer.live = undefined;
      old.session.close("replaced");
    }
    const theirs = await this.#serial(peer, () => this.#hello(peer, session, keyPair));
    if (peer.attempt !== attempt || session.state === "closed") {
      session.close("superseded");
      throw new Refused("superseded");
    }
    peer.attempt = undefined;
    const live: Live = {
      session,
      path,
      lastInbound: Date.now(),
      sent: new Set(),
      announced: false,
      heartbeat: setInterval(() => this.#heartbeat(live), this.#cfg.heartbeatIntervalMs),
    };
    peer.live = live;
    peer.failures = 0;
    peer.refusedUs = false;
    clearTimeout(peer.retryTimer);
    clearTimeout(peer.mailboxTimer);
    peer.mailboxAt = Number.POSITIVE_INFINITY;
    if (path === "relay") this.#scheduleUpgrade(peer);
    else {
      clearTimeout(peer.upgradeTimer);
      peer.upgradeFailures = 0;
    }
    this.#setPresence(peer, "online", path);
    this.#cfg.log(`session ${session.role} ${peer.id.slice(0, 8)} open`);
    attempt.link.pathInfo?.().then(
      (p) => this.#cfg.log(`path ${peer.id.slice(0, 8)}: ${p.local}/${p.remote} ${p.protocol}`),
      () => {},
    );
    void session.closed.then((info) => this.#onSessionClosed(peer, live, info.reason, info.detail));
    void this.#readLoop(peer, live);
    if (!theirs.canSend && peer.ratchet && canSend(peer.ratchet.state))
      await this.#serial(peer, () => this.#sendApp(peer, live, { t: "sync" })).catch(() => {});
    void this.#flush(peer);
    void this.#announce(peer, live);
    if (peer.receipts.size > 0) void this.#sendReceipts(peer);
  }

  /** HELLO both ways; keep the stored ratchet if both ends hold the same one, else start anew. */
  async #hello(peer: Peer, session: Session, keyPair: RatchetKeyPair | undefined): Promise<Hello> {
    const { ratchet: stored, unreadable } = await this.#loadRatchet(peer);
    session.send(
      encodeHello({
        version: CHAT_PROTOCOL_VERSION,
        ...(stored ? { ratchetId: stored.id } : {}),
        canSend: stored ? canSend(stored.state) : false,
      }),
    );
    let bytes: Uint8Array;
    try {
      bytes = await timeout(session.receive(), this.#cfg.helloTimeoutMs, "hello-timeout");
    } catch (e) {
      session.close(e instanceof Refused ? e.reason : "LOFT_ERR_LINK_CLOSED");
      throw e;
    }
    const frame = decodeSessionFrame(bytes);
    if (!frame.ok || frame.value.type !== "hello" || frame.value.hello.version !== CHAT_PROTOCOL_VERSION) {
      const code = frame.ok ? "LOFT_ERR_UNSUPPORTED_VERSION" : frame.error.code;
      session.close(code);
      throw new Refused(code);
    }
    const theirs = frame.value.hello;
    if (stored && theirs.ratchetId && equalBytes(stored.id, theirs.ratchetId)) return theirs;
    // No shared ratchet: start one from this handshake (both ends decide the same way).
    const fresh = bootstrapChatRatchet(session, this.#selfKey, keyPair);
    if (!fresh.ok) {
      session.close(fresh.error.code);
      throw new Refused(fresh.error.code);
    }
    await this.#saveRatchet(peer, fresh.value);
    const peerHad = theirs.ratchetId !== undefined;
    if (stored || unreadable || peerHad) {
      // Visible, never silent (docs/protocol/chat.md, "Lost ratchet state").
      const who =
        !stored && peerHad
          ? "this device had lost the previous one"
          : stored && !peerHad
            ? `${peer.name}'s device had lost the previous one`
            : "the previous one no longer matched on both devices";
      this.#cfg.log(`ratchet re-bootstrapped with ${peer.id.slice(0, 8)}`);
      this.#emit({
        type: "error",
        contactId: peer.id,
        error: {
          kind: "internal",
          message: `Started a new secure session with ${peer.name}: ${who}. Messages not yet delivered are sent again.`,
        },
      });
    }
    // Both ends now hold fresh states: only the Noise initiator's (Alice's) can send yet.
    return { ...theirs, canSend: session.role === "responder" };
  }

  #heartbeat(live: Live): void {
    if (live.session.state === "closed") return;
    if (Date.now() - live.lastInbound > this.#cfg.heartbeatTimeoutMs) {
      live.session.close("heartbeat-timeout", "no frame from the peer within the heartbeat timeout");
      return;
    }
    try {
      live.session.send(encodePing(crypto.getRandomValues(new Uint8Array(PING_BYTES))));
    } catch {
      // closed meanwhile
    }
  }

  async #readLoop(peer: Peer, live: Live): Promise<void> {
    const { session } = live;
    for (;;) {
      let bytes: Uint8Array;
      try {
        bytes = await session.receive();
      } catch {
        return;
      }
      live.lastInbound = Date.now();
      const frame = decodeSessionFrame(bytes);
      if (!frame.ok) {
        session.close(frame.error.code, frame.error.message);
        return;
      }
      const f = frame.value;
      if (f.type === "ping") {
        try {
          session.send(encodePong(f.nonce));
        } catch {}
      } else if (f.type === "ratchet") {
        await this.#serial(peer, () => this.#receive(peer, live, f.message)).catch((e) => {
          this.#cfg.log(`receive failed: ${(e as Error).message}`);
        });
      } else if (f.type === "hello") {
        session.close("LOFT_ERR_MALFORMED", "a second HELLO");
        return;
      }
    }
  }

  #onSessionClosed(peer: Peer, live: Live, reason: string, detail?: string): void {
    clearInterval(live.heartbeat);
    if (peer.live !== live) return;
    peer.live = undefined;
    clearTimeout(peer.upgradeTimer);
    this.#cfg.log(`session ${peer.id.slice(0, 8)} closed: ${reason}${detail ? ` (${detail})` : ""}`);
    if (this.#stopped) return;
    // What this session did not get receipted goes to the mailbox if no new session comes up.
    this.#allowMailbox(peer, this.#reachableLive(peer) ? this.#cfg.mailboxDelayMs : 0);
    const peerOnPurpose =
      reason === "remote-closed" && detail !== undefined && PEER_LEFT_ON_PURPOSE.has(detail);
    if (QUIET_REASONS.has(reason) || peerOnPurpose) {
      if (!peer.attempt) this.#setPresence(peer, "offline");
      return;
    }
    const error = describeFailure(reason === "remote-closed" ? "remote-closed" : reason, peer.name, detail);
    if (error.kind === "verification-failed") this.#emit({ type: "error", contactId: peer.id, error });
    if (!peer.attempt) this.#setPresence(peer, "offline", undefined, error);
    this.#scheduleRetry(peer);
  }

  // ---- messages --------------------------------------------------------------------------------

  /** Encrypt one application message with the contact's ratchet and send it (inside #serial). */
  async #sendApp(peer: Peer, live: Live, message: AppMessage): Promise<void> {
    const r = peer.ratchet;
    if (!r || !canSend(r.state)) throw new Refused("ratchet-cannot-send");
    if (live.session.state === "closed") throw new Refused("LOFT_ERR_LINK_CLOSED");
    const plaintext = encodeAppMessage(message);
    const { state, message: sealed } = ratchetEncrypt(r.state, plaintext, Date.now());
    wipe(plaintext);
    // Persist before the ciphertext leaves: a crash never reuses a chain key.
    await this.#saveRatchet(peer, { id: r.id, state });
    live.session.send(encodeRatchetFrame(sealed));
  }

  /**
   * One ratchet message from the contact, over the live session `live` or (undefined) from our
   * mailbox. Runs inside #serial.
   */
  async #receive(peer: Peer, live: Live | undefined, sealed: Uint8Array): Promise<void> {
    if (live && peer.live !== live) return;
    const r = live ? peer.ratchet : (await this.#loadRatchet(peer)).ratchet;
    if (!r) return;
    const couldSend = canSend(r.state);
    const opened = ratchetDecrypt(r.state, sealed, Date.now());
    if (!opened.ok) {
      if (opened.error.code === "LOFT_ERR_REPLAY") return; // a copy we already read
      if (!live) {
        // Most likely sealed under a ratchet both ends have since replaced; the sender still has
        // it in its outbox (no receipt) and sends it again on the next session.
        this.#cfg.log(`dropped a mailbox message that does not decrypt: ${opened.error.code}`);
        return;
      }
      // The ratchets disagree although the HELLO ids matched (state rolled back or corrupted).
      // Drop ours: the next connection starts a new one, and the peer resends what we missed.
      this.#cfg.log(`ratchet decrypt failed: ${opened.error.code}`);
      peer.ratchet = undefined;
      await this.#storage.deleteSession(peer.id);
      live.session.close("ratchet-desync", opened.error.code);
      return;
    }
    await this.#saveRatchet(peer, { id: r.id, state: opened.value.state });
    if (peer.intro) await this.#introDone(peer);
    const app = decodeAppMessage(opened.value.plaintext);
    wipe(opened.value.plaintext);
    if (!app.ok) {
      this.#cfg.log(`dropped an application message: ${app.error.code}`);
      return;
    }
    const m = app.value;
    if (m.t === "msg") {
      const dup = await this.#storage.findIncoming(peer.id, m.id);
      if (!dup) {
        const stored: StoredMessage = {
          id: randomId(),
          contactId: peer.id,
          direction: "in",
          text: m.text,
          at: this.#stamp(),
          sentAt: m.at,
          state: "received",
          remoteId: m.id,
        };
        await this.#storage.putMessage(stored);
        this.#emit({ type: "message", message: stored });
      }
      if (live) await this.#sendApp(peer, live, { t: "rcpt", ids: [m.id] }).catch(() => {});
      else this.#queueReceipt(peer, m.id);
    } else if (m.t === "mbox") {
      await this.#onAnnounce(peer, m);
    } else if (m.t === "rcpt") {
      for (const id of m.ids) {
        const out = await this.#storage.getMessage(id);
        // Only the contact a message went to can acknowledge it.
        if (out?.direction !== "out" || out.contactId !== peer.id || out.state === "delivered") continue;
        await this.#setState(out, "delivered");
        await this.#storage.deleteOutbox(id);
      }
    }
    if (!couldSend && canSend(opened.value.state)) {
      void this.#flush(peer);
      if (peer.live) void this.#announce(peer, peer.live);
    }
  }

  async #setState(m: StoredMessage, state: MessageState): Promise<void> {
    await this.#storage.setMessageState(m.id, state);
    m.state = state;
    this.#emit({ type: "message-state", contactId: m.contactId, id: m.id, state });
  }

  /**
   * Send the contact's outbox in order (single-flight per contact): over the live session, or —
   * when there is none and the mailbox is allowed (#allowMailbox) — into the contact's mailbox.
   */
  async #flush(peer: Peer): Promise<void> {
    if (peer.flushing) {
      peer.flushAgain = true;
      return;
    }
    peer.flushing = true;
    try {
      do {
        peer.flushAgain = false;
        for (const entry of await this.#storage.listOutbox(peer.id)) {
          if (peer.blocked) return;
          const live = peer.live && peer.live.session.state !== "closed" ? peer.live : undefined;
          if (live) {
            if (!peer.ratchet || !canSend(peer.ratchet.state)) return;
            if (live.sent.has(entry.messageId)) continue;
          } else if (!(await this.#mailboxRoute(peer))) return;
          const m = await this.#storage.getMessage(entry.messageId);
          if (m?.direction !== "out" || m.state === "delivered") {
            await this.#storage.deleteOutbox(entry.messageId);
            continue;
          }
          if (m.state === "failed") continue;
          if (!live) {
            if (m.state === "relayed") continue;
            if (!(await this.#depositMessage(peer, m, entry))) return;
            continue;
          }
          if (m.state === "queued") await this.#setState(m, "sending");
          try {
            await this.#serial(peer, () =>
              this.#sendApp(peer, live, { t: "msg", id: m.id, at: m.at, text: m.text }),
            );
          } catch (e) {
            this.#cfg.log(`send stopped: ${(e as Error).message}`);
            return;
          }
          live.sent.add(m.id);
          await this.#storage.putOutbox({ ...entry, attempts: entry.attempts + 1 });
          if (m.state === "sending") await this.#setState(m, "sent");
        }
      } while (peer.flushAgain);
    } finally {
      peer.flushing = false;
    }
  }

  // ---- relay mailboxes (docs/protocol/mailbox.md) ----------------------------------------------

  /** Read our queues and the contacts' queues from storage; subscribe ours; create missing ones. */
  async #loadMailboxes(): Promise<void> {
    for (const p of this.#peers.values()) {
      const rx = await this.#storage.loadSecret(SECRET.rx(p.id));
      if (rx) {
        const r = decodeRx(rx);
        wipe(rx);
        if (r.ok) this.#useRx(p, r.value);
        else this.#cfg.log(`stored mailbox of ${p.id.slice(0, 8)} unreadable: ${r.error.code}`);
      }
      const tx = await this.#storage.loadSecret(SECRET.tx(p.id));
      if (tx) {
        const r = decodeTx(tx);
        wipe(tx);
        if (r.ok) p.tx = r.value;
      }
      const intro = await this.#storage.loadSecret(SECRET.intro(p.id));
      if (intro) {
        const r = decodeIntro(intro);
        if (r.ok) p.intro = r.value;
      }
      const base = await this.#storage.loadSecret(SECRET.base(p.id));
      if (base) this.#bases.set(toHex(base), p.id);
    }
    void (async () => {
      for (const p of [...this.#peers.values()]) if (!p.rx && !p.rejected) await this.#ensureRx(p);
    })();
    for (const p of this.#peers.values()) this.#allowMailbox(p, this.#cfg.mailboxDelayMs);
  }

  #useRx(peer: Peer, rx: RxQueue): void {
    peer.rx = rx;
    this.#rids.set(toHex(rx.queue.recipientId), peer.id);
    this.#pool?.subscribe(rx.url, rx.queue);
  }

  /** Our receiving queue for this contact: NEW on our relay, secured with a sender key we hand over. */
  #ensureRx(peer: Peer): Promise<RxQueue | undefined> {
    if (peer.rx) return Promise.resolve(peer.rx);
    const pool = this.#pool;
    const url = this.#relayUrls[0];
    if (!pool || !url || peer.rejected || this.#stopped) return Promise.resolve(undefined);
    peer.rxCreating ??= (async () => {
      try {
        const client = await pool.client(url);
        const queue = await client.createQueue({ subscribe: false });
        const sender = newAuthKeyPair();
        await client.secureQueue(queue, sender.publicKey);
        const rx: RxQueue = { url, queue, senderSecret: sender.secretKey };
        if (this.#peers.get(peer.id) !== peer) {
          client.deleteQueue(queue).catch(() => {});
          return undefined;
        }
        await this.#storage.saveSecret(SECRET.rx(peer.id), encodeRx(rx));
        this.#useRx(peer, rx);
        this.#cfg.log(`mailbox for ${peer.id.slice(0, 8)} created`);
        return rx;
      } catch (e) {
        this.#cfg.log(`mailbox for ${peer.id.slice(0, 8)} not created: ${(e as RelayError).code ?? e}`);
        return undefined;
      } finally {
        peer.rxCreating = undefined;
      }
    })();
    return peer.rxCreating;
  }

  /** The contact was deleted: delete our queue at the relay and both records. */
  async #forgetMailbox(peer: Peer): Promise<void> {
    const rx = peer.rx;
    peer.rx = undefined;
    peer.tx = undefined;
    if (rx) {
      this.#rids.delete(toHex(rx.queue.recipientId));
      this.#pool?.unsubscribe(rx.url, rx.queue.recipientId);
      await this.#pool
        ?.client(rx.url)
        .then((c) => c.deleteQueue(rx.queue))
        .catch(() => {});
    }
    for (const name of [SECRET.rx, SECRET.tx, SECRET.intro, SECRET.base])
      await this.#storage.deleteSecret(name(peer.id)).catch(() => {});
    for (const [k, id] of this.#bases) if (id === peer.id) this.#bases.delete(k);
  }

  /** Tell the contact, inside the session, where to leave messages for us when we are offline. */
  async #announce(peer: Peer, live: Live): Promise<void> {
    if (live.announced) return;
    const rx = await this.#ensureRx(peer);
    if (!rx || peer.live !== live || live.announced) return;
    if (!peer.ratchet || !canSend(peer.ratchet.state)) return;
    live.announced = true;
    await this.#serial(peer, () =>
      this.#sendApp(peer, live, {
        t: "mbox",
        u: rx.url,
        s: new Uint8Array(rx.queue.senderId),
        k: new Uint8Array(rx.senderSecret),
      }),
    ).catch(() => {
      live.announced = false;
    });
  }

  /** The contact's mailbox for us (inside #serial). */
  async #onAnnounce(peer: Peer, m: { u: string; s: Uint8Array; k: Uint8Array }): Promise<void> {
    if (!/^wss?:\/\//.test(m.u)) {
      this.#cfg.log("ignored a mailbox announcement with a non-WebSocket URL");
      return;
    }
    const old = peer.tx;
    if (
      old &&
      old.url === m.u &&
      equalBytes(old.queue.senderId, m.s) &&
      equalBytes(old.queue.senderAuthSecret, m.k)
    )
      return;
    const tx: TxQueue = { url: m.u, queue: { senderId: m.s.slice(), senderAuthSecret: m.k.slice() } };
    await this.#storage.saveSecret(SECRET.tx(peer.id), encodeTx(tx));
    peer.tx = tx;
    peer.deposit = undefined;
    this.#cfg.log(`mailbox of ${peer.id.slice(0, 8)} known`);
  }

  /**
   * The outbox may go to the mailbox from `delayMs` from now on (until a live session comes up);
   * schedules a flush then.
   */
  #allowMailbox(peer: Peer, delayMs: number): void {
    if (!this.#pool || this.#stopped || peer.live) return;
    peer.mailboxAt = Math.min(peer.mailboxAt, Date.now() + delayMs);
    clearTimeout(peer.mailboxTimer);
    peer.mailboxTimer = setTimeout(() => void this.#flush(peer), Math.max(0, peer.mailboxAt - Date.now()));
  }

  /**
   * Where the outbox goes when there is no live session, if anywhere now: the contact's mailbox
   * (`tx`, from their announcement), or — first contact — their contact-address queue (`intro`).
   */
  async #mailboxRoute(peer: Peer): Promise<"tx" | "intro" | undefined> {
    if (!this.#pool || peer.blocked || peer.live || this.#stopped) return undefined;
    if (Date.now() < peer.mailboxAt) return undefined;
    const { ratchet } = await this.#serial(peer, () => this.#loadRatchet(peer));
    const sendable = ratchet !== undefined && canSend(ratchet.state);
    if (peer.tx && sendable) return "tx";
    if (peer.intro && sendable) return "intro";
    // A first contact goes through the contact address only when no live session can come up:
    // the contact is offline, or their device refused us (we are not in their contacts yet).
    if (!ratchet && !peer.intro && peer.addressRef && (!this.#reachableLive(peer) || peer.refusedUs))
      return "intro";
    return undefined;
  }

  /** Encrypt one application message with the contact's ratchet, for the mailbox (inside #serial). */
  async #seal(peer: Peer, message: AppMessage): Promise<Uint8Array | undefined> {
    const { ratchet: r } = await this.#loadRatchet(peer);
    if (!r || !canSend(r.state)) return undefined;
    const plaintext = encodeAppMessage(message);
    const { state, message: sealed } = ratchetEncrypt(r.state, plaintext, Date.now());
    wipe(plaintext);
    await this.#saveRatchet(peer, { id: r.id, state });
    return sealed;
  }

  /** One outgoing message into the contact's mailbox: `relayed` once the relay stored it. */
  async #depositMessage(peer: Peer, m: StoredMessage, entry: OutboxEntry): Promise<boolean> {
    let d = peer.deposit?.messageId === m.id ? peer.deposit : undefined;
    if (!d) {
      if (!peer.tx && !(await this.#readyIntro(peer))) return false;
      const route = peer.tx ? "tx" : "intro";
      const intro = peer.intro;
      const target = peer.tx
        ? { url: peer.tx.url, queue: peer.tx.queue }
        : intro
          ? { url: intro.url, queue: { senderId: intro.sid } }
          : undefined;
      if (!target) return false;
      await this.#setState(m, "sending");
      const sealed = await this.#serial(peer, () =>
        this.#seal(peer, { t: "msg", id: m.id, at: m.at, text: m.text }),
      );
      if (!sealed) {
        await this.#setState(m, "queued");
        return false;
      }
      let bodies: Uint8Array[];
      if (route === "tx" || !intro) bodies = ratchetBodies(sealed);
      else {
        // Until the first reply, every message carries the initial header (docs/protocol/prekeys.md).
        const wrapped = encodeInitialMessage(intro.header, sealed);
        if (wrapped.length > MAX_PART) {
          await this.#setState(m, "queued");
          this.#emit({
            type: "error",
            contactId: peer.id,
            error: {
              kind: "message-refused",
              message: `This message is too long for a first contact; it waits until ${peer.name} has replied.`,
            },
          });
          return false;
        }
        bodies = [introBody(wrapped)];
      }
      d = {
        messageId: m.id,
        route,
        target,
        bodies: bodies.map((body) => ({ body, sendId: randomBytes(SEND_ID_LENGTH) })),
        next: 0,
      };
      peer.deposit = d;
    }
    if (!(await this.#sendDeposit(peer, d))) {
      if (m.state === "sending") await this.#setState(m, "queued");
      return false;
    }
    if (peer.deposit === d) peer.deposit = undefined;
    await this.#storage.putOutbox({ ...entry, attempts: entry.attempts + 1 });
    await this.#setState(m, "relayed");
    return true;
  }

  /**
   * SEND the bodies of one deposit, each with its own send id: a retry after a lost answer gets
   * DUPLICATE ("already stored"), so nothing is stored twice. On failure: backoff and retry.
   */
  async #sendDeposit(peer: Peer, d: Deposit): Promise<boolean> {
    const pool = this.#pool;
    if (!pool) return false;
    const { url, queue } = d.target;
    try {
      const client = await pool.client(url);
      for (; d.next < d.bodies.length; d.next++) {
        const b = d.bodies[d.next]!;
        try {
          await client.send(queue, b.body, { sendId: b.sendId });
        } catch (e) {
          if (!(isRelayError(e) && e.code === "LOFT_ERR_RELAY_DUPLICATE")) throw e;
        }
      }
      if (peer.relayFailures > 0) {
        peer.relayFailures = 0;
        if (peer.presence.lastError?.kind === "relay-unreachable")
          this.#setPresence(peer, peer.presence.status, peer.presence.path);
      }
      return true;
    } catch (e) {
      const code = isRelayError(e) ? e.code : "internal";
      this.#cfg.log(`mailbox send to ${peer.id.slice(0, 8)} failed: ${code}`);
      if (code === "LOFT_ERR_RELAY_AUTH" && d.route === "intro") {
        this.#setPresence(peer, peer.presence.status, peer.presence.path, {
          kind: "relay-unreachable",
          url,
          message: `${peer.name}'s contact address no longer accepts messages. Ask them for a new link, or wait until you are both online.`,
        });
        return false;
      }
      const tx = peer.tx;
      if (code === "LOFT_ERR_RELAY_AUTH") {
        // The contact's queue is gone or no longer takes our key: wait for a new announcement.
        if (tx && tx.queue.senderId === queue.senderId) {
          peer.tx = undefined;
          peer.deposit = undefined;
          await this.#storage.deleteSecret(SECRET.tx(peer.id)).catch(() => {});
          this.#emit({
            type: "error",
            contactId: peer.id,
            error: {
              kind: "internal",
              message: `${peer.name}'s relay mailbox no longer accepts messages. They wait on this device until you are both online.`,
            },
          });
        }
        return false;
      }
      peer.relayFailures++;
      if (!peer.live) this.#setPresence(peer, "offline", undefined, relayUnreachable(url, peer.name, code));
      clearTimeout(peer.mailboxTimer);
      peer.mailboxTimer = setTimeout(() => void this.#flush(peer), this.#relayBackoff(peer.relayFailures));
      return false;
    }
  }

  #relayBackoff(failures: number): number {
    const ceiling = Math.min(
      this.#cfg.relayBackoffMaxMs,
      this.#cfg.relayBackoffInitialMs * 2 ** Math.min(failures, 16),
    );
    return Math.floor(Math.random() * ceiling) + 200;
  }

  /** A receipt for a message that came through the mailbox; sent shortly, batched. */
  #queueReceipt(peer: Peer, id: string): void {
    peer.receipts.add(id);
    if (!peer.receiptTimer)
      peer.receiptTimer = setTimeout(() => {
        peer.receiptTimer = undefined;
        void this.#sendReceipts(peer);
      }, 50);
  }

  /** Receipts go live if a session is up, else into the contact's mailbox. */
  async #sendReceipts(peer: Peer): Promise<void> {
    // A contact request, a blocked contact or a pending identity decision: nothing goes back.
    while (peer.receipts.size > 0 && !this.#stopped && !peer.blocked) {
      const ids = [...peer.receipts].slice(0, MAX_RECEIPT_IDS);
      const live = peer.live && peer.live.session.state !== "closed" ? peer.live : undefined;
      let sent = false;
      if (live) {
        sent = await this.#serial(peer, () => this.#sendApp(peer, live, { t: "rcpt", ids })).then(
          () => true,
          () => false,
        );
      } else if (peer.tx && this.#pool) {
        sent = await this.#sendByMailbox(peer, { t: "rcpt", ids });
      } else return; // sent on the next session
      if (!sent) {
        clearTimeout(peer.receiptTimer);
        peer.receiptTimer = setTimeout(
          () => {
            peer.receiptTimer = undefined;
            void this.#sendReceipts(peer);
          },
          this.#relayBackoff(Math.max(1, peer.relayFailures)),
        );
        return;
      }
      for (const id of ids) peer.receipts.delete(id);
    }
  }

  #onRelayMessage(url: string, m: RelayMessage): void {
    const address = this.#address;
    if (address && equalBytes(address.queue.recipientId, m.recipientId)) {
      this.#addressChain = this.#addressChain
        .then(() => this.#onIntroBody(url, address, m))
        .catch((e) => this.#cfg.log(`first-contact message failed: ${(e as Error).message}`));
      return;
    }
    const id = this.#rids.get(toHex(m.recipientId));
    const peer = id ? this.#peers.get(id) : undefined;
    if (!peer?.rx || !equalBytes(peer.rx.queue.recipientId, m.recipientId)) {
      this.#cfg.log("a relay message for a queue we do not know");
      return;
    }
    void this.#serial(peer, () => this.#receiveMailbox(peer, url, m)).catch((e) =>
      this.#cfg.log(`mailbox receive failed: ${(e as Error).message}`),
    );
  }

  /** One body from our mailbox for this contact (inside #serial); ACKed once processed. */
  async #receiveMailbox(peer: Peer, url: string, m: RelayMessage): Promise<void> {
    const rx = peer.rx;
    if (!rx || !equalBytes(rx.queue.recipientId, m.recipientId)) return;
    const ack = async (ids: Uint8Array[]) => {
      for (const msgId of ids) await this.#pool?.ack(url, rx.queue, msgId);
    };
    if (peer.rejected) return ack([m.msgId]); // blocked: dropped unread
    if (peer.blocked) return; // an identity decision is pending: it stays on the relay
    const item = decodeMailboxBody(m.body);
    if (!item.ok || item.value.type !== "ratchet") {
      this.#cfg.log(`dropped a mailbox body: ${item.ok ? item.value.type : item.error.code}`);
      return ack([m.msgId]);
    }
    const done = peer.pieces.add(m.msgId, item.value.part, item.value.last);
    if (!done) return;
    if (done.message) await this.#receive(peer, undefined, done.message);
    await ack(done.ids);
  }

  #onRelayState(url: string, state: RelayConnState, error?: RelayError): void {
    if (this.#stopped) return;
    if (state === "connected")
      for (const p of this.#peers.values()) {
        // Unacknowledged pieces are redelivered from the first one on the new connection.
        if (p.rx?.url === url) void this.#serial(p, async () => p.pieces.reset());
        if (p.tx?.url === url && !p.live) {
          void this.#flush(p);
          if (p.receipts.size > 0) void this.#sendReceipts(p);
        }
      }
    if (url !== this.#relayUrls[0]) return;
    if (state === "connected") {
      this.#relayDown = false;
      this.#setService({ relay: "connected" });
      if (!this.#address || this.#prekeys?.bundleSpk === 0) this.#scheduleAddressSetup(0);
    } else if (state === "connecting") {
      if (this.#service.relay !== "unreachable") this.#setService({ relay: "connecting" });
    } else {
      this.#setService({ relay: "unreachable" });
      if (!this.#relayDown) {
        this.#relayDown = true;
        this.#emit({ type: "error", error: relayUnreachable(url, undefined, error?.code) });
      }
    }
  }

  /** One application message into the contact's mailbox (`tx`), sealed now. */
  async #sendByMailbox(peer: Peer, message: AppMessage): Promise<boolean> {
    const tx = peer.tx;
    if (!tx) return false;
    const sealed = await this.#serial(peer, () => this.#seal(peer, message));
    if (!sealed) return false;
    return this.#sendDeposit(peer, {
      messageId: "",
      route: "tx",
      target: { url: tx.url, queue: tx.queue },
      bodies: ratchetBodies(sealed).map((body) => ({ body, sendId: randomBytes(SEND_ID_LENGTH) })),
      next: 0,
    });
  }

  // ---- offline first contact (docs/protocol/mailbox.md, "First contact") -------------------------

  /** Run `task` after every earlier prekey-store / contact-address task. */
  #addressSerial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#addressChain.then(task, task);
    this.#addressChain = run.catch(() => {});
    return run;
  }

  #scheduleAddressSetup(delayMs: number): void {
    if (this.#stopped || !this.#pool) return;
    clearTimeout(this.#addressTimer);
    this.#addressTimer = setTimeout(() => {
      this.#addressReady = this.#setupAddress();
    }, delayMs);
  }

  /**
   * Our prekey store (created once), our contact-address queue (created once, subscribed), the
   * bundle and one-time prekeys published there (rotated weekly, replenished when used).
   */
  #setupAddress(): Promise<void> {
    return this.#addressSerial(async () => {
      const pool = this.#pool;
      const url = this.#relayUrls[0];
      if (!pool || !url || this.#stopped) return;
      const secret = this.#user.privateIdentityKey;
      const now = Date.now();
      try {
        if (!this.#prekeys) {
          const blob = await this.#storage.loadSecret(SECRET.prekeys);
          if (blob) {
            const r = decodePrekeyState(blob);
            wipe(blob);
            if (r.ok) this.#prekeys = r.value;
            else this.#cfg.log(`stored prekeys unreadable: ${r.error.code}`);
          }
          if (!this.#prekeys) {
            const store = createPrekeyStore({
              identitySecretKey: secret,
              now,
              oneTimePrekeys: ONE_TIME_TARGET,
              oneTimeKemPrekeys: ONE_TIME_TARGET,
            });
            this.#prekeys = { store, published: 0, bundleSpk: 0 };
            await this.#savePrekeys();
          }
        }
        const pk = this.#prekeys;
        if (now - pk.store.signedPrekeys[0]!.createdAt > SIGNED_PREKEY_ROTATION_MS) {
          pk.store = rotateSignedPrekeys(pk.store, { identitySecretKey: secret, now });
          await this.#savePrekeys();
        }
        if (
          pk.store.oneTimePrekeys.length < ONE_TIME_TARGET ||
          pk.store.oneTimeKemPrekeys.length < ONE_TIME_TARGET
        ) {
          pk.store = replenishOneTimePrekeys(pk.store, {
            identitySecretKey: secret,
            oneTimePrekeys: ONE_TIME_TARGET,
            oneTimeKemPrekeys: ONE_TIME_TARGET,
          });
          await this.#savePrekeys();
        }
        if (!this.#address) {
          const blob = await this.#storage.loadSecret(SECRET.address);
          let address = blob ? decodeAddress(blob) : undefined;
          if (blob) wipe(blob);
          if (!address?.ok) {
            const client = await pool.client(url);
            const queue = await client.createQueue({ subscribe: false });
            address = { ok: true, value: { url, queue } };
            await this.#storage.saveSecret(SECRET.address, encodeAddress(address.value));
          }
          this.#address = address.value;
          pool.subscribe(address.value.url, address.value.queue);
        }
        const address = this.#address;
        const spkId = pk.store.signedPrekeys[0]!.id;
        const fresh = oneTimeEntries(pk.store, pk.published);
        if (pk.bundleSpk !== spkId || fresh.entries.length > 0) {
          const client = await pool.client(address.url);
          await client.publishPrekeys(address.queue, {
            ...(pk.bundleSpk !== spkId ? { bundle: publishedBundle(pk.store) } : {}),
            oneTimePrekeys: fresh.entries,
          });
          pk.bundleSpk = spkId;
          pk.published = fresh.last;
          await this.#savePrekeys();
          this.#cfg.log(`prekeys published (${fresh.entries.length} one-time)`);
        }
        this.#addressFailures = 0;
      } catch (e) {
        this.#addressFailures++;
        this.#cfg.log(`contact address not ready: ${(e as RelayError).code ?? (e as Error).message}`);
        this.#scheduleAddressSetup(this.#relayBackoff(this.#addressFailures));
      }
    });
  }

  async #savePrekeys(): Promise<void> {
    if (!this.#prekeys) return;
    const blob = encodePrekeyState(this.#prekeys);
    try {
      await this.#storage.saveSecret(SECRET.prekeys, blob);
    } finally {
      wipe(blob);
    }
  }

  async contactLinkRefs(): Promise<Record<string, Uint8Array> | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#addressReady,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 10_000);
      }),
    ]);
    clearTimeout(timer);
    const a = this.#address;
    if (!a || !this.#prekeys || this.#prekeys.bundleSpk === 0) return undefined;
    return { [ADDRESS_REF]: encodeAddressRef({ url: a.url, sid: a.queue.senderId }) };
  }

  /**
   * Initiator: make sure the first-contact session exists and its first message (our identity and
   * our mailbox for the contact) is on the relay, before any other message goes after it.
   */
  async #readyIntro(peer: Peer): Promise<boolean> {
    if (!peer.intro && !(await this.#startIntro(peer))) return false;
    const intro = peer.intro;
    if (!intro) return false;
    if (intro.sent) return true;
    const sent = await this.#sendDeposit(peer, {
      messageId: "",
      route: "intro",
      target: { url: intro.url, queue: { senderId: intro.sid } },
      bodies: [{ body: introBody(intro.first), sendId: randomBytes(SEND_ID_LENGTH) }],
      next: 0,
    });
    if (!sent) return false;
    intro.sent = true;
    await this.#storage.saveSecret(SECRET.intro(peer.id), encodeIntro(intro));
    this.#cfg.log(`first contact with ${peer.id.slice(0, 8)} left at their contact address`);
    return true;
  }

  /** PQXDH (core/prekey) against the bundle at the contact's address; our ratchet starts as Alice. */
  async #startIntro(peer: Peer): Promise<boolean> {
    const ref = peer.addressRef;
    const pool = this.#pool;
    if (!ref || !pool) return false;
    await this.#addressReady;
    const rx = await this.#ensureRx(peer);
    const failed = (code: string, message?: string) => {
      peer.relayFailures++;
      this.#cfg.log(`first contact with ${peer.id.slice(0, 8)} not started: ${code}`);
      if (!peer.live)
        this.#setPresence(
          peer,
          "offline",
          undefined,
          message
            ? { kind: "relay-unreachable", url: ref.url, message }
            : relayUnreachable(ref.url, peer.name, code),
        );
      clearTimeout(peer.mailboxTimer);
      peer.mailboxTimer = setTimeout(() => void this.#flush(peer), this.#relayBackoff(peer.relayFailures));
      return false;
    };
    if (!rx || !this.#prekeys) return failed("no-mailbox");
    let fetched: Awaited<ReturnType<Awaited<ReturnType<RelayPool["client"]>>["fetchPrekeys"]>>;
    try {
      fetched = await (await pool.client(ref.url)).fetchPrekeys(ref.sid);
    } catch (e) {
      const code = isRelayError(e) ? e.code : "internal";
      if (code === "LOFT_ERR_RELAY_NO_BUNDLE" || code === "LOFT_ERR_RELAY_AUTH")
        return failed(
          code,
          `${peer.name}'s contact address has no keys for a first message yet. Messages wait on this device until you are both online.`,
        );
      return failed(code);
    }
    const bundle = fetchedBundle(fetched);
    if (!bundle.ok) return failed(bundle.error.code, `${peer.name}'s contact address holds unusable keys.`);
    const plaintext = encodeAppMessage({
      t: "intro",
      i: new Uint8Array(encodeIdentity(this.#user.identity)),
      u: rx.url,
      s: new Uint8Array(rx.queue.senderId),
      k: new Uint8Array(rx.senderSecret),
    });
    const started = await this.#addressSerial(async () =>
      initiateSession({
        sender: this.#prekeys!.store,
        bundle: bundle.value,
        recipientIdentityKey: peer.key,
        plaintext,
        now: Date.now(),
      }),
    );
    wipe(plaintext);
    if (!started.ok) {
      // Keys signed by someone else than the contact of the link: never use them.
      this.#emit({
        type: "error",
        contactId: peer.id,
        error: {
          kind: "verification-failed",
          check: "identity-signature",
          message: `Verification failed: the keys at ${peer.name}'s contact address are not ${peer.name}'s. Nothing was sent.`,
        },
      });
      return failed(
        started.error.code,
        `Verification failed for ${peer.name}'s contact address. Nothing was sent.`,
      );
    }
    if (started.value.message.length > MAX_PART)
      return failed("too-large", "Your identity is too large for a first message.");
    const intro: IntroState = {
      url: ref.url,
      sid: ref.sid,
      header: started.value.header,
      first: started.value.message,
      sent: false,
    };
    await this.#serial(peer, () =>
      this.#saveRatchet(peer, {
        id: prekeyRatchetId(started.value.header.baseKey),
        state: started.value.state,
      }),
    );
    await this.#storage.saveSecret(SECRET.intro(peer.id), encodeIntro(intro));
    peer.intro = intro;
    return true;
  }

  /** The contact replied: our first contact is complete; later messages go to their mailbox. */
  async #introDone(peer: Peer): Promise<void> {
    if (!peer.intro) return;
    peer.intro = undefined;
    peer.deposit = undefined;
    await this.#storage.deleteSecret(SECRET.intro(peer.id)).catch(() => {});
  }

  /** Responder: one body from our contact-address queue (inside #addressChain); ACKed when done. */
  async #onIntroBody(url: string, address: AddressQueue, m: RelayMessage): Promise<void> {
    const ack = () => this.#pool?.ack(url, address.queue, m.msgId);
    const item = decodeMailboxBody(m.body);
    if (!item.ok || item.value.type !== "intro") return ack();
    const bytes = item.value.message;
    const initial = decodeInitialMessage(bytes);
    if (!initial.ok) return ack();
    // A repeat of a first contact already accepted: the ratchet message goes to that contact.
    const known = this.#bases.get(toHex(initial.value.header.baseKey));
    if (known) {
      const peer = this.#peers.get(known);
      // Rejected, or an identity decision pending: dropped, like a new first contact from them.
      const c = peer ? await this.#storage.getContact(known) : undefined;
      if (peer && c && c.trust !== "rejected" && !c.pending)
        await this.#serial(peer, () => this.#receive(peer, undefined, initial.value.ratchetMessage));
      return ack();
    }
    const pk = this.#prekeys;
    if (!pk) return; // not set up yet: redelivered later
    const accepted = acceptInitialMessage(pk.store, bytes, { now: Date.now() });
    if (!accepted.ok) {
      this.#cfg.log(`refused a first-contact message: ${accepted.error.code}`);
      return ack();
    }
    // The store (one-time prekeys used, replay cache) is saved only once the first contact is
    // stored: a crash before that redelivers the message, which must then still be accepted.
    const consume = async () => {
      pk.store = accepted.value.store;
      await this.#savePrekeys();
      this.#scheduleAddressSetup(0); // publish replacements for the one-time prekeys used
    };
    const done = async () => {
      await consume();
      return ack();
    };
    const app = decodeAppMessage(accepted.value.plaintext);
    wipe(accepted.value.plaintext);
    if (!app.ok || app.value.t !== "intro") return done();
    const intro = app.value;
    const identity = decodeIdentity(intro.i);
    if (!identity.ok || !equalBytes(identity.value.verified.identity_key, accepted.value.senderIdentityKey)) {
      this.#cfg.log("refused a first-contact message: the identity inside is not the sender's");
      return done();
    }
    const id = toHex(accepted.value.senderIdentityKey);
    const now = Date.now();
    let c = await this.#storage.getContact(id);
    if (c?.trust === "rejected" || c?.pending) return done(); // declined or blocked: gets nothing
    if (!c) {
      let requests = 0;
      for (const p of this.#peers.values()) if (p.request) requests++;
      if (requests >= this.#cfg.maxContactRequests) {
        this.#cfg.log("dropped a first contact from a stranger: too many contact requests waiting");
        return done();
      }
      c = {
        id,
        identity: encodeIdentity(identity.value),
        username: identity.value.verified.username,
        trust: "unknown",
        firstSeen: now,
        lastSeen: now,
        endpoints: { signaling: [], relay: [intro.u] },
        request: { at: now },
      };
      await this.#storage.addContact(c);
    } else {
      const known = decodeIdentity(c.identity);
      const d = known.ok
        ? decideIdentity({
            offered: identity.value,
            known: { identity: known.value, trust: c.trust, firstSeen: c.firstSeen, lastSeen: c.lastSeen },
            now,
          })
        : undefined;
      if (d?.kind === "updated") {
        await this.#storage.updateContactIdentity(
          id,
          encodeIdentity(identity.value),
          identity.value.verified.username,
        );
        this.#emit({ type: "contact-updated", contactId: id });
      } else if (d?.kind !== "unchanged") {
        if (d && (d.kind === "noise-key-rotated" || d.kind === "conflict" || d.kind === "downgrade")) {
          const change: PendingIdentityChange = {
            kind: d.kind,
            identity: encodeIdentity(identity.value),
            seenAt: now,
            source: "handshake",
          };
          await this.#storage.recordIdentityChange(id, change);
          this.#emit({ type: "identity-change", contactId: id, change, candidate: identity.value });
          this.contactChanged(id);
        }
        return done();
      }
    }
    const peer = this.#peerFor(c);
    peer.request = c.request !== undefined;
    peer.blocked = refusalFor(c) !== undefined;
    if (/^wss?:\/\//.test(intro.u)) {
      const tx: TxQueue = {
        url: intro.u,
        queue: { senderId: intro.s.slice(), senderAuthSecret: intro.k.slice() },
      };
      await this.#storage.saveSecret(SECRET.tx(id), encodeTx(tx));
      peer.tx = tx;
    }
    await this.#serial(peer, async () => {
      const hadRatchet = peer.ratchet !== undefined || (await this.#storage.loadSession(id)) !== undefined;
      await this.#saveRatchet(peer, {
        id: prekeyRatchetId(accepted.value.baseKey),
        state: accepted.value.state,
      });
      if (hadRatchet) this.#cfg.log(`first contact from ${id.slice(0, 8)} replaced a ratchet`);
    });
    await this.#storage.saveSecret(SECRET.base(id), accepted.value.baseKey);
    this.#bases.set(toHex(accepted.value.baseKey), id);
    await consume();
    await ack();
    this.#cfg.log(`first contact from ${id.slice(0, 8)}${peer.request ? " (a request)" : ""}`);
    if (peer.request) {
      this.#resubscribe();
      this.#emit({ type: "contact-added", contactId: id });
    } else void this.#afterAccept(peer);
  }

  /**
   * We accepted a first contact (the user accepted a request, or it came from a known contact):
   * tell them our mailbox through theirs — our first reply, which completes their side — send the
   * receipts we held back and whatever we wrote meanwhile.
   */
  async #afterAccept(peer: Peer): Promise<void> {
    const rx = await this.#ensureRx(peer);
    if (rx && peer.tx && !peer.live)
      await this.#sendByMailbox(peer, {
        t: "mbox",
        u: rx.url,
        s: new Uint8Array(rx.queue.senderId),
        k: new Uint8Array(rx.senderSecret),
      });
    if (peer.receipts.size > 0) void this.#sendReceipts(peer);
    this.#allowMailbox(peer, this.#reachableLive(peer) ? this.#cfg.mailboxDelayMs : 0);
    this.#maybeDial(peer, "changed");
  }
}

/** Close reasons of a direct attempt that say the path failed (a case for the relay). */
function isPathFailure(reason: string): boolean {
  return PATH_FAILURES.has(reason);
}

const PATH_FAILURES = new Set([
  "open-timeout",
  "ERR_ICE_CONNECTION_FAILURE",
  "ERR_ICE_CONNECTION_CLOSED",
  "ERR_CONNECTION_FAILURE",
  "ERR_WEBRTC_SUPPORT",
]);

/** Largest message reassembled from mailbox pieces (a 16 000-character text is about 66 KB). */
const MAX_MAILBOX_MESSAGE = 256 * 1024;

/** The contact-address reference from a contact's link, if it carries one. */
function addressRefOf(c: ContactRecord): { addressRef?: AddressRef } {
  const bytes = c.endpoints?.refs?.[ADDRESS_REF];
  if (!bytes) return {};
  const r = decodeAddressRef(bytes);
  return r.ok ? { addressRef: r.value } : {};
}
