/**
 * Per-contact request rate limit on the serving side: a token bucket per contact (`capacity`
 * requests at once, refilled at `perSecond`). Time comes from the caller, so tests need no clock.
 * The table is bounded: past `maxKeys` contacts, the one idle longest is forgotten (a full bucket
 * is what it would have anyway after idling).
 */
/** What the serving side asks before each request (a TokenBucket, or one looked up per request). */
export interface RequestLimiter {
  /** Take one request for `key` at `nowMs`; false: refuse it (`rate_limited`). */
  take(key: string, nowMs: number): boolean;
}

export class TokenBucket implements RequestLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    readonly capacity = 60,
    readonly perSecond = 20,
    readonly maxKeys = 1024,
  ) {}

  /** Take one token for `key` at time `nowMs`; false when the bucket is empty (refuse). */
  take(key: string, nowMs: number): boolean {
    let b = this.#buckets.get(key);
    if (b) {
      this.#buckets.delete(key);
      b.tokens = Math.min(this.capacity, b.tokens + (Math.max(0, nowMs - b.at) / 1000) * this.perSecond);
      b.at = nowMs;
    } else {
      b = { tokens: this.capacity, at: nowMs };
      if (this.#buckets.size >= this.maxKeys)
        this.#buckets.delete(this.#buckets.keys().next().value as string);
    }
    this.#buckets.set(key, b); // re-inserted: the Map's order is least recently used first
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/**
 * The bucket a serving peer keeps for its contacts (the PWA's shares, `loft expose`;
 * docs/protocol/proxy.md): 200 requests at once — a page with its images, scripts and styles —
 * refilled at 100 per second.
 */
export function contactRequestLimit(): TokenBucket {
  return new TokenBucket(200, 100);
}
