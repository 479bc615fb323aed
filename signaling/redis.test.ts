/**
 * Signaling scale-out on Redis (docs/operations.md, "Scale-out on Redis"; docs/protocol/signaling.md,
 * "Several instances"): three real signaling services on loopback sharing one real Debian
 * redis-server. Presence, envelopes, replacement, rooms, lookups and contacts-only visibility cross
 * instances; a nonce used on one instance is a REPLAY on another; an instance killed with SIGKILL
 * is reaped and its peers' watchers see them offline, then online again once they reconnect
 * elsewhere; Redis going away answers UNAVAILABLE and 503 on /health, and its return recovers by
 * itself; a dead instance, an expired registration or a room leave during an outage leaves no
 * ghost behind. Waits are conditions with bounds, never durations.
 */
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { equalBytes, toHex } from "../core/bytes.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { updateIdentity } from "../core/identity/identity.ts";
import { SignalingClient } from "../core/signaling/client.ts";
import { type ClientMessage, type ServerMessage, signEnvelope } from "../core/wire/signaling.ts";
import type { Logger } from "../host/log.ts";
import { type LoftProcess, startLoft } from "../test/support/loft-process.ts";
import { fetchMetric, metricValue } from "../test/support/metrics.ts";
import { type RedisServer, startRedis } from "../test/support/redis-server.ts";
import { PREFIX, type SharedEvents, SharedSignaling } from "./redis-state.ts";
import {
  makeUser,
  RawClient,
  type RunningSignaling,
  registerOn,
  startSignaling,
  wsFactory,
} from "./testing.ts";

type User = ReturnType<typeof makeUser>;
const keyOf = (u: User) => u.identity.verified.identity_key as Uint8Array<ArrayBuffer>;

async function signal(from: User, to: User, id: number, nonce = crypto.getRandomValues(new Uint8Array(16))) {
  return {
    t: "SIGNAL",
    id,
    envelope: await signEnvelope(nobleCrypto, from.privateIdentityKey, {
      from: keyOf(from),
      to: keyOf(to),
      kind: "offer",
      payload: new Uint8Array([1, 2, 3]) as Uint8Array<ArrayBuffer>,
      timestamp: Date.now(),
      nonce: nonce as Uint8Array<ArrayBuffer>,
    }),
  } satisfies ClientMessage;
}

/** A connection registered as `user` on `url`, watching `watch` (SUBSCRIBE first, as the PWA does). */
async function online(url: string, user: User, watch: User[] = [], onlyWatched = false): Promise<RawClient> {
  const c = await RawClient.hello(url);
  const sub = await c.request({ t: "SUBSCRIBE", id: 1, keys: watch.map(keyOf), only_watched: onlyWatched });
  expect(sub.t).toBe("PRESENCE");
  const reg = await c.request(await registerOn(c, user, { id: 2 }));
  expect(reg.t).toBe("REGISTER_RESPONSE");
  return c;
}

const presence = (user: User, isOnline: boolean) => (m: Extract<ServerMessage, { t: "PRESENCE" }>) =>
  m.peers.some((p) => equalBytes(p.key, keyOf(user)) && p.online === isOnline);

