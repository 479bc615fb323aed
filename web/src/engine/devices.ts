/**
 * A paired device through the relay, the owner's side (docs/device.md §13; api.ts
 * `DeviceRelayApi`). The device is a contact whose ratchet starts inside the serial session
 * (core/device/relay.ts) rather than over a direct link, so this module gives the UI's device
 * code (web/src/device/) what it needs from the engine, on the engine's own records:
 *
 *   prepareLink   the device's receiving queue, created at our relay and secured with a sender key
 *                 we keep (its `tx`, as for any contact), and our receiving queue for it (`rx`,
 *                 ensureRx): the `link` message's settings
 *   completeLink  the ratchet (the owner is Alice) stored as the contact's, and our first message
 *                 (`sync`) sealed, for the cable: the device can answer only once it read one
 *   command       a console line (`dev.cmd`) into the device's queue
 *   deposit       the bridge, device → relay: a ratchet message the device handed over the cable
 *                 (`relay-out`) into our own mailbox for it, read like any mailbox body
 *   nextForDevice the bridge, relay → device: the oldest message waiting in the device's queue
 *                 (GET), acknowledged once the device took it (`relay-in`)
 *
 * What the device sends reaches the app as `device` events (messages.ts `receive`). The device
 * queue's recipient keys are kept (sealed at rest, SECRET.deviceQueue) only for the bridge; they
 * open nothing but the relay's layer — every body is a ratchet message only the device reads.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import type { DeviceLink } from "../../../core/device/messages.ts";
import type { DeviceRatchet } from "../../../core/device/relay.ts";
import { preferredOrder } from "../../../core/relay/choice.ts";
import { newAuthKeyPair } from "../../../core/relay/crypto.ts";
import { SEND_ID_LENGTH } from "../../../core/relay/protocol.ts";
import { type ContactId, type DeviceRelayApi, EngineRefusal } from "./api.ts";
import { type EngineContext, type Peer, serial } from "./context.ts";
import {
  type AddressQueue,
  decodeAddress,
  decodeMailboxBody,
  encodeAddress,
  encodeTx,
  ratchetBodies,
  SECRET,
  type TxQueue,
} from "./mailbox.ts";
import { saveRatchet, seal } from "./peer-ratchet.ts";
import { ensureRx, sendByMailbox } from "./queues.ts";

/** The device's queue, recipient side (for the bridge), in EngineStorage secrets. */
const deviceQueueSecret = (contactId: string) => `relay/device-queue/${contactId}`;

function refuse(message: string): EngineRefusal {
  return new EngineRefusal({ kind: "message-refused", message });
}

