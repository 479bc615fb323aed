/**
 * One-to-one calls (docs/protocol/calls.md): the media runs on its own RTCPeerConnection, and
 * everything that sets it up — offer, answer, trickled ICE candidates, ring, media state, end —
 * travels as `call.*` application messages inside the contact's live ratchet session
 * (calls/wire.ts). Each side makes a fresh DTLS certificate per call and sends its SHA-256
 * fingerprint (`fp`) in the session; the other side refuses an SDP naming any other fingerprint
 * before applying it, and checks the certificate the DTLS peer actually presented once connected.
 * A signaling server never sees the SDP; a TURN server only relays SRTP it cannot read.
 *
 * One call at a time. Signals are handled in arrival order on one chain (`#inbox`), outside the
 * contact's ratchet chain (`receive` is called from inside it and must not wait on it).
 */
import { equalBytes, toHex } from "../../../../core/bytes.ts";
import { randomId } from "../../lib/base64url.ts";
import type { ContactId, StoredMessage } from "../api.ts";
import { type EngineContext, emit, type Peer, serial, stamp } from "../context.ts";
import { iceServersFor } from "../ice-servers.ts";
import { ratchetCanSend, sendApp } from "../peer-ratchet.ts";
import { dtlsPeerMatches, newDtlsCertificate, sdpMatchesFingerprint } from "./fingerprint.ts";
import { MediaRefused, openCamera, openLocalMedia, openMicrophone } from "./media.ts";
import type { CallControls, CallDevice, CallEndKind, CallView } from "./types.ts";
import { CALL_ID_BYTES, type CallEndReason, type CallSignal } from "./wire.ts";
import { endMessage, historyText } from "./words.ts";

/** The caller gives up after this long without an answer (the callee records a missed call). */
export const RING_TIMEOUT_MS = 45_000;
/** The callee stops ringing on its own after this long (the caller's `timeout` may be lost). */
const INCOMING_TIMEOUT_MS = 60_000;
/** How long a call in "calling" waits for the contact's session to come up. */
const SESSION_WAIT_MS = 15_000;
/** ICE "disconnected" for this long starts an ICE restart (the caller sends it). */
const RESTART_AFTER_MS = 2_000;
/** While reconnecting, a restart offer goes again this often (the session may be back by then). */
const RESTART_EVERY_MS = 4_000;
/** Reconnecting for longer than this ends the call as failed. */
const RECONNECT_GIVE_UP_MS = 30_000;
/** Early ICE candidates kept per call before its remote description is set. */
const MAX_PENDING_CANDIDATES = 64;
/** Our own candidates kept per call, to send again on a new session (one ICE generation). */
const MAX_RESEND_CANDIDATES = 64;
/** An answered call whose media is not up after this long ends as failed (lost signals, no path). */
const CONNECT_TIMEOUT_MS = 45_000;
/** Ended calls remembered, so that a late copy of their offer does not ring again. */
const MAX_ENDED_CALLS = 32;

export type CallsContext = Pick<
  EngineContext,
  "cfg" | "storage" | "listeners" | "peers" | "lastStamp" | "stopped" | "signaling" | "serverIce"
>;

type Bytes = Uint8Array<ArrayBuffer>;

interface ActiveCall {
  id: Bytes;
  peer: Peer;
  view: CallView;
  /** Their DTLS fingerprint, from the session. */
  theirFp?: Bytes;
  /** Ours: the SHA-256 fingerprint of this call's certificate (the same for every offer of it). */
  ourFp?: Bytes;
  /** The offer waiting for the user's answer (callee). */
  offer?: { sdp: string; fp: Bytes };
  pc?: RTCPeerConnection;
  local?: MediaStream;
  remote?: MediaStream;
  mic?: MediaStreamTrack;
  camera?: MediaStreamTrack;
  screen?: MediaStreamTrack;
  audioSender?: RTCRtpSender;
  videoSender?: RTCRtpSender;
  pending: RTCIceCandidateInit[];
  timers: Set<ReturnType<typeof setTimeout>>;
  reconnectSince?: number;
  restartTimer?: ReturnType<typeof setTimeout>;
  devices: { audioinput?: string; videoinput?: string };
  /** The post-connection fingerprint check passed. */
  verified: boolean;
  /**
   * What a replaced or dropped session may have lost, sent again on the contact's next live
   * session (`sessionUp`, calls.md §5): our latest offer or answer and this ICE generation's
   * candidates. Signals are not queued like messages: a copy that does arrive twice is harmless.
   */
  resend: { offer?: CallSignal; answer?: CallSignal; ice: CallSignal[] };
}

