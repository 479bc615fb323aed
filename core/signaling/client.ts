/**
 * Isomorphic client of the signaling/rendezvous service (docs/protocol/signaling.md). It runs in
 * the browser, in workers and in Node: it takes a minimal WebSocket-like object from a factory
 * (the browser passes `(url) => new WebSocket(url)`, tests pass `ws`), and uses no DOM or Node API.
 *
 * What it does (SREMP §rendezvous, §version; Loft signaling):
 * - connects, exchanges VERSION_HEADERs, registers the user's signed identity (REGISTER over the
 *   connection's CHALLENGE, naming the server's URL as audience, with an increasing timestamp)
 *   and renews before expiry at the server's `renewal_interval`;
 * - looks peers up (checking that the Identity the server returns verifies and is the one asked
 *   for: the server is not trusted), lists servers;
 * - sends OFFER / ANSWER / ICE / BYE envelopes signed with the identity key, and delivers
 *   received envelopes only after verifying them (addressed to us, signature under `from`, fresh
 *   timestamp, unseen nonce) — others are dropped and reported as `rejected` events;
 * - keeps a presence subscription, re-sent after every reconnect;
 * - reconnects with exponential backoff and full jitter, re-registering after a drop;
 * - reports failures as `LoftError`s: `code` the `LOFT_ERR_*` code, `wire` the signaling name
 *   (core/signaling/errors.ts); the words a person reads are in web/src/engine/errors.ts.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { equalBytes, toHex } from "../bytes.ts";
import { decodeVersionHeader, encodeVersionHeader, SIGNALING_VERSION } from "../codec/version.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { isLoftError, type LoftError, type LoftErrorCode } from "../errors.ts";
import { decodeIdentity, type Identity, type UserIdentity } from "../identity/identity.ts";
import {
  CLOSE,
  type ClientMessage,
  clientCodec,
  type IceServerEntry,
  type ServerMessage,
  SIGNALING,
  type SignalEnvelope,
  type SignalKind,
  serverCodec,
  signEnvelope,
  verifyEnvelope,
} from "../wire/signaling.ts";
import { signRegisterRequest } from "../wire/signed.ts";
import { signalingError, signalingErrorOfWire } from "./errors.ts";

// ---- the transport it needs ----------------------------------------------------------------------

/**
 * The part of the WebSocket API the client uses; the browser's `WebSocket` and the `ws` package's
 * both fit. Event parameters are `any` so that both libraries' handler types are assignable.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array<ArrayBuffer>): void;
  close(code?: number, reason?: string): void;
  // biome-ignore lint/suspicious/noExplicitAny: the DOM's and ws's event types must both fit
  onopen: ((event: any) => void) | null;
  // biome-ignore lint/suspicious/noExplicitAny: the DOM's and ws's event types must both fit
  onmessage: ((event: any) => void) | null;
  // biome-ignore lint/suspicious/noExplicitAny: the DOM's and ws's event types must both fit
  onclose: ((event: any) => void) | null;
  // biome-ignore lint/suspicious/noExplicitAny: the DOM's and ws's event types must both fit
  onerror: ((event: any) => void) | null;
}

export type WebSocketFactory = (url: string) => WebSocketLike;

const CONNECTING = 0;
const OPEN = 1;
/** Join failures that leave the room to be joined again after the next REGISTER. */
const RETRIED_JOIN: ReadonlySet<LoftErrorCode> = new Set([
  "LOFT_ERR_SIGNALING_UNREACHABLE",
  "LOFT_ERR_SIGNALING_CLOSED",
  "LOFT_ERR_SIGNALING_TIMEOUT",
  "LOFT_ERR_SIGNALING_NOT_REGISTERED",
  "LOFT_ERR_SIGNALING_RATE_LIMITED",
] satisfies LoftErrorCode[]);

// ---- events ----------------------------------------------------------------------------------------

export type SignalingState = "idle" | "connecting" | "connected" | "registered" | "reconnecting" | "closed";

/** Why a received envelope was dropped. */
export type RejectReason = "bad-signature" | "not-for-us" | "stale" | "replay";

export type SignalingEvent =
  | { type: "state"; state: SignalingState }
  /** A verified envelope addressed to us. */
  | { type: "signal"; envelope: SignalEnvelope }
  /** A received envelope that failed verification and was dropped. */
  | { type: "rejected"; reason: RejectReason; from: Uint8Array }
  | { type: "presence"; key: Uint8Array; online: boolean }
  | { type: "registered"; expiresAt: number }
  /** Someone joined (`present`) or left a room rendezvous we are in (docs/protocol/rooms.md §2). */
  | { type: "room-presence"; room: Uint8Array; key: Uint8Array; present: boolean }
  /** After a reconnect: we are present in `room` again, with these others there. */
  | { type: "room-members"; room: Uint8Array; members: Uint8Array[] }
  /**
   * STUN/TURN servers the operator hands registered clients (ICE_SERVERS), with time-limited TURN
   * credentials valid until `expiresAt` (ms); a later push replaces them.
   */
  | { type: "ice-servers"; servers: IceServerEntry[]; expiresAt: number }
  | { type: "error"; error: LoftError };

