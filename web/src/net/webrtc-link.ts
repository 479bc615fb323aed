/**
 * A WebRTC data channel as a `Link` (core/link/link.ts; docs/design.md, "Transports", Direct): one
 * ordered, reliable data channel on an RTCPeerConnection this link owns (docs/decisions.md,
 * "WebRTC: our own RTCPeerConnection"). Offer, answer and ICE candidates (trickle ICE, RFC 8838)
 * leave through `onSignal` and come back through `signal()`; the caller carries them over the
 * signaling service (web/src/net/direct.ts). The initiator creates the channel and offers; the
 * answerer takes the first channel the offer brings (a peer of an earlier version, which ran
 * simple-peer, sends the same offer, answer and candidates and opens its channel the same way).
 *
 * Nothing here authenticates the peer. DTLS fingerprints travel through the signaling server,
 * which could swap them; the Noise session that runs over this link (core/session) is what binds
 * the link to an identity.
 *
 * The link is `connecting` until the data channel is open, then `open`; it closes (for good)
 * when either side closes it, on any WebRTC error (`reason` = an ERR_* code, `WEBRTC_ERRORS`: the
 * codes simple-peer gave, which web/src/engine/errors.ts reads), or when `openTimeoutMs` passes
 * before the channel opens. The detail says more: ERR_DATA_CHANNEL is the channel's `error` event
 * (or a send that threw), and with "User-Initiated Abort, reason=Close called" it is Chromium
 * reporting the SCTP ABORT of a peer that closed its connection — its page reloaded or navigated —
 * not a fault of this end. A peer's orderly close (its channel closed, then its connection: its
 * `teardown`) is `remote-closed`, also when its ABORT or our send arrives while our channel is
 * already `closing`. Every listener this link adds goes with its connection (`#listening`): a
 * closed link keeps no closure reachable from the browser's objects.
 *
 * Beside it, `bulk`: the `loft-bulk` data channel of the same connection (bulk-lane.ts;
 * docs/protocol/files.md §2, "The bulk lane"), opened by both ends once the session's channel is
 * open and closed with the link; a failure of either closes both.
 */
import { LoftError } from "../../../core/errors.ts";
import type { LinkCloseInfo } from "../../../core/link/link.ts";
import { QueueLink } from "../../../core/link/queue-link.ts";
import type { IceServerConfig, IceTransportPolicy } from "../engine/api.ts";
import { BULK_LABEL, BULK_STREAM_ID, BulkLane } from "./bulk-lane.ts";

/** Above this many bytes queued in the data channel, `drain()` waits. */
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
/** Candidates kept for a remote description still being set (direct.ts bounds those before it). */
const MAX_PENDING_CANDIDATES = 64;
/** The session channel's label (diagnostics: chrome://webrtc-internals shows it). */
const SESSION_LABEL = "loft";

/**
 * The close reasons of a failed connection: the codes simple-peer gave before this link owned its
 * RTCPeerConnection, kept because the engine reads them (web/src/engine/errors.ts: which of them
 * mean the path failed, docs/design.md "Relay first after a lost path").
 */
export const WEBRTC_ERRORS = {
  ICE_FAILED: "ERR_ICE_CONNECTION_FAILURE",
  ICE_CLOSED: "ERR_ICE_CONNECTION_CLOSED",
  CONNECTION_FAILED: "ERR_CONNECTION_FAILURE",
  DATA_CHANNEL: "ERR_DATA_CHANNEL",
  NO_WEBRTC: "ERR_WEBRTC_SUPPORT",
  PC_CONSTRUCTOR: "ERR_PC_CONSTRUCTOR",
  CREATE_OFFER: "ERR_CREATE_OFFER",
  CREATE_ANSWER: "ERR_CREATE_ANSWER",
  SET_LOCAL: "ERR_SET_LOCAL_DESCRIPTION",
  SET_REMOTE: "ERR_SET_REMOTE_DESCRIPTION",
  ADD_CANDIDATE: "ERR_ADD_ICE_CANDIDATE",
  SIGNALING: "ERR_SIGNALING",
} as const;

/**
 * An offer, answer or trickled candidate, as `onSignal` gives it and `signal()` takes it (the
 * shapes simple-peer used; direct.ts maps them to signaling payloads, signal-payload.ts).
 */
export type DirectSignal =
  | { type: "offer" | "answer"; sdp: string }
  | {
      type: "candidate";
      candidate: { candidate: string; sdpMLineIndex?: number | null; sdpMid?: string | null };
    };

export interface WebRtcLinkOptions {
  initiator: boolean;
  iceServers?: IceServerConfig[];
  /** `"relay"`: gather and offer TURN relay candidates only (hides our addresses from the peer). */
  iceTransportPolicy?: IceTransportPolicy;
  /** An offer, answer or candidate to carry to the peer. */
  onSignal: (signal: DirectSignal) => void;
  openTimeoutMs?: number;
}

