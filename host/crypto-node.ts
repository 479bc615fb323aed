/**
 * The node:crypto (OpenSSL) backend of the crypto provider seam (core/crypto/provider.ts), for
 * the Node composition roots: server/main.ts, relay-ws/main.ts, signaling/main.ts, the scripts and
 * the Node peers. It lives outside core/ because core/ imports no Node built-in
 * (docs/contributing.md, "Layout and imports"); it is injected as a `CryptoProvider`.
 *
 * Native here: X25519 and Ed25519 (KeyObjects), ChaCha20-Poly1305 and AES-256-GCM
 * (createCipheriv), XChaCha20-Poly1305 (noble's HChaCha20 subkey, then OpenSSL's ChaCha20-Poly1305:
 * draft-irtf-cfrg-xchacha-03 §2.3), SHA-256, SHA-512, BLAKE2s-256, HMAC over both, HKDF-SHA-256
 * and the CSPRNG; ML-KEM-768 decapsulation where node:crypto has ML-KEM (Node ≥ 24.7), noble
 * otherwise, and noble for ML-KEM key generation from a seed and encapsulation with given
 * randomness, which vectors and handshakes need and node:crypto does not offer
 * (docs/decisions.md, "node:crypto ML-KEM-768 where Node has it"). Each primitive is checked against
 * noble at startup (core/crypto/compose.ts) and falls back to noble on its own if it disagrees.
 *
 *   const crypto = await createNodeCryptoProvider();   // once, at startup
 */
import * as nodeCrypto from "node:crypto";
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  type KeyObject,
  randomFillSync,
  sign,
  timingSafeEqual,
  verify,
} from "node:crypto";
import { hchacha } from "@noble/ciphers/chacha.js";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { abytes } from "../core/bytes.ts";
import { composeProvider, type NativeParts } from "../core/crypto/compose.ts";
import { ed25519StrictInputs } from "../core/crypto/ed25519-strict.ts";
import { isAllZero, nobleCrypto, TAG_LENGTH } from "../core/crypto/noble.ts";
import type { Aead, CryptoProvider, MlKem768 } from "../core/crypto/provider.ts";

const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");

function privateKeyObjectDer(prefix: Buffer, key: Uint8Array): KeyObject {
  const der = Buffer.concat([prefix, key]);
  try {
    return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  } finally {
    der.fill(0);
  }
}

const b64url = (raw: Uint8Array) => Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString("base64url");

/**
 * A raw 32-byte OKP private key as a KeyObject. PKCS#8 DER goes through OpenSSL 3's decoder
 * framework, about 0.5–1 ms per key on the development machine (more than the X25519 itself,
 * ~0.1 ms: bench/README.md, "Session 14: XXhfs handshakes on Node"); building the key from the raw
 * bytes (OpenSSL's `EVP_PKEY_new_raw_private_key`) is several times cheaper. Two ways reach it,
 * depending on the Node version, and the first one this Node serves is picked once (`okpImport`):
 * - `format: "raw-private"` (Node 24): the raw key itself.
 * - A JWK with `d` (Node 20, 22): Node requires its `x` to be a string but builds the key from `d`
 *   alone there, so `x` is left empty rather than computed (a scalar multiplication in
 *   JavaScript, which would cost more than the DER import). Node 24 validates `x` and refuses it
 *   (measured with 24.22.3: "Invalid JWK OKP key"), which is why the raw form comes first.
 * Each is tried on a probe key and kept only if the key it builds has the public key the DER
 * import gives; otherwise DER serves every key. A Node that took an empty or wrong `x` as the
 * public key would fail that probe, and the start-up check against noble (core/crypto/compose.ts)
 * besides (host/crypto-node.test.ts). The JWK string is garbage like any other (JavaScript
 * strings cannot be wiped); the key bytes themselves stay in the caller's array, which Noise wipes.
 */
type OkpCurve = "X25519" | "Ed25519";
type OkpImport = (crv: OkpCurve, key: Uint8Array) => KeyObject;

const OKP_IMPORTS: Readonly<Record<"raw" | "jwk" | "der", OkpImport>> = {
  raw: (crv, key) =>
    createPrivateKey({
      key: Buffer.from(key.buffer, key.byteOffset, key.length),
      format: "raw-private",
      asymmetricKeyType: crv.toLowerCase(),
    } as unknown as Parameters<typeof createPrivateKey>[0]),
  jwk: (crv, key) => createPrivateKey({ key: { kty: "OKP", crv, d: b64url(key), x: "" }, format: "jwk" }),
  der: (crv, key) => privateKeyObjectDer(crv === "X25519" ? PKCS8_X25519 : PKCS8_ED25519, key),
};

