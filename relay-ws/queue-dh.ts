/**
 * The relay's half of a queue's server→recipient key at NEW (docs/protocol/relay.md §Keys), on
 * node:crypto: a fresh X25519 key pair (RFC 7748) and HKDF-SHA256 (RFC 5869) exactly as
 * `deriveRcvKey` in core/relay/crypto.ts computes them with noble — about 10× faster than pure JS,
 * which made NEW the costliest command on the relay's one thread (issue #17).
 * relay-ws/queue-dh.test.ts checks it against core byte for byte.
 *
 * The relay's X25519 secret lives only in an OpenSSL key object, dropped on return; OpenSSL
 * clears it when the object is freed (nothing of it is ever copied into JS memory).
 */
import { createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync } from "node:crypto";
import { RCV_SALT } from "../core/relay/crypto.ts";
import { KEY_LENGTH } from "../core/relay/protocol.ts";

export interface QueueDh {
  /** The relay's X25519 public key for this queue (sent in IDS). */
  publicKey: Uint8Array;
  /** HKDF-SHA256(X25519(relay secret, recipient public), RCV_SALT, recipient id). */
  rcvKey: Uint8Array;
}

/**
 * A fresh relay key pair and the rcv key shared with `theirPublic`, or undefined when their key
 * is refused or of low order (an all-zero shared secret, RFC 7748 §6.1).
 */
export function queueDh(theirPublic: Uint8Array, recipientId: Uint8Array): QueueDh | undefined {
  if (theirPublic.length !== KEY_LENGTH) return undefined;
  const ours = generateKeyPairSync("x25519");
  let shared: Buffer;
  try {
    // JWK import: far cheaper than SPKI DER on OpenSSL 3 (see ed25519PublicKey in host/node-ed25519.ts).
    const theirs = createPublicKey({
      key: { kty: "OKP", crv: "X25519", x: Buffer.from(theirPublic).toString("base64url") },
      format: "jwk",
    });
    shared = diffieHellman({ privateKey: ours.privateKey, publicKey: theirs });
  } catch {
    return undefined;
  }
  let zero = 0;
  for (const b of shared) zero |= b;
  if (zero === 0) return undefined;
  const rcvKey = new Uint8Array(hkdfSync("sha256", shared, RCV_SALT, recipientId, KEY_LENGTH));
  shared.fill(0);
  const jwk = ours.publicKey.export({ format: "jwk" });
  return { publicKey: new Uint8Array(Buffer.from(jwk.x ?? "", "base64url")), rcvKey };
}
