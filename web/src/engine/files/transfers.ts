/**
 * File transfers to and from contacts (docs/protocol/files.md): the offer and its answers travel
 * as `file.*` application messages inside the contact's Double Ratchet; the bytes travel as
 * FILE_CHUNK frames, sealed once with the per-transfer key — on a direct link's bulk lane beside
 * the Noise session when the peer reads it (one AEAD pass per byte: files.md §2), else inside the
 * session (the relay, an older peer) —
 * flow-controlled by the receiver's FILE_ACKs (a window of `windowChunks` chunks, which also
 * bounds what waits in the data channel's buffer; the receiver enforces it — files.md §5 — so
 * what waits here for storage is bounded too), and resumed from the last stored chunk when a
 * new session comes up. The sender prepares the file once before the offer (the file hash and a
 * copy sealed under the per-transfer key, which the chunks are sent from and which outlives a
 * reload); the receiver hashes as it stores and offers the file only when the file hash matches.
 *
 * Called by the link controller (a frame of the files range, a new live session) and by the
 * messages step (a `file.*` message, inside the contact's `serial` chain); the engine facade
 * calls the user actions. Everything one transfer does runs in order on that transfer.
 */
import { equalBytes, wipe } from "../../../../core/bytes.ts";
import { type ContactId, EngineRefusal, FileUnavailable } from "../api.ts";
import {
  type EngineContext,
  emit,
  type Live,
  type Peer,
  providerOf,
  serial,
  settledWithin,
} from "../context.ts";
import { ratchetCanSend, sendApp } from "../peer-ratchet.ts";
import { sendByMailbox } from "../queues.ts";
import type { BulkLane } from "../transport.ts";
import { SealedFileStore, StoreClosed } from "./sealed-records.ts";
import {
  type CheckedChunks,
  type FileStore,
  type FileTransfer,
  MemoryFileStore,
  transferKey,
} from "./store.ts";
import {
  AEAD_TAG_BYTES,
  type ChunkCipher,
  type ChunkExpectation,
  checkChunk,
  chunkCipher,
  chunkCount,
  chunkHeaderBytes,
  chunkPlainBytes,
  decodeBulkFrame,
  decodeFileFrame,
  encodeAckFrame,
  encodeChunkFrameInto,
  encodeChunkHeader,
  FILE_CHUNK_BYTES,
  FILE_KEY_BYTES,
  type FileAppMessage,
  type FileChunkFrame,
  type FileChunkHeader,
  type FileFailReason,
  FileHasher,
  type FileOffer,
  type FilePart,
  headerBytesOf,
  LANE_CHUNK_BYTES,
  MAILBOX_PART_BYTES,
  MAX_CHUNK_PARTS,
  MAX_FILE_BYTES,
  MAX_FILE_NAME_CHARS,
  MAX_FILE_TYPE_CHARS,
  MAX_THUMB_BYTES,
  mailboxParts,
  openChunk,
  validChunking,
} from "./wire.ts";
import {
  cancelledThere,
  declinedThere,
  failedHere,
  failedThere,
  receivingStopped,
  refused,
  sendingStopped,
  stoppedThere,
} from "./words.ts";

/**
 * Bytes the sender may have beyond the receiver's last ACK (files.md §5): the window is counted
 * in chunks of the transfer's size (`windowChunks`), so it stays ≈ 4 MiB in flight — far under the
 * 16 MiB at which Chromium closes a data channel — whatever the chunk size.
 */
const WINDOW_BYTES = 4 * 1024 * 1024;
/** The window of a transfer of the default chunk size (files.md §5: 64), and of any smaller one. */
export const WINDOW_CHUNKS = Math.floor(WINDOW_BYTES / FILE_CHUNK_BYTES);
/**
 * Chunks of `cs` bytes the sender may have beyond the receiver's last ACK: 64 of the default size,
 * 16 of 255 KiB — never more than 64: an offer's `cs` decodes from 1 on (files.md §1), and what
 * the receiver takes and opens at once is per chunk (an opening, a digest, a pending entry), so a
 * contact offering small chunks gets no more of them in flight than the default allows.
 */
export const windowChunks = (cs: number): number =>
  Math.min(WINDOW_CHUNKS, Math.max(1, Math.floor(WINDOW_BYTES / cs)));
/**
 * Bytes handled at once (≈ 1 MiB): one `Blob.slice` read while preparing, sealed and digested
 * concurrently and stored in one transaction; one store read while sending, the next block read
 * while this one goes out. In chunks of the transfer's size (`blockChunks`: 16 of the default, 4
 * of 255 KiB).
 */
const READ_BLOCK_BYTES = 1024 * 1024;
/** At most the default's 16: a block's chunks are opened at once (`#rebuild`), as the window's are. */
const blockChunks = (cs: number): number =>
  Math.min(Math.floor(READ_BLOCK_BYTES / FILE_CHUNK_BYTES), Math.max(1, Math.floor(READ_BLOCK_BYTES / cs)));
/**
 * Blocks the sender has read and sealed ahead of the one going out: with it, the window's worth
 * (window / block = 4 blocks, ≈ 4 MiB) — never more than the window lets out.
 */
const readAheadBlocks = (cs: number): number =>
  Math.max(1, Math.floor(windowChunks(cs) / blockChunks(cs)) - 1);
/**
 * The receiver stores its resume point (`next`) every window's worth of chunks and at every state
 * change (files.md §5) — tied to the window, not a number of its own: after a reload the sender
 * is asked for at most one window again, which is what it may have had in flight anyway, and a
 * window never passes without the point saved once (one sealed record write and one transaction
 * per window, not per ACK).
 */
const nextSavedEvery = windowChunks;
/** A transfer's chunk size (files.md §2): the offer's, or the default when it named none. */
const csOf = (t: Pick<FileTransfer, "cs">): number => t.cs ?? FILE_CHUNK_BYTES;
/** The sealed bytes of a full chunk of `t`: what one slot of its store holds (files.md §6). */
const sealedOf = (t: Pick<FileTransfer, "cs">): number => csOf(t) + AEAD_TAG_BYTES;
/** Offers from one contact that may wait on the user or run at once; more are declined "busy". */
export const MAX_OPEN_INCOMING = 16;
/** Progress events at most this often per transfer (state changes always). */
const PROGRESS_EVERY_MS = 100;
/** A received file is reassembled into its Blob this many bytes at a time. */
const BLOB_BATCH_BYTES = 8 * 1024 * 1024;

const FINAL = new Set(["done", "failed", "declined", "cancelled"]);
const secretName = (key: string) => `file/${key}`;
/**
 * `stop` waits this long at most for the store's calls under way (a chunk batch, a record): below
 * what Delete identity waits for a file still held (app/device-files.ts), so a stopped engine's
 * last write has ended before the folder is removed (docs/protocol/files.md §6).
 */
export const STOP_WAIT_MS = 4_000;
/** Logged once what a `stop` cut short at its bound (chains, preparing, saves, store calls) ended. */
export const STOP_CUT_SHORT_ENDED = "files: what the stop cut short has ended";

/**
 * Files being prepared (read, sealed, stored: `#prepare`) when their engine stopped, by the store
 * they went into (`FileTransfers.#backing`: the store object itself) and their sealed copy's key.
 * The file a person picked lives only in this page: an engine started next on the same store in
 * this page — a new username (app/model.ts `changeUsername`) — takes them over and prepares them
 * again from the start (`#load`), instead of failing them as a reload does. An engine given no
 * store keeps its own memory store, which no later engine shares: what it parks is found by none.
 */
const handedOver = new WeakMap<FileStore, Map<string, Blob>>();

interface Moving {
  t: FileTransfer;
  key: Uint8Array;
  /** The chunk AEAD under `key`, imported once (`#cipher`). */
  cipher?: Promise<ChunkCipher>;
  lastEmit: number;
  /** Speed: bytes and time at the last sample. */
  sampleAt: number;
  sampleBytes: number;
}

interface Outgoing extends Moving {
  /** The file picked in this page (gone after a reload: the sealed copy in the store serves). */
  blob?: Blob;
  /**
   * Where the sealed copy and the per-transfer key are kept: the transfer's own key for a contact;
   * for a room, one copy for all its members' transfers (`roomCopyKey`), deleted with the last.
   */
  copy: string;
  /** Bumped on every (re)start of the chunk pump: an older pump stops. */
  generation: number;
  /** The pump waits here for an ACK (or a stop). */
  wake?: () => void;
  /**
   * What carries this transfer's chunks on `live`: its bulk lane, or the session itself. Chosen
   * at the first pump on a session and kept for every later pump on it — the lane and the session
   * are separate streams, so chunks split between them could overtake each other (§4: out of order).
   */
  via?: { live: FileLive; lane: BulkLane | undefined };
}

interface Incoming extends Moving {
  hasher?: FileHasher;
  /**
   * The rehash under way after a reload (`#rehash`): one per transfer, shared by every caller —
   * two resumes, or a resume and the mailbox path, at once.
   */
  rehashing?: Promise<void>;
  /** Chunks opened (the next index taken); `t.next` counts those stored. */
  taken: number;
  /**
   * The `next` this end last told the sender (a FILE_ACK, or `file.accept`'s `from`): a live
   * chunk at or beyond `acked + windowChunks` is one the sender could not have been allowed to
   * send — refused, and the transfer ends (docs/protocol/files.md §5, "The window is enforced").
   */
  acked: number;
  /** Opened chunks waiting to be stored: the next store takes them all in one transaction. */
  pending: Taken[];
  /** Stores run one at a time, in order, while the next chunks are opened. */
  chain: Promise<void>;
  /** Takes run one at a time: the live and the mailbox path may bring one chunk at once (§9). */
  takes: Promise<void>;
  /** The store opens and digests each batch (`putOpened`); else each chunk is opened as taken. Known at the first take. */
  storeOpens?: boolean;
  /** Slices of the chunk coming through the relay mailbox (§9), until it is whole. */
  parts?: { index: number; n: number; got: Uint8Array[] };
}

/** A chunk taken by the receiver: its frame to store, its opening and digest under way. */
interface Taken {
  chunk: FileChunkFrame;
  /**
   * The plaintext's digest once the chunk opened; undefined once settled: it did not open
   * (`damaged`). Absent: the store opens and digests it as it stores it (`putOpened`).
   */
  digest?: Promise<Uint8Array | undefined>;
  /** The session it came on (undefined: the relay mailbox): the batch's ACK goes there. */
  live: FileLive | undefined;
}

/** What the transfers read of the engine. */
export type FilesContext = Pick<
  EngineContext,
  "cfg" | "storage" | "listeners" | "peers" | "stopped" | "pool"
>;

/**
 * Mailbox bodies of the contact's queue left for other messages while a file is in it (the file
 * may take the relay's per-queue quota less these): chat sent meanwhile still fits.
 */
export const MAILBOX_RESERVE = 32;
/**
 * The largest file a receiver takes from its mailbox without an accept (§9): the sender sizes
 * what it deposits by the relay's quota (default 128 bodies: ≈ 0.7 MiB); this bounds what a
 * contact can put on this device unasked, whatever a relay allows.
 */
export const MAX_MAILBOX_FILE_BYTES = 16 * 1024 * 1024;

/** A contact's relay mailbox for a file (§9). */
export interface FileMailbox {
  /** Mailbox bodies a file may take now (the relay's queue quota less `MAILBOX_RESERVE`). */
  bodies: number;
  /** Seal one message with the contact's ratchet and SEND it into its mailbox; false if it did not go. */
  deposit(m: FileAppMessage): Promise<boolean>;
}

/**
 * The other end of a transfer: a contact (its Double Ratchet carries the `file.*` messages, its
 * live session the frames), or one member of a room (its member session carries both:
 * docs/protocol/files.md §8). Transfers are keyed by `id`, so each member of a room has its own.
 */
