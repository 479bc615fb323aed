import { Encoder } from "@msgpack/msgpack";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createNodeCryptoProvider } from "../../host/crypto-node.ts";
import { concatBytes, equalBytes, fromHex, utf8 } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { createWebCryptoProvider } from "../crypto/webcrypto.ts";
import { LoftError } from "../errors.ts";
import {
  createUserIdentity,
  createUserIdentityWith,
  decodeIdentity,
  encodeIdentity,
  encodeIdentityVerifiedData,
  type Identity,
  type IdentityVerifiedData,
  identitySignedBytes,
  isValidNoiseKey,
  MAX_IDENTITY_BYTES,
  MAX_PROFILE_PICTURE_BYTES,
  signWithIdentity,
  tryCreateUserIdentity,
  updateIdentity,
  updateIdentityWith,
  verifyIdentity,
  verifyIdentitySignature,
} from "./identity.ts";
import { SIGNATURE_CONTEXTS, signWithContext } from "./signature.ts";

const NOW = 1_700_000_000_000;
const seed = (n: number) => new Uint8Array(32).fill(n);
const alice = createUserIdentity({ username: "alice", now: NOW, seed: seed(1) });

/** Sign arbitrary verified data with alice's key, bypassing createUserIdentity's checks. */
async function signedAs(data: IdentityVerifiedData, key = alice.privateIdentityKey): Promise<Identity> {
  return {
    verified: data,
    signature: await signWithContext(
      nobleCrypto,

      key,
      SIGNATURE_CONTEXTS.identity,
      encodeIdentityVerifiedData(data),
    ),
  };
}

function codeOf(r: { ok: boolean; error?: LoftError }): string | undefined {
  return r.ok ? undefined : r.error?.code;
}

describe("createUserIdentity", () => {
  it("derives both key pairs from the seed and signs version 1 at `now`", () => {
    const v = alice.identity.verified;
    expect(v.version).toBe(1);
    expect(v.created).toBe(NOW);
    expect(v.username).toBe("alice");
    expect(equalBytes(ed25519.getPublicKey(alice.privateIdentityKey), v.identity_key)).toBe(true);
    expect(equalBytes(x25519.getPublicKey(alice.privateNoiseKey), v.noise_key)).toBe(true);
    expect(v.flags).toEqual({
      uses_relay: false,
      is_machine_account: false,
      is_relay_server: false,
      prefers_async: false,
    });
    expect(v.extensions).toBeUndefined();
  });

  it("is deterministic for a seed and random without one", () => {
    const again = createUserIdentity({ username: "alice", now: NOW, seed: seed(1) });
    expect(equalBytes(encodeIdentity(again.identity), encodeIdentity(alice.identity))).toBe(true);
    const r1 = createUserIdentity({ username: "alice", now: NOW });
    const r2 = createUserIdentity({ username: "alice", now: NOW });
    expect(equalBytes(r1.identity.verified.identity_key, r2.identity.verified.identity_key)).toBe(false);
  });

  it("the signature covers the context-prefixed canonical encoding", () => {
    const expected = concatBytes(
      utf8("loft/sremp/identity/v1"),
      new Uint8Array([0]),
      encodeIdentityVerifiedData(alice.identity.verified),
    );
    expect(equalBytes(identitySignedBytes(alice.identity.verified), expected)).toBe(true);
    expect(ed25519.verify(alice.identity.signature, expected, alice.identity.verified.identity_key)).toBe(
      true,
    );
  });

  it("normalises the username to NFC and refuses invalid ones by throwing LOFT_ERR_BAD_IDENTITY", () => {
    const u = createUserIdentity({ username: "Jose\u0301", now: NOW, seed: seed(2) });
    expect(u.identity.verified.username).toBe("José");
    expect(() => createUserIdentity({ username: "", now: NOW })).toThrow(LoftError);
    const r = tryCreateUserIdentity({ username: "a\u202Eb", now: NOW });
    expect(codeOf(r)).toBe("LOFT_ERR_BAD_IDENTITY");
  });

  it("bounds extensions", async () => {
    const big = new Uint8Array(MAX_PROFILE_PICTURE_BYTES + 1);
    expect(
      codeOf(tryCreateUserIdentity({ username: "a", now: NOW, extensions: { profile_picture: big } })),
    ).toBe("LOFT_ERR_BAD_IDENTITY");
    const badKey = { additional_metadata: { "Bad Key": new Uint8Array(1) } };
    expect(codeOf(tryCreateUserIdentity({ username: "a", now: NOW, extensions: badKey }))).toBe(
      "LOFT_ERR_BAD_IDENTITY",
    );
    const many: Record<string, Uint8Array> = {};
    for (let i = 0; i < 17; i++) many[`k${i}`] = new Uint8Array(1);
    expect(
      codeOf(tryCreateUserIdentity({ username: "a", now: NOW, extensions: { additional_metadata: many } })),
    ).toBe("LOFT_ERR_BAD_IDENTITY");
    const ok = createUserIdentity({
      username: "a",
      now: NOW,
      seed: seed(3),
      extensions: { profile_picture: new Uint8Array(MAX_PROFILE_PICTURE_BYTES), additional_metadata: {} },
    });
    expect(ok.identity.verified.extensions?.additional_metadata).toBeUndefined();
    expect((await decodeIdentity(nobleCrypto, encodeIdentity(ok.identity))).ok).toBe(true);
  });

  it("throws on a bad `now` or seed (programming errors)", () => {
    expect(() => createUserIdentity({ username: "a", now: -1 })).toThrow(RangeError);
    expect(() => createUserIdentity({ username: "a", now: 1.5 })).toThrow(RangeError);
    expect(() => createUserIdentity({ username: "a", now: NOW, seed: new Uint8Array(31) })).toThrow(
      RangeError,
    );
  });
});

