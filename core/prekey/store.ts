/**
 * A user's private prekey material — the secret halves of what PQXDH §3.2 ("Publishing keys",
 * https://signal.org/docs/specifications/pqxdh/) has Bob publish — with rotation, one-time key
 * consumption and the replay cache of §4.2/§4.3 ("Protocol replay", "Replay and key reuse").
 * Stored in IndexedDB as versioned, canonical MessagePack (`serializePrekeyStore`).
 *
 * Stores are immutable values like ratchet states: every change returns a new store. ML-KEM keys
 * are kept as their 64-byte FIPS 203 seeds (d ‖ z) and expanded when needed.
 *
 * The replay cache (PQXDH §4.2) is bounded per signed prekey and never refuses a first contact:
 * each sender identity holds at most MAX_SEEN_PER_SENDER entries (its own oldest goes first), and a
 * full cache evicts the oldest entry of the sender holding the most. Junk from one identity thus
 * cannot crowd out anyone, and `signedPrekeyRotationDue` asks for an early rotation once the
 * current prekey's cache is half full, so fresh senders get a fresh, empty cache.
 * docs/protocol/prekeys.md, "Replay cache".
 */
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import * as v from "valibot";
import { abytes, concatBytes, equalBytes, utf8 } from "../bytes.ts";
import { bytesSchema, decodeRaw, encodeCanonical, uintSchema, validate } from "../codec/codec.ts";
import { err, ok, type Result } from "../errors.ts";
import type { RandomBytes } from "../ratchet/ratchet.ts";
import {
  IDENTITY_KEY_LEN,
  KEM_PUBLIC_KEY_LEN,
  KEM_SEED_LEN,
  MAX_ONE_TIME_KEM_PREKEYS,
  MAX_ONE_TIME_PREKEYS,
  MAX_PREKEY_ID,
  type PrekeyBundle,
  PrekeyKind,
  SIGNATURE_LEN,
  signBundleTime,
  signPrekey,
  X25519_KEY_LEN,
} from "./bundle.ts";

/**
 * An X25519 prekey pair (DR §5.2 `GENERATE_DH()`), with noble like the rest of the store: prekeys
 * are made when the store is created, rotated or replenished — rarely, off the message path — and
 * the store's signatures (Ed25519) stay synchronous with them (docs/decisions.md, "Cryptography:
 * one async provider, carried explicitly").
 */
