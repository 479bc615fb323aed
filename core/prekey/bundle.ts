/**
 * The prekey bundle Bob leaves at a relay for offline first contact — the published keys of
 * Signal's PQXDH (rev 2, §3.2 "Publishing keys", https://signal.org/docs/specifications/pqxdh/),
 * adapted to SREMP identities (an Ed25519 identity key that only signs; the X25519 noise key is
 * never used outside Noise, SREMP §identity):
 *
 * - `identityKey`: Bob's Ed25519 identity key IK_B (his contact id).
 * - `signedPrekey`: X25519 signed prekey SPK_B with id and IK_B's signature.
 * - `kemPrekey`: ML-KEM-768 signed last-resort prekey PQSPK_B with id and signature.
 * - `oneTimePrekeys`: X25519 one-time prekeys OPK_B (unsigned, as in PQXDH §3.2).
 * - `oneTimeKemPrekeys`: ML-KEM-768 signed one-time prekeys PQOPK_B.
 *
 * Every signature is an identity-key signature in Loft's domain-separated form (core/identity/
 * signature.ts: context ‖ 0x00 ‖ payload) with context "loft/prekey/v1" over a type-tagged payload
 * (PQXDH §2.1 requires the encodings of curve and KEM keys to have disjoint ranges): see
 * `prekeySignaturePayload`.
 * `decodePrekeyBundle` returns a bundle only after every signature has verified.
 *
 * Version 2 adds a signed creation time (`createdAt`, `timeSignature`, kind 0x04 below): a sender
 * refuses a bundle older than MAX_BUNDLE_AGE_MS (a retired signed prekey served by a stale relay,
 * or a bundle whose owner has been gone a month) — `initiateSession` in pqxdh.ts. Version 1
 * bundles (no time) still parse and verify, and senders refuse to act on them.
 */
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import * as v from "valibot";
import { abytes } from "../bytes.ts";
import { bytesSchema, decodeRaw, encodeCanonical, uintSchema, validate } from "../codec/codec.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { err, ok, type Result } from "../errors.ts";
import { signWithContextNoble, verifyWithContext } from "../identity/signature.ts";

export const PREKEY_BUNDLE_VERSION = 2;
/** Bundles before the signed creation time: parsed and verified, never used by a sender. */
export const LEGACY_PREKEY_BUNDLE_VERSION = 1;
export const IDENTITY_KEY_LEN = 32;
export const SIGNATURE_LEN = 64;
export const X25519_KEY_LEN = 32;
/** FIPS 203, ML-KEM-768: encapsulation key, ciphertext, key-generation seed (d ‖ z), encapsulation m. */
export const KEM_PUBLIC_KEY_LEN = ml_kem768.lengths.publicKey!;
export const KEM_CIPHERTEXT_LEN = ml_kem768.lengths.cipherText!;
export const KEM_SEED_LEN = ml_kem768.lengths.seed!;
export const KEM_MSG_LEN = ml_kem768.lengths.msg!;
/** Prekey ids are u32. */
export const MAX_PREKEY_ID = 0xffff_ffff;
/** Bounds on the one-time prekeys a bundle (and a store) carries. */
export const MAX_ONE_TIME_PREKEYS = 100;
export const MAX_ONE_TIME_KEM_PREKEYS = 16;
/** Refused before parsing; a full bundle is about 28 KiB. */
export const MAX_BUNDLE_LEN = 64 * 1024;
/**
 * A sender refuses a bundle whose signed creation time is older than this: an owner online at
 * least weekly rotates (and republishes) every 7 days, so only a retired bundle kept by a stale
 * relay, or the bundle of someone gone for a month, is older. docs/protocol/prekeys.md, "Bundle".
 */
export const MAX_BUNDLE_AGE_MS = 30 * 24 * 3600 * 1000;
/** ...or created further in the future than this (clock skew between the two devices). */
export const MAX_BUNDLE_CLOCK_SKEW_MS = 24 * 3600 * 1000;

/** The type byte of each signed key (PQXDH §2.1: disjoint encodings per key type). */
export const PrekeyKind = {
  x25519Signed: 0x01,
  kemLastResort: 0x02,
  kemOneTime: 0x03,
  /** Not a key: the creation time of a signed-prekey generation (bundle v2). */
  bundleTime: 0x04,
} as const;
export type PrekeyKind = (typeof PrekeyKind)[keyof typeof PrekeyKind];

