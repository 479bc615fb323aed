/**
 * What signaling instances tell each other through Redis (docs/operations.md, "Scale-out on
 * Redis"; docs/protocol/signaling.md, "Several instances"), and the decoders of what Redis hands
 * back. Everything read from Redis is untrusted input: another process wrote it, Redis may have
 * been restored from an old file, someone with access may have typed into it. So pub/sub messages
 * are canonical MessagePack checked against a schema (core/codec/codec.ts), and Lua replies are
 * parsed field by field; a bad one is a typed error the caller logs and drops, never a throw.
 *
 * Instance channel `loft:sig:i:<instance>` carries, to the instance holding a connection:
 *  - `SIGNAL {c, frame}`: hand `frame` (an encoded server SIGNAL frame) to connection `c`;
 *  - `REPLACED {c, key, q}`: the registration of `key` on connection `c` moved to another
 *    connection (REGISTRATION_ENDED "replaced") by the change numbered `q` — ignored by a
 *    connection whose own REGISTER came later (latest wins, as on one instance);
 *  - `ROOM {c: [..], room, key, present}`: ROOM_PRESENCE for those connections;
 *  - `ROOM_MOVED {c, room}`: `c`'s identity joined `room` from another connection, so `c` is no
 *    longer present there.
 * Presence channel `loft:sig:p:<key hex>` carries `PRESENCE {key, q}`: the registration of `key`
 * changed (online, offline, visibility) at sequence number `q`; watchers fetch the state.
 */
import * as v from "valibot";
import { fromHex } from "../core/bytes.ts";
import { decodeWith, encodeCanonical, requireCanonical, uintSchema } from "../core/codec/codec.ts";
import { binSchema } from "../core/codec/envelope.ts";
import { err, ok, type Result } from "../core/errors.ts";

const connId = uintSchema(Number.MAX_SAFE_INTEGER);
const key32 = binSchema(32);
/** A server frame is at most SREMP's MAX_FRAME_SIZE. */
const MAX_FRAME = 65_535;
/** Members a ROOM push may name: a room holds at most 255 (signaling/config.ts). */
const MAX_ROOM_CONNS = 255;

const instanceMessageSchema = v.variant("t", [
  v.strictObject({ t: v.literal("SIGNAL"), c: connId, frame: binSchema(1, MAX_FRAME) }),
  v.strictObject({ t: v.literal("REPLACED"), c: connId, key: key32, q: uintSchema() }),
  v.strictObject({
    t: v.literal("ROOM"),
    c: v.pipe(v.array(connId), v.minLength(1), v.maxLength(MAX_ROOM_CONNS)),
    room: key32,
    key: key32,
    present: v.boolean(),
  }),
  v.strictObject({ t: v.literal("ROOM_MOVED"), c: connId, room: key32 }),
]);
export type InstanceMessage = v.InferOutput<typeof instanceMessageSchema>;

const presenceSchema = v.strictObject({ t: v.literal("PRESENCE"), key: key32, q: uintSchema() });
export type PresenceEvent = v.InferOutput<typeof presenceSchema>;

const LIMITS = { maxBytes: MAX_FRAME + 4_096, maxArrayLength: MAX_ROOM_CONNS, maxMapLength: 8 };

export const encodeInstanceMessage = (m: InstanceMessage): Uint8Array => encodeCanonical(m);
export const encodePresenceEvent = (m: PresenceEvent): Uint8Array => encodeCanonical(m);

export function decodeInstanceMessage(bytes: Uint8Array): Result<InstanceMessage> {
  return requireCanonical(decodeWith(bytes, instanceMessageSchema, LIMITS), bytes, "instance message");
}

export function decodePresenceEvent(bytes: Uint8Array): Result<PresenceEvent> {
  return requireCanonical(decodeWith(bytes, presenceSchema, LIMITS), bytes, "presence event");
}

// ---- Lua replies ---------------------------------------------------------------------------------
// ioredis returns a script's table as an array of Buffers (we ask for buffers), integers as numbers.

