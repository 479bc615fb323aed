/**
 * The device's own way to its owner when no cable is attached (Wi-Fi on hardware; docs/device.md
 * §13): one WebSocket to the owner's relay (core/relay's client over `ws`), subscribed to the
 * device's queue, and deposits into the owner's mailbox for the device. Bodies are the chat
 * mailbox's (web/src/engine/mailbox.ts: one ratchet message per padded 16 382-byte body), so the
 * owner's engine reads them like any contact's.
 *
 * Reconnects with exponential backoff (500 ms doubling to 10 s) while started; a message that
 * can't go now rejects (the caller decides: telemetry is dropped, nothing is kept in clear).
 */
import { randomBytes } from "@noble/hashes/utils.js";
import WebSocket from "ws";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import type { DeviceLink } from "../core/device/messages.ts";
import { LoftError } from "../core/errors.ts";
import { type RecipientQueue, RelayClient, type RelayMessage } from "../core/relay/client.ts";
import { SEND_ID_LENGTH } from "../core/relay/protocol.ts";
import { type WebSocketLike, WebSocketLink } from "../core/relay/ws-link.ts";
import { decodeMailboxBody, PieceBuffer, ratchetBodies } from "../web/src/engine/mailbox.ts";
import type { OwnerUplink } from "./agent.ts";

export interface RelayUplinkOptions {
  queue: DeviceLink["q"];
  mbox: DeviceLink["m"];
  /** One whole ratchet message from the owner; acknowledged at the relay once this resolves. */
  receive: (message: Uint8Array) => Promise<void>;
  crypto?: CryptoProvider;
  /** State changes for the console ("connected", "down: …"). Never carries keys. */
  log?: (line: string) => void;
}

const MAX_BACKOFF_MS = 10_000;
/** Largest message reassembled from pieces: a device reads only small `dev.*` messages. */
const MAX_MESSAGE_BYTES = 64 * 1024;

export class RelayUplink implements OwnerUplink {
  readonly #o: RelayUplinkOptions;
  readonly #queue: RecipientQueue;
  #client: RelayClient | undefined;
  #stopped = false;
  #socket: WebSocket | undefined;
  readonly #pieces = new PieceBuffer(MAX_MESSAGE_BYTES);

  constructor(o: RelayUplinkOptions) {
    this.#o = o;
    this.#queue = {
      recipientId: o.queue.r,
      senderId: o.queue.s,
      recipientAuthSecret: o.queue.a,
      rcvKey: o.queue.k,
    };
  }

  /** Connect and stay connected until `stop`. */
  start(): void {
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    this.#client?.close();
    this.#socket?.terminate();
  }

  get connected(): boolean {
    return this.#client !== undefined && !this.#client.closed;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      try {
        const client = await this.#connect(this.#o.queue.u);
        this.#client = client;
        await client.subscribe(this.#queue);
        failures = 0;
        this.#o.log?.("relay connected");
        const why = await client.done;
        this.#o.log?.(`relay connection ended: ${why.code}`);
      } catch (e) {
        this.#o.log?.(`relay unreachable: ${e instanceof LoftError ? e.code : (e as Error).message}`);
      }
      this.#client = undefined;
      this.#pieces.reset();
      if (this.#stopped) return;
      failures++;
      const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(failures, 6));
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  async #connect(url: string): Promise<RelayClient> {
    const socket = new WebSocket(url);
    this.#socket = socket;
    const link = new WebSocketLink(socket as unknown as WebSocketLike);
    return RelayClient.connect(link, {
      ...(this.#o.crypto ? { crypto: this.#o.crypto } : {}),
      onMessage: (m) => void this.#onMessage(m),
    });
  }

  /** A body from the device's queue: whole ratchet messages go to `receive`, then ACK. */
  async #onMessage(m: RelayMessage): Promise<void> {
    const client = this.#client;
    if (!client) return;
    const item = decodeMailboxBody(m.body);
    let ids: Uint8Array[] = [m.msgId];
    if (item.ok && item.value.type === "ratchet") {
      const done = this.#pieces.add(m.msgId, item.value.part, item.value.last);
      if (!done) return; // more pieces follow; acknowledged with the last one
      ids = done.ids;
      if (done.message) await this.#o.receive(done.message).catch(() => {});
    } else this.#o.log?.(`dropped a relay body: ${item.ok ? item.value.type : item.error.code}`);
    for (const id of ids) await client.ack(this.#queue, id).catch(() => {});
  }

  /** One ratchet message into the owner's mailbox for this device. */
  async send(message: Uint8Array): Promise<void> {
    const client = this.#client;
    if (!client || client.closed) throw new LoftError("LOFT_ERR_LINK_CLOSED", "the relay is not connected");
    if (this.#o.mbox.u !== this.#o.queue.u)
      throw new LoftError("LOFT_ERR_RELAY_UNEXPECTED", "the owner's mailbox is on another relay");
    const target = { senderId: this.#o.mbox.s, senderAuthSecret: this.#o.mbox.k };
    for (const body of ratchetBodies(message))
      await client.send(target, body, { sendId: randomBytes(SEND_ID_LENGTH) });
  }
}