/** Signature context of every prekey signature (core/identity/signature.ts convention). */
export const PREKEY_SIGNATURE_CONTEXT = "loft/prekey/v1";

export interface SignedPrekeyPublic {
  readonly id: number;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
}

export interface OneTimePrekeyPublic {
  readonly id: number;
  readonly publicKey: Uint8Array;
}

export interface PrekeyBundle {
  readonly identityKey: Uint8Array;
  readonly signedPrekey: SignedPrekeyPublic;
  readonly kemPrekey: SignedPrekeyPublic;
  readonly oneTimePrekeys: readonly OneTimePrekeyPublic[];
  readonly oneTimeKemPrekeys: readonly SignedPrekeyPublic[];
  /**
   * Version 2: when the signed prekeys were made (ms since the epoch) and IK's signature over it
   * and both signed keys (`bundleTimePayload`). Absent exactly in a version 1 bundle.
   */
  readonly signedTime?: SignedBundleTime;
}

export interface SignedBundleTime {
  readonly createdAt: number;
  readonly signature: Uint8Array;
}

/** The payload an identity key signs for one prekey: kind (1) ‖ id (u32 BE) ‖ public key. */
export function prekeySignaturePayload(kind: PrekeyKind, id: number, publicKey: Uint8Array): Uint8Array {
  if (!Number.isInteger(id) || id < 0 || id > MAX_PREKEY_ID)
    throw new RangeError("prekey id: expected a u32");
  abytes(publicKey, undefined, "publicKey");
  const out = new Uint8Array(5 + publicKey.length);
  out[0] = kind;
  out[1] = id >>> 24;
  out[2] = (id >>> 16) & 0xff;
  out[3] = (id >>> 8) & 0xff;
  out[4] = id & 0xff;
  out.set(publicKey, 5);
  return out;
}

const u32 = (n: number) => new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);

/**
 * The payload an identity key signs for a generation's creation time (bundle v2):
 * 0x04 ‖ createdAt (u64 BE, ms) ‖ id SPK (u32 BE) ‖ SPK (32) ‖ id PQSPK (u32 BE) ‖ PQSPK (1184).
 * Binding both keys (not only their ids) keeps a time from being moved to other keys.
 */
export function bundleTimePayload(
  createdAt: number,
  signedPrekey: { readonly id: number; readonly publicKey: Uint8Array },
  kemPrekey: { readonly id: number; readonly publicKey: Uint8Array },
): Uint8Array {
  if (!Number.isSafeInteger(createdAt) || createdAt < 0)
    throw new RangeError("createdAt: expected a non-negative integer (ms)");
  for (const k of [signedPrekey, kemPrekey])
    if (!Number.isInteger(k.id) || k.id < 0 || k.id > MAX_PREKEY_ID)
      throw new RangeError("prekey id: expected a u32");
  abytes(signedPrekey.publicKey, X25519_KEY_LEN, "signedPrekey.publicKey");
  abytes(kemPrekey.publicKey, KEM_PUBLIC_KEY_LEN, "kemPrekey.publicKey");
  const time = new Uint8Array(8);
  new DataView(time.buffer).setBigUint64(0, BigInt(createdAt));
  const out = new Uint8Array(1 + 8 + 4 + X25519_KEY_LEN + 4 + KEM_PUBLIC_KEY_LEN);
  out[0] = PrekeyKind.bundleTime;
  out.set(time, 1);
  out.set(u32(signedPrekey.id), 9);
  out.set(signedPrekey.publicKey, 13);
  out.set(u32(kemPrekey.id), 13 + X25519_KEY_LEN);
  out.set(kemPrekey.publicKey, 17 + X25519_KEY_LEN);
  return out;
}

/** IK's signature over `bundleTimePayload` (same context as every prekey signature). */
export function signBundleTime(
  identitySecretKey: Uint8Array,
  createdAt: number,
  signedPrekey: { readonly id: number; readonly publicKey: Uint8Array },
  kemPrekey: { readonly id: number; readonly publicKey: Uint8Array },
): Uint8Array {
  return signWithContextNoble(
    identitySecretKey,
    PREKEY_SIGNATURE_CONTEXT,
    bundleTimePayload(createdAt, signedPrekey, kemPrekey),
  );
}

