/**
 * Domain-separated Ed25519 signatures with the identity key (SREMP §identity, §rendezvous, §relay;
 * Ed25519 per RFC 8032 through the crypto provider, core/crypto/provider.ts — native where the
 * platform has it — verified in strict mode: canonical encodings only, small-order keys refused).
 *
 * SREMP signs "the serialized data". Loft's documented decision (docs/protocol/identity.md,
 * "Signed bytes"): every signature made with an identity key covers
 *
 *     context (ASCII, no NUL) ‖ 0x00 ‖ payload
 *
 * where the context names what is signed. Contexts never contain NUL, so the first NUL ends the
 * context and no two contexts can produce the same signed bytes: a signature over an identity can
 * never be replayed as a REGISTER request, a signaling envelope, or anything a later module signs.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { abytes, concatBytes, utf8 } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/provider.ts";

/** The contexts core/ uses; modules may add their own (ASCII, no NUL, start with "loft/"). */
export const SIGNATURE_CONTEXTS = {
  identity: "loft/sremp/identity/v1",
  application: "loft/sremp/application/v1",
  registerRequest: "loft/sremp/register-request/v1",
  relayRegister: "loft/sremp/relay-register/v1",
  retrieveMessages: "loft/sremp/retrieve-messages/v1",
  deliveryConfirmation: "loft/sremp/delivery-confirmation/v1",
  storeMessage: "loft/sremp/store-message/v1",
} as const;

const CONTEXT_PATTERN = /^loft\/[\x21-\x7e]{1,120}$/;

/** The exact bytes an identity key signs: `context ‖ 0x00 ‖ payload`. */
export function signedBytes(context: string, payload: Uint8Array): Uint8Array {
  if (!CONTEXT_PATTERN.test(context)) throw new RangeError(`signature context ${JSON.stringify(context)}`);
  abytes(payload, undefined, "payload");
  return concatBytes(utf8(context), new Uint8Array([0]), payload);
}

/**
 * Ed25519-sign `context ‖ 0x00 ‖ payload` (RFC 8032 §5.1.6) with `crypto`'s Ed25519 (native in
 * WebCrypto and node:crypto, core/crypto/provider.ts).
 */
export async function signWithContext(
  crypto: CryptoProvider,
  privateIdentityKey: Uint8Array,
  context: string,
  payload: Uint8Array,
): Promise<Uint8Array> {
  abytes(privateIdentityKey, 32, "privateIdentityKey");
  return crypto.ed25519.sign(privateIdentityKey, signedBytes(context, payload));
}

/**
 * `signWithContext` with noble, synchronously, for the generators that stay synchronous: identity
 * creation and update (core/identity/identity.ts) and prekey generation (core/prekey/store.ts) —
 * rare, off the message path (docs/decisions.md, "Identity signatures on the provider"). Ed25519
 * signing is deterministic (RFC 8032 §5.1.6), so the bytes are those of every backend.
 */
export function signWithContextNoble(
  privateIdentityKey: Uint8Array,
  context: string,
  payload: Uint8Array,
): Uint8Array {
  abytes(privateIdentityKey, 32, "privateIdentityKey");
  return ed25519.sign(signedBytes(context, payload), privateIdentityKey);
}

/**
 * Verify a signature over `context ‖ 0x00 ‖ payload` with `crypto`'s Ed25519 (RFC 8032 §5.1.7,
 * strict in every backend: non-canonical R/A, S ≥ L and small-order keys fail —
 * core/crypto/ed25519-strict.ts). Never throws for any input: received data goes here.
 */
export async function verifyWithContext(
  crypto: CryptoProvider,
  identityKey: Uint8Array,
  context: string,
  payload: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (!(identityKey instanceof Uint8Array) || identityKey.length !== 32) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (!(payload instanceof Uint8Array)) return false;
  let signed: Uint8Array;
  try {
    signed = signedBytes(context, payload);
  } catch {
    return false;
  }
  return crypto.ed25519.verify(identityKey, signed, signature);
}
