/**
 * The room host's signed records (docs/protocol/rooms.md §8): KarmaGate-style host-signed access.
 * The room's creator holds the room host key (Ed25519; its public half is `h` in the link). The host
 * signs one record, the **room state**, that every member verifies and enforces:
 *
 *   body  = canonical MessagePack { c, e, hid, host, id, m, v, x }
 *     id    bin(16)        the room id (a state of another room never verifies here)
 *     v     uint ≥ 1       version; a member takes only a higher one (an older list replayed is refused)
 *     e     uint           secret epoch: 0 is the link's secret, +1 at each rotation
 *     c     bin(32)        SHA-256("loft/room/secret/v1" ‖ 0x00 ‖ id ‖ u32be(e) ‖ secret): the
 *                          secret of epoch e, committed (members check a secret handed to them)
 *     host  bin(32)        the current host key (the link's `h`, or whom it was handed over to)
 *     hid   bin(32)        the current host's identity key (who to show as host)
 *     m     [bin(32)] ≤ 64  the members the host lists (identity keys)
 *     x     [bin(32)] ≤ 256 removed members: their links are closed and refused
 *   state = canonical MessagePack { ho, s: body, sig }
 *     sig   Ed25519(host, "loft/room/state/v1" ‖ 0x00 ‖ body)
 *     ho    [{ k: bin(32), sig: bin(64) }] ≤ 16   the hand-overs from `h` to `host`, in order:
 *           ho[i].sig = Ed25519(key_i, "loft/room/handover/v1" ‖ 0x00 ‖ id ‖ u32be(i) ‖ ho[i].k),
 *           key_0 = h, key_{i+1} = ho[i].k, and the last key must be `host`
 *
 * So any member verifies any state from the link alone, however many hand-overs it missed.
 * Every decode is bounded and canonical-only; any failure is a typed error and changes nothing.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import * as v from "valibot";
import { concatBytes, equalBytes, toHex, utf8 } from "../../../../core/bytes.ts";
import {
  bytesSchema,
  decodeWith,
  encodeCanonical,
  requireCanonical,
  uintSchema,
} from "../../../../core/codec/codec.ts";
import { err, ok, type Result } from "../../../../core/errors.ts";

export const STATE_LABEL = "loft/room/state/v1";
export const HANDOVER_LABEL = "loft/room/handover/v1";
export const SECRET_LABEL = "loft/room/secret/v1";
export const MAX_LISTED = 64;
export const MAX_REMOVED = 256;
export const MAX_HANDOVERS = 16;
/** Largest encoded state: the lists full, every hand-over used. */
export const MAX_STATE_BYTES = 16 * 1024;

const KEY = bytesSchema(32);
const bodySchema = v.strictObject({
  c: KEY,
  e: uintSchema(0xffff_ffff),
  hid: KEY,
  host: KEY,
  id: bytesSchema(16),
  m: v.pipe(v.array(KEY), v.maxLength(MAX_LISTED)),
  v: v.pipe(uintSchema(0xffff_ffff), v.minValue(1)),
  x: v.pipe(v.array(KEY), v.maxLength(MAX_REMOVED)),
});
/** The signed body (field by field in the header comment). */
export interface RoomState {
  c: Uint8Array;
  e: number;
  hid: Uint8Array;
  host: Uint8Array;
  id: Uint8Array;
  m: Uint8Array[];
  v: number;
  x: Uint8Array[];
}

const handoverSchema = v.strictObject({ k: KEY, sig: bytesSchema(64) });
export interface Handover {
  k: Uint8Array;
  sig: Uint8Array;
}

const signedSchema = v.strictObject({
  ho: v.pipe(v.array(handoverSchema), v.maxLength(MAX_HANDOVERS)),
  s: bytesSchema(1, MAX_STATE_BYTES),
  sig: bytesSchema(64),
});

const LIMITS = {
  maxBytes: MAX_STATE_BYTES,
  maxStrLength: 8,
  maxArrayLength: MAX_REMOVED,
  maxMapLength: 8,
  maxBinLength: MAX_STATE_BYTES,
};

/** A verified state and the hand-over chain that proves its host (kept to re-sign and to relay). */
export interface VerifiedState {
  state: RoomState;
  chain: Handover[];
  /** The encoded signed record, as received or made: relayed to other members unchanged. */
  bytes: Uint8Array;
}

const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};

/** The commitment to the secret of epoch `e` carried in the state (`c`). */
export function secretCommitment(id: Uint8Array, e: number, secret: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8(SECRET_LABEL), new Uint8Array([0]), id, u32(e), secret));
}

const stateMessage = (body: Uint8Array) => concatBytes(utf8(STATE_LABEL), new Uint8Array([0]), body);
const handoverMessage = (id: Uint8Array, index: number, to: Uint8Array) =>
  concatBytes(utf8(HANDOVER_LABEL), new Uint8Array([0]), id, u32(index), to);

