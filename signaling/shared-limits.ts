/**
 * Per-source limits across instances (`--redis`; docs/operations.md, "Scale-out on Redis"). Each
 * instance keeps its own token buckets per source (signaling/limits.ts) — they bound what one
 * instance accepts — and also counts what each source spends, per one-second window, in Redis:
 * every `flushMs` the counts of the sources active since the last flush are added (INCRBY, one
 * pipeline) and Redis answers the totals over all instances. A source whose total in the current
 * window passed its cap is refused on every instance until the window ends, so a client
 * spreading its connections over N instances gets no more than on one.
 *
 * The caps are the single-instance bursts: `--signal-source-burst` messages, `--signal-upgrade-burst`
 * new connections and `--signal-source-cpu-burst-ms` of verification time per second, over all
 * instances together. Counting is asynchronous (a request never waits for Redis), so a source may
 * overshoot by what it sends within one flush period; while Redis is unreachable only the local
 * buckets apply.
 *
 * No address reaches Redis: a source is named by HMAC-SHA256 under the instances' shared source
 * secret, truncated to 16 bytes (`tag`), in keys that live five seconds (the window and slack
 * for a slow flush).
 */
import { createHmac, hkdfSync } from "node:crypto";

export type SpendKind = "m" | "u" | "c";

export interface SharedLimitCaps {
  /** Messages per second per source over all instances. */
  m: number;
  /** New connections per second per source. */
  u: number;
  /** Verification time per second per source, in microseconds. */
  c: number;
}

/** Adds `n` to each `key` (expiring after `ttlMs`) and answers the totals, in order. */
export type Incr = (batch: readonly { key: string; n: number }[], ttlMs: number) => Promise<number[]>;

/** The key of source tags: the operator's secret, else one derived from the Redis URL (docs). */
export function sourceTagKey(secret: string, redisUrl: string): Buffer {
  const ikm = secret !== "" ? secret : redisUrl;
  return Buffer.from(hkdfSync("sha256", ikm, "", "loft/signaling/source-tag/v1", 32));
}

export class SharedSourceLimits {
  readonly #key: Buffer;
  readonly #caps: SharedLimitCaps;
  readonly #incr: Incr;
  readonly #prefix: string;
  /** source → tag (memory only, like the source table). */
  readonly #tags = new Map<string, string>();
  /** `${kind}|${source}` → its count not yet sent to Redis, with the window second it belongs to. */
  readonly #pending = new Map<string, { source: string; kind: SpendKind; second: number; n: number }>();
  /** `${kind}|${source}` → the window second it is over its cap in. */
  readonly #over = new Map<string, number>();
  #flushing = false;

  constructor(key: Buffer, caps: SharedLimitCaps, incr: Incr, prefix: string) {
    this.#key = key;
    this.#caps = caps;
    this.#incr = incr;
    this.#prefix = prefix;
  }

  tag(source: string): string {
    let t = this.#tags.get(source);
    if (t === undefined) {
      if (this.#tags.size >= 200_000) this.#tags.clear();
      t = createHmac("sha256", this.#key).update(source).digest("hex").slice(0, 32);
      this.#tags.set(source, t);
    }
    return t;
  }

  /** Whether `source` has passed its cap of `kind` over all instances in the current window. */
  over(source: string, kind: SpendKind, now: number): boolean {
    const second = Math.floor(now / 1000);
    const id = `${kind}|${source}`;
    const s = this.#over.get(id);
    if (s === undefined) return false;
    if (s === second) return true;
    this.#over.delete(id);
    return false;
  }

  /** `source` spent `n` of `kind` now (counted in Redis at the next flush). */
  spend(source: string, kind: SpendKind, n: number, now: number): void {
    const second = Math.floor(now / 1000);
    const id = `${kind}|${source}`;
    const p = this.#pending.get(id);
    if (p && p.second === second) p.n += n;
    else this.#pending.set(id, { source, kind, second, n });
  }

  /** Send the pending counts; mark the sources whose totals passed their caps. */
  async flush(): Promise<void> {
    if (this.#flushing || this.#pending.size === 0) return;
    this.#flushing = true;
    const batch = [...this.#pending.values()];
    this.#pending.clear();
    try {
      const totals = await this.#incr(
        batch.map((p) => ({ key: `${this.#prefix}s:${this.tag(p.source)}:${p.kind}:${p.second}`, n: p.n })),
        5_000,
      );
      batch.forEach((p, i) => {
        const total = totals[i];
        if (total !== undefined && total > this.#caps[p.kind])
          this.#over.set(`${p.kind}|${p.source}`, p.second);
      });
    } catch {
      // Redis unreachable: the local buckets alone apply until it is back.
    } finally {
      this.#flushing = false;
    }
  }

  /** Forget windows that ended (called by the service's sweeper). */
  sweep(now: number): void {
    const second = Math.floor(now / 1000);
    for (const [id, s] of this.#over) if (s < second) this.#over.delete(id);
  }
}
