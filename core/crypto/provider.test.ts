/**
 * Every backend of the crypto seam (noble, WebCrypto, node:crypto) reproduces the published
 * known answers of each primitive and agrees with noble, byte for byte, on random inputs — including
 * what it refuses (forged tags, low-order X25519 points, Ed25519 signatures strict verification
 * rejects). A backend part that disagrees with noble is not used (compose.ts).
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { timed } from "../../bench/timed-provider.ts";
import { createNodeCryptoProvider } from "../../host/crypto-node.ts";
import { faultyProvider } from "../../test/support/faulty-crypto.ts";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { jitteredProvider } from "../../test/support/jittered-crypto.ts";
import { fromHex, toHex, utf8 } from "../bytes.ts";
import { composeProvider, deferredProvider } from "./compose.ts";
import { ed25519StrictInputs } from "./ed25519-strict.ts";
import { nobleCrypto } from "./noble.ts";
import { type Aead, type CryptoProvider, keyedHmacSha256, PRIMITIVES } from "./provider.ts";
import { createWebCryptoProvider, platformWebCrypto, webCryptoParts } from "./webcrypto.ts";

const PROPERTY_TIMEOUT = Math.max(120_000, FUZZ_RUNS * 10);
/** Curve operations in noble cost about a millisecond: a twentieth of the budget, never below 500. */
const CURVE_RUNS = Math.max(500, Math.floor(FUZZ_RUNS / 20));

/**
 * Each backend made once for the file: making one runs its known-answer checks against noble
 * (self-test.ts; 70–80 ms each at load ~11), and no test here changes a provider it is given.
 */
function once(make: () => Promise<CryptoProvider>): () => Promise<CryptoProvider> {
  let made: Promise<CryptoProvider> | undefined;
  return () => (made ??= make());
}
const backends: [string, () => Promise<CryptoProvider>][] = [
  ["noble", async () => nobleCrypto],
  ["webcrypto", once(() => createWebCryptoProvider())],
  ["node", once(() => createNodeCryptoProvider())],
];

const hex = (s: string) => fromHex(s.replace(/\s+/g, ""));
const EMPTY_AD = new Uint8Array(0);

