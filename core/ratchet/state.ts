/**
 * The state of one Double Ratchet session with header encryption — the variables of the Signal
 * Double Ratchet specification (revision 1, §3.2 "State variables" and §4.3 for HKs, HKr, NHKs, NHKr),
 * https://signal.org/docs/specifications/doubleratchet/ — plus Loft's limits, and its versioned
 * MessagePack serialization (the state is stored in IndexedDB and must round-trip exactly).
 *
 * States are immutable values: `ratchetEncrypt` / `ratchetDecrypt` return a new state and, on
 * success, zero the secrets that only the old one held and mark it consumed, so a stale copy
 * cannot be used by mistake (that would reuse chain keys). A failure leaves the input untouched
 * (DR §3.5: a failed decryption discards the message and every change to the state).
 */
import * as v from "valibot";
import { abytes, equalBytes } from "../bytes.ts";
import { bytesSchema, decodeVersioned, encodeCanonical, uintSchema } from "../codec/codec.ts";
import { err, ok, type Result } from "../errors.ts";
import { KEY_LEN } from "./kdf.ts";
import { MAX_COUNTER } from "./message.ts";

export const RATCHET_STATE_VERSION = 1;

/** DR §3.5 MAX_SKIP and the bounds on the skipped-message-key store (DR §3.5, §6.4). */
export interface RatchetLimits {
  /** Most message keys one incoming message may make us skip in one chain (DR §3.5 MAX_SKIP). */
  readonly maxSkip: number;
  /** Most skipped message keys stored in total; beyond it the oldest are evicted. */
  readonly maxSkippedKeys: number;
  /** A skipped key older than this (ms, against the caller's `now`) is deleted (DR §6.4). */
  readonly skippedKeyTtlMs: number;
}

export const DEFAULT_RATCHET_LIMITS: RatchetLimits = Object.freeze({
  maxSkip: 1000,
  maxSkippedKeys: 2000,
  // A relay keeps a blob at most 7 days (docs/design.md, "Relay mailbox"): a message that was skipped
  // cannot arrive much later than that. 14 days leaves room for a device that was off.
  skippedKeyTtlMs: 14 * 24 * 60 * 60 * 1000,
});

/**
 * Most receiving chains whose skipped keys are kept (libsignal keeps 5 old receiver chains); keys
 * of older chains are evicted. Bounds the header keys tried per unreadable message.
 */
export const MAX_SKIPPED_CHAINS = 16;

/** Upper bounds accepted for limits (they size the stored state, which is decoded from storage). */
export const LIMITS_CEILING: RatchetLimits = Object.freeze({
  maxSkip: 100_000,
  maxSkippedKeys: 10_000,
  skippedKeyTtlMs: 365 * 24 * 60 * 60 * 1000,
});

/** Longest associated data a state may carry (it holds two identity keys, 64 bytes, in practice). */
export const MAX_AD_LEN = 1024;

/** One entry of DR §4.3 MKSKIPPED, keyed by (header key, message number). */
export interface SkippedMessageKey {
  readonly headerKey: Uint8Array;
  readonly n: number;
  readonly messageKey: Uint8Array;
  /** The caller's `now` when the key was stored; expiry counts from here. */
  readonly storedAt: number;
}

/** DR §3.2 and §4.3 state variables; `null` is the spec's `None`. */
export interface RatchetState {
  readonly version: typeof RATCHET_STATE_VERSION;
  /** Associated data bound into every message body (both parties' identity keys). */
  readonly ad: Uint8Array;
  /** DHs: our current ratchet key pair. */
  readonly dhSelfSecret: Uint8Array;
  readonly dhSelfPublic: Uint8Array;
  /** DHr: the peer's current ratchet public key. */
  readonly dhRemote: Uint8Array | null;
  /** RK */
  readonly rootKey: Uint8Array;
  /** CKs, CKr */
  readonly sendChainKey: Uint8Array | null;
  readonly recvChainKey: Uint8Array | null;
  /** HKs, HKr, NHKs, NHKr (DR §4.3). */
  readonly sendHeaderKey: Uint8Array | null;
  readonly recvHeaderKey: Uint8Array | null;
  readonly nextSendHeaderKey: Uint8Array;
  readonly nextRecvHeaderKey: Uint8Array;
  /** Ns, Nr, PN */
  readonly sendCount: number;
  readonly recvCount: number;
  readonly prevSendCount: number;
  /** MKSKIPPED, oldest first. */
  readonly skipped: readonly SkippedMessageKey[];
  readonly limits: RatchetLimits;
}

