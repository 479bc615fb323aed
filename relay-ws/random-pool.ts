/**
 * Random bytes for the relay's hot path (message ids, at-rest data keys and IVs) from a buffer
 * refilled by one CSPRNG call, instead of one `randomBytes` call per value: each call cost ~3 µs
 * on this machine and a stored-and-forwarded message took five (bench/README-relay.md, profile).
 *
 * Every byte is handed out once: the bytes are copied into a fresh buffer for the caller and
 * their place in the pool is zeroed at once, so the pool never holds a key that was handed out.
 */
import { randomBytes, randomFillSync } from "node:crypto";

const POOL_BYTES = 4096;
/** Requests larger than this go straight to the CSPRNG. */
const MAX_POOLED = 256;

export class RandomPool {
  readonly #pool: Buffer;
  #at: number;

  /** `pool`: the buffer to refill (a test passes its own to watch it). */
  constructor(pool: Buffer = Buffer.alloc(POOL_BYTES)) {
    this.#pool = pool;
    this.#at = pool.length;
  }

  /** `n` fresh random bytes (a new buffer the caller owns and may wipe). */
  take(n: number): Buffer {
    if (n > MAX_POOLED || n > this.#pool.length) return randomBytes(n);
    if (this.#at + n > this.#pool.length) {
      randomFillSync(this.#pool);
      this.#at = 0;
    }
    const out = Buffer.allocUnsafe(n);
    this.#pool.copy(out, 0, this.#at, this.#at + n);
    this.#pool.fill(0, this.#at, this.#at + n);
    this.#at += n;
    return out;
  }
}

/** The relay process's pool (one event loop: no locking needed). */
export const randomPool = new RandomPool();

/** `randomBytes` from the pool. */
export const pooledRandomBytes = (n: number): Buffer => randomPool.take(n);

/**
 * Small buffers that live as long as a connection (its session id, its X25519 key pair), cut from
 * slabs of their own. `Buffer.allocUnsafe` cuts small buffers from Node's shared 8 KiB pool, which
 * the frames written at every opening use too: a slab stays alive while any slice of it does, so
 * each idle connection kept about 270 bytes of those slabs alive for its 96 bytes
 * (bench/idle-census.ts; bench/README.md "bench:scale"). These slabs hold only lasting bytes; a
 * slab goes once none of its connections is left.
 *
 * Their size is what one long-lived connection can keep alive when those cut beside it have
 * closed: under churn (connections opened and closed for minutes) nearly every survivor sits in a
 * slab of its own. Slabs of 4 KiB (about 40 connections) then cost 3.8 KB per idle connection
 * (bench/idle-census.ts `--churn 40`), 512 B slabs (five relay connections of 96 bytes) at most
 * their 512; the price without churn is one ArrayBuffer per five connections instead of per forty
 * (bench/README.md, "Connection-long bytes under churn").
 */
export const LASTING_SLAB_BYTES = 512;

export class LastingSlab {
  #slab: Buffer | undefined;
  #at = 0;
  constructor(readonly size = LASTING_SLAB_BYTES) {}

  /** `n` bytes, uninitialized (the caller fills them at once); a buffer of its own past size / 4. */
  take(n: number): Buffer {
    if (n > this.size / 4) return Buffer.alloc(n);
    if (!this.#slab || this.#at + n > this.#slab.length) {
      this.#slab = Buffer.allocUnsafeSlow(this.size);
      this.#at = 0;
    }
    const out = this.#slab.subarray(this.#at, this.#at + n);
    this.#at += (n + 7) & ~7;
    return out;
  }
}

/** The relay process's slab of connection-long bytes. */
export const lastingSlab = new LastingSlab();

/** `n` random bytes that last as long as a connection (lastingSlab). */
export function lastingRandomBytes(n: number): Buffer {
  const out = lastingSlab.take(n);
  randomFillSync(out);
  return out;
}
