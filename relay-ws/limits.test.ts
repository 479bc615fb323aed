/**
 * Per-source and per-connection limits of the relay (docs/operations-relay.md §Limits and abuse),
 * against a real relay on loopback. Sources are loopback addresses 127.0.0.2–127.0.0.5
 * (`localAddress`), or clients behind a trusted proxy (`X-Forwarded-For` from 127.0.0.1).
 * Each test names the finding of issue #17 it covers and fails on the code before its fix.
 */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { utf8 } from "../core/bytes.ts";
import type { RelayClient } from "../core/relay/client.ts";
import { newAuthKeyPair, newDhKeyPair } from "../core/relay/crypto.ts";
import type { Command, ServerFrame } from "../core/relay/protocol.ts";
import { defaultRelayConfig, type RelayConfig } from "./config.ts";
import { storedMessageBytes } from "./source-limits.ts";
import { LmdbStore } from "./store/lmdb.ts";
import type { RelayStore } from "./store/types.ts";
import {
  type ConnectFrom,
  refusalCode as codeOf,
  connectRelay,
  masterKeyFor,
  RawSocket,
  StoppableClock,
  startTestRelay,
  type TestRelay,
  upgradeStatus,
} from "./testing.ts";

const A: ConnectFrom = { localAddress: "127.0.0.2" };
const B: ConnectFrom = { localAddress: "127.0.0.3" };

let relay: TestRelay | undefined;
const open: { close(): void }[] = [];
async function start(overrides: Partial<RelayConfig>): Promise<TestRelay> {
  relay = await startTestRelay(overrides);
  return relay;
}
afterEach(async () => {
  for (const c of open.splice(0)) c.close();
  await relay?.close();
  relay = undefined;
});
afterAll(async () => {
  await relay?.close();
});

function track<T extends { close(): void }>(c: T): T {
  open.push(c);
  return c;
}

const errCode = (f: ServerFrame) => (f.k === "ERR" ? f.e : f.k);

/**
 * Until the relay closes `s`, waited on as a condition (bounded by expect.poll's timeout,
 * vitest.config.ts) whose failure says which connection stayed open and why it should not have —
 * a bare `await s.closed` that never settles reads only as the test's 60 s timeout.
 */
async function closedByRelay(s: RawSocket, what: string): Promise<void> {
  await expect.poll(() => s.closeCode, { message: `the relay did not close ${what}` }).toBeDefined();
}

describe("the opening deadline (one timer for every opening connection, host/deadlines.ts)", () => {
  it("closes a connection that never sends its version header, and not one that did", async () => {
    const r = await start({ openingTimeoutSeconds: 1 });
    const silent = track(await RawSocket.open(r.url, false));
    const opened = track(await RawSocket.open(r.url, true, {}, "authenticator"));
    await closedByRelay(
      silent,
      "the connection that never sent its version header, past the opening deadline",
    );
    expect(silent.closeCode).toBe(1002);
    expect(silent.closeReason).toBe("LOFT_ERR_TIMEOUT");
    // The one that opened outlives the deadline.
    expect(opened.closeCode).toBeUndefined();
    expect(r.service.connectionCount).toBe(1);
  });
});

