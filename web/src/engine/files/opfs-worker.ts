/**
 * The dedicated worker of `OpfsFileStore` (opfs-store.ts; docs/protocol/files.md §6): sealed
 * chunks written into and read from one origin-private file per transfer through a sync access
 * handle — `createSyncAccessHandle` exists only in dedicated workers. A write is a copy into the
 * file (no structured clone into a database, no LevelDB): on a profile on disk it costs a quarter
 * of the CPU per MiB of an IndexedDB `put` (bench/README.md, bench:files, session 15).
 *
 * A put may ask the worker to open and digest its batch first (§4, `putOpened` in opfs-store.ts):
 * the AES-256-GCM opening and the SHA-256 of each plaintext then run here, on another thread than
 * the page's, and a batch with a chunk that does not open is not written. A get may ask it to open
 * what it read (`getOpened`, the sender's check of its sealed copy: §5): it answers the sealed
 * chunks and whether each opened, never a plaintext.
 *
 * Layout (§6): chunk `i` at offset `i × SLOT_BYTES` — its length as a 32-bit little-endian
 * unsigned integer, then its bytes. A slot never written reads as zeros (a hole, or past the end
 * of the file): length 0 means "not stored". Requests run one after another, in the order they
 * came; a put answers only after `flush()`, so a chunk the store said it wrote is on disk (the
 * engine saves a resume point only over chunks a put answered for: §5, Resume).
 */

import { wipe } from "../../../../core/bytes.ts";
import { openAndDigest } from "./open-batch.ts";
import {
  checkOpen,
  OPFS_IDLE_CLOSE_MS,
  OPFS_OPS,
  type OpfsReply,
  type OpfsRequest,
  readSlots,
  SLOT_BYTES,
  validRead,
  validSlotBytes,
  validSlots,
} from "./opfs-protocol.ts";
import { WorkerKeys } from "./worker-keys.ts";

/**
 * The parts of the File System Access API a worker has and lib.dom does not name. `flush`,
 * `close` and `getSize` answer at once in current browsers, with a promise in the first ones that
 * had sync access handles (an earlier draft of the spec: Chromium 102–107, Safari 15.2–16.3):
 * the worker awaits each, so a put still answers after its flush and a read still sees the file's
 * size there (docs/protocol/files.md §6).
 */
interface SyncHandle {
  read(into: Uint8Array, options: { at: number }): number;
  write(from: Uint8Array, options: { at: number }): number;
  flush(): void | Promise<void>;
  close(): void | Promise<void>;
  getSize(): number | Promise<number>;
}
interface WorkerScope {
  onmessage: ((e: MessageEvent<OpfsRequest>) => void) | null;
  postMessage(message: OpfsReply, transfer?: Transferable[]): void;
}
const scope = globalThis as unknown as WorkerScope;

let dir: FileSystemDirectoryHandle | undefined;
let dirName = "";
/** Requests, and idle closes, one at a time in the order they came. */
let queue: Promise<void> = Promise.resolve();
const open = new Map<string, SyncHandle>();
/**
 * A file's handle is closed after `idleCloseMs` unused (OPFS_IDLE_CLOSE_MS unless `open` said
 * otherwise): a sync access handle locks its file (no other handle, no removal), and a transfer
 * that ended or paused should not keep it from Delete identity, another tab, or the browser
 * clearing the site's storage. A transfer that moves uses it many times a second; opening it
 * again costs one round trip to the browser.
 */
const idle = new Map<string, ReturnType<typeof setTimeout>>();
let idleCloseMs = OPFS_IDLE_CLOSE_MS;

/**
 * How long a file another handle locks is waited for (`unlocked`). A worker started again after
 * one died (opfs-store.ts `#ask`) may find the dead one's sync access handle still holding the
 * file: the browser lets go of it as it tears that worker down, which goes on after `terminate()`
 * returned — opening it then fails with NoModificationAllowedError, and the put asked again would
 * fail with it (the transfer as `storage`) though the file is free a moment later
 * (docs/protocol/files.md §6). Bounded: a file held for good (another tab's worker writing it)
 * fails as before, its error answered.
 */
