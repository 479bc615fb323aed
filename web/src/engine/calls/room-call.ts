/**
 * Voice calls in rooms (docs/protocol/calls.md §7): a full mesh among the members present — one
 * RTCPeerConnection per pair of members in the call, audio only — set up by `call.room.*`
 * signals on the room's member sessions (rooms/mesh.ts, Noise-bound to both identity keys and to
 * the room). As in one-to-one calls (calls.ts), each connection has a fresh DTLS certificate whose
 * SHA-256 fingerprint travels inside the member session; an SDP naming another is refused before
 * it is applied, and the certificate the DTLS peer presents is checked once connected.
 *
 * Who offers: of each pair, the member with the lower identity key (hex order), so two members
 * joining at once never both offer. A mesh sends every voice to every other member, so a call
 * holds at most `ROOM_CALL_LIMIT` people (bench/calls.ts `--room`; docs/decisions.md says what
 * takes it further: an SFU with SFrame).
 */
import { toHex } from "../../../../core/bytes.ts";
import type { EngineStorage } from "../api.ts";
import type { EngineContext } from "../context.ts";
import { iceServersFor } from "../ice-servers.ts";
import type { RoomFrameLane } from "../rooms/mesh.ts";
import { dtlsPeerMatches, newDtlsCertificate, sdpMatchesFingerprint } from "./fingerprint.ts";
import { MediaRefused, openLocalMedia } from "./media.ts";
import {
  decodeRoomCallFrame,
  encodeRoomCallFrame,
  isRoomCallFrame,
  type RoomCallSignal,
} from "./room-wire.ts";
import type { RoomCallControls, RoomCallView } from "./types.ts";
import { mediaProblem } from "./words.ts";

/**
 * The most people in one room call, from `npm run bench:calls -- --room` (bench/README.md): one
 * member's page costs 0.17 cores above idle in a 3-member mesh and 0.22 in a 6-member one, and
 * the six pages together 1.37 of the machine's 2 cores. Each member beyond adds one more upload
 * and one more connection on every device, so 6 keeps a member well under a core on a slower
 * device, with room for the rest of the app.
 */
export const ROOM_CALL_LIMIT = 6;
/** How often the active speaker is worked out (inbound audio levels, getStats). */
const SPEAKER_EVERY_MS = 400;
/** Below this audio level (0..1, RFC 6464 as getStats reports it) nobody is speaking. */
const SPEAKING_LEVEL = 0.02;
/** New connections the offering side makes for one member after a failed or refused one. */
const MAX_RETRIES = 2;
/** Early ICE candidates kept per member connection before its remote description. */
const MAX_PENDING_CANDIDATES = 64;

type Bytes = Uint8Array<ArrayBuffer>;

/** What the room call needs of the rooms engine (rooms/mesh.ts `RoomsEngine`). */
export interface RoomCallRooms {
  sendFrame(roomId: string, member: string, frame: Uint8Array): boolean;
  room(roomId: string): { members: { key: string; state: string }[] } | undefined;
}

export interface RoomCallDeps {
  rooms: RoomCallRooms;
  selfHex: string;
  storage: Pick<EngineStorage, "getSettings">;
  /** Where the STUN/TURN servers the signaling server pushed are kept (ice-servers.ts). */
  ice: Pick<EngineContext, "serverIce">;
  log: (message: string) => void;
}

interface MemberLink {
  pc: RTCPeerConnection;
  ourFp: Bytes;
  theirFp?: Bytes;
  remote: MediaStream;
  sender?: RTCRtpSender;
  pending: RTCIceCandidateInit[];
  verified: boolean;
  level: number;
  /** How many connections to this member came before this one (retries, bounded). */
  tries: number;
  /**
   * Rejects once the connection is closed: a closed RTCPeerConnection never settles what was
   * asked of it, so every step on it races this, or the member's signals would wait forever.
   */
  gone: Promise<never>;
  abandon: () => void;
}