export class Calls implements CallControls {
  readonly #ctx: CallsContext;
  readonly #connect: (contactId: ContactId) => void;
  #call: ActiveCall | undefined;
  #inbox: Promise<unknown> = Promise.resolve();
  /** Ended calls (hex id → what we told the contact), newest last: a late offer is answered, not rung. */
  readonly #ended = new Map<string, CallEndReason>();
  /**
   * `call.end` signals that did not leave, by the contact's engine state: sent on its next session
   * (`sessionUp`). Keyed by the Peer, not its id: a deleted contact's Peer goes (link/links.ts),
   * and what it was owed goes with it — a contact added again with the same identity is a new
   * Peer, owed nothing stale.
   */
  readonly #owed = new WeakMap<Peer, CallSignal[]>();

  constructor(ctx: CallsContext, connect: (contactId: ContactId) => void) {
    this.#ctx = ctx;
    this.#connect = connect;
  }

  current(): CallView | undefined {
    return this.#call ? { ...this.#call.view } : undefined;
  }

  streams(): { local?: MediaStream; remote?: MediaStream } {
    const c = this.#call;
    if (!c || c.view.phase === "ended") return {};
    return { ...(c.local ? { local: c.local } : {}), ...(c.remote ? { remote: c.remote } : {}) };
  }

