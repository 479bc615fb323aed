/**
 * Messages inside the encrypted device session (docs/device.md §5–§7): pairing (commit / nonce /
 * reveal / confirm), provisioning, factory reset, telemetry, console commands. Each is one application message of
 * the session, canonical MessagePack with a type tag `t` (docs/design.md, "Wire format"); a
 * non-canonical encoding is LOFT_ERR_MALFORMED, a wrong shape LOFT_ERR_SCHEMA, an unknown `t`
 * LOFT_ERR_UNKNOWN_TYPE.
 */
import * as v from "valibot";
import { utf8 } from "../bytes.ts";
import {
  bytesSchema,
  decodeRaw,
  encodeCanonical,
  requireCanonical,
  uintSchema,
  validate,
} from "../codec/codec.ts";
import { err, type Result } from "../errors.ts";
import { PAIRING_NONCE_BYTES } from "./pairing-code.ts";

/** Largest device message (a provisioning message with an owner identity of ≤ 2 KiB fits). */
export const MAX_DEVICE_MESSAGE_BYTES = 4096;
export const MAX_RELAY_URL_LENGTH = 256;
export const MAX_TELEMETRY_READINGS = 16;
/** A console command line, owner → device (docs/device.md §7). */
export const MAX_COMMAND_BYTES = 128;
/** A console answer, device → owner. */
export const MAX_COMMAND_OUTPUT_BYTES = 1024;
/**
 * Largest Double Ratchet message carried across the cable by the bridge (`relay-in`, `relay-out`,
 * docs/device.md §13): a `dev.*` application message pads to at most 2048 bytes (a 1024-byte
 * console answer), plus the ratchet's header and tag; it leaves room in a 4096-byte device message.
 */
export const MAX_BRIDGED_BYTES = 3072;

const nonce = bytesSchema(PAIRING_NONCE_BYTES);
/** A string of `minBytes`…`maxBytes` UTF-8 bytes. */
export const shortText = (maxBytes: number, minBytes = 0) =>
  v.pipe(
    v.string(),
    v.check((s) => {
      const n = utf8(s).length;
      return n >= minBytes && n <= maxBytes;
    }, `expected ${minBytes}..${maxBytes} UTF-8 bytes`),
  );