/** What the selected ICE candidate pair says about the path (RTCStatsReport, candidate types). */
export interface PathInfo {
  /** "host", "srflx", "prflx" or "relay" (TURN) for each side; undefined if unknown. */
  local?: string;
  remote?: string;
  protocol?: string;
}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class WebRtcLink extends QueueLink {
  readonly initiator: boolean;
  /** Resolves when the data channel is open; rejects (with the close reason) if it never opens. */
  readonly opened: Promise<void>;
  /** The bulk lane beside this link's session (the seam for bulk frames: files, proxy bodies). */
  readonly bulk: BulkLane;
  /** Aborted when the connection is closed: removes every listener this link added. */
  readonly #listening = new AbortController();
  readonly #onSignal: (signal: DirectSignal) => void;
  #pc: RTCPeerConnection | undefined;
  #channel: RTCDataChannel | undefined;
  readonly #pending: Uint8Array[] = [];
  #pendingCandidates: RTCIceCandidateInit[] = [];
  #resolveOpened!: () => void;
  #rejectOpened!: (e: Error) => void;
  #openTimer: ReturnType<typeof setTimeout> | undefined;
  #drainWaiters: (() => void)[] = [];
  #settled: Promise<void> = Promise.resolve();

  constructor(options: WebRtcLinkOptions) {
    super("connecting");
    this.initiator = options.initiator;
    this.#onSignal = options.onSignal;
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
    if (typeof RTCPeerConnection === "undefined") {
      this.#fail(WEBRTC_ERRORS.NO_WEBRTC, "this browser has no RTCPeerConnection");
      return;
    }
    let pc: RTCPeerConnection;
    try {
      // No STUN server unless the user configured one: host candidates are enough on one machine
      // or a LAN, and nothing is sent to a third party.
      pc = new RTCPeerConnection({
        iceServers: (options.iceServers ?? []) as RTCIceServer[],
        iceTransportPolicy: options.iceTransportPolicy ?? "all",
      });
    } catch (e) {
      this.#fail(WEBRTC_ERRORS.PC_CONSTRUCTOR, messageOf(e));
      return;
    }
    this.#pc = pc;
    const on = this.#on.bind(this);
    on(pc, "icecandidate", (ev) => {
      const c = (ev as RTCPeerConnectionIceEvent).candidate;
      // null: gathering is over; an empty string is the same said as a candidate (RFC 8838 §8.2).
      if (!c?.candidate) return;
      this.#signal({
        type: "candidate",
        candidate: { candidate: c.candidate, sdpMLineIndex: c.sdpMLineIndex, sdpMid: c.sdpMid },
      });
    });
    on(pc, "iceconnectionstatechange", () => {
      if (pc.iceConnectionState === "failed") this.#fail(WEBRTC_ERRORS.ICE_FAILED, "Ice connection failed.");
      else if (pc.iceConnectionState === "closed")
        this.#fail(WEBRTC_ERRORS.ICE_CLOSED, "Ice connection closed.");
    });
    on(pc, "connectionstatechange", () => {
      if (pc.connectionState === "failed") this.#fail(WEBRTC_ERRORS.CONNECTION_FAILED, "Connection failed.");
    });
    if (options.initiator) {
      this.#setupChannel(pc.createDataChannel(SESSION_LABEL, { ordered: true }));
      void this.#offer(pc);
    } else {
      // The first channel the offer brings is the session's; the bulk lane is negotiated on its
      // own stream (bulk-lane.ts) and raises no `datachannel` event.
      on(pc, "datachannel", (ev) => {
        const channel = (ev as RTCDataChannelEvent).channel;
        if (!this.#channel) this.#setupChannel(channel);
        // Any later one is none of ours (no version opens a second in-band channel): closed, not
        // left open with nobody reading it for the connection's life, however many the peer opens.
        else channel.close();
      });
    }
  }

  /** `target.addEventListener(type, f)` until the connection is closed (`#listening`). */
  #on(target: EventTarget, type: string, f: (ev: Event) => void): void {
    target.addEventListener(type, f, { signal: this.#listening.signal });
  }

  #fail(reason: string, detail: string): void {
    this.finish({ reason, detail }, true);
  }

  #signal(s: DirectSignal): void {
    if (this.state !== "closed") this.#onSignal(s);
  }

  async #offer(pc: RTCPeerConnection): Promise<void> {
    let offer: RTCSessionDescriptionInit;
    try {
      offer = await pc.createOffer();
    } catch (e) {
      return this.#fail(WEBRTC_ERRORS.CREATE_OFFER, messageOf(e));
    }
    await this.#describe(pc, offer);
  }

  /** Set our offer or answer and send it (trickle ICE: at once, the candidates follow). */
  async #describe(pc: RTCPeerConnection, description: RTCSessionDescriptionInit): Promise<void> {
    if (this.state === "closed") return;
    try {
      await pc.setLocalDescription(description);
    } catch (e) {
      return this.#fail(WEBRTC_ERRORS.SET_LOCAL, messageOf(e));
    }
    const local = pc.localDescription ?? description;
    if ((local.type === "offer" || local.type === "answer") && local.sdp)
      this.#signal({ type: local.type, sdp: local.sdp });
  }

  #setupChannel(channel: RTCDataChannel): void {
    this.#channel = channel;
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = DRAIN_THRESHOLD_BYTES;
    const on = (type: string, f: (ev: Event) => void) => this.#on(channel, type, f);
    // The link opens on the channel's `open` event, with no wait beyond it: none buys an ordering
    // guarantee. What the opener sends and closes the channel on at once, before the peer's page
    // has its side open, Chromium can drop — a stats round trip first (simple-peer's selected-pair
    // look-up, which these links copied at first) makes that only less likely under load (docs/decisions.md, "WebRTC: our own RTCPeerConnection"). What holds is order: once a
    // message from the peer has arrived on the channel, the peer's side is open (it sends after
    // its DCEP acknowledgment, RFC 8832 §6, on the same ordered stream), and what is then sent and
    // closed in order reaches it. A session closes its link in order only once established, after
    // a handshake message from the peer (core/session; Noise §7.5, XX).
    on("open", () => this.#onOpen());
    on("message", (ev) => {
      const data = (ev as MessageEvent).data;
      this.deliver(
        data instanceof ArrayBuffer ? new Uint8Array(data) : new TextEncoder().encode(String(data)),
      );
    });
    on("bufferedamountlow", () => {
      for (const w of this.#drainWaiters.splice(0)) w();
    });
    // The peer closed the channel (its orderly close, `teardown`): `remote-closed`. A close after
    // the channel's `error` (an ABORT: the peer's page went away) is that error — unless the
    // channel was already closing: the peer's orderly close, whose connection close (its ABORT)
    // may come before the stream reset completes here.
    let failure: string | undefined;
    let closing = false;
    on("closing", () => {
      closing = true;
    });
    on("error", (ev) => {
      if (!closing) failure = (ev as RTCErrorEvent).error?.message ?? "data channel error";
    });
    on("close", () =>
      this.finish(
        failure === undefined
          ? { reason: "remote-closed", detail: "data channel closed" }
          : { reason: WEBRTC_ERRORS.DATA_CHANNEL, detail: failure },
        true,
      ),
    );
    // Open on the `open` event only, never on `readyState` alone: an answerer's channel can read
    // `open` when its `datachannel` event comes, yet Chromium dispatches no message before its
    // `open` event — a peer that sent and closed at once would lose what it sent.
  }

  /** Feed an offer, answer or candidate received from the peer. Ignored once closed. */
  signal(data: DirectSignal): void {
    const pc = this.#pc;
    if (this.state === "closed" || !pc) return;
    if ((data.type === "offer" || data.type === "answer") && typeof data.sdp === "string") {
      void this.#remoteDescription(pc, { type: data.type, sdp: data.sdp });
    } else if (data.type === "candidate" && typeof data.candidate?.candidate === "string") {
      const c: RTCIceCandidateInit = {
        candidate: data.candidate.candidate,
        sdpMLineIndex: data.candidate.sdpMLineIndex ?? null,
        sdpMid: data.candidate.sdpMid ?? null,
      };
      if (pc.remoteDescription) this.#addCandidate(pc, c);
      else if (this.#pendingCandidates.length < MAX_PENDING_CANDIDATES) this.#pendingCandidates.push(c);
    } else this.close(WEBRTC_ERRORS.SIGNALING, "signal() called with invalid signal data");
  }

  async #remoteDescription(pc: RTCPeerConnection, description: RTCSessionDescriptionInit): Promise<void> {
    try {
      await pc.setRemoteDescription(description);
    } catch (e) {
      return this.#fail(WEBRTC_ERRORS.SET_REMOTE, messageOf(e));
    }
    if (this.state === "closed") return;
    for (const c of this.#pendingCandidates.splice(0)) this.#addCandidate(pc, c);
    if (description.type !== "offer") return;
    let answer: RTCSessionDescriptionInit;
    try {
      answer = await pc.createAnswer();
    } catch (e) {
      return this.#fail(WEBRTC_ERRORS.CREATE_ANSWER, messageOf(e));
    }
    await this.#describe(pc, answer);
  }

  #addCandidate(pc: RTCPeerConnection, init: RTCIceCandidateInit): void {
    pc.addIceCandidate(init).catch((e: unknown) => {
      if (this.state === "closed") return;
      // A candidate this browser cannot use (an mDNS name, another address family) is skipped:
      // the others may still connect. Only one it should have taken fails the link.
      let address: string | null = null;
      try {
        address = new RTCIceCandidate(init).address;
      } catch {}
      if (!address || address.endsWith(".local")) return;
      this.#fail(WEBRTC_ERRORS.ADD_CANDIDATE, messageOf(e));
    });
  }

  /**
   * The longest message the peer accepts on this connection (core/link/link.ts): the remote SDP's
   * `a=max-message-size` (RFC 8841 §6; 65536 when the SDP has none), as the browser negotiated it
   * (RTCSctpTransport.maxMessageSize; Infinity for "no limit"). Undefined before the SCTP transport
   * exists — the session reads it after the peer's first message, when it does. Chromium offers
   * 262144; a peer offering less than 65537 gets no detached frames (docs/protocol/session.md §5).
   */
  get maxMessageSize(): number | undefined {
    const size = this.#pc?.sctp?.maxMessageSize;
    return typeof size === "number" && size > 0 ? size : undefined;
  }

  /** Bytes queued in the data channel and not yet handed to the network. */
  get bufferedAmount(): number {
    return this.#channel?.bufferedAmount ?? 0;
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
    const pc = this.#pc;
    if (!pc || this.state === "closed") return {};
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
    this.#openBulk();
    this.markOpen();
    for (const m of this.#pending.splice(0)) this.transmit(m);
    this.#resolveOpened();
  }

  /**
   * Both ends open the lane once the session's channel is open: negotiated on a fixed stream, so
   * no `datachannel` event fires (the answerer takes the first one for the session), and the
   * connection already has its data section, so nothing is renegotiated.
   */
  #openBulk(): void {
    const pc = this.#pc;
    if (!pc) return;
    try {
      this.bulk.attach(
        pc.createDataChannel(BULK_LABEL, { negotiated: true, id: BULK_STREAM_ID, ordered: true }),
      );
    } catch {
      // No lane (the browser refused the stream): chunks go inside the session, as on the relay.
      this.bulk.close(WEBRTC_ERRORS.DATA_CHANNEL, "no bulk lane");
    }
  }

  protected transmit(message: Uint8Array): void {
    if (this.state === "connecting") {
      this.#pending.push(message.slice());
      return;
    }
    const channel = this.#channel;
    // Closing or closed under us: the peer's orderly close is under way (its stream reset came
    // before its CLOSE was read here), not a failure of the channel.
    if (channel?.readyState !== "open") {
      this.finish({ reason: "remote-closed", detail: "data channel closed" }, true);
      throw new LoftError("LOFT_ERR_LINK_CLOSED", "the data channel closed");
    }
    try {
      channel.send(message as Uint8Array<ArrayBuffer>);
    } catch (e) {
      this.#fail(WEBRTC_ERRORS.DATA_CHANNEL, messageOf(e));
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

  /** Close the channel and the connection — each on its own: one that throws leaves the other to close — and drop every listener. */
  #destroy(): void {
    try {
      this.#channel?.close();
    } catch {
      // already closed
    }
    try {
      this.#pc?.close();
    } catch {
      // already closed
    }
    this.#listening.abort();
  }

  protected teardown(info: LinkCloseInfo): void {
    this.#pending.length = 0;
    this.#pendingCandidates = [];
    // The session sends its CLOSE just before it closes the link (docs/protocol/chat.md §6,
    // "Stopping"): destroyed at once (channel close, then pc.close()), the connection's ABORT ends
    // SCTP's retransmission of what the network lost — the CLOSE with it, and the contact sees the
    // link fail instead of the session stop. So after an orderly close (core/link/link.ts
    // `LinkCloseInfo.orderly`: the session sent its CLOSE to a peer that was answering), bounded:
    // close the channel — Chromium still sends what it buffers, then resets the stream (RFC 8831
    // §6.7), and that reset carries the last TSN sent on it, which the peer waits for before it
    // resets its side (RFC 6525 §5.2.2) — and wait for the channel's `close`, which so means the
    // peer has all we sent. A channel the peer is closing already (both stopped at once) is waited
    // for the same way. Any other close (a failure, a heartbeat timeout, a failed bulk lane, a peer
    // already gone) destroys at once: nobody would answer, and a stop would wait out the bound.
    const channel = this.#channel;
    if (info.orderly !== true || (channel?.readyState !== "open" && channel?.readyState !== "closing")) {
      this.#destroy();
      return;
    }
    this.#settled = new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#destroy(); // the `close` listener below goes with the others
        resolve();
      };
      const timer = setTimeout(done, TEARDOWN_DRAIN_MS);
      this.#on(channel, "close", done);
      channel.close();
    });
  }
}
