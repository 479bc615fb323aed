/**
 * Abuse limits of the signaling service (docs/operations-signaling.md, Limits): token buckets
 * per connection and per source address (the karmagate relay's per-IP token bucket, extended to
 * messages as well as new connections), a per-source budget of signature-verification CPU time,
 * and the bounded per-sender memory of envelope nonces.
 *
 * Source addresses are used as in-memory map keys only: they are never logged, never stored on
 * disk and never exported in metrics or /health; an idle source's entry is dropped by `sweep`.
 */

import { TokenBucket } from "../server/token-bucket.ts";

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
  /**
   * Signature-verification time (ms) this source may still cost: charged after the work (its
   * cost is only known then) with no debt bound; a source in debt waits until it is paid back,
   * and `overdrawn` — the cheap check made before any expensive work — says so meanwhile.
   */
  cpu: TokenBucket;
}

export type UpgradeVerdict = "ok" | "rate" | "too-many";

/**
 * Sources tracked without a connection (their buckets still refilling) before the oldest such
 * entries are forgotten, as the relay does (relay-ws/source-limits.ts): a client with a large
 * IPv6 allocation shows up as many /64 sources, and each entry costs memory (≈ 0.4 KB).
 * Forgetting an idle source only hands it a fresh burst; a source with a connection (and so any
 * registration) is never forgotten, and there are at most `--signal-max-connections` of those.
 */
export const MAX_IDLE_SOURCES = 100_000;

export class SourceTable {
  readonly #map = new Map<string, SourceState>();
  constructor(
    readonly limits: SourceLimits,
    readonly maxIdle = MAX_IDLE_SOURCES,
  ) {}

  get size(): number {
    return this.#map.size;
  }

  get(source: string, now: number): SourceState {
    let s = this.#map.get(source);
    if (!s) {
      if (this.#map.size >= this.maxIdle) this.#forgetIdle();
      s = {
        connections: 0,
        registrations: 0,
        messages: new TokenBucket(this.limits.sourceRate, this.limits.sourceBurst, now),
        upgrades: new TokenBucket(this.limits.upgradeRate, this.limits.upgradeBurst, now),
        cpu: new TokenBucket(this.limits.sourceCpuMs, this.limits.sourceCpuBurstMs, now),
      };
      this.#map.set(source, s);
    }
    return s;
  }

  /** Admission of a new connection from `source`; counts it when admitted. */
  admit(source: string, now: number): UpgradeVerdict {
    const s = this.get(source, now);
    if (s.connections >= this.limits.maxConnectionsPerSource) return "too-many";
    if (!s.upgrades.take(1, now)) return "rate";
    s.connections++;
    return "ok";
  }

  /** Forget up to 64 of the oldest entries without a connection (insertion order is age order). */
  #forgetIdle(): void {
    let forgotten = 0;
    for (const [key, s] of this.#map) {
      if (s.connections > 0 || s.registrations > 0) continue;
      this.#map.delete(key);
      if (++forgotten >= 64) return;
    }
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
