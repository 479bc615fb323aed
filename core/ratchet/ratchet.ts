/**
 * The Signal Double Ratchet with header encryption (revision 1, 2016-11-20, §4 "Double Ratchet with
 * header encryption", https://signal.org/docs/specifications/doubleratchet/): initialisation
 * (§4.4 `RatchetInitAliceHE` / `RatchetInitBobHE`), `RatchetEncryptHE` (§4.5) and `RatchetDecryptHE`
 * (§4.6) with `TrySkippedMessageKeysHE`, `DecryptHeader`, `SkipMessageKeysHE`, `DHRatchetHE`.
 *
 * Differences from the pseudocode, all allowed or recommended by the spec:
 * - Pure functions over immutable states: every change is made on new objects and returned only on
 *   success, so a failed decryption leaves the state as it was (§3.5: a failed decryption discards
 *   every change to the state). On success the superseded secrets are zeroed.
 * - The current receiving header key HKr is tried before the skipped keys (same result: a skipped
 *   key under HKr is found either way); a header that opens under HKr or an old header key but names
 *   a message we no longer hold is a replay (`LOFT_ERR_REPLAY`).
 * - In a DH ratchet step (§4.6 `DHRatchetHE`) the message is authenticated under the new receiving
 *   chain before the new sending key pair is generated, so a bad message costs no key generation.
 * - Skipped message keys (§3.5, §6.4) are bounded per chain (MAX_SKIP), in total (oldest evicted
 *   first) and in age (the caller passes `now`).
 *
 * Async (the crypto provider is, core/crypto/provider.ts; noble unless `crypto` names another).
 * Operations on one state run one at a time, in call order (a per-state queue): a second call
 * with a state that a first, still running call is about to replace waits for it, and then
 * finds the state consumed — a caller bug, as it always was — instead of interleaving with it.
 * A failed decrypt leaves its input state as it was, so a call queued behind it proceeds.
 */
import { abytes, equalBytes } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { err, LoftError, ok, type Result } from "../errors.ts";
import {
  type ChainStep,
  dh,
  dhPublicKey,
  KEY_LEN,
  kdfChain,
  kdfRoot,
  type RootStep,
  splitBootstrapSecret,
} from "./kdf.ts";
import {
  type Header,
  type HeaderSealer,
  headerSealer,
  isMessageVersion,
  MAX_COUNTER,
  MAX_MESSAGE_LEN,
  MESSAGE_VERSION,
  MESSAGE_VERSION_3,
  type MessageParts,
  type MessageVersion,
  MIN_MESSAGE_LEN,
  NONCE_LEN,
  openBody,
  openHeader,
  type SealedParts,
  sealMessage,
  sealMessageParts,
  splitMessage,
} from "./message.ts";
import {
  assertLive,
  checkLimits,
  DEFAULT_RATCHET_LIMITS,
  MAX_AD_LEN,
  MAX_SKIPPED_CHAINS,
  ownedCopy,
  RATCHET_STATE_VERSION,
  type RatchetLimits,
  type RatchetState,
  type SkippedMessageKey,
  wipeUnshared,
} from "./state.ts";

/**
 * The detail of a `LOFT_ERR_DECRYPT` whose header opened but whose body did not (DR §3.1 DECRYPT):
 * for a caller that must tell a body changed in transit — possible when the body travelled
 * outside the Noise AEAD (docs/protocol/session.md §5, "Detached frames") — from ratchets that
 * disagree (the header opens under none of our header keys).
 */
export const BODY_FAILED = "ratchet message: body failed authentication";

/**
 * The LOFT_ERR_DECRYPT of a body failure (`BODY_FAILED`), told apart by its `bodyFailed` field —
 * not by its text, which a rewording could change, turning body failures into desyncs.
 */
export class BodyFailureError extends LoftError {
  readonly bodyFailed = true as const;
  constructor() {
    super("LOFT_ERR_DECRYPT", BODY_FAILED);
  }
}

const bodyFailure = (): Result<never> => ({ ok: false, error: new BodyFailureError() });

/** True for the error of a message whose header opened and whose body did not (`BodyFailureError`). */
export function isBodyFailure(error: LoftError): boolean {
  return error.code === "LOFT_ERR_DECRYPT" && (error as Partial<BodyFailureError>).bodyFailed === true;
}

/** Source of random bytes; injectable so that vectors are reproducible. */
export type RandomBytes = (length: number) => Uint8Array;

export interface RatchetOptions {
  /** Defaults to the provider's CSPRNG (`crypto.getRandomValues` or node:crypto). */
  readonly random?: RandomBytes;
  /** The primitives (core/crypto/provider.ts); noble when absent. */
  readonly crypto?: CryptoProvider;
  /**
   * `ratchetEncrypt` only: the message version to write — 0x01 (XChaCha20-Poly1305 body, the
   * default, read by every Loft peer), 0x02 (AES-256-GCM body) or 0x03 (AES-256-GCM header and
   * body), the last two only to a peer known to read them (docs/protocol/ratchet.md, "Version
   * 0x02", "Version 0x03"). `ratchetDecrypt` reads all three.
   */
  readonly messageVersion?: MessageVersion;
}

/** The tail of the queue of operations on each state (see the file comment). */
const queues = new WeakMap<RatchetState, Promise<unknown>>();

/**
 * `p` itself, marked as handled: a batch starts a seal or open per message while it still awaits
 * the next KDF_CK step, and only awaits them all after the loop — a rejection in between must not
 * count as unhandled (it still reaches the batch through `Promise.all`).
 */
function settledLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** Run `op` after every operation already queued on `state`. */
function onState<T>(state: RatchetState, op: () => Promise<T>): Promise<T> {
  const run = (queues.get(state) ?? Promise.resolve()).then(op);
  queues.set(
    state,
    run.catch(() => undefined),
  );
  return run;
}

