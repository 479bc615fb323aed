/**
 * Mailboxes on SMP servers, reached through our relay's bridge (docs/protocol/mailbox.md §1,
 * "Mailboxes on SMP servers"; docs/protocol/smp.md, "The bridge"): one bridged SMP session per
 * `smp://` server, kept up with backoff while it holds subscriptions, and the mailbox operations
 * (NEW, KEY, SEND, SUB, ACK, DEL) as the engine uses them on a relay (`MailboxClient`). Every
 * command is built and signed here (core/smp/client.ts): the bridge sees what the SMP server sees.
 *
 * A queue is the engine's `RecipientQueue` unchanged: recipient id, sender id, the Ed25519
 * recipient key (commands are signed, so a Loft relay's listener can serve the queue over its
 * WebSocket too) and, as `rcvKey`, the crypto_box key of the server→recipient layer.
 */
import { toHex } from "../../../core/bytes.ts";
import { LoftError, type LoftErrorCode } from "../../../core/errors.ts";
import type { RecipientQueue, RelayMessage, SenderQueue } from "../../../core/relay/client.ts";
import type { WebSocketLike } from "../../../core/relay/ws-link.ts";
import {
  formatSmpServerAddress,
  parseSmpServerAddress,
  type SmpServerAddress,
  withoutPassword,
} from "../../../core/smp/address.ts";
import { connectSmpBridge } from "../../../core/smp/bridge-link.ts";
import { type SmpClient, SmpClientError, type SmpQueue } from "../../../core/smp/client.ts";
import type { MailboxClient, RelayConnState } from "../engine/transport.ts";
import { type PooledConn, Reconnector } from "./reconnector.ts";

/** A session holding subscriptions PINGs this often (SMP "Keep-alive command"; proxies drop idle sockets). */
export const SMP_KEEPALIVE_MS = 30_000;

export interface SmpMailboxOptions {
  /** Our relay's `/smp-bridge` URL. */
  bridgeUrl: string | undefined;
  webSocket: (url: string) => WebSocketLike;
  timeoutMs: number;
  /** How long the bridge's WebSocket may stay connecting (RelayConnectionsOptions `openTimeoutMs`). */
  openTimeoutMs?: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  onMessage: (url: string, message: RelayMessage) => void;
  onState: (url: string, state: RelayConnState, error?: LoftError) => void;
  log: (message: string) => void;
}

/** The name an SMP mailbox goes by in records and announcements: its server address, no password. */
export function smpMailboxUrl(address: string): string | undefined {
  const a = parseSmpServerAddress(address);
  return a ? formatSmpServerAddress(withoutPassword(a)) : undefined;
}

/** An SMP failure as the relay's error codes the engine already handles (mailbox.md §3). */
function asLoftError(e: unknown): LoftError {
  if (e instanceof LoftError) return e;
  if (!(e instanceof SmpClientError)) return new LoftError("LOFT_ERR_LINK_CLOSED", String(e));
  const smp = e.detail?.smpError?.type;
  const code: LoftErrorCode =
    smp === "AUTH"
      ? "LOFT_ERR_RELAY_AUTH"
      : smp === "QUOTA"
        ? "LOFT_ERR_RELAY_QUOTA"
        : smp === "NO_MSG"
          ? "LOFT_ERR_RELAY_NO_MSG"
          : smp === "LARGE_MSG"
            ? "LOFT_ERR_FRAME_TOO_LARGE"
            : smp === "INTERNAL"
              ? "LOFT_ERR_RELAY_INTERNAL"
              : "LOFT_ERR_LINK_CLOSED";
  return new LoftError(code, e.message);
}

function smpQueue(q: RecipientQueue): SmpQueue {
  return {
    rcvId: q.recipientId,
    sndId: q.senderId,
    rcvAuthSecret: q.recipientAuthSecret,
    rcvAuthAlg: "ed25519",
    rcvBoxKey: q.rcvKey,
  };
}

