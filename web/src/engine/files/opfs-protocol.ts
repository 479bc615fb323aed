/**
 * What `OpfsFileStore` (opfs-store.ts) and its worker (opfs-worker.ts) say to each other, and the
 * layout of a transfer's file (docs/protocol/files.md §6): one module both import, so the page and
 * the worker cannot disagree on a slot's size.
 */
/** A slot's length field: the chunk's length, 32-bit little-endian; 0 = nothing stored there. */
export const SLOT_HEADER_BYTES = 4;
/**
 * Chunk `i` of a transfer's file is at `i × SLOT_BYTES`: its length and a full sealed chunk
 * (wire.ts `SEALED_CHUNK_BYTES`, 65 040; written out here, and test/e2e/file-store.e2e.ts checks
 * they agree).
 */
export const SLOT_BYTES = SLOT_HEADER_BYTES + 65_040;
/**
 * A transfer offered with another chunk size (files.md §2, since session 18) has slots of its own
 * size: its length field and a full sealed chunk of that size, the request says which (`slot`).
 * At most a full chunk of the largest size an offer may name (wire.ts `MAX_CHUNK_BYTES` + the
 * tag: 262 131 bytes; the unit tests check they agree).
 */
export const MAX_SLOT_BYTES = SLOT_HEADER_BYTES + 262_131;
/** The slot of a transfer whose full chunk is `chunkBytes` sealed bytes (absent: the default's). */
export const slotBytesFor = (chunkBytes?: number): number =>
  chunkBytes === undefined ? SLOT_BYTES : SLOT_HEADER_BYTES + chunkBytes;
/** Whether a request's slot size is one a transfer can have (the worker refuses any other). */
export const validSlotBytes = (slot: unknown): slot is number =>
  typeof slot === "number" &&
  Number.isSafeInteger(slot) &&
  slot > SLOT_HEADER_BYTES &&
  slot <= MAX_SLOT_BYTES;

/**
 * The worker closes a file's handle after this long unused (opfs-worker.ts), unless the store
 * was made with another delay (opfs-store.ts `idleCloseMs`: tests): a sync access handle locks
 * its file, and Delete identity (app/device-files.ts) waits at most about this long for a file
 * still held to be let go.
 */
export const OPFS_IDLE_CLOSE_MS = 2_000;

export const OPFS_OPS = ["open", "put", "get", "delete", "release"] as const;

/** Bytes of slots one `get` reads at most (one buffer of the worker's, transferred whole). */
export const MAX_READ_BYTES = 4 * 1024 * 1024;
/**
 * Slots of `slot` bytes per `get`: 64 of the default's, 16 of 255 KiB chunks' (files.md §6). The
 * page asks no more in one request (opfs-store.ts) and the worker refuses more (`validRead`): a
 * `get` for more would have it allocate up to the rest of the file in one buffer.
 */
export const slotsPerRead = (slot: number): number => Math.max(1, Math.floor(MAX_READ_BYTES / slot));

/**
 * Whether a `get`'s slots are ones the store reads (the worker checks before it reads): from slot
 * `first` (a whole number, its offset one too), `count` of them, at most `slotsPerRead`.
 */
export const validRead = (first: unknown, count: unknown, slot: number): boolean =>
  typeof first === "number" &&
  Number.isSafeInteger(first) &&
  first >= 0 &&
  Number.isSafeInteger(first * slot) &&
  typeof count === "number" &&
  Number.isSafeInteger(count) &&
  count >= 0 &&
  count <= slotsPerRead(slot);

/** An AES-256-GCM chunk key's bytes, and a chunk nonce's (wire.ts `chunkNonce`; files.md §3). */
export const CHUNK_KEY_BYTES = 32;
export const CHUNK_NONCE_BYTES = 12;
/**
 * The longest chunk AAD a request may carry: wire.ts `chunkAad` is 22 bytes for FILE_CHUNK and 24
 * for FILE_CHUNK_WIDE (the unit tests check they fit; this bundle does not import wire.ts).
 */
export const MAX_CHUNK_AAD_BYTES = 64;

/**
 * A put's or a get's `open` checked before anything is read, opened or written (opfs-worker.ts):
 * a 32-byte key, and one nonce (12 bytes) and one AAD (1 … MAX_CHUNK_AAD_BYTES) for each of the
 * `n` chunks or slots — refused with a RangeError that says which, not opened as far as it goes
 * (a nonce missing or of another type read as "did not open", and the page then told its copy was
 * damaged, or a batch that it was changed on the way).
 */
