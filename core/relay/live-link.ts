/**
 * A live `Link` through the relay, for two online peers without a direct path
 * (docs/protocol/relay.md §Live links). It maps onto a queue pair: each peer receives on a queue
 * it created (subscribed, push delivery) and sends into the other's queue (secured with its own
 * sender key). The Noise handshake and the ratchet run over this Link exactly as over a data
 * channel; the relay only sees padded, re-encrypted blocks.
 *
 * Link messages (Noise frames up to 65535 bytes, or larger) are cut into relay bodies of at most
 * MAX_BODY bytes: `flags(1) ‖ piece`, flag bit 0 = last piece of a message, bit 1 = the sender
 * closed the link. Order is kept because one queue delivers in order and a sender's SENDs on one
 * connection are stored in order. Each received piece is acknowledged at once (the bytes are
 * handed to the consumer); a refused SEND (QUOTA, AUTH, closed connection) closes the link with
 * that error code.
 */

import { isLoftError } from "../errors.ts";
import type { LinkCloseInfo } from "../link/link.ts";
import { QueueLink } from "../link/queue-link.ts";
import type { RecipientQueue, RelayClient, RelayMessage, SenderQueue } from "./client.ts";
import { MAX_BODY } from "./protocol.ts";

const FLAG_LAST = 1;
const FLAG_CLOSE = 2;
const PIECE = MAX_BODY - 1;

export interface RelayLinkOptions {
  /** Largest reassembled message (default 1 MiB); a peer sending more closes the link. */
  maxMessageBytes?: number;
  /** SUB window on the receiving queue (default 16). */
  window?: number;
}

export class RelayLink extends QueueLink {
  readonly #client: RelayClient;
  readonly #own: RecipientQueue;
  readonly #peer: SenderQueue;
  readonly #max: number;
  #parts: Uint8Array[] = [];
  #size = 0;

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
    client.onQueueMessage(own.recipientId, (m) => this.#onPiece(m));
    void client.done.then((e) => this.finish({ reason: e.code, detail: e.message }, false));
  }

  /**
   * Open a live link: subscribe to `own` (our receiving queue) on `client` and send into `peer`
   * (the other side's queue, already secured with our sender key).
   */
  static async open(
    client: RelayClient,
    own: RecipientQueue,
    peer: SenderQueue,
    options: RelayLinkOptions = {},
  ): Promise<RelayLink> {
    const link = new RelayLink(client, own, peer, options);
    try {
      await client.subscribe(own, options.window ?? 16);
    } catch (e) {
      link.close(isLoftError(e) ? e.code : "LOFT_ERR_LINK_CLOSED");
      throw e;
    }
    return link;
  }

  protected transmit(message: Uint8Array): void {
    for (let at = 0; at === 0 || at < message.length; at += PIECE) {
      const piece = message.subarray(at, at + PIECE);
      const body = new Uint8Array(piece.length + 1);
      body[0] = at + PIECE >= message.length ? FLAG_LAST : 0;
      body.set(piece, 1);
      this.#sendBody(body);
    }
  }

  #sendBody(body: Uint8Array): void {
    this.#client.send(this.#peer, body).catch((e: unknown) => {
      this.close(isLoftError(e) ? e.code : "LOFT_ERR_LINK_CLOSED", "relay refused a piece");
    });
  }

  #onPiece(m: RelayMessage): void {
    this.#client.ack(this.#own, m.msgId).catch(() => {});
    if (this.state === "closed" || m.body.length === 0) return;
    const flags = m.body[0]!;
    if (flags & FLAG_CLOSE) {
      this.#client.onQueueMessage(this.#own.recipientId, undefined);
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
    if (!this.#client.closed) this.#client.send(this.#peer, new Uint8Array([FLAG_CLOSE])).catch(() => {});
  }
}