/** One SMP server: its session through the bridge, its subscribed queues, its backoff. */
class SmpServerConn implements MailboxClient, PooledConn<SmpClient> {
  client?: SmpClient;
  connecting?: Promise<SmpClient>;
  readonly subs = new Map<string, RecipientQueue>();
  failures = 0;
  retryAt = 0;
  lastError?: LoftError;
  timer?: ReturnType<typeof setTimeout>;
  password: string | undefined;

  constructor(
    readonly url: string,
    readonly address: SmpServerAddress,
    private readonly owner: SmpMailboxes,
  ) {}

  async #session(): Promise<SmpClient> {
    return this.owner.session(this);
  }

  async createQueue(options: { subscribe?: boolean } = {}): Promise<RecipientQueue> {
    const c = await this.#session();
    try {
      const q = await c.createQueue(options.subscribe ?? false, "ed25519");
      return {
        recipientId: q.rcvId,
        senderId: q.sndId,
        recipientAuthSecret: q.rcvAuthSecret,
        rcvKey: q.rcvBoxKey,
      };
    } catch (e) {
      throw asLoftError(e);
    }
  }

  async secureQueue(queue: RecipientQueue, senderAuthPublic: Uint8Array): Promise<void> {
    const c = await this.#session();
    await c.secure(smpQueue(queue), senderAuthPublic).catch((e) => {
      throw asLoftError(e);
    });
  }

  async send(queue: SenderQueue, body: Uint8Array): Promise<void> {
    const c = await this.#session();
    await c.send(queue.senderId, body, queue.senderAuthSecret).catch((e) => {
      throw asLoftError(e);
    });
  }

  async deleteQueue(queue: RecipientQueue): Promise<void> {
    const c = await this.#session();
    await c.deleteQueue(smpQueue(queue)).catch((e) => {
      throw asLoftError(e);
    });
  }
}

/** The engine's SMP servers, one bridged session each (RelayPool hands `smp://` URLs here). */
export class SmpMailboxes {
  readonly #o: SmpMailboxOptions;
  readonly #conns = new Map<string, SmpServerConn>();
  readonly #r: Reconnector<SmpClient, SmpServerConn>;
  /**
   * Bridge sockets of openings under way. `close` closes them too: a socket left CONNECTING until
   * its opening times out holds up every other WebSocket of the page to that host (RFC 6455 §4.1),
   * and the bridge is on our relay's host:port.
   */
  readonly #opening = new Set<WebSocketLike>();

