/**
 * CipherState (Noise §5.1) and the crypto functions under it, checked against independent
 * implementations: node:crypto's ChaCha20-Poly1305 (OpenSSL) for ENCRYPT with the §12.3 nonce
 * layout and for the default REKEY (§4.2), and noble's RFC 5869 HKDF for Noise's HKDF (§4.3),
 * which is RFC 5869 with salt = ck and empty info.
 */
import { createCipheriv } from "node:crypto";
import { blake2s } from "@noble/hashes/blake2.js";
import { hkdf as rfc5869 } from "@noble/hashes/hkdf.js";
import { describe, expect, it } from "vitest";
import { utf8 } from "../bytes.ts";
import { CipherState } from "./cipher-state.ts";
import { hkdf } from "./primitives.ts";
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
  it("passes data through unchanged while k is empty", () => {
    const cs = new CipherState();
    expect(cs.hasKey()).toBe(false);
    const out = cs.encryptWithAd(ad, plaintext);
    expect(out.ok && out.value).toEqual(plaintext);
  });

  it("encrypts like OpenSSL ChaCha20-Poly1305 with nonce 0, 1, 2^32+5 (both halves of n)", () => {
    const cs = new CipherState(key);
    for (const n of [0n, 1n]) {
      const out = cs.encryptWithAd(ad, plaintext);
      expect(out.ok && out.value).toEqual(opensslEncrypt(key, n, ad, plaintext));
    }
    cs.setNonce(2n ** 32n + 5n);
    const out = cs.encryptWithAd(ad, plaintext);
    expect(out.ok && out.value).toEqual(opensslEncrypt(key, 2n ** 32n + 5n, ad, plaintext));
    expect(cs.nonce).toBe(2n ** 32n + 6n);
  });

  it("decrypts, and on an authentication failure returns LOFT_ERR_DECRYPT without advancing n", () => {
    const sender = new CipherState(key);
    const receiver = new CipherState(key);
    const sealed = sender.encryptWithAd(ad, plaintext);
    if (!sealed.ok) throw sealed.error;
    const tampered = sealed.value.slice();
    tampered[3]! ^= 1;
    const bad = receiver.decryptWithAd(ad, tampered);
    expect(!bad.ok && bad.error.code).toBe("LOFT_ERR_DECRYPT");
    expect(receiver.nonce).toBe(0n);
    const wrongAd = receiver.decryptWithAd(utf8("other"), sealed.value);
    expect(!wrongAd.ok && wrongAd.error.code).toBe("LOFT_ERR_DECRYPT");
    const good = receiver.decryptWithAd(ad, sealed.value);
    expect(good.ok && good.value).toEqual(plaintext);
    expect(receiver.nonce).toBe(1n);
    const short = receiver.decryptWithAd(ad, new Uint8Array(15));
    expect(!short.ok && short.error.code).toBe("LOFT_ERR_DECRYPT");
  });

  it("encrypts and decrypts in place into a caller's buffer", () => {
    const sender = new CipherState(key);
    const receiver = new CipherState(key);
    const buffer = new Uint8Array(plaintext.length + 16);
    buffer.set(plaintext);
    const sealed = sender.encryptWithAd(ad, buffer.subarray(0, plaintext.length), buffer);
    expect(sealed.ok && sealed.value).toBe(buffer);
    expect(buffer).toEqual(opensslEncrypt(key, 0n, ad, plaintext));
    const opened = receiver.decryptWithAd(ad, buffer, buffer.subarray(0, plaintext.length));
    expect(opened.ok && opened.value).toEqual(plaintext);
  });

  it("refuses to use the reserved nonce 2^64-1: LOFT_ERR_NONCE_EXHAUSTED", () => {
    const sender = new CipherState(key);
    const receiver = new CipherState(key);
    sender.setNonce(2n ** 64n - 2n);
    receiver.setNonce(2n ** 64n - 2n);
    const last = sender.encryptWithAd(ad, plaintext);
    expect(last.ok && last.value).toEqual(opensslEncrypt(key, 2n ** 64n - 2n, ad, plaintext));
    expect(sender.nonce).toBe(2n ** 64n - 1n);
    const over = sender.encryptWithAd(ad, plaintext);
    expect(!over.ok && over.error.code).toBe("LOFT_ERR_NONCE_EXHAUSTED");
    if (!last.ok) throw last.error;
    expect(receiver.decryptWithAd(ad, last.value).ok).toBe(true);
    const overRead = receiver.decryptWithAd(ad, last.value);
    expect(!overRead.ok && overRead.error.code).toBe("LOFT_ERR_NONCE_EXHAUSTED");
  });

  it("Rekey() sets k to the first 32 bytes of ENCRYPT(k, 2^64-1, empty, zeros) and keeps n (§4.2, §11.3)", () => {
    const cs = new CipherState(key);
    cs.setNonce(7n);
    cs.rekey();
    expect(cs.nonce).toBe(7n);
    const expectedKey = opensslEncrypt(key, 2n ** 64n - 1n, new Uint8Array(0), new Uint8Array(32)).slice(
      0,
      32,
    );
    const out = cs.encryptWithAd(ad, plaintext);
    expect(out.ok && out.value).toEqual(opensslEncrypt(expectedKey, 7n, ad, plaintext));
  });

  it("a wiped CipherState refuses to work instead of passing plaintext through", () => {
    const cs = new CipherState(key);
    cs.wipe();
    const out = cs.encryptWithAd(ad, plaintext);
    expect(!out.ok && out.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
    const back = cs.decryptWithAd(ad, plaintext);
    expect(!back.ok && back.error.code).toBe("LOFT_ERR_HANDSHAKE_STATE");
  });

  it("rejects a wrong key length at the call", () => {
    expect(() => new CipherState(new Uint8Array(31))).toThrow(RangeError);
  });
});

