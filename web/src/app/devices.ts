/**
 * Devices as contacts (docs/device.md §7, §12): the contact record a pairing makes, and which
 * devices are attached to this browser right now (an open session over the cable). The pairing
 * itself is web/src/device/attached-device.ts; the screens are ui/PairDevice.tsx and
 * ui/DeviceScreen.tsx.
 */
import { createSignal } from "solid-js";
import type { PairingInfo } from "../../../core/device/owner.ts";
import type { AttachedDevice } from "../device/attached-device.ts";
import type { DeviceProblem } from "../device/problems.ts";
import type { ContactId, ContactRecord } from "../engine/api.ts";
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
