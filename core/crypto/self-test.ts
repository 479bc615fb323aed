/**
 * Known-answer checks of one primitive of a candidate backend against noble (noble.ts), on fixed
 * inputs that include the edge cases the protocols depend on: an AEAD that encrypts in place and
 * rejects a forged tag, a nonce that uses both 32-bit halves, an X25519 low-order point, Ed25519
 * signatures that strict verification refuses (small-order key, S ≥ L, a flipped bit), HKDF
 * outputs longer than one hash block, and ML-KEM with fixed randomness.
 *
 * The webcrypto and node backends run `agreesWithNoble` for each primitive they would serve
 * natively and keep noble's implementation for any primitive that fails or throws (docs/decisions.md,
 * "Cryptography: one async provider, carried explicitly").
 */
import { equalBytes } from "../bytes.ts";
import { nobleCrypto } from "./noble.ts";
import { type Aead, type CryptoProvider, keyedHmacSha256, type Primitive } from "./provider.ts";

const same = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && a.length === b.length && equalBytes(a, b);

const fill = (length: number, seed: number): Uint8Array =>
  Uint8Array.from({ length }, (_, i) => (i * 29 + seed * 7 + 3) & 0xff);

async function aeadAgrees(candidate: Aead, reference: Aead): Promise<boolean> {
  if (candidate.nonceLength !== reference.nonceLength) return false;
  const key = fill(32, 1);
  const nonce = fill(reference.nonceLength, 2);
  nonce[nonce.length - 1] = 0xff; // both halves of a 64-bit counter set
  const ad = fill(12, 3);
  // The key imported once (Aead.withKey) must give the same bytes and refusals as per call.
  const keyed = candidate.withKey ? await candidate.withKey(key) : undefined;
  for (const length of [0, 1, 64, 1000]) {
    const plaintext = fill(length, 4 + length);
    const want = await reference.seal(key, nonce, ad, plaintext);
    if (!same(await candidate.seal(key, nonce, ad, plaintext), want)) return false;
    if (keyed) {
      if (!same(await keyed.seal(nonce, ad, plaintext), want)) return false;
      if (!same(await keyed.open(nonce, ad, want), plaintext)) return false;
      const forgedKeyed = want.slice();
      forgedKeyed[0]! ^= 1;
      if ((await keyed.open(nonce, ad, forgedKeyed)) !== undefined) return false;
    }
    // In place: the plaintext is the prefix of the output buffer.
    const buffer = new Uint8Array(length + 16);
    buffer.set(plaintext);
    const inPlace = await candidate.seal(key, nonce, ad, buffer.subarray(0, length), buffer);
    if (inPlace !== buffer || !same(buffer, want)) return false;
    if (!same(await candidate.open(key, nonce, ad, want), plaintext)) return false;
    const back = want.slice();
    const opened = await candidate.open(key, nonce, ad, back, back.subarray(0, length));
    if (!same(opened, plaintext)) return false;
    const forged = want.slice();
    forged[forged.length - 1]! ^= 1;
    if ((await candidate.open(key, nonce, ad, forged)) !== undefined) return false;
    if ((await candidate.open(key, nonce, fill(12, 9), want)) !== undefined) return false;
  }
  return (await candidate.open(key, nonce, ad, new Uint8Array(15))) === undefined;
}

/** RFC 8032 §7.1 test 1 and the refusals strict verification must make. */
async function ed25519Agrees(c: CryptoProvider): Promise<boolean> {
  const ref = nobleCrypto.ed25519;
  const seed = fill(32, 5);
  const message = fill(100, 6);
  const publicKey = await ref.publicKey(seed);
  if (!same(await c.ed25519.publicKey(seed), publicKey)) return false;
  const signature = await ref.sign(seed, message);
  if (!same(await c.ed25519.sign(seed, message), signature)) return false;
  if (!(await c.ed25519.verify(publicKey, message, signature))) return false;
  const flipped = signature.slice();
  flipped[10]! ^= 4;
  const badS = signature.slice();
  badS[63] = 0xff; // S ≥ L
  const identity = new Uint8Array(32);
  identity[0] = 1; // small-order key (the identity point)
  const identitySignature = new Uint8Array(64);
  identitySignature[0] = 1; // R = identity, S = 0: valid under a non-strict verifier
  for (const [key, msg, sig] of [
    [publicKey, message, flipped],
    [publicKey, message, badS],
    [publicKey, fill(100, 7), signature],
    [identity, message, identitySignature],
    [new Uint8Array(31), message, signature],
  ] as const)
    if (await c.ed25519.verify(key, msg, sig)) return false;
  return true;
}

async function x25519Agrees(c: CryptoProvider): Promise<boolean> {
  const ref = nobleCrypto.x25519;
  const a = fill(32, 11);
  const b = fill(32, 12);
  const publicB = await ref.publicKey(b);
  if (!same(await c.x25519.publicKey(a), await ref.publicKey(a))) return false;
  if (!same(await c.x25519.sharedSecret(a, publicB), await ref.sharedSecret(a, publicB))) return false;
  const lowOrder = new Uint8Array(32);
  lowOrder[0] = 1; // u = 1: order 1, X25519 gives zero
  if ((await c.x25519.sharedSecret(a, lowOrder)) !== undefined) return false;
  return (await c.x25519.sharedSecret(a, new Uint8Array(32))) === undefined;
}

