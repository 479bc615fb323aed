/**
 * Deterministic vectors for the device protocol (docs/device.md §10): CRC-32, COBS, frames, a
 * deframed stream with garbage and a cut frame, HELLO, and the pairing commit and code, written to
 * docs/vectors/device-v1.json. `core/device/vectors.test.ts` rebuilds them and requires byte
 * equality; `device/c.test.ts` runs the C reference on every entry.
 *
 *   npx tsx scripts/gen-device-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-device-vectors.ts --check  # exit 1 if it is stale
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { blake2s } from "@noble/hashes/blake2.js";
import { toHex, utf8 } from "../core/bytes.ts";
import { cobsEncode } from "../core/device/cobs.ts";
import { crc32 } from "../core/device/crc32.ts";
import {
  Deframer,
  encodeFrame,
  FRAME_ACK,
  FRAME_CLOSE,
  FRAME_DATA,
  FRAME_DATA_END,
  FRAME_HELLO,
  type Frame,
} from "../core/device/frame.ts";
import {
  CAP_TELEMETRY,
  CAP_WIFI,
  CAP_XXHFS,
  encodeHello,
  type Hello,
  ROLE_DEVICE,
  ROLE_OWNER,
} from "../core/device/hello.ts";
import { pairingCode, pairingCodeDigest, pairingCommit } from "../core/device/pairing-code.ts";
import { serialise, VECTORS_DIR } from "./gen-identity-vectors.ts";

const fill = (n: number, byte: number) => new Uint8Array(n).fill(byte);
const counting = (n: number, from = 0) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

const OWNER_HELLO: Hello = {
  version: 1,
  role: ROLE_OWNER,
  linkId: 0x5eed0001,
  caps: CAP_XXHFS,
  maxPayload: 240,
  window: 8,
  state: 0,
  maxMessage: 0xffff,
  name: "Loft PWA",
};
const DEVICE_HELLO: Hello = {
  version: 1,
  role: ROLE_DEVICE,
  linkId: 0x5eed0001,
  caps: CAP_XXHFS | CAP_TELEMETRY | CAP_WIFI,
  maxPayload: 240,
  window: 4,
  state: 0,
  maxMessage: 0xffff,
  name: "esp32 loft-fw 0.1",
};

export function buildDeviceVectors() {
  const crcInputs = [new Uint8Array(0), utf8("123456789"), fill(1, 0), fill(32, 0xff), counting(300)];
  const cobsInputs = [
    new Uint8Array(0),
    fill(1, 0),
    fill(2, 0),
    Uint8Array.from([0x11, 0x22, 0x00, 0x33]),
    Uint8Array.from([0x11, 0x22, 0x33, 0x44]),
    Uint8Array.from([0x11, 0x00, 0x00, 0x00]),
    counting(254, 1),
    counting(255, 1),
    counting(600),
  ];
  const frames: Frame[] = [
    { type: FRAME_HELLO, seq: 0, payload: encodeHello(DEVICE_HELLO) },
    { type: FRAME_DATA, seq: 0, payload: counting(240) },
    { type: FRAME_DATA_END, seq: 0x1234, payload: utf8("hi") },
    { type: FRAME_DATA_END, seq: 0xffff, payload: new Uint8Array(0) },
    { type: FRAME_ACK, seq: 7, payload: new Uint8Array(0) },
    { type: FRAME_CLOSE, seq: 0, payload: utf8("LOFT_ERR_TIMEOUT") },
  ];
  // A stream as a receiver might see it: line noise, a frame, a sender reset mid-frame, a frame,
  // a frame with one byte changed (CRC fault), and the last frame.
  const a = encodeFrame({ type: FRAME_DATA_END, seq: 1, payload: utf8("first") });
  const b = encodeFrame({ type: FRAME_DATA_END, seq: 2, payload: utf8("second") });
  const c = encodeFrame({ type: FRAME_ACK, seq: 3, payload: new Uint8Array(0) });
  const damaged = b.slice();
  damaged[4] = damaged[4]! ^ 0x20 || 1;
  const stream = Uint8Array.from([
    0x41,
    0x54,
    0x0d,
    0x0a,
    0x00,
    ...a,
    ...b.subarray(0, 6),
    0x00,
    ...b,
    ...damaged,
    ...c,
  ]);
  const events = new Deframer(240)
    .push(stream)
    .map((e) =>
      e.ok
        ? { frame: { type: e.frame.type, seq: e.frame.seq, payload: toHex(e.frame.payload) } }
        : { fault: e.error.fault },
    );

  const ownerHello = encodeHello(OWNER_HELLO);
  const deviceHello = encodeHello(DEVICE_HELLO);
  const pairingCases = [
    { handshakeHash: fill(32, 0x11), ownerNonce: fill(32, 0x22), deviceNonce: fill(32, 0x33) },
    { handshakeHash: counting(32), ownerNonce: counting(32, 32), deviceNonce: counting(32, 64) },
    {
      handshakeHash: blake2s(utf8("h")),
      ownerNonce: blake2s(utf8("owner")),
      deviceNonce: blake2s(utf8("device")),
    },
  ];
  return {
    description:
      "Device protocol vectors (docs/device.md): CRC-32 (IEEE), COBS, serial frames (wire includes the 0x00 delimiter), a deframed stream, HELLO, pairing commit and code. Bytes are hex.",
    generator: "scripts/gen-device-vectors.ts",
    crc32: crcInputs.map((x) => ({ input: toHex(x), crc: crc32(x).toString(16).padStart(8, "0") })),
    cobs: cobsInputs.map((x) => ({ input: toHex(x), encoded: toHex(cobsEncode(x)) })),
    frames: frames.map((f) => ({
      type: f.type,
      seq: f.seq,
      payload: toHex(f.payload),
      wire: toHex(encodeFrame(f)),
    })),
    stream: { max_payload: 240, bytes: toHex(stream), events },
    hello: {
      owner: { fields: OWNER_HELLO, bytes: toHex(ownerHello) },
      device: { fields: DEVICE_HELLO, bytes: toHex(deviceHello) },
    },
    pairing: pairingCases.map((p) => {
      const input = { ...p, ownerHello, deviceHello };
      return {
        handshake_hash: toHex(p.handshakeHash),
        owner_nonce: toHex(p.ownerNonce),
        device_nonce: toHex(p.deviceNonce),
        owner_hello: toHex(ownerHello),
        device_hello: toHex(deviceHello),
        commit: toHex(pairingCommit(p.handshakeHash, p.deviceNonce)),
        digest: toHex(pairingCodeDigest(input)),
        code: pairingCode(input),
      };
    }),
  };
}

export const DEVICE_VECTORS_FILE = join(VECTORS_DIR, "device-v1.json");

function main(): void {
  const text = serialise(buildDeviceVectors());
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(DEVICE_VECTORS_FILE, "utf8");
    } catch {}
    if (current !== text) {
      console.error(`stale: ${DEVICE_VECTORS_FILE}`);
      process.exit(1);
    }
    return;
  }
  writeFileSync(DEVICE_VECTORS_FILE, text);
  console.log(`wrote ${DEVICE_VECTORS_FILE}`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
