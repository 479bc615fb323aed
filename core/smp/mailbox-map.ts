/**
 * Loft mailboxes and SMP queues are one thing seen from two protocols (docs/protocol/smp.md,
 * "Mailboxes and SMP queue addresses"). A Loft mailbox is what the `mbox` announcement carries
 * (docs/protocol/mailbox.md §1): the relay's WebSocket URL, the queue's sender id and the Ed25519
 * sender key. On a relay that also runs an SMP listener the same queue is an SMP queue, named by
 * the listener's `smp://` address and the same sender id, written with the same Ed25519 key
 * (SMP `SEND` signed, docs/protocol/smp.md "Keys in the shared store"). Pure: the conversions
 * change names, never keys.
 */
import { toHex } from "../bytes.ts";
import type { SmpQueueAddress, SmpServerAddress } from "./address.ts";
import { SMP_VERSION_MAX, SMP_VERSION_MIN } from "./transport.ts";

/** Where a Loft client leaves messages (the `mbox` announcement's fields). */
export interface LoftMailbox {
  /** `ws:`/`wss:` URL of the relay's `/relay`. */
  relayUrl: string;
  senderId: Uint8Array;
  /** Ed25519 secret (seed) of the queue's sender key; absent for a queue not secured yet. */
  senderKey?: Uint8Array;
}

/** How to write into an SMP queue from the PWA. */
export type SmpWriteRoute =
  /** The queue's server is a Loft relay the PWA can reach over its WebSocket: a plain mailbox. */
  | { via: "relay"; mailbox: LoftMailbox }
  /** Any other SMP server: SEND through a relay's bridge (`/smp-bridge`). */
  | { via: "bridge"; server: SmpServerAddress; senderId: Uint8Array; senderKey?: Uint8Array };

/**
 * The SMP queue address of a Loft mailbox whose relay runs the SMP listener `server`. `dhKey` is
 * the X25519 key a SimpleX-protocol sender encrypts its envelope to (the address format requires
 * one; Loft senders ignore it: their messages ride the Double Ratchet).
 */
export function smpQueueOfMailbox(
  mailbox: Pick<LoftMailbox, "senderId">,
  server: SmpServerAddress,
  dhKey: Uint8Array,
): SmpQueueAddress {
  return {
    server,
    senderId: mailbox.senderId.slice(),
    versions: { min: SMP_VERSION_MIN, max: SMP_VERSION_MAX },
    dhKey: dhKey.slice(),
  };
}

/**
 * How the PWA writes into an SMP queue: over the relay's WebSocket when `relays` maps the queue's
 * server (`smp://` address without the queue part, as the Loft relay publishes it) to a relay URL,
 * otherwise through the bridge.
 */
export function writeRouteOfSmpQueue(
  queue: SmpQueueAddress,
  senderKey: Uint8Array | undefined,
  relays: ReadonlyMap<string, string> = new Map(),
): SmpWriteRoute {
  const relayUrl = relays.get(relayKeyOfSmpServer(queue.server));
  const k = senderKey ? { senderKey: senderKey.slice() } : {};
  if (relayUrl) return { via: "relay", mailbox: { relayUrl, senderId: queue.senderId.slice(), ...k } };
  return { via: "bridge", server: queue.server, senderId: queue.senderId.slice(), ...k };
}

/** The key `writeRouteOfSmpQueue` looks a server up by. */
export function relayKeyOfSmpServer(server: SmpServerAddress): string {
  return `${server.host}:${server.port}/${toHex(server.fingerprint)}`;
}
