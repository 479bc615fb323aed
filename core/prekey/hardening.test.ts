/**
 * Issue #17 hardening of offline first contact (docs/protocol/prekeys.md, "Replay cache" and
 * "Bundle"): junk first contacts cannot block genuine ones (the replay cache never refuses, bounds
 * each sender, and asks for an early rotation), and senders refuse bundles without a signed
 * creation time or outside the accepted window.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { equalBytes, utf8 } from "../bytes.ts";
import { encodeCanonical } from "../codec/codec.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { Result } from "../errors.ts";
import {
  acceptInitialMessage,
  createPrekeyStore,
  decodeInitialMessage,
  decodePrekeyBundle,
  deserializePrekeyStore,
  EARLY_ROTATION_MIN_AGE_MS,
  EARLY_ROTATION_SEEN,
  encodePrekeyBundle,
  initiateSession,
  MAX_BUNDLE_AGE_MS,
  MAX_BUNDLE_CLOCK_SKEW_MS,
  MAX_SEEN_BASE_KEYS,
  MAX_SEEN_PER_SENDER,
  type PrekeyStore,
  prekeyBundle,
  RETIRED_PREKEY_KEEP_MS,
  rememberBaseKey,
  rotateSignedPrekeys,
  SENDER_TAG_LEN,
  type SeenBaseKey,
  SIGNED_PREKEY_ROTATION_MS,
  senderTag,
  serializePrekeyStore,
  signedPrekeyRotationDue,
} from "./index.ts";

const NOW = 1_700_000_000_000;
const DAY = 24 * 3600 * 1000;
const codeOf = (r: Result<unknown>) => (r.ok ? "ok" : r.error.code);
function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

function user(now = NOW, oneTime = 0) {
  const identitySecretKey = ed25519.utils.randomSecretKey();
  const store = createPrekeyStore({
    identitySecretKey,
    now,
    oneTimePrekeys: oneTime,
    oneTimeKemPrekeys: oneTime,
  });
  return { identitySecretKey, identityKey: store.identityKey, store };
}

async function initial(
  from: { store: PrekeyStore },
  to: { store: PrekeyStore; identityKey: Uint8Array },
  now = NOW,
) {
  return await initiateSession({
    sender: from.store,
    bundle: encodePrekeyBundle(prekeyBundle(to.store)),
    recipientIdentityKey: to.identityKey,
    plaintext: utf8("hello"),
    now,
  });
}

/** A replay cache of `count` entries from `senders` distinct (made-up) identities, round robin. */
function junkCache(count: number, senders: number): SeenBaseKey[] {
  return Array.from({ length: count }, (_, i) => ({
    baseKey: ed25519.utils.randomSecretKey(),
    sender: senderTag(new Uint8Array(32).fill(i % senders)),
  }));
}

function withCache(store: PrekeyStore, seen: SeenBaseKey[]): PrekeyStore {
  // Through serialization, as it would come back from IndexedDB.
  const [first, ...rest] = store.signedPrekeys;
  return unwrap(
    deserializePrekeyStore(
      serializePrekeyStore({ ...store, signedPrekeys: [{ ...first!, seenBaseKeys: seen }, ...rest] }),
    ),
  );
}

