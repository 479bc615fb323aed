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
 * Every loop is bounded: dial retries (backoff doubling up to a cap, with jitter, only while the
 * member is present and the room ours; §3), frames read one at a time per session.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { equalBytes, fromHex, toHex, wipe } from "../../../../core/bytes.ts";
import { nobleCrypto } from "../../../../core/crypto/noble.ts";
import type { CryptoProvider } from "../../../../core/crypto/provider.ts";
import { isLoftError, LoftError } from "../../../../core/errors.ts";
import type { UserIdentity } from "../../../../core/identity/identity.ts";
import type { LinkCloseOptions } from "../../../../core/link/link.ts";
import { suiteOf } from "../../../../core/noise/suite.ts";
import type { RatchetKeyPair } from "../../../../core/ratchet/index.ts";
import type { RelayMessage } from "../../../../core/relay/client.ts";
import { establishSession, type Session } from "../../../../core/session/index.ts";
import type { SignalingClient, SignalingEvent } from "../../../../core/signaling/client.ts";
import { randomId } from "../../lib/base64url.ts";
import type { EngineStorage } from "../api.ts";
import { logDropsOf, openedWithin } from "../dialing.ts";
import { cleanRoomName } from "../local-notes.ts";
import { announcementOf, mboxOrderExtension, type RxQueue, readsOrder } from "../mailbox.ts";
import {
  forgetSuitesOnRefusal,
  learnSuites,
  offeredSuites,
  type SuitePeer,
  suitesExtension,
} from "../noise-suites.ts";
import { MAX_TEXT_CHARS } from "../outgoing.ts";
import { freshRatchetKeyPair, RATCHET_KEY_EXTENSION } from "../ratchet-store.ts";
import type { BulkLane, IncomingOffer, LiveTransport, RelayConnections } from "../transport.ts";
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
  type Handover,
  listed,
  MAX_HANDOVERS,
  MAX_REMOVED,
  type RoomState,
  secretCommitment,
  signHandover,
  signState,
  supersedes,
  type VerifiedState,
  verifyHandover,
  verifyState,
} from "./host.ts";
import { type Keeping, RoomMailboxes } from "./mailbox.ts";
import {
  newRoomLink,
  parseRoomLink,
  type RoomLink,
  roomBinding,
  roomFragment,
  roomHash,
} from "./room-link.ts";
import { type LogEntry, MAX_LOG, type RoomRecord, RoomStore } from "./store.ts";
import { decodeRoomFrame, encodeRoomFrame, type RoomMessage } from "./wire.ts";

/** Default member cap of a room (the joiner included); docs/protocol/rooms.md §3 says why. */
export const DEFAULT_ROOM_MEMBER_CAP = 8;
/**
 * A failed dial of a member still present is tried again after 1 s, 2 s, 4 s … at most
 * RETRY_MAX_MS apart (with jitter), for as long as it stays present (§3): giving up after a few
 * left a pair of members unlinked until one of them re-joined. The engine's `backoffInitialMs` and
 * `backoffMaxMs` set them (web/src/engine/engine.ts).
 */
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 30_000;
/** How long a removed member's link stays open for the state telling it so to leave. */
const CLOSE_GRACE_MS = 1_500;
/** Mailbox deposits after a relay error: tried again after 1 s, 2 s, 4 s … at most a minute apart. */
const MAIL_RETRY_BASE_MS = 1_000;
const MAIL_RETRY_MAX_MS = 60_000;
/** Tries of one `room.mbox` after a move, through the member's mailbox, in one run. */
const MAIL_ANNOUNCE_TRIES = 12;
/** Receipts waiting for an away writer's mailbox, per writer. */
const MAX_PENDING_RECEIPTS = 1_024;
/** Older room secrets kept for listed members who missed rotations (§8): this many removals back. */
const MAX_OLD_SECRETS = 8;
/** Secrets held while the state committing to them is on its way. */
const MAX_PENDING_KEYS = 8;

/**
 * Another feature's frames on the member sessions (room calls: calls/room-call.ts, frames
 * 0x30–0x37): the mesh hands them over and says when a member's session comes up or goes.
 */
export interface RoomFrameLane {
  /**
   * Truthy when the frame is the lane's (it is then not read as a room message); a promise when
   * the lane handles it later: the member's read loop awaits it before reading on (backpressure:
   * docs/protocol/files.md §5).
   */
  onFrame(roomId: string, member: string, frame: Uint8Array): boolean | Promise<void>;
  /**
   * A frame a member left in our relay mailbox (§9): a promise when it is the lane's (awaited
   * before the relay's copy is acknowledged), undefined when not (it is read as a room message).
   */
  onMailFrame?(roomId: string, member: string, frame: Uint8Array): Promise<void> | undefined;
  memberUp(roomId: string, member: string): void;
  memberDown(roomId: string, member: string): void;
  /** We left the room: what the lane keeps of it goes (files/room-files.ts: its transfers). */
  forgetRoom?(roomId: string): Promise<void>;
}

export interface RoomsDeps {
  user: UserIdentity;
  storage: Pick<EngineStorage, "loadSecret" | "saveSecret" | "deleteSecret">;
  crypto?: CryptoProvider;
  memberCap: number;
  handshakeTimeoutMs: number;
  /** How long a direct dial may take to open before the relay is tried (when we have one). */
  relayFallbackMs?: number;
  /** A failed member dial's first retry delay, and the longest (RETRY_BASE_MS, RETRY_MAX_MS). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  log: (message: string) => void;
  now: () => number;
}

/**
 * A member of a room. As a `SuitePeer` it carries what its sessions showed about Noise suite
 * offers (noise-suites.ts): for this run only — a member is no contact, nothing of it is stored
 * but its pair's mailbox records, so a member from before suites costs one refused offer per run.
 */
interface Member extends SuitePeer {
  readonly key: Uint8Array;
  readonly hex: string;
  name: string | undefined;
  present: boolean;
  session: Session | undefined;
  dialing: boolean;
  refused: boolean;
  failures: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Its member room key (from its room.hi): what the host role is handed over to. */
  rk: Uint8Array | undefined;
  /** Dial it with an older epoch's binding (`Room.oldBindings[legacy - 1]`; 0: the current one): a
   *  listed member that missed rotations (§8). */
  legacy: number;
  /** We dialed it back once after it closed our answer although our state lists it: it may hold an
   *  older secret than ours (§8, "catch-up"). Reset when it arrives again. */
  dialedBack: boolean;
  /** The next dial goes through the relay: the direct one before it did not open. */
  viaRelay: boolean;
  /** As responder of its current session: the ratchet key we offered (rooms/mailbox.ts). */
  ratchetKey: RatchetKeyPair | undefined;
  /** Waits while the current session's link has a full send buffer (bulk frames: files). */
  drain: (() => Promise<void>) | undefined;
  /**
   * The current session's bulk lane (a direct link's `loft-bulk` channel; none on the relay),
   * for the files lane to claim and read (docs/protocol/files.md §2, §8).
   */
  bulk: BulkLane | undefined;
}

interface Room {
  readonly record: RoomRecord;
  /** `leave` is storing the list without it: a write meanwhile (a read mark) must not list it again. */
  leaving?: boolean;
  readonly link: RoomLink;
  readonly idHex: string;
  readonly hash: Uint8Array;
  /** Of the current secret; and of the older ones (newest first: `pk`, then `ok`), for listed members
   *  who missed rotations (§8). */
  binding: Uint8Array;
  oldBindings: Uint8Array[];
  /** The newest verified host-signed state (undefined: none yet, the link's host and secret). */
  state: VerifiedState | undefined;
  /** Secrets handed to us before the state that commits to them (a few: one member's wrong one
   *  must not push out the right one). */
  pendingKeys: { e: number; k: Uint8Array }[];
  /** We handed the host role over and wait for the new host's state: we sign nothing meanwhile. */
  handingOver: boolean;
  /** Our member room key's public half, worked out once (`#memberPub`). */
  memberPub: Uint8Array | undefined;
  readonly members: Map<string, Member>;
  readonly refused: { key: string; at: number }[];
  log: LogEntry[];
  /** Why the last history write failed (a full disk); undefined once one lands (#writeLog). */
  unsaved?: string;
  /** The last history write asked (#writeLog): settled once the history as it was then is stored. */
  written: Promise<void>;
  /**
   * A member's message taken into the history in memory since the last write asked (#take): one
   * of a mailbox read, stored when the read settles (#mailFrame) — `written` does not hold it.
   */
  unwritten?: boolean;
  /** The name this person gave the room here (store.ts, engine/local-notes.ts); never sent. */
  name: string | undefined;
  status: RoomStatus;
  /** Outgoing sends of this room, in hand-over order. */
  sending: Promise<void>;
  /** The mailbox pass (#flushMail): running, asked again meanwhile, its retry after relay errors. */
  flushing: boolean;
  flushAgain: boolean;
  /** Receipts for messages read from our mailbox whose writer is away, by writer: for its mailbox. */
  readonly receipts: Map<string, Set<string>>;
  mailTimer: ReturnType<typeof setTimeout> | undefined;
  mailFailures: number;
}

export class RoomsEngine implements RoomsApi {
  readonly #d: RoomsDeps;
  readonly #store: RoomStore;
  readonly #rooms = new Map<string, Room>();
  readonly #listeners = new Set<(e: RoomEvent) => void>();
  readonly #selfHex: string;
  readonly #mail: RoomMailboxes;
  #signaling: SignalingClient | undefined;
  #transport: LiveTransport | undefined;
  /** The live relay transport, when we have a relay: members reach each other through it when
   *  no direct path opens (§3). */
  #relay: LiveTransport | undefined;
  #loaded: Promise<void> | undefined;
  /** Rooms left whose clean-up has not finished (store.ts `rooms-left`): `#sweep` finishes it. */
  #left: string[] = [];
  /** The sweep running (`#sweep`), and the rooms whose clean-up is running (`#cleanUp`). */
  #sweeping: Promise<void> | undefined;
  readonly #cleaning = new Set<string>();
  #stopped = false;
  /** Room calls (set by the engine). */
  lane: RoomFrameLane | undefined;