let okpChosen: "raw" | "jwk" | "der" | undefined;

/** Which import this Node uses for OKP private keys ("raw", "jwk" or "der"), probed once. */
export function okpImportPath(): "raw" | "jwk" | "der" {
  if (okpChosen !== undefined) return okpChosen;
  const probe = new Uint8Array(32).fill(0x5a);
  const want = (crv: OkpCurve) => rawPublic(OKP_IMPORTS.der(crv, probe));
  const agrees = (path: "raw" | "jwk") => {
    try {
      return (["X25519", "Ed25519"] as const).every((crv) =>
        Buffer.from(rawPublic(OKP_IMPORTS[path](crv, probe))).equals(Buffer.from(want(crv))),
      );
    } catch {
      return false;
    }
  };
  okpChosen = agrees("raw") ? "raw" : agrees("jwk") ? "jwk" : "der";
  return okpChosen;
}

function privateKeyObject(crv: OkpCurve, key: Uint8Array): KeyObject {
  const path = okpImportPath();
  try {
    return OKP_IMPORTS[path](crv, key);
  } catch (e) {
    if (path === "der") throw e;
    return OKP_IMPORTS.der(crv, key); // not expected once the probe passed; DER is the reference
  }
}

/** A raw 32-byte OKP public key as a KeyObject (JWK import: the cheapest path in OpenSSL 3). */
function publicKeyObject(crv: "X25519" | "Ed25519", raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: "OKP", crv, x: b64url(raw) },
    format: "jwk",
  });
}

function rawPublic(key: KeyObject): Uint8Array {
  const { x } = createPublicKey(key).export({ format: "jwk" }) as { x: string };
  return new Uint8Array(Buffer.from(x, "base64url"));
}

/**
 * X25519 KeyObjects kept beside the raw key they were made from (docs/decisions.md, "X25519
 * KeyObjects kept beside the raw keys"): a Noise handshake uses each ephemeral private key for
 * its public key and then two DHs, and each received ephemeral key for two DHs (Noise §7.5, XX:
 * ee then es or se), so importing once per key instead of once per call saves two of every
 * three imports. The maps are keyed by the array itself (weakly: a handle lives no longer than
 * its array) and remember a SHA-256 fingerprint of the bytes the handle was made from, not the
 * bytes: a handle is used only while its array still holds them, so a wiped (Noise zeroes its
 * keys once used) or reused array is imported afresh. A private key's handle holds OpenSSL's copy
 * of the key for as long as the array is referenced, which may outlast the wipe by far (a finished
 * Noise handshake keeps its wiped static key): `forget` (core/crypto/provider.ts, X25519.forget),
 * called by Noise before it wipes a key, drops the handle at once. JavaScript cannot promise that
 * a wiped key is gone from memory anyway (the garbage collector moves and copies arrays).
 */
interface Handle {
  readonly fingerprint: Buffer;
  readonly key: KeyObject;
}
const x25519Private = new WeakMap<Uint8Array, Handle>();
const x25519Public = new WeakMap<Uint8Array, Handle>();

function cachedHandle(
  cache: WeakMap<Uint8Array, Handle>,
  raw: Uint8Array,
  make: (raw: Uint8Array) => KeyObject,
): KeyObject {
  const fingerprint = createHash("sha256").update(raw).digest();
  const held = cache.get(raw);
  if (held !== undefined) {
    if (timingSafeEqual(held.fingerprint, fingerprint)) return held.key;
    // The array was rewritten or wiped in place: the old key's handle goes now, even if the new
    // bytes do not import, rather than outlive the wipe.
    cache.delete(raw);
  }
  const key = make(raw);
  cache.set(raw, { fingerprint, key });
  return key;
}

const x25519PrivateHandle = (raw: Uint8Array) =>
  cachedHandle(x25519Private, raw, (r) => privateKeyObject("X25519", r));
const x25519PublicHandle = (raw: Uint8Array) =>
  cachedHandle(x25519Public, raw, (r) => publicKeyObject("X25519", r));

/** Whether a private-key handle is held for this array (tests: none after `forget`). */
export const holdsX25519PrivateHandle = (raw: Uint8Array): boolean => x25519Private.has(raw);

/** Copy `body ‖ tag` into `output` (or a fresh array); `plaintext` may be `output`'s own prefix. */
function placeSealed(body: Buffer, tag: Buffer, output: Uint8Array | undefined, length: number): Uint8Array {
  const out = output ?? new Uint8Array(length + TAG_LENGTH);
  if (out.length !== length + TAG_LENGTH) throw new RangeError("seal: output length");
  out.set(body);
  out.set(tag, length);
  return out;
}