export type SignalingListener = (event: SignalingEvent) => void;

export interface LookupResult {
  online: boolean;
  /** The peer's verified Identity when online. */
  identity?: Identity;
  /** Its canonical bytes. */
  identityBytes?: Uint8Array;
  lastSeen?: number;
}

// ---- options -----------------------------------------------------------------------------------------

export interface SignalingClientOptions {
  /** `ws:`/`wss:` URL of the service, e.g. "wss://loft.example/signal". */
  url: string;
  /**
   * Further URLs of the same service (instances sharing state, or servers a contact listed),
   * tried in order when the current one cannot be reached (docs/protocol/signaling.md, "Several
   * servers"): the client is on one server at a time, the first reachable, and falls back to the
   * next one at once; only when none of them answers does it back off and start again from `url`.
   */
  fallbackUrls?: string[];
  user: UserIdentity;
  connect: WebSocketFactory;
  /** TTL asked for in REGISTER (the server clamps it); default 120 s. */
  ttlSeconds?: number;
  /** Register automatically on every (re)connect; default true. */
  register?: boolean;
  /**
   * REGISTER `audience`: the server this registration is for. Default: the URL connected to
   * (what the server accepts unless its operator configured other public URLs).
   */
  audience?: string;
  /** Per-request timeout; default 10 s. */
  requestTimeoutMs?: number;
  /**
   * How long the socket may stay CONNECTING (its upgrade unanswered) before the attempt counts as
   * unreachable; default 5 s (UPGRADE_TIMEOUT_MS), never more than `requestTimeoutMs`, which
   * still bounds the whole opening up to the server's VERSION_HEADER (docs/protocol/signaling.md,
   * "Several servers").
   */
  openTimeoutMs?: number;
  /** Reconnect backoff; `false` disables reconnecting. */
  reconnect?: { initialMs?: number; maxMs?: number } | false;
  /** Accepted |now − timestamp| for received envelopes; default 120 s (the server's default). */
  maxSkewMs?: number;
  /** Clock (ms since epoch), default Date.now. */
  now?: () => number;
  /**
   * Where the nonces of accepted offers outlive this client (a page reload, a new client): a
   * recorded offer replayed by the server within the freshness window is then refused as a
   * replay instead of being answered. Default: memory only.
   */
  seenOffers?: SeenOfferStore;
  /**
   * Who may see this identity online: `"public"` (default: anyone who knows the key) or
   * `"watched"` — only the identities this client watches (its contacts), the server answering
   * everyone else as if it were offline (SUBSCRIBE `only_watched`).
   */
  presence?: "public" | "watched";
  /**
   * The primitives that sign requests and envelopes and verify what peers send
   * (core/crypto/provider.ts: native Ed25519 where the platform has it); noble by default.
   */
  crypto?: CryptoProvider;
}

/** Persistence of accepted offer nonces: `[sender‖nonce key, expiry ms]` pairs. */
export interface SeenOfferStore {
  load(): [string, number][];
  save(entries: [string, number][]): void;
}

interface Pending {
  resolve: (m: ServerMessage) => void;
  reject: (e: LoftError) => void;
  timer: unknown;
}

type Distribute<T> = T extends unknown ? Omit<T, "id"> : never;
type Request = Distribute<ClientMessage>;

/**
 * The reconnect backoff when none is given (what the app uses): the longest wait before a
 * dropped client tries again is `maxMs` — tests that wait for a reconnect read it from here.
 */
export const DEFAULT_RECONNECT = { initialMs: 500, maxMs: 30_000 } as const;

/**
 * The bound of an unanswered WebSocket upgrade, one for the same idea: this client's socket
 * (`openTimeoutMs`) and the engine's relay and bridge sockets (web/src/engine/config.ts
 * `relayOpenTimeoutMs`) — docs/decisions.md (Relay), "A relay socket's opening has its own bound".
 */
export const UPGRADE_TIMEOUT_MS = 5_000;

const MAX_SEEN_NONCES = 4_096;
/** Offer nonces persisted (offers are a few per connection attempt; the window is 2 × skew). */
const MAX_SEEN_OFFERS = 256;

