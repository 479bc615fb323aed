/**
 * Domain-separated Ed25519 signatures with the identity key (SREMP §identity, §rendezvous, §relay;
 * Ed25519 per RFC 8032 via @noble/curves, verified in strict mode: canonical encodings only,
 * small-order keys refused).
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

/** Ed25519-sign `context ‖ 0x00 ‖ payload` (RFC 8032 §5.1.6). */
export function signWithContext(
  privateIdentityKey: Uint8Array,
  context: string,
  payload: Uint8Array,
): Uint8Array {
  abytes(privateIdentityKey, 32, "privateIdentityKey");
  return ed25519.sign(signedBytes(context, payload), privateIdentityKey);
}

/**
 * Verify a signature over `context ‖ 0x00 ‖ payload` (RFC 8032 §5.1.7, strict: zip215 off, so
 * non-canonical R/A and small-order keys fail). Never throws for any input: received data goes here.
 */
export function verifyWithContext(
  identityKey: Uint8Array,
  context: string,
  payload: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!(identityKey instanceof Uint8Array) || identityKey.length !== 32) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (!(payload instanceof Uint8Array)) return false;
  try {
    return ed25519.verify(signature, signedBytes(context, payload), identityKey, { zip215: false });
  } catch {
    return false;
  }
}