describe.each(backends)("%s backend", (name, make) => {
  it("names a backend for every primitive, and its own where native", async () => {
    const c = await make();
    expect(c.name).toBe(name);
    for (const p of PRIMITIVES) expect(["noble", name]).toContain(c.backends[p]);
    if (name !== "noble")
      for (const p of ["x25519", "ed25519", "aes256gcm", "sha256"] as const) expect(c.backends[p]).toBe(name);
    if (name === "node") expect(c.backends.chacha20poly1305).toBe("node");
  });

  it("randomBytes: a fresh plain Uint8Array the caller owns, kept as a key and wiped in place", async () => {
    const c = await make();
    const [a, b] = [c.randomBytes(32), c.randomBytes(32)];
    for (const draw of [a, b]) {
      // Not a Buffer (its slice() is a view: a key "copied" with it would be wiped with its source),
      // and not a view into a pool that another draw or caller shares.
      expect(Object.getPrototypeOf(draw)).toBe(Uint8Array.prototype);
      expect([draw.byteOffset, draw.buffer.byteLength]).toEqual([0, 32]);
    }
    expect(a.buffer).not.toBe(b.buffer);
    expect(a).not.toEqual(b);
  });

  it("RFC 7748 §6.1 X25519", async () => {
    const c = await make();
    const a = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const b = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    expect(toHex(await c.x25519.publicKey(a))).toBe(
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    );
    const pb = await c.x25519.publicKey(b);
    expect(toHex(pb)).toBe("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    expect(toHex((await c.x25519.sharedSecret(a, pb))!)).toBe(
      "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
    );
    // Noise §12.1: an all-zero output (low-order point) may be refused; every backend does.
    expect(await c.x25519.sharedSecret(a, new Uint8Array(32))).toBeUndefined();
    expect(await c.x25519.sharedSecret(a, new Uint8Array(31))).toBeUndefined();
  });

  it("RFC 8032 §7.1 Ed25519 test 1, and strict refusals", async () => {
    const c = await make();
    const sk = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    const pk = await c.ed25519.publicKey(sk);
    expect(toHex(pk)).toBe("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    const sig = await c.ed25519.sign(sk, new Uint8Array(0));
    expect(toHex(sig)).toBe(
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    expect(await c.ed25519.verify(pk, new Uint8Array(0), sig)).toBe(true);
    expect(await c.ed25519.verify(pk, new Uint8Array(1), sig)).toBe(false);
    expect(await c.ed25519.verify(pk, new Uint8Array(0), sig.subarray(0, 63))).toBe(false);
  });

  it("RFC 8439 §2.8.2 ChaCha20-Poly1305, in place and forged", async () => {
    const c = await make();
    const key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    const nonce = hex("070000004041424344454647");
    const ad = hex("50515253c0c1c2c3c4c5c6c7");
    const plaintext = utf8(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const sealed = await c.chacha20poly1305.seal(key, nonce, ad, plaintext);
    expect(toHex(sealed.subarray(plaintext.length))).toBe("1ae10b594f09e26a7e902ecbd0600691");
    expect(toHex(sealed.subarray(0, 16))).toBe("d31a8d34648e60db7b86afbc53ef7ec2");
    expect(await c.chacha20poly1305.open(key, nonce, ad, sealed)).toEqual(plaintext);
    sealed[0]! ^= 1;
    expect(await c.chacha20poly1305.open(key, nonce, ad, sealed)).toBeUndefined();
  });

  it("AES-256-GCM (zero key, IV and block: the SP 800-38D test of the GCM paper, case 14)", async () => {
    const c = await make();
    const sealed = await c.aes256gcm.seal(
      new Uint8Array(32),
      new Uint8Array(12),
      new Uint8Array(0),
      new Uint8Array(16),
    );
    expect(toHex(sealed)).toBe("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
  });

  it.each(["chacha20poly1305", "aes256gcm"] as const)(
    "%s opens without `output` into a plain Uint8Array of its own (the session's receive path)",
    async (aead) => {
      const c = await make();
      const key = new Uint8Array(32).fill(5);
      const nonce = new Uint8Array(12).fill(2);
      const plaintext = utf8("opened into a fresh array, as Session's read loop asks");
      const sealed = await c[aead].seal(key, nonce, EMPTY_AD, plaintext);
      const opened = await c[aead].open(key, nonce, EMPTY_AD, sealed);
      expect(opened && toHex(opened)).toBe(toHex(plaintext));
      // Not a node Buffer (whose `slice` shares memory), nor a view into a shared pool.
      expect(Object.getPrototypeOf(opened)).toBe(Uint8Array.prototype);
      expect([opened!.byteOffset, opened!.buffer.byteLength]).toEqual([0, plaintext.length]);
      const copy = opened!.slice();
      copy[0]! ^= 1;
      expect(opened![0]).toBe(plaintext[0]);
    },
  );

  it.each(["chacha20poly1305", "aes256gcm"] as const)(
    "%s seals and opens in place (into `output`, the input its prefix), as the Noise transport does",
    async (aead) => {
      const c = await make();
      const key = new Uint8Array(32).fill(3);
      const nonce = new Uint8Array(12).fill(1);
      const ad = utf8("ad");
      const plaintext = utf8("in place, as the session transport seals every frame");
      const expected = await c[aead].seal(key, nonce, ad, plaintext);
      const buffer = new Uint8Array(plaintext.length + 16);
      buffer.set(plaintext);
      const sealed = await c[aead].seal(key, nonce, ad, buffer.subarray(0, plaintext.length), buffer);
      expect(sealed).toBe(buffer);
      expect(toHex(buffer)).toBe(toHex(expected));
      const opened = await c[aead].open(key, nonce, ad, buffer, buffer.subarray(0, plaintext.length));
      expect(opened && toHex(opened)).toBe(toHex(plaintext));
      expect(toHex(buffer.subarray(0, plaintext.length))).toBe(toHex(plaintext));
    },
  );

  it("SHA-256, BLAKE2s-256 (RFC 7693 App. B), HMAC-SHA-256 (RFC 4231 §4.3), HKDF (RFC 5869 A.1)", async () => {
    const c = await make();
    expect(toHex(await c.sha256(utf8("abc")))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(toHex(await c.blake2s(utf8("a"), utf8("bc")))).toBe(
      "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
    );
    expect(toHex(await c.hmacSha256(utf8("Jefe"), utf8("what do ya want "), utf8("for nothing?")))).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
    // The keyed handle (provider.ts `hmacSha256Key`), every backend its own: the same answers,
    // call after call, with the caller's key bytes wiped after the import; RFC 4231 §4.7 (a key
    // longer than a block, hashed first) too.
    expect(c.hmacSha256Key).toBeDefined();
    const jefe = utf8("Jefe");
    const mac = await keyedHmacSha256(c, jefe);
    jefe.fill(0);
    for (let i = 0; i < 2; i++)
      expect(toHex(await mac.sign(utf8("what do ya want "), utf8("for nothing?")))).toBe(
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      );
    const long = await keyedHmacSha256(c, new Uint8Array(131).fill(0xaa));
    expect(toHex(await long.sign(utf8("Test Using Larger Than Block-Size Key - Hash Key First")))).toBe(
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    );
    const okm = await c.hkdfSha256(
      new Uint8Array(22).fill(0x0b),
      hex("000102030405060708090a0b0c"),
      hex("f0f1f2f3f4f5f6f7f8f9"),
      42,
    );
    expect(toHex(okm)).toBe(
      "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    );
  });
});

/**
 * The native backends against noble on random inputs: noble's answer is worked out once a case and
 * each native backend must give it (most of the cost is noble's; a backend a case would repeat it).
 * Not noble itself: each comparison would be noble against noble, and what is left of them (a round
 * trip, a flipped bit refused) is already asked of noble by the known answers above and, on every
 * input, by the ratchet's properties (core/ratchet/ratchet.fuzz.test.ts: bit-flipped messages of
 * every AEAD refused, through noble), and by the vector files through noble
 * (test/vectors/backends.test.ts).
 */
describe("the native backends against noble", () => {
  const natives = () =>
    Promise.all(
      backends
        .filter(([name]) => name !== "noble")
        .map(async ([name, make]) => [name, await make()] as const),
    );

  it(
    "AEADs agree with noble on random inputs, and refuse any single-bit change (property)",
    async () => {
      const cs = await natives();
      for (const aead of ["chacha20poly1305", "xchacha20poly1305", "aes256gcm"] as const) {
        const reference = nobleCrypto[aead];
        await fc.assert(
          fc.asyncProperty(
            fc.uint8Array({ minLength: 32, maxLength: 32 }),
            fc.uint8Array({ minLength: reference.nonceLength, maxLength: reference.nonceLength }),
            fc.uint8Array({ maxLength: 40 }),
            fc.uint8Array({ maxLength: 300 }),
            fc.nat(),
            async (key, nonce, ad, plaintext, flip) => {
              const want = await reference.seal(key, nonce, ad, plaintext);
              const forged = want.slice();
              forged[flip % forged.length]! ^= 1 << (flip % 8);
              for (const [name, c] of cs) {
                expect(await c[aead].seal(key, nonce, ad, plaintext), name).toEqual(want);
                expect(await c[aead].open(key, nonce, ad, want), name).toEqual(plaintext);
                expect(await c[aead].open(key, nonce, ad, forged), name).toBeUndefined();
              }
            },
          ),
          { numRuns: Math.floor(FUZZ_RUNS / 3) },
        );
      }
    },
    PROPERTY_TIMEOUT,
  );

  it(
    "X25519 and Ed25519 agree with noble on random keys and mutated signatures (property)",
    async () => {
      const cs = await natives();
      const noble = nobleCrypto;
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ maxLength: 64 }),
          fc.nat(),
          async (a, b, message, flip) => {
            const pa = await noble.x25519.publicKey(a);
            const pb = await noble.x25519.publicKey(b);
            const shared = await noble.x25519.sharedSecret(a, pb);
            // Any 32 bytes as a peer key (incl. non-canonical u ≥ p, which RFC 7748 §5 reduces).
            const sharedRaw = await noble.x25519.sharedSecret(a, b);
            const pk = await noble.ed25519.publicKey(a);
            const sig = await noble.ed25519.sign(a, message);
            const bad = sig.slice();
            bad[flip % 64]! ^= 1 << (flip % 8);
            const badKey = pk.slice();
            badKey[flip % 32]! ^= 1 << (flip % 8);
            const badVerifies = await noble.ed25519.verify(pk, message, bad);
            const badKeyVerifies = await noble.ed25519.verify(badKey, message, sig);
            for (const [name, c] of cs) {
              expect(await c.x25519.publicKey(a), name).toEqual(pa);
              expect(await c.x25519.sharedSecret(a, pb), name).toEqual(shared);
              expect(await c.x25519.sharedSecret(a, b), name).toEqual(sharedRaw);
              expect(await c.ed25519.sign(a, message), name).toEqual(sig);
              expect(await c.ed25519.verify(pk, message, sig), name).toBe(true);
              expect(await c.ed25519.verify(pk, message, bad), name).toBe(badVerifies);
              expect(await c.ed25519.verify(badKey, message, sig), name).toBe(badKeyVerifies);
            }
          },
        ),
        { numRuns: CURVE_RUNS },
      );
    },
    PROPERTY_TIMEOUT,
  );

  it(
    "hashes, HMACs and HKDF agree with noble on random inputs (property)",
    async () => {
      const cs = await natives();
      const noble = nobleCrypto;
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ maxLength: 100 }),
          fc.uint8Array({ maxLength: 200 }),
          fc.uint8Array({ maxLength: 40 }),
          fc.integer({ min: 1, max: 255 }),
          async (key, data, info, length) => {
            const sha256 = await noble.sha256(data);
            const sha512 = await noble.sha512(data);
            const blake2s = await noble.blake2s(key, data);
            const hkdf = await noble.hkdfSha256(data, key, info, length);
            const macs =
              key.length > 0
                ? {
                    data: await noble.hmacSha256(key, data),
                    dataInfo: await noble.hmacSha256(key, data, info),
                    info: await noble.hmacSha256(key, info),
                    blake2s: await noble.hmacBlake2s(key, data, info),
                  }
                : undefined;
            for (const [name, c] of cs) {
              expect(await c.sha256(data), name).toEqual(sha256);
              expect(await c.sha512(data), name).toEqual(sha512);
              expect(await c.blake2s(key, data), name).toEqual(blake2s);
              if (macs) {
                expect(await c.hmacSha256(key, data), name).toEqual(macs.data);
                const mac = await keyedHmacSha256(c, key);
                expect(await mac.sign(data, info), name).toEqual(macs.dataInfo);
                expect(await mac.sign(info), name).toEqual(macs.info);
                expect(await c.hmacBlake2s(key, data, info), name).toEqual(macs.blake2s);
              }
              expect(await c.hkdfSha256(data, key, info, length), name).toEqual(hkdf);
            }
          },
        ),
        { numRuns: Math.floor(FUZZ_RUNS / 3) },
      );
    },
    PROPERTY_TIMEOUT,
  );
});

