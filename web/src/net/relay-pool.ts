/**
 * Connections to relays (docs/protocol/relay.md; docs/protocol/mailbox.md), one per relay URL,
 * shared by everything in the engine that talks to a relay: our own receiving queues (subscribed,
 * push delivery), SENDs into contacts' mailboxes, and live links (core/relay `RelayLink` routes its
 * queue's pushes itself with `onQueueMessage`).
 *
 * - `client(url)` connects on demand (one attempt in flight per URL) and rejects with a
 *   `LoftError` when the relay can't be reached; callers retry with their own backoff.
 * - `subscribe(url, queue)` keeps a queue subscribed: on every (re)connect all of a URL's queues are
 *   subscribed again, and while a URL has subscriptions (or is `keep`), a dropped connection is
 *   reconnected with exponential backoff and full jitter.
 * - Pushed messages reach `onMessage(url, message)`; the engine acknowledges with `ack` once it
 *   has stored what the message carried. An ACK that can't be sent is simply lost: the relay
 *   redelivers the message on the next subscription, and the engine drops the duplicate.
 * - `smp://` URLs are mailboxes on SMP servers (docs/protocol/mailbox.md §1): handed to
 *   smp-mailbox.ts, which reaches them through our relay's bridge with the same calls.
 */
import { toHex } from "../../../core/bytes.ts";
import { isLoftError, LoftError } from "../../../core/errors.ts";
import { ackPacer } from "../../../core/relay/ack-pacer.ts";
import { type RecipientQueue, RelayClient } from "../../../core/relay/client.ts";
import { DEFAULT_SEND_RETRY } from "../../../core/relay/live-link.ts";
import { WebSocketLink } from "../../../core/relay/ws-link.ts";
import type {
  MailboxClient,
  RelayConnections,
  RelayConnectionsFactory,
  RelayConnectionsOptions,
} from "../engine/transport.ts";
import { type PooledConn, Reconnector } from "./reconnector.ts";
import { SmpMailboxes } from "./smp-mailbox.ts";

interface Conn extends PooledConn<RelayClient> {
  readonly subs: Map<string, RecipientQueue>;
  keep: boolean;
}

export class RelayPool implements RelayConnections {
  readonly #o: RelayConnectionsOptions;
  readonly #conns = new Map<string, Conn>();
  readonly #smp: SmpMailboxes;
  readonly #r: Reconnector<RelayClient, Conn>;

