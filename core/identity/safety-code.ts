/**
 * Safety codes: a human-comparable code both sides compute identically from the two identity keys,
 * for out-of-band verification (SREMP §identity "Security Consideration: … verify identity keys
 * through out-of-band channels"; docs/design.md, "Cryptography").
 *
 * The construction is Signal's NumericFingerprint (libsignal `fingerprint.rs`, "version 0"
 * fingerprint, 5200 iterations): for each party
 *
 *     h₀ = SHA-512(0x00 0x00 ‖ key ‖ stableId ‖ key),  hᵢ = SHA-512(hᵢ₋₁ ‖ key),  i = 1 … 5199
 *
 * Loft uses the raw 32-byte Ed25519 identity key as `key` and also as `stableId` (the identity key
 * *is* the contact id, SREMP `ContactId`). The first 30 bytes of the result are read as six 40-bit
 * big-endian numbers, each taken mod 100000 and written as 5 digits: 30 digits per party. The
 * displayed code is the two 30-digit halves in ascending order, concatenated: 60 digits, the same
 * on both devices, read aloud in groups of 5. The scannable (QR) form carries the first 32 bytes
 * of each party's hash, the scanner's device checks the halves crosswise like Signal's
 * ScannableFingerprint. Test: safety-code.test.ts reproduces libsignal's published vectors.
 */
import { sha512 } from "@noble/hashes/sha2.js";
import { abytes, concatBytes, equalBytes, fromHex, toHex, utf8 } from "../bytes.ts";
import { err, ok, type Result } from "../errors.ts";

export const SAFETY_CODE_ITERATIONS = 5200;
export const SAFETY_CODE_DIGITS = 60;
/** Prefix of the QR text; every character is in the QR alphanumeric set (ISO/IEC 18004 §7.4.4). */
export const SAFETY_QR_PREFIX = "LOFT:SC1:";

/** Signal NumericFingerprintGenerator `getFingerprint` (iterated SHA-512), full 64-byte output. */
export function iteratedFingerprint(key: Uint8Array, stableId: Uint8Array, iterations: number): Uint8Array {
  abytes(key, undefined, "key");
  abytes(stableId, undefined, "stableId");
  if (!Number.isSafeInteger(iterations) || iterations < 2 || iterations > 1_000_000)
    throw new RangeError("iterations");
  let hash = sha512(concatBytes(new Uint8Array([0, 0]), key, stableId, key));
  const buf = new Uint8Array(64 + key.length);
  buf.set(key, 64);
  for (let i = 1; i < iterations; i++) {
    buf.set(hash, 0);
    hash = sha512(buf);
  }
  return hash;
}

/** Signal DisplayableFingerprint: 30 digits from the first 30 bytes, 5 bytes → 5 digits each. */
export function fingerprintDigits(hash: Uint8Array): string {
  abytes(hash);
  if (hash.length < 30) throw new RangeError("fingerprint shorter than 30 bytes");
  let out = "";
  for (let chunk = 0; chunk < 6; chunk++) {
    let n = 0;
    // 40-bit big-endian; exact in a double (< 2^53).
    for (let j = 0; j < 5; j++) n = n * 256 + hash[chunk * 5 + j]!;
    out += String(n % 100_000).padStart(5, "0");
  }
  return out;
}

function partyFingerprint(identityKey: Uint8Array): Uint8Array {
  abytes(identityKey, 32, "identityKey");
  return iteratedFingerprint(identityKey, identityKey, SAFETY_CODE_ITERATIONS);
}

/** The 60-digit safety code for two identity keys; the argument order does not matter. */
export function safetyCode(identityKeyA: Uint8Array, identityKeyB: Uint8Array): string {
  const a = fingerprintDigits(partyFingerprint(identityKeyA));
  const b = fingerprintDigits(partyFingerprint(identityKeyB));
  return a < b ? a + b : b + a;
}

/** "12345 67890 …": 12 groups of 5 digits for reading aloud (Signal shows the same grouping). */
export function formatSafetyCode(code: string): string {
  if (!/^\d{60}$/.test(code)) throw new RangeError("safety code: expected 60 digits");
  return code.match(/\d{5}/g)!.join(" ");
}

/** Accept a code typed or read back by a user: digits only after removing spaces, exactly 60. */
export function parseSafetyCode(text: string): Result<string> {
  const digits = typeof text === "string" ? text.replace(/[\s-]/g, "") : "";
  if (!/^\d{60}$/.test(digits)) return err("LOFT_ERR_MALFORMED", "safety code: expected 60 digits");
  return ok(digits);
}

/** Constant-time comparison of two safety codes (typed or computed). */
export function safetyCodesMatch(a: string, b: string): boolean {
  const pa = parseSafetyCode(a);
  const pb = parseSafetyCode(b);
  if (!pa.ok || !pb.ok) return false;
  return equalBytes(utf8(pa.value), utf8(pb.value));
}

/**
 * The QR text *I* show: `LOFT:SC1:` + uppercase hex of (my 32-byte fingerprint ‖ yours), 137
 * characters, all in the QR alphanumeric set.
 */
export function safetyCodeQr(localIdentityKey: Uint8Array, remoteIdentityKey: Uint8Array): string {
  const local = partyFingerprint(localIdentityKey).subarray(0, 32);
  const remote = partyFingerprint(remoteIdentityKey).subarray(0, 32);
  return SAFETY_QR_PREFIX + toHex(concatBytes(local, remote)).toUpperCase();
}

/**
 * Check a QR text scanned from the other device: its "local" half must be their key's fingerprint
 * and its "remote" half mine (crosswise, as Signal's ScannableFingerprint.compare). Ok(false) is a
 * mismatch — warn the user; an error means the text is not a Loft safety QR at all.
 */
export function compareScannedSafetyCode(
  scanned: string,
  localIdentityKey: Uint8Array,
  remoteIdentityKey: Uint8Array,
): Result<boolean> {
  if (typeof scanned !== "string" || !scanned.startsWith("LOFT:SC"))
    return err("LOFT_ERR_MALFORMED", "not a Loft safety code");
  if (!scanned.startsWith(SAFETY_QR_PREFIX))
    return err("LOFT_ERR_UNSUPPORTED_VERSION", "safety code QR of another version");
  const hex = scanned.slice(SAFETY_QR_PREFIX.length);
  if (!/^[0-9A-F]{128}$/.test(hex))
    return err("LOFT_ERR_MALFORMED", "safety code QR: expected 128 hex digits");
  const bytes = fromHex(hex);
  const theirLocal = bytes.subarray(0, 32);
  const theirRemote = bytes.subarray(32, 64);
  const mine = partyFingerprint(localIdentityKey).subarray(0, 32);
  const theirs = partyFingerprint(remoteIdentityKey).subarray(0, 32);
  const same1 = equalBytes(theirLocal, theirs);
  const same2 = equalBytes(theirRemote, mine);
  return ok(same1 && same2);
}
