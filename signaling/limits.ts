/**
 * Abuse limits of the signaling service (docs/operations-signaling.md, Limits): token buckets
 * per connection and per source address (the karmagate relay's per-IP token bucket, extended to
 * messages as well as new connections), and a bounded replay cache for REGISTER nonces.
 *
 * Source addresses are used as in-memory map keys only: they are never logged, never stored on
 * disk and never exported in metrics or /health; an idle source's entry is dropped by `sweep`.
 */

/** A token bucket: `rate` tokens per second, at most `burst` banked; starts full. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.#tokens = burst;
    this.#last = now;
  }

  #refill(now: number): void {
    if (now > this.#last) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) * this.rate) / 1000);
      this.#last = now;
    }
  }

  /** Take one token if there is one. */
  take(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** True when the bucket has refilled completely (the entry can be forgotten). */
  full(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.burst;
  }
}

export interface SourceLimits {
  sourceRate: number;
  sourceBurst: number;
  upgradeRate: number;
  upgradeBurst: number;
  maxConnectionsPerSource: number;
  maxRegistrationsPerSource: number;
}

/** What the service tracks per source address, while it has connections or non-full buckets. */
export interface SourceState {
  connections: number;
  registrations: number;
  messages: TokenBucket;
  upgrades: TokenBucket;
}

export type UpgradeVerdict = "ok" | "rate" | "too-many";

export class SourceTable {
  readonly #map = new Map<string, SourceState>();
  constructor(readonly limits: SourceLimits) {}

  get size(): number {
    return this.#map.size;
  }

  get(source: string, now: number): SourceState {
    let s = this.#map.get(source);
    if (!s) {
      s = {
        connections: 0,
        registrations: 0,
        messages: new TokenBucket(this.limits.sourceRate, this.limits.sourceBurst, now),
        upgrades: new TokenBucket(this.limits.upgradeRate, this.limits.upgradeBurst, now),
      };
      this.#map.set(source, s);
    }
    return s;
  }

  /** Admission of a new connection from `source`; counts it when admitted. */
  admit(source: string, now: number): UpgradeVerdict {
    const s = this.get(source, now);
    if (s.connections >= this.limits.maxConnectionsPerSource) return "too-many";
    if (!s.upgrades.take(now)) return "rate";
    s.connections++;
    return "ok";
  }

  /** Drop entries with no connection, no registration and full buckets. */
  sweep(now: number): void {
    for (const [key, s] of this.#map)
      if (s.connections === 0 && s.registrations === 0 && s.messages.full(now) && s.upgrades.full(now))
        this.#map.delete(key);
  }
}

/**
 * Nonces of accepted REGISTERs, remembered until no request carrying them can be fresh again.
 * A request signed at `t` is accepted while |now − t| ≤ skew, so remembering its nonce until
 * `now + 2·skew` (≥ t + skew) suffices; that deadline grows with insertion order, so the Map's
 * iteration order is expiry order and pruning stops at the first live entry. Memory is bounded
 * by `max`: when full of live nonces, `add` refuses (the caller answers BUSY) instead of
 * forgetting a live nonce, which would reopen a replay.
 */
export class NonceCache {
  readonly #seen = new Map<string, number>();
  constructor(
    readonly max: number,
    readonly windowMs: number,
  ) {}

  get size(): number {
    return this.#seen.size;
  }

  prune(now: number): void {
    for (const [key, expires] of this.#seen) {
      if (expires > now) break;
      this.#seen.delete(key);
    }
  }

  /** "fresh" (remembered now), "replay" (seen within the window) or "full". */
  add(key: string, now: number): "fresh" | "replay" | "full" {
    const expires = this.#seen.get(key);
    if (expires !== undefined && expires > now) return "replay";
    this.prune(now);
    if (this.#seen.size >= this.max) return "full";
    this.#seen.delete(key);
    this.#seen.set(key, now + this.windowMs);
    return "fresh";
  }
}