  #live(): ActiveCall | undefined {
    const c = this.#call;
    return c && c.view.phase !== "ended" ? c : undefined;
  }

  #changed(c: ActiveCall, change: Partial<CallView> = {}): void {
    Object.assign(c.view, change);
    if (this.#call === c) emit(this.#ctx, { type: "call", call: { ...c.view } });
  }

  #log(m: string): void {
    this.#ctx.cfg.log(`call: ${m}`);
  }

  // ---- placing a call ------------------------------------------------------------------------

  start(contactId: ContactId, options: { video: boolean }): void {
    void this.#start(contactId, options.video).catch((e) =>
      this.#log(`start failed: ${(e as Error).message}`),
    );
  }

  async #start(contactId: ContactId, video: boolean): Promise<void> {
    if (this.#live()) return; // one call at a time: the UI shows the one in progress
    const peer = this.#ctx.peers.get(contactId);
    const id = crypto.getRandomValues(new Uint8Array(CALL_ID_BYTES));
    const c = this.#newCall(id, contactId, peer, "out", video, "calling");
    if (!peer || peer.blocked || peer.request) return this.#finish(c, "blocked", undefined);
    if (!(await this.#sessionUp(c))) return this.#finish(c, "offline", undefined);
    try {
      await this.#openMedia(c, video);
    } catch (e) {
      return this.#finish(c, e instanceof MediaRefused ? e.kind : "no-device", undefined);
    }
    if (this.#call !== c || c.view.phase === "ended") return this.#stopMedia(c);
    const fp = await this.#connection(c);
    c.audioSender = c.pc!.addTransceiver(c.mic!, { direction: "sendrecv", streams: [c.local!] }).sender;
    c.videoSender = c.pc!.addTransceiver(c.camera ?? "video", {
      direction: "sendrecv",
      streams: [c.local!],
    }).sender;
    const offer = await c.pc!.createOffer();
    await c.pc!.setLocalDescription(offer);
    const sdp = c.pc!.localDescription?.sdp ?? offer.sdp ?? "";
    const signal: CallSignal = { t: "call.offer", c: id, v: video, sdp, fp };
    c.resend.offer = signal;
    this.#timer(c, RING_TIMEOUT_MS, () => {
      if (c.view.phase === "calling" || c.view.phase === "ringing") this.#finish(c, "no-answer", "timeout");
    });
    if (await this.#send(c, signal)) return;
    // The session went away under us (replaced, dropped): the offer goes on the next one.
    if (!(await this.#sessionUp(c))) return this.#finish(c, "offline", undefined);
    if (this.#call === c && c.view.phase === "calling") await this.#send(c, signal);
  }

  /**
   * A live session to the contact that a signal can still leave on, dialing if needed (the call's
   * signals need it). Not closed is not enough: a session whose link closed under it stays `open`
   * while its reader drains, but drops what is sent (core/session `writable`; docs/protocol/session.md
   * §5) — the offer would be counted as sent and lost. Such a session closes once drained, and the
   * link controller dials again; the call waits for that one.
   */
  async #sessionUp(c: ActiveCall): Promise<boolean> {
    const peer = c.peer;
    const usable = () => peer.live?.session.writable === true && ratchetCanSend(peer);
    if (usable()) return true;
    // Without signaling, or with the contact offline, no session can come up now.
    if (!peer.online || this.#ctx.signaling?.state !== "registered") return false;
    this.#log(`no session a signal can leave on with ${peer.id.slice(0, 8)}: waiting for one`);
    this.#connect(peer.id);
    const until = Date.now() + SESSION_WAIT_MS;
    // Bounded in time: the session comes up, or the call says the contact is offline.
    while (Date.now() < until && this.#call === c && c.view.phase !== "ended" && !this.#ctx.stopped) {
      if (usable()) return true;
      await new Promise<void>((r) => {
        const off = () => {
          this.#ctx.listeners.delete(l);
          clearTimeout(t);
          r();
        };
        const l = (e: { type: string; contactId?: string }) => {
          if (e.type === "presence" && e.contactId === peer.id) off();
        };
        const t = setTimeout(off, 500);
        this.#ctx.listeners.add(l);
      });
    }
    return usable();
  }

  // ---- receiving -----------------------------------------------------------------------------

  /** A `call.*` signal from the contact's live session (messages.ts). Never waits on `serial`. */
  receive(peer: Peer, m: CallSignal): void {
    this.#inbox = this.#inbox
      .then(() => this.#receive(peer, m))
      .catch((e) => this.#log(`${m.t} failed: ${(e as Error).message}`));
  }

  async #receive(peer: Peer, m: CallSignal): Promise<void> {
    const c = this.#live();
    const ours = c !== undefined && c.peer === peer && equalBytes(c.id, m.c);
    if (m.t === "call.offer") {
      if (ours) return this.#restartOffer(c, m);
      const told = this.#ended.get(toHex(m.c));
      if (told) {
        // A copy of an ended call's offer (sent again on a new session): say again how it ended.
        await this.#sendTo(peer, { t: "call.end", c: m.c, r: told });
        return;
      }
      if (c) {
        // Busy: say so, and keep a trace of who tried.
        this.#remember(m.c, "busy");
        await this.#sendTo(peer, { t: "call.end", c: m.c, r: "busy" });
        await this.#record(peer.id, "in", "missed", m.v);
        return;
      }
      return this.#incoming(peer, m);
    }
    if (!ours) return; // a late signal of a call that is over (or never was): nothing to do
    switch (m.t) {
      case "call.ring":
        if (c.view.phase === "calling") this.#changed(c, { phase: "ringing" });
        return;
      case "call.answer":
        return this.#answered(c, m);
      case "call.ice":
        return this.#candidate(c, { candidate: m.cand, sdpMid: m.mid, sdpMLineIndex: m.ml });
      case "call.media":
        this.#changed(c, { remoteMicOn: m.a, remoteVideoOn: m.v });
        return;
      case "call.end":
        return this.#finish(c, endKindFor(m.r, c), undefined);
    }
  }

  async #incoming(peer: Peer, m: Extract<CallSignal, { t: "call.offer" }>): Promise<void> {
    if (peer.blocked || peer.request) {
      this.#remember(m.c, "decline");
      await this.#sendTo(peer, { t: "call.end", c: m.c, r: "decline" });
      return;
    }
    const checked = sdpMatchesFingerprint(m.sdp, m.fp);
    if (!checked.ok) {
      // Someone rewrote the offer's fingerprint: no connection is made, nothing is answered.
      this.#log(`refused an offer: ${checked.error.message}`);
      await this.#sendTo(peer, { t: "call.end", c: m.c, r: "refused" });
      const c = this.#newCall(m.c, peer.id, peer, "in", m.v, "incoming");
      return this.#finish(c, "fingerprint", undefined);
    }
    const c = this.#newCall(m.c, peer.id, peer, "in", m.v, "incoming");
    c.offer = { sdp: m.sdp, fp: m.fp };
    c.theirFp = m.fp;
    this.#changed(c);
    await this.#send(c, { t: "call.ring", c: m.c });
    this.#timer(c, INCOMING_TIMEOUT_MS, () => {
      if (c.view.phase === "incoming") this.#finish(c, "missed", undefined);
    });
  }

  accept(callId: string, options: { video?: boolean } = {}): void {
    const c = this.#live();
    if (!c || c.view.id !== callId || c.view.phase !== "incoming" || !c.offer) return;
    void this.#accept(c, options.video ?? c.view.video).catch((e) => {
      this.#log(`accept failed: ${(e as Error).message}`);
      this.#finish(c, "failed", "failed");
    });
  }

  async #accept(c: ActiveCall, video: boolean): Promise<void> {
    const offer = c.offer!;
    this.#changed(c, { phase: "connecting" });
    this.#connectTimer(c);
    try {
      await this.#openMedia(c, video);
    } catch (e) {
      return this.#finish(c, e instanceof MediaRefused ? e.kind : "no-device", "unavailable");
    }
    if (this.#call !== c || c.view.phase === "ended") return this.#stopMedia(c);
    const fp = await this.#connection(c);
    await c.pc!.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    const [audio, vid] = c.pc!.getTransceivers();
    if (audio) {
      audio.direction = "sendrecv";
      await audio.sender.replaceTrack(c.mic ?? null);
      audio.sender.setStreams?.(c.local!);
      c.audioSender = audio.sender;
    }
    if (vid) {
      vid.direction = "sendrecv";
      await vid.sender.replaceTrack(c.camera ?? null);
      vid.sender.setStreams?.(c.local!);
      c.videoSender = vid.sender;
    }
    const answer = await c.pc!.createAnswer();
    await c.pc!.setLocalDescription(answer);
    await this.#flushCandidates(c);
    const sdp = c.pc!.localDescription?.sdp ?? answer.sdp ?? "";
    c.offer = undefined;
    const signal: CallSignal = { t: "call.answer", c: c.id, sdp, fp };
    c.resend.answer = signal;
    // Not sent now (the session is being replaced): it goes again on the next one (`sessionUp`).
    if (await this.#send(c, signal)) await this.#sendMediaState(c);
  }

  async #answered(c: ActiveCall, m: Extract<CallSignal, { t: "call.answer" }>): Promise<void> {
    if (c.view.direction !== "out" || !c.pc) return;
    if (c.theirFp && !equalBytes(c.theirFp, m.fp)) return this.#finish(c, "fingerprint", "refused");
    const checked = sdpMatchesFingerprint(m.sdp, m.fp);
    if (!checked.ok) {
      this.#log(`refused an answer: ${checked.error.message}`);
      return this.#finish(c, "fingerprint", "refused");
    }
    if (c.pc.signalingState !== "have-local-offer") return; // a copy, or an answer to nothing
    c.theirFp = m.fp;
    await c.pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
    await this.#flushCandidates(c);
    if (c.view.phase === "calling" || c.view.phase === "ringing") {
      this.#changed(c, { phase: "connecting" });
      this.#connectTimer(c);
    }
    await this.#sendMediaState(c);
  }

  /** An offer for the call in progress: the caller restarts ICE (calls.md §5). */
  async #restartOffer(c: ActiveCall, m: Extract<CallSignal, { t: "call.offer" }>): Promise<void> {
    if (c.view.direction !== "in" || !c.theirFp) return;
    // The certificate never changes within a call: a new one is a new party.
    if (!equalBytes(c.theirFp, m.fp) || !sdpMatchesFingerprint(m.sdp, m.fp).ok)
      return this.#finish(c, "fingerprint", "refused");
    // A copy of the offer we hold or already answered (sent again on a new session): our
    // answer may be what was lost, so it goes again; the offer is not applied twice.
    if (!c.pc || c.pc.remoteDescription?.sdp === m.sdp) {
      if (c.resend.answer) await this.#send(c, c.resend.answer);
      return;
    }
    await c.pc.setRemoteDescription({ type: "offer", sdp: m.sdp });
    await this.#flushCandidates(c);
    const answer = await c.pc.createAnswer();
    c.resend.ice = []; // a new ICE generation: the old candidates are of no use
    await c.pc.setLocalDescription(answer);
    const fp = c.ourFp;
    if (!fp) return;
    c.resend.answer = { t: "call.answer", c: c.id, sdp: c.pc.localDescription?.sdp ?? "", fp };
    await this.#send(c, c.resend.answer);
  }

  /**
   * A new live session with the contact (link/controller.ts): signals sent on the old one may
   * be lost with it — it was replaced by a newer one, or dropped — so what the call still needs
   * goes again: the caller's pending offer, the callee's ring or answer, our candidates while the
   * media is not up, and our media state. The receiving side ignores what it already has.
   */
  sessionUp(peer: Peer): void {
    const owed = this.#owed.get(peer);
    if (owed) {
      this.#owed.delete(peer);
      this.#log(`${owed.length} call end(s) sent again on a new session ${peer.id.slice(0, 8)}`);
      for (const end of owed) void this.#sendTo(peer, end).then((sent) => sent || this.#owe(peer, end));
    }
    const c = this.#live();
    if (!c || c.peer !== peer) return;
    void this.#resend(c).catch((e) => this.#log(`resend failed: ${(e as Error).message}`));
  }

  async #resend(c: ActiveCall): Promise<void> {
    const { offer, answer } = c.resend;
    if (c.view.direction === "out" && offer && c.pc?.signalingState === "have-local-offer")
      await this.#send(c, offer);
    if (c.view.direction === "in" && c.view.phase === "incoming")
      await this.#send(c, { t: "call.ring", c: c.id });
    if (c.view.direction === "in" && answer && !c.verified) await this.#send(c, answer);
    if (c.view.phase !== "active") for (const ice of c.resend.ice) await this.#send(c, ice);
    if (c.pc && (offer || answer)) await this.#sendMediaState(c);
    this.#log(`signals sent again on a new session ${c.peer.id.slice(0, 8)}`);
  }

  async #candidate(c: ActiveCall, init: RTCIceCandidateInit): Promise<void> {
    if (!c.pc?.remoteDescription) {
      if (c.pending.length < MAX_PENDING_CANDIDATES) c.pending.push(init);
      return;
    }
    await c.pc.addIceCandidate(init).catch((e) => this.#log(`candidate refused: ${(e as Error).message}`));
  }

  async #flushCandidates(c: ActiveCall): Promise<void> {
    const pending = c.pending.splice(0);
    for (const init of pending) await this.#candidate(c, init);
  }

  // ---- the media connection ------------------------------------------------------------------

  /** A fresh certificate and the RTCPeerConnection using it; returns our fingerprint. */
  async #connection(c: ActiveCall): Promise<Bytes> {
    const { cert, fp } = await newDtlsCertificate();
    c.ourFp = fp;
    const settings = await this.#ctx.storage.getSettings();
    const pc = new RTCPeerConnection({
      iceServers: iceServersFor(this.#ctx, settings),
      ...(settings.iceTransportPolicy ? { iceTransportPolicy: settings.iceTransportPolicy } : {}),
      certificates: [cert],
      bundlePolicy: "max-bundle",
      rtcpMuxPolicy: "require",
    });
    c.pc = pc;
    c.remote = new MediaStream();
    pc.onicecandidate = (e) => {
      const cand = e.candidate;
      if (!cand?.candidate) return;
      const signal: CallSignal = {
        t: "call.ice",
        c: c.id,
        cand: cand.candidate,
        mid: cand.sdpMid ?? "",
        ml: cand.sdpMLineIndex ?? 0,
      };
      if (c.resend.ice.length < MAX_RESEND_CANDIDATES) c.resend.ice.push(signal);
      void this.#send(c, signal);
    };
    pc.ontrack = (e) => {
      if (!c.remote?.getTracks().includes(e.track)) c.remote?.addTrack(e.track);
      this.#changed(c);
    };
    pc.onconnectionstatechange = () => void this.#connectionState(c);
    pc.oniceconnectionstatechange = () => this.#iceState(c);
    return fp;
  }

  async #connectionState(c: ActiveCall): Promise<void> {
    const pc = c.pc;
    if (!pc || this.#call !== c || c.view.phase === "ended") return;
    if (pc.connectionState === "connected") {
      if (!c.verified) {
        const ok = await dtlsPeerMatches(pc, c.theirFp);
        if (!ok) return this.#finish(c, "fingerprint", "refused");
        c.verified = true;
        this.#log(`media ${c.peer.id.slice(0, 8)} connected, DTLS fingerprint verified`);
      }
      this.#reconnected(c);
    } else if (pc.connectionState === "failed") {
      if (!c.verified) return this.#finish(c, "failed", "failed");
      this.#reconnecting(c, true);
    }
  }

  #iceState(c: ActiveCall): void {
    const pc = c.pc;
    if (!pc || this.#call !== c || c.view.phase === "ended" || !c.verified) return;
    const s = pc.iceConnectionState;
    if (s === "disconnected") this.#reconnecting(c, false);
    else if (s === "failed") this.#reconnecting(c, true);
    else if (s === "connected" || s === "completed") this.#reconnected(c);
  }

  #reconnected(c: ActiveCall): void {
    c.reconnectSince = undefined;
    if (c.restartTimer) clearTimeout(c.restartTimer);
    c.restartTimer = undefined;
    if (c.view.phase !== "active")
      this.#changed(c, { phase: "active", connectedAt: c.view.connectedAt ?? Date.now() });
  }

  /** The network dropped: show it, restart ICE (the caller), give up after a while. */
  #reconnecting(c: ActiveCall, failed: boolean): void {
    if (c.reconnectSince === undefined) {
      c.reconnectSince = Date.now();
      this.#changed(c, { phase: "reconnecting" });
    }
    if (c.restartTimer) return;
    const tick = () => {
      c.restartTimer = undefined;
      if (this.#call !== c || c.view.phase !== "reconnecting" || c.reconnectSince === undefined) return;
      if (Date.now() - c.reconnectSince > RECONNECT_GIVE_UP_MS) return this.#finish(c, "failed", "failed");
      if (c.view.direction === "out") void this.#restartIce(c);
      c.restartTimer = setTimeout(tick, RESTART_EVERY_MS);
    };
    c.restartTimer = setTimeout(tick, failed ? 0 : RESTART_AFTER_MS);
  }

  async #restartIce(c: ActiveCall): Promise<void> {
    const pc = c.pc;
    const fp = c.ourFp;
    if (!pc || !fp) return;
    if (pc.signalingState !== "stable") await pc.setLocalDescription({ type: "rollback" }).catch(() => {});
    const offer = await pc.createOffer({ iceRestart: true });
    c.resend.ice = []; // a new ICE generation: the old candidates are of no use
    await pc.setLocalDescription(offer);
    this.#log(`ICE restart ${c.peer.id.slice(0, 8)}`);
    c.resend.offer = { t: "call.offer", c: c.id, v: c.view.video, sdp: pc.localDescription?.sdp ?? "", fp };
    await this.#send(c, c.resend.offer);
  }

  // ---- media controls ------------------------------------------------------------------------

  async #openMedia(c: ActiveCall, video: boolean): Promise<void> {
    const media = await openLocalMedia(video, c.devices);
    c.local = media.stream;
    c.mic = media.audio;
    if (media.video) c.camera = media.video;
    this.#changed(c, {
      micOn: true,
      cameraOn: media.video !== undefined,
      ...(media.note ? { note: media.note } : {}),
    });
  }

  setMic(on: boolean): void {
    const c = this.#live();
    if (!c?.mic) return;
    c.mic.enabled = on;
    // Muted sends nothing at all (not even silence): no packets for anyone to count.
    void c.audioSender?.replaceTrack(on ? c.mic : null);
    this.#changed(c, { micOn: on });
    void this.#sendMediaState(c);
  }

  async setCamera(on: boolean): Promise<void> {
    const c = this.#live();
    if (!c) return;
    if (on && !c.camera) {
      try {
        c.camera = await openCamera(c.devices.videoinput);
      } catch (e) {
        const kind = e instanceof MediaRefused ? e.kind : "no-device";
        this.#changed(c, {
          note: kind === "permission" ? "Loft isn't allowed to use your camera." : "No camera available.",
        });
        return;
      }
      c.local?.addTrack(c.camera);
    }
    if (c.camera) c.camera.enabled = on;
    if (!c.screen) await c.videoSender?.replaceTrack(on ? (c.camera ?? null) : null);
    if (!on && c.camera) {
      // Off means the light goes off too: the track stops and a new one opens when turned on.
      c.camera.stop();
      c.local?.removeTrack(c.camera);
      c.camera = undefined;
    }
    this.#changed(c, { cameraOn: on });
    await this.#sendMediaState(c);
  }

  async shareScreen(on: boolean): Promise<void> {
    const c = this.#live();
    if (!c) return;
    if (on) {
      let track: MediaStreamTrack | undefined;
      try {
        const s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
        track = s.getVideoTracks()[0];
      } catch (e) {
        const denied = (e as { name?: string }).name === "NotAllowedError";
        this.#changed(c, {
          note: denied ? "Screen sharing was cancelled." : "Screen sharing isn't available here.",
        });
        return;
      }
      if (!track) return;
      c.screen = track;
      track.onended = () => void this.shareScreen(false);
      await c.videoSender?.replaceTrack(track);
      this.#changed(c, { sharingScreen: true });
    } else {
      c.screen?.stop();
      c.screen = undefined;
      await c.videoSender?.replaceTrack(c.view.cameraOn ? (c.camera ?? null) : null);
      this.#changed(c, { sharingScreen: false });
    }
    await this.#sendMediaState(c);
  }

  async devices(): Promise<CallDevice[]> {
    const list = (await globalThis.navigator?.mediaDevices?.enumerateDevices?.()) ?? [];
    return list.map((d, i) => ({
      kind: d.kind,
      deviceId: d.deviceId,
      label:
        d.label ||
        `${d.kind === "audioinput" ? "Microphone" : d.kind === "videoinput" ? "Camera" : "Speaker"} ${i + 1}`,
    }));
  }

  async useDevice(kind: "audioinput" | "videoinput", deviceId: string): Promise<void> {
    const c = this.#live();
    if (!c) return;
    c.devices[kind] = deviceId;
    try {
      if (kind === "audioinput") {
        const next = await openMicrophone(deviceId);
        next.enabled = c.view.micOn;
        if (c.view.micOn) await c.audioSender?.replaceTrack(next);
        if (c.mic) {
          c.mic.stop();
          c.local?.removeTrack(c.mic);
        }
        c.mic = next;
        c.local?.addTrack(next);
      } else if (c.view.cameraOn) {
        const next = await openCamera(deviceId);
        if (!c.screen) await c.videoSender?.replaceTrack(next);
        if (c.camera) {
          c.camera.stop();
          c.local?.removeTrack(c.camera);
        }
        c.camera = next;
        c.local?.addTrack(next);
      }
      this.#changed(c, { note: undefined });
    } catch {
      this.#changed(c, { note: "That device could not be opened." });
    }
  }

  async #sendMediaState(c: ActiveCall): Promise<void> {
    await this.#send(c, {
      t: "call.media",
      c: c.id,
      a: c.view.micOn,
      v: c.view.sharingScreen || c.view.cameraOn,
    });
  }

  // ---- ending --------------------------------------------------------------------------------

  decline(callId: string): void {
    const c = this.#live();
    if (c?.view.id === callId && c.view.phase === "incoming") this.#finish(c, "declined", "decline");
  }

  hangUp(callId: string): void {
    const c = this.#live();
    if (!c || c.view.id !== callId) return;
    if (c.view.phase === "incoming") {
      this.#finish(c, "declined", "decline");
      return;
    }
    const answered = c.view.connectedAt !== undefined || c.view.phase === "connecting";
    this.#finish(c, answered ? "hangup" : "cancelled", answered ? "hangup" : "cancel");
  }

  /** The contact was blocked, is waiting on an identity decision, or was deleted: the call ends. */
  endFor(contactId: ContactId): void {
    const c = this.#live();
    if (c?.view.contactId !== contactId) return;
    const tell =
      c.view.connectedAt !== undefined ? "hangup" : c.view.direction === "in" ? "decline" : "cancel";
    this.#finish(c, "blocked", tell);
  }

  /** The engine stops: the call ends as a hang-up. */
  stop(): void {
    const c = this.#live();
    if (c)
      this.#finish(c, c.view.connectedAt ? "hangup" : "cancelled", c.view.connectedAt ? "hangup" : "cancel");
  }

  /** End `c`: tell the contact (`tell`), release the media, record it in the history. */
  #finish(c: ActiveCall, kind: CallEndKind, tell: CallEndReason | undefined): void {
    if (c.view.phase === "ended") return;
    const durationMs = c.view.connectedAt !== undefined ? Date.now() - c.view.connectedAt : undefined;
    // A late copy of this call's offer is answered with how it ended (the caller may have missed it).
    this.#remember(c.id, tell ?? (kind === "missed" ? "timeout" : "failed"));
    if (tell) {
      // A `call.end` that did not leave goes on the contact's next session (`sessionUp`): nothing
      // else would tell them (an ended call sends no more signals), and they would ring on.
      const end: CallSignal = { t: "call.end", c: c.id, r: tell };
      const peer = c.peer;
      if (peer) void this.#send(c, end).then((sent) => sent || this.#owe(peer, end));
    }
    this.#stopMedia(c);
    const name = c.peer?.name ?? "This contact";
    this.#changed(c, { phase: "ended", ended: { kind, message: endMessage(kind, name, c.view.video) } });
    this.#log(`ended ${c.view.contactId.slice(0, 8)}: ${kind}`);
    // Calls that never rang (offline, no microphone here) are not history: the screen said why.
    if (
      !["offline", "blocked", "permission", "no-device", "device-busy"].includes(kind) ||
      c.view.direction === "in"
    )
      void this.#record(c.view.contactId, c.view.direction, kind, c.view.video, durationMs);
  }

  #stopMedia(c: ActiveCall): void {
    for (const t of c.timers) clearTimeout(t);
    c.timers.clear();
    if (c.restartTimer) clearTimeout(c.restartTimer);
    for (const t of [c.mic, c.camera, c.screen]) t?.stop();
    for (const t of c.local?.getTracks() ?? []) t.stop();
    if (c.pc) {
      c.pc.onicecandidate = null;
      c.pc.ontrack = null;
      c.pc.onconnectionstatechange = null;
      c.pc.oniceconnectionstatechange = null;
      c.pc.close();
    }
  }

  /** A call in the contact's history (stored before its event, like a message). */
  async #record(
    contactId: ContactId,
    direction: "in" | "out",
    kind: CallEndKind,
    video: boolean,
    durationMs?: number,
  ): Promise<void> {
    const outcome: CallEndKind = kind === "hangup" && durationMs === undefined ? "failed" : kind;
    const m: StoredMessage = {
      id: randomId(),
      contactId,
      direction,
      text: historyText(outcome, video, durationMs),
      at: stamp(this.#ctx),
      state: direction === "in" ? "received" : "delivered",
      call: { video, outcome, ...(durationMs !== undefined ? { durationMs } : {}) },
    };
    try {
      await this.#ctx.storage.putMessage(m);
      emit(this.#ctx, { type: "message", message: m });
    } catch (e) {
      this.#log(`could not record the call: ${(e as Error).message}`);
    }
  }

  // ---- plumbing ------------------------------------------------------------------------------

  #newCall(
    id: Bytes,
    contactId: ContactId,
    peer: Peer | undefined,
    direction: "in" | "out",
    video: boolean,
    phase: CallView["phase"],
  ): ActiveCall {
    const c: ActiveCall = {
      id,
      peer: peer as Peer,
      view: {
        id: toHex(id),
        contactId,
        direction,
        video,
        phase,
        micOn: false,
        cameraOn: false,
        sharingScreen: false,
        remoteMicOn: true,
        remoteVideoOn: video,
      },
      pending: [],
      timers: new Set(),
      devices: {},
      verified: false,
      resend: { ice: [] },
    };
    this.#call = c;
    this.#changed(c);
    return c;
  }

  /** Bounded "connecting": signals lost for good, or no path the media could take. */
  #connectTimer(c: ActiveCall): void {
    this.#timer(c, CONNECT_TIMEOUT_MS, () => {
      if (c.view.phase === "connecting") this.#finish(c, "failed", "failed");
    });
  }

  #remember(id: Bytes, told: CallEndReason): void {
    const key = toHex(id);
    this.#ended.delete(key);
    this.#ended.set(key, told);
    for (const old of this.#ended.keys()) {
      if (this.#ended.size <= MAX_ENDED_CALLS) break;
      this.#ended.delete(old);
    }
  }

  /**
   * `end` goes on `peer`'s next live session; the newest MAX_ENDED_CALLS are kept. A contact
   * deleted meanwhile (a deletion ends its call with a `call.end` that cannot leave, the links
   * being closed) has none: its Peer is gone, a contact added again is another one.
   */
  #owe(peer: Peer, end: CallSignal): void {
    this.#log(`${end.t} not sent: it goes on the next session`);
    const owed = this.#owed.get(peer) ?? [];
    owed.push(end);
    this.#owed.set(peer, owed.slice(-MAX_ENDED_CALLS));
  }

  #timer(c: ActiveCall, ms: number, run: () => void): void {
    const t = setTimeout(() => {
      c.timers.delete(t);
      run();
    }, ms);
    c.timers.add(t);
  }

  #send(c: ActiveCall, m: CallSignal): Promise<boolean> {
    return c.peer ? this.#sendTo(c.peer, m) : Promise.resolve(false);
  }

  /**
   * Over the contact's live session, ratchet-encrypted; true once its frames reached the link.
   * False when there is no session now, or its link closed under it before the signal left
   * (core/session `writable`, `flushed`): the caller sends it again on the next session.
   */
  async #sendTo(peer: Peer, m: CallSignal): Promise<boolean> {
    const live = peer.live;
    if (!live?.session.writable) return false;
    try {
      await serial(peer, () => sendApp(this.#ctx, peer, live, m));
      await live.session.flushed();
      return true;
    } catch (e) {
      this.#log(`${m.t} not sent: ${(e as Error).message}`);
      return false;
    }
  }
}

/** The contact's `call.end` reason → how the call ended for us. */
function endKindFor(r: CallEndReason, c: ActiveCall): CallEndKind {
  switch (r) {
    case "hangup":
      return "hangup";
    case "cancel":
    case "timeout":
      return c.view.direction === "in" ? "missed" : "hangup";
    case "decline":
      return "declined";
    case "busy":
      return "busy";
    case "refused":
      return "refused";
    case "unavailable":
      return "unavailable";
    case "failed":
      return "failed";
  }
}
