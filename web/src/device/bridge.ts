/**
 * The browser as the device's way to the relay while it is attached (docs/device.md §13):
 *
 *   link      a device not yet linked gets the relay settings (`link`), answers with its ratchet
 *             key (`linked`); the ratchet starts on both sides from this serial session and our
 *             first message (`sync`) goes down the cable at once, so the device can answer
 *   down      messages waiting in the device's queue at the relay are handed over the cable
 *             (`relay-in`), each acknowledged at the relay only once the device said it read it
 *             (`relay-took`): nothing is lost to a cable pulled in between
 *   up        what the device sends its owner through the relay while attached (`relay-out`) is
 *             deposited into our mailbox for it, and read there like anything from the relay
 *
 * Everything that crosses is a Double Ratchet message between the device and its owner; the
 * bridge adds no key and reads none.
 */
import { startDeviceRatchet } from "../../../core/device/relay.ts";
import type { ContactId, DeviceRelayApi } from "../engine/api.ts";
import type { AttachedDevice } from "./attached-device.ts";
import { DeviceProblemError } from "./problems.ts";

export interface BridgeOptions {
  device: AttachedDevice;
  relay: DeviceRelayApi;
  contactId: ContactId;
  /** The owner's identity key (the ratchet's associated data). */
  selfIdentityKey: Uint8Array;
  log?: (line: string) => void;
}

export interface BridgeReport {
  /** A new ratchet was started now (`link`). */
  linked: boolean;
  /** Messages from the device's queue handed over the cable. */
  delivered: number;
  /** Why the waiting messages could not all be fetched now (they stay at the relay). */
  fetchFailed?: string;
}

/** Most messages handed down per attach (the rest wait for the next one). */
const MAX_DOWN = 256;
/** How long the device may take to read a handed-down message. */
const DELIVERY_TIMEOUT_MS = 10_000;

/** Start the ratchet with the device through this cable and hand it our first message. */
async function linkDevice(o: BridgeOptions): Promise<void> {
  const settings = await o.relay.prepareLink(o.contactId);
  const deviceKey = await o.device.link(settings);
  const ratchet = await startDeviceRatchet(o.device.session, o.selfIdentityKey, {
    deviceRatchetPublic: deviceKey,
  });
  if (!ratchet.ok) throw ratchet.error;
  const first = await o.relay.completeLink(o.contactId, ratchet.value);
  if (!(await o.device.relayIn(first)))
    throw new DeviceProblemError("timeout", "the device did not read its owner's first message");
  o.log?.("linked to the relay");
}

/**
 * Bridge an attached device: `relay-out` to our mailbox from now on, link it if it is not yet,
 * then hand down what waits in its queue. Resolves once the queue is drained (or the device went
 * away); the upward direction lasts as long as the attachment.
 */
export async function bridgeDevice(o: BridgeOptions): Promise<BridgeReport> {
  // One deposit at a time, in order; a failed one is logged and does not hold back the next.
  let up: Promise<void> = Promise.resolve();
  o.device.onRelayOut((message) => {
    up = up.then(() =>
      o.relay
        .deposit(o.contactId, message)
        .catch((e: unknown) => o.log?.(`a device message did not reach the relay: ${(e as Error).message}`)),
    );
  });
  let linked = false;
  if (!o.relay.isLinked(o.contactId)) {
    await linkDevice(o);
    linked = true;
  }
  let delivered = 0;
  try {
    while (delivered < MAX_DOWN && o.device.session.state !== "closed") {
      const next = await o.relay.nextForDevice(o.contactId);
      if (!next) break;
      if (!(await o.device.relayIn(next.message, DELIVERY_TIMEOUT_MS))) break; // it stays at the relay
      await next.taken();
      delivered++;
    }
  } catch (e) {
    // The relay went away mid-way: what is left stays there for the next attach (or its Wi-Fi).
    return { linked, delivered, fetchFailed: e instanceof Error ? e.message : String(e) };
  }
  return { linked, delivered };
}
