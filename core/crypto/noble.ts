/**
 * The reference backend: every primitive of provider.ts from noble (`@noble/curves`,
 * `@noble/hashes`, `@noble/ciphers`, `@noble/post-quantum`; docs/design.md, "Cryptography").
 * Pure JavaScript, the same in every runtime, and the fallback of the other backends for each
 * primitive they cannot serve natively (webcrypto.ts, host/crypto-node.ts).
 */
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305, xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { blake2s } from "@noble/hashes/blake2.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { abytes, concatBytes } from "../bytes.ts";
import type { Aead, CryptoProvider, Ed25519, MlKem768, Primitive, X25519 } from "./provider.ts";
import { PRIMITIVES } from "./provider.ts";

export const TAG_LENGTH = 16;

type NobleCipher = (
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
) => {
  encrypt(plaintext: Uint8Array, output?: Uint8Array): Uint8Array;
  decrypt(ciphertext: Uint8Array, output?: Uint8Array): Uint8Array;
};

/**
 * `writesOutput`: whether the noble cipher fills a caller's `output` itself (ChaCha does; noble's
 * GCM refuses one), else the result is copied into `output` and the temporary copy wiped.
 */
function nobleAead(cipher: NobleCipher, nonceLength: number, writesOutput = true): Aead {
  const place = (result: Uint8Array, output: Uint8Array | undefined): Uint8Array => {
    if (output === undefined) return result;
    if (output.length !== result.length) throw new RangeError("output length");
    output.set(result);
    result.fill(0);
    return output;
  };
  return {
    nonceLength,
    seal: async (key, nonce, ad, plaintext, output) => {
      abytes(nonce, nonceLength, "nonce");
      if (writesOutput) return cipher(key, nonce, ad).encrypt(plaintext, output);
      return place(cipher(key, nonce, ad).encrypt(plaintext), output);
    },
    open: async (key, nonce, ad, ciphertext, output) => {
      abytes(nonce, nonceLength, "nonce");
      if (ciphertext.length < TAG_LENGTH) return undefined;
      let plain: Uint8Array;
      try {
        plain = writesOutput
          ? cipher(key, nonce, ad).decrypt(ciphertext, output)
          : cipher(key, nonce, ad).decrypt(ciphertext);
      } catch {
        return undefined;
      }
      return writesOutput ? plain : place(plain, output);
    },
  };
}

/** True when every byte is zero; constant time in the contents. */
export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]!;
  return acc === 0;
}

const nobleX25519: X25519 = {
  publicKey: async (privateKey) => {
    abytes(privateKey, 32, "x25519 private key");
    return x25519.getPublicKey(privateKey);
  },
  sharedSecret: async (privateKey, publicKey) => {
    abytes(privateKey, 32, "x25519 private key");
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return undefined;
    try {
      // noble throws for an all-zero result (a low-order point, RFC 7748 §6.1).
      return x25519.getSharedSecret(privateKey, publicKey);
    } catch {
      return undefined;
    }
  },
};

const nobleEd25519: Ed25519 = {
  publicKey: async (secretKey) => {
    abytes(secretKey, 32, "ed25519 secret key");
    return ed25519.getPublicKey(secretKey);
  },
  sign: async (secretKey, message) => {
    abytes(secretKey, 32, "ed25519 secret key");
    return ed25519.sign(message, secretKey);
  },
  verify: async (publicKey, message, signature) => {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
    if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
    if (!(message instanceof Uint8Array)) return false;
    try {
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
};

const nobleMlKem: MlKem768 = {
  keyPairFromSeed: async (seed) => {
    abytes(seed, 64, "ML-KEM-768 seed");
    const { publicKey, secretKey } = ml_kem768.keygen(seed);
    return { publicKey, secretKey };
  },
  encapsulate: async (publicKey, randomness) => {
    abytes(randomness, 32, "ML-KEM-768 encapsulation randomness");
    try {
      const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey, randomness);
      return { ciphertext: cipherText, sharedSecret };
    } catch {
      return undefined;
    }
  },
  decapsulate: async (secretKey, ciphertext) => {
    try {
      return ml_kem768.decapsulate(ciphertext, secretKey);
    } catch {
      return undefined;
    }
  },
};

/** One array holding `parts` in order (the array itself when there is one part). */
export function concatParts(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : concatBytes(...parts);
}

function allNoble(): Record<Primitive, string> {
  return Object.fromEntries(PRIMITIVES.map((p) => [p, "noble"])) as Record<Primitive, string>;
}

/** The noble provider: the reference implementation of every primitive. */
export const nobleCrypto: CryptoProvider = Object.freeze({
  name: "noble",
  backends: Object.freeze(allNoble()),
  randomBytes: (length: number) => randomBytes(length),
  x25519: nobleX25519,
  ed25519: nobleEd25519,
  chacha20poly1305: nobleAead(chacha20poly1305, 12),
  xchacha20poly1305: nobleAead(xchacha20poly1305, 24),
  aes256gcm: nobleAead(gcm, 12, false),
  sha256: async (data: Uint8Array) => sha256(data),
  sha512: async (data: Uint8Array) => sha512(data),
  blake2s: async (...parts: Uint8Array[]) => {
    const h = blake2s.create();
    for (const p of parts) h.update(p);
    return h.digest();
  },
  hmacSha256: async (key: Uint8Array, ...parts: Uint8Array[]) => {
    const h = hmac.create(sha256, key);
    for (const p of parts) h.update(p);
    return h.digest();
  },
  // The key's inner and outer hash states made once (RFC 2104: the two padded-key blocks), each
  // call continuing from a clone of them: two compression calls fewer per HMAC.
  hmacSha256Key: async (key: Uint8Array) => {
    const keyed = hmac.create(sha256, key);
    return {
      sign: async (...parts: Uint8Array[]) => {
        const h = keyed.clone();
        for (const p of parts) h.update(p);
        return h.digest();
      },
    };
  },
  hmacBlake2s: async (key: Uint8Array, ...parts: Uint8Array[]) => {
    const h = hmac.create(blake2s, key);
    for (const p of parts) h.update(p);
    return h.digest();
  },
  hkdfSha256: async (ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number) =>
    hkdf(sha256, ikm, salt, info, length),
  mlkem768: nobleMlKem,
});
