/**
 * Ed25519 (RFC 8032) on node:crypto (OpenSSL), shared by the relay (command signatures,
 * relay-ws/verifier.ts) and signaling (REGISTER and envelope signatures, signaling/register-check.ts):
 * about 10× noble's pure-JS verification on this machine (docs/decisions.md (Relay), "node:crypto
 * on the relay's hot path"). relay-ws/node-crypto.test.ts checks it against noble.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";

/**
 * An Ed25519 public key as an OpenSSL KeyObject, or undefined for bytes OpenSSL refuses. Imported
 * as a JWK: OpenSSL 3 builds it from the raw bytes directly, about 10× cheaper than decoding the
 * equivalent SPKI DER through its decoder framework (it is on the path of every command whose key
 * is not cached, relay-ws/verifier.ts).
 */
export function ed25519PublicKey(raw: Uint8Array): KeyObject | undefined {
  if (raw.length !== 32) return undefined;
  try {
    return createPublicKey({
      key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(raw).toString("base64url") },
      format: "jwk",
    });
  } catch {
    return undefined;
  }
}

/** Verify an Ed25519 signature; never throws. */
export function ed25519Verify(key: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/**
 * A key nobody holds, verified against when a command names an unknown queue, so that an unknown
 * id and a bad signature cost the same work (SMP §"Error responses": "verify … using any dummy key").
 */
export function dummyVerifier(): KeyObject {
  const { publicKey } = generateKeyPairSync("ed25519");
  return publicKey;
}

/** For tools (bench/relay.ts): an OpenSSL Ed25519 signer for a 32-byte secret key (seed). */
export function ed25519Signer(seed: Uint8Array): (message: Uint8Array) => Uint8Array {
  const key = createPrivateKey({
    key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
    format: "der",
    type: "pkcs8",
  });
  return (message) => new Uint8Array(sign(null, message, key));
}
