/**
 * Transfer records sealed at rest (docs/protocol/files.md §6): what a transfer says about the file
 * — its name, size, type, hash, the sender's preview, the state and reason — is sealed with
 * AES-256-GCM before it reaches the file store, as the chat's messages are sealed by the vault
 * (web/src/storage/storage.ts). Only what the store needs to list and delete stays clear: the
 * record's key (`<contact>/<direction>/<id>`; the contact id is clear in the chat's own database
 * too) and its time.
 *
 * The records key is one random 32-byte engine secret (`files/records-key`), so it is sealed by
 * the vault like the per-transfer keys and re-sealed with them on a passphrase change: the file
 * store never needs re-sealing. AAD = "loft/file-record/v1" ‖ the record's key, so a sealed record
 * cannot be moved to another transfer. Records an earlier version wrote in clear are read as they
 * are and sealed on load (`FileTransfers` writes them back through `putTransfer`).
 */
import { encode } from "@msgpack/msgpack";
import { utf8, wipe } from "../../../../core/bytes.ts";
import { decodeOwnRecord } from "../../../../core/codec/codec.ts";
import type { CryptoProvider } from "../../../../core/crypto/provider.ts";
import { settledWithin } from "../context.ts";
import type { CheckedChunks, FileRecord, FileStore, FileTransfer, OpenedBatch } from "./store.ts";
import type { FileChunkFrame, FileChunkHeader } from "./wire.ts";

/** The engine secret holding the records key. */
export const RECORDS_KEY_SECRET = "files/records-key";
const AAD_LABEL = "loft/file-record/v1";
const IV_BYTES = 12;

/** Where the records key lives (the engine's sealed secrets, `EngineStorage`). */
export interface RecordKeySecrets {
  loadSecret(name: string): Promise<Uint8Array | undefined>;
  saveSecret(name: string, value: Uint8Array): Promise<void>;
}

/** A record that is in the store as an earlier version wrote it: every field in clear. */
const isClearRecord = (r: FileRecord | FileTransfer): r is FileTransfer => !("sealed" in r);

/** A call to a store closed as its engine stopped (`SealedFileStore.close`). */
export class StoreClosed extends Error {
  override name = "StoreClosed";
  constructor() {
    super("the engine stopped: its file store is closed");
  }
}

/**
 * The transfers as the engine reads and writes them, sealed on the way to `store` and opened on
 * the way back; chunks pass through (they are sealed already, under the per-transfer key).
 */
export class SealedFileStore {
  readonly #store: FileStore;
  readonly #crypto: CryptoProvider;
  readonly #secrets: RecordKeySecrets;
  #key: Promise<Uint8Array> | undefined;
  /** `readsCopyCheaply`'s answer: the store's kind does not change. */
  #cheapCopy: Promise<boolean> | undefined;
  /** `opensChunks`'s answer, likewise. */
  #opens: Promise<boolean> | undefined;
  /** Writes of one record run in call order (sealing is async; an older state must not win). */
  readonly #writes = new Map<string, Promise<void>>();

  /** Set by `close`: every later call is refused (`StoreClosed`). */
  #closed = false;
  /** Calls under way (the store's own promises): `close` waits for them. */
  readonly #busy = new Set<Promise<unknown>>();
  /** Set by `close`: the calls under way then, all settled. */
  #ended: Promise<void> | undefined;

  constructor(store: FileStore, crypto: CryptoProvider, secrets: RecordKeySecrets) {
    this.#store = store;
    this.#crypto = crypto;
    this.#secrets = secrets;
  }

  /**
   * The engine stops (transfers.ts `stop`): calls under way end — waited for up to `boundMs` —
   * and every later one is refused, so nothing of this engine writes or opens a file after the
   * store lets go of its files (`FileStore.release`, docs/protocol/files.md §6) — another engine
   * (a new username) or Delete identity has them. True when all ended within the bound.
   */
  async close(boundMs: number): Promise<boolean> {
    this.#closed = true;
    this.#ended ??= Promise.allSettled([...this.#busy]).then(() => {});
    return settledWithin(this.#ended, boundMs);
  }

  /** Resolves once `close` was called and every call under way then ended, however late. */
  closed(): Promise<void> {
    return this.#ended ?? Promise.reject(new Error("the store is not closed"));
  }

  /** `call` run now, and counted until it ends; refused once closed. */
  #run<T>(call: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreClosed());
    const p = call();
    this.#busy.add(p);
    void p.then(
      () => this.#busy.delete(p),
      () => this.#busy.delete(p),
    );
    return p;
  }

