/**
 * A live `Link` through the relay, for two online peers without a direct path
 * (docs/protocol/relay.md §Live links). It maps onto a queue pair: each peer receives on a queue
 * it created (subscribed, push delivery) and sends into the other's queue (secured with its own
 * sender key). The Noise handshake and the ratchet run over this Link exactly as over a data
 * channel; the relay only sees padded, re-encrypted blocks.
 *
 * Link messages (Noise frames up to 65535 bytes, or larger) are cut into relay bodies of at most
 * MAX_BODY bytes: `flags(1) ‖ piece`, flag bit 0 = last piece of a message, bit 1 = the sender
 * closed the link. Order is kept because one queue delivers in order and this link has one SEND
 * in flight at a time: the next piece leaves only once the relay stored the previous one, so a
 * refused piece can never be overtaken by a later one (there are no sequence numbers to reorder
 * by). Each received piece is acknowledged at once (the bytes are handed to the consumer).
 *
 * A temporary refusal (`RATE`, `SOURCE_RATE`, `STORE_RATE`: the relay rations per connection and
 * per source address, docs/operations-relay.md §Limits) is not an end: the same piece is sent
 * again with the same send id after a backoff (doubling, with jitter), so nothing is lost, doubled
 * or reordered. Only when the relay has refused for `giveUpMs` without storing anything does the
 * link close, with the refusal's code as reason (`LOFT_ERR_RELAY_RATE` / `_SOURCE_RATE` /
 * `_STORE_RATE`).
 * Any other refusal (QUOTA, AUTH, a closed connection) closes the link with its code at once.
 * A local close sends what is still queued, then the close marker, under the same bounds.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { isLoftError, LoftError } from "../errors.ts";
import type { LinkCloseInfo } from "../link/link.ts";
import { QueueLink } from "../link/queue-link.ts";
import type { RecipientQueue, RelayClient, RelayMessage, SenderQueue } from "./client.ts";
import { isTemporaryRefusal } from "./errors.ts";
import { MAX_BODY, SEND_ID_LENGTH } from "./protocol.ts";

const FLAG_LAST = 1;
const FLAG_CLOSE = 2;
const PIECE = MAX_BODY - 1;

export interface RelayLinkOptions {
  /** Largest reassembled message (default 1 MiB); a peer sending more closes the link. */
  maxMessageBytes?: number;
  /** SUB window on the receiving queue (default 16). */
  window?: number;
  /** Backoff after a temporary refusal (RATE, SOURCE_RATE, STORE_RATE). */
  retry?: Partial<RelaySendRetry>;
  /**
   * Most bytes waiting to be stored (default 4 MiB); a send beyond closes the link (with the
   * refusal in effect as reason) rather than holding unbounded memory while the relay refuses.
   */
  maxQueuedBytes?: number;
}

export interface RelaySendRetry {
  /** First pause after a refusal (ms); doubles on each further refusal of the same piece. */
  firstDelayMs: number;
  /** Longest pause between two tries (ms). */
  maxDelayMs: number;
  /** Close the link when the relay has refused this long without storing a piece (ms). */
  giveUpMs: number;
}

export const DEFAULT_SEND_RETRY: RelaySendRetry = { firstDelayMs: 100, maxDelayMs: 5_000, giveUpMs: 30_000 };

interface Outgoing {
  body: Uint8Array;
  /** Kept across tries: a retry of a stored piece answers DUPLICATE, never stores it twice. */
  sendId: Uint8Array;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The pause before try `refusals + 1`: doubling up to the cap, half fixed and half random. */
function backoff(retry: RelaySendRetry, refusals: number): number {
  const cap = Math.min(retry.maxDelayMs, retry.firstDelayMs * 2 ** Math.min(refusals, 30));
  // Half random: peers refused together do not come back together.
  return cap / 2 + Math.random() * (cap / 2);
}

/**
 * Run a relay command, trying again after a temporary refusal (RATE, SOURCE_RATE, STORE_RATE:
 * nothing was done) with the live link's backoff, for at most `giveUpMs`; then, or on any other
 * error, the error is thrown. For the commands that set a live link up (NEW, SKEY, SUB), each
 * safe to repeat after such a refusal.
 */
export async function retryTemporary<T>(
  attempt: () => Promise<T>,
  retry: Partial<RelaySendRetry> = {},
): Promise<T> {
  const bounds = { ...DEFAULT_SEND_RETRY, ...retry };
  const started = Date.now();
  for (let refusals = 0; ; refusals++) {
    try {
      return await attempt();
    } catch (e) {
      if (!(isLoftError(e) && isTemporaryRefusal(e.code))) throw e;
      const left = started + bounds.giveUpMs - Date.now();
      if (left <= 0) throw e;
      await sleep(Math.min(left, backoff(bounds, refusals)));
    }
  }
}

export class RelayLink extends QueueLink {
  readonly #client: RelayClient;
  readonly #own: RecipientQueue;
  readonly #peer: SenderQueue;
  readonly #max: number;
  readonly #retry: RelaySendRetry;
  readonly #maxQueued: number;
  #queuedBytes = 0;
  /** The temporary refusal the head piece is waiting out, if any. */
  #refusal: string | undefined;
  #parts: Uint8Array[] = [];
  #size = 0;
  /** Pieces not yet stored by the relay, oldest first; the head is the one in flight. */
  #outbox: Outgoing[] = [];
  #pumping = false;
  /** Sending failed for good (given up, or a permanent refusal): nothing more is queued. */
  #broken = false;

