/**
 * The Lua scripts of the Redis relay store (relay-ws/store/redis.ts; layout in
 * docs/operations-relay.md, "Redis layout"). Each script runs atomically in Redis: a multi-key
 * change (a message, its key record, its epoch-index entry, its send id, its expiry, the byte
 * counts) is applied whole or not at all, and every decision (quota, duplicate, suspended, epoch
 * still alive, sequence number) is taken inside the script against the state every instance shares.
 *
 * Every script takes the key prefix as ARGV[1] and builds its key names from it: the store is for
 * one Redis (standalone or Sentinel), not Redis Cluster (docs/operations.md, "Sentinel and
 * Cluster"). Ids in key names are lower-case hex; values are bytes as the store wrote them.
 */

/** Helpers every script starts with. */
const PRELUDE = `
local P = ARGV[1]
local function epochOf(rec) local e = struct.unpack('>I4', rec); return e end
local function putKey(rid, field, rec, ep)
  redis.call('HSET', P..'k:'..rid, field, rec)
  redis.call('SADD', P..'e:'..ep, rid..'|'..field)
end
local function delKey(rid, field)
  local rec = redis.call('HGET', P..'k:'..rid, field)
  if not rec then return end
  if #rec == 64 then redis.call('SREM', P..'e:'..epochOf(rec), rid..'|'..field) end
  redis.call('HDEL', P..'k:'..rid, field)
end
local function addBytes(rid, n)
  if redis.call('EXISTS', P..'q:'..rid) == 1 then redis.call('HINCRBY', P..'q:'..rid, 'bytes', n) end
  redis.call('INCRBY', P..'bytes', n)
end
local function delMsg(rid, seq)
  local rec = redis.call('HGET', P..'m:'..rid, seq)
  if not rec then return false end
  redis.call('HDEL', P..'m:'..rid, seq)
  redis.call('ZREM', P..'i:'..rid, seq)
  redis.call('HDEL', P..'d:'..rid, seq)
  delKey(rid, 'm'..seq)
  addBytes(rid, -(#rec + 64))
  redis.call('DECR', P..'nm')
  return #rec + 64
end
local function touch(rid, day)
  local q = P..'q:'..rid
  if redis.call('HGET', q, 'day') ~= day then
    redis.call('HSET', q, 'day', day)
    redis.call('ZADD', P..'a', day, rid)
  end
end
local function alive(ep) return redis.call('SISMEMBER', P..'epochs', ep) == 1 end
-- The zero send id (hex) is never DUPLICATE of a stored or acknowledged message, as on LMDB, where
-- it is a migrated record's "unknown" (docs/protocol/relay.md, SEND): a DUPLICATE for a message not
-- stored would lose it. Such a message's expiry entry is keyed 'z' ‖ seq (never hex, so never a
-- send id), one per message: several must not share one expiry.
local ZERO_SEND = string.rep('0', 32)
local function duplicate(rid, send)
  return send ~= ZERO_SEND and redis.call('HEXISTS', P..'n:'..rid, send) == 1
end
local function keepSend(rid, send, seq, expires)
  if send == ZERO_SEND then send = 'z'..seq end
  redis.call('HSET', P..'n:'..rid, send, seq)
  redis.call('ZADD', P..'x', expires, rid..'|'..send)
end
`;

const script = (body: string) => `${PRELUDE}\n${body}`;

export interface ScriptDef {
  readonly lua: string;
  readonly readOnly?: boolean;
}