  /** Seal and store a copy of `t` as it is now. */
  putTransfer(t: FileTransfer): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreClosed());
    const snapshot = structuredClone(t);
    const before = this.#writes.get(t.key) ?? Promise.resolve();
    const write = before
      .catch(() => {})
      .then(async () => {
        const sealed = await this.#seal(snapshot);
        return this.#run(() => this.#store.putRecord(sealed));
      });
    this.#writes.set(t.key, write);
    // Both ways: `finally` would return a promise of its own, rejected with a refused write and
    // handled by no one (an unhandled rejection for every write the storage refuses).
    const done = () => {
      if (this.#writes.get(t.key) === write) this.#writes.delete(t.key);
    };
    write.then(done, done);
    return write;
  }

  /**
   * Every transfer, oldest first, and which of them were stored in clear (to be sealed now). A
   * record that does not open (damaged, or from a records key since lost) is skipped and counted.
   * A store call like the others (`#run`): refused once closed, and waited for by `close`.
   */
  async listTransfers(): Promise<{ transfers: FileTransfer[]; clear: Set<string>; unreadable: number }> {
    const transfers: FileTransfer[] = [];
    const clear = new Set<string>();
    let unreadable = 0;
    for (const r of await this.#run(() => this.#store.listRecords())) {
      if (isClearRecord(r)) {
        transfers.push(r);
        clear.add(r.key);
        continue;
      }
      const t = await this.#open(r);
      if (t) transfers.push(t);
      else unreadable++;
    }
    return { transfers: transfers.sort((a, b) => a.at - b.at), clear, unreadable };
  }

  /** `chunkBytes`: the sealed bytes of one of the transfer's full chunks (store.ts `FileStore`). */
  putChunks(key: string, first: number, sealed: Uint8Array[], chunkBytes?: number): Promise<void> {
    return this.#run(() => this.#store.putChunks(key, first, sealed, chunkBytes));
  }
  /**
   * Whether the store opens and digests what it stores (`FileStore.opensChunks`: the OPFS store's
   * worker started and can), asked once — false when it cannot say, or has no `putOpened`. Not
   * merely whether it has `putOpened`: the OPFS store has it even where its worker cannot start,
   * and each chunk would then wait for its batch's store to be opened on this page.
   */
  opensChunks(): Promise<boolean> {
    this.#opens ??= this.#run(async () =>
      this.#store.putOpened ? ((await this.#store.opensChunks?.()) ?? false) : false,
    ).catch(() => false);
    return this.#opens;
  }
  /** The store's `putOpened` (store.ts `FileStore`); undefined also when it has none. */
  putOpened(
    key: string,
    first: number,
    chunks: readonly FileChunkFrame[],
    chunkKey: Uint8Array,
    chunkBytes?: number,
  ): Promise<OpenedBatch | undefined> {
    return this.#run(
      () => this.#store.putOpened?.(key, first, chunks, chunkKey, chunkBytes) ?? Promise.resolve(undefined),
    );
  }
  /** The store's `getOpened` (store.ts `FileStore`); undefined also when it has none. */
  getOpened(
    key: string,
    headers: readonly FileChunkHeader[],
    chunkKey: Uint8Array,
    chunkBytes?: number,
  ): Promise<CheckedChunks | undefined> {
    return this.#run(
      () => this.#store.getOpened?.(key, headers, chunkKey, chunkBytes) ?? Promise.resolve(undefined),
    );
  }
  /** The store's `reuse` (store.ts `FileStore`): nothing once closed, or where it has none. */
  reuse(buffer: ArrayBuffer): void {
    if (!this.#closed) this.#store.reuse?.(buffer);
  }
  getChunk(key: string, index: number, chunkBytes?: number): Promise<Uint8Array | undefined> {
    return this.#run(() => this.#store.getChunk(key, index, chunkBytes));
  }
  getChunks(key: string, first: number, count: number, chunkBytes?: number): Promise<Uint8Array[]> {
    return this.#run(() => this.#store.getChunks(key, first, count, chunkBytes));
  }
  /**
   * The store's `readsCopyCheaply`, asked once (false when it has none or cannot say). A store
   * call like the others (`#run`): asking may start the OPFS store's worker, which opens (makes)
   * its folder — not once the store is closed and its files let go of (Delete identity).
   */
  readsCopyCheaply(): Promise<boolean> {
    this.#cheapCopy ??= this.#run(() => this.#store.readsCopyCheaply?.() ?? Promise.resolve(false)).catch(
      () => false,
    );
    return this.#cheapCopy;
  }
  deleteChunks(key: string): Promise<void> {
    return this.#run(() => this.#store.deleteChunks(key));
  }
  async deleteTransfer(key: string): Promise<void> {
    await this.#writes.get(key)?.catch(() => {}); // a write under way must not bring it back
    await this.#run(() => this.#store.deleteTransfer(key));
  }

  async #seal(t: FileTransfer): Promise<FileRecord> {
    const key = await this.#recordsKey();
    const iv = this.#crypto.randomBytes(IV_BYTES);
    const plain = encode(t, { ignoreUndefined: true });
    try {
      const ct = await this.#crypto.aes256gcm.seal(key, iv, aad(t.key), plain);
      const sealed = new Uint8Array(IV_BYTES + ct.length);
      sealed.set(iv);
      sealed.set(ct, IV_BYTES);
      return { key: t.key, at: t.at, sealed };
    } finally {
      wipe(plain);
    }
  }

  async #open(r: FileRecord): Promise<FileTransfer | undefined> {
    if (!(r.sealed instanceof Uint8Array) || r.sealed.length < IV_BYTES + 16) return undefined;
    const key = await this.#recordsKey();
    const plain = await this.#crypto.aes256gcm
      .open(key, r.sealed.subarray(0, IV_BYTES), aad(r.key), r.sealed.subarray(IV_BYTES))
      .catch(() => undefined);
    if (!plain) return undefined;
    try {
      // decodeOwnRecord() returns byte fields as views into `plain`: clone them out before wiping it.
      const t = structuredClone(decodeOwnRecord(plain)) as FileTransfer;
      return t.key === r.key ? t : undefined;
    } catch {
      return undefined;
    } finally {
      wipe(plain);
    }
  }

  /** The records key: loaded once, made on first use. */
  #recordsKey(): Promise<Uint8Array> {
    this.#key ??= (async () => {
      const stored = await this.#secrets.loadSecret(RECORDS_KEY_SECRET);
      if (stored?.length === 32) return stored;
      const fresh = this.#crypto.randomBytes(32);
      await this.#secrets.saveSecret(RECORDS_KEY_SECRET, fresh);
      return fresh;
    })();
    // A failed load is tried again on the next call.
    this.#key.catch(() => {
      this.#key = undefined;
    });
    return this.#key;
  }
}

function aad(recordKey: string): Uint8Array {
  return utf8(`${AAD_LABEL}${recordKey}`);
}
