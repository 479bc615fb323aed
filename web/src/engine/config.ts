/**
 * Engine timings and hooks (engine.ts `Engine`): handshake, HELLO and heartbeat limits
 * (docs/protocol/chat.md §2, §3, §6), dial backoff and glare (chat.md §1 "Who dials, who accepts"),
 * live relay fallback and direct retry (docs/protocol/mailbox.md §6), mailbox delay and relay
 * timings (mailbox.md §3), and the injectable transports and WebSocket constructors.
 */

import type { CryptoProvider } from "../../../core/crypto/provider.ts";
import { HEAD_TIMEOUT_MS } from "../../../core/proxy/client.ts";
import type { RelayDeliveryPadding } from "../../../core/relay/protocol.ts";
import type { WebSocketLike as RelayWebSocketLike } from "../../../core/relay/ws-link.ts";
import {
  type SeenOfferStore,
  UPGRADE_TIMEOUT_MS,
  type WebSocketLike,
} from "../../../core/signaling/client.ts";
import type { FileStore } from "./files/store.ts";
import type { RelayConnectionsFactory, TransportFactory } from "./transport.ts";

/** What one crypto warm-up did (warm-up.ts; the engine logs it, `Engine.warmedUp` says it). */
export interface WarmUp {
  /** The Noise protocol name the two sessions agreed on. */
  protocol: string;
  /** The ratchet message version of the two messages. */
  messageVersion: number;
  ms: number;
}

/**
 * What an engine that still wants the warm-up gives it when its moment comes. No log: the one
 * given to `EngineWarmUp.request` says every outcome (run, failed or taken).
 */
export interface WarmUpAsk {
  crypto: CryptoProvider;
}

/** The page's crypto warm-up as the engine uses it (`EngineConfig.warmUp`; warm-up.ts `PageWarmUp`). */
export interface EngineWarmUp {
  /**
   * Run it at the page's next idle moment if `ask` then still answers (undefined: the engine no
   * longer wants it): what the page's warm-up ran, or undefined. `log`: the engine's, for what
   * became of its request (warmed up, failed, or taken from an engine before it).
   */
  request(ask: () => WarmUpAsk | undefined, log: (message: string) => void): Promise<WarmUp | undefined>;
}

