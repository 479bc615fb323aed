/**
 * What went wrong with a device, in plain words for the technician (docs/device.md §8, the
 * owner's column): each failure of the Web Serial port, the HELLO exchange, the handshake or
 * pairing becomes one kind with a sentence saying what happened and what to do. `resumable`
 * failures leave nothing provisioned and are retried from the start (a new HELLO, new nonces,
 * a new code).
 */
import { isLoftError, type LoftErrorCode } from "../../../core/errors.ts";

export type DeviceProblemKind =
  | "no-serial"
  | "blocked"
  | "no-port"
  | "port-busy"
  | "wrong-version"
  | "code-mismatch"
  | "cable-pulled"
  | "timeout"
  | "other-owner"
  | "device-reset"
  | "already-paired"
  | "not-a-device"
  | "wrong-device"
  | "tampered"
  | "failed";

export interface DeviceProblem {
  kind: DeviceProblemKind;
  message: string;
  /** Trying again (plugging the cable back in first) starts pairing over; nothing half-done stays. */
  resumable: boolean;
  /** The underlying error code or browser message, for the details line (never secrets). */
  detail?: string;
}

const MESSAGES: Record<DeviceProblemKind, string> = {
  "no-serial":
    "This browser cannot talk to devices over a USB cable (it has no Web Serial). Use Chrome or Edge on a computer to pair a device.",
  blocked: "This page is not allowed to use serial ports (the site's permissions policy blocks it).",
  "no-port": "No device was chosen. Plug the device in, press Connect and pick its port in the list.",
  "port-busy":
    "The port could not be opened: another program (a serial monitor, a flasher, another tab) is using it. Close that program and try again.",
  "wrong-version":
    "The device runs firmware that speaks another version of the Loft device protocol. Update its firmware, then try again.",
  "code-mismatch":
    "The codes did not match, so nothing was sent to the device. Someone may be tampering with the cable: check it and pair again.",
  "cable-pulled":
    "The device was disconnected before pairing finished. Nothing was provisioned. Plug it back in and press Try again.",
  timeout:
    "The device did not answer in time. Check the baud rate, that the device runs Loft firmware, and the cable, then try again.",
  "other-owner":
    "This device is paired to another owner. Factory-reset it (hold its button at boot), then pair again.",
  "device-reset":
    "The device on this port is not paired any more: a factory reset gave it a new identity (or it is another device). Pair it again with Pair a device; this old entry can then be forgotten.",
  "already-paired":
    "This device is already paired with you. Open it from your contacts and press Attach over USB.",
  "not-a-device": "What answered on this port is not a Loft device identity. Nothing was provisioned.",
  "wrong-device": "This is not the device you paired: it answered with another identity.",
  tampered:
    "The encrypted session broke: data on the cable was changed (a faulty cable or adapter, or someone tampering with it). Nothing was provisioned. Try again; if it happens again, use another cable.",
  failed: "Pairing failed. Nothing was provisioned. Try again.",
};

/**
 * The device screen's words where pairing's would be wrong: attaching a paired device, or its
 * connection ending, provisions nothing and has no "Try again" (its button is "Attach over USB").
 */
const ATTACHED_MESSAGES: Partial<Record<DeviceProblemKind, string>> = {
  "other-owner":
    "The device on this port is paired to another owner, not to you. It can be paired again only after a factory reset (hold its button at boot); then pair it with Pair a device.",
  "cable-pulled": "The device was disconnected. Plug it back in and press Attach over USB.",
  tampered:
    "The encrypted session broke: data on the cable was changed (a faulty cable or adapter, or someone tampering with it). Attach again; if it happens again, use another cable.",
  failed: "The connection to the device failed. Press Attach over USB to try again.",
};

const RESUMABLE = new Set<DeviceProblemKind>([
  "no-port",
  "port-busy",
  "cable-pulled",
  "timeout",
  "failed",
  "code-mismatch",
]);

export function deviceProblem(kind: DeviceProblemKind, detail?: string): DeviceProblem {
  const p: DeviceProblem = { kind, message: MESSAGES[kind], resumable: RESUMABLE.has(kind) };
  if (detail !== undefined) p.detail = detail;
  return p;
}

/** A failure already in the technician's words. */
export class DeviceProblemError extends Error {
  readonly problem: DeviceProblem;
  constructor(kind: DeviceProblemKind, detail?: string) {
    super(MESSAGES[kind]);
    this.name = "DeviceProblemError";
    this.problem = deviceProblem(kind, detail);
  }
}

/** The kind each LoftError code is (LOFT_ERR_HANDSHAKE_IDENTITY is told apart by its message). */
const BY_CODE: Partial<Record<LoftErrorCode, DeviceProblemKind>> = {
  LOFT_ERR_UNSUPPORTED_VERSION: "wrong-version",
  LOFT_ERR_LINK_CLOSED: "cable-pulled",
  LOFT_ERR_TIMEOUT: "timeout",
  LOFT_ERR_BAD_IDENTITY: "not-a-device",
  LOFT_ERR_DECRYPT: "tampered",
  LOFT_ERR_NOISE_KEY_MISMATCH: "wrong-device",
};

/**
 * Any failure of pairing, or (`during: "attached"`, the device screen) of attaching a paired device
 * or of its connection, as a DeviceProblem.
 */
export function describeDeviceError(e: unknown, during: "pairing" | "attached" = "pairing"): DeviceProblem {
  const p = describe(e);
  const message = during === "attached" ? ATTACHED_MESSAGES[p.kind] : undefined;
  return message === undefined ? p : { ...p, message };
}

function describe(e: unknown): DeviceProblem {
  if (e instanceof DeviceProblemError) return e.problem;
  if (isLoftError(e)) {
    // `message` is already `code: detail` (core/errors.ts LoftError): the code once.
    const detail = e.message;
    if (e.code === "LOFT_ERR_HANDSHAKE_STATE" && /already paired/.test(e.message))
      return deviceProblem("already-paired", detail);
    if (e.code !== "LOFT_ERR_HANDSHAKE_IDENTITY") return deviceProblem(BY_CODE[e.code] ?? "failed", detail);
    if (/another owner/.test(e.message)) return deviceProblem("other-owner", detail);
    if (/factory-reset/.test(e.message)) return deviceProblem("device-reset", detail);
    if (/codes differ/.test(e.message)) return deviceProblem("code-mismatch", detail);
    return deviceProblem("wrong-device", detail);
  }
  return deviceProblem("failed", e instanceof Error ? e.message : undefined);
}
