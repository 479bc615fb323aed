/**
 * Where transfers and received chunks are kept (docs/protocol/files.md §6): the engine writes
 * through `FileStore`; the browser's keeps records in IndexedDB and chunks in one origin-private
 * file per transfer (opfs-store.ts), or in IndexedDB where it has no sync access handles
 * (idb-store.ts); tests and engines without one use `MemoryFileStore`. Received chunks are
 * stored as they arrived — AES-256-GCM ciphertext under the per-transfer key — and the key
 * itself goes to the engine's sealed secrets (EngineStorage.saveSecret), so the store never keeps
 * a file's plaintext (a store that opens what it stores, `putOpened`, holds each chunk's plaintext
 * only until it is digested, and wipes it). Transfer records reach the store sealed (sealed-records.ts): no name, type,
 * size, hash or preview in clear.
 */

import { wipe } from "../../../../core/bytes.ts";
import { openAndDigest } from "./open-batch.ts";
import { type ChunkCrypto, chunkCipher, type FileChunkFrame, type FileChunkHeader } from "./wire.ts";

/** The contact's id (api.ts `ContactId`; not imported, so api.ts can name these types). */
type ContactId = string;

export type FileDirection = "in" | "out";

/**
 *  offered   in: waiting for the user to accept; out: waiting for the contact to accept
 *  hashing   out: reading the file once (hash, sealed copy) before the offer
 *  queued    out: prepared; the offer goes on the contact's next session (it was not connected)
 *  relaying  out: going into the contact's relay mailbox, offer and chunks (§9)
 *  relayed   out: all in the contact's mailbox; done when its device says the hash matched
 *  sending / receiving   chunks flow
 *  waiting   the link dropped: resumes from the last stored chunk on the next session
 *  done      in: hash checked, stored; out: the contact confirmed the hash
 *  failed    integrity check failed, the contact's device refused, or the file became unreadable
 *  declined / cancelled
 */
export type FileState =
  | "hashing"
  | "offered"
  | "queued"
  | "relaying"
  | "relayed"
  | "sending"
  | "receiving"
  | "waiting"
  | "done"
  | "failed"
  | "declined"
  | "cancelled";

/** One transfer as kept and as shown (`ChatEngine.listFiles`, the `file` event). */
export interface FileTransfer {
  /** Unique on this device: `<contactId>/<direction>/<id>`. */
  key: string;
  contactId: ContactId;
  direction: FileDirection;
  /** A room member's transfer: the room (id hex) and the member (identity key hex); §8. */
  room?: string;
  member?: string;
  /** The member's name when the transfer began (shown while it is away). */
  memberName?: string;
  /** Out, to a room: where the one sealed copy (and key) shared by its members' transfers is. */
  copy?: string;
  /** The sender's transfer id (docs/protocol/files.md §1). */
  id: number;
  name: string;
  size: number;
  /** MIME type as the sender gave it (display and preview only; never trusted to execute). */
  type: string;
  /** The file hash (docs/protocol/files.md §1), over chunks of `cs` bytes. */
  hash: Uint8Array;
  /**
   * Plaintext bytes per chunk, as offered (files.md §2, since session 18); absent: the default
   * 65 024 (wire.ts `FILE_CHUNK_BYTES`) — every transfer stored before keeps it, and resumes so.
   */
  cs?: number;
  /** The sender's small WebP preview of an image, shown with the offer (display only). */
  thumb?: Uint8Array;
  state: FileState;
  /** Chunks stored by the receiver (confirmed by its ACKs, for the sender). */
  next: number;
  /** Bytes confirmed so far. */
  done: number;
  /** Bytes per second, smoothed; 0 when not moving. */
  speed: number;
  /** Seconds left at that speed, when known. */
  eta?: number;
  at: number;
  /** Why it failed or was declined, in plain words. */
  reason?: string;
}

export const transferKey = (contactId: ContactId, direction: FileDirection, id: number): string =>
  `${contactId}/${direction}/${id}`;

