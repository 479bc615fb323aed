/**
 * The Web Storage methods (localStorage's synchronous part, `SyncStore` in
 * web/src/storage/journal.ts) over a Map, for the unit tests of what keeps things in localStorage:
 * the outbox journal and the draft copies (docs/protocol/chat.md §9). `full` makes setItem throw
 * as a full localStorage does.
 */
import type { SyncStore } from "../../web/src/storage/journal.ts";

export class MapStore implements SyncStore {
  readonly map = new Map<string, string>();
  full = false;
  get length() {
    return this.map.size;
  }
  key(i: number) {
    return [...this.map.keys()][i] ?? null;
  }
  getItem(k: string) {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    if (this.full) throw new DOMException("quota", "QuotaExceededError");
    this.map.set(k, v);
  }
  removeItem(k: string) {
    this.map.delete(k);
  }
}
