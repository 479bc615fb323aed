/**
 * Signaling's shared state on Redis (`--redis URL`; docs/operations.md, "Scale-out on Redis";
 * docs/protocol/signaling.md, "Several instances"). Every instance keeps its own WebSockets and
 * the bookkeeping of its own connections (signaling/service.ts); what another instance must see
 * lives here:
 *
 *  key (prefix `loft:sig:`)   type    what                                              lifetime
 *  `r:<key>`                  hash    a registration: owner `<instance>:<conn>` (o),    its expiry + 30 s
 *                                     version (v), signed identity (d), last REGISTER
 *                                     (s), change number (q), contacts-only flag (w)
 *  `w:<key>`                  set     who may see a contacts-only registration          as `r:<key>`
 *  `all`                      zset    registered keys by first registration             cleaned with them
 *  `ir:<instance>`            set     keys an instance registered (for the reaper)      the instance
 *  `inst`                     zset    instances by last heartbeat (Redis clock)         reaped when stale
 *  `n:<from>:<nonce>`         string  an envelope nonce already used                    2 × clock skew
 *  `m:<room hash>`            hash    identity key → owner present in the room          while anyone is
 *  `rr:<key>`                 set     room hashes an identity is present in             cleaned with them
 *  `im:<instance>`            set     `<room>|<key>` presences an instance holds        the instance
 *  `rooms`                    set     room hashes with anyone present (the total cap)
 *  `seq`                      string  change counter for presence ordering
 *
 * Identity keys and room hashes are hex; nothing here is an address (docs/protocol/signaling.md
 * "Privacy": no IPs, no payloads stored — envelopes only pass through pub/sub). Multi-key updates
 * are Lua scripts, atomic in Redis. Keys are built inside the scripts from the prefix, so one
 * Redis (or a Sentinel-managed primary) holds them all; Redis Cluster is not supported here.
 *
 * Channels: `loft:sig:i:<instance>` (messages to the instance holding a connection) and
 * `loft:sig:p:<key>` (a registration changed); signaling/cluster-wire.ts has their codec.
 *
 * Instances heartbeat every `heartbeatMs` into `inst`; one silent for `deadAfterMs` is reaped by
 * whichever live instance notices first (one script, so exactly one does): its registrations and
 * room presences are removed and their watchers told. An instance that finds itself reaped (it
 * was cut off from Redis) or sees Redis come back puts its live registrations back.
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { fromHex, toHex } from "../core/bytes.ts";
import type { Result } from "../core/errors.ts";
import type { Logger } from "../host/log.ts";
import { connectRedis } from "../host/redis.ts";
import {
  decodeInstanceMessage,
  decodePresenceEvent,
  encodeInstanceMessage,
  encodePresenceEvent,
  type InstanceMessage,
  type KeyState,
  type LookupRow,
  type Owner,
  ownerText,
  parseKeyState,
  parseLookupRows,
  parseRegisterReply,
  parseRoomJoinReply,
  parseRoomPeers,
  parseSignalReply,
  type RegisterReply,
  type RoomJoinReply,
  type RoomPeer,
  type SignalReply,
} from "./cluster-wire.ts";

export const PREFIX = "loft:sig:";
/** Redis keeps a registration this long past its expiry: the owner removes it first, Redis only if all died. */
const EXPIRY_GRACE_MS = 30_000;

/** Thrown (and answered UNAVAILABLE) when Redis cannot be used now. */
export class SharedStateUnavailable extends Error {
  override name = "SharedStateUnavailable";
}