describe("signaling on Redis, three instances", () => {
  let redis: RedisServer;
  const servers: RunningSignaling[] = [];
  const clients: RawClient[] = [];
  const track = (c: RawClient) => {
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    redis = await startRedis();
    for (let i = 0; i < 3; i++)
      servers.push(await startSignaling({ redis: redis.url, redisDeadAfterMs: 1_000, listAll: true }));
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.close()));
    await redis?.stop();
  });

  it("presence, envelopes, lookups and REPLAY cross instances; a move replaces the old connection", async () => {
    const [a, b, c] = servers as [RunningSignaling, RunningSignaling, RunningSignaling];
    const alice = makeUser("alice");
    const bob = makeUser("bob");
    const bobOnB = track(await online(b.url, bob, [alice]));
    const aliceOn = bobOnB.until("PRESENCE", presence(alice, true));
    const aliceOnA = track(await online(a.url, alice, [bob]));
    await aliceOn;

    // Bob (on B) signals Alice (on A): forwarded through Redis, acknowledged to Bob.
    const nonce = crypto.getRandomValues(new Uint8Array(16));
    const env = await signal(bob, alice, 3, nonce);
    const got = aliceOnA.until("SIGNAL");
    expect((await bobOnB.request(env)).t).toBe("SIGNAL_ACK");
    expect(equalBytes((await got).envelope.nonce, nonce)).toBe(true);

    // LOOKUP on C finds Alice (registered on A); list_all counts both.
    const viewer = track(await RawClient.hello(c.url));
    const found = await viewer.request({
      t: "LOOKUP_REQUEST",
      id: 1,
      target_identity: keyOf(alice),
      list_all: false,
    });
    expect(found.t === "LOOKUP_RESPONSE" && found.peers.length).toBe(1);
    const all = await viewer.request({ t: "LOOKUP_REQUEST", id: 2, list_all: true });
    expect(all.t === "LOOKUP_RESPONSE" && all.peers.length).toBe(2);

    // Bob moves to C: B's connection is told "replaced"; the same envelope (same nonce) is a REPLAY there.
    const ended = bobOnB.until("REGISTRATION_ENDED");
    const bobOnC = track(await online(c.url, bob, [alice]));
    expect((await ended).reason).toBe("replaced");
    const replay = await bobOnC.request({ ...env, id: 4 });
    expect(replay.t === "ERROR" && replay.code).toBe("REPLAY");
    // A fresh one goes through from C.
    expect((await bobOnC.request(await signal(bob, alice, 5))).t).toBe("SIGNAL_ACK");

    // Alice leaves: Bob's watcher on C sees her offline; signalling her is PEER_OFFLINE.
    const aliceOff = bobOnC.until("PRESENCE", presence(alice, false));
    expect((await aliceOnA.request({ t: "UNREGISTER", id: 9 })).t).toBe("UNREGISTER_RESPONSE");
    await aliceOff;
    const offline = await bobOnC.request(await signal(bob, alice, 6));
    expect(offline.t === "ERROR" && offline.code).toBe("PEER_OFFLINE");

    // A newer identity version registered on A: the older one is refused on B.
    const newer = updateIdentity(alice, { username: "alice2" }, Date.now());
    clients.push(await online(a.url, newer));
    const older = track(await RawClient.hello(b.url));
    const stale = await older.request(await registerOn(older, alice, { id: 1 }));
    expect(stale.t === "ERROR" && stale.code).toBe("STALE_IDENTITY");
  });

  it("contacts-only visibility and room presence hold across instances", async () => {
    const [a, b, c] = servers as [RunningSignaling, RunningSignaling, RunningSignaling];
    const carol = makeUser("carol");
    const dave = makeUser("dave");
    const erin = makeUser("erin");
    // Carol (on A) shows herself only to Dave.
    const carolOnA = track(await online(a.url, carol, [dave], true));
    const daveOnB = track(await online(b.url, dave, [carol]));
    const erinOnC = track(await online(c.url, erin, [carol]));
    const seen = await daveOnB.request({ t: "SUBSCRIBE", id: 7, keys: [keyOf(carol)] });
    expect(seen.t === "PRESENCE" && seen.peers[0]?.online).toBe(true);
    const hidden = await erinOnC.request({ t: "SUBSCRIBE", id: 7, keys: [keyOf(carol)] });
    expect(hidden.t === "PRESENCE" && hidden.peers[0]?.online).toBe(false);
    const refused = await erinOnC.request(await signal(erin, carol, 8));
    expect(refused.t === "ERROR" && refused.code).toBe("PEER_OFFLINE");

    // Erin and Carol meet in a room (on different instances): the join is pushed, and SIGNAL passes.
    const room = crypto.getRandomValues(new Uint8Array(32)) as Uint8Array<ArrayBuffer>;
    const first = await carolOnA.request({ t: "ROOM_JOIN", id: 10, room, max: 8 });
    expect(first.t === "ROOM_MEMBERS" && first.members.length).toBe(0);
    const pushed = carolOnA.until("ROOM_PRESENCE", (m) => m.present && equalBytes(m.key, keyOf(erin)));
    const second = await erinOnC.request({ t: "ROOM_JOIN", id: 11, room, max: 8 });
    expect(second.t === "ROOM_MEMBERS" && second.members.map((k) => toHex(k))).toEqual([toHex(keyOf(carol))]);
    await pushed;
    expect((await erinOnC.request(await signal(erin, carol, 12))).t).toBe("SIGNAL_ACK");
    // Erin's connection closes: Carol is told she left.
    const left = carolOnA.until("ROOM_PRESENCE", (m) => !m.present && equalBytes(m.key, keyOf(erin)));
    erinOnC.close();
    await left;
  });
});

