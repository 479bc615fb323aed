/**
 * The per-transfer chunk keys of the OPFS worker (opfs-worker.ts; docs/protocol/files.md §6), each
 * imported once per file: a WebCrypto `importKey` per batch is a task hop of its own. A key is
 * forgotten when its file's handle closes (idle, deleted, released), so none outlives the
 * transfer's use of the worker by more than the idle delay.
 *
 * An import that fails is not kept: every later batch of the file would await the same rejected
 * promise and fail with it until the handle closed — a transfer stalled on one passing failure.
 * The batch whose import failed fails (its put answers the error); the next one imports again.
 */
import { equalBytes, wipe } from "../../../../core/bytes.ts";

interface Entry {
  raw: Uint8Array;
  key: Promise<CryptoKey>;
}

export class WorkerKeys {
  readonly #import: (raw: Uint8Array) => Promise<CryptoKey>;
  readonly #entries = new Map<string, Entry>();

  /** `importKey` makes the CryptoKey of a raw key (the worker's: AES-GCM, decrypt only). */
  constructor(importKey: (raw: Uint8Array) => Promise<CryptoKey>) {
    this.#import = importKey;
  }

  /**
   * The key of `file` for `raw`, imported once: `raw` is kept (and wiped when replaced or
   * forgotten), or wiped at once when the kept one is the same key.
   */
  get(file: string, raw: Uint8Array): Promise<CryptoKey> {
    const known = this.#entries.get(file);
    if (known && equalBytes(known.raw, raw)) {
      wipe(raw);
      return known.key;
    }
    if (known) wipe(known.raw);
    const entry: Entry = { raw, key: this.#import(raw) };
    this.#entries.set(file, entry);
    // Dropped on rejection, unless a newer key replaced it meanwhile (then that one stays).
    entry.key.catch(() => {
      if (this.#entries.get(file) === entry) this.forget(file);
    });
    return entry.key;
  }

  /** The file's handle closed: its key goes, wiped. */
  forget(file: string): void {
    wipe(this.#entries.get(file)?.raw);
    this.#entries.delete(file);
  }

  /** The files a key is held for. */
  files(): string[] {
    return [...this.#entries.keys()];
  }
}