const SCRIPTS = {
  // KEYS: r, w, all, ir:<me>, seq. ARGV: keyHex, owner, version, identity, now, expireAt, maxRegs,
  // restricted, prefix, onlyIfFree, viewers…
  register: `
local cur = redis.call('HMGET', KEYS[1], 'o', 'v')
if ARGV[10] == '1' and cur[1] and cur[1] ~= ARGV[2] then return {'TAKEN'} end
if cur[2] and tonumber(cur[2]) > tonumber(ARGV[3]) then return {'STALE'} end
if not cur[1] and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[7]) then return {'FULL'} end
local q = redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[1], 'o', ARGV[2], 'v', ARGV[3], 'd', ARGV[4], 's', ARGV[5], 'q', q, 'w', ARGV[8])
redis.call('PEXPIREAT', KEYS[1], ARGV[6])
redis.call('DEL', KEYS[2])
if ARGV[8] == '1' and #ARGV > 10 then
  redis.call('SADD', KEYS[2], unpack(ARGV, 11))
  redis.call('PEXPIREAT', KEYS[2], ARGV[6])
end
if cur[1] and cur[1] ~= ARGV[2] then
  local old = string.match(cur[1], '^([0-9a-f]+):')
  if old then redis.call('SREM', ARGV[9] .. 'ir:' .. old, ARGV[1]) end
end
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[1])
return {'OK', tostring(q), cur[1] or ''}`,
  // KEYS: r, w, seq. ARGV: owner, restricted, viewers…
  visibility: `
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return {'GONE'} end
local q = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'w', ARGV[2], 'q', q)
redis.call('DEL', KEYS[2])
if ARGV[2] == '1' and #ARGV > 2 then
  redis.call('SADD', KEYS[2], unpack(ARGV, 3))
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return {'OK', tostring(q)}`,
  // KEYS: r, w, all, ir:<me>, seq. ARGV: keyHex, owner.
  // A key whose `r:` Redis expired (past its expiry + grace) is nobody's: out of `all` and
  // `ir:` too, or it counts towards FULL for good (as reap does for it).
  remove: `
local o = redis.call('HGET', KEYS[1], 'o')
if not o then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[1])
end
if o ~= ARGV[2] then return {'GONE'} end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return {'OK', tostring(redis.call('INCR', KEYS[5]))}`,
  // KEYS: r, w, seq. → {q, online, restricted, viewers…}
  state: `
local h = redis.call('HMGET', KEYS[1], 'o', 'q', 'w')
if not h[1] then return {redis.call('GET', KEYS[3]) or '0', '0', '0'} end
local out = {h[2], '1', h[3]}
if h[3] == '1' then
  for _, v in ipairs(redis.call('SMEMBERS', KEYS[2])) do out[#out + 1] = v end
end
return out`,
  // KEYS: all. ARGV: prefix, max, viewer ('' when unregistered), key ('' = list all).
  lookup: `
local keys
if ARGV[4] ~= '' then keys = {ARGV[4]} else keys = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1) end
local out = {}
for _, k in ipairs(keys) do
  local h = redis.call('HMGET', ARGV[1] .. 'r:' .. k, 'd', 's', 'w')
  if h[1] and (h[3] ~= '1' or (ARGV[3] ~= '' and redis.call('SISMEMBER', ARGV[1] .. 'w:' .. k, ARGV[3]) == 1)) then
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
  end
end
return out`,
  // KEYS: n:<from>:<nonce>, r:<to>, w:<to>. ARGV: ttlMs, fromHex, toHex, senderOwner, prefix, rooms…
  signal: `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return {'REPLAY'} end
local h = redis.call('HMGET', KEYS[2], 'o', 'w')
if not h[1] then return {'OFFLINE'} end
if h[2] == '1' and redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 0 then
  local together = false
  for i = 6, #ARGV do
    local m = ARGV[5] .. 'm:' .. ARGV[i]
    if redis.call('HGET', m, ARGV[3]) == h[1] and redis.call('HGET', m, ARGV[2]) == ARGV[4] then
      together = true
      break
    end
  end
  if not together then return {'OFFLINE'} end
end
return {'OK', h[1]}`,
  // KEYS: m:<room>, rooms, rr:<key>, im:<me>. ARGV: room, keyHex, owner, max, maxMembers, maxRooms,
  // prefix. Each presence is also listed under its instance (`im:`), so a dead instance's presences
  // are reaped even when the key's registration moved elsewhere before (and `ir:` forgot it).
  roomJoin: `
local mine = redis.call('HGET', KEYS[1], ARGV[2])
local entry = ARGV[1] .. '|' .. ARGV[2]
local function withOthers(out)
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if all[i] ~= ARGV[2] then out[#out + 1] = all[i]; out[#out + 1] = all[i + 1] end
  end
  return out
end
if mine == ARGV[3] then
  redis.call('SADD', KEYS[4], entry)
  return withOthers({'OK', '0', ''})
end
local n = redis.call('HLEN', KEYS[1])
if n == 0 and redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[6]) then return {'TOO_MANY_ROOMS'} end
local present = n
if mine then present = n - 1 end
if present + 1 > math.min(tonumber(ARGV[4]), tonumber(ARGV[5])) then return {'ROOM_FULL'} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], entry)
local old = mine and string.match(mine, '^([0-9a-f]+):')
if old and ARGV[7] .. 'im:' .. old ~= KEYS[4] then redis.call('SREM', ARGV[7] .. 'im:' .. old, entry) end
return withOthers({'OK', '1', mine or ''})`,
  // KEYS: m:<room>, rooms, rr:<key>, im:<me>. ARGV: room, keyHex, owner. → {} or {others…}
  roomLeave: `
if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[3] then return {'NO'} end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1] .. '|' .. ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
if #all == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
local out = {'OK'}
for _, x in ipairs(all) do out[#out + 1] = x end
return out`,
  // KEYS: inst. ARGV: me, deadAfterMs. Heartbeat on Redis's clock → {added, dead instances…}
  heartbeat: `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now, ARGV[1])
local out = {tostring(added)}
for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, 16)) do
  if d ~= ARGV[1] then out[#out + 1] = d end
end
return out`,
  // KEYS: inst, ir:<dead>, all, seq, im:<dead>. ARGV: prefix, dead. → {'P', key, q | 'R', room, key}…
  reap: `
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return {} end
local mine = ARGV[2] .. ':'
local out = {}
local function leave(room, k)
  local m = ARGV[1] .. 'm:' .. room
  local ro = redis.call('HGET', m, k)
  if ro and string.sub(ro, 1, #mine) == mine then
    redis.call('HDEL', m, k)
    redis.call('SREM', ARGV[1] .. 'rr:' .. k, room)
    if redis.call('HLEN', m) == 0 then redis.call('SREM', ARGV[1] .. 'rooms', room) end
    out[#out + 1] = 'R'; out[#out + 1] = room; out[#out + 1] = k
  end
end
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local rk = ARGV[1] .. 'r:' .. k
  local o = redis.call('HGET', rk, 'o')
  if o and string.sub(o, 1, #mine) == mine then
    redis.call('DEL', rk, ARGV[1] .. 'w:' .. k)
    redis.call('ZREM', KEYS[3], k)
    out[#out + 1] = 'P'; out[#out + 1] = k; out[#out + 1] = tostring(redis.call('INCR', KEYS[4]))
  elseif not o then
    redis.call('ZREM', KEYS[3], k)
  end
  for _, room in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'rr:' .. k)) do leave(room, k) end
end
for _, e in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local room, k = string.match(e, '^([0-9a-f]+)|([0-9a-f]+)$')
  if room then leave(room, k) end
end
redis.call('DEL', KEYS[2], KEYS[5])
return out`,
} as const;