describe("signaling on Redis: a graceful stop", () => {
  it("an instance stopping takes its registrations out of Redis at once, and watchers elsewhere see them offline", async () => {
    const redis = await startRedis();
    const a = await startSignaling({ redis: redis.url });
    const b = await startSignaling({ redis: redis.url });
    const clients: RawClient[] = [];
    try {
      const judy = makeUser("judy");
      const ken = makeUser("ken");
      const kenOnA = await online(a.url, ken, [judy]);
      clients.push(kenOnA);
      const on = kenOnA.until("PRESENCE", presence(judy, true));
      clients.push(await online(b.url, judy));
      await on;
      const off = kenOnA.until("PRESENCE", presence(judy, false));
      await b.close();
      await off;
      // Nothing of B is left for a reaper: its instance entry and registrations are gone.
      const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      try {
        expect(await admin.zcard("loft:sig:inst")).toBe(1);
        expect(await admin.zcard("loft:sig:all")).toBe(1);
      } finally {
        admin.disconnect();
      }
    } finally {
      for (const c of clients) c.close();
      await a.close();
      await redis.stop();
    }
  });
});

describe("signaling on Redis: per-source limits over all instances", () => {
  let redis: RedisServer;
  const servers: RunningSignaling[] = [];
  const clients: RawClient[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    // A pinned clock: one one-second window for the whole test, and local buckets that never refill.
    const now = () => 1_700_000_000_500;
    const limits = { redis: redis.url, sourceRate: 10, sourceBurst: 20, connRate: 1_000, connBurst: 1_000 };
    for (let i = 0; i < 2; i++) servers.push(await startSignaling(limits, 0, now));
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.close()));
    await redis?.stop();
  });

  it("a source that spent its burst on instance A is refused on instance B before B's own burst", async () => {
    const [a, b] = servers as [RunningSignaling, RunningSignaling];
    const onA = await RawClient.hello(a.url);
    const onB = await RawClient.hello(b.url);
    clients.push(onA, onB);
    // 1 header + 15 requests on A: within A's own burst of 20.
    for (let id = 1; id <= 15; id++)
      expect((await onA.request({ t: "LIST_SERVERS_REQUEST", id })).t).toBe("LIST_SERVERS_RESPONSE");
    // On B (1 header so far) the source has 19 left locally; over both it has 4, counted within a flush.
    let served = 0;
    await expect
      .poll(async () => {
        const r = await onB.request({ t: "LIST_SERVERS_REQUEST", id: 100 + served });
        if (r.t === "LIST_SERVERS_RESPONSE") served++;
        return r.t === "ERROR" && r.code;
      })
      .toBe("RATE_LIMITED");
    expect(served).toBeLessThan(15);
  });
});