describe("connections per source (finding 1)", () => {
  it("defaults to 64, like signaling", () => {
    expect(defaultRelayConfig().maxConnectionsPerSource).toBe(64);
  });

  it("caps open connections per source address; other sources are unaffected; a close frees a slot", async () => {
    const r = await start({ maxConnectionsPerSource: 4 });
    const held: RelayClient[] = [];
    for (let i = 0; i < 4; i++) held.push(track(await connectRelay(r.url, {}, A)));
    expect(await upgradeStatus(r.url, A)).toBe(429);
    expect(await upgradeStatus(r.url, A)).toBe(429);
    const other = track(await connectRelay(r.url, {}, B));
    await other.ping();
    held[0]!.close();
    await expect.poll(() => r.service.diagnostics().sockets === 4).toBe(true);
    const again = track(await connectRelay(r.url, {}, A));
    await again.ping();
  });

  it("behind a trusted proxy counts the forwarded client, IPv6 by /64; untrusted X-Forwarded-For is ignored", async () => {
    const r = await start({ maxConnectionsPerSource: 2, trustProxy: ["127.0.0.1"] });
    const via = (xff: string): ConnectFrom => ({ headers: { "x-forwarded-for": xff } });
    expect(await connectRelay(r.url, {}, via("203.0.113.7")).then(track)).toBeTruthy();
    expect(await connectRelay(r.url, {}, via("203.0.113.7")).then(track)).toBeTruthy();
    expect(await upgradeStatus(r.url, via("203.0.113.7"))).toBe(429);
    expect(await connectRelay(r.url, {}, via("203.0.113.8")).then(track)).toBeTruthy();
    // Two addresses of one /64 are one source.
    track(await connectRelay(r.url, {}, via("2001:db8:1:2::1")));
    track(await connectRelay(r.url, {}, via("2001:db8:1:2::ffff")));
    expect(await upgradeStatus(r.url, via("2001:db8:1:2:abcd::9"))).toBe(429);
    expect(await connectRelay(r.url, {}, via("2001:db8:1:3::1")).then(track)).toBeTruthy();
    // From 127.0.0.2 (not a trusted proxy) the header is the client's own claim and is not read.
    const spoof: ConnectFrom = { localAddress: "127.0.0.2", headers: { "x-forwarded-for": "198.51.100.1" } };
    track(await connectRelay(r.url, {}, spoof));
    track(
      await connectRelay(
        r.url,
        {},
        { localAddress: "127.0.0.2", headers: { "x-forwarded-for": "198.51.100.2" } },
      ),
    );
    expect(await upgradeStatus(r.url, spoof)).toBe(429);
  });
});

describe("command cost per source (finding 1)", () => {
  it("all connections of a source share one budget; signature checks cost more than PINGs; other sources unaffected", async () => {
    // The buckets' clock stands still: at 1 unit/s, a loaded machine opening the third connection
    // took long enough for the spent budget to refill a PING (its PING passed, load 24).
    const clock = new StoppableClock();
    clock.stop();
    relay = await startTestRelay(
      { sourceCostRate: 1, sourceCostBurst: 600, ratePerSecond: 0 },
      { now: clock.now },
    );
    const r = relay;
    const s1 = track(await RawSocket.open(r.url, true, A));
    const s2 = track(await RawSocket.open(r.url, true, A));
    const wrong = newAuthKeyPair().secretKey;
    // Signed commands against unknown queues: each costs a signature check.
    let signed = 0;
    for (let i = 0; i < 200; i++) {
      const s = i % 2 ? s1 : s2;
      const f = await s.request({ k: "GET", i: i + 1, q: new Uint8Array(randomBytes(24)) }, wrong);
      if (errCode(f) === "SOURCE_RATE") break;
      expect(errCode(f)).toBe("AUTH");
      signed++;
    }
    expect(signed).toBeGreaterThan(10);
    expect(signed).toBeLessThan(100);
    // The source is out of budget on every connection, and a new connection does not reset it.
    const c = track(await connectRelay(r.url, {}, A));
    expect(await codeOf(c.ping())).toBe("LOFT_ERR_RELAY_SOURCE_RATE");
    // Another source is served.
    const other = track(await RawSocket.open(r.url, true, B));
    const f = await other.request({ k: "GET", i: 1, q: new Uint8Array(randomBytes(24)) }, wrong);
    expect(errCode(f)).toBe("AUTH");
    // PINGs are cheap: the same budget allows many more of them.
    let pings = 0;
    for (let i = 0; i < 1000; i++) {
      const g = await other.request({ k: "PING", i: i + 2 });
      if (errCode(g) === "SOURCE_RATE") break;
      pings++;
    }
    expect(pings).toBeGreaterThan(signed * 5);
  });

  it("a source that keeps sending after SOURCE_RATE is disconnected (1008)", async () => {
    const r = await start({ sourceCostRate: 1, sourceCostBurst: 200, ratePerSecond: 0 });
    const s = track(await RawSocket.open(r.url, true, A));
    for (let i = 0; i < 2000 && s.closeCode === undefined; i++) s.send(s.frame({ k: "PING", i: i + 1 }));
    await closedByRelay(s, "the source that kept sending after SOURCE_RATE");
    expect(s.closeCode).toBe(1008);
    expect(s.closeReason).toBe("LOFT_ERR_RELAY_SOURCE_RATE");
  });
});

