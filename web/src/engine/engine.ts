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
import { equalBytes, toHex, wipe } from "../../../core/bytes.ts";
import { decodeIdentity, encodeIdentity } from "../../../core/identity/identity.ts";
import { decideIdentity } from "../../../core/identity/tofu.ts";
import { canSend, type RatchetKeyPair, ratchetDecrypt, ratchetEncrypt } from "../../../core/ratchet/index.ts";
import { establishSession, type Session } from "../../../core/session/index.ts";
import {
  SignalingClient,
  type SignalingError,
  type SignalingEvent,
  type WebSocketLike,
} from "../../../core/signaling/client.ts";
import { randomId } from "../lib/base64url.ts";
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
  type PendingIdentityChange,
  type Presence,
  type ServiceStatus,
  type StoredMessage,
} from "./api.ts";
import { describeFailure, PEER_LEFT_ON_PURPOSE, QUIET_REASONS } from "./errors.ts";
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
  /** The live transport (direct WebRTC links); tests substitute in-memory links. */
  transport: TransportFactory;
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
  webSocket: (url) => new WebSocket(url) as unknown as WebSocketLike,
  log: (m) => console.debug(`[loft engine] ${m}`),
};

interface Live {
  session: Session;
  path: LinkPath;
  lastInbound: number;
  heartbeat: ReturnType<typeof setInterval>;
  /** Outgoing message ids sent on this session (resent on the next one until receipted). */
  sent: Set<MessageId>;
}

interface Attempt {
  link: DialedLink;
  direction: "out" | "in";
  startedAt: number;
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
    if (!settings.signalingUrl) {
      this.#setService({ signaling: "disabled" });
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
      p.attempt?.link.close("stopped");
      p.live?.session.close("stopped");
    }
    this.#direct?.close();
    this.#signaling?.close();
    await Promise.allSettled([...this.#peers.values()].map((p) => p.queue));
    this.#setService({ signaling: "disabled" });
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
          this.#dropLinks(peer, "contact-blocked");
          this.#peers.delete(contactId);
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
      if (!refusal) this.#maybeDial(p, "changed");
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
    }
  }

  // ---- dialing ---------------------------------------------------------------------------------

  #afterQueued(peer: Peer): void {
    if (peer.live) void this.#flush(peer);
    else this.#maybeDial(peer, "send");
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

  async #dial(peer: Peer): Promise<void> {
    if (peer.blocked || !this.#direct || peer.live || peer.attempt || this.#stopped) return;
    const link = this.#direct.dial(peer.key);
    const attempt: Attempt = { link, direction: "out", startedAt: Date.now() };
    peer.attempt = attempt;
    this.#setPresence(peer, "connecting");
    this.#cfg.log(`dial ${peer.id.slice(0, 8)}`);
    try {
      await link.opened;
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
    }
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
    const mine = peer.attempt;
    if (mine?.direction === "out") {
      const fresh = Date.now() - mine.startedAt < this.#cfg.staleDialMs;
      if (this.#selfId < id && fresh && mine.link.state === "connecting") {
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
    const attempt: Attempt = { link, direction: "in", startedAt: Date.now() };
    peer.attempt = attempt;
    if (!peer.live) this.#setPresence(peer, "connecting");
    const keyPair = freshRatchetKeyPair();
    try {
      await link.opened;
      const session = await establishSession({
        link,
        role: "responder",
        kind: "direct",
        self: this.#user,
        expectedIdentityKey: peer.key,
        extensions: { [RATCHET_KEY_EXTENSION]: keyPair.publicKey },
        handshakeTimeoutMs: this.#cfg.handshakeTimeoutMs,
      });
      await this.#runSession(peer, attempt, session, keyPair, "direct");
    } catch (e) {
      await this.#attemptFailed(peer, attempt, e);
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
      heartbeat: setInterval(() => this.#heartbeat(live), this.#cfg.heartbeatIntervalMs),
    };
    peer.live = live;
    peer.failures = 0;
    clearTimeout(peer.retryTimer);
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
    this.#cfg.log(`session ${peer.id.slice(0, 8)} closed: ${reason}${detail ? ` (${detail})` : ""}`);
    if (this.#stopped) return;
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

  async #receive(peer: Peer, live: Live, sealed: Uint8Array): Promise<void> {
    if (peer.live !== live) return;
    const r = peer.ratchet;
    if (!r) return;
    const couldSend = canSend(r.state);
    const opened = ratchetDecrypt(r.state, sealed, Date.now());
    if (!opened.ok) {
      if (opened.error.code === "LOFT_ERR_REPLAY") return; // a copy we already read
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
      await this.#sendApp(peer, live, { t: "rcpt", ids: [m.id] }).catch(() => {});
    } else if (m.t === "rcpt") {
      for (const id of m.ids) {
        const out = await this.#storage.getMessage(id);
        // Only the contact a message went to can acknowledge it.
        if (out?.direction !== "out" || out.contactId !== peer.id || out.state === "delivered") continue;
        await this.#setState(out, "delivered");
        await this.#storage.deleteOutbox(id);
      }
    }
    if (!couldSend && canSend(opened.value.state)) void this.#flush(peer);
  }

  async #setState(m: StoredMessage, state: MessageState): Promise<void> {
    await this.#storage.setMessageState(m.id, state);
    m.state = state;
    this.#emit({ type: "message-state", contactId: m.contactId, id: m.id, state });
  }

  /** Send the contact's outbox in order over the live session (single-flight per contact). */
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
          const live = peer.live;
          if (!live || live.session.state === "closed") return;
          if (!peer.ratchet || !canSend(peer.ratchet.state)) return;
          if (live.sent.has(entry.messageId)) continue;
          const m = await this.#storage.getMessage(entry.messageId);
          if (m?.direction !== "out" || m.state === "delivered") {
            await this.#storage.deleteOutbox(entry.messageId);
            continue;
          }
          if (m.state === "failed") continue;
          if (peer.blocked) return;
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
}
