/**
 * Noise's `ENCRYPT` / `DECRYPT` for ChaChaPoly (Noise Protocol Framework rev 34, §4.2, §12.3):
 * ChaCha20-Poly1305 of RFC 8439 §2.8, https://www.rfc-editor.org/rfc/rfc8439#section-2.8.
 *
 * One primitive, two implementations of it. noble's (`@noble/ciphers`) is the default and the only
 * one in browsers (WebCrypto has no ChaCha20-Poly1305). A Node host may install OpenSSL's through
 * `node:crypto` (docs/design.md, "Cryptography": "WebCrypto / node:crypto where a benchmark shows a real gain
 * for the same primitive" — bench/core.ts shows about 15× for 16 KiB transport messages):
 *
 *   import * as crypto from "node:crypto";
 *   setAeadBackend(nodeCryptoAead(crypto));      // once, at startup, before any session
 *
 * `nodeCryptoAead` takes the module as an argument so core/ never imports a Node built-in.
 * `setAeadBackend` refuses (throws) a backend that does not reproduce noble's output on a fixed
 * input, including a nonce that uses both 32-bit halves and a rejected forgery.
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";

export const AEAD_TAG_LENGTH = 16;

export interface AeadBackend {
  readonly name: string;
  /** ENCRYPT: ciphertext ‖ tag, into `output` (plaintext.length + 16 bytes) when given. */
  seal(
    key: Uint8Array,
    nonce: Uint8Array,
    ad: Uint8Array,
    plaintext: Uint8Array,
    output?: Uint8Array,
  ): Uint8Array;
  /** DECRYPT: the plaintext (into `output` when given), or undefined when authentication fails. */
  open(
    key: Uint8Array,
    nonce: Uint8Array,
    ad: Uint8Array,
    ciphertext: Uint8Array,
    output?: Uint8Array,
  ): Uint8Array | undefined;
}

export const nobleAead: AeadBackend = {
  name: "noble",
  seal: (key, nonce, ad, plaintext, output) => chacha20poly1305(key, nonce, ad).encrypt(plaintext, output),
  open: (key, nonce, ad, ciphertext, output) => {
    if (ciphertext.length < AEAD_TAG_LENGTH) return undefined;
    try {
      return chacha20poly1305(key, nonce, ad).decrypt(ciphertext, output);
    } catch {
      return undefined;
    }
  },
};

/** The slice of `node:crypto` we use, typed structurally so core/ needs no Node types. */
export interface NodeCryptoLike {
  createCipheriv(
    algorithm: "chacha20-poly1305",
    key: Uint8Array,
    iv: Uint8Array,
    options: { authTagLength: number },
  ): {
    setAAD(aad: Uint8Array, options: { plaintextLength: number }): unknown;
    update(data: Uint8Array): Uint8Array;
    final(): Uint8Array;
    getAuthTag(): Uint8Array;
  };
  createDecipheriv(
    algorithm: "chacha20-poly1305",
    key: Uint8Array,
    iv: Uint8Array,
    options: { authTagLength: number },
  ): {
    setAAD(aad: Uint8Array, options: { plaintextLength: number }): unknown;
    setAuthTag(tag: Uint8Array): unknown;
    update(data: Uint8Array): Uint8Array;
    final(): Uint8Array;
  };
}

/** ChaCha20-Poly1305 from OpenSSL through `node:crypto` (pass the module in). */
export function nodeCryptoAead(crypto: NodeCryptoLike): AeadBackend {
  const options = { authTagLength: AEAD_TAG_LENGTH };
  return {
    name: "node:crypto",
    seal(key, nonce, ad, plaintext, output) {
      const cipher = crypto.createCipheriv("chacha20-poly1305", key, nonce, options);
      cipher.setAAD(ad, { plaintextLength: plaintext.length });
      const body = cipher.update(plaintext); // a fresh buffer: `plaintext` may be a prefix of `output`
      cipher.final();
      const out = output ?? new Uint8Array(plaintext.length + AEAD_TAG_LENGTH);
      if (out.length !== plaintext.length + AEAD_TAG_LENGTH) throw new RangeError("seal: output length");
      out.set(body);
      out.set(cipher.getAuthTag(), plaintext.length);
      return out;
    },
    open(key, nonce, ad, ciphertext, output) {
      if (ciphertext.length < AEAD_TAG_LENGTH) return undefined;
      const length = ciphertext.length - AEAD_TAG_LENGTH;
      const decipher = crypto.createDecipheriv("chacha20-poly1305", key, nonce, options);
      decipher.setAAD(ad, { plaintextLength: length });
      decipher.setAuthTag(ciphertext.subarray(length));
      let body: Uint8Array;
      try {
        body = decipher.update(ciphertext.subarray(0, length));
        decipher.final(); // throws on a bad tag; `body` is then discarded unread
      } catch {
        return undefined;
      }
      const out = output ?? new Uint8Array(length);
      if (out.length !== length) throw new RangeError("open: output length");
      out.set(body);
      return out;
    },
  };
}

let current: AeadBackend = nobleAead;

/** The AEAD every CipherState uses. */
export function aead(): AeadBackend {
  return current;
}

/** Known-answer comparison against noble; throws if `backend` is not the same primitive. */
function checkAgainstNoble(backend: AeadBackend): void {
  const key = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
  const nonce = new Uint8Array([0, 0, 0, 0, 7, 6, 5, 4, 3, 2, 1, 0xff]);
  const ad = Uint8Array.from({ length: 12 }, (_, i) => 0x50 + i);
  for (const length of [0, 1, 64, 1000]) {
    const plaintext = Uint8Array.from({ length }, (_, i) => (i * 29 + 7) & 0xff);
    const want = nobleAead.seal(key, nonce, ad, plaintext);
    const got = backend.seal(key, nonce, ad, plaintext);
    if (got.length !== want.length || got.some((b, i) => b !== want[i]))
      throw new Error(`AEAD backend ${backend.name} disagrees with noble (seal, ${length} bytes)`);
    const back = backend.open(key, nonce, ad, want);
    if (back === undefined || back.length !== length || back.some((b, i) => b !== plaintext[i]))
      throw new Error(`AEAD backend ${backend.name} disagrees with noble (open, ${length} bytes)`);
    const forged = want.slice();
    forged[forged.length - 1]! ^= 1;
    if (backend.open(key, nonce, ad, forged) !== undefined)
      throw new Error(`AEAD backend ${backend.name} accepted a forged tag`);
  }
}

/**
 * Install `backend` for every CipherState created or used afterwards, after checking it against
 * noble. For host entry points only, once at startup.
 */
export function setAeadBackend(backend: AeadBackend): void {
  checkAgainstNoble(backend);
  current = backend;
}
