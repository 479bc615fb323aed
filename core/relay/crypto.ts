/**
 * Per-queue keys and the server→recipient encryption layer of the relay mailbox
 * (docs/protocol/relay.md §Keys, §Server→recipient layer).
 *
 * SMP §"Deliver queue message" has the server re-encrypt every delivered body with a secret from
 * DH(server per-queue key, recipient DH key) and the message id as nonce, so that what enters the
 * relay and what leaves it cannot be matched byte for byte. SMP uses NaCl crypto_box; we use
 * X25519 → HKDF-SHA256 → XChaCha20-Poly1305 (24-byte message id as the extended nonce) from noble.
 * Command signatures are Ed25519 (RFC 8032) over `AUTH_DOMAIN ‖ sessionId ‖ command`.
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { abytes, utf8, wipe } from "../bytes.ts";
import { err, ok, type Result } from "../errors.ts";
import {
  authInput,
  BLOCK_SIZE,
  ID_LENGTH,
  KEY_LENGTH,
  RCV_CIPHERTEXT_LENGTH,
  RCV_PLAINTEXT_LENGTH,
  SESSION_ID_LENGTH,
  unpadBlock,
} from "./protocol.ts";

/** HKDF salt of the server→recipient key (exported for the relay's native derivation, relay-ws/queue-dh.ts). */
export const RCV_SALT = utf8("loft-relay/1 rcv");

export interface KeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

/** A fresh Ed25519 key pair (recipient or sender auth key of one queue; never reused). */
export function newAuthKeyPair(): KeyPair {
  const secretKey = ed25519.utils.randomSecretKey();
  return { secretKey, publicKey: ed25519.getPublicKey(secretKey) };
}

/** The Ed25519 public key of an auth secret key. */
export const authPublicKey = (secretKey: Uint8Array): Uint8Array => ed25519.getPublicKey(secretKey);

/** A fresh X25519 key pair (recipient DH key of one queue, or the relay's per-queue key). */
export function newDhKeyPair(): KeyPair {
  const secretKey = x25519.utils.randomSecretKey();
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

/**
 * The per-queue server→recipient key: HKDF-SHA256(ikm = X25519(ours, theirs),
 * salt = "loft-relay/1 rcv", info = recipient id), 32 bytes. Both sides compute the same value.
 * Returns a typed error for a low-order public key (all-zero shared secret).
 */
export function deriveRcvKey(
  ourDhSecret: Uint8Array,
  theirDhPublic: Uint8Array,
  recipientId: Uint8Array,
): Result<Uint8Array> {
  abytes(ourDhSecret, KEY_LENGTH, "ourDhSecret");
  abytes(theirDhPublic, KEY_LENGTH, "theirDhPublic");
  abytes(recipientId, ID_LENGTH, "recipientId");
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(ourDhSecret, theirDhPublic);
  } catch {
    return err("LOFT_ERR_DECRYPT", "invalid DH public key");
  }
  const key = hkdf(sha256, shared, RCV_SALT, recipientId, KEY_LENGTH);
  wipe(shared);
  return ok(key);
}

/** `u64be(seconds) ‖ block`: the server→recipient plaintext. */
export function rcvPlaintext(timestampSeconds: number, block: Uint8Array): Uint8Array {
  abytes(block, BLOCK_SIZE, "block");
  const out = new Uint8Array(RCV_PLAINTEXT_LENGTH);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(Math.max(0, Math.floor(timestampSeconds))), false);
  out.set(block, 8);
  return out;
}

/** Relay side (reference implementation; relay-ws has a faster equivalent): encrypt one delivery. */
export function sealForRecipient(
  rcvKey: Uint8Array,
  msgId: Uint8Array,
  timestampSeconds: number,
  block: Uint8Array,
): Uint8Array {
  abytes(rcvKey, KEY_LENGTH, "rcvKey");
  abytes(msgId, ID_LENGTH, "msgId");
  const plain = rcvPlaintext(timestampSeconds, block);
  const out = xchacha20poly1305(rcvKey, msgId).encrypt(plain);
  wipe(plain);
  return out;
}

export interface OpenedMessage {
  /** When the relay accepted the message, in seconds since the epoch. */
  timestamp: number;
  body: Uint8Array;
}

/** Recipient side: decrypt and unpad one delivered message. */
export function openFromRelay(
  rcvKey: Uint8Array,
  msgId: Uint8Array,
  ciphertext: Uint8Array,
): Result<OpenedMessage> {
  abytes(rcvKey, KEY_LENGTH, "rcvKey");
  if (msgId.length !== ID_LENGTH) return err("LOFT_ERR_DECRYPT", "message id length");
  if (ciphertext.length !== RCV_CIPHERTEXT_LENGTH) return err("LOFT_ERR_DECRYPT", "ciphertext length");
  let plain: Uint8Array;
  try {
    plain = xchacha20poly1305(rcvKey, msgId).decrypt(ciphertext);
  } catch {
    return err("LOFT_ERR_DECRYPT", "server→recipient layer does not authenticate");
  }
  const view = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  const timestamp = Number(view.getBigUint64(0, false));
  const body = unpadBlock(plain.subarray(8));
  wipe(plain);
  if (!body.ok) return body;
  return ok({ timestamp, body: body.value });
}

/** Sign a command for this connection. */
export function signCommand(
  secretKey: Uint8Array,
  sessionId: Uint8Array,
  transmission: Uint8Array,
): Uint8Array {
  abytes(sessionId, SESSION_ID_LENGTH, "sessionId");
  return ed25519.sign(authInput(sessionId, transmission), secretKey);
}

/** Reference verification (the relay uses node:crypto for speed; both follow RFC 8032). */
export function verifyCommand(
  publicKey: Uint8Array,
  sessionId: Uint8Array,
  transmission: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    return ed25519.verify(signature, authInput(sessionId, transmission), publicKey, { zip215: false });
  } catch {
    return false;
  }
}

export const RCV_CIPHERTEXT_BYTES = RCV_CIPHERTEXT_LENGTH;
