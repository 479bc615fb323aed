/**
 * The reconnect bookkeeping shared by the engine's pooled mailbox connections — relays
 * (relay-pool.ts) and SMP servers through the bridge (smp-mailbox.ts); docs/protocol/mailbox.md §3
 * ("the relay connection itself reconnects with the same backoff and, while it backs off,
 * requests fail at once instead of opening new sockets"):
 *
 * - one attempt in flight per server; after a failure, until the backoff is over, a request fails
 *   at once with the last error;
 * - a connection that fails to open or ends is opened again after a backoff with full jitter
 *   (core/relay/live-link.ts `reconnectDelay`) while it is still wanted (it holds subscriptions,
 *   or is kept up) — also when it became wanted only during the backoff (a failed request, then
 *   a keep or a subscription): that request arms the reconnect for the end of the backoff. One
 *   reconnect timer per server at most, and `stop` cancels it;
 * - the state each step reaches is told (`onState`: connecting, unreachable with why; "connected"
 *   is the caller's to say, in its own order with its subscriptions).
 */
import { LoftError } from "../../../core/errors.ts";
import { reconnectDelay } from "../../../core/relay/live-link.ts";
import type { RelayConnState } from "../engine/transport.ts";

/** One server's connection state, as the pools keep it. */
export interface PooledConn<C> {
  readonly url: string;
  client?: C;
  connecting?: Promise<C>;
  /** Failed opens in a row (the backoff's exponent). */
  failures: number;
  /** After a failure: until then, `client()` fails at once with `lastError`. */
  retryAt: number;
  lastError?: LoftError;
  /** The armed reconnect (at most one; undefined once it fired or was cancelled). */
  timer?: ReturnType<typeof setTimeout>;
}

export interface ReconnectorOptions<C, P extends PooledConn<C>> {
  backoffInitialMs: number;
  backoffMaxMs: number;
  onState: (url: string, state: RelayConnState, error?: LoftError) => void;
  /** Open a connection to `c`'s server. */
  open: (c: P) => Promise<C>;
  /** A failure of `open` as the error to keep and report. */
  asError: (e: unknown) => LoftError;
  /** `c` has its new client: watch its end (`ended`), subscribe again, say "connected". */
  opened: (c: P, client: C) => void;
  /** Whether `c` is reconnected after a failure or an end (it holds subscriptions, or is kept up). */
  wanted: (c: P) => boolean;
}

export class Reconnector<C extends { readonly closed: boolean; close(): void }, P extends PooledConn<C>> {
  readonly #o: ReconnectorOptions<C, P>;
  #stopped = false;

  constructor(options: ReconnectorOptions<C, P>) {
    this.#o = options;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The open client of `c`, connecting if needed; rejects with a `LoftError` when it can't. */
  client(c: P): Promise<C> {
    if (this.#stopped) return Promise.reject(new LoftError("LOFT_ERR_LINK_CLOSED", "stopped"));
    if (c.client && !c.client.closed) return Promise.resolve(c.client);
    if (!c.connecting && c.lastError && Date.now() < c.retryAt) {
      // Backing off: fail at once, but a server wanted now (kept up or subscribed since the
      // failure, when nothing armed a reconnect) is tried when the backoff is over.
      if (c.timer === undefined && this.#o.wanted(c)) this.#arm(c, c.retryAt - Date.now());
      return Promise.reject(c.lastError);
    }
    if (!c.connecting) {
      this.#disarm(c);
      c.connecting = this.#open(c).finally(() => {
        c.connecting = undefined;
      });
    }
    return c.connecting;
  }

  async #open(c: P): Promise<C> {
    this.#o.onState(c.url, "connecting");
    let client: C;
    try {
      client = await this.#o.open(c);
    } catch (e) {
      const error = this.#o.asError(e);
      c.failures++;
      c.lastError = error;
      this.#o.onState(c.url, "unreachable", error);
      this.schedule(c);
      throw error;
    }
    if (this.#stopped) {
      client.close();
      throw new LoftError("LOFT_ERR_LINK_CLOSED", "stopped");
    }
    c.client = client;
    c.failures = 0;
    c.lastError = undefined;
    this.#o.opened(c, client);
    return client;
  }

  /** `client`, `c`'s connection, ended with `why`: reconnect after a backoff while wanted. */
  ended(c: P, client: C, why: LoftError): void {
    if (c.client !== client) return;
    c.client = undefined;
    if (this.#stopped) return;
    c.lastError = why;
    this.#o.onState(c.url, "unreachable", why);
    this.schedule(c);
  }

  /** The next attempt after a backoff (requests fail at once until then); a timer if wanted. */
  schedule(c: P): void {
    const delay = reconnectDelay(c.failures, this.#o.backoffInitialMs, this.#o.backoffMaxMs);
    c.retryAt = Date.now() + delay;
    if (this.#stopped || !this.#o.wanted(c)) return;
    this.#arm(c, delay);
  }

  /** The one reconnect of `c`, in `delay` ms (replacing one already armed). */
  #arm(c: P, delay: number): void {
    this.#disarm(c);
    c.timer = setTimeout(() => {
      c.timer = undefined;
      // No longer wanted (its subscriptions gone): the next request connects on demand.
      if (this.#stopped || !this.#o.wanted(c)) return;
      // Due now: a timer may fire a millisecond before `retryAt` by Date.now(), and `client()`
      // would then fail at once without a new timer — the reconnect loop would stop for good.
      c.retryAt = 0;
      this.client(c).catch(() => {});
    }, delay);
  }

  #disarm(c: P): void {
    clearTimeout(c.timer);
    c.timer = undefined;
  }

  /** Stop: no more attempts, and every connection closed. */
  stop(conns: Iterable<P>): void {
    this.#stopped = true;
    for (const c of conns) {
      this.#disarm(c);
      c.client?.close();
      c.client = undefined;
    }
  }
}
