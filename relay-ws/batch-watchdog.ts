/**
 * The watchdog of a worker thread's oldest unanswered batch (relay-ws/store/seal-pool.ts,
 * relay-ws/verify-pool.ts): it reports the worker stuck when the same batch is still out a timeout
 * later, so the pool can fail over to the event loop instead of stalling every SEND.
 *
 * It times the worker, not the event loop: when the loop was blocked (a long synchronous pass, a
 * major GC, a descheduled process), it wakes in the timers phase and the timer fires before the
 * poll phase hands over an answer that arrived long ago. So the verdict waits one `setImmediate`
 * (after that poll phase) and fails only if the same batch is still out; and a timer that fired a
 * whole timeout late (the loop, so maybe the worker too, starved that long) gives the batch one
 * more period first.
 */
import type { Worker } from "node:worker_threads";

export class BatchWatchdog {
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Whether the worker runs yet (`watch`): no clock before. */
  #running = false;

  /**
   * @param oldest the oldest batch out, or undefined when none is out or nothing is to be watched
   *   (the worker already failed over)
   * @param stuck called once the oldest batch is judged stuck
   */
  constructor(
    readonly timeoutMs: number,
    private readonly oldest: () => object | undefined,
    private readonly stuck: () => void,
  ) {}

  /**
   * The clock runs from the moment `worker` runs: a thread still starting (slow on a loaded
   * machine) is not a stuck one; batches posted meanwhile wait in its port.
   */
  watch(worker: Worker): void {
    // A respawned worker (the pool's next one) starts its clock afresh.
    this.#running = false;
    worker.once("online", () => {
      this.#running = true;
      this.arm();
    });
  }

  /** (Re)arms the watch on the oldest batch out; stops it when there is none. */
  arm(again = false): void {
    this.stop();
    const oldest = this.#running ? this.oldest() : undefined;
    if (oldest === undefined) return;
    const armedAt = performance.now();
    this.#timer = setTimeout(() => {
      setImmediate(() => {
        if (this.oldest() !== oldest) return;
        if (!again && performance.now() - armedAt >= 2 * this.timeoutMs) this.arm(true);
        else this.stuck();
      });
    }, this.timeoutMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** First wait before a failed worker is replaced (ms). */
export const RESPAWN_BASE_MS = 1_000;
/** Longest wait between replacements of a worker that keeps failing (ms). */
export const RESPAWN_MAX_MS = 60_000;

/**
 * When to replace a failed worker (seal-pool.ts, verify-pool.ts): after `baseMs`, doubling for
 * each failure that follows the previous one within `2 × maxMs` (a worker that keeps crashing or
 * hanging is retried at most once a `maxMs`, not in a tight loop — each try costs a thread start
 * and, for a hang, a batch timeout of SENDs), back to `baseMs` once `2 × maxMs` passed without a
 * failure (counted from the failure, so the wait before the replacement is part of it).
 * Until then the pool's work runs on the event loop, as after the failover.
 */
export class RespawnBackoff {
  #delay = 0;
  #lastFailAt = Number.NEGATIVE_INFINITY;

  constructor(
    readonly baseMs = RESPAWN_BASE_MS,
    readonly maxMs = RESPAWN_MAX_MS,
  ) {}

  /** The wait before replacing the worker that failed now. */
  next(now = performance.now()): number {
    this.#delay =
      now - this.#lastFailAt > 2 * this.maxMs || this.#delay === 0
        ? this.baseMs
        : Math.min(this.maxMs, this.#delay * 2);
    this.#lastFailAt = now;
    return this.#delay;
  }
}