const LOCK_WAIT_MS = 3_000;
const LOCK_RETRY_MAX_MS = 200;

/** `step` (opening or removing a file), tried again while another handle locks the file, up to LOCK_WAIT_MS. */
async function unlocked<T>(step: () => Promise<T>): Promise<T> {
  const until = Date.now() + LOCK_WAIT_MS;
  for (let wait = 10; ; wait = Math.min(wait * 2, LOCK_RETRY_MAX_MS)) {
    try {
      return await step();
    } catch (e) {
      if ((e as Error).name !== "NoModificationAllowedError" || Date.now() + wait > until) throw e;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** Closes a file's handle (its lock goes with it); one that fails to close is dropped all the same. */
async function close(file: string): Promise<void> {
  keys.forget(file);
  clearTimeout(idle.get(file));
  idle.delete(file);
  const h = open.get(file);
  open.delete(file);
  try {
    await h?.close();
  } catch {
    // Closed already, or the browser let go of it: nothing holds the file here any more.
  }
}

function used(file: string): void {
  clearTimeout(idle.get(file));
  // Closed in the queue's turn, so never under a request that is using it.
  idle.set(
    file,
    setTimeout(() => {
      queue = queue.then(() => close(file));
    }, idleCloseMs),
  );
}

async function handle(file: string, create: boolean): Promise<SyncHandle | undefined> {
  const known = open.get(file);
  if (known) {
    used(file);
    return known;
  }
  if (!dir) throw new Error("the store was not opened");
  let f: FileSystemFileHandle;
  try {
    f = await dir.getFileHandle(file, { create });
  } catch (e) {
    if ((e as Error).name !== "NotFoundError") throw e;
    if (!create) return undefined;
    // The folder itself went (the browser cleared the site's storage): made again.
    dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(dirName, { create: true });
    f = await dir.getFileHandle(file, { create });
  }
  const h = await unlocked(() =>
    (f as unknown as { createSyncAccessHandle(): Promise<SyncHandle> }).createSyncAccessHandle(),
  );
  open.set(file, h);
  used(file);
  return h;
}

async function run(m: OpfsRequest): Promise<{ reply: OpfsReply; transfer?: Transferable[] }> {
  switch (m.op) {
    case "open": {
      // Sync access handles: Chromium 102+, Firefox 111+, Safari 15.2+ (in dedicated workers).
      // Asked first: a browser without them keeps chunks in IndexedDB, and gets no empty folder.
      const ok =
        "FileSystemFileHandle" in globalThis &&
        "createSyncAccessHandle" in
          (globalThis as unknown as { FileSystemFileHandle: { prototype: object } }).FileSystemFileHandle
            .prototype;
      if (!ok) return { reply: { id: m.id, ok } };
      const root = await navigator.storage.getDirectory();
      dirName = m.dir;
      idleCloseMs = m.idleCloseMs ?? OPFS_IDLE_CLOSE_MS;
      dir = await root.getDirectoryHandle(m.dir, { create: true });
      // Said, not assumed: a put's `open` needs this worker's WebCrypto (`openSlots`); without
      // it the page opens the chunks itself (opfs-store.ts `opensChunks`).
      const subtle = globalThis.crypto?.subtle;
      const opens = typeof subtle?.decrypt === "function" && typeof subtle.digest === "function";
      return { reply: { id: m.id, ok, opens } };
    }
    case "put": {
      // One buffer of consecutive slots, laid out and transferred by the page (packSlots): written
      // as it is, with one call — each call is a system call on disk, and a round trip to the
      // browser process off the record.
      // The transfer's slot size (files.md §6): absent for the default chunk size, else one a
      // transfer can have — a request with any other is refused before anything is written.
      const slot = m.slot ?? SLOT_BYTES;
      if (!validSlotBytes(slot)) throw new RangeError("not a slot size");
      if (!(m.slots instanceof Uint8Array) || !validSlots(m.slots, slot))
        throw new RangeError("the slots are not laid out as packSlots lays them out");
      // Opened and digested here first when the page asks (files.md §4: a chunk that does not
      // open ends its transfer before anything of its batch is stored): the page's main thread
      // then neither copies each chunk into WebCrypto twice nor holds its plaintext — this
      // thread, on another core, does (bench/README.md, bench:files, session 19).
      const digests = m.open ? await openSlots(m.file, m.slots, slot, m.open) : undefined;
      // The slots' buffer goes back to the page for its next batch (opfs-protocol.ts `spare`):
      // nothing here keeps a view of it once written or refused.
      const spare = { spare: m.slots.buffer };
      const back = [m.slots.buffer];
      if (typeof digests === "number")
        return { reply: { id: m.id, damaged: digests, ...spare }, transfer: back };
      const h = await handle(m.file, true);
      if (!h) throw new Error("no file");
      if (h.write(m.slots, { at: m.first * slot }) !== m.slots.length) throw quota();
      await h.flush(); // durable before the answer: the resume point counts only what is on disk (§5)
      return { reply: digests ? { id: m.id, digests, ...spare } : { id: m.id, ...spare }, transfer: back };
    }
    case "get": {
      const slot = m.slot ?? SLOT_BYTES;
      if (!validSlotBytes(slot)) throw new RangeError("not a slot size");
      // Refused before anything is read: slots past what one read holds (the page asks at most
      // `slotsPerRead`), and an `open` whose key, nonces or AADs are not one per slot asked for —
      // before, a nonce missing read as a chunk that did not open (the copy said damaged).
      if (!validRead(m.first, m.count, slot)) throw new RangeError("not slots the store reads");
      if (m.open) checkOpen(m.open, m.count);
      const h = await handle(m.file, false);
      let indexes: number[] = [];
      let chunks: Uint8Array[] = [];
      let read: Uint8Array<ArrayBuffer> | undefined;
      if (h) {
        // One read of the slots asked for (as far as the file goes) into a buffer of its own,
        // transferred whole: the chunks go back as views into it (no copy per chunk here, no
        // clone to the page).
        const from = m.first * slot;
        const bytes = Math.max(0, Math.min(m.count * slot, (await h.getSize()) - from));
        // Into the page's buffer of an earlier read when it holds them (opfs-protocol.ts `into`):
        // only what this read wrote (`got`, below) is answered, whatever else it holds.
        read =
          m.into instanceof ArrayBuffer && m.into.byteLength >= bytes
            ? new Uint8Array(m.into, 0, bytes)
            : new Uint8Array(bytes);
        const got = bytes > 0 ? h.read(read, { at: from }) : 0;
        ({ indexes, chunks } = readSlots(read.subarray(0, got), m.first, true, slot));
      }
      // The sender's check of its copy (files.md §5), here rather than on the page: the page's
      // main thread then neither copies each chunk into WebCrypto nor gets its plaintext back to
      // wipe and collect — it only sends (bench/README.md, bench:files, session 20).
      const opened = m.open ? await openRead(m.file, m.first, indexes, chunks, m.open) : undefined;
      return {
        reply: opened ? { id: m.id, indexes, chunks, opened } : { id: m.id, indexes, chunks },
        transfer: read && chunks.length > 0 ? [read.buffer] : [],
      };
    }
    case "delete": {
      await close(m.file);
      if (!dir) throw new Error("the store was not opened");
      const from = dir;
      await unlocked(() => from.removeEntry(m.file)).catch((e: Error) => {
        if (e.name !== "NotFoundError") throw e;
      });
      return { reply: { id: m.id } };
    }
    case "release": {
      // Every file this worker holds a key for too: a batch that did not open (`damaged`) left
      // its transfer's key here with no handle opened, and the engine that asked has stopped.
      for (const file of new Set([...open.keys(), ...keys.files()])) await close(file);
      return { reply: { id: m.id } };
    }
  }
}

/** Each file's per-transfer key, imported once; forgotten when its handle closes (worker-keys.ts). */
const keys = new WorkerKeys((raw) =>
  globalThis.crypto.subtle.importKey("raw", raw as Uint8Array<ArrayBuffer>, "AES-GCM", false, ["decrypt"]),
);

/**
 * The batch's chunks opened (AES-256-GCM, files.md §3) and their plaintexts digested (SHA-256,
 * §1) through this worker's WebCrypto — the primitives the page's provider uses where the browser
 * has them; a wrong answer from either fails safe (a chunk that does not open ends the transfer
 * as damaged, a wrong digest fails the file hash). The digests, or the first that did not open.
 */
async function openSlots(
  file: string,
  slots: Uint8Array,
  slot: number,
  open: { key: Uint8Array; ivs: Uint8Array[]; aads: Uint8Array[] },
): Promise<Uint8Array[] | number> {
  const { chunks } = readSlots(slots, 0, true, slot);
  checkOpen(open, chunks.length);
  const { key, ivs, aads } = open;
  const cryptoKey = await keyFor(file, key);
  return openAndDigest(chunks.length, {
    open: (n) => openOne(cryptoKey, ivs[n], aads[n], chunks[n]),
    sha256: async (data) =>
      new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>)),
  });
}

/**
 * The file's per-transfer key as a WebCrypto key, imported once per file (`keys`, worker-keys.ts);
 * the key goes with the file's idle close, even if nothing of it is ever written.
 */
function keyFor(file: string, key: Uint8Array): Promise<CryptoKey> {
  const imported = keys.get(file, key);
  used(file);
  return imported;
}

/** One sealed chunk opened (AES-256-GCM, files.md §3): its plaintext, or undefined when its tag does not verify. */
async function openOne(
  key: CryptoKey,
  iv: Uint8Array | undefined,
  aad: Uint8Array | undefined,
  sealed: Uint8Array | undefined,
): Promise<Uint8Array | undefined> {
  if (!iv || !aad || !sealed) return undefined;
  try {
    const additionalData = aad as Uint8Array<ArrayBuffer>;
    const data = sealed as Uint8Array<ArrayBuffer>;
    const plain = await globalThis.crypto.subtle.decrypt(
      { name: "AES-GCM", iv: iv as Uint8Array<ArrayBuffer>, additionalData },
      key,
      data,
    );
    return new Uint8Array(plain);
  } catch {
    return undefined; // OperationError: the tag did not verify
  }
}

/**
 * The chunks a `get` read (slots `indexes`, from `first` on) opened under the key, each with the
 * nonce and AAD of its slot's place in the request, and wiped at once: whether each opened — the
 * sender's check of its sealed copy before it sends a chunk (files.md §5). `open` was checked
 * (`checkOpen`: one nonce and one AAD per slot asked for), so a hole shifts nothing.
 */
async function openRead(
  file: string,
  first: number,
  indexes: readonly number[],
  chunks: readonly Uint8Array[],
  open: { key: Uint8Array; ivs: Uint8Array[]; aads: Uint8Array[] },
): Promise<boolean[]> {
  const { key, ivs, aads } = open;
  const cryptoKey = await keyFor(file, key);
  return Promise.all(
    chunks.map(async (c, k) => {
      const at = (indexes[k] ?? -1) - first;
      const plain = await openOne(cryptoKey, ivs[at], aads[at], c);
      wipe(plain);
      return plain !== undefined;
    }),
  );
}

/** A short write is the disk or the origin's quota full: said as IndexedDB says it. */
const quota = () => new DOMException("the origin's storage is full", "QuotaExceededError");

scope.onmessage = (e) => {
  const m = e.data;
  if (!OPFS_OPS.includes(m?.op)) return;
  queue = queue.then(async () => {
    try {
      const { reply, transfer } = await run(m);
      scope.postMessage(reply, transfer ?? []);
    } catch (err) {
      const { name, message } = err as Error;
      scope.postMessage({ id: m.id, error: { name: String(name), message: String(message) } });
    }
  });
};
