/**
 * The per-source table shared by the relay (relay-ws/source-limits.ts) and signaling
 * (signaling/limits.ts): what one client address holds and may spend, whatever number of
 * connections it opens (docs/operations-relay.md and docs/operations-signaling.md, Limits).
 *
 * A source is the key `sourceOf` (host/client-source.ts) gives a request. Sources are map keys in
 * memory only — never logged, stored or exported — and an entry is forgotten by `sweep` once it
 * holds nothing and every one of its buckets is full again. Each service says what its entries
 * hold and spend; the table owns their lifetime and the admission of connections.
 */
import type { TokenBucket } from "./token-bucket.ts";

/** What every source entry has: its open connections and its connection-rate bucket. */
export interface SourceEntry {
  /** Open connections (counted until the TCP connection is gone, closing ones included). */
  connections: number;
  readonly upgrades: TokenBucket;
}

export type AdmitVerdict = "ok" | "too-many" | "rate";

/**
 * Sources tracked without a connection (their budgets still refilling) before the oldest such
 * entries are forgotten: a client with a large IPv6 allocation shows up as many /64 sources, and
 * each entry costs memory (≈ 0.5 KB). Forgetting an idle source only hands it a fresh burst; a
 * source that holds something (a connection, a registration) is never forgotten.
 */
export const MAX_IDLE_SOURCES = 100_000;

/** `S`: what an entry holds; `L`: the service's limits its buckets are made from. */
export abstract class SourceTable<
  S extends SourceEntry,
  L extends { readonly maxConnectionsPerSource: number },
> {
  readonly #map = new Map<string, S>();
  constructor(
    readonly limits: L,
    readonly maxIdle = MAX_IDLE_SOURCES,
  ) {}

  /** A fresh entry, every bucket full at `now`. */
  protected abstract create(now: number): S;
  /** True when every bucket of `s` is full again at `now`. */
  protected abstract rested(s: S, now: number): boolean;
  /** True while `s` holds something beyond its connections that keeps its entry. */
  protected holds(_s: S): boolean {
    return false;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string, now: number): S {
    let s = this.#map.get(key);
    if (!s) {
      if (this.#map.size >= this.maxIdle) this.#forgetIdle();
      s = this.create(now);
      this.#map.set(key, s);
    }
    return s;
  }

  /** Admission of a new connection; counts it when admitted (release with `release`). */
  admit(key: string, now: number): AdmitVerdict {
    const s = this.get(key, now);
    if (s.connections >= this.limits.maxConnectionsPerSource) return "too-many";
    if (!s.upgrades.take(1, now)) return "rate";
    s.connections++;
    return "ok";
  }

  release(s: S): void {
    s.connections = Math.max(0, s.connections - 1);
  }

  #held(s: S): boolean {
    return s.connections > 0 || this.holds(s);
  }

  /** Forget up to 64 of the oldest entries that hold nothing (insertion order is age order). */
  #forgetIdle(): void {
    let forgotten = 0;
    for (const [key, s] of this.#map) {
      if (this.#held(s)) continue;
      this.#map.delete(key);
      if (++forgotten >= 64) return;
    }
  }

  /** Forget the entries that hold nothing and whose buckets are all full again. */
  sweep(now: number): void {
    for (const [key, s] of this.#map) if (!this.#held(s) && this.rested(s, now)) this.#map.delete(key);
  }
}
