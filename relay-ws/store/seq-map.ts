/**
 * Values per message of each queue, keyed by the queue (its rid as hex, the key the store's other
 * per-queue maps use) and then by the message's seq as a number. The store kept its delivery
 * counts and its deletions under way in maps keyed by the hex of rid ‖ seq: a 64-character string
 * per message, alive from a push until its ACK commits — a survivor of the young-generation
 * collections in between (bench/README-relay.md, "Results: fewer objects per message"). A seq
 * below 2^30 is a small integer to V8: a key of the inner map allocates nothing.
 */
export class SeqMap<V> {
  readonly #queues = new Map<string, Map<number, V>>();

  /**
   * Queues with at least one entry. 0: nothing held — lmdb.ts `next` then skips the rid's hex it
   * would make only to look a count up. `get`, `has` and `delete` need no such check before them:
   * on an empty map they allocate nothing and answer at once.
   */
  get size(): number {
    return this.#queues.size;
  }

  get(queue: string, seq: number): V | undefined {
    return this.#queues.get(queue)?.get(seq);
  }

  has(queue: string, seq: number): boolean {
    return this.#queues.get(queue)?.has(seq) ?? false;
  }

  set(queue: string, seq: number, value: V): void {
    let m = this.#queues.get(queue);
    if (!m) {
      m = new Map();
      this.#queues.set(queue, m);
    }
    m.set(seq, value);
  }

  delete(queue: string, seq: number): void {
    const m = this.#queues.get(queue);
    if (m?.delete(seq) && m.size === 0) this.#queues.delete(queue);
  }

  /** Every entry of `queue` (its deletion). */
  deleteQueue(queue: string): void {
    this.#queues.delete(queue);
  }
}
