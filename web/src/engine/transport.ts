/**
 * The seams where transports plug into the engine (docs/design.md, "Transports"). Everything above a
 * `Link` — the Noise session, the HELLO exchange, the per-contact ratchet, receipts, the outbox —
 * is the same whatever carries the bytes; a transport only has to produce Links.
 *
 * - `direct` (web/src/net/direct.ts): WebRTC data channels brokered by signaling;
 * - `relay` (web/src/net/relay-live.ts): a core/relay `RelayLink` over a queue pair set up through
 *   signaling, tried by `Engine.#dial` when the direct attempt has not opened within
 *   `relayFallbackMs`; its incoming links take the same `onOffer` path as direct offers;
 * - the mailbox (engine.ts, docs/protocol/mailbox.md) is not a Link: when no live session exists,
 *   the outbox is encrypted with the contact's ratchet exactly as for a live session and SENT to
 *   the contact's relay queue (`relayed`), receipts coming back live or through our own queue.
 */
import type { CryptoProvider } from "../../../core/crypto/provider.ts";
import type { LoftError } from "../../../core/errors.ts";
import type { Link } from "../../../core/link/link.ts";
import type { RecipientQueue, RelayClient, RelayMessage, SenderQueue } from "../../../core/relay/client.ts";
import type { RelayDeliveryPadding } from "../../../core/relay/protocol.ts";
import type { WebSocketLike as RelayWebSocketLike } from "../../../core/relay/ws-link.ts";
import type { SignalingClient } from "../../../core/signaling/client.ts";
import type { IceServerConfig, IceTransportPolicy, LinkPath } from "./api.ts";

/** A link being set up: `opened` resolves when bytes can flow, rejects if it never does. */
export interface DialedLink extends Link {
  readonly opened: Promise<void>;
  /** Diagnostics: the selected candidate types ("host", "srflx", "relay" = TURN), if known. */
  pathInfo?(): Promise<{ local?: string; remote?: string; protocol?: string }>;
  /** Resolves once the transport's send buffer is low again (`bufferedAmount`; WebRTC only). */
  drain?(): Promise<void>;
  /**
   * A lane beside the session for frames already sealed end to end (direct links: the
   * `loft-bulk` data channel, web/src/net/bulk-lane.ts; docs/protocol/files.md §2, "The bulk
   * lane"). Absent on the relay: there everything goes inside the session.
   */
  readonly bulk?: BulkLane;
}

/**
 * A second ordered, reliable carrier of the same link, closed with it. It authenticates nothing:
 * only frames carrying their own AEAD under a key from the ratchet go on it (files.md §3, §4).
 */
export interface BulkLane extends Link {
  /** The peer reads the lane (its hello came): frames sent now reach its engine. */
  readonly ready: boolean;
  /**
   * The largest chunk (plaintext bytes) the peer said it takes on the lane (files.md §2, since
   * session 18); undefined: it said nothing — only the default size goes to it.
   */
  readonly peerChunkBytes?: number | undefined;
  /**
   * Resolves once the peer said which chunks it takes (`peerChunkBytes` set) or the lane closed;
   * never for a peer of an older version — a caller bounds its wait.
   */
  answered(): Promise<void>;
  /** This engine reads the lane from now on (the link's session is live): tell the peer. */
  claim(): void;
  /** Resolves once the lane's send buffer is low again (or it closed). */
  drain(): Promise<void>;
}

export interface LiveTransport {
  readonly path: LinkPath;
  /**
   * Start a link to the contact with this identity key (the engine runs Noise over it); with
   * `room`, a link to a member of that room (its hash rides in the offer, docs/protocol/rooms.md §3).
   */
  dial(peerIdentityKey: Uint8Array, options?: { room?: Uint8Array }): DialedLink;
  close(): void;
  /**
   * Resolves once every link it made is closed and has handed what it had queued to the network
   * (the relay's, which also deletes its receiving queue then: web/src/net/relay-live.ts; the
   * direct one's open links closed by their sessions: web/src/net/direct.ts). The engine's `stop`
   * waits for it, bounded, before closing the transport. Never rejects.
   */
  settled?(): Promise<void>;
  /**
   * The receiving queues of its links made and not yet deleted (the live relay transport): what a
   * stop whose wait ran out leaves on the relays, kept for the next start to delete
   * (live-leftovers.ts; docs/protocol/chat.md §6, "Stopping").
   */
  undeleted?(): { url: string; queue: RecipientQueue }[];
}

export type RefuseReason = "refused" | "glare" | "cancelled" | "busy" | "no-direct";

/** A peer wants a link with us; the engine accepts or refuses (web/src/net/direct.ts). */
export interface IncomingOffer {
  /** The sender's identity key (verified by the rendezvous: a signed envelope). */
  readonly from: Uint8Array;
  /** Which transport the link runs over (`direct` when absent); the Noise prologue binds it. */
  readonly path?: LinkPath;
  /** Set when the dialer wants a room member's link (its room hash), not a contact's. */
  readonly room?: Uint8Array;
  accept(): DialedLink;
  refuse(reason: RefuseReason): void;
}

export interface TransportDeps {
  signaling: SignalingClient;
  /**
   * STUN/TURN servers for each new link: the user's (Settings) and those the signaling server
   * handed out with time-limited TURN credentials (ICE_SERVERS), read when a link starts.
   */
  iceServers: () => IceServerConfig[];
  /** `"relay"`: direct links gather TURN relay candidates only (EngineSettings). */
  iceTransportPolicy?: IceTransportPolicy;
  openTimeoutMs: number;
  onOffer: (offer: IncomingOffer) => void;
  onError: (error: Error) => void;
  /**
   * For the live relay transport: the engine's relay connections and our own relay (`url`), or
   * all of our relays in the user's order (`urls`: the first not known down is used).
   */
  relay?: { pool: RelayConnections; url: string; urls?: readonly string[] };
}

