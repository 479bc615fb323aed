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