export interface EngineConfig {
  /** A PING goes out this often on an idle session. */
  heartbeatIntervalMs: number;
  /** A session with nothing received for this long is dead: closed and replaced. */
  heartbeatTimeoutMs: number;
  /**
   * Signaling said the contact went offline while a session is live: a PING goes out at once, and
   * the session is dead if nothing comes back within this (chat.md §6) — a closed tab shows as
   * offline in seconds, not after the heartbeat timeout, while a link that outlived the contact's
   * signaling connection (the server restarted, say) answers and stays.
   */
  presenceProbeMs: number;
  handshakeTimeoutMs: number;
  helloTimeoutMs: number;
  /** ICE + DTLS + data channel open. */
  openTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** The higher identity key waits this long before dialing a contact that just came online. */
  glareDelayMs: number;
  /**
   * A hand-over whose commit storage refused (`SaveDeferred`) is stored again after a full-jitter
   * delay below a ceiling doubling from this (engine.ts `#storeDeferred`; chat.md §9)…
   */
  deferredSaveRetryMs: number;
  /** …up to this. */
  deferredSaveRetryMaxMs: number;
  /** Our own attempt older than this yields to an incoming offer even when our key is lower. */
  staleDialMs: number;
  /**
   * A file about to be prepared for an end on a direct link whose bulk lane has not said yet which
   * chunks it takes waits at most this long for it (files/transfers.ts; docs/protocol/files.md
   * §2, "The chunk size"): the chunk size is the transfer's for good.
   */
  laneAnswerMs: number;
  /**
   * A fetch-proxy request to a contact waits this long for its response head, then is reset with
   * `timeout` (core/proxy/client.ts `HEAD_TIMEOUT_MS`; docs/protocol/proxy.md §Streams, "The head
   * wait"): the wait runs from the REQUEST and starts again at each CREDIT for its body, at each
   * piece the page hands over and at its END; it is stopped while the page's next piece is read.
   * The page shows "No answer in time", before the Service Worker's own, longer bound would.
   */
  proxyHeadTimeoutMs: number;
  webSocket: (url: string) => WebSocketLike;
  /** WebSockets to relays (core/relay `WebSocketLink`). */
  relayWebSocket: (url: string) => RelayWebSocketLike;
  /** The live transport (direct WebRTC links); tests substitute in-memory links. */
  transport: TransportFactory;
  /**
   * Builds the connections to relays when the user has one (web/src/net/relay-pool.ts in the
   * browser): injected like the transports, so the engine names only the contract (transport.ts).
   */
  relayConnections: RelayConnectionsFactory;
  /**
   * Where signaling remembers the offers it accepted across reloads (web/src/net/seen-offers.ts
   * in the browser), for our identity `selfHex`. Absent or undefined: in memory only.
   */
  seenOffers?: (selfHex: string) => SeenOfferStore | undefined;
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
  /**
   * A relay (or SMP bridge) WebSocket still connecting after this long — its upgrade unanswered —
   * is closed and its opening fails, well before `relayTimeoutMs`: while it connects, the browser
   * holds every other WebSocket of the page to that host, signaling included (RFC 6455 §4.1).
   * Why 5 s: docs/decisions.md (Relay), "A relay socket's opening has its own bound"; the
   * signaling socket's bound too (core/signaling/client.ts `UPGRADE_TIMEOUT_MS`).
   */
  relayOpenTimeoutMs: number;
  /**
   * `stop` waits at most this long for the live relay links it closed to hand the relay what
   * they still held — the last messages, the CLOSE — before it closes the relay connections
   * (engine.ts `stop`; docs/protocol/chat.md §6, "Stopping"). One deadline for every wait of the
   * stop (messages being stored, links, sessions, the file transfers' stop, the file store's
   * release), with one exception: the record of live relay queues whose DEL went unanswered gets
   * at least `LEFTOVERS_WRITE_MS` (1 s, engine.ts) even past it. So a stop ends within this plus
   * 1 s (and the timers' own lateness on a loaded machine); the waits after that record then get
   * no time and are cut at once — the file transfers' store closed before its files are released.
   */
  stopSettleMs: number;
  relayBackoffInitialMs: number;
  relayBackoffMaxMs: number;
  /**
   * Relay deliveries: "bucket" (protocol 1.2, each padded to its body's size bucket; 1.1 with a
   * relay from before 1.2) or "block" (1.1 only: one 16 KiB block each). docs/decisions.md
   * (Relay), "The app speaks relay protocol 1.2".
   */
  relayDelivery: RelayDeliveryPadding;
  /**
   * Several messages per relay frame (protocol 1.3, with "bucket"; 1.2 with a relay from before
   * 1.3): docs/decisions.md (Relay), "Several messages per frame: relay protocol 1.3".
   */
  relayBatch: boolean;
  /**
   * One of our relays unreachable without a break for this long is dead: our mailboxes on it move
   * to another of ours (relay-health.ts, mailbox-move.ts; docs/protocol/mailbox.md §1, "Moving off
   * a dead relay").
   */
  relayDeadAfterMs: number;
  /**
   * At most this many contact requests (first contacts from strangers) wait on the user; further
   * strangers' first contacts are dropped until the user accepts or declines some.
   */
  maxContactRequests: number;
  /** Diagnostics (close reasons, codes; never secrets or content). */
  log: (message: string) => void;
  /**
   * The primitives of sessions, ratchets and first contacts (core/crypto/provider.ts), chosen by
   * the composition (web/src/chat-engine.ts: WebCrypto with noble fallback). Absent: noble.
   */
  crypto?: CryptoProvider;
  /**
   * True: the engine connects to nothing — no signaling, no relay, no data channels; the
   * transports are never built. Sends are stored and wait in the outbox, refusals and contact
   * changes work as always (web/src/offline-engine.ts: another tab runs the real one, or it
   * could not start).
   */
  offline?: boolean;
  /**
   * The page's crypto warm-up (warm-up.ts `PageWarmUp`): once started (with signaling), the engine
   * asks it to run one throwaway session in memory at an idle moment, so that a first contact's
   * session finds its code compiled; one per page (made in web/src/chat-engine.ts), shared by the
   * engines the page starts. Absent: no warm-up (tests start many engines).
   */
  warmUp?: EngineWarmUp;
  /** Where transfers and received chunks are kept (files/idb-store.ts in the browser); absent: memory. */
  fileStore?: FileStore;
  /** Largest file sent or accepted, in bytes (files/transfers.ts `DEFAULT_MAX_FILE_BYTES`). */
  maxFileBytes?: number;
  /** Members a room may have, this device included (rooms/mesh.ts; default DEFAULT_ROOM_MEMBER_CAP). */
  roomMemberCap?: number;
}

/**
 * Everything but the transports and the relay connections, which the composition supplies
 * (web/src/chat-engine.ts; web/src/net is browser-only).
 */
export const DEFAULT_ENGINE_CONFIG: Omit<EngineConfig, "transport" | "relayConnections"> = {
  heartbeatIntervalMs: 5_000,
  heartbeatTimeoutMs: 15_000,
  presenceProbeMs: 3_000,
  handshakeTimeoutMs: 10_000,
  helloTimeoutMs: 10_000,
  openTimeoutMs: 20_000,
  backoffInitialMs: 1_000,
  backoffMaxMs: 30_000,
  glareDelayMs: 1_000,
  deferredSaveRetryMs: 1_000,
  deferredSaveRetryMaxMs: 60_000,
  staleDialMs: 5_000,
  laneAnswerMs: 2_000,
  proxyHeadTimeoutMs: HEAD_TIMEOUT_MS,
  relayFallbackMs: 4_000,
  directRetryMs: 10_000,
  directRetryMaxMs: 60_000,
  mailboxDelayMs: 3_000,
  relayTimeoutMs: 10_000,
  relayOpenTimeoutMs: UPGRADE_TIMEOUT_MS,
  stopSettleMs: 3_000,
  relayBackoffInitialMs: 1_000,
  relayBackoffMaxMs: 15_000,
  relayDelivery: "bucket",
  relayBatch: true,
  relayDeadAfterMs: 48 * 3_600_000,
  maxContactRequests: 50,
  webSocket: (url) => new WebSocket(url) as unknown as WebSocketLike,
  relayWebSocket: (url) => new WebSocket(url) as unknown as RelayWebSocketLike,
  log: (m) => console.debug(`[loft engine] ${m}`),
};
