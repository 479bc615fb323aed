/**
 * Unread output across all relay connections (`--relay-send-buffer-total`,
 * docs/operations-relay.md §Limits and abuse).
 *
 * Each connection counts the bytes it handed to its WebSocket until the socket has passed them
 * to the kernel (the `ws.send` callback); this budget is the sum. A client that does not read
 * makes its count grow. Per connection the limit is `--relay-send-buffer`; globally, once the sum
 * would pass this budget, any connection already holding more than `SLOW_CONSUMER_FLOOR` unread
 * is treated as a slow consumer and cut. So memory pinned by output stays below
 * `budget + connections × (SLOW_CONSUMER_FLOOR + one frame)` whatever the number of slow readers,
 * and a connection that reads along (a backlog under the floor) is never cut for others' backlog.
 */

/** Unread bytes a connection may always hold, whatever the global pressure. */
export const SLOW_CONSUMER_FLOOR = 64 << 10;

/**
 * Backlog above which pushes (subscription deliveries) to a connection pause until it drains to
 * half of it: a slow reader is slowed down, not cut, for what the relay pushes by itself.
 */
export const PUSH_HIGH_WATER = 256 << 10;

export class OutputBudget {
  #queued = 0;
  constructor(readonly limit: number) {}

  get queued(): number {
    return this.#queued;
  }

  /** Whether a connection holding `own` unread bytes may add `n` more. */
  admits(own: number, n: number): boolean {
    return this.#queued + n <= this.limit || own + n <= SLOW_CONSUMER_FLOOR;
  }

  /** Over budget: pushes pause everywhere until the backlog drains. */
  get strained(): boolean {
    return this.#queued >= this.limit;
  }

  add(n: number): void {
    this.#queued += n;
  }

  remove(n: number): void {
    this.#queued = Math.max(0, this.#queued - n);
  }
}