describe("encodeIdentity / decodeIdentity", () => {
  const bytes = encodeIdentity(alice.identity);

  it("round-trips and returns buffers independent of the input", async () => {
    const input = bytes.slice();
    const r = await decodeIdentity(nobleCrypto, input);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(equalBytes(encodeIdentity(r.value), bytes)).toBe(true);
    input.fill(0);
    expect(equalBytes(r.value.verified.identity_key, alice.identity.verified.identity_key)).toBe(true);
  });

  it("refuses every single-bit flip of the signature", async () => {
    const sigStart = bytes.indexOf(0xc4) + 2; // "signature" is the first key: bin8 header c4 40
    expect(equalBytes(bytes.subarray(sigStart, sigStart + 64), alice.identity.signature)).toBe(true);
    for (let bit = 0; bit < 64 * 8; bit += 7) {
      const t = bytes.slice();
      t[sigStart + (bit >> 3)]! ^= 1 << (bit & 7);
      expect(codeOf(await decodeIdentity(nobleCrypto, t))).toBe("LOFT_ERR_BAD_SIGNATURE");
    }
  });

  it("refuses changed signed data", async () => {
    const renamed = { ...alice.identity, verified: { ...alice.identity.verified, username: "mallory" } };
    expect(codeOf(await decodeIdentity(nobleCrypto, encodeIdentity(renamed)))).toBe("LOFT_ERR_BAD_SIGNATURE");
    const newer = { ...alice.identity, verified: { ...alice.identity.verified, version: 2 } };
    expect(codeOf(await decodeIdentity(nobleCrypto, encodeIdentity(newer)))).toBe("LOFT_ERR_BAD_SIGNATURE");
    const other = createUserIdentity({ username: "alice", now: NOW, seed: seed(9) });
    const swappedNoise = {
      ...alice.identity,
      verified: { ...alice.identity.verified, noise_key: other.identity.verified.noise_key },
    };
    expect(codeOf(await decodeIdentity(nobleCrypto, encodeIdentity(swappedNoise)))).toBe(
      "LOFT_ERR_BAD_SIGNATURE",
    );
  });

  it("refuses a signature made for another context with the right key", async () => {
    const payload = encodeIdentityVerifiedData(alice.identity.verified);
    const wrong = { ...alice.identity, signature: await signWithIdentity(nobleCrypto, alice, payload) };
    expect(codeOf(await verifyIdentity(nobleCrypto, wrong))).toBe("LOFT_ERR_BAD_SIGNATURE");
  });

  it("refuses non-canonical encodings of a validly signed identity", async () => {
    // version 1 as `cc 01` (uint 8) instead of the positive fixint `01`: same value, other bytes.
    expect(bytes[bytes.length - 1]).toBe(0x01);
    const wide = concatBytes(bytes.subarray(0, bytes.length - 1), new Uint8Array([0xcc, 0x01]));
    expect(codeOf(await decodeIdentity(nobleCrypto, wide))).toBe("LOFT_ERR_MALFORMED");
    // keys in insertion order instead of sorted
    const unsorted = new Encoder().encode({
      verified: alice.identity.verified,
      signature: alice.identity.signature,
    });
    expect(codeOf(await decodeIdentity(nobleCrypto, unsorted))).toBe("LOFT_ERR_MALFORMED");
    // the same identity is fine through verifyIdentity: only the byte form was wrong
    expect((await verifyIdentity(nobleCrypto, alice.identity)).ok).toBe(true);
  });

  it("maps shape and size problems to typed codes", async () => {
    expect(codeOf(await decodeIdentity(nobleCrypto, new Uint8Array(0)))).toBe("LOFT_ERR_MALFORMED");
    expect(codeOf(await decodeIdentity(nobleCrypto, concatBytes(bytes, new Uint8Array([0]))))).toBe(
      "LOFT_ERR_MALFORMED",
    );
    expect(codeOf(await decodeIdentity(nobleCrypto, bytes.subarray(0, bytes.length - 3)))).toBe(
      "LOFT_ERR_MALFORMED",
    );
    expect(codeOf(await decodeIdentity(nobleCrypto, new Uint8Array(40_000)))).toBe(
      "LOFT_ERR_FRAME_TOO_LARGE",
    );
    const extra = encodeIdentity(alice.identity);
    const withExtra = new Encoder({ sortKeys: true }).encode({
      signature: alice.identity.signature,
      verified: alice.identity.verified,
      extra: 1,
    });
    expect(extra.length).toBeGreaterThan(0);
    expect(codeOf(await decodeIdentity(nobleCrypto, withExtra))).toBe("LOFT_ERR_SCHEMA");
    const nilExt = new Encoder({ sortKeys: true }).encode({
      signature: alice.identity.signature,
      verified: { ...alice.identity.verified, extensions: null },
    });
    expect(codeOf(await decodeIdentity(nobleCrypto, nilExt))).toBe("LOFT_ERR_SCHEMA");
    expect(
      codeOf(
        await verifyIdentity(nobleCrypto, {
          verified: alice.identity.verified,
          signature: new Uint8Array(63),
        }),
      ),
    ).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(await verifyIdentity(nobleCrypto, "nope"))).toBe("LOFT_ERR_SCHEMA");
  });

  it("refuses an unusable identity key or noise key even when correctly signed", async () => {
    // identity point of small order (the neutral element, y = 1): RFC 8032 decodes it, we refuse it.
    const neutral = fromHex("0100000000000000000000000000000000000000000000000000000000000000");
    const smallOrder = await signedAs({ ...alice.identity.verified, identity_key: neutral });
    expect(codeOf(await verifyIdentity(nobleCrypto, smallOrder))).toBe("LOFT_ERR_BAD_IDENTITY");
    // X25519 u = 0 and u = 1 are low order; u = p (non-canonical) and the top bit set are refused too.
    for (const hex of [
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0100000000000000000000000000000000000000000000000000000000000000",
      "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "0900000000000000000000000000000000000000000000000000000000000080",
    ]) {
      const id = await signedAs({ ...alice.identity.verified, noise_key: fromHex(hex) });
      expect(codeOf(await verifyIdentity(nobleCrypto, id))).toBe("LOFT_ERR_BAD_IDENTITY");
    }
  });

  it("refuses a signed username that breaks the username rules", async () => {
    for (const username of ["e\u0301", " alice", "a\u0000b", "x".repeat(41)]) {
      expect(
        codeOf(await verifyIdentity(nobleCrypto, await signedAs({ ...alice.identity.verified, username }))),
      ).toBe("LOFT_ERR_BAD_IDENTITY");
    }
  });
});

