/**
 * Abuse limits of the signaling service (docs/operations-signaling.md, Limits): token buckets
 * per connection and per source address (the karmagate relay's per-IP token bucket, extended to
 * messages as well as new connections), a per-source budget of signature-verification CPU time,
 * and the bounded per-sender memory of envelope nonces.
 *
 * Source addresses are used as in-memory map keys only: they are never logged, never stored on
 * disk and never exported in metrics or /health; an idle source's entry is dropped by `sweep`.
 */

import { SourceTable as SharedSourceTable, type SourceEntry } from "../host/source-table.ts";
import { TokenBucket } from "../host/token-bucket.ts";

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
export interface SourceState extends SourceEntry {
  /** The source's key (host/client-source.ts), for the limits shared through Redis (memory only). */
  key: string | undefined;
  registrations: number;
  messages: TokenBucket;
  /**
   * Signature-verification time (ms) this source may still cost: charged after the work (its
   * cost is only known then) with no debt bound; a source in debt waits until it is paid back,
   * and `overdrawn` — the cheap check made before any expensive work — says so meanwhile.
   */
  cpu: TokenBucket;
}

/**
 * Signaling's sources: the table the relay uses too (host/source-table.ts), with signaling's
 * buckets; a source holding a registration keeps its entry like one holding a connection (and a
 * registration needs a connection, so at most `--signal-max-connections` entries are held).
 */
export class SourceTable extends SharedSourceTable<SourceState, SourceLimits> {
  protected create(now: number): SourceState {
    const l = this.limits;
    return {
      key: undefined,
      connections: 0,
      registrations: 0,
      messages: new TokenBucket(l.sourceRate, l.sourceBurst, now),
      upgrades: new TokenBucket(l.upgradeRate, l.upgradeBurst, now),
      cpu: new TokenBucket(l.sourceCpuMs, l.sourceCpuBurstMs, now),
    };
  }

  protected override holds(s: SourceState): boolean {
    return s.registrations > 0;
  }

  protected rested(s: SourceState, now: number): boolean {
    return s.messages.full(now) && s.upgrades.full(now) && s.cpu.full(now);
  }
}

/**
 * What each kind of verification is charged to its source's budget (ms): a fixed cost per kind,
 * not a measurement — process CPU time counts GC, libuv and LMDB threads, and wall time counts
 * other processes, so under load an honest source would pay for others' work. The figures are
 * `npm run bench:signaling` on the 2-core reference machine (bench/README.md), rounded up:
 *  - `signature`: one native Ed25519 verification (an envelope, or a REGISTER whose identity was
 *    verified before — a renewal);
 *  - `firstSeenIdentity`: a REGISTER whose identity is not cached: structure checks, the
 *    identity's own signature, key checks (native X25519 probe) and the REGISTER signature.
 *    A forged identity is refused part-way but charged the same.
 */
export const VERIFY_COST_MS = { firstSeenIdentity: 0.75, signature: 0.25 } as const;

/**
 * What one remembered envelope nonce costs, as counted against the global budget: the 32-char
 * hex key string (≈ 56 B), its expiry number and the Map entry (≈ 80 B), rounded up.
 */
export const ENVELOPE_NONCE_ENTRY_BYTES = 160;

/**
 * The memory budget shared by every connection's envelope nonces (`--signal-envelope-nonce-bytes`).
 * It never refuses an envelope: when it is spent, the connection adding a nonce forgets its own
 * oldest one, or — when it holds none — the least recently active connection forgets its oldest.
 * Forgetting is safe because only the holder of a sender's key can submit envelopes from its
 * registered connection (FROM_MISMATCH), so a forgotten nonce can be reused only by that sender
 * itself, and the recipient checks again (core/signaling/client.ts).
 */
export class EnvelopeNonceBudget {
  #entries = 0;
  /** Owners holding entries, least recently added-to first (Set insertion order). */
  readonly #owners = new Set<RecentNonces>();
  readonly maxEntries: number;
  constructor(bytes: number) {
    this.maxEntries = Math.max(1, Math.floor(bytes / ENVELOPE_NONCE_ENTRY_BYTES));
  }

  get entries(): number {
    return this.#entries;
  }

  /** Room for one more entry of `owner`, making it by eviction when the budget is spent. */
  makeRoom(owner: RecentNonces): void {
    if (this.#entries < this.maxEntries) return;
    if (owner.size > 0) {
      owner.forgetOldest();
      return;
    }
    for (const other of this.#owners) {
      if (other.size === 0) continue;
      other.forgetOldest();
      return;
    }
  }

  /** `owner` added (+n) or forgot (−n) entries. */
  counted(owner: RecentNonces, n: number): void {
    this.#entries += n;
    if (n > 0) {
      this.#owners.delete(owner);
      this.#owners.add(owner);
    } else if (owner.size === 0) this.#owners.delete(owner);
  }

  /** `owner` is gone (its connection closed or unregistered): give back all its entries. */
  release(owner: RecentNonces): void {
    this.#entries -= owner.size;
    this.#owners.delete(owner);
  }
}

/**
 * The envelope nonces one registered sender used recently, to refuse an envelope sent twice.
 * Bounded per sender (`max`, the oldest forgotten first) and by the shared `budget`; expired
 * entries are dropped as new ones come (all live the same time, so they expire oldest first).
 */
export class RecentNonces {
  readonly #seen = new Map<string, number>();
  constructor(
    readonly max: number,
    readonly budget?: EnvelopeNonceBudget,
  ) {}

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
    if (until !== undefined) this.#delete(nonce);
    this.#dropExpired(now);
    if (this.#seen.size >= this.max) this.forgetOldest();
    this.budget?.makeRoom(this);
    this.#seen.set(nonce, expires);
    this.budget?.counted(this, 1);
    return true;
  }

  /** Forget the oldest remembered nonce (for the per-sender cap or the shared budget). */
  forgetOldest(): void {
    const oldest = this.#seen.keys().next().value;
    if (oldest !== undefined) this.#delete(oldest);
  }

  #delete(nonce: string): void {
    if (this.#seen.delete(nonce)) this.budget?.counted(this, -1);
  }

  #dropExpired(now: number): void {
    for (const [nonce, until] of this.#seen) {
      if (until > now) return;
      this.#delete(nonce);
    }
  }
}