type Reply = unknown;

const HEX64 = /^[0-9a-f]{64}$/;
const INSTANCE = /^[0-9a-f]{16}$/;

function text(x: Reply, max = 64): string | undefined {
  if (!(x instanceof Uint8Array) || x.length > max) return undefined;
  return Buffer.from(x.buffer, x.byteOffset, x.length).toString("latin1");
}

/** A decimal integer in [0, 2^53) from a bulk string or an integer reply. */
function uint(x: Reply): number | undefined {
  if (typeof x === "number") return Number.isSafeInteger(x) && x >= 0 ? x : undefined;
  const s = text(x, 16);
  if (s === undefined || !/^(0|[1-9][0-9]{0,15})$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

function hexKey(x: Reply): string | undefined {
  const s = text(x, 64);
  return s !== undefined && HEX64.test(s) ? s : undefined;
}

function rows(x: Reply, min: number, max: number): Reply[] | undefined {
  return Array.isArray(x) && x.length >= min && x.length <= max ? x : undefined;
}

const bad = (what: string) => err("LOFT_ERR_MALFORMED", `redis reply: ${what}`);

/** Where a registration lives: instance id and connection id there. */
export interface Owner {
  readonly inst: string;
  readonly conn: number;
}

/** `"<instance>:<conn>"`, the form owners take in Redis. */
export const ownerText = (o: Owner): string => `${o.inst}:${o.conn}`;

export function parseOwner(x: Reply): Owner | undefined {
  const s = text(x, 40);
  if (s === undefined) return undefined;
  const i = s.indexOf(":");
  const inst = s.slice(0, i);
  const conn = uint(Buffer.from(s.slice(i + 1), "latin1"));
  return i > 0 && INSTANCE.test(inst) && conn !== undefined ? { inst, conn } : undefined;
}

/** The state of one watched registration (Lua `state`): sequence, online, who may see it. */
export interface KeyState {
  readonly q: number;
  readonly online: boolean;
  /** undefined: visible to all; else the identity keys (hex) that may see it. */
  readonly visibleTo: ReadonlySet<string> | undefined;
}

/** Registrations visible to at most this many watchers (SUBSCRIBE's cap, signaling/config.ts). */
const MAX_VISIBLE = 1_024;

/** `[q, online 0|1, restricted 0|1, viewer hex…]`. */
export function parseKeyState(x: Reply): Result<KeyState> {
  const r = rows(x, 3, 3 + MAX_VISIBLE);
  if (!r) return bad("state: not a row of 3.. fields");
  const q = uint(r[0]);
  const online = uint(r[1]);
  const restricted = uint(r[2]);
  if (q === undefined || (online !== 0 && online !== 1) || (restricted !== 0 && restricted !== 1))
    return bad("state: bad fields");
  if (!online || !restricted) {
    if (r.length !== 3) return bad("state: viewers of a public or absent registration");
    return ok({ q, online: online === 1, visibleTo: undefined });
  }
  const viewers = new Set<string>();
  for (const e of r.slice(3)) {
    const k = hexKey(e);
    if (k === undefined) return bad("state: a viewer is not a key");
    viewers.add(k);
  }
  return ok({ q, online: true, visibleTo: viewers });
}

/** What REGISTER's script answered. */
export type RegisterReply =
  | { readonly status: "STALE" | "FULL" }
  | { readonly status: "OK"; readonly q: number; readonly previous: Owner | undefined };

export function parseRegisterReply(x: Reply): Result<RegisterReply> {
  const r = rows(x, 1, 3);
  const status = r && text(r[0], 8);
  if (!r || status === undefined) return bad("register: no status");
  if ((status === "STALE" || status === "FULL") && r.length === 1) return ok({ status });
  if (status !== "OK" || r.length !== 3) return bad("register: unknown status");
  const q = uint(r[1]);
  const prevText = text(r[2], 40);
  const previous = prevText === "" ? undefined : parseOwner(r[2]);
  if (q === undefined || (prevText !== "" && previous === undefined)) return bad("register: bad fields");
  return ok({ status, q, previous });
}

/** What SIGNAL's script answered. */
export type SignalReply =
  | { readonly status: "REPLAY" | "OFFLINE" }
  | { readonly status: "OK"; readonly to: Owner };

export function parseSignalReply(x: Reply): Result<SignalReply> {
  const r = rows(x, 1, 2);
  const status = r && text(r[0], 8);
  if (!r || status === undefined) return bad("signal: no status");
  if ((status === "REPLAY" || status === "OFFLINE") && r.length === 1) return ok({ status });
  const to = r.length === 2 ? parseOwner(r[1]) : undefined;
  if (status !== "OK" || to === undefined) return bad("signal: bad fields");
  return ok({ status, to });
}

/** One registration as LOOKUP shows it. */
export interface LookupRow {
  readonly identity: Uint8Array<ArrayBuffer>;
  readonly lastSeen: number;
}

/** `[identity, lastSeen]…` pairs (none: not registered, or not visible to the viewer). */
export function parseLookupRows(x: Reply, maxRows: number, maxIdentity: number): Result<LookupRow[]> {
  const r = rows(x, 0, 2 * maxRows);
  if (!r || r.length % 2 !== 0) return bad("lookup: not pairs");
  const out: LookupRow[] = [];
  for (let i = 0; i < r.length; i += 2) {
    const identity = r[i];
    const lastSeen = uint(r[i + 1]);
    if (!(identity instanceof Uint8Array) || identity.length === 0 || identity.length > maxIdentity)
      return bad("lookup: bad identity");
    if (lastSeen === undefined) return bad("lookup: bad last_seen");
    out.push({ identity: new Uint8Array(identity), lastSeen });
  }
  return ok(out);
}

/** What ROOM_JOIN's script answered. */
export type RoomJoinReply =
  | { readonly status: "ROOM_FULL" | "TOO_MANY_ROOMS" }
  | {
      readonly status: "OK";
      readonly fresh: boolean;
      /** The connection this identity was present from before, if another one. */
      readonly previous: Owner | undefined;
      readonly others: RoomPeer[];
    };

export interface RoomPeer {
  readonly key: Uint8Array<ArrayBuffer>;
  readonly keyHex: string;
  readonly owner: Owner;
}

/** `[key hex, owner]…` pairs. */
export function parseRoomPeers(r: Reply[], max: number): Result<RoomPeer[]> {
  if (r.length % 2 !== 0 || r.length > 2 * max) return bad("room: not pairs");
  const out: RoomPeer[] = [];
  for (let i = 0; i < r.length; i += 2) {
    const keyHex = hexKey(r[i]);
    const owner = parseOwner(r[i + 1]);
    if (keyHex === undefined || owner === undefined) return bad("room: bad member");
    out.push({ key: fromHex(keyHex) as Uint8Array<ArrayBuffer>, keyHex, owner });
  }
  return ok(out);
}

export function parseRoomJoinReply(x: Reply, maxMembers: number): Result<RoomJoinReply> {
  const r = rows(x, 1, 3 + 2 * maxMembers);
  const status = r && text(r[0], 16);
  if (!r || status === undefined) return bad("room join: no status");
  if ((status === "ROOM_FULL" || status === "TOO_MANY_ROOMS") && r.length === 1) return ok({ status });
  if (status !== "OK" || r.length < 3) return bad("room join: unknown status");
  const fresh = uint(r[1]);
  const prevText = text(r[2], 40);
  const previous = prevText === "" ? undefined : parseOwner(r[2]);
  if ((fresh !== 0 && fresh !== 1) || (prevText !== "" && previous === undefined))
    return bad("room join: bad fields");
  const others = parseRoomPeers(r.slice(3), maxMembers);
  if (!others.ok) return others;
  return ok({ status, fresh: fresh === 1, previous, others: others.value });
}