describe("updateIdentity", () => {
  it("increments the version, sets created, re-signs, keeps the identity key", async () => {
    const next = updateIdentity(alice, { username: "Alice B." }, NOW + 5);
    const v = next.identity.verified;
    expect(v.version).toBe(2);
    expect(v.created).toBe(NOW + 5);
    expect(v.username).toBe("Alice B.");
    expect(equalBytes(v.identity_key, alice.identity.verified.identity_key)).toBe(true);
    expect(equalBytes(v.noise_key, alice.identity.verified.noise_key)).toBe(true);
    expect(next.privateNoiseKey).toBe(alice.privateNoiseKey);
    expect((await decodeIdentity(nobleCrypto, encodeIdentity(next.identity))).ok).toBe(true);
  });

  it("rotates the noise key, deterministically from a noise seed", () => {
    const a = updateIdentity(alice, { noiseSeed: seed(7) }, NOW + 1);
    const b = updateIdentity(alice, { noiseSeed: seed(7) }, NOW + 1);
    expect(equalBytes(a.identity.verified.noise_key, alice.identity.verified.noise_key)).toBe(false);
    expect(equalBytes(a.identity.verified.noise_key, b.identity.verified.noise_key)).toBe(true);
    expect(equalBytes(x25519.getPublicKey(a.privateNoiseKey), a.identity.verified.noise_key)).toBe(true);
    const random = updateIdentity(alice, { rotateNoiseKey: true }, NOW + 1);
    expect(equalBytes(random.identity.verified.noise_key, alice.identity.verified.noise_key)).toBe(false);
  });

  it("changes flags and extensions; null removes extensions", () => {
    const withPic = updateIdentity(
      alice,
      { extensions: { profile_picture: new Uint8Array([1, 2]) } },
      NOW + 1,
    );
    expect(withPic.identity.verified.extensions?.profile_picture).toEqual(new Uint8Array([1, 2]));
    const flagged = updateIdentity(withPic, { flags: { prefers_async: true } }, NOW + 2);
    expect(flagged.identity.verified.flags.prefers_async).toBe(true);
    expect(flagged.identity.verified.extensions?.profile_picture).toEqual(new Uint8Array([1, 2]));
    const cleared = updateIdentity(flagged, { extensions: null }, NOW + 3);
    expect(cleared.identity.verified.extensions).toBeUndefined();
    expect(cleared.identity.verified.version).toBe(4);
  });

  it("refuses a private key that does not belong to the identity", () => {
    const bob = createUserIdentity({ username: "bob", now: NOW, seed: seed(4) });
    expect(() => updateIdentity({ ...alice, privateIdentityKey: bob.privateIdentityKey }, {}, NOW)).toThrow(
      RangeError,
    );
  });
});

