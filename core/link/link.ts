/**
 * The one transport abstraction (docs/design.md, "Transports"): a Link carries whole messages (byte
 * arrays) in order, reliably, in both directions. WebRTC data channels, relay WebSockets, serial
 * frames and TCP all become Links, so everything above a transport is written and tested once.
 *
 * A Link is `connecting`, `open` or `closed`; once closed it never reopens and carries a reason.
 */

export type LinkState = "connecting" | "open" | "closed";

export interface LinkCloseInfo {
  /** Stable machine-readable reason, e.g. a LoftErrorCode or "remote-closed". */
  reason: string;
  /** Human-readable detail, safe to show (never contains secrets). */
  detail?: string;
  /**
   * An orderly close: the closer said goodbye in-band to a peer that was answering — a session
   * that sent its CLOSE (docs/protocol/chat.md §6, "Stopping") on a close its caller marked
   * orderly (a stop, a disconnect, a lost race). A transport that buffers may then hold its
   * teardown, bounded, until the peer has what was sent (web/src/net/webrtc-link.ts). Absent: tear
   * down at once — a failure, a peer that stopped answering, nothing left worth waiting for.
   */
  orderly?: boolean;
}

/** How to close (`Link.close`). */
export interface LinkCloseOptions {
  /** An orderly close (`LinkCloseInfo.orderly`). */
  orderly?: boolean;
}

export interface Link {
  readonly state: LinkState;
  /** Queue one message for delivery. Throws LoftError(LOFT_ERR_LINK_CLOSED) once closed. */
  send(message: Uint8Array): void;
  /**
   * Resolve with the next received message, in order; reject with LoftError(LOFT_ERR_LINK_CLOSED)
   * when the link closes before one arrives. Messages received while nobody waits are queued.
   *
   * A delivered message belongs to the receiver: the link keeps no reference to it and never
   * reads, reuses or changes its bytes (nor any other bytes of its ArrayBuffer) afterwards, so
   * the receiver may write over it. An implementation that reads into a reused buffer delivers a
   * copy. The session relies on this to deliver a detached frame without copying its part (it
   * writes the head over the opened Noise bytes: core/session/session.ts, docs/protocol/session.md
   * §5, "Detached frames"). Every Link here honours it: the memory pair copies on send, the
   * relay, serial and TCP links reassemble into fresh buffers, a session decrypts into fresh ones
   * (or hands over the link message it was given), WebSocket and data channel messages arrive in
   * an ArrayBuffer of their own.
   */
  receive(): Promise<Uint8Array>;
  /**
   * Optional: `receive()`, then the messages already queued behind that one, up to `max` in all
   * (QueueLink has it): for a reader that handles a run of messages in one go. The messages
   * belong to the receiver, as `receive()`'s do.
   */
  receiveMany?(max: number): Promise<Uint8Array[]>;
  /**
   * Optional: the longest message this link can carry to the peer, when the transport has a limit
   * of its own (a WebRTC data channel: the remote SDP's `a=max-message-size`, RFC 8841 §6, read as
   * RTCSctpTransport.maxMessageSize). Read once the link has carried a message from the peer.
   * Absent: no limit below what a session sends. A session does not announce detached frames on
   * a link that cannot carry their longest link message (docs/protocol/session.md §5).
   */
  readonly maxMessageSize?: number;
  /**
   * Close the link (idempotent). The remote side observes `remote-closed`. `options.orderly`: see
   * `LinkCloseInfo.orderly` (absent: a close at once).
   */
  close(reason?: string, detail?: string, options?: LinkCloseOptions): void;
  /** Resolves once the link is closed, with why. */
  readonly closed: Promise<LinkCloseInfo>;
}
