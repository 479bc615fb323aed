/**
 * Files to a room (docs/protocol/files.md §8): each member of the room is a transfer end of its
 * own (files/transfers.ts `FilePeer`), reached over its member session (docs/protocol/rooms.md
 * §3): the bytes as FILE_CHUNK / FILE_ACK frames, exactly as on a contact's session, and the
 * `file.*` messages — which a contact's ratchet carries — as FILE_MSG frames (0x12) on the member
 * session, Noise-encrypted like every room frame:
 *
 *   FILE_MSG  12 ‖ padToBucket(canonical MessagePack file.* message)      member sessions only
 *
 * The rooms engine hands frames of the files range to this lane (rooms/mesh.ts `RoomFrameLane`)
 * and says when a member's session comes up; the frames of one member are handled one at a
 * time, in the order they came, as a contact's read loop does.
 *
 * To a member who is away, a file that fits goes into its relay mailbox (docs/protocol/files.md
 * §9, as to a contact): the `file.offer` and `file.part` messages as FILE_MSG frames, each sealed
 * with the pair's Double Ratchet and deposited by the rooms engine (rooms/mailbox.ts,
 * docs/protocol/rooms.md §9); the member reads them from its mailbox into the same transfer code.
 */

import * as v from "valibot";
import type { Result } from "../../../../core/errors.ts";
import type { Session } from "../../../../core/session/index.ts";
import type { RoomEvent } from "../rooms/api.ts";
import type { RoomFrameLane } from "../rooms/mesh.ts";
import { decodeTypedFrame, encodeTypedFrame } from "../rooms/wire.ts";
import type { BulkLane } from "../transport.ts";
import type { FileLive, FileMailbox, FilePeer, FileTransfers, RoomFilePeers } from "./transfers.ts";
import { MAILBOX_RESERVE, roomPeerId } from "./transfers.ts";
import {
  FILE_APP_MAX_FIELDS,
  FILE_FRAME,
  type FileAppMessage,
  fileAppSchemas,
  isFileFrame,
  MAX_THUMB_BYTES,
} from "./wire.ts";

/** What this lane uses of the rooms engine (rooms/mesh.ts). */
export interface RoomLinks {
  sendFrame(roomId: string, member: string, frame: Uint8Array): boolean;
  memberSession(
    roomId: string,
    member: string,
  ): { session: Session; drain?: () => Promise<void>; bulk?: BulkLane } | undefined;
  memberName(roomId: string, member: string): string | undefined;
  /** The relay mailbox of a member who is away (rooms.md §9): its relay's quota and a deposit. */
  memberMailbox(
    roomId: string,
    member: string,
  ): Promise<{ quota: number; deposit: (frame: Uint8Array) => Promise<boolean> } | undefined>;
  list(): { id: string }[];
  subscribe(listener: (e: RoomEvent) => void): () => void;
}

const fileMessageSchema = v.variant("t", [...fileAppSchemas]);

/** Decoding bounds of a FILE_MSG: the offer is the largest (a preview of up to 16 KiB). */
const LIMITS = {
  maxBytes: MAX_THUMB_BYTES + 1024,
  maxStrLength: 1024,
  maxArrayLength: 0,
  maxMapLength: FILE_APP_MAX_FIELDS,
  maxBinLength: MAX_THUMB_BYTES,
};

/** A `file.*` message as a member-session frame. */
export function encodeFileMsgFrame(m: FileAppMessage): Uint8Array {
  return encodeTypedFrame(FILE_FRAME.MSG, m);
}

/** The strict reading of a FILE_MSG: valid padding, a `file.*` message, canonical bytes. */
export function decodeFileMsgFrame(frame: Uint8Array): Result<FileAppMessage> {
  return decodeTypedFrame(frame, FILE_FRAME.MSG, fileMessageSchema, LIMITS, "file message");
}

