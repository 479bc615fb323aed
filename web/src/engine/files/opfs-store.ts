/**
 * The browser's `FileStore` where the origin-private file system has sync access handles
 * (docs/protocol/files.md §6): transfer records stay in the `loft-files` IndexedDB database
 * (idb-store.ts, sealed as ever), and each transfer's sealed chunks — AES-256-GCM ciphertext, as
 * they arrived; never plaintext — go into one file of its own in the `loft-file-chunks` folder,
 * written by a dedicated worker (opfs-worker.ts) through a sync access handle. Where the worker
 * cannot start or the browser has no sync access handles, chunks stay in IndexedDB, as before.
 *
 * Why: on a profile on disk an IndexedDB `put` of a 64 KiB chunk (a structured clone into
 * LevelDB) costs about four times the CPU per MiB of a write into a file (bench/README.md,
 * bench:files, session 15); the receiver stores every byte it gets and the sender its sealed copy.
 *
 * Transfers stored before (chunks in IndexedDB) stay readable: a chunk not in the transfer's file
 * is looked for in IndexedDB, and deleting a transfer deletes both. A page whose worker cannot
 * start still reads and deletes a transfer's file an earlier page wrote, through the asynchronous
 * API (`getFile`, `removeEntry`), so its resume point is not lost (files.md §6).
 */
import { FILES_DB_NAME, FILES_DIR } from "../../lib/device-stores.ts";
import { IdbFileStore } from "./idb-store.ts";
import {
  chunkFileName,
  MAX_READ_BYTES,
  OPFS_IDLE_CLOSE_MS,
  type OpfsReply,
  type OpfsRequest,
  packSlots,
  readSlots,
  SLOT_BYTES,
  slotBufferBytes,
  slotBytesFor,
  slotsPerRead,
} from "./opfs-protocol.ts";
import type { CheckedChunks, FileRecord, FileStore, FileTransfer, OpenedBatch } from "./store.ts";
import { chunkAad, chunkNonce, type FileChunkFrame, type FileChunkHeader } from "./wire.ts";

/** Requests without their id (the link numbers them). */
type Request = OpfsRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;
type Ask = (m: Request, transfer?: Transferable[]) => Promise<OpfsReply>;

/**
 * How many times in all a request is asked when the worker fails under it (`#ask`): the first
 * time and two more, each of a worker started again when the one before died.
 */
const WORKER_TRIES = 3;

/**
 * Put buffers kept for reuse (`#keepSpare`): two, so a put being laid out while another's buffer
 * is on its way back still finds one; none larger than two windows of slots (files.md §5, §6).
 */
const SPARE_BUFFERS = 2;
const MAX_SPARE_BYTES = 2 * MAX_READ_BYTES;

/**
 * `b` kept in `spares` (largest first, at most SPARE_BUFFERS); a detached, empty, huge or already
 * kept one not. Whether it was kept.
 */
function keep(spares: ArrayBuffer[], b: ArrayBuffer | undefined): boolean {
  if (!(b instanceof ArrayBuffer) || b.byteLength === 0 || b.byteLength > MAX_SPARE_BYTES) return false;
  if (spares.includes(b)) return false;
  spares.push(b);
  spares.sort((x, y) => y.byteLength - x.byteLength);
  spares.length = Math.min(spares.length, SPARE_BUFFERS);
  return true;
}

/** A kept buffer of at least `bytes`, taken out of `spares`; else none. */
function take(spares: ArrayBuffer[], bytes: number): ArrayBuffer | undefined {
  const at = spares.findIndex((b) => b.byteLength >= bytes);
  return at < 0 ? undefined : spares.splice(at, 1)[0];
}

/**
 * The errors a worker answered with (its reply's `error`: a full disk, a layout it refused): final,
 * never asked again. Any other failure of a request is the worker's own (it died, its reply could
 * not be read, the request could not be posted).
 */
const answered = new WeakSet<Error>();

/** The store's worker: opfs-worker.ts, as a module worker the bundler emits beside the page. */
export const startOpfsWorker = (): Worker =>
  new Worker(new URL("./opfs-worker.ts", import.meta.url), { type: "module", name: "loft-file-chunks" });