export interface FilePeer {
  /** `FileTransfer.contactId`: the contact's id, or `roomPeerId(room, member)`. */
  readonly id: string;
  readonly name: string;
  /** Room members: the room (id hex) and the member (identity key hex). */
  readonly room?: { room: string; member: string };
  /** The live session the chunks go on (possibly closed: see `liveOf`); the same object per session. */
  live(): FileLive | undefined;
  /** Whether an offer can go now (a live session, and for a contact a ratchet that can send). */
  ready(): boolean;
  /** Send a control message now; false when it cannot go (it is then held for the next session). */
  tell(m: FileAppMessage): Promise<boolean>;
  /** Files can no longer be sent (a blocked contact). */
  readonly blocked?: boolean;
  /** A contact with no live session whose relay mailbox we know (§9); undefined otherwise. */
  mailbox?(): Promise<FileMailbox | undefined>;
}

/** What the transfers use of a live session (`bulk`: its claimed bulk lane, direct contacts only). */
export type FileLive = Pick<Live, "session" | "drain" | "bulk">;

/** Room members as transfer ends (files/room-files.ts); set by the engine when it has rooms. */
export interface RoomFilePeers {
  peer(room: string, member: string): FilePeer | undefined;
}

/** `FileTransfer.contactId` of a room member's transfers (`:` never occurs in a contact id). */
export const roomPeerId = (room: string, member: string): string => `room:${room}:${member}`;
/** Where a room file's one sealed copy and key are kept (never a transfer's key: no member). */
const roomCopyKey = (room: string, id: number): string => `room:${room}/out/${id}`;

/** The default size limit (docs/protocol/files.md §7); `EngineConfig.maxFileBytes` changes it. */
export const DEFAULT_MAX_FILE_BYTES = 2 * 1024 * 1024 * 1024;

export class FileTransfers {
  readonly #ctx: FilesContext;
  readonly #store: SealedFileStore;
  /**
   * The store under `#store`, as given (`cfg.fileStore`) or made here: the key of `handedOver`,
   * so an engine finds only what an engine on this very store parked.
   */
  readonly #backing: FileStore;
  readonly #maxBytes: number;
  readonly #out = new Map<string, Outgoing>();
  readonly #in = new Map<string, Incoming>();
  /** Records of every transfer (loaded once from the store). */
  readonly #all = new Map<string, FileTransfer>();
  /** Control messages that found no live session: sent on the contact's next one. */
  readonly #unsent = new Map<ContactId, FileAppMessage[]>();
  /**
   * How many times each contact (its id) or room (`room:` + its id) was forgotten this run: a
   * `#tell` that fails after its end was forgotten holds nothing (`#heldFor`).
   */
  readonly #forgotten = new Map<string, number>();
  #loaded: Promise<void> | undefined;
  /**
   * Blocks of FILE_CHUNK frames read from a room file's sealed copy, shared by its members' pumps:
   * the transfer id, key and chunks are the same for every member, so the frames are too, and
   * members in step read each block once.
   */
  readonly #blocks = new Map<string, Promise<OutFrame[]>>();
  /** Room members as transfer ends (set by the engine when it runs rooms). */
  rooms: RoomFilePeers | undefined;
  /** `stop` was called: nothing more is prepared, stored or sent. */
  #stopped = false;
  /** The first `stop` under way or ended: a later call gets its end (engine.ts `stop` does too). */
  #stopping: Promise<boolean> | undefined;
  /** Files being prepared, by sealed copy: the picked file, and the preparation's end. */
  readonly #preparing = new Map<string, { blob: Blob; done: Promise<unknown> }>();

  /** Whether a contact is stored (undefined: it could not be told): `#withoutDeletedContacts`. */
  readonly #stored: ((contactId: ContactId) => Promise<boolean | undefined>) | undefined;

  /**
   * The store and the size limit come from the engine's configuration (`fileStore`, `maxFileBytes`).
   * `stored` says whether a contact is still stored; with it, the transfers of one surely deleted
   * are forgotten when the stored ones are first read (`#withoutDeletedContacts`). The engine
   * passes it; a FileTransfers used alone, with no contact list, keeps every transfer it finds.
   */
  constructor(ctx: FilesContext, stored?: (contactId: ContactId) => Promise<boolean | undefined>) {
    this.#ctx = ctx;
    this.#stored = stored;
    this.#backing = ctx.cfg.fileStore ?? new MemoryFileStore();
    this.#store = new SealedFileStore(this.#backing, providerOf(ctx), ctx.storage);
    this.#maxBytes = Math.min(ctx.cfg.maxFileBytes || DEFAULT_MAX_FILE_BYTES, MAX_FILE_BYTES);
  }

