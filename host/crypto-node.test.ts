/**
 * What the node:crypto backend adds over the checks every backend passes
 * (core/crypto/provider.test.ts, test/vectors/backends.test.ts): the X25519 KeyObjects it keeps
 * beside the raw keys must never outlive the bytes they were made from; ML-KEM-768 is native
 * exactly where node:crypto has it (Node ≥ 24.7), noble elsewhere. What this Node has is probed
 * (a key built, a decapsulation run), never read off its version, so a test that needs a feature
 * runs wherever the runtime has it.
 */
import * as nodeCrypto from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { utf8 } from "../core/bytes.ts";
import { composeProvider } from "../core/crypto/compose.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import { HandshakeState } from "../core/noise/handshake-state.ts";
import { XX, XX_HFS } from "../core/noise/patterns.ts";
import { generateKeyPair } from "../core/noise/primitives.ts";
import {
  acceptInitialMessage,
  createPrekeyStore,
  encodePrekeyBundle,
  initiateSession,
  prekeyBundle,
} from "../core/prekey/index.ts";
import {
  generateRatchetKeyPair,
  ratchetAssociatedData,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetFromHandshake,
} from "../core/ratchet/index.ts";
import { FUZZ_RUNS } from "../test/support/fuzz.ts";
import {
  createNodeCryptoProvider,
  holdsX25519PrivateHandle,
  type NodeKemApi,
  nodeCryptoParts,
  nodeMlKem768,
  okpImportPath,
} from "./crypto-node.ts";

const key = (byte: number) => new Uint8Array(32).fill(byte);

const must = <T>(r: { ok: true; value: T } | { ok: false; error: Error }): T => {
  if (!r.ok) throw r.error;
  return r.value;
};

/**
 * `node` with every array passed as a private key to X25519's `sharedSecret` or ML-KEM's
 * `decapsulate` recorded in `used` (each array once), kept referenced as a caller may keep it.
 */
function recordingKeys(
  node: CryptoProvider,
  primitive: "x25519" | "mlkem768",
  used: Uint8Array[],
): CryptoProvider {
  const record = (k: Uint8Array) => {
    if (!used.includes(k)) used.push(k);
  };
  return primitive === "x25519"
    ? {
        ...node,
        x25519: {
          ...node.x25519,
          sharedSecret: (k, p) => {
            record(k);
            return node.x25519.sharedSecret(k, p);
          },
        },
      }
    : {
        ...node,
        mlkem768: {
          ...node.mlkem768,
          decapsulate: (k, c) => {
            record(k);
            return node.mlkem768.decapsulate(k, c);
          },
        },
      };
}