async function mlkemAgrees(c: CryptoProvider): Promise<boolean> {
  const ref = nobleCrypto.mlkem768;
  const seed = fill(64, 13);
  const want = await ref.keyPairFromSeed(seed);
  const got = await c.mlkem768.keyPairFromSeed(seed);
  if (!same(got.publicKey, want.publicKey) || !same(got.secretKey, want.secretKey)) return false;
  const m = fill(32, 14);
  const enc = await ref.encapsulate(want.publicKey, m);
  const enc2 = await c.mlkem768.encapsulate(want.publicKey, m);
  if (!enc || !enc2 || !same(enc.ciphertext, enc2.ciphertext) || !same(enc.sharedSecret, enc2.sharedSecret))
    return false;
  if (!same(await c.mlkem768.decapsulate(want.secretKey, enc.ciphertext), enc.sharedSecret)) return false;
  // FIPS 203 §6.3 implicit rejection: a changed ciphertext gives noble's pseudorandom secret,
  // not an error; wrong sizes give undefined (provider.ts).
  const forged = enc.ciphertext.slice();
  forged[100]! ^= 1;
  const rejected = await ref.decapsulate(want.secretKey, forged);
  if (!rejected || !same(await c.mlkem768.decapsulate(want.secretKey, forged), rejected)) return false;
  return (
    (await c.mlkem768.decapsulate(want.secretKey, enc.ciphertext.subarray(1))) === undefined &&
    (await c.mlkem768.decapsulate(want.secretKey.subarray(1), enc.ciphertext)) === undefined
  );
}

type Hash = (provider: CryptoProvider, ...parts: Uint8Array[]) => Promise<Uint8Array>;
type Mac = (provider: CryptoProvider, key: Uint8Array, ...parts: Uint8Array[]) => Promise<Uint8Array>;

/** `hash` of the candidate against noble's, on empty, short, block-straddling and long inputs. */
async function hashAgrees(c: CryptoProvider, hash: Hash): Promise<boolean> {
  for (const parts of [[], [fill(0, 1)], [fill(3, 1)], [fill(64, 2), fill(65, 3)], [fill(1000, 4)]]) {
    if (!same(await hash(c, ...parts), await hash(nobleCrypto, ...parts))) return false;
  }
  return true;
}

/** `mac` as a hash under a 32-byte key, then under a key longer than a block (hashed first). */
async function macAgrees(c: CryptoProvider, mac: Mac, seed: number): Promise<boolean> {
  const key = fill(32, seed);
  const longKey = fill(100, seed + 1);
  return (
    (await hashAgrees(c, (p, ...parts) => mac(p, key, ...parts))) &&
    same(await mac(c, longKey, fill(5, 1)), await mac(nobleCrypto, longKey, fill(5, 1)))
  );
}

const EMPTY = new Uint8Array(0);

const CHECKS: Record<Primitive, (c: CryptoProvider) => Promise<boolean>> = {
  random: async (c) => {
    const a = c.randomBytes(32);
    const b = c.randomBytes(32);
    return a.length === 32 && b.length === 32 && !equalBytes(a, b) && c.randomBytes(0).length === 0;
  },
  x25519: x25519Agrees,
  ed25519: ed25519Agrees,
  chacha20poly1305: (c) => aeadAgrees(c.chacha20poly1305, nobleCrypto.chacha20poly1305),
  xchacha20poly1305: (c) => aeadAgrees(c.xchacha20poly1305, nobleCrypto.xchacha20poly1305),
  aes256gcm: (c) => aeadAgrees(c.aes256gcm, nobleCrypto.aes256gcm),
  sha256: (c) => hashAgrees(c, (p, ...parts) => p.sha256(parts[0] ?? EMPTY)),
  sha512: (c) => hashAgrees(c, (p, ...parts) => p.sha512(parts[0] ?? EMPTY)),
  blake2s: (c) => hashAgrees(c, (p, ...parts) => p.blake2s(...parts)),
  // The keyed handle too (provider.ts `hmacSha256Key`): it serves with `hmacSha256`, so both
  // agree or neither is used.
  hmacSha256: async (c) =>
    (await macAgrees(c, (p, key, ...parts) => p.hmacSha256(key, ...parts), 20)) &&
    (await macAgrees(c, async (p, key, ...parts) => (await keyedHmacSha256(p, key)).sign(...parts), 20)),
  hmacBlake2s: (c) => macAgrees(c, (p, key, ...parts) => p.hmacBlake2s(key, ...parts), 22),
  hkdfSha256: async (c) => {
    for (const [salt, info, length] of [
      [fill(32, 30), fill(25, 31), 96],
      [new Uint8Array(32), fill(30, 32), 32],
      [fill(32, 33), new Uint8Array(0), 64],
    ] as const) {
      const ikm = fill(32, length);
      if (
        !same(
          await c.hkdfSha256(ikm, salt, info, length),
          await nobleCrypto.hkdfSha256(ikm, salt, info, length),
        )
      )
        return false;
    }
    return true;
  },
  mlkem768: mlkemAgrees,
};

/** True when `candidate`'s `primitive` reproduces noble on the fixed inputs; never throws. */
export async function agreesWithNoble(primitive: Primitive, candidate: CryptoProvider): Promise<boolean> {
  try {
    return await CHECKS[primitive](candidate);
  } catch {
    return false;
  }
}