export class SignalingClient {
  readonly #o: Required<
    Omit<SignalingClientOptions, "reconnect" | "seenOffers" | "audience" | "fallbackUrls">
  > & {
    reconnect: { initialMs: number; maxMs: number } | false;
    audience: string | undefined;
  };
  /** `url` then `fallbackUrls`, without repeats; `#at` is the one in use. */
  readonly #urls: string[];
  #at = 0;
  /** Servers that failed in a row since the last one answered (a round ends at `#urls.length`). */
  #failedInRound = 0;
  readonly #key: Uint8Array;
  readonly #listeners = new Set<SignalingListener>();
  readonly #pending = new Map<number, Pending>();
  /** Nonces of accepted envelopes → their expiry; bounded, oldest dropped first. */
  readonly #seen = new Map<string, number>();
  /** The offers among them, persisted through `seenOffers`. */
  readonly #seenOffers = new Map<string, number>();
  readonly #offerStore: SeenOfferStore | undefined;
  #ws: WebSocketLike | undefined;
  #state: SignalingState = "idle";
  #nextId = 1;
  #attempt = 0;
  #retryTimer: unknown;
  /** Until the server's VERSION_HEADER: a server that accepts and then says nothing is down. */
  #helloTimer: unknown;
  /** Until the socket opens: an upgrade nobody answers fails sooner than the hello (`openTimeoutMs`). */
  #openTimer: unknown;
  #renewTimer: unknown;
  #goingAwayDelay: number | undefined;
  #watched: Uint8Array[] = [];
  /** Frames read so far (their order), and the frame each SUBSCRIBE answer came in. */
  #framesRead = 0;
  readonly #answeredAt = new WeakMap<object, number>();
  /** The last presence push per key (hex), with the frame it came in. */
  readonly #pushed = new Map<string, { online: boolean; at: number }>();
  /** Room rendezvous we are in (hex hash → [hash, max]); joined again after each REGISTER. */
  readonly #rooms = new Map<string, { room: Uint8Array; max: number }>();
  #registered = false;
  #stopped = false;
  #helloDone = false;
  #everConnected = false;
  #readyWaiters: { resolve: () => void; reject: (e: LoftError) => void }[] = [];
  /** This connection's CHALLENGE (docs/protocol/signaling.md, "Replay protection"). */
  #challenge: Uint8Array | undefined;
  #challengeWaiters: { resolve: (c: Uint8Array) => void; reject: (e: LoftError) => void }[] = [];
  /** Last REGISTER timestamp sent: the next must be greater (the server refuses a repeat). */
  #lastRegisterAt = 0;
  /** Received envelopes, checked in order (`#queueEnvelope`). */
  #envelopes: Promise<void> = Promise.resolve();

  constructor(options: SignalingClientOptions) {
    this.#o = {
      url: options.url,
      user: options.user,
      connect: options.connect,
      ttlSeconds: options.ttlSeconds ?? 120,
      register: options.register ?? true,
      audience: options.audience,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      openTimeoutMs: options.openTimeoutMs ?? UPGRADE_TIMEOUT_MS,
      reconnect:
        options.reconnect === false
          ? false
          : {
              initialMs: options.reconnect?.initialMs ?? DEFAULT_RECONNECT.initialMs,
              maxMs: options.reconnect?.maxMs ?? DEFAULT_RECONNECT.maxMs,
            },
      maxSkewMs: options.maxSkewMs ?? 120_000,
      now: options.now ?? Date.now,
      presence: options.presence ?? "public",
      crypto: options.crypto ?? nobleCrypto,
    };
    this.#urls = [options.url];
    for (const u of options.fallbackUrls ?? []) if (u && !this.#urls.includes(u)) this.#urls.push(u);
    this.#key = options.user.identity.verified.identity_key;
    this.#offerStore = options.seenOffers;
    if (this.#offerStore) {
      let entries: [string, number][] = [];
      try {
        entries = this.#offerStore.load();
      } catch {}
      const now = this.#o.now();
      for (const entry of Array.isArray(entries) ? entries.slice(-MAX_SEEN_OFFERS) : []) {
        const [key, expires] = Array.isArray(entry) ? entry : [];
        if (typeof key === "string" && key.length <= 128 && typeof expires === "number" && expires > now) {
          this.#seenOffers.set(key, expires);
          this.#seen.set(key, expires);
        }
      }
    }
  }

  get state(): SignalingState {
    return this.#state;
  }

  /** The server in use (or being tried): `url` or one of `fallbackUrls`. */
  get url(): string {
    return this.#urls[this.#at]!;
  }

  /** Our identity key (the contact id). */
  get identityKey(): Uint8Array {
    return this.#key;
  }