  private constructor(
    client: RelayClient,
    own: RecipientQueue,
    peer: SenderQueue,
    options: RelayLinkOptions,
  ) {
    super("open");
    this.#client = client;
    this.#own = own;
    this.#peer = peer;
    this.#max = options.maxMessageBytes ?? 1 << 20;
    this.#retry = { ...DEFAULT_SEND_RETRY, ...options.retry };
    this.#maxQueued = options.maxQueuedBytes ?? 4 << 20;
    client.onQueueMessage(own.recipientId, (m) => this.#onPiece(m));
    void client.done.then((e) => {
      this.#outbox = [];
      this.#queuedBytes = 0;
      this.finish({ reason: e.code, detail: e.message }, false);
    });
  }

  /**
   * Open a live link: subscribe to `own` (our receiving queue) on `client` and send into `peer`
   * (the other side's queue, already secured with our sender key). A SUB refused for rate is
   * tried again within the retry bounds.
   */
  static async open(
    client: RelayClient,
    own: RecipientQueue,
    peer: SenderQueue,
    options: RelayLinkOptions = {},
  ): Promise<RelayLink> {
    const link = new RelayLink(client, own, peer, options);
    try {
      await retryTemporary(() => client.subscribe(own, options.window ?? 16), options.retry);
    } catch (e) {
      link.close(isLoftError(e) ? e.code : "LOFT_ERR_LINK_CLOSED");
      throw e;
    }
    return link;
  }

  protected transmit(message: Uint8Array): void {
    if (this.#broken) throw new LoftError("LOFT_ERR_LINK_CLOSED", "the relay link stopped sending");
    if (this.#queuedBytes + message.length > this.#maxQueued) {
      const detail = `more than ${this.#maxQueued} bytes wait to be sent through the relay`;
      this.#fail(this.#refusal ?? "LOFT_ERR_CHUNK_LIMIT", detail);
      throw new LoftError("LOFT_ERR_LINK_CLOSED", detail);
    }
    for (let at = 0; at === 0 || at < message.length; at += PIECE) {
      const piece = message.subarray(at, at + PIECE);
      const body = new Uint8Array(piece.length + 1);
      body[0] = at + PIECE >= message.length ? FLAG_LAST : 0;
      body.set(piece, 1);
      this.#enqueue(body);
    }
  }

  #enqueue(body: Uint8Array): void {
    this.#outbox.push({ body, sendId: randomBytes(SEND_ID_LENGTH) });
    this.#queuedBytes += body.length;
    if (!this.#pumping) void this.#pump();
  }

  /** Send the outbox in order, one SEND in flight, retrying temporary refusals within bounds. */
  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      let refusals = 0;
      let refusedSince: number | undefined;
      while (this.#outbox.length > 0 && !this.#client.closed) {
        const next = this.#outbox[0]!;
        const code = await this.#client.send(this.#peer, next.body, { sendId: next.sendId }).then(
          () => undefined,
          (e: unknown) => (isLoftError(e) ? e.code : "LOFT_ERR_LINK_CLOSED"),
        );
        // DUPLICATE: an earlier try of this very piece was stored (its answer was lost).
        if (code === undefined || code === "LOFT_ERR_RELAY_DUPLICATE") {
          this.#outbox.shift();
          this.#queuedBytes -= next.body.length;
          this.#refusal = undefined;
          refusals = 0;
          refusedSince = undefined;
          continue;
        }
        if (!isTemporaryRefusal(code)) return this.#fail(code, "relay refused a piece");
        this.#refusal = code;
        const now = Date.now();
        const since: number = refusedSince ?? now;
        refusedSince = since;
        const left = since + this.#retry.giveUpMs - now;
        if (left <= 0) {
          const seconds = Math.round(this.#retry.giveUpMs / 100) / 10;
          return this.#fail(
            code,
            `the relay kept refusing for ${seconds} s (${this.#outbox.length} pieces unsent)`,
          );
        }
        await sleep(Math.min(left, backoff(this.#retry, refusals)));
        refusals++;
      }
    } finally {
      this.#pumping = false;
    }
  }

  #fail(code: string, detail: string): void {
    this.#broken = true;
    this.#outbox = [];
    this.#queuedBytes = 0;
    this.close(code, detail);
  }

  #onPiece(m: RelayMessage): void {
    this.#client.ack(this.#own, m.msgId).catch(() => {});
    if (this.state === "closed" || m.body.length === 0) return;
    const flags = m.body[0]!;
    if (flags & FLAG_CLOSE) {
      this.#client.onQueueMessage(this.#own.recipientId, undefined);
      this.#outbox = [];
      this.#queuedBytes = 0;
      this.finish({ reason: "remote-closed" }, false);
      return;
    }
    const piece = m.body.subarray(1);
    this.#size += piece.length;
    if (this.#size > this.#max) {
      this.close("LOFT_ERR_CHUNK_LIMIT", "message exceeds the link's limit");
      return;
    }
    this.#parts.push(piece);
    if (flags & FLAG_LAST) {
      const whole = new Uint8Array(this.#size);
      let o = 0;
      for (const p of this.#parts) {
        whole.set(p, o);
        o += p.length;
      }
      this.#parts = [];
      this.#size = 0;
      this.deliver(whole);
    }
  }

  protected teardown(_info: LinkCloseInfo): void {
    this.#client.onQueueMessage(this.#own.recipientId, undefined);
    if (this.#client.closed) return;
    // After the pieces still queued, in order; once sending failed, one best-effort try.
    if (this.#broken) this.#client.send(this.#peer, new Uint8Array([FLAG_CLOSE])).catch(() => {});
    else this.#enqueue(new Uint8Array([FLAG_CLOSE]));
  }
}
