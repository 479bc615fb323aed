/**
 * Rooms: a mesh of pairwise end-to-end encrypted member links (docs/protocol/rooms.md). No group
 * key and no server fan-out: every pair of members present runs its own Noise XXhfs session over
 * its own direct link, bound to the room (the prologue binding, §4), and room chat is sent to each
 * member over that member's session.
 *
 *   rendezvous (§2)  signaling ROOM_JOIN under the room hash; the server says who is present and
 *                    pushes arrivals and departures (core/signaling/client.ts joinRoom)
 *   who dials (§3)   a member already present dials each newcomer (its offer names the room hash);
 *                    the newcomer only answers. So a newcomer is always the responder: a member
 *                    facing someone without the secret reads their message 2 and fails with
 *                    LOFT_ERR_DECRYPT — a refused attempt, shown to the member, never retried
 *   chat (§5, §6)    room.hi (display name), room.msg, room.rcpt (per member "delivered"), room.bye
 *   at rest (§7)     rooms/store.ts, sealed
 *
 * One member link per member and room: a newer one (the member came back) replaces the older.
 * Every loop is bounded: dial retries (DIAL_RETRIES with backoff while the member is present),
 * frames read one at a time per session.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { equalBytes, fromHex, toHex } from "../../../../core/bytes.ts";
import type { CryptoProvider } from "../../../../core/crypto/provider.ts";
import { isLoftError } from "../../../../core/errors.ts";
import type { UserIdentity } from "../../../../core/identity/identity.ts";
import { establishSession, type Session } from "../../../../core/session/index.ts";
import type { SignalingClient, SignalingEvent } from "../../../../core/signaling/client.ts";
import { randomId } from "../../lib/base64url.ts";
import type { EngineStorage } from "../api.ts";
import { MAX_TEXT_CHARS } from "../outgoing.ts";
import type { IncomingOffer, LiveTransport } from "../transport.ts";
import { MAX_RECEIPT_IDS } from "../wire.ts";
import type {
  RoomEvent,
  RoomMemberView,
  RoomMessageState,
  RoomMessageView,
  RoomStatus,
  RoomsApi,
  RoomView,
} from "./api.ts";
import {
  newRoomLink,
  parseRoomLink,
  type RoomLink,
  roomBinding,
  roomFragment,
  roomHash,
} from "./room-link.ts";
import { type LogEntry, type RoomRecord, RoomStore } from "./store.ts";
import { decodeRoomFrame, encodeRoomFrame, type RoomMessage } from "./wire.ts";

/** Default member cap of a room (the joiner included); docs/protocol/rooms.md §3 says why. */
export const DEFAULT_ROOM_MEMBER_CAP = 8;
/** Dials of one member after a failure, while it stays present. */
const DIAL_RETRIES = 4;
const RETRY_BASE_MS = 1_000;

/**
 * Another feature's frames on the member sessions (room calls: calls/room-call.ts, frames
 * 0x30–0x37): the mesh hands them over and says when a member's session comes up or goes.
 */
export interface RoomFrameLane {
  /** True when the frame is the lane's (it is then not read as a room message). */
  onFrame(roomId: string, member: string, frame: Uint8Array): boolean;
  memberUp(roomId: string, member: string): void;
  memberDown(roomId: string, member: string): void;
}

export interface RoomsDeps {
  user: UserIdentity;
  storage: Pick<EngineStorage, "loadSecret" | "saveSecret" | "deleteSecret">;
  crypto?: CryptoProvider;
  memberCap: number;
  handshakeTimeoutMs: number;
  log: (message: string) => void;
  now: () => number;
}

interface Member {
  readonly key: Uint8Array;
  readonly hex: string;
  name: string | undefined;
  present: boolean;
  session: Session | undefined;
  dialing: boolean;
  refused: boolean;
  failures: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface Room {
  readonly record: RoomRecord;
  readonly link: RoomLink;
  readonly idHex: string;
  readonly hash: Uint8Array;
  readonly binding: Uint8Array;
  readonly members: Map<string, Member>;
  readonly refused: { key: string; at: number }[];
  log: LogEntry[];
  status: RoomStatus;
  /** Outgoing sends of this room, in hand-over order. */
  sending: Promise<void>;
}

export class RoomsEngine implements RoomsApi {
  readonly #d: RoomsDeps;
  readonly #store: RoomStore;
  readonly #rooms = new Map<string, Room>();
  readonly #listeners = new Set<(e: RoomEvent) => void>();
  readonly #selfHex: string;
  #signaling: SignalingClient | undefined;
  #transport: LiveTransport | undefined;
  #loaded: Promise<void> | undefined;
  #stopped = false;
  /** Room calls (set by the engine). */
  lane: RoomFrameLane | undefined;