export interface OpfsFileStoreOptions {
  /**
   * How long the worker keeps a file's handle open unused (default OPFS_IDLE_CLOSE_MS, 2 s; the
   * app never sets it): a test that needs a file still held, or let go, sets it far or near. The
   * page's kept buffers (`#keepSpare`, `reuse`) go after as long unused.
   */
  idleCloseMs?: number;
}

export class OpfsFileStore implements FileStore {
  readonly #idb: IdbFileStore;
  readonly #dir: string;
  readonly #start: () => Worker;
  readonly #idleCloseMs: number;
  /** The worker, once it said it has sync access handles; undefined: chunks go to IndexedDB. */
  #link: Promise<Ask | undefined> | undefined;
  /** The current worker's requests waiting for their answer (`waitingRequests`). */
  #waiting: ReadonlyMap<number, unknown> | undefined;
  /** The current worker said it opens and digests chunks (its `open` reply's `opens`). */
  #opens = false;
  /** Put buffers the worker gave back, largest first (`#slotBuffer`, `#keepSpare`). */
  readonly #spares: ArrayBuffer[] = [];
  /** Read buffers the caller gave back, largest first (`reuse`, `#readBuffer`). */
  readonly #readSpares: ArrayBuffer[] = [];
  /** Drops both kinds of kept buffers once none was kept for `#idleCloseMs` (`#keptNow`). */
  #sparesIdle: ReturnType<typeof setTimeout> | undefined;
  /** Calls of `release` so far: a request asked before the latest one is not asked again (`#ask`). */
  #releases = 0;

  /** `name`: the IndexedDB database (records; chunks stored before); `dir`: the OPFS folder. */
  constructor(
    name = FILES_DB_NAME,
    dir = FILES_DIR,
    start: () => Worker = startOpfsWorker,
    options: OpfsFileStoreOptions = {},
  ) {
    this.#idb = new IdbFileStore(name);
    this.#dir = dir;
    this.#start = start;
    this.#idleCloseMs = options.idleCloseMs ?? OPFS_IDLE_CLOSE_MS;
  }

