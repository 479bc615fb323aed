import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { faultyProvider, InjectedFault, secretsSeen } from "../../test/support/faulty-crypto.ts";
import { equalBytes, utf8 } from "../bytes.ts";
import { encodeCanonical } from "../codec/codec.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { Result } from "../errors.ts";
import { ratchetDecrypt, ratchetEncrypt } from "../ratchet/index.ts";
import { signBundleTime, signPrekey } from "./bundle.ts";
import {
  acceptInitialMessage,
  createPrekeyStore,
  decodeInitialMessage,
  decodePrekeyBundle,
  deserializePrekeyStore,
  encodeInitialMessage,
  encodePrekeyBundle,
  initiateSession,
  MAX_SIGNED_GENERATIONS,
  PrekeyKind,
  type PrekeyStore,
  prekeyBundle,
  replenishOneTimePrekeys,
  rotateSignedPrekeys,
  senderTag,
  serializePrekeyStore,
} from "./index.ts";

const NOW = 1_700_000_000_000;
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const codeOf = (r: Result<unknown>) => (r.ok ? "ok" : r.error.code);
function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

function user(oneTimePrekeys = 3, oneTimeKemPrekeys = 1) {
  const identitySecretKey = ed25519.utils.randomSecretKey();
  const store = createPrekeyStore({ identitySecretKey, now: NOW, oneTimePrekeys, oneTimeKemPrekeys });
  return { identitySecretKey, identityKey: store.identityKey, store };
}

async function firstContact(
  alice: { store: PrekeyStore },
  bob: { store: PrekeyStore; identityKey: Uint8Array },
  msg = "hi bob",
) {
  return unwrap(
    await initiateSession({
      sender: alice.store,
      bundle: encodePrekeyBundle(prekeyBundle(bob.store)),
      recipientIdentityKey: bob.identityKey,
      plaintext: utf8(msg),
      now: NOW,
    }),
  );
}

describe("prekey bundle (PQXDH §3.2)", () => {
  it("encodes, decodes and verifies every signature", async () => {
    const bob = user(5, 2);
    const bundle = prekeyBundle(bob.store);
    const decoded = unwrap(await decodePrekeyBundle(nobleCrypto, encodePrekeyBundle(bundle)));
    expect(decoded).toEqual(bundle);
    expect(decoded.oneTimePrekeys.length).toBe(5);
    expect(decoded.oneTimeKemPrekeys.length).toBe(2);
  });

  it("refuses a bundle with any bad signature (LOFT_ERR_BAD_SIGNATURE)", async () => {
    const bob = user(1, 2);
    const bundle = prekeyBundle(bob.store);
    const flip = (sig: Uint8Array) => {
      const s = sig.slice();
      s[5]! ^= 1;
      return s;
    };
    const variants = [
      { ...bundle, signedPrekey: { ...bundle.signedPrekey, signature: flip(bundle.signedPrekey.signature) } },
      { ...bundle, kemPrekey: { ...bundle.kemPrekey, signature: flip(bundle.kemPrekey.signature) } },
      {
        ...bundle,
        oneTimeKemPrekeys: [
          bundle.oneTimeKemPrekeys[0]!,
          { ...bundle.oneTimeKemPrekeys[1]!, signature: flip(bundle.oneTimeKemPrekeys[1]!.signature) },
        ],
      },
      // a signature of the right key made for another type (the kind byte is signed)
      {
        ...bundle,
        kemPrekey: bundle.oneTimeKemPrekeys[0]!,
        oneTimeKemPrekeys: [bundle.oneTimeKemPrekeys[1]!],
      },
      { ...bundle, signedPrekey: { ...bundle.signedPrekey, id: bundle.signedPrekey.id + 1000 } },
      { ...bundle, identityKey: ed25519.getPublicKey(ed25519.utils.randomSecretKey()) },
    ];
    for (const b of variants)
      expect(codeOf(await decodePrekeyBundle(nobleCrypto, encodePrekeyBundle(b)))).toBe(
        "LOFT_ERR_BAD_SIGNATURE",
      );
  });

  it("refuses unknown versions, duplicate ids and malformed input", async () => {
    const bob = user(1, 0);
    const bundle = prekeyBundle(bob.store);
    const raw = {
      v: 1,
      ik: bundle.identityKey,
      spk: {
        id: bundle.signedPrekey.id,
        pk: bundle.signedPrekey.publicKey,
        sig: bundle.signedPrekey.signature,
      },
      kpk: { id: bundle.kemPrekey.id, pk: bundle.kemPrekey.publicKey, sig: bundle.kemPrekey.signature },
      opks: [{ id: bundle.signedPrekey.id, pk: bundle.oneTimePrekeys[0]!.publicKey }],
      okpks: [],
    };
    expect(codeOf(await decodePrekeyBundle(nobleCrypto, encodeCanonical(raw)))).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(await decodePrekeyBundle(nobleCrypto, encodeCanonical({ ...raw, v: 3 })))).toBe(
      "LOFT_ERR_UNSUPPORTED_VERSION",
    );
    // Version 2 requires its signed time.
    expect(codeOf(await decodePrekeyBundle(nobleCrypto, encodeCanonical({ ...raw, v: 2, opks: [] })))).toBe(
      "LOFT_ERR_SCHEMA",
    );
    expect(codeOf(await decodePrekeyBundle(nobleCrypto, encodeCanonical({ ...raw, extra: 1 })))).toBe(
      "LOFT_ERR_SCHEMA",
    );
    expect(codeOf(await decodePrekeyBundle(nobleCrypto, new Uint8Array([0xc1])))).toBe("LOFT_ERR_MALFORMED");
    expect(codeOf(await decodePrekeyBundle(nobleCrypto, new Uint8Array(70_000)))).toBe(
      "LOFT_ERR_FRAME_TOO_LARGE",
    );
  });
});

