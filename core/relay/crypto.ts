/**
 * Per-queue keys and the server→recipient encryption layer of the relay mailbox
 * (docs/protocol/relay.md §Keys, §Server→recipient layer).
 *
 * SMP §"Deliver queue message" has the server re-encrypt every delivered body with a secret from
 * DH(server per-queue key, recipient DH key) and the message id as nonce, so that what enters the
 * relay and what leaves it cannot be matched byte for byte. SMP uses NaCl crypto_box; we use
 * X25519 → HKDF-SHA256 → XChaCha20-Poly1305 (24-byte message id as the extended nonce) from noble.
 * Command signatures (protocol 1.0) are Ed25519 (RFC 8032) over `AUTH_DOMAIN ‖ sessionId ‖ command`;
 * command authenticators (protocol 1.1, SMP §"Deniable client authentication scheme" on our
 * primitives) are HMAC-SHA256 under a key agreed once per queue per connection by X25519 between
 * the queue's key (its Ed25519 key in Montgomery form) and the relay's per-connection key, through
 * the CryptoProvider (docs/protocol/relay.md §Command authorization).
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { bytesToNumberLE, numberToBytesLE } from "@noble/curves/utils.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { abytes, concatBytes, utf8, wipe } from "../bytes.ts";
import { type Aead, type CryptoProvider, type KeyedHmac, keyedHmacSha256 } from "../crypto/provider.ts";
import { err, ok, type Result } from "../errors.ts";
import {
  AUTH_KEY_INFO,
  authInput,
  deliveryBucket,
  ID_LENGTH,
  isDeliveryLength,
  KEY_LENGTH,
  RCV_CIPHERTEXT_LENGTH,
  type RelayDeliveryPadding,
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

/**
 * `u64be(seconds) ‖ block`: the server→recipient plaintext. `block` is the 16 KiB block (1.0, 1.1)
 * or, under 1.2, the body padded to its bucket (docs/protocol/relay.md §Padding).
 */