type ScriptName = keyof typeof SCRIPTS;

export interface SharedOptions {
  log: Logger;
  /** Heartbeat period (ms); 2 s by default. */
  heartbeatMs?: number;
  /** An instance silent this long is reaped (ms); 10 s by default. */
  deadAfterMs?: number;
}

export interface SharedEvents {
  /** A message for one of this instance's connections. */
  message(m: InstanceMessage): void;
  /** The cached state of watched `keyHex` changed. */
  presence(keyHex: string, key: Uint8Array<ArrayBuffer>): void;
  /** A room member on a dead instance left: tell the others present here. */
  roomGone(room: string, keyHex: string, others: RoomPeer[]): void;
  /** This instance's registrations may be missing from Redis (it was reaped, or Redis came back). */
  resync(): void;
  /** This instance reaped a silent one. */
  reaped(): void;
}

/** A bulk-string reply as text (Redis answers buffers: status words, numbers, ids). */
const asText = (b: Buffer) => b.toString("latin1");

export class SharedSignaling {
  /** This instance's id: 8 random bytes, hex (a restart is a new instance). */
  readonly inst = randomBytes(8).toString("hex");
  readonly #cmd: Redis;
  readonly #sub: Redis;
  readonly #log: Logger;
  readonly #events: SharedEvents;
  readonly #deadAfterMs: number;
  readonly #timer: NodeJS.Timeout;
  /** Channels this instance wants (the instance channel and watched keys' presence channels). */
  readonly #channels = new Set<string>();
  /** Watched key → local watchers (refcount) and its last known state. */
  readonly #watched = new Map<
    string,
    { refs: number; state: KeyState | undefined; fetching: boolean; again: boolean }
  >();
  #beats = 0;
  #wasDown = false;
  #closed = false;