export interface RatchetKeyPair {
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** DR §5.2 `GENERATE_DH()`: an X25519 key pair from 32 random bytes. */
export async function generateRatchetKeyPair(
  random?: RandomBytes,
  crypto: CryptoProvider = nobleCrypto,
): Promise<RatchetKeyPair> {
  // The provider's CSPRNG returns a fresh array no one else holds: it becomes the key itself, so
  // no unwiped copy of the secret is left behind. An injected source's draw (vectors) may be its
  // caller's: copied, so that the state never wipes a caller's buffer.
  const fresh = random === undefined || random === crypto.randomBytes;
  const draw = (random ?? crypto.randomBytes)(KEY_LEN);
  const secretKey = fresh ? draw : ownedCopy(draw, KEY_LEN, "random");
  abytes(secretKey, KEY_LEN, "random");
  try {
    return { secretKey, publicKey: await dhPublicKey(crypto, secretKey) };
  } catch (e) {
    // A provider exception: no key pair is returned, so no one else would wipe the secret.
    crypto.x25519.forget?.(secretKey);
    secretKey.fill(0);
    throw e;
  }
}

interface CommonInit {
  /** SK (DR §3.3), 32 bytes. */
  readonly sharedSecret: Uint8Array;
  /** shared_hka and shared_nhkb (DR §4.4), 32 bytes each. */
  readonly sharedHeaderKeyA: Uint8Array;
  readonly sharedNextHeaderKeyB: Uint8Array;
  /** Associated data bound into every message body (`ratchetAssociatedData`). */
  readonly ad: Uint8Array;
  readonly limits?: RatchetLimits;
}

export interface InitAliceParams extends CommonInit {
  /** Bob's ratchet public key (his signed prekey, or the key he sent in the Noise handshake). */
  readonly bobRatchetPublic: Uint8Array;
  readonly random?: RandomBytes;
  readonly crypto?: CryptoProvider;
}

export interface InitBobParams extends CommonInit {
  readonly bobRatchetKeyPair: RatchetKeyPair;
}

function checkCommon(p: CommonInit): RatchetLimits {
  abytes(p.sharedSecret, KEY_LEN, "sharedSecret");
  abytes(p.sharedHeaderKeyA, KEY_LEN, "sharedHeaderKeyA");
  abytes(p.sharedNextHeaderKeyB, KEY_LEN, "sharedNextHeaderKeyB");
  abytes(p.ad, undefined, "ad");
  if (p.ad.length > MAX_AD_LEN) throw new RangeError(`ad: at most ${MAX_AD_LEN} bytes`);
  const limits = { ...(p.limits ?? DEFAULT_RATCHET_LIMITS) };
  checkLimits(limits);
  return limits;
}

/**
 * DR §4.4 `RatchetInitAliceHE(SK, bob_dh_public_key, shared_hka, shared_nhkb)`. Alice sends first.
 * `bobRatchetPublic` comes from the peer, so a low-order key is a typed error, not a throw.
 */
export async function initAlice(p: InitAliceParams): Promise<Result<RatchetState>> {
  const crypto = p.crypto ?? nobleCrypto;
  const limits = checkCommon(p);
  abytes(p.bobRatchetPublic, KEY_LEN, "bobRatchetPublic");
  const self = await generateRatchetKeyPair(p.random, crypto);
  // The backend drops what it made from the key (node: OpenSSL's copy) now, not when the array
  // is collected (core/crypto/provider.ts, X25519.forget), as Noise does on its wipe.
  const dropSelf = () => {
    crypto.x25519.forget?.(self.secretKey);
    self.secretKey.fill(0);
  };
  let dhOut: Uint8Array | undefined;
  let step: RootStep;
  try {
    dhOut = await dh(crypto, self.secretKey, p.bobRatchetPublic);
    if (!dhOut) {
      dropSelf();
      return err("LOFT_ERR_MALFORMED", "bob's ratchet public key is a low-order point");
    }
    step = await kdfRoot(crypto, p.sharedSecret, dhOut);
  } catch (e) {
    // A provider exception: no state is returned, so no one else would wipe the new key pair.
    dropSelf();
    throw e;
  } finally {
    dhOut?.fill(0);
  }
  return ok({
    version: RATCHET_STATE_VERSION,
    ad: p.ad.slice(),
    dhSelfSecret: self.secretKey,
    dhSelfPublic: self.publicKey,
    dhRemote: p.bobRatchetPublic.slice(),
    rootKey: step.rootKey,
    sendChainKey: step.chainKey,
    recvChainKey: null,
    sendHeaderKey: p.sharedHeaderKeyA.slice(),
    recvHeaderKey: null,
    nextSendHeaderKey: step.nextHeaderKey,
    nextRecvHeaderKey: p.sharedNextHeaderKeyB.slice(),
    sendCount: 0,
    recvCount: 0,
    prevSendCount: 0,
    skipped: [],
    limits,
  });
}

/**
 * DR §4.4 `RatchetInitBobHE(SK, bob_dh_key_pair, shared_hka, shared_nhkb)`. Bob cannot send until
 * Alice's first message has arrived (his sending chain starts at his first DH ratchet step).
 * The key pair is copied: the state later zeroes its copy, never the caller's (e.g. a prekey store).
 */
export function initBob(p: InitBobParams): RatchetState {
  const limits = checkCommon(p);
  return {
    version: RATCHET_STATE_VERSION,
    ad: p.ad.slice(),
    dhSelfSecret: ownedCopy(p.bobRatchetKeyPair.secretKey, KEY_LEN, "bobRatchetKeyPair.secretKey"),
    dhSelfPublic: ownedCopy(p.bobRatchetKeyPair.publicKey, KEY_LEN, "bobRatchetKeyPair.publicKey"),
    dhRemote: null,
    rootKey: p.sharedSecret.slice(),
    sendChainKey: null,
    recvChainKey: null,
    sendHeaderKey: null,
    recvHeaderKey: null,
    nextSendHeaderKey: p.sharedNextHeaderKeyB.slice(),
    nextRecvHeaderKey: p.sharedHeaderKeyA.slice(),
    sendCount: 0,
    recvCount: 0,
    prevSendCount: 0,
    skipped: [],
    limits,
  };
}

export type RatchetRole = "alice" | "bob";

export type RatchetFromSecretParams =
  | {
      readonly role: "alice";
      readonly secret: Uint8Array;
      readonly bobRatchetPublic: Uint8Array;
      readonly ad: Uint8Array;
      readonly limits?: RatchetLimits;
      readonly random?: RandomBytes;
      readonly crypto?: CryptoProvider;
    }
  | {
      readonly role: "bob";
      readonly secret: Uint8Array;
      readonly bobRatchetKeyPair: RatchetKeyPair;
      readonly ad: Uint8Array;
      readonly limits?: RatchetLimits;
      readonly crypto?: CryptoProvider;
    };

/**
 * Start a session from one 32-byte agreed secret: split it into SK, shared_hka and shared_nhkb
 * (`splitBootstrapSecret`, HKDF-SHA-256) and run the DR §4.4 initialisation for `role`.
 */
export async function ratchetFromSecret(p: RatchetFromSecretParams): Promise<Result<RatchetState>> {
  const crypto = p.crypto ?? nobleCrypto;
  const keys = await splitBootstrapSecret(crypto, p.secret);
  try {
    const common = {
      sharedSecret: keys.sharedSecret,
      sharedHeaderKeyA: keys.sharedHeaderKeyA,
      sharedNextHeaderKeyB: keys.sharedNextHeaderKeyB,
      ad: p.ad,
      ...(p.limits ? { limits: p.limits } : {}),
    };
    if (p.role === "alice")
      return await initAlice({
        ...common,
        bobRatchetPublic: p.bobRatchetPublic,
        crypto,
        ...(p.random ? { random: p.random } : {}),
      });
    return ok(initBob({ ...common, bobRatchetKeyPair: p.bobRatchetKeyPair }));
  } finally {
    keys.sharedSecret.fill(0);
    keys.sharedHeaderKeyA.fill(0);
    keys.sharedNextHeaderKeyB.fill(0);
  }
}

/** True once the state has a sending chain (Alice from the start, Bob after his first receive). */
export function canSend(state: RatchetState): boolean {
  return state.sendChainKey !== null;
}

function assertNow(now: number): void {
  if (!Number.isSafeInteger(now) || now < 0)
    throw new RangeError("now: expected a non-negative integer (ms)");
}

/** DR §6.4: skipped keys are deleted after a while; here, after `limits.skippedKeyTtlMs`. */
function dropExpired(state: RatchetState, now: number): readonly SkippedMessageKey[] {
  const ttl = state.limits.skippedKeyTtlMs;
  const skipped = state.skipped;
  for (let i = 0; i < skipped.length; i++)
    if (now - skipped[i]!.storedAt > ttl) return skipped.filter((s) => now - s.storedAt <= ttl);
  return skipped;
}

/**
 * DR §6.4 on schedule, for the state a caller is about to store after a *failed* decrypt (which
 * leaves its input unchanged, DR §3.5) or when it loads an idle state: the skipped keys stored more
 * than `limits.skippedKeyTtlMs` before `now` are zeroed and removed. Returns `state` itself when
 * none expired; otherwise a new state, and `state` is retired like after any committed step.
 * (Encrypts and successful decrypts already drop expired keys.)
 */
export function expireSkippedKeys(state: RatchetState, now: number): RatchetState {
  assertLive(state);
  assertNow(now);
  const skipped = dropExpired(state, now);
  if (skipped === state.skipped) return state;
  const next: RatchetState = { ...state, skipped };
  wipeUnshared(state, next, true);
  return next;
}

export interface EncryptResult {
  readonly state: RatchetState;
  readonly message: Uint8Array;
}

/** `ratchetEncrypt`'s result with the message in its two parts (the message is `prefix ‖ body`). */
export interface EncryptPartsResult extends SealedParts {
  readonly state: RatchetState;
}

/**
 * DR §4.5 `RatchetEncryptHE(state, plaintext, AD)`. Throws (a caller bug) when the state cannot send
 * yet — see `canSend` — or was already advanced. The returned message layout is in message.ts.
 */
export function ratchetEncrypt(
  state: RatchetState,
  plaintext: Uint8Array,
  now: number,
  options: RatchetOptions = {},
): Promise<EncryptResult> {
  return onState(state, async () => {
    const r = await encryptNow(state, plaintext, now, options, sealMessage);
    return { state: r.state, message: r.sealed };
  });
}

/**
 * `ratchetEncrypt` returning the message as `prefix ‖ body` without joining them (message.ts
 * `sealMessageParts`): for a caller that copies the message into a frame of its own anyway (a
 * Noise transport frame, `Session.sendParts`), one copy of the body fewer. Same state, same bytes.
 */
export function ratchetEncryptParts(
  state: RatchetState,
  plaintext: Uint8Array,
  now: number,
  options: RatchetOptions = {},
): Promise<EncryptPartsResult> {
  return onState(state, async () => {
    const r = await encryptNow(state, plaintext, now, options, sealMessageParts);
    return { state: r.state, prefix: r.sealed.prefix, body: r.sealed.body };
  });
}

/** `ratchetEncryptBatch`'s result: the state after the last message, and each message in parts. */
export interface EncryptBatchResult {
  readonly state: RatchetState;
  readonly messages: readonly SealedParts[];
}

/**
 * `ratchetEncryptParts` of each plaintext in turn, in one call: the same messages (N = sendCount,
 * sendCount + 1, …, each with its own random nonce) and the same final state as that many calls in
 * order — but only KDF_CK (DR §5.2), which each step needs from the one before, runs one step at
 * a time; the header and body seals of all the messages then run together. With a provider whose
 * AEAD is asynchronous (WebCrypto: each call a round trip to the browser's crypto thread) the
 * seals overlap instead of waiting on each other (docs/protocol/ratchet.md §Performance).
 *
 * The caller's duties do not change (DR §3.5): store the returned state before any of the
 * messages leaves. Nothing is returned, and `state` stays usable, if any step throws.
 */
export function ratchetEncryptBatch(
  state: RatchetState,
  plaintexts: readonly Uint8Array[],
  now: number,
  options: RatchetOptions = {},
): Promise<EncryptBatchResult> {
  return onState(state, async () => {
    const crypto = options.crypto ?? nobleCrypto;
    assertLive(state);
    assertNow(now);
    if (!state.sendChainKey || !state.sendHeaderKey)
      throw new Error(
        "ratchet: cannot send before the first message from the peer has been received (DR §4.4)",
      );
    if (state.sendCount + plaintexts.length > MAX_COUNTER)
      throw new RangeError("ratchet: sending chain exhausted");
    for (const plaintext of plaintexts) {
      abytes(plaintext, undefined, "plaintext");
      if (plaintext.length > MAX_MESSAGE_LEN - MIN_MESSAGE_LEN)
        throw new RangeError("ratchet: plaintext too large");
    }
    const version = options.messageVersion ?? MESSAGE_VERSION;
    if (!isMessageVersion(version)) throw new RangeError(`ratchet: unknown message version ${version}`);
    const random = options.random ?? crypto.randomBytes;
    // Nonces first, in message order (what n calls in a row draw), then the keys: KDF_CK in turn.
    const nonces = plaintexts.map(() => ownedCopy(random(NONCE_LEN), NONCE_LEN, "random"));
    const messageKeys: Uint8Array[] = [];
    const sealing: Promise<SealedParts>[] = [];
    let chainKey = state.sendChainKey;
    // One header key seals the whole run: for 0x03 imported once where that saves a round trip —
    // and not at all for an empty batch, which seals nothing (a key import is a provider call,
    // with WebCrypto a round trip to the crypto thread, for no message).
    const headerKey =
      plaintexts.length === 0
        ? state.sendHeaderKey
        : await headerSealer(crypto, version, state.sendHeaderKey);
    try {
      for (let i = 0; i < plaintexts.length; i++) {
        const step = await kdfChain(crypto, chainKey);
        if (chainKey !== state.sendChainKey) chainKey.fill(0);
        chainKey = step.chainKey;
        messageKeys.push(step.messageKey);
        // Message i is sealed as soon as its key exists: its header, key import and body AEAD
        // overlap KDF_CK's next steps (DR §5.2: each step needs the chain key of the one before,
        // so the chain itself is the one serial part of a run) instead of waiting for all of them.
        sealing.push(
          settledLater(
            sealMessageParts(
              crypto,
              version,
              headerKey,
              step.messageKey,
              { dh: state.dhSelfPublic, pn: state.prevSendCount, n: state.sendCount + i },
              nonces[i]!,
              state.ad,
              plaintexts[i]!,
            ),
          ),
        );
      }
      const messages = await Promise.all(sealing);
      const next: RatchetState = {
        ...state,
        sendChainKey: chainKey,
        sendCount: state.sendCount + plaintexts.length,
        skipped: dropExpired(state, now),
      };
      wipeUnshared(state, next, true);
      return { state: next, messages };
    } catch (e) {
      // Seals still running use their message keys: wiped (below) once every one has settled.
      await Promise.allSettled(sealing);
      if (chainKey !== state.sendChainKey) chainKey.fill(0);
      throw e;
    } finally {
      for (const mk of messageKeys) mk.fill(0);
    }
  });
}

async function encryptNow<T>(
  state: RatchetState,
  plaintext: Uint8Array,
  now: number,
  options: RatchetOptions,
  seal: (...args: Parameters<typeof sealMessage>) => Promise<T>,
): Promise<{ state: RatchetState; sealed: T }> {
  const crypto = options.crypto ?? nobleCrypto;
  assertLive(state);
  abytes(plaintext, undefined, "plaintext");
  assertNow(now);
  if (!state.sendChainKey || !state.sendHeaderKey)
    throw new Error(
      "ratchet: cannot send before the first message from the peer has been received (DR §4.4)",
    );
  if (state.sendCount >= MAX_COUNTER) throw new RangeError("ratchet: sending chain exhausted");
  if (plaintext.length > MAX_MESSAGE_LEN - MIN_MESSAGE_LEN)
    throw new RangeError("ratchet: plaintext too large");
  const version = options.messageVersion ?? MESSAGE_VERSION;
  if (!isMessageVersion(version)) throw new RangeError(`ratchet: unknown message version ${version}`);
  const nonce = ownedCopy((options.random ?? crypto.randomBytes)(NONCE_LEN), NONCE_LEN, "random");
  const step = await kdfChain(crypto, state.sendChainKey);
  const header: Header = { dh: state.dhSelfPublic, pn: state.prevSendCount, n: state.sendCount };
  let sealed: T;
  try {
    sealed = await seal(
      crypto,
      version,
      state.sendHeaderKey,
      step.messageKey,
      header,
      nonce,
      state.ad,
      plaintext,
    );
  } catch (e) {
    // A provider exception: nothing is committed and `state` stays usable (as for the batches),
    // so the chain key derived for the next state goes with the message key (DR §3.5).
    step.chainKey.fill(0);
    throw e;
  } finally {
    step.messageKey.fill(0);
  }
  const next: RatchetState = {
    ...state,
    sendChainKey: step.chainKey,
    sendCount: state.sendCount + 1,
    skipped: dropExpired(state, now),
  };
  wipeUnshared(state, next, true);
  return { state: next, sealed };
}

export interface DecryptResult {
  readonly state: RatchetState;
  readonly plaintext: Uint8Array;
}

/**
 * DR §4.6 `RatchetDecryptHE(state, enc_header, ciphertext, AD)`. Errors, all leaving `state` as it
 * was: `LOFT_ERR_MALFORMED` (too short), `LOFT_ERR_FRAME_TOO_LARGE`, `LOFT_ERR_UNSUPPORTED_VERSION`,
 * `LOFT_ERR_DECRYPT` (no header key opens the header, or the body fails authentication),
 * `LOFT_ERR_REPLAY` (a message whose key was already used or has expired),
 * `LOFT_ERR_TOO_MANY_SKIPPED` (more than MAX_SKIP keys to skip in one chain).
 */
export function ratchetDecrypt(
  state: RatchetState,
  message: Uint8Array,
  now: number,
  options: RatchetOptions = {},
): Promise<Result<DecryptResult>> {
  return onState(state, () => decryptNow(state, message, now, options));
}

/** `ratchetDecryptBatch`'s result: the state after every message, and each message's outcome. */
export interface DecryptBatchResult {
  readonly state: RatchetState;
  /** In message order: the plaintext, or why that message was refused (as `ratchetDecrypt` says). */
  readonly results: readonly Result<Uint8Array>[];
  /**
   * Set when a step threw (a provider exception) after earlier messages had moved the state:
   * `results` then covers only the messages before the one that threw, `state` is the state
   * after them (live; the state passed in was used up), and the messages from `results.length`
   * on are unread — where one `ratchetDecrypt` per message would have thrown at that message.
   */
  readonly thrown?: unknown;
}

/**
 * `ratchetDecrypt` of each message in turn, in one call: the same plaintexts, errors and final
 * state as calling it for each message in order and keeping the state of each success (a refused
 * message leaves the state as it was, DR §3.5, and the next one is read from there).
 *
 * The usual case — a run of messages that are each the next one of the current receiving chain
 * (headers open under HKr with N = Nr, Nr + 1, …) — takes a faster way: KDF_CK one step at a time
 * as always, then the bodies of the run opened together (overlapping round trips to an
 * asynchronous provider, docs/protocol/ratchet.md §Performance), and the state committed only if
 * every body of the run authenticates. Any other message — a header that does not open under HKr,
 * a gap, a replay, a DH ratchet step — is read on its own, as `ratchetDecrypt` reads it, and a
 * run after it may take the fast way again. A body that fails discards its run's attempt (its keys
 * wiped, the state untouched) and the rest of the batch is read one message at a time. So replay
 * protection, skipped keys and the bounds are exactly `ratchetDecrypt`'s, and a hostile batch
 * costs at most one failed run on top of the one-by-one work. A step that throws after earlier
 * messages moved the state ends the batch with `thrown` (see DecryptBatchResult); before that, it
 * throws and `state` stays usable.
 */
export function ratchetDecryptBatch(
  state: RatchetState,
  messages: readonly Uint8Array[],
  now: number,
  options: RatchetOptions = {},
): Promise<DecryptBatchResult> {
  return onState(state, async () => {
    assertLive(state);
    assertNow(now);
    const crypto = options.crypto ?? nobleCrypto;
    let current = state;
    let fastWay = true;
    const opened: OpenedHeaders = { byIndex: new Map() };
    const results: Result<Uint8Array>[] = [];
    for (let i = 0; i < messages.length; ) {
      try {
        if (fastWay) {
          const run = await decryptRun(current, messages, i, now, crypto, opened);
          if (run === "failed") fastWay = false;
          else if (run) {
            current = run.state;
            results.push(...run.plaintexts.map((p) => ok(p)));
            i += run.plaintexts.length;
            continue;
          }
        }
        // A header `decryptRun` already opened under this HKr is handed over, not opened again
        // (DR §4.6 DecryptHeader step 1 is a pure function of HKr and the message).
        const underHkr =
          opened.headerKey !== undefined && opened.headerKey === current.recvHeaderKey
            ? opened.byIndex.get(i)
            : undefined;
        const r = await decryptNow(current, messages[i]!, now, options, underHkr);
        if (r.ok) current = r.value.state;
        results.push(r.ok ? ok(r.value.plaintext) : r);
        i++;
      } catch (e) {
        // Each step leaves its input as it was when it throws, but the steps before it used up
        // the states they advanced from (the caller's among them): rethrowing would lose the
        // live state and the plaintexts already opened. Hand them back with the exception.
        if (current === state) throw e;
        return { state: current, results, thrown: e };
      }
    }
    return { state: current, results };
  });
}

/**
 * The headers of a batch opened under one HKr, by message index, so each is opened under it once:
 * `decryptRun` opens every candidate of the rest of the batch at once, and is called again after
 * each message read on its own — without this a batch of n messages none of which continues the
 * chain (replays, forgeries) would open n(n+1)/2 headers instead of n. Cleared when HKr changes (a
 * DH ratchet step, DR §4.6). `sealer`: HKr imported once for the whole batch (0x03).
 */
interface OpenedHeaders {
  headerKey?: Uint8Array;
  sealer?: Uint8Array | HeaderSealer;
  readonly byIndex: Map<number, Promise<Header | undefined>>;
}

/**
 * The fast way of `ratchetDecryptBatch` from `messages[from]`: the longest run of messages that
 * are the next ones of the current receiving chain, opened and committed together. `undefined`
 * when `messages[from]` is not such a message; `"failed"` when a body of the run did not
 * authenticate. Either way nothing changed and no key is kept.
 */
async function decryptRun(
  state: RatchetState,
  messages: readonly Uint8Array[],
  from: number,
  now: number,
  crypto: CryptoProvider,
  opened: OpenedHeaders,
): Promise<{ state: RatchetState; plaintexts: Uint8Array[] } | "failed" | undefined> {
  const headerKey = state.recvHeaderKey;
  const chainKey = state.recvChainKey;
  if (!headerKey || !chainKey) return undefined;
  if (opened.headerKey !== headerKey) {
    opened.headerKey = headerKey;
    opened.sealer = undefined;
    opened.byIndex.clear();
  }
  const candidates: MessageParts[] = [];
  for (let i = from; i < messages.length; i++) {
    const message = messages[i];
    if (!(message instanceof Uint8Array)) break;
    if (message.length > MAX_MESSAGE_LEN || message.length < MIN_MESSAGE_LEN) break;
    if (!isMessageVersion(message[0])) break;
    if (state.recvCount + candidates.length >= MAX_COUNTER) break;
    candidates.push(splitMessage(message));
  }
  if (candidates.length === 0) return undefined;
  // Every candidate's header opened under HKr at once (with a native AEAD, a 0x03 header is a
  // round trip each: overlapped, not one after the other) — those not opened under it already in
  // this batch (OpenedHeaders) — then read in order: the run ends at the first header that does
  // not open as the next N. A header opened past that end is kept for the next run, not handed
  // out — it holds no secret (DR §3.1 HEADER: a public key and two counters).
  if (!opened.sealer)
    opened.sealer = candidates.some((c) => c.version === MESSAGE_VERSION_3)
      ? await headerSealer(crypto, MESSAGE_VERSION_3, headerKey)
      : undefined;
  const sealer = opened.sealer ?? headerKey;
  const headers = candidates.map((parts, i) => {
    let header = opened.byIndex.get(from + i);
    if (!header) {
      header = settledLater(openHeader(crypto, sealer, parts));
      opened.byIndex.set(from + i, header);
    }
    return header;
  });
  const run: MessageParts[] = [];
  for (let i = 0; i < candidates.length; i++) {
    const header = await headers[i]!;
    if (header?.n !== state.recvCount + run.length) break;
    run.push(candidates[i]!);
  }
  if (run.length === 0) return undefined;
  const messageKeys: Uint8Array[] = [];
  const opening: Promise<Uint8Array | undefined>[] = [];
  let ck = chainKey;
  try {
    for (let i = 0; i < run.length; i++) {
      const step = await kdfChain(crypto, ck);
      if (ck !== chainKey) ck.fill(0);
      ck = step.chainKey;
      messageKeys.push(step.messageKey);
      // Opened as soon as its key exists, overlapping KDF_CK's next steps (as ratchetEncryptBatch
      // seals); nothing is committed before every body of the run has authenticated.
      opening.push(settledLater(openBody(crypto, step.messageKey, run[i]!, state.ad)));
    }
    const plaintexts = await Promise.all(opening);
    if (plaintexts.some((p) => p === undefined)) {
      for (const p of plaintexts) p?.fill(0);
      ck.fill(0);
      return "failed";
    }
    const next: RatchetState = {
      ...state,
      recvChainKey: ck,
      recvCount: state.recvCount + run.length,
      skipped: dropExpired(state, now),
    };
    wipeUnshared(state, next, true);
    return { state: next, plaintexts: plaintexts as Uint8Array[] };
  } catch (e) {
    // Nothing of the run is handed out: the bodies that did open are wiped once all have settled.
    for (const r of await Promise.allSettled(opening)) if (r.status === "fulfilled") r.value?.fill(0);
    if (ck !== chainKey) ck.fill(0);
    throw e;
  } finally {
    for (const mk of messageKeys) mk.fill(0);
  }
}

/**
 * `ratchetDecrypt`'s work. `openedUnderHkr`: this message's header as already opened under
 * `state.recvHeaderKey` (`ratchetDecryptBatch` keeps those, OpenedHeaders), so DecryptHeader's
 * step 1 does not open it a second time; `undefined` in it means it did not open under HKr.
 */
async function decryptNow(
  state: RatchetState,
  message: Uint8Array,
  now: number,
  options: RatchetOptions,
  openedUnderHkr?: Promise<Header | undefined>,
): Promise<Result<DecryptResult>> {
  const crypto = options.crypto ?? nobleCrypto;
  assertLive(state);
  assertNow(now);
  if (!(message instanceof Uint8Array)) return err("LOFT_ERR_MALFORMED", "ratchet message: not bytes");
  if (message.length > MAX_MESSAGE_LEN)
    return err(
      "LOFT_ERR_FRAME_TOO_LARGE",
      `ratchet message: ${message.length} bytes exceeds ${MAX_MESSAGE_LEN}`,
    );
  if (message.length < MIN_MESSAGE_LEN)
    return err(
      "LOFT_ERR_MALFORMED",
      `ratchet message: ${message.length} bytes is shorter than ${MIN_MESSAGE_LEN}`,
    );
  if (!isMessageVersion(message[0]))
    return err("LOFT_ERR_UNSUPPORTED_VERSION", `ratchet message: unknown version ${message[0]}`);
  const parts = splitMessage(message);
  const skipped = dropExpired(state, now);

  // DR §4.6 DecryptHeader, step 1: the current receiving chain.
  if (state.recvHeaderKey) {
    const header = await (openedUnderHkr ?? openHeader(crypto, state.recvHeaderKey, parts));
    if (header) return receiveInCurrentChain(crypto, state, skipped, header, parts, now);
  }
  // DecryptHeader, step 2: the next header key means the peer has stepped its DH ratchet.
  const header = await openHeader(crypto, state.nextRecvHeaderKey, parts);
  if (header)
    return receiveWithDhRatchet(
      crypto,
      state,
      skipped,
      header,
      parts,
      now,
      options.random ?? crypto.randomBytes,
    );
  // TrySkippedMessageKeysHE: header keys of earlier chains we still hold skipped keys for.
  const tried: Uint8Array[] = state.recvHeaderKey ? [state.recvHeaderKey] : [];
  for (const entry of skipped) {
    if (tried.some((hk) => hk === entry.headerKey || equalBytes(hk, entry.headerKey))) continue;
    tried.push(entry.headerKey);
    const old = await openHeader(crypto, entry.headerKey, parts);
    if (old) return receiveSkipped(crypto, state, skipped, entry.headerKey, old, parts);
  }
  return err("LOFT_ERR_DECRYPT", "ratchet message: no header key opens the header");
}

function findSkipped(skipped: readonly SkippedMessageKey[], headerKey: Uint8Array, n: number): number {
  for (let i = 0; i < skipped.length; i++) {
    const s = skipped[i]!;
    if (s.n === n && (s.headerKey === headerKey || equalBytes(s.headerKey, headerKey))) return i;
  }
  return -1;
}

/** TrySkippedMessageKeysHE for a header that opened under `headerKey`. */
async function receiveSkipped(
  crypto: CryptoProvider,
  state: RatchetState,
  skipped: readonly SkippedMessageKey[],
  headerKey: Uint8Array,
  header: Header,
  parts: MessageParts,
): Promise<Result<DecryptResult>> {
  const index = findSkipped(skipped, headerKey, header.n);
  if (index < 0)
    return err("LOFT_ERR_REPLAY", `ratchet message: message ${header.n} already received or expired`);
  const plaintext = await openBody(crypto, skipped[index]!.messageKey, parts, state.ad);
  if (!plaintext) return bodyFailure();
  const next: RatchetState = { ...state, skipped: skipped.filter((_, i) => i !== index) };
  wipeUnshared(state, next, true);
  return ok({ state: next, plaintext });
}

interface Advanced {
  readonly chainKey: Uint8Array;
  readonly skipped: SkippedMessageKey[];
}

/**
 * DR §4.6 `SkipMessageKeysHE`: derive and keep the keys for messages `from`..`until - 1`. The input
 * chain key is not modified; intermediate chain keys are zeroed as soon as they are replaced.
 */
async function advanceChain(
  crypto: CryptoProvider,
  chainKey: Uint8Array,
  headerKey: Uint8Array,
  from: number,
  until: number,
  now: number,
): Promise<Advanced> {
  let ck = chainKey;
  const out: SkippedMessageKey[] = [];
  try {
    for (let n = from; n < until; n++) {
      const step = await kdfChain(crypto, ck);
      if (ck !== chainKey) ck.fill(0);
      ck = step.chainKey;
      out.push({ headerKey, n, messageKey: step.messageKey, storedAt: now });
    }
  } catch (e) {
    // A provider exception part-way: the keys derived so far are nobody's (DR §3.5).
    if (ck !== chainKey) ck.fill(0);
    wipeSkipped(out);
    throw e;
  }
  return { chainKey: ck, skipped: out };
}

/**
 * Append newly skipped keys, evicting the oldest beyond `maxSkippedKeys`, and every key of a chain
 * older than the MAX_SKIPPED_CHAINS most recent ones (evicted keys are zeroed on commit). The
 * chain bound caps the header keys an unreadable message is tried against (DR §4.6
 * TrySkippedMessageKeysHE), so garbage injected by a relay costs at most MAX_SKIPPED_CHAINS + 2
 * header decryptions.
 */
function withSkipped(
  limits: RatchetLimits,
  skipped: readonly SkippedMessageKey[],
  added: readonly SkippedMessageKey[],
): readonly SkippedMessageKey[] {
  if (added.length === 0) return skipped;
  let all = skipped.concat(added);
  if (all.length > limits.maxSkippedKeys) all = all.slice(all.length - limits.maxSkippedKeys);
  const recent: Uint8Array[] = [];
  for (let i = all.length - 1; i >= 0; i--) {
    const hk = all[i]!.headerKey;
    if (recent.some((k) => k === hk || equalBytes(k, hk))) continue;
    if (recent.length === MAX_SKIPPED_CHAINS)
      return all.filter((e) => recent.some((k) => k === e.headerKey || equalBytes(k, e.headerKey)));
    recent.push(hk);
  }
  return all;
}

function wipeSkipped(entries: readonly SkippedMessageKey[]): void {
  for (const s of entries) s.messageKey.fill(0);
}

/** RatchetDecryptHE when the header opened under HKr: a skipped key, a replay, or the next keys. */
async function receiveInCurrentChain(
  crypto: CryptoProvider,
  state: RatchetState,
  skipped: readonly SkippedMessageKey[],
  header: Header,
  parts: MessageParts,
  now: number,
): Promise<Result<DecryptResult>> {
  const headerKey = state.recvHeaderKey!;
  const chainKey = state.recvChainKey!;
  if (header.n < state.recvCount) return receiveSkipped(crypto, state, skipped, headerKey, header, parts);
  // A sender stops at N = MAX_COUNTER − 1 (its Ns is then MAX_COUNTER, the most a stored counter
  // holds); accepting N = MAX_COUNTER would leave Nr = 2³², a state the format cannot store
  // (docs/protocol/ratchet.md, "Limits"). Refused before any key is derived (DR §3.5). PN needs no
  // such check: PN = MAX_COUNTER is a full chain, and the keys it skips are numbered below it.
  if (header.n >= MAX_COUNTER)
    return err(
      "LOFT_ERR_MALFORMED",
      `ratchet message: message number ${header.n} is past the last a chain holds`,
    );
  if (header.n - state.recvCount > state.limits.maxSkip)
    return err("LOFT_ERR_TOO_MANY_SKIPPED", `ratchet message: would skip ${header.n - state.recvCount} keys`);
  const advanced = await advanceChain(crypto, chainKey, headerKey, state.recvCount, header.n, now);
  let step: ChainStep | undefined;
  let plaintext: Uint8Array | undefined;
  try {
    step = await kdfChain(crypto, advanced.chainKey);
    if (advanced.chainKey !== chainKey) advanced.chainKey.fill(0);
    plaintext = await openBody(crypto, step.messageKey, parts, state.ad);
  } catch (e) {
    // A provider exception (not a failed tag): nothing is committed and `state` stays usable
    // (DR §3.5), so what this attempt derived is zeroed, as on a failed tag below.
    if (advanced.chainKey !== chainKey) advanced.chainKey.fill(0);
    step?.chainKey.fill(0);
    wipeSkipped(advanced.skipped);
    throw e;
  } finally {
    step?.messageKey.fill(0);
  }
  if (!plaintext) {
    step.chainKey.fill(0);
    wipeSkipped(advanced.skipped);
    return bodyFailure();
  }
  const next: RatchetState = {
    ...state,
    recvChainKey: step.chainKey,
    recvCount: header.n + 1,
    skipped: withSkipped(state.limits, skipped, advanced.skipped),
  };
  wipeUnshared(state, next, true);
  return ok({ state: next, plaintext });
}

/** RatchetDecryptHE when the header opened under NHKr: skip the old chain, DHRatchetHE, decrypt. */
async function receiveWithDhRatchet(
  crypto: CryptoProvider,
  state: RatchetState,
  skipped: readonly SkippedMessageKey[],
  header: Header,
  parts: MessageParts,
  now: number,
  random: RandomBytes,
): Promise<Result<DecryptResult>> {
  const { maxSkip } = state.limits;
  // SkipMessageKeysHE(state, header.pn) checks before looking at CKr, as the spec does.
  if (header.pn > state.recvCount + maxSkip)
    return err(
      "LOFT_ERR_TOO_MANY_SKIPPED",
      `ratchet message: would skip ${header.pn - state.recvCount} keys`,
    );
  if (header.n > maxSkip)
    return err("LOFT_ERR_TOO_MANY_SKIPPED", `ratchet message: would skip ${header.n} keys`);
  // What this attempt derives, each zeroed where it is used up, and all of it when a provider
  // throws part-way: nothing is committed then and `state` stays usable (DR §3.5) — the message
  // may have been read, but it is not handed out.
  let oldChain: SkippedMessageKey[] = [];
  let dhRecv: Uint8Array | undefined;
  let recvStep: RootStep | undefined;
  let newChain: Advanced | undefined;
  let step: ChainStep | undefined;
  let plaintext: Uint8Array | undefined;
  let self: RatchetKeyPair | undefined;
  let dhSend: Uint8Array | undefined;
  let sendStep: RootStep;
  try {
    if (state.recvChainKey && state.recvHeaderKey) {
      const advanced = await advanceChain(
        crypto,
        state.recvChainKey,
        state.recvHeaderKey,
        state.recvCount,
        header.pn,
        now,
      );
      if (advanced.chainKey !== state.recvChainKey) advanced.chainKey.fill(0);
      oldChain = advanced.skipped;
    }
    // DHRatchetHE, receiving half: RK, CKr, NHKr = KDF_RK_HE(RK, DH(DHs, DHr)).
    dhRecv = await dh(crypto, state.dhSelfSecret, header.dh);
    if (!dhRecv) {
      wipeSkipped(oldChain);
      return err("LOFT_ERR_DECRYPT", "ratchet message: peer ratchet key is a low-order point");
    }
    recvStep = await kdfRoot(crypto, state.rootKey, dhRecv);
    dhRecv.fill(0);
    newChain = await advanceChain(crypto, recvStep.chainKey, state.nextRecvHeaderKey, 0, header.n, now);
    step = await kdfChain(crypto, newChain.chainKey);
    if (newChain.chainKey !== recvStep.chainKey) newChain.chainKey.fill(0);
    recvStep.chainKey.fill(0);
    plaintext = await openBody(crypto, step.messageKey, parts, state.ad);
    step.messageKey.fill(0);
    if (!plaintext) {
      step.chainKey.fill(0);
      recvStep.rootKey.fill(0);
      recvStep.nextHeaderKey.fill(0);
      wipeSkipped(oldChain);
      wipeSkipped(newChain.skipped);
      return bodyFailure();
    }
    // DHRatchetHE, sending half: DHs = GENERATE_DH(); RK, CKs, NHKs = KDF_RK_HE(RK, DH(DHs, DHr)).
    self = await generateRatchetKeyPair(random, crypto);
    dhSend = await dh(crypto, self.secretKey, header.dh);
    // The same peer key passed the receiving half's low-order check just above, so a refusal here
    // is the provider's inconsistency, not the message's: thrown (the catch below wipes, `state`
    // stays usable), with the code of the receiving half's refusal of that key (DR §3.5).
    if (!dhSend)
      throw new LoftError(
        "LOFT_ERR_DECRYPT",
        "ratchet message: X25519 rejected a key it accepted a moment ago",
      );
    sendStep = await kdfRoot(crypto, recvStep.rootKey, dhSend);
  } catch (e) {
    if (self) {
      crypto.x25519.forget?.(self.secretKey);
      self.secretKey.fill(0);
    }
    plaintext?.fill(0);
    dhRecv?.fill(0);
    step?.messageKey.fill(0);
    step?.chainKey.fill(0);
    if (newChain) {
      newChain.chainKey.fill(0); // the new chain's own key, or recvStep.chainKey (zeroed anyway)
      wipeSkipped(newChain.skipped);
    }
    recvStep?.chainKey.fill(0);
    recvStep?.rootKey.fill(0);
    recvStep?.nextHeaderKey.fill(0);
    wipeSkipped(oldChain);
    throw e;
  } finally {
    dhSend?.fill(0);
  }
  // KDF_RK's input root key is used up (the next state keeps sendStep's).
  recvStep.rootKey.fill(0);
  const next: RatchetState = {
    ...state,
    dhSelfSecret: self.secretKey,
    dhSelfPublic: self.publicKey,
    dhRemote: header.dh,
    rootKey: sendStep.rootKey,
    sendChainKey: sendStep.chainKey,
    recvChainKey: step.chainKey,
    sendHeaderKey: state.nextSendHeaderKey,
    recvHeaderKey: state.nextRecvHeaderKey,
    nextSendHeaderKey: sendStep.nextHeaderKey,
    nextRecvHeaderKey: recvStep.nextHeaderKey,
    sendCount: 0,
    recvCount: header.n + 1,
    prevSendCount: state.sendCount,
    skipped: withSkipped(state.limits, withSkipped(state.limits, skipped, oldChain), newChain.skipped),
  };
  // The replaced DHs is wiped just below: its backend handle (node: OpenSSL's copy) goes now, not
  // when the array is collected — a caller may keep the consumed state (X25519.forget).
  crypto.x25519.forget?.(state.dhSelfSecret);
  wipeUnshared(state, next, true);
  return ok({ state: next, plaintext });
}