/** A transfer record as stored: its key and time in clear, the rest sealed (sealed-records.ts). */
export interface FileRecord {
  key: string;
  at: number;
  /** iv (12 bytes) ‖ AES-256-GCM(records key, the transfer as MessagePack). */
  sealed: Uint8Array;
}

export interface FileStore {
  putRecord(r: FileRecord): Promise<void>;
  /** Every record; a record an earlier version wrote in clear comes back as it is. */
  listRecords(): Promise<(FileRecord | FileTransfer)[]>;
  /**
   * Store chunks `first`, `first + 1`, … at once (one transaction where the store has them).
   * `chunkBytes`, here and below: the sealed bytes of one full chunk of the transfer when it is
   * not the default's 65 040 (an offer with a chunk size, files.md §2) — a store that lays chunks
   * out by position (opfs-store.ts: one slot each) sizes the transfer's slots by it; the same
   * for every call on one transfer.
   */
  putChunks(key: string, first: number, sealed: Uint8Array[], chunkBytes?: number): Promise<void>;
  /**
   * Where the store can check chunks itself (opfs-store.ts: in its worker, off the page's main
   * thread): open each of chunks `first` … under the per-transfer key `chunkKey` and digest its
   * plaintext (docs/protocol/files.md §3, §1), and store the batch as `putChunks` only when every
   * chunk opened. The digests in order; or the position of the first chunk that did not open,
   * nothing of the batch stored (§4: the transfer ends as `damaged`); or undefined when it cannot
   * here after all (no worker), nothing stored — the caller opens them and calls `putChunks`.
   * The plaintexts never leave the store's side and are wiped once digested. Asked only of a
   * store whose `opensChunks` said yes.
   */
  putOpened?(
    key: string,
    first: number,
    chunks: readonly FileChunkFrame[],
    chunkKey: Uint8Array,
    chunkBytes?: number,
  ): Promise<OpenedBatch | undefined>;
  /**
   * Whether `putOpened` opens chunks here: the OPFS store's worker started and has what it opens
   * them with (opfs-worker.ts, `open`). Absent or false: the engine opens each chunk as it takes
   * it and stores it with `putChunks` (a store that merely has `putOpened` is no such claim — the
   * OPFS store has it where its worker cannot start, or files have no sync access handles).
   */
  opensChunks?(): Promise<boolean>;
  getChunk(key: string, index: number, chunkBytes?: number): Promise<Uint8Array | undefined>;
  /**
   * Those of chunks `first` … `first + count − 1` that are stored, in index order (one read): fewer
   * than `count` when any is missing.
   */
  getChunks(key: string, first: number, count: number, chunkBytes?: number): Promise<Uint8Array[]>;
  /**
   * Where the store can check what it reads (opfs-store.ts: in its worker, off the page's main
   * thread): chunks `headers[0].index`, … — one per header, consecutive — read as `getChunks`
   * reads them, each opened under the per-transfer key `chunkKey` with its header's nonce and AAD
   * (docs/protocol/files.md §3) and its plaintext wiped there: the sealed chunks, and whether
   * each opened — the sender's check of its sealed copy before it sends (§5). Undefined when it
   * cannot here (no worker, or a chunk not where it reads): the caller reads with `getChunks` and
   * opens them itself. Asked only of a store whose `opensChunks` said yes.
   */
  getOpened?(
    key: string,
    headers: readonly FileChunkHeader[],
    chunkKey: Uint8Array,
    chunkBytes?: number,
  ): Promise<CheckedChunks | undefined>;
  /**
   * Whether reading a sealed copy back costs less than reading the picked `File` again and
   * sealing it again (docs/protocol/files.md §5): the sender then sends from its copy while the
   * `File` is still at hand. True for chunks in the origin-private file system (opfs-store.ts: one
   * read through the worker's sync access handle per block); absent or false where a read is a
   * database read (IndexedDB's LevelDB: dearer than the `File` and a seal, bench/README.md).
   */
  readsCopyCheaply?(): Promise<boolean>;
  /**
   * The buffer of chunks `getOpened` answered, which the caller is done with (none of its views is
   * read again): the store may read into it next (opfs-store.ts). Absent: nothing to reuse.
   */
  reuse?(buffer: ArrayBuffer): void;
  /** Delete a transfer's chunks (`deleteTransfer`: its chunks and its record). */
  deleteChunks(key: string): Promise<void>;
  deleteTransfer(key: string): Promise<void>;
  /**
   * Let go of what holds files open (opfs-store.ts: each transfer's sync access handle), as the
   * engine stops — Delete identity then removes them (app/device-files.ts). Stores reopen what
   * they need on their next call.
   */
  release?(): Promise<void>;
}

