/**
 * Offline first contact: a PQXDH-style key agreement (Signal PQXDH rev 2, §3.3 "Sending the initial
 * message" and §3.4 "Receiving the initial message", https://signal.org/docs/specifications/pqxdh/)
 * that ends in a Double Ratchet session (core/ratchet), adapted to SREMP identities.
 *
 * SREMP §identity forbids using the X25519 noise key outside Noise, and the Ed25519 identity key
 * only signs; so the two DHs X3DH/PQXDH compute with identity keys (DH1 = DH(IK_A, SPK_B),
 * DH2 = DH(EK_A, IK_B)) are replaced:
 *
 *   DH1 = DH(SPK_A, SPK_B)   mutual authentication: both keys are signed by their identity keys
 *   DH2 = DH(EK_A,  SPK_B)   forward secrecy, Bob authenticated by SPK_B's signature
 *   DH3 = DH(EK_A,  OPK_B)   one-time forward secrecy, when a one-time prekey is available
 *   SS  = ML-KEM-768.Decaps(CT) under PQSPK_B or PQOPK_B (post-quantum forward secrecy)
 *
 * SPK_A is Alice's own current signed prekey (from her prekey store, published in her own bundle):
 * a DH with it authenticates Alice as DH(IK_A, SPK_B) does in PQXDH §4.1, and — unlike a signature
 * over the initial message — keeps the deniability of §4.4: every input Bob holds is public or his
 * own, so he could have produced the whole transcript himself. Alice's identity key and SPK_A travel
 * sealed (under a key from DH2, DH3 and SS), so the relay holding the message learns no identity.
 * Both identity keys, all prekeys, the ephemeral key and the KEM ciphertext enter the KDF through a
 * transcript hash (PQXDH §4.10 "Identity binding", and the KEM re-encapsulation concern of §4.8).
 * docs/protocol/prekeys.md has every byte.
 */
import * as v from "valibot";
import { abytes, concatBytes, equalBytes, utf8 } from "../bytes.ts";
import { bytesSchema, decodeRaw, encodeCanonical, uintSchema, validate } from "../codec/codec.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { err, ok, type Result } from "../errors.ts";
import { ratchetAssociatedData } from "../ratchet/bootstrap.ts";
import { dh, dhPublicKey } from "../ratchet/kdf.ts";
import { MAX_MESSAGE_LEN } from "../ratchet/message.ts";
import { type RandomBytes, ratchetDecrypt, ratchetEncrypt, ratchetFromSecret } from "../ratchet/ratchet.ts";
import type { RatchetLimits, RatchetState } from "../ratchet/state.ts";
import {
  decodePrekeyBundle,
  IDENTITY_KEY_LEN,
  KEM_CIPHERTEXT_LEN,
  KEM_MSG_LEN,
  MAX_BUNDLE_AGE_MS,
  MAX_BUNDLE_CLOCK_SKEW_MS,
  MAX_PREKEY_ID,
  type PrekeyBundle,
  PrekeyKind,
  SIGNATURE_LEN,
  verifyPrekeySignature,
  X25519_KEY_LEN,
} from "./bundle.ts";
import {
  assertLiveStore,
  kemSecretKey,
  type PrekeyStore,
  rememberBaseKey,
  retireStore,
  senderTag,
} from "./store.ts";

export const INITIAL_MESSAGE_VERSION = 1;
/** PQXDH §2.1 `info`, with our curve, hash and KEM. */
export const PQXDH_INFO = utf8("LoftPQXDH/v1/CURVE25519_SHA-256_ML-KEM-768");
export const SEAL_INFO = utf8("LoftPQXDH/v1/sealed-sender");
const TRANSCRIPT_DOMAIN = utf8("LoftPQXDH/v1");
/** PQXDH §2.2 KDF: F = 32 0xFF bytes precede the key material for curve25519. */
const F = new Uint8Array(32).fill(0xff);
const ZERO_SALT = new Uint8Array(32);
const ZERO_NONCE = new Uint8Array(12);