describe("storage per source (finding 3)", () => {
  it("a 0-byte SEND is charged the bytes it stores; refused SENDs are not charged; STORE_RATE surfaces in the client", async () => {
    const r = await start({
      sourceStoreRate: 1,
      sourceStoreBurst: 5 * storedMessageBytes(0) + 100,
      queueQuota: 1000,
    });
    const alice = track(await connectRelay(r.url, {}, B));
    const q = await alice.createQueue({ subscribe: false });
    const bob = track(await connectRelay(r.url, {}, A));
    // Refused SENDs (unknown queue) store nothing and cost no storage.
    for (let i = 0; i < 10; i++)
      expect(await codeOf(bob.send({ senderId: new Uint8Array(randomBytes(24)) }, new Uint8Array(0)))).toBe(
        "LOFT_ERR_RELAY_AUTH",
      );
    const sendId = new Uint8Array(randomBytes(16));
    await bob.send({ senderId: q.senderId }, new Uint8Array(0), { sendId });
    // Refused as duplicates: nothing stored, nothing charged.
    for (let i = 0; i < 5; i++)
      expect(await codeOf(bob.send({ senderId: q.senderId }, new Uint8Array(0), { sendId }))).toBe(
        "LOFT_ERR_RELAY_DUPLICATE",
      );
    for (let i = 0; i < 4; i++) await bob.send({ senderId: q.senderId }, new Uint8Array(0));
    expect(await codeOf(bob.send({ senderId: q.senderId }, new Uint8Array(0)))).toBe(
      "LOFT_ERR_RELAY_STORE_RATE",
    );
    // Creating queues writes too.
    expect(await codeOf(bob.createQueue({ subscribe: false }))).toBe("LOFT_ERR_RELAY_STORE_RATE");
    // Exactly five were stored; another source still writes.
    let n = 0;
    for (let m = await alice.get(q); m && n < 10; m = await alice.get(q)) {
      await alice.ack(q, m.msgId);
      n++;
    }
    expect(n).toBe(5);
    const carol = track(await connectRelay(r.url, {}, { localAddress: "127.0.0.4" }));
    await carol.send({ senderId: q.senderId }, utf8("hello"));
  });
});

