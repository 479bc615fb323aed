/**
 * Send ids of messages no longer stored (acknowledged, dropped, expired), kept so a retry of one is
 * still answered DUPLICATE while the relay runs (docs/protocol/relay.md, SEND) — without a heap
 * object per message. The list was a `Map` from a 40-character string (rid ‖ send id, latin1) to
 * the expiry: each acknowledged message left one string and one map entry that lived until it
 * was evicted, hundreds of thousands of messages later, so every one of them was copied by the
 * young-generation collector, promoted and later freed by a full mark-compact — the survivors a
 * collection pays for (bench/README-relay.md, "Results: fewer objects per message"). Here the
 * entries live in flat typed arrays: a ring of 40-byte keys in insertion order (oldest evicted
 * first, at most `max`), their expiries, and a chained hash index over them.
 *
 * The index hashes with a multilinear hash over 16-bit words modulo the prime 2^31 − 1, its
 * coefficients drawn at random per list: for any two distinct keys chosen without knowing the
 * coefficients, the chance they share a bucket is about 1/bucket count (a fixed hash such as FNV
 * or MurmurHash3 has seed-independent collisions). The arithmetic stays exact in doubles: 20 terms
 * below 2^47 each. It is universal, not a pseudorandom function: the hash is linear in the
 * coefficients, so a sender who learned which of its ids share a bucket (by timing its SENDs)
 * could solve for them and then pick any number of ids with one hash — every SEND of that bucket
 * would walk a chain up to the whole list (262 144 keys in lmdb.ts). So no add extends a chain
 * past GONE_SENDS_CHAIN_MAX: there the coefficients are drawn again and the index rebuilt, and what
 * was learned is worth nothing. Random coefficients give chains that long with odds below 10^-30
 * (load ≤ 1), so an honest workload never pays the rebuild.
 *
 * A deletion (lmdb.ts #unforgetSend: a removal whose commit failed) leaves a hole in the ring.
 * Holes at either end are dropped at once and the ring is compacted when more than a sixteenth of
 * `max` are holes, so deletions cost at most that much of the list's depth: a disk refusing every
 * commit, with each ACK retried, would otherwise push every held id out of the ring.
 */

const KEY = 40;
const RID = 24;
const P = 2_147_483_647; // 2^31 − 1
const WORDS = KEY / 2;
const NONE = -1;
const FIRST_CAPACITY = 1024;
/** The longest chain an add may extend: past it the hash is keyed again (see above). */
export const GONE_SENDS_CHAIN_MAX = 32;

export class GoneSends {
  readonly #max: number;
  readonly #random: (n: number) => Uint8Array;
  readonly #coef = new Float64Array(WORDS);
  #cap = 0;
  #keys = Buffer.alloc(0);
  /** Expiry in ms; 0: the slot holds no entry (deleted, pruned or never filled). */
  #exp = new Float64Array(0);
  #next = new Int32Array(0);
  #heads = new Int32Array(0);
  /** Ring: the oldest slot and how many slots it spans (entries and holes). */
  #oldest = 0;
  #used = 0;
  #live = 0;
  /** Slots the last #find walked. */
  #walked = 0;

  /** `max` entries at most (the oldest forgotten first); `random` fills the hash's coefficients. */
  constructor(max: number, random: (n: number) => Uint8Array) {
    this.#max = Math.max(1, max);
    this.#random = random;
    this.#drawCoefficients();
  }