  constructor(deps: RoomsDeps) {
    this.#d = deps;
    this.#store = new RoomStore(deps.storage);
    this.#selfHex = toHex(deps.user.identity.verified.identity_key);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /** Read the rooms we are in (history and all); the UI can list them before the network is up. */
  load(): Promise<void> {
    this.#loaded ??= (async () => {
      for (const record of await this.#store.rooms()) {
        const room = this.#roomOf(record);
        room.log = await this.#store.log(room.idHex);
      }
      this.#emit({ type: "rooms-changed" });
    })();
    return this.#loaded;
  }

  /** The engine's signaling and direct transport are up: be present in every room. */
  attach(signaling: SignalingClient, transport: LiveTransport): void {
    this.#signaling = signaling;
    this.#transport = transport;
    signaling.on((e) => this.#onSignaling(e));
    void this.load().then(() => {
      for (const room of this.#rooms.values()) void this.#enter(room);
    });
  }

  stop(): void {
    this.#stopped = true;
    for (const room of this.#rooms.values()) for (const m of room.members.values()) this.#drop(m, "stopped");
  }

  subscribe(listener: (e: RoomEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // ---- what the UI reads -------------------------------------------------------------------------

  list(): RoomView[] {
    return [...this.#rooms.values()].map((r) => this.#view(r));
  }

  room(id: string): RoomView | undefined {
    const r = this.#rooms.get(id);
    return r && this.#view(r);
  }

  messages(id: string): RoomMessageView[] {
    const r = this.#rooms.get(id);
    if (!r) return [];
    return r.log.map((e) => {
      const to = e.to ?? [];
      const got = e.got ?? [];
      const state: RoomMessageState =
        e.from !== undefined
          ? "received"
          : to.length === 0
            ? "alone"
            : got.length >= to.length
              ? "delivered"
              : "sent";
      return {
        id: e.id,
        from: e.from,
        name: e.name,
        at: e.at,
        text: e.text,
        state,
        delivered: got.length,
        recipients: to.length,
      };
    });
  }

  // ---- user actions --------------------------------------------------------------------------------

  /** A new room with us as its host: a fresh id and secret, and a room key of our own. */
  async create(): Promise<RoomView> {
    await this.load();
    const hostKey = crypto.getRandomValues(new Uint8Array(32));
    const link = newRoomLink(ed25519.getPublicKey(hostKey));
    return this.#add({
      id: link.id.slice(),
      k: link.secret.slice(),
      h: link.host.slice(),
      hk: hostKey,
      joinedAt: this.#d.now(),
      read: 0,
    });
  }

  /** Join from a link (or its fragment); joining a room we are in just returns it. */
  async join(linkText: string): Promise<RoomView> {
    await this.load();
    const parsed = parseRoomLink(linkText);
    if (!parsed.ok) throw new Error(`This is not a room link: ${parsed.error.message}.`);
    const idHex = toHex(parsed.value.id);
    const existing = this.#rooms.get(idHex);
    if (existing) {
      if (
        !equalBytes(existing.link.secret, parsed.value.secret) ||
        !equalBytes(existing.link.host, parsed.value.host)
      )
        throw new Error(
          "You are in this room already, from a different link. Leave it first to use this one.",
        );
      if (existing.status === "full" || existing.status === "offline" || existing.status === "refused")
        void this.#enter(existing);
      return this.#view(existing);
    }
    const l = parsed.value;
    return this.#add({
      id: l.id.slice(),
      k: l.secret.slice(),
      h: l.host.slice(),
      joinedAt: this.#d.now(),
      read: 0,
    });
  }

  /** A room just created or joined: kept, stored, and entered in the background. */
  async #add(record: RoomRecord): Promise<RoomView> {
    const room = this.#roomOf(record);
    await this.#saveRooms();
    void this.#enter(room);
    return this.#view(room);
  }

  /** Leave for good: the others are told, the history on this device is deleted. */
  async leave(id: string): Promise<void> {
    const room = this.#rooms.get(id);
    if (!room) return;
    for (const m of room.members.values()) {
      this.#sendTo(m, { t: "room.bye" });
      this.#drop(m, "left");
    }
    this.#rooms.delete(id);
    await this.#signaling?.leaveRoom(room.hash).catch(() => undefined);
    await this.#saveRooms();
    await this.#store.forget(id);
    this.#emit({ type: "rooms-changed" });
  }

  markRead(id: string): void {
    const room = this.#rooms.get(id);
    if (!room || room.record.read === room.log.length) return;
    room.record.read = room.log.length;
    void this.#saveRooms();
    this.#emit({ type: "room-changed", roomId: id });
  }

  /**
   * Send to everyone present: stored first (with the members it is for), then handed to each
   * member's session in order. A member whose link is down gets it when the link comes back.
   */
  send(id: string, text: string): RoomMessageView {
    const room = this.#rooms.get(id);
    if (!room) throw new Error("You are not in this room.");
    if (text.trim().length === 0) throw new Error("Type a message first.");
    if (text.length > MAX_TEXT_CHARS) throw new Error(`A message has at most ${MAX_TEXT_CHARS} characters.`);
    const to = [...room.members.values()].filter((m) => m.present && !m.refused).map((m) => m.hex);
    const entry: LogEntry = { id: randomId(), at: this.#d.now(), text, to, got: [] };
    room.log.push(entry);
    room.record.read = room.log.length;
    room.sending = room.sending.then(() => {
      void this.#saveLog(room);
      for (const hex of to) {
        const m = room.members.get(hex);
        if (m) this.#sendTo(m, { t: "room.msg", id: entry.id, at: entry.at, text });
      }
    });
    this.#emit({ type: "room-changed", roomId: id });
    return this.messages(id).at(-1)!;
  }

  // ---- rendezvous ------------------------------------------------------------------------------------

  async #enter(room: Room): Promise<void> {
    const s = this.#signaling;
    if (!s || this.#stopped) return;
    room.status = "joining";
    this.#changed(room);
    try {
      const members = await s.joinRoom(room.hash, this.#d.memberCap);
      this.#present(room, members, false);
    } catch (e) {
      if (isLoftError(e) && e.code === "LOFT_ERR_SIGNALING_ROOM_FULL") room.status = "full";
      else if (isLoftError(e) && e.code === "LOFT_ERR_SIGNALING_TOO_MANY_ROOMS") room.status = "full";
      else room.status = "offline"; // joined again by the client after its next registration
      this.#changed(room);
    }
  }

  /** We are in the room with `keys` there (they dial us: we are the newcomer). */
  #present(room: Room, keys: Uint8Array[], dial: boolean): void {
    const now = new Set(keys.map(toHex));
    for (const m of room.members.values()) if (!now.has(m.hex) && m.present) this.#gone(m);
    for (const key of keys) {
      const m = this.#member(room, key);
      m.present = true;
      if (dial && !m.session) this.#dial(room, m);
    }
    room.status = this.#refusedEverywhere(room) ? "refused" : "in";
    this.#changed(room);
  }

  /** Every member present closed our handshake: the link we joined with is not the room's. */
  #refusedEverywhere(room: Room): boolean {
    const present = [...room.members.values()].filter((x) => x.present);
    return present.length > 0 && present.every((x) => x.refused);
  }

  #onSignaling(e: SignalingEvent): void {
    if (this.#stopped) return;
    if (e.type === "room-members") {
      const room = this.#byHash(e.room);
      if (room) this.#present(room, e.members, false);
    } else if (e.type === "room-presence") {
      const room = this.#byHash(e.room);
      if (!room || toHex(e.key) === this.#selfHex) return;
      const m = this.#member(room, e.key);
      if (e.present) {
        // A newcomer (or a member back after a drop): we were here first, so we dial.
        m.present = true;
        m.refused = false;
        m.failures = 0;
        this.#dial(room, m);
      } else this.#gone(m);
      this.#changed(room);
    }
  }

  #gone(m: Member): void {
    m.present = false;
    this.#drop(m, "left");
  }

  // ---- member links --------------------------------------------------------------------------------

  #dial(room: Room, m: Member): void {
    const transport = this.#transport;
    if (!transport || m.dialing || this.#stopped) return;
    clearTimeout(m.timer);
    m.dialing = true;
    this.#changed(room);
    const link = transport.dial(m.key, { room: room.hash });
    void (async () => {
      try {
        await link.opened;
        const session = await establishSession({
          link,
          role: "initiator",
          kind: "direct",
          self: this.#d.user,
          expectedIdentityKey: m.key,
          binding: room.binding,
          handshakeTimeoutMs: this.#d.handshakeTimeoutMs,
          ...(this.#d.crypto ? { crypto: this.#d.crypto } : {}),
        });
        m.dialing = false;
        this.#up(room, m, session);
      } catch (e) {
        m.dialing = false;
        link.close("room-dial-failed");
        if (isLoftError(e) && e.code === "LOFT_ERR_DECRYPT") {
          // Their message 2 did not decrypt under our binding: they do not hold the room secret.
          this.#refusedAttempt(room, m);
          return;
        }
        this.#d.log(`room dial failed: ${isLoftError(e) ? e.code : (e as Error).message}`);
        if (m.present && !this.#stopped && ++m.failures <= DIAL_RETRIES) {
          const delay = RETRY_BASE_MS * 2 ** (m.failures - 1) * (0.5 + Math.random() / 2);
          m.timer = setTimeout(() => this.#dial(room, m), delay);
        }
        this.#changed(room);
      }
    })();
  }

  /**
   * An offer naming a room we are in (or joining: a member told of us may dial before our own
   * join's answer is read) is answered; the handshake's room binding decides who is a member.
   * Offers for any other room are refused.
   */
  onOffer(offer: IncomingOffer): void {
    const room = offer.room ? this.#byHash(offer.room) : undefined;
    if (!room || this.#stopped || !(room.status === "in" || room.status === "joining")) {
      offer.refuse("refused");
      return;
    }
    const m = this.#member(room, offer.from);
    const link = offer.accept();
    let opened = false;
    void (async () => {
      try {
        await link.opened;
        opened = true;
        const session = await establishSession({
          link,
          role: "responder",
          kind: "direct",
          self: this.#d.user,
          expectedIdentityKey: m.key,
          binding: room.binding,
          handshakeTimeoutMs: this.#d.handshakeTimeoutMs,
          ...(this.#d.crypto ? { crypto: this.#d.crypto } : {}),
        });
        this.#up(room, m, session);
      } catch (e) {
        link.close("room-answer-failed");
        // As the newcomer we are the responder: a member who closes on our message 2 is one whose
        // binding differs from ours — the link's secret is not the room's (or theirs is not).
        const ended = isLoftError(e) && (e.code === "LOFT_ERR_LINK_CLOSED" || e.code === "LOFT_ERR_TIMEOUT");
        if (ended && opened) {
          m.refused = true;
          m.present = true;
          if (this.#refusedEverywhere(room)) room.status = "refused";
        }
        this.#d.log(`room answer failed: ${isLoftError(e) ? e.code : (e as Error).message}`);
        this.#changed(room);
      }
    })();
  }

  #refusedAttempt(room: Room, m: Member): void {
    m.refused = true;
    room.refused.push({ key: m.hex, at: this.#d.now() });
    if (room.refused.length > 20) room.refused.shift();
    this.#changed(room);
  }

  #up(room: Room, m: Member, session: Session): void {
    if (this.#stopped || !this.#rooms.has(room.idHex)) {
      session.close("not-in-room");
      return;
    }
    // Proven by the binding: a member of this room, present (it reached us through the rendezvous).
    m.present = true;
    const old = m.session;
    m.session = session;
    m.refused = false;
    m.failures = 0;
    if (room.status === "refused") room.status = "in";
    old?.close("replaced");
    this.#sendTo(m, { t: "room.hi", name: this.#d.user.identity.verified.username.slice(0, 40) || "?" });
    // What we sent for this member and it has not confirmed (it dropped and came back).
    for (const e of room.log)
      if (e.from === undefined && e.to?.includes(m.hex) && !e.got?.includes(m.hex))
        this.#sendTo(m, { t: "room.msg", id: e.id, at: e.at, text: e.text });
    this.#changed(room);
    void this.#read(room, m, session);
    this.lane?.memberUp(room.idHex, m.hex);
  }

  /** A frame of another feature (RoomFrameLane) to a member; false when its link is down. */
  sendFrame(roomId: string, member: string, frame: Uint8Array): boolean {
    const s = this.#rooms.get(roomId)?.members.get(member)?.session;
    if (!s || s.state === "closed") return false;
    try {
      s.send(frame);
      return true;
    } catch {
      return false;
    }
  }

  async #read(room: Room, m: Member, session: Session): Promise<void> {
    for (;;) {
      let bytes: Uint8Array;
      try {
        bytes = await session.receive();
      } catch {
        break;
      }
      if (this.lane?.onFrame(room.idHex, m.hex, bytes)) continue;
      const decoded = decodeRoomFrame(bytes);
      if (!decoded.ok) {
        this.#d.log(`dropped a room frame: ${decoded.error.code}`);
        continue;
      }
      if (!this.#receive(room, m, decoded.value)) break;
    }
    if (m.session === session) {
      m.session = undefined;
      this.#changed(room);
    }
    if (!m.session) this.lane?.memberDown(room.idHex, m.hex);
  }

  /** One message from a member; false when the link is to end (a bye). */
  #receive(room: Room, m: Member, msg: RoomMessage): boolean {
    switch (msg.t) {
      case "room.hi":
        m.name = msg.name;
        this.#changed(room);
        return true;
      case "room.msg": {
        if (!room.log.some((e) => e.from === m.hex && e.id === msg.id)) {
          room.log.push({ id: msg.id, from: m.hex, name: m.name, at: msg.at, text: msg.text });
          void this.#saveLog(room);
          this.#changed(room);
        }
        this.#sendTo(m, { t: "room.rcpt", ids: [msg.id] });
        return true;
      }
      case "room.rcpt": {
        const ids = new Set(msg.ids.slice(0, MAX_RECEIPT_IDS));
        let changed = false;
        for (const e of room.log)
          if (e.from === undefined && ids.has(e.id) && e.to?.includes(m.hex) && !e.got?.includes(m.hex)) {
            e.got = [...(e.got ?? []), m.hex];
            changed = true;
          }
        if (changed) {
          void this.#saveLog(room);
          this.#changed(room);
        }
        return true;
      }
      case "room.bye":
        this.#gone(m);
        this.#changed(room);
        return false;
    }
  }

  #sendTo(m: Member, msg: RoomMessage): void {
    const s = m.session;
    if (!s || s.state === "closed") return;
    try {
      s.send(encodeRoomFrame(msg));
    } catch {
      // closed meanwhile: what was not confirmed is sent again when the member's link is back
    }
  }

  #drop(m: Member, reason: string): void {
    clearTimeout(m.timer);
    m.timer = undefined;
    const s = m.session;
    m.session = undefined;
    s?.close(reason);
  }

  // ---- bookkeeping ---------------------------------------------------------------------------------

  #roomOf(record: RoomRecord): Room {
    const link = { id: record.id, secret: record.k, host: record.h };
    const room: Room = {
      record,
      link,
      idHex: toHex(record.id),
      hash: roomHash(record.id),
      binding: roomBinding(link),
      members: new Map(),
      refused: [],
      log: [],
      status: "offline",
      sending: Promise.resolve(),
    };
    this.#rooms.set(room.idHex, room);
    return room;
  }

  #member(room: Room, key: Uint8Array): Member {
    const hex = toHex(key);
    let m = room.members.get(hex);
    if (!m) {
      m = {
        key: fromHex(hex),
        hex,
        name: undefined,
        present: false,
        session: undefined,
        dialing: false,
        refused: false,
        failures: 0,
        timer: undefined,
      };
      room.members.set(hex, m);
    }
    return m;
  }

