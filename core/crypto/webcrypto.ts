/**
 * The WebCrypto backend (W3C Web Cryptography API, `crypto.subtle`), isomorphic: browsers, workers
 * and Node ≥ 20 all have it. What each runtime implements differs (no browser has
 * ChaCha20-Poly1305; X25519 and Ed25519 are recent), so every primitive is feature-detected at
 * startup by a known-answer check against noble (compose.ts, self-test.ts) and falls back to noble
 * on its own. Never in WebCrypto: BLAKE2s (Noise's hash), XChaCha20-Poly1305 and ML-KEM with a
 * given seed — those stay noble.
 *
 *   const crypto = await createWebCryptoProvider();   // once, at startup
 *   crypto.backends.x25519                              // "webcrypto" or "noble"
 *
 * Keys are imported per call (raw bytes in, raw bytes out), so the protocol code above keeps one
 * representation of every key and wipes it as before; the imported CryptoKeys are not extractable
 * and are dropped after the call. Two exceptions, both for keys used per message: an AEAD key
 * imported once for a Noise CipherState's lifetime (`withKey`), and HMAC calls made in the same
 * turn under the same key bytes sharing one import (`webHmac`: the Double Ratchet's KDF_CK).
 */
import { abytes, equalBytes } from "../bytes.ts";
import { fromBase64url } from "../codec/base64url.ts";
import { composeProvider, type NativeParts } from "./compose.ts";
import { ed25519StrictInputs } from "./ed25519-strict.ts";
import { concatParts, isAllZero, TAG_LENGTH } from "./noble.ts";
import type { Aead, CryptoProvider } from "./provider.ts";

/** The slice of `SubtleCrypto` used here, typed structurally (core/ compiles without the DOM lib). */
export interface SubtleLike {
  importKey(
    format: "raw" | "pkcs8",
    keyData: Uint8Array,
    algorithm: string | { name: string; hash?: string },
    extractable: boolean,
    usages: string[],
  ): Promise<unknown>;
  exportKey(format: "jwk", key: unknown): Promise<{ x?: string }>;
  encrypt(algorithm: object, key: unknown, data: Uint8Array): Promise<ArrayBuffer>;
  decrypt(algorithm: object, key: unknown, data: Uint8Array): Promise<ArrayBuffer>;
  sign(algorithm: string | object, key: unknown, data: Uint8Array): Promise<ArrayBuffer>;
  verify(algorithm: string | object, key: unknown, signature: Uint8Array, data: Uint8Array): Promise<boolean>;
  digest(algorithm: string, data: Uint8Array): Promise<ArrayBuffer>;
  deriveBits(algorithm: object, baseKey: unknown, length: number): Promise<ArrayBuffer>;
}

export interface WebCryptoLike {
  readonly subtle: SubtleLike;
  getRandomValues<T extends Uint8Array>(array: T): T;
}

/** The platform's `globalThis.crypto`, when it has `subtle` (secure contexts, Node ≥ 20). */
export function platformWebCrypto(): WebCryptoLike | undefined {
  const c = (globalThis as { crypto?: Partial<WebCryptoLike> }).crypto;
  return c?.subtle && c.getRandomValues ? (c as WebCryptoLike) : undefined;
}

