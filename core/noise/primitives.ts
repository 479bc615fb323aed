/**
 * The crypto functions of `Noise_*_25519_ChaChaPoly_BLAKE2s` and of the `MLKEM768` KEM used by our
 * `hfs` handshake — Noise Protocol Framework rev 34, §4 (function signatures) and §12 (the 25519,
 * ChaChaPoly and BLAKE2s instantiations), https://noiseprotocol.org/noise.html, and the Noise HFS
 * extension rev 1, §3 (KEM functions), https://github.com/noiseprotocol/noise_hfs_spec.
 *
 * Every primitive comes from noble (docs/design.md, "Cryptography"); this file only adapts them to the
 * shapes Noise names (`DH`, `ENCRYPT`, `DECRYPT`, `REKEY`, `HASH`, `HKDF`, `GENERATE_KEM_*`, `KEM`).
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { abytes } from "../bytes.ts";
import { aead } from "./aead.ts";

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
export function keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
  abytes(privateKey, DHLEN, "x25519 private key");
  return { privateKey: privateKey.slice(), publicKey: x25519.getPublicKey(privateKey) };
}

/** Noise §12.1 `GENERATE_KEYPAIR()`. */
export function generateKeyPair(): KeyPair {
  const privateKey = x25519.utils.randomSecretKey();
  return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
}

/**
 * Noise §12.1 `DH(key_pair, public_key)`. noble rejects the low-order points (the inputs whose
 * output would be all zeros); §12.1 allows signalling an error for them, so this returns
 * `undefined` and the handshake turns it into a typed error.
 */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined {
  try {
    return x25519.getSharedSecret(privateKey, publicKey);
  } catch {
    return undefined;
  }
}

/** Noise §12.3: 96-bit nonce = 32 zero bits ‖ 64-bit little-endian n. Written into `out`. */
export function writeNonce(out: Uint8Array, lo: number, hi: number): void {
  out[4] = lo & 0xff;
  out[5] = (lo >>> 8) & 0xff;
  out[6] = (lo >>> 16) & 0xff;
  out[7] = lo >>> 24;
  out[8] = hi & 0xff;
  out[9] = (hi >>> 8) & 0xff;
  out[10] = (hi >>> 16) & 0xff;
  out[11] = hi >>> 24;
}

/**
 * Noise §4.2 `ENCRYPT(k, n, ad, plaintext)` (ChaChaPoly, §12.3; noble, or node:crypto when a Node
 * host installed it — aead.ts). When `output` is given it must
 * be exactly `plaintext.length + TAGLEN` bytes; `plaintext` may be its own prefix (in place).
 */
export function aeadEncrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  plaintext: Uint8Array,
  output?: Uint8Array,
): Uint8Array {
  return aead().seal(key, nonce, ad, plaintext, output);
}

/**
 * Noise §4.2 `DECRYPT(k, n, ad, ciphertext)`; `undefined` on authentication failure. When
 * `output` is given it must be `ciphertext.length - TAGLEN` bytes (it may be the ciphertext's
 * own prefix: noble authenticates first, then decrypts).
 */
export function aeadDecrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  ciphertext: Uint8Array,
  output?: Uint8Array,
): Uint8Array | undefined {
  if (ciphertext.length < TAGLEN) return undefined;
  return aead().open(key, nonce, ad, ciphertext, output);
}