  constructor(url: string, events: SharedEvents, options: SharedOptions) {
    this.#log = options.log;
    this.#events = events;
    this.#deadAfterMs = options.deadAfterMs ?? 10_000;
    // Two connections (a subscribed one can run nothing else), with host/redis.ts's policy: no
    // offline queue, no resent commands, reconnection by itself. Each outage is logged once.
    const open = (name: string) => {
      const redis = connectRedis(url, {
        name,
        commandTimeoutMs: 2_000,
        onStatus: (status, reason) =>
          status === "ready"
            ? options.log.info({ connection: name }, "redis reachable")
            : options.log.warn({ connection: name, reason }, "redis unreachable"),
      });
      redis.connect().catch(() => {});
      return redis;
    };
    this.#cmd = open("loft-signaling");
    this.#sub = open("loft-signaling-sub");
    for (const [name, lua] of Object.entries(SCRIPTS)) this.#cmd.defineCommand(name, { lua });
    this.#channels.add(this.#instanceChannel(this.inst));
    this.#sub.on("messageBuffer", (channel: Buffer, message: Buffer) => this.#onMessage(channel, message));
    this.#sub.on("ready", () => void this.#resubscribe());
    this.#cmd.on("ready", () => {
      if (!this.#wasDown) return;
      this.#wasDown = false;
      this.#afterOutage();
    });
    this.#cmd.on("close", () => {
      if (this.#beats > 0) this.#wasDown = true;
    });
    this.#timer = setInterval(() => void this.#heartbeat(), options.heartbeatMs ?? 2_000);
    this.#timer.unref();
    void this.#heartbeat();
  }

  /** Both connections are up (commands and pub/sub). */
  available(): boolean {
    return this.#cmd.status === "ready" && this.#sub.status === "ready";
  }

  /** Resolves once both connections are ready, or false after `ms`. */
  async ready(ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (!this.available() || this.#beats === 0) {
      if (Date.now() > until || this.#closed) return false;
      await new Promise((r) => setTimeout(r, 25));
    }
    return true;
  }

  health(): Record<string, unknown> {
    return { redis: this.available() ? "ok" : "unreachable", instance: this.inst };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    // Leave at once rather than waiting to be reaped: reap ourselves — whatever registrations and
    // room presence the closing connections did not remove yet go now, and their watchers are told.
    if (this.available()) await this.#reap(this.inst).catch(() => {});
    this.#cmd.disconnect();
    this.#sub.disconnect();
  }

  owner(conn: number): Owner {
    return { inst: this.inst, conn };
  }

  // ---- registrations -----------------------------------------------------------------------------

  async register(r: {
    keyHex: string;
    conn: number;
    version: number;
    identity: Uint8Array;
    now: number;
    expiresAt: number;
    maxRegistrations: number;
    visibleTo: ReadonlySet<string> | undefined;
    /** Resync: put it back only if no other connection took it meanwhile (else TAKEN). */
    onlyIfFree?: boolean;
  }): Promise<RegisterReply | { status: "TAKEN" }> {
    const k = r.keyHex;
    const reply = await this.#run(
      "register",
      [`${PREFIX}r:${k}`, `${PREFIX}w:${k}`, `${PREFIX}all`, `${PREFIX}ir:${this.inst}`, `${PREFIX}seq`],
      [
        k,
        ownerText(this.owner(r.conn)),
        String(r.version),
        Buffer.from(r.identity),
        String(r.now),
        String(r.expiresAt + EXPIRY_GRACE_MS),
        String(r.maxRegistrations),
        r.visibleTo ? "1" : "0",
        PREFIX,
        r.onlyIfFree ? "1" : "0",
        ...(r.visibleTo ?? []),
      ],
    );
    if (
      Array.isArray(reply) &&
      reply.length === 1 &&
      Buffer.isBuffer(reply[0]) &&
      asText(reply[0]) === "TAKEN"
    )
      return { status: "TAKEN" };
    const parsed = this.#parsed(parseRegisterReply(reply));
    if (
      parsed.status === "OK" &&
      // Watchers are told of a new or moved registration, and of every one put back by a resync
      // (its visibility may have changed while Redis could not be told).
      (r.onlyIfFree ||
        parsed.previous === undefined ||
        parsed.previous.inst !== this.inst ||
        parsed.previous.conn !== r.conn)
    )
      await this.#publishPresence(k, parsed.q);
    return parsed;
  }

  /** Who may see `keyHex` changed (SUBSCRIBE `only_watched`). */
  async setVisibility(
    keyHex: string,
    conn: number,
    visibleTo: ReadonlySet<string> | undefined,
  ): Promise<void> {
    const reply = await this.#run(
      "visibility",
      [`${PREFIX}r:${keyHex}`, `${PREFIX}w:${keyHex}`, `${PREFIX}seq`],
      [ownerText(this.owner(conn)), visibleTo ? "1" : "0", ...(visibleTo ?? [])],
    );
    const q = okNumber(reply);
    if (q !== undefined) await this.#publishPresence(keyHex, q);
  }

  /** Remove `keyHex` if connection `conn` here still holds it; watchers are told. */
  async remove(keyHex: string, conn: number): Promise<void> {
    const reply = await this.#run(
      "remove",
      [
        `${PREFIX}r:${keyHex}`,
        `${PREFIX}w:${keyHex}`,
        `${PREFIX}all`,
        `${PREFIX}ir:${this.inst}`,
        `${PREFIX}seq`,
      ],
      [keyHex, ownerText(this.owner(conn))],
    );
    const q = okNumber(reply);
    if (q !== undefined) await this.#publishPresence(keyHex, q);
  }

  /** LOOKUP: `keyHex`'s registration (or up to `max` of all when undefined) as `viewer` may see them. */
  async lookup(
    keyHex: string | undefined,
    viewer: string | undefined,
    max: number,
    maxIdentity: number,
  ): Promise<LookupRow[]> {
    const reply = await this.#run(
      "lookup",
      [`${PREFIX}all`],
      [PREFIX, String(max), viewer ?? "", keyHex ?? ""],
    );
    return this.#parsed(parseLookupRows(reply, keyHex ? 1 : max, maxIdentity));
  }

  async registrations(): Promise<number> {
    return this.#cmd.zcard(`${PREFIX}all`).catch(() => {
      throw new SharedStateUnavailable("redis unreachable");
    });
  }

  /** INCRBY each key by its count (expiring after `ttlMs`) in one pipeline; the totals, in order. */
  async incr(batch: readonly { key: string; n: number }[], ttlMs: number): Promise<number[]> {
    if (this.#cmd.status !== "ready") throw new SharedStateUnavailable("redis unreachable");
    const p = this.#cmd.pipeline();
    for (const { key, n } of batch) p.incrby(key, n).pexpire(key, ttlMs);
    const replies = (await p.exec()) ?? [];
    return batch.map((_, i) => {
      const [error, value] = replies[2 * i] ?? [new Error("no reply"), undefined];
      return error || typeof value !== "number" ? 0 : value;
    });
  }

  // ---- envelopes -----------------------------------------------------------------------------------

  /**
   * SIGNAL's shared checks in one step: the nonce unused by `from` within `ttlMs` (then used), the
   * recipient registered and visible to the sender (or present with it in one of `rooms`).
   */
  async signal(s: {
    fromHex: string;
    toHex: string;
    nonceHex: string;
    ttlMs: number;
    conn: number;
    rooms: Iterable<string>;
  }): Promise<SignalReply> {
    const reply = await this.#run(
      "signal",
      [`${PREFIX}n:${s.fromHex}:${s.nonceHex}`, `${PREFIX}r:${s.toHex}`, `${PREFIX}w:${s.toHex}`],
      [String(s.ttlMs), s.fromHex, s.toHex, ownerText(this.owner(s.conn)), PREFIX, ...s.rooms],
    );
    return this.#parsed(parseSignalReply(reply));
  }

  /** Send to the instance holding a connection; false when no instance listens there (it died). */
  async send(inst: string, m: InstanceMessage): Promise<boolean> {
    try {
      const n = await this.#cmd.publish(this.#instanceChannel(inst), Buffer.from(encodeInstanceMessage(m)));
      return n > 0;
    } catch (e) {
      throw new SharedStateUnavailable((e as Error).message);
    }
  }

  // ---- rooms -----------------------------------------------------------------------------------------

  async roomJoin(j: {
    room: string;
    keyHex: string;
    conn: number;
    max: number;
    maxMembers: number;
    maxRooms: number;
  }): Promise<RoomJoinReply> {
    const reply = await this.#run(
      "roomJoin",
      [`${PREFIX}m:${j.room}`, `${PREFIX}rooms`, `${PREFIX}rr:${j.keyHex}`, `${PREFIX}im:${this.inst}`],
      [
        j.room,
        j.keyHex,
        ownerText(this.owner(j.conn)),
        String(j.max),
        String(j.maxMembers),
        String(j.maxRooms),
        PREFIX,
      ],
    );
    return this.#parsed(parseRoomJoinReply(reply, 255));
  }

  /** `keyHex` (on `conn`) leaves `room`; the others still present, or undefined if it was not there. */
  async roomLeave(room: string, keyHex: string, conn: number): Promise<RoomPeer[] | undefined> {
    const reply = await this.#run(
      "roomLeave",
      [`${PREFIX}m:${room}`, `${PREFIX}rooms`, `${PREFIX}rr:${keyHex}`, `${PREFIX}im:${this.inst}`],
      [room, keyHex, ownerText(this.owner(conn))],
    );
    if (
      !Array.isArray(reply) ||
      reply.length === 0 ||
      !Buffer.isBuffer(reply[0]) ||
      asText(reply[0]) !== "OK"
    )
      return undefined;
    return this.#parsed(parseRoomPeers(reply.slice(1), 255));
  }

  // ---- presence ------------------------------------------------------------------------------------

  /** The last known state of a watched key (undefined when nobody here watches it). */
  state(keyHex: string): KeyState | undefined {
    return this.#watched.get(keyHex)?.state;
  }

  /**
   * Local connections start watching `added` and stop watching `removed`: presence channels are
   * subscribed (before the states are read, so no change falls between) and states fetched.
   */
  async watch(added: readonly string[], removed: readonly string[]): Promise<void> {
    const fresh: string[] = [];
    for (const k of added) {
      const w = this.#watched.get(k);
      if (w) w.refs++;
      else {
        this.#watched.set(k, { refs: 1, state: undefined, fetching: false, again: false });
        fresh.push(k);
      }
    }
    this.unwatch(removed);
    if (fresh.length === 0) return;
    try {
      const channels = fresh.map((k) => this.#presenceChannel(k));
      for (const c of channels) this.#channels.add(c);
      await this.#sub.subscribe(...channels);
      await Promise.all(fresh.map((k) => this.#fetch(k, false)));
    } catch (e) {
      this.unwatch(fresh);
      throw e instanceof SharedStateUnavailable ? e : new SharedStateUnavailable((e as Error).message);
    }
  }

  unwatch(keys: Iterable<string>): void {
    const gone: string[] = [];
    for (const k of keys) {
      const w = this.#watched.get(k);
      if (!w || --w.refs > 0) continue;
      this.#watched.delete(k);
      this.#channels.delete(this.#presenceChannel(k));
      gone.push(this.#presenceChannel(k));
    }
    if (gone.length > 0 && this.#sub.status === "ready") this.#sub.unsubscribe(...gone).catch(() => {});
  }

  // ---- internals -------------------------------------------------------------------------------------

  #instanceChannel(inst: string): string {
    return `${PREFIX}i:${inst}`;
  }

  #presenceChannel(keyHex: string): string {
    return `${PREFIX}p:${keyHex}`;
  }

  async #run(name: ScriptName, keys: string[], args: (string | Buffer)[]): Promise<unknown> {
    if (this.#cmd.status !== "ready") throw new SharedStateUnavailable("redis unreachable");
    try {
      const fn = (this.#cmd as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[
        `${name}Buffer`
      ]!;
      return await fn.call(this.#cmd, keys.length, ...keys, ...args);
    } catch (e) {
      throw new SharedStateUnavailable((e as Error).message);
    }
  }

  #parsed<T>(r: Result<T>): T {
    if (r.ok) return r.value;
    // Redis answered something our scripts never return: logged, and the request fails.
    this.#log.error({ err: r.error.message }, "unexpected reply from redis");
    throw new SharedStateUnavailable(r.error.message);
  }

  async #publishPresence(keyHex: string, q: number): Promise<void> {
    const event = encodePresenceEvent({ t: "PRESENCE", key: fromHex(keyHex) as Uint8Array<ArrayBuffer>, q });
    await this.#cmd.publish(this.#presenceChannel(keyHex), Buffer.from(event)).catch((e: Error) => {
      throw new SharedStateUnavailable(e.message);
    });
  }

  /** Read `keyHex`'s state; apply it when newer than what we hold (and tell, if `notify`). */
  async #fetch(keyHex: string, notify: boolean): Promise<void> {
    const reply = await this.#run(
      "state",
      [`${PREFIX}r:${keyHex}`, `${PREFIX}w:${keyHex}`, `${PREFIX}seq`],
      [],
    );
    const state = this.#parsed(parseKeyState(reply));
    const w = this.#watched.get(keyHex);
    if (!w) return;
    if (w.state !== undefined && state.q < w.state.q) return;
    w.state = state;
    if (notify) this.#events.presence(keyHex, fromHex(keyHex) as Uint8Array<ArrayBuffer>);
  }

  /** A presence event: fetch the state, one fetch at a time per key (coalescing bursts). */
  #changed(keyHex: string, q: number): void {
    const w = this.#watched.get(keyHex);
    if (!w || (w.state !== undefined && q <= w.state.q)) return;
    if (w.fetching) {
      w.again = true;
      return;
    }
    w.fetching = true;
    const loop = async () => {
      try {
        do {
          w.again = false;
          await this.#fetch(keyHex, true);
        } while (w.again);
      } catch (e) {
        this.#log.warn({ err: (e as Error).message }, "presence fetch failed");
      } finally {
        w.fetching = false;
      }
    };
    void loop();
  }

  #onMessage(channel: Buffer, message: Buffer) {
    const name = channel.toString("latin1");
    if (name === this.#instanceChannel(this.inst)) {
      const m = decodeInstanceMessage(new Uint8Array(message));
      if (!m.ok) return this.#log.warn({ err: m.error.message }, "bad instance message dropped");
      this.#events.message(m.value);
      return;
    }
    if (name.startsWith(`${PREFIX}p:`)) {
      const e = decodePresenceEvent(new Uint8Array(message));
      if (!e.ok) return this.#log.warn({ err: e.error.message }, "bad presence event dropped");
      const keyHex = toHex(e.value.key);
      if (name !== this.#presenceChannel(keyHex)) return;
      this.#changed(keyHex, e.value.q);
    }
  }

  async #resubscribe(): Promise<void> {
    if (this.#channels.size === 0) return;
    try {
      await this.#sub.subscribe(...this.#channels);
    } catch (e) {
      this.#log.warn({ err: (e as Error).message }, "redis resubscribe failed");
      return;
    }
    // Changes published while we were not subscribed were missed: read every state again.
    for (const k of this.#watched.keys()) this.#changed(k, Number.MAX_SAFE_INTEGER);
  }

  #afterOutage(): void {
    this.#events.resync();
    for (const k of this.#watched.keys()) this.#changed(k, Number.MAX_SAFE_INTEGER);
  }

  async #heartbeat(): Promise<void> {
    if (this.#closed || this.#cmd.status !== "ready") return;
    let reply: unknown;
    try {
      reply = await this.#run("heartbeat", [`${PREFIX}inst`], [this.inst, String(this.#deadAfterMs)]);
    } catch (e) {
      this.#log.debug({ err: (e as Error).message }, "heartbeat failed");
      return;
    }
    if (!Array.isArray(reply) || reply.length < 1 || reply.length > 17) return;
    const added = reply[0] instanceof Uint8Array && asText(Buffer.from(reply[0])) === "1";
    // Our entry was gone: another instance reaped us while we were cut off. Put things back.
    if (added && this.#beats > 0) {
      this.#log.warn({}, "this instance had been reaped; registering its connections again");
      this.#events.resync();
    }
    this.#beats++;
    for (const d of reply.slice(1)) {
      const dead = Buffer.isBuffer(d) ? asText(d) : "";
      if (/^[0-9a-f]{16}$/.test(dead)) await this.#reap(dead).catch(() => {});
    }
  }

  async #reap(dead: string): Promise<void> {
    const reply = await this.#run(
      "reap",
      [`${PREFIX}inst`, `${PREFIX}ir:${dead}`, `${PREFIX}all`, `${PREFIX}seq`, `${PREFIX}im:${dead}`],
      [PREFIX, dead],
    );
    if (!Array.isArray(reply) || reply.length % 3 !== 0) return;
    let registrations = 0;
    for (let i = 0; i < reply.length; i += 3) {
      const [kind, a, b] = reply.slice(i, i + 3).map((x) => (Buffer.isBuffer(x) ? asText(x) : ""));
      if (!/^[0-9a-f]{64}$/.test(a!)) continue;
      if (kind === "P" && /^[0-9]{1,16}$/.test(b!)) {
        registrations++;
        await this.#publishPresence(a!, Number(b)).catch(() => {});
      } else if (kind === "R" && /^[0-9a-f]{64}$/.test(b!)) {
        const members = await this.#cmd.hgetallBuffer(`${PREFIX}m:${a}`).catch(() => ({}));
        const flat = Object.entries(members).flatMap(([k, o]) => [Buffer.from(k, "latin1"), o]);
        const others = parseRoomPeers(flat, 255);
        if (others.ok) this.#events.roomGone(a!, b!, others.value);
      }
    }
    if (dead === this.inst) return;
    this.#events.reaped();
    this.#log.info({ registrations }, "reaped a silent signaling instance");
  }
}

function okNumber(reply: unknown): number | undefined {
  if (!Array.isArray(reply) || reply.length !== 2) return undefined;
  const [s, q] = reply.map((x) => (Buffer.isBuffer(x) ? asText(x) : ""));
  return s === "OK" && /^[0-9]{1,16}$/.test(q!) ? Number(q) : undefined;
}
