/**
 * When the open app looks for a new build (web/src/sw-client.ts; docs/operations.md,
 * "Upgrading"): each time its signaling server is back after a drop, when the tab is shown again,
 * and every hour. Each look fetches sw.js from the server, so each trigger is bounded: a
 * flapping network or a server restarted again and again makes every open tab reconnect over and
 * over, and each reconnect must not cost the server one more sw.js per tab — a reconnect looks at
 * most once per `RECONNECT_MIN_MS`; one that comes sooner is not dropped but moved to the end of
 * that interval (the last restart of a storm is the deploy, and its build must still be found). A
 * tab shown again looks unless a look was made in the last `shownAgainMs`.
 *
 * The clock is injected so the intervals are walked through in tests (web/src/update-checks.test.ts), not waited.
 */

export interface UpdateCheckIntervals {
  hourlyMs: number;
  shownAgainMs: number;
  reconnectMinMs: number;
}

export const UPDATE_CHECKS: Readonly<UpdateCheckIntervals> = {
  /** A look every hour, whatever else happens: a tab left open and visible for days. */
  hourlyMs: 60 * 60 * 1000,
  /** A tab shown again looks unless a look was made this recently. */
  shownAgainMs: 10 * 60 * 1000,
  /** Looks caused by reconnects are at least this far apart (a later one waits for it). */
  reconnectMinMs: 30 * 1000,
};

/**
 * The intervals, with those a browser test set before the app loaded (an init script assigns
 * `globalThis.loftUpdateChecks`, test/support/publish-build.ts `useUpdateChecks`) — as
 * web/src/page-timings.ts does for the engine: only these keys, only finite positive numbers.
 * No real page sets it.
 */
export function updateCheckIntervals(
  from: unknown = (globalThis as { loftUpdateChecks?: unknown }).loftUpdateChecks,
): UpdateCheckIntervals {
  const out: UpdateCheckIntervals = { ...UPDATE_CHECKS };
  if (typeof from !== "object" || from === null) return out;
  for (const key of Object.keys(UPDATE_CHECKS) as (keyof UpdateCheckIntervals)[]) {
    const value = (from as Record<string, unknown>)[key];
    if (typeof value === "number" && Number.isFinite(value) && value > 0) out[key] = value;
  }
  return out;
}

export interface UpdateCheckClock {
  now(): number;
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(run: () => void, ms: number): unknown;
}

export const realClock: UpdateCheckClock = {
  now: () => performance.now(),
  setTimeout: (run, ms) => setTimeout(run, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  setInterval: (run, ms) => setInterval(run, ms),
};

export class UpdateChecks {
  readonly #look: () => void;
  readonly #clock: UpdateCheckClock;
  readonly #every: UpdateCheckIntervals;
  #last = Number.NEGATIVE_INFINITY;
  /** A reconnect's look moved to the end of `reconnectMinMs` (one at most). */
  #deferred: unknown;
  /**
   * The next time the signaling server is reached is a reconnect: it was reached before, or found
   * unreachable (`signalingUnreachable`) since the page started.
   */
  #reconnecting = false;

  /** `look` asks the browser to look for a new build; it must not throw. */
  constructor(
    look: () => void,
    clock: UpdateCheckClock = realClock,
    every: UpdateCheckIntervals = UPDATE_CHECKS,
  ) {
    this.#look = look;
    this.#clock = clock;
    this.#every = every;
  }

  /** Start the hourly looks. */
  start(): void {
    this.#clock.setInterval(() => this.lookNow(), this.#every.hourlyMs);
  }

  /** Look now, whatever the intervals (an hourly tick; a person's or a test's request). */
  lookNow(): void {
    if (this.#deferred !== undefined) {
      this.#clock.clearTimeout(this.#deferred);
      this.#deferred = undefined;
    }
    this.#last = this.#clock.now();
    this.#look();
  }

  /**
   * The signaling server is reached (web/src/main.tsx, each time its state becomes connected).
   * The first time, at the page's start, is no reconnect: the page load itself just fetched
   * sw.js (the browser's own look when the app registers it), so it does not look — one sw.js
   * more per page load otherwise. Each later one is a reconnect (`reconnected`), and so is the
   * first when the server was found unreachable before it: a page started while the server was
   * down (offline, or a deploy under way) fetched no sw.js at its load, and the server coming
   * back is when the deploy's build appears. Counted whether or not the app has registered yet,
   * so a signaling connection that beats the registration is still the first.
   */
  signalingReached(): void {
    if (!this.#reconnecting) {
      this.#reconnecting = true;
      return;
    }
    this.reconnected();
  }

  /** The signaling server could not be reached: the next time it is, is a reconnect. */
  signalingUnreachable(): void {
    this.#reconnecting = true;
  }

  /** The signaling server is reached again after a drop. */
  reconnected(): void {
    if (this.#deferred !== undefined) return;
    const wait = this.#last + this.#every.reconnectMinMs - this.#clock.now();
    if (wait <= 0) this.lookNow();
    else
      this.#deferred = this.#clock.setTimeout(() => {
        this.#deferred = undefined;
        this.lookNow();
      }, wait);
  }

  /** The tab is shown again. */
  shown(): void {
    if (this.#clock.now() - this.#last >= this.#every.shownAgainMs) this.lookNow();
  }
}
