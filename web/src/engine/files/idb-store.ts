/**
 * The browser's `FileStore` (store.ts; docs/protocol/files.md §6): the `loft-files` IndexedDB
 * database, apart from the `loft` one (web/src/storage/db.ts) so file chunks never weigh on the
 * chat's transactions. `transfers` holds the records, sealed (sealed-records.ts: key and time in
 * clear; the per-transfer key is in the engine's sealed secrets), `chunks` the received chunks
 * exactly as they arrived — AES-256-GCM ciphertext under the per-transfer key — keyed by
 * [transfer key, chunk index].
 */
import { type DBSchema, type IDBPDatabase, openDB } from "idb";
import { FILES_DB_NAME } from "../../lib/device-stores.ts";
import type { FileRecord, FileStore, FileTransfer } from "./store.ts";

interface FilesSchema extends DBSchema {
  /** Sealed records; records an earlier version wrote in clear until they are sealed on load. */
  transfers: { key: string; value: FileRecord | FileTransfer };
  chunks: { key: [string, number]; value: Uint8Array };
}

export class IdbFileStore implements FileStore {
  readonly #db: Promise<IDBPDatabase<FilesSchema>>;

  constructor(name = FILES_DB_NAME) {
    const db = openDB<FilesSchema>(name, 1, {
      upgrade(db) {
        db.createObjectStore("transfers", { keyPath: "key" });
        db.createObjectStore("chunks");
      },
      // Give way to a deletion (Delete identity) or a newer version in another tab, as
      // storage/db.ts does: an open connection would hold the deletion forever.
      blocking() {
        void db.then((d) => d.close());
      },
    });
    this.#db = db;
  }

  async putRecord(r: FileRecord): Promise<void> {
    await (await this.#db).put("transfers", r);
  }

  async listRecords(): Promise<(FileRecord | FileTransfer)[]> {
    return (await this.#db).getAll("transfers");
  }

  async putChunks(key: string, first: number, sealed: Uint8Array[]): Promise<void> {
    // One transaction for the batch: a transaction's commit, not the bytes, is what costs.
    const tx = (await this.#db).transaction("chunks", "readwrite");
    await Promise.all([...sealed.map((c, n) => tx.store.put(c, [key, first + n])), tx.done]);
  }

  async getChunk(key: string, index: number): Promise<Uint8Array | undefined> {
    return (await this.#db).get("chunks", [key, index]);
  }

  async getChunks(key: string, first: number, count: number): Promise<Uint8Array[]> {
    const range = IDBKeyRange.bound([key, first], [key, first + count - 1]);
    return (await this.#db).getAll("chunks", range);
  }

  /** Those of chunks `first` … `first + count − 1` that are stored, by index (one transaction). */
  async chunksAt(key: string, first: number, count: number): Promise<Map<number, Uint8Array>> {
    const range = IDBKeyRange.bound([key, first], [key, first + count - 1]);
    const tx = (await this.#db).transaction("chunks");
    const [keys, values] = await Promise.all([tx.store.getAllKeys(range), tx.store.getAll(range), tx.done]);
    return new Map(keys.map(([, index], n) => [index, values[n] as Uint8Array]));
  }

  async deleteChunks(key: string): Promise<void> {
    await (await this.#db).delete("chunks", IDBKeyRange.bound([key, 0], [key, Number.MAX_SAFE_INTEGER]));
  }

  async deleteTransfer(key: string): Promise<void> {
    const db = await this.#db;
    await this.deleteChunks(key);
    await db.delete("transfers", key);
  }
}