/** Sealed sender block: IK_A (32) ‖ SPK_A id (u32 BE) ‖ SPK_A (32) ‖ Sig(IK_A, SPK_A) (64). */
export const SENDER_BLOCK_LEN = IDENTITY_KEY_LEN + 4 + X25519_KEY_LEN + SIGNATURE_LEN;
export const SEALED_SENDER_LEN = SENDER_BLOCK_LEN + 16;
export const MAX_INITIAL_MESSAGE_LEN = MAX_MESSAGE_LEN + 4096;

/** Everything of an initial message but the ratchet message: repeated until Bob answers. */
export interface InitialHeader {
  readonly signedPrekeyId: number;
  readonly kemPrekeyId: number;
  readonly oneTimePrekeyId: number | null;
  /** EK_A, Alice's ephemeral public key; also the session's routing key ("base key"). */
  readonly baseKey: Uint8Array;
  readonly kemCiphertext: Uint8Array;
  readonly sealedSender: Uint8Array;
}

export interface InitialMessage {
  readonly header: InitialHeader;
  /** A Double Ratchet message (core/ratchet/message.ts layout). */
  readonly ratchetMessage: Uint8Array;
}

const u32 = (n: number) => new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);

const initialSchema = v.strictObject({
  v: v.literal(INITIAL_MESSAGE_VERSION),
  spk: uintSchema(MAX_PREKEY_ID),
  kpk: uintSchema(MAX_PREKEY_ID),
  opk: v.optional(uintSchema(MAX_PREKEY_ID)),
  ek: bytesSchema(X25519_KEY_LEN),
  ct: bytesSchema(KEM_CIPHERTEXT_LEN),
  sender: bytesSchema(SEALED_SENDER_LEN),
  msg: bytesSchema(1, MAX_MESSAGE_LEN),
});

/** Canonical MessagePack of an initial message (docs/protocol/prekeys.md, "Initial message"). */
export function encodeInitialMessage(header: InitialHeader, ratchetMessage: Uint8Array): Uint8Array {
  return encodeCanonical({
    v: INITIAL_MESSAGE_VERSION,
    spk: header.signedPrekeyId,
    kpk: header.kemPrekeyId,
    opk: header.oneTimePrekeyId ?? undefined,
    ek: header.baseKey,
    ct: header.kemCiphertext,
    sender: header.sealedSender,
    msg: ratchetMessage,
  });
}

/**
 * Parse an initial message (no cryptography): Bob uses `header.baseKey` to route the repeats of an
 * initial message to the session the first one created (PQXDH §3.4, Signal's PreKeySignalMessage).
 */
export function decodeInitialMessage(bytes: Uint8Array): Result<InitialMessage> {
  const raw = decodeRaw(bytes, { maxBytes: MAX_INITIAL_MESSAGE_LEN });
  if (!raw.ok) return raw;
  const version = (raw.value as { v?: unknown } | null)?.v;
  if (typeof version === "number" && version !== INITIAL_MESSAGE_VERSION)
    return err("LOFT_ERR_UNSUPPORTED_VERSION", `initial message: unknown version ${version}`);
  const parsed = validate(raw.value, initialSchema);
  if (!parsed.ok) return parsed;
  const m = parsed.value;
  return ok({
    header: {
      signedPrekeyId: m.spk,
      kemPrekeyId: m.kpk,
      oneTimePrekeyId: m.opk ?? null,
      baseKey: m.ek.slice(),
      kemCiphertext: m.ct.slice(),
      sealedSender: m.sender.slice(),
    },
    ratchetMessage: m.msg.slice(),
  });
}

interface BobPublicKeys {
  readonly identityKey: Uint8Array;
  readonly signedPrekeyId: number;
  readonly signedPrekey: Uint8Array;
  readonly kemPrekeyId: number;
  readonly kemPrekey: Uint8Array;
  readonly oneTimePrekeyId: number | null;
  readonly oneTimePrekey: Uint8Array | null;
}