function prekeyPair(random: RandomBytes): { secretKey: Uint8Array; publicKey: Uint8Array } {
  const secretKey = random(32).slice();
  abytes(secretKey, 32, "random");
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

export const PREKEY_STORE_VERSION = 2;
/** Stores written before signed bundle times and per-sender replay entries: still read. */
export const LEGACY_PREKEY_STORE_VERSION = 1;
/**
 * Most signed-prekey generations kept (current + retired). Retired ones are also dropped once
 * retired for longer than RETIRED_PREKEY_KEEP_MS, so with weekly rotation about 3 are kept; the
 * count bound only matters under early rotations (at most one a day: 7 days of retired keys).
 */
export const MAX_SIGNED_GENERATIONS = 8;
/** A retired generation serves initial messages still in flight (relay TTL ≤ 7 days) this long. */
export const RETIRED_PREKEY_KEEP_MS = 14 * 24 * 3600 * 1000;
/** Signed prekeys rotate after this long (PQXDH §3.2 "periodically"). */
export const SIGNED_PREKEY_ROTATION_MS = 7 * 24 * 3600 * 1000;
/** Base keys remembered per signed prekey for initial messages that used no one-time key (§4.2). */
export const MAX_SEEN_BASE_KEYS = 2048;
/** Entries one sender identity may hold in one signed prekey's replay cache. */
export const MAX_SEEN_PER_SENDER = 4;
/** The current signed prekey rotates early once its replay cache holds this many entries... */
export const EARLY_ROTATION_SEEN = MAX_SEEN_BASE_KEYS / 2;
/** ...and is at least this old (bounds how fast junk can push generations out). */
export const EARLY_ROTATION_MIN_AGE_MS = 24 * 3600 * 1000;
/** Sender tag length in the replay cache: SHA-256("loft/prekey/seen-sender/v1" ‖ IK_A)[0..8]. */
export const SENDER_TAG_LEN = 8;
const SENDER_TAG_LABEL = utf8("loft/prekey/seen-sender/v1");

/** One replay-cache entry: Alice's ephemeral key and whose message it was. */
export interface SeenBaseKey {
  readonly baseKey: Uint8Array;
  /** `senderTag(IK_A)`; all zero for entries read from a version 1 store. */
  readonly sender: Uint8Array;
}

export interface SignedX25519Prekey {
  readonly id: number;
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
  readonly createdAt: number;
  /**
   * IK's signature over this generation's creation time and keys (bundle v2, `signBundleTime`);
   * null for a generation read from a version 1 store (rotate before publishing).
   */
  readonly timeSignature: Uint8Array | null;
  /** Accepted initial messages that used no one-time prekey, oldest first. */
  readonly seenBaseKeys: readonly SeenBaseKey[];
}

export interface SignedKemPrekey {
  readonly id: number;
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
  readonly createdAt: number;
}

export interface OneTimeX25519Prekey {
  readonly id: number;
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

export interface OneTimeKemPrekey {
  readonly id: number;
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
}

export interface PrekeyStore {
  readonly version: typeof PREKEY_STORE_VERSION;
  /** Our Ed25519 identity public key (IK). */
  readonly identityKey: Uint8Array;
  /** Next prekey id to allocate; ids are unique across all prekey types of a store. */
  readonly nextId: number;
  /** Newest first; [0] is the one published. */
  readonly signedPrekeys: readonly SignedX25519Prekey[];
  readonly kemPrekeys: readonly SignedKemPrekey[];
  readonly oneTimePrekeys: readonly OneTimeX25519Prekey[];
  readonly oneTimeKemPrekeys: readonly OneTimeKemPrekey[];
}

const consumedStores = new WeakSet<PrekeyStore>();

/** Throws when a store that a later call replaced is used again (its dropped secrets are zeroed). */
export function assertLiveStore(store: PrekeyStore): void {
  if (consumedStores.has(store))
    throw new Error("prekey store already replaced: use the store returned by the last call");
}

/** Every function returning a new store retires the old one. */
export function retireStore(store: PrekeyStore): void {
  consumedStores.add(store);
}

function assertNow(now: number): void {
  if (!Number.isSafeInteger(now) || now < 0)
    throw new RangeError("now: expected a non-negative integer (ms)");
}

function checkIdentity(store: PrekeyStore, identitySecretKey: Uint8Array): void {
  assertLiveStore(store);
  abytes(identitySecretKey, 32, "identitySecretKey");
  if (!equalBytes(ed25519.getPublicKey(identitySecretKey), store.identityKey))
    throw new Error("prekey store: identitySecretKey does not match the store's identity key");
}

class IdAllocator {
  constructor(public next: number) {}
  take(): number {
    if (this.next > MAX_PREKEY_ID) throw new RangeError("prekey store: prekey ids exhausted");
    return this.next++;
  }
}

/** A signed-prekey generation: SPK then PQSPK (ids and random draws in that order), time signed. */
function newGeneration(ids: IdAllocator, identitySecretKey: Uint8Array, now: number, random: RandomBytes) {
  const id = ids.take();
  const pair = prekeyPair(random);
  const kem = newKemPrekey(ids, identitySecretKey, now, random);
  const spk: SignedX25519Prekey = {
    id,
    secretKey: pair.secretKey,
    publicKey: pair.publicKey,
    signature: signPrekey(identitySecretKey, PrekeyKind.x25519Signed, id, pair.publicKey),
    createdAt: now,
    timeSignature: signBundleTime(identitySecretKey, now, { id, publicKey: pair.publicKey }, kem),
    seenBaseKeys: [],
  };
  return { spk, kem };
}

function kemFromSeed(random: RandomBytes) {
  const seed = random(KEM_SEED_LEN).slice();
  abytes(seed, KEM_SEED_LEN, "random");
  const { publicKey, secretKey } = ml_kem768.keygen(seed);
  secretKey.fill(0);
  return { seed, publicKey };
}

function newKemPrekey(ids: IdAllocator, identitySecretKey: Uint8Array, now: number, random: RandomBytes) {
  const id = ids.take();
  const { seed, publicKey } = kemFromSeed(random);
  const signature = signPrekey(identitySecretKey, PrekeyKind.kemLastResort, id, publicKey);
  return { id, seed, publicKey, signature, createdAt: now } satisfies SignedKemPrekey;
}

function newOneTimePrekeys(ids: IdAllocator, count: number, random: RandomBytes): OneTimeX25519Prekey[] {
  return Array.from({ length: count }, () => {
    const id = ids.take();
    const pair = prekeyPair(random);
    return { id, secretKey: pair.secretKey, publicKey: pair.publicKey };
  });
}

function newOneTimeKemPrekeys(
  ids: IdAllocator,
  identitySecretKey: Uint8Array,
  count: number,
  random: RandomBytes,
): OneTimeKemPrekey[] {
  return Array.from({ length: count }, () => {
    const id = ids.take();
    const { seed, publicKey } = kemFromSeed(random);
    return {
      id,
      seed,
      publicKey,
      signature: signPrekey(identitySecretKey, PrekeyKind.kemOneTime, id, publicKey),
    };
  });
}

function checkCount(name: string, count: number, max: number): void {
  if (!Number.isInteger(count) || count < 0 || count > max)
    throw new RangeError(`${name}: expected 0..${max}`);
}

export interface CreatePrekeyStoreParams {
  /** Ed25519 identity secret key (32-byte RFC 8032 seed): `UserIdentity.privateIdentityKey`. */
  readonly identitySecretKey: Uint8Array;
  readonly now: number;
  readonly oneTimePrekeys?: number;
  readonly oneTimeKemPrekeys?: number;
  readonly random?: RandomBytes;
}

export const DEFAULT_ONE_TIME_PREKEYS = 32;
export const DEFAULT_ONE_TIME_KEM_PREKEYS = 4;

/**
 * A new store: one signed X25519 prekey, one signed last-resort ML-KEM-768 prekey, and one-time
 * prekeys (PQXDH §3.2). Random draws, in order: SPK (32), PQSPK seed (64), each OPK (32), each
 * PQOPK seed (64).
 */
export function createPrekeyStore(p: CreatePrekeyStoreParams): PrekeyStore {
  abytes(p.identitySecretKey, 32, "identitySecretKey");
  assertNow(p.now);
  const oneTime = p.oneTimePrekeys ?? DEFAULT_ONE_TIME_PREKEYS;
  const oneTimeKem = p.oneTimeKemPrekeys ?? DEFAULT_ONE_TIME_KEM_PREKEYS;
  checkCount("oneTimePrekeys", oneTime, MAX_ONE_TIME_PREKEYS);
  checkCount("oneTimeKemPrekeys", oneTimeKem, MAX_ONE_TIME_KEM_PREKEYS);
  const random = p.random ?? randomBytes;
  const ids = new IdAllocator(1);
  const { spk: signedPrekey, kem: kemPrekey } = newGeneration(ids, p.identitySecretKey, p.now, random);
  const oneTimePrekeys = newOneTimePrekeys(ids, oneTime, random);
  const oneTimeKemPrekeys = newOneTimeKemPrekeys(ids, p.identitySecretKey, oneTimeKem, random);
  return {
    version: PREKEY_STORE_VERSION,
    identityKey: ed25519.getPublicKey(p.identitySecretKey),
    nextId: ids.next,
    signedPrekeys: [signedPrekey],
    kemPrekeys: [kemPrekey],
    oneTimePrekeys,
    oneTimeKemPrekeys,
  };
}

export interface RotateParams {
  readonly identitySecretKey: Uint8Array;
  readonly now: number;
  readonly random?: RandomBytes;
}

/**
 * PQXDH §3.2: a new signed prekey and last-resort ML-KEM prekey replace the published ones; the
 * previous ones are kept for initial messages still in flight — each for RETIRED_PREKEY_KEEP_MS
 * after it was retired (the creation time of the next newer generation), at most
 * MAX_SIGNED_GENERATIONS in all — and the secrets of the generations that fall off are zeroed
 * (forward secrecy for those first messages). Random draws: SPK (32), PQSPK seed (64).
 */
export function rotateSignedPrekeys(store: PrekeyStore, p: RotateParams): PrekeyStore {
  checkIdentity(store, p.identitySecretKey);
  assertNow(p.now);
  const random = p.random ?? randomBytes;
  const ids = new IdAllocator(store.nextId);
  const fresh = newGeneration(ids, p.identitySecretKey, p.now, random);
  const signedPrekeys = [fresh.spk, ...store.signedPrekeys];
  const kemPrekeys = [fresh.kem, ...store.kemPrekeys];
  let keep = 1;
  while (
    keep < Math.min(signedPrekeys.length, MAX_SIGNED_GENERATIONS) &&
    p.now - signedPrekeys[keep - 1]!.createdAt <= RETIRED_PREKEY_KEEP_MS
  )
    keep++;
  for (const old of signedPrekeys.splice(keep)) old.secretKey.fill(0);
  for (const old of kemPrekeys.splice(keep)) old.seed.fill(0);
  retireStore(store);
  return { ...store, nextId: ids.next, signedPrekeys, kemPrekeys };
}

/** Why the current signed prekey should rotate now (`signedPrekeyRotationDue`). */
export type RotationReason =
  /** Read from a version 1 store: its creation time is unsigned, so it cannot go in a v2 bundle. */
  | "unsigned-time"
  /** Older than the rotation period. */
  | "age"
  /** Its replay cache is half full (someone is sending many first contacts without one-time keys). */
  | "replay-cache";

/**
 * Whether to rotate now, and why (null: not yet). The caller rotates and publishes the new bundle.
 * `periodMs` defaults to SIGNED_PREKEY_ROTATION_MS. An early rotation for the replay cache waits
 * until the prekey is EARLY_ROTATION_MIN_AGE_MS old, so junk cannot churn generations out faster
 * than one a day.
 */
export function signedPrekeyRotationDue(
  store: PrekeyStore,
  now: number,
  periodMs: number = SIGNED_PREKEY_ROTATION_MS,
): RotationReason | null {
  assertLiveStore(store);
  assertNow(now);
  const spk = store.signedPrekeys[0]!;
  if (spk.timeSignature === null) return "unsigned-time";
  const age = now - spk.createdAt;
  if (age >= periodMs) return "age";
  if (spk.seenBaseKeys.length >= EARLY_ROTATION_SEEN && age >= EARLY_ROTATION_MIN_AGE_MS)
    return "replay-cache";
  return null;
}

/** The replay-cache tag of a sender identity key (docs/protocol/prekeys.md, "Replay cache"). */
export function senderTag(identityKey: Uint8Array): Uint8Array {
  return sha256(concatBytes(SENDER_TAG_LABEL, identityKey)).slice(0, SENDER_TAG_LEN);
}

/**
 * The replay cache after remembering `entry` (PQXDH §4.2), never refusing: a sender already holding
 * MAX_SEEN_PER_SENDER entries loses its own oldest; otherwise, when the cache is full, the sender
 * holding the most entries (the earliest entry among them on a tie) loses its oldest.
 */
export function rememberBaseKey(seen: readonly SeenBaseKey[], entry: SeenBaseKey): SeenBaseKey[] {
  const key = (tag: Uint8Array) => String.fromCharCode(...tag);
  const keys = seen.map((e) => key(e.sender));
  const counts = new Map<string, number>();
  for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1);
  const own = key(entry.sender);
  let evict: string | undefined;
  if ((counts.get(own) ?? 0) >= MAX_SEEN_PER_SENDER) evict = own;
  else if (seen.length >= MAX_SEEN_BASE_KEYS) {
    let most = 0;
    for (const n of counts.values()) most = Math.max(most, n);
    // Oldest first: the first entry whose sender holds `most` entries is that sender's oldest.
    evict = keys.find((k) => counts.get(k) === most);
  }
  const out = seen.slice();
  if (evict !== undefined) out.splice(keys.indexOf(evict), 1);
  out.push(entry);
  return out;
}

export interface ReplenishParams {
  readonly identitySecretKey: Uint8Array;
  /** Target counts after replenishing (defaults as in `createPrekeyStore`). */
  readonly oneTimePrekeys?: number;
  readonly oneTimeKemPrekeys?: number;
  readonly random?: RandomBytes;
}

/** Top the one-time prekeys back up to the target counts (PQXDH §3.2: "upload new one-time prekeys"). */
export function replenishOneTimePrekeys(store: PrekeyStore, p: ReplenishParams): PrekeyStore {
  checkIdentity(store, p.identitySecretKey);
  const oneTime = p.oneTimePrekeys ?? DEFAULT_ONE_TIME_PREKEYS;
  const oneTimeKem = p.oneTimeKemPrekeys ?? DEFAULT_ONE_TIME_KEM_PREKEYS;
  checkCount("oneTimePrekeys", oneTime, MAX_ONE_TIME_PREKEYS);
  checkCount("oneTimeKemPrekeys", oneTimeKem, MAX_ONE_TIME_KEM_PREKEYS);
  const random = p.random ?? randomBytes;
  const ids = new IdAllocator(store.nextId);
  const addX = Math.max(0, oneTime - store.oneTimePrekeys.length);
  const addKem = Math.max(0, oneTimeKem - store.oneTimeKemPrekeys.length);
  retireStore(store);
  return {
    ...store,
    oneTimePrekeys: [...store.oneTimePrekeys, ...newOneTimePrekeys(ids, addX, random)],
    oneTimeKemPrekeys: [
      ...store.oneTimeKemPrekeys,
      ...newOneTimeKemPrekeys(ids, p.identitySecretKey, addKem, random),
    ],
    nextId: ids.next,
  };
}

/** The public bundle to leave at a relay: the current signed keys and every unused one-time key. */
export function prekeyBundle(store: PrekeyStore): PrekeyBundle {
  assertLiveStore(store);
  const spk = store.signedPrekeys[0]!;
  const kpk = store.kemPrekeys[0]!;
  return {
    identityKey: store.identityKey,
    signedPrekey: { id: spk.id, publicKey: spk.publicKey, signature: spk.signature },
    kemPrekey: { id: kpk.id, publicKey: kpk.publicKey, signature: kpk.signature },
    ...(spk.timeSignature ? { signedTime: { createdAt: spk.createdAt, signature: spk.timeSignature } } : {}),
    oneTimePrekeys: store.oneTimePrekeys.map((k) => ({ id: k.id, publicKey: k.publicKey })),
    oneTimeKemPrekeys: store.oneTimeKemPrekeys.map((k) => ({
      id: k.id,
      publicKey: k.publicKey,
      signature: k.signature,
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Serialization (docs/protocol/prekeys.md, "Bob's prekey store": `serializePrekeyStore`).

const id = uintSchema(MAX_PREKEY_ID);
const time = uintSchema();
const x32 = bytesSchema(X25519_KEY_LEN);
const sig = bytesSchema(SIGNATURE_LEN);
const seed = bytesSchema(KEM_SEED_LEN);
const kemPk = bytesSchema(KEM_PUBLIC_KEY_LEN);
const SEEN_ENTRY_LEN = X25519_KEY_LEN + SENDER_TAG_LEN;

const generations = <T extends v.GenericSchema>(item: T) =>
  v.pipe(v.array(item), v.minLength(1), v.maxLength(MAX_SIGNED_GENERATIONS));
const commonFields = {
  ik: bytesSchema(IDENTITY_KEY_LEN),
  next: v.pipe(uintSchema(MAX_PREKEY_ID + 1), v.minValue(1)),
  kpks: generations(v.strictTuple([id, seed, kemPk, sig, time])),
  opks: v.pipe(v.array(v.strictTuple([id, x32, x32])), v.maxLength(MAX_ONE_TIME_PREKEYS)),
  okpks: v.pipe(v.array(v.strictTuple([id, seed, kemPk, sig])), v.maxLength(MAX_ONE_TIME_KEM_PREKEYS)),
};
const storeSchema = v.strictObject({
  v: v.literal(PREKEY_STORE_VERSION),
  ...commonFields,
  spks: generations(
    v.strictTuple([
      id,
      x32,
      x32,
      sig,
      time,
      v.nullable(sig),
      v.pipe(v.array(bytesSchema(SEEN_ENTRY_LEN)), v.maxLength(MAX_SEEN_BASE_KEYS)),
    ]),
  ),
});
/** Version 1: no time signature, seen entries are bare base keys (read with all-zero sender tags). */
const legacyStoreSchema = v.strictObject({
  v: v.literal(LEGACY_PREKEY_STORE_VERSION),
  ...commonFields,
  spks: v.pipe(
    v.array(v.strictTuple([id, x32, x32, sig, time, v.pipe(v.array(x32), v.maxLength(MAX_SEEN_BASE_KEYS))])),
    v.minLength(1),
    v.maxLength(3),
  ),
});

export const MAX_SERIALIZED_STORE_LEN =
  MAX_SIGNED_GENERATIONS * (300 + MAX_SEEN_BASE_KEYS * (SEEN_ENTRY_LEN + 2)) +
  MAX_SIGNED_GENERATIONS * 1400 +
  MAX_ONE_TIME_PREKEYS * 80 +
  MAX_ONE_TIME_KEM_PREKEYS * 1400 +
  256;

export function serializePrekeyStore(store: PrekeyStore): Uint8Array {
  assertLiveStore(store);
  return encodeCanonical({
    v: store.version,
    ik: store.identityKey,
    next: store.nextId,
    spks: store.signedPrekeys.map((k) => [
      k.id,
      k.secretKey,
      k.publicKey,
      k.signature,
      k.createdAt,
      k.timeSignature,
      k.seenBaseKeys.map((e) => concatBytes(e.baseKey, e.sender)),
    ]),
    kpks: store.kemPrekeys.map((k) => [k.id, k.seed, k.publicKey, k.signature, k.createdAt]),
    opks: store.oneTimePrekeys.map((k) => [k.id, k.secretKey, k.publicKey]),
    okpks: store.oneTimeKemPrekeys.map((k) => [k.id, k.seed, k.publicKey, k.signature]),
  });
}

/**
 * Reads versions 2 and 1 (a version 1 store comes back as version 2 with unsigned generation
 * times: `signedPrekeyRotationDue` says "unsigned-time"). Other versions: `LOFT_ERR_STATE_VERSION`;
 * otherwise malformed input is a typed error.
 */
export function deserializePrekeyStore(bytes: Uint8Array): Result<PrekeyStore> {
  const raw = decodeRaw(bytes, { maxBytes: MAX_SERIALIZED_STORE_LEN });
  if (!raw.ok) return raw;
  const value = raw.value;
  if (typeof value !== "object" || value === null || Array.isArray(value) || !("v" in value))
    return err("LOFT_ERR_SCHEMA", "prekey store: not a versioned map");
  const version = (value as { v: unknown }).v;
  const c = (b: Uint8Array) => b.slice();
  let signedPrekeys: SignedX25519Prekey[];
  let rest: v.InferOutput<typeof storeSchema>;
  if (version === PREKEY_STORE_VERSION) {
    const parsed = validate(value, storeSchema);
    if (!parsed.ok) return parsed;
    rest = parsed.value;
    signedPrekeys = parsed.value.spks.map(([id, secretKey, publicKey, signature, createdAt, ts, seen]) => ({
      id,
      secretKey: c(secretKey),
      publicKey: c(publicKey),
      signature: c(signature),
      createdAt,
      timeSignature: ts ? c(ts) : null,
      seenBaseKeys: seen.map((e) => ({
        baseKey: e.slice(0, X25519_KEY_LEN),
        sender: e.slice(X25519_KEY_LEN),
      })),
    }));
  } else if (version === LEGACY_PREKEY_STORE_VERSION) {
    const parsed = validate(value, legacyStoreSchema);
    if (!parsed.ok) return parsed;
    rest = { ...parsed.value, v: PREKEY_STORE_VERSION, spks: [] };
    signedPrekeys = parsed.value.spks.map(([id, secretKey, publicKey, signature, createdAt, seen]) => ({
      id,
      secretKey: c(secretKey),
      publicKey: c(publicKey),
      signature: c(signature),
      createdAt,
      timeSignature: null,
      seenBaseKeys: seen.map((baseKey) => ({ baseKey: c(baseKey), sender: new Uint8Array(SENDER_TAG_LEN) })),
    }));
  } else return err("LOFT_ERR_STATE_VERSION", `prekey store: unknown version ${String(version)}`);
  const s = rest;
  if (s.kpks.length !== signedPrekeys.length)
    return err("LOFT_ERR_SCHEMA", "prekey store: signed and ML-KEM generations differ in number");
  const store: PrekeyStore = {
    version: PREKEY_STORE_VERSION,
    identityKey: c(s.ik),
    nextId: s.next,
    signedPrekeys,
    kemPrekeys: s.kpks.map(([id, seed, publicKey, signature, createdAt]) => ({
      id,
      seed: c(seed),
      publicKey: c(publicKey),
      signature: c(signature),
      createdAt,
    })),
    oneTimePrekeys: s.opks.map(([id, secretKey, publicKey]) => ({
      id,
      secretKey: c(secretKey),
      publicKey: c(publicKey),
    })),
    oneTimeKemPrekeys: s.okpks.map(([id, seed, publicKey, signature]) => ({
      id,
      seed: c(seed),
      publicKey: c(publicKey),
      signature: c(signature),
    })),
  };
  const all = [
    ...store.signedPrekeys,
    ...store.kemPrekeys,
    ...store.oneTimePrekeys,
    ...store.oneTimeKemPrekeys,
  ].map((k) => k.id);
  if (new Set(all).size !== all.length || all.some((i) => i >= store.nextId))
    return err("LOFT_ERR_SCHEMA", "prekey store: duplicate or unallocated prekey id");
  return ok(store);
}

/** ML-KEM-768 decapsulation key expanded from its stored seed (FIPS 203 §7.1 ML-KEM.KeyGen_internal). */
export function kemSecretKey(seedBytes: Uint8Array): Uint8Array {
  return ml_kem768.keygen(seedBytes).secretKey;
}
