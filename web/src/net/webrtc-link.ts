/**
 * A WebRTC data channel as a `Link` (core/link/link.ts; docs/design.md, "Transports", Direct): one
 * ordered, reliable data channel opened by @thaunknown/simple-peer's lite build over the browser's
 * RTCPeerConnection (docs/decisions.md, WebRTC). Offer, answer and ICE candidates (trickle ICE,
 * RFC 8838) leave through `onSignal` and come back through `signal()`; the caller carries them
 * over the signaling service (web/src/net/direct.ts).
 *
 * Nothing here authenticates the peer. DTLS fingerprints travel through the signaling server,
 * which could swap them; the Noise session that runs over this link (core/session) is what binds
 * the link to an identity.
 *
 * The link is `connecting` until the data channel is open, then `open`; it closes (for good)
 * when either side closes it, on any WebRTC error (`reason` = simple-peer's error code, e.g.
 * ERR_ICE_CONNECTION_FAILURE), or when `openTimeoutMs` passes before the channel opens. The
 * detail says more: ERR_DATA_CHANNEL is the channel's `error` event (or a send that threw), and
 * with "User-Initiated Abort, reason=Close called" it is Chromium reporting the SCTP ABORT of a
 * peer that closed its connection — its page reloaded or navigated — not a fault of this end.
 *
 * Beside it, `bulk`: the `loft-bulk` data channel of the same connection (bulk-lane.ts;
 * docs/protocol/files.md §2, "The bulk lane"), opened by both ends once the session's channel is
 * open and closed with the link; a failure of either closes both.
 */
import SimplePeer, { type SimplePeerSignal } from "@thaunknown/simple-peer/lite.js";
import { LoftError } from "../../../core/errors.ts";
import type { LinkCloseInfo } from "../../../core/link/link.ts";
import { QueueLink } from "../../../core/link/queue-link.ts";
import type { IceServerConfig, IceTransportPolicy } from "../engine/api.ts";
import { BULK_LABEL, BULK_STREAM_ID, BulkLane } from "./bulk-lane.ts";

/** Above this many bytes queued in the data channel, `drain()` waits (simple-peer uses 64 KiB too). */
export const DRAIN_THRESHOLD_BYTES = 1024 * 1024;
export const DEFAULT_OPEN_TIMEOUT_MS = 20_000;
/**
 * How long a link closed in order waits, at most, for its data channel to send what it buffered
 * (the session's last messages and CLOSE) and for the peer to close the channel once it has them,
 * before it closes the connection.
 */
export const TEARDOWN_DRAIN_MS = 2_000;
/** How long a failed bulk lane waits for the link's own close before closing the link itself. */
const BULK_FAILURE_GRACE_MS = 1_000;

export interface WebRtcLinkOptions {
  initiator: boolean;
  iceServers?: IceServerConfig[];
  /** `"relay"`: gather and offer TURN relay candidates only (hides our addresses from the peer). */
  iceTransportPolicy?: IceTransportPolicy;
  /** An offer, answer or candidate to carry to the peer. */
  onSignal: (signal: SimplePeerSignal) => void;
  openTimeoutMs?: number;
}

/** What the selected ICE candidate pair says about the path (RTCStatsReport, candidate types). */
export interface PathInfo {
  /** "host", "srflx", "prflx" or "relay" (TURN) for each side; undefined if unknown. */
  local?: string;
  remote?: string;
  protocol?: string;
}

export class WebRtcLink extends QueueLink {
  readonly initiator: boolean;
  /** Resolves when the data channel is open; rejects (with the close reason) if it never opens. */
  readonly opened: Promise<void>;
  /** The bulk lane beside this link's session (the seam for bulk frames: files, proxy bodies). */
  readonly bulk: BulkLane;
  readonly #peer: SimplePeer;
  readonly #pending: Uint8Array[] = [];
  #resolveOpened!: () => void;
  #rejectOpened!: (e: Error) => void;
  #openTimer: ReturnType<typeof setTimeout> | undefined;
  #drainWaiters: (() => void)[] = [];
  #settled: Promise<void> = Promise.resolve();