describe("strict Ed25519 inputs", () => {
  it("flags exactly the keys noble calls small-order, among the small-order encodings", () => {
    const encodings = [
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0100000000000000000000000000000000000000000000000000000000000000",
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
      "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
      "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
      "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    ];
    for (const e of encodings) {
      expect(ed25519.Point.fromHex(e).isSmallOrder()).toBe(true);
      expect(ed25519StrictInputs(fromHex(e), new Uint8Array(64))).toBe(false);
    }
    const ordinary = ed25519.getPublicKey(new Uint8Array(32).fill(7));
    expect(ed25519StrictInputs(ordinary, new Uint8Array(64))).toBe(true);
  });
});

describe("webcrypto private keys", () => {
  it("wipes the PKCS #8 copy of a private key once WebCrypto has imported it", async () => {
    const web = platformWebCrypto()!;
    const imported: Uint8Array[] = [];
    const real = web.subtle;
    const subtle: typeof real = {
      importKey: (format, keyData, ...rest) => {
        if (format === "pkcs8") imported.push(keyData);
        return real.importKey(format, keyData, ...rest);
      },
      exportKey: (...a) => real.exportKey(...a),
      encrypt: (...a) => real.encrypt(...a),
      decrypt: (...a) => real.decrypt(...a),
      sign: (...a) => real.sign(...a),
      verify: (...a) => real.verify(...a),
      digest: (...a) => real.digest(...a),
      deriveBits: (...a) => real.deriveBits(...a),
    };
    const parts = webCryptoParts({ subtle, getRandomValues: (a) => web.getRandomValues(a) });
    const secret = new Uint8Array(32).fill(7);
    await parts.x25519!.publicKey(secret);
    await parts.x25519!.sharedSecret(secret, await nobleCrypto.x25519.publicKey(new Uint8Array(32).fill(8)));
    await parts.ed25519!.publicKey(secret);
    await parts.ed25519!.sign(secret, utf8("m"));
    expect(imported).toHaveLength(4);
    for (const der of imported) expect(der.every((b) => b === 0)).toBe(true);
    expect(secret.every((b) => b === 7)).toBe(true);
  });
});

describe("composeProvider", () => {
  it("keeps noble for a native part that disagrees or throws, and says so", async () => {
    const wrong = {
      ...nobleCrypto.chacha20poly1305,
      seal: async (k: Uint8Array, n: Uint8Array, a: Uint8Array, p: Uint8Array) => {
        const out = await nobleCrypto.chacha20poly1305.seal(k, n, a, p);
        out[0]! ^= 1;
        return out;
      },
    };
    const throwing = { ...nobleCrypto.x25519, publicKey: async () => Promise.reject(new Error("no")) };
    const c = await composeProvider("test", "native", {
      chacha20poly1305: wrong,
      x25519: throwing,
      sha256: nobleCrypto.sha256,
    });
    expect(c.backends.chacha20poly1305).toBe("noble");
    expect(c.backends.x25519).toBe("noble");
    expect(c.backends.sha256).toBe("native");
    expect(c.chacha20poly1305).toBe(nobleCrypto.chacha20poly1305);
  });

  it("a keyed HMAC that disagrees takes its HMAC-SHA-256 with it: noble serves both", async () => {
    const key = new Uint8Array(32).fill(7);
    const good = await composeProvider("test", "native", {
      hmacSha256: nobleCrypto.hmacSha256,
      hmacSha256Key: nobleCrypto.hmacSha256Key!,
    });
    expect(good.backends.hmacSha256).toBe("native");
    const bad = await composeProvider("test", "native", {
      hmacSha256: nobleCrypto.hmacSha256,
      hmacSha256Key: async (k) => ({
        sign: async (...parts) => {
          const out = await nobleCrypto.hmacSha256(k, ...parts);
          out[0]! ^= 1;
          return out;
        },
      }),
    });
    expect(bad.backends.hmacSha256).toBe("noble");
    expect(bad.hmacSha256Key).toBe(nobleCrypto.hmacSha256Key);
    // A provider without a handle (a wrapper made before it existed) still gets one.
    const bare: CryptoProvider = { ...nobleCrypto, hmacSha256Key: undefined };
    const mac = await keyedHmacSha256(bare, key);
    expect(await mac.sign(utf8("t"))).toEqual(await nobleCrypto.hmacSha256(key, utf8("t")));
  });
});

describe("deferredProvider", () => {
  it("answers calls made before the provider is ready once it is, then goes straight to it", async () => {
    let resolve!: (p: CryptoProvider) => void;
    const c = deferredProvider("later", new Promise<CryptoProvider>((r) => (resolve = r)));
    expect(c.backends.x25519).toBe("noble");
    const early = c.sha256(utf8("abc"));
    const earlyMac = keyedHmacSha256(c, utf8("Jefe"));
    const node = await createNodeCryptoProvider();
    resolve(node);
    expect(toHex(await early)).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(toHex(await (await earlyMac).sign(utf8("what do ya want for nothing?")))).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
    expect(c.backends.x25519).toBe("node");
    const key = new Uint8Array(32).fill(1);
    expect(await c.x25519.publicKey(key)).toEqual(await nobleCrypto.x25519.publicKey(key));
  });

  it("once ready, a provider function that throws at the call still comes back as a rejection", async () => {
    const throwing: CryptoProvider = {
      ...nobleCrypto,
      sha256: () => {
        throw new RangeError("thrown at the call");
      },
    };
    const c = deferredProvider("direct", Promise.resolve(throwing));
    await c.sha512(utf8("ready"));
    let call: Promise<Uint8Array> | undefined;
    expect(() => {
      call = c.sha256(utf8("x"));
    }).not.toThrow();
    await expect(call).rejects.toThrow("thrown at the call");
  });

  it("falls back to noble when detection fails", async () => {
    const c = deferredProvider("broken", Promise.reject(new Error("no subtle")));
    const key = new Uint8Array(32).fill(3);
    expect(await c.x25519.publicKey(key)).toEqual(await nobleCrypto.x25519.publicKey(key));
    expect(c.backends.x25519).toBe("noble");
  });
});

describe("WebCrypto HMAC: one import for the calls of one turn under the same key (KDF_CK)", () => {
  const web = platformWebCrypto()!;
  function counting() {
    let imports = 0;
    const subtle = new Proxy(web.subtle, {
      get(target, prop) {
        const v = Reflect.get(target, prop) as (...a: unknown[]) => unknown;
        if (prop === "importKey")
          return (...a: unknown[]) => {
            imports++;
            return v.apply(target, a);
          };
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const hmac = webCryptoParts({ subtle, getRandomValues: (a) => web.getRandomValues(a) }).hmacSha256!;
    return { hmac, imports: () => imports };
  }

  it("shares the import within a turn, never across turns or keys; every output is noble's", async () => {
    const { hmac, imports } = counting();
    const ck = new Uint8Array(32).fill(0x42);
    const other = new Uint8Array(32).fill(0x43);
    const m1 = Uint8Array.of(1);
    const m2 = Uint8Array.of(2);
    // KDF_CK's two calls: one import.
    const [a, b] = await Promise.all([hmac(ck, m1), hmac(ck, m2)]);
    expect(imports()).toBe(1);
    expect(a).toEqual(await nobleCrypto.hmacSha256(ck, m1));
    expect(b).toEqual(await nobleCrypto.hmacSha256(ck, m2));
    // The next turn imports again; another key in the same turn too.
    const [c, d] = await Promise.all([hmac(ck, m1), hmac(other, m1)]);
    expect(imports()).toBe(3);
    expect(c).toEqual(a);
    expect(d).toEqual(await nobleCrypto.hmacSha256(other, m1));
    // The same array with other bytes in the same turn is another key (compared by value).
    const mutable = ck.slice();
    const first = hmac(mutable, m1);
    mutable.set(other);
    const second = hmac(mutable, m1);
    expect([await first, await second]).toEqual([a, d]);
    expect(imports()).toBe(5);
  });
});

/**
 * Every key of an interface, optional ones included, spelled out below: the compiler refuses the
 * list when the interface gains a key it lacks, so the wrappers' test follows the interface.
 */
type EveryKey<T> = {
  readonly [K in keyof T]-?: NonNullable<T[K]> extends (...args: never[]) => unknown
    ? "function"
    : K extends "backends"
      ? "object"
      : NonNullable<T[K]> extends object
        ? EveryKey<NonNullable<T[K]>>
        : "value";
};
const AEAD_KEYS = { nonceLength: "value", withKey: "function", seal: "function", open: "function" } as const;
const PROVIDER_KEYS = {
  name: "value",
  backends: "object",
  randomBytes: "function",
  x25519: { publicKey: "function", sharedSecret: "function", forget: "function" },
  ed25519: { publicKey: "function", sign: "function", verify: "function" },
  chacha20poly1305: AEAD_KEYS,
  xchacha20poly1305: AEAD_KEYS,
  aes256gcm: AEAD_KEYS,
  sha256: "function",
  sha512: "function",
  blake2s: "function",
  hmacSha256: "function",
  hmacSha256Key: "function",
  hmacBlake2s: "function",
  hkdfSha256: "function",
  mlkem768: {
    keyPairFromSeed: "function",
    encapsulate: "function",
    decapsulate: "function",
    forget: "function",
  },
} as const satisfies EveryKey<CryptoProvider>;

/**
 * The wrappers that stand between the protocols and a provider (timing, jitter, fault injection,
 * the deferred provider) lose nothing: every key of CryptoProvider the base has, the wrapper has,
 * and the optional ones (`forget`, `withKey`, `hmacSha256Key`) reach the base's own — a wrapper
 * that dropped one would silently turn its callers to the fallback path.
 */
describe("provider wrappers forward every key of the interface", () => {
  /** noble with every optional function too, each recording its calls in `reached`. */
  function completeBase(reached: string[]): CryptoProvider {
    const aead = (name: string, a: Aead): Aead => ({
      ...a,
      withKey: async (key) => {
        reached.push(`${name}.withKey`);
        const k = key.slice();
        return {
          seal: (n, ad, p, o) => a.seal(k, n, ad, p, o),
          open: (n, ad, c, o) => a.open(k, n, ad, c, o),
        };
      },
    });
    return {
      ...nobleCrypto,
      x25519: { ...nobleCrypto.x25519, forget: () => void reached.push("x25519.forget") },
      mlkem768: { ...nobleCrypto.mlkem768, forget: () => void reached.push("mlkem768.forget") },
      chacha20poly1305: aead("chacha20poly1305", nobleCrypto.chacha20poly1305),
      xchacha20poly1305: aead("xchacha20poly1305", nobleCrypto.xchacha20poly1305),
      aes256gcm: aead("aes256gcm", nobleCrypto.aes256gcm),
      hmacSha256Key: async (key) => {
        reached.push("hmacSha256Key");
        return nobleCrypto.hmacSha256Key!(key);
      },
    };
  }

  /** The keys of `shape` that `o` lacks or holds with another kind ("x25519.forget"). */
  function missingKeys(shape: object, o: unknown, path = ""): string[] {
    const out: string[] = [];
    for (const [k, kind] of Object.entries(shape)) {
      const v = (o as Record<string, unknown> | undefined)?.[k];
      if (typeof kind === "object") out.push(...missingKeys(kind, v, `${path}${k}.`));
      else if (kind === "function" ? typeof v !== "function" : v === undefined) out.push(`${path}${k}`);
    }
    return out;
  }

  const wrappers: [string, (base: CryptoProvider) => CryptoProvider][] = [
    ["bench/timed-provider.ts timed", (b) => timed(b, new Map())],
    ["test/support jitteredProvider", (b) => jitteredProvider(b, () => 0)],
    ["test/support faultyProvider", (b) => faultyProvider(b, 0).crypto],
    ["core/crypto deferredProvider", (b) => deferredProvider("deferred", Promise.resolve(b))],
  ];

  it.each(wrappers)("%s", async (_name, wrap) => {
    const reached: string[] = [];
    const base = completeBase(reached);
    // The base has every key the interface names: the check below then covers every one.
    expect(missingKeys(PROVIDER_KEYS, base)).toEqual([]);
    const c = wrap(base);
    expect(missingKeys(PROVIDER_KEYS, c)).toEqual([]);
    await c.sha256(utf8("ready")); // the deferred provider is settled from here on
    const key = new Uint8Array(32).fill(5);
    const nonce = (a: Aead) => new Uint8Array(a.nonceLength).fill(1);
    for (const name of ["chacha20poly1305", "xchacha20poly1305", "aes256gcm"] as const) {
      const keyed = (await c[name].withKey!(key))!;
      const sealed = await keyed.seal(nonce(c[name]), EMPTY_AD, utf8("forwarded"));
      expect(sealed).toEqual(await base[name].seal(key, nonce(base[name]), EMPTY_AD, utf8("forwarded")));
      expect(await keyed.open(nonce(c[name]), EMPTY_AD, sealed)).toEqual(utf8("forwarded"));
    }
    const mac = await c.hmacSha256Key!(key);
    expect(await mac.sign(utf8("a"), utf8("b"))).toEqual(await nobleCrypto.hmacSha256(key, utf8("ab")));
    c.x25519.forget!(key);
    c.mlkem768.forget!(key);
    expect(reached.sort()).toEqual(
      [
        "aes256gcm.withKey",
        "chacha20poly1305.withKey",
        "hmacSha256Key",
        "mlkem768.forget",
        "x25519.forget",
        "xchacha20poly1305.withKey",
      ].sort(),
    );
  });
});
