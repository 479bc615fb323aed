/**
 * The relay store's queues ordered by earliest expiry (docs/operations-relay.md §Storage): a
 * binary min-heap of (expiry ms, queue id) with lazy deletion. The store keeps the authoritative
 * bound per queue in a map and pushes an entry each time it sets a new one; an entry whose bound is
 * no longer the map's (lowered since, raised by a GC visit, queue deleted) is stale and dropped
 * when it reaches the top. So a GC run pops only the entries due (plus stale ones, each once),
 * not one per queue holding messages.
 */
export class DueHeap {
  readonly #at: number[] = [];
  readonly #id: string[] = [];

  get size(): number {
    return this.#at.length;
  }

  clear(): void {
    this.#at.length = 0;
    this.#id.length = 0;
  }

  push(at: number, id: string): void {
    const at_ = this.#at;
    const ids = this.#id;
    let i = at_.length;
    at_.push(at);
    ids.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (at_[parent]! <= at) break;
      at_[i] = at_[parent]!;
      ids[i] = ids[parent]!;
      i = parent;
    }
    at_[i] = at;
    ids[i] = id;
  }

  /** The smallest expiry held (Infinity when empty). */
  peek(): number {
    return this.#at.length > 0 ? this.#at[0]! : Number.POSITIVE_INFINITY;
  }

  /** Remove the entry with the smallest expiry; undefined when empty. */
  pop(): { at: number; id: string } | undefined {
    const at_ = this.#at;
    const ids = this.#id;
    const n = at_.length;
    if (n === 0) return undefined;
    const top = { at: at_[0]!, id: ids[0]! };
    const lastAt = at_.pop()!;
    const lastId = ids.pop()!;
    if (n === 1) return top;
    const size = n - 1;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      const c = r < size && at_[r]! < at_[l]! ? r : l;
      if (at_[c]! >= lastAt) break;
      at_[i] = at_[c]!;
      ids[i] = ids[c]!;
      i = c;
    }
    at_[i] = lastAt;
    ids[i] = lastId;
    return top;
  }
}
