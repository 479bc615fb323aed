/**
 * HELLO, the one frame exchanged in the clear before the session (docs/device.md §3). It says
 * which protocol version each side speaks, what the device can do, and how much each side can
 * receive (flow control, serial-link.ts). Layout, all integers big-endian:
 *
 *   off size field
 *   0   4    magic "LOFT" (4c 4f 46 54)
 *   4   1    protocol version (DEVICE_PROTOCOL_VERSION)
 *   5   1    role: 1 owner, 2 device
 *   6   4    link id: the owner's random id for this connection; a device echoes it (0 at boot)
 *   10  2    capabilities (CAP_* bits; unknown bits are ignored)
 *   12  2    largest frame payload the sender receives (64..1024)
 *   14  1    receive window in frames (1..32)
 *   15  1    state: 0 unpaired, 1 paired (a device); 0 (an owner)
 *   16  2    largest link message the sender receives (≥ 2048)
 *   18  n    name: UTF-8, ≤ 32 bytes (e.g. "esp32 loft-fw 0.1"), the rest of the frame
 *
 * HELLO is not authenticated by itself: the pairing code binds both HELLOs (pairing-code.ts), so a
 * cable attacker who rewrites one — to strip CAP_XXHFS, say — makes the two codes differ.
 */
import { fromUtf8, utf8 } from "../bytes.ts";
import { err, ok, type Result } from "../errors.ts";
import { MAX_FRAME_PAYLOAD, MIN_FRAME_PAYLOAD } from "./frame.ts";

export const HELLO_MAGIC = new Uint8Array([0x4c, 0x4f, 0x46, 0x54]);
export const DEVICE_PROTOCOL_VERSION = 1;
export const HELLO_FIXED_BYTES = 18;
export const MAX_HELLO_NAME_BYTES = 32;
export const MAX_RX_WINDOW = 32;
/** A device must take at least an XXhfs message 1 (1216 bytes) and a message 3 with its payload. */
export const MIN_MAX_MESSAGE = 2048;

export const ROLE_OWNER = 1;
export const ROLE_DEVICE = 2;

/** The device runs `Noise_XXhfs_25519+MLKEM768` (it can afford ML-KEM-768). */
export const CAP_XXHFS = 0x0001;
/** The device streams telemetry. */
export const CAP_TELEMETRY = 0x0002;
/** The device takes Wi-Fi credentials. */
export const CAP_WIFI = 0x0004;
/** The device has a button: it waits for a local confirmation of the pairing code too. */
export const CAP_CONFIRM_INPUT = 0x0008;

export const STATE_UNPAIRED = 0;
export const STATE_PAIRED = 1;

export interface Hello {
  version: number;
  role: typeof ROLE_OWNER | typeof ROLE_DEVICE;
  linkId: number;
  caps: number;
  maxPayload: number;
  window: number;
  state: typeof STATE_UNPAIRED | typeof STATE_PAIRED;
  maxMessage: number;
  name: string;
}

export function encodeHello(h: Hello): Uint8Array {
  const name = utf8(h.name);
  if (name.length > MAX_HELLO_NAME_BYTES) throw new RangeError("hello name too long");
  const out = new Uint8Array(HELLO_FIXED_BYTES + name.length);
  const view = new DataView(out.buffer);
  out.set(HELLO_MAGIC, 0);
  out[4] = h.version;
  out[5] = h.role;
  view.setUint32(6, h.linkId >>> 0);
  view.setUint16(10, h.caps);
  view.setUint16(12, h.maxPayload);
  out[14] = h.window;
  out[15] = h.state;
  view.setUint16(16, h.maxMessage);
  out.set(name, HELLO_FIXED_BYTES);
  return out;
}

/**
 * Decode a HELLO payload. Magic and fixed fields are checked first; another protocol version is
 * LOFT_ERR_UNSUPPORTED_VERSION (wrong firmware), everything else malformed LOFT_ERR_MALFORMED.
 */
export function decodeHello(bytes: Uint8Array): Result<Hello> {
  if (bytes.length < HELLO_FIXED_BYTES) return err("LOFT_ERR_MALFORMED", `HELLO of ${bytes.length} bytes`);
  for (let i = 0; i < 4; i++)
    if (bytes[i] !== HELLO_MAGIC[i]) return err("LOFT_ERR_MALFORMED", "HELLO without the LOFT magic");
  const version = bytes[4]!;
  if (version !== DEVICE_PROTOCOL_VERSION)
    return err(
      "LOFT_ERR_UNSUPPORTED_VERSION",
      `device protocol ${version}, this side speaks ${DEVICE_PROTOCOL_VERSION}`,
    );
  if (bytes.length > HELLO_FIXED_BYTES + MAX_HELLO_NAME_BYTES)
    return err("LOFT_ERR_MALFORMED", "HELLO name too long");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const role = bytes[5]!;
  if (role !== ROLE_OWNER && role !== ROLE_DEVICE) return err("LOFT_ERR_MALFORMED", `HELLO role ${role}`);
  const maxPayload = view.getUint16(12);
  if (maxPayload < MIN_FRAME_PAYLOAD || maxPayload > MAX_FRAME_PAYLOAD)
    return err("LOFT_ERR_MALFORMED", `HELLO max payload ${maxPayload}`);
  const window = bytes[14]!;
  if (window < 1 || window > MAX_RX_WINDOW) return err("LOFT_ERR_MALFORMED", `HELLO window ${window}`);
  const state = bytes[15]!;
  if (state !== STATE_UNPAIRED && state !== STATE_PAIRED)
    return err("LOFT_ERR_MALFORMED", `HELLO state ${state}`);
  const maxMessage = view.getUint16(16);
  if (maxMessage < MIN_MAX_MESSAGE) return err("LOFT_ERR_MALFORMED", `HELLO max message ${maxMessage}`);
  let name: string;
  try {
    name = fromUtf8(bytes.subarray(HELLO_FIXED_BYTES));
  } catch {
    return err("LOFT_ERR_MALFORMED", "HELLO name is not UTF-8");
  }
  return ok({
    version,
    role,
    linkId: view.getUint32(6),
    caps: view.getUint16(10),
    maxPayload,
    window,
    state,
    maxMessage,
    name,
  });
}

/**
 * The Noise protocol both sides run, from the two HELLOs: XXhfs when both announce CAP_XXHFS,
 * plain XX otherwise. Both compute it the same way; the pairing code binds the HELLOs it came from.
 */
export function negotiatedProtocol(owner: Hello, device: Hello): "XXhfs" | "XX" {
  return owner.caps & device.caps & CAP_XXHFS ? "XXhfs" : "XX";
}