describe("signaling on Redis: faults", () => {
  let redis: RedisServer;
  const procs: LoftProcess[] = [];
  const clients: RawClient[] = [];
  const signalingClients: SignalingClient[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    const start = () =>
      startLoft({
        entry: "signaling/main.ts",
        args: ["--redis", redis.url, "--signal-redis-dead-after-ms", "1000"],
      });
    procs.push(...(await Promise.all([start(), start()])));
  });
  // A test that killed Redis and failed before its restart() fails alone: the next one starts
  // from a live Redis (test/support/redis-server.ts, ensureRunning).
  afterEach(async () => {
    await redis?.ensureRunning();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const c of signalingClients) c.close();
    await Promise.all(procs.map((p) => p.stop("SIGKILL")));
    await redis?.stop();
  });

  const url = (p: LoftProcess) => `ws://127.0.0.1:${p.port}/signal`;

  it("an instance killed: its peers go offline for watchers elsewhere, and come back on another", async () => {
    const [a, b] = procs as [LoftProcess, LoftProcess];
    const frank = makeUser("frank");
    const grace = makeUser("grace");
    const graceOnB = await online(url(b), grace, [frank]);
    clients.push(graceOnB);
    const on = graceOnB.until("PRESENCE", presence(frank, true));
    const frankOnA = await online(url(a), frank);
    await on;
    // Both in one room, from different instances.
    const room = crypto.getRandomValues(new Uint8Array(32)) as Uint8Array<ArrayBuffer>;
    expect((await graceOnB.request({ t: "ROOM_JOIN", id: 20, room, max: 8 })).t).toBe("ROOM_MEMBERS");
    const joined = await frankOnA.request({ t: "ROOM_JOIN", id: 21, room, max: 8 });
    expect(joined.t === "ROOM_MEMBERS" && joined.members.length).toBe(1);
    await a.stop("SIGKILL");
    // Reaped by B after 1 s of silence: Grace is told Frank went offline and left the room (in
    // whichever order the two pushes come).
    let offline = false;
    let left = false;
    while (!offline || !left) {
      const m = await graceOnB.next();
      if (m.t === "PRESENCE" && presence(frank, false)(m)) offline = true;
      if (m.t === "ROOM_PRESENCE" && !m.present && equalBytes(m.key, keyOf(frank))) left = true;
    }
    const metrics = await (await fetch(`${b.metricsUrl}/metrics`)).text();
    expect(metricValue(metrics, "loft_signaling_instances_reaped_total")).toBe(1);
    expect(metricValue(metrics, "loft_signaling_redis_up")).toBe(1);
    const back = graceOnB.until("PRESENCE", presence(frank, true));
    clients.push(await online(url(b), frank));
    await back;
  });

  it("Redis unreachable: /health 503 and UNAVAILABLE, no crash; it recovers by itself", async () => {
    const b = procs[1]!;
    const health = async () => {
      const r = await fetch(`${b.metricsUrl}/health`);
      return { status: r.status, body: (await r.json()) as { services: { signaling: { redis: string } } } };
    };
    expect((await health()).status).toBe(200);
    // A connection opened before Redis goes stays open (docs/operations.md, "Redis down: one rule").
    const heidi = makeUser("heidi");
    const c = await RawClient.hello(url(b));
    clients.push(c);
    await redis.kill();
    await expect.poll(async () => (await health()).status, { timeout: 15_000 }).toBe(503);
    expect((await health()).body.services.signaling.redis).toBe("unreachable");
    expect((await fetch(`${b.url}/health`)).status).toBe(503);
    const refused = await c.request(await registerOn(c, heidi, { id: 1 }));
    expect(refused.t === "ERROR" && refused.code).toBe("UNAVAILABLE");
    // A new one is refused before the handshake, as the relay does: the core client (the PWA's),
    // with this one server only, says it cannot reach it and tries again by itself.
    expect(
      await fetchMetric(b.metricsUrl!, "loft_signaling_upgrades_refused_total", 'reason="unavailable"'),
    ).toBe(0);
    const ivan = new SignalingClient({
      url: url(b),
      user: makeUser("ivan"),
      connect: wsFactory(),
      presence: "watched",
      reconnect: { initialMs: 50, maxMs: 200 },
    });
    signalingClients.push(ivan);
    await expect(ivan.start()).rejects.toMatchObject({ code: "LOFT_ERR_SIGNALING_UNREACHABLE" });
    // (metrics are rendered at most once a second: poll)
    await expect
      .poll(
        () => fetchMetric(b.metricsUrl!, "loft_signaling_upgrades_refused_total", 'reason="unavailable"'),
        {
          timeout: 10_000,
        },
      )
      .toBeGreaterThan(0);

    await redis.restart();
    await expect.poll(async () => (await health()).status, { timeout: 15_000 }).toBe(200);
    // The same connection registers now (a later timestamp: the refused one was counted), and a
    // new registration is seen by a watcher through Redis again.
    const ok = await c.request(await registerOn(c, heidi, { id: 2, timestamp: Date.now() + 1 }));
    expect(ok.t).toBe("REGISTER_RESPONSE");
    await expect.poll(() => ivan.state, { timeout: 15_000 }).toBe("registered");
    const watcher = await RawClient.hello(url(b));
    clients.push(watcher);
    const grace = makeUser("grace-2");
    clients.push(await online(url(b), grace));
    await expect
      .poll(async () => {
        const r = await watcher.request({
          t: "LOOKUP_REQUEST",
          id: 3,
          target_identity: keyOf(grace),
          list_all: false,
        });
        return r.t === "LOOKUP_RESPONSE" && r.peers.length;
      })
      .toBe(1);
    expect(b.child.exitCode).toBeNull();

    // Redis loses everything (a restart without its files): the instance notices at its next
    // heartbeat and puts its live registrations back; a watcher finds Grace again.
    const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await admin.connect();
      await admin.flushall();
    } finally {
      admin.disconnect();
    }
    // Its log line is waited for, not read once: pino writes it asynchronously and it comes through
    // a pipe, while the LOOKUP answer comes through a socket — on a loaded machine the answer that
    // found Grace was read first, 30 ms after the instance had logged the line (the read-once
    // assertion failed there).
    await expect
      .poll(() => b.output())
      .toMatch(/"msg":"this instance had been reaped; registering its connections again"/);
    // Every live registration is back, not only the newest: Heidi's (registered before Grace).
    let lookups = 10;
    for (const user of [grace, heidi])
      await expect
        .poll(async () => {
          const r = await watcher.request({
            t: "LOOKUP_REQUEST",
            id: lookups++,
            target_identity: keyOf(user),
            list_all: false,
          });
          return r.t === "LOOKUP_RESPONSE" && r.peers.length;
        })
        .toBe(1);
  });
});