describe("signWithIdentity / verifyIdentitySignature", async () => {
  const message = utf8("hello");
  const sig = await signWithIdentity(nobleCrypto, alice, message);

  it("verifies under the identity key only, over exactly the message", async () => {
    expect(
      await verifyIdentitySignature(nobleCrypto, alice.identity.verified.identity_key, message, sig),
    ).toBe(true);
    const bob = createUserIdentity({ username: "bob", now: NOW, seed: seed(4) });
    expect(await verifyIdentitySignature(nobleCrypto, bob.identity.verified.identity_key, message, sig)).toBe(
      false,
    );
    expect(
      await verifyIdentitySignature(nobleCrypto, alice.identity.verified.identity_key, utf8("hellO"), sig),
    ).toBe(false);
  });

  it("is not a raw Ed25519 signature of the message (domain separated)", () => {
    expect(ed25519.verify(sig, message, alice.identity.verified.identity_key)).toBe(false);
  });

  it("returns false, never throws, for malformed inputs", async () => {
    const key = alice.identity.verified.identity_key;
    expect(await verifyIdentitySignature(nobleCrypto, key.subarray(1), message, sig)).toBe(false);
    expect(await verifyIdentitySignature(nobleCrypto, key, message, sig.subarray(1))).toBe(false);
    expect(await verifyIdentitySignature(nobleCrypto, new Uint8Array(32).fill(0xff), message, sig)).toBe(
      false,
    );
    expect(await verifyIdentitySignature(nobleCrypto, key, message, new Uint8Array(64).fill(0xff))).toBe(
      false,
    );
    expect(await verifyIdentitySignature(nobleCrypto, null as unknown as Uint8Array, message, sig)).toBe(
      false,
    );
  });
});