  constructor(options: SmpMailboxOptions) {
    this.#o = options;
    this.#r = new Reconnector({
      backoffInitialMs: options.backoffInitialMs,
      backoffMaxMs: options.backoffMaxMs,
      onState: options.onState,
      open: (c) => this.#connect(c),
      asError: (e) => {
        if (e instanceof SmpClientError && e.detail?.bridgeError)
          options.log(`smp mailbox: bridge refused (${e.detail.bridgeError})`);
        return asLoftError(e);
      },
      opened: (c, client) => this.#opened(c, client),
      wanted: (c) => c.subs.size > 0,
    });
  }

  /** The connection for an `smp://` address (a password in it is kept for NEW). */
  conn(address: string): SmpServerConn {
    const parsed = parseSmpServerAddress(address);
    if (!parsed) throw new LoftError("LOFT_ERR_MALFORMED", "not an smp:// server address");
    const url = formatSmpServerAddress(withoutPassword(parsed));
    let c = this.#conns.get(url);
    if (!c) {
      c = new SmpServerConn(url, withoutPassword(parsed), this);
      this.#conns.set(url, c);
    }
    if (parsed.password !== undefined) c.password = parsed.password;
    return c;
  }

  isUp(url: string): boolean {
    const c = this.#conns.get(url)?.client;
    return c !== undefined && !c.closed;
  }

  /** The open session of `c`, connecting through the bridge if needed (one attempt at a time). */
  session(c: SmpServerConn): Promise<SmpClient> {
    return this.#r.client(c);
  }

  async #connect(c: SmpServerConn): Promise<SmpClient> {
    const bridgeUrl = this.#o.bridgeUrl;
    if (!bridgeUrl) throw new LoftError("LOFT_ERR_LINK_CLOSED", "no relay to bridge SMP through");
    const address = formatSmpServerAddress({
      ...c.address,
      ...(c.password !== undefined ? { password: c.password } : {}),
    });
    let ws: WebSocketLike | undefined;
    try {
      const { client } = await connectSmpBridge(bridgeUrl, address, {
        webSocket: (url) => {
          ws = this.#o.webSocket(url);
          this.#opening.add(ws);
          return ws;
        },
        timeoutMs: this.#o.timeoutMs,
        connectTimeoutMs: this.#o.timeoutMs,
        ...(this.#o.openTimeoutMs !== undefined ? { openTimeoutMs: this.#o.openTimeoutMs } : {}),
      });
      return client;
    } finally {
      if (ws) this.#opening.delete(ws);
    }
  }

  /** A new session: its pushes, keep-alive and end watched; every SUB again, then "connected". */
  #opened(c: SmpServerConn, client: SmpClient): void {
    client.onPush((p) => {
      if (p.tag === "MSG")
        this.#o.onMessage(c.url, {
          recipientId: p.rcvId,
          msgId: p.message.msgId,
          timestamp: p.message.timestamp,
          body: p.message.body,
        });
      else if (p.tag === "END")
        this.#o.log(`smp mailbox: subscription of ${toHex(p.rcvId).slice(0, 8)} ended here`);
      else this.#o.log("smp mailbox: a message that does not open with the queue's key");
    });
    // The session ends when the bridge or the server closes: resubscribe after a backoff.
    // Keep-alive while the session holds subscriptions; an unanswered PING ends the session,
    // which reconnects and subscribes again.
    const keepAlive = setInterval(() => {
      if (c.subs.size === 0) return;
      client.ping().catch((e) => {
        if (e instanceof SmpClientError && e.code === "TIMEOUT")
          client.fail(new SmpClientError("TIMEOUT", "no answer to PING"));
      });
    }, SMP_KEEPALIVE_MS);
    void client.done.then((ended) => {
      clearInterval(keepAlive);
      if (c.client === client && !this.#r.stopped) this.#o.log(`smp mailbox session ended: ${ended.code}`);
      this.#r.ended(
        c,
        client,
        new LoftError("LOFT_ERR_LINK_CLOSED", "the SMP session through the bridge ended"),
      );
    });
    for (const q of c.subs.values()) this.#subscribeOn(client, q);
    this.#o.onState(c.url, "connected");
  }

  #subscribeOn(client: SmpClient, q: RecipientQueue): void {
    client.subscribe(smpQueue(q)).catch((e) => this.#o.log(`smp mailbox SUB: ${asLoftError(e).code}`));
  }

  subscribe(url: string, queue: RecipientQueue): void {
    const c = this.conn(url);
    c.subs.set(toHex(queue.recipientId), queue);
    if (c.client && !c.client.closed) this.#subscribeOn(c.client, queue);
    else this.session(c).catch(() => {});
  }

  unsubscribe(url: string, recipientId: Uint8Array): void {
    this.#conns.get(url)?.subs.delete(toHex(recipientId));
  }

  /** ACK on the current session; lost if it is down (the server delivers the message again). */
  async ack(url: string, queue: RecipientQueue, msgId: Uint8Array): Promise<void> {
    const client = this.#conns.get(url)?.client;
    if (!client || client.closed) return;
    await client
      .ack(smpQueue(queue), msgId)
      .catch((e) => this.#o.log(`smp mailbox ACK: ${asLoftError(e).code}`));
  }

  close(): void {
    this.#r.stop(this.#conns.values());
    for (const ws of this.#opening) {
      try {
        ws.close(1000, "closed");
      } catch {
        // already closing
      }
    }
  }
}
