/**
 * Abuse limits and liveness against the real service on loopback. Distinct sources are real
 * distinct loopback addresses (127.0.0.2, .3, …: Linux routes all of 127/8 to `lo`), so the
 * per-source limits see what they would see in production.
 */
import { describe, expect, it } from "vitest";
import { equalBytes } from "../core/bytes.ts";
import { SignalingClient, type SignalingEvent } from "../core/signaling/client.ts";
import { CLOSE } from "../core/wire/signaling.ts";
import { MAX_IDLE_SOURCES } from "../host/source-table.ts";
import { metricValue } from "../test/support/metrics.ts";
import { defaultSignalingConfig } from "./config.ts";
import { ENVELOPE_NONCE_ENTRY_BYTES, EnvelopeNonceBudget, RecentNonces, SourceTable } from "./limits.ts";
import { makeUser, RawClient, registerOn, startSignaling, wsFactory } from "./testing.ts";

const from = (n: number) => ({ localAddress: `127.0.0.${n}` });
const keyOf = (u: ReturnType<typeof makeUser>) => u.identity.verified.identity_key as Uint8Array<ArrayBuffer>;

function waitFor(c: SignalingClient, pred: (e: SignalingEvent) => boolean): Promise<SignalingEvent> {
  return new Promise((resolve) => {
    const off = c.on((e) => {
      if (pred(e)) {
        off();
        resolve(e);
      }
    });
  });
}

describe("limit primitives", () => {
  it("the source table is capped: idle sources are forgotten oldest first, connected ones never", () => {
    // One client with a large IPv6 allocation shows up as many /64 sources; each entry costs memory.
    expect(MAX_IDLE_SOURCES).toBe(100_000);
    const t = new SourceTable({ ...defaultSignalingConfig(), upgradeBurst: 1_000 }, 200);
    for (let i = 0; i < 50; i++) expect(t.admit(`connected ${i}`, 0)).toBe("ok");
    for (let i = 0; i < 10_000; i++) t.get(`idle ${i}`, 0);
    expect(t.size).toBeLessThanOrEqual(200);
    // Connected sources kept their entry, and with it their connection count.
    for (let i = 0; i < 50; i++) expect(t.get(`connected ${i}`, 0).connections).toBe(1);
  });

  it("the shared nonce budget evicts the adder's own oldest, or the least recently active sender's; never refuses", () => {
    const budget = new EnvelopeNonceBudget(3 * ENVELOPE_NONCE_ENTRY_BYTES);
    const [a, b, c] = [
      new RecentNonces(64, budget),
      new RecentNonces(64, budget),
      new RecentNonces(64, budget),
    ];
    expect(a.add("a1", 0, 1_000) && a.add("a2", 0, 1_000) && b.add("b1", 0, 1_000)).toBe(true);
    expect(a.add("a3", 0, 1_000)).toBe(true); // full: a forgets its own oldest (a1)
    expect([a.has("a1", 0), a.has("a2", 0), b.has("b1", 0)]).toEqual([false, true, true]);
    expect(c.add("c1", 0, 1_000)).toBe(true); // c holds none: b (least recently active) forgets b1
    expect([a.has("a2", 0), a.has("a3", 0), b.has("b1", 0), c.has("c1", 0)]).toEqual([
      true,
      true,
      false,
      true,
    ]);
    expect(budget.entries).toBe(3);
    budget.release(a);
    expect(budget.entries).toBe(1);
    // Expired entries give their room back as new ones come.
    expect(c.add("c2", 2_000, 3_000)).toBe(true);
    expect(c.size).toBe(1);
    expect(budget.entries).toBe(1);
  });

  it("recent nonces refuse a live reuse, forget after expiry, and evict the oldest when full", () => {
    const n = new RecentNonces(2);
    expect(n.add("a", 0, 1_000)).toBe(true);
    expect(n.has("a", 999)).toBe(true);
    expect(n.add("a", 999, 2_000)).toBe(false);
    expect(n.add("a", 1_000, 2_000)).toBe(true);
    expect(n.add("b", 1_000, 2_000)).toBe(true);
    expect(n.add("c", 1_000, 2_000)).toBe(true); // evicts "a", never refuses
    expect(n.has("a", 1_000)).toBe(false);
    expect(n.size).toBe(2);
  });
});