export class RoomFiles implements RoomFrameLane, RoomFilePeers {
  readonly #files: FileTransfers;
  readonly #rooms: RoomLinks;
  readonly #log: (message: string) => void;
  /** Frames of one member, handled in order. */
  readonly #chains = new Map<string, Promise<void>>();
  /** One `FileLive` per member session, so the transfers can tell sessions apart. */
  readonly #lives = new WeakMap<Session, FileLive>();

  constructor(files: FileTransfers, rooms: RoomLinks, log: (message: string) => void) {
    this.#files = files;
    this.#rooms = rooms;
    this.#log = log;
    files.rooms = this;
  }

  /**
   * We left the room: its transfers go with it (its history goes too: docs/protocol/rooms.md §7) —
   * called by the rooms engine's clean-up, which tries again at the next registration or start
   * when this fails (mesh.ts `#sweep`).
   */
  forgetRoom(roomId: string): Promise<void> {
    return this.#files.forgetRoom(roomId);
  }

  peer(room: string, member: string): FilePeer {
    const rooms = this.#rooms;
    return {
      id: roomPeerId(room, member),
      name: rooms.memberName(room, member) ?? `${member.slice(0, 4)}…${member.slice(-4)}`,
      room: { room, member },
      live: () => this.#live(room, member),
      ready: () => this.#live(room, member) !== undefined,
      tell: async (m) => {
        const frame = encodeFileMsgFrame(m);
        // Told only once the member session handed it to its link (core/session `writable`,
        // `flushed`): one dropped because the link closed under the session is held for the next
        // session (transfers.ts `#tell`) — a lost file.done leaves the sender `waiting` (files.md §5).
        const session = rooms.memberSession(room, member)?.session;
        if (
          session?.writable &&
          rooms.sendFrame(room, member, frame) &&
          (await session.flushed().then(
            () => true,
            () => false,
          ))
        )
          return true;
        // How a transfer ended reaches a member who is away through its mailbox (§9), so the
        // sender of a mailbox file learns it arrived; the rest waits for the next session.
        if (m.t !== "file.done" && m.t !== "file.cancel" && m.t !== "file.fail") return false;
        return (await this.#mailbox(room, member))?.deposit(m) ?? false;
      },
      mailbox: () => this.#mailbox(room, member),
    };
  }

  /** The member's relay mailbox when it is away (files.md §9): what a file may take, and a deposit. */
  async #mailbox(room: string, member: string): Promise<FileMailbox | undefined> {
    const mb = await this.#rooms.memberMailbox(room, member);
    return (
      mb && {
        bodies: mb.quota - MAILBOX_RESERVE,
        deposit: (m) => mb.deposit(encodeFileMsgFrame(m)),
      }
    );
  }

