/**
 * Devices as contacts (docs/device.md §7, §12): the contact record a pairing makes, and which
 * devices are attached to this browser right now (an open session over the cable). The pairing
 * itself is web/src/device/attached-device.ts; the screens are ui/PairDevice.tsx and
 * ui/DeviceScreen.tsx. Through the relay (§13): the latest telemetry and console answers the
 * device sent there, and how its bridge stands while attached.
 */
import { createSignal } from "solid-js";
import type { PairingInfo } from "../../../core/device/owner.ts";
import type { DeviceAppMessage } from "../../../core/device/relay.ts";
import type { AttachedDevice, TelemetryReading } from "../device/attached-device.ts";
import { bridgeDevice } from "../device/bridge.ts";
import { type DeviceProblem, describeDeviceError } from "../device/problems.ts";
import { type ContactId, type ContactRecord, type DeviceRelayApi, EngineRefusal } from "../engine/api.ts";
import { contactIdOf, encodeIdentity } from "../identity.ts";

/**
 * The contact record of a device just paired. Trusted and verified: the technician compared the
 * pairing code, which binds the handshake (and so the device's identity) and both HELLOs.
 */
export function deviceContactRecord(info: PairingInfo, caps: number, now: number): ContactRecord {
  return {
    id: contactIdOf(info.device),
    identity: encodeIdentity(info.device),
    username: info.device.verified.username,
    trust: "trusted",
    verifiedAt: now,
    firstSeen: now,
    lastSeen: now,
    device: { kind: "device", name: info.deviceName, protocol: info.protocol, caps, pairedAt: now },
  };
}

const [attachedMap, setAttachedMap] = createSignal<ReadonlyMap<ContactId, AttachedDevice>>(new Map());
const [lastProblem, setLastProblem] = createSignal<ReadonlyMap<ContactId, DeviceProblem>>(new Map());

/** The device's open session on this browser's cable, if attached (reactive). */
export function attachedDevice(id: ContactId): AttachedDevice | undefined {
  return attachedMap().get(id);
}

/** Why the device's last connection ended, if it ended on a failure (reactive). */
export function deviceDetachReason(id: ContactId): DeviceProblem | undefined {
  return lastProblem().get(id);
}

/** Keep `device` as attached until its connection ends (then note why, if it failed). */
export function keepAttached(id: ContactId, device: AttachedDevice): void {
  attachedMap().get(id)?.close();
  setAttachedMap((m) => new Map(m).set(id, device));
  setLastProblem((m) => {
    const next = new Map(m);
    next.delete(id);
    return next;
  });
  void device.ended.then((problem) => {
    if (attachedMap().get(id) !== device) return;
    setAttachedMap((m) => {
      const next = new Map(m);
      next.delete(id);
      return next;
    });
    if (problem) setLastProblem((m) => new Map(m).set(id, problem));
  });
}

/** Let go of the device (closes the port). */
export function detach(id: ContactId): void {
  attachedMap().get(id)?.close();
}

// ---- through the relay (docs/device.md §13) ---------------------------------------------------

/** A telemetry reading that came through the relay, and when it arrived. */
export interface RelayedReading extends TelemetryReading {
  receivedAt: number;
}

/** How the device's link to the relay stands on this browser (reactive, per device). */
export interface BridgeState {
  state: "linking" | "bridged" | "failed";
  message: string;
}

const [relayedMap, setRelayedMap] = createSignal<ReadonlyMap<ContactId, RelayedReading>>(new Map());
const [bridgeMap, setBridgeMap] = createSignal<ReadonlyMap<ContactId, BridgeState>>(new Map());
type RelayedAnswer = Extract<DeviceAppMessage, { t: "dev.out" }>;
const answerListeners = new Map<ContactId, Set<(out: RelayedAnswer) => void>>();
/** Commands sent through the relay that have no answer yet, per device. */
const awaitingAnswer = new Map<ContactId, Set<number>>();
/** Answers that came while no device screen listened (shown when one opens), at most 20 per device. */
const unshownAnswers = new Map<ContactId, RelayedAnswer[]>();
const MAX_UNSHOWN_ANSWERS = 20;

/** The latest reading the device sent through the relay (reactive). */
export function relayedReading(id: ContactId): RelayedReading | undefined {
  return relayedMap().get(id);
}

