/**
 * Usernames (SREMP §identity, `Username := String(1..=40)`; docs/design.md, "Cryptography").
 *
 * SREMP says "a UTF-8 String of 1 up to 40 characters" without defining a character. Loft's
 * decision (docs/protocol/identity.md, "Username"):
 * - a character is a Unicode scalar value (a code point that is not a surrogate), so lone
 *   surrogates — which have no UTF-8 form — are refused;
 * - the string must be in Normalization Form C. `validateUsername` normalises user input to NFC
 *   first (so "é" typed as e + U+0301 works); `checkUsername`, used on received identities,
 *   refuses anything not already NFC, because the signed bytes must be the bytes we re-encode;
 * - 1..40 scalar values after normalisation (so at most 160 UTF-8 bytes);
 * - no control characters (Cc), no line/paragraph separators (Zl, Zp), no bidirectional
 *   formatting characters (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069: they reorder
 *   what the user sees, the classic display-spoofing trick), no leading or trailing white space.
 * A username is only a label: the identity key is the contact id (SREMP §identity), so
 * look-alike names are handled by the TOFU rules (`username-collision`), not here.
 */
import { err, ok, type Result } from "../errors.ts";

export const USERNAME_MIN_CHARS = 1;
export const USERNAME_MAX_CHARS = 40;
/** 40 scalar values × at most 4 UTF-8 bytes each. */
export const USERNAME_MAX_UTF8_BYTES = 160;

const FORBIDDEN = /[\p{Cc}\p{Cs}\p{Zl}\p{Zp}\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
const EDGE_SPACE = /^\p{White_Space}|\p{White_Space}$/u;

/** Count Unicode scalar values (valid only once lone surrogates are excluded). */
function scalarCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Check a username exactly as received (must already be NFC). SREMP §identity. */
export function checkUsername(name: unknown): Result<string> {
  if (typeof name !== "string") return err("LOFT_ERR_BAD_IDENTITY", "username: not a string");
  // Bound the work before scanning: 40 scalar values are at most 80 UTF-16 code units.
  if (name.length > USERNAME_MAX_CHARS * 2)
    return err("LOFT_ERR_BAD_IDENTITY", `username: longer than ${USERNAME_MAX_CHARS} characters`);
  if (FORBIDDEN.test(name))
    return err("LOFT_ERR_BAD_IDENTITY", "username: control, separator, bidi or lone surrogate character");
  const count = scalarCount(name);
  if (count < USERNAME_MIN_CHARS) return err("LOFT_ERR_BAD_IDENTITY", "username: empty");
  if (count > USERNAME_MAX_CHARS)
    return err("LOFT_ERR_BAD_IDENTITY", `username: longer than ${USERNAME_MAX_CHARS} characters`);
  if (EDGE_SPACE.test(name)) return err("LOFT_ERR_BAD_IDENTITY", "username: leading or trailing white space");
  if (name.normalize("NFC") !== name) return err("LOFT_ERR_BAD_IDENTITY", "username: not in NFC");
  return ok(name);
}

/** Normalise user input to NFC, then check it; the value returned is what gets signed. */
export function validateUsername(input: unknown): Result<string> {
  if (typeof input !== "string") return err("LOFT_ERR_BAD_IDENTITY", "username: not a string");
  if (input.length > USERNAME_MAX_CHARS * 8)
    return err("LOFT_ERR_BAD_IDENTITY", `username: longer than ${USERNAME_MAX_CHARS} characters`);
  // A lone surrogate survives normalize(); checkUsername refuses it.
  return checkUsername(input.normalize("NFC"));
}