export class DeviceRelay implements DeviceRelayApi {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  #device(contactId: ContactId): Peer {
    const peer = this.#ctx.peers.get(contactId);
    if (!peer?.device) throw refuse("This contact is not a paired device.");
    return peer;
  }

  async prepareLink(contactId: ContactId): Promise<DeviceLink> {
    const ctx = this.#ctx;
    const peer = this.#device(contactId);
    // The first of our relays not known to be down (core/relay/choice.ts).
    const url = ctx.pool && preferredOrder(ctx.relayUrls, (u) => ctx.pool!.isDown(u))[0];
    if (!ctx.pool || !url) throw refuse("No relay is set: the device can reach you only over the cable.");
    const rx = await ensureRx(ctx, peer);
    if (!rx)
      throw refuse("The relay can't be reached: the device was not linked to it. Attach it again later.");
    const client = await ctx.pool.client(url);
    const queue = await client.createQueue({ subscribe: false });
    const sender = newAuthKeyPair();
    await client.secureQueue(queue, sender.publicKey);
    const old = await this.#deviceQueue(contactId);
    const tx: TxQueue = { url, queue: { senderId: queue.senderId, senderAuthSecret: sender.secretKey } };
    await ctx.storage.saveSecret(deviceQueueSecret(contactId), encodeAddress({ url, queue }));
    await ctx.storage.saveSecret(SECRET.tx(contactId), encodeTx(tx));
    peer.tx = tx;
    peer.deposit = undefined;
    // A queue of an earlier link goes: nothing reads it any more.
    if (old) void this.#deleteQueue(old);
    return {
      t: "link",
      q: {
        u: url,
        r: new Uint8Array(queue.recipientId),
        s: new Uint8Array(queue.senderId),
        a: new Uint8Array(queue.recipientAuthSecret),
        k: new Uint8Array(queue.rcvKey),
      },
      m: { u: rx.url, s: new Uint8Array(rx.queue.senderId), k: new Uint8Array(rx.senderSecret) },
    };
  }

  async completeLink(contactId: ContactId, ratchet: DeviceRatchet): Promise<Uint8Array> {
    const ctx = this.#ctx;
    const peer = this.#device(contactId);
    const sealed = await serial(peer, async () => {
      await saveRatchet(ctx, peer, ratchet);
      return seal(ctx, peer, { t: "sync" });
    });
    if (!sealed) throw refuse("The device's ratchet could not start.");
    return sealed;
  }

  isLinked(contactId: ContactId): boolean {
    const peer = this.#ctx.peers.get(contactId);
    return peer?.device === true && peer.tx !== undefined;
  }

  async command(contactId: ContactId, id: number, line: string): Promise<void> {
    const peer = this.#device(contactId);
    if (!peer.tx) throw refuse("The device is not linked to the relay: attach it once to link it.");
    if (!(await sendByMailbox(this.#ctx, peer, { t: "dev.cmd", id, c: line }, [])))
      throw refuse("The relay did not take the command; try again when it is reachable.");
  }

  async deposit(contactId: ContactId, message: Uint8Array): Promise<void> {
    const ctx = this.#ctx;
    const peer = this.#device(contactId);
    const rx = peer.rx;
    if (!ctx.pool || !rx) throw refuse("No mailbox for the device at the relay.");
    const client = await ctx.pool.client(rx.url);
    const target = { senderId: rx.queue.senderId, senderAuthSecret: rx.senderSecret };
    for (const body of ratchetBodies(message))
      await client.send(target, body, { sendId: randomBytes(SEND_ID_LENGTH) });
  }

  async nextForDevice(
    contactId: ContactId,
  ): Promise<{ message: Uint8Array; taken: () => Promise<void> } | undefined> {
    const ctx = this.#ctx;
    this.#device(contactId);
    const q = await this.#deviceQueue(contactId);
    if (!ctx.pool || !q) return undefined;
    const client = await ctx.pool.client(q.url);
    // Bounded: bodies that are not one whole ratchet message are dropped (a device reads only
    // small `dev.*` messages); at most 16 of them are skipped per call.
    for (let skipped = 0; skipped < 16; skipped++) {
      const m = await client.get(q.queue);
      if (!m) return undefined;
      const item = decodeMailboxBody(m.body);
      const taken = () => client.ack(q.queue, m.msgId);
      if (item.ok && item.value.type === "ratchet" && item.value.last)
        return { message: item.value.part, taken };
      ctx.cfg.log(`dropped a body in a device's queue: ${item.ok ? item.value.type : item.error.code}`);
      await taken();
    }
    return undefined;
  }

  async #deviceQueue(contactId: ContactId): Promise<AddressQueue | undefined> {
    const bytes = await this.#ctx.storage.loadSecret(deviceQueueSecret(contactId));
    if (!bytes) return undefined;
    const r = decodeAddress(bytes);
    return r.ok ? r.value : undefined;
  }

  /** The contact was deleted: its device queue goes too (the rest is forgetMailbox's). */
  async forget(contactId: ContactId): Promise<void> {
    const q = await this.#deviceQueue(contactId);
    await this.#ctx.storage.deleteSecret(deviceQueueSecret(contactId)).catch(() => {});
    if (q) await this.#deleteQueue(q);
  }

  /** Delete a device queue at the relay; a relay out of reach keeps it (nothing reads it). */
  async #deleteQueue(q: AddressQueue): Promise<void> {
    await this.#ctx.pool
      ?.client(q.url)
      .then((c) => c.deleteQueue(q.queue))
      .catch(() => {});
  }
}
