/**
 * Abuse limits of the signaling service (docs/operations-signaling.md, Limits): token buckets
 * per connection and per source address (the karmagate relay's per-IP token bucket, extended to
 * messages as well as new connections), a per-source budget of signature-verification CPU time,
 * and the bounded per-sender memory of envelope nonces.
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
  sourceCpuMs: number;
  sourceCpuBurstMs: number;
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
  /** Signature-verification CPU time (ms) this source may still cost. */
  cpu: CostBucket;
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
        cpu: new CostBucket(this.limits.sourceCpuMs, this.limits.sourceCpuBurstMs, now),
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
      if (
        s.connections === 0 &&
        s.registrations === 0 &&
        s.messages.full(now) &&
        s.upgrades.full(now) &&
        s.cpu.full(now)
      )
        this.#map.delete(key);
  }
}

/**
 * A budget of CPU time (ms) refilled at `ratePerSecond`, at most `burst` banked. Work is charged
 * after it ran (its cost is only known then), so the balance can go below zero: a source that
 * overspent waits until it is positive again, and `canSpend` — the cheap check made before any
 * expensive work — says no meanwhile.
 */
export class CostBucket {
  #balance: number;
  #last: number;
  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    now: number,
  ) {
    this.#balance = burst;
    this.#last = now;
  }

  #refill(now: number): void {
    if (now > this.#last) {
      this.#balance = Math.min(this.burst, this.#balance + ((now - this.#last) * this.ratePerSecond) / 1000);
      this.#last = now;
    }
  }

  canSpend(now: number): boolean {
    this.#refill(now);
    return this.#balance > 0;
  }

  charge(cost: number, now: number): void {
    this.#refill(now);
    this.#balance -= cost;
  }

  full(now: number): boolean {
    this.#refill(now);
    return this.#balance >= this.burst;
  }
}

/**
 * The envelope nonces one registered sender used recently, to refuse an envelope sent twice.
 * Bounded per sender and forgetting the oldest when full: only the holder of the sender's key
 * can submit envelopes from its registered connection, so a forgotten nonce can only be
 * "replayed" by that sender itself (and the recipient checks again: core/signaling/client.ts).
 */
export class RecentNonces {
  readonly #seen = new Map<string, number>();
  constructor(readonly max: number) {}

  get size(): number {
    return this.#seen.size;
  }

  /** True when `nonce` was used and its memory has not expired. */
  has(nonce: string, now: number): boolean {
    const until = this.#seen.get(nonce);
    return until !== undefined && until > now;
  }

  /** True (and remembered until `expires`) when `nonce` is not a live earlier use. */
  add(nonce: string, now: number, expires: number): boolean {
    const until = this.#seen.get(nonce);
    if (until !== undefined && until > now) return false;
    this.#seen.delete(nonce);
    if (this.#seen.size >= this.max) {
      const oldest = this.#seen.keys().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
    this.#seen.set(nonce, expires);
    return true;
  }
}