describe("HKDF and SymmetricState (Noise §4.3, §5.2)", () => {
  it("HKDF(ck, ikm, n) equals RFC 5869 HKDF-BLAKE2s with salt = ck and empty info", () => {
    const ck = blake2s(utf8("chaining key"));
    const ikm = utf8("input key material");
    const outputs = hkdf(ck, ikm, 3);
    const reference = rfc5869(blake2s, ikm, ck, new Uint8Array(0), 96);
    expect(outputs[0]).toEqual(reference.slice(0, 32));
    expect(outputs[1]).toEqual(reference.slice(32, 64));
    expect(outputs[2]).toEqual(reference.slice(64, 96));
  });

  it("InitializeSymmetric pads a short protocol name and hashes a long one", () => {
    const short = new SymmetricState("Noise_NN_25519_AESGCM_SHA256");
    const padded = new Uint8Array(32);
    padded.set(utf8("Noise_NN_25519_AESGCM_SHA256"));
    expect(short.getHandshakeHash()).toEqual(padded);
    const longName = "Noise_XX_25519_ChaChaPoly_BLAKE2s"; // 33 bytes > HASHLEN
    expect(new SymmetricState(longName).getHandshakeHash()).toEqual(blake2s(utf8(longName)));
  });

  it("MixHash, MixKey and EncryptAndHash chain as §5.2 says", () => {
    const name = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
    const ss = new SymmetricState(name);
    const h0 = blake2s(utf8(name));
    ss.mixHash(utf8("prologue"));
    const h1 = blake2s(new Uint8Array([...h0, ...utf8("prologue")]));
    expect(ss.getHandshakeHash()).toEqual(h1);
    ss.mixKey(utf8("dh output"));
    const [, tempK] = rfcOutputs(h0, utf8("dh output"));
    const sealed = ss.encryptAndHash(plaintext);
    expect(sealed.ok && sealed.value).toEqual(opensslEncrypt(tempK, 0n, h1, plaintext));
    if (!sealed.ok) throw sealed.error;
    expect(ss.getHandshakeHash()).toEqual(blake2s(new Uint8Array([...h1, ...sealed.value])));
  });
});

function rfcOutputs(ck: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const okm = rfc5869(blake2s, ikm, ck, new Uint8Array(0), 64);
  return [okm.slice(0, 32), okm.slice(32, 64)];
}