/** H0: hash of everything public before the sender is known (docs/protocol/prekeys.md, "KDF"). */
function publicTranscript(
  crypto: CryptoProvider,
  bob: BobPublicKeys,
  baseKey: Uint8Array,
  kemCiphertext: Uint8Array,
): Promise<Uint8Array> {
  const opk =
    bob.oneTimePrekeyId === null || !bob.oneTimePrekey
      ? new Uint8Array([0])
      : concatBytes(new Uint8Array([1]), u32(bob.oneTimePrekeyId), bob.oneTimePrekey);
  return crypto.sha256(
    concatBytes(
      TRANSCRIPT_DOMAIN,
      bob.identityKey,
      u32(bob.signedPrekeyId),
      bob.signedPrekey,
      u32(bob.kemPrekeyId),
      bob.kemPrekey,
      opk,
      baseKey,
      kemCiphertext,
    ),
  );
}

/** H1 = SHA-256(H0 ‖ sealed sender block): binds IK_A and SPK_A (inside the block) too. */
function fullTranscript(
  crypto: CryptoProvider,
  h0: Uint8Array,
  sealedSender: Uint8Array,
): Promise<Uint8Array> {
  return crypto.sha256(concatBytes(h0, sealedSender));
}

/** PQXDH §2.2 KDF(KM) = HKDF-SHA-256(salt = 0³², IKM = F ‖ KM, info, 32 bytes). */
async function kdf(
  crypto: CryptoProvider,
  keyMaterial: Uint8Array[],
  info: Uint8Array,
  transcript: Uint8Array,
): Promise<Uint8Array> {
  const ikm = concatBytes(F, ...keyMaterial);
  try {
    return await crypto.hkdfSha256(ikm, ZERO_SALT, concatBytes(info, transcript), 32);
  } finally {
    ikm.fill(0);
  }
}

function wipeAll(list: (Uint8Array | undefined | null)[]): void {
  for (const b of list) b?.fill(0);
}

function senderBlock(
  identityKey: Uint8Array,
  spkId: number,
  spk: Uint8Array,
  signature: Uint8Array,
): Uint8Array {
  return concatBytes(identityKey, u32(spkId), spk, signature);
}

/** Why a verified bundle is too old (or too new) to use at `now`; null when it is fine. */
export function bundleStaleness(bundle: PrekeyBundle, now: number): string | null {
  const t = bundle.signedTime;
  if (!t) return "no signed creation time (version 1)";
  if (now - t.createdAt > MAX_BUNDLE_AGE_MS)
    return `created ${Math.floor((now - t.createdAt) / 86_400_000)} days ago (more than ${MAX_BUNDLE_AGE_MS / 86_400_000})`;
  if (t.createdAt - now > MAX_BUNDLE_CLOCK_SKEW_MS) return "created in the future (clock skew over a day)";
  return null;
}

export interface InitiateSessionParams {
  /** Alice's own prekey store: her identity key and current signed prekey (SPK_A). */
  readonly sender: PrekeyStore;
  /** Bob's encoded prekey bundle, as fetched from the relay. */
  readonly bundle: Uint8Array;
  /** The identity key of the contact Alice means to reach: the bundle must carry exactly this key. */
  readonly recipientIdentityKey: Uint8Array;
  /** The first message's plaintext. */
  readonly plaintext: Uint8Array;
  readonly now: number;
  readonly random?: RandomBytes;
  readonly limits?: RatchetLimits;
  /** The primitives (core/crypto/provider.ts); noble when absent. */
  readonly crypto?: CryptoProvider;
}

export interface InitiatedSession {
  /** Alice's ratchet state (she may keep sending; see `header`). */
  readonly state: RatchetState;
  /** The encoded initial message for Bob's mailbox. */
  readonly message: Uint8Array;
  /**
   * Until Bob's first reply arrives, Alice sends every ratchet message as
   * `encodeInitialMessage(header, ratchetMessage)` so that Bob can start the session from any of them.
   */
  readonly header: InitialHeader;
}

