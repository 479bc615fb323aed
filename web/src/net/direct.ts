/**
 * Direct links: WebRTC data channels (webrtc-link.ts) whose offer, answer and trickled ICE
 * candidates travel in signed envelopes through the signaling service (core/signaling/client.ts;
 * docs/protocol/chat.md, "Connection setup"). This module only moves signals; deciding *whether*
 * to dial or accept — contacts, trust, glare — is the engine's (web/src/engine/engine.ts).
 *
 * - `dial(peer)` picks a random connection id, creates the initiating peer and sends its offer and
 *   candidates to `peer`; the peer's answer, candidates and bye are routed back by (sender key,
 *   connection id). A signaling failure while sending (PEER_OFFLINE, UNREACHABLE, …) closes the
 *   link with its `LOFT_ERR_SIGNALING_*` code as the reason.
 * - A received offer becomes an `IncomingOffer` handed to the engine, which accepts (we answer on
 *   the same connection id) or refuses (a `bye` tells the dialer at once instead of letting it
 *   time out).
 * - A received envelope that fails verification (the signaling client drops it) closes every
 *   attempt with the claimed sender: reason `BAD_SIGNAL_SIGNATURE` — somebody between us rewrote
 *   an offer, answer or candidate (e.g. a DTLS fingerprint).
 */
import { toHex } from "../../../core/bytes.ts";
import { isLoftError, type LoftErrorCode } from "../../../core/errors.ts";
import type { SignalingClient } from "../../../core/signaling/client.ts";
import type { SignalEnvelope } from "../../../core/wire/signaling.ts";
import type { IceServerConfig, IceTransportPolicy } from "../engine/api.ts";
import type { IncomingOffer as EngineIncomingOffer, LiveTransport } from "../engine/transport.ts";
import {
  type ByeReason,
  CONN_ID_BYTES,
  decodeSignalPayload,
  encodeSignalPayload,
  envelopeKind,
  type SignalPayload,
} from "./signal-payload.ts";
import { type DirectSignal, WebRtcLink } from "./webrtc-link.ts";

/** Close reasons of direct links, besides webrtc-link.ts's ERR_* codes (`WEBRTC_ERRORS`) and "open-timeout". */
export const DIRECT_CLOSE = {
  /** An envelope claiming to be from the peer failed its signature check. */
  BAD_SIGNATURE: "BAD_SIGNAL_SIGNATURE",
  /** The peer said bye (`bye-refused`, `bye-glare`, …). */
  bye: (r: ByeReason) => `bye-${r}`,
} as const;

/**
 * The close reason of an attempt a signaling failure ended: its own `LOFT_ERR_SIGNALING_*` code
 * (PEER_OFFLINE, UNREACHABLE…). A code the signaling protocol shares with other layers
 * (BAD_SIGNATURE, MALFORMED…) means here that the server refused what *we* sent, not that the
 * peer's bytes were bad: it closes as a protocol failure, never as a failed verification.
 */
function signalingCloseReason(e: unknown): LoftErrorCode {
  if (!isLoftError(e)) return "LOFT_ERR_SIGNALING_UNREACHABLE";
  return e.code.startsWith("LOFT_ERR_SIGNALING_") ? e.code : "LOFT_ERR_SIGNALING_PROTOCOL";
}

/** Early candidates kept for an offer that is still being decided (per attempt, and in total). */
const MAX_EARLY_CANDIDATES = 32;
const MAX_EARLY_ATTEMPTS = 16;

export interface IncomingOffer extends EngineIncomingOffer {
  /** The sender's identity key, from a verified envelope. */
  readonly from: Uint8Array;
  readonly conn: Uint8Array;
  /** Answer on this connection: the link opens when ICE and DTLS complete. */
  accept(): WebRtcLink;
  /** Tell the dialer no (a `bye`), so it does not wait for a timeout. */
  refuse(reason: ByeReason): void;
}