describe("rate limits", () => {
  it("pings cost tokens like messages: a ping flood is closed with 4429", async () => {
    const server = await startSignaling({ connRate: 1, connBurst: 5, maxViolations: 5 });
    try {
      const flooder = await RawClient.hello(server.url, from(9));
      // Fewer than ws's own cap on unanswered auto-pongs (60), which would terminate the socket.
      for (let i = 0; i < 40; i++) flooder.ws.ping(new Uint8Array(125));
      // Pings and messages are handled in order: by this request, the pings have been counted.
      flooder.send({ t: "LIST_SERVERS_REQUEST", id: 1 });
      expect(await flooder.nextFrame()).toBeUndefined();
      expect((await flooder.closed).code).toBe(CLOSE.RATE_LIMIT);
    } finally {
      await server.close();
    }
  });

  it("a connection's bucket is forgotten at a heartbeat only once it refilled: spent, it stays spent", async () => {
    let t = 1_000_000;
    // Heartbeats run by hand (the timer's period is an hour): each comes where the test says, and
    // a request after each shows the connection alive, whatever a loaded machine's timers do.
    const server = await startSignaling({ connRate: 1, connBurst: 3, heartbeatMs: 3_600_000 }, 0, () => t);
    const heartbeat = async (c: RawClient) => {
      const pinged = new Promise((r) => c.ws.once("ping", r));
      server.service.heartbeat();
      await pinged;
    };
    const list = (c: RawClient, id: number) => c.request({ t: "LIST_SERVERS_REQUEST", id });
    const limited = { t: "ERROR", code: "RATE_LIMITED" };
    try {
      const c = await RawClient.hello(server.url, from(12));
      // The opening's header took one token of the three: two requests answered, the third refused.
      for (const id of [1, 2]) expect((await list(c, id)).t).toBe("LIST_SERVERS_RESPONSE");
      expect(await list(c, 3)).toMatchObject(limited);
      // A heartbeat passes, the clock does not: the spent bucket is kept, not replaced by a full one.
      await heartbeat(c);
      expect(await list(c, 4)).toMatchObject(limited);
      // Refilled, then forgotten at a heartbeat: the next frames find a full bucket, three and no more.
      t += 10_000;
      await heartbeat(c);
      for (const id of [5, 6, 7]) expect((await list(c, id)).t).toBe("LIST_SERVERS_RESPONSE");
      expect(await list(c, 8)).toMatchObject(limited);
      c.close();
    } finally {
      await server.close();
    }
  });

  it("throttles a flooding connection, then closes it with 4429, while another source is served", async () => {
    const server = await startSignaling({ connRate: 20, connBurst: 40, maxViolations: 200 });
    try {
      const flooder = await RawClient.hello(server.url, from(2));
      const good = new SignalingClient({
        url: server.url,
        user: makeUser("good"),
        connect: wsFactory(from(3)),
      });
      await good.start();
      let limited = 0;
      let answered = 0;
      const counting = (async () => {
        for (;;) {
          const f = await flooder.nextFrame();
          if (!f) return;
          if (f.message?.t === "ERROR" && f.message.code === "RATE_LIMITED") limited++;
          else answered++;
        }
      })();
      for (let i = 0; i < 1_000 && !flooder.isClosed; i++) flooder.send({ t: "LIST_SERVERS_REQUEST", id: i });
      // The well-behaved client, on another address, keeps getting answers during the flood.
      for (let i = 0; i < 10; i++) expect(await good.listServers()).toEqual([]);
      expect((await flooder.closed).code).toBe(CLOSE.RATE_LIMIT);
      await counting;
      expect(limited).toBeGreaterThan(0);
      // About its burst of 40 is answered: the opening exchange spends from the same bucket, and
      // refills during the flood add a few more, so the bound allows for both.
      expect(answered).toBeGreaterThanOrEqual(38);
      expect(answered).toBeLessThan(1_000);
      const metrics = await server.metrics();
      expect(metricValue(metrics, "loft_signaling_rate_limited_total", 'scope="connection"')).toBeGreaterThan(
        200,
      );
      expect(metricValue(metrics, "loft_signaling_closes_total", 'code="4429"')).toBe(1);
      good.close();
    } finally {
      await server.close();
    }
  });

  it("throttles many connections from one source together, not other sources", async () => {
    const server = await startSignaling({
      connRate: 1_000,
      connBurst: 1_000,
      sourceRate: 5,
      sourceBurst: 20,
    });
    try {
      const conns = await Promise.all([1, 2, 3].map(() => RawClient.hello(server.url, from(4))));
      const other = await RawClient.hello(server.url, from(5));
      const replies = await Promise.all(
        conns.map(async (c, n) => {
          const codes: string[] = [];
          for (let i = 0; i < 15; i++) {
            const r = await c.request({ t: "LIST_SERVERS_REQUEST", id: n * 100 + i });
            codes.push(r.t === "ERROR" ? r.code : r.t);
          }
          return codes;
        }),
      );
      const all = replies.flat();
      expect(all.filter((c) => c === "RATE_LIMITED").length).toBeGreaterThanOrEqual(45 - 20 - 5);
      expect((await other.request({ t: "LIST_SERVERS_REQUEST", id: 1 })).t).toBe("LIST_SERVERS_RESPONSE");
      const metrics = await server.metrics();
      expect(metricValue(metrics, "loft_signaling_rate_limited_total", 'scope="source"')).toBeGreaterThan(0);
      for (const c of [...conns, other]) c.close();
    } finally {
      await server.close();
    }
  });

  it("refuses new connections from a source past its burst (HTTP 429) and past the total cap (503)", async () => {
    const server = await startSignaling({ upgradeRate: 1, upgradeBurst: 3, maxConnections: 5 });
    try {
      const ok = await Promise.all([1, 2, 3].map(() => RawClient.connect(server.url, from(6))));
      await expect(RawClient.connect(server.url, from(6))).rejects.toThrow("HTTP 429");
      ok.push(...(await Promise.all([1, 2].map(() => RawClient.connect(server.url, from(7))))));
      await expect(RawClient.connect(server.url, from(8))).rejects.toThrow("HTTP 503");
      for (const c of ok) c.close();
      await Promise.all(ok.map((c) => c.closed));
    } finally {
      await server.close();
    }
  });

  it("caps registrations per source and in total", async () => {
    const server = await startSignaling({ maxRegistrationsPerSource: 2, maxRegistrations: 3 });
    try {
      const codes: string[] = [];
      for (let i = 0; i < 3; i++) {
        const c = await RawClient.hello(server.url, from(9));
        const r = await c.request(await registerOn(c, makeUser(`u${i}`), { id: 1 }));
        codes.push(r.t === "ERROR" ? r.code : r.t);
      }
      expect(codes).toEqual(["REGISTER_RESPONSE", "REGISTER_RESPONSE", "SOURCE_LIMIT"]);
      const c = await RawClient.hello(server.url, from(10));
      expect((await c.request(await registerOn(c, makeUser("v"), { id: 1 }))).t).toBe("REGISTER_RESPONSE");
      const d = await RawClient.hello(server.url, from(11));
      expect(await d.request(await registerOn(d, makeUser("w"), { id: 1 }))).toMatchObject({
        code: "REGISTRY_FULL",
      });
    } finally {
      await server.close();
    }
  });
});

