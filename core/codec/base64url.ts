/**
 * base64url without padding (RFC 4648 §5), the alphabet that survives URLs and URL fragments
 * unescaped. Used for contact links (`https://host/#c=<payload>`), the safety-code QR form and the
 * `x` of the Ed25519 JWKs WebCrypto exports (core/crypto/webcrypto.ts).
 *
 * Decoding is strict so that every byte string has exactly one text form: only the 64 URL-safe
 * characters, no `=` padding, no whitespace, and the unused low bits of the last character must be
 * zero (RFC 4648 §3.5, "canonical encoding"). Anything else is `LOFT_ERR_MALFORMED`.
 */
import { err, ok, type Result } from "../errors.ts";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const REVERSE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) REVERSE[ALPHABET.charCodeAt(i)] = i;

/** RFC 4648 §5 base64url, no padding. */
export function toBase64url(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!;
  }
  return out;
}

/** Strict RFC 4648 §5 decode (no padding, canonical trailing bits); `maxChars` is checked first. */
export function fromBase64url(text: string, maxChars = Number.MAX_SAFE_INTEGER): Result<Uint8Array> {
  if (typeof text !== "string") return err("LOFT_ERR_MALFORMED", "base64url: not a string");
  if (text.length > maxChars)
    return err("LOFT_ERR_FRAME_TOO_LARGE", `base64url: ${text.length} characters exceeds ${maxChars}`);
  if (text.length % 4 === 1) return err("LOFT_ERR_MALFORMED", "base64url: impossible length");
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const value = c < 128 ? REVERSE[c]! : -1;
    if (value < 0) return err("LOFT_ERR_MALFORMED", `base64url: invalid character at ${i}`);
    acc = ((acc << 6) | value) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  // RFC 4648 §3.5: the pad bits of the final character must be zero, or two texts decode alike.
  if ((acc & ((1 << bits) - 1)) !== 0) return err("LOFT_ERR_MALFORMED", "base64url: non-zero trailing bits");
  return ok(out);
}