describe("PQXDH-style first contact (PQXDH §3.3, §3.4)", () => {
  it("Alice reaches an offline Bob; both end with a working ratchet session", async () => {
    const alice = user();
    const bob = user();
    const started = await firstContact(alice, bob);
    const accepted = unwrap(await acceptInitialMessage(bob.store, started.message, { now: NOW }));
    expect(text(accepted.plaintext)).toBe("hi bob");
    expect(equalBytes(accepted.senderIdentityKey, alice.identityKey)).toBe(true);
    // Bob answers through the ratchet; Alice reads it and answers back.
    const reply = await ratchetEncrypt(accepted.state, utf8("hi alice"), NOW);
    const aliceGot = unwrap(await ratchetDecrypt(started.state, reply.message, NOW));
    expect(text(aliceGot.plaintext)).toBe("hi alice");
    const again = await ratchetEncrypt(aliceGot.state, utf8("how are you"), NOW);
    expect(text(unwrap(await ratchetDecrypt(reply.state, again.message, NOW)).plaintext)).toBe("how are you");
  });

  it("the ML-KEM secret key derived for a message is forgotten and wiped when decapsulation throws; nothing is consumed", async () => {
    const alice = user();
    const bob = user();
    const started = await firstContact(alice, bob);
    // A provider exception in decapsulation (MlKem768.forget, then the wipe, on every exit).
    const keys: Uint8Array[] = [];
    const forgotten: Uint8Array[] = [];
    const crypto = {
      ...nobleCrypto,
      mlkem768: {
        ...nobleCrypto.mlkem768,
        decapsulate: async (secretKey: Uint8Array) => {
          keys.push(secretKey);
          throw new Error("decapsulation failed");
        },
        forget: (secretKey: Uint8Array) => void forgotten.push(secretKey),
      },
    };
    await expect(acceptInitialMessage(bob.store, started.message, { now: NOW, crypto })).rejects.toThrow(
      /decapsulation failed/,
    );
    expect(keys.length).toBe(1);
    expect(keys[0]!.every((b) => b === 0)).toBe(true);
    expect(forgotten).toEqual(keys);
    // The store was not touched: the same message is accepted afterwards.
    expect(text(unwrap(await acceptInitialMessage(bob.store, started.message, { now: NOW })).plaintext)).toBe(
      "hi bob",
    );
  });

  it("a provider exception at any call of acceptInitialMessage: thrown as is, every intermediate secret zeroed, nothing consumed", async () => {
    const alice = user();
    const bob = user(1, 1); // one-time prekeys of both kinds: DH3 and a one-time ML-KEM key are used
    const started = await firstContact(alice, bob);
    expect(decodeInitialMessage(started.message).ok && started.header.oneTimePrekeyId).not.toBe(null);
    // Bob's own keys, which a failure must leave as they are (the store stays usable).
    const kept = [...bob.store.signedPrekeys, ...bob.store.oneTimePrekeys].map((k) => k.secretKey);
    const clean = faultyProvider(nobleCrypto, 0);
    const accept = (crypto = clean.crypto) =>
      acceptInitialMessage(bob.store, started.message, { now: NOW, crypto });
    // Counting the calls must not consume anything: a store is retired by a successful accept.
    const total = await (async () => {
      const copy = unwrap(deserializePrekeyStore(serializePrekeyStore(bob.store)));
      expect(
        unwrap(await acceptInitialMessage(copy, started.message, { now: NOW, crypto: clean.crypto }))
          .plaintext,
      ).toEqual(utf8("hi bob"));
      return clean.calls();
    })();
    expect(total).toBeGreaterThan(15);
    for (let k = 1; k <= total; k++) {
      const faulty = faultyProvider(nobleCrypto, k);
      const thrown = await accept(faulty.crypto).then(
        () => undefined,
        (e: unknown) => e,
      );
      const where = `call ${k}`;
      // The provider's own exception, as the ratchet's and Noise's (not a Result: no bad input).
      expect(thrown, where).toBeInstanceOf(InjectedFault);
      expect((thrown as InjectedFault).call, where).toBe(k);
      // ss, DH1–3, the seal key, SK and what the ratchet derived from it: all zeroed.
      const live = secretsSeen(faulty.log).filter((b) => !kept.includes(b) && b.some((x) => x !== 0));
      expect(live, `${where} (${(thrown as InjectedFault).primitive})`).toEqual([]);
    }
    expect(kept.every((key) => key.some((x) => x !== 0))).toBe(true);
    // Nothing consumed: the message is accepted afterwards.
    expect(text(unwrap(await accept(nobleCrypto)).plaintext)).toBe("hi bob");
  });

  it("consumes the one-time prekeys used and refuses the replayed initial message", async () => {
    const alice = user();
    const bob = user(1, 1);
    const started = await firstContact(alice, bob);
    const header = unwrap(decodeInitialMessage(started.message)).header;
    expect(header.oneTimePrekeyId).toBe(bob.store.oneTimePrekeys[0]!.id);
    expect(header.kemPrekeyId).toBe(bob.store.oneTimeKemPrekeys[0]!.id);
    const before = serializePrekeyStore(bob.store);
    const accepted = unwrap(await acceptInitialMessage(bob.store, started.message, { now: NOW }));
    expect(accepted.store.oneTimePrekeys.length).toBe(0);
    expect(accepted.store.oneTimeKemPrekeys.length).toBe(0);
    expect(codeOf(await acceptInitialMessage(accepted.store, started.message, { now: NOW }))).toBe(
      "LOFT_ERR_REPLAY",
    );
    // the old store was retired: its consumed one-time secrets are zeroed, so using it is a bug
    await expect(acceptInitialMessage(bob.store, started.message, { now: NOW })).rejects.toThrow(
      /already replaced/,
    );
    expect(equalBytes(before, serializePrekeyStore(accepted.store))).toBe(false);
  });

  it("without one-time prekeys, remembers the base key and refuses replays (PQXDH §4.2)", async () => {
    const alice = user();
    const bob = user(0, 0);
    const started = await firstContact(alice, bob);
    const header = unwrap(decodeInitialMessage(started.message)).header;
    expect(header.oneTimePrekeyId).toBeNull();
    expect(header.kemPrekeyId).toBe(bob.store.kemPrekeys[0]!.id);
    const accepted = unwrap(await acceptInitialMessage(bob.store, started.message, { now: NOW }));
    expect(accepted.store.signedPrekeys[0]!.seenBaseKeys).toEqual([
      { baseKey: header.baseKey, sender: senderTag(alice.identityKey) },
    ]);
    expect(codeOf(await acceptInitialMessage(accepted.store, started.message, { now: NOW }))).toBe(
      "LOFT_ERR_REPLAY",
    );
    // the replay cache survives storage
    const restored = unwrap(deserializePrekeyStore(serializePrekeyStore(accepted.store)));
    expect(codeOf(await acceptInitialMessage(restored, started.message, { now: NOW }))).toBe(
      "LOFT_ERR_REPLAY",
    );
  });

  it("later messages sent before Bob answers carry the same header and route by base key", async () => {
    const alice = user();
    const bob = user();
    const started = await firstContact(alice, bob, "one");
    const second = await ratchetEncrypt(started.state, utf8("two"), NOW);
    const secondInitial = encodeInitialMessage(started.header, second.message);
    // "two" arrives first: it starts the session
    const accepted = unwrap(await acceptInitialMessage(bob.store, secondInitial, { now: NOW }));
    expect(text(accepted.plaintext)).toBe("two");
    // "one" arrives later: same base key, so it goes to the existing session, not to acceptInitialMessage
    const late = unwrap(decodeInitialMessage(started.message));
    expect(equalBytes(late.header.baseKey, accepted.baseKey)).toBe(true);
    expect(codeOf(await acceptInitialMessage(accepted.store, started.message, { now: NOW }))).toBe(
      "LOFT_ERR_REPLAY",
    );
    expect(text(unwrap(await ratchetDecrypt(accepted.state, late.ratchetMessage, NOW)).plaintext)).toBe(
      "one",
    );
  });

  it("Bob's identity is checked: a bundle from another identity is LOFT_ERR_BAD_IDENTITY", async () => {
    const alice = user();
    const bob = user();
    const mallory = user();
    const r = await initiateSession({
      sender: alice.store,
      bundle: encodePrekeyBundle(prekeyBundle(mallory.store)),
      recipientIdentityKey: bob.identityKey,
      plaintext: utf8("x"),
      now: NOW,
    });
    expect(codeOf(r)).toBe("LOFT_ERR_BAD_IDENTITY");
  });

  it("Alice is authenticated: her public signed prekey without its secret cannot impersonate her", async () => {
    const alice = user();
    const bob = user();
    const mallory = user();
    // Mallory copies Alice's identity key, signed prekey and signature (all public) but holds her own secret.
    const forged: PrekeyStore = {
      ...mallory.store,
      identityKey: alice.identityKey,
      signedPrekeys: [
        { ...alice.store.signedPrekeys[0]!, secretKey: mallory.store.signedPrekeys[0]!.secretKey },
      ],
    };
    const started = await firstContact({ store: forged }, bob, "it's me, alice");
    const before = serializePrekeyStore(bob.store);
    expect(codeOf(await acceptInitialMessage(bob.store, started.message, { now: NOW }))).toBe(
      "LOFT_ERR_DECRYPT",
    );
    expect(equalBytes(serializePrekeyStore(bob.store), before)).toBe(true);
    // and a signed prekey Alice never signed is refused outright
    const unsigned: PrekeyStore = { ...mallory.store, identityKey: alice.identityKey };
    const started2 = await firstContact({ store: unsigned }, bob);
    expect(codeOf(await acceptInitialMessage(bob.store, started2.message, { now: NOW }))).toBe(
      "LOFT_ERR_BAD_SIGNATURE",
    );
  });

  it("a tampered initial message fails with a typed error and leaves the store unchanged", async () => {
    const alice = user();
    const bob = user();
    const started = await firstContact(alice, bob);
    const m = unwrap(decodeInitialMessage(started.message));
    const flip = (b: Uint8Array, i: number) => {
      const c = b.slice();
      c[i]! ^= 1;
      return c;
    };
    const before = serializePrekeyStore(bob.store);
    const variants = [
      encodeInitialMessage({ ...m.header, sealedSender: flip(m.header.sealedSender, 3) }, m.ratchetMessage),
      encodeInitialMessage(
        { ...m.header, kemCiphertext: flip(m.header.kemCiphertext, 100) },
        m.ratchetMessage,
      ),
      encodeInitialMessage({ ...m.header, baseKey: flip(m.header.baseKey, 0) }, m.ratchetMessage),
      encodeInitialMessage(m.header, flip(m.ratchetMessage, m.ratchetMessage.length - 1)),
    ];
    for (const bad of variants)
      expect(codeOf(await acceptInitialMessage(bob.store, bad, { now: NOW }))).toBe("LOFT_ERR_DECRYPT");
    expect(equalBytes(serializePrekeyStore(bob.store), before)).toBe(true);
    expect(text(unwrap(await acceptInitialMessage(bob.store, started.message, { now: NOW })).plaintext)).toBe(
      "hi bob",
    );
  });

  it("an old bundle keeps working across rotations until its generation is dropped", async () => {
    const alice = user();
    const bob = user(0, 0);
    const oldBundle = encodePrekeyBundle(prekeyBundle(bob.store));
    const init = async () =>
      unwrap(
        await initiateSession({
          sender: alice.store,
          bundle: oldBundle,
          recipientIdentityKey: bob.identityKey,
          plaintext: utf8("late"),
          now: NOW,
        }),
      ).message;
    let store = bob.store;
    for (let i = 1; i < MAX_SIGNED_GENERATIONS; i++)
      store = rotateSignedPrekeys(store, { identitySecretKey: bob.identitySecretKey, now: NOW + i });
    const accepted = unwrap(await acceptInitialMessage(store, await init(), { now: NOW }));
    expect(text(accepted.plaintext)).toBe("late");
    store = rotateSignedPrekeys(accepted.store, { identitySecretKey: bob.identitySecretKey, now: NOW + 99 });
    expect(codeOf(await acceptInitialMessage(store, await init(), { now: NOW }))).toBe(
      "LOFT_ERR_HANDSHAKE_STATE",
    );
  });

  it("a validly signed low-order prekey is a typed error for Alice", async () => {
    const alice = user();
    const bob = user(0, 0);
    const bundle = prekeyBundle(bob.store);
    const zero = new Uint8Array(32);
    const signedPrekey = {
      id: 77,
      publicKey: zero,
      signature: signPrekey(bob.identitySecretKey, PrekeyKind.x25519Signed, 77, zero),
    };
    const bad = {
      ...bundle,
      signedPrekey,
      signedTime: {
        createdAt: NOW,
        signature: signBundleTime(bob.identitySecretKey, NOW, signedPrekey, bundle.kemPrekey),
      },
    };
    const r = await initiateSession({
      sender: alice.store,
      bundle: encodePrekeyBundle(bad),
      recipientIdentityKey: bob.identityKey,
      plaintext: utf8("x"),
      now: NOW,
    });
    expect(codeOf(r)).toBe("LOFT_ERR_MALFORMED");
  });
});