const relayUrl = v.pipe(
  shortText(MAX_RELAY_URL_LENGTH, 1),
  v.regex(/^wss?:\/\//, "expected a ws: or wss: URL"),
);
const readingName = /^[a-z0-9][a-z0-9._-]{0,31}$/;
/** A telemetry message's readings, name → value (`telemetry` here, `dev.telemetry` through the relay). */
export const telemetryReadings = v.pipe(
  v.record(v.pipe(v.string(), v.regex(readingName)), v.number()),
  v.check((r) => Object.keys(r).length <= MAX_TELEMETRY_READINGS, "too many readings"),
);

/** The device's own receiving queue at the relay (docs/protocol/mailbox.md §1, the `rx` record). */
const queueSchema = v.strictObject({
  u: relayUrl,
  rid: bytesSchema(24),
  rk: bytesSchema(32),
  sid: bytesSchema(24),
  sk: bytesSchema(32),
});

/** Where the device leaves messages for its owner (mailbox.md §1, the `mbox` announcement). */
const ownerMailboxSchema = v.strictObject({ u: relayUrl, s: bytesSchema(24), k: bytesSchema(32) });

/**
 * The device's relay settings (`link`, docs/device.md §13): its own receiving queue at the owner's
 * relay, as the recipient (mailbox.md §1: recipient id, sender id, recipient auth secret, the
 * server→recipient key), and the owner's queue for it, as a sender (`mbox`).
 */
const linkQueueSchema = v.strictObject({
  u: relayUrl,
  r: bytesSchema(24),
  s: bytesSchema(24),
  a: bytesSchema(32),
  k: bytesSchema(32),
});
const bridged = bytesSchema(1, MAX_BRIDGED_BYTES);

const wifiSchema = v.strictObject({ ssid: shortText(32, 1), psk: shortText(63) });

export const deviceMessageSchema = v.variant("t", [
  // device → owner
  v.strictObject({ t: v.literal("commit"), c: bytesSchema(32) }),
  v.strictObject({ t: v.literal("reveal"), n: nonce }),
  v.strictObject({ t: v.literal("ready") }),
  v.strictObject({ t: v.literal("provisioned") }),
  v.strictObject({ t: v.literal("reset-done") }),
  v.strictObject({
    t: v.literal("telemetry"),
    n: uintSchema(0xffffffff),
    at: uintSchema(),
    r: telemetryReadings,
  }),
  v.strictObject({ t: v.literal("refused"), code: shortText(64, 1), m: shortText(256) }),
  v.strictObject({
    t: v.literal("out"),
    id: uintSchema(0xffffffff),
    ok: v.boolean(),
    m: shortText(MAX_COMMAND_OUTPUT_BYTES),
  }),
  /** The device's ratchet public key: it is the ratchet's responder (Bob), docs/device.md §13. */
  v.strictObject({ t: v.literal("linked"), k: bytesSchema(32) }),
  /** A ratchet message for the owner's mailbox: the attached browser deposits it (the bridge). */
  v.strictObject({ t: v.literal("relay-out"), b: bridged }),
  /** A `relay-in` was read (its ratchet state stored, or it was dropped): the owner may ACK it. */
  v.strictObject({ t: v.literal("relay-took") }),
  // owner → device
  v.strictObject({ t: v.literal("nonce"), n: nonce }),
  v.strictObject({ t: v.literal("confirm") }),
  v.strictObject({ t: v.literal("abort"), m: shortText(256) }),
  v.strictObject({
    t: v.literal("provision"),
    owner: bytesSchema(1, 2048),
    queue: v.optional(queueSchema),
    owner_mbox: v.optional(ownerMailboxSchema),
    wifi: v.optional(wifiSchema),
  }),
  v.strictObject({ t: v.literal("reset") }),
  v.strictObject({ t: v.literal("cmd"), id: uintSchema(0xffffffff), c: shortText(MAX_COMMAND_BYTES, 1) }),
  /** Relay settings; the device answers `linked` and starts a new ratchet with the owner. */
  v.strictObject({ t: v.literal("link"), q: linkQueueSchema, m: ownerMailboxSchema }),
  /** A ratchet message the owner's relay held for the device, handed down the cable (the bridge). */
  v.strictObject({ t: v.literal("relay-in"), b: bridged }),
]);

export type DeviceMessage = v.InferOutput<typeof deviceMessageSchema>;
export type DeviceMessageType = DeviceMessage["t"];
export type Provision = Extract<DeviceMessage, { t: "provision" }>;
export type DeviceLink = Extract<DeviceMessage, { t: "link" }>;

const TYPES = new Set<string>([
  "commit",
  "reveal",
  "ready",
  "provisioned",
  "reset-done",
  "telemetry",
  "refused",
  "nonce",
  "confirm",
  "abort",
  "provision",
  "reset",
  "cmd",
  "out",
  "link",
  "linked",
  "relay-in",
  "relay-out",
  "relay-took",
]);

export function encodeDeviceMessage(m: DeviceMessage): Uint8Array {
  const bytes = encodeCanonical(m);
  if (bytes.length > MAX_DEVICE_MESSAGE_BYTES) throw new RangeError("device message too large");
  return bytes;
}

export function decodeDeviceMessage(bytes: Uint8Array): Result<DeviceMessage> {
  if (bytes.length > MAX_DEVICE_MESSAGE_BYTES)
    return err("LOFT_ERR_FRAME_TOO_LARGE", `device message of ${bytes.length} bytes`);
  const raw = decodeRaw(bytes, { maxBytes: MAX_DEVICE_MESSAGE_BYTES, maxMapLength: 32, maxArrayLength: 0 });
  if (!raw.ok) return raw;
  const t = (raw.value as { t?: unknown } | null)?.t;
  if (typeof t === "string" && !TYPES.has(t))
    return err("LOFT_ERR_UNKNOWN_TYPE", `device message type ${JSON.stringify(t)}`);
  return requireCanonical(validate(raw.value, deviceMessageSchema), bytes, "device message");
}