const consumed = new WeakSet<RatchetState>();

/** Throws when a state that a later call already replaced is used again (a caller bug). */
export function assertLive(state: RatchetState): void {
  if (consumed.has(state))
    throw new Error("ratchet state already advanced: use the state returned by the last encrypt/decrypt");
}

/** The secret buffers a state references (chain, root, header and message keys, DH secret). */
function secretsOf(state: RatchetState): Uint8Array[] {
  const out: Uint8Array[] = [
    state.dhSelfSecret,
    state.rootKey,
    state.nextSendHeaderKey,
    state.nextRecvHeaderKey,
  ];
  for (const b of [state.sendChainKey, state.recvChainKey, state.sendHeaderKey, state.recvHeaderKey])
    if (b) out.push(b);
  for (const s of state.skipped) out.push(s.headerKey, s.messageKey);
  return out;
}

/**
 * Zero every secret `from` holds that `to` does not share. After a successful step, called as
 * (old, new) to delete superseded keys and mark the old state consumed; after a failed one, as
 * (draft, input) to delete what the attempt derived.
 */
export function wipeUnshared(from: RatchetState, to: RatchetState, markConsumed: boolean): void {
  const kept = new Set(secretsOf(to));
  for (const b of secretsOf(from)) if (!kept.has(b)) b.fill(0);
  if (markConsumed) consumed.add(from);
}

/**
 * Zero every secret of a state that is done with (a throwaway session's, web/src/engine/warm-up.ts)
 * and mark it consumed: the same buffers `wipeUnshared` deletes after a step. The DH secret's
 * backend copy (node: OpenSSL's) goes now too, as on a DH ratchet step (ratchet.ts; provider.ts
 * `X25519.forget`), not when the array is collected.
 */
export function wipeRatchetState(
  state: RatchetState,
  crypto?: { x25519: { forget?(privateKey: Uint8Array): void } },
): void {
  crypto?.x25519.forget?.(state.dhSelfSecret);
  for (const b of secretsOf(state)) b.fill(0);
  consumed.add(state);
}

