/**
 * CipherState (Noise §5.1) and the crypto functions under it, checked against independent
 * implementations: node:crypto's ChaCha20-Poly1305 (OpenSSL) for ENCRYPT with the §12.3 nonce
 * layout and for the default REKEY (§4.2), and noble's RFC 5869 HKDF for Noise's HKDF (§4.3),
 * which is RFC 5869 with salt = ck and empty info.
 */
import { createCipheriv } from "node:crypto";
import { blake2s } from "@noble/hashes/blake2.js";
import { hkdf as rfc5869 } from "@noble/hashes/hkdf.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { utf8 } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { Aead } from "../crypto/provider.ts";
import { platformWebCrypto, type SubtleLike, webCryptoParts } from "../crypto/webcrypto.ts";
import { CipherState } from "./cipher-state.ts";
import { hkdf } from "./primitives.ts";
import { AESGCM_SHA256 } from "./suite.ts";
import { SymmetricState } from "./symmetric-state.ts";

const key = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const ad = utf8("associated");
const plaintext = utf8("the quick brown fox");

/** OpenSSL's ChaCha20-Poly1305 with the Noise nonce: 4 zero bytes ‖ u64 little-endian (§12.3). */
function opensslEncrypt(k: Uint8Array, n: bigint, aad: Uint8Array, data: Uint8Array): Uint8Array {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(n, 4);
  const cipher = createCipheriv("chacha20-poly1305", k, nonce, { authTagLength: 16 });
  cipher.setAAD(aad, { plaintextLength: data.length });
  return new Uint8Array(Buffer.concat([cipher.update(data), cipher.final(), cipher.getAuthTag()]));
}