describe("replay cache under junk first contacts (PQXDH §4.2)", () => {
  it("a genuine first contact goes through when others' junk has filled the signed prekey's cache", async () => {
    const bob = user();
    const full = withCache(
      bob.store,
      junkCache(MAX_SEEN_BASE_KEYS, MAX_SEEN_BASE_KEYS / MAX_SEEN_PER_SENDER),
    );
    expect(full.signedPrekeys[0]!.seenBaseKeys.length).toBe(MAX_SEEN_BASE_KEYS);
    const carol = user();
    const started = unwrap(await initial(carol, { ...bob, store: full }));
    const accepted = unwrap(await acceptInitialMessage(full, started.message, { now: NOW }));
    const seen = accepted.store.signedPrekeys[0]!.seenBaseKeys;
    expect(seen.length).toBe(MAX_SEEN_BASE_KEYS);
    // Carol's base key is remembered (her replay is refused); the evicted entry is the oldest.
    expect(equalBytes(seen.at(-1)!.baseKey, started.header.baseKey)).toBe(true);
    expect(codeOf(await acceptInitialMessage(accepted.store, started.message, { now: NOW }))).toBe(
      "LOFT_ERR_REPLAY",
    );
  });

  it("one identity holds at most MAX_SEEN_PER_SENDER entries: its junk never pushes anyone else out", async () => {
    const bob = user();
    const mallory = user();
    let store = bob.store;
    const carol = user();
    const carolStarted = unwrap(await initial(carol, bob));
    store = unwrap(await acceptInitialMessage(store, carolStarted.message, { now: NOW })).store;
    const junk: Uint8Array[] = [];
    for (let i = 0; i < MAX_SEEN_PER_SENDER + 2; i++) {
      const m = unwrap(await initial(mallory, { ...bob, store }));
      junk.push(m.message);
      store = unwrap(await acceptInitialMessage(store, m.message, { now: NOW })).store;
    }
    const seen = store.signedPrekeys[0]!.seenBaseKeys;
    const tag = senderTag(mallory.identityKey);
    expect(seen.filter((e) => equalBytes(e.sender, tag)).length).toBe(MAX_SEEN_PER_SENDER);
    expect(seen.length).toBe(MAX_SEEN_PER_SENDER + 1);
    // Carol's entry survived Mallory's flood: her initial message is still a replay.
    expect(codeOf(await acceptInitialMessage(store, carolStarted.message, { now: NOW }))).toBe(
      "LOFT_ERR_REPLAY",
    );
    // Mallory's own latest are remembered.
    expect(codeOf(await acceptInitialMessage(store, junk.at(-1)!, { now: NOW }))).toBe("LOFT_ERR_REPLAY");
  });

  it("a full cache evicts from the sender holding the most entries, oldest first", async () => {
    const a = new Uint8Array(SENDER_TAG_LEN).fill(1);
    const b = new Uint8Array(SENDER_TAG_LEN).fill(2);
    const entry = (sender: Uint8Array, n: number) => ({ baseKey: new Uint8Array(32).fill(n), sender });
    // Sender a holds 3, everyone else 1 or 2; the cache is full.
    const seen: SeenBaseKey[] = [entry(b, 1), entry(a, 2), entry(b, 3), entry(a, 4), entry(a, 5)];
    // Everyone else: one entry each (distinct tags).
    while (seen.length < MAX_SEEN_BASE_KEYS) {
      const tag = new Uint8Array(SENDER_TAG_LEN).fill(7);
      tag[0] = seen.length >> 8;
      tag[1] = seen.length & 0xff;
      seen.push(entry(tag, 200));
    }
    const next = rememberBaseKey(seen, entry(new Uint8Array(SENDER_TAG_LEN).fill(9), 99));
    expect(next.length).toBe(MAX_SEEN_BASE_KEYS);
    expect(next.some((e) => e.baseKey[0] === 2)).toBe(false); // a's oldest
    expect(next[0]!.baseKey[0]).toBe(1); // b's untouched
    expect(next.at(-1)!.baseKey[0]).toBe(99);
  });

  it("asks for an early rotation once the current cache is half full (and a day old), else by age", async () => {
    const bob = user();
    expect(signedPrekeyRotationDue(bob.store, NOW)).toBeNull();
    expect(signedPrekeyRotationDue(bob.store, NOW + SIGNED_PREKEY_ROTATION_MS)).toBe("age");
    const half = withCache(bob.store, junkCache(EARLY_ROTATION_SEEN, 400));
    expect(signedPrekeyRotationDue(half, NOW + EARLY_ROTATION_MIN_AGE_MS - 1)).toBeNull();
    expect(signedPrekeyRotationDue(half, NOW + EARLY_ROTATION_MIN_AGE_MS)).toBe("replay-cache");
    const almost = withCache(half, junkCache(EARLY_ROTATION_SEEN - 1, 400));
    expect(signedPrekeyRotationDue(almost, NOW + EARLY_ROTATION_MIN_AGE_MS)).toBeNull();
    // After rotating, fresh senders get an empty cache; the old prekey still accepts in-flight messages.
    const rotated = rotateSignedPrekeys(almost, {
      identitySecretKey: bob.identitySecretKey,
      now: NOW + EARLY_ROTATION_MIN_AGE_MS,
    });
    expect(rotated.signedPrekeys[0]!.seenBaseKeys.length).toBe(0);
    expect(rotated.signedPrekeys[1]!.seenBaseKeys.length).toBe(EARLY_ROTATION_SEEN - 1);
  });

  it("keeps a retired generation for RETIRED_PREKEY_KEEP_MS after its retirement, then zeroes it", async () => {
    const alice = user();
    const bob = user();
    const inFlight = unwrap(await initial(alice, bob)).message;
    const oldSecret = bob.store.signedPrekeys[0]!.secretKey;
    const retiredAt = NOW + DAY;
    let store = rotateSignedPrekeys(bob.store, { identitySecretKey: bob.identitySecretKey, now: retiredAt });
    store = rotateSignedPrekeys(store, {
      identitySecretKey: bob.identitySecretKey,
      now: retiredAt + RETIRED_PREKEY_KEEP_MS,
    });
    expect(store.signedPrekeys.length).toBe(3);
    const copy = unwrap(deserializePrekeyStore(serializePrekeyStore(store)));
    expect(unwrap(await acceptInitialMessage(copy, inFlight, { now: NOW })).plaintext).toEqual(utf8("hello"));
    store = rotateSignedPrekeys(store, {
      identitySecretKey: bob.identitySecretKey,
      now: retiredAt + RETIRED_PREKEY_KEEP_MS + 1,
    });
    expect(store.signedPrekeys.length).toBe(3); // the first generation fell off
    expect(oldSecret.every((x) => x === 0)).toBe(true);
    expect(codeOf(await acceptInitialMessage(store, inFlight, { now: NOW }))).toBe(
      "LOFT_ERR_HANDSHAKE_STATE",
    );
  });
});