type Ietf = "chacha20-poly1305" | "aes-256-gcm";

/** An RFC 8439 / SP 800-38D AEAD through createCipheriv, synchronous (wrapped async below). */
function ietfSeal(
  algorithm: Ietf,
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  plaintext: Uint8Array,
  output?: Uint8Array,
): Uint8Array {
  abytes(nonce, 12, "nonce");
  const cipher = createCipheriv(algorithm as "chacha20-poly1305", key, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(ad, { plaintextLength: plaintext.length });
  const body = cipher.update(plaintext); // a fresh buffer: `plaintext` may be a prefix of `output`
  cipher.final();
  return placeSealed(body, cipher.getAuthTag(), output, plaintext.length);
}

function ietfOpen(
  algorithm: Ietf,
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  ciphertext: Uint8Array,
  output?: Uint8Array,
): Uint8Array | undefined {
  abytes(nonce, 12, "nonce");
  if (ciphertext.length < TAG_LENGTH) return undefined;
  const length = ciphertext.length - TAG_LENGTH;
  let body: Buffer;
  try {
    const decipher = createDecipheriv(algorithm as "chacha20-poly1305", key, nonce, {
      authTagLength: TAG_LENGTH,
    });
    decipher.setAAD(ad, { plaintextLength: length });
    decipher.setAuthTag(ciphertext.subarray(length));
    body = decipher.update(ciphertext.subarray(0, length));
    decipher.final(); // throws on a bad tag; `body` is then discarded unread
  } catch {
    return undefined;
  }
  // No output asked for: the deciphered buffer is the plaintext — no copy, nothing left to wipe.
  // A plain Uint8Array view, not the Buffer (whose `slice` would share memory instead of copying).
  // (A buffer sharing a pool would show its neighbours through `.buffer`: that one is copied.)
  if (output === undefined && body.byteOffset === 0 && body.buffer.byteLength === length)
    return new Uint8Array(body.buffer, 0, length);
  const out = output ?? new Uint8Array(length);
  if (out.length !== length) throw new RangeError("open: output length");
  out.set(body);
  body.fill(0);
  return out;
}

function ietfAead(algorithm: Ietf): Aead {
  return {
    nonceLength: 12,
    seal: async (key, nonce, ad, plaintext, output) => ietfSeal(algorithm, key, nonce, ad, plaintext, output),
    open: async (key, nonce, ad, ciphertext, output) =>
      ietfOpen(algorithm, key, nonce, ad, ciphertext, output),
  };
}

const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);

/** draft-irtf-cfrg-xchacha-03 §2.2: the HChaCha20 subkey of `key` and the first 16 nonce bytes. */
function hchachaSubkey(key: Uint8Array, nonce: Uint8Array): Uint8Array {
  const k = new Uint32Array(8);
  const n = new Uint32Array(4);
  const kv = new DataView(key.buffer, key.byteOffset, 32);
  const nv = new DataView(nonce.buffer, nonce.byteOffset, 16);
  for (let i = 0; i < 8; i++) k[i] = kv.getUint32(i * 4, true);
  for (let i = 0; i < 4; i++) n[i] = nv.getUint32(i * 4, true);
  const out = new Uint32Array(8);
  hchacha(SIGMA, k, n, out);
  const subkey = new Uint8Array(32);
  const sv = new DataView(subkey.buffer);
  for (let i = 0; i < 8; i++) sv.setUint32(i * 4, out[i]!, true);
  k.fill(0);
  out.fill(0);
  return subkey;
}

/** §2.3: ChaCha20-Poly1305 under the subkey with nonce 0x00000000 ‖ the last 8 nonce bytes. */
function xchachaAead(): Aead {
  const split = (key: Uint8Array, nonce: Uint8Array) => {
    abytes(key, 32, "key");
    abytes(nonce, 24, "nonce");
    const iv = new Uint8Array(12);
    iv.set(nonce.subarray(16, 24), 4);
    return { subkey: hchachaSubkey(key, nonce), iv };
  };
  return {
    nonceLength: 24,
    seal: async (key, nonce, ad, plaintext, output) => {
      const { subkey, iv } = split(key, nonce);
      try {
        return ietfSeal("chacha20-poly1305", subkey, iv, ad, plaintext, output);
      } finally {
        subkey.fill(0);
      }
    },
    open: async (key, nonce, ad, ciphertext, output) => {
      const { subkey, iv } = split(key, nonce);
      try {
        return ietfOpen("chacha20-poly1305", subkey, iv, ad, ciphertext, output);
      } finally {
        subkey.fill(0);
      }
    },
  };
}

