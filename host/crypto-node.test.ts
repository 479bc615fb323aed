/**
 * What the node:crypto backend adds over the checks every backend passes
 * (core/crypto/provider.test.ts, test/vectors/backends.test.ts): the X25519 KeyObjects it keeps
 * beside the raw keys must never outlive the bytes they were made from.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { FUZZ_RUNS } from "../test/support/fuzz.ts";
import { createNodeCryptoProvider, nodeCryptoParts } from "./crypto-node.ts";

const key = (byte: number) => new Uint8Array(32).fill(byte);

describe("node:crypto X25519 handles kept beside the raw keys", () => {
  it("a key array wiped or rewritten in place is imported afresh, never served by its old handle", async () => {
    const c = await createNodeCryptoProvider();
    expect(c.backends.x25519).toBe("node");
    const mine = key(1);
    const theirs = await nobleCrypto.x25519.publicKey(key(2));
    const first = await c.x25519.sharedSecret(mine, theirs);
    expect(first).toEqual(await nobleCrypto.x25519.sharedSecret(key(1), theirs));
    // The same arrays again (the handles' case), then each rewritten in place.
    expect(await c.x25519.sharedSecret(mine, theirs)).toEqual(first);
    mine.set(key(3));
    expect(await c.x25519.publicKey(mine)).toEqual(await nobleCrypto.x25519.publicKey(key(3)));
    expect(await c.x25519.sharedSecret(mine, theirs)).toEqual(
      await nobleCrypto.x25519.sharedSecret(key(3), theirs),
    );
    theirs.set(await nobleCrypto.x25519.publicKey(key(4)));
    expect(await c.x25519.sharedSecret(mine, theirs)).toEqual(
      await nobleCrypto.x25519.sharedSecret(key(3), theirs),
    );
    // Noise's wipe: an all-zero private key is a valid X25519 scalar (clamped), not the old key.
    mine.fill(0);
    expect(await c.x25519.publicKey(mine)).toEqual(await nobleCrypto.x25519.publicKey(new Uint8Array(32)));
    // A low-order point refused again after the array held a good key.
    theirs.fill(0);
    expect(await c.x25519.sharedSecret(mine, theirs)).toBeUndefined();
  });

  it("agrees with noble over sequences of calls on arrays rewritten between calls (property)", async () => {
    const parts = nodeCryptoParts();
    const x = parts.x25519!;
    const priv = new Uint8Array(32);
    const pub = new Uint8Array(32);
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            newPrivate: fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 })),
            newPublic: fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 })),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        async (steps) => {
          for (const step of steps) {
            if (step.newPrivate) priv.set(step.newPrivate);
            if (step.newPublic) pub.set(await nobleCrypto.x25519.publicKey(step.newPublic));
            expect(await x.publicKey(priv)).toEqual(await nobleCrypto.x25519.publicKey(priv));
            expect(await x.sharedSecret(priv, pub)).toEqual(await nobleCrypto.x25519.sharedSecret(priv, pub));
          }
        },
      ),
      { numRuns: Math.max(50, Math.floor(FUZZ_RUNS / 50)) },
    );
  });

  it("leaves the caller's key bytes as they were", async () => {
    const c = await createNodeCryptoProvider();
    const mine = key(9);
    const theirs = await nobleCrypto.x25519.publicKey(key(8));
    const theirsCopy = theirs.slice();
    await c.x25519.publicKey(mine);
    await c.x25519.sharedSecret(mine, theirs);
    await c.ed25519.sign(mine, new Uint8Array(3));
    expect(mine).toEqual(key(9));
    expect(theirs).toEqual(theirsCopy);
  });
});