/**
 * PQXDH §3.3 for Alice: verify Bob's bundle, agree on SK, start the ratchet with Bob's signed prekey
 * as his first ratchet key, and encrypt the first message. Random draws, in order: EK_A (32), one-time
 * prekey choice (4, if any), one-time KEM prekey choice (4, if any), ML-KEM encapsulation m (32),
 * Alice's first ratchet key (32), the first message's nonce (24).
 * Errors: the bundle's decode errors, `LOFT_ERR_BAD_IDENTITY` (not the expected contact),
 * `LOFT_ERR_STALE_PREKEY` (no signed creation time — a version 1 bundle — or one older than
 * MAX_BUNDLE_AGE_MS or later than MAX_BUNDLE_CLOCK_SKEW_MS ahead of `now`), `LOFT_ERR_MALFORMED`
 * (an invalid X25519 or ML-KEM public key in a validly signed bundle).
 */
export async function initiateSession(p: InitiateSessionParams): Promise<Result<InitiatedSession>> {
  abytes(p.recipientIdentityKey, IDENTITY_KEY_LEN, "recipientIdentityKey");
  abytes(p.plaintext, undefined, "plaintext");
  assertLiveStore(p.sender);
  const crypto = p.crypto ?? nobleCrypto;
  const random = p.random ?? crypto.randomBytes;
  const decoded = await decodePrekeyBundle(crypto, p.bundle);
  if (!decoded.ok) return decoded;
  const bundle: PrekeyBundle = decoded.value;
  if (!equalBytes(bundle.identityKey, p.recipientIdentityKey))
    return err("LOFT_ERR_BAD_IDENTITY", "prekey bundle: signed by another identity than the contact's");
  const stale = bundleStaleness(bundle, p.now);
  if (stale) return err("LOFT_ERR_STALE_PREKEY", `prekey bundle: ${stale}`);
  const spkA = p.sender.signedPrekeys[0];
  if (!spkA) throw new Error("initiateSession: sender store has no signed prekey");

  const ephemeral = random(X25519_KEY_LEN).slice();
  abytes(ephemeral, X25519_KEY_LEN, "random");
  const baseKey = await dhPublicKey(crypto, ephemeral);
  const pick = <T>(list: readonly T[]): T | undefined => {
    if (list.length === 0) return undefined;
    const r = random(4);
    return list[(((r[0]! << 24) | (r[1]! << 16) | (r[2]! << 8) | r[3]!) >>> 0) % list.length];
  };
  const opk = pick(bundle.oneTimePrekeys);
  const kem = pick(bundle.oneTimeKemPrekeys) ?? bundle.kemPrekey;

  const bob: BobPublicKeys = {
    identityKey: bundle.identityKey,
    signedPrekeyId: bundle.signedPrekey.id,
    signedPrekey: bundle.signedPrekey.publicKey,
    kemPrekeyId: kem.id,
    kemPrekey: kem.publicKey,
    oneTimePrekeyId: opk?.id ?? null,
    oneTimePrekey: opk?.publicKey ?? null,
  };
  const m = random(KEM_MSG_LEN).slice();
  abytes(m, KEM_MSG_LEN, "random");
  const encapsulated = await crypto.mlkem768.encapsulate(kem.publicKey, m);
  m.fill(0);
  if (encapsulated === undefined) {
    ephemeral.fill(0);
    return err("LOFT_ERR_MALFORMED", "prekey bundle: invalid ML-KEM-768 public key");
  }
  const ss = encapsulated.sharedSecret;
  const dh1 = await dh(crypto, spkA.secretKey, bob.signedPrekey);
  const dh2 = await dh(crypto, ephemeral, bob.signedPrekey);
  const dh3 = opk ? await dh(crypto, ephemeral, opk.publicKey) : null;
  ephemeral.fill(0);
  if (!dh1 || !dh2 || (opk && !dh3)) {
    wipeAll([ss, dh1, dh2, dh3]);
    return err("LOFT_ERR_MALFORMED", "prekey bundle: low-order X25519 prekey");
  }
  const h0 = await publicTranscript(crypto, bob, baseKey, encapsulated.ciphertext);
  const sealKey = await kdf(crypto, [dh2, ...(dh3 ? [dh3] : []), ss], SEAL_INFO, h0);
  const sealedSender = await crypto.chacha20poly1305.seal(
    sealKey,
    ZERO_NONCE,
    h0,
    senderBlock(p.sender.identityKey, spkA.id, spkA.publicKey, spkA.signature),
  );
  sealKey.fill(0);
  const sk = await kdf(
    crypto,
    [dh1, dh2, ...(dh3 ? [dh3] : []), ss],
    PQXDH_INFO,
    await fullTranscript(crypto, h0, sealedSender),
  );
  wipeAll([ss, dh1, dh2, dh3]);

  const started = await ratchetFromSecret({
    role: "alice",
    secret: sk,
    bobRatchetPublic: bob.signedPrekey,
    ad: ratchetAssociatedData(p.sender.identityKey, bundle.identityKey),
    random,
    crypto,
    ...(p.limits ? { limits: p.limits } : {}),
  });
  sk.fill(0);
  if (!started.ok) return started;
  const first = await ratchetEncrypt(started.value, p.plaintext, p.now, { random, crypto });
  const header: InitialHeader = {
    signedPrekeyId: bob.signedPrekeyId,
    kemPrekeyId: bob.kemPrekeyId,
    oneTimePrekeyId: bob.oneTimePrekeyId,
    baseKey,
    kemCiphertext: encapsulated.ciphertext,
    sealedSender,
  };
  return ok({ state: first.state, message: encodeInitialMessage(header, first.message), header });
}