/** A Noise handshake of `pattern` between fresh static keys, through its first two messages. */
async function twoMessagesIn(pattern: typeof XX, prologue: string, crypto: CryptoProvider) {
  const [si, sr] = [await generateKeyPair(crypto), await generateKeyPair(crypto)];
  const start = (role: "initiator" | "responder", staticKeyPair: typeof si) =>
    HandshakeState.create({ pattern, role, prologue: utf8(prologue), staticKeyPair, crypto });
  const [initiator, responder] = [await start("initiator", si), await start("responder", sr)];
  must(await responder.readMessage(must(await initiator.writeMessage(new Uint8Array(0)))));
  must(await initiator.readMessage(must(await responder.writeMessage(new Uint8Array(0)))));
  return { initiator, responder };
}

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

  it("a Noise handshake's private keys hold no handle (OpenSSL's copy) once it is finished or aborted, while it is still referenced", async () => {
    const node = await createNodeCryptoProvider();
    // The arrays the handshakes pass as private keys, kept referenced (as a finished handshake
    // keeps its wiped static key): only `forget` can drop their handles.
    const used: Uint8Array[] = [];
    const crypto = recordingKeys(node, "x25519", used);
    const start = () => twoMessagesIn(XX, "handles", crypto);
    const finished = await start();
    must(
      await finished.responder.readMessage(must(await finished.initiator.writeMessage(new Uint8Array(0)))),
    );
    const during = used.filter(holdsX25519PrivateHandle).length;
    // ee, es (responder's static), se (initiator's static), each side: the handles the cache keeps.
    expect(during).toBeGreaterThan(0);
    must(await finished.initiator.finish());
    must(await finished.responder.finish());
    expect(used.filter(holdsX25519PrivateHandle)).toEqual([]);
    const aborted = await start();
    expect(used.filter(holdsX25519PrivateHandle).length).toBeGreaterThan(0);
    aborted.initiator.abort();
    aborted.responder.abort();
    expect(used.filter(holdsX25519PrivateHandle)).toEqual([]);
  });

  it("a Double Ratchet's replaced DH private keys hold no handle, while the states that held them are still referenced", async () => {
    const node = await createNodeCryptoProvider();
    const used: Uint8Array[] = [];
    const crypto = recordingKeys(node, "x25519", used);
    const ad = ratchetAssociatedData(key(0xa1), key(0xb2));
    const bobKeys = await generateRatchetKeyPair(undefined, crypto);
    let alice = must(
      await ratchetFromHandshake({
        role: "initiator",
        exported: key(7),
        ad,
        responderRatchetPublic: bobKeys.publicKey,
        crypto,
      }),
    );
    let bob = must(
      await ratchetFromHandshake({
        role: "responder",
        exported: key(7),
        ad,
        ratchetKeyPair: bobKeys,
        crypto,
      }),
    );
    // Every state of the conversation kept, as a caller may keep a consumed one.
    const states = [alice, bob];
    for (let turn = 0; turn < 4; turn++) {
      const [from, to] = turn % 2 === 0 ? [alice, bob] : [bob, alice];
      const sent = await ratchetEncrypt(from, utf8(`turn ${turn}`), 1, { crypto });
      const read = must(await ratchetDecrypt(to, sent.message, 1, { crypto }));
      expect(read.plaintext).toEqual(utf8(`turn ${turn}`));
      states.push(sent.state, read.state);
      if (turn % 2 === 0) [alice, bob] = [sent.state, read.state];
      else [bob, alice] = [sent.state, read.state];
    }
    // Each side stepped its DH ratchet twice: only the two current private keys may hold handles.
    const current = [alice.dhSelfSecret, bob.dhSelfSecret];
    const replaced = used.filter((k) => !current.includes(k));
    expect(replaced.length).toBeGreaterThanOrEqual(3);
    expect(replaced.filter(holdsX25519PrivateHandle)).toEqual([]);
    expect(current.filter(holdsX25519PrivateHandle).length).toBeGreaterThan(0);
    expect(states.length).toBe(10);
    // initAlice refusing a low-order key forgets the key pair it generated for it.
    used.length = 0;
    const refused = await ratchetFromHandshake({
      role: "initiator",
      exported: key(7),
      ad,
      responderRatchetPublic: new Uint8Array(32),
      crypto,
    });
    expect(refused.ok).toBe(false);
    expect(used.length).toBe(1);
    expect(used.filter(holdsX25519PrivateHandle)).toEqual([]);
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
      { numRuns: Math.max(30, Math.floor(FUZZ_RUNS / 300)) },
    );
  });

  it("imports private keys the cheapest way this Node accepts (raw, else JWK from `d`, else DER), never one the DER import disagrees with", async () => {
    // Probed here on a key of its own (Node 24 has "raw-private"; Node 20 and 22 build a JWK key
    // from `d` alone, which Node 24 refuses), not by version: a runtime offering a form gets it.
    const accepts = okpFormsAccepted();
    expect(okpImportPath()).toBe(accepts.raw ? "raw" : accepts.jwk ? "jwk" : "der");
    const c = await createNodeCryptoProvider();
    expect(c.backends.x25519).toBe("node");
    expect(c.backends.ed25519).toBe("node");
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), async (k) => {
        expect(await c.x25519.publicKey(k)).toEqual(await nobleCrypto.x25519.publicKey(k));
        expect(await c.ed25519.publicKey(k)).toEqual(await nobleCrypto.ed25519.publicKey(k));
      }),
      { numRuns: 50 },
    );
  });

  it("an X25519 whose public keys are wrong (a Node taking the JWK's empty `x` as the key) is refused at start-up", async () => {
    const x = nodeCryptoParts().x25519!;
    const provider = await composeProvider("node", "node", {
      x25519: { ...x, publicKey: async () => new Uint8Array(32) },
    });
    expect(provider.backends.x25519).toBe("noble");
    expect(await provider.x25519.publicKey(key(1))).toEqual(await nobleCrypto.x25519.publicKey(key(1)));
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

/**
 * Which raw OKP private-key imports this runtime's node:crypto accepts: each counts only if, for
 * both curves, the key it builds has the public key the PKCS#8 DER import of the same bytes gives.
 */
function okpFormsAccepted(): { raw: boolean; jwk: boolean } {
  const secret = nodeCrypto.randomBytes(32);
  const curves = { X25519: "302e020100300506032b656e04220420", Ed25519: "302e020100300506032b657004220420" };
  const spki = (k: nodeCrypto.KeyObject) =>
    nodeCrypto.createPublicKey(k).export({ format: "der", type: "spki" });
  const builds = (make: (crv: keyof typeof curves) => nodeCrypto.KeyObject) =>
    (Object.keys(curves) as (keyof typeof curves)[]).every((crv) => {
      const der = Buffer.concat([Buffer.from(curves[crv], "hex"), secret]);
      const want = spki(nodeCrypto.createPrivateKey({ key: der, format: "der", type: "pkcs8" }));
      try {
        return spki(make(crv)).equals(want);
      } catch {
        return false;
      }
    });
  return {
    raw: builds((crv) =>
      nodeCrypto.createPrivateKey({
        key: secret,
        format: "raw-private",
        asymmetricKeyType: crv.toLowerCase(),
      } as unknown as Parameters<typeof nodeCrypto.createPrivateKey>[0]),
    ),
    jwk: builds((crv) =>
      nodeCrypto.createPrivateKey({
        key: { kty: "OKP", crv, d: secret.toString("base64url"), x: "" },
        format: "jwk",
      }),
    ),
  };
}

/**
 * Whether this runtime's node:crypto does ML-KEM-768 (Node ≥ 24.7 with OpenSSL ≥ 3.5 — not Node
 * 20, nor a Node with `decapsulate` on an older OpenSSL): probed by a round trip, not by version.
 */
const NATIVE_MLKEM = (() => {
  const api = nodeCrypto as unknown as {
    generateKeyPairSync?: (type: string) => {
      publicKey: nodeCrypto.KeyObject;
      privateKey: nodeCrypto.KeyObject;
    };
    encapsulate?: (key: nodeCrypto.KeyObject) => { sharedKey: Buffer; ciphertext: Buffer };
    decapsulate?: (key: nodeCrypto.KeyObject, ciphertext: Uint8Array) => Buffer;
  };
  try {
    const { publicKey, privateKey } = api.generateKeyPairSync!("ml-kem-768");
    const { sharedKey, ciphertext } = api.encapsulate!(publicKey);
    return ciphertext.length === 1088 && api.decapsulate!(privateKey, ciphertext).equals(sharedKey);
  } catch {
    return false;
  }
})();

describe("node:crypto ML-KEM-768, detected", () => {
  it(`serves mlkem768 from ${NATIVE_MLKEM ? "node:crypto" : "noble"} in this Node (${process.version})`, async () => {
    const c = await createNodeCryptoProvider();
    expect(c.backends.mlkem768).toBe(NATIVE_MLKEM ? "node" : "noble");
    expect(nodeMlKem768() === undefined).toBe(!NATIVE_MLKEM);
    // A crypto module without `decapsulate` (Node < 24.7) is never used for ML-KEM.
    expect(nodeMlKem768({ createPrivateKey: nodeCrypto.createPrivateKey })).toBeUndefined();
  });

  it.runIf(NATIVE_MLKEM)(
    "decapsulates as noble does: valid and forged ciphertexts, refused keys, wrong sizes (property)",
    async () => {
      const kem = nodeMlKem768()!;
      const noble = nobleCrypto.mlkem768;
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ minLength: 64, maxLength: 64 }),
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.nat(),
          async (seed, m, flip) => {
            const { publicKey, secretKey } = await kem.keyPairFromSeed(seed);
            expect(publicKey).toEqual((await noble.keyPairFromSeed(seed)).publicKey);
            const enc = (await kem.encapsulate(publicKey, m))!;
            expect(await kem.decapsulate(secretKey, enc.ciphertext)).toEqual(enc.sharedSecret);
            const forged = enc.ciphertext.slice();
            forged[flip % forged.length]! ^= 1 << (flip % 8);
            expect(await kem.decapsulate(secretKey, forged)).toEqual(
              await noble.decapsulate(secretKey, forged),
            );
            // A decapsulation key whose H(ek) no longer matches (FIPS 203 §7.3): refused by both.
            const badKey = secretKey.slice();
            badKey[1152 + (flip % 1184)]! ^= 1;
            expect(await kem.decapsulate(badKey, enc.ciphertext)).toEqual(
              await noble.decapsulate(badKey, enc.ciphertext),
            );
            expect(await kem.decapsulate(secretKey, enc.ciphertext.subarray(1))).toBeUndefined();
            expect(await kem.decapsulate(secretKey.subarray(1), enc.ciphertext)).toBeUndefined();
          },
        ),
        { numRuns: 100 },
      );
    },
  );

  it.runIf(NATIVE_MLKEM)(
    "imports the key at each decapsulation and keeps nothing: the same array twice is two imports, rewritten in place its own answer",
    async () => {
      let imports = 0;
      const kem = nodeMlKem768({
        decapsulate: (nodeCrypto as unknown as Required<NodeKemApi>).decapsulate,
        createPrivateKey: ((...a: Parameters<typeof nodeCrypto.createPrivateKey>) => {
          imports++;
          return nodeCrypto.createPrivateKey(...a);
        }) as typeof nodeCrypto.createPrivateKey,
      })!;
      expect(kem.forget).toBeUndefined();
      const noble = nobleCrypto.mlkem768;
      const one = await noble.keyPairFromSeed(new Uint8Array(64).fill(1));
      const two = await noble.keyPairFromSeed(new Uint8Array(64).fill(2));
      const toOne = (await noble.encapsulate(one.publicKey, key(3)))!;
      const toTwo = (await noble.encapsulate(two.publicKey, key(4)))!;
      const held = one.secretKey.slice();
      const before = imports; // the detection probe's import
      for (let i = 0; i < 2; i++)
        expect(await kem.decapsulate(held, toOne.ciphertext)).toEqual(toOne.sharedSecret);
      expect(imports - before).toBe(2);
      held.set(two.secretKey);
      expect(await kem.decapsulate(held, toTwo.ciphertext)).toEqual(toTwo.sharedSecret);
      // Wiped in place: OpenSSL refuses the all-zero key (FIPS 203 §7.3 check), noble answers.
      held.fill(0);
      expect(await kem.decapsulate(held, toTwo.ciphertext)).toEqual(
        await noble.decapsulate(held, toTwo.ciphertext),
      );
    },
  );

  it("probes a node:crypto once per process: a second provider imports no probe key", () => {
    const counting = (api: NodeKemApi) => {
      let imports = 0;
      const counted: NodeKemApi = {
        ...api,
        createPrivateKey: ((...a: Parameters<typeof nodeCrypto.createPrivateKey>) => {
          imports++;
          return api.createPrivateKey(...a);
        }) as typeof nodeCrypto.createPrivateKey,
      };
      return { api: counted, imports: () => imports };
    };
    // A refusing OpenSSL (every Node): the refusal is remembered too.
    const refusing = counting({
      decapsulate: () => Buffer.alloc(32),
      createPrivateKey: (() => {
        throw new Error("unsupported key type");
      }) as typeof nodeCrypto.createPrivateKey,
    });
    expect(nodeMlKem768(refusing.api)).toBeUndefined();
    expect(nodeMlKem768(refusing.api)).toBeUndefined();
    expect(refusing.imports()).toBe(1);
    // This Node's own: served (or not) alike both times, after one probe import at most.
    const real = counting(nodeCrypto as unknown as NodeKemApi);
    const first = nodeMlKem768(real.api);
    const second = nodeMlKem768(real.api);
    expect([first === undefined, second === undefined]).toEqual([!NATIVE_MLKEM, !NATIVE_MLKEM]);
    expect(real.imports()).toBe(NATIVE_MLKEM ? 1 : 0);
  });

  it.runIf(NATIVE_MLKEM)(
    "the probe is a decapsulation round trip: a key that imports but decapsulates wrongly is not used",
    () => {
      const wrong = nodeMlKem768({
        decapsulate: () => Buffer.alloc(32),
        createPrivateKey: nodeCrypto.createPrivateKey,
      });
      expect(wrong).toBeUndefined();
    },
  );

  it("a node:crypto whose `decapsulate` has no ML-KEM behind it (an OpenSSL before 3.5) is not used", () => {
    const refusing = nodeMlKem768({
      decapsulate: () => Buffer.alloc(32),
      createPrivateKey: (() => {
        throw new Error("unsupported key type");
      }) as typeof nodeCrypto.createPrivateKey,
    });
    expect(refusing).toBeUndefined();
  });
});

