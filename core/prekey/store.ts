/**
 * A user's private prekey material — the secret halves of what PQXDH §3.2 ("Publishing keys",
 * https://signal.org/docs/specifications/pqxdh/) has Bob publish — with rotation, one-time key
 * consumption and the replay cache of §4.2/§4.3 ("Protocol replay", "Replay and key reuse").
 * Stored in IndexedDB as versioned, canonical MessagePack (`serializePrekeyStore`).
 *
 * Stores are immutable values like ratchet states: every change returns a new store. ML-KEM keys
 * are kept as their 64-byte FIPS 203 seeds (d ‖ z) and expanded when needed.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import * as v from "valibot";
import { abytes, equalBytes } from "../bytes.ts";
import { err, ok, type Result } from "../errors.ts";
import { generateRatchetKeyPair, type RandomBytes } from "../ratchet/ratchet.ts";
import { bytesSchema, decodeVersioned, encodeCanonical, uintSchema } from "../wire/codec.ts";
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
  signPrekey,
  X25519_KEY_LEN,
} from "./bundle.ts";

export const PREKEY_STORE_VERSION = 1;
/** Signed-prekey generations kept (current + previous): rotate weekly and old bundles work 2 weeks. */
export const MAX_SIGNED_GENERATIONS = 3;
/** Base keys remembered per signed prekey for initial messages that used no one-time key (§4.2). */
export const MAX_SEEN_BASE_KEYS = 2048;

export interface SignedX25519Prekey {
  readonly id: number;
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
  readonly createdAt: number;
  /** Alice's ephemeral keys of accepted initial messages that used no one-time prekey. */
  readonly seenBaseKeys: readonly Uint8Array[];
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

function newSignedPrekey(ids: IdAllocator, identitySecretKey: Uint8Array, now: number, random: RandomBytes) {
  const id = ids.take();
  const pair = generateRatchetKeyPair(random);
  return {
    id,
    secretKey: pair.secretKey,
    publicKey: pair.publicKey,
    signature: signPrekey(identitySecretKey, PrekeyKind.x25519Signed, id, pair.publicKey),
    createdAt: now,
    seenBaseKeys: [],
  } satisfies SignedX25519Prekey;
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
    const pair = generateRatchetKeyPair(random);
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
  const signedPrekey = newSignedPrekey(ids, p.identitySecretKey, p.now, random);
  const kemPrekey = newKemPrekey(ids, p.identitySecretKey, p.now, random);
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
 * previous ones are kept for initial messages still in flight, up to MAX_SIGNED_GENERATIONS, and the
 * secrets of the generation that falls off are zeroed (forward secrecy for those first messages).
 * Random draws: SPK (32), PQSPK seed (64).
 */
export function rotateSignedPrekeys(store: PrekeyStore, p: RotateParams): PrekeyStore {
  checkIdentity(store, p.identitySecretKey);
  assertNow(p.now);
  const random = p.random ?? randomBytes;
  const ids = new IdAllocator(store.nextId);
  const signedPrekeys = [newSignedPrekey(ids, p.identitySecretKey, p.now, random), ...store.signedPrekeys];
  const kemPrekeys = [newKemPrekey(ids, p.identitySecretKey, p.now, random), ...store.kemPrekeys];
  for (const old of signedPrekeys.splice(MAX_SIGNED_GENERATIONS)) old.secretKey.fill(0);
  for (const old of kemPrekeys.splice(MAX_SIGNED_GENERATIONS)) old.seed.fill(0);
  retireStore(store);
  return { ...store, nextId: ids.next, signedPrekeys, kemPrekeys };
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
    oneTimePrekeys: store.oneTimePrekeys.map((k) => ({ id: k.id, publicKey: k.publicKey })),
    oneTimeKemPrekeys: store.oneTimeKemPrekeys.map((k) => ({
      id: k.id,
      publicKey: k.publicKey,
      signature: k.signature,
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Serialization (docs/protocol/prekeys.md, "Stored prekeys").

const id = uintSchema(MAX_PREKEY_ID);
const time = uintSchema();
const x32 = bytesSchema(X25519_KEY_LEN);
const sig = bytesSchema(SIGNATURE_LEN);
const seed = bytesSchema(KEM_SEED_LEN);
const kemPk = bytesSchema(KEM_PUBLIC_KEY_LEN);

const storeSchema = v.strictObject({
  v: v.literal(PREKEY_STORE_VERSION),
  ik: bytesSchema(IDENTITY_KEY_LEN),
  next: v.pipe(uintSchema(MAX_PREKEY_ID + 1), v.minValue(1)),
  spks: v.pipe(
    v.array(
      v.strictTuple([
        id,
        x32,
        x32,
        sig,
        time,
        v.pipe(v.array(bytesSchema(X25519_KEY_LEN)), v.maxLength(MAX_SEEN_BASE_KEYS)),
      ]),
    ),
    v.minLength(1),
    v.maxLength(MAX_SIGNED_GENERATIONS),
  ),
  kpks: v.pipe(
    v.array(v.strictTuple([id, seed, kemPk, sig, time])),
    v.minLength(1),
    v.maxLength(MAX_SIGNED_GENERATIONS),
  ),
  opks: v.pipe(v.array(v.strictTuple([id, x32, x32])), v.maxLength(MAX_ONE_TIME_PREKEYS)),
  okpks: v.pipe(v.array(v.strictTuple([id, seed, kemPk, sig])), v.maxLength(MAX_ONE_TIME_KEM_PREKEYS)),
});

export const MAX_SERIALIZED_STORE_LEN =
  MAX_SIGNED_GENERATIONS * (200 + MAX_SEEN_BASE_KEYS * 34) +
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
      k.seenBaseKeys,
    ]),
    kpks: store.kemPrekeys.map((k) => [k.id, k.seed, k.publicKey, k.signature, k.createdAt]),
    opks: store.oneTimePrekeys.map((k) => [k.id, k.secretKey, k.publicKey]),
    okpks: store.oneTimeKemPrekeys.map((k) => [k.id, k.seed, k.publicKey, k.signature]),
  });
}

/** Unknown versions: `LOFT_ERR_STATE_VERSION`; otherwise malformed input is a typed error. */
export function deserializePrekeyStore(bytes: Uint8Array): Result<PrekeyStore> {
  const parsed = decodeVersioned(
    bytes,
    PREKEY_STORE_VERSION,
    storeSchema,
    { maxBytes: MAX_SERIALIZED_STORE_LEN },
    "prekey store",
  );
  if (!parsed.ok) return parsed;
  const s = parsed.value;
  const c = (b: Uint8Array) => b.slice();
  const store: PrekeyStore = {
    version: PREKEY_STORE_VERSION,
    identityKey: c(s.ik),
    nextId: s.next,
    signedPrekeys: s.spks.map(([id, secretKey, publicKey, signature, createdAt, seen]) => ({
      id,
      secretKey: c(secretKey),
      publicKey: c(publicKey),
      signature: c(signature),
      createdAt,
      seenBaseKeys: seen.map(c),
    })),
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