function digest(algorithm: string) {
  return async (...parts: Uint8Array[]): Promise<Uint8Array> => {
    const h = createHash(algorithm);
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  };
}

/** HMAC with `algorithm`, under raw key bytes or a KeyObject (`hmacSha256Key`'s handle). */
function hmac(algorithm: string) {
  return async (key: Uint8Array | KeyObject, ...parts: Uint8Array[]): Promise<Uint8Array> => {
    const h = createHmac(algorithm, key);
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  };
}

/**
 * The part of node:crypto's ML-KEM API (Node ≥ 24.7 on OpenSSL ≥ 3.5) this backend uses; absent
 * from Node 20's module and its types, hence looked up at run time.
 */
export interface NodeKemApi {
  decapsulate?: (key: KeyObject, ciphertext: Uint8Array) => Buffer;
  createPrivateKey: typeof createPrivateKey;
}

/** FIPS 203 Table 3, ML-KEM-768: decapsulation key and ciphertext sizes. */
const MLKEM768_SECRET_KEY = 2400;
const MLKEM768_CIPHERTEXT = 1088;
/**
 * PKCS#8 OneAsymmetricKey for id-alg-ml-kem-768 (2.16.840.1.101.3.4.4.2) holding the FIPS 203
 * decapsulation key in the `expandedKey` form of draft-ietf-lamps-kyber-certificates:
 * SEQUENCE { INTEGER 0, SEQUENCE { OID }, OCTET STRING { OCTET STRING (2400 bytes) } }.
 */
const PKCS8_MLKEM768_EXPANDED = Buffer.from(
  "30820978020100300b06096086480165030404020482096404820960",
  "hex",
);

/** Whether an `api` does ML-KEM-768 (nodeMlKem768's probe), once per process per `api`. */
const mlkemProbes = new WeakMap<NodeKemApi, boolean>();

/**
 * The probe: a key pair from a fixed seed and an encapsulation with a fixed message (noble, FIPS 203
 * §7.1–7.2; fixed, as nothing secret rides on them), the decapsulation key imported and used by
 * node:crypto (§7.3), which must give noble's shared secret. Any throw or a different answer: no.
 */
function mlkemRoundTrip(
  importKey: (secretKey: Uint8Array) => KeyObject,
  decapsulate: NonNullable<NodeKemApi["decapsulate"]>,
): boolean {
  try {
    const { publicKey, secretKey } = ml_kem768.keygen(new Uint8Array(64).fill(7));
    const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey, new Uint8Array(32).fill(9));
    const got = decapsulate(importKey(secretKey), cipherText);
    return got.length === sharedSecret.length && timingSafeEqual(got, sharedSecret);
  } catch {
    return false;
  }
}

/**
 * ML-KEM-768 where node:crypto has it, else undefined (then noble serves it: compose.ts).
 * Native: decapsulation only, which the protocols call with a FIPS 203 decapsulation key, ~5–10×
 * noble's. Key generation from a seed and encapsulation with given randomness stay noble: the
 * handshakes and the vectors need both deterministic (core/noise/primitives.ts), and node:crypto
 * has no encapsulation with given randomness and exports a key made from a seed only as that
 * seed, not as the 2400-byte key the protocols carry. A key OpenSSL refuses to import (its
 * FIPS 203 §7.3 hash check fails) is left to noble, whose check refuses it too (`undefined`).
 *
 * "Has it" is probed, not read off the version: `decapsulate` exists from Node 24.7 on any
 * OpenSSL (RSA, DHKEM), ML-KEM keys only from OpenSSL 3.5, so the probe is a whole round trip — a
 * valid ML-KEM-768 key must import and decapsulate noble's ciphertext to noble's shared secret.
 * It runs once per process for a given `api` (`mlkemProbes`): its noble key generation costs a
 * few milliseconds, and every node provider (each peer, each bench run) asked for it again.
 * Each call imports its key and drops it: the protocols decapsulate each key array once (Noise's
 * `e1`; PQXDH derives its key from the stored seed per message), so a KeyObject kept beside the
 * array would only keep OpenSSL's copy of the key longer (docs/decisions.md, "node:crypto
 * ML-KEM-768 where Node has it"). Nothing outlives a call, so there is no `forget` to offer.
 */