/** The state's lists in one order (bytewise), so equal states encode equally. */
function sorted(keys: readonly Uint8Array[]): Uint8Array[] {
  return [...new Map(keys.map((k) => [toHex(k), k])).entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, k]) => k);
}

/** Whether `keys` is in strictly ascending byte order (sorted, no key twice): `sorted`'s output. */
function ascending(keys: readonly Uint8Array[]): boolean {
  return keys.every((k, i) => i === 0 || toHex(keys[i - 1]!) < toHex(k));
}

/** Sign `state` with the current host's private key; `chain` proves that key from the link's `h`. */
export function signState(
  state: RoomState,
  hostPrivateKey: Uint8Array,
  chain: readonly Handover[],
): VerifiedState {
  const normal: RoomState = { ...state, m: sorted(state.m), x: sorted(state.x) };
  const body = encodeCanonical(normal);
  const sig = ed25519.sign(stateMessage(body), hostPrivateKey);
  const bytes = encodeCanonical({ ho: chain.map((h) => ({ k: h.k, sig: h.sig })), s: body, sig });
  return { state: normal, chain: [...chain], bytes };
}

/** The hand-over from the current host (its private key, at position `index` of the chain) to `to`. */
export function signHandover(
  id: Uint8Array,
  index: number,
  to: Uint8Array,
  currentHostPrivateKey: Uint8Array,
): Handover {
  return { k: to.slice(), sig: ed25519.sign(handoverMessage(id, index, to), currentHostPrivateKey) };
}

/**
 * Decode and verify a signed state for the room `id` whose link names the host key `h`. Typed
 * errors: LOFT_ERR_MALFORMED / LOFT_ERR_SCHEMA (shape, non-canonical, lists not sorted or with a
 * key twice), LOFT_ERR_BAD_SIGNATURE (a
 * hand-over or the state not signed by the key it must be), LOFT_ERR_SCHEMA also for another room.
 */
export function verifyState(bytes: Uint8Array, id: Uint8Array, h: Uint8Array): Result<VerifiedState> {
  if (bytes.length > MAX_STATE_BYTES) return err("LOFT_ERR_FRAME_TOO_LARGE", "room state too large");
  const outer = requireCanonical(decodeWith(bytes, signedSchema, LIMITS), bytes, "room state");
  if (!outer.ok) return outer;
  const body = requireCanonical(
    decodeWith(outer.value.s, bodySchema, LIMITS),
    outer.value.s,
    "room state body",
  );
  if (!body.ok) return body;
  const state = body.value;
  // One encoding per state (docs/protocol/rooms.md §8, "Verifying"): the lists in the one order
  // signState writes them, so a host cannot sign two different bodies that list the same members.
  if (!ascending(state.m) || !ascending(state.x))
    return err("LOFT_ERR_MALFORMED", "room state body: m and x must be sorted, each key once");
  if (!equalBytes(state.id, id)) return err("LOFT_ERR_SCHEMA", "room state of another room");
  let key = h;
  for (const [i, ho] of outer.value.ho.entries()) {
    if (!verifyHandover(id, i, ho, key))
      return err("LOFT_ERR_BAD_SIGNATURE", `room hand-over ${i} is not signed by the host before it`);
    key = ho.k;
  }
  if (!equalBytes(key, state.host))
    return err("LOFT_ERR_BAD_SIGNATURE", "room state names a host its chain does not");
  if (!safeVerify(outer.value.sig, stateMessage(outer.value.s), key))
    return err("LOFT_ERR_BAD_SIGNATURE", "room state is not signed by its host");
  return ok({ state, chain: outer.value.ho, bytes });
}

function safeVerify(sig: Uint8Array, message: Uint8Array, key: Uint8Array): boolean {
  try {
    return ed25519.verify(sig, message, key, { zip215: false });
  } catch {
    return false;
  }
}

/** Whether `ho` hands the host role on from `currentHost`, as hand-over number `index` of room `id`. */
export function verifyHandover(
  id: Uint8Array,
  index: number,
  ho: Handover,
  currentHost: Uint8Array,
): boolean {
  return safeVerify(ho.sig, handoverMessage(id, index, ho.k), currentHost);
}

/**
 * Whether `next` supersedes `current`: only a higher version, whose hand-over chain extends the
 * current one (a former host's key signs nothing once the role has moved on), does. So a replayed
 * older list, or one signed by a host who handed the role over, is refused.
 */
export function supersedes(next: VerifiedState, current: VerifiedState | undefined): boolean {
  if (current === undefined) return true;
  if (next.state.v <= current.state.v || next.chain.length < current.chain.length) return false;
  return current.chain.every((h, i) => {
    const n = next.chain[i];
    return n !== undefined && equalBytes(n.k, h.k) && equalBytes(n.sig, h.sig);
  });
}

/** Whether `key` is in a list of the state. */
export const listed = (keys: readonly Uint8Array[], key: Uint8Array) => keys.some((k) => equalBytes(k, key));