interface RoomCallState {
  roomId: string;
  /** Others in the call: member hex → its microphone. */
  inCall: Map<string, { micOn: boolean }>;
  joined: boolean;
  micOn: boolean;
  local?: MediaStream;
  mic?: MediaStreamTrack;
  links: Map<string, MemberLink>;
  /** Member hex of the active speaker, or "self". */
  speaking?: string;
  note?: string;
  speakerTimer?: ReturnType<typeof setInterval>;
}

export class RoomCalls implements RoomCallControls, RoomFrameLane {
  readonly #d: RoomCallDeps;
  readonly #calls = new Map<string, RoomCallState>();
  readonly #listeners = new Set<(roomId: string) => void>();
  /** Signals of each member, handled one at a time in arrival order. */
  readonly #inbox = new Map<string, Promise<unknown>>();

  constructor(deps: RoomCallDeps) {
    this.#d = deps;
  }

  // ---- what the UI sees ------------------------------------------------------------------------

  view(roomId: string): RoomCallView {
    const s = this.#calls.get(roomId);
    const members = [...(s?.inCall ?? new Map<string, { micOn: boolean }>()).entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([key, { micOn }]) => ({
        key,
        micOn,
        connected: s?.links.get(key)?.verified === true,
        speaking: s?.speaking === key,
      }));
    return {
      roomId,
      joined: s?.joined ?? false,
      micOn: s?.micOn ?? false,
      speaking: s?.speaking === "self",
      members,
      limit: ROOM_CALL_LIMIT,
      ...(s?.note ? { note: s.note } : {}),
    };
  }

  streams(roomId: string): { key: string; stream: MediaStream }[] {
    const s = this.#calls.get(roomId);
    if (!s?.joined) return [];
    return [...s.links.entries()].map(([key, l]) => ({ key, stream: l.remote }));
  }