  /**
   * Whether `putOpened` opens chunks here: a worker started and said it can (opfs-worker.ts,
   * `open`). Where it cannot start, or has no WebCrypto, `putOpened` stores nothing and answers
   * undefined — the engine then opens each chunk itself as it takes it.
   */
  async opensChunks(): Promise<boolean> {
    return (await this.#worker()) !== undefined && this.#opens;
  }

  /** Whether chunks go to the origin-private file system (else to IndexedDB, as before). */
  async usesOpfs(): Promise<boolean> {
    return (await this.#worker()) !== undefined;
  }

  /**
   * Chunks in OPFS read back in one call per block, in the worker (store.ts `readsCopyCheaply`):
   * cheaper than `Blob.slice` and a second seal (bench/README.md, bench:files, session 16).
   */
  readsCopyCheaply(): Promise<boolean> {
    return this.usesOpfs();
  }

  putRecord(r: FileRecord): Promise<void> {
    return this.#idb.putRecord(r);
  }

  listRecords(): Promise<(FileRecord | FileTransfer)[]> {
    return this.#idb.listRecords();
  }

  async putChunks(key: string, first: number, sealed: Uint8Array[], chunkBytes?: number): Promise<void> {
    if (sealed.length === 0) return;
    // The transfer's slot size (files.md §6): named in the request only when not the default's
    // (the engine passes every transfer's, the default's too), so a request for a transfer of the
    // default chunk size is what it always was.
    const slot = slotBytesFor(chunkBytes);
    const sized = slot === SLOT_BYTES ? {} : { slot };
    // Laid out as the file's slots in one buffer of this store's, transferred to the worker (the
    // caller's bytes stay its own: store.ts `putChunks` copies — here once, into that buffer);
    // answered after the worker's flush(), so what resolves here is on disk. Laid out again for
    // each try (`#ask`): a buffer transferred to a worker that died went with it.
    const put = await this.#ask(() => {
      const slots = packSlots(sealed, slot, this.#slotBuffer(sealed.length, slot));
      return [{ op: "put", file: chunkFileName(key), first, slots, ...sized }, [slots.buffer]];
    });
    this.#keepSpare(put?.spare);
    if (!put) return this.#idb.putChunks(key, first, sealed);
  }

  /**
   * As `putChunks`, but the worker first opens each chunk under `chunkKey` and digests its
   * plaintext (files.md §3, §1), and writes the batch only when all opened: the receiving page's
   * main thread hands the sealed bytes over once (the slots, transferred) instead of copying each
   * chunk into WebCrypto for its opening and its plaintext again for its digest (bench/README.md,
   * bench:files, session 19). Undefined when there is no worker here: nothing stored.
   */
  async putOpened(
    key: string,
    first: number,
    chunks: readonly FileChunkFrame[],
    chunkKey: Uint8Array,
    chunkBytes?: number,
  ): Promise<OpenedBatch | undefined> {
    if (chunks.length === 0) return [];
    // Not asked of a worker that cannot open them (no WebCrypto there): it would fail the put.
    if (!(await this.opensChunks())) return undefined;
    const slot = slotBytesFor(chunkBytes);
    const sized = slot === SLOT_BYTES ? {} : { slot };
    const ivs = chunks.map((c) => chunkNonce(c.header.index));
    const aads = chunks.map((c) => chunkAad(c.header));
    const put = await this.#ask(() => {
      const slots = packSlots(
        chunks.map((c) => c.sealed),
        slot,
        this.#slotBuffer(chunks.length, slot),
      );
      // The key is cloned into the worker (it forgets it with the file's handle: opfs-worker.ts).
      const open = { key: chunkKey, ivs, aads };
      return [{ op: "put", file: chunkFileName(key), first, slots, ...sized, open }, [slots.buffer]];
    });
    this.#keepSpare(put?.spare);
    if (!put) return undefined;
    if (put.damaged !== undefined) return put.damaged;
    if (!put.digests || put.digests.length !== chunks.length)
      throw new Error("the worker did not digest the batch");
    return put.digests;
  }

  async getChunk(key: string, index: number, chunkBytes?: number): Promise<Uint8Array | undefined> {
    return (await this.#chunksAt(key, index, 1, chunkBytes)).get(index);
  }

  async getChunks(key: string, first: number, count: number, chunkBytes?: number): Promise<Uint8Array[]> {
    return [...(await this.#chunksAt(key, first, count, chunkBytes)).values()];
  }

  /**
   * The sender's sealed copy read and checked in the worker (store.ts `getOpened`): chunks
   * `headers[0].index` … read as `getChunks` reads them, each opened there under `chunkKey`
   * (files.md §5) — the page gets the sealed chunks and whether each opened, and never their
   * plaintext. Undefined (the caller reads and opens as before) where the worker cannot open
   * (none started, no WebCrypto there), when it died under the read and no other could start, or
   * when a chunk is not in the file (one an earlier version left in IndexedDB, or a slot lost).
   */
  async getOpened(
    key: string,
    headers: readonly FileChunkHeader[],
    chunkKey: Uint8Array,
    chunkBytes?: number,
  ): Promise<CheckedChunks | undefined> {
    const first = headers[0]?.index;
    if (first === undefined) return { chunks: [], opened: [] };
    if (!(await this.opensChunks())) return undefined;
    const slot = slotBytesFor(chunkBytes);
    const sized = slot === SLOT_BYTES ? {} : { slot };
    const chunks: Uint8Array[] = [];
    const opened: boolean[] = [];
    const per = slotsPerRead(slot);
    for (let at = 0; at < headers.length; at += per) {
      const part = headers.slice(at, at + per);
      const ivs = part.map((h) => chunkNonce(h.index));
      const aads = part.map((h) => chunkAad(h));
      const r = await this.#ask(() => {
        // Read into a buffer the caller gave back (`reuse`) when one holds the slots: transferred.
        const into = this.#readBuffer(part.length * slot);
        return [
          {
            op: "get",
            file: chunkFileName(key),
            first: first + at,
            count: part.length,
            ...sized,
            // The key is cloned into the worker (it forgets it with the file's handle: opfs-worker.ts).
            open: { key: chunkKey, ivs, aads },
            ...(into ? { into } : {}),
          },
          into ? [into] : [],
        ];
      });
      const got = r?.chunks ?? [];
      const said = r?.opened ?? [];
      const whole =
        r !== undefined &&
        got.length === part.length &&
        said.length === part.length &&
        (r.indexes ?? []).every((index, k) => index === first + at + k);
      if (!whole) return undefined;
      chunks.push(...got);
      opened.push(...said.map((o) => o === true));
    }
    return { chunks, opened };
  }

  /** Chunks `first` … `first + count − 1` that are stored, by index: the file's, then IndexedDB's. */
  async #chunksAt(
    key: string,
    first: number,
    count: number,
    chunkBytes: number | undefined,
  ): Promise<Map<number, Uint8Array>> {
    const slot = slotBytesFor(chunkBytes);
    const sized = slot === SLOT_BYTES ? {} : { slot };
    const out = new Map<number, Uint8Array>();
    let worker = (await this.#worker()) !== undefined;
    if (worker) {
      // At most a window's worth per request: the worker reads a request's slots in one buffer.
      const per = slotsPerRead(slot);
      for (let at = first; at < first + count; at += per) {
        const n = Math.min(per, first + count - at);
        const r = await this.#ask(() => [
          { op: "get", file: chunkFileName(key), first: at, count: n, ...sized },
        ]);
        if (!r) {
          // Its worker died and the next one could not start: read as without one, below.
          worker = false;
          out.clear();
          break;
        }
        for (const [k, index] of (r.indexes ?? []).entries()) {
          const c = r.chunks?.[k];
          if (c) out.set(index, c);
        }
      }
      if (worker && out.size === count) return out;
    }
    if (!worker) {
      // No worker in this page (it could not start) while an earlier page stored chunks in the
      // transfer's file: read there through the asynchronous API, so the resume point does not
      // start again from 0 (files.md §6).
      for (const [index, c] of await this.#fileChunks(key, first, count, slot)) out.set(index, c);
    }
    // A transfer stored before this store (or while it had no worker): its chunks, or its first
    // ones, are in IndexedDB. Read there only what the file lacks.
    for (const [index, c] of await this.#idb.chunksAt(key, first, count))
      if (!out.has(index)) out.set(index, c);
    return new Map([...out].sort(([x], [y]) => x - y));
  }

  async deleteChunks(key: string): Promise<void> {
    await Promise.all([
      // Without a worker, through the asynchronous API: a file an earlier page wrote still goes.
      this.#ask(() => [{ op: "delete", file: chunkFileName(key) }]).then(async (r) => {
        if (!r) await this.#removeFile(key);
      }),
      this.#idb.deleteChunks(key), // what an earlier version (or a page without the worker) stored
    ]);
  }

  /** The folder, through the asynchronous OPFS API; undefined: no OPFS here, or no folder yet. */
  async #folder(): Promise<FileSystemDirectoryHandle | undefined> {
    if (typeof navigator === "undefined" || !navigator.storage?.getDirectory) return undefined;
    const root = await navigator.storage.getDirectory().catch(() => undefined); // e.g. private mode
    try {
      return await root?.getDirectoryHandle(this.#dir);
    } catch (e) {
      if ((e as Error).name === "NotFoundError") return undefined;
      throw e;
    }
  }

  /**
   * Slots `first` … of the transfer's file read without the worker (`getFile`: a snapshot of the
   * file). Unreadable (held by another page's worker) reads as nothing stored, as before.
   */
  async #fileChunks(
    key: string,
    first: number,
    count: number,
    slot: number,
  ): Promise<Map<number, Uint8Array>> {
    const out = new Map<number, Uint8Array>();
    try {
      const dir = await this.#folder();
      const file = await dir?.getFileHandle(chunkFileName(key)).then((f) => f.getFile());
      if (!file) return out;
      const from = first * slot;
      const slots = new Uint8Array(await file.slice(from, from + count * slot).arrayBuffer());
      const { indexes, chunks } = readSlots(slots, first, false, slot);
      for (const [k, index] of indexes.entries()) out.set(index, chunks[k] as Uint8Array);
    } catch {
      // NotFoundError (never written), NotReadableError: nothing stored there that can be read.
    }
    return out;
  }

  /** Removes the transfer's file without the worker; one that is not there is gone already. */
  async #removeFile(key: string): Promise<void> {
    await (await this.#folder())?.removeEntry(chunkFileName(key)).catch((e: Error) => {
      if (e.name !== "NotFoundError") throw e;
    });
  }

  async deleteTransfer(key: string): Promise<void> {
    await this.deleteChunks(key);
    await this.#idb.deleteTransfer(key);
  }

  /**
   * A buffer for a put of `count` slots: one the worker gave back (`spare`) that holds them, else
   * a new one of whole slots. Reused because a new buffer of up to a window's slots (≈ 4 MiB) per
   * put was new memory each time — a page fault per 4 KiB as `packSlots` first wrote it, on the
   * receiving page's main thread, and as much again to give it back (bench/README.md,
   * bench:files, session 21).
   */
  #slotBuffer(count: number, slot: number): ArrayBuffer {
    const bytes = slotBufferBytes(count, slot);
    return take(this.#spares, bytes) ?? new ArrayBuffer(bytes);
  }

  /**
   * A put's buffer given back by the worker, kept for the next put: at most SPARE_BUFFERS, the
   * largest (a transfer's batches are at most its window: every later one fits), none over
   * MAX_SPARE_BYTES — what the page holds between puts stays a window or two.
   */
  #keepSpare(b: ArrayBuffer | undefined): void {
    if (keep(this.#spares, b)) this.#keptNow();
  }

  /**
   * A buffer was just kept: the kept ones go once none was kept for as long as the worker keeps
   * an unused file's handle (`idleCloseMs`) — a transfer that moves keeps one many times a second,
   * one that ended or paused needs none. Before, up to two put buffers (a window's slots each,
   * ≈ 4 MiB) and two read buffers stayed on the page for as long as it lived, after every
   * transfer had ended.
   */
  #keptNow(): void {
    clearTimeout(this.#sparesIdle);
    this.#sparesIdle = setTimeout(() => this.#dropSpares(), this.#idleCloseMs);
  }

  /** Every kept buffer let go of (idle, or the store released). */
  #dropSpares(): void {
    clearTimeout(this.#sparesIdle);
    this.#sparesIdle = undefined;
    this.#spares.length = 0;
    this.#readSpares.length = 0;
  }

  /**
   * A buffer of chunks this store read (`getOpened`) that the caller no longer uses — none of its
   * views will be read again: the next read is made into it (the worker's `get` `into`) rather
   * than into new memory. Kept as the put buffers are (`#keepSpare`: two, the largest).
   */
  reuse(buffer: ArrayBuffer): void {
    if (keep(this.#readSpares, buffer)) this.#keptNow();
  }

  /** A buffer given back (`reuse`) that holds `bytes`, taken out of the kept ones; else none. */
  #readBuffer(bytes: number): ArrayBuffer | undefined {
    return take(this.#readSpares, bytes);
  }

  /** The sizes of the read buffers given back and kept (a test's check). */
  get readSpares(): number[] {
    return this.#readSpares.map((b) => b.byteLength);
  }

  /** The sizes of the put buffers kept for reuse (a test's check that the worker gives them back). */
  get spareBuffers(): number[] {
    return this.#spares.map((b) => b.byteLength);
  }

  /** How many requests wait for the worker's answer (a test's check that none is left waiting). */
  get waitingRequests(): number {
    return this.#waiting?.size ?? 0;
  }

  /** Close the files' handles (the next write opens them again): the engine stopped. */
  async release(): Promise<void> {
    this.#releases++;
    this.#dropSpares(); // the engine stopped: nothing will read or put into them
    if (!this.#link) return;
    await (await this.#link)?.({ op: "release" }).catch(() => undefined);
  }

  /**
   * The request `make` gives, asked of the worker; undefined when there is none (chunks go to
   * IndexedDB). When the worker fails under it — it died (an uncaught error), its reply could not
   * be read, or the request could not be posted — it is asked again, of a worker started again
   * when the one before died, up to WORKER_TRIES times in all (files.md §6): every request is
   * idempotent (a put writes the same slots at the same offsets, whether or not the dead worker
   * wrote them; a get reads; a delete of a file not there is done), so a chunk the store already
   * confirmed stays, and a transfer whose worker crashed goes on instead of failing as `storage`.
   * An error the worker answered with (a full disk: QuotaExceededError; a layout it refused) is
   * final. `make` is called once per try: a buffer transferred to a worker that died is gone.
   * Nor is a request asked again once the store was released after it was first asked: the engine
   * that asked it has stopped and let go of the files (files.md §6) — a put asked again of a new
   * worker would open a file after that, and write it again after Delete identity removed it.
   */
  async #ask(make: () => [Request, Transferable[]?]): Promise<OpfsReply | undefined> {
    const releases = this.#releases;
    for (let tries = 1; ; tries++) {
      const ask = await this.#worker();
      if (!ask) return undefined;
      const [m, transfer] = make();
      try {
        return await ask(m, transfer);
      } catch (e) {
        if (answered.has(e as Error) || tries >= WORKER_TRIES || this.#releases !== releases) throw e;
      }
    }
  }

  #worker(): Promise<Ask | undefined> {
    this.#link ??= this.#open().catch(() => undefined);
    return this.#link;
  }

  async #open(): Promise<Ask | undefined> {
    if (typeof Worker === "undefined" || !navigator.storage?.getDirectory) return undefined;
    const worker = this.#start();
    const waiting = new Map<number, { resolve: (r: OpfsReply) => void; reject: (e: Error) => void }>();
    let next = 0;
    let broken: Error | undefined;
    let opened = false;
    const fail = (e: Error) => {
      if (broken) return;
      broken = e;
      for (const w of waiting.values()) w.reject(e);
      waiting.clear();
      worker.terminate();
      // A worker that failed after it opened the folder: what it was asking fails, and the next
      // call starts another (else every transfer and every Save would fail until a reload). One
      // that failed to start leaves chunks to IndexedDB (`#link` answers undefined), not retried.
      if (opened) this.#link = undefined;
    };
    worker.onmessage = (e: MessageEvent<OpfsReply>) => {
      const w = waiting.get(e.data.id);
      if (!w) return;
      waiting.delete(e.data.id);
      if (!e.data.error) return w.resolve(e.data);
      // The worker's error, by the same name (a QuotaExceededError stays one: the engine says
      // the device is full, as with IndexedDB).
      const error = Object.assign(new Error(e.data.error.message), { name: e.data.error.name });
      answered.add(error);
      w.reject(error);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      fail(new Error(`the file store's worker failed: ${e.message}`));
    };
    // A reply that cannot be deserialized names no request (its id is in the bytes that did not
    // come through): without this, the request it answered would wait forever. Every waiting
    // request fails and the next call starts another worker, as when the worker dies. A listener,
    // not `onmessageerror`: Chromium has no such attribute on Worker, though it fires the event.
    worker.addEventListener("messageerror", () =>
      fail(new Error("the file store's worker sent a reply that could not be read")),
    );
    this.#waiting = waiting;
    const ask: Ask = (m, transfer = []) =>
      new Promise((resolve, reject) => {
        if (broken) return reject(broken);
        const id = ++next;
        waiting.set(id, { resolve, reject });
        try {
          worker.postMessage({ ...m, id } as OpfsRequest, transfer);
        } catch (e) {
          // Not sent (a DataCloneError: a detached buffer, a value that cannot be cloned): no
          // reply will come for it, so it waits for none.
          waiting.delete(id);
          reject(e as Error);
        }
      });
    const reply = await ask({ op: "open", dir: this.#dir, idleCloseMs: this.#idleCloseMs }).catch(
      () => undefined,
    );
    if (reply?.ok && !broken) {
      opened = true;
      this.#opens = reply.opens === true;
      return ask;
    }
    worker.terminate(); // no sync access handles, or no OPFS at all here: IndexedDB it is
    return undefined;
  }
}