describe("CipherState (Noise §5.1)", () => {
  it("passes data through unchanged while k is empty", async () => {
    const cs = new CipherState();
    expect(cs.hasKey()).toBe(false);
    const out = await cs.encryptWithAd(ad, plaintext);
    expect(out.ok && out.value).toEqual(plaintext);
  });

  it("encrypts like OpenSSL ChaCha20-Poly1305 with nonce 0, 1, 2^32+5 (both halves of n)", async () => {
    const cs = new CipherState(key);
    for (const n of [0n, 1n]) {
      const out = await cs.encryptWithAd(ad, plaintext);
      expect(out.ok && out.value).toEqual(opensslEncrypt(key, n, ad, plaintext));
    }
    cs.setNonce(2n ** 32n + 5n);
    const out = await cs.encryptWithAd(ad, plaintext);
    expect(out.ok && out.value).toEqual(opensslEncrypt(key, 2n ** 32n + 5n, ad, plaintext));
    expect(cs.nonce).toBe(2n ** 32n + 6n);
  });

  it("decrypts, and on an authentication failure returns LOFT_ERR_DECRYPT without advancing n", async () => {
    const sender = new CipherState(key);
    const receiver = new CipherState(key);
    const sealed = await sender.encryptWithAd(ad, plaintext);
    if (!sealed.ok) throw sealed.error;
    const tampered = sealed.value.slice();
    tampered[3]! ^= 1;
    const bad = await receiver.decryptWithAd(ad, tampered);
    expect(!bad.ok && bad.error.code).toBe("LOFT_ERR_DECRYPT");
    expect(receiver.nonce).toBe(0n);
    const wrongAd = await receiver.decryptWithAd(utf8("other"), sealed.value);
    expect(!wrongAd.ok && wrongAd.error.code).toBe("LOFT_ERR_DECRYPT");
    const good = await receiver.decryptWithAd(ad, sealed.value);
    expect(good.ok && good.value).toEqual(plaintext);
    expect(receiver.nonce).toBe(1n);
    const short = await receiver.decryptWithAd(ad, new Uint8Array(15));
    expect(!short.ok && short.error.code).toBe("LOFT_ERR_DECRYPT");
  });

  it("encrypts and decrypts in place into a caller's buffer", async () => {
    const sender = new CipherState(key);
    const receiver = new CipherState(key);
    const buffer = new Uint8Array(plaintext.length + 16);
    buffer.set(plaintext);
    const sealed = await sender.encryptWithAd(ad, buffer.subarray(0, plaintext.length), buffer);
    expect(sealed.ok && sealed.value).toBe(buffer);
    expect(buffer).toEqual(opensslEncrypt(key, 0n, ad, plaintext));
    const opened = await receiver.decryptWithAd(ad, buffer, buffer.subarray(0, plaintext.length));
    expect(opened.ok && opened.value).toEqual(plaintext);
  });

  it("refuses to use the reserved nonce 2^64-1: LOFT_ERR_NONCE_EXHAUSTED", async () => {
    const sender = new CipherState(key);
    const receiver = new CipherState(key);
    sender.setNonce(2n ** 64n - 2n);
    receiver.setNonce(2n ** 64n - 2n);
    const last = await sender.encryptWithAd(ad, plaintext);
    expect(last.ok && last.value).toEqual(opensslEncrypt(key, 2n ** 64n - 2n, ad, plaintext));
    expect(sender.nonce).toBe(2n ** 64n - 1n);
    const over = await sender.encryptWithAd(ad, plaintext);
    expect(!over.ok && over.error.code).toBe("LOFT_ERR_NONCE_EXHAUSTED");
    if (!last.ok) throw last.error;
    expect((await receiver.decryptWithAd(ad, last.value)).ok).toBe(true);
    const overRead = await receiver.decryptWithAd(ad, last.value);
    expect(!overRead.ok && overRead.error.code).toBe("LOFT_ERR_NONCE_EXHAUSTED");
  });

  it("Rekey() sets k to the first 32 bytes of ENCRYPT(k, 2^64-1, empty, zeros) and keeps n (§4.2, §11.3)", async () => {
    const cs = new CipherState(key);
    cs.setNonce(7n);
    await cs.rekey();
    expect(cs.nonce).toBe(7n);
    const expectedKey = opensslEncrypt(key, 2n ** 64n - 1n, new Uint8Array(0), new Uint8Array(32)).slice(
      0,
      32,
    );
    const out = await cs.encryptWithAd(ad, plaintext);
    expect(out.ok && out.value).toEqual(opensslEncrypt(expectedKey, 7n, ad, plaintext));
  });

  it("a wiped CipherState refuses to work instead of passing plaintext through", async () => {
    const cs = new CipherState(key);
    cs.wipe();
    const out = await cs.encryptWithAd(ad, plaintext);
    expect(!out.ok && out.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    const back = await cs.decryptWithAd(ad, plaintext);
    expect(!back.ok && back.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
  });

  it("rejects a wrong key length at the call", async () => {
    expect(() => new CipherState(new Uint8Array(31))).toThrow(RangeError);
  });
});

describe("HKDF and SymmetricState (Noise §4.3, §5.2)", () => {
  it("HKDF(ck, ikm, n) equals RFC 5869 HKDF-BLAKE2s with salt = ck and empty info", async () => {
    const ck = blake2s(utf8("chaining key"));
    const ikm = utf8("input key material");
    const outputs = await hkdf(nobleCrypto, ck, ikm, 3);
    const reference = rfc5869(blake2s, ikm, ck, new Uint8Array(0), 96);
    expect(outputs[0]).toEqual(reference.slice(0, 32));
    expect(outputs[1]).toEqual(reference.slice(32, 64));
    expect(outputs[2]).toEqual(reference.slice(64, 96));
  });

  it("InitializeSymmetric pads a short protocol name and hashes a long one", async () => {
    const short = await SymmetricState.create("Noise_NN_25519_AESGCM_SHA256");
    const padded = new Uint8Array(32);
    padded.set(utf8("Noise_NN_25519_AESGCM_SHA256"));
    expect(short.getHandshakeHash()).toEqual(padded);
    const longName = "Noise_XX_25519_ChaChaPoly_BLAKE2s"; // 33 bytes > HASHLEN
    expect((await SymmetricState.create(longName)).getHandshakeHash()).toEqual(blake2s(utf8(longName)));
  });

  it("MixHash, MixKey and EncryptAndHash chain as §5.2 says", async () => {
    const name = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
    const ss = await SymmetricState.create(name);
    const h0 = blake2s(utf8(name));
    await ss.mixHash(utf8("prologue"));
    const h1 = blake2s(new Uint8Array([...h0, ...utf8("prologue")]));
    expect(ss.getHandshakeHash()).toEqual(h1);
    await ss.mixKey(utf8("dh output"));
    const [, tempK] = rfcOutputs(h0, utf8("dh output"));
    const sealed = await ss.encryptAndHash(plaintext);
    expect(sealed.ok && sealed.value).toEqual(opensslEncrypt(tempK, 0n, h1, plaintext));
    if (!sealed.ok) throw sealed.error;
    expect(ss.getHandshakeHash()).toEqual(blake2s(new Uint8Array([...h1, ...sealed.value])));
  });
});

function rfcOutputs(ck: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const okm = rfc5869(blake2s, ikm, ck, new Uint8Array(0), 64);
  return [okm.slice(0, 32), okm.slice(32, 64)];
}

/**
 * The real noble AEAD, each call held back by a delay chosen by the test before it runs: lets a
 * property make calls finish in any order, as an asynchronous backend may (WebCrypto).
 */
function jittered(delays: () => number): Aead {
  const base = nobleCrypto.chacha20poly1305;
  const hold = () => new Promise<void>((resolve) => setTimeout(resolve, delays()));
  return {
    nonceLength: base.nonceLength,
    seal: async (k, n, a, p, o) => {
      const [kc, nc, ac, pc] = [k.slice(), n.slice(), a.slice(), p.slice()];
      await hold();
      return base.seal(kc, nc, ac, pc, o);
    },
    open: async (k, n, a, c, o) => {
      const [kc, nc, ac, cc] = [k.slice(), n.slice(), a.slice(), c.slice()];
      await hold();
      return base.open(kc, nc, ac, cc, o);
    },
  };
}

describe("CipherState under concurrency (async AEAD)", () => {
  const runs = Math.max(50, Math.floor(FUZZ_RUNS / 100));

  it("concurrent encrypts and rekeys take nonces and keys in call order, whatever order the AEAD finishes in (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constant("rekey" as const), fc.uint8Array({ maxLength: 24 })), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 8 }),
        async (ops, delays) => {
          let d = 0;
          const cs = new CipherState(
            key,
            jittered(() => delays[d++ % delays.length]!),
          );
          const started: Promise<unknown>[] = [];
          for (const op of ops) started.push(op === "rekey" ? cs.rekey() : cs.encryptWithAd(ad, op));
          const results = await Promise.all(started);
          // The reference: the same operations one at a time, with OpenSSL.
          let k = key.slice();
          let n = 0n;
          ops.forEach((op, i) => {
            if (op === "rekey") {
              k = opensslEncrypt(k, 2n ** 64n - 1n, new Uint8Array(0), new Uint8Array(32)).slice(0, 32);
              return;
            }
            const r = results[i] as { ok: boolean; value: Uint8Array };
            expect(r.ok).toBe(true);
            expect(r.value).toEqual(opensslEncrypt(k, n++, ad, op));
          });
          expect(cs.nonce).toBe(n);
        },
      ),
      { numRuns: runs },
    );
  }, 120_000);

  it("concurrent decrypts complete in order; a forged one fails and leaves n where it was (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 24 }), { minLength: 1, maxLength: 10 }),
        fc.nat(),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 8 }),
        async (messages, forgedAt, delays) => {
          const sender = new CipherState(key);
          const sealed: Uint8Array[] = [];
          for (const m of messages) {
            const r = await sender.encryptWithAd(ad, m);
            if (!r.ok) throw r.error;
            sealed.push(r.value);
          }
          const bad = forgedAt % messages.length;
          const forged = sealed[bad]!.slice();
          forged[forged.length - 1]! ^= 1;
          let d = 0;
          const receiver = new CipherState(
            key,
            jittered(() => delays[d++ % delays.length]!),
          );
          const before = sealed.slice(0, bad).map((c) => receiver.decryptWithAd(ad, c));
          const failed = receiver.decryptWithAd(ad, forged);
          const results = await Promise.all(before);
          for (const [i, r] of results.entries()) expect(r.ok && r.value).toEqual(messages[i]);
          const f = await failed;
          expect(!f.ok && f.error.code).toBe("LOFT_ERR_DECRYPT");
          expect(receiver.nonce).toBe(BigInt(bad));
          // The genuine message still opens: the failure changed nothing.
          const rest = await Promise.all(sealed.slice(bad).map((c) => receiver.decryptWithAd(ad, c)));
          for (const [i, r] of rest.entries()) expect(r.ok && r.value).toEqual(messages[bad + i]);
          expect(receiver.nonce).toBe(BigInt(messages.length));
        },
      ),
      { numRuns: runs },
    );
  }, 120_000);

  it("a wipe while encrypts are in flight makes them fail, never fall back to plaintext", async () => {
    const cs = new CipherState(
      key,
      jittered(() => 2),
    );
    const first = cs.encryptWithAd(ad, plaintext);
    const second = cs.encryptWithAd(ad, plaintext);
    cs.wipe();
    for (const r of [await first, await second])
      expect(!r.ok && r.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
  });
});

