/**
 * The key-derivation functions of Loft's Double Ratchet, instantiating the functions the Signal
 * Double Ratchet specification leaves abstract (revision 1, 2016-11-20, https://signal.org/docs/specifications/doubleratchet/ — section
 * numbers are those of revision 1 throughout core/ratchet — §5.2 "Recommended cryptographic algorithms" and §4.2 for the header-encryption variant `KDF_RK_HE`).
 *
 * Every primitive comes from the crypto provider passed in (core/crypto/provider.ts), so every
 * function here is async.
 *
 * Hash: SHA-256 everywhere (§5.2 allows SHA-256 or SHA-512; SHA-256 is faster in JavaScript and
 * 256-bit keys are all we need). Every constant here is part of the protocol; docs/protocol/ratchet.md
 * lists them byte by byte.
 */
import { abytes, allOrWipe, utf8, wipe } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/provider.ts";

/** Key, chain-key, header-key and DH-output length (X25519, SHA-256). */
export const KEY_LEN = 32;

/** HKDF info of `KDF_RK_HE` (§4.2, §5.2): root key ratchet step. */
export const INFO_ROOT = utf8("LoftDoubleRatchet/v1/root");
/** HKDF info used to split a bootstrap secret into SK, HKa and NHKb (DR §4 initialisation). */
export const INFO_BOOTSTRAP = utf8("LoftDoubleRatchet/v1/bootstrap");

const CK_MESSAGE = new Uint8Array([0x01]);
const CK_CHAIN = new Uint8Array([0x02]);

export interface RootStep {
  readonly rootKey: Uint8Array;
  readonly chainKey: Uint8Array;
  readonly nextHeaderKey: Uint8Array;
}

/**
 * Signal DR §4.2 `KDF_RK_HE(rk, dh_out)` with the §5.2 recommendation: HKDF-SHA-256 with
 * salt = rk, IKM = dh_out, info = "LoftDoubleRatchet/v1/root", 96 bytes of output split as
 * new root key ‖ chain key ‖ next header key.
 */
export async function kdfRoot(
  crypto: CryptoProvider,
  rootKey: Uint8Array,
  dhOut: Uint8Array,
): Promise<RootStep> {
  abytes(rootKey, KEY_LEN, "root key");
  abytes(dhOut, KEY_LEN, "dh output");
  const okm = await crypto.hkdfSha256(dhOut, rootKey, INFO_ROOT, 3 * KEY_LEN);
  const step = {
    rootKey: okm.slice(0, KEY_LEN),
    chainKey: okm.slice(KEY_LEN, 2 * KEY_LEN),
    nextHeaderKey: okm.slice(2 * KEY_LEN),
  };
  okm.fill(0);
  return step;
}

export interface ChainStep {
  readonly chainKey: Uint8Array;
  readonly messageKey: Uint8Array;
}

/**
 * Signal DR §5.2 `KDF_CK(ck)`: message key = HMAC-SHA-256(ck, 0x01), next chain key =
 * HMAC-SHA-256(ck, 0x02).
 */
export async function kdfChain(crypto: CryptoProvider, chainKey: Uint8Array): Promise<ChainStep> {
  abytes(chainKey, KEY_LEN, "chain key");
  // A provider exception in one HMAC: the other's key is wiped, not returned (allOrWipe).
  const [messageKey, nextChainKey] = await allOrWipe(
    [crypto.hmacSha256(chainKey, CK_MESSAGE), wipe],
    [crypto.hmacSha256(chainKey, CK_CHAIN), wipe],
  );
  return { chainKey: nextChainKey, messageKey };
}

export interface BootstrapKeys {
  /** SK: the shared secret the ratchet's root key starts from (DR §3.3). */
  readonly sharedSecret: Uint8Array;
  /** shared_hka: Alice's first sending header key = Bob's first next-receiving header key (DR §4.4). */
  readonly sharedHeaderKeyA: Uint8Array;
  /** shared_nhkb: Bob's first next-sending header key = Alice's first next-receiving header key. */
  readonly sharedNextHeaderKeyB: Uint8Array;
}

/**
 * Split one 32-byte agreed secret (a Noise export or the PQXDH output) into the three values
 * DR §4.4 initialisation needs: HKDF-SHA-256(salt = 32 zero bytes, IKM = secret,
 * info = "LoftDoubleRatchet/v1/bootstrap", 96 bytes) = SK ‖ shared_hka ‖ shared_nhkb.
 */
export async function splitBootstrapSecret(
  crypto: CryptoProvider,
  secret: Uint8Array,
): Promise<BootstrapKeys> {
  abytes(secret, KEY_LEN, "bootstrap secret");
  const okm = await crypto.hkdfSha256(secret, new Uint8Array(KEY_LEN), INFO_BOOTSTRAP, 3 * KEY_LEN);
  const keys = {
    sharedSecret: okm.slice(0, KEY_LEN),
    sharedHeaderKeyA: okm.slice(KEY_LEN, 2 * KEY_LEN),
    sharedNextHeaderKeyB: okm.slice(2 * KEY_LEN),
  };
  okm.fill(0);
  return keys;
}

/**
 * Signal DR §5.2 `DH(dh_pair, dh_pub)`: X25519. Every backend refuses low-order public keys (an
 * all-zero output); a peer-supplied key is input, so that comes back as `undefined`, never a throw.
 */
export function dh(
  crypto: CryptoProvider,
  secretKey: Uint8Array,
  publicKey: Uint8Array,
): Promise<Uint8Array | undefined> {
  return crypto.x25519.sharedSecret(secretKey, publicKey);
}

/** X25519 public key of a 32-byte secret (clamped by X25519 itself, RFC 7748 §5). */
export function dhPublicKey(crypto: CryptoProvider, secretKey: Uint8Array): Promise<Uint8Array> {
  abytes(secretKey, KEY_LEN, "x25519 secret key");
  return crypto.x25519.publicKey(secretKey);
}