  constructor(options: WebRtcLinkOptions) {
    super("connecting");
    this.initiator = options.initiator;
    this.opened = new Promise<void>((resolve, reject) => {
      this.#resolveOpened = resolve;
      this.#rejectOpened = reject;
    });
    this.opened.catch(() => {}); // observed through `closed` as well
    // The lane lives and dies with the link (files.md §2): its failure closes the link — after a
    // moment, so that when the whole connection went (the peer closed it, ICE failed) the link
    // closes with that reason, which the engine reads (web/src/engine/errors.ts), not the lane's.
    this.bulk = new BulkLane({
      onFailure: (info) => {
        const timer = setTimeout(() => this.close(info.reason, info.detail), BULK_FAILURE_GRACE_MS);
        void this.closed.then(() => clearTimeout(timer));
      },
    });
    this.#peer = new SimplePeer({
      initiator: options.initiator,
      trickle: true,
      // No default STUN servers (simple-peer's defaults are Google's and Twilio's): only what the
      // user configured. Host candidates are enough on one machine or a LAN.
      config: {
        iceServers: (options.iceServers ?? []) as RTCIceServer[],
        iceTransportPolicy: options.iceTransportPolicy ?? "all",
      },
      channelConfig: { ordered: true },
    });
    this.#peer.on("signal", (s) => {
      if (this.state !== "closed") options.onSignal(s);
    });
    this.#peer.on("connect", () => this.#onOpen());
    this.#peer.on("data", (d) => this.deliver(d instanceof Uint8Array ? d : new Uint8Array(d)));
    this.#peer.on("error", (e) =>
      this.finish({ reason: e.code ?? "ERR_WEBRTC", detail: e.message ?? "WebRTC error" }, true),
    );
    this.#peer.on("close", () =>
      this.finish({ reason: "remote-closed", detail: "data channel closed" }, true),
    );
    this.#openTimer = setTimeout(
      () => this.close("open-timeout", "the data channel did not open in time"),
      options.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS,
    );
    this.closed.then((info) => {
      clearTimeout(this.#openTimer);
      this.#rejectOpened(new Error(info.detail ?? info.reason));
      for (const w of this.#drainWaiters.splice(0)) w();
      this.bulk.close(info.reason, info.detail);
    });
  }

  /** Feed an offer, answer or candidate received from the peer. Ignored once closed. */
  signal(data: SimplePeerSignal): void {
    if (this.state === "closed") return;
    try {
      this.#peer.signal(data);
    } catch (e) {
      this.close("ERR_SIGNALING", (e as Error).message);
    }
  }

  /**
   * The longest message the peer accepts on this connection (core/link/link.ts): the remote SDP's
   * `a=max-message-size` (RFC 8841 §6; 65536 when the SDP has none), as the browser negotiated it
   * (RTCSctpTransport.maxMessageSize; Infinity for "no limit"). Undefined before the SCTP transport
   * exists — the session reads it after the peer's first message, when it does. Chromium offers
   * 262144; a peer offering less than 65537 gets no detached frames (docs/protocol/session.md §5).
   */
  get maxMessageSize(): number | undefined {
    const size = (this.#peer._pc as RTCPeerConnection | undefined)?.sctp?.maxMessageSize;
    return typeof size === "number" && size > 0 ? size : undefined;
  }

  /** Bytes queued in the data channel and not yet handed to the network. */
  get bufferedAmount(): number {
    return this.#peer.bufferSize;
  }

  /**
   * Resolves once the data channel's send buffer is at most `DRAIN_THRESHOLD_BYTES` (or the link
   * closed). Bulk senders await it between messages; a data channel whose buffer overflows
   * (16 MiB in Chromium) closes.
   */
  drain(): Promise<void> {
    if (this.state === "closed" || this.bufferedAmount <= DRAIN_THRESHOLD_BYTES) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** The selected candidate pair (for diagnostics and tests: is this link host-to-host or TURN?). */
  async pathInfo(): Promise<PathInfo> {
    const pc = this.#peer._pc;
    if (!pc) return {};
    const stats = await pc.getStats();
    let pairId: string | undefined;
    stats.forEach((s: { type: string; selectedCandidatePairId?: string }) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId
      ? (stats.get(pairId) as { localCandidateId?: string; remoteCandidateId?: string } | undefined)
      : undefined;
    if (!pair) return {};
    const local = stats.get(pair.localCandidateId ?? "") as
      | { candidateType?: string; protocol?: string }
      | undefined;
    const remote = stats.get(pair.remoteCandidateId ?? "") as { candidateType?: string } | undefined;
    return { local: local?.candidateType, remote: remote?.candidateType, protocol: local?.protocol };
  }

  #onOpen(): void {
    if (this.state !== "connecting") return;
    clearTimeout(this.#openTimer);
    const channel = this.#peer._channel;
    if (channel) {
      channel.bufferedAmountLowThreshold = DRAIN_THRESHOLD_BYTES;
      channel.addEventListener("bufferedamountlow", () => {
        for (const w of this.#drainWaiters.splice(0)) w();
      });
      // The peer closed the channel (its orderly close, `teardown`): simple-peer's lite build
      // then destroys itself without a `close` event (lite.js `_onChannelClose`), and the link
      // would learn it only from its bulk lane a second later. A close after the channel's
      // `error` (an ABORT: the peer's page went away) keeps that error, as simple-peer reports it
      // a task later.
      let failure: string | undefined;
      channel.addEventListener("error", (e) => {
        failure = (e as RTCErrorEvent).error?.message ?? "data channel error";
      });
      channel.addEventListener("close", () =>
        this.finish(
          failure === undefined
            ? { reason: "remote-closed", detail: "data channel closed" }
            : { reason: "ERR_DATA_CHANNEL", detail: failure },
          true,
        ),
      );
    }
    this.#openBulk();
    this.markOpen();
    for (const m of this.#pending.splice(0)) this.#peer.send(m);
    this.#resolveOpened();
  }

  /**
   * Both ends open the lane once the session's channel is open: negotiated on a fixed stream, so
   * no `datachannel` event fires (simple-peer's answerer would take the channel for its own), and
   * the connection already has its data section, so nothing is renegotiated.
   */
  #openBulk(): void {
    const pc = this.#peer._pc;
    if (!pc) return;
    try {
      this.bulk.attach(
        pc.createDataChannel(BULK_LABEL, { negotiated: true, id: BULK_STREAM_ID, ordered: true }),
      );
    } catch {
      // No lane (the browser refused the stream): chunks go inside the session, as on the relay.
      this.bulk.close("ERR_DATA_CHANNEL", "no bulk lane");
    }
  }

  protected transmit(message: Uint8Array): void {
    if (this.state === "connecting") {
      this.#pending.push(message.slice());
      return;
    }
    try {
      this.#peer.send(message);
    } catch (e) {
      this.finish({ reason: "ERR_DATA_CHANNEL", detail: (e as Error).message }, true);
      throw new LoftError("LOFT_ERR_LINK_CLOSED", "the data channel failed");
    }
  }

  /**
   * Resolves once this link is closed and its connection is gone: at once after any close but an
   * orderly one, else once the peer closed the data channel too, having all we sent, or
   * `TEARDOWN_DRAIN_MS` passed (`teardown`). Never rejects.
   */
  get settled(): Promise<void> {
    return this.closed.then(() => this.#settled);
  }

  protected teardown(info: LinkCloseInfo): void {
    this.#pending.length = 0;
    const destroy = () => {
      // simple-peer closes the channel and the connection a task after `destroy()` (lite.js
      // `_destroy`): closed here first, in this turn, so a link that is closed is gone too.
      const pc = this.#peer._pc as RTCPeerConnection | undefined | null;
      try {
        this.#peer._channel?.close();
        pc?.close();
      } catch {
        // already closed
      }
      try {
        this.#peer.destroy();
      } catch {
        // already gone
      }
    };
    // The session sends its CLOSE just before it closes the link (docs/protocol/chat.md §6,
    // "Stopping"): destroyed at once (channel close, then pc.close()), the connection's ABORT ends
    // SCTP's retransmission of what the network lost — the CLOSE with it, and the contact sees the
    // link fail instead of the session stop. So after an orderly close (core/link/link.ts
    // `LinkCloseInfo.orderly`: the session sent its CLOSE to a peer that was answering), bounded:
    // close the channel — Chromium still sends what it buffers, then resets the stream (RFC 8831
    // §6.7), and that reset carries the last TSN sent on it, which the peer waits for before it
    // resets its side (RFC 6525 §5.2.2) — and wait for the channel's `close`, which so means the
    // peer has all we sent. Any other close (a failure, a heartbeat timeout, a failed bulk lane, a
    // peer already gone) destroys at once: nobody would answer, and a stop would wait out the bound.
    const channel = this.#peer._channel;
    if (info.orderly !== true || channel?.readyState !== "open") {
      destroy();
      return;
    }
    this.#settled = new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        channel.removeEventListener("close", done);
        destroy();
        resolve();
      };
      const timer = setTimeout(done, TEARDOWN_DRAIN_MS);
      channel.addEventListener("close", done);
      channel.close();
    });
  }
}