  on(listener: SignalingListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Connect (and register unless `register: false`). Resolves once ready; rejects with
   * UNREACHABLE if the first attempt (every server of the service, in order) fails — the client
   * keeps retrying in the background unless reconnecting is disabled or `close()` is called.
   */
  start(): Promise<void> {
    if (this.#stopped) return Promise.reject(signalingError("CLOSED", "client closed"));
    const ready = this.ready();
    if (this.#state === "idle") this.#open();
    return ready;
  }

  /** Resolves when connected (and registered, if registering); rejects on the next failure. */
  ready(): Promise<void> {
    if (this.#isReady()) return Promise.resolve();
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /** Stop for good: unregister is implicit (the server drops the registration with the socket). */
  close(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#helloTimer);
    clearTimeout(this.#openTimer);
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws) {
      this.#detach(ws);
      try {
        ws.close(CLOSE.NORMAL, "client closed");
      } catch {}
    }
    const closed = signalingError("CLOSED", "client closed");
    for (const w of this.#challengeWaiters.splice(0)) w.reject(closed);
    this.#failAll(closed);
    this.#setState("closed");
  }

  // ---- requests ------------------------------------------------------------------------------------

  /** Look a peer up by identity key; verifies the returned Identity is the one asked for. */
  async lookup(identityKey: Uint8Array): Promise<LookupResult> {
    const reply = await this.#request({
      t: "LOOKUP_REQUEST",
      target_identity: identityKey as Uint8Array<ArrayBuffer>,
      list_all: false,
    });
    if (reply.t !== "LOOKUP_RESPONSE") throw this.#unexpected(reply);
    const peer = reply.peers[0];
    if (!peer) return { online: false };
    const identity = await decodeIdentity(this.#o.crypto, peer.identity);
    if (!identity.ok || !equalBytes(identity.value.verified.identity_key, identityKey))
      throw signalingError(
        "BAD_PEER_IDENTITY",
        "the returned identity does not verify or is not the one asked for",
      );
    return {
      online: peer.online,
      identity: identity.value,
      identityBytes: peer.identity,
      lastSeen: peer.last_seen,
    };
  }

  /** Every registered peer, when the operator enabled it (else LIST_ALL_DISABLED); unverifiable ones are skipped. */
  async listAll(): Promise<{ identity: Identity; identityBytes: Uint8Array; online: boolean }[]> {
    const reply = await this.#request({ t: "LOOKUP_REQUEST", list_all: true });
    if (reply.t !== "LOOKUP_RESPONSE") throw this.#unexpected(reply);
    const out: { identity: Identity; identityBytes: Uint8Array; online: boolean }[] = [];
    for (const p of reply.peers) {
      const identity = await decodeIdentity(this.#o.crypto, p.identity);
      if (identity.ok) out.push({ identity: identity.value, identityBytes: p.identity, online: p.online });
    }
    return out;
  }

  async listServers(): Promise<string[]> {
    const reply = await this.#request({ t: "LIST_SERVERS_REQUEST" });
    if (reply.t !== "LIST_SERVERS_RESPONSE") throw this.#unexpected(reply);
    return reply.servers;
  }

  /**
   * Sign and send one envelope. Resolves when the server handed it to the recipient's
   * connection; rejects with PEER_OFFLINE (or another typed error).
   */
  async signal(to: Uint8Array, kind: SignalKind, payload: Uint8Array): Promise<void> {
    const envelope = await signEnvelope(this.#o.crypto, this.#o.user.privateIdentityKey, {
      from: this.#key as Uint8Array<ArrayBuffer>,
      to: to as Uint8Array<ArrayBuffer>,
      kind,
      payload: payload as Uint8Array<ArrayBuffer>,
      timestamp: this.#o.now(),
      nonce: randomBytes(SIGNALING.NONCE_BYTES) as Uint8Array<ArrayBuffer>,
    });
    const reply = await this.#request({ t: "SIGNAL", envelope });
    if (reply.t !== "SIGNAL_ACK") throw this.#unexpected(reply);
  }

  /**
   * Watch these identity keys' presence (replaces the previous set; kept across reconnects).
   * Resolves with their current states; later changes arrive as `presence` events.
   */
  async subscribe(keys: Uint8Array[]): Promise<{ key: Uint8Array; online: boolean }[]> {
    this.#watched = keys.map((k) => k.slice());
    const watched = new Set(keys.map((k) => toHex(k)));
    for (const k of this.#pushed.keys()) if (!watched.has(k)) this.#pushed.delete(k);
    if (!this.#helloDone) return [];
    return this.#sendSubscribe();
  }

  /**
   * Be present in the room rendezvous `room` (a 32-byte hash; docs/protocol/rooms.md §2) and learn
   * who else is; kept across reconnects (joined again after each REGISTER, with a `room-members`
   * event). Rejects with ROOM_FULL when `max` (or the server's cap) would be passed.
   */
  async joinRoom(room: Uint8Array, max: number): Promise<Uint8Array[]> {
    const hex = toHex(room);
    this.#rooms.set(hex, { room: room.slice(), max });
    try {
      return await this.#sendJoin(room, max);
    } catch (e) {
      // A refusal (full, too many) is final; a dropped connection is retried after the next REGISTER.
      if (isLoftError(e) && !RETRIED_JOIN.has(e.code)) this.#rooms.delete(hex);
      throw e;
    }
  }

  /** Leave a room rendezvous (the others are told); nothing happens if we were not in it. */
  async leaveRoom(room: Uint8Array): Promise<void> {
    this.#rooms.delete(toHex(room));
    if (!this.#helloDone) return;
    const reply = await this.#request({ t: "ROOM_LEAVE", room: room as Uint8Array<ArrayBuffer> });
    if (reply.t !== "ROOM_LEAVE_RESPONSE") throw this.#unexpected(reply);
  }

  async #sendJoin(room: Uint8Array, max: number): Promise<Uint8Array[]> {
    const reply = await this.#request({ t: "ROOM_JOIN", room: room as Uint8Array<ArrayBuffer>, max });
    if (reply.t !== "ROOM_MEMBERS") throw this.#unexpected(reply);
    return reply.members.filter((k) => !equalBytes(k, this.#key));
  }

  /** After a REGISTER on a new connection: be present in our rooms again. */
  #rejoinRooms(): void {
    for (const { room, max } of this.#rooms.values())
      this.#sendJoin(room, max).then(
        (members) => this.#emit({ type: "room-members", room, members }),
        (e: LoftError) => this.#emit({ type: "error", error: e }),
      );
  }

  /** Drop the registration but keep the connection (e.g. the user went invisible). */
  async unregister(): Promise<void> {
    this.#registered = false;
    clearTimeout(this.#renewTimer);
    const reply = await this.#request({ t: "UNREGISTER" });
    if (reply.t !== "UNREGISTER_RESPONSE") throw this.#unexpected(reply);
  }

  /** Register now (done automatically unless `register: false`). */
  async register(): Promise<number> {
    const challenge = await this.#waitChallenge();
    const id = this.#takeId();
    // Strictly increasing even if the clock steps back between renewals.
    const timestamp = Math.max(this.#o.now(), this.#lastRegisterAt + 1);
    this.#lastRegisterAt = timestamp;
    const req = await signRegisterRequest(this.#o.crypto, this.#o.user, {
      ttl_seconds: this.#o.ttlSeconds,
      timestamp,
      nonce: challenge,
      id,
      audience: this.#o.audience ?? this.url,
    });
    const reply = await this.#request(req, id);
    if (reply.t !== "REGISTER_RESPONSE" || !reply.success) throw this.#unexpected(reply);
    const fresh = !this.#registered;
    this.#registered = true;
    // A new registration (a new connection, or after one expired) is in no room yet.
    if (fresh) this.#rejoinRooms();
    this.#scheduleRenewal(reply.renewal_interval);
    this.#emit({ type: "registered", expiresAt: reply.expires_at });
    this.#setState("registered");
    this.#resolveReady();
    return reply.expires_at;
  }

  // ---- internals ------------------------------------------------------------------------------------

  #waitChallenge(): Promise<Uint8Array> {
    if (this.#challenge) return Promise.resolve(this.#challenge);
    if (!this.#ws || !this.#helloDone)
      return Promise.reject(signalingError("UNREACHABLE", "not connected to the signaling server"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#challengeWaiters = this.#challengeWaiters.filter((w) => w !== waiter);
        reject(signalingError("TIMEOUT", "the server sent no CHALLENGE"));
      }, this.#o.requestTimeoutMs);
      const waiter = {
        resolve: (c: Uint8Array) => {
          clearTimeout(timer);
          resolve(c);
        },
        reject: (e: LoftError) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#challengeWaiters.push(waiter);
    });
  }

  #isReady(): boolean {
    return this.#o.register ? this.#state === "registered" : this.#state === "connected";
  }

  #emit(event: SignalingEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch {
        // A listener's bug must not break the connection.
      }
    }
  }

  #setState(state: SignalingState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit({ type: "state", state });
  }

  #resolveReady(): void {
    for (const w of this.#readyWaiters.splice(0)) w.resolve();
  }

  #rejectReady(e: LoftError): void {
    for (const w of this.#readyWaiters.splice(0)) w.reject(e);
  }

  #takeId(): number {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff_ffff ? 1 : this.#nextId + 1;
    return id;
  }

  #unexpected(reply: ServerMessage): LoftError {
    return signalingError("PROTOCOL", `unexpected reply ${reply.t}`);
  }

  #request(message: Request | ClientMessage, presetId?: number): Promise<ServerMessage> {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN || !this.#helloDone)
      return Promise.reject(signalingError("UNREACHABLE", "not connected to the signaling server"));
    const id = presetId ?? this.#takeId();
    const bytes = clientCodec.encode({ ...message, id } as ClientMessage);
    return new Promise<ServerMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(signalingError("TIMEOUT", `no answer to ${message.t}`));
      }, this.#o.requestTimeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      ws.send(bytes as Uint8Array<ArrayBuffer>);
    });
  }

  #failAll(e: LoftError): void {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(e);
    }
  }

  #scheduleRenewal(renewalSeconds: number): void {
    clearTimeout(this.#renewTimer);
    this.#renewTimer = setTimeout(() => {
      if (!this.#registered || this.#stopped) return;
      this.register().catch((e: LoftError) => {
        this.#emit({ type: "error", error: e });
        // Try again soon; the registration may still be alive for another half TTL.
        if (this.#registered) this.#scheduleRenewal(Math.max(1, Math.floor(renewalSeconds / 4)));
      });
    }, Math.max(1, renewalSeconds) * 1000);
  }

  async #sendSubscribe(): Promise<{ key: Uint8Array; online: boolean }[]> {
    const reply = await this.#request({
      t: "SUBSCRIBE",
      keys: this.#watched as Uint8Array<ArrayBuffer>[],
      ...(this.#o.presence === "watched" ? { only_watched: true } : {}),
    });
    if (reply.t !== "PRESENCE") throw this.#unexpected(reply);
    // The answer is read in a later microtask than its frame: a push read in between is newer
    // (the server computed the answer before sending it) and wins. Without this, an answer made
    // before our REGISTER was verified ("offline": a watched-only contact does not show to an
    // unregistered viewer) overwrote the push that followed the REGISTER ("online"), and the
    // contact stayed offline here although it was online (docs/protocol/signaling.md, "SUBSCRIBE").
    const at = this.#answeredAt.get(reply) ?? Number.POSITIVE_INFINITY;
    return reply.peers.map((p) => {
      const pushed = this.#pushed.get(toHex(p.key));
      return pushed && pushed.at > at ? { key: p.key, online: pushed.online } : p;
    });
  }

  #open(): void {
    if (this.#stopped) return;
    this.#setState(this.#everConnected ? "reconnecting" : "connecting");
    this.#helloDone = false;
    this.#challenge = undefined;
    let ws: WebSocketLike;
    try {
      ws = this.#o.connect(this.url);
    } catch (e) {
      this.#onDrop(signalingError("UNREACHABLE", (e as Error).message ?? "cannot connect"));
      return;
    }
    this.#ws = ws;
    // A server that takes the connection but never opens with its VERSION_HEADER (hung, or a
    // black hole on the way) counts as unreachable after a request timeout, so the next server
    // of the service is tried (signaling.md, "Several servers").
    clearTimeout(this.#helloTimer);
    this.#helloTimer = setTimeout(() => {
      if (this.#helloDone) return;
      this.#abandon(
        ws,
        signalingError("UNREACHABLE", "the signaling server did not answer"),
        "no VERSION_HEADER",
      );
    }, this.#o.requestTimeoutMs);
    // The upgrade alone has a shorter bound: while this socket is CONNECTING the browser holds the
    // page's other WebSockets to the host (RFC 6455 §4.1) — the relay and SMP bridge ones when one
    // host serves them all (docs/decisions.md (Relay), "A relay socket's opening has its own
    // bound") — and a server that swallows the upgrade (a black hole, a middlebox) would hold the
    // next server of the service and the backoff back for the whole request timeout.
    clearTimeout(this.#openTimer);
    if (this.#o.openTimeoutMs > 0 && this.#o.openTimeoutMs < this.#o.requestTimeoutMs)
      this.#openTimer = setTimeout(() => {
        if (ws.readyState !== CONNECTING) return;
        const why = `the signaling server did not answer the upgrade in ${this.#o.openTimeoutMs} ms`;
        this.#abandon(ws, signalingError("UNREACHABLE", why), "upgrade unanswered");
      }, this.#o.openTimeoutMs);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      clearTimeout(this.#openTimer);
      if (this.#ws !== ws) return;
      ws.send(encodeVersionHeader(SIGNALING_VERSION) as Uint8Array<ArrayBuffer>);
    };
    ws.onmessage = (event: { data: unknown }) => {
      if (this.#ws !== ws) return;
      const data = event.data;
      const bytes =
        data instanceof ArrayBuffer ? new Uint8Array(data) : data instanceof Uint8Array ? data : undefined;
      if (!bytes) return this.#protocolFailure(ws, CLOSE.UNSUPPORTED_DATA, "binary frames only");
      this.#onFrame(ws, bytes);
    };
    ws.onerror = () => {
      // The close event follows with the code; nothing to do here.
    };
    ws.onclose = (event: { code?: number; reason?: string }) => {
      if (this.#ws !== ws) return;
      this.#ws = undefined;
      this.#detach(ws);
      const code = event.code ?? 1006;
      const error =
        code === CLOSE.UNSUPPORTED_VERSION
          ? signalingError("UNSUPPORTED_VERSION", "the server does not speak this protocol version")
          : this.#helloDone
            ? signalingError("CLOSED", `connection closed (${code})`)
            : signalingError("UNREACHABLE", `cannot reach the signaling server (${code})`);
      this.#onDrop(error);
    };
  }

  #detach(ws: WebSocketLike): void {
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    // Not null: closing a socket that is still connecting makes `ws` (Node) emit "error", and an
    // "error" event with no listener is thrown. Errors of a socket we let go of say nothing new.
    ws.onerror = ignoreError;
  }

  #protocolFailure(ws: WebSocketLike, code: number, why: string): void {
    this.#emit({ type: "error", error: signalingError("PROTOCOL", why) });
    try {
      ws.close(code, why);
    } catch {}
  }

  #onDrop(error: LoftError): void {
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#helloTimer);
    clearTimeout(this.#openTimer);
    this.#registered = false;
    this.#helloDone = false;
    this.#challenge = undefined;
    for (const w of this.#challengeWaiters.splice(0)) w.reject(error);
    this.#failAll(error);
    if (this.#failOver(error)) return;
    this.#rejectReady(error);
    this.#emit({ type: "error", error });
    if (this.#stopped) return;
    if (this.#o.reconnect === false) {
      this.#setState("closed");
      this.#stopped = true;
      return;
    }
    this.#setState("reconnecting");
    const { initialMs, maxMs } = this.#o.reconnect;
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(this.#attempt, 20));
    // Full jitter, so a restarted server is not met by every client at once (docs/protocol/
    // signaling.md, reconnect); GOING_AWAY's hint wins when the server gave one.
    const delay = this.#goingAwayDelay ?? Math.floor(Math.random() * ceiling) + 1;
    this.#goingAwayDelay = undefined;
    this.#attempt++;
    this.#retryTimer = setTimeout(() => this.#open(), delay);
  }

  /**
   * This server could not be reached (or speaks another version): with another server of the
   * service still untried in this round, go to it at once — no error event, `ready()` still
   * pending, as one attempt that took longer (signaling.md, "Several servers"). A round that
   * failed everywhere ends here: back to the first server, and the caller backs off.
   */
  #failOver(error: LoftError): boolean {
    if (this.#urls.length < 2 || this.#stopped || this.#o.reconnect === false) return false;
    if (
      error.code !== "LOFT_ERR_SIGNALING_UNREACHABLE" &&
      error.code !== "LOFT_ERR_UNSUPPORTED_VERSION" &&
      error.code !== "LOFT_ERR_SIGNALING_UNAVAILABLE"
    )
      return false;
    this.#failedInRound++;
    if (this.#failedInRound >= this.#urls.length) {
      this.#failedInRound = 0;
      this.#at = 0;
      return false;
    }
    this.#at = (this.#at + 1) % this.#urls.length;
    this.#setState(this.#everConnected ? "reconnecting" : "connecting");
    this.#retryTimer = setTimeout(() => this.#open(), 0);
    return true;
  }

  #onFrame(ws: WebSocketLike, bytes: Uint8Array): void {
    if (!this.#helloDone) {
      const header = decodeVersionHeader(bytes, SIGNALING_VERSION);
      if (!header.ok) {
        const code =
          header.error.code === "LOFT_ERR_UNSUPPORTED_VERSION"
            ? CLOSE.UNSUPPORTED_VERSION
            : CLOSE.VERSION_EXPECTED;
        this.#protocolFailure(ws, code, "the server did not open with a signaling 1.1 VERSION_HEADER");
        return;
      }
      clearTimeout(this.#helloTimer);
      this.#helloDone = true;
      this.#everConnected = true;
      this.#failedInRound = 0;
      this.#setState("connected");
      this.#afterHello();
      return;
    }
    const decoded = serverCodec.decode(bytes);
    if (!decoded.ok) {
      // A frame we cannot read: fail the request it answers, if any, and carry on.
      const error = signalingError("PROTOCOL", decoded.error.message);
      const p = decoded.id === undefined ? undefined : this.#pending.get(decoded.id);
      if (p && decoded.id !== undefined) this.#settle(decoded.id, p, undefined, error);
      else this.#emit({ type: "error", error });
      return;
    }
    const m = decoded.value;
    const at = ++this.#framesRead;
    switch (m.t) {
      case "SIGNAL":
        if (m.id === undefined) {
          this.#queueEnvelope(m.envelope);
          return;
        }
        break;
      case "PRESENCE":
        if (m.id === undefined) {
          for (const p of m.peers) {
            if (this.#watched.some((k) => equalBytes(k, p.key)))
              this.#pushed.set(toHex(p.key), { online: p.online, at });
            this.#emit({ type: "presence", key: p.key, online: p.online });
          }
          return;
        }
        this.#answeredAt.set(m, at);
        break;
      case "REGISTRATION_ENDED":
        clearTimeout(this.#renewTimer);
        this.#registered = false;
        if (m.reason === "expired" && this.#o.register) {
          // We missed a renewal (a suspended tab, a slow network): register again.
          this.register().catch((e: LoftError) => this.#emit({ type: "error", error: e }));
        } else {
          this.#setState("connected");
          this.#emit({ type: "error", error: signalingError("REPLACED", "registered from elsewhere") });
        }
        return;
      case "GOING_AWAY":
        this.#goingAwayDelay = m.reconnect_after_ms;
        this.#attempt = 0;
        return;
      case "ROOM_PRESENCE":
        this.#emit({ type: "room-presence", room: m.room, key: m.key, present: m.present });
        return;
      case "ICE_SERVERS":
        this.#emit({ type: "ice-servers", servers: m.servers, expiresAt: m.expires_at });
        return;
      case "CHALLENGE":
        this.#challenge = m.challenge.slice();
        for (const w of this.#challengeWaiters.splice(0)) w.resolve(this.#challenge);
        return;
      default:
        break;
    }
    if (m.id === undefined) {
      if (m.t === "ERROR") this.#emit({ type: "error", error: signalingErrorOfWire(m.code, m.message) });
      return;
    }
    const p = this.#pending.get(m.id);
    if (!p) return;
    if (m.t !== "ERROR") {
      this.#settle(m.id, p, m, undefined);
      return;
    }
    const error = signalingErrorOfWire(m.code, m.message);
    // This server cannot reach its shared state (Redis): with another server configured, leave it
    // for the next one at once instead of asking it again (docs/operations.md, "Redis down: one
    // rule"; signaling.md, "Several servers"). The request fails over with the connection.
    if (m.code === "UNAVAILABLE" && this.#urls.length > 1 && this.#o.reconnect !== false) {
      this.#abandon(ws, error, "server unavailable");
      return;
    }
    this.#settle(m.id, p, undefined, error);
  }

  /**
   * Leave `ws`, closed with `reason`, as if it had dropped with `error` — unless it is no longer
   * the connection in use. One way out for each give-up: the hello and upgrade timeouts, a server
   * that said UNAVAILABLE.
   */
  #abandon(ws: WebSocketLike, error: LoftError, reason: string): void {
    if (this.#ws !== ws) return;
    this.#ws = undefined;
    this.#detach(ws);
    try {
      ws.close(CLOSE.NORMAL, reason);
    } catch {}
    this.#onDrop(error);
  }

  #settle(id: number, p: Pending, value: ServerMessage | undefined, error: LoftError | undefined): void {
    clearTimeout(p.timer);
    this.#pending.delete(id);
    if (error) p.reject(error);
    else p.resolve(value!);
  }

  #afterHello(): void {
    const tasks: Promise<unknown>[] = [];
    if (this.#o.register) tasks.push(this.register());
    else this.#resolveReady();
    // "watched" presence is set by a SUBSCRIBE, even an empty one (then nobody sees us).
    let subscribed = true;
    if (this.#watched.length > 0 || this.#o.presence === "watched")
      tasks.push(
        this.#sendSubscribe().then(
          (states) => {
            for (const s of states) this.#emit({ type: "presence", key: s.key, online: s.online });
          },
          (e: unknown) => {
            subscribed = false;
            throw e;
          },
        ),
      );
    const ws = this.#ws;
    Promise.all(tasks).then(
      () => {
        this.#attempt = 0;
      },
      (e: LoftError) => {
        // The connection was left meanwhile (dropped, or abandoned for the next server): what
        // follows belongs to the next one.
        if (this.#ws !== ws) return;
        this.#emit({ type: "error", error: e });
        this.#rejectReady(e);
        // A busy server (rate or verification budget of our network address) or one that cannot
        // reach its shared state (Redis; docs/protocol/signaling.md, "Several instances") asks us
        // to come back shortly: try again on this connection after a jittered pause.
        // Both halves are tried again (a REGISTER that went through is then a renewal), so a
        // SUBSCRIBE refused while the REGISTER passed is not left unsent.
        if (
          (e.code === "LOFT_ERR_SIGNALING_BUSY" ||
            e.code === "LOFT_ERR_SIGNALING_RATE_LIMITED" ||
            e.code === "LOFT_ERR_SIGNALING_UNAVAILABLE") &&
          (this.#o.register || !subscribed)
        )
          this.#retryTimer = setTimeout(
            () => {
              if (this.#ws === ws && this.#helloDone && !this.#stopped && (!this.#registered || !subscribed))
                this.#afterHello();
            },
            1_000 + Math.floor(Math.random() * 4_000),
          );
      },
    );
  }

  #rememberOffer(key: string, expires: number, now: number): void {
    for (const [k, until] of this.#seenOffers)
      if (until <= now || this.#seenOffers.size >= MAX_SEEN_OFFERS) this.#seenOffers.delete(k);
    this.#seenOffers.set(key, expires);
    try {
      this.#offerStore?.save([...this.#seenOffers]);
    } catch {
      // Storage full or unavailable: the in-memory check still holds for this client.
    }
  }

  /**
   * Envelopes are checked one at a time in arrival order: verification is async, and an answer's
   * ICE candidates must not overtake the answer itself.
   */
  #queueEnvelope(e: SignalEnvelope) {
    this.#envelopes = this.#envelopes.then(
      () => this.#onEnvelope(e),
      () => this.#onEnvelope(e),
    );
  }

  /** Recipient-side checks (docs/protocol/signaling.md, "SIGNAL": "The recipient verifies again"). */
  async #onEnvelope(e: SignalEnvelope): Promise<void> {
    const reject = (reason: RejectReason) => this.#emit({ type: "rejected", reason, from: e.from });
    if (!equalBytes(e.to, this.#key)) return reject("not-for-us");
    if (!(await verifyEnvelope(this.#o.crypto, e)).ok) return reject("bad-signature");
    const now = this.#o.now();
    if (Math.abs(now - e.timestamp) > this.#o.maxSkewMs) return reject("stale");
    for (const [k, expires] of this.#seen) {
      if (expires > now && this.#seen.size < MAX_SEEN_NONCES) break;
      this.#seen.delete(k);
    }
    const nonceKey = `${toHex(e.from)}:${toHex(e.nonce)}`;
    if (this.#seen.has(nonceKey) || this.#seenOffers.has(nonceKey)) return reject("replay");
    const expires = now + 2 * this.#o.maxSkewMs;
    this.#seen.set(nonceKey, expires);
    if (e.kind === "offer" && this.#offerStore) this.#rememberOffer(nonceKey, expires, now);
    this.#emit({ type: "signal", envelope: e });
  }
}

function ignoreError(): void {}
