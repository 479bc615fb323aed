/**
 * A paired device and its owner through the relay (docs/device.md §13): the Double Ratchet both
 * keep across cables and relay mailboxes, started inside the serial session by `link` / `linked`,
 * and the application messages (`dev.*`) that travel inside it.
 *
 * Ratchet start (docs/protocol/ratchet.md, "Starting a session"): the owner sends `link` (the relay
 * settings); the device makes a fresh X25519 ratchet key pair and answers `linked` with its public
 * half. Both take `exportSecret("loft/ratchet/v1")` of the serial session and run
 * `ratchetFromHandshake` — the owner (the Noise initiator) as Alice, the device as Bob — with
 * AD = owner identity key ‖ device identity key; the ratchet id is the first 16 bytes of
 * `exportSecret("loft/chat/ratchet-id/v1")`. This is the chat bootstrap of
 * web/src/engine/ratchet-store.ts with the responder's key carried in a device message instead of
 * a handshake extension: a device's handshake stays the pairing one (§5), and a new ratchet starts
 * only when the owner asks. Bob cannot send before he has read one message: the owner's first
 * message (`sync`) goes down the cable at once (`relay-in`).
 *
 * Application messages, canonical MessagePack padded like every chat application message
 * (web/src/engine/wire.ts):
 *   { t: "dev.telemetry", n: u32, at: uint, r: { name: number } }   device → owner
 *   { t: "dev.cmd", id: u32, c: str 1…128 bytes }                   owner → device
 *   { t: "dev.out", id: u32, ok: bool, m: str ≤ 1024 bytes }        device → owner
 * No DOM, no Node built-in.
 */
import * as v from "valibot";
import { decodeRaw, encodeCanonical, requireCanonical, uintSchema, validate } from "../codec/codec.ts";
import { padToBucket, unpadBucket } from "../codec/padding.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { err, type Result } from "../errors.ts";
import { type RatchetKeyPair, ratchetFromSession, type SessionRatchet } from "../ratchet/index.ts";
import type { Session } from "../session/session.ts";
import {
  MAX_COMMAND_BYTES,
  MAX_COMMAND_OUTPUT_BYTES,
  MAX_TELEMETRY_READINGS,
  shortText,
  telemetryReadings,
} from "./messages.ts";

/** A ratchet between a device and its owner, and its id (equal on both sides). */
export type DeviceRatchet = SessionRatchet;

/**
 * Start the device ratchet from the serial session, as a chat contact's starts
 * (core/ratchet/from-session.ts). The owner (initiator) passes the device's `linked` key; the
 * device (responder) passes the key pair whose public half it sent.
 */
export function startDeviceRatchet(
  session: Session,
  selfIdentityKey: Uint8Array,
  peer: { deviceRatchetPublic: Uint8Array } | { ratchetKeyPair: RatchetKeyPair },
  crypto?: CryptoProvider,
): Promise<Result<DeviceRatchet>> {
  const key = "deviceRatchetPublic" in peer ? { responderRatchetPublic: peer.deviceRatchetPublic } : peer;
  return ratchetFromSession(session, selfIdentityKey, key, crypto);
}

// ---- dev.* application messages ----------------------------------------------------------------

/** The `dev.*` members of the chat application-message union (web/src/engine/wire.ts). */
export const DEVICE_APP_SCHEMAS = [
  v.strictObject({
    t: v.literal("dev.telemetry"),
    n: uintSchema(0xffffffff),
    at: uintSchema(),
    r: telemetryReadings,
  }),
  v.strictObject({ t: v.literal("dev.cmd"), id: uintSchema(0xffffffff), c: shortText(MAX_COMMAND_BYTES, 1) }),
  v.strictObject({
    t: v.literal("dev.out"),
    id: uintSchema(0xffffffff),
    ok: v.boolean(),
    m: shortText(MAX_COMMAND_OUTPUT_BYTES),
  }),
] as const;

/** The most map entries a `dev.*` message has (the telemetry readings). */
export const DEVICE_APP_MAX_FIELDS = MAX_TELEMETRY_READINGS;

export type DeviceAppMessage = v.InferOutput<(typeof DEVICE_APP_SCHEMAS)[number]>;

export function isDeviceAppMessage(m: { t: string }): m is DeviceAppMessage {
  return m.t === "dev.telemetry" || m.t === "dev.cmd" || m.t === "dev.out";
}

/** What a device reads from its owner through the relay: a `dev.*` message or `sync` (nothing). */
const deviceInboxSchema = v.variant("t", [...DEVICE_APP_SCHEMAS, v.strictObject({ t: v.literal("sync") })]);
export type DeviceInboxMessage = v.InferOutput<typeof deviceInboxSchema>;
const KNOWN = new Set(["dev.telemetry", "dev.cmd", "dev.out", "sync"]);

/** Canonical MessagePack padded to a power-of-two bucket: byte-identical to the chat engine's. */
export function encodeDeviceAppMessage(m: DeviceAppMessage | { t: "sync" }): Uint8Array {
  return padToBucket(encodeCanonical(m));
}

/**
 * A decrypted application message from the owner. Other chat messages (`msg`, `file.*` …) are
 * LOFT_ERR_UNKNOWN_TYPE: a device has no use for them.
 */
export function decodeDeviceAppMessage(padded: Uint8Array): Result<DeviceInboxMessage> {
  const unpadded = unpadBucket(padded);
  if (!unpadded.ok) return unpadded;
  const raw = decodeRaw(unpadded.value, {
    maxBytes: 4096,
    maxMapLength: DEVICE_APP_MAX_FIELDS,
    maxArrayLength: 0,
  });
  if (!raw.ok) return raw;
  const t = (raw.value as { t?: unknown } | null)?.t;
  if (typeof t === "string" && !KNOWN.has(t))
    return err("LOFT_ERR_UNKNOWN_TYPE", `application message ${JSON.stringify(t.slice(0, 32))} for a device`);
  return requireCanonical(
    validate(raw.value, deviceInboxSchema),
    unpadded.value,
    "device application message",
  );
}