describe("CipherState with k imported once (Aead.withKey: WebCrypto AES-GCM)", () => {
  const runs = Math.max(50, Math.floor(FUZZ_RUNS / 100));
  const web = platformWebCrypto()!;

  /** The real WebCrypto provider, counting `importKey` calls and holding operations back by `delays`. */
  async function countingAes(delays: () => number = () => 0): Promise<{ aead: Aead; imports: () => number }> {
    let imports = 0;
    const hold = () => new Promise<void>((resolve) => setTimeout(resolve, delays()));
    const subtle: SubtleLike = {
      ...web.subtle,
      importKey: (...args: Parameters<SubtleLike["importKey"]>) => {
        imports++;
        return web.subtle.importKey(...args);
      },
      encrypt: async (...args: Parameters<SubtleLike["encrypt"]>) => {
        const data = args[2].slice();
        await hold();
        return web.subtle.encrypt(args[0], args[1], data);
      },
      decrypt: async (...args: Parameters<SubtleLike["decrypt"]>) => {
        const data = args[2].slice();
        await hold();
        return web.subtle.decrypt(args[0], args[1], data);
      },
      exportKey: (...args: Parameters<SubtleLike["exportKey"]>) => web.subtle.exportKey(...args),
      sign: (...args: Parameters<SubtleLike["sign"]>) => web.subtle.sign(...args),
      verify: (...args: Parameters<SubtleLike["verify"]>) => web.subtle.verify(...args),
      digest: (...args: Parameters<SubtleLike["digest"]>) => web.subtle.digest(...args),
      deriveBits: (...args: Parameters<SubtleLike["deriveBits"]>) => web.subtle.deriveBits(...args),
    };
    const aead = webCryptoParts({ subtle, getRandomValues: (a) => web.getRandomValues(a) }).aes256gcm!;
    expect(aead.withKey).toBeDefined();
    return { aead, imports: () => imports };
  }
  const aesState = (aead: Aead) => new CipherState(key, aead, AESGCM_SHA256.writeNonce);

  it("imports k once for many messages, and once more after a rekey; the bytes are noble's", async () => {
    const { aead, imports } = await countingAes();
    const cs = aesState(aead);
    const reference = aesState(nobleCrypto.aes256gcm);
    for (let i = 0; i < 20; i++) {
      const [a, b] = [await cs.encryptWithAd(ad, plaintext), await reference.encryptWithAd(ad, plaintext)];
      expect(a.ok && a.value).toEqual(b.ok && b.value);
    }
    expect(imports()).toBe(1);
    await cs.rekey();
    await reference.rekey();
    for (let i = 0; i < 5; i++) {
      const [a, b] = [await cs.encryptWithAd(ad, plaintext), await reference.encryptWithAd(ad, plaintext)];
      expect(a.ok && a.value).toEqual(b.ok && b.value);
    }
    expect(imports()).toBe(3); // the rekey's own seal, then the new k once
    const receiver = aesState((await countingAes()).aead);
    const sealed = await reference.encryptWithAd(ad, plaintext); // nonce 25 under the rekeyed key
    receiver.setNonce(25n);
    await receiver.rekey();
    const opened = await receiver.decryptWithAd(ad, sealed.ok ? sealed.value : new Uint8Array(0));
    expect(opened.ok && opened.value).toEqual(plaintext);
  });

  it("with an in-place `output`, the imported key's seal is its own fresh buffer, the bytes noble's in place", async () => {
    const cs = aesState((await countingAes()).aead);
    const reference = aesState(nobleCrypto.aes256gcm);
    const frame = new Uint8Array(plaintext.length + 16);
    frame.set(plaintext);
    const inPlace = frame.slice();
    const [a, b] = [
      await cs.encryptWithAd(ad, frame.subarray(0, plaintext.length), frame),
      await reference.encryptWithAd(ad, inPlace.subarray(0, plaintext.length), inPlace),
    ];
    expect(b.ok && b.value).toBe(inPlace); // noble wrote into `output`
    expect(a.ok && a.value).not.toBe(frame); // WebCrypto's own buffer, not copied back
    expect(a.ok && a.value).toEqual(inPlace);
    const opened = await aesState((await countingAes()).aead).decryptWithAd(ad, a.ok ? a.value : frame);
    expect(opened.ok && opened.value).toEqual(plaintext);
  });

  it("concurrent encrypts and rekeys through the imported key: nonces and keys in call order (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constant("rekey" as const), fc.uint8Array({ maxLength: 24 })), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 8 }),
        async (ops, delays) => {
          let d = 0;
          const cs = aesState((await countingAes(() => delays[d++ % delays.length]!)).aead);
          const started: Promise<unknown>[] = [];
          for (const op of ops) started.push(op === "rekey" ? cs.rekey() : cs.encryptWithAd(ad, op));
          const results = await Promise.all(started);
          const reference = aesState(nobleCrypto.aes256gcm);
          for (const [i, op] of ops.entries()) {
            if (op === "rekey") {
              await reference.rekey();
              continue;
            }
            const [r, want] = [
              results[i] as { ok: boolean; value: Uint8Array },
              await reference.encryptWithAd(ad, op),
            ];
            expect(r.ok && r.value).toEqual(want.ok && want.value);
          }
          expect(cs.nonce).toBe(reference.nonce);
        },
      ),
      { numRuns: runs },
    );
  }, 120_000);

  it("a forged message fails and leaves n; a wipe in flight fails the queued work, never plaintext", async () => {
    const { aead } = await countingAes(() => 2);
    const sender = aesState(nobleCrypto.aes256gcm);
    const sealed = await sender.encryptWithAd(ad, plaintext);
    if (!sealed.ok) throw sealed.error;
    const forged = sealed.value.slice();
    forged[0]! ^= 1;
    const receiver = aesState(aead);
    const f = await receiver.decryptWithAd(ad, forged);
    expect(!f.ok && f.error.code).toBe("LOFT_ERR_DECRYPT");
    expect(receiver.nonce).toBe(0n);
    const r = await receiver.decryptWithAd(ad, sealed.value);
    expect(r.ok && r.value).toEqual(plaintext);
    const cs = aesState(aead);
    const first = cs.encryptWithAd(ad, plaintext);
    const second = cs.encryptWithAd(ad, plaintext);
    cs.wipe();
    for (const x of [await first, await second])
      expect(!x.ok && x.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
  });
});