export interface AcceptInitialMessageParams {
  readonly now: number;
  readonly random?: RandomBytes;
  readonly limits?: RatchetLimits;
  /** The primitives (core/crypto/provider.ts); noble when absent. */
  readonly crypto?: CryptoProvider;
}

export interface AcceptedSession {
  /** The store without the consumed one-time prekeys and with the replay cache updated. */
  readonly store: PrekeyStore;
  readonly state: RatchetState;
  readonly plaintext: Uint8Array;
  /** IK_A, authenticated: the caller applies trust (TOFU) to it. */
  readonly senderIdentityKey: Uint8Array;
  /** EK_A: route later initial messages carrying the same base key to this session. */
  readonly baseKey: Uint8Array;
}

/**
 * PQXDH §3.4 for Bob: find the prekeys named, refuse replays (§4.2), recompute SK, open the sealed
 * sender block, verify Alice's signed prekey, start the ratchet (Bob's SPK is his first ratchet key)
 * and decrypt the first message. Only if all of that succeeds are the one-time prekeys deleted and
 * the base key remembered; any failure leaves `store` as it was.
 * Errors: decode errors; `LOFT_ERR_HANDSHAKE_STATE` (signed prekey or ML-KEM prekey unknown:
 * rotated out); `LOFT_ERR_REPLAY` (one-time prekey already used, or base key in the replay cache);
 * `LOFT_ERR_DECRYPT` (sealed block or first message fails); `LOFT_ERR_BAD_SIGNATURE`
 * (Alice's signed prekey); `LOFT_ERR_MALFORMED` (low-order keys).
 * Random draws: Bob's next ratchet key (32).
 */