export function nodeMlKem768(api: NodeKemApi = nodeCrypto as unknown as NodeKemApi): MlKem768 | undefined {
  const decapsulate = api.decapsulate;
  if (typeof decapsulate !== "function") return undefined;
  const noble = nobleCrypto.mlkem768;
  const importKey = (secretKey: Uint8Array): KeyObject => {
    const der = Buffer.concat([PKCS8_MLKEM768_EXPANDED, secretKey]);
    try {
      return api.createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    } finally {
      der.fill(0);
    }
  };
  let works = mlkemProbes.get(api);
  if (works === undefined) {
    works = mlkemRoundTrip(importKey, decapsulate);
    mlkemProbes.set(api, works);
  }
  if (!works) return undefined; // no ML-KEM in this OpenSSL
  return {
    keyPairFromSeed: noble.keyPairFromSeed,
    encapsulate: noble.encapsulate,
    decapsulate: async (secretKey, ciphertext) => {
      if (!(secretKey instanceof Uint8Array) || secretKey.length !== MLKEM768_SECRET_KEY) return undefined;
      if (!(ciphertext instanceof Uint8Array) || ciphertext.length !== MLKEM768_CIPHERTEXT) return undefined;
      let key: KeyObject;
      try {
        key = importKey(secretKey);
      } catch {
        // OpenSSL refuses a key whose H(ek) does not match (FIPS 203 §7.3), as noble's check does;
        // whatever else it might refuse, noble's answer is the reference.
        return noble.decapsulate(secretKey, ciphertext);
      }
      let shared: Buffer;
      try {
        shared = decapsulate(key, ciphertext);
      } catch {
        return noble.decapsulate(secretKey, ciphertext); // not expected for these sizes; noble decides
      }
      const out = new Uint8Array(shared);
      shared.fill(0);
      return out;
    },
  };
}

/** The node:crypto implementations, before the known-answer checks of compose.ts. */
export function nodeCryptoParts(): NativeParts {
  const mlkem768 = nodeMlKem768();
  const sha256 = digest("sha256");
  const sha512 = digest("sha512");
  const hmacSha256 = hmac("sha256");
  return {
    random: (length) => randomFillSync(new Uint8Array(length)),
    x25519: {
      publicKey: async (privateKey) => {
        abytes(privateKey, 32, "x25519 private key");
        return rawPublic(x25519PrivateHandle(privateKey));
      },
      sharedSecret: async (privateKey, publicKey) => {
        abytes(privateKey, 32, "x25519 private key");
        if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return undefined;
        let shared: Uint8Array;
        try {
          shared = diffieHellman({
            privateKey: x25519PrivateHandle(privateKey),
            publicKey: x25519PublicHandle(publicKey),
          });
        } catch {
          return undefined; // OpenSSL refuses an all-zero result (RFC 7748 §6.1)
        }
        const out = new Uint8Array(shared);
        shared.fill(0);
        return isAllZero(out) ? undefined : out;
      },
      forget: (privateKey) => {
        x25519Private.delete(privateKey);
      },
    },
    ed25519: {
      publicKey: async (secretKey) => {
        abytes(secretKey, 32, "ed25519 secret key");
        return rawPublic(privateKeyObject("Ed25519", secretKey));
      },
      sign: async (secretKey, message) => {
        abytes(secretKey, 32, "ed25519 secret key");
        return new Uint8Array(sign(null, message, privateKeyObject("Ed25519", secretKey)));
      },
      verify: async (publicKey, message, signature) => {
        if (!ed25519StrictInputs(publicKey, signature) || !(message instanceof Uint8Array)) return false;
        try {
          return verify(null, message, publicKeyObject("Ed25519", publicKey), signature);
        } catch {
          return false;
        }
      },
    },
    chacha20poly1305: ietfAead("chacha20-poly1305"),
    xchacha20poly1305: xchachaAead(),
    aes256gcm: ietfAead("aes-256-gcm"),
    sha256: (data) => sha256(data),
    sha512: (data) => sha512(data),
    blake2s: digest("blake2s256"),
    hmacSha256,
    // The key as a KeyObject once (no conversion of the key bytes per call).
    hmacSha256Key: async (key) => {
      const k = nodeCrypto.createSecretKey(key);
      return { sign: (...parts) => hmacSha256(k, ...parts) };
    },
    hmacBlake2s: hmac("blake2s256"),
    hkdfSha256: async (ikm, salt, info, length) =>
      new Uint8Array(hkdfSync("sha256", ikm, salt, info, length)),
    ...(mlkem768 ? { mlkem768 } : {}),
  };
}

/** The node:crypto provider, each primitive checked against noble (noble where it disagrees). */
export async function createNodeCryptoProvider(): Promise<CryptoProvider> {
  return composeProvider("node", "node", nodeCryptoParts());
}