describe("size bound", () => {
  it("an identity whose encoding would exceed MAX_IDENTITY_BYTES is refused at creation", () => {
    const meta: Record<string, Uint8Array> = {};
    for (let i = 0; i < 16; i++) meta[`k${i}`] = new Uint8Array(1024);
    const r = tryCreateUserIdentity({
      username: "big",
      now: NOW,
      extensions: { profile_picture: new Uint8Array(MAX_PROFILE_PICTURE_BYTES), additional_metadata: meta },
    });
    expect(codeOf(r)).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });

  it("exactly MAX_IDENTITY_BYTES is accepted, one byte more is not", async () => {
    const meta: Record<string, Uint8Array> = {};
    for (let i = 0; i < 16; i++) meta[`k${i}`] = new Uint8Array(1024);
    const make = (picture: number) =>
      tryCreateUserIdentity({
        username: "edge",
        now: NOW,
        seed: seed(8),
        extensions: { profile_picture: new Uint8Array(picture), additional_metadata: meta },
      });
    const probe = make(300);
    if (!probe.ok) throw probe.error;
    const exact = 300 + (MAX_IDENTITY_BYTES - encodeIdentity(probe.value.identity).length);
    const atLimit = make(exact);
    expect(atLimit.ok && encodeIdentity(atLimit.value.identity).length).toBe(MAX_IDENTITY_BYTES);
    if (atLimit.ok)
      expect((await decodeIdentity(nobleCrypto, encodeIdentity(atLimit.value.identity))).ok).toBe(true);
    expect(codeOf(make(exact + 1))).toBe("LOFT_ERR_FRAME_TOO_LARGE");
  });
});