  /** Load stored transfers once; what was moving when the page went away is settled here. */
  #load(): Promise<void> {
    this.#loaded ??= (async () => {
      const listed = await this.#store.listTransfers();
      const { clear, unreadable } = listed;
      const transfers = await this.#withoutDeletedContacts(listed.transfers);
      const resumed = new Map<string, { blob: Blob; group: Outgoing[] }>();
      if (unreadable > 0)
        this.#ctx.cfg.log(`files: skipped ${unreadable} transfer record(s) that do not open`);
      for (const t of transfers) {
        this.#all.set(t.key, t);
        // Written in clear by an earlier version: sealed now (the rest below may write it again).
        if (clear.has(t.key)) await this.#store.putTransfer(t);
        if (FINAL.has(t.state)) continue;
        if (t.direction === "out") {
          // The sealed copy made before the offer is in the store: the transfer goes on from
          // there — unless the page went away while that copy was being made.
          const copy = t.copy ?? t.key;
          // A file the engine before this one in this page was preparing: prepared again here.
          const blob = t.state === "hashing" ? handedOver.get(this.#backing)?.get(copy) : undefined;
          const key =
            t.state === "hashing" && !blob ? undefined : await this.#ctx.storage.loadSecret(secretName(copy));
          if (!key) {
            await this.#settle(t, "failed", sendingStopped.reloaded(t.name));
            this.#forgetSentCopy(copy);
            continue;
          }
          if (blob) {
            const o: Outgoing = { ...moving(t, key), blob, generation: 0, copy };
            this.#out.set(t.key, o);
            const group = resumed.get(copy)?.group ?? [];
            group.push(o);
            resumed.set(copy, { blob, group });
            continue;
          }
          // A mailbox deposit cut short goes on live (the receiver drops what it has as replays);
          // one completed waits for the receiver's answer.
          if (t.state === "relaying") t.state = "queued";
          else if (t.state !== "offered" && t.state !== "queued" && t.state !== "relayed")
            t.state = "waiting";
          t.speed = 0;
          this.#out.set(t.key, { ...moving(t, key), generation: 0, copy });
        } else {
          const key = await this.#ctx.storage.loadSecret(secretName(t.key));
          if (!key) {
            await this.#settle(t, "failed", receivingStopped.keyGone(t.name));
            continue;
          }
          // An offer not yet answered stays offered, and held as at its arrival (`#onOffer`): before,
          // it was left out here, so after a reload Accept and Decline did nothing and the sender's
          // cancel or `file.fail` found nothing to end — the offer stayed on screen for good.
          if (t.state !== "offered") t.state = "waiting";
          t.speed = 0;
          this.#in.set(t.key, incoming(t, key, t.next));
        }
      }
      for (const [copy, { blob, group }] of resumed) {
        handedOver.get(this.#backing)?.delete(copy);
        void this.#prepareAndOffer(group, blob).catch((e: Error) =>
          this.#ctx.cfg.log(`files: preparing a file handed over failed: ${e.name}`),
        );
      }
    })();
    return this.#loaded;
  }

  /**
   * The engine stops (engine.ts `stop`, before the store lets go of its files: files.md §6):
   * preparing stops at the next block, no more chunks are stored or sent, and the store's calls
   * under way end — waited for up to `boundMs` — before the store refuses every later one. Each
   * incoming transfer's resume point is saved as it stands (files.md §5, Resume). Files being
   * prepared are handed over to an engine started next in this page on the same store
   * (`handedOver`: a new username); the rest resume from the records as after a reload. Every
   * step, the resume points' saves too, ends within `boundMs`: the store is closed by then, so
   * nothing writes once the caller lets go of the files. True when everything ended within it.
   * Once: a call made while a stop runs gets that stop's end, not `true` at once while its store
   * calls are still under way (a caller that lets go of the files next would do so too early).
   */
  stop(boundMs = STOP_WAIT_MS): Promise<boolean> {
    this.#stopping ??= this.#stop(boundMs);
    return this.#stopping;
  }

  async #stop(boundMs: number): Promise<boolean> {
    this.#stopped = true;
    const until = Date.now() + boundMs;
    for (const o of this.#out.values()) o.wake?.(); // a pump waiting for an ACK sees the stop
    if (this.#preparing.size > 0) {
      const parked = handedOver.get(this.#backing) ?? new Map<string, Blob>();
      for (const [copy, { blob }] of this.#preparing) parked.set(copy, blob);
      handedOver.set(this.#backing, parked);
    }
    const underWay = Promise.allSettled([
      ...[...this.#in.values()].map((i) => i.chain),
      ...[...this.#preparing.values()].map((p) => p.done),
    ]);
    const ended = await settledWithin(underWay, boundMs);
    // Where each incoming transfer is now (its last batch stored): the next engine, or the next
    // page, asks the sender from there. Within the same bound: a save still to come when it runs
    // out is refused by the closed store (the resume point saved during the transfer stands: a
    // reload asks again for at most `nextSavedEvery` chunks), never written after the release.
    const saves = Promise.allSettled(
      [...this.#in.values()].filter((i) => !FINAL.has(i.t.state)).map((i) => this.#store.putTransfer(i.t)),
    );
    const saved = await settledWithin(saves, Math.max(0, until - Date.now()));
    const closed = await this.#store.close(Math.max(0, until - Date.now()));
    // What the bound cut short (a store that answers late) still ends some time after: said in
    // the log when it has, so that a stop that gave up can be told from one still at work (and a
    // test can wait for that end rather than for a fixed time).
    if (!(ended && saved && closed))
      void Promise.allSettled([underWay, saves, this.#store.closed()]).then(() =>
        this.#ctx.cfg.log(STOP_CUT_SHORT_ENDED),
      );
    return ended && saved && closed;
  }

  // ---- what the user does --------------------------------------------------------------------

  async list(contactId: ContactId): Promise<FileTransfer[]> {
    await this.#load();
    return [...this.#all.values()].filter((t) => t.contactId === contactId).map((t) => ({ ...t }));
  }

  /** Every transfer with members of the room, both ways. */
  async listRoom(room: string): Promise<FileTransfer[]> {
    await this.#load();
    return [...this.#all.values()].filter((t) => t.room === room).map((t) => ({ ...t }));
  }

  /**
   * Prepare the file — hash it and keep a sealed copy (so a reload of this page does not lose the
   * transfer) — then offer it over the live session, or leave it `queued` for the contact's next
   * session when it is not connected. Refuses a file over the limit, or a blocked or unknown contact.
   */
  async send(contactId: ContactId, blob: Blob, name: string, thumb?: Uint8Array): Promise<FileTransfer> {
    await this.#load();
    const peer = this.#ctx.peers.get(contactId);
    this.#checkSize(blob);
    if (!peer) throw refusal(refused.unknown());
    if (peer.blocked) throw refusal(refused.blocked(peer.name));
    const [t] = await this.#sendTo([this.#contact(peer)], blob, name, thumb);
    return t as FileTransfer;
  }

  /**
   * Send one file to members of a room (docs/protocol/files.md §8): the file is read, hashed and
   * sealed once — one transfer id, key and sealed copy for all — and each member gets its own
   * transfer (offer, progress, cancel) over its member session; a member who is away gets the
   * offer when its session is back (`queued`).
   */
  async sendToRoom(
    room: string,
    members: readonly string[],
    blob: Blob,
    name: string,
    thumb?: Uint8Array,
  ): Promise<FileTransfer[]> {
    await this.#load();
    this.#checkSize(blob);
    const peers = members.flatMap((m) => this.rooms?.peer(room, m) ?? []);
    if (peers.length === 0) throw refusal(refused.emptyRoom());
    return this.#sendTo(peers, blob, name, thumb, room);
  }

  /**
   * Wait, at most `laneAnswerMs`, until the bulk lane of every end live on a direct link has said
   * which chunks its peer takes (files.md §2, "The chunk size"): the lane answers one round trip
   * after both ends claimed it, so a file picked right as a session comes up would otherwise go
   * in 64 KiB chunks for good — every resume, on any path, keeps the size chosen now. A file of
   * one chunk at the default size waits for nothing (it is one chunk either way); an end away, on
   * the relay or without a lane neither (nothing to wait for). A peer of an older version never
   * answers: its bound is what such a file waits.
   */
  async #laneAnswers(peers: readonly FilePeer[], size: number): Promise<void> {
    if (size <= FILE_CHUNK_BYTES) return;
    const waits = peers.flatMap((peer) => {
      const lane = peer.ready() ? liveOf(peer)?.bulk : undefined;
      return lane && lane.state !== "closed" && lane.peerChunkBytes === undefined ? [lane.answered()] : [];
    });
    if (waits.length === 0) return;
    this.#ctx.cfg.log(`files: waiting for ${waits.length} bulk lane(s) to say which chunks they take`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(waits),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#ctx.cfg.laneAnswerMs);
      }),
    ]);
    clearTimeout(timer);
  }

  #checkSize(blob: Blob): void {
    if (blob.size > this.#maxBytes) throw refusal(refused.tooLarge(mib(blob.size), mib(this.#maxBytes)));
  }

  /** One file to one or more ends, prepared once (one key, one id, one sealed copy). */
  async #sendTo(
    peers: FilePeer[],
    blob: Blob,
    name: string,
    thumb: Uint8Array | undefined,
    room?: string,
  ): Promise<FileTransfer[]> {
    const id = this.#freshId(peers.map((p) => p.id));
    const key = providerOf(this.#ctx).randomBytes(FILE_KEY_BYTES);
    const group = peers.map((peer): Outgoing => {
      const t: FileTransfer = {
        key: transferKey(peer.id, "out", id),
        contactId: peer.id,
        ...(peer.room ? { room: peer.room.room, member: peer.room.member, memberName: peer.name } : {}),
        ...(room !== undefined ? { copy: roomCopyKey(room, id) } : {}),
        direction: "out",
        id,
        name: cleanName(name),
        size: blob.size,
        type: blob.type.slice(0, MAX_FILE_TYPE_CHARS),
        hash: new Uint8Array(32),
        ...(thumb && thumb.length > 0 && thumb.length <= MAX_THUMB_BYTES ? { thumb: thumb.slice() } : {}),
        state: "hashing",
        next: 0,
        done: 0,
        speed: 0,
        at: Date.now(),
      };
      return { ...moving(t, key.slice()), blob, generation: 0, copy: t.copy ?? t.key };
    });
    wipe(key);
    const first = group[0];
    if (!first) return [];
    try {
      for (const o of group) {
        this.#out.set(o.t.key, o);
        await this.#save(o.t);
      }
      await this.#ctx.storage.saveSecret(secretName(first.copy), first.key);
    } catch (e) {
      // Refused (a full disk): the file is not sent, and nothing of it stays — before, its
      // transfers stayed in memory, `hashing` for good and listed in the chat, until a reload.
      for (const o of group) {
        this.#forgetOutgoing(o);
        this.#all.delete(o.t.key);
        await this.#store.deleteTransfer(o.t.key).catch(() => undefined);
      }
      throw e;
    }
    return this.#prepareAndOffer(group, blob, peers);
  }

  /**
   * The chunk size of a new file's `group` (files.md §2, "The chunk size"), chosen once the lanes
   * of `peers` answered or their bound passed (`#laneAnswers`), and stored with the transfers —
   * which are listed, "Preparing…", from the moment the file was picked: the wait is part of
   * preparing it, not a pause before anything shows.
   */
  async #chooseChunks(group: Outgoing[], peers: readonly FilePeer[], size: number): Promise<void> {
    await this.#laneAnswers(peers, size);
    const { cs, why } = chunkSizeFor(peers, size);
    this.#ctx.cfg.log(`files: preparing a file in chunks of ${cs} bytes: ${why}`);
    if (cs === FILE_CHUNK_BYTES) return;
    for (const o of group) {
      if (o.t.state !== "hashing") continue; // cancelled meanwhile
      o.t.cs = cs;
      await this.#save(o.t);
    }
  }

  /**
   * Prepare the file (`#prepare`) — a new one (`choose`: its ends) once its chunk size is chosen
   * (`#chooseChunks`) — then offer it to each end of `group` — live, through the relay mailbox,
   * or `queued` for the next session. A stop meanwhile leaves the transfers `hashing` (handed
   * over: `stop`).
   */
  async #prepareAndOffer(
    group: Outgoing[],
    blob: Blob,
    choose?: readonly FilePeer[],
  ): Promise<FileTransfer[]> {
    const first = group[0];
    if (!first) return [];
    const hashing = () => group.filter((o) => o.t.state === "hashing");
    const preparing = { blob, done: Promise.resolve() as Promise<unknown> };
    try {
      const hash = (async () => {
        if (choose) await this.#chooseChunks(group, choose, blob.size);
        return this.#prepare(group, blob);
      })();
      preparing.done = hash.catch(() => {});
      this.#preparing.set(first.copy, preparing);
      const done = await hash;
      for (const o of group) o.t.hash = done.slice();
    } catch (e) {
      if (this.#stopped) return group.map((o) => ({ ...o.t }));
      this.#ctx.cfg.log(`files: preparing a file failed: ${(e as Error).name}`);
      for (const o of hashing()) {
        await this.#settle(o.t, "failed", sendingStopped.unreadable(o.t.name));
        this.#forgetOutgoing(o);
      }
      return group.map((o) => ({ ...o.t }));
    } finally {
      if (this.#preparing.get(first.copy) === preparing) this.#preparing.delete(first.copy);
    }
    if (this.#stopped) return group.map((o) => ({ ...o.t })); // stopped as it ended: handed over
    if (hashing().length === 0) {
      await this.#store.deleteChunks(first.copy); // cancelled meanwhile: a block stored since goes too
      return group.map((o) => ({ ...o.t }));
    }
    for (const o of hashing()) {
      const peer = this.#peerOf(o.t);
      if (!peer?.ready()) {
        // Through the contact's relay mailbox when it fits (§9); else the offer waits for the
        // contact's next session (`up`), across reloads of this page too (the sealed copy and the
        // record are stored).
        if (peer && (await this.#viaMailbox(peer, o))) continue;
        o.t.state = "queued";
        await this.#save(o.t);
        continue;
      }
      o.t.state = "offered";
      await this.#save(o.t);
      await this.#tell(peer, offerOf(o));
    }
    return group.map((o) => ({ ...o.t }));
  }

  async accept(key: string): Promise<void> {
    await this.#load();
    const i = this.#in.get(key);
    if (i?.t.state !== "offered") return;
    i.t.state = "waiting";
    await this.#save(i.t);
    const peer = this.#peerOf(i.t);
    if (peer && liveOf(peer)) await this.#resumeIncoming(peer, i);
  }

  async decline(key: string): Promise<void> {
    await this.#load();
    const i = this.#in.get(key);
    if (i?.t.state !== "offered") return;
    await this.#dropIncoming(i, "declined");
    const peer = this.#peerOf(i.t);
    if (peer) await this.#tell(peer, { t: "file.decline", id: i.t.id, r: "declined" });
  }

  async cancel(key: string): Promise<void> {
    await this.#load();
    const t = this.#all.get(key);
    if (!t || FINAL.has(t.state)) return;
    const peer = this.#peerOf(t);
    if (t.direction === "out") {
      const o = this.#out.get(key);
      await this.#settle(t, "cancelled");
      if (o) this.#forgetOutgoing(o);
    } else {
      const i = this.#in.get(key);
      if (i) await this.#dropIncoming(i, "cancelled");
    }
    if (peer) await this.#tell(peer, { t: "file.cancel", id: t.id, own: t.direction === "out" });
  }

  /**
   * `transfers` without those of contacts no longer stored, which are deleted here: a contact's
   * record goes before its files (engine.ts `changeContact`, "delete": a deletion the storage
   * refuses keeps both), so a failure while forgetting them left records nothing shows or reaches
   * any more. A room member's transfers are the room's (`forgetRoom`); a contact that could not be
   * told (its record does not read) is kept, files and all — only one surely gone is forgotten.
   */
  async #withoutDeletedContacts(transfers: FileTransfer[]): Promise<FileTransfer[]> {
    const stored = this.#stored;
    if (!stored) return transfers;
    const gone = new Set<string>();
    for (const id of new Set(transfers.filter((t) => t.room === undefined).map((t) => t.contactId)))
      if ((await stored(id)) === false) gone.add(id);
    if (gone.size === 0) return transfers;
    const kept: FileTransfer[] = [];
    for (const t of transfers) {
      if (t.room !== undefined || !gone.has(t.contactId)) kept.push(t);
      else
        await this.#deleteStored(t).catch((e: unknown) =>
          this.#ctx.cfg.log(`files: a deleted contact's transfer is still stored: ${(e as Error).name}`),
        );
    }
    this.#ctx.cfg.log(`files: forgot the transfers of ${gone.size} deleted contact(s)`);
    return kept;
  }

  /** A transfer's record, chunks and key, from storage. */
  async #deleteStored(t: FileTransfer): Promise<void> {
    await this.#store.deleteTransfer(t.key);
    await this.#ctx.storage.deleteSecret(secretName(t.key));
  }

  /** The contact was deleted: its transfers stop, their records, chunks and keys go. */
  async forget(contactId: ContactId): Promise<void> {
    this.#bump(contactId);
    await this.#forgetWhere((t) => t.contactId === contactId);
    this.#unsent.delete(contactId);
  }

  /**
   * We left the room: its transfers stop, their records, chunks and keys go — and what was held
   * for its members, whether or not a transfer record is left to name them.
   */
  async forgetRoom(room: string): Promise<void> {
    this.#bump(`room:${room}`);
    await this.#forgetWhere((t) => t.room === room);
    for (const id of [...this.#unsent.keys()])
      if (id.startsWith(roomPeerId(room, ""))) this.#unsent.delete(id);
  }

  #bump(end: string): void {
    this.#forgotten.set(end, (this.#forgotten.get(end) ?? 0) + 1);
  }

  /** The forgetting `#forgotten` counts for `peer`: its contact, or its room. */
  #endOf(peer: FilePeer): string {
    return peer.room ? `room:${peer.room.room}` : peer.id;
  }

  async #forgetWhere(which: (t: FileTransfer) => boolean): Promise<void> {
    await this.#load();
    for (const t of [...this.#all.values()]) {
      if (!which(t)) continue;
      const o = this.#out.get(t.key);
      if (o) {
        t.state = "cancelled";
        this.#forgetOutgoing(o);
      }
      const i = this.#in.get(t.key);
      if (i) wipe(i.key);
      this.#in.delete(t.key);
      this.#all.delete(t.key);
      await this.#store.deleteTransfer(t.key);
      await this.#ctx.storage.deleteSecret(secretName(t.key));
      this.#unsent.delete(t.contactId);
    }
  }

  /** The file's bytes: a received file after its hash matched, or one we are sending. */
  async blob(key: string): Promise<Blob | undefined> {
    await this.#load();
    const o = this.#out.get(key);
    if (o?.blob) return o.blob;
    const received = await this.#received(key);
    if (!received) return undefined;
    const { t, k } = received;
    try {
      // Built in batches of ≈ 8 MiB: the page never holds the whole file as arrays (the browser
      // keeps a large Blob's bytes in its own storage, on disk when it must).
      let out = new Blob([], { type: t.type });
      let parts: Uint8Array<ArrayBuffer>[] = [];
      let batched = 0;
      for (let index = 0; index < chunkCount(t.size, csOf(t)); index++) {
        const plain = await this.#openStored(t, k, index);
        if (!plain) return undefined;
        parts.push(plain);
        batched += plain.length;
        if (batched >= BLOB_BATCH_BYTES) {
          out = new Blob([out, ...parts], { type: t.type });
          parts = [];
          batched = 0;
        }
      }
      return new Blob([out, ...parts], { type: t.type });
    } finally {
      wipe(k);
    }
  }

  /**
   * A received file (hash matched) as a stream of its plaintext, opened one chunk at a time as the
   * reader pulls: saving it to disk (ui/save-file.ts) never holds the whole file in memory.
   */
  async stream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    const received = await this.#received(key);
    if (!received) return undefined;
    const { t, k } = received;
    const total = chunkCount(t.size, csOf(t));
    let index = 0;
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          if (index >= total) {
            wipe(k);
            controller.close();
            return;
          }
          const plain = await this.#openStored(t, k, index++);
          if (!plain) {
            wipe(k);
            controller.error(new FileUnavailable(receivingStopped.incomplete(t.name)));
            return;
          }
          if (plain.length > 0) controller.enqueue(plain);
        },
        cancel: () => wipe(k),
      },
      { highWaterMark: 1 },
    );
  }

  /** A received file whose hash matched, with its per-transfer key (the caller wipes it). */
  async #received(key: string): Promise<{ t: FileTransfer; k: Uint8Array } | undefined> {
    await this.#load();
    const t = this.#all.get(key);
    if (t?.direction !== "in" || t.state !== "done") return undefined;
    const k = await this.#ctx.storage.loadSecret(secretName(key));
    return k && { t, k };
  }

  // ---- what the contact does -----------------------------------------------------------------

  /** A `file.*` message from the contact (inside its serial chain: replies are queued, not awaited). */
  onMessage(peer: Peer, m: FileAppMessage): Promise<void> {
    return this.message(this.#contact(peer), m);
  }

  /** A `file.*` message from a contact or a room member, in the order it came. */
  async message(peer: FilePeer, m: FileAppMessage): Promise<void> {
    await this.#load();
    switch (m.t) {
      case "file.offer":
        return this.#onOffer(peer, m);
      case "file.accept": {
        const o = this.#out.get(transferKey(peer.id, "out", m.id));
        if (!o) {
          // Not ours (any more): a page reload lost the file, or we cancelled.
          const t = this.#all.get(transferKey(peer.id, "out", m.id));
          if (t?.state !== "done") this.#later(peer, { t: "file.cancel", id: m.id, own: true });
          return;
        }
        if (FINAL.has(o.t.state) || m.from > chunkCount(o.t.size, csOf(o.t))) return;
        const live = liveOf(peer);
        if (live) this.#pump(o, live, m.from);
        return;
      }
      case "file.decline": {
        const o = this.#out.get(transferKey(peer.id, "out", m.id));
        if (!o || FINAL.has(o.t.state)) return;
        const why = m.r === "declined" ? undefined : declinedThere(peer.name, m.r);
        await this.#settle(o.t, "declined", why);
        this.#forgetOutgoing(o);
        return;
      }
      case "file.cancel": {
        const key = transferKey(peer.id, m.own ? "in" : "out", m.id);
        const t = this.#all.get(key);
        if (!t || FINAL.has(t.state)) return;
        const reason = cancelledThere(peer.name, m.own ? "in" : "out");
        if (m.own) {
          const i = this.#in.get(key);
          if (i) await this.#dropIncoming(i, "cancelled", reason);
        } else {
          const o = this.#out.get(key);
          await this.#settle(t, "cancelled", reason);
          if (o) this.#forgetOutgoing(o);
        }
        return;
      }
      case "file.fail": {
        if (m.r === "copy") {
          // The sender ended a transfer it sends (`own`): its copy could not give a chunk and the
          // file was no longer open there (files.md §1, §5). Said as that — not as something
          // changed on the way. Its `file.cancel` follows and finds the transfer ended.
          const i = this.#in.get(transferKey(peer.id, "in", m.id));
          if (i && !FINAL.has(i.t.state))
            await this.#dropIncoming(i, "failed", stoppedThere(peer.name, i.t.name));
          return;
        }
        // The receiver ended the transfer (files.md §1): the sender says why, in words. Its
        // `file.cancel` follows (for older senders) and finds the transfer ended.
        const o = this.#out.get(transferKey(peer.id, "out", m.id));
        if (!o || FINAL.has(o.t.state)) return;
        await this.#settle(o.t, "failed", failedThere(peer.name, o.t.name, m.r));
        this.#forgetOutgoing(o);
        return;
      }
      case "file.part":
        return this.#part(peer, m);
      case "file.done": {
        const o = this.#out.get(transferKey(peer.id, "out", m.id));
        if (!o || FINAL.has(o.t.state)) return;
        o.t.done = o.t.size;
        await this.#settle(
          o.t,
          m.ok ? "done" : "failed",
          m.ok ? undefined : failedThere(peer.name, o.t.name, "mismatch"),
        );
        this.#forgetOutgoing(o);
        return;
      }
    }
  }

  async #onOffer(peer: FilePeer, m: FileOffer): Promise<void> {
    const key = transferKey(peer.id, "in", m.id);
    if (this.#all.has(key)) return; // a repeated offer (sent again on a new session)
    const open = [...this.#in.values()].filter((i) => i.t.contactId === peer.id).length;
    // A chunk size above what this end takes, or one whose chunks a u16 cannot count (§2): declined
    // in words (`chunks`), never taken — the window and the store's slots are sized by it.
    const cs = m.cs ?? FILE_CHUNK_BYTES;
    const r =
      m.size > this.#maxBytes
        ? "too-large"
        : !validChunking(m.size, cs)
          ? "chunks"
          : open >= MAX_OPEN_INCOMING
            ? "busy"
            : undefined;
    if (r) {
      this.#later(peer, { t: "file.decline", id: m.id, r });
      return;
    }
    const t: FileTransfer = {
      key,
      contactId: peer.id,
      ...(peer.room ? { room: peer.room.room, member: peer.room.member, memberName: peer.name } : {}),
      direction: "in",
      id: m.id,
      name: cleanName(m.name),
      size: m.size,
      type: m.type,
      hash: m.hash,
      ...(m.thumb ? { thumb: m.thumb } : {}),
      ...(cs !== FILE_CHUNK_BYTES ? { cs } : {}),
      state: "offered",
      next: 0,
      done: 0,
      speed: 0,
      at: Date.now(),
    };
    await this.#ctx.storage.saveSecret(secretName(key), m.key);
    this.#in.set(key, incoming(t, m.key.slice(), 0));
    await this.#save(t);
  }

  /** A frame of the files range from the live session (read loop: one at a time, in order). */
  onFrame(peer: Peer, live: Live, bytes: Uint8Array): Promise<void> {
    return this.frame(this.#contact(peer), live, bytes);
  }

  /** A FILE_CHUNK or FILE_ACK from a contact's or a member's live session, one at a time, in order. */
  async frame(peer: FilePeer, live: FileLive, bytes: Uint8Array): Promise<void> {
    await this.#load();
    const frame = decodeFileFrame(bytes);
    if (!frame.ok) {
      live.session.close(frame.error.code, frame.error.detail);
      return;
    }
    if (frame.value.type === "ack") {
      const { id, next } = frame.value.ack;
      const o = this.#out.get(transferKey(peer.id, "out", id));
      if (o?.t.state !== "sending" || next <= o.t.next || next > chunkCount(o.t.size, csOf(o.t))) return;
      o.t.next = next;
      o.t.done = Math.min(o.t.size, next * csOf(o.t));
      this.#progress(o);
      o.wake?.();
      return;
    }
    const chunk = frame.value.chunk;
    const i = this.#in.get(transferKey(peer.id, "in", chunk.header.id));
    // A late chunk of a transfer cancelled, declined or finished meanwhile.
    if (i?.t.state !== "receiving") return;
    await this.#take(peer, i, chunk, live);
  }

  /** A frame from a contact's bulk lane (docs/protocol/files.md §2, "The bulk lane"), in order. */
  onBulk(peer: Peer, live: Live, bytes: Uint8Array): Promise<void> {
    return this.bulkFrame(this.#contact(peer), live, bytes);
  }

  /**
   * A frame from the bulk lane of the peer's live session: a FILE_CHUNK, taken by the same rule
   * as one inside the session (§4: only for a transfer we accepted and are receiving, each index
   * once and in order; a replay dropped quietly, anything else ends the transfer, reported).
   * A frame that does not decode is dropped with its typed error; when it names a transfer we
   * are receiving from this peer, that transfer ends as malformed (the session path closes the
   * whole session instead: the lane carries only chunks, so only the chunk's transfer is hurt).
   */
  async bulkFrame(peer: FilePeer, live: FileLive, bytes: Uint8Array): Promise<void> {
    await this.#load();
    const frame = decodeBulkFrame(bytes);
    if (!frame.ok) {
      this.#ctx.cfg.log(`files: dropped a bulk frame: ${frame.error.code}`);
      const id = bytes.length >= 5 ? new DataView(bytes.buffer, bytes.byteOffset).getUint32(1) : 0;
      const i = this.#in.get(transferKey(peer.id, "in", id));
      if (i?.t.state === "receiving") await this.#failIncoming(peer, i, "malformed");
      return;
    }
    const i = this.#in.get(transferKey(peer.id, "in", frame.value.header.id));
    if (i?.t.state !== "receiving") return; // not accepted, or ended meanwhile
    await this.#take(peer, i, frame.value, live);
  }

  /**
   * A slice of a sealed chunk from the relay mailbox (§9): a file small enough for the mailbox
   * is taken like a message, without an accept; its slices are put together and the chunk goes
   * the way of a live one (`#take`). A slice out of order is dropped (the live path resumes from
   * `next`); the relay's copy is acknowledged once the chunk is stored.
   */
  async #part(peer: FilePeer, m: FilePart): Promise<void> {
    const i = this.#in.get(transferKey(peer.id, "in", m.id));
    // Through the mailbox only chunks of the default size go (§9: a slice count of its own); a
    // sender never deposits another, so parts for such a transfer are ignored.
    if (!i || FINAL.has(i.t.state) || i.t.size > MAX_MAILBOX_FILE_BYTES || m.i < i.taken) return;
    if (csOf(i.t) !== FILE_CHUNK_BYTES) return;
    const p = i.parts;
    if (m.s === 0) i.parts = { index: m.i, n: m.n, got: [m.d] };
    else if (p?.index === m.i && p.n === m.n && p.got.length === m.s) p.got.push(m.d);
    else {
      i.parts = undefined;
      return;
    }
    const whole = i.parts;
    if (!whole || whole.got.length < whole.n) return;
    i.parts = undefined;
    if (i.t.state !== "receiving") {
      await this.#rehash(i);
      if (this.#in.get(i.t.key) !== i) return;
      i.t.state = "receiving";
      restartSpeed(i);
      await this.#save(i.t);
    }
    const sealed = new Uint8Array(whole.got.reduce((n, d) => n + d.length, 0));
    let at = 0;
    for (const d of whole.got) {
      sealed.set(d, at);
      at += d.length;
    }
    await this.#take(peer, i, { header: chunkHeader(i.t, m.i), sealed }, undefined);
    await i.chain; // stored before the relay's copy is acknowledged
  }

  /**
   * Take the next chunk of an accepted transfer (docs/protocol/files.md §4), live or from the
   * mailbox. The live read loop and the mailbox's serial chain feed one transfer at once: one take
   * at a time (a take that ends the transfer awaits its drop), so a chunk both paths bring is
   * checked after the first copy counted and dropped as a replay (files.md §9).
   */
  #take(peer: FilePeer, i: Incoming, chunk: FileChunkFrame, live: FileLive | undefined): Promise<void> {
    const turn = i.takes.then(async () => {
      // Asked once per transfer, before its first chunk (the store's answer is cached): whether
      // its store opens what it stores, or each chunk is opened here as it is taken (`#takeNow`).
      i.storeOpens ??= await this.#store.opensChunks();
      return this.#takeNow(peer, i, chunk, live);
    });
    i.takes = turn.catch(() => {});
    return turn;
  }

  async #takeNow(
    peer: FilePeer,
    i: Incoming,
    chunk: FileChunkFrame,
    live: FileLive | undefined,
  ): Promise<void> {
    // A live chunk whose session closed while it waited its turn (queued before the link
    // dropped): nothing can acknowledge it there, and the resume asks the sender from `next` on
    // the next session (files.md §5, Resume) — not opened, not stored, not counted.
    if (live && live.session.state === "closed") return;
    const expect: ChunkExpectation = { id: i.t.id, size: i.t.size, cs: csOf(i.t), next: i.taken };
    const checked = checkChunk(expect, chunk);
    if (!checked.ok) {
      if (checked.error.code === "LOFT_ERR_REPLAY") return;
      await this.#failIncoming(peer, i, "malformed");
      return;
    }
    // The window (files.md §5): a sender has at most `windowChunks` beyond the last `next` we
    // told it. One past that is a protocol violation, refused before anything of it is kept — so
    // what waits for storage (`pending` and the store running) never exceeds the window, however
    // fast a sender pushes and however slow this device stores. The mailbox path has no window
    // (§9): each of its chunks is stored before the next is read (`#part`).
    if (live && chunk.header.index >= i.acked + windowChunks(csOf(i.t))) {
      await this.#failIncoming(peer, i, "window");
      return;
    }
    i.hasher ??= new FileHasher();
    i.taken++;
    // Opened and its plaintext digested natively while this loop goes on to the next frames: the
    // chunks of a window are with the browser's crypto thread at once, instead of one round trip
    // there and back per chunk before the next frame is read — on a loaded machine each round
    // trip waits for two threads to be scheduled (bench/README.md, bench:files, session 14). The
    // store awaits them in order (`#storeTaken`): a chunk that does not open ends the transfer
    // as `damaged` before anything of its batch is stored, and nothing after it is stored either.
    // A store that opens what it stores (the OPFS store's worker: `putOpened`) does both there,
    // on another thread, batch by batch — the page then copies nothing into WebCrypto and holds
    // no plaintext (bench/README.md, bench:files, session 19).
    const digesting = i.storeOpens ? undefined : this.#opening(i, chunk);
    // Kept as it arrived, without a copy: a chunk's bytes are its own — a data channel message,
    // a decrypted session frame, or the mailbox slices put together (`#part`) — and nothing
    // writes them afterwards (the store copies what it keeps). A 64 KiB copy per chunk was a
    // share of the receiving page's main thread and garbage (bench:files profile).
    i.pending.push({ chunk, ...(digesting ? { digest: digesting } : {}), live });
    const last = i.taken === chunkCount(i.t.size, csOf(i.t));
    // One store waits in the chain at a time: it takes every chunk pushed until it runs, so a
    // chunk that finds others pending joins their store (one link per chunk left a link behind
    // per chunk with nothing to store, most of them on a fast store: bench/README.md, bench:files,
    // session 17).
    if (i.pending.length === 1)
      i.chain = i.chain
        .then(() => this.#storeTaken(i))
        .catch(async (e: unknown) => {
          i.pending.length = 0;
          if (this.#stopped || this.#in.get(i.t.key) !== i) return;
          if (e instanceof DamagedChunk) return this.#failIncoming(peer, i, "damaged");
          this.#ctx.cfg.log(`files: storing a chunk failed: ${(e as Error).name}`);
          // "May be full" only when it was the quota (files.md §7); the wire says `storage` either way.
          const full = (e as Error | undefined)?.name === "QuotaExceededError";
          await this.#failIncoming(peer, i, "storage", full);
        });
    if (!last) return;
    await i.chain;
    if (this.#stopped || this.#in.get(i.t.key) !== i || !i.hasher) return;
    const digest = i.hasher.digest();
    i.hasher = undefined;
    const good = equalBytes(digest, i.t.hash);
    if (good) {
      await this.#settle(i.t, "done");
      this.#in.delete(i.t.key);
    } else await this.#dropIncoming(i, "failed", failedHere(peer.name, i.t.name, "mismatch"));
    this.#later(peer, { t: "file.done", id: i.t.id, ok: good });
  }

  /**
   * Store the chunks taken since the last store (each once it opened: a chunk that did not ends
   * the transfer before anything of its batch is stored), in one transaction, then acknowledge them on
   * the session the newest live one came on (a batch may mix mailbox and live chunks: §9).
   */
  async #storeTaken(i: Incoming): Promise<void> {
    const batch = i.pending.splice(0);
    const live = batch.findLast((c) => c.live)?.live;
    const first = batch[0]?.chunk.header.index;
    // Stopped: not stored (the resume point stays before them: the sender is asked again).
    if (first === undefined || this.#stopped || this.#in.get(i.t.key) !== i || !i.hasher) return;
    const chunks = batch.map((c) => c.chunk);
    // Opened and stored by the store (its worker) when it can; else opened here (`#opening`,
    // under way since each was taken), then stored.
    const stored = batch.every((c) => !c.digest)
      ? await this.#store.putOpened(i.t.key, first, chunks, i.key, sealedOf(i.t))
      : undefined;
    if (typeof stored === "number") throw new DamagedChunk(); // nothing of the batch stored
    const opening = stored ? [] : batch.map((c) => c.digest ?? this.#opening(i, c.chunk));
    const digests: Uint8Array[] = [];
    for (const o of opening) {
      const d = await o;
      if (!d) throw new DamagedChunk();
      digests.push(d);
    }
    // Dropped while they opened (or while the store opened and stored them): nothing of it stays.
    if (this.#in.get(i.t.key) !== i) {
      if (stored) await this.#store.deleteChunks(i.t.key);
      return;
    }
    if (!i.hasher) return;
    for (const d of stored ?? digests) i.hasher.add(d);
    if (!stored)
      await this.#store.putChunks(
        i.t.key,
        first,
        chunks.map((c) => c.sealed),
        sealedOf(i.t),
      );
    if (this.#in.get(i.t.key) !== i) {
      await this.#store.deleteChunks(i.t.key); // dropped meanwhile: nothing of it stays
      return;
    }
    const before = i.t.next;
    i.t.next = first + batch.length;
    i.t.done = Math.min(i.t.size, i.t.next * csOf(i.t));
    // Not into a session whose link closed under it: the resume asks from `next` (files.md §5).
    if (live?.session.writable) {
      live.session.send(encodeAckFrame({ id: i.t.id, next: i.t.next }));
      i.acked = Math.max(i.acked, i.t.next);
    }
    if (i.t.next === chunkCount(i.t.size, csOf(i.t))) return;
    // The resume point survives a reload; writing it every window's worth of chunks is enough (a
    // reload re-requests at most that many, and each record write is a seal and a transaction).
    const every = nextSavedEvery(csOf(i.t));
    if (Math.floor(i.t.next / every) !== Math.floor(before / every)) await this.#store.putTransfer(i.t);
    this.#progress(i);
  }

  /** A new live session with the contact: held messages go, accepted incoming transfers resume. */
  sessionUp(peer: Peer, live: Live): void {
    this.up(this.#contact(peer), live);
  }

  /** A new live session with a contact or a room member: held messages go, transfers resume. */
  up(peer: FilePeer, live: FileLive): void {
    void (async () => {
      await this.#load();
      for (const m of this.#unsent.get(peer.id)?.splice(0) ?? []) this.#later(peer, m);
      // Offered again (a receiver that has it ignores the repeat); a file left in the mailbox
      // too (`relayed`): a receiver whose relay dropped it (TTL) gets the offer live (§9).
      const again = new Set(["offered", "queued", "relayed"]);
      for (const o of this.#out.values())
        if (o.t.contactId === peer.id && again.has(o.t.state)) {
          if (o.t.state === "queued") {
            o.t.state = "offered";
            delete o.t.reason; // why it waited (the mailbox: §9) is over
            await this.#save(o.t);
          }
          this.#later(peer, offerOf(o));
        }
      // All at once: each waits for its own chunks to be stored before it asks (a replaced
      // session delivering one file must not hold the others' resumes behind it).
      const resuming = [...this.#in.values()].filter(
        (i) => i.t.contactId === peer.id && (i.t.state === "waiting" || i.t.state === "receiving"),
      );
      const resumed = await Promise.allSettled(resuming.map((i) => this.#resumeIncoming(peer, i)));
      for (const r of resumed)
        if (r.status === "rejected")
          this.#ctx.cfg.log(`files: resume failed: ${(r.reason as Error).message}`);
      void live.session.closed.then(() => this.#paused(peer, live));
    })().catch((e) => this.#ctx.cfg.log(`files: resume failed: ${(e as Error).message}`));
  }

  /** The session ended: moving transfers wait for the next one. */
  #paused(peer: FilePeer, live: FileLive): void {
    const current = peer.live();
    if (current && current !== live) return;
    for (const m of [...this.#out.values(), ...this.#in.values()]) {
      if (m.t.contactId !== peer.id || (m.t.state !== "sending" && m.t.state !== "receiving")) continue;
      m.t.state = "waiting";
      m.t.speed = 0;
      delete m.t.eta;
      void this.#save(m.t);
      if ("wake" in m) m.wake?.();
    }
  }

  // ---- the moving parts ----------------------------------------------------------------------

  /** Ask for the rest of an accepted file: chunks from `next` on (docs/protocol/files.md §5). */
  async #resumeIncoming(peer: FilePeer, i: Incoming): Promise<void> {
    await i.chain; // what was taken is stored: the hash and `next` agree
    if (this.#in.get(i.t.key) !== i) return;
    await this.#rehash(i);
    // Chunks may be taken while this waits: a session that replaces a live one finds the
    // transfer still `receiving`, and the old session's frames (or the mailbox's) are taken
    // meanwhile. Wait until all taken is stored, so `from` = `next` = `taken`: setting `taken`
    // back to a `next` behind it would take those chunks again when the sender repeats them,
    // their digests twice in the file hash (files.md §5, Resume).
    while (i.taken !== i.t.next || i.pending.length > 0) {
      await i.takes;
      await i.chain;
      if (this.#in.get(i.t.key) !== i) return;
    }
    i.taken = i.t.next;
    // The sender starts over from `from` (its pump resets to it): the window counts from here.
    i.acked = i.t.next;
    i.t.state = "receiving";
    restartSpeed(i);
    await this.#save(i.t);
    this.#later(peer, { t: "file.accept", id: i.t.id, from: i.t.next });
  }

  /**
   * After a reload the running hash is gone: hash what is stored again — once, whoever asks. A
   * second rehash ending after the first one's caller took (and hashed) more chunks would set
   * `hasher` and `taken` back to what is stored: that chunk's digest lost from the file hash, and
   * the next chunk refused as out of order (files.md §5, Resume).
   */
  #rehash(i: Incoming): Promise<void> {
    if (i.hasher || i.t.next === 0) return Promise.resolve();
    i.rehashing ??= this.#rehashNow(i).finally(() => {
      i.rehashing = undefined;
    });
    return i.rehashing;
  }

  async #rehashNow(i: Incoming): Promise<void> {
    const h = new FileHasher();
    const crypto = providerOf(this.#ctx);
    let end = i.t.next;
    // A block of stored chunks per store read (one call to the store's worker, not one per
    // chunk: ≈ 8 000 fewer round trips for a half-received 1 GiB file; bench/README.md), opened
    // and digested concurrently, added in order. A missing chunk shifts the ones after it into
    // its place: each is opened under its position's header (files.md §3, the AAD), so the one
    // there does not open and marks the end just as the missing one would.
    const block = blockChunks(csOf(i.t));
    for (let first = 0; first < end; first += block) {
      const count = Math.min(block, end - first);
      const sealed = await this.#store.getChunks(i.t.key, first, count, sealedOf(i.t));
      const digests = await Promise.all(
        sealed.map(async (s, n) => {
          const plain = await openChunk(crypto, i.key, { header: chunkHeader(i.t, first + n), sealed: s });
          if (!plain.ok) return undefined;
          try {
            return await FileHasher.chunkDigest(crypto, plain.value);
          } finally {
            wipe(plain.value);
          }
        }),
      );
      const bad = digests.findIndex((d) => !d);
      const opened = bad < 0 ? digests.length : bad;
      for (const d of digests.slice(0, opened)) h.add(d as Uint8Array);
      if (opened < count) {
        end = first + opened;
        break;
      }
    }
    i.t.next = end;
    i.hasher = h;
    i.taken = i.t.next;
    i.t.done = Math.min(i.t.size, i.t.next * csOf(i.t));
  }

  async #openStored(
    t: FileTransfer,
    key: Uint8Array,
    index: number,
  ): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const sealed = await this.#store.getChunk(t.key, index, sealedOf(t));
    if (!sealed) return undefined;
    const plain = await openChunk(providerOf(this.#ctx), key, { header: chunkHeader(t, index), sealed });
    return plain.ok ? (plain.value as Uint8Array<ArrayBuffer>) : undefined;
  }

  /**
   * Send chunks from `from` while the receiver's ACKs leave room in the window; a newer pump (a
   * resume), a closed session or a final state stops it.
   */
  #pump(o: Outgoing, live: FileLive, from: number): void {
    const generation = ++o.generation;
    o.wake?.();
    o.t.state = "sending";
    o.t.next = from;
    const cs = csOf(o.t);
    o.t.done = Math.min(o.t.size, from * cs);
    restartSpeed(o);
    void this.#save(o.t);
    const total = chunkCount(o.t.size, cs);
    const window = windowChunks(cs);
    const block = blockChunks(cs);
    const readAhead = readAheadBlocks(cs);
    // The bulk lane when the peer reads it (one AEAD pass per byte: files.md §2), else the
    // session; the same one for every pump of this transfer on this session (`Outgoing.via`).
    if (o.via?.live !== live) o.via = { live, lane: live.bulk?.ready ? live.bulk : undefined };
    const lane = o.via.lane;
    this.#ctx.cfg.log(
      `files: sending from chunk ${from} ${lane ? "on the bulk lane" : "inside the session"}`,
    );
    // `writable`: a session whose link closed under it (its reader still draining) would drop
    // the chunks (core/session `dropped`); the receiver's resume asks for them (files.md §5).
    const running = () =>
      !this.#stopped &&
      o.generation === generation &&
      o.t.state === "sending" &&
      live.session.writable &&
      lane?.state !== "closed";
    void (async () => {
      // On the lane every frame is written into one buffer: the data channel's `send` copies it at
      // the call (web/src/net/bulk-lane.ts), so a 64 KiB frame per chunk is garbage the sending
      // page need not make. The session seals a frame later (its AEAD is async): a frame each.
      const scratch = lane ? new Uint8Array(chunkHeaderBytes(cs) + sealedOf(o.t)) : undefined;
      // Blocks read (and sealed) ahead while the one before goes out: up to the window's worth, so
      // an ACK that opens the whole window finds its chunks ready instead of one block and a read
      // (a round trip to the browser process and one to the crypto thread, each waiting for its
      // thread on a loaded machine) per 16 chunks after it.
      const ahead: Promise<OutFrame[]>[] = [];
      let reading = from;
      const readOn = () => {
        while (ahead.length < readAhead && reading < total && running()) {
          const frames = this.#readBlock(o, reading, total);
          frames.catch(() => {}); // observed when awaited
          ahead.push(frames);
          reading += Math.min(block, total - reading);
        }
      };
      readOn();
      for (let first = from; ahead.length > 0 && running(); ) {
        const frames: OutFrame[] = await (ahead.shift() as Promise<OutFrame[]>);
        readOn();
        const firstOfBlock = first;
        first += frames.length;
        for (const [n, frame] of frames.entries()) {
          const index = firstOfBlock + n;
          while (index - o.t.next >= window && running())
            await new Promise<void>((resolve) => {
              o.wake = resolve;
            });
          // The window bounds what is in flight; the data channel's own buffer is honoured too.
          await (lane ? lane.drain() : live.drain?.());
          if (!running()) break;
          // A room file's frames come encoded once for all its members (`#readBlock`): the lane's
          // `send` copies them as they are. Inside the session each member's Noise key seals its
          // own frame, so only the encoding is shared: `sendParts` copies header and sealed bytes
          // straight into the frame it seals (docs/protocol/files.md §8).
          if (lane && scratch) lane.send(frame.wire ?? encodeChunkFrameInto(scratch, frame));
          else
            live.session.sendParts(
              frame.wire ? [frame.wire] : [encodeChunkHeader(frame.header), frame.sealed],
              { bulk: true }, // behind chat, never ahead of it (docs/protocol/session.md §5)
            );
        }
        // The block's read buffer back to the store for a later read (store.ts `reuse`): each
        // frame was copied as it was sent — on the lane into `scratch`, inside the session by
        // `sendParts`, which copies its parts into the frame it queues at the call, in both its
        // branches (core/session/session.ts) — and a contact's block is this pump's alone; a
        // room's is shared by its members (`#blocks`). (A frame sent detached, `sendDetached`, is
        // read only as it is sealed, later: chunks sent that way could not be given back.) A new
        // buffer per block was new memory, a page fault per 4 KiB as the store's worker read into
        // it (bench/README.md, bench:files, sessions 21 and 22).
        if (o.copy === o.t.key)
          for (const b of new Set(frames.map((f) => f.sealed.buffer))) this.#store.reuse(b as ArrayBuffer);
      }
      // Said, not silent: what was in flight is the receiver's to ask for again (files.md §5).
      if (!live.session.writable && !this.#stopped && o.generation === generation && !FINAL.has(o.t.state))
        this.#ctx.cfg.log(`files: sending paused at chunk ${o.t.next}: the session can no longer send`);
    })().catch(async (e) => {
      this.#ctx.cfg.log(`files: sending stopped: ${(e as Error).name}`);
      if (this.#stopped || o.generation !== generation || FINAL.has(o.t.state)) return;
      if (live.session.state === "closed" || lane?.state === "closed") return; // resumes on the next session
      await this.#copyFailed(o, e instanceof CopyDamaged);
    });
  }

  /**
   * The sealed copy could not give a chunk and the picked file is not at hand (a reload): the
   * transfer fails here, in words that say it is this device's copy (`damaged`: a chunk that does
   * not open; else unreadable), and the receiver is told so — `file.fail` with `own`, then the
   * `file.cancel` an older receiver reads — not left to find a chunk that does not open and blame
   * the way (files.md §1, §5).
   */
  async #copyFailed(o: Outgoing, damaged: boolean): Promise<void> {
    const { name } = o.t;
    await this.#settle(o.t, "failed", (damaged ? sendingStopped.copyDamaged : sendingStopped.copyGone)(name));
    const peer = this.#peerOf(o.t);
    if (peer) {
      this.#later(peer, { t: "file.fail", id: o.t.id, own: true, r: "copy" });
      this.#later(peer, { t: "file.cancel", id: o.t.id, own: true });
    }
    this.#forgetOutgoing(o);
  }

  /**
   * Chunks `first`… (up to a block, `blockChunks`), header and sealed bytes: from the sealed copy
   * when the store reads it back cheaply (OPFS: one read in its worker per block, no `File` read
   * and no second seal — docs/protocol/files.md §5), and after a reload; else, while the page that
   * picked it lives, read from the `File` and sealed again (the same bytes as the copy: same key,
   * nonce, AAD and plaintext — a browser refuses to read a `File` changed on disk since it was
   * picked), as a native AES-GCM pass is cheaper than an IndexedDB read that competes with the
   * receiving side's writes.
   */
  async #readBlock(o: Outgoing, first: number, total: number): Promise<OutFrame[]> {
    const count = Math.min(blockChunks(csOf(o.t)), total - first);
    const { blob } = o;
    if (blob && o.copy === o.t.key) {
      if (!(await this.#store.readsCopyCheaply())) return this.#sealFromFile(o, blob, first, count);
      return this.#readCopyOrFile(o, blob, first, count);
    }
    if (o.copy === o.t.key) return this.#readCopy(o, first, count);
    // A room file: members in step share each block (at most SHARED_BLOCKS kept), read once and
    // encoded once — the frames are the same bytes for every member (one id, key and copy: §8).
    const at = `${o.copy}#${first}`;
    let block = this.#blocks.get(at);
    if (!block) {
      const read = blob ? this.#readCopyOrFile(o, blob, first, count) : this.#readCopy(o, first, count);
      block = read.then((frames) => frames.map(encodedOnce));
      this.#blocks.set(at, block);
      block.catch(() => this.#blocks.delete(at));
      for (const k of this.#blocks.keys()) {
        if (this.#blocks.size <= SHARED_BLOCKS) break;
        this.#blocks.delete(k);
      }
    }
    return block;
  }

  /**
   * Chunks `first`… from the sealed copy, or — a copy that cannot be read back (its worker
   * failed: the next call starts another; a slot lost) while the `File` is at hand — this block
   * from the `File`, as before the copy was read: not a transfer failed as "copy gone" with the
   * file right there. A room file's shared block too (one id, key and copy for every member: the
   * frames sealed from the `File` are the copy's bytes, docs/protocol/files.md §5, §8).
   */
  #readCopyOrFile(o: Outgoing, blob: Blob, first: number, count: number): Promise<FileChunkFrame[]> {
    return this.#readCopy(o, first, count).catch((e: Error) => {
      if (this.#stopped || e instanceof StoreClosed) throw e;
      this.#ctx.cfg.log(`files: reading the sealed copy failed (${e.name}): from the file`);
      return this.#sealFromFile(o, blob, first, count);
    });
  }

  /** Chunks `first`… read from the picked `File` and sealed (the same bytes as the copy's). */
  async #sealFromFile(o: Outgoing, blob: Blob, first: number, count: number): Promise<FileChunkFrame[]> {
    return readPlainBlock(blob, o.t.size, csOf(o.t), first, count, async (plains) => {
      const cipher = await this.#copyCipher(o); // once read: `o` may have ended meanwhile
      return Promise.all(
        plains.map(async (p, n) => {
          const header = chunkHeader(o.t, first + n);
          return { header, sealed: await cipher.seal(header, p) };
        }),
      );
    });
  }

  /**
   * Chunks `first`… from the sealed copy, for FILE_CHUNK frames — each opened first under the
   * per-transfer key (the chunk AEAD, files.md §3), so a slot changed on this device's disk is
   * never sent: the receiver would find it does not open and end the transfer as changed on the
   * way (§4). The open is the check because it is the cheapest sound one here: the tag already
   * covers every byte, and WebCrypto verifies it natively, off the page's thread (a digest kept
   * per chunk would cost a native pass too, and be gone after a reload; one in JavaScript costs
   * more); bench/README.md, "Session 17 (files-mends)". A chunk that does not open (or a slot
   * lost: the copy incomplete) is read again from the picked file and sealed again — the same
   * bytes the copy was made of (§5) — while the file is at hand; without it, `CopyDamaged`.
   */
  async #readCopy(o: Outgoing, first: number, count: number): Promise<FileChunkFrame[]> {
    const headers = Array.from({ length: count }, (_, n) => chunkHeader(o.t, first + n));
    // Read and opened in the store's worker where it can (store.ts `getOpened`): the page's main
    // thread — the one that sends every chunk and reads every ACK — then neither copies each chunk
    // into WebCrypto nor gets its plaintext back to wipe and collect (bench/README.md, bench:files,
    // session 20); else read here and opened here, as before.
    const checked = (await this.#store.opensChunks()) ? await this.#readOpened(o, headers) : undefined;
    const sealed = checked?.chunks ?? (await this.#store.getChunks(o.copy, first, count, sealedOf(o.t)));
    const frames = sealed.map(
      (s, n): FileChunkFrame => ({ header: headers[n] as FileChunkHeader, sealed: s }),
    );
    const cipher = checked ? undefined : await this.#copyCipher(o);
    const opens =
      checked?.opened ??
      (await Promise.all(
        frames.map(async (f) => {
          const plain = await (cipher as ChunkCipher).open(f);
          if (plain.ok) wipe(plain.value);
          return plain.ok;
        }),
      ));
    const whole = sealed.length === count;
    if (whole && opens.every(Boolean)) return frames;
    const { blob } = o;
    const bad = whole ? opens.filter((x) => !x).length : count - sealed.length;
    this.#ctx.cfg.log(
      `files: ${bad} chunk(s) of the sealed copy from ${first} ${whole ? "do not open" : "are missing"}: ${blob ? "sealed again from the file" : "the file is not at hand"}`,
    );
    if (!blob) throw new CopyDamaged();
    // A slot lost shifts the ones after it (a range read skips it): the whole block from the file.
    if (!whole) {
      const again = await this.#sealFromFile(o, blob, first, count);
      await this.#mendCopy(o, [{ index: first, frames: again }]);
      return again;
    }
    const mended = await Promise.all(
      frames.map(async (f, n) =>
        opens[n] ? f : ((await this.#sealFromFile(o, blob, first + n, 1))[0] as FileChunkFrame),
      ),
    );
    await this.#mendCopy(
      o,
      mended.flatMap((f, n) => (opens[n] ? [] : [{ index: first + n, frames: [f] }])),
    );
    return mended;
  }

  /**
   * The chunks sealed again from the file (`#readCopy`) written back over the copy's damaged or
   * lost slots — the copy's own bytes (same key, nonce, AAD and plaintext: files.md §5) — so the
   * slot is mended once: not opened, found damaged and sealed again from the file on every later
   * read (a resume, another member, a mailbox deposit), nor failed as `CopyDamaged` once the file
   * is gone (a reload). Not for a copy forgotten meanwhile (a cancel, a deletion): that would bring
   * its chunks back. A write the store refuses is logged; the chunks go anyway, from the file.
   */
  async #mendCopy(o: Outgoing, runs: { index: number; frames: FileChunkFrame[] }[]): Promise<void> {
    if (![...this.#out.values()].some((other) => other.copy === o.copy)) return;
    try {
      for (const run of runs)
        await this.#store.putChunks(
          o.copy,
          run.index,
          run.frames.map((f) => f.sealed),
          sealedOf(o.t),
        );
      const n = runs.reduce((sum, run) => sum + run.frames.length, 0);
      this.#ctx.cfg.log(`files: ${n} chunk(s) of the sealed copy mended from the file`);
    } catch (e) {
      if (this.#stopped || e instanceof StoreClosed) throw e;
      this.#ctx.cfg.log(`files: mending the sealed copy failed (${(e as Error).name})`);
    }
  }

  /**
   * Before the offer, read the file once ≈ 1 MiB at a time: each chunk is sealed under the
   * per-transfer key and stored (the sealed copy the chunks are sent from, which survives a
   * reload), and its plaintext digest goes into the file hash (wire.ts `FileHasher`), all of a
   * block concurrently; progress events say how far it got (a large file takes a moment). A room
   * file is prepared once for all its members (`group` shares the id, key and copy); it stops
   * when every member's transfer was cancelled.
   */
  async #prepare(group: Outgoing[], blob: Blob): Promise<Uint8Array> {
    const [o] = group;
    if (!o) throw new Error("nobody to send to");
    const { t } = o;
    const crypto = providerOf(this.#ctx);
    const h = new FileHasher();
    const cs = csOf(t);
    const total = chunkCount(t.size, cs);
    const block = blockChunks(cs);
    const hashing = () => group.filter((g) => g.t.state === "hashing");
    const cipher = await this.#cipher(o);
    for (let first = 0; first < total && hashing().length > 0; first += block) {
      // The engine stopped: not a block more (its store is about to let go of the file: `stop`).
      if (this.#stopped) throw new StoreClosed();
      const count = Math.min(block, total - first);
      await readPlainBlock(blob, t.size, cs, first, count, async (plains) => {
        const [digests, sealed] = await Promise.all([
          Promise.all(plains.map((p) => FileHasher.chunkDigest(crypto, p))),
          Promise.all(plains.map((p, n) => cipher.seal(chunkHeader(t, first + n), p))),
        ]);
        for (const d of digests) h.add(d);
        await this.#store.putChunks(o.copy, first, sealed, sealedOf(t));
      });
      for (const g of hashing()) {
        g.t.done = Math.min(t.size, (first + count) * cs);
        this.#progress(g);
      }
    }
    for (const g of group) {
      g.t.done = 0;
      restartSpeed(g);
    }
    return h.digest();
  }

  /**
   * To a contact with no live session: the offer and every chunk, in slices, into its relay
   * mailbox (docs/protocol/files.md §9) when the file fits what the relay's queue quota leaves;
   * false (the caller queues it for the next session) when there is no mailbox or it does not fit
   * — then the record says why.
   */
  async #viaMailbox(peer: FilePeer, o: Outgoing): Promise<boolean> {
    // Chunks of the default size only (§9: a full chunk is 9 slices); a transfer prepared in
    // larger ones waits for a live session (`#chunkSizeFor` picks those only for live ends).
    if (csOf(o.t) !== FILE_CHUNK_BYTES) return false;
    const mb = await peer.mailbox?.().catch(() => undefined);
    if (!mb) return false;
    const need = 1 + mailboxParts(o.t.size);
    if (need > mb.bodies || o.t.size > MAX_MAILBOX_FILE_BYTES) {
      const fits = Math.max(0, Math.min(MAX_MAILBOX_FILE_BYTES, mailboxCapacity(mb.bodies - 1)));
      o.t.reason = `Too large for ${peer.name}'s relay mailbox (up to ${mib(fits)} at a time): it will be offered when ${peer.name} is online.`;
      return false;
    }
    o.t.state = "relaying";
    o.t.next = 0;
    o.t.done = 0;
    restartSpeed(o);
    await this.#save(o.t);
    void this.#deposit(peer, o, mb).catch((e) =>
      this.#ctx.cfg.log(`files: mailbox deposit: ${(e as Error).name}`),
    );
    return true;
  }

  /** The deposit itself: in order, from the sealed copy; a failed SEND falls back to the next session. */
  async #deposit(peer: FilePeer, o: Outgoing, mb: FileMailbox): Promise<void> {
    const moving = () => !this.#stopped && o.t.state === "relaying" && this.#out.get(o.t.key) === o;
    const fallBack = async () => {
      if (!moving()) return;
      o.t.state = "queued";
      o.t.reason = `${peer.name}'s relay mailbox did not take the file: it will be offered when ${peer.name} is online.`;
      await this.#save(o.t);
    };
    if (!(await mb.deposit(offerOf(o)))) return fallBack();
    const total = chunkCount(o.t.size, csOf(o.t));
    for (let index = 0; index < total; index++) {
      if (!moving()) return;
      // Opened first, as every chunk sent from the copy (`#readCopy`): a damaged one is sealed
      // again from the file, or — the file gone — ends the transfer here, the receiver told why.
      // A copy that cannot be read back comes from the file while it is at hand, as on a live
      // session (`#readCopyOrFile`): before, the deposit stopped, nothing logged, and the file
      // waited for the next session as if the relay mailbox had not taken it. Without the file it
      // still does, now logged.
      let sealed: Uint8Array | undefined;
      try {
        const { blob } = o;
        const read = blob ? this.#readCopyOrFile(o, blob, index, 1) : this.#readCopy(o, index, 1);
        sealed = (await read)[0]?.sealed;
      } catch (e) {
        if (e instanceof CopyDamaged) return moving() ? this.#copyFailed(o, true) : undefined;
        this.#ctx.cfg.log(`files: mailbox deposit: reading the sealed copy failed (${(e as Error).name})`);
      }
      if (!sealed) return fallBack();
      const n = Math.ceil(sealed.length / MAILBOX_PART_BYTES);
      for (let s = 0; s < n; s++) {
        const d = sealed.slice(s * MAILBOX_PART_BYTES, (s + 1) * MAILBOX_PART_BYTES);
        if (!moving()) return;
        if (!(await mb.deposit({ t: "file.part", id: o.t.id, i: index, s, n, d }))) return fallBack();
      }
      o.t.next = index + 1;
      o.t.done = Math.min(o.t.size, o.t.next * csOf(o.t));
      this.#progress(o);
    }
    if (!moving()) return;
    // All in the mailbox: done once the contact's device says the hash matched (`file.done`).
    o.t.state = "relayed";
    o.t.speed = 0;
    delete o.t.eta;
    await this.#save(o.t);
  }

  /**
   * This end ends an accepted transfer: `why` in words for the person here (words.ts), and for the
   * sender (`file.fail`, then the `file.cancel` an older sender reads; in order on the peer's chain).
   */
  async #failIncoming(peer: FilePeer, i: Incoming, why: FileFailReason, full = false): Promise<void> {
    const reason = failedHere(peer.name, i.t.name, full ? "full" : why);
    await this.#dropIncoming(i, "failed", reason);
    this.#later(peer, { t: "file.fail", id: i.t.id, r: why });
    this.#later(peer, { t: "file.cancel", id: i.t.id, own: false });
    emit(this.#ctx, { type: "error", contactId: peer.id, error: { kind: "internal", message: reason } });
  }

  /** An incoming transfer ends without a file: its chunks and key go. */
  async #dropIncoming(
    i: Incoming,
    state: "failed" | "cancelled" | "declined",
    reason?: string,
  ): Promise<void> {
    this.#in.delete(i.t.key);
    i.hasher = undefined;
    wipe(i.key);
    i.cipher = undefined;
    await this.#store.deleteChunks(i.t.key);
    await this.#ctx.storage.deleteSecret(secretName(i.t.key));
    await this.#settle(i.t, state, reason);
  }

  /** An outgoing transfer ended: its sealed copy and key go (a room file's with its last member's). */
  #forgetOutgoing(o: Outgoing): void {
    o.wake?.();
    wipe(o.key);
    o.cipher = undefined;
    this.#out.delete(o.t.key);
    for (const other of this.#out.values()) if (other.copy === o.copy) return;
    for (const k of [...this.#blocks.keys()]) if (k.startsWith(`${o.copy}#`)) this.#blocks.delete(k);
    this.#forgetSentCopy(o.copy);
  }

  /** Delete an outgoing transfer's sealed copy and its key, in the background (a failure is logged). */
  #forgetSentCopy(key: string): void {
    void (async () => {
      await this.#store.deleteChunks(key);
      await this.#ctx.storage.deleteSecret(secretName(key));
    })().catch((e) => this.#ctx.cfg.log(`files: deleting a sent file's copy failed: ${(e as Error).name}`));
  }

  async #settle(t: FileTransfer, state: FileTransfer["state"], reason?: string): Promise<void> {
    t.state = state;
    t.speed = 0;
    delete t.eta;
    if (reason) t.reason = reason;
    await this.#save(t);
  }

  /** Store the record, then tell the UI (stored before the event, as for messages). */
  async #save(t: FileTransfer): Promise<void> {
    this.#all.set(t.key, t);
    if (this.#stopped) return; // the store is another engine's now (`stop`)
    await this.#store.putTransfer(t);
    emit(this.#ctx, { type: "file", transfer: { ...t } });
  }

  /**
   * Chunks of the sealed copy read and opened by the store (`getOpened`), under the copy's key:
   * `o`'s own, or — a room member's transfer ended meanwhile, its key wiped — that of a member
   * still sending the same copy (one key for all, §8). A copy of it, wiped once answered: a member
   * cancelled while the store's worker is asked would otherwise hand it a wiped key, and every
   * chunk would read as damaged.
   */
  async #readOpened(o: Outgoing, headers: FileChunkHeader[]): Promise<CheckedChunks | undefined> {
    const copy = this.#copyOwner(o).key.slice();
    try {
      return await this.#store.getOpened(o.copy, headers, copy, sealedOf(o.t));
    } finally {
      wipe(copy);
    }
  }

  /**
   * The chunk AEAD of `o`'s sealed copy, for a read of it that began while `o` was sending. A room
   * file's block is read once for every member in step (`#readBlock`), for the member whose pump
   * asked first; if that one ended meanwhile (cancelled, declined), `#forgetOutgoing` wiped its key,
   * so a member still sending it lends its own — the same key (one id, key and copy: files.md §8).
   * Before, the block's chunks did not open under the wiped key, were sealed again under it, and
   * went to the other members as chunks that fail their AEAD (the transfer failed as damaged).
   */
  #copyCipher(o: Outgoing): Promise<ChunkCipher> {
    return this.#cipher(this.#copyOwner(o));
  }

  /**
   * Whose key reads `o`'s sealed copy: `o` while it is sending; once it ended (`#forgetOutgoing`
   * wiped its key), a room member still sending the same copy (one id, key and copy: files.md §8);
   * `o` itself when none is left.
   */
  #copyOwner(o: Outgoing): Outgoing {
    if (this.#out.get(o.t.key) === o) return o;
    for (const other of this.#out.values()) if (other.copy === o.copy) return other;
    return o;
  }

  /** One taken chunk opened and its plaintext digested on this page (undefined: it did not open). */
  #opening(i: Incoming, chunk: FileChunkFrame): Promise<Uint8Array | undefined> {
    const crypto = providerOf(this.#ctx);
    const digesting = this.#cipher(i)
      .then((c) => c.open(chunk))
      .then(async (plain) => {
        if (!plain.ok) return undefined;
        try {
          return await FileHasher.chunkDigest(crypto, plain.value);
        } finally {
          wipe(plain.value);
        }
      });
    digesting.catch(() => {}); // observed by the store, in order
    return digesting;
  }

  /** The moving transfer's chunk AEAD, its key imported once. */
  #cipher(m: Moving): Promise<ChunkCipher> {
    m.cipher ??= chunkCipher(providerOf(this.#ctx), m.key);
    return m.cipher;
  }

  #progress(m: Moving): void {
    const now = Date.now();
    const dt = now - m.sampleAt;
    if (dt >= 250) {
      const rate = ((m.t.done - m.sampleBytes) * 1000) / dt;
      m.t.speed = m.t.speed === 0 ? rate : 0.7 * m.t.speed + 0.3 * rate;
      m.sampleAt = now;
      m.sampleBytes = m.t.done;
      if (m.t.speed > 0) m.t.eta = Math.ceil((m.t.size - m.t.done) / m.t.speed);
    }
    if (now - m.lastEmit < PROGRESS_EVERY_MS) return;
    m.lastEmit = now;
    emit(this.#ctx, { type: "file", transfer: { ...m.t } });
  }

  /** Send a control message (in order, for a contact on its serial chain); held for the next session if none. */
  #later(peer: FilePeer, m: FileAppMessage): void {
    void this.#tell(peer, m);
  }

  async #tell(peer: FilePeer, m: FileAppMessage): Promise<void> {
    const end = this.#endOf(peer);
    const before = this.#forgotten.get(end) ?? 0;
    const sent = await peer.tell(m).catch(() => false);
    if (sent) return;
    // The contact deleted (the room left) while this was being sent: held, it would stay for good
    // — and go, stale, to the contact added again (the room joined again) on its next session.
    if ((this.#forgotten.get(end) ?? 0) !== before) {
      this.#ctx.cfg.log(`files: ${m.t} not sent: ${peer.room ? "the room was left" : "the contact is gone"}`);
      return;
    }
    const held = this.#unsent.get(peer.id) ?? [];
    held.push(m);
    this.#unsent.set(peer.id, held);
  }

  /** A transfer id unused with every one of `ends` (a room file has one id for all its members). */
  #freshId(ends: string[]): number {
    for (;;) {
      const [a = 0, b = 0, c = 0, d = 0] = providerOf(this.#ctx).randomBytes(4);
      const id = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
      if (id !== 0 && !ends.some((e) => this.#all.has(transferKey(e, "out", id)))) return id;
    }
  }

  /** The other end of a stored transfer, if it is still there. */
  #peerOf(t: FileTransfer): FilePeer | undefined {
    if (t.room !== undefined && t.member !== undefined) return this.rooms?.peer(t.room, t.member);
    const peer = this.#ctx.peers.get(t.contactId);
    return peer && this.#contact(peer);
  }

  /** A contact as a transfer end: `file.*` inside its ratchet, on its serial chain. */
  #contact(peer: Peer): FilePeer {
    const ctx = this.#ctx;
    return {
      id: peer.id,
      name: peer.name,
      blocked: peer.blocked,
      live: () => peer.live,
      ready: () => liveOf({ live: () => peer.live }) !== undefined && ratchetCanSend(peer),
      tell: async (m) => {
        const sent = await serial(peer, async () => {
          const live = peer.live;
          // Not `writable` (its link closed under it, its reader still draining): `sendApp` refuses.
          if (!live || live.session.state === "closed" || !ratchetCanSend(peer)) return false;
          await sendApp(ctx, peer, live, m);
          // Told only once its frames reached the link: one the session dropped (the link closed
          // under it meanwhile) is held for the next session (`#tell`) — a lost file.done leaves
          // the sender `waiting` for good (core/session `flushed`, docs/protocol/files.md §5).
          return live.session.flushed().then(
            () => true,
            () => false,
          );
        });
        // How a transfer ended reaches a contact who is away through its mailbox (§9), so the
        // sender of a mailbox file learns it arrived; the rest waits for the next session.
        if (sent || (m.t !== "file.done" && m.t !== "file.cancel" && m.t !== "file.fail")) return sent;
        return (await this.#mailboxOf(peer))?.deposit(m) ?? false;
      },
      mailbox: () => this.#mailboxOf(peer),
    };
  }

  /** The contact's relay mailbox, when it has no live session and announced one (§9). */
  async #mailboxOf(peer: Peer): Promise<FileMailbox | undefined> {
    const { pool } = this.#ctx;
    const tx = peer.tx;
    if (!pool || !tx || peer.blocked || (peer.live && peer.live.session.state !== "closed")) return undefined;
    const client = await pool.client(tx.url);
    return {
      bodies: client.hello.queueQuota - MAILBOX_RESERVE,
      deposit: (m) => sendByMailbox(this.#ctx, peer, m, []),
    };
  }
}

/** The offer of an outgoing transfer (docs/protocol/files.md §1). */
function offerOf(o: Outgoing): FileOffer {
  const { t } = o;
  const bytes = (b: Uint8Array) => b.slice() as Uint8Array<ArrayBuffer>;
  return {
    t: "file.offer",
    id: t.id,
    name: t.name,
    size: t.size,
    type: t.type,
    hash: bytes(t.hash),
    key: bytes(o.key),
    ...(t.thumb ? { thumb: bytes(t.thumb) } : {}),
    // Named only when not the default: an offer of the default size is the bytes it always was.
    ...(t.cs !== undefined && t.cs !== FILE_CHUNK_BYTES ? { cs: t.cs } : {}),
  };
}

/**
 * The chunk size of a file about to be prepared for `peers` (files.md §2), and why — said in the
 * log, which a test waits on rather than on the lane having answered by luck: 255 KiB
 * (`LANE_CHUNK_BYTES`, or less if a peer said less) when every one of them is live on a direct
 * link whose bulk lane is ready and whose peer said it takes chunks that large (`BULK_CHUNKS`);
 * otherwise the default — a peer away (its file may go through its relay mailbox, whose slices
 * are sized for the default: §9), on the relay, or of an older version, or a lane that had not
 * answered within `laneAnswerMs` (`#laneAnswers`). Chosen once, before the file is read: the file
 * hash, the sealed copy and every resume keep it.
 */
function chunkSizeFor(peers: readonly FilePeer[], size: number): { cs: number; why: string } {
  let cs = LANE_CHUNK_BYTES;
  let why = "every end's bulk lane takes them";
  for (const peer of peers) {
    const live = peer.ready() ? liveOf(peer) : undefined;
    const lane = live?.bulk;
    const takes = lane?.ready ? (lane.peerChunkBytes ?? 0) : 0;
    if (takes <= FILE_CHUNK_BYTES && cs > FILE_CHUNK_BYTES)
      why = !live
        ? "an end is not live (its file may go through its mailbox)"
        : !lane || lane.state === "closed"
          ? "an end's link has no bulk lane (the relay, or an older version)"
          : !lane.ready
            ? "an end's bulk lane is not ready"
            : lane.peerChunkBytes === undefined
              ? "an end's bulk lane did not say which chunks it takes (an older version, or no answer in time)"
              : "an end's bulk lane takes the default size only";
    cs = Math.min(cs, takes);
  }
  if (cs > FILE_CHUNK_BYTES && !validChunking(size, cs)) why = "the file is too large for them";
  return cs > FILE_CHUNK_BYTES && validChunking(size, cs) ? { cs, why } : { cs: FILE_CHUNK_BYTES, why };
}

/** The header of chunk `index` of `t` (the same on the sender's copy, the wire and the receiver's store). */
function chunkHeader(t: FileTransfer, index: number): FileChunkHeader {
  return { id: t.id, index, total: chunkCount(t.size, csOf(t)), chunkSize: sealedOf(t) };
}

/**
 * Chunks `first` … `first + count − 1` of the file as one `Blob.slice` read, handed to `use` as
 * each chunk's plaintext (views into that one buffer, wiped once `use` has resolved). A file
 * whose size changed since it was picked throws.
 */
async function readPlainBlock<T>(
  blob: Blob,
  size: number,
  cs: number,
  first: number,
  count: number,
  use: (plains: Uint8Array[]) => Promise<T>,
): Promise<T> {
  const start = first * cs;
  const block = new Uint8Array(await blob.slice(start, start + count * cs).arrayBuffer());
  try {
    const plains = Array.from({ length: count }, (_, n) => {
      const plain = block.subarray(n * cs, (n + 1) * cs);
      if (plain.length !== chunkPlainBytes(size, first + n, cs)) throw new Error("the file changed size");
      return plain;
    });
    return await use(plains);
  } finally {
    wipe(block);
  }
}

/** A chunk taken failed its AEAD when opened (`#storeTaken`): the transfer ends as `damaged`. */
class DamagedChunk extends Error {}

/**
 * The sender's sealed copy has a chunk that does not open, or lacks one, and the picked file is
 * not at hand to seal it again from (`#readCopy`): the transfer fails on this side (`#copyFailed`).
 */
class CopyDamaged extends Error {
  override name = "CopyDamaged";
}

function incoming(t: FileTransfer, key: Uint8Array, taken: number): Incoming {
  return {
    ...moving(t, key),
    taken,
    acked: taken,
    pending: [],
    chain: Promise.resolve(),
    takes: Promise.resolve(),
  };
}

function moving(t: FileTransfer, key: Uint8Array): Moving {
  return { t, key, lastEmit: 0, sampleAt: Date.now(), sampleBytes: t.done };
}

function restartSpeed(m: Moving): void {
  m.sampleAt = Date.now();
  m.sampleBytes = m.t.done;
  m.t.speed = 0;
  delete m.t.eta;
}

/** The largest file whose offer and parts fit `bodies` mailbox bodies (§9). */
function mailboxCapacity(bodies: number): number {
  let size = Math.max(0, Math.floor(bodies / MAX_CHUNK_PARTS) * FILE_CHUNK_BYTES);
  while (mailboxParts(size + 1024) <= bodies) size += 1024;
  return size;
}

function liveOf(peer: Pick<FilePeer, "live">): FileLive | undefined {
  const live = peer.live();
  return live && live.session.state !== "closed" ? live : undefined;
}

/**
 * A FILE_CHUNK about to go out; `wire`, when set, is the whole frame already encoded (a room
 * file's, shared by its members' pumps), `sealed` a view of it.
 */
type OutFrame = FileChunkFrame & { wire?: Uint8Array };

/** The frame encoded once (0x10 or 0x13 ‖ header ‖ sealed), its sealed bytes a view of that encoding. */
function encodedOnce(f: FileChunkFrame): OutFrame {
  const head = headerBytesOf(f.header);
  const wire = encodeChunkFrameInto(new Uint8Array(head + f.sealed.length), f);
  return { header: f.header, sealed: wire.subarray(head), wire };
}

/** Blocks of a room file's frames kept for its members' pumps (≈ 1 MiB each). */
const SHARED_BLOCKS = 8;

function refusal(message: string): EngineRefusal {
  return new EngineRefusal({ kind: "message-refused", message });
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MiB`;
}

/** A name safe to show and to save under: no path, no control characters, not empty. */
export function cleanName(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, "").trim();
  return (clean.length > 0 ? clean : "file").slice(0, MAX_FILE_NAME_CHARS);
}