/** PKCS #8 (RFC 8410 §7) prefixes of a 32-byte X25519 / Ed25519 private key. */
const PKCS8_X25519 = [
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];
const PKCS8_ED25519 = [
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/**
 * A 32-byte private key imported through PKCS #8; the DER copy holding the secret is wiped once
 * WebCrypto has its own (docs/design.md, "Cryptography": secrets zeroed when done).
 */
async function importPrivateKey(
  subtle: SubtleLike,
  prefix: readonly number[],
  key: Uint8Array,
  algorithm: string,
  extractable: boolean,
  usages: string[],
): Promise<unknown> {
  const der = new Uint8Array(prefix.length + 32);
  der.set(prefix);
  der.set(key, prefix.length);
  try {
    return await subtle.importKey("pkcs8", der, algorithm, extractable, usages);
  } finally {
    der.fill(0);
  }
}

/** RFC 7748 §4.1: the X25519 base point u = 9. */
const BASE_POINT = new Uint8Array(32);
BASE_POINT[0] = 9;

function place(result: ArrayBuffer, output: Uint8Array | undefined, length: number): Uint8Array {
  const bytes = new Uint8Array(result);
  if (output === undefined) return bytes;
  if (output.length !== length) throw new RangeError("output length");
  output.set(bytes);
  bytes.fill(0);
  return output;
}

function webAead(subtle: SubtleLike, name: string, nonceLength: number): Aead {
  const params = (nonce: Uint8Array, ad: Uint8Array) => ({
    name,
    iv: nonce,
    additionalData: ad,
    tagLength: 128,
  });
  // `key` gives the CryptoKey after the checks: imported per call, or the one `withKey` imported.
  const sealWith = async (
    key: () => unknown,
    nonce: Uint8Array,
    ad: Uint8Array,
    plaintext: Uint8Array,
    output?: Uint8Array,
  ) => {
    abytes(nonce, nonceLength, "nonce");
    const sealed = await subtle.encrypt(params(nonce, ad), await key(), plaintext);
    return place(sealed, output, plaintext.length + TAG_LENGTH);
  };
  const openWith = async (
    key: () => unknown,
    nonce: Uint8Array,
    ad: Uint8Array,
    ciphertext: Uint8Array,
    output?: Uint8Array,
  ) => {
    abytes(nonce, nonceLength, "nonce");
    if (ciphertext.length < TAG_LENGTH) return undefined;
    const k = await key();
    let plain: ArrayBuffer;
    try {
      plain = await subtle.decrypt(params(nonce, ad), k, ciphertext);
    } catch {
      return undefined;
    }
    return place(plain, output, ciphertext.length - TAG_LENGTH);
  };
  return {
    nonceLength,
    seal: (key, nonce, ad, plaintext, output) =>
      sealWith(() => subtle.importKey("raw", key, name, false, ["encrypt"]), nonce, ad, plaintext, output),
    open: (key, nonce, ad, ciphertext, output) =>
      openWith(() => subtle.importKey("raw", key, name, false, ["decrypt"]), nonce, ad, ciphertext, output),
    // One non-extractable CryptoKey for a key's lifetime (a Noise CipherState's k): no import per message.
    async withKey(key) {
      abytes(key, 32, "key");
      const k = await subtle.importKey("raw", key, name, false, ["encrypt", "decrypt"]);
      return {
        seal: (nonce, ad, plaintext, output) => sealWith(() => k, nonce, ad, plaintext, output),
        open: (nonce, ad, ciphertext, output) => openWith(() => k, nonce, ad, ciphertext, output),
      };
    },
  };
}

function webHmac(subtle: SubtleLike, hash: string) {
  // The Double Ratchet's KDF_CK (core/ratchet/kdf.ts, Signal DR §5.2) signs two inputs under one
  // chain key, both calls made in the same turn: the second takes the first's imported key instead
  // of importing the same bytes again (an import is about a third of an HMAC's cost in Chromium,
  // and KDF_CK runs for every message). The entry holds a copy of the key bytes, compared in
  // constant time and wiped when that turn's microtasks run; nothing outlives the turn.
  let shared: { key: Uint8Array; k: Promise<unknown> } | undefined;
  const keyFor = (key: Uint8Array): Promise<unknown> => {
    if (shared !== undefined && equalBytes(shared.key, key)) return shared.k;
    const entry = {
      key: key.slice(),
      k: subtle.importKey("raw", key, { name: "HMAC", hash }, false, ["sign"]),
    };
    shared = entry;
    queueMicrotask(() => {
      entry.key.fill(0);
      if (shared === entry) shared = undefined;
    });
    return entry.k;
  };
  return async (key: Uint8Array, ...parts: Uint8Array[]): Promise<Uint8Array> => {
    const k = await keyFor(key);
    return new Uint8Array(await subtle.sign("HMAC", k, concatParts(parts)));
  };
}

/** The native parts WebCrypto may serve; compose.ts keeps those that pass their check. */
export function webCryptoParts(web: WebCryptoLike): NativeParts {
  const subtle = web.subtle;
  const x25519Shared = async (privateKey: Uint8Array, publicKey: Uint8Array) => {
    abytes(privateKey, 32, "x25519 private key");
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return undefined;
    const priv = await importPrivateKey(subtle, PKCS8_X25519, privateKey, "X25519", false, ["deriveBits"]);
    let bits: ArrayBuffer;
    try {
      const pub = await subtle.importKey("raw", publicKey, "X25519", false, []);
      bits = await subtle.deriveBits({ name: "X25519", public: pub }, priv, 256);
    } catch {
      return undefined; // an all-zero result is an error in WebCrypto (§ "X25519 operations")
    }
    const shared = new Uint8Array(bits);
    return isAllZero(shared) ? undefined : shared;
  };
  return {
    random: (length) => web.getRandomValues(new Uint8Array(length)),
    x25519: {
      publicKey: async (privateKey) => {
        const pub = await x25519Shared(privateKey, BASE_POINT);
        if (pub === undefined) throw new Error("x25519: no public key");
        return pub;
      },
      sharedSecret: x25519Shared,
    },
    ed25519: {
      publicKey: async (secretKey) => {
        abytes(secretKey, 32, "ed25519 secret key");
        const k = await importPrivateKey(subtle, PKCS8_ED25519, secretKey, "Ed25519", true, ["sign"]);
        const { x } = await subtle.exportKey("jwk", k);
        if (x === undefined) throw new Error("ed25519: no public key in the JWK");
        const publicKey = fromBase64url(x);
        if (!publicKey.ok) throw publicKey.error;
        return publicKey.value;
      },
      sign: async (secretKey, message) => {
        abytes(secretKey, 32, "ed25519 secret key");
        const k = await importPrivateKey(subtle, PKCS8_ED25519, secretKey, "Ed25519", false, ["sign"]);
        return new Uint8Array(await subtle.sign("Ed25519", k, message));
      },
      verify: async (publicKey, message, signature) => {
        if (!ed25519StrictInputs(publicKey, signature) || !(message instanceof Uint8Array)) return false;
        try {
          const k = await subtle.importKey("raw", publicKey, "Ed25519", false, ["verify"]);
          return await subtle.verify("Ed25519", k, signature, message);
        } catch {
          return false;
        }
      },
    },
    chacha20poly1305: webAead(subtle, "ChaCha20-Poly1305", 12),
    aes256gcm: webAead(subtle, "AES-GCM", 12),
    sha256: async (data) => new Uint8Array(await subtle.digest("SHA-256", data)),
    sha512: async (data) => new Uint8Array(await subtle.digest("SHA-512", data)),
    hmacSha256: webHmac(subtle, "SHA-256"),
    // One importKey for the handle's life, not one per call (about a third of an HMAC's cost in
    // Chromium, webHmac above): the relay's authentication key signs every command.
    hmacSha256Key: async (key) => {
      const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      return { sign: async (...parts) => new Uint8Array(await subtle.sign("HMAC", k, concatParts(parts))) };
    },
    hkdfSha256: async (ikm, salt, info, length) => {
      const k = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
      return new Uint8Array(
        await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, k, length * 8),
      );
    },
  };
}

/**
 * The WebCrypto provider of this runtime (or of `web`), each primitive detected on its own;
 * noble for everything when there is no `crypto.subtle` (an insecure context).
 */
export async function createWebCryptoProvider(web = platformWebCrypto()): Promise<CryptoProvider> {
  return composeProvider("webcrypto", "webcrypto", web ? webCryptoParts(web) : {});
}