describe("signed bundle time (bundle v2)", () => {
  it("a sender refuses a bundle older than MAX_BUNDLE_AGE_MS or too far in the future", async () => {
    const alice = user();
    const old = user(NOW - MAX_BUNDLE_AGE_MS - 1);
    expect(codeOf(await initial(alice, old))).toBe("LOFT_ERR_STALE_PREKEY");
    const edge = user(NOW - MAX_BUNDLE_AGE_MS);
    expect(codeOf(await initial(alice, edge))).toBe("ok");
    const future = user(NOW + MAX_BUNDLE_CLOCK_SKEW_MS + 1);
    expect(codeOf(await initial(alice, future))).toBe("LOFT_ERR_STALE_PREKEY");
    expect(codeOf(await initial(alice, user(NOW + MAX_BUNDLE_CLOCK_SKEW_MS)))).toBe("ok");
  });

  it("the time is signed with both signed keys: changing it, or moving it to other keys, is refused", async () => {
    const bob = user();
    const bundle = prekeyBundle(bob.store);
    expect(bundle.signedTime?.createdAt).toBe(NOW);
    const moved = encodePrekeyBundle({
      ...bundle,
      signedTime: { ...bundle.signedTime!, createdAt: NOW + 1 },
    });
    expect(codeOf(await decodePrekeyBundle(nobleCrypto, moved))).toBe("LOFT_ERR_BAD_SIGNATURE");
    const other = user();
    const swapped = encodePrekeyBundle({ ...prekeyBundle(other.store), signedTime: bundle.signedTime! });
    expect(codeOf(await decodePrekeyBundle(nobleCrypto, swapped))).toBe("LOFT_ERR_BAD_SIGNATURE");
  });

  it("version 1 bundles still decode, but a sender never uses one (no signed time)", async () => {
    const alice = user();
    const bob = user();
    const { signedTime: _, ...legacy } = prekeyBundle(bob.store);
    const bytes = encodePrekeyBundle(legacy);
    const decoded = unwrap(await decodePrekeyBundle(nobleCrypto, bytes));
    expect(decoded.signedTime).toBeUndefined();
    const r = await initiateSession({
      sender: alice.store,
      bundle: bytes,
      recipientIdentityKey: bob.identityKey,
      plaintext: utf8("x"),
      now: NOW,
    });
    expect(codeOf(r)).toBe("LOFT_ERR_STALE_PREKEY");
  });

  it("a version 1 store still opens, accepts in-flight messages, and asks to rotate before publishing", async () => {
    const alice = user();
    const bob = user();
    const inFlight = unwrap(await initial(alice, bob));
    const s = bob.store;
    const v1 = encodeCanonical({
      v: 1,
      ik: s.identityKey,
      next: s.nextId,
      spks: s.signedPrekeys.map((k) => [k.id, k.secretKey, k.publicKey, k.signature, k.createdAt, []]),
      kpks: s.kemPrekeys.map((k) => [k.id, k.seed, k.publicKey, k.signature, k.createdAt]),
      opks: [],
      okpks: [],
    });
    const legacy = unwrap(deserializePrekeyStore(v1));
    expect(legacy.signedPrekeys[0]!.timeSignature).toBeNull();
    expect(signedPrekeyRotationDue(legacy, NOW)).toBe("unsigned-time");
    expect(prekeyBundle(legacy).signedTime).toBeUndefined();
    const accepted = unwrap(await acceptInitialMessage(legacy, inFlight.message, { now: NOW }));
    const header = unwrap(decodeInitialMessage(inFlight.message)).header;
    expect(accepted.store.signedPrekeys[0]!.seenBaseKeys[0]!.baseKey).toEqual(header.baseKey);
    const rotated = rotateSignedPrekeys(accepted.store, {
      identitySecretKey: bob.identitySecretKey,
      now: NOW,
    });
    expect(signedPrekeyRotationDue(rotated, NOW)).toBeNull();
    expect(codeOf(await initial(alice, { ...bob, store: rotated }))).toBe("ok");
  });
});