export function checkOpen(open: unknown, n: number): void {
  const { key, ivs, aads } = (typeof open === "object" && open !== null ? open : {}) as Record<
    string,
    unknown
  >;
  if (!(key instanceof Uint8Array) || key.length !== CHUNK_KEY_BYTES) throw new RangeError("not a chunk key");
  if (!Array.isArray(ivs) || !Array.isArray(aads) || ivs.length !== n || aads.length !== n)
    throw new RangeError("one nonce and one AAD per chunk");
  for (let k = 0; k < n; k++) {
    const iv: unknown = ivs[k];
    const aad: unknown = aads[k];
    if (!(iv instanceof Uint8Array) || iv.length !== CHUNK_NONCE_BYTES)
      throw new RangeError("not a chunk nonce");
    if (!(aad instanceof Uint8Array) || aad.length === 0 || aad.length > MAX_CHUNK_AAD_BYTES)
      throw new RangeError("not a chunk AAD");
  }
}

export type OpfsRequest =
  /** `idleCloseMs`: how long a file's handle stays open unused (OPFS_IDLE_CLOSE_MS when absent). */
  | { id: number; op: "open"; dir: string; idleCloseMs?: number }
  /**
   * `slots`: the batch's consecutive slots from `first` on, laid out by `packSlots` on the page
   * and transferred (not cloned): the worker writes them as they are, with one call.
   */
  | {
      id: number;
      op: "put";
      file: string;
      first: number;
      slots: Uint8Array<ArrayBuffer>;
      slot?: number;
      /**
       * Open and digest the batch here before it is written (opfs-store.ts `putOpened`): the
       * per-transfer key, and each slot's chunk's AES-GCM nonce and AAD (wire.ts `chunkNonce`,
       * `chunkAad`: made on the page, so this bundle stays free of the engine's modules). The
       * reply then has the plaintexts' digests, or `damaged` and nothing written.
       */
      open?: { key: Uint8Array; ivs: Uint8Array[]; aads: Uint8Array[] };
    }
  /** `slot`: the transfer's slot size (`slotBytesFor`); absent, `SLOT_BYTES` (every file before session 18). */
  | {
      id: number;
      op: "get";
      file: string;
      first: number;
      count: number;
      slot?: number;
      /**
       * Open each chunk read here before it is answered (opfs-store.ts `getOpened`: the sender's
       * check of its sealed copy, files.md §5): the per-transfer key, and the AES-GCM nonce and AAD
       * of each of the `count` slots asked for, in order. The reply then says which opened.
       */
      open?: { key: Uint8Array; ivs: Uint8Array[]; aads: Uint8Array[] };
      /**
       * A buffer of an earlier read the page is done with (opfs-store.ts `reuse`), transferred:
       * read into when it holds the slots asked for, rather than a new buffer (new memory: a page
       * fault per 4 KiB as the read first writes it; bench/README.md, bench:files, session 21).
       * Only the bytes this read wrote are answered.
       */
      into?: ArrayBuffer;
    }
  | { id: number; op: "delete"; file: string }
  /** Close every file's handle (the engine stopped: Delete identity may remove the folder). */
  | { id: number; op: "release" };

export interface OpfsReply {
  id: number;
  /** `open`: sync access handles exist here (else the store keeps chunks in IndexedDB). */
  ok?: boolean;
  /** `open`: the worker can open and digest chunks (WebCrypto's AES-GCM and SHA-256: a put's `open`). */
  opens?: boolean;
  /** `get`: the chunks found, in index order, and their indexes (none: no file, or only holes). */
  indexes?: number[];
  chunks?: Uint8Array[];
  /** `get` with `open`: for each chunk answered, whether it opened under the key (its plaintext wiped). */
  opened?: boolean[];
  /** `put` with `open`: each chunk's plaintext digest (files.md §1), in order — written. */
  digests?: Uint8Array[];
  /** `put` with `open`: the position in the batch of the first chunk that did not open — nothing written. */
  damaged?: number;
  /**
   * `put`: the buffer of the request's slots, transferred back once written (or refused as
   * `damaged`) — the page lays its next batch out in it (`packSlots` `into`) rather than in a new
   * one: a new buffer of megabytes is new memory, and every page of it a fault into the kernel as
   * it is first written (bench/README.md, bench:files, session 21).
   */
  spare?: ArrayBuffer;
  error?: { name: string; message: string };
}

/**
 * Chunks `first`, `first + 1`, … laid out as their slots (§6) in one buffer — `into` when it is
 * large enough (one the worker gave back), else a new one — ready to be transferred to the worker
 * and written with one call: each slot its length (little-endian) and its bytes, the unused end of
 * a short slot zero. Done on the page because a structured clone of
 * each chunk into the worker made three copies of every byte (serialised on the page, deserialised
 * in the worker, then copied into the worker's write buffer); this is one, and the transfer none
 * (bench/README.md, bench:files, session 16: the store worker's CPU per MiB 1.7 → 1.1).
 * A chunk that is empty or larger than a slot is refused (an empty slot reads as nothing stored).
 */