export function rcvPlaintext(timestampSeconds: number, block: Uint8Array): Uint8Array {
  if (!isDeliveryLength(8 + block.length + 16)) throw new RangeError(`block of ${block.length} bytes`);
  const out = new Uint8Array(8 + block.length);
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

/**
 * Recipient side: decrypt and unpad one delivered message. `padding` is what the connection's
 * version says (docs/protocol/relay.md §Versions): "block" (1.0, 1.1) takes only 16 KiB blocks;
 * "bucket" (1.2) only the body's own bucket (`deliveryBucket`), so a delivery has one valid form.
 */
export function openFromRelay(
  rcvKey: Uint8Array,
  msgId: Uint8Array,
  ciphertext: Uint8Array,
  padding: RelayDeliveryPadding = "block",
): Result<OpenedMessage> {
  const bad = deliveryRefusal(rcvKey, msgId, ciphertext, padding);
  if (bad) return bad;
  let plain: Uint8Array;
  try {
    plain = xchacha20poly1305(rcvKey, msgId).decrypt(ciphertext);
  } catch {
    return err("LOFT_ERR_DECRYPT", "server→recipient layer does not authenticate");
  }
  return readDelivery(plain, padding);
}

/**
 * `openFromRelay` with the XChaCha20-Poly1305 of `aead` — a provider's, native where it has one
 * (host/crypto-node.ts: node:crypto's ChaCha20-Poly1305 under the HChaCha subkey) — instead of
 * noble's in JavaScript: a relay path's every 16 KiB delivery is opened, and in JavaScript that
 * was ~10 ms of CPU per MiB received (bench/README.md §bench:proxy, the relay path). The same
 * checks, the same answers (docs/protocol/relay.md §Server→recipient layer, aad = "").
 */
export async function openFromRelayWith(
  aead: Aead,
  rcvKey: Uint8Array,
  msgId: Uint8Array,
  ciphertext: Uint8Array,
  padding: RelayDeliveryPadding = "block",
): Promise<Result<OpenedMessage>> {
  const bad = deliveryRefusal(rcvKey, msgId, ciphertext, padding);
  if (bad) return bad;
  let plain: Uint8Array | undefined;
  try {
    plain = await aead.open(rcvKey, msgId, EMPTY_AD, ciphertext);
  } catch {
    plain = undefined;
  }
  if (!plain) return err("LOFT_ERR_DECRYPT", "server→recipient layer does not authenticate");
  return readDelivery(plain, padding);
}

const EMPTY_AD = new Uint8Array(0);

/** What is refused before decrypting: a wrong-sized id, or a length no delivery of this version has. */
function deliveryRefusal(
  rcvKey: Uint8Array,
  msgId: Uint8Array,
  ciphertext: Uint8Array,
  padding: RelayDeliveryPadding,
): Result<never> | undefined {
  abytes(rcvKey, KEY_LENGTH, "rcvKey");
  if (msgId.length !== ID_LENGTH) return err("LOFT_ERR_DECRYPT", "message id length");
  if (!isDeliveryLength(ciphertext.length, padding === "bucket"))
    return err("LOFT_ERR_DECRYPT", "ciphertext length");
  return undefined;
}

/** The timestamp and body of a decrypted delivery (`plain` is wiped). */
function readDelivery(plain: Uint8Array, padding: RelayDeliveryPadding): Result<OpenedMessage> {
  const view = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  const timestamp = Number(view.getBigUint64(0, false));
  const block = plain.subarray(8);
  const body = unpadBlock(block, block.length);
  wipe(plain);
  if (!body.ok) return body;
  // 1.2: the bucket is the body's own, never a larger one (one valid form per delivery).
  if (padding === "bucket" && block.length !== deliveryBucket(body.value.length))
    return err("LOFT_ERR_PADDING", `a ${body.value.length}-byte body in a ${block.length}-byte bucket`);
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

// ---------------------------------------------------------------------------------------------
// Command authenticators (protocol 1.1)

/**
 * The X25519 private key of an Ed25519 auth key: the first 32 bytes of SHA-512(seed), the scalar
 * Ed25519 itself derives (RFC 8032 §5.1.5; X25519 clamps it, RFC 7748 §5). Its public key is the
 * Montgomery form of the Ed25519 public key, so the relay needs no new key per queue and every
 * queue created under 1.0 is usable under 1.1 (docs/decisions.md (Relay), "Per-connection
 * authenticators").
 */
export async function authDhSecret(crypto: CryptoProvider, authSecret: Uint8Array): Promise<Uint8Array> {
  abytes(authSecret, KEY_LENGTH, "authSecret");
  const h = await crypto.sha512(authSecret);
  const scalar = h.slice(0, 32);
  wipe(h);
  return scalar;
}

const Fp = ed25519.Point.Fp;

/**
 * The Montgomery u-coordinate of an Ed25519 public key, u = (1 + y) / (1 − y) mod p (RFC 7748 §4.1),
 * from its y alone (the low 255 bits, little-endian; RFC 8032 §5.1.2): undefined when y ≥ p (not
 * canonical) or y = 1 (no u). The point is not decompressed — that square root cost the relay ~10×
 * the inversion, on every first command naming a queue — so bytes whose y is on no Edwards point
 * still give a u; X25519 is safe on any u (the curve or its twist, RFC 7748 §7), the relay's DH
 * with it is fresh per connection, and a client gains nothing by it: the authenticator still needs
 * the discrete logarithm of u. For every valid key this equals `ed25519.utils.toMontgomery`.
 */
export function authDhPublic(authPublic: Uint8Array): Uint8Array | undefined {
  if (authPublic.length !== KEY_LENGTH) return undefined;
  // A copy (a Node Buffer's slice would be a view, and the sign bit is cleared below).
  const le = Uint8Array.from(authPublic);
  le[31]! &= 0x7f;
  const y = bytesToNumberLE(le);
  if (y >= Fp.ORDER || y === 1n) return undefined;
  return numberToBytesLE(Fp.mul(Fp.add(1n, y), Fp.inv(Fp.sub(1n, y))), KEY_LENGTH);
}

/** HKDF info of the authentication key: `"loft-relay/1.1 auth" ‖ relay key X (32) ‖ queue key (32)`. */
export function authKeyInfo(relayKey: Uint8Array, authPublic: Uint8Array): Uint8Array {
  return concatBytes(AUTH_KEY_INFO, relayKey, authPublic);
}

/**
 * Client side: the key authenticating one queue's commands on one connection,
 * HKDF-SHA256(ikm = X25519(authDhSecret(seed), X), salt = session id, info = authKeyInfo(X, queue key)),
 * 32 bytes. A relay key of low order (all-zero DH) is a typed error.
 */
export async function deriveAuthKey(
  crypto: CryptoProvider,
  authSecret: Uint8Array,
  authPublic: Uint8Array,
  relayKey: Uint8Array,
  sessionId: Uint8Array,
): Promise<Result<Uint8Array>> {
  abytes(relayKey, KEY_LENGTH, "relayKey");
  abytes(sessionId, SESSION_ID_LENGTH, "sessionId");
  const scalar = await authDhSecret(crypto, authSecret);
  const shared = await crypto.x25519.sharedSecret(scalar, relayKey);
  wipe(scalar);
  if (!shared) return err("LOFT_ERR_RELAY_UNEXPECTED", "the relay's connection key is of low order");
  const key = await crypto.hkdfSha256(shared, sessionId, authKeyInfo(relayKey, authPublic), KEY_LENGTH);
  wipe(shared);
  return ok(key);
}

/** `a = HMAC-SHA256(authKey, t)`: the authenticator of one encoded command. */
export function authenticateCommand(
  crypto: CryptoProvider,
  authKey: Uint8Array,
  transmission: Uint8Array,
): Promise<Uint8Array> {
  abytes(authKey, KEY_LENGTH, "authKey");
  return crypto.hmacSha256(authKey, transmission);
}

/**
 * The same authenticator as `authenticateCommand`, from a handle that imported `authKey` once
 * (provider.ts `KeyedHmac`): a connection's authentication key signs every command of its queue,
 * so the relay client keeps the handle, not the key bytes, for the connection's life.
 */
export function commandAuthenticator(crypto: CryptoProvider, authKey: Uint8Array): Promise<KeyedHmac> {
  abytes(authKey, KEY_LENGTH, "authKey");
  return keyedHmacSha256(crypto, authKey);
}

export const RCV_CIPHERTEXT_BYTES = RCV_CIPHERTEXT_LENGTH;
