/**
 * The timers of one contact's link (docs/design.md, "The link controller"): each has a name, at
 * most one of each runs, and `clearAll` stops every one of them — the only way a contact's timers
 * end when the contact is deleted or the engine stops. Only the link controller (link/controller.ts)
 * sets them; step modules ask for one with a `schedule` outcome (outcome.ts).
 */

/**
 * `retry`: the next dial (backoff or the glare delay, chat.md §1, §6); `mailbox`: the outbox may
 * go to the mailbox, or a deposit is retried (mailbox.md §3); `receipt`: batched receipts for
 * mailbox messages; `upgrade`: on the relay path, try direct again (mailbox.md §6); `heartbeat`:
 * the live session's PING interval (chat.md §6); `probe`: the answer a live session owes once
 * signaling said the contact went offline (chat.md §6); `reread`: our mailbox is read again from
 * a body left on the relay (mailbox.md §4, "In order").
 */
export const TIMER_NAMES = [
  "retry",
  "mailbox",
  "receipt",
  "upgrade",
  "heartbeat",
  "probe",
  "reread",
] as const;

export type TimerName = (typeof TIMER_NAMES)[number];

export class LinkTimers {
  readonly #running = new Map<TimerName, { handle: ReturnType<typeof setTimeout>; every: boolean }>();

  /** Run `fn` once after `ms`, replacing a timer of the same name. */
  set(name: TimerName, ms: number, fn: () => void): void {
    this.clear(name);
    const handle = setTimeout(() => {
      if (this.#running.get(name)?.handle === handle) this.#running.delete(name);
      fn();
    }, ms);
    this.#running.set(name, { handle, every: false });
  }

  /** Run `fn` every `ms` until cleared, replacing a timer of the same name. */
  every(name: TimerName, ms: number, fn: () => void): void {
    this.clear(name);
    this.#running.set(name, { handle: setInterval(fn, ms), every: true });
  }

  has(name: TimerName): boolean {
    return this.#running.has(name);
  }

  clear(name: TimerName): void {
    const t = this.#running.get(name);
    if (!t) return;
    if (t.every) clearInterval(t.handle);
    else clearTimeout(t.handle);
    this.#running.delete(name);
  }

  clearAll(): void {
    for (const name of [...this.#running.keys()]) this.clear(name);
  }

  /** The names of the timers running now (tests, diagnostics). */
  running(): TimerName[] {
    return [...this.#running.keys()];
  }
}
