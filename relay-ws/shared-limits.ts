/**
 * Per-source budgets over all relay instances (docs/operations-relay.md §Limits and abuse, "Several
 * instances"). Each instance keeps its own token buckets (source-limits.ts); this adds what each
 * source spends — connections opened, command cost, bytes stored — to per-second counters in the
 * shared Redis every FLUSH_MS, and reads back the totals: a source whose total over all instances
 * passed one burst in the current second is refused on every instance until the second ends, so
 * spreading connections over instances buys nothing. Sources are named by a keyed hash (the
 * store's `sourceTag`, under a key derived from the master key), never by an address.
 */

export type SpendKind = "conn" | "cost" | "store";

/** What the Redis store offers for this (store/redis.ts). */
export interface SharedCounters {
  sourceTag(sourceKey: string): string;
  /** Adds each n to its counter of the current second; the totals, in order. */
  spendShared(entries: { tag: string; kind: SpendKind; n: number }[], second: number): Promise<number[]>;
}

const FLUSH_MS = 250;

export class SharedSourceLimits {
  readonly #counters: SharedCounters;
  readonly #bursts: Record<SpendKind, number>;
  /** Spent here since the last flush: tag ‖ kind → n. */
  #pending = new Map<string, { tag: string; kind: SpendKind; n: number }>();
  /** Over their burst in second `second` (tag ‖ kind). */
  #over = new Set<string>();
  #overSecond = 0;
  readonly #timer: NodeJS.Timeout;
  #flushing = false;

  readonly #clock: () => number;

  /** A burst of 0 turns that kind off (as a rate of 0 does locally). `clock`: ms since the epoch. */
  constructor(counters: SharedCounters, bursts: Record<SpendKind, number>, clock: () => number = Date.now) {
    this.#counters = counters;
    this.#bursts = bursts;
    this.#clock = clock;
    this.#timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.#timer.unref();
  }

  tag(sourceKey: string): string {
    return this.#counters.sourceTag(sourceKey);
  }

  /** Whether this source is over its burst, over all instances, in the current second. */
  over(tag: string, kind: SpendKind): boolean {
    if (this.#bursts[kind] === 0) return false;
    if (Math.floor(this.#clock() / 1000) !== this.#overSecond) return false;
    return this.#over.has(`${tag}:${kind}`);
  }

  spend(tag: string, kind: SpendKind, n: number): void {
    if (this.#bursts[kind] === 0 || n <= 0) return;
    const id = `${tag}:${kind}`;
    const p = this.#pending.get(id);
    if (p) p.n += n;
    else this.#pending.set(id, { tag, kind, n });
  }

  /** Add what was spent here to the shared counters and read the totals (every FLUSH_MS). */
  async flush(): Promise<void> {
    if (this.#flushing || this.#pending.size === 0) return;
    this.#flushing = true;
    const entries = [...this.#pending.values()];
    this.#pending = new Map();
    const second = Math.floor(this.#clock() / 1000);
    try {
      const totals = await this.#counters.spendShared(entries, second);
      if (second !== this.#overSecond) {
        this.#over = new Set();
        this.#overSecond = second;
      }
      entries.forEach((e, i) => {
        if ((totals[i] ?? 0) > this.#bursts[e.kind]) this.#over.add(`${e.tag}:${e.kind}`);
      });
    } catch {
      // Redis unreachable: the local buckets still hold; what was spent is not counted twice.
    } finally {
      this.#flushing = false;
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