export const SCRIPTS = {
  /** ARGV: P, rid, sid, rk, sealed rcv, key record, epoch, day. → 'ok' | 'stale' | 'exists' */
  create: {
    lua: script(`
local rid, sid = ARGV[2], ARGV[3]
if not alive(ARGV[7]) then return 'stale' end
local q = P..'q:'..rid
if redis.call('EXISTS', q) == 1 or redis.call('EXISTS', P..'s:'..sid) == 1 then return 'exists' end
redis.call('HSET', q, 'sid', sid, 'rk', ARGV[4], 'rcv', ARGV[5], 'nseq', 0, 'bytes', 0, 'day', ARGV[8])
redis.call('SET', P..'s:'..sid, rid)
putKey(rid, 'q', ARGV[6], ARGV[7])
redis.call('ZADD', P..'a', ARGV[8], rid)
redis.call('INCR', P..'nq')
return 'ok'`),
  },
  /** ARGV: P, rid. → nil | {rid, sid, rk, rcv, sk|false, susp|false, rcv key record|false} */
  byRecipient: {
    readOnly: true,
    lua: script(`
local rid = ARGV[2]
local f = redis.call('HMGET', P..'q:'..rid, 'sid', 'rk', 'rcv', 'sk', 'susp')
if not f[1] then return nil end
return {rid, f[1], f[2], f[3], f[4], f[5], redis.call('HGET', P..'k:'..rid, 'q')}`),
  },
  /** ARGV: P, sid. → as byRecipient. */
  bySender: {
    readOnly: true,
    lua: script(`
local rid = redis.call('GET', P..'s:'..ARGV[2])
if not rid then return nil end
local f = redis.call('HMGET', P..'q:'..rid, 'sid', 'rk', 'rcv', 'sk', 'susp')
if not f[1] then return nil end
return {rid, f[1], f[2], f[3], f[4], f[5], redis.call('HGET', P..'k:'..rid, 'q')}`),
  },
  /** ARGV: P, rid, sender key. → 'ok' | 'conflict' | 'missing' */
  secure: {
    lua: script(`
local q = P..'q:'..ARGV[2]
if redis.call('EXISTS', q) == 0 then return 'missing' end
local cur = redis.call('HGET', q, 'sk')
if cur then if cur == ARGV[3] then return 'ok' else return 'conflict' end end
redis.call('HSET', q, 'sk', ARGV[3])
return 'ok'`),
  },
  /** ARGV: P, rid. → 1 | 0 */
  suspend: {
    lua: script(`
local q = P..'q:'..ARGV[2]
if redis.call('EXISTS', q) == 0 then return 0 end
redis.call('HSET', q, 'susp', '1')
return 1`),
  },
  /**
   * ARGV: P, rid, send id hex, queue quota, byte quota, cost, record, key record, epoch, expires ms,
   * day, this instance. → {'ok', seq} | {status}
   */
  append: {
    lua: script(`
local rid, send = ARGV[2], ARGV[3]
local q = P..'q:'..rid
if redis.call('EXISTS', q) == 0 then return {'missing'} end
if redis.call('HGET', q, 'susp') then return {'suspended'} end
if duplicate(rid, send) then return {'duplicate'} end
if redis.call('HLEN', P..'m:'..rid) >= tonumber(ARGV[4]) then return {'quota'} end
local cost, quota = tonumber(ARGV[6]), tonumber(ARGV[5])
if quota > 0 and tonumber(redis.call('GET', P..'bytes') or '0') + cost > quota then return {'full'} end
if not alive(ARGV[9]) then return {'stale'} end
local seq = redis.call('HINCRBY', q, 'nseq', 1) - 1
redis.call('HSET', P..'m:'..rid, seq, ARGV[7])
redis.call('ZADD', P..'i:'..rid, seq, seq)
putKey(rid, 'm'..seq, ARGV[8], ARGV[9])
keepSend(rid, send, seq, ARGV[10])
addBytes(rid, cost)
redis.call('INCR', P..'nm')
touch(rid, ARGV[11])
local owner = redis.call('GET', P..'sub:'..rid)
if owner then
  local inst = string.sub(owner, 1, 32)
  if inst ~= ARGV[12] then redis.call('PUBLISH', P..'ch:'..inst, 'a'..rid) end
end
return {'ok', seq}`),
  },
  /**
   * SENDS (protocol 1.3): ARGV: P, rid, queue quota, byte quota, day, this instance, epoch, then
   * per message: send id hex, cost, record, key record, expires ms. → {'stale'} | {status, seq,
   * status, seq, …} one pair per message (seq -1 unless 'ok'). The checks of \`append\` per
   * message, in order; at the first refusal other than 'duplicate' every later message gets it
   * and nothing after it is written (docs/protocol/relay.md §Batches). One script: one AOF write
   * and one subscriber notice for the whole batch.
   */
  appendBatch: {
    lua: script(`
local rid = ARGV[2]
local q = P..'q:'..rid
local quota, quotaBytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local stop = nil
if redis.call('EXISTS', q) == 0 then stop = 'missing'
elseif redis.call('HGET', q, 'susp') then stop = 'suspended'
elseif not alive(ARGV[7]) then return {'stale'} end
local out = {}
local stored = 0
for at = 8, #ARGV, 5 do
  local send, cost = ARGV[at], tonumber(ARGV[at + 1])
  local status = stop
  if not status then
    if duplicate(rid, send) then status = 'duplicate'
    elseif redis.call('HLEN', P..'m:'..rid) >= quota then status = 'quota'
    elseif quotaBytes > 0 and tonumber(redis.call('GET', P..'bytes') or '0') + cost > quotaBytes then status = 'full'
    end
    if status and status ~= 'duplicate' then stop = status end
  end
  if status then
    out[#out + 1] = status
    out[#out + 1] = -1
  else
    local seq = redis.call('HINCRBY', q, 'nseq', 1) - 1
    redis.call('HSET', P..'m:'..rid, seq, ARGV[at + 2])
    redis.call('ZADD', P..'i:'..rid, seq, seq)
    putKey(rid, 'm'..seq, ARGV[at + 3], ARGV[7])
    keepSend(rid, send, seq, ARGV[at + 4])
    addBytes(rid, cost)
    redis.call('INCR', P..'nm')
    stored = stored + 1
    out[#out + 1] = 'ok'
    out[#out + 1] = seq
  end
end
if stored > 0 then
  touch(rid, ARGV[5])
  local owner = redis.call('GET', P..'sub:'..rid)
  if owner then
    local inst = string.sub(owner, 1, 32)
    if inst ~= ARGV[6] then redis.call('PUBLISH', P..'ch:'..inst, 'a'..rid) end
  end
end
return out`),
  },
  /**
   * ARGV: P, rid, after seq, day ('' : no touch), at most n. → {seq, record (header ‖ sealed),
   * deliveries, key record, …} for the next n messages whole, oldest first: a subscription's
   * pump reads ahead in one round trip (one AOF fsync wait) instead of one per message.
   */
  next: {
    lua: script(`
local rid = ARGV[2]
if ARGV[4] ~= '' and redis.call('EXISTS', P..'q:'..rid) == 1 then touch(rid, ARGV[4]) end
local after = tonumber(ARGV[3])
local lo = '-inf'
if after >= 0 then lo = '('..after end
local r = redis.call('ZRANGEBYSCORE', P..'i:'..rid, lo, '+inf', 'LIMIT', 0, tonumber(ARGV[5]))
local out = {}
for _, seq in ipairs(r) do
  local rec = redis.call('HGET', P..'m:'..rid, seq)
  if rec then
    out[#out + 1] = seq
    out[#out + 1] = rec
    out[#out + 1] = redis.call('HGET', P..'d:'..rid, seq) or '0'
    out[#out + 1] = redis.call('HGET', P..'k:'..rid, 'm'..seq) or ''
  end
end
return out`),
  },
  /** ARGV: P, rid, seq. → nil | {record, key record} */
  read: {
    readOnly: true,
    lua: script(`
local rec = redis.call('HGET', P..'m:'..ARGV[2], ARGV[3])
if not rec then return nil end
return {rec, redis.call('HGET', P..'k:'..ARGV[2], 'm'..ARGV[3]) or ''}`),
  },
  /** ARGV: P, rid, seq, count. Persists a delivery count while the message exists. */
  deliveries: {
    lua: script(`
if redis.call('HEXISTS', P..'m:'..ARGV[2], ARGV[3]) == 1 then redis.call('HSET', P..'d:'..ARGV[2], ARGV[3], ARGV[4]) end
return 1`),
  },
  /** ARGV: P, rid, seq, msg id (24 bytes), day. → bytes freed | 0 */
  ack: {
    lua: script(`
local rid, seq = ARGV[2], ARGV[3]
local rec = redis.call('HGET', P..'m:'..rid, seq)
if not rec or string.sub(rec, 1, 24) ~= ARGV[4] then return 0 end
if redis.call('EXISTS', P..'q:'..rid) == 1 then touch(rid, ARGV[5]) end
return delMsg(rid, seq)`),
  },
  /** ARGV: P, rid, seq. → bytes freed | 0 */
  drop: {
    lua: script(`
return delMsg(ARGV[2], ARGV[3]) or 0`),
  },
  /** ARGV: P, rid. → -1 (missing) | messages deleted. Ends the subscription wherever it is. */
  deleteQueue: {
    lua: script(`
local rid = ARGV[2]
local q = P..'q:'..rid
if redis.call('EXISTS', q) == 0 then return -1 end
local sid = redis.call('HGET', q, 'sid')
local bytes = tonumber(redis.call('HGET', q, 'bytes') or '0')
local n = redis.call('HLEN', P..'m:'..rid)
local keys = redis.call('HGETALL', P..'k:'..rid)
for i = 1, #keys, 2 do
  if #keys[i + 1] == 64 then redis.call('SREM', P..'e:'..epochOf(keys[i + 1]), rid..'|'..keys[i]) end
end
for _, s in ipairs(redis.call('HKEYS', P..'n:'..rid)) do redis.call('ZREM', P..'x', rid..'|'..s) end
redis.call('DEL', q, P..'m:'..rid, P..'i:'..rid, P..'k:'..rid, P..'d:'..rid, P..'n:'..rid, P..'o:'..rid, P..'ol:'..rid, P..'b:'..rid)
if sid then redis.call('DEL', P..'s:'..sid) end
redis.call('ZREM', P..'a', rid)
redis.call('DECRBY', P..'bytes', bytes)
redis.call('DECR', P..'nq')
redis.call('DECRBY', P..'nm', n)
local owner = redis.call('GET', P..'sub:'..rid)
if owner then
  redis.call('DEL', P..'sub:'..rid)
  redis.call('PUBLISH', P..'ch:'..string.sub(owner, 1, 32), 'e'..rid..string.sub(owner, 33))
end
return n`),
  },
  /**
   * ARGV: P, rid, max one-time, replace (1/0), byte quota, cost, epoch, sealed bundle ('' : none),
   * bundle key record, day, then (id, sealed, key record) per one-time prekey.
   * → 'ok' | 'limit' | 'missing' | 'full' | 'stale'
   */
  setPrekeys: {
    lua: script(`
local rid = ARGV[2]
if redis.call('EXISTS', P..'q:'..rid) == 0 then return 'missing' end
if not alive(ARGV[7]) then return 'stale' end
local n = (#ARGV - 10) / 3
local existing = 0
if ARGV[4] ~= '1' then existing = redis.call('LLEN', P..'ol:'..rid) end
if existing + n > tonumber(ARGV[3]) then return 'limit' end
local cost, quota = tonumber(ARGV[6]), tonumber(ARGV[5])
if quota > 0 and tonumber(redis.call('GET', P..'bytes') or '0') + cost > quota then return 'full' end
local freed = 0
if ARGV[4] == '1' then
  for _, id in ipairs(redis.call('LRANGE', P..'ol:'..rid, 0, -1)) do
    local o = redis.call('HGET', P..'o:'..rid, id)
    if o then freed = freed + #o + 64 end
    delKey(rid, 'o'..id)
  end
  redis.call('DEL', P..'o:'..rid, P..'ol:'..rid)
end
if ARGV[8] ~= '' then
  local old = redis.call('GET', P..'b:'..rid)
  if old then freed = freed + #old + 64; delKey(rid, 'b') end
  redis.call('SET', P..'b:'..rid, ARGV[8])
  putKey(rid, 'b', ARGV[9], ARGV[7])
end
for i = 11, #ARGV, 3 do
  redis.call('HSET', P..'o:'..rid, ARGV[i], ARGV[i + 1])
  redis.call('RPUSH', P..'ol:'..rid, ARGV[i])
  putKey(rid, 'o'..ARGV[i], ARGV[i + 2], ARGV[7])
end
addBytes(rid, cost - freed)
touch(rid, ARGV[10])
return 'ok'`),
  },
  /** ARGV: P, rid. → nil | {bundle, bundle key record} | {bundle, key record, otk id, otk, otk key record} */
  takePrekeys: {
    lua: script(`
local rid = ARGV[2]
local b = redis.call('GET', P..'b:'..rid)
if not b then return nil end
local bkr = redis.call('HGET', P..'k:'..rid, 'b') or ''
local id = redis.call('LPOP', P..'ol:'..rid)
if not id then return {b, bkr} end
local o = redis.call('HGET', P..'o:'..rid, id)
local okr = redis.call('HGET', P..'k:'..rid, 'o'..id) or ''
redis.call('HDEL', P..'o:'..rid, id)
delKey(rid, 'o'..id)
if o then addBytes(rid, -(#o + 64)) else o = '' end
return {b, bkr, id, o, okr}`),
  },
  /** ARGV: P, now ms, limit. → {messages deleted, send ids expired} */
  expire: {
    lua: script(`
local items = redis.call('ZRANGEBYSCORE', P..'x', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local msgs = 0
for _, m in ipairs(items) do
  local bar = string.find(m, '|', 1, true)
  if bar then
    local rid, send = string.sub(m, 1, bar - 1), string.sub(m, bar + 1)
    local seq = redis.call('HGET', P..'n:'..rid, send)
    if seq then
      if delMsg(rid, seq) then msgs = msgs + 1 end
      redis.call('HDEL', P..'n:'..rid, send)
    end
  end
  redis.call('ZREM', P..'x', m)
end
return {msgs, #items}`),
  },
  /** ARGV: P, last idle day (exclusive), limit. → rids idle */
  idle: {
    readOnly: true,
    lua: script(`
return redis.call('ZRANGEBYSCORE', P..'a', '-inf', '('..ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))`),
  },
  /**
   * ARGV: P, epoch, cursor, count. → {next cursor, ref, key record, message id ('' but for
   * messages), …}: the key records an epoch wraps, with what their AAD needs.
   */
  epochRefs: {
    readOnly: true,
    lua: script(`
local r = redis.call('SSCAN', P..'e:'..ARGV[2], ARGV[3], 'COUNT', tonumber(ARGV[4]))
local out = {r[1]}
for _, m in ipairs(r[2]) do
  local bar = string.find(m, '|', 1, true)
  if bar then
    local rid, field = string.sub(m, 1, bar - 1), string.sub(m, bar + 1)
    local extra = ''
    if string.sub(field, 1, 1) == 'm' then
      extra = string.sub(redis.call('HGET', P..'m:'..rid, string.sub(field, 2)) or '', 1, 24)
    end
    out[#out + 1] = m
    out[#out + 1] = redis.call('HGET', P..'k:'..rid, field) or ''
    out[#out + 1] = extra
  end
end
return out`),
  },
  /** ARGV: P, ref (rid|field), old record, new record, old epoch, new epoch. → 1 | 0 */
  rewrap: {
    lua: script(`
local bar = string.find(ARGV[2], '|', 1, true)
local rid, field = string.sub(ARGV[2], 1, bar - 1), string.sub(ARGV[2], bar + 1)
if not alive(ARGV[6]) then return 0 end
local cur = redis.call('HGET', P..'k:'..rid, field)
if cur ~= ARGV[3] then
  if not cur or #cur ~= 64 or epochOf(cur) ~= tonumber(ARGV[5]) then redis.call('SREM', P..'e:'..ARGV[5], ARGV[2]) end
  return 0
end
redis.call('HSET', P..'k:'..rid, field, ARGV[4])
redis.call('SREM', P..'e:'..ARGV[5], ARGV[2])
redis.call('SADD', P..'e:'..ARGV[6], ARGV[2])
return 1`),
  },
  /** ARGV: P. → {slot|false, generation} */
  keyringGet: {
    readOnly: true,
    lua: script(`
return {redis.call('GET', P..'keyring'), redis.call('GET', P..'keyring:gen') or '0'}`),
  },
  /**
   * ARGV: P, expected generation, slot, live epoch ids (comma-separated), destroyed ids
   * (comma-separated). → 1 (written) | 0 (someone else wrote first) | -1 (a destroyed epoch still wraps a key)
   */
  keyringPut: {
    lua: script(`
local gen = tonumber(redis.call('GET', P..'keyring:gen') or '0')
if gen ~= tonumber(ARGV[2]) then return 0 end
for id in string.gmatch(ARGV[5], '[^,]+') do
  if redis.call('SCARD', P..'e:'..id) > 0 then return -1 end
end
redis.call('SET', P..'keyring', ARGV[3])
redis.call('SET', P..'keyring:gen', gen + 1)
redis.call('DEL', P..'epochs')
for id in string.gmatch(ARGV[4], '[^,]+') do redis.call('SADD', P..'epochs', id) end
for id in string.gmatch(ARGV[5], '[^,]+') do redis.call('DEL', P..'e:'..id) end
return 1`),
  },
  /** ARGV: P. → {queues, messages, bytes, epochs} */
  stats: {
    readOnly: true,
    lua: script(`
return {redis.call('GET', P..'nq') or '0', redis.call('GET', P..'nm') or '0', redis.call('GET', P..'bytes') or '0', redis.call('SCARD', P..'epochs')}`),
  },
  /**
   * ARGV: P, second, then (tag, kind, n) per source: adds n to the source's counter of that second
   * (kept 2 s). → the totals, in order.
   */
  spend: {
    lua: script(`
local out = {}
for i = 3, #ARGV, 3 do
  local key = P..'src:'..ARGV[i]..':'..ARGV[i + 1]..':'..ARGV[2]
  out[#out + 1] = redis.call('INCRBY', key, tonumber(ARGV[i + 2]))
  redis.call('PEXPIRE', key, 2000)
end
return out`),
  },
  /**
   * ARGV: P, rid, owner (instance ‖ token), '1' to claim only if nobody else holds it (a re-claim
   * after an outage, which must not take a queue subscribed elsewhere meanwhile). Ends the previous
   * owner's subscription on its instance. → 1 | 0 (held by another).
   */
  claim: {
    lua: script(`
local key = P..'sub:'..ARGV[2]
local old = redis.call('GET', key)
if ARGV[4] == '1' and old and old ~= ARGV[3] then return 0 end
redis.call('SET', key, ARGV[3])
if old and old ~= ARGV[3] and string.sub(old, 1, 32) ~= string.sub(ARGV[3], 1, 32) then
  redis.call('PUBLISH', P..'ch:'..string.sub(old, 1, 32), 'e'..ARGV[2]..string.sub(old, 33))
end
return 1`),
  },
  /** ARGV: P, rid, owner. Forgets the subscription if it is still this owner's. */
  release: {
    lua: script(`
local key = P..'sub:'..ARGV[2]
if redis.call('GET', key) == ARGV[3] then redis.call('DEL', key) end
return 1`),
  },
} satisfies Record<string, ScriptDef>;

export type ScriptName = keyof typeof SCRIPTS;
