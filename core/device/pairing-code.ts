/**
 * The 6-digit pairing code (docs/device.md §5), shown on the device's console or display and in
 * the PWA; the technician compares them before the owner trusts the device.
 *
 *   lp(x)   = u16be(len(x)) ‖ x
 *   commit  = BLAKE2s-256( lp("loft/device/pairing-commit/v1") ‖ h ‖ Nd )
 *   t       = BLAKE2s-256( lp("loft/device/pairing-code/v1") ‖ h ‖ No ‖ Nd ‖ lp(owner HELLO) ‖ lp(device HELLO) )
 *   code    = u64be(t[0..8]) mod 1 000 000, written as 6 decimal digits with leading zeros
 *
 * `h` is the Noise handshake hash (32 bytes, Noise §11.2 channel binding), `No`/`Nd` the owner's and
 * device's 32-byte nonces, exchanged inside the session with the device committing to `Nd` first
 * (device.md §5): a man in the middle who runs one handshake with each side cannot grind its
 * ephemeral keys until the two codes agree, because one nonce it cannot predict enters each code
 * after its last choice — its chance is 10⁻⁶ per attempt, as with Bluetooth numeric comparison.
 * Binding the HELLOs turns a rewritten HELLO (a downgrade to plain XX) into a code mismatch.
 * The modulo bias of a 64-bit value mod 10⁶ is below 2⁻⁴³.
 */
import { blake2s } from "@noble/hashes/blake2.js";
import { abytes, equalBytes, utf8 } from "../bytes.ts";

export const PAIRING_CODE_LABEL = "loft/device/pairing-code/v1";
export const PAIRING_COMMIT_LABEL = "loft/device/pairing-commit/v1";
export const PAIRING_NONCE_BYTES = 32;
export const HANDSHAKE_HASH_BYTES = 32;

function lp(x: Uint8Array): Uint8Array {
  if (x.length > 0xffff) throw new RangeError("field longer than 65535 bytes");
  const out = new Uint8Array(2 + x.length);
  out[0] = x.length >>> 8;
  out[1] = x.length & 0xff;
  out.set(x, 2);
  return out;
}

export function pairingCommit(handshakeHash: Uint8Array, deviceNonce: Uint8Array): Uint8Array {
  abytes(handshakeHash, HANDSHAKE_HASH_BYTES, "handshakeHash");
  abytes(deviceNonce, PAIRING_NONCE_BYTES, "deviceNonce");
  return blake2s
    .create()
    .update(lp(utf8(PAIRING_COMMIT_LABEL)))
    .update(handshakeHash)
    .update(deviceNonce)
    .digest();
}

/** Constant-time check that the revealed nonce is the one the device committed to. */
export function checkPairingCommit(
  commit: Uint8Array,
  handshakeHash: Uint8Array,
  deviceNonce: Uint8Array,
): boolean {
  return equalBytes(commit, pairingCommit(handshakeHash, deviceNonce));
}

export interface PairingCodeInput {
  handshakeHash: Uint8Array;
  ownerNonce: Uint8Array;
  deviceNonce: Uint8Array;
  /** The HELLO payloads exactly as sent by the owner and by the device. */
  ownerHello: Uint8Array;
  deviceHello: Uint8Array;
}

/** The 32-byte `t` above (exported for the vectors and the C reference). */
export function pairingCodeDigest(i: PairingCodeInput): Uint8Array {
  abytes(i.handshakeHash, HANDSHAKE_HASH_BYTES, "handshakeHash");
  abytes(i.ownerNonce, PAIRING_NONCE_BYTES, "ownerNonce");
  abytes(i.deviceNonce, PAIRING_NONCE_BYTES, "deviceNonce");
  return blake2s
    .create()
    .update(lp(utf8(PAIRING_CODE_LABEL)))
    .update(i.handshakeHash)
    .update(i.ownerNonce)
    .update(i.deviceNonce)
    .update(lp(i.ownerHello))
    .update(lp(i.deviceHello))
    .digest();
}

/** Six decimal digits, e.g. "042917". */
export function pairingCode(i: PairingCodeInput): string {
  const t = pairingCodeDigest(i);
  let x = 0n;
  for (let k = 0; k < 8; k++) x = (x << 8n) | BigInt(t[k]!);
  t.fill(0);
  return (x % 1_000_000n).toString().padStart(6, "0");
}
