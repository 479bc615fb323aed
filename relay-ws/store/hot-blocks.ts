/**
 * Padded message blocks kept in memory from their SEND until their first delivery, so a message
 * pushed to a subscribed recipient right after its commit is not read back from LMDB, its data
 * key unwrapped and its blob opened (two AES-GCM operations and a record read per message,
 * ~6 % of the relay's event loop in bench/README-relay.md, "Results: group commit and hot
 * blocks"). The disk still holds every message sealed (docs/protocol/relay.md §At rest); this is
 * the same plaintext the relay held while sealing it, kept a little longer and bounded in bytes.
 *
 * A block leaves the cache when it is taken (its first delivery: the caller owns and wipes it),
 * when its message is deleted, or when the cache is over its byte budget (oldest first); a block
 * that leaves other than by `take` is zeroed.
 */
export class HotBlocks {
  readonly #maxBytes: number;
  /** Record key (rid ‖ seq, latin1) → block; Map order is insertion order, the eviction order. */
  readonly #blocks = new Map<string, Buffer>();
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
  put(recKey: Buffer, block: Buffer): boolean {
    if (block.length > this.#maxBytes) return false;
    const id = recKey.toString("latin1");
    this.drop(recKey);
    while (this.#bytes + block.length > this.#maxBytes) {
      const oldest = this.#blocks.keys().next().value;
      if (oldest === undefined) break;
      this.#evict(oldest);
    }
    this.#blocks.set(id, block);
    this.#bytes += block.length;
    return true;
  }

  /** The block of `recKey`, handed over (the caller wipes it), or undefined. */
  take(recKey: Buffer): Buffer | undefined {
    const id = recKey.toString("latin1");
    const block = this.#blocks.get(id);
    if (!block) return undefined;
    this.#blocks.delete(id);
    this.#bytes -= block.length;
    return block;
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
    const block = this.#blocks.get(id);
    if (!block) return;
    this.#blocks.delete(id);
    this.#bytes -= block.length;
    block.fill(0);
  }
}