export function bridgeState(id: ContactId): BridgeState | undefined {
  return bridgeMap().get(id);
}

/** A `device` engine event (the model forwards every one, from the engine's start on). */
export function noteDeviceMessage(id: ContactId, m: DeviceAppMessage): void {
  if (m.t === "dev.telemetry")
    setRelayedMap((map) => new Map(map).set(id, { n: m.n, at: m.at, r: m.r, receivedAt: Date.now() }));
  else if (m.t === "dev.out") {
    // Only answers to our own commands: anything else is not for the console.
    if (!awaitingAnswer.get(id)?.delete(m.id)) return;
    const listeners = answerListeners.get(id);
    if (listeners?.size) for (const l of listeners) l(m);
    else {
      const held = unshownAnswers.get(id) ?? [];
      held.push(m);
      unshownAnswers.set(id, held.slice(-MAX_UNSHOWN_ANSWERS));
    }
  }
}

/**
 * Answers to console commands sent through the relay (`dev.out`), for the device screen: those
 * that came while no screen listened first, then each as it comes.
 */
export function onRelayedAnswer(id: ContactId, listener: (out: RelayedAnswer) => void): () => void {
  const set = answerListeners.get(id) ?? new Set();
  answerListeners.set(id, set);
  set.add(listener);
  const held = unshownAnswers.get(id) ?? [];
  unshownAnswers.delete(id);
  for (const out of held) listener(out);
  return () => set.delete(listener);
}

/** Ids of console commands sent through the relay: distinct from the cable's small ones. */
let nextRelayedCommand = 0x8000_0000 + Math.floor(Math.random() * 0x4000_0000);

/** A console line into the device's queue at the relay; resolves with the command's id. */
export async function commandThroughRelay(
  relay: DeviceRelayApi,
  id: ContactId,
  line: string,
): Promise<number> {
  const n = nextRelayedCommand;
  nextRelayedCommand = nextRelayedCommand >= 0xffff_fffe ? 0x8000_0000 : nextRelayedCommand + 1;
  const waiting = awaitingAnswer.get(id) ?? new Set<number>();
  awaitingAnswer.set(id, waiting);
  waiting.add(n);
  try {
    await relay.command(id, n, line);
  } catch (e) {
    waiting.delete(n);
    throw e;
  }
  return n;
}

/**
 * Bridge a device just attached (or paired) to the relay (web/src/device/bridge.ts): link it if it
 * is not yet, hand down what waits for it, carry what it sends up. Never rejects: the outcome is
 * `bridgeState(id)`. Without a relay (`relay` undefined) the device is reachable over the cable only.
 */
export async function bridgeAttached(
  relay: DeviceRelayApi | undefined,
  selfIdentityKey: Uint8Array,
  id: ContactId,
  device: AttachedDevice,
): Promise<void> {
  const set = (s: BridgeState) => setBridgeMap((m) => new Map(m).set(id, s));
  if (!relay) {
    set({ state: "failed", message: "No relay is set: the device is reachable over the cable only." });
    return;
  }
  set({ state: "linking", message: "Linking the device to your relay…" });
  try {
    const r = await bridgeDevice({ device, relay, contactId: id, selfIdentityKey });
    set({
      state: "bridged",
      message: r.fetchFailed
        ? "Linked to your relay; what waits there for the device could not be fetched now (it stays there)."
        : r.delivered > 0
          ? `Linked to your relay; ${r.delivered} waiting message${r.delivered === 1 ? "" : "s"} handed to the device.`
          : "Linked to your relay: the device reaches you through it when it is not attached.",
    });
  } catch (e) {
    const message = e instanceof EngineRefusal ? e.message : describeDeviceError(e, "attached").message;
    set({ state: "failed", message: `Not linked to the relay: ${message}` });
  }
}

/**
 * What Home says of a device where a person's presence would be (a device is never "online" on
 * signaling): attached here, reachable through the relay, or only over the cable (reactive for
 * attaching; `relayLinked` from the engine, docs/device.md §13).
 */
export function deviceStatusLabel(id: ContactId, relayLinked: boolean): { label: string; attached: boolean } {
  if (attachedDevice(id)) return { label: "attached over USB", attached: true };
  return { label: relayLinked ? "reachable through your relay" : "paired over USB", attached: false };
}
