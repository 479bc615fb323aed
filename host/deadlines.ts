/**
 * One timer for many deadlines of the same length (a connection's opening timeout): items queue in
 * the order they were added, so they fall due in that order too, and one interval, running only
 * while something waits, hands each to `onDue` once its time has passed. Per item this costs two
 * array slots, where a `setTimeout` per connection cost a Timeout object, its closure and a timer
 * list entry (bench/README.md "bench:scale": idle WebSockets are counted in bytes).
 *
 * Nothing is ever cancelled: `onDue` decides whether the item still needs anything (a connection
 * that finished its opening ignores it). An item is due between `delayMs` and `delayMs + tickMs`
 * after it was added.
 */
export class Deadlines<T> {
  #items: (T | undefined)[] = [];
  #due: number[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #tickMs: number;
  readonly #onDue: (item: T) => void;
  readonly #now: () => number;
  readonly delayMs: number;

  constructor(
    delayMs: number,
    onDue: (item: T) => void,
    tickMs = Math.min(1000, delayMs),
    now: () => number = () => performance.now(),
  ) {
    this.delayMs = delayMs;
    this.#onDue = onDue;
    this.#now = now;
    this.#tickMs = Math.max(1, tickMs);
  }

  /** Items waiting (added and not yet handed to `onDue`). */
  get size(): number {
    return this.#items.length - this.#head;
  }

  add(item: T): void {
    this.#items.push(item);
    this.#due.push(this.#now() + this.delayMs);
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.#tickMs);
    this.#timer.unref();
  }

  #tick(): void {
    const now = this.#now();
    while (this.#head < this.#items.length && this.#due[this.#head]! <= now) {
      const item = this.#items[this.#head] as T;
      this.#items[this.#head] = undefined;
      this.#head++;
      try {
        this.#onDue(item);
      } catch {
        // One item's failure does not keep the others from their deadline.
      }
    }
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#due = [];
      this.#head = 0;
      this.close();
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#due = this.#due.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Stop the timer (what waits is dropped only if nothing is added again). */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