export interface DirectTransportOptions {
  signaling: SignalingClient;
  /** Read when each link starts, so TURN credentials renewed by the server apply to new links. */
  iceServers?: () => IceServerConfig[];
  /** `"relay"`: TURN relay candidates only (EngineSettings.iceTransportPolicy). */
  iceTransportPolicy?: IceTransportPolicy;
  openTimeoutMs?: number;
  onOffer: (offer: IncomingOffer) => void;
  /** Failures worth a log line (never includes payloads). */
  onError?: (error: Error) => void;
}

interface Attempt {
  link: WebRtcLink;
  peer: Uint8Array;
  conn: Uint8Array;
}

export class DirectTransport implements LiveTransport {
  readonly path = "direct" as const;
  readonly #o: DirectTransportOptions;
  readonly #attempts = new Map<string, Attempt>();
  /** Candidates that arrived for an offer the engine has not decided on yet. */
  readonly #early = new Map<string, DirectSignal[]>();
  readonly #off: () => void;

  constructor(options: DirectTransportOptions) {
    this.#o = options;
    this.#off = options.signaling.on((event) => {
      if (event.type === "signal") this.#onEnvelope(event.envelope);
      else if (event.type === "rejected" && event.reason === "bad-signature") this.#onForged(event.from);
    });
  }

  /** Stop routing signals and close every attempt. */
  close(): void {
    this.#off();
    for (const a of this.#attempts.values()) a.link.close("transport-closed");
    this.#attempts.clear();
    this.#early.clear();
  }

  /**
   * Resolves once every link open now is closed — by its session, after the session's CLOSE
   * (core/session `teardown`) — and its data channel has handed that CLOSE to the network
   * (webrtc-link.ts `settled`), so the engine's `stop` closes this transport after that, not
   * before (engine.ts `stop`, bounded). Links still connecting are not waited for: `close` ends
   * them. Never rejects.
   */
  settled(): Promise<void> {
    const open = [...this.#attempts.values()].filter((a) => a.link.state === "open");
    return Promise.all(open.map((a) => a.link.settled)).then(() => {});
  }

  /** Start a connection to `peer`: returns the initiating link (state `connecting`). */
  dial(peer: Uint8Array, options: { room?: Uint8Array } = {}): WebRtcLink {
    const conn = crypto.getRandomValues(new Uint8Array(CONN_ID_BYTES));
    return this.#start(peer, conn, true, options.room);
  }

  #key(peer: Uint8Array, conn: Uint8Array): string {
    return `${toHex(peer)}/${toHex(conn)}`;
  }

  #start(peer: Uint8Array, conn: Uint8Array, initiator: boolean, room?: Uint8Array): WebRtcLink {
    const key = this.#key(peer, conn);
    const link: WebRtcLink = new WebRtcLink({
      initiator,
      iceServers: this.#o.iceServers?.() ?? [],
      ...(this.#o.iceTransportPolicy ? { iceTransportPolicy: this.#o.iceTransportPolicy } : {}),
      ...(this.#o.openTimeoutMs === undefined ? {} : { openTimeoutMs: this.#o.openTimeoutMs }),
      onSignal: (s) => this.#send(link, peer, conn, s, room),
    });
    const attempt: Attempt = { link, peer: peer.slice(), conn: conn.slice() };
    this.#attempts.set(key, attempt);
    let opened = false;
    link.opened.then(
      () => {
        opened = true;
      },
      () => {},
    );
    void link.closed.then((info) => {
      if (this.#attempts.get(key) === attempt) this.#attempts.delete(key);
      // We gave up before the channel opened: tell the peer instead of letting it wait.
      if (!opened && !info.reason.startsWith("bye-") && info.reason !== "transport-closed")
        this.#bye(attempt.peer, attempt.conn, "cancelled");
      // A room member whose handshake found another room binding (docs/protocol/rooms.md §4):
      // say so at once rather than leave the other side to its handshake timeout.
      else if (opened && room && info.reason === "LOFT_ERR_DECRYPT")
        this.#bye(attempt.peer, attempt.conn, "refused");
    });
    return link;
  }

  #send(link: WebRtcLink, peer: Uint8Array, conn: Uint8Array, s: DirectSignal, room?: Uint8Array): void {
    let payload: SignalPayload;
    if (s.type === "candidate")
      payload = {
        kind: "ice",
        conn,
        candidate: s.candidate.candidate,
        ...(typeof s.candidate.sdpMid === "string" ? { mid: s.candidate.sdpMid } : {}),
        ...(typeof s.candidate.sdpMLineIndex === "number" ? { index: s.candidate.sdpMLineIndex } : {}),
      };
    else payload = { kind: s.type, conn, sdp: s.sdp, ...(s.type === "offer" && room ? { room } : {}) };
    this.#o.signaling
      .signal(peer, envelopeKind(payload), encodeSignalPayload(payload))
      .catch((e: unknown) => {
        // The envelope did not reach the peer: without it this attempt cannot succeed.
        link.close(signalingCloseReason(e), e instanceof Error ? e.message : undefined);
      });
  }

  #bye(peer: Uint8Array, conn: Uint8Array, reason: ByeReason): void {
    const payload = encodeSignalPayload({ kind: "bye", conn, reason });
    this.#o.signaling.signal(peer, "bye", payload).catch(() => {});
  }

  #onEnvelope(e: SignalEnvelope): void {
    const decoded = decodeSignalPayload(e.kind, e.payload);
    if (!decoded.ok) {
      this.#o.onError?.(new Error(`dropped a malformed ${e.kind} payload: ${decoded.error.code}`));
      return;
    }
    const p = decoded.value;
    const key = this.#key(e.from, p.conn);
    const attempt = this.#attempts.get(key);
    switch (p.kind) {
      case "offer": {
        if (attempt) return; // a duplicate offer for an attempt we already run
        const from = e.from.slice();
        const conn = p.conn.slice();
        const sdp = p.sdp;
        let decided = false;
        this.#o.onOffer({
          from,
          conn,
          ...(p.room ? { room: p.room.slice() } : {}),
          accept: () => {
            if (decided) throw new Error("offer already decided");
            decided = true;
            const link = this.#start(from, conn, false);
            link.signal({ type: "offer", sdp });
            for (const c of this.#early.get(key) ?? []) link.signal(c);
            this.#early.delete(key);
            return link;
          },
          refuse: (reason) => {
            if (decided) return;
            decided = true;
            this.#early.delete(key);
            this.#bye(from, conn, reason);
          },
        });
        return;
      }
      case "answer":
        attempt?.link.signal({ type: "answer", sdp: p.sdp });
        return;
      case "ice": {
        const signal: DirectSignal = {
          type: "candidate",
          candidate: { candidate: p.candidate, sdpMid: p.mid ?? null, sdpMLineIndex: p.index ?? null },
        };
        if (attempt) attempt.link.signal(signal);
        else this.#keepEarly(key, signal);
        return;
      }
      case "bye":
        attempt?.link.close(DIRECT_CLOSE.bye(p.reason), `the peer said ${p.reason}`);
        this.#early.delete(key);
        return;
      default:
        return; // live relay links (relay-live.ts)
    }
  }

  /** Candidates racing ahead of an offer's acceptance (bounded; dropped when decided). */
  #keepEarly(key: string, signal: DirectSignal): void {
    let list = this.#early.get(key);
    if (!list) {
      if (this.#early.size >= MAX_EARLY_ATTEMPTS) {
        const oldest = this.#early.keys().next().value;
        if (oldest !== undefined) this.#early.delete(oldest);
      }
      list = [];
      this.#early.set(key, list);
    }
    if (list.length < MAX_EARLY_CANDIDATES) list.push(signal);
  }

  #onForged(from: Uint8Array): void {
    const prefix = `${toHex(from)}/`;
    for (const [key, a] of this.#attempts)
      if (key.startsWith(prefix) && a.link.state !== "closed")
        a.link.close(
          DIRECT_CLOSE.BAD_SIGNATURE,
          "a signaling message from the peer failed its signature check",
        );
  }
}