  #byHash(hash: Uint8Array): Room | undefined {
    for (const r of this.#rooms.values()) if (equalBytes(r.hash, hash)) return r;
    return undefined;
  }

  #view(r: Room): RoomView {
    const members: RoomMemberView[] = [...r.members.values()]
      // Someone refused (no room secret) is not a member: shown as a refused attempt instead.
      .filter((m) => m.present && !r.refused.some((x) => x.key === m.hex))
      .map((m) => ({
        key: m.hex,
        name: m.name,
        state: m.session ? "online" : m.refused ? "refused" : "connecting",
      }));
    let unread = 0;
    for (let i = r.record.read; i < r.log.length; i++) if (r.log[i]?.from !== undefined) unread++;
    return {
      id: r.idHex,
      fragment: roomFragment(r.link),
      host: r.record.hk !== undefined,
      status: r.status,
      members,
      refused: [...r.refused],
      unread,
      last: r.log.at(-1)?.text,
    };
  }

  #saveRooms(): Promise<void> {
    return this.#store.saveRooms([...this.#rooms.values()].map((r) => r.record)).catch((e: unknown) => {
      this.#d.log(`could not store the rooms: ${(e as Error).message}`);
    });
  }

  #saveLog(room: Room): Promise<void> {
    return this.#store
      .saveLog(room.idHex, () => room.log)
      .catch((e: unknown) => this.#d.log(`could not store a room's history: ${(e as Error).message}`));
  }

  #changed(room: Room): void {
    this.#emit({ type: "room-changed", roomId: room.idHex });
  }

  #emit(e: RoomEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch {
        // a listener's bug must not stop the mesh
      }
    }
  }
}
