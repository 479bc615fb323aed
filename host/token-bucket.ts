/**
 * The token bucket behind every per-connection and per-source limit of the relay
 * (relay-ws/source-limits.ts) and signaling (signaling/limits.ts): `rate` units per second, at
 * most `burst` banked, starting full; `rate` 0 means unlimited.
 *
 * Work whose cost is known before it runs is `take`n (refused when there is not enough). Work
 * that is paid for whatever happens (a refused frame still cost its decoding) is `charge`d and may
 * leave a debt, bounded by `maxDebt`; `overdrawn` is the cheap check made before any expensive
 * work, so a client that keeps sending after a refusal is told apart from one that merely hit the
 * limit, and a debtor pays back at `rate` once it stops.
 */
export class TokenBucket {
  #tokens: number;
  #at: number;
  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.#tokens = burst;
    this.#at = now;
  }

  get unlimited(): boolean {
    return this.rate === 0;
  }

  #refill(now: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) / 1000) * this.rate);
      this.#at = now;
    }
  }

  /** Take `n` units if there are that many. */
  take(n: number, now: number): boolean {
    if (this.unlimited) return true;
    this.#refill(now);
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /**
   * Charge `n` units whatever the level. False once the debt passes `maxDebt` (default: no bound); the debt never
   * grows beyond `maxDebt + n` (a source that stopped pays it back at `rate`).
   */
  charge(n: number, now: number, maxDebt = Number.POSITIVE_INFINITY): boolean {
    if (this.unlimited) return true;
    this.#refill(now);
    this.#tokens = Math.max(-maxDebt - n, this.#tokens - n);
    return this.#tokens >= -maxDebt;
  }

  /** Whether the bucket is more than `maxDebt` below empty (0: in any debt). */
  overdrawn(maxDebt: number, now: number): boolean {
    if (this.unlimited) return false;
    this.#refill(now);
    return this.#tokens < -maxDebt;
  }

  /** Give back units taken for work that did not happen (never above `burst`). */
  refund(n: number): void {
    if (!this.unlimited) this.#tokens = Math.min(this.burst, this.#tokens + n);
  }

  /** True when the bucket has refilled completely (its owner's entry can be forgotten). */
  full(now: number): boolean {
    if (this.unlimited) return true;
    this.#refill(now);
    return this.#tokens >= this.burst;
  }
}