describe("signaling on Redis: no ghosts", () => {
  let redis: RedisServer;
  let admin: Redis;
  const shareds: SharedSignaling[] = [];
  const quiet = { info() {}, warn() {}, debug() {}, error() {} } as unknown as Logger;
  const events: SharedEvents = {
    message() {},
    presence() {},
    roomGone() {},
    resync() {},
    reaped() {},
  };
  const instance = (heartbeatMs: number) => {
    const s = new SharedSignaling(redis.url, events, { log: quiet, heartbeatMs, deadAfterMs: 600 });
    shareds.push(s);
    return s;
  };
  const reg = (keyHex: string, conn: number, expiresAt = Date.now() + 60_000, maxRegistrations = 100) => ({
    keyHex,
    conn,
    version: 1,
    identity: new Uint8Array(10),
    now: Date.now(),
    expiresAt,
    maxRegistrations,
    visibleTo: undefined,
  });
  const join = (keyHex: string, conn: number, room: string) => ({
    room,
    keyHex,
    conn,
    max: 8,
    maxMembers: 8,
    maxRooms: 100,
  });

  beforeAll(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  });
  // Each test's instances end with it: one left beating and reaping (every 100 ms) ran on through
  // the tests after it, into their Redis outage and their counts.
  afterEach(async () => {
    try {
      await redis?.ensureRunning();
    } finally {
      for (const s of shareds.splice(0)) await s.close();
    }
  });
  afterAll(async () => {
    admin?.disconnect();
    await redis?.stop();
  });

  it("a dead instance's room presence is reaped even when its registration moved away first", async () => {
    // A's last heartbeat was long ago (killed); K's browser failed over to B and registers there
    // before B reaps A: `ir:A` no longer names K, yet K's presence in the room is A's.
    const a = instance(1e9);
    await expect.poll(() => a.available(), { timeout: 5_000 }).toBe(true);
    const k = "a1".repeat(32);
    const room = "b1".repeat(32);
    await a.register(reg(k, 1));
    expect((await a.roomJoin(join(k, 1, room))).status).toBe("OK");
    // A counts as alive until the test says otherwise: its last beat in the future, so B (beating
    // every 100 ms, reaping what is silent for 600 ms) cannot reap it before K registered on B,
    // however long that takes. With its beat at "now", B reaped A first whenever getting B ready
    // and K registered took more than 600 ms (a loaded machine), and the room had no K left.
    await admin.zadd(`${PREFIX}inst`, Date.now() + 3_600_000, a.inst);
    const b = instance(100);
    await expect.poll(() => b.available(), { timeout: 5_000 }).toBe(true);
    expect((await b.register(reg(k, 7))).status).toBe("OK");
    expect(await admin.hlen(`${PREFIX}m:${room}`)).toBe(1);
    await admin.zadd(`${PREFIX}inst`, 1, a.inst); // silent for long: B reaps it at its next beat
    await expect.poll(() => admin.zscore(`${PREFIX}inst`, a.inst), { timeout: 10_000 }).toBeNull();
    expect(await admin.hgetall(`${PREFIX}m:${room}`)).toEqual({});
    expect(await admin.sismember(`${PREFIX}rooms`, room)).toBe(0);
    expect(await admin.exists(`${PREFIX}im:${a.inst}`)).toBe(0);
    const c = "c1".repeat(32);
    await b.register(reg(c, 8));
    const joined = await b.roomJoin(join(c, 8, room));
    expect(joined.status === "OK" && joined.others).toEqual([]);
    // B's own presence is listed under B, and a leave takes it out again.
    expect(await admin.smembers(`${PREFIX}im:${b.inst}`)).toEqual([`${room}|${c}`]);
    await b.roomLeave(room, c, 8);
    expect(await admin.exists(`${PREFIX}im:${b.inst}`)).toBe(0);
  });

  it("a removal after Redis expired the registration takes the key out of `all`: no ghost counts to FULL", async () => {
    const a = instance(100);
    expect(await a.ready(5_000)).toBe(true);
    const before = await a.registrations();
    const k = "a2".repeat(32);
    // Its expiry (+ 30 s grace) passes while the removal waits (Redis was unreachable).
    await a.register(reg(k, 1, Date.now() - 29_800));
    await expect.poll(() => admin.exists(`${PREFIX}r:${k}`), { timeout: 5_000 }).toBe(0);
    await a.remove(k, 1);
    expect(await a.registrations()).toBe(before);
    expect(await admin.sismember(`${PREFIX}ir:${a.inst}`, k)).toBe(0);
    expect((await a.register(reg("a3".repeat(32), 2, undefined, before + 1))).status).toBe("OK");
  });

  it("a room leave Redis could not take is done once Redis is back: no ghost member", async () => {
    const s = await startSignaling({ redis: redis.url, redisDeadAfterMs: 1_000 });
    const c = await online(s.url, makeUser("judy"));
    try {
      const room = crypto.getRandomValues(new Uint8Array(32)) as Uint8Array<ArrayBuffer>;
      expect((await c.request({ t: "ROOM_JOIN", id: 3, room, max: 8 })).t).toBe("ROOM_MEMBERS");
      const members = () => admin.hlen(`${PREFIX}m:${toHex(room)}`).catch(() => -1);
      expect(await members()).toBe(1);
      await redis.kill();
      expect((await c.request({ t: "ROOM_LEAVE", id: 4, room })).t).toBe("ROOM_LEAVE_RESPONSE");
      await redis.restart();
      await expect.poll(members, { timeout: 15_000 }).toBe(0);
    } finally {
      c.close();
      await s.close();
    }
  });
});
