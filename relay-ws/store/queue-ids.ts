/**
 * Fresh ids for a new queue (docs/protocol/relay.md §Commands, NEW): a recipient id and a sender id that
 * no stored queue holds in either role, so one id never names two queues. Shared by the relay's
 * NEW and the SMP listener's NEW, which keep queues in the same store.
 */
import { randomBytes } from "node:crypto";
import type { RelayStore } from "./types.ts";

export interface QueueIds {
  recipientId: Uint8Array;
  senderId: Uint8Array;
}

/** Draws `length`-byte ids until neither is in use (a clash of random 24-byte ids is not expected). */
export async function freshQueueIds(
  store: Pick<RelayStore, "queueByRecipient" | "queueBySender">,
  length: number,
): Promise<QueueIds> {
  let recipientId: Uint8Array;
  let senderId: Uint8Array;
  do {
    recipientId = new Uint8Array(randomBytes(length));
    senderId = new Uint8Array(randomBytes(length));
  } while (
    (await store.queueByRecipient(recipientId)) ||
    (await store.queueBySender(senderId)) ||
    (await store.queueByRecipient(senderId))
  );
  return { recipientId, senderId };
}