describe("identity creation on a provider (createUserIdentityWith, updateIdentityWith)", () => {
  const backends: [string, () => Promise<CryptoProvider>][] = [
    ["noble", async () => nobleCrypto],
    ["webcrypto", () => createWebCryptoProvider()],
    ["node", () => createNodeCryptoProvider()],
  ];
  const seed = new Uint8Array(32).map((_, i) => i * 7 + 1);
  const now = 1_700_000_000_000;

  it.each(backends)(
    "%s: the same bytes as the synchronous noble path, seeded and updated",
    async (_, make) => {
      const crypto = await make();
      const options = {
        username: "Zoë",
        now,
        seed,
        flags: { prefers_async: true },
        extensions: { profile_picture: utf8("p") },
      };
      const made = await createUserIdentityWith(crypto, options);
      expect(made).toEqual(createUserIdentity(options));
      const changes = { username: "zoe2", noiseSeed: new Uint8Array(32).fill(3), extensions: null };
      expect(await updateIdentityWith(crypto, made, changes, now + 1)).toEqual(
        updateIdentity(made, changes, now + 1),
      );
    },
  );

  it.each(backends)("%s: a fresh identity verifies, with keys that belong to it", async (_, make) => {
    const crypto = await make();
    const user = await createUserIdentityWith(crypto, { username: "fresh", now });
    expect((await decodeIdentity(nobleCrypto, encodeIdentity(user.identity))).ok).toBe(true);
    expect(user.identity.verified.identity_key).toEqual(ed25519.getPublicKey(user.privateIdentityKey));
    expect(user.identity.verified.noise_key).toEqual(x25519.getPublicKey(user.privateNoiseKey));
    const rotated = await updateIdentityWith(crypto, user, { rotateNoiseKey: true }, now + 1);
    expect(rotated.privateNoiseKey).not.toEqual(user.privateNoiseKey);
    expect(rotated.identity.verified.noise_key).toEqual(x25519.getPublicKey(rotated.privateNoiseKey));
    expect((await decodeIdentity(nobleCrypto, encodeIdentity(rotated.identity))).ok).toBe(true);
  });

  it.each(backends)("%s: bad input is refused as by the synchronous path", async (_, make) => {
    const crypto = await make();
    await expect(createUserIdentityWith(crypto, { username: "", now })).rejects.toMatchObject({
      code: "LOFT_ERR_BAD_IDENTITY",
    });
    await expect(createUserIdentityWith(crypto, { username: "a", now: -1 })).rejects.toThrow(RangeError);
    const other = createUserIdentity({ username: "other", now, seed: new Uint8Array(32).fill(9) });
    const mismatched = { ...other, privateIdentityKey: new Uint8Array(32).fill(4) };
    await expect(updateIdentityWith(crypto, mismatched, { username: "x" }, now + 1)).rejects.toThrow(
      /does not match/,
    );
  });
});

describe("isValidNoiseKey: the low-order list agrees with probing each key by X25519", () => {
  const P = 2n ** 255n - 19n;
  const le = (u: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((u >> BigInt(8 * i)) & 0xffn));
  /** The rule the list replaced: canonical, and a clamped scalar times the key is not all-zero. */
  const probe = (key: Uint8Array): boolean => {
    if ((key[31]! & 0x80) !== 0) return false;
    let u = 0n;
    for (let i = 31; i >= 0; i--) u = (u << 8n) | BigInt(key[i]!);
    if (u >= P) return false;
    try {
      x25519.scalarMult(new Uint8Array(32).fill(0x42), key);
      return true;
    } catch {
      return false;
    }
  };

  it("on the low-order points, their neighbours, the ends of the range and non-canonical encodings", () => {
    const order8 = [
      325606250916557431795983626356110631294008115727848805560023387167927233504n,
      39382357235489614581723060781553021112529911719440698176882885853963445705823n,
    ];
    const us = new Set<bigint>();
    for (let d = 0n; d < 16n; d++) for (const u of [d, P - 1n - d, P + d]) us.add(u);
    for (const u of order8) for (let d = -4n; d <= 4n; d++) us.add(u + d);
    let refused = 0;
    for (const u of us) {
      const key = le(u);
      expect(isValidNoiseKey(key)).toBe(probe(key));
      if (u < P && !probe(key)) refused++;
      const high = key.slice();
      high[31]! |= 0x80; // the top bit set: never canonical
      expect(isValidNoiseKey(high)).toBe(false);
    }
    expect(refused).toBe(5); // 0, 1, p − 1 and the two points of order 8
  });

  it("on random keys and real public keys (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
        expect(isValidNoiseKey(key)).toBe(probe(key));
        const real = x25519.getPublicKey(key);
        expect(isValidNoiseKey(real)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });
});