describe("prekey store", () => {
  it("serializes exactly and refuses unknown versions", async () => {
    const bob = user(4, 2);
    const bytes = serializePrekeyStore(bob.store);
    const restored = unwrap(deserializePrekeyStore(bytes));
    expect(restored).toEqual(bob.store);
    expect(equalBytes(serializePrekeyStore(restored), bytes)).toBe(true);
    expect(codeOf(deserializePrekeyStore(encodeCanonical({ v: 9 })))).toBe("LOFT_ERR_STATE_VERSION");
    expect(codeOf(deserializePrekeyStore(encodeCanonical({ v: 1 })))).toBe("LOFT_ERR_SCHEMA");
    expect(codeOf(deserializePrekeyStore(bytes.subarray(0, 100)))).toBe("LOFT_ERR_MALFORMED");
  });

  it("replenishes one-time prekeys with fresh ids and checks the identity key", async () => {
    const bob = user(2, 1);
    const ids = new Set([
      ...bob.store.oneTimePrekeys.map((k) => k.id),
      ...bob.store.oneTimeKemPrekeys.map((k) => k.id),
    ]);
    const more = replenishOneTimePrekeys(bob.store, {
      identitySecretKey: bob.identitySecretKey,
      oneTimePrekeys: 5,
      oneTimeKemPrekeys: 3,
    });
    expect(more.oneTimePrekeys.length).toBe(5);
    expect(more.oneTimeKemPrekeys.length).toBe(3);
    const all = [...more.oneTimePrekeys, ...more.oneTimeKemPrekeys].map((k) => k.id);
    expect(new Set(all).size).toBe(8);
    for (const id of ids) expect(all).toContain(id);
    expect((await decodePrekeyBundle(nobleCrypto, encodePrekeyBundle(prekeyBundle(more)))).ok).toBe(true);
    expect(() =>
      replenishOneTimePrekeys(more, {
        identitySecretKey: ed25519.utils.randomSecretKey(),
        oneTimePrekeys: 6,
      }),
    ).toThrow(/does not match/);
  });
});
