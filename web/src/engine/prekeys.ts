/**
 * Offline first contact as the engine runs it (docs/protocol/mailbox.md, "First contact";
 * docs/protocol/prekeys.md for the cryptography): our prekey store and what we publish at our
 * relay, the contact-address reference that goes into our contact link, and the state an
 * initiator keeps until the first reply arrives.
 *
 * At the relay (PKSET on our contact-address queue; the relay stores opaque bytes):
 *   pb  = encodePrekeyBundle(bundle without one-time keys)        identity key, SPK, last-resort PQSPK
 *   po  = [ one-time entry … ], each canonical MessagePack
 *         { o?: { id, pk: bin(32) }, q?: { id, pk: bin(1184), sig: bin(64) } }
 *         one X25519 one-time prekey and one ML-KEM-768 one-time prekey; PKGET hands each entry to
 *         exactly one sender, who puts its keys back into the bundle before `initiateSession`.
 *
 * Contact-link ref "addr" = canonical { s: sender id (24), u: relay URL }: anyone with the link can
 * fetch the bundle (PKGET) and SEND initial messages into the queue (it is never secured).
 *
 * Ratchet id of a session started from a prekey bundle (both ends compute it; HELLO compares it):
 *   SHA-256("loft/chat/ratchet-id/prekey/v1" ‖ 0x00 ‖ EK_A)[0..16]
 */
import { sha256 } from "@noble/hashes/sha2.js";
import * as v from "valibot";
import { concatBytes, equalBytes, utf8 } from "../../../core/bytes.ts";
import { bytesSchema, decodeWith, encodeCanonical, uintSchema } from "../../../core/codec/codec.ts";
import { err, ok, type Result } from "../../../core/errors.ts";
import {
  decodeInitialMessage,
  deserializePrekeyStore,
  encodePrekeyBundle,
  type InitialHeader,
  type PrekeyStore,
  parsePrekeyBundle,
  prekeyBundle,
  serializePrekeyStore,
} from "../../../core/prekey/index.ts";
import type { PrekeyFetch } from "../../../core/relay/client.ts";
import { QUEUE_ID_BYTES } from "./mailbox.ts";

/** One-time prekeys of each kind we keep published (X25519 and ML-KEM-768, paired). */
export const ONE_TIME_TARGET = 16;
export const ADDRESS_REF = "addr";
const VERSION = 1;
const RATCHET_ID_PREKEY_LABEL = utf8("loft/chat/ratchet-id/prekey/v1");

/** Our prekey store and how much of it the relay has. */
export interface PrekeyState {
  store: PrekeyStore;
  /** Highest one-time prekey id already published. */
  published: number;
  /** Id of the signed prekey whose bundle the relay has (0: none yet). */
  bundleSpk: number;
}

const stateSchema = v.strictObject({
  v: uintSchema(0xffff),
  s: bytesSchema(1, 1 << 20),
  p: uintSchema(0xffff_ffff),
  b: uintSchema(0xffff_ffff),
});

export function encodePrekeyState(s: PrekeyState): Uint8Array {
  return encodeCanonical({ v: VERSION, s: serializePrekeyStore(s.store), p: s.published, b: s.bundleSpk });
}

export function decodePrekeyState(bytes: Uint8Array): Result<PrekeyState> {
  const r = decodeWith(bytes, stateSchema, { maxBytes: (1 << 20) + 64, maxMapLength: 4, maxArrayLength: 0 });
  if (!r.ok) return r;
  if (r.value.v !== VERSION) return err("LOFT_ERR_STATE_VERSION", "unknown prekey state version");
  const store = deserializePrekeyStore(r.value.s);
  if (!store.ok) return store;
  return ok({ store: store.value, published: r.value.p, bundleSpk: r.value.b });
}

/** The bundle we publish: signed keys only; one-time keys go out one entry per sender. */
export function publishedBundle(store: PrekeyStore): Uint8Array {
  return encodePrekeyBundle({ ...prekeyBundle(store), oneTimePrekeys: [], oneTimeKemPrekeys: [] });
}

const idSchema = uintSchema(0xffff_ffff);
const entrySchema = v.strictObject({
  o: v.optional(v.strictObject({ id: idSchema, pk: bytesSchema(32) })),
  q: v.optional(v.strictObject({ id: idSchema, pk: bytesSchema(1184), sig: bytesSchema(64) })),
});