  subscribe(listener: (roomId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(s: RoomCallState): void {
    for (const l of this.#listeners) l(s.roomId);
  }

  #state(roomId: string): RoomCallState {
    let s = this.#calls.get(roomId);
    if (!s) {
      s = { roomId, inCall: new Map(), joined: false, micOn: false, links: new Map() };
      this.#calls.set(roomId, s);
    }
    return s;
  }

  // ---- joining and leaving ---------------------------------------------------------------------

  join(roomId: string): void {
    void this.#join(roomId).catch((e) => this.#d.log(`room call: join failed: ${(e as Error).message}`));
  }

  async #join(roomId: string): Promise<void> {
    const s = this.#state(roomId);
    if (s.joined) return;
    // One room call at a time on a device.
    for (const other of this.#calls.values()) if (other.joined) this.leave(other.roomId);
    if (s.inCall.size + 1 > ROOM_CALL_LIMIT) {
      s.note = `This call is full: ${s.inCall.size} people are in it, and a room call holds at most ${ROOM_CALL_LIMIT}, because everyone sends their voice to everyone. Try again when someone leaves.`;
      return this.#changed(s);
    }
    try {
      const media = await openLocalMedia(false, {});
      s.local = media.stream;
      s.mic = media.audio;
    } catch (e) {
      s.note = mediaProblem(e instanceof MediaRefused ? e.kind : "no-device", false, "join again");
      return this.#changed(s);
    }
    s.joined = true;
    s.micOn = true;
    s.note = undefined;
    this.#announce(s);
    for (const member of s.inCall.keys()) if (this.#offers(member)) await this.#offer(s, member);
    s.speakerTimer = setInterval(() => void this.#speakers(s), SPEAKER_EVERY_MS);
    this.#d.log(`room call ${roomId.slice(0, 8)}: joined (${s.inCall.size} others)`);
    this.#changed(s);
  }

  leave(roomId: string): void {
    const s = this.#calls.get(roomId);
    if (!s?.joined) return;
    for (const member of this.#present(roomId)) this.#send(s, member, { t: "call.room.out" });
    this.#hangUp(s);
    this.#d.log(`room call ${roomId.slice(0, 8)}: left`);
    this.#changed(s);
  }

  #hangUp(s: RoomCallState): void {
    s.joined = false;
    s.micOn = false;
    s.speaking = undefined;
    clearInterval(s.speakerTimer);
    s.speakerTimer = undefined;
    for (const member of [...s.links.keys()]) this.#close(s, member);
    for (const t of s.local?.getTracks() ?? []) t.stop();
    s.local = undefined;
    s.mic = undefined;
  }

  setMic(roomId: string, on: boolean): void {
    const s = this.#calls.get(roomId);
    if (!s?.joined || !s.mic) return;
    s.mic.enabled = on;
    s.micOn = on;
    // Muted sends nothing at all (calls.md §5): no packets for anyone to count.
    for (const l of s.links.values()) void l.sender?.replaceTrack(on ? (s.mic ?? null) : null);
    this.#announce(s);
    this.#changed(s);
  }

  /** The engine stops: leave every call. */
  stop(): void {
    for (const s of this.#calls.values()) if (s.joined) this.leave(s.roomId);
  }

  // ---- the rooms engine's side (RoomFrameLane) -------------------------------------------------

  onFrame(roomId: string, member: string, frame: Uint8Array): boolean {
    if (!isRoomCallFrame(frame)) return false;
    const decoded = decodeRoomCallFrame(frame);
    if (!decoded.ok) {
      this.#d.log(`room call: dropped a frame: ${decoded.error.code}`);
      return true;
    }
    const key = `${roomId}:${member}`;
    const next = (this.#inbox.get(key) ?? Promise.resolve())
      .then(() => this.#receive(roomId, member, decoded.value))
      .catch((e) => this.#d.log(`room call: ${decoded.value.t} failed: ${(e as Error).message}`));
    this.#inbox.set(key, next);
    return true;
  }

  memberUp(roomId: string, member: string): void {
    const s = this.#calls.get(roomId);
    // Everyone present learns who is in the call, joined or not (the room screen shows it).
    if (s?.joined) this.#send(s, member, { t: "call.room.in", a: s.micOn });
  }

  memberDown(roomId: string, member: string): void {
    const s = this.#calls.get(roomId);
    if (!s) return;
    s.inCall.delete(member);
    this.#close(s, member);
    this.#changed(s);
  }

  async #receive(roomId: string, member: string, m: RoomCallSignal): Promise<void> {
    const s = this.#state(roomId);
    switch (m.t) {
      case "call.room.in": {
        const known = s.inCall.has(member);
        s.inCall.set(member, { micOn: m.a });
        if (s.joined && !known) {
          this.#send(s, member, { t: "call.room.in", a: s.micOn });
          if (this.#offers(member) && !s.links.has(member)) await this.#offer(s, member);
        }
        return this.#changed(s);
      }
      case "call.room.out":
        s.inCall.delete(member);
        this.#close(s, member);
        return this.#changed(s);
      case "call.room.offer":
        this.#d.log(`room call: offer from ${member.slice(0, 8)} (${toHex(m.fp).slice(0, 8)})`);
        return this.#offered(s, member, m);
      case "call.room.answer":
        this.#d.log(`room call: answer from ${member.slice(0, 8)} (${toHex(m.fp).slice(0, 8)})`);
        return this.#answered(s, member, m);
      case "call.room.ice": {
        const l = s.links.get(member);
        if (!l) return;
        const init = { candidate: m.cand, sdpMid: m.mid, sdpMLineIndex: m.ml };
        if (!l.pc.remoteDescription) {
          if (l.pending.length < MAX_PENDING_CANDIDATES) l.pending.push(init);
          return;
        }
        await on(
          l,
          l.pc.addIceCandidate(init).catch(() => {}),
        );
        return;
      }
    }
  }

  // ---- the media connections -------------------------------------------------------------------

  /** Of each pair, the lower identity key offers. */
  #offers(member: string): boolean {
    return this.#d.selfHex < member;
  }

  async #offer(s: RoomCallState, member: string, tries = 0): Promise<void> {
    const l = await this.#connection(s, member);
    l.tries = tries;
    l.sender = l.pc.addTransceiver(s.mic ?? "audio", {
      direction: "sendrecv",
      streams: s.local ? [s.local] : [],
    }).sender;
    if (!s.micOn) await on(l, l.sender.replaceTrack(null));
    const offer = await on(l, l.pc.createOffer());
    await on(l, l.pc.setLocalDescription(offer));
    this.#send(s, member, { t: "call.room.offer", sdp: l.pc.localDescription?.sdp ?? "", fp: l.ourFp });
  }

  async #offered(s: RoomCallState, member: string, m: Extract<RoomCallSignal, { t: "call.room.offer" }>) {
    if (!s.joined || this.#offers(member)) return; // not in the call, or the offer is ours to make
    const checked = sdpMatchesFingerprint(m.sdp, m.fp);
    if (!checked.ok) {
      this.#d.log(`room call: refused ${member.slice(0, 8)}'s offer: ${checked.error.message}`);
      s.note =
        "A member's media connection did not present the key sent in the room's encrypted link, so it was refused.";
      return this.#changed(s);
    }
    const l = await this.#connection(s, member);
    l.theirFp = m.fp;
    await on(l, l.pc.setRemoteDescription({ type: "offer", sdp: m.sdp }));
    const [audio] = l.pc.getTransceivers();
    if (audio) {
      audio.direction = "sendrecv";
      await on(l, audio.sender.replaceTrack(s.micOn ? (s.mic ?? null) : null));
      if (s.local) audio.sender.setStreams?.(s.local);
      l.sender = audio.sender;
    }
    const answer = await on(l, l.pc.createAnswer());
    await on(l, l.pc.setLocalDescription(answer));
    await this.#flush(l);
    this.#send(s, member, { t: "call.room.answer", sdp: l.pc.localDescription?.sdp ?? "", fp: l.ourFp });
  }

  async #answered(s: RoomCallState, member: string, m: Extract<RoomCallSignal, { t: "call.room.answer" }>) {
    const l = s.links.get(member);
    if (l?.pc.signalingState !== "have-local-offer") return;
    if (!sdpMatchesFingerprint(m.sdp, m.fp).ok) {
      this.#d.log(`room call: refused ${member.slice(0, 8)}'s answer: fingerprint`);
      this.#close(s, member);
      return this.#changed(s);
    }
    l.theirFp = m.fp;
    await on(l, l.pc.setRemoteDescription({ type: "answer", sdp: m.sdp }));
    await this.#flush(l);
  }

  async #flush(l: MemberLink): Promise<void> {
    for (const init of l.pending.splice(0))
      await on(
        l,
        l.pc.addIceCandidate(init).catch(() => {}),
      );
  }

  /** A fresh certificate and the member's connection using it (replacing an older one). */
  async #connection(s: RoomCallState, member: string): Promise<MemberLink> {
    this.#close(s, member);
    const { cert, fp: ourFp } = await newDtlsCertificate();
    const settings = await this.#d.storage.getSettings();
    const pc = new RTCPeerConnection({
      iceServers: iceServersFor(this.#d.ice, settings),
      ...(settings.iceTransportPolicy ? { iceTransportPolicy: settings.iceTransportPolicy } : {}),
      certificates: [cert],
      bundlePolicy: "max-bundle",
      rtcpMuxPolicy: "require",
    });
    let abandon = () => {};
    const gone = new Promise<never>((_, reject) => {
      abandon = () => reject(new Error("the member's connection was closed"));
    });
    gone.catch(() => {});
    const l: MemberLink = {
      pc,
      ourFp,
      remote: new MediaStream(),
      pending: [],
      verified: false,
      level: 0,
      tries: 0,
      gone,
      abandon,
    };
    s.links.set(member, l);
    pc.onicecandidate = (e) => {
      const c = e.candidate;
      if (!c?.candidate) return;
      this.#send(s, member, {
        t: "call.room.ice",
        cand: c.candidate,
        mid: c.sdpMid ?? "",
        ml: c.sdpMLineIndex ?? 0,
      });
    };
    pc.ontrack = (e) => {
      if (!l.remote.getTracks().includes(e.track)) l.remote.addTrack(e.track);
      this.#changed(s);
    };
    pc.onconnectionstatechange = () => void this.#connectionState(s, member, l);
    return l;
  }

  async #connectionState(s: RoomCallState, member: string, l: MemberLink): Promise<void> {
    if (s.links.get(member) !== l) return;
    // The offering side tries again with a new connection, a bounded number of times.
    const retry = async () => {
      if (s.joined && s.inCall.has(member) && this.#offers(member) && l.tries < MAX_RETRIES)
        await this.#offer(s, member, l.tries + 1);
    };
    if (l.pc.connectionState === "connected" && !l.verified) {
      const matches = await dtlsPeerMatches(l.pc, l.theirFp, (m) => this.#d.log(`room call: ${m}`));
      if (s.links.get(member) !== l) return; // replaced or closed meanwhile
      if (!matches) {
        this.#d.log(
          `room call: ${member.slice(0, 8)}'s DTLS certificate is not the one sent in the room link`,
        );
        this.#close(s, member);
        this.#changed(s);
        return retry();
      }
      l.verified = true;
      this.#d.log(`room call: media ${member.slice(0, 8)} connected, DTLS fingerprint verified`);
      this.#changed(s);
    } else if (l.pc.connectionState === "failed") {
      l.verified = false;
      this.#changed(s);
      await retry();
    }
  }

  #close(s: RoomCallState, member: string): void {
    const l = s.links.get(member);
    if (!l) return;
    s.links.delete(member);
    l.abandon();
    l.pc.onicecandidate = null;
    l.pc.ontrack = null;
    l.pc.onconnectionstatechange = null;
    l.pc.close();
    if (s.speaking === member) s.speaking = undefined;
  }

  /** The active speaker: the loudest voice above `SPEAKING_LEVEL` (ours included). */
  async #speakers(s: RoomCallState): Promise<void> {
    if (!s.joined) return;
    let best: string | undefined;
    let bestLevel = SPEAKING_LEVEL;
    let own = 0;
    for (const [member, l] of s.links) {
      let level = 0;
      const report = await l.pc.getStats().catch(() => undefined);
      report?.forEach((x: Record<string, unknown>) => {
        if (x.type === "inbound-rtp" && x.kind === "audio")
          level = Math.max(level, Number(x.audioLevel ?? 0));
        if (x.type === "media-source" && x.kind === "audio") own = Math.max(own, Number(x.audioLevel ?? 0));
      });
      l.level = s.inCall.get(member)?.micOn === false ? 0 : level;
      if (l.level > bestLevel) {
        best = member;
        bestLevel = l.level;
      }
    }
    if (s.micOn && own > bestLevel) best = "self";
    if (best !== s.speaking) {
      s.speaking = best;
      this.#changed(s);
    }
  }

  // ---- plumbing --------------------------------------------------------------------------------

  /** Members with a live session in the room. */
  #present(roomId: string): string[] {
    return (this.#d.rooms.room(roomId)?.members ?? []).filter((m) => m.state === "online").map((m) => m.key);
  }

  /** Tell everyone present that we are in the call, and our microphone. */
  #announce(s: RoomCallState): void {
    for (const member of this.#present(s.roomId)) this.#send(s, member, { t: "call.room.in", a: s.micOn });
  }

  #send(s: RoomCallState, member: string, m: RoomCallSignal): void {
    if (!this.#d.rooms.sendFrame(s.roomId, member, encodeRoomCallFrame(m)))
      this.#d.log(`room call: ${m.t} to ${member.slice(0, 8)} not sent (no link)`);
  }
}

/** A step on the member's connection, given up once the connection is closed (`MemberLink.gone`). */
function on<T>(l: MemberLink, step: Promise<T>): Promise<T> {
  return Promise.race([step, l.gone]);
}