export function checkLimits(limits: RatchetLimits): void {
  for (const key of ["maxSkip", "maxSkippedKeys", "skippedKeyTtlMs"] as const) {
    const value = limits[key];
    if (!Number.isSafeInteger(value) || value < 1 || value > LIMITS_CEILING[key])
      throw new RangeError(`ratchet limits: ${key} must be an integer in 1..${LIMITS_CEILING[key]}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Serialization: canonical MessagePack map, field by field in docs/protocol/ratchet.md.

const key32 = bytesSchema(KEY_LEN);
const optKey32 = v.nullable(key32);
const counter = uintSchema(MAX_COUNTER);

const limitsSchema = v.strictTuple([
  v.pipe(uintSchema(LIMITS_CEILING.maxSkip), v.minValue(1)),
  v.pipe(uintSchema(LIMITS_CEILING.maxSkippedKeys), v.minValue(1)),
  v.pipe(uintSchema(LIMITS_CEILING.skippedKeyTtlMs), v.minValue(1)),
]);

const stateSchema = v.strictObject({
  v: v.literal(RATCHET_STATE_VERSION),
  ad: bytesSchema(0, MAX_AD_LEN),
  dhs: key32,
  dhsPub: key32,
  dhr: optKey32,
  rk: key32,
  cks: optKey32,
  ckr: optKey32,
  hks: optKey32,
  hkr: optKey32,
  nhks: key32,
  nhkr: key32,
  ns: counter,
  nr: counter,
  pn: counter,
  skipped: v.pipe(
    v.array(v.strictTuple([key32, counter, key32, uintSchema()])),
    v.maxLength(LIMITS_CEILING.maxSkippedKeys),
  ),
  limits: limitsSchema,
});

/** Encoded size bound: every skipped entry is < 90 bytes; the rest is < 1.5 KiB. */
export const MAX_SERIALIZED_STATE_LEN = 2048 + LIMITS_CEILING.maxSkippedKeys * 96;

/** Versioned MessagePack encoding of a state (docs/protocol/ratchet.md, "Stored state"). */
export function serializeRatchet(state: RatchetState): Uint8Array {
  assertLive(state);
  return encodeCanonical({
    v: state.version,
    ad: state.ad,
    dhs: state.dhSelfSecret,
    dhsPub: state.dhSelfPublic,
    dhr: state.dhRemote,
    rk: state.rootKey,
    cks: state.sendChainKey,
    ckr: state.recvChainKey,
    hks: state.sendHeaderKey,
    hkr: state.recvHeaderKey,
    nhks: state.nextSendHeaderKey,
    nhkr: state.nextRecvHeaderKey,
    ns: state.sendCount,
    nr: state.recvCount,
    pn: state.prevSendCount,
    skipped: state.skipped.map((s) => [s.headerKey, s.n, s.messageKey, s.storedAt]),
    limits: [state.limits.maxSkip, state.limits.maxSkippedKeys, state.limits.skippedKeyTtlMs],
  });
}

/**
 * Decode a stored state. Unknown versions are `LOFT_ERR_STATE_VERSION`; anything else malformed is
 * `LOFT_ERR_MALFORMED` / `LOFT_ERR_SCHEMA`. Never throws.
 */
export function deserializeRatchet(bytes: Uint8Array): Result<RatchetState> {
  const parsed = decodeVersioned(
    bytes,
    RATCHET_STATE_VERSION,
    stateSchema,
    { maxBytes: MAX_SERIALIZED_STATE_LEN },
    "ratchet state",
  );
  if (!parsed.ok) return parsed;
  const s = parsed.value;
  // DR §4.3 invariants: a chain key exists exactly when its header key does.
  if ((s.cks === null) !== (s.hks === null)) return err("LOFT_ERR_SCHEMA", "ratchet state: cks/hks mismatch");
  if ((s.ckr === null) !== (s.hkr === null)) return err("LOFT_ERR_SCHEMA", "ratchet state: ckr/hkr mismatch");
  if (s.skipped.length > s.limits[1])
    return err("LOFT_ERR_SCHEMA", "ratchet state: more skipped keys than allowed");
  const chains: Uint8Array[] = [];
  for (const [hk] of s.skipped)
    if (!chains.some((k) => equalBytes(k, hk)) && chains.push(hk) > MAX_SKIPPED_CHAINS)
      return err("LOFT_ERR_SCHEMA", "ratchet state: skipped keys of too many chains");
  // The decoder hands out views into `bytes`; copy so that wiping never touches the caller's buffer.
  const own = (b: Uint8Array): Uint8Array => b.slice();
  const ownOrNull = (b: Uint8Array | null): Uint8Array | null => (b ? b.slice() : null);
  const state: RatchetState = {
    version: RATCHET_STATE_VERSION,
    ad: own(s.ad),
    dhSelfSecret: own(s.dhs),
    dhSelfPublic: own(s.dhsPub),
    dhRemote: ownOrNull(s.dhr),
    rootKey: own(s.rk),
    sendChainKey: ownOrNull(s.cks),
    recvChainKey: ownOrNull(s.ckr),
    sendHeaderKey: ownOrNull(s.hks),
    recvHeaderKey: ownOrNull(s.hkr),
    nextSendHeaderKey: own(s.nhks),
    nextRecvHeaderKey: own(s.nhkr),
    sendCount: s.ns,
    recvCount: s.nr,
    prevSendCount: s.pn,
    skipped: s.skipped.map(([headerKey, n, messageKey, storedAt]) => ({
      headerKey: own(headerKey),
      n,
      messageKey: own(messageKey),
      storedAt,
    })),
    limits: { maxSkip: s.limits[0], maxSkippedKeys: s.limits[1], skippedKeyTtlMs: s.limits[2] },
  };
  return ok(state);
}

/** Copies every input so the state owns its buffers (nothing it wipes belongs to a caller). */
export function ownedCopy(bytes: Uint8Array, length?: number, name?: string): Uint8Array {
  abytes(bytes, length, name);
  return bytes.slice();
}