const MAX_NONCE = new Uint8Array([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const EMPTY = new Uint8Array(0);

/**
 * Noise §4.2 `REKEY(k)`, the default: the first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, zeros).
 */
export function rekey(key: Uint8Array): Uint8Array {
  const out = aead().seal(key, MAX_NONCE, EMPTY, new Uint8Array(KEYLEN));
  const next = out.slice(0, KEYLEN);
  out.fill(0);
  return next;
}

/** Noise §4.3 `HASH(a ‖ b)` with BLAKE2s (§12.7), without concatenating. */
export function hash2(a: Uint8Array, b: Uint8Array): Uint8Array {
  return blake2s.create().update(a).update(b).digest();
}

/** Noise §4.3 `HASH(data)`. */
export function hash(data: Uint8Array): Uint8Array {
  return blake2s(data);
}

const ONE = new Uint8Array([1]);

/**
 * Noise §4.3 `HKDF(chaining_key, input_key_material, num_outputs)` with HMAC-BLAKE2s:
 *   temp_key = HMAC(ck, ikm); out1 = HMAC(temp_key, 0x01); out2 = HMAC(temp_key, out1 ‖ 0x02);
 *   out3 = HMAC(temp_key, out2 ‖ 0x03).
 * Returns `numOutputs` (1..3) outputs of HASHLEN bytes; the temporary key is wiped.
 */
export function hkdf(
  chainingKey: Uint8Array,
  inputKeyMaterial: Uint8Array,
  numOutputs: 1 | 2 | 3,
): Uint8Array[] {
  const tempKey = hmac(blake2s, chainingKey, inputKeyMaterial);
  const outputs: Uint8Array[] = [hmac(blake2s, tempKey, ONE)];
  for (let i = 2; i <= numOutputs; i++) {
    const counter = new Uint8Array([i]);
    outputs.push(
      hmac
        .create(blake2s, tempKey)
        .update(outputs[i - 2]!)
        .update(counter)
        .digest(),
    );
  }
  tempKey.fill(0);
  return outputs;
}

export interface KemKeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

/** HFS §3 `GENERATE_KEM_KEYPAIR()` for ML-KEM-768, deterministic from a 64-byte seed (FIPS 203 §7.1). */
export function kemKeyPairFromSeed(seed: Uint8Array): KemKeyPair {
  abytes(seed, KEM_SEED_LEN, "ML-KEM-768 seed");
  const { publicKey, secretKey } = ml_kem768.keygen(seed);
  return { publicKey, secretKey };
}

/**
 * HFS §3 `GENERATE_KEM_CIPHERTEXT(public_key)` with the 32-byte randomness `m` (FIPS 203 §7.2).
 * `undefined` when the public key fails the FIPS 203 §7.2 encapsulation-key check.
 */
export function kemEncapsulate(
  publicKey: Uint8Array,
  randomness: Uint8Array,
): { ciphertext: Uint8Array; output: Uint8Array } | undefined {
  abytes(randomness, KEM_ENCAPSULATION_RANDOMNESS_LEN, "ML-KEM-768 encapsulation randomness");
  try {
    const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey, randomness);
    return { ciphertext: cipherText, output: sharedSecret };
  } catch {
    return undefined;
  }
}

/**
 * HFS §3 `KEM(key_pair, ciphertext)`. ML-KEM decapsulation rejects implicitly (FIPS 203 §6.3):
 * a forged ciphertext yields an unrelated shared secret, which then fails the next AEAD check.
 */
export function kemDecapsulate(secretKey: Uint8Array, ciphertext: Uint8Array): Uint8Array | undefined {
  try {
    return ml_kem768.decapsulate(ciphertext, secretKey);
  } catch {
    return undefined;
  }
}

/**
 * Where handshakes get their randomness. Vectors and tests inject fixed bytes; production uses
 * the platform CSPRNG (`crypto.getRandomValues` through noble).
 */
export interface NoiseEntropy {
  /** 32 bytes: the private key of the next ephemeral X25519 key pair (`e`). */
  ephemeralPrivateKey(): Uint8Array;
  /** 64 bytes: the seed of the next ephemeral ML-KEM-768 key pair (`e1`). */
  kemKeySeed(): Uint8Array;
  /** 32 bytes: the randomness of the next ML-KEM-768 encapsulation (`ekem1`). */
  kemEncapsulationRandomness(): Uint8Array;
}

export const systemEntropy: NoiseEntropy = {
  ephemeralPrivateKey: () => x25519.utils.randomSecretKey(),
  kemKeySeed: () => randomBytes(KEM_SEED_LEN),
  kemEncapsulationRandomness: () => randomBytes(KEM_ENCAPSULATION_RANDOMNESS_LEN),
};
