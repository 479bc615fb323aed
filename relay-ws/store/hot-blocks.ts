/**
 * Padded message blocks kept in memory from their SEND until their first delivery, so a message
 * pushed to a subscribed recipient right after its commit is not read back from LMDB, its data
 * key unwrapped and its blob opened (two AES-GCM operations and a record read per message,
 * ~6 % of the relay's event loop in bench/README-relay.md, "Results: group commit and hot
 * blocks"). The disk still holds every message sealed (docs/protocol/relay.md §At rest); this is
 * the same plaintext the relay held while sealing it, kept a little longer and bounded in bytes.
 *
 * With each block goes its message's header (id, timestamp, expiry), so the push that follows a
 * commit finds the next message without a range read (lmdb.ts `next`). Blocks go in only once
 * their message is committed: nothing here is ever delivered before it is durable.
 *
 * A block leaves the cache when it is taken (its first delivery: the caller owns and wipes it),
 * when its message is deleted, or when the cache is over its byte budget (oldest first); a block
 * that leaves other than by `take` is zeroed.
 */

import type { StoredMessageMeta } from "./types.ts";

/**
 * The header of a message whose block is kept: the record `next` answers with for it, as it is
 * (lmdb.ts sets its delivery count), so a push allocates no record of its own.
 */
export type HotHeader = StoredMessageMeta;

interface Entry {
  block: Buffer;
  header: HotHeader | undefined;
}

export class HotBlocks {
  readonly #maxBytes: number;
  /** Record key (rid ‖ seq, latin1) → block; Map order is insertion order, the eviction order. */
  readonly #blocks = new Map<string, Entry>();
  #bytes = 0;

  /** `maxBytes` 0 keeps nothing. */
  constructor(maxBytes: number) {
    this.#maxBytes = Math.max(0, maxBytes);
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#blocks.size;
  }

  /** Keep `block` (now owned by the cache) for the message at `recKey`; false if it does not fit. */
  put(recKey: Buffer, block: Buffer, header?: HotHeader): boolean {
    if (block.length > this.#maxBytes) return false;
    const id = recKey.toString("latin1");
    this.drop(recKey);
    while (this.#bytes + block.length > this.#maxBytes) {
      const oldest = this.#blocks.keys().next().value;
      if (oldest === undefined) break;
      this.#evict(oldest);
    }
    this.#blocks.set(id, { block, header });
    this.#bytes += block.length;
    return true;
  }

  /** The block of `recKey`, handed over (the caller wipes it), or undefined. */
  take(recKey: Buffer): Buffer | undefined {
    const id = recKey.toString("latin1");
    const entry = this.#blocks.get(id);
    if (!entry) return undefined;
    this.#blocks.delete(id);
    this.#bytes -= entry.block.length;
    return entry.block;
  }

  /** The header kept with the block of `recKey` (the block stays), or undefined. */
  header(recKey: Buffer): HotHeader | undefined {
    return this.#blocks.get(recKey.toString("latin1"))?.header;
  }

  /** Forget and zero the block of `recKey`, if kept. */
  drop(recKey: Buffer): void {
    this.#evict(recKey.toString("latin1"));
  }

  /** Forget and zero everything. */
  clear(): void {
    for (const id of [...this.#blocks.keys()]) this.#evict(id);
  }

  #evict(id: string): void {
    const entry = this.#blocks.get(id);
    if (!entry) return;
    this.#blocks.delete(id);
    this.#bytes -= entry.block.length;
    entry.block.fill(0);
  }
}