/** Strict verification of a bundle's signed time; `false` for a version 1 bundle (no time). */
export async function verifyBundleTime(crypto: CryptoProvider, bundle: PrekeyBundle): Promise<boolean> {
  const t = bundle.signedTime;
  if (!t) return false;
  return verifyWithContext(
    crypto,
    bundle.identityKey,
    PREKEY_SIGNATURE_CONTEXT,
    bundleTimePayload(t.createdAt, bundle.signedPrekey, bundle.kemPrekey),
    t.signature,
  );
}

/**
 * Ed25519 (RFC 8032) over "loft/prekey/v1" ‖ 0x00 ‖ payload, by the identity key. Synchronous
 * noble: prekeys are generated rarely, off the message path (signature.ts, `signWithContextNoble`);
 * verification, on every first contact, goes through the provider.
 */
export function signPrekey(
  identitySecretKey: Uint8Array,
  kind: PrekeyKind,
  id: number,
  publicKey: Uint8Array,
): Uint8Array {
  return signWithContextNoble(
    identitySecretKey,
    PREKEY_SIGNATURE_CONTEXT,
    prekeySignaturePayload(kind, id, publicKey),
  );
}

/** Strict RFC 8032 verification (no ZIP-215 leniency); any malformed input is `false`. */
export function verifyPrekeySignature(
  crypto: CryptoProvider,
  identityKey: Uint8Array,
  kind: PrekeyKind,
  key: SignedPrekeyPublic,
): Promise<boolean> {
  return verifyWithContext(
    crypto,
    identityKey,
    PREKEY_SIGNATURE_CONTEXT,
    prekeySignaturePayload(kind, key.id, key.publicKey),
    key.signature,
  );
}

const prekeyId = uintSchema(MAX_PREKEY_ID);
const signedX25519Schema = v.strictObject({
  id: prekeyId,
  pk: bytesSchema(X25519_KEY_LEN),
  sig: bytesSchema(SIGNATURE_LEN),
});
const signedKemSchema = v.strictObject({
  id: prekeyId,
  pk: bytesSchema(KEM_PUBLIC_KEY_LEN),
  sig: bytesSchema(SIGNATURE_LEN),
});
const oneTimeSchema = v.strictObject({ id: prekeyId, pk: bytesSchema(X25519_KEY_LEN) });

const bundleFields = {
  ik: bytesSchema(IDENTITY_KEY_LEN),
  spk: signedX25519Schema,
  kpk: signedKemSchema,
  opks: v.pipe(v.array(oneTimeSchema), v.maxLength(MAX_ONE_TIME_PREKEYS)),
  okpks: v.pipe(v.array(signedKemSchema), v.maxLength(MAX_ONE_TIME_KEM_PREKEYS)),
};
const bundleSchema = v.strictObject({
  v: v.literal(PREKEY_BUNDLE_VERSION),
  ...bundleFields,
  t: uintSchema(),
  ts: bytesSchema(SIGNATURE_LEN),
});
const legacyBundleSchema = v.strictObject({ v: v.literal(LEGACY_PREKEY_BUNDLE_VERSION), ...bundleFields });

const signedOut = (k: SignedPrekeyPublic) => ({ id: k.id, pk: k.publicKey, sig: k.signature });

/**
 * Canonical MessagePack of a bundle (docs/protocol/prekeys.md, "Bundle"): version 2 with its signed
 * time, or version 1 for a bundle without one (kept for tests of the legacy path).
 */
export function encodePrekeyBundle(bundle: PrekeyBundle): Uint8Array {
  const t = bundle.signedTime;
  return encodeCanonical({
    v: t ? PREKEY_BUNDLE_VERSION : LEGACY_PREKEY_BUNDLE_VERSION,
    ik: bundle.identityKey,
    spk: signedOut(bundle.signedPrekey),
    kpk: signedOut(bundle.kemPrekey),
    opks: bundle.oneTimePrekeys.map((k) => ({ id: k.id, pk: k.publicKey })),
    okpks: bundle.oneTimeKemPrekeys.map(signedOut),
    ...(t ? { t: t.createdAt, ts: t.signature } : {}),
  });
}