/**
 * Why the backend keeps no ML-KEM KeyObject beside a key array (nodeMlKem768): no protocol
 * decapsulates under one array twice. Were one to start, this fails and a cache pays again.
 */
describe("ML-KEM-768 decapsulation keys are used once each", () => {
  /** `base` counting the decapsulations under each key array. */
  function counting(base: CryptoProvider, uses: Map<Uint8Array, number>): CryptoProvider {
    return {
      ...base,
      mlkem768: {
        ...base.mlkem768,
        decapsulate: (k, c) => {
          uses.set(k, (uses.get(k) ?? 0) + 1);
          return base.mlkem768.decapsulate(k, c);
        },
      },
    };
  }

  it("XXhfs (the initiator's e1) and PQXDH (the key derived per initial message), in this Node's provider", async () => {
    const uses = new Map<Uint8Array, number>();
    const crypto = counting(await createNodeCryptoProvider(), uses);
    for (let i = 0; i < 2; i++) {
      const { initiator, responder } = await twoMessagesIn(XX_HFS, "kem keys", crypto);
      must(await responder.readMessage(must(await initiator.writeMessage(new Uint8Array(0)))));
      must(await initiator.finish());
      must(await responder.finish());
    }
    const now = 1_700_000_000_000;
    let bob = createPrekeyStore({ identitySecretKey: key(2), now, oneTimeKemPrekeys: 0 });
    for (const n of [1, 3]) {
      const alice = createPrekeyStore({ identitySecretKey: key(n), now });
      const started = await initiateSession({
        sender: alice,
        bundle: encodePrekeyBundle(prekeyBundle(bob)),
        recipientIdentityKey: bob.identityKey,
        plaintext: utf8("hi bob"),
        now,
      });
      if (!started.ok) throw started.error;
      // Both under Bob's last-resort ML-KEM prekey: one stored seed, a fresh key array each time.
      expect(started.value.header.kemPrekeyId).toBe(bob.kemPrekeys[0]!.id);
      const accepted = await acceptInitialMessage(bob, started.value.message, { now, crypto });
      if (!accepted.ok) throw accepted.error;
      expect(accepted.value.plaintext).toEqual(utf8("hi bob"));
      bob = accepted.value.store;
    }
    expect([...uses.values()]).toEqual([1, 1, 1, 1]);
  });
});
