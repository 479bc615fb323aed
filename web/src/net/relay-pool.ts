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
 * - Connections speak relay protocol 1.3 (1.2's deliveries padded to the body's size bucket, plus
 *   several messages per frame: SENDs and ACKs of one tick corked into SENDS/ACKS, bursts pushed
 *   as MSGS) unless told `batch: false` (then 1.2) or `delivery: "block"` (then 1.1). A relay that
 *   refuses the header (`ERR VERSION`: one from before that version) is opened again at once with
 *   the next lower one — 1.3, then 1.2, then 1.1 — and spoken to in it for the rest of the pool's
 *   life. Why 1.2 reveals nothing the app did not reveal already, and why the fall-backs are safe:
 *   docs/decisions.md (Relay), "The app speaks relay protocol 1.2" and "Several messages per
 *   frame (protocol 1.3)".
 */
import { toHex } from "../../../core/bytes.ts";
import { isLoftError, LoftError } from "../../../core/errors.ts";
import { ackPacer } from "../../../core/relay/ack-pacer.ts";
import { type RecipientQueue, RelayClient } from "../../../core/relay/client.ts";
import { DEFAULT_SEND_RETRY } from "../../../core/relay/live-link.ts";
import type { RelayDeliveryPadding } from "../../../core/relay/protocol.ts";
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
  /** The padding asked for on the next opening: "block" once the relay refused 1.2. */
  delivery: RelayDeliveryPadding;
  /** Whether the next opening asks for 1.3 (batches): false once the relay refused it. */
  batch: boolean;
}

export class RelayPool implements RelayConnections {
  readonly #o: RelayConnectionsOptions;
  readonly #conns = new Map<string, Conn>();
  readonly #smp: SmpMailboxes;
  readonly #r: Reconnector<RelayClient, Conn>;
  /**
   * Links of openings under way. `close` closes them too: a socket left CONNECTING until its
   * opening times out holds up every other WebSocket of the page to that host (RFC 6455 §4.1) —
   * the next engine's signaling and relay among them.
   */
  readonly #opening = new Set<WebSocketLink>();

  constructor(options: RelayConnectionsOptions) {
    this.#o = options;
    this.#r = new Reconnector({
      backoffInitialMs: options.backoffInitialMs,
      backoffMaxMs: options.backoffMaxMs,
      onState: options.onState,
      open: (c) => this.#open(c),
      asError: (e) => (isLoftError(e) ? e : new LoftError("LOFT_ERR_LINK_CLOSED", (e as Error).message)),
      opened: (c, client) => this.#opened(c, client),
      wanted: (c) => c.keep || c.subs.size > 0,
    });
    this.#smp = new SmpMailboxes({
      bridgeUrl: options.smpBridgeUrl,
      webSocket: options.webSocket,
      timeoutMs: options.timeoutMs,
      ...(options.openTimeoutMs !== undefined ? { openTimeoutMs: options.openTimeoutMs } : {}),
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

  /**
   * One opening, in 1.3 unless this relay refused it before (or the pool was told otherwise). A
   * header refused with `ERR VERSION` is a relay from before that version: the same opening goes
   * on at once one version lower (1.3 → 1.2 → 1.1; docs/protocol/relay.md §Versions), and the
   * next ones start there. Only a refusal the relay itself sent over TLS lowers the version; 1.1
   * hides more than 1.2, and 1.2 shows what 1.3 shows, so forcing the fall-back gains an attacker
   * nothing (docs/decisions.md (Relay), "The app speaks relay protocol 1.2", "Several messages
   * per frame (protocol 1.3)").
   */
  async #open(c: Conn): Promise<RelayClient> {
    const o = this.#o;
    const connect = async (delivery: RelayDeliveryPadding, batch = false) => {
      // A fall-back opening after `close`: no new socket.
      if (this.#r.stopped) throw new LoftError("LOFT_ERR_LINK_CLOSED", "stopped");
      const link = new WebSocketLink(o.webSocket(c.url));
      this.#opening.add(link);
      try {
        return await RelayClient.connect(link, {
          timeoutMs: o.timeoutMs,
          ...(o.openTimeoutMs !== undefined ? { openTimeoutMs: o.openTimeoutMs } : {}),
          delivery,
          ...(batch ? { batch } : {}),
          ...(o.crypto ? { crypto: o.crypto } : {}),
          onMessage: (m) => o.onMessage(c.url, m),
          onError: (e) => o.log(`relay: ${e.message}`), // `code: detail` (core/errors.ts LoftError)
          onEnd: (rid) => o.log(`relay: subscription of ${toHex(rid).slice(0, 8)} ended here`),
          onUnavailable: () => this.#leave(c),
        });
      } finally {
        this.#opening.delete(link);
      }
    };
    if (c.delivery === "block") return connect("block");
    if (c.batch) {
      try {
        return await connect("bucket", true);
      } catch (e) {
        if (!isLoftError(e) || e.code !== "LOFT_ERR_UNSUPPORTED_VERSION") throw e;
        c.batch = false;
        o.log("relay: protocol 1.3 refused (a relay from before it); speaking 1.2 to it");
      }
    }
    try {
      return await connect("bucket");
    } catch (e) {
      if (!isLoftError(e) || e.code !== "LOFT_ERR_UNSUPPORTED_VERSION") throw e;
      c.delivery = "block";
      o.log("relay: protocol 1.2 refused (a relay from before it); speaking 1.1 to it");
      return connect("block");
    }
  }

  #conn(url: string): Conn {
    let c = this.#conns.get(url);
    if (!c) {
      c = {
        url,
        subs: new Map(),
        keep: false,
        failures: 0,
        retryAt: 0,
        delivery: this.#o.delivery ?? "bucket",
        batch: this.#o.batch ?? true,
      };
      this.#conns.set(url, c);
    }
    return c;
  }

  /** Keep a connection to `url` up (our own relay), reconnecting with backoff. */
  keep(url: string): void {
    const c = this.#conn(url);
    c.keep = true;
    // During a backoff this fails at once and arms the reconnect for its end (reconnector.ts).
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
    for (const link of this.#opening) link.close("closed");
  }
}

const isSmp = (url: string) => url.startsWith("smp://");

/** The engine's `relayConnections` (EngineConfig) in the browser. */
export const createRelayPool: RelayConnectionsFactory = (options) => new RelayPool(options);
