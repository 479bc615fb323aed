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
import { canSend, type RatchetKeyPair, ratchetDecrypt, ratchetEncrypt } from "../../../core/ratchet/index.ts";
import type { RelayMessage } from "../../../core/relay/client.ts";
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
  decodeMailboxBody,
  decodeRx,
  decodeTx,
  encodeRx,
  encodeTx,
  PieceBuffer,
  type RxQueue,
  ratchetBodies,
  SECRET,
  type TxQueue,
} from "./mailbox.ts";
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
  /** While a chat runs through the relay, try a direct channel again this often. */
  directRetryMs: number;
  /**
   * An outgoing message waits this long for a live session to a contact that signaling says is
   * online before it goes to the contact's relay mailbox (at once when the contact is offline).
   */
  mailboxDelayMs: number;
  /** Relay requests and openings time out after this long. */
  relayTimeoutMs: number;
  relayBackoffInitialMs: number;
  relayBackoffMaxMs: number;
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
  directRetryMs: 60_000,
  mailboxDelayMs: 3_000,
  relayTimeoutMs: 10_000,
  relayBackoffInitialMs: 1_000,
  relayBackoffMaxMs: 15_000,
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
        relayFailures: 0,
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
      if (upgrade) this.#scheduleUpgrade(peer);
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
    peer.upgradeTimer = setTimeout(() => {
      if (peer.live?.path !== "relay") return;
      if (peer.attempt || !peer.online || peer.blocked || peer.manualOff) this.#scheduleUpgrade(peer);
      else void this.#dial(peer, true);
    }, this.#cfg.directRetryMs);
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
    clearTimeout(peer.retryTimer);
    clearTimeout(peer.mailboxTimer);
    peer.mailboxAt = Number.POSITIVE_INFINITY;
    if (path === "relay") this.#scheduleUpgrade(peer);
    else clearTimeout(peer.upgradeTimer);
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
          } else if (!(await this.#mailboxReady(peer))) return;
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
    await this.#storage.deleteSecret(SECRET.rx(peer.id)).catch(() => {});
    await this.#storage.deleteSecret(SECRET.tx(peer.id)).catch(() => {});
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

  async #mailboxReady(peer: Peer): Promise<boolean> {
    if (!this.#pool || !peer.tx || peer.blocked || peer.live || this.#stopped) return false;
    if (Date.now() < peer.mailboxAt) return false;
    const { ratchet } = await this.#serial(peer, () => this.#loadRatchet(peer));
    return ratchet !== undefined && canSend(ratchet.state);
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
      await this.#setState(m, "sending");
      const sealed = await this.#serial(peer, () =>
        this.#seal(peer, { t: "msg", id: m.id, at: m.at, text: m.text }),
      );
      if (!sealed) {
        await this.#setState(m, "queued");
        return false;
      }
      d = {
        messageId: m.id,
        bodies: ratchetBodies(sealed).map((body) => ({ body, sendId: randomBytes(SEND_ID_LENGTH) })),
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
    const tx = peer.tx;
    const pool = this.#pool;
    if (!tx || !pool) return false;
    try {
      const client = await pool.client(tx.url);
      for (; d.next < d.bodies.length; d.next++) {
        const b = d.bodies[d.next]!;
        try {
          await client.send(tx.queue, b.body, { sendId: b.sendId });
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
      if (code === "LOFT_ERR_RELAY_AUTH") {
        // The contact's queue is gone or no longer takes our key: wait for a new announcement.
        if (peer.tx === tx) {
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
      if (!peer.live)
        this.#setPresence(peer, "offline", undefined, relayUnreachable(tx.url, peer.name, code));
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
    while (peer.receipts.size > 0 && !this.#stopped) {
      const ids = [...peer.receipts].slice(0, MAX_RECEIPT_IDS);
      const live = peer.live && peer.live.session.state !== "closed" ? peer.live : undefined;
      let sent = false;
      if (live) {
        sent = await this.#serial(peer, () => this.#sendApp(peer, live, { t: "rcpt", ids })).then(
          () => true,
          () => false,
        );
      } else if (peer.tx && this.#pool) {
        const sealed = await this.#serial(peer, () => this.#seal(peer, { t: "rcpt", ids }));
        if (!sealed) return;
        sent = await this.#sendDeposit(peer, {
          messageId: "",
          bodies: ratchetBodies(sealed).map((body) => ({ body, sendId: randomBytes(SEND_ID_LENGTH) })),
          next: 0,
        });
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
}

/** Close reasons of a direct attempt that say the path failed (a case for the relay). */
function isPathFailure(reason: string): boolean {
  return reason === "open-timeout" || reason.startsWith("ERR_");
}

/** Largest message reassembled from mailbox pieces (a 16 000-character text is about 66 KB). */
const MAX_MAILBOX_MESSAGE = 256 * 1024;