export async function acceptInitialMessage(
  store: PrekeyStore,
  bytes: Uint8Array,
  p: AcceptInitialMessageParams,
): Promise<Result<AcceptedSession>> {
  assertLiveStore(store);
  const crypto = p.crypto ?? nobleCrypto;
  const decoded = decodeInitialMessage(bytes);
  if (!decoded.ok) return decoded;
  const { header, ratchetMessage } = decoded.value;
  const spkIndex = store.signedPrekeys.findIndex((k) => k.id === header.signedPrekeyId);
  const spk = store.signedPrekeys[spkIndex];
  if (!spk)
    return err("LOFT_ERR_HANDSHAKE_STATE", `initial message: unknown signed prekey ${header.signedPrekeyId}`);
  // One-time prekeys first (PQXDH §4.2): a replayed initial message finds its one-time key gone.
  let opkIndex = -1;
  if (header.oneTimePrekeyId !== null) {
    opkIndex = store.oneTimePrekeys.findIndex((k) => k.id === header.oneTimePrekeyId);
    if (opkIndex < 0)
      return err(
        "LOFT_ERR_REPLAY",
        `initial message: one-time prekey ${header.oneTimePrekeyId} already used`,
      );
  }
  const opk = opkIndex >= 0 ? store.oneTimePrekeys[opkIndex]! : null;
  const lastResortKem = store.kemPrekeys.find((k) => k.id === header.kemPrekeyId);
  const oneTimeKemIndex = store.oneTimeKemPrekeys.findIndex((k) => k.id === header.kemPrekeyId);
  const kem = lastResortKem ?? store.oneTimeKemPrekeys[oneTimeKemIndex];
  if (!kem) {
    // An id we allocated but no longer hold: a one-time key already used (or a rotated-out one).
    if (header.kemPrekeyId > 0 && header.kemPrekeyId < store.nextId)
      return err(
        "LOFT_ERR_REPLAY",
        `initial message: ML-KEM prekey ${header.kemPrekeyId} already used or retired`,
      );
    return err("LOFT_ERR_HANDSHAKE_STATE", `initial message: unknown ML-KEM prekey ${header.kemPrekeyId}`);
  }
  if (spk.seenBaseKeys.some((k) => equalBytes(k.baseKey, header.baseKey)))
    return err("LOFT_ERR_REPLAY", "initial message: base key already used");
  const usesOneTimeKey = opk !== null || oneTimeKemIndex >= 0;

  // Every secret derived below (ss, DH1–3, the seal key, SK) is wiped on every exit, a provider
  // exception included (as the ratchet's steps are, DR §3.5), and so is the session started from
  // SK until its first message opens: nothing of a failed attempt outlives the call.
  let ss: Uint8Array | undefined;
  let dh1: Uint8Array | undefined;
  let dh2: Uint8Array | undefined;
  let dh3: Uint8Array | undefined;
  let sealKey: Uint8Array | undefined;
  let sk: Uint8Array | undefined;
  let unopened: RatchetState | undefined;
  let first: { state: RatchetState; plaintext: Uint8Array };
  let senderIdentityKey: Uint8Array;
  try {
    const kemSecret = kemSecretKey(kem.seed);
    try {
      ss = await crypto.mlkem768.decapsulate(kemSecret, header.kemCiphertext);
    } finally {
      // A backend's copy goes with the key (MlKem768.forget).
      crypto.mlkem768.forget?.(kemSecret);
      kemSecret.fill(0);
    }
    if (ss === undefined) return err("LOFT_ERR_MALFORMED", "initial message: ML-KEM-768 ciphertext");
    dh2 = await dh(crypto, spk.secretKey, header.baseKey);
    if (opk) dh3 = await dh(crypto, opk.secretKey, header.baseKey);
    if (!dh2 || (opk && !dh3)) return err("LOFT_ERR_MALFORMED", "initial message: low-order base key");
    const bob: BobPublicKeys = {
      identityKey: store.identityKey,
      signedPrekeyId: spk.id,
      signedPrekey: spk.publicKey,
      kemPrekeyId: kem.id,
      kemPrekey: kem.publicKey,
      oneTimePrekeyId: opk?.id ?? null,
      oneTimePrekey: opk?.publicKey ?? null,
    };
    const h0 = await publicTranscript(crypto, bob, header.baseKey, header.kemCiphertext);
    sealKey = await kdf(crypto, [dh2, ...(dh3 ? [dh3] : []), ss], SEAL_INFO, h0);
    const block = await crypto.chacha20poly1305.open(sealKey, ZERO_NONCE, h0, header.sealedSender);
    if (block === undefined)
      return err("LOFT_ERR_DECRYPT", "initial message: sealed sender block fails authentication");
    senderIdentityKey = block.slice(0, IDENTITY_KEY_LEN);
    const spkAId = new DataView(block.buffer, block.byteOffset + IDENTITY_KEY_LEN, 4).getUint32(0);
    const spkA = block.slice(IDENTITY_KEY_LEN + 4, IDENTITY_KEY_LEN + 4 + X25519_KEY_LEN);
    const spkASignature = block.slice(IDENTITY_KEY_LEN + 4 + X25519_KEY_LEN);
    if (
      !(await verifyPrekeySignature(crypto, senderIdentityKey, PrekeyKind.x25519Signed, {
        id: spkAId,
        publicKey: spkA,
        signature: spkASignature,
      }))
    )
      return err("LOFT_ERR_BAD_SIGNATURE", "initial message: sender's signed prekey signature");
    dh1 = await dh(crypto, spk.secretKey, spkA);
    if (!dh1)
      return err("LOFT_ERR_MALFORMED", "initial message: sender's signed prekey is a low-order point");
    sk = await kdf(
      crypto,
      [dh1, dh2, ...(dh3 ? [dh3] : []), ss],
      PQXDH_INFO,
      await fullTranscript(crypto, h0, header.sealedSender),
    );
    const started = await ratchetFromSecret({
      role: "bob",
      secret: sk,
      bobRatchetKeyPair: { secretKey: spk.secretKey, publicKey: spk.publicKey },
      ad: ratchetAssociatedData(senderIdentityKey, store.identityKey),
      crypto,
      ...(p.limits ? { limits: p.limits } : {}),
    });
    if (!started.ok) return started;
    unopened = started.value;
    const opened = await ratchetDecrypt(unopened, ratchetMessage, p.now, {
      crypto,
      ...(p.random ? { random: p.random } : {}),
    });
    if (!opened.ok) return opened;
    // The ratchet consumed the started state (what its next state does not share is wiped).
    unopened = undefined;
    first = opened.value;
  } finally {
    wipeAll([ss, dh1, dh2, dh3, sealKey, sk]);
    if (unopened) {
      // The fresh session's secrets (it was never handed out): its own copy of SPK_B's secret
      // (initBob), the root key and the header keys; it has no chain keys before its first message.
      crypto.x25519.forget?.(unopened.dhSelfSecret);
      wipeAll([
        unopened.dhSelfSecret,
        unopened.rootKey,
        unopened.nextSendHeaderKey,
        unopened.nextRecvHeaderKey,
      ]);
    }
  }

  // Commit (PQXDH §3.4): delete the one-time prekeys used; remember a base key that no one-time key
  // protects — never refusing: a full cache evicts (store.ts `rememberBaseKey`).
  const signedPrekeys = usesOneTimeKey
    ? store.signedPrekeys
    : store.signedPrekeys.map((k, i) =>
        i === spkIndex
          ? {
              ...k,
              seenBaseKeys: rememberBaseKey(k.seenBaseKeys, {
                baseKey: header.baseKey.slice(),
                sender: senderTag(senderIdentityKey),
              }),
            }
          : k,
      );
  if (opk) opk.secretKey.fill(0);
  if (oneTimeKemIndex >= 0) store.oneTimeKemPrekeys[oneTimeKemIndex]!.seed.fill(0);
  retireStore(store);
  return ok({
    store: {
      ...store,
      signedPrekeys,
      oneTimePrekeys:
        opkIndex >= 0 ? store.oneTimePrekeys.filter((_, i) => i !== opkIndex) : store.oneTimePrekeys,
      oneTimeKemPrekeys:
        oneTimeKemIndex >= 0
          ? store.oneTimeKemPrekeys.filter((_, i) => i !== oneTimeKemIndex)
          : store.oneTimeKemPrekeys,
    },
    state: first.state,
    plaintext: first.plaintext,
    senderIdentityKey,
    baseKey: header.baseKey,
  });
}