  #live(room: string, member: string): FileLive | undefined {
    const s = this.#rooms.memberSession(room, member);
    if (!s) return undefined;
    let live = this.#lives.get(s.session);
    if (!live) {
      live = {
        session: s.session,
        ...(s.drain ? { drain: s.drain } : {}),
        ...(s.bulk ? { bulk: s.bulk } : {}),
      };
      this.#lives.set(s.session, live);
    }
    return live;
  }

  /**
   * A frame of the files range from the member's session: handled after its earlier frames; the
   * promise resolves once it is (a chunk taken: files.md §4), and the member's read loop
   * (rooms/mesh.ts `#read`) awaits it before reading on — as a contact's read loop awaits
   * `onFrame` — so frames never pile up here: what waits for storage is bounded by the window
   * (files.md §5), and what the member sends meanwhile waits in its link.
   */
  onFrame(roomId: string, member: string, frame: Uint8Array): boolean | Promise<void> {
    if (!isFileFrame(frame)) return false;
    const live = this.#live(roomId, member);
    if (!live) return true;
    const peer = this.peer(roomId, member);
    // A failure is logged, and the member's next frame read, as a contact's read loop does
    // (link/controller.ts: "file frame").
    return this.#inOrder(roomId, member, async () => {
      if (frame[0] !== FILE_FRAME.MSG) return this.#files.frame(peer, live, frame);
      await this.#message(peer, frame);
    }).catch((e: unknown) => this.#log(`room file frame: ${(e as Error).message}`));
  }

  /**
   * A frame from the member's relay mailbox (files.md §9): a FILE_MSG only (a mailbox carries the
   * chunks as `file.part` messages, never as FILE_CHUNK frames), in order with the member's live
   * frames; resolves once handled (a chunk stored), before the relay's copy is acknowledged.
   */
  onMailFrame(roomId: string, member: string, frame: Uint8Array): Promise<void> | undefined {
    if (frame[0] !== FILE_FRAME.MSG) return undefined;
    const peer = this.peer(roomId, member);
    // Rejected when not handled (its record refused: a full disk), so that the relay's copy stays
    // unacknowledged and comes again, and the mailbox logs it (rooms/mailbox.ts `onRelayMessage`).
    return this.#inOrder(roomId, member, () => this.#message(peer, frame));
  }

  async #message(peer: FilePeer, frame: Uint8Array): Promise<void> {
    const m = decodeFileMsgFrame(frame);
    // As for any room frame: a bad one is dropped, the session stays (rooms.md §5).
    if (!m.ok) this.#log(`dropped a file message: ${m.error.code}`);
    else await this.#files.message(peer, m.value);
  }

  /**
   * Run `f` after the member's earlier frames: its outcome, a failure included, is the caller's
   * to log or pass on (`onFrame`, `onMailFrame`); the member's chain goes on past it.
   */
  #inOrder(roomId: string, member: string, f: () => Promise<void>): Promise<void> {
    const at = roomPeerId(roomId, member);
    const run = (this.#chains.get(at) ?? Promise.resolve()).then(f);
    const next = run.catch(() => undefined); // the caller has the failure (above)
    this.#chains.set(at, next);
    void next.then(() => {
      if (this.#chains.get(at) === next) this.#chains.delete(at);
    });
    return run;
  }

  /**
   * The member's session is up: its link's bulk lane (a direct link) is claimed and read for this
   * session — as the contact controller does (link/controller.ts), before the transfers resume so
   * our hello is on its way before any `file.accept` — then held messages go and transfers resume.
   */
  memberUp(roomId: string, member: string): void {
    const live = this.#live(roomId, member);
    if (!live) return;
    const peer = this.peer(roomId, member);
    if (live.bulk) {
      live.bulk.claim();
      void this.#readBulk(roomId, member, peer, live, live.bulk);
    }
    this.#files.up(peer, live);
  }

  /**
   * Frames from a member session's bulk lane (docs/protocol/files.md §2, "The bulk lane", rule 3):
   * one at a time, in order, each handled before the next is read (the window bounds what waits:
   * §5); only while that session is the member's current one; FILE_CHUNK only
   * (`FileTransfers.bulkFrame`), any type outside the files range dropped and logged.
   */
  async #readBulk(
    roomId: string,
    member: string,
    peer: FilePeer,
    live: FileLive,
    bulk: BulkLane,
  ): Promise<void> {
    for (;;) {
      let bytes: Uint8Array;
      try {
        bytes = await bulk.receive();
      } catch {
        return; // the lane closed with its link
      }
      if (this.#rooms.memberSession(roomId, member)?.session !== live.session) continue;
      if (isFileFrame(bytes))
        await this.#files
          .bulkFrame(peer, live, bytes)
          .catch((e: unknown) => this.#log(`room bulk frame: ${(e as Error).message}`));
      else this.#log(`room bulk lane: dropped a frame of type ${bytes[0]} (LOFT_ERR_UNKNOWN_TYPE)`);
    }
  }

  memberDown(): void {
    // The session's end pauses the member's transfers (transfers.ts `up` watches it).
  }
}
