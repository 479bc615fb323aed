/**
 * The crypto functions of `Noise_*_25519_ChaChaPoly_BLAKE2s` and of the `MLKEM768` KEM used by our
 * `hfs` handshake — Noise Protocol Framework rev 34, §4 (function signatures) and §12 (the 25519,
 * ChaChaPoly and BLAKE2s instantiations), https://noiseprotocol.org/noise.html, and the Noise HFS
 * extension rev 1, §3 (KEM functions), https://github.com/noiseprotocol/noise_hfs_spec.
 *
 * Every primitive comes from the crypto provider the caller passes (core/crypto/provider.ts;
 * noble by default); this file only adapts them to the shapes Noise names (`DH`, `ENCRYPT`,
 * `DECRYPT`, `REKEY`, `HASH`, `HKDF`, `GENERATE_KEM_*`, `KEM`); what differs between the cipher
 * suites (the AEAD, its nonce encoding, the hash) is in suite.ts. All of them are async, like the
 * provider (docs/decisions.md, "Cryptography: one async provider, carried explicitly").
 */
import { abytes } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { Aead, CryptoProvider } from "../crypto/provider.ts";
import { CHACHAPOLY_BLAKE2S, type NoiseSuite } from "./suite.ts";

/** Noise §12.1: X25519 public keys and DH outputs are 32 bytes. */
export const DHLEN = 32;
/** Noise §12.7: BLAKE2s output length. */
export const HASHLEN = 32;
/** Noise §4.2: cipher keys are 32 bytes. */
export const KEYLEN = 32;
/** Noise §4.2 / §12.3: ChaChaPoly authentication tag. */
export const TAGLEN = 16;
/** Noise §3: every Noise message (handshake or transport) is at most 65535 bytes. */
export const MAX_MESSAGE_LEN = 65535;

/** FIPS 203 Table 3, ML-KEM-768: encapsulation key, ciphertext and shared-secret sizes. */
export const KEM_PUBLIC_KEY_LEN = 1184;
export const KEM_CIPHERTEXT_LEN = 1088;
export const KEM_OUTPUT_LEN = 32;
/** ML-KEM-768 deterministic key generation seed (d ‖ z, FIPS 203 §7.1) and encapsulation randomness m. */
export const KEM_SEED_LEN = 64;
export const KEM_ENCAPSULATION_RANDOMNESS_LEN = 32;

export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** Noise §12.1 `GENERATE_KEYPAIR()` from given private bytes (vectors inject them). */
export async function keyPairFromPrivate(
  privateKey: Uint8Array,
  crypto: CryptoProvider = nobleCrypto,
): Promise<KeyPair> {
  abytes(privateKey, DHLEN, "x25519 private key");
  const owned = privateKey.slice();
  try {
    return { privateKey: owned, publicKey: await crypto.x25519.publicKey(owned) };
  } catch (e) {
    // A provider exception: no key pair is returned, so no one else would wipe the copy.
    crypto.x25519.forget?.(owned);
    owned.fill(0);
    throw e;
  }
}

/** Noise §12.1 `GENERATE_KEYPAIR()`. */
export async function generateKeyPair(crypto: CryptoProvider = nobleCrypto): Promise<KeyPair> {
  const privateKey = crypto.randomBytes(DHLEN);
  return { privateKey, publicKey: await crypto.x25519.publicKey(privateKey) };
}

/**
 * Noise §12.1 `DH(key_pair, public_key)`. Every backend refuses a low-order point (an all-zero
 * output); §12.1 allows signalling an error for them, so this gives `undefined` and the handshake
 * turns it into a typed error.
 */
export function dh(crypto: CryptoProvider, privateKey: Uint8Array, publicKey: Uint8Array) {
  return crypto.x25519.sharedSecret(privateKey, publicKey);
}

