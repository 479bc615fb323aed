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
import type { Link } from "../../../core/link/link.ts";
import type { SignalingClient } from "../../../core/signaling/client.ts";
import type { RelayPool } from "../net/relay-pool.ts";
import type { IceServerConfig, IceTransportPolicy, LinkPath } from "./api.ts";

/** A link being set up: `opened` resolves when bytes can flow, rejects if it never does. */
export interface DialedLink extends Link {
  readonly opened: Promise<void>;
  /** Diagnostics: the selected candidate types ("host", "srflx", "relay" = TURN), if known. */
  pathInfo?(): Promise<{ local?: string; remote?: string; protocol?: string }>;
}

export interface LiveTransport {
  readonly path: LinkPath;
  /** Start a link to the contact with this identity key (the engine runs Noise over it). */
  dial(peerIdentityKey: Uint8Array): DialedLink;
  close(): void;
}

export type RefuseReason = "refused" | "glare" | "cancelled" | "busy";

/** A peer wants a link with us; the engine accepts or refuses (web/src/net/direct.ts). */
export interface IncomingOffer {
  /** The sender's identity key (verified by the rendezvous: a signed envelope). */
  readonly from: Uint8Array;
  /** Which transport the link runs over (`direct` when absent); the Noise prologue binds it. */
  readonly path?: LinkPath;
  accept(): DialedLink;
  refuse(reason: RefuseReason): void;
}

export interface TransportDeps {
  signaling: SignalingClient;
  iceServers: IceServerConfig[];
  /** `"relay"`: direct links gather TURN relay candidates only (EngineSettings). */
  iceTransportPolicy?: IceTransportPolicy;
  openTimeoutMs: number;
  onOffer: (offer: IncomingOffer) => void;
  onError: (error: Error) => void;
  /** For the live relay transport: the engine's relay connections and our own relay. */
  relay?: { pool: RelayPool; url: string };
}

/** Builds the live transport the engine dials with (the direct one unless a test swaps it). */
export type TransportFactory = (deps: TransportDeps) => LiveTransport;
