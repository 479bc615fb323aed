/**
 * Send ids of messages no longer stored (acknowledged, dropped, expired), kept so a retry of one is
 * still answered DUPLICATE while the relay runs (docs/protocol/relay.md, SEND) — without a heap
 * object per message. The list was a `Map` from a 40-character string (rid ‖ send id, latin1) to
 * the expiry: each acknowledged message left one string and one map entry that lived until it
 * was evicted, hundreds of thousands of messages later, so every one of them was copied by the
 * young-generation collector, promoted and later freed by a full mark-compact — the survivors a
 * collection pays for (bench/README-relay.md, "Results: fewer objects per message"). Here the
 * entries live in flat typed arrays of slots: the 40-byte keys and their expiries, a chained hash
 * index over them, a doubly linked list in insertion order (oldest evicted first, at most `max`
 * held), and a binary min-heap by expiry. A slot an entry leaves goes on a free list.
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
 * Whatever an entry leaves by — evicted, deleted (lmdb.ts #unforgetSend: a removal whose commit
 * failed) or pruned — it is unlinked from the index, the order and the heap in O(log max) and its
 * slot freed: no holes, so nothing ever pushes held ids out but `max` newer ones (a disk refusing
 * every commit, with each ACK retried, must not push every held id out), and nothing is ever
 * compacted. GC prunes every run (lmdb.ts #gc), and almost every run finds nothing or a few
 * expired: a prune pops the heap while its root is due, so it costs O(log max) per expired entry
 * and nothing per held one — it read all of them and rebuilt every array (14 MiB at 262 144
 * entries) whenever anything had expired (bench/README-relay.md, "Results: the gone list pruned
 * by what expired"). The price is two more order links and two heap words per slot, and the heap's
 * sifts at each add: O(log max) — once full, the eviction's (down from near the root, the oldest
 * expiring about first) and the new entry's (a level or two up: ids come in about expiry order).
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
  /** Slots allocated (a power of two, at most the one above `max`); also the index's buckets. */
  #cap = 0;
  #keys = Buffer.alloc(0);
  /** Hash chains: the next slot of the same bucket, and each bucket's first slot. */
  #next = new Int32Array(0);
  #heads = new Int32Array(0);
  /** Insertion order: the slot added before and after each entry; the oldest and newest entry. */
  #older = new Int32Array(0);
  #newer = new Int32Array(0);
  #oldest = NONE;
  #newest = NONE;
  /**
   * Min-heap of the entries by expiry, `#live` long: their slots and expiries (ms) side by side, so
   * a sift compares children without a read elsewhere; and each slot's place in it.
   */
  #heap = new Int32Array(0);
  #heapExp = new Float64Array(0);
  #place = new Int32Array(0);
  /** Free slots, chained through #newer; slots from #fresh on were never used. */
  #free = NONE;
  #fresh = 0;
  #live = 0;
  /** Slots the last #find walked. */
  #walked = 0;
  /** Heap levels every sift so far moved an entry by; and what the last prune cost (tests). */
  #sifts = 0;
  #pruneWork = 0;

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

  /** Slots the last `prune` read or moved, heap levels included (tests and diagnostics). */
  get lastPruneWork(): number {
    return this.#pruneWork;
  }

  /** Whether rid ‖ sendId is held (`sendId` is read from `at`, 16 bytes). */
  has(rid: Uint8Array, sendId: Uint8Array, at = 0): boolean {
    if (this.#live === 0) return false;
    return this.#find(rid, sendId, at, this.#bucket(rid, sendId, at)) !== NONE;
  }

  /**
   * Hold rid ‖ sendId (16 bytes from `at`) until `expiresAt` (ms). A key already held is kept once,
   * in its place in the order, with the later expiry.
   */
  add(rid: Uint8Array, sendId: Uint8Array, at: number, expiresAt: number): void {
    if (this.#live < this.#max && this.#free === NONE && this.#fresh === this.#cap) this.#grow();
    let b = this.#bucket(rid, sendId, at);
    this.#walked = 0;
    const found = this.#live === 0 ? NONE : this.#find(rid, sendId, at, b);
    if (found !== NONE) {
      const h = this.#place[found]!;
      if (expiresAt > this.#heapExp[h]!) {
        this.#heapExp[h] = expiresAt;
        this.#down(h);
      }
      return;
    }
    if (this.#walked >= GONE_SENDS_CHAIN_MAX) {
      // Ids chosen to collide (see above): a fresh key, the index rebuilt under it.
      this.#drawCoefficients();
      this.#reindex();
      b = this.#bucket(rid, sendId, at);
    }
    // Full: the oldest entry goes, and its slot takes the new one.
    if (this.#live === this.#max) this.#remove(this.#oldest);
    let s = this.#free;
    if (s !== NONE) this.#free = this.#newer[s]!;
    else s = this.#fresh++;
    // Byte by byte: no views allocated per message.
    const k = this.#keys;
    const o = s * KEY;
    for (let i = 0; i < RID; i++) k[o + i] = rid[i]!;
    for (let i = 0; i < 16; i++) k[o + RID + i] = sendId[at + i]!;
    this.#next[s] = this.#heads[b]!;
    this.#heads[b] = s;
    this.#older[s] = this.#newest;
    this.#newer[s] = NONE;
    if (this.#newest === NONE) this.#oldest = s;
    else this.#newer[this.#newest] = s;
    this.#newest = s;
    const h = this.#live++;
    this.#heap[h] = s;
    this.#heapExp[h] = expiresAt;
    this.#up(h);
  }

  /** Forget rid ‖ sendId (16 bytes from `at`) if held. */
  delete(rid: Uint8Array, sendId: Uint8Array, at = 0): void {
    if (this.#live === 0) return;
    const s = this.#find(rid, sendId, at, this.#bucket(rid, sendId, at));
    if (s !== NONE) this.#remove(s);
  }

  /** Forget every entry expired at `nowMs`; answers how many. */
  prune(nowMs: number): number {
    let n = 0;
    const sifts = this.#sifts;
    while (this.#live > 0 && this.#heapExp[0]! <= nowMs) {
      this.#remove(this.#heap[0]!);
      n++;
    }
    // The root read once per entry popped and once more, and each level a sift moved something.
    this.#pruneWork = n + 1 + this.#sifts - sifts;
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

  /** Slot `s` (held) leaves the index, the order and the heap, and goes on the free list. */
  #remove(s: number): void {
    const b = this.#bucketOfSlot(s);
    let prev = NONE;
    for (let c = this.#heads[b]!; c !== NONE; prev = c, c = this.#next[c]!)
      if (c === s) {
        if (prev === NONE) this.#heads[b] = this.#next[s]!;
        else this.#next[prev] = this.#next[s]!;
        break;
      }
    const older = this.#older[s]!;
    const newer = this.#newer[s]!;
    if (older === NONE) this.#oldest = newer;
    else this.#newer[older] = newer;
    if (newer === NONE) this.#newest = older;
    else this.#older[newer] = older;
    // The heap's last entry takes its place, then moves up or down to where it belongs.
    const h = this.#place[s]!;
    const end = --this.#live;
    if (h !== end) {
      const last = this.#heap[end]!;
      this.#heap[h] = last;
      this.#heapExp[h] = this.#heapExp[end]!;
      this.#down(h);
      this.#up(this.#place[last]!);
    }
    this.#keys.fill(0, s * KEY, s * KEY + KEY);
    this.#newer[s] = this.#free;
    this.#free = s;
  }

  /** The heap entry at `h` moves towards the root past every later expiry. */
  #up(h: number): void {
    const heap = this.#heap;
    const exp = this.#heapExp;
    const s = heap[h]!;
    const e = exp[h]!;
    while (h > 0) {
      const parent = (h - 1) >> 1;
      if (exp[parent]! <= e) break;
      const p = heap[parent]!;
      heap[h] = p;
      exp[h] = exp[parent]!;
      this.#place[p] = h;
      h = parent;
      this.#sifts++;
    }
    heap[h] = s;
    exp[h] = e;
    this.#place[s] = h;
  }

  /** The heap entry at `h` moves away from the root past every earlier expiry. */
  #down(h: number): void {
    const heap = this.#heap;
    const exp = this.#heapExp;
    const n = this.#live;
    const s = heap[h]!;
    const e = exp[h]!;
    for (;;) {
      let c = 2 * h + 1;
      if (c >= n) break;
      if (c + 1 < n && exp[c + 1]! < exp[c]!) c++;
      if (exp[c]! >= e) break;
      const child = heap[c]!;
      heap[h] = child;
      exp[h] = exp[c]!;
      this.#place[child] = h;
      h = c;
      this.#sifts++;
    }
    heap[h] = s;
    exp[h] = e;
    this.#place[s] = h;
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

  /** Twice the slots (up to the power of two above `max`): every slot keeps its number. */
  #grow(): void {
    const cap = Math.min(Math.max(FIRST_CAPACITY, this.#cap * 2), 2 ** Math.ceil(Math.log2(this.#max)));
    const keys = Buffer.alloc(cap * KEY);
    this.#keys.copy(keys);
    this.#keys = keys;
    const widen = <T extends Float64Array | Int32Array>(a: T, b: T): T => {
      b.set(a);
      return b;
    };
    this.#heapExp = widen(this.#heapExp, new Float64Array(cap));
    this.#older = widen(this.#older, new Int32Array(cap));
    this.#newer = widen(this.#newer, new Int32Array(cap));
    this.#heap = widen(this.#heap, new Int32Array(cap));
    this.#place = widen(this.#place, new Int32Array(cap));
    this.#next = new Int32Array(cap);
    this.#heads = new Int32Array(cap);
    this.#cap = cap;
    this.#reindex();
  }

  /** The hash index built again over the held entries (new coefficients or more buckets). */
  #reindex(): void {
    this.#heads.fill(NONE);
    for (let s = this.#oldest; s !== NONE; s = this.#newer[s]!) {
      const b = this.#bucketOfSlot(s);
      this.#next[s] = this.#heads[b]!;
      this.#heads[b] = s;
    }
  }
}