/** The nonce of n = 2^64-1: all ones, so the same bytes in either suite's byte order (suite.ts). */
const MAX_NONCE = new Uint8Array([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const EMPTY = new Uint8Array(0);

/**
 * Noise §4.2 `REKEY(k)`, the default: the first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, zeros).
 */
export async function rekey(aead: Aead, key: Uint8Array): Promise<Uint8Array> {
  const out = await aead.seal(key, MAX_NONCE, EMPTY, new Uint8Array(KEYLEN));
  const next = out.slice(0, KEYLEN);
  out.fill(0);
  return next;
}

const ONE = new Uint8Array([1]);

/**
 * Noise §4.3 `HKDF(chaining_key, input_key_material, num_outputs)` with the suite's HMAC
 * (HMAC-BLAKE2s or HMAC-SHA256):
 *   temp_key = HMAC(ck, ikm); out1 = HMAC(temp_key, 0x01); out2 = HMAC(temp_key, out1 ‖ 0x02);
 *   out3 = HMAC(temp_key, out2 ‖ 0x03).
 * Returns `numOutputs` (1..3) outputs of HASHLEN bytes; the temporary key is wiped.
 */
export async function hkdf(
  crypto: CryptoProvider,
  chainingKey: Uint8Array,
  inputKeyMaterial: Uint8Array,
  numOutputs: 1 | 2 | 3,
  suite: NoiseSuite = CHACHAPOLY_BLAKE2S,
): Promise<Uint8Array[]> {
  const tempKey = await suite.hmac(crypto, chainingKey, inputKeyMaterial);
  const outputs: Uint8Array[] = [];
  try {
    outputs.push(await suite.hmac(crypto, tempKey, ONE));
    for (let i = 2; i <= numOutputs; i++)
      outputs.push(await suite.hmac(crypto, tempKey, outputs[i - 2]!, new Uint8Array([i])));
    return outputs;
  } catch (e) {
    // A provider exception part-way: the outputs made so far are returned to no one.
    for (const o of outputs) o.fill(0);
    throw e;
  } finally {
    tempKey.fill(0);
  }
}

export interface KemKeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

/** HFS §3 `GENERATE_KEM_KEYPAIR()` for ML-KEM-768, deterministic from a 64-byte seed (FIPS 203 §7.1). */
export function kemKeyPairFromSeed(crypto: CryptoProvider, seed: Uint8Array): Promise<KemKeyPair> {
  abytes(seed, KEM_SEED_LEN, "ML-KEM-768 seed");
  return crypto.mlkem768.keyPairFromSeed(seed);
}

/**
 * HFS §3 `GENERATE_KEM_CIPHERTEXT(public_key)` with the 32-byte randomness `m` (FIPS 203 §7.2).
 * `undefined` when the public key fails the FIPS 203 §7.2 encapsulation-key check.
 */
export async function kemEncapsulate(
  crypto: CryptoProvider,
  publicKey: Uint8Array,
  randomness: Uint8Array,
): Promise<{ ciphertext: Uint8Array; output: Uint8Array } | undefined> {
  abytes(randomness, KEM_ENCAPSULATION_RANDOMNESS_LEN, "ML-KEM-768 encapsulation randomness");
  const kem = await crypto.mlkem768.encapsulate(publicKey, randomness);
  return kem && { ciphertext: kem.ciphertext, output: kem.sharedSecret };
}

/**
 * HFS §3 `KEM(key_pair, ciphertext)`. ML-KEM decapsulation rejects implicitly (FIPS 203 §6.3):
 * a forged ciphertext yields an unrelated shared secret, which then fails the next AEAD check.
 */
export function kemDecapsulate(
  crypto: CryptoProvider,
  secretKey: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array | undefined> {
  return crypto.mlkem768.decapsulate(secretKey, ciphertext);
}

/**
 * Where handshakes get their randomness. Vectors and tests inject fixed bytes; production uses
 * the platform CSPRNG through the provider (`crypto.getRandomValues` or node:crypto).
 */
export interface NoiseEntropy {
  /** 32 bytes: the private key of the next ephemeral X25519 key pair (`e`). */
  ephemeralPrivateKey(): Uint8Array;
  /** 64 bytes: the seed of the next ephemeral ML-KEM-768 key pair (`e1`). */
  kemKeySeed(): Uint8Array;
  /** 32 bytes: the randomness of the next ML-KEM-768 encapsulation (`ekem1`). */
  kemEncapsulationRandomness(): Uint8Array;
}

/** Entropy from a provider's CSPRNG. */
export function providerEntropy(crypto: CryptoProvider): NoiseEntropy {
  return {
    ephemeralPrivateKey: () => crypto.randomBytes(DHLEN),
    kemKeySeed: () => crypto.randomBytes(KEM_SEED_LEN),
    kemEncapsulationRandomness: () => crypto.randomBytes(KEM_ENCAPSULATION_RANDOMNESS_LEN),
  };
}

export const systemEntropy: NoiseEntropy = providerEntropy(nobleCrypto);