describe("prekey bundles (finding 4)", () => {
  async function publish(r: TestRelay, oneTime: number) {
    const owner = track(await connectRelay(r.url, {}, { localAddress: "127.0.0.5" }));
    const q = await owner.createQueue({ subscribe: false });
    await owner.publishPrekeys(q, {
      bundle: utf8("bundle"),
      oneTimePrekeys: Array.from({ length: oneTime }, (_, i) => utf8(`otk-${i}`)),
    });
    return { owner, q };
  }

  it("one-time prekeys per queue: beyond the burst a fetch gets the bundle alone and nothing is drained", async () => {
    const r = await start({
      maxPrekeys: 20,
      prekeyQueueBurst: 3,
      prekeyQueuePerHour: 1,
      prekeySourceBurst: 100,
    });
    const { owner, q } = await publish(r, 20);
    const fetchers = [A, B, { localAddress: "127.0.0.4" }];
    let withOtk = 0;
    for (let i = 0; i < 12; i++) {
      const c = track(await connectRelay(r.url, {}, fetchers[i % 3]!));
      const p = await c.fetchPrekeys(q.senderId);
      expect(new TextDecoder().decode(p.bundle)).toBe("bundle"); // the last-resort path keeps working
      if (p.oneTimePrekey) withOtk++;
    }
    expect(withOtk).toBe(3);
    // 17 remain stored: adding 4 exceeds the limit of 20, adding 3 fits.
    expect(
      await codeOf(owner.publishPrekeys(q, { oneTimePrekeys: [1, 2, 3, 4].map((i) => utf8(`n${i}`)) })),
    ).toBe("LOFT_ERR_RELAY_LIMIT");
    await owner.publishPrekeys(q, { oneTimePrekeys: [1, 2, 3].map((i) => utf8(`n${i}`)) });
  });

  it("one-time prekeys per source: one address cannot take more than its burst, others still get theirs", async () => {
    const r = await start({
      maxPrekeys: 50,
      prekeyQueueBurst: 100,
      prekeySourceBurst: 2,
      prekeySourcePerHour: 1,
    });
    const { q } = await publish(r, 50);
    const c = track(await connectRelay(r.url, {}, A));
    let withOtk = 0;
    for (let i = 0; i < 10; i++) if ((await c.fetchPrekeys(q.senderId)).oneTimePrekey) withOtk++;
    expect(withOtk).toBe(2);
    const d = track(await connectRelay(r.url, {}, B));
    expect((await d.fetchPrekeys(q.senderId)).oneTimePrekey).toBeDefined();
  });
});