/**
 * Parse a bundle without checking signatures (schema, sizes, distinct ids). Use `decodePrekeyBundle`
 * for anything you will act on. Errors: `LOFT_ERR_FRAME_TOO_LARGE`, `LOFT_ERR_MALFORMED`,
 * `LOFT_ERR_UNSUPPORTED_VERSION`, `LOFT_ERR_SCHEMA`.
 */
export function parsePrekeyBundle(bytes: Uint8Array): Result<PrekeyBundle> {
  const raw = decodeRaw(bytes, { maxBytes: MAX_BUNDLE_LEN });
  if (!raw.ok) return raw;
  const version = (raw.value as { v?: unknown } | null)?.v;
  if (
    typeof version === "number" &&
    version !== PREKEY_BUNDLE_VERSION &&
    version !== LEGACY_PREKEY_BUNDLE_VERSION
  )
    return err("LOFT_ERR_UNSUPPORTED_VERSION", `prekey bundle: unknown version ${version}`);
  const parsed =
    version === LEGACY_PREKEY_BUNDLE_VERSION
      ? validate(raw.value, legacyBundleSchema)
      : validate(raw.value, bundleSchema);
  if (!parsed.ok) return parsed;
  const b = parsed.value;
  const copySigned = (k: { id: number; pk: Uint8Array; sig: Uint8Array }): SignedPrekeyPublic => ({
    id: k.id,
    publicKey: k.pk.slice(),
    signature: k.sig.slice(),
  });
  const bundle: PrekeyBundle = {
    identityKey: b.ik.slice(),
    signedPrekey: copySigned(b.spk),
    kemPrekey: copySigned(b.kpk),
    oneTimePrekeys: b.opks.map((k) => ({ id: k.id, publicKey: k.pk.slice() })),
    oneTimeKemPrekeys: b.okpks.map(copySigned),
    ...("t" in b ? { signedTime: { createdAt: b.t, signature: b.ts.slice() } } : {}),
  };
  const ids = new Set<number>([bundle.signedPrekey.id, bundle.kemPrekey.id]);
  for (const k of [...bundle.oneTimePrekeys, ...bundle.oneTimeKemPrekeys]) ids.add(k.id);
  if (ids.size !== 2 + bundle.oneTimePrekeys.length + bundle.oneTimeKemPrekeys.length)
    return err("LOFT_ERR_SCHEMA", "prekey bundle: duplicate prekey id");
  return ok(bundle);
}

/**
 * Decode a bundle and verify every signature against the bundle's own identity key (PQXDH §3.3:
 * Alice verifies the prekey signatures and aborts if any fails), the creation time's included.
 * Callers then compare `identityKey` with the contact they meant to reach and check the time
 * (`initiateSession` does both). Errors: those of `parsePrekeyBundle`, and `LOFT_ERR_BAD_SIGNATURE`.
 */
export async function decodePrekeyBundle(
  crypto: CryptoProvider,
  bytes: Uint8Array,
): Promise<Result<PrekeyBundle>> {
  const parsed = parsePrekeyBundle(bytes);
  if (!parsed.ok) return parsed;
  const bundle = parsed.value;
  const verify = (kind: PrekeyKind, key: SignedPrekeyPublic) =>
    verifyPrekeySignature(crypto, bundle.identityKey, kind, key);
  if (!(await verify(PrekeyKind.x25519Signed, bundle.signedPrekey)))
    return err("LOFT_ERR_BAD_SIGNATURE", "prekey bundle: signed prekey signature");
  if (!(await verify(PrekeyKind.kemLastResort, bundle.kemPrekey)))
    return err("LOFT_ERR_BAD_SIGNATURE", "prekey bundle: ML-KEM prekey signature");
  if (bundle.signedTime && !(await verifyBundleTime(crypto, bundle)))
    return err("LOFT_ERR_BAD_SIGNATURE", "prekey bundle: creation time signature");
  for (const k of bundle.oneTimeKemPrekeys)
    if (!(await verify(PrekeyKind.kemOneTime, k)))
      return err("LOFT_ERR_BAD_SIGNATURE", `prekey bundle: one-time ML-KEM prekey ${k.id} signature`);
  return ok(bundle);
}
