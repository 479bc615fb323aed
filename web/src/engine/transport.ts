/**
 * The seams where transports plug into the engine (DESIGN.md, Transports). Everything above a
 * `Link` — the Noise session, the HELLO exchange, the per-contact ratchet, receipts, the outbox —
 * is the same whatever carries the bytes; a transport only has to produce Links.
 *
 * Today: `direct` (web/src/net/direct.ts, WebRTC data channels brokered by signaling). Next, in
 * the relay phase:
 *  - a live relay transport (a `LiveTransport` with `path: "relay"` over core/relay's WebSocket
 *    link), tried by `Engine.#dial` when the direct attempt fails to open, and accepting incoming
 *    relay links through the same `onIncoming` path as direct offers;
 *  - a `Mailbox` for contacts that are offline: the outbox flush, when no live session exists,
 *    encrypts each queued message with the contact's ratchet (exactly as for a live session) and
 *    deposits the RATCHET frame; the message becomes `relayed`, and `delivered` when the receipt
 *    comes back (live or through our own mailbox).
 */
import type { Link } from "../../../core/link/link.ts";
import type { SignalingClient } from "../../../core/signaling/client.ts";
import type { ContactId, IceServerConfig, LinkPath } from "./api.ts";

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
  accept(): DialedLink;
  refuse(reason: RefuseReason): void;
}

export interface TransportDeps {
  signaling: SignalingClient;
  iceServers: IceServerConfig[];
  openTimeoutMs: number;
  onOffer: (offer: IncomingOffer) => void;
  onError: (error: Error) => void;
}

/** Builds the live transport the engine dials with (the direct one unless a test swaps it). */
export type TransportFactory = (deps: TransportDeps) => LiveTransport;

/** Offline delivery (relay phase): ratchet frames left in the contact's relay mailbox. */
export interface Mailbox {
  deposit(contactId: ContactId, ratchetFrame: Uint8Array): Promise<void>;
}