/**
 * The batch calls (docs/protocol/session.md §4): `encryptBatchWithAd` gives the ciphertexts of
 * `encryptWithAd` called once per plaintext, `decryptBatchWithAd` the plaintexts of
 * `decryptWithAd` in order up to the first failure, with n past exactly the ones that opened —
 * through the imported key (WebCrypto, the AEAD calls overlapping, finishing in any order) and
 * through a key copy per call (noble).
 */
describe("CipherState batches", () => {
  const web = platformWebCrypto()!;
  const aes = webCryptoParts({ subtle: web.subtle, getRandomValues: (a) => web.getRandomValues(a) })
    .aes256gcm!;
  const kinds = [
    ["WebCrypto AES-GCM (imported key)", () => new CipherState(key, aes, AESGCM_SHA256.writeNonce)],
    ["noble ChaChaPoly (a key copy per call)", () => new CipherState(key)],
  ] as const;
  const messages = Array.from({ length: 9 }, (_, i) => utf8(`frame ${i} `.repeat(i + 1)));

  it.each(kinds)("%s: a batch seals as one call per frame, and opens back", async (_, make) => {
    const one = make();
    const want: Uint8Array[] = [];
    for (const m of messages) {
      const r = await one.encryptWithAd(ad, m);
      if (!r.ok) throw r.error;
      want.push(r.value);
    }
    const batch = make();
    const got = await batch.encryptBatchWithAd(ad, messages);
    expect(got.ok && got.value).toEqual(want);
    expect(batch.nonce).toBe(BigInt(messages.length));
    const receiver = make();
    const opened = await receiver.decryptBatchWithAd(ad, want);
    expect(opened).toEqual({ opened: messages });
    expect(receiver.nonce).toBe(BigInt(messages.length));
  });

  it.each(kinds)(
    "%s: with outputs, the same ciphertexts, in place where a key copy seals (as encryptWithAd)",
    async (name, make) => {
      const one = await make().encryptBatchWithAd(ad, messages);
      if (!one.ok) throw one.error;
      // Each plaintext as the prefix of its own output, 16 spare bytes after it (a session frame).
      const outputs = messages.map((m) => {
        const out = new Uint8Array(m.length + 16);
        out.set(m);
        return out;
      });
      const got = await make().encryptBatchWithAd(
        ad,
        outputs.map((o) => o.subarray(0, o.length - 16)),
        outputs,
      );
      if (!got.ok) throw got.error;
      expect(got.value).toEqual(one.value);
      const inPlace = !name.startsWith("WebCrypto");
      expect(got.value.map((c, i) => c === outputs[i])).toEqual(messages.map(() => inPlace));
    },
  );

  it.each(kinds)(
    "%s: a forged or short frame stops the batch there; n is past the ones before it",
    async (_, make) => {
      const sender = make();
      const sealed = await sender.encryptBatchWithAd(ad, messages);
      if (!sealed.ok) throw sealed.error;
      const frames = sealed.value.map((c) => c.slice());
      frames[4]![3]! ^= 1;
      const receiver = make();
      const r = await receiver.decryptBatchWithAd(ad, frames);
      expect(r.opened).toEqual(messages.slice(0, 4));
      expect(r.error?.code).toBe("LOFT_ERR_DECRYPT");
      expect(receiver.nonce).toBe(4n);
      // The genuine frame 4 and the rest still open: the failure used no nonce (Noise §5.1).
      const rest = await receiver.decryptBatchWithAd(ad, sealed.value.slice(4));
      expect(rest).toEqual({ opened: messages.slice(4) });
      const short = await make().decryptBatchWithAd(ad, [
        sealed.value[0]!,
        new Uint8Array(15),
        sealed.value[2]!,
      ]);
      expect(short.opened).toEqual([messages[0]]);
      expect(short.error?.code).toBe("LOFT_ERR_DECRYPT");
    },
  );

  it.each(kinds)(
    "%s: a batch that would reach the reserved nonce fails whole and uses no nonce (Noise §5.1)",
    async (_, make) => {
      const cs = make();
      cs.setNonce(2n ** 64n - 3n);
      const r = await cs.encryptBatchWithAd(ad, messages.slice(0, 3));
      expect(!r.ok && r.error.code).toBe("LOFT_ERR_NONCE_EXHAUSTED");
      expect(cs.nonce).toBe(2n ** 64n - 3n);
      // What fits still goes, from the same nonce.
      const fits = await cs.encryptBatchWithAd(ad, messages.slice(0, 2));
      expect(fits.ok).toBe(true);
      expect(cs.nonce).toBe(2n ** 64n - 1n);
    },
  );

  it("a rekey between batches applies to the batch called after it; a wiped state fails the batch", async () => {
    const [a, b] = [kinds[0][1](), kinds[0][1]()];
    const first = a.encryptBatchWithAd(ad, messages.slice(0, 3));
    const rekeyed = a.rekey();
    const second = a.encryptBatchWithAd(ad, messages.slice(3, 6));
    await rekeyed;
    const [x, y] = [await first, await second];
    if (!x.ok || !y.ok) throw new Error("seal failed");
    expect((await b.decryptBatchWithAd(ad, x.value)).opened).toEqual(messages.slice(0, 3));
    await b.rekey();
    expect((await b.decryptBatchWithAd(ad, y.value)).opened).toEqual(messages.slice(3, 6));
    const wiped = kinds[0][1]();
    const pending = wiped.encryptBatchWithAd(ad, messages);
    wiped.wipe();
    const w = await pending;
    expect(!w.ok && w.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    expect((await wiped.decryptBatchWithAd(ad, x.value)).error?.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
  });
});