/** One-time entries for the keys with ids above `after`, X25519 and ML-KEM paired in order. */
export function oneTimeEntries(store: PrekeyStore, after: number): { entries: Uint8Array[]; last: number } {
  const bundle = prekeyBundle(store);
  const xs = bundle.oneTimePrekeys.filter((k) => k.id > after);
  const qs = bundle.oneTimeKemPrekeys.filter((k) => k.id > after);
  const entries: Uint8Array[] = [];
  let last = after;
  for (let i = 0; i < Math.max(xs.length, qs.length); i++) {
    const o = xs[i];
    const q = qs[i];
    entries.push(
      encodeCanonical({
        ...(o ? { o: { id: o.id, pk: o.publicKey } } : {}),
        ...(q ? { q: { id: q.id, pk: q.publicKey, sig: q.signature } } : {}),
      }),
    );
    last = Math.max(last, o?.id ?? 0, q?.id ?? 0);
  }
  return { entries, last };
}

/** What PKGET returned, as one bundle for `initiateSession` (which verifies every signature). */
export function fetchedBundle(fetched: PrekeyFetch): Result<Uint8Array> {
  const base = parsePrekeyBundle(fetched.bundle);
  if (!base.ok) return base;
  if (!fetched.oneTimePrekey) return ok(fetched.bundle);
  const entry = decodeWith(fetched.oneTimePrekey, entrySchema, {
    maxBytes: 4096,
    maxMapLength: 3,
    maxArrayLength: 0,
  });
  if (!entry.ok) return ok(fetched.bundle); // an unreadable one-time entry: use the bundle alone
  const e = entry.value;
  return ok(
    encodePrekeyBundle({
      ...base.value,
      oneTimePrekeys: e.o ? [{ id: e.o.id, publicKey: e.o.pk }] : [],
      oneTimeKemPrekeys: e.q ? [{ id: e.q.id, publicKey: e.q.pk, signature: e.q.sig }] : [],
    }),
  );
}

/** The contact-link reference to our contact-address queue. */
export interface AddressRef {
  url: string;
  sid: Uint8Array;
}

const refSchema = v.strictObject({
  s: bytesSchema(QUEUE_ID_BYTES),
  u: v.pipe(v.string(), v.maxLength(256), v.regex(/^wss?:\/\/\S+$/)),
});

export function encodeAddressRef(r: AddressRef): Uint8Array {
  return encodeCanonical({ s: r.sid, u: r.url });
}

export function decodeAddressRef(bytes: Uint8Array): Result<AddressRef> {
  const r = decodeWith(bytes, refSchema, { maxBytes: 512, maxStrLength: 256, maxMapLength: 2 });
  if (!r.ok) return r;
  if (!equalBytes(encodeCanonical(r.value), bytes))
    return err("LOFT_ERR_MALFORMED", "address ref not canonical");
  return ok({ url: r.value.u, sid: r.value.s.slice() });
}

export function prekeyRatchetId(baseKey: Uint8Array): Uint8Array {
  return sha256(concatBytes(RATCHET_ID_PREKEY_LABEL, new Uint8Array([0]), baseKey)).slice(0, 16);
}

/** An initiator's first contact in progress: where the initial messages go, and their header. */
export interface IntroState {
  url: string;
  sid: Uint8Array;
  header: InitialHeader;
  /** The first initial message (carrying our identity and reply mailbox). */
  first: Uint8Array;
  /** Whether the relay has stored `first`. */
  sent: boolean;
}

const introSchema = v.strictObject({
  v: uintSchema(0xffff),
  u: v.pipe(v.string(), v.maxLength(256)),
  s: bytesSchema(QUEUE_ID_BYTES),
  m: bytesSchema(1, 1 << 16),
  d: v.boolean(),
});

export function encodeIntro(i: IntroState): Uint8Array {
  return encodeCanonical({ v: VERSION, u: i.url, s: i.sid, m: i.first, d: i.sent });
}

export function decodeIntro(bytes: Uint8Array): Result<IntroState> {
  const r = decodeWith(bytes, introSchema, { maxBytes: (1 << 16) + 512, maxMapLength: 5, maxArrayLength: 0 });
  if (!r.ok) return r;
  const first = decodeInitialMessage(r.value.m);
  if (!first.ok) return first;
  return ok({
    url: r.value.u,
    sid: r.value.s.slice(),
    header: first.value.header,
    first: r.value.m.slice(),
    sent: r.value.d,
  });
}