  #drawCoefficients(): void {
    const r = this.#random(4 * WORDS);
    for (let i = 0; i < WORDS; i++) {
      const v = ((r[4 * i]! << 24) | (r[4 * i + 1]! << 16) | (r[4 * i + 2]! << 8) | r[4 * i + 3]!) >>> 0;
      this.#coef[i] = 1 + (v % (P - 1));
    }
  }

  /** Entries held. */
  get size(): number {
    return this.#live;
  }

  /** Whether rid ‖ sendId is held (`sendId` is read from `at`, 16 bytes). */
  has(rid: Uint8Array, sendId: Uint8Array, at = 0): boolean {
    if (this.#live === 0) return false;
    return this.#find(rid, sendId, at, this.#bucket(rid, sendId, at)) !== NONE;
  }

  /**
   * Hold rid ‖ sendId (16 bytes from `at`) until `expiresAt` (ms, > 0). A key already held is
   * kept once, with the later expiry.
   */
  add(rid: Uint8Array, sendId: Uint8Array, at: number, expiresAt: number): void {
    if (this.#used === this.#cap && this.#used < this.#max) this.#grow();
    let b = this.#bucket(rid, sendId, at);
    this.#walked = 0;
    const found = this.#live === 0 ? NONE : this.#find(rid, sendId, at, b);
    if (found !== NONE) {
      this.#exp[found] = Math.max(this.#exp[found]!, expiresAt);
      return;
    }
    if (this.#walked >= GONE_SENDS_CHAIN_MAX) {
      // Ids chosen to collide (see above): a fresh key, the index rebuilt under it.
      this.#drawCoefficients();
      this.#rebuild(this.#cap);
      b = this.#bucket(rid, sendId, at);
    }
    if (this.#used === this.#max) {
      // Full: the oldest slot goes (an entry, or a hole a deletion left).
      const s = this.#oldest;
      if (this.#exp[s]! !== 0) this.#remove(s);
      this.#oldest = (s + 1) % this.#cap;
      this.#used--;
    }
    const s = (this.#oldest + this.#used) % this.#cap;
    this.#used++;
    // Byte by byte: no views allocated per message.
    const k = this.#keys;
    const o = s * KEY;
    for (let i = 0; i < RID; i++) k[o + i] = rid[i]!;
    for (let i = 0; i < 16; i++) k[o + RID + i] = sendId[at + i]!;
    this.#exp[s] = expiresAt > 0 ? expiresAt : Number.MIN_VALUE;
    this.#next[s] = this.#heads[b]!;
    this.#heads[b] = s;
    this.#live++;
  }

  /** Forget rid ‖ sendId (16 bytes from `at`) if held. */
  delete(rid: Uint8Array, sendId: Uint8Array, at = 0): void {
    if (this.#live === 0) return;
    const s = this.#find(rid, sendId, at, this.#bucket(rid, sendId, at));
    if (s === NONE) return;
    this.#remove(s);
    // Holes at the ends leave the ring; inside it, they wait for a compaction (see above).
    while (this.#used > 0 && this.#exp[(this.#oldest + this.#used - 1) % this.#cap]! === 0) this.#used--;
    while (this.#used > 0 && this.#exp[this.#oldest]! === 0) {
      this.#oldest = (this.#oldest + 1) % this.#cap;
      this.#used--;
    }
    if (this.#used - this.#live > this.#max >> 4) this.#rebuild(this.#cap);
  }

  /** Forget every entry expired at `nowMs` (and compact the ring); answers how many. */
  prune(nowMs: number): number {
    let n = 0;
    for (let i = 0, s = this.#oldest; i < this.#used; i++, s = (s + 1) % this.#cap) {
      const e = this.#exp[s]!;
      if (e !== 0 && e <= nowMs) {
        this.#remove(s);
        n++;
      }
    }
    if (this.#used > this.#live) this.#rebuild(this.#cap);
    return n;
  }

  /** The longest chain of the index: O(capacity), for tests and diagnostics. */
  longestChain(): number {
    let longest = 0;
    for (let b = 0; b < this.#cap; b++) {
      let n = 0;
      for (let s = this.#heads[b]!; s !== NONE; s = this.#next[s]!) n++;
      longest = Math.max(longest, n);
    }
    return longest;
  }

  #remove(s: number): void {
    const b = this.#bucketOfSlot(s);
    let prev = NONE;
    for (let c = this.#heads[b]!; c !== NONE; prev = c, c = this.#next[c]!)
      if (c === s) {
        if (prev === NONE) this.#heads[b] = this.#next[s]!;
        else this.#next[prev] = this.#next[s]!;
        break;
      }
    this.#exp[s] = 0;
    this.#live--;
  }

  #find(rid: Uint8Array, sendId: Uint8Array, at: number, b: number): number {
    const k = this.#keys;
    for (let s = this.#heads[b]!; s !== NONE; s = this.#next[s]!) {
      this.#walked++;
      const o = s * KEY;
      let same = true;
      for (let i = 0; i < RID && same; i++) same = k[o + i] === rid[i];
      for (let i = 0; i < 16 && same; i++) same = k[o + RID + i] === sendId[at + i];
      if (same) return s;
    }
    return NONE;
  }

  #bucket(rid: Uint8Array, sendId: Uint8Array, at: number, ridAt = 0): number {
    const c = this.#coef;
    let h = 0;
    for (let i = 0; i < RID / 2; i++) h += c[i]! * ((rid[ridAt + 2 * i]! << 8) | rid[ridAt + 2 * i + 1]!);
    for (let i = 0; i < 8; i++) h += c[RID / 2 + i]! * ((sendId[at + 2 * i]! << 8) | sendId[at + 2 * i + 1]!);
    return (h % P) & (this.#cap - 1);
  }

  #bucketOfSlot(s: number): number {
    return this.#bucket(this.#keys, this.#keys, s * KEY + RID, s * KEY);
  }

  #grow(): void {
    this.#rebuild(Math.min(Math.max(FIRST_CAPACITY, this.#cap * 2), 2 ** Math.ceil(Math.log2(this.#max))));
  }

  /** The held entries, in order, into fresh arrays of `cap` slots (cap: a power of two). */
  #rebuild(cap: number): void {
    const keys = Buffer.alloc(cap * KEY);
    const exp = new Float64Array(cap);
    let n = 0;
    for (let i = 0, s = this.#oldest; i < this.#used; i++, s = (s + 1) % this.#cap) {
      if (this.#exp[s]! === 0) continue;
      this.#keys.copy(keys, n * KEY, s * KEY, s * KEY + KEY);
      exp[n] = this.#exp[s]!;
      n++;
    }
    this.#keys.fill(0);
    this.#cap = cap;
    this.#keys = keys;
    this.#exp = exp;
    this.#next = new Int32Array(cap);
    this.#heads = new Int32Array(cap).fill(NONE);
    this.#oldest = 0;
    this.#used = n;
    this.#live = n;
    for (let s = 0; s < n; s++) {
      const b = this.#bucketOfSlot(s);
      this.#next[s] = this.#heads[b]!;
      this.#heads[b] = s;
    }
  }
}