  constructor(options: RelayConnectionsOptions) {
    this.#o = options;
    this.#r = new Reconnector({
      backoffInitialMs: options.backoffInitialMs,
      backoffMaxMs: options.backoffMaxMs,
      onState: options.onState,
      open: (c) =>
        RelayClient.connect(new WebSocketLink(options.webSocket(c.url)), {
          timeoutMs: options.timeoutMs,
          ...(options.crypto ? { crypto: options.crypto } : {}),
          onMessage: (m) => options.onMessage(c.url, m),
          onError: (e) => options.log(`relay: ${e.code} ${e.message}`),
          onEnd: (rid) => options.log(`relay: subscription of ${toHex(rid).slice(0, 8)} ended here`),
          onUnavailable: () => this.#leave(c),
        }),
      asError: (e) => (isLoftError(e) ? e : new LoftError("LOFT_ERR_LINK_CLOSED", (e as Error).message)),
      opened: (c, client) => this.#opened(c, client),
      wanted: (c) => c.keep || c.subs.size > 0,
    });
    this.#smp = new SmpMailboxes({
      bridgeUrl: options.smpBridgeUrl,
      webSocket: options.webSocket,
      timeoutMs: options.timeoutMs,
      backoffInitialMs: options.backoffInitialMs,
      backoffMaxMs: options.backoffMaxMs,
      onMessage: options.onMessage,
      onState: options.onState,
      log: options.log,
    });
  }

  /** A mailbox connection: the relay's client, or an SMP server's session through the bridge. */
  mailbox(url: string): Promise<MailboxClient> {
    if (!isSmp(url)) return this.client(url);
    try {
      return Promise.resolve(this.#smp.conn(url));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #conn(url: string): Conn {
    let c = this.#conns.get(url);
    if (!c) {
      c = { url, subs: new Map(), keep: false, failures: 0, retryAt: 0 };
      this.#conns.set(url, c);
    }
    return c;
  }

  /** Keep a connection to `url` up (our own relay), reconnecting with backoff. */
  keep(url: string): void {
    const c = this.#conn(url);
    c.keep = true;
    this.client(url).catch(() => {});
  }

  /** True when a connection to `url` is open right now. */
  isUp(url: string): boolean {
    if (isSmp(url)) return this.#smp.isUp(url);
    const c = this.#conns.get(url)?.client;
    return c !== undefined && !c.closed;
  }

  /** The last attempt to reach `url` failed and no connection is open now. */
  isDown(url: string): boolean {
    const c = this.#conns.get(url);
    return c !== undefined && c.lastError !== undefined && !this.isUp(url);
  }

  /** The open client for `url`, connecting if needed. */
  client(url: string): Promise<RelayClient> {
    return this.#r.client(this.#conn(url));
  }

  /** A new connection: "connected" (before its SUBs: pieces reset before pushes), then every SUB again. */
  #opened(c: Conn, client: RelayClient): void {
    this.#o.onState(c.url, "connected");
    void client.done.then((why) => {
      if (c.client === client && !this.#r.stopped) this.#o.log(`relay connection closed: ${why.code}`);
      this.#r.ended(c, client, why);
    });
    for (const q of c.subs.values())
      client.subscribe(q, this.#o.window).catch((e: LoftError) => this.#subFailed(c.url, q, e));
  }

  /**
   * A command on `c`'s connection was answered UNAVAILABLE: that instance lost its store
   * (docs/operations.md, "Redis down: one rule"). Leave it rather than send it more: the
   * reconnection goes through the balancer to another instance (this one refuses new connections
   * with 503 meanwhile), and until one answers the relay counts as down (`isDown`), so new
   * mailboxes go to the next configured relay. The failure counts toward the backoff.
   */
  #leave(c: Conn): void {
    const client = c.client;
    if (!client || client.closed) return;
    this.#o.log("relay answered UNAVAILABLE: leaving this connection");
    c.failures++;
    this.#r.ended(
      c,
      client,
      new LoftError("LOFT_ERR_RELAY_UNAVAILABLE", "the relay cannot reach its store right now"),
    );
    client.close();
  }

  /** A SUB refused: logged, and told (`onSubscribeError`: an AUTH means the queue is gone). */
  #subFailed(url: string, queue: RecipientQueue, e: LoftError): void {
    this.#o.log(`relay SUB: ${e.code}`);
    this.#o.onSubscribeError?.(url, queue.recipientId, e);
  }

  /** Keep `queue` subscribed on `url` (now and after every reconnect). */
  subscribe(url: string, queue: RecipientQueue): void {
    if (isSmp(url)) {
      this.#smp.subscribe(url, queue);
      return;
    }
    const c = this.#conn(url);
    const key = toHex(queue.recipientId);
    c.subs.set(key, queue);
    const client = c.client;
    if (client && !client.closed)
      client.subscribe(queue, this.#o.window).catch((e: LoftError) => this.#subFailed(url, queue, e));
    else this.client(url).catch(() => {});
  }

  /** Stop resubscribing `recipientId` (messages already pushed may still arrive). */
  unsubscribe(url: string, recipientId: Uint8Array): void {
    if (isSmp(url)) {
      this.#smp.unsubscribe(url, recipientId);
      return;
    }
    this.#conns.get(url)?.subs.delete(toHex(recipientId));
  }

  /**
   * ACK on the current connection; lost if it is down (the relay redelivers later). An ACK
   * refused for rate is tried again: the relay pushes at most a SUB window of unacknowledged
   * messages, so dropped ones would stall the queue until the next reconnection — a backlog read
   * after a day offline is exactly when the connection's command rate runs out
   * (docs/protocol/relay.md §Limits). The retries go through the connection's one ACK pacer
   * (core/relay/ack-pacer.ts, shared with the live links on it), not a timer per ACK: a window of
   * retries at once ran the connection into the relay's rate debt, which closes it.
   */
  async ack(url: string, queue: RecipientQueue, msgId: Uint8Array): Promise<void> {
    if (isSmp(url)) return this.#smp.ack(url, queue, msgId);
    const client = this.#conns.get(url)?.client;
    if (!client || client.closed) return;
    await ackPacer(client, DEFAULT_SEND_RETRY)
      .ack(queue, msgId)
      .catch((e: LoftError) => this.#o.log(`relay ACK: ${e.code}`));
  }

  close(): void {
    this.#smp.close();
    this.#r.stop(this.#conns.values());
  }
}

const isSmp = (url: string) => url.startsWith("smp://");

/** The engine's `relayConnections` (EngineConfig) in the browser. */
export const createRelayPool: RelayConnectionsFactory = (options) => new RelayPool(options);