describe("bundle-only answers (finding 4)", () => {
  it("come from memory: refused fetches do not make the relay write; a new bundle replaces the cached one", async () => {
    const calls = { take: 0, set: 0 };
    // The real LMDB store, with its prekey calls counted.
    const counted = (dir: string): RelayStore => {
      const store = new LmdbStore({ path: dir, sync: false, masterKey: masterKeyFor(dir) });
      return new Proxy(store, {
        get(target, prop, receiver) {
          if (prop === "takePrekeys") calls.take++;
          if (prop === "setPrekeys") calls.set++;
          const v = Reflect.get(target, prop, receiver);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
    };
    relay = await startTestRelay({ prekeyQueueBurst: 1, prekeyQueuePerHour: 1 }, { store: counted });
    const r = relay;
    const owner = track(await connectRelay(r.url));
    const q = await owner.createQueue({ subscribe: false });
    await owner.publishPrekeys(q, { bundle: utf8("v1"), oneTimePrekeys: [utf8("a"), utf8("b"), utf8("c")] });
    const c = track(await connectRelay(r.url, {}, A));
    expect((await c.fetchPrekeys(q.senderId)).oneTimePrekey).toBeDefined();
    const before = { ...calls };
    for (let i = 0; i < 20; i++) {
      const p = await c.fetchPrekeys(q.senderId);
      expect(new TextDecoder().decode(p.bundle)).toBe("v1");
      expect(p.oneTimePrekey).toBeUndefined();
    }
    expect(calls).toEqual(before);
    await owner.publishPrekeys(q, { bundle: utf8("v2"), oneTimePrekeys: [] });
    for (let i = 0; i < 5; i++)
      expect(new TextDecoder().decode((await c.fetchPrekeys(q.senderId)).bundle)).toBe("v2");
    // One take and one put-back to learn the new bundle, then memory again.
    expect(calls.take - before.take).toBe(1);
    expect(calls.set - before.set).toBe(2); // the PKSET itself, and the put-back
  });
});

describe("pipelined NEW (finding 5)", () => {
  it("the per-connection queue limit is reserved before the write: no orphan queues", async () => {
    const r = await start({ maxQueuesPerConnection: 4 });
    const before = r.service.store.stats().queues;
    const s = track(await RawSocket.open(r.url));
    for (let i = 0; i < 10; i++) {
      const auth = newAuthKeyPair();
      s.send(
        s.frame(
          { k: "NEW", i: i + 1, rk: auth.publicKey, dk: newDhKeyPair().publicKey, sub: false },
          auth.secretKey,
        ),
      );
    }
    const replies: string[] = [];
    for (let i = 0; i < 10; i++) replies.push(errCode(await s.nextFrame()));
    expect(replies.filter((k) => k === "IDS")).toHaveLength(4);
    expect(replies.filter((k) => k === "LIMIT")).toHaveLength(6);
    expect(r.service.store.stats().queues - before).toBe(4);
  });
});

describe("key-object cache (finding 6)", () => {
  it("keys that never verified a signature are not cached", async () => {
    const r = await start({ ratePerSecond: 0, sourceCostRate: 0 });
    const s = track(await RawSocket.open(r.url));
    const base = r.service.diagnostics().keyCacheEntries;
    for (let i = 0; i < 200; i++) {
      const k = newAuthKeyPair();
      // NEW and SKEY name their own key; a wrong signature must not cache it.
      const cmd: Command =
        i % 2
          ? { k: "NEW", i: i + 1, rk: k.publicKey, dk: newDhKeyPair().publicKey, sub: false }
          : { k: "SKEY", i: i + 1, q: new Uint8Array(randomBytes(24)), sk: k.publicKey };
      expect(errCode(await s.request(cmd, newAuthKeyPair().secretKey))).toBe("AUTH");
    }
    expect(r.service.diagnostics().keyCacheEntries).toBe(base);
    // A validly self-signed SKEY for a made-up queue proves only that its sender made a key.
    for (let i = 0; i < 20; i++) {
      const k = newAuthKeyPair();
      const cmd: Command = { k: "SKEY", i: 500 + i, q: new Uint8Array(randomBytes(24)), sk: k.publicKey };
      expect(errCode(await s.request(cmd, k.secretKey))).toBe("AUTH");
    }
    expect(r.service.diagnostics().keyCacheEntries).toBe(base);
  });

  it("is bounded by bytes and keeps verifying evicted keys", async () => {
    const r = await start({ keyCacheBytes: 10 * 3000, ratePerSecond: 0, sourceCostRate: 0 });
    // The cache serves signatures (protocol 1.0); 1.1 authenticators keep per-connection keys.
    const c = track(await connectRelay(r.url, { auth: "signature" }));
    const queues = [];
    for (let i = 0; i < 30; i++) queues.push(await c.createQueue({ subscribe: false }));
    const d = r.service.diagnostics();
    expect(d.keyCacheBytes).toBeLessThanOrEqual(10 * 3000);
    expect(d.keyCacheEntries).toBeGreaterThan(0);
    expect(d.keyCacheEntries).toBeLessThanOrEqual(10);
    for (const q of queues) expect(await c.get(q)).toBeUndefined();
  });
});

describe("AUTH work (finding 7)", () => {
  it("unknown ids, wrong signatures, cold and cached keys: one key parse and one verification each", async () => {
    const r = await start({ ratePerSecond: 0, sourceCostRate: 0 });
    const owner = track(await connectRelay(r.url));
    const cached = await owner.createQueue({ subscribe: false });
    await owner.get(cached); // its key verified a signature: cached
    const cold = await owner.createQueue({ subscribe: false });
    const s = track(await RawSocket.open(r.url));
    const wrong = newAuthKeyPair().secretKey;
    const work = async (cmd: Command, key?: Uint8Array) => {
      const before = r.service.diagnostics();
      const f = await s.request(cmd, key);
      const after = r.service.diagnostics();
      expect(errCode(f)).toBe("AUTH");
      return { parses: after.keyParses - before.keyParses, verifies: after.verifies - before.verifies };
    };
    const one = { parses: 1, verifies: 1 };
    for (const k of ["GET", "SUB", "OFF", "DEL"] as const) {
      const cmd = (q: Uint8Array): Command => (k === "SUB" ? { k, i: 5, q, w: 1 } : { k, i: 5, q });
      expect(await work(cmd(new Uint8Array(randomBytes(24))), wrong), `${k} unknown`).toEqual(one);
      expect(await work(cmd(cached.recipientId), wrong), `${k} cached key`).toEqual(one);
      expect(await work(cmd(cold.recipientId), wrong), `${k} cold key`).toEqual(one);
      expect(await work(cmd(cold.recipientId)), `${k} unsigned`).toEqual(one);
    }
    expect(
      await work({
        k: "SEND",
        i: 6,
        q: new Uint8Array(randomBytes(24)),
        n: new Uint8Array(16),
        b: utf8("x"),
      }),
    ).toEqual(one);
    expect(await work({ k: "PKGET", i: 7, q: new Uint8Array(randomBytes(24)) })).toEqual(one);
  });
});

describe("upgrade headers under fuzz (finding 8)", () => {
  it("any Origin and X-Forwarded-For: 101, 403 or 429, never a crash; the relay stays healthy", async () => {
    const r = await start({
      trustProxy: ["loopback"],
      maxConnectionsPerSource: 4,
      crossOriginPages: "refuse",
    });
    const header = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.constantFrom("null", "https://evil.example", `http://127.0.0.1:${r.port}`, "http://[::1]"),
      fc.ipV4(),
      fc.ipV6(),
      fc
        .array(fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 8 })), { maxLength: 5 })
        .map((a) => a.join(", ")),
    );
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(fc.option(header), fc.option(header), async (origin, xff) => {
        const headers: Record<string, string> = {};
        // Header values must be valid HTTP field values for the client library to send them.
        const clean = (v: string) => v.replace(/[^\x20-\x7e]/g, "");
        if (origin !== null) headers.origin = clean(origin);
        if (xff !== null) headers["x-forwarded-for"] = clean(xff);
        const status = await upgradeStatus(r.url, { headers });
        seen.add(status);
        expect([101, 403, 429]).toContain(status);
      }),
      { numRuns: 300 },
    );
    expect(seen.has(101)).toBe(true);
    expect(seen.has(403)).toBe(true);
    const c = track(await connectRelay(r.url));
    await c.ping();
  });
});