  constructor(deps: RoomsDeps) {
    this.#d = deps;
    this.#store = new RoomStore(deps.storage);
    this.#selfHex = toHex(deps.user.identity.verified.identity_key);
    this.#mail = new RoomMailboxes({
      storage: deps.storage,
      ...(deps.crypto ? { crypto: deps.crypto } : {}),
      selfKey: deps.user.identity.verified.identity_key,
      log: deps.log,
      onFrame: (room, member, frame) => this.#mailFrame(room, member, frame),
    });
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /** Read the rooms we are in (history and all); the UI can list them before the network is up. */
  load(): Promise<void> {
    this.#loaded ??= (async () => {
      for (const record of await this.#store.rooms()) {
        const room = this.#roomOf(record);
        room.log = await this.#store.log(room.idHex);
        room.name = await this.#store.name(room.idHex).catch(() => undefined);
      }
      this.#left = await this.#store.left().catch(() => []);
      this.#emit({ type: "rooms-changed" });
      void this.#sweep();
    })();
    return this.#loaded;
  }

  /**
   * The leftovers of rooms left before a clean-up finished (`#cleanUp` failed, or the page closed
   * first) go now. A room listed again (a leave the storage refused after `rooms-left` was written)
   * is no leftover: it only leaves the list. The mailbox pairs wait for the relays
   * (`useMailboxes`): their queues there go with them. Tried again at each registration while
   * some are left (`#onSignaling`): a person who asked for a room's history to go does not wait
   * for a restart of an app that may run for days.
   */
  #sweep(): Promise<void> {
    this.#sweeping ??= this.#sweepOnce().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweepOnce(): Promise<void> {
    // A room being left is still listed here until its members were told: it stays in the list.
    const listed = (id: string) => {
      const room = this.#rooms.get(id);
      return room !== undefined && !room.leaving;
    };
    const left = this.#left.filter((id) => !listed(id));
    if (left.length !== this.#left.length) {
      this.#left = left;
      await this.#store.saveLeft(left).catch(() => undefined);
    }
    for (const id of left) {
      // Joined again meanwhile (its link opened): not a leftover; being left: its leave cleans up.
      if (this.#rooms.has(id)) continue;
      this.#d.log(`room ${id.slice(0, 8)}: deleting what was left of it`);
      await this.#cleanUp(id, false);
    }
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

  /** The engine's live relay transport (undefined without a relay). */
  useRelay(relay: LiveTransport | undefined): void {
    this.#relay = relay;
  }

  stop(): void {
    this.#stopped = true;
    for (const room of this.#rooms.values()) clearTimeout(room.mailTimer);
    for (const room of this.#rooms.values())
      for (const m of room.members.values()) this.#drop(m, "stopped", { orderly: true });
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
    // Each member's name: as it said in its room.hi, or as its newest message here had it (one pass).
    const names = new Map<string, string | undefined>();
    for (const e of r.log) if (e.from !== undefined && e.name !== undefined) names.set(e.from, e.name);
    for (const m of r.members.values()) if (m.name !== undefined) names.set(m.hex, m.name);
    return r.log.map((e) => {
      const to = e.to ?? [];
      const got = e.got ?? [];
      const relayed = e.rl ?? [];
      const state: RoomMessageState =
        e.from !== undefined
          ? "received"
          : to.length === 0
            ? "alone"
            : got.length >= to.length
              ? "delivered"
              : "sent";
      return {
        key: `${e.from ?? ""}/${e.id}`,
        id: e.id,
        from: e.from,
        name: e.name,
        at: e.at,
        text: e.text,
        state,
        delivered: got.length,
        recipients: to.length,
        relayed: to.filter((k) => relayed.includes(k) && !got.includes(k)).length,
        to: to.map((key) => ({
          key,
          name: names.get(key),
          state: got.includes(key) ? "delivered" : relayed.includes(key) ? "relayed" : "sending",
        })),
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
      mk: hostKey.slice(),
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
      // Refused on the secret we hold (a wrong link, or one more than MAX_OLD_SECRETS removals
      // behind, §8): a link of the same room and host replaces it; the handshakes decide again.
      if (
        existing.status === "refused" &&
        !existing.record.gone &&
        equalBytes(existing.link.host, parsed.value.host) &&
        !equalBytes(existing.link.secret, parsed.value.secret)
      ) {
        this.#takeSecret(existing, parsed.value.secret.slice());
        for (const m of existing.members.values()) {
          m.refused = false;
          m.failures = 0;
        }
        existing.refused.length = 0;
        await this.#saveRooms();
        // Out of the rendezvous and in again: the members present see a newcomer and dial (§3).
        await this.#signaling?.leaveRoom(existing.hash).catch(() => undefined);
        void this.#enter(existing);
        return this.#view(existing);
      }
      if (
        !equalBytes(existing.link.secret, parsed.value.secret) ||
        !equalBytes(existing.link.host, parsed.value.host)
      )
        throw new Error(
          "You are in this room already, from a different link. Leave it first to use this one.",
        );
      if (existing.record.gone) throw new Error("The host removed you from this room.");
      if (["full", "too-many", "offline", "refused"].includes(existing.status)) void this.#enter(existing);
      return this.#view(existing);
    }
    const l = parsed.value;
    return this.#add({
      id: l.id.slice(),
      k: l.secret.slice(),
      h: l.host.slice(),
      mk: crypto.getRandomValues(new Uint8Array(32)),
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

  /**
   * Leave for good: the others are told, the history on this device is deleted. The room leaves
   * the stored list before anyone is told (docs/protocol/rooms.md §7): a leave the storage refuses
   * (a full disk) throws with nothing changed — still a member, nobody told goodbye — where telling
   * first left a half-leave: the members saw us go, and the room came back on the next start.
   */
  async leave(id: string): Promise<void> {
    const room = this.#rooms.get(id);
    if (!room) return;
    room.leaving = true;
    // Listed as left before it leaves the list: a clean-up cut short (a failure, the page
    // closed) is finished at the next start (`#sweep`). In memory before the saves: a sweep
    // finishing meanwhile stores `rooms-left` from `#left`, and without the room it stored the
    // list without it — a clean-up of ours failing then left its history on disk for good.
    this.#left = [...this.#left.filter((x) => x !== id), id];
    try {
      await this.#store.saveLeft(this.#left);
      await this.#store.saveRooms(this.#records());
    } catch (e) {
      room.leaving = false;
      this.#left = this.#left.filter((x) => x !== id);
      throw e;
    }
    // A host who leaves hands the role to a connected member first, so the room keeps a host
    // (the hand-over arrives before the bye on that member's session).
    if (this.#isHost(room)) {
      const heir = [...room.members.values()].find((m) => m.session && m.rk && !this.#removed(room, m.key));
      if (heir && (room.state?.chain.length ?? 0) < MAX_HANDOVERS) await this.handOver(id, heir.hex);
    }
    for (const m of room.members.values()) {
      this.#sendTo(m, { t: "room.bye" });
      this.#drop(m, "left", { orderly: true });
    }
    this.#rooms.delete(id);
    clearTimeout(room.mailTimer);
    await this.#signaling?.leaveRoom(room.hash).catch(() => undefined);
    this.#emit({ type: "rooms-changed" });
    await this.#cleanUp(id, true);
  }

  /**
   * Left (stored, told): what this device keeps of the room goes — its mailbox pairs (`mailbox`,
   * with their queues at the relays), its files, its history, name and draft — and it leaves
   * `rooms-left` once all of it went. A failure here is no failure of the leave, which happened
   * (leaving is anyone's right, and the others were told; docs/protocol/rooms.md §7): nothing of
   * the room shows any more, the failure is logged, and `#sweep` deletes the rest at the next start.
   */
  async #cleanUp(id: string, mailbox: boolean): Promise<void> {
    // One at a time per room: the leave's own and a sweep's would delete the same things at once.
    if (this.#cleaning.has(id)) return;
    this.#cleaning.add(id);
    try {
      await this.#cleanUpOnce(id, mailbox);
    } finally {
      this.#cleaning.delete(id);
    }
  }

  async #cleanUpOnce(id: string, mailbox: boolean): Promise<void> {
    const steps: [string, () => Promise<void> | undefined][] = [
      ["files", () => this.lane?.forgetRoom?.(id)],
      ["history", () => this.#store.forget(id)],
    ];
    if (mailbox) steps.unshift(["mailbox", () => this.#mail.forgetRoom(id)]);
    const failed: string[] = [];
    for (const [what, step] of steps)
      await Promise.resolve()
        .then(step)
        .catch((e: unknown) => failed.push(`${what} (${(e as Error).name})`));
    if (failed.length > 0) {
      this.#d.log(
        `room ${id.slice(0, 8)} left; deleting its ${failed.join(", ")} failed: again at the next registration or start`,
      );
      return;
    }
    this.#left = this.#left.filter((x) => x !== id);
    await this.#store.saveLeft(this.#left).catch(() => undefined); // kept: swept again, no harm
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
   * The log write is awaited inside the room's send chain before any frame goes (as the 1:1
   * outbox, docs/design.md "The outbox is persisted before any event is emitted"): a crash in
   * between never leaves members holding a message our own history lacks.
   */
  send(id: string, text: string): RoomMessageView {
    const room = this.#rooms.get(id);
    if (!room) throw new Error("You are not in this room.");
    if (room.record.gone) throw new Error("The host removed you from this room.");
    if (text.trim().length === 0) throw new Error("Type a message first.");
    if (text.length > MAX_TEXT_CHARS) throw new Error(`A message has at most ${MAX_TEXT_CHARS} characters.`);
    const to = this.#recipients(room);
    const entry: LogEntry = { id: randomId(), at: this.#d.now(), text, to: [...to], got: [] };
    this.#append(room, entry);
    room.record.read = room.log.length;
    // Asked now, so a burst's writes collapse into one (store.ts); awaited before the frames.
    const stored = this.#saveLog(room);
    room.sending = room.sending.then(async () => {
      await stored;
      const msg: RoomMessage = { t: "room.msg", id: entry.id, at: entry.at, text };
      for (const hex of to) {
        const m = room.members.get(hex);
        if (m?.session) this.#sendTo(m, msg);
      }
      // Away: into its mailbox (it also gets it live when both are here again, §6).
      this.#flushMail(room);
    });
    this.#emit({ type: "room-changed", roomId: id });
    return this.messages(id).at(-1)!;
  }

  /**
   * Who a message (or a file: files/room-files.ts) is for: the members present, and those the host
   * lists who are away — each gets it when its link is back (§6), in the order sent.
   */
  #recipients(room: Room): Set<string> {
    const to = new Set(
      [...room.members.values()]
        .filter((m) => m.present && !m.refused && !this.#removed(room, m.key))
        .map((m) => m.hex),
    );
    const st = room.state?.state;
    for (const key of st ? [...st.m, st.hid] : []) {
      const hex = toHex(key);
      if (hex !== this.#selfHex && !this.#removed(room, key)) to.add(hex);
    }
    return to;
  }

  /** The members a file sent now goes to (`#recipients`); none when we are not (or no longer) in. */
  recipients(roomId: string): string[] {
    const room = this.#rooms.get(roomId);
    return room && !room.record.gone ? [...this.#recipients(room)] : [];
  }

  /** A member's name as it said in its room.hi (or as it last wrote), if known. */
  memberName(roomId: string, member: string): string | undefined {
    const room = this.#rooms.get(roomId);
    return room?.members.get(member)?.name ?? room?.log.findLast((e) => e.from === member)?.name;
  }

  /**
   * A member's live session, for another feature's bulk frames (files/room-files.ts), with its
   * link's bulk lane when it has one (a direct link): the files lane claims and reads it for this
   * session (docs/protocol/files.md §2, "The bulk lane"; §8).
   */
  memberSession(
    roomId: string,
    member: string,
  ): { session: Session; drain?: () => Promise<void>; bulk?: BulkLane } | undefined {
    const m = this.#rooms.get(roomId)?.members.get(member);
    if (!m?.session || m.session.state === "closed") return undefined;
    return {
      session: m.session,
      ...(m.drain ? { drain: m.drain } : {}),
      ...(m.bulk && m.bulk.state !== "closed" ? { bulk: m.bulk } : {}),
    };
  }

  /**
   * The relay mailbox of a member who is away (no live session), for another feature's frames
   * (files/room-files.ts: a file through the mailbox, docs/protocol/files.md §9): its relay's queue
   * quota and a deposit of one frame sealed with the pair ratchet (true: the relay stored it).
   * Undefined when the member is here, removed, or we cannot leave messages for it (§9).
   */
  async memberMailbox(
    roomId: string,
    member: string,
  ): Promise<{ quota: number; deposit: (frame: Uint8Array) => Promise<boolean> } | undefined> {
    const room = this.#rooms.get(roomId);
    if (!room || room.record.gone || !/^[0-9a-f]{64}$/.test(member) || this.#removed(room, fromHex(member)))
      return undefined;
    const s = room.members.get(member)?.session;
    if (s && s.state !== "closed") return undefined;
    const quota = await this.#mail.quota(roomId, member);
    if (quota === undefined) return undefined;
    return {
      quota,
      deposit: async (frame) => (await this.#mail.deposit(roomId, member, frame)) === "sent",
    };
  }

  // ---- mailboxes for members who are away (rooms/mailbox.ts; docs/protocol/rooms.md §9) -------

  /**
   * The engine's relay connections and our relays (the user's order; `otherQueues`: how many of
   * our contacts' queues each holds): room mailboxes work from now on, spread over those relays.
   */
  async useMailboxes(
    pool: RelayConnections,
    urls: readonly string[],
    otherQueues?: (url: string) => number,
  ): Promise<void> {
    await this.load();
    await this.#mail
      .attach(pool, urls, otherQueues)
      .catch((e: unknown) => this.#d.log(`room mailboxes: ${(e as Error).message}`));
    // Moves off a dead relay whose old queue has not retired: told again (nothing says a
    // `room.mbox` left in a mailbox was read; docs/protocol/mailbox.md §1, "Moving off a dead relay").
    for (const moved of await this.#mail.unretired().catch(() => []))
      void this.#announceMove(moved.room, moved.member, moved.rx);
    // What was written before a reload, or while the relay was unreachable, and is not there yet.
    for (const room of this.#rooms.values()) this.#flushMail(room);
    // The pairs of rooms we are no longer in (a leave whose clean-up failed, or was cut short),
    // their queues at the relays with them.
    await this.#mail
      .forgetRoomsBut((room) => this.#rooms.has(room))
      .catch((e: unknown) => this.#d.log(`room mailboxes: ${(e as Error).message}`));
  }

  /**
   * `url`, one of our relays, is dead (relay-health.ts): our room queues on it move to another of
   * our relays and each member is told the new one (docs/protocol/mailbox.md §1, "Moving off a dead
   * relay"; docs/protocol/rooms.md §9).
   */
  async moveOff(url: string): Promise<void> {
    for (const moved of await this.#mail.moveOff(url))
      void this.#announceMove(moved.room, moved.member, moved.rx);
  }

  /** A relay refused to SUB one of our room queues with AUTH (it is gone): it moves, the member is told. */
  async queueGone(url: string, recipientId: Uint8Array): Promise<void> {
    const moved = await this.#mail.queueGone(url, recipientId);
    if (moved) void this.#announceMove(moved.room, moved.member, moved.rx);
  }

  /**
   * Tell a member our new queue (`room.mbox`, inside the pair's session or sealed with the pair
   * ratchet into its mailbox): live, the old queue retires at once (the session is ordered and
   * reliable); through its mailbox, retried with backoff after a relay error (then at the next
   * start, or on the next session, which announces anyway: #pairUp).
   */
  async #announceMove(roomHex: string, memberHex: string, rx: RxQueue, tries = 0): Promise<void> {
    const room = this.#rooms.get(roomHex);
    if (!room || room.record.gone || this.#stopped) return;
    // `n` only to a member that reads it (its handshake's `mbox.order`, or its queue announced
    // with one): an app from before it refuses the whole frame (§9, "The order of announcements").
    const frame = (withOrder: boolean): Uint8Array =>
      encodeRoomFrame({ t: "room.mbox", ...announcementOf(rx, withOrder) });
    const m = room.members.get(memberHex);
    if (m && this.#sendBytes(m, () => frame(m.session !== undefined && readsOrder(undefined, m.session)))) {
      await this.#mail.retireOld(roomHex, memberHex);
      return;
    }
    const r = await this.#mail.deposit(
      roomHex,
      memberHex,
      frame(await this.#mail.readsOrder(roomHex, memberHex)),
    );
    if (r === "sent") this.#d.log(`room mailbox move told to ${memberHex.slice(0, 8)} through its mailbox`);
    else if (r === "failed" && tries + 1 < MAIL_ANNOUNCE_TRIES)
      setTimeout(
        () => void this.#announceMove(roomHex, memberHex, rx, tries + 1),
        Math.min(MAIL_RETRY_MAX_MS, MAIL_RETRY_BASE_MS * 2 ** tries) * (0.5 + Math.random() / 2),
      );
  }

  /** A member link is being dialled or is up, in some room (engine.ts: the crypto warm-up yields to it). */
  get linking(): boolean {
    for (const room of this.#rooms.values())
      for (const m of room.members.values()) if (m.session || m.dialing) return true;
    return false;
  }

  /** How many of our room receiving queues `url` holds (new contacts' queues spread over both). */
  queuesOn(url: string): number {
    return this.#mail.queuesOn(url);
  }

  /** A relay push: true if it was for one of our room queues. */
  onRelayMessage(url: string, m: RelayMessage): boolean {
    return this.#mail.onRelayMessage(url, m);
  }

  /**
   * What we wrote for members who are away (no live session) and that neither they nor their relay
   * mailbox have yet, into their mailboxes, in order per member (§9). A member whose message could
   * not go stops there (the order holds); after a relay error the whole pass is tried again with
   * backoff (MAIL_RETRY_*), as the 1:1 outbox does (relay-mailbox.ts). One pass at a time per room.
   */
  #flushMail(room: Room): void {
    if (!this.#mail.available || this.#stopped || room.record.gone) return;
    if (room.flushing) {
      room.flushAgain = true;
      return;
    }
    room.flushing = true;
    void (async () => {
      try {
        do {
          room.flushAgain = false;
          await this.#flushMailOnce(room);
        } while (room.flushAgain && !this.#stopped && this.#rooms.has(room.idHex));
      } catch (e) {
        this.#d.log(`room mailbox flush: ${(e as Error).message}`);
      } finally {
        room.flushing = false;
      }
    })();
  }

  async #flushMailOnce(room: Room): Promise<void> {
    let failed = false;
    let changed = false;
    let progress = false;
    const stopped = new Set<string>();
    // Each member's queue as this pass found it: a room.mbox that replaces it meanwhile marks what
    // goes again (#depositAgain) and ends the member's part of this pass (`deposit`'s `since`).
    const moves = new Map<string, number>();
    for (const [hex, ids] of [...room.receipts]) {
      const m = room.members.get(hex);
      if (m?.session) {
        room.receipts.delete(hex); // it will send again live what it has no receipt for
        continue;
      }
      let result = "sent";
      while (ids.size > 0 && result === "sent") {
        const batch = [...ids].slice(0, MAX_RECEIPT_IDS);
        result = await this.#mail.deposit(room.idHex, hex, encodeRoomFrame({ t: "room.rcpt", ids: batch }));
        if (result === "sent") {
          for (const id of batch) ids.delete(id);
          progress = true;
        }
      }
      // Kept for the retry after a relay error; with nowhere to leave them, dropped: the writer
      // sends again live what it has no receipt for, and we confirm then.
      if (result === "failed") failed = true;
      else room.receipts.delete(hex);
    }
    for (const e of [...room.log]) {
      if (e.from !== undefined || !e.to) continue;
      for (const hex of e.to) {
        if (!moves.has(hex)) moves.set(hex, this.#mail.queueMoves(room.idHex, hex));
        if (stopped.has(hex) || e.got?.includes(hex) || e.rl?.includes(hex)) continue;
        if (room.members.get(hex)?.session || this.#removed(room, fromHex(hex))) continue;
        if (this.#stopped || !this.#rooms.has(room.idHex) || room.record.gone) return;
        const msg: RoomMessage = { t: "room.msg", id: e.id, at: e.at, text: e.text };
        const r = await this.#mail.deposit(room.idHex, hex, encodeRoomFrame(msg), e.id, moves.get(hex));
        if (r === "sent") {
          e.rl = [...(e.rl ?? []), hex];
          changed = true;
        } else {
          stopped.add(hex);
          failed ||= r === "failed";
        }
      }
    }
    if (changed) {
      void this.#saveLog(room);
      this.#changed(room);
    }
    clearTimeout(room.mailTimer);
    room.mailTimer = undefined;
    // Progress (a relay that rations us takes some each time) starts the backoff over.
    if (!failed || changed || progress) room.mailFailures = 0;
    if (!failed) return;
    const delay = Math.min(MAIL_RETRY_MAX_MS, MAIL_RETRY_BASE_MS * 2 ** room.mailFailures++);
    room.mailTimer = setTimeout(() => this.#flushMail(room), delay * (0.5 + Math.random() / 2));
  }

  /**
   * The member announced a queue that replaces the one we held (it moved its queue off a dead
   * relay, or its relay lost it): what we left in the old one without its receipt goes again, into
   * the new one, in order (the mailbox pass after this). The member retires its old queue once a
   * body arrives in the new one and never reads what is left there — its relay is down, or the
   * pushes behind that body go with the queue's `DEL`; it cannot drain it first (nothing says a
   * subscribed queue is empty). Before, such a message reached it only live, after the later ones
   * (docs/protocol/mailbox.md §1, "Moving off a dead relay"; rooms.md §9). It drops a copy it read
   * already (one per sender and id, `#take`). Called on the pair's chain (`announced`), before any
   * deposit into the new queue: a mailbox pass under way then deposits nothing more for the member
   * (`deposit`'s `since`), and the next one sends all of it in order.
   */
  #depositAgain(room: Room, hex: string): void {
    let changed = false;
    for (const e of room.log)
      if (e.from === undefined && e.rl?.includes(hex) && !e.got?.includes(hex)) {
        e.rl = e.rl.filter((k) => k !== hex);
        changed = true;
      }
    if (!changed) return;
    void this.#saveLog(room);
    this.#changed(room);
  }

  /** A member session is up: say which pair ratchet we hold (its answer decides: #onRatchetSync). */
  async #pairUp(room: Room, m: Member, session: Session): Promise<void> {
    if (!this.#mail.available) return;
    const ri = await this.#mail.ratchetId(room.idHex, m.hex);
    if (m.session === session) this.#sendTo(m, { t: "room.rs", ...(ri ? { ri: ri.slice() } : {}) });
  }

  async #onRatchetSync(room: Room, m: Member, theirs: Uint8Array | undefined): Promise<void> {
    const session = m.session;
    if (!session || !this.#mail.available) return;
    const ours = session.role === "responder" ? m.ratchetKey : undefined;
    const started = await this.#mail.sync(room.idHex, m.hex, theirs, session, ours);
    // After each wait: the session may have ended meanwhile (the member's bye, its removal, a newer
    // session replacing it). Nothing more is done for it — its seal went nowhere, and our queue
    // asked for once its pair was forgotten was made on a pair made anew: created at the relay,
    // stored and listed for a member gone (docs/protocol/rooms.md §9). A newer session syncs and
    // asks for itself.
    if (m.session !== session) return this.#syncEnded(room, m);
    if (started) {
      // The initiator's first sealed frame: with it the responder's ratchet can send too.
      const d = await this.#mail.seal(room.idHex, m.hex, encodeRoomFrame({ t: "room.rs" }));
      if (m.session !== session) return this.#syncEnded(room, m);
      if (d) this.#sendTo(m, { t: "room.dr", d: d.slice() });
    }
    // `n` only to a member whose handshake listed `mbox.order` (§9, "The order of announcements");
    // a queue of ours made before `n` gets one for it.
    const withOrder = readsOrder(undefined, session);
    const rx = await this.#mail.receivingQueue(room.idHex, m.hex, withOrder);
    if (
      rx &&
      m.session === session &&
      this.#sendBytes(m, () => encodeRoomFrame({ t: "room.mbox", ...announcementOf(rx, withOrder) }))
    )
      // It has our current queue now: one we moved off a dead relay retires (mailbox.md §1).
      await this.#mail.retireOld(room.idHex, m.hex);
  }

  /** A sync cut short by its session's end (#onRatchetSync), said: nothing more was done for it. */
  #syncEnded(room: Room, m: Member): void {
    this.#d.log(
      `room ${room.idHex.slice(0, 8)}: ${m.hex.slice(0, 8)}'s session ended during its ratchet sync: no queue asked for it`,
    );
  }

  /**
   * A frame a member left in our mailbox (or sealed live): chat messages and receipts, and the
   * lane's frames (a file's `file.*` messages, docs/protocol/files.md §9), whose promise is awaited
   * before the relay's copy is acknowledged.
   */
  #mailFrame(roomHex: string, memberHex: string, frame: Uint8Array): Promise<void> | Keeping | undefined {
    const room = this.#rooms.get(roomHex);
    if (!room || room.record.gone || this.#removed(room, fromHex(memberHex))) return;
    const lane = this.lane?.onMailFrame?.(roomHex, memberHex, frame);
    if (lane) return lane;
    const decoded = decodeRoomFrame(frame);
    // Chat, receipts, and a new queue of the member's after it moved off a dead relay (§9).
    const t = decoded.ok ? decoded.value.t : undefined;
    if (!decoded.ok || (t !== "room.msg" && t !== "room.rcpt" && t !== "room.mbox")) return;
    const m = this.#member(room, fromHex(memberHex));
    if (decoded.value.t !== "room.msg") {
      this.#receive(room, m, decoded.value, "mailbox");
      return;
    }
    // The relay's copy is acknowledged (rooms/mailbox.ts), and the writer told we have it, only
    // once our stored history holds the message (#stored): a write that fails (a full disk) leaves
    // it at the relay, read again later (§9). In the history in memory now (shown), stored with
    // the other messages of the same mailbox read, in one write (`Keeping`).
    const msg = decoded.value;
    const fresh = this.#take(room, m, msg);
    return { keep: () => this.#stored(room, m, msg.id, fresh) };
  }

  // ---- the host (docs/protocol/rooms.md §8) ---------------------------------------------------------

  /**
   * The host removes a member: a new signed state lists it as removed and commits to a new room
   * secret, which goes only to the remaining members, inside their sessions. Members close its
   * links and refuse it; the old link admits nobody any more.
   */
  async remove(id: string, memberKey: string): Promise<void> {
    const room = this.#rooms.get(id);
    if (!room) throw new Error("You are not in this room.");
    if (!this.#isHost(room)) throw new Error("Only the room's host can remove members.");
    if (!/^[0-9a-f]{64}$/.test(memberKey) || memberKey === this.#selfHex)
      throw new Error("Choose a member of this room to remove.");
    const key = fromHex(memberKey);
    if ((room.state?.state.x.length ?? 0) >= MAX_REMOVED)
      throw new Error(`A room can remove at most ${MAX_REMOVED} members. Make a new room instead.`);
    const e = (room.record.e ?? 0) + 1;
    const secret = crypto.getRandomValues(new Uint8Array(32));
    this.#sign(room, (s) => ({
      ...s,
      e,
      c: secretCommitment(room.link.id, e, secret),
      m: s.m.filter((k) => !equalBytes(k, key)),
      x: [...s.x, key],
    }));
    this.#rotate(room, e, secret);
    await this.#saveRooms();
  }

  /**
   * The host hands its role to a connected member: a hand-over signed with the host key names the
   * member's room key; the member then signs the next state with it (host.ts). Until that state
   * arrives we sign nothing, so two hosts never sign the same version.
   */
  async handOver(id: string, memberKey: string): Promise<void> {
    const room = this.#rooms.get(id);
    if (!room) throw new Error("You are not in this room.");
    if (!this.#isHost(room)) throw new Error("Only the room's host can hand the role over.");
    const m = room.members.get(memberKey);
    if (!m?.session || !m.rk || this.#removed(room, m.key))
      throw new Error("That member must be connected to take the host role.");
    if ((room.state?.chain.length ?? 0) >= MAX_HANDOVERS)
      throw new Error(`A room's host role can change hands at most ${MAX_HANDOVERS} times.`);
    if (!room.state) this.#sign(room, (s) => s);
    const chain = room.state?.chain ?? [];
    const ho = signHandover(room.link.id, chain.length, m.rk, this.#memberKey(room));
    room.handingOver = true;
    this.#sendTo(m, { t: "room.host", k: ho.k.slice(), sig: ho.sig.slice() });
    this.#changed(room);
  }

  /**
   * Name the room on this device only (no wire change: the others never learn it). Whitespace is
   * tidied and the length bounded (engine/local-notes.ts `cleanRoomName`); empty removes the name.
   */
  async rename(id: string, name: string): Promise<void> {
    const room = this.#rooms.get(id);
    if (!room) throw new Error("You are not in this room.");
    const clean = cleanRoomName(name);
    room.name = clean || undefined;
    this.#emit({ type: "rooms-changed" });
    await this.#store.saveName(room.idHex, clean);
  }

  /** Mark a member verified (its safety code compared, as for contacts) or not. */
  verify(id: string, memberKey: string, verified: boolean): void {
    const room = this.#rooms.get(id);
    if (!room) throw new Error("You are not in this room.");
    const rest = (room.record.vf ?? []).filter((k) => k !== memberKey);
    room.record.vf = verified && /^[0-9a-f]{64}$/.test(memberKey) ? [...rest, memberKey] : rest;
    void this.#saveRooms();
    this.#changed(room);
  }

  /** Whether the host's state lists `key` as a member (or it is the host). */
  #listed(room: Room, key: Uint8Array): boolean {
    const st = room.state?.state;
    return st !== undefined && !listed(st.x, key) && (listed(st.m, key) || equalBytes(st.hid, key));
  }

  /** Whether the host's state lists `key` as removed. */
  #removed(room: Room, key: Uint8Array): boolean {
    return room.state !== undefined && listed(room.state.state.x, key);
  }

  /** The host key now: the last one handed over to, or the link's `h`. */
  #hostKey(room: Room): Uint8Array {
    return room.state?.state.host ?? room.link.host;
  }

  #isHost(room: Room): boolean {
    return !room.handingOver && !room.record.gone && equalBytes(this.#memberPub(room), this.#hostKey(room));
  }

  #memberKey(room: Room): Uint8Array {
    room.record.mk ??= crypto.getRandomValues(new Uint8Array(32));
    return room.record.mk;
  }

  /** Its public half: read on every view (`#isHost`), so derived once, not per call. */
  #memberPub(room: Room): Uint8Array {
    room.memberPub ??= ed25519.getPublicKey(this.#memberKey(room));
    return room.memberPub;
  }

  /** The state as it is (or the implicit one before the first: the link's host and secret). */
  #currentState(room: Room): RoomState {
    if (room.state) return room.state.state;
    const e = room.record.e ?? 0;
    return {
      c: secretCommitment(room.link.id, e, room.link.secret),
      e,
      hid: this.#d.user.identity.verified.identity_key,
      host: this.#hostKey(room),
      id: room.link.id,
      m: [],
      v: 0,
      x: [],
    };
  }

  /** As host: sign the next version of the state and give it to every member. */
  #sign(room: Room, change: (s: RoomState) => RoomState, chain?: Handover[]): void {
    const current = this.#currentState(room);
    const next = change({ ...current, v: current.v + 1 });
    this.#adopt(room, signState(next, this.#memberKey(room), chain ?? room.state?.chain ?? []));
  }

  /** A state a member sent: taken if it verifies from the link and supersedes ours. */
  #onState(room: Room, bytes: Uint8Array): void {
    const verified = verifyState(bytes, room.link.id, room.link.host);
    if (!verified.ok) {
      this.#d.log(`refused a room state: ${verified.error.code}`);
      return;
    }
    if (!supersedes(verified.value, room.state)) return;
    this.#adopt(room, verified.value);
  }

  /** Take a verified state: enforce its removals, pass it on to every member we have a link to. */
  #adopt(room: Room, next: VerifiedState): void {
    room.state = next;
    room.record.st = next.bytes.slice();
    if (!equalBytes(this.#memberPub(room), next.state.host)) room.handingOver = false;
    // Every member relays a state it takes once: it reaches members the host has no link to.
    for (const m of room.members.values()) this.#sendTo(m, { t: "room.state", s: next.bytes.slice() });
    if (listed(next.state.x, this.#d.user.identity.verified.identity_key)) {
      room.record.gone = true;
      for (const m of room.members.values()) this.#later(m, "removed");
      void this.#mail.forgetRoom(room.idHex).catch(() => undefined);
      void this.#signaling?.leaveRoom(room.hash).catch(() => undefined);
    } else {
      for (const m of room.members.values())
        if (listed(next.state.x, m.key)) {
          m.present = false;
          this.#later(m, "removed");
        }
      // Every removed member's pair goes (its queue at our relay too), also of members not met this
      // run: a member away during the removal learns it from this state (§9).
      void this.#mail
        .forgetPairs(
          room.idHex,
          next.state.x.map((k) => toHex(k)),
        )
        .catch(() => undefined);
    }
    const pending = room.pendingKeys.splice(0);
    for (const p of pending) if (p.e === next.state.e) this.#onKey(room, p.e, p.k);
    for (const p of pending) wipe(p.k);
    void this.#saveRooms();
    this.#changed(room);
  }

  /** A secret handed to us: taken when the state commits to it, held while that state is on its way. */
  #onKey(room: Room, e: number, k: Uint8Array): void {
    if (e <= (room.record.e ?? 0) || room.record.gone) return;
    const st = room.state?.state;
    if (st && st.e === e) {
      if (!equalBytes(secretCommitment(room.link.id, e, k), st.c)) {
        this.#d.log("refused a room secret the host's state does not commit to");
        return;
      }
      this.#rotate(room, e, k.slice());
      void this.#saveRooms();
    } else if ((!st || st.e < e) && room.pendingKeys.length < MAX_PENDING_KEYS)
      room.pendingKeys.push({ e, k: k.slice() });
  }

  /** Use the secret of epoch `e` from now on; keep the one before for listed members who missed it. */
  #rotate(room: Room, e: number, secret: Uint8Array): void {
    this.#takeSecret(room, secret);
    room.record.e = e;
    // Only to members the state does not remove, inside their sessions.
    for (const m of room.members.values())
      if (!this.#removed(room, m.key)) this.#sendTo(m, { t: "room.key", e, k: secret.slice() });
    this.#changed(room);
  }

  /** `secret` becomes the room's; the older ones stay (a bounded few) for listed members who were
   *  away meanwhile (§8). */
  #takeSecret(room: Room, secret: Uint8Array): void {
    if (room.record.pk) room.record.ok = [room.record.pk, ...(room.record.ok ?? [])];
    for (const old of room.record.ok?.splice(MAX_OLD_SECRETS - 1) ?? []) wipe(old);
    room.record.pk = room.record.k;
    room.record.k = secret.slice();
    room.link.secret = secret;
    room.oldBindings = [room.binding, ...room.oldBindings].slice(0, MAX_OLD_SECRETS);
    room.binding = roomBinding(room.link);
  }

  /** Close a member's link once what was just sent on it has had time to leave. */
  #later(m: Member, reason: string): void {
    const s = m.session;
    if (!s) return;
    m.session = undefined;
    setTimeout(() => s.close(reason), CLOSE_GRACE_MS);
  }

  #onHandover(room: Room, from: Member, ho: Handover): void {
    const chain = room.state?.chain ?? [];
    const hid = room.state?.state.hid;
    if (
      !room.state ||
      !hid ||
      !equalBytes(hid, from.key) ||
      !equalBytes(ho.k, this.#memberPub(room)) ||
      !verifyHandover(room.link.id, chain.length, ho, this.#hostKey(room))
    ) {
      this.#d.log("refused a room hand-over");
      return;
    }
    this.#sign(
      room,
      (s) => ({
        ...s,
        host: ho.k,
        hid: this.#d.user.identity.verified.identity_key,
        // The former host stays a listed member; the host is not listed as one.
        m: [...s.m.filter((k) => !equalBytes(k, this.#d.user.identity.verified.identity_key)), from.key],
      }),
      [...chain, ho],
    );
  }

  // ---- rendezvous ------------------------------------------------------------------------------------

  async #enter(room: Room): Promise<void> {
    const s = this.#signaling;
    if (!s || this.#stopped || room.record.gone) return;
    room.status = "joining";
    this.#changed(room);
    try {
      const members = await s.joinRoom(room.hash, this.#d.memberCap);
      this.#present(room, members, false);
    } catch (e) {
      if (isLoftError(e) && e.code === "LOFT_ERR_SIGNALING_ROOM_FULL") room.status = "full";
      else if (isLoftError(e) && e.code === "LOFT_ERR_SIGNALING_TOO_MANY_ROOMS") room.status = "too-many";
      else room.status = "offline"; // joined again by the client after its next registration
      this.#changed(room);
    }
  }

  /** We are in the room with `keys` there (they dial us: we are the newcomer). */
  #present(room: Room, keys: Uint8Array[], dial: boolean): void {
    const now = new Set(keys.map(toHex));
    // A member being dialed or linked came in by a presence push, which can overtake the answer
    // to our own join (both in flight at once): that answer is not news of its departure.
    for (const m of room.members.values())
      if (!now.has(m.hex) && m.present && !m.dialing && !m.session) this.#gone(room, m);
    for (const key of keys) {
      const m = this.#member(room, key);
      m.present = true;
      if (dial && !m.session && !this.#removed(room, m.key)) this.#dial(room, m);
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
    if (e.type === "registered") {
      // A clean-up that failed (`#cleanUp`) is tried again now, not only at the next start.
      if (this.#left.length > 0) void this.#sweep();
    } else if (e.type === "room-members") {
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
        m.legacy = 0;
        m.dialedBack = false;
        // A removed member is dialed too: its handshake fails on the binding (it never got the
        // new secret), so it is told at once that the room does not let it in.
        this.#dial(room, m);
      } else this.#gone(room, m);
      this.#changed(room);
    }
  }

  #gone(room: Room, m: Member): void {
    m.present = false;
    this.#drop(m, "left");
    this.#prune(room, m);
  }

  /**
   * A member that is not here, not linked, not being dialed and not listed by the host's state
   * (§8) is forgotten: else every key that ever offered or passed through the rendezvous stayed
   * in `room.members` for the whole run. It is made again if it comes back.
   */
  #prune(room: Room, m: Member): void {
    if (m.present || m.session || m.dialing || this.#listed(room, m.key)) return;
    if (room.members.get(m.hex) === m) room.members.delete(m.hex);
  }

  // ---- member links --------------------------------------------------------------------------------

  #dial(room: Room, m: Member): void {
    const relay = m.viaRelay ? this.#relay : undefined;
    const transport = relay ?? this.#transport;
    if (!transport || m.dialing || this.#stopped || room.record.gone) return;
    const kind = relay ? "relay" : "direct";
    const binding = (m.legacy > 0 && room.oldBindings[m.legacy - 1]) || room.binding;
    clearTimeout(m.timer);
    m.dialing = true;
    this.#changed(room);
    const link = transport.dial(m.key, { room: room.hash });
    // AES-GCM offered as to a contact (noise-suites.ts; docs/decisions.md, "AES-GCM Noise suite,
    // offered from the first dial"): unless this member refused an offer before.
    const suites = offeredSuites(this.#d.crypto ?? nobleCrypto, m, "initiator");
    void (async () => {
      try {
        const wait = !relay && this.#relay ? (this.#d.relayFallbackMs ?? 4_000) : undefined;
        if (!(await openedWithin(link, wait)))
          throw new LoftError("LOFT_ERR_TIMEOUT", "no direct path opened");
        const session = await establishSession({
          link,
          role: "initiator",
          kind,
          self: this.#d.user,
          expectedIdentityKey: m.key,
          binding,
          handshakeTimeoutMs: this.#d.handshakeTimeoutMs,
          extensions: { ...suitesExtension(), ...mboxOrderExtension() },
          ...suites,
          ...(this.#d.crypto ? { crypto: this.#d.crypto } : {}),
        });
        learnSuites(m, session);
        m.dialing = false;
        this.#up(room, m, session, link.drain?.bind(link), link.bulk);
      } catch (e) {
        m.dialing = false;
        link.close("room-dial-failed");
        // A member from before suites refused our offer (docs/protocol/session.md §2, "Answer"):
        // not a failure — marked, and dialed again at once, plainly (as dialing.ts does for a
        // contact). `forgetSuitesOnRefusal` is true once per member, so this never loops.
        if (forgetSuitesOnRefusal(m, e, suites.suites !== undefined)) {
          this.#d.log(
            `room member ${m.hex.slice(0, 8)} refused the Noise suite offer: dialing again without one`,
          );
          this.#dial(room, m);
          return;
        }
        if (isLoftError(e) && e.code === "LOFT_ERR_DECRYPT") {
          // A member the host listed may have missed rotations (offline then): it holds an older
          // secret, tried newest first, and gets the current one inside the session (§8). Anyone
          // else, or a listed member older than every secret we keep: refused.
          if (m.legacy < room.oldBindings.length && this.#listed(room, m.key)) {
            m.legacy++;
            this.#dial(room, m);
            return;
          }
          // Their message 2 did not decrypt under our binding: they do not hold the room secret.
          m.legacy = 0;
          this.#refusedAttempt(room, m);
          // Our dial back (after it closed our answer) failed too: we are the one behind, further
          // than our older secrets reach — refused, and told to ask for the new link (§8).
          if (m.dialedBack && this.#refusedEverywhere(room)) {
            room.status = "refused";
            // Then the members we dialed back hold the secret and we do not: they refused us, and
            // their attempts are no strangers' (a listed member, the host even, was dropped from
            // our chips and named "someone without this room's secret"). Listed again, refused:
            // the chip says whose link is out of date as far as it is known (ui/format.ts
            // `whoIsBehind`).
            for (let i = room.refused.length - 1; i >= 0; i--) {
              const x = room.members.get(room.refused[i]?.key ?? "");
              if (x?.dialedBack && x.present) room.refused.splice(i, 1);
            }
            this.#changed(room);
          }
          return;
        }
        this.#d.log(`room dial failed: ${isLoftError(e) ? e.code : (e as Error).message}`);
        // No direct path (it did not open): through the relay at once, if we have one; after a
        // failed relay attempt, direct again (with backoff) — a path may have opened meanwhile.
        if (!relay && this.#relay && m.present && !this.#stopped && !m.viaRelay) {
          m.viaRelay = true;
          this.#dial(room, m);
          return;
        }
        m.viaRelay = false;
        // Tried again while it stays present, never given up (#gone, leave and stop clear the
        // timer): slower each time, up to the cap, so a pair is never left unlinked for good.
        if (m.present && !this.#stopped) this.#retryLater(room, m, m.failures++);
        this.#changed(room);
      }
    })();
  }

  /** A member link we dialed ended under us: dialed again soon, with the backoff from the start. */
  #redial(room: Room, m: Member): void {
    if (this.#stopped || !this.#rooms.has(room.idHex) || room.record.gone || this.#removed(room, m.key))
      return;
    if (!m.present || m.dialing) return;
    m.failures = 0;
    // A member that stopped is soon gone from the rendezvous (#gone clears this timer).
    this.#retryLater(room, m, 0);
  }

  /**
   * Dial `m` again after the `attempt`th backoff step (RETRY_BASE_MS doubling, at most
   * RETRY_MAX_MS, jittered to 50–100 %), unless meanwhile it left, linked, or the room is no longer
   * ours. One timer per member (a new one replaces the old).
   */
  #retryLater(room: Room, m: Member, attempt: number): void {
    const base = this.#d.retryBaseMs ?? RETRY_BASE_MS;
    const max = this.#d.retryMaxMs ?? RETRY_MAX_MS;
    const delay = Math.min(max, base * 2 ** Math.min(attempt, 30)) * (0.5 + Math.random() / 2);
    clearTimeout(m.timer);
    m.timer = setTimeout(() => {
      m.timer = undefined;
      if (this.#stopped || this.#rooms.get(room.idHex) !== room || room.record.gone) return;
      // A removed member is dialed too, as on its arrival (#onSignaling): its handshake fails on
      // the binding, and it is told the room does not let it in.
      if (m.present && !m.session) this.#dial(room, m);
    }, delay);
  }

  /**
   * An offer naming a room we are in (or joining: a member told of us may dial before our own
   * join's answer is read) is answered; the handshake's room binding decides who is a member.
   * Offers for any other room are refused.
   */
  onOffer(offer: IncomingOffer): void {
    const room = offer.room ? this.#byHash(offer.room) : undefined;
    if (
      !room ||
      this.#stopped ||
      room.record.gone ||
      !(room.status === "in" || room.status === "joining") ||
      this.#removed(room, offer.from)
    ) {
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
        // In case this session starts the pair's ratchet (rooms/mailbox.ts): the responder's key.
        const ratchetKey = await freshRatchetKeyPair(this.#d.crypto);
        const session = await establishSession({
          link,
          role: "responder",
          kind: offer.path === "relay" ? "relay" : "direct",
          self: this.#d.user,
          expectedIdentityKey: m.key,
          binding: room.binding,
          handshakeTimeoutMs: this.#d.handshakeTimeoutMs,
          extensions: {
            ...suitesExtension(),
            ...mboxOrderExtension(),
            [RATCHET_KEY_EXTENSION]: ratchetKey.publicKey,
          },
          ...(this.#d.crypto ? { crypto: this.#d.crypto } : {}),
        });
        learnSuites(m, session);
        m.ratchetKey = ratchetKey;
        this.#up(room, m, session, link.drain?.bind(link), link.bulk);
      } catch (e) {
        link.close("room-answer-failed");
        // As the newcomer we are the responder: a member who closes on our message 2 is one whose
        // binding differs from ours — the link's secret is not the room's (or theirs is not).
        const ended = isLoftError(e) && (e.code === "LOFT_ERR_LINK_CLOSED" || e.code === "LOFT_ERR_TIMEOUT");
        if (ended && opened) {
          m.refused = true;
          m.present = true;
          // A member our state lists closed on our binding: it may be the one behind, holding an
          // older secret (it was here first, so it dialed). Dial it back once: as the dialer we try
          // our older bindings and hand it the current secret inside the session (§8, catch-up).
          if (this.#listed(room, m.key) && !m.dialedBack && !m.dialing && !m.session) {
            m.dialedBack = true;
            this.#dial(room, m);
          } else if (this.#refusedEverywhere(room)) room.status = "refused";
        }
        this.#d.log(`room answer failed: ${isLoftError(e) ? e.code : (e as Error).message}`);
        this.#prune(room, m);
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

  #up(room: Room, m: Member, session: Session, drain?: () => Promise<void>, bulk?: BulkLane): void {
    if (this.#stopped || !this.#rooms.has(room.idHex) || room.record.gone || this.#removed(room, m.key)) {
      session.close("not-in-room");
      return;
    }
    // Proven by the binding: a member of this room, present (it reached us through the rendezvous).
    m.present = true;
    const old = m.session;
    m.session = session;
    m.drain = drain;
    m.bulk = bulk?.state === "closed" ? undefined : bulk;
    m.refused = false;
    m.failures = 0;
    m.legacy = 0;
    // Proven a member: an attempt of its we refused before (it held a newer secret than ours,
    // §8) no longer counts.
    for (let i = room.refused.length - 1; i >= 0; i--)
      if (room.refused[i]?.key === m.hex) room.refused.splice(i, 1);
    if (room.status === "refused") room.status = "in";
    old?.close("replaced");
    // Its drops said, as a contact's are (dialing.ts `logDropsOf`).
    logDropsOf(session, `${m.hex.slice(0, 8)} (room ${room.idHex.slice(0, 8)})`, this.#d.log);
    this.#sendTo(m, {
      t: "room.hi",
      name: this.#d.user.identity.verified.username.slice(0, 40) || "?",
      rk: this.#memberPub(room).slice(),
    });
    // What the host signed, and the current secret (a listed member may have come in on the one
    // before: §8); the host lists a member it has not listed yet.
    if (room.state) this.#sendTo(m, { t: "room.state", s: room.state.bytes.slice() });
    if ((room.record.e ?? 0) > 0) this.#sendTo(m, { t: "room.key", e: room.record.e ?? 0, k: room.record.k });
    if (this.#isHost(room) && !(room.state && listed(room.state.state.m, m.key)))
      this.#sign(room, (s) => ({ ...s, m: [...s.m, m.key] }));
    void this.#pairUp(room, m, session);
    // What we sent for this member and it has not confirmed (it dropped and came back).
    for (const e of room.log)
      if (e.from === undefined && e.to?.includes(m.hex) && !e.got?.includes(m.hex))
        this.#sendTo(m, { t: "room.msg", id: e.id, at: e.at, text: e.text });
    this.#changed(room);
    void this.#read(room, m, session);
    this.lane?.memberUp(room.idHex, m.hex);
  }

  /**
   * A frame of another feature (RoomFrameLane) to a member; false when its link is down — also
   * when it closed under a session still `open` for its reader, which drops what it is sent
   * (core/session `writable`; docs/protocol/session.md §5): a room call's signal is then logged as
   * not sent (calls/room-call.ts), not counted as gone.
   */
  sendFrame(roomId: string, member: string, frame: Uint8Array): boolean {
    const m = this.#rooms.get(roomId)?.members.get(member);
    return m?.session?.writable === true && this.#sendBytes(m, () => frame);
  }

  async #read(room: Room, m: Member, session: Session): Promise<void> {
    /** The session ended under us (a failure, the member's close), not on a frame that ends it. */
    let ended = false;
    for (;;) {
      let bytes: Uint8Array;
      try {
        bytes = await session.receive();
      } catch {
        ended = true;
        break;
      }
      const lane = this.lane?.onFrame(room.idHex, m.hex, bytes);
      if (lane) {
        if (lane !== true) await lane; // a file chunk: taken (or refused) before the next read
        continue;
      }
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
      // Not a bye, a removal, our own close or a newer link: the link failed (its channel closed,
      // the path died) while the member may still be here. We dialed it, so we dial it again (§3:
      // the dialing member keeps that role, no glare); the member that answered waits for us.
      if (ended && session.role === "initiator") this.#redial(room, m);
    }
    if (!m.session) {
      this.lane?.memberDown(room.idHex, m.hex);
      // What it had not confirmed when its link went: into its mailbox (§9).
      this.#flushMail(room);
    }
  }

  /**
   * One message from a member, over its session or (`via` "mailbox") read from our mailbox; false
   * when the link is to end (a bye, a removal).
   */
  #receive(room: Room, m: Member, msg: RoomMessage, via: "live" | "mailbox" = "live"): boolean {
    if (this.#removed(room, m.key)) return false;
    switch (msg.t) {
      case "room.hi":
        m.name = msg.name;
        m.rk = msg.rk;
        this.#changed(room);
        return true;
      case "room.state":
        this.#onState(room, msg.s);
        return !this.#removed(room, m.key) && !room.record.gone;
      case "room.key":
        this.#onKey(room, msg.e, msg.k);
        return true;
      case "room.host":
        this.#onHandover(room, m, { k: msg.k, sig: msg.sig });
        return true;
      case "room.rs":
        // A ratchet the storage refuses (a full disk) is said, not an unhandled rejection.
        void this.#onRatchetSync(room, m, msg.ri).catch((e: unknown) =>
          this.#d.log(`room ratchet not stored: ${(e as Error).message}`),
        );
        return true;
      case "room.dr":
        // Said once, here: its frame's failure (room-files.ts `onMailFrame` passes it on) or its
        // ratchet's store refused; the member's next frames are read all the same.
        void this.#mail
          .open(room.idHex, m.hex, msg.d)
          .catch((e: unknown) => this.#d.log(`a sealed room frame was not taken: ${(e as Error).message}`));
        return true;
      case "room.mbox":
        // What waited for want of a way to the member (its old queue was on a dead relay) can go.
        void this.#mail
          .announced(room.idHex, m.hex, msg, via, () => this.#depositAgain(room, m.hex))
          .then(() => this.#flushMail(room))
          .catch(() => undefined);
        return true;
      case "room.msg": {
        if (room.record.gone) return false;
        // Not stored: no receipt, the writer sends it again at the next session (#keep).
        void this.#keep(room, m, msg).catch((e: unknown) =>
          this.#d.log(`could not store a room's history: ${(e as Error).message}`),
        );
        return true;
      }
      case "room.rcpt": {
        // (A member whose link is down may still confirm through our mailbox: §9.)
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
        this.#gone(room, m);
        // It left for good: its pair ratchet and our queue for it go (it deleted its own, §9).
        void this.#mail.forgetPair(room.idHex, m.hex).catch(() => undefined);
        // Leaving is anyone's right: the host stops listing who left (its old secret stays with it).
        if (this.#isHost(room) && room.state && listed(room.state.state.m, m.key)) {
          this.#sign(room, (s) => ({ ...s, m: s.m.filter((k) => !equalBytes(k, m.key)) }));
          this.#prune(room, m);
        }
        this.#changed(room);
        return false;
    }
  }

  /**
   * A member's message into our history in memory, once per (member, id): false when it was there
   * already. Stored by #stored.
   */
  #take(room: Room, m: Member, msg: { id: string; at: number; text: string }): boolean {
    if (room.log.some((e) => e.from === m.hex && e.id === msg.id)) return false;
    // From a mailbox, before any room.hi of this run: the name it had last.
    const name = m.name ?? room.log.findLast((e) => e.from === m.hex)?.name;
    this.#append(room, { id: msg.id, from: m.hex, name, at: msg.at, text: msg.text });
    room.unwritten = true;
    this.#changed(room);
    return true;
  }

  /**
   * A member's message, live or from a mailbox (#mailFrame), kept, then confirmed: as 1:1 chat
   * (engine/messages.ts), the writer is told we have it only once our stored history holds it — a
   * receipt sent before the write landed showed "delivered" for a message a crash or a full disk
   * then lost, and the writer, holding a receipt, never sent it again (§6). A copy we hold already
   * (sent again, or its mailbox copy after the live one) waits for the history write in flight, or
   * writes again when the last one failed, or when no write was asked since it came (a mailbox
   * read not settled yet: the live copy confirmed on `written` told the writer "delivered" with
   * the history unwritten); with none of these it writes nothing — rewriting the whole history for
   * a duplicate cost a sealed write of up to MAX_LOG entries for nothing.
   */
  #keep(room: Room, m: Member, msg: { id: string; at: number; text: string }): Promise<void> {
    return this.#stored(room, m, msg.id, this.#take(room, m, msg));
  }

  /** Store the history once it holds the message (`fresh`: just added to it), then confirm it (#keep). */
  #stored(room: Room, m: Member, id: string, fresh: boolean): Promise<void> {
    const stored =
      fresh || room.unsaved !== undefined || room.unwritten ? this.#writeLog(room) : room.written;
    return stored.then(() => this.#confirm(room, m, id));
  }

  /** Tell the writer we have its message: on its session, or into its mailbox when it is away. */
  #confirm(room: Room, m: Member, id: string): void {
    if (m.session) {
      this.#sendTo(m, { t: "room.rcpt", ids: [id] });
      return;
    }
    // Read from our mailbox with the writer away: the receipt goes into its mailbox, with the
    // others read meanwhile in one `room.rcpt` (retried after a relay error, #flushMail).
    const ids = room.receipts.get(m.hex) ?? new Set<string>();
    // Bounded: past it the oldest are dropped (the writer sends those again live, §6).
    if (ids.size >= MAX_PENDING_RECEIPTS) ids.delete(ids.values().next().value ?? "");
    ids.add(id);
    room.receipts.set(m.hex, ids);
    this.#flushMail(room);
  }

  #sendTo(m: Member, msg: RoomMessage): void {
    // Not sent (closed meanwhile): what was not confirmed is sent again when the member's link is back.
    this.#sendBytes(m, () => encodeRoomFrame(msg));
  }

  /** A frame (made only when there is a live session) on the member's session; false if not sent. */
  #sendBytes(m: Member, frame: () => Uint8Array): boolean {
    const s = m.session;
    if (!s || s.state === "closed") return false;
    try {
      s.send(frame());
      return true;
    } catch {
      return false;
    }
  }

  /**
   * `options.orderly` for our own stop or leave, to members that are there: the session's link
   * may then wait, bounded, until the member has its CLOSE (core/link/link.ts
   * `LinkCloseInfo.orderly`); otherwise it closes at once.
   */
  #drop(m: Member, reason: string, options?: LinkCloseOptions): void {
    clearTimeout(m.timer);
    m.timer = undefined;
    const s = m.session;
    m.session = undefined;
    s?.close(reason, undefined, options);
  }

  // ---- bookkeeping ---------------------------------------------------------------------------------

  #roomOf(record: RoomRecord): Room {
    record.mk ??= record.hk?.slice() ?? crypto.getRandomValues(new Uint8Array(32));
    const link = { id: record.id, secret: record.k, host: record.h };
    const verified = record.st ? verifyState(record.st, record.id, record.h) : undefined;
    const room: Room = {
      record,
      link,
      idHex: toHex(record.id),
      hash: roomHash(record.id),
      binding: roomBinding(link),
      oldBindings: [record.pk, ...(record.ok ?? [])]
        .filter((k) => k !== undefined)
        .slice(0, MAX_OLD_SECRETS)
        .map((secret) => roomBinding({ ...link, secret })),
      state: verified?.ok ? verified.value : undefined,
      pendingKeys: [],
      handingOver: false,
      memberPub: undefined,
      members: new Map(),
      refused: [],
      log: [],
      written: Promise.resolve(),
      name: undefined,
      status: "offline",
      sending: Promise.resolve(),
      flushing: false,
      flushAgain: false,
      receipts: new Map(),
      mailTimer: undefined,
      mailFailures: 0,
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
        rk: undefined,
        legacy: 0,
        dialedBack: false,
        viaRelay: false,
        ratchetKey: undefined,
        drain: undefined,
        bulk: undefined,
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
    const hostId = r.state ? toHex(r.state.state.hid) : undefined;
    const members: RoomMemberView[] = [...r.members.values()]
      // Someone refused (no room secret) or removed by the host is not a member.
      .filter((m) => m.present && !r.refused.some((x) => x.key === m.hex) && !this.#removed(r, m.key))
      .map((m) => ({
        key: m.hex,
        name: m.name,
        // Removed, we dial no one and answer no one (`#dial`, `onOffer`): no member is connecting.
        state: m.session ? "online" : m.refused || r.record.gone ? "refused" : "connecting",
        host: m.hex === hostId,
        verified: r.record.vf?.includes(m.hex) ?? false,
        canBeHost: m.rk !== undefined && m.session !== undefined,
        ...(m.session
          ? {
              suite: suiteOf(m.session.protocolName)?.name,
              path: m.session.kind === "relay" ? ("relay" as const) : ("direct" as const),
            }
          : {}),
      }));
    let unread = 0;
    for (let i = r.record.read; i < r.log.length; i++) if (r.log[i]?.from !== undefined) unread++;
    const host = this.#isHost(r);
    return {
      id: r.idHex,
      ...(r.name ? { name: r.name } : {}),
      fragment: roomFragment(r.link),
      host,
      wasMember:
        r.state !== undefined && listed(r.state.state.m, this.#d.user.identity.verified.identity_key),
      // A host we know of (its signed state names it) with no live link to us; or none met yet.
      hostAway:
        !host &&
        !r.handingOver &&
        r.status === "in" &&
        !(hostId !== undefined && r.members.get(hostId)?.session !== undefined),
      status: r.record.gone ? "removed" : r.status,
      members,
      refused: [...r.refused],
      ...(r.unsaved ? { unsaved: r.unsaved } : {}),
      unread,
      last: r.log.at(-1)?.text,
    };
  }

  /** The records of the rooms we are in, as stored: a room being left is no longer listed. */
  #records(): RoomRecord[] {
    return [...this.#rooms.values()].filter((r) => !r.leaving).map((r) => r.record);
  }

  #saveRooms(): Promise<void> {
    return this.#store.saveRooms(this.#records()).catch((e: unknown) => {
      this.#d.log(`could not store the rooms: ${(e as Error).message}`);
    });
  }

  /**
   * Into the history, bounded in memory as on disk (store.ts MAX_LOG, rooms.md §7): the oldest
   * entries go, and the read mark moves with them. Else a member sending new ids without end
   * grew it for the whole run (and every arrival scanned it).
   */
  #append(room: Room, entry: LogEntry): void {
    room.log.push(entry);
    const over = room.log.length - MAX_LOG;
    if (over <= 0) return;
    room.log.splice(0, over);
    const read = Math.max(0, room.record.read - over);
    if (read === room.record.read) return;
    room.record.read = read;
    void this.#saveRooms();
  }

  #saveLog(room: Room): Promise<void> {
    return this.#writeLog(room).catch((e: unknown) =>
      this.#d.log(`could not store a room's history: ${(e as Error).message}`),
    );
  }

  /**
   * Store the room's history; a failure is shown on the room (`RoomView.unsaved`) until a write
   * lands. Messages read but not stored stay at the relay (§9) or with their writer (§6), with no
   * receipt: only a log line said so, and the person saw them, then lost them at a reload, never
   * knowing why (a relay drops a copy delivered too often: docs/operations-relay.md, `--relay-max-deliveries`).
   */
  #writeLog(room: Room): Promise<void> {
    room.unwritten = false;
    room.written = this.#store
      .saveLog(room.idHex, () => room.log)
      .then(
        () => {
          if (room.unsaved === undefined) return;
          room.unsaved = undefined;
          this.#changed(room);
        },
        (e: unknown) => {
          const full = (e as Error | undefined)?.name === "QuotaExceededError";
          const why = full ? "this device has no storage space left" : "the browser's storage refused it";
          if (room.unsaved !== why) {
            room.unsaved = why;
            this.#changed(room);
          }
          throw e;
        },
      );
    return room.written;
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
