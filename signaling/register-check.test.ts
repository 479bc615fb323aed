/**
 * The server's native REGISTER checks accept exactly what core `decodeIdentity` accepts: valid
 * identities, forged ones, small-order and low-order keys, non-canonical bytes and random input.
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeCanonical } from "../core/codec/codec.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import {
  createUserIdentity,
  decodeIdentity,
  encodeIdentity,
  type Identity,
  type IdentityVerifiedData,
  identitySignedBytes,
  isValidNoiseKey,
} from "../core/identity/identity.ts";
import { SIGNATURE_CONTEXTS, signWithContext } from "../core/identity/signature.ts";
import { signRegisterRequest } from "../core/wire/signed.ts";
import { FUZZ_RUNS } from "../test/support/fuzz.ts";
import {
  checkIdentityNative,
  IdentityCache,
  nativeIdentityKeyValid,
  nativeNoiseKeyValid,
  registerSignatureValid,
} from "./register-check.ts";

const P = 2n ** 255n - 19n;
const le = (n: bigint) => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};
/** RFC 7748 low-order u-coordinates and their non-canonical twins (u + p). */
const LOW_ORDER_U = [
  0n,
  1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
  P - 1n,
  P,
  P + 1n,
].map(le);

async function agree(bytes: Uint8Array) {
  const core = await decodeIdentity(nobleCrypto, bytes);
  const native = checkIdentityNative(bytes);
  // Same acceptance; the error code may differ (the native path checks the signature first).
  expect(native.ok).toBe(core.ok);
}

/** An identity of `base` with some verified fields replaced, re-signed by `base`'s key. */
function resigned(
  base: ReturnType<typeof createUserIdentity>,
  change: Partial<IdentityVerifiedData>,
): Uint8Array {
  const verified = { ...base.identity.verified, ...change };
  const signature = ed25519.sign(identitySignedBytes(verified), base.privateIdentityKey);
  return encodeIdentity({ verified, signature } as Identity);
}

describe("native identity checks agree with core", () => {
  it("on valid, forged, small-order, low-order and non-canonical identities", async () => {
    const user = createUserIdentity({ username: "alice", now: 1_700_000_000_000 });
    const good = encodeIdentity(user.identity);
    await agree(good);
    expect(checkIdentityNative(good).ok).toBe(true);

    const forged = good.slice();
    forged[5]! ^= 1; // inside the signature
    await agree(forged);

    for (const u of LOW_ORDER_U) {
      expect(nativeNoiseKeyValid(u)).toBe(isValidNoiseKey(u));
      await agree(resigned(user, { noise_key: u }));
    }
    // A small-order Ed25519 key cannot sign validly; signed anyway by another key it is refused.
    await agree(
      resigned(user, { identity_key: new Uint8Array(32).fill(0).map((_, i) => (i === 0 ? 1 : 0)) }),
    );
    await agree(resigned(user, { username: "" }));
    await agree(resigned(user, { username: "x\u0000y" }));

    // Non-canonical: the same map with an integer in a longer form.
    const verbose = encodeCanonical({ signature: user.identity.signature, verified: user.identity.verified });
    await agree(verbose);
    await agree(new Uint8Array([0x80]));
    await agree(new Uint8Array(0));
  });

  it("on small-order Ed25519 keys, their non-canonical twins, and a signature forged under one", async () => {
    const user = createUserIdentity({ username: "erin", now: 1 });
    const hex = (h: string) => Uint8Array.from(h.match(/../g)!.map((b) => Number.parseInt(b, 16)));
    const small = [
      "0100000000000000000000000000000000000000000000000000000000000000",
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0000000000000000000000000000000000000000000000000000000000000080",
      "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
      "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
      "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
      "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
      // Non-canonical: y + p for y = 0 and 1, and "negative zero" x for y = ±1.
      "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "0100000000000000000000000000000000000000000000000000000000000080",
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ].map(hex);
    for (const k of small) expect(nativeIdentityKeyValid(k)).toBe(false);
    // Real keys pass.
    for (let i = 0; i < 64; i++) {
      const k = ed25519.getPublicKey(crypto.getRandomValues(new Uint8Array(32)));
      expect(nativeIdentityKeyValid(k)).toBe(true);
    }
    // R = identity point, S = 0 "verifies" under the identity point for every message
    // (cofactorless check: [0]B = R + [k]A = 0): both paths must refuse the identity.
    const forgedSig = new Uint8Array(64);
    forgedSig[0] = 1;
    const verified = { ...user.identity.verified, identity_key: small[0]! };
    const bytes = encodeIdentity({ verified, signature: forgedSig } as Identity);
    await agree(bytes);
    expect(checkIdentityNative(bytes).ok).toBe(false);
  });

  it("on random keys and random bytes", async () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (k) => {
        expect(nativeNoiseKeyValid(k)).toBe(isValidNoiseKey(k));
      }),
      { numRuns: Math.min(FUZZ_RUNS, 2_000) },
    );
    const good = encodeIdentity(createUserIdentity({ username: "bob", now: 1 }).identity);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: good.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        async (i, x) => {
          const b = good.slice();
          b[i]! ^= x;
          await agree(b);
        },
      ),
      { numRuns: Math.min(FUZZ_RUNS, 2_000) },
    );
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (b) => await agree(b)),
      { numRuns: Math.min(FUZZ_RUNS, 2_000) },
    );
  });
});

describe("REGISTER signature and the identity cache", () => {
  it("verifies REGISTER signatures natively and caches only verified identities", async () => {
    const user = createUserIdentity({ username: "carol", now: Date.now() });
    const req = await signRegisterRequest(nobleCrypto, user, { ttl_seconds: 60, timestamp: 1 });
    const cache = new IdentityCache(2);
    const first = cache.check(req.identity);
    if (!first.ok) throw first.error;
    expect(first.cached).toBeUndefined();
    expect(registerSignatureValid(first.value, req)).toBe(true);
    expect(registerSignatureValid(first.value, { ...req, ttl_seconds: 61 })).toBe(false);
    const sig = await signWithContext(
      nobleCrypto,
      user.privateIdentityKey,
      SIGNATURE_CONTEXTS.relayRegister,
      new Uint8Array(1),
    );
    expect(registerSignatureValid(first.value, { ...req, signature: sig as Uint8Array<ArrayBuffer> })).toBe(
      false,
    );
    expect(cache.check(req.identity).cached).toBe(true);

    const bad = req.identity.slice();
    bad[3]! ^= 1;
    expect(cache.check(bad).ok).toBe(false);
    expect(cache.size).toBe(1);
    // Full: the least recently used goes, nothing is refused.
    for (const name of ["d", "e", "f"])
      expect(cache.check(encodeIdentity(createUserIdentity({ username: name, now: 1 }).identity)).ok).toBe(
        true,
      );
    expect(cache.size).toBe(2);
  });
});
