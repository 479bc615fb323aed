/**
 * The handshake payloads of a Loft session (docs/protocol/session.md §4, "Payloads"):
 * Noise message 2 (responder) and message 3 (initiator) carry, encrypted by the handshake (Noise
 * §5.3 EncryptAndHash of the payload), the sender's signed SREMP Identity (SREMP §identity, as
 * its canonical encoding from core/identity) and an optional map of extensions — named byte
 * strings the layers above exchange with the handshake, e.g. the responder's Double Ratchet
 * public key. Message 1's payload is empty (it would travel in the clear).
 *
 *   HANDSHAKE_PAYLOAD := { identity: bin (encodeIdentity bytes), ext?: { name: bin, ... } }
 *
 * canonical MessagePack (core/codec/codec.ts), keys sorted, `ext` absent when empty.
 */
import * as v from "valibot";
import { equalBytes } from "../bytes.ts";
import { bytesSchema, decodeWith, encodeCanonical } from "../codec/codec.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { err, ok, type Result } from "../errors.ts";
import { decodeIdentity, encodeIdentity, type Identity, MAX_IDENTITY_BYTES } from "../identity/identity.ts";

export const MAX_EXTENSIONS = 16;
export const MAX_EXTENSION_BYTES = 8192;
/** Extension names: 1–64 of `[a-z0-9._-]`, starting with a letter or digit. */
export const EXTENSION_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export type Extensions = Readonly<Record<string, Uint8Array>>;

/**
 * Whether the peer announced extension `name` with exactly the one byte `01` — the rule of every
 * yes/no extension (session.md §5 `session.detached`, chat.md §2 `mbox.order`, §5 `chat.bundle`):
 * any other value (`01 02`, `02`, empty) is a later layout with a value of its own, not this one.
 * Own properties only: a name like `__proto__` is never read through the prototype.
 */
export function announcesFlag(extensions: Extensions, name: string): boolean {
  const value = Object.hasOwn(extensions, name) ? extensions[name] : undefined;
  return value instanceof Uint8Array && value.length === 1 && value[0] === 1;
}

export const handshakePayloadSchema = v.strictObject({
  identity: bytesSchema(1, MAX_IDENTITY_BYTES),
  ext: v.optional(
    v.pipe(
      v.record(v.pipe(v.string(), v.regex(EXTENSION_NAME)), bytesSchema(0, MAX_EXTENSION_BYTES)),
      v.check((m) => Object.keys(m).length <= MAX_EXTENSIONS, `at most ${MAX_EXTENSIONS} extensions`),
    ),
  ),
});

const LIMITS = {
  maxBytes: 65_535,
  maxStrLength: 64,
  maxBinLength: MAX_IDENTITY_BYTES,
  maxArrayLength: 0,
  maxMapLength: MAX_EXTENSIONS + 2,
} as const;

export interface HandshakePayload {
  identity: Identity;
  extensions: Extensions;
}

/** Throws (RangeError) for extensions our own caller got wrong: bad names, too many, too large. */
export function encodeHandshakePayload(identity: Identity, extensions: Extensions = {}): Uint8Array {
  const ext = Object.keys(extensions).length > 0 ? { ...extensions } : undefined;
  const value = { identity: encodeIdentity(identity), ...(ext ? { ext } : {}) };
  const checked = v.safeParse(handshakePayloadSchema, value);
  if (!checked.success) throw new RangeError(`handshake payload: ${checked.issues[0]?.message}`);
  return encodeCanonical(value);
}

/**
 * Decode and verify a peer's payload: shape (LOFT_ERR_MALFORMED / LOFT_ERR_SCHEMA), canonical
 * form, then the Identity itself with `crypto` (the session's provider; `decodeIdentity`:
 * LOFT_ERR_BAD_SIGNATURE when its signature does not verify, LOFT_ERR_BAD_IDENTITY /
 * LOFT_ERR_SCHEMA / LOFT_ERR_MALFORMED otherwise).
 */
export async function decodeHandshakePayload(
  crypto: CryptoProvider,
  bytes: Uint8Array,
): Promise<Result<HandshakePayload>> {
  const decoded = decodeOuter(bytes);
  if (!decoded.ok) return decoded;
  const identity = await decodeIdentity(crypto, decoded.value.identity);
  return identity.ok ? ok({ identity: identity.value, extensions: decoded.value.extensions }) : identity;
}

function decodeOuter(bytes: Uint8Array): Result<{ identity: Uint8Array; extensions: Extensions }> {
  const decoded = decodeWith(bytes, handshakePayloadSchema, LIMITS);
  if (!decoded.ok) return decoded;
  if (!equalBytes(encodeCanonical(decoded.value), bytes))
    return err("LOFT_ERR_MALFORMED", "handshake payload is not canonical MessagePack");
  const extensions: Record<string, Uint8Array> = {};
  for (const [name, value] of Object.entries(decoded.value.ext ?? {})) extensions[name] = value.slice();
  return ok({ identity: decoded.value.identity, extensions });
}