export function packSlots(
  chunks: readonly Uint8Array[],
  slot = SLOT_BYTES,
  into?: ArrayBuffer,
): Uint8Array<ArrayBuffer> {
  const last = chunks.at(-1);
  if (!last) return new Uint8Array(0);
  if (chunks.some((c) => c.length === 0 || c.length > slot - SLOT_HEADER_BYTES))
    throw new RangeError("a chunk is empty or larger than a slot");
  const bytes = (chunks.length - 1) * slot + SLOT_HEADER_BYTES + last.length;
  // A buffer given back by the worker (`spare`) holds an earlier batch's bytes: every byte of the
  // view is written below, the unused end of each slot zeroed, as a new buffer has it.
  const reused = into !== undefined && into.byteLength >= bytes;
  const out = reused ? new Uint8Array(into, 0, bytes) : new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  for (const [n, c] of chunks.entries()) {
    view.setUint32(n * slot, c.length, true);
    out.set(c, n * slot + SLOT_HEADER_BYTES);
    if (reused && c !== last) out.fill(0, n * slot + SLOT_HEADER_BYTES + c.length, (n + 1) * slot);
  }
  return out;
}

/**
 * The bytes a buffer for `count` slots of `slot` bytes is made with when none given back fits
 * (opfs-store.ts `#slotBuffer`): whole slots, so a later batch of as many chunks or fewer fits it.
 */
export const slotBufferBytes = (count: number, slot: number): number => count * slot;

/**
 * Whether `slots` is laid out as `packSlots` lays it out (the worker checks what it is asked to
 * write): every slot's length 1 … a full chunk, the unused end of a slot before the last zero,
 * and the buffer ending right after the last one's.
 */
export function validSlots(slots: Uint8Array, slot = SLOT_BYTES): boolean {
  if (slots.length <= SLOT_HEADER_BYTES) return false;
  const view = new DataView(slots.buffer, slots.byteOffset, slots.byteLength);
  const last = Math.floor((slots.length - SLOT_HEADER_BYTES) / slot);
  for (let k = 0; k <= last; k++) {
    const length = view.getUint32(k * slot, true);
    if (length === 0 || length > slot - SLOT_HEADER_BYTES) return false;
    if (k === last) return last * slot + SLOT_HEADER_BYTES + length === slots.length;
    // A short chunk before the last (none in a file's batches but its end): the rest of its slot
    // zero, as packSlots leaves it — a slot holds one chunk and nothing else.
    const end = (k + 1) * slot;
    for (let at = k * slot + SLOT_HEADER_BYTES + length; at < end; at++) if (slots[at] !== 0) return false;
  }
  return false;
}

/**
 * The chunks in `slots`, bytes of a transfer's file read from slot `first` on (§6): each slot's
 * chunk by its index. A length of 0 (never written: a hole, or past the end), one above what a
 * slot holds (not a slot this store wrote) or one cut short by the end of what was read is not a
 * chunk. The worker reads through its sync access handle; the store, when the worker cannot
 * start, through the asynchronous API (opfs-store.ts) — one reading for both. `views`: the
 * chunks are views into `slots` (which the caller then owns whole), else copies.
 */
export function readSlots(
  slots: Uint8Array,
  first: number,
  views = false,
  slot = SLOT_BYTES,
): { indexes: number[]; chunks: Uint8Array[] } {
  const indexes: number[] = [];
  const chunks: Uint8Array[] = [];
  const view = new DataView(slots.buffer, slots.byteOffset, slots.byteLength);
  for (let at = 0, n = 0; at + SLOT_HEADER_BYTES <= slots.length; at += slot, n++) {
    const length = view.getUint32(at, true);
    if (length === 0 || length > slot - SLOT_HEADER_BYTES) continue;
    if (at + SLOT_HEADER_BYTES + length > slots.length) continue;
    indexes.push(first + n);
    const from = at + SLOT_HEADER_BYTES;
    // `views`: `slots` is a buffer of the caller's own (the worker's read, transferred whole).
    chunks.push(views ? slots.subarray(from, from + length) : slots.slice(from, from + length));
  }
  return { indexes, chunks };
}

/** A transfer's file name: its key with nothing a file name cannot hold ("/" is in every key). */
export const chunkFileName = (key: string): string => `${encodeURIComponent(key)}.chunks`;
