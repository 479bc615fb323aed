/**
 * The AEAD seam (aead.ts): OpenSSL's ChaCha20-Poly1305 through node:crypto is the same primitive
 * as noble's — byte for byte, in place or not, rejecting what noble rejects — and a backend that
 * is not is refused at installation. With it installed, the published Noise vectors still pass.
 */
import * as crypto from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { type AeadBackend, aead, nobleAead, nodeCryptoAead, setAeadBackend } from "./aead.ts";
import { runVectorFile } from "./vectors.ts";

/** `npm run fuzz` raises FUZZ_RUNS twentyfold: give each property time in proportion. */
const PROPERTY_TIMEOUT = Math.max(60_000, FUZZ_RUNS * 5);

const node = nodeCryptoAead(crypto);

afterAll(() => setAeadBackend(nobleAead));

describe("nodeCryptoAead", () => {
  it(
    "seals and opens exactly like noble, in place or not (property)",
    () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ minLength: 12, maxLength: 12 }),
          fc.uint8Array({ maxLength: 40 }),
          fc.uint8Array({ maxLength: 300 }),
          fc.nat(),
          (key, nonce, ad, plaintext, flip) => {
            const want = nobleAead.seal(key, nonce, ad, plaintext);
            expect(node.seal(key, nonce, ad, plaintext)).toEqual(want);
            const buffer = new Uint8Array(plaintext.length + 16);
            buffer.set(plaintext);
            expect(node.seal(key, nonce, ad, buffer.subarray(0, plaintext.length), buffer)).toEqual(want);
            expect(node.open(key, nonce, ad, want)).toEqual(plaintext);
            expect(node.open(key, nonce, ad, buffer, buffer.subarray(0, plaintext.length))).toEqual(
              plaintext,
            );
            const forged = want.slice();
            forged[flip % forged.length]! ^= 1 << (flip % 8);
            expect(node.open(key, nonce, ad, forged)).toBeUndefined();
            expect(nobleAead.open(key, nonce, ad, forged)).toBeUndefined();
          },
        ),
        { numRuns: Math.ceil(FUZZ_RUNS / 5) },
      );
      expect(
        node.open(new Uint8Array(32), new Uint8Array(12), new Uint8Array(0), new Uint8Array(15)),
      ).toBeUndefined();
    },
    PROPERTY_TIMEOUT,
  );
});

describe("setAeadBackend", () => {
  it("refuses a backend that is not ChaCha20-Poly1305 as noble computes it", () => {
    const wrongCiphertext: AeadBackend = {
      ...node,
      name: "bad-seal",
      seal: (k, n, a, p, o) => {
        const c = node.seal(k, n, a, p, o);
        c[0] = (c[0] ?? 0) ^ 1;
        return c;
      },
    };
    const acceptsForgeries: AeadBackend = {
      ...node,
      name: "no-auth",
      open: (k, n, a, c) => node.open(k, n, a, c) ?? c.subarray(0, c.length - 16),
    };
    expect(() => setAeadBackend(wrongCiphertext)).toThrow(/bad-seal disagrees/);
    expect(() => setAeadBackend(acceptsForgeries)).toThrow(/accepted a forged tag/);
    expect(aead().name).toBe("noble");
  });

  it("installs node:crypto; the published Noise vectors and our XXhfs vectors still pass", () => {
    setAeadBackend(node);
    expect(aead().name).toBe("node:crypto");
    for (const file of [
      "../../test/vectors/noise/noise-xx-blake2s.json",
      "../../docs/vectors/noise-xxhfs-mlkem768.json",
    ]) {
      const outcomes = runVectorFile(JSON.parse(readFileSync(new URL(file, import.meta.url), "utf8")));
      expect(outcomes.filter((o) => o.status === "failed")).toEqual([]);
      expect(outcomes.filter((o) => o.status === "passed").length).toBeGreaterThanOrEqual(2);
    }
    setAeadBackend(nobleAead);
    expect(aead().name).toBe("noble");
  });
});