describe("WebSocket Origin (finding 8)", () => {
  it("by default accepts pages of other origins, but counts them apart from its own pages", async () => {
    const r = await start({ maxConnectionsPerSource: 2 });
    const evil = { headers: { origin: "https://evil.example" } };
    const own = { headers: { origin: `http://127.0.0.1:${r.port}` } };
    const held = [track(await connectRelay(r.url, {}, evil)), track(await connectRelay(r.url, {}, evil))];
    // The foreign page's budget at this address is spent; the app's own pages still get in.
    expect(await upgradeStatus(r.url, evil)).toBe(429);
    expect(await upgradeStatus(r.url, own)).toBe(101);
    expect(await upgradeStatus(r.url)).toBe(101);
    await held[0]!.ping();
  });

  it("with --relay-cross-origin-pages refuse: foreign pages get 403; its own origin, configured ones and non-browser clients are accepted", async () => {
    const r = await start({ allowedOrigins: ["https://app.example"], crossOriginPages: "refuse" });
    expect(await upgradeStatus(r.url, { headers: { origin: "https://evil.example" } })).toBe(403);
    expect(await upgradeStatus(r.url, { headers: { origin: "null" } })).toBe(403);
    expect(await upgradeStatus(r.url, { headers: { origin: `http://127.0.0.1:${r.port}` } })).toBe(101);
    expect(await upgradeStatus(r.url, { headers: { origin: "https://app.example" } })).toBe(101);
    expect(await upgradeStatus(r.url)).toBe(101);
  });
});