/** `putOpened`'s answer: the chunks' plaintext digests, or the position of the first that did not open. */
export type OpenedBatch = Uint8Array[] | number;

/** `getOpened`'s answer: one sealed chunk per header asked for, and whether each opened under the key. */
export interface CheckedChunks {
  chunks: Uint8Array[];
  opened: boolean[];
}

export class MemoryFileStore implements FileStore {
  readonly #records = new Map<string, FileRecord | FileTransfer>();
  readonly #chunks = new Map<string, Uint8Array>();
  /**
   * With `opens` (tests), the store opens and digests what it stores, as the OPFS store's worker
   * does (`putOpened`), with that provider; without, it has no `putOpened` and the engine opens.
   */
  putOpened?: FileStore["putOpened"];
  getOpened?: FileStore["getOpened"];
  opensChunks?: FileStore["opensChunks"];

  constructor(opts: { opens?: ChunkCrypto } = {}) {
    const crypto = opts.opens;
    if (!crypto) return;
    this.opensChunks = async () => true;
    this.putOpened = async (key, first, chunks, chunkKey) => {
      const cipher = await chunkCipher(crypto, chunkKey);
      const opened = await openAndDigest(chunks.length, {
        open: async (n) => {
          const plain = await cipher.open(chunks[n] as FileChunkFrame);
          return plain.ok ? plain.value : undefined;
        },
        sha256: (data) => crypto.sha256(data),
      });
      if (typeof opened !== "number")
        await this.putChunks(
          key,
          first,
          chunks.map((c) => c.sealed),
        );
      return opened;
    };
    this.getOpened = async (key, headers, chunkKey) => {
      const first = headers[0]?.index ?? 0;
      const chunks = await this.getChunks(key, first, headers.length);
      if (chunks.length !== headers.length) return undefined; // one missing: the caller reads again
      const cipher = await chunkCipher(crypto, chunkKey);
      const opened = await Promise.all(
        chunks.map(async (sealed, n) => {
          const plain = await cipher.open({ header: headers[n] as FileChunkHeader, sealed });
          if (plain.ok) wipe(plain.value);
          return plain.ok;
        }),
      );
      return { chunks, opened };
    };
  }

  async putRecord(r: FileRecord): Promise<void> {
    this.#records.set(r.key, structuredClone(r));
  }
  async listRecords(): Promise<(FileRecord | FileTransfer)[]> {
    return [...this.#records.values()].map((r) => structuredClone(r));
  }
  /** Tests: what is stored, as stored. */
  get records(): ReadonlyMap<string, FileRecord | FileTransfer> {
    return this.#records;
  }
  async putChunks(key: string, first: number, sealed: Uint8Array[]): Promise<void> {
    for (const [n, c] of sealed.entries()) this.#chunks.set(`${key}#${first + n}`, c.slice());
  }
  async getChunk(key: string, index: number): Promise<Uint8Array | undefined> {
    return this.#chunks.get(`${key}#${index}`)?.slice();
  }
  async getChunks(key: string, first: number, count: number): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (let index = first; index < first + count; index++) {
      const c = this.#chunks.get(`${key}#${index}`);
      if (c) out.push(c.slice()); // as an IndexedDB range read: a missing chunk is skipped
    }
    return out;
  }
  async deleteChunks(key: string): Promise<void> {
    for (const k of [...this.#chunks.keys()]) if (k.startsWith(`${key}#`)) this.#chunks.delete(k);
  }
  async deleteTransfer(key: string): Promise<void> {
    await this.deleteChunks(key);
    this.#records.delete(key);
  }
}