export type RelayConnState = "connecting" | "connected" | "unreachable";

export interface RelayConnectionsOptions {
  webSocket: (url: string) => RelayWebSocketLike;
  /** Request and opening timeout. */
  timeoutMs: number;
  /**
   * How long a relay or bridge WebSocket may stay connecting (its upgrade unanswered) before its
   * opening fails; absent: `timeoutMs`. While one is connecting the browser holds the page's other
   * WebSockets to that host — signaling among them (docs/decisions.md (Relay), "A relay socket's
   * opening has its own bound").
   */
  openTimeoutMs?: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** SUB window for our queues. */
  window: number;
  onMessage: (url: string, message: RelayMessage) => void;
  onState: (url: string, state: RelayConnState, error?: LoftError) => void;
  /**
   * A relay refused to SUB one of our queues. `LOFT_ERR_RELAY_AUTH` there means the queue is gone
   * (the relay lost or deleted it): its mailbox moves (docs/protocol/mailbox.md §1, "Moving off a
   * dead relay").
   */
  onSubscribeError?: (url: string, recipientId: Uint8Array, error: LoftError) => void;
  log: (message: string) => void;
  /** The engine's crypto provider: relay command authenticators (protocol 1.1) run on it. */
  crypto?: CryptoProvider;
  /**
   * How deliveries are padded (docs/protocol/relay.md §Versions): "bucket" (default: protocol
   * 1.2, falling back to 1.1 on a relay from before it) or "block" (1.1 only).
   */
  delivery?: RelayDeliveryPadding;
  /**
   * Several messages per frame (docs/protocol/relay.md §Batches): true (default: protocol 1.3 with
   * "bucket", falling back to 1.2 on a relay from before it) or false (1.2 at most).
   */
  batch?: boolean;
  /**
   * Our relay's SMP bridge (`wss://…/smp-bridge`), through which mailboxes on `smp://` servers
   * are reached (docs/protocol/smp.md, "The bridge"). Absent: `smp://` mailboxes are unreachable.
   */
  smpBridgeUrl?: string;
}

/**
 * What a mailbox needs of a server connection, whichever protocol carries it: a Loft relay
 * (`ws:`/`wss:` URL, core/relay `RelayClient`) or an SMP server through our relay's bridge
 * (`smp://` address, web/src/net/smp-mailbox.ts; docs/protocol/mailbox.md §1). Failures are
 * `LoftError`s with the relay's codes (`LOFT_ERR_RELAY_AUTH`, `…_QUOTA`, …) either way.
 */
export interface MailboxClient {
  createQueue(options?: { subscribe?: boolean }): Promise<RecipientQueue>;
  secureQueue(queue: RecipientQueue, senderAuthPublic: Uint8Array): Promise<void>;
  /** `sendId` makes a retry idempotent on a relay; SMP has none (the receiver drops duplicates). */
  send(queue: SenderQueue, body: Uint8Array, options?: { sendId?: Uint8Array }): Promise<void>;
  deleteQueue(queue: RecipientQueue): Promise<void>;
  /**
   * Relay protocol 1.3 (core/relay/client.ts): SENDs to one queue issued in one tick leave in one
   * SENDS frame, up to these limits, and a refusal stores a prefix. Absent (SMP, relays before
   * 1.3): one SEND at a time keeps a deposit's order.
   */
  readonly sendsFrame?: { count: number; frameBytes: number } | undefined;
}

/**
 * The engine's connections to relays, one per URL (web/src/net/relay-pool.ts implements it;
 * docs/protocol/mailbox.md): our own queues stay subscribed across reconnects, SENDs and prekey
 * fetches borrow a client, pushes reach `onMessage` and are acknowledged with `ack`.
 */
export interface RelayConnections {
  /** Keep a connection to `url` up (our own relay), reconnecting with backoff. */
  keep(url: string): void;
  /** True when a connection to `url` is open right now. */
  isUp(url: string): boolean;
  /**
   * True when the last attempt to reach `url` failed (or its connection dropped) and it has not
   * come back since: new queues go to another relay first (core/relay/choice.ts).
   */
  isDown(url: string): boolean;
  /** The open client for `url`, connecting if needed; rejects with a `LoftError`. */
  client(url: string): Promise<RelayClient>;
  /**
   * A mailbox connection to `url`: a relay (as `client`) or an `smp://` server through the bridge
   * (an address with a password keeps it for NEW; the connection is named without it).
   */
  mailbox(url: string): Promise<MailboxClient>;
  /** Keep `queue` subscribed on `url`, again after every reconnect. */
  subscribe(url: string, queue: RecipientQueue): void;
  unsubscribe(url: string, recipientId: Uint8Array): void;
  ack(url: string, queue: RecipientQueue, msgId: Uint8Array): Promise<void>;
  close(): void;
}

/** Builds the relay connections when the user has a relay (EngineConfig `relayConnections`). */
export type RelayConnectionsFactory = (options: RelayConnectionsOptions) => RelayConnections;

/** Builds the live transport the engine dials with (the direct one unless a test swaps it). */
export type TransportFactory = (deps: TransportDeps) => LiveTransport;