describe("liveness", () => {
  it("heartbeat reaps a socket that stops answering pings, and its peer goes offline", async () => {
    // Heartbeats run by hand (service.heartbeat; the timer's period is an hour): a loaded machine
    // cannot let the next one come before the watcher's pong is read.
    const server = await startSignaling({ heartbeatMs: 3_600_000 });
    try {
      const silentUser = makeUser("silent");
      const silent = await RawClient.hello(server.url, { autoPong: false });
      expect((await silent.request(await registerOn(silent, silentUser, { id: 1 }))).t).toBe(
        "REGISTER_RESPONSE",
      );
      const watcher = await RawClient.hello(server.url);
      const state = await watcher.request({ t: "SUBSCRIBE", id: 1, keys: [keyOf(silentUser)] });
      expect(state).toMatchObject({ t: "PRESENCE", peers: [{ online: true }] });
      const offline = watcher.until("PRESENCE", (m) => m.peers.some((p) => !p.online));
      // Both pinged; the watcher answers at once (ws writes the pong before it emits "ping").
      const pinged = new Promise((r) => watcher.ws.once("ping", r));
      server.service.heartbeat();
      await pinged;
      // A round trip on a third connection, begun after that pong was written on loopback: the
      // server has read the pong by the time it answers (no frame of the watcher's own, which
      // would count as a sign of life by itself).
      const other = await RawClient.hello(server.url);
      expect((await other.request({ t: "LIST_SERVERS_REQUEST", id: 1 })).t).toBe("LIST_SERVERS_RESPONSE");
      other.close();
      server.service.heartbeat();
      expect((await silent.closed).code).toBe(1006);
      await offline;
      expect(metricValue(await server.metrics(), "loft_signaling_heartbeat_reaped_total")).toBe(1);
      // A responsive socket survives the same heartbeats.
      expect((await watcher.request({ t: "LIST_SERVERS_REQUEST", id: 2 })).t).toBe("LIST_SERVERS_RESPONSE");
      watcher.close();
    } finally {
      await server.close();
    }
  });

  it("a registration that is not renewed expires: the peer is told, watchers see it offline", async () => {
    const server = await startSignaling({ ttlMinSeconds: 1, ttlMaxSeconds: 1, sweepMs: 50 });
    try {
      const user = makeUser("ephemeral");
      const c = await RawClient.hello(server.url);
      const watcher = await RawClient.hello(server.url);
      await watcher.request({ t: "SUBSCRIBE", id: 1, keys: [keyOf(user)] });
      const online = watcher.until("PRESENCE", (m) => m.peers.some((p) => p.online));
      const reply = await c.request(await registerOn(c, user, { id: 1, ttl: 3_600 }));
      expect(reply).toMatchObject({ t: "REGISTER_RESPONSE", renewal_interval: 1 });
      await online;
      const offline = watcher.until("PRESENCE", (m) => m.peers.some((p) => !p.online));
      expect(await c.until("REGISTRATION_ENDED")).toMatchObject({ reason: "expired" });
      await offline;
      const lookup = await watcher.request({
        t: "LOOKUP_REQUEST",
        id: 2,
        target_identity: keyOf(user),
        list_all: false,
      });
      expect(lookup).toMatchObject({ t: "LOOKUP_RESPONSE", peers: [] });
      expect(server.service.stats().registrations).toBe(0);
      expect(metricValue(await server.metrics(), "loft_signaling_registrations_expired_total")).toBe(1);
    } finally {
      await server.close();
    }
  });

  it("the client renews before expiry and stays online across several TTLs", async () => {
    const server = await startSignaling({ ttlMinSeconds: 2, ttlMaxSeconds: 2, sweepMs: 50 });
    try {
      const user = makeUser("renewer");
      const client = new SignalingClient({ url: server.url, user, connect: wsFactory(), ttlSeconds: 2 });
      const events: SignalingEvent[] = [];
      client.on((e) => events.push(e));
      await client.start();
      // Renewal interval is 1 s: four registrations span two full TTLs.
      for (let i = 0; i < 3; i++) await waitFor(client, (e) => e.type === "registered");
      expect(events.filter((e) => e.type === "error")).toEqual([]);
      const watcher = await RawClient.hello(server.url);
      const lookup = await watcher.request({
        t: "LOOKUP_REQUEST",
        id: 1,
        target_identity: keyOf(user),
        list_all: false,
      });
      expect(lookup.t === "LOOKUP_RESPONSE" && lookup.peers.length).toBe(1);
      expect(metricValue(await server.metrics(), "loft_signaling_registrations_expired_total")).toBe(0);
      expect(
        metricValue(await server.metrics(), "loft_signaling_register_requests_total", 'outcome="renewed"'),
      ).toBe(3);
      client.close();
      watcher.close();
    } finally {
      await server.close();
    }
  });

  it("graceful shutdown says GOING_AWAY, closes 1001, and clients re-register on the restarted server", async () => {
    const first = await startSignaling({ reconnectSpreadMs: 50 });
    const port = first.port;
    const alice = makeUser("alice");
    const bob = makeUser("bob");
    const a = new SignalingClient({
      url: first.url,
      user: alice,
      connect: wsFactory(),
      reconnect: { initialMs: 20, maxMs: 100 },
    });
    const b = new SignalingClient({
      url: first.url,
      user: bob,
      connect: wsFactory(),
      reconnect: { initialMs: 20, maxMs: 100 },
    });
    await Promise.all([a.start(), b.start()]);
    await a.subscribe([keyOf(bob)]);
    const raw = await RawClient.hello(first.url);
    const goingAway = raw.until("GOING_AWAY");
    const dropped = waitFor(a, (e) => e.type === "state" && e.state === "reconnecting");
    await first.close();
    expect((await goingAway).reconnect_after_ms).toBeLessThanOrEqual(50);
    expect((await raw.closed).code).toBe(CLOSE.GOING_AWAY);
    await dropped;

    // Same port, fresh process state: both clients come back on their own.
    const bobBack = waitFor(a, (e) => e.type === "presence" && e.online && equalBytes(e.key, keyOf(bob)));
    const second = await startSignaling({}, port);
    try {
      await Promise.all([a.ready(), b.ready()]);
      await bobBack;
      const gotOffer = waitFor(b, (e) => e.type === "signal");
      await a.signal(keyOf(bob), "offer", new Uint8Array([1]));
      await gotOffer;
    } finally {
      a.close();
      b.close();
      await second.close();
    }
  });
});
