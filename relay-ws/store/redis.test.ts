/**
 * The Redis relay store (store/redis.ts) against Debian's redis-server on loopback (AOF,
 * appendfsync always; test/support/redis-server.ts): the same semantics as the LMDB store —
 * order, duplicates, quotas, suspension, crypto deletion, TTL, idle queues, epoch keys destroyed —
 * shared by two store instances (two relay processes in production), nothing plaintext in Redis or
 * its AOF, acknowledged writes surviving a kill -9 of Redis (and subscriptions claimed again after
 * it), and delivery counts not held for messages gone through another instance or expired. The
 * contracts of store/testing.ts (run on LMDB too), and random steps answered as LMDB answers them.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { type RedisServer, startRedis } from "../../test/support/redis-server.ts";
import { LmdbStore } from "./lmdb.ts";
import { RedisStore } from "./redis.ts";
import {
  APPEND_BATCH_EXPECTED,
  appendBatchContract,
  newMessage,
  randomQueue,
  SEND_ID_EXPECTED,
  type StoreOp,
  sendIdContract,
  storeOps,
  ZERO_EXPIRY_EXPECTED,
  zeroExpiryContract,
} from "./testing.ts";

const MARKER = "LOFT-REDIS-PLAINTEXT-4c1d";
let redis: RedisServer;
const stores: RedisStore[] = [];
const master = randomBytes(32);

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const s of stores) await s.close();
  await redis?.stop();
});

let prefixes = 0;
async function open(
  options: {
    prefix?: string;
    clock?: () => number;
    quotaBytes?: number;
    idleQueueMs?: number;
    keyEpochMs?: number;
  } = {},
) {
  const s = await RedisStore.open({
    url: redis.url,
    masterKey: master,
    prefix: options.prefix ?? `t${prefixes++}:`,
    ...options,
  });
  stores.push(s);
  return s;
}

const text = (b: Uint8Array | undefined) =>
  b ? new TextDecoder().decode(b.subarray(2, 2 + ((b[0]! << 8) | b[1]!))) : undefined;
const enc = (s: string) => new TextEncoder().encode(s);

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe("Redis relay store", () => {
  it("stores in order, refuses duplicates, quota, suspended and missing queues, and crypto-deletes on ACK", async () => {
    const s = await open();
    const q = randomQueue();
    await s.createQueue(q);
    const byR = await s.queueByRecipient(q.recipientId);
    expect(Buffer.from(byR!.rcvKey)).toEqual(Buffer.from(q.rcvKey));
    expect(Buffer.from((await s.queueBySender(q.senderId))!.recipientId)).toEqual(Buffer.from(q.recipientId));
    expect(await s.queueBySender(q.recipientId)).toBeUndefined();
    const now = Date.now();
    const msgs = Array.from({ length: 5 }, (_, i) => newMessage(enc(`${MARKER}-${i}`), now, 60_000));
    // Pipelined: the order of the calls is the order of the sequence numbers.
    expect(await Promise.all(msgs.map((m) => s.append(q.recipientId, m, 5)))).toEqual(Array(5).fill("ok"));
    expect(await s.append(q.recipientId, msgs[0]!, 5)).toBe("duplicate");
    expect(await s.append(q.recipientId, newMessage(enc("x"), now, 60_000), 5)).toBe("quota");
    expect(await s.append(randomQueue().recipientId, newMessage(enc("x"), now, 60_000), 5)).toBe("missing");
    let cursor = -1;
    for (let i = 0; i < 5; i++) {
      const m = await s.next(q.recipientId, cursor);
      expect(Buffer.from(m!.msgId)).toEqual(Buffer.from(msgs[i]!.msgId));
      expect(text(await s.read(q.recipientId, m!.seq))).toBe(`${MARKER}-${i}`);
      cursor = m!.seq;
    }
    expect(await s.next(q.recipientId, cursor)).toBeUndefined();
    const first = await s.next(q.recipientId, -1);
    expect(await s.ack(q.recipientId, first!.seq, randomBytes(24))).toBe(false);
    expect(await s.ack(q.recipientId, first!.seq, first!.msgId)).toBe(true);
    expect(await s.ack(q.recipientId, first!.seq, first!.msgId)).toBe(false);
    expect(await s.read(q.recipientId, first!.seq)).toBeUndefined();
    // A retry of an acknowledged message's send id is still a duplicate (the send id outlives it).
    expect(await s.append(q.recipientId, msgs[0]!, 5)).toBe("duplicate");
    expect(await s.secureQueue(q.recipientId, new Uint8Array(32).fill(1))).toBe("ok");
    expect(await s.secureQueue(q.recipientId, new Uint8Array(32).fill(1))).toBe("ok");
    expect(await s.secureQueue(q.recipientId, new Uint8Array(32).fill(2))).toBe("conflict");
    expect(await s.suspendQueue(q.recipientId)).toBe(true);
    expect(await s.append(q.recipientId, newMessage(enc("x"), now, 60_000), 50)).toBe("suspended");
    // Stored messages stay deliverable after OFF.
    expect((await s.next(q.recipientId, -1))?.seq).toBe(1);
    expect(await s.deleteQueue(q.recipientId)).toBe(4);
    expect(await s.queueByRecipient(q.recipientId)).toBeUndefined();
    expect(await s.deleteQueue(q.recipientId)).toBe(0);
  });

  it("appendBatch (SENDS, protocol 1.3): one script, in order, duplicates skipped, a prefix up to the first refusal", async () => {
    const s = await open();
    expect(await appendBatchContract(s)).toEqual(APPEND_BATCH_EXPECTED);
    // The global byte quota stops the batch too: a small message after a refused large one is refused.
    const tight = await open({ quotaBytes: 3_000 });
    const q = randomQueue();
    await tight.createQueue(q);
    const big = newMessage(enc("b".repeat(4000)), Date.now(), 60_000);
    const small = () => newMessage(enc("s"), Date.now(), 60_000);
    expect(await tight.appendBatch(q.recipientId, [small(), big, small()], 100)).toEqual([
      "ok",
      "full",
      "full",
    ]);
    expect(tight.stats()).toMatchObject({ messages: 1 });
  });

  it("send ids (the LMDB store's contract): DUPLICATE while stored, during and after an ACK, after a drop; the zero id never; each zero-id message expires at its own time", async () => {
    expect(await sendIdContract(await open())).toEqual(SEND_ID_EXPECTED);
    expect(await zeroExpiryContract(await open())).toEqual(ZERO_EXPIRY_EXPECTED);
  });

  it("the same SENDs, batches, ACKs and drops get the same answers on Redis as on LMDB (fast-check, the two engines side by side)", async () => {
    // Send ids from a pool of four, one of them zero: retries, in and across batches, after ACKs
    // and drops; a queue quota of 5 so batches meet it part-way. Each case opens both stores
    // afresh (an LMDB environment on disk, a Redis prefix): a state machine, so far fewer cases
    // than a decoder's (test/support/fuzz.ts).
    const id = fc.integer({ min: 0, max: 3 });
    const op: fc.Arbitrary<StoreOp> = fc.oneof(
      fc.record({ k: fc.constant("send" as const), id }),
      fc.record({ k: fc.constant("batch" as const), ids: fc.array(id, { minLength: 1, maxLength: 4 }) }),
      fc.record({ k: fc.constant("ack" as const) }),
      fc.record({ k: fc.constant("drop" as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 14 }), async (ops) => {
        const sendIds = [new Uint8Array(16), ...[1, 2, 3].map(() => new Uint8Array(randomBytes(16)))];
        const dir = mkdtempSync(join(tmpdir(), "loft-redis-vs-lmdb-"));
        const lmdb = new LmdbStore({ path: dir, masterKey: randomBytes(32), sync: false });
        const onRedis = await open();
        try {
          expect(await storeOps(onRedis, ops, sendIds, 5)).toEqual(await storeOps(lmdb, ops, sendIds, 5));
        } finally {
          await onRedis.close();
          await lmdb.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: Math.min(250, Math.max(30, Math.floor(FUZZ_RUNS / 300))) },
    );
  });

  it("counts bytes against the global quota (FULL), and frees them on deletion", async () => {
    const s = await open({ quotaBytes: 3_000 });
    const q = randomQueue();
    await s.createQueue(q);
    const results: string[] = [];
    for (let i = 0; i < 10; i++)
      results.push(await s.append(q.recipientId, newMessage(enc("y".repeat(400)), Date.now(), 60_000), 100));
    expect(results.slice(0, 2)).toEqual(["ok", "ok"]);
    expect(results.at(-1)).toBe("full");
    const m = await s.next(q.recipientId, -1);
    await s.ack(q.recipientId, m!.seq, m!.msgId);
    expect(await s.append(q.recipientId, newMessage(enc("z"), Date.now(), 60_000), 100)).toBe("ok");
    await s.deleteQueue(q.recipientId);
    await s.gc(Date.now());
    expect(s.stats()).toMatchObject({ queues: 0, messages: 0, storedBytes: 0 });
  });

  it("prekeys: the bundle and one one-time prekey per take, limits, replace", async () => {
    const s = await open();
    const q = randomQueue();
    await s.createQueue(q);
    expect(
      await s.setPrekeys(
        q.recipientId,
        { bundle: enc("bundle-1"), oneTime: [enc("otk-1"), enc("otk-2")], replaceOneTime: false },
        3,
      ),
    ).toBe("ok");
    expect(
      await s.setPrekeys(q.recipientId, { oneTime: [enc("a"), enc("b")], replaceOneTime: false }, 3),
    ).toBe("limit");
    const t1 = await s.takePrekeys(q.recipientId);
    expect(new TextDecoder().decode(t1!.bundle)).toBe("bundle-1");
    expect(new TextDecoder().decode(t1!.oneTime)).toBe("otk-1");
    expect(
      await s.setPrekeys(
        q.recipientId,
        { bundle: enc("bundle-2"), oneTime: [enc("otk-3")], replaceOneTime: true },
        3,
      ),
    ).toBe("ok");
    const t2 = await s.takePrekeys(q.recipientId);
    expect(new TextDecoder().decode(t2!.bundle)).toBe("bundle-2");
    expect(new TextDecoder().decode(t2!.oneTime)).toBe("otk-3");
    const t3 = await s.takePrekeys(q.recipientId);
    expect(t3!.oneTime).toBeUndefined();
    expect(await s.setPrekeys(randomQueue().recipientId, { oneTime: [], replaceOneTime: false }, 3)).toBe(
      "missing",
    );
  });

  it("two instances: a message appended on one reaches the other's listener; a claim ends the other's subscription", async () => {
    const prefix = `shared${prefixes++}:`;
    const a = await open({ prefix });
    const b = await open({ prefix });
    const q = randomQueue();
    await a.createQueue(q);
    const appended: string[] = [];
    b.onAppend((rid) => appended.push(Buffer.from(rid).toString("hex")));
    const ended: string[] = [];
    a.hub.onEnd((_rid, token) => ended.push(token));
    const tokenB = b.hub.newToken();
    await b.claim(q.recipientId, tokenB);
    expect(await a.append(q.recipientId, newMessage(enc("across"), Date.now(), 60_000), 10)).toBe("ok");
    await expect.poll(() => appended).toEqual([Buffer.from(q.recipientId).toString("hex")]);
    // B reads what A wrote (same keyring, same master key).
    const m = await b.next(q.recipientId, -1);
    expect(text(await b.read(q.recipientId, m!.seq))).toBe("across");
    // A takes the subscription over: B is told to end its own (token B).
    const endedB: string[] = [];
    b.hub.onEnd((_rid, token) => endedB.push(token));
    await a.claim(q.recipientId, a.hub.newToken());
    await expect.poll(() => endedB).toEqual([tokenB]);
    expect(ended).toEqual([]);
    // Deleting the queue (on B) ends A's subscription.
    await b.deleteQueue(q.recipientId);
    await expect.poll(() => ended.length).toBe(1);
  });

  it("expires messages and send ids at their TTL, deletes idle queues, rotates and destroys epoch keys", async () => {
    let now = Date.now();
    const clock = () => now;
    const s = await open({ clock, keyEpochMs: 3_600_000, idleQueueMs: 2 * 86_400_000 });
    const q = randomQueue();
    await s.createQueue(q);
    const old = newMessage(enc("old"), now, 1_000);
    expect(await s.append(q.recipientId, old, 10)).toBe("ok");
    expect(await s.append(q.recipientId, newMessage(enc("new"), now, 10 * 3_600_000), 10)).toBe("ok");
    now += 2_000;
    const r1 = await s.gc(now);
    expect(r1.expiredMessages).toBe(1);
    expect(r1.expiredSendIds).toBe(1);
    expect(await s.append(q.recipientId, old, 10)).toBe("ok"); // its send id expired with it
    // Epochs: rotate hourly; the first epoch's keys are re-wrapped after two epochs and it is destroyed.
    now += 3_600_000;
    await s.gc(now);
    expect(s.stats().keyEpochs).toBe(2);
    now += 3 * 3_600_000;
    const r3 = await s.gc(now);
    expect(r3.rewrappedKeys).toBeGreaterThan(0);
    expect(r3.destroyedEpochs).toBeGreaterThan(0);
    const m = await s.next(q.recipientId, -1);
    expect(text(await s.read(q.recipientId, m!.seq))).toBe("new");
    expect((await s.queueByRecipient(q.recipientId))?.rcvKey).toBeDefined();
    // Idle for more than two days: deleted.
    now += 4 * 86_400_000;
    expect((await s.gc(now)).idleQueues).toBe(1);
    expect(await s.queueByRecipient(q.recipientId)).toBeUndefined();
  });

  it("holds no plaintext in Redis or its AOF; acknowledged writes survive kill -9 of Redis, and the store reconnects by itself", async () => {
    const prefix = `crash${prefixes++}:`;
    const s = await open({ prefix });
    const q = randomQueue();
    await s.createQueue(q);
    // Subscriptions held on `s` while another instance (`b`) writes: one claimed before the
    // outage whose claim Redis comes back without, one claimed while Redis is down.
    const b = await open({ prefix });
    const [lost, late] = [randomQueue(), randomQueue()];
    for (const x of [lost, late]) await b.createQueue(x);
    const hex = (x: { recipientId: Uint8Array }) => Buffer.from(x.recipientId).toString("hex");
    const woken = new Set<string>();
    s.onAppend((rid) => woken.add(Buffer.from(rid).toString("hex")));
    await s.claim(lost.recipientId, s.hub.newToken());
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    expect(await admin.del(`${prefix}sub:${hex(lost)}`)).toBe(1);
    admin.disconnect();
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      const body = `${MARKER}-${i}`;
      if ((await s.append(q.recipientId, newMessage(enc(body), Date.now(), 60_000), 100)) === "ok")
        sent.push(body);
    }
    await s.setPrekeys(
      q.recipientId,
      { bundle: enc(`${MARKER}-bundle`), oneTime: [enc(`${MARKER}-otk`)], replaceOneTime: false },
      5,
    );
    for (const f of filesUnder(redis.dir)) expect(readFileSync(f).includes(Buffer.from(MARKER))).toBe(false);
    await redis.kill();
    // While Redis is down: a clear "unavailable", no hang, no crash.
    await expect.poll(() => s.unavailable()).toBeDefined();
    await expect(s.append(q.recipientId, newMessage(enc("down"), Date.now(), 60_000), 100)).rejects.toThrow(
      /Redis unavailable/,
    );
    await s.claim(late.recipientId, s.hub.newToken()); // fails: taken again once Redis is back
    await redis.restart();
    await expect.poll(() => s.unavailable(), { timeout: 30_000 }).toBeUndefined();
    await expect.poll(() => b.unavailable(), { timeout: 30_000 }).toBeUndefined();
    // Claimed again by the resync: appends through `b` wake `s` for both.
    await expect
      .poll(async () => {
        for (const x of [lost, late])
          await b.append(x.recipientId, newMessage(enc("wake"), Date.now(), 60_000), 100);
        return [lost, late].map((x) => woken.has(hex(x)));
      })
      .toEqual([true, true]);
    const got: string[] = [];
    let cursor = -1;
    for (;;) {
      const m = await s.next(q.recipientId, cursor);
      if (!m) break;
      got.push(text(await s.read(q.recipientId, m.seq))!);
      cursor = m.seq;
    }
    expect(got).toEqual(sent);
  });
});

describe("Redis store: delivery counts", () => {
  it("counts of messages ACKed through another instance or expired in Redis are not held for good", async () => {
    const prefix = `counts${prefixes++}:`;
    let now = Date.now();
    const a = await open({ prefix, clock: () => now });
    const b = await open({ prefix, clock: () => now });
    const queues = Array.from({ length: 20 }, () => randomQueue());
    for (const q of queues) {
      await a.createQueue(q);
      expect(await a.append(q.recipientId, newMessage(enc("m"), now, 1_000), 10)).toBe("ok");
    }
    // Delivered through A, then half ACKed through B, half expired by GC; A's subscriptions end.
    const seqs: number[] = [];
    for (const q of queues) {
      const m = (await a.next(q.recipientId, -1))!;
      await a.markDelivered(q.recipientId, m.seq);
      seqs.push(m.seq);
    }
    for (const [i, q] of queues.entries())
      if (i % 2 === 0) {
        const m = (await b.next(q.recipientId, -1))!;
        expect(await b.ack(q.recipientId, m.seq, m.msgId)).toBe(true);
      }
    now += 2_000;
    expect((await a.gc(now)).expiredMessages).toBe(queues.length / 2);
    expect(a.deliveryCountsHeldForTest()).toBe(queues.length);
    for (const [i, q] of queues.entries()) a.releaseDeliveries(q.recipientId, [seqs[i]!]);
    await expect.poll(() => a.deliveryCountsHeldForTest()).toBe(0);
  });
});

describe("Redis store: untrusted state in Redis", () => {
  it("a forged, replayed or garbled message on an instance's channel ends nothing; damaged records read as missing", async () => {
    const { Redis } = await import("ioredis");
    const { connectRelay, startTestRelay } = await import("../testing.ts");
    const prefix = `svc${prefixes++}:`;
    const store = await RedisStore.open({ url: redis.url, masterKey: master, prefix });
    const relay = await startTestRelay({}, { store: () => store });
    const raw = new Redis(redis.url);
    try {
      const ended: string[] = [];
      const got: string[] = [];
      const alice = await connectRelay(relay.url, {
        onEnd: (rid) => ended.push(Buffer.from(rid).toString("hex")),
        onMessage: (m) => got.push(new TextDecoder().decode(m.body)),
      });
      const q = await alice.createQueue({ subscribe: true });
      const ridHex = Buffer.from(q.recipientId).toString("hex");
      const channel = `${prefix}ch:${store.instance}`;
      // A wrong token (a replay of an older subscription's END, or a guess), garbage, an unknown queue.
      for (const m of [`e${ridHex}${"0".repeat(16)}`, "garbage", `a${"zz".repeat(24)}`, `e${ridHex}`, ""])
        await raw.publish(channel, m);
      const bob = await connectRelay(relay.url);
      const s = await bob.senderSecure({ senderId: q.senderId });
      await bob.send(s, enc("still here"));
      await expect.poll(() => got).toEqual(["still here"]);
      expect(ended).toEqual([]);
      // A damaged queue record (its sealed key truncated in Redis): refused as unknown, no crash.
      const q2 = await alice.createQueue({ subscribe: false });
      await raw.hset(`${prefix}q:${Buffer.from(q2.recipientId).toString("hex")}`, "rcv", "short");
      expect(await store.queueByRecipient(q2.recipientId)).toBeUndefined();
      await expect(bob.send({ senderId: q2.senderId }, enc("after damage"))).rejects.toThrow(/AUTH/);
      // A secured queue this instance keeps in memory, deleted behind its back (another instance):
      // SEND is refused all the same — the append script checks.
      await raw.del(`${prefix}q:${ridHex}`);
      await expect(bob.send(s, enc("after delete"))).rejects.toThrow(/AUTH/);
      alice.close();
      bob.close();
    } finally {
      raw.disconnect();
      await relay.close();
    }
  });
});

describe("Redis store: failover to a promoted replica", () => {
  it("with --relay-redis-wait 1 every acknowledged write is on the replica: kill -9 the primary, REPLICAOF NO ONE, reopen there, nothing lost", async () => {
    const { Redis } = await import("ioredis");
    // No 5 s wait before the first full sync (Redis's default diskless sync delay).
    const primary = await startRedis({ args: ["--repl-diskless-sync-delay", "0"] });
    // WAIT needs the replica to have the write, not to have fsync'd it: its own fsync per write
    // only slowed every acknowledged SEND on a loaded machine (the test once ran out of time).
    const replica = await startRedis({
      args: ["--replicaof", primary.host, String(primary.port), "--appendfsync", "no"],
    });
    const admin = new Redis(replica.url);
    try {
      // The replica has synced once it reports the link up.
      await expect
        .poll(async () => /master_link_status:up/.test(await admin.info("replication")), { timeout: 30_000 })
        .toBe(true);
      const s = await RedisStore.open({
        url: primary.url,
        masterKey: master,
        prefix: "fo:",
        waitReplicas: 1,
        waitTimeoutMs: 5_000,
      });
      const q = randomQueue();
      await s.createQueue(q);
      const sent: string[] = [];
      for (let i = 0; i < 12; i++) {
        const body = `failover-${i}`;
        if ((await s.append(q.recipientId, newMessage(enc(body), Date.now(), 60_000), 100)) === "ok")
          sent.push(body);
      }
      expect(sent).toHaveLength(12);
      await primary.kill();
      await s.close();
      // Promotion, as Sentinel would do it; the relay is pointed at the new primary.
      await admin.replicaof("NO", "ONE");
      const promoted = await RedisStore.open({ url: replica.url, masterKey: master, prefix: "fo:" });
      stores.push(promoted);
      const got: string[] = [];
      let cursor = -1;
      for (;;) {
        const m = await promoted.next(q.recipientId, cursor);
        if (!m) break;
        got.push(text(await promoted.read(q.recipientId, m.seq))!);
        cursor = m.seq;
      }
      expect(got).toEqual(sent);
      expect(
        await promoted.append(q.recipientId, newMessage(enc("after failover"), Date.now(), 60_000), 100),
      ).toBe("ok");
    } finally {
      admin.disconnect();
      await replica.stop();
      await primary.stop();
    }
  });
});

describe("per-source budgets over all instances", () => {
  it("a source spending under its burst on each instance but over it in total is refused on both, until the second ends; sources are keyed hashes", async () => {
    const { SharedSourceLimits } = await import("../shared-limits.ts");
    const prefix = `src${prefixes++}:`;
    const a = await open({ prefix });
    const b = await open({ prefix });
    let now = 1_800_000_000_000;
    const clock = () => now;
    const bursts = { conn: 60, cost: 5_000, store: 64 * 1024 };
    const onA = new SharedSourceLimits(a, bursts, clock);
    const onB = new SharedSourceLimits(b, bursts, clock);
    try {
      // The same address names the same source on every instance (same master key), never in the clear.
      const tag = onA.tag("203.0.113.7");
      expect(onB.tag("203.0.113.7")).toBe(tag);
      expect(tag).toMatch(/^[0-9a-f]{32}$/);
      expect(onA.tag("203.0.113.8")).not.toBe(tag);
      onA.spend(tag, "store", 40_000);
      onB.spend(tag, "store", 40_000);
      onB.spend(onB.tag("198.51.100.1"), "store", 1_000);
      await onA.flush();
      expect(onA.over(tag, "store")).toBe(false); // 40 000 so far
      await onB.flush();
      expect(onB.over(tag, "store")).toBe(true); // 80 000 > 65 536 over both
      expect(onB.over(onB.tag("198.51.100.1"), "store")).toBe(false);
      expect(onB.over(tag, "conn")).toBe(false);
      onA.spend(tag, "store", 1);
      await onA.flush();
      expect(onA.over(tag, "store")).toBe(true);
      // The next second starts afresh.
      now += 1_000;
      expect(onA.over(tag, "store")).toBe(false);
      const raw = new (await import("ioredis")).Redis(redis.url);
      const keys = await raw.keys(`${prefix}src:*`).finally(() => raw.disconnect());
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.every((k) => !k.includes("203.0.113"))).toBe(true);
    } finally {
      onA.close();
      onB.close();
    }
  });
});

describe("Redis store: the at-rest formats of docs/protocol/relay.md §At rest, read raw", () => {
  it("a message record in Redis opens with key-key 'm' ‖ rid ‖ msgId, its key record with the epoch key from the keyring slot", async () => {
    const { Redis } = await import("ioredis");
    const { decodeSlot } = await import("./keyring.ts");
    const { openBlob, unwrapDataKey, epochOf } = await import("./at-rest.ts");
    const prefix = `raw${prefixes++}:`;
    const s = await open({ prefix });
    const q = randomQueue();
    await s.createQueue(q);
    const m = newMessage(enc("by the book"), Date.now(), 60_000);
    expect(await s.append(q.recipientId, m, 10)).toBe("ok");
    const raw = new Redis(redis.url);
    try {
      const rid = Buffer.from(q.recipientId);
      const ridHex = rid.toString("hex");
      const record = (await raw.hgetBuffer(`${prefix}m:${ridHex}`, "0"))!;
      const keyRecord = (await raw.hgetBuffer(`${prefix}k:${ridHex}`, "m0"))!;
      const slot = (await raw.getBuffer(`${prefix}keyring`))!;
      expect(record.subarray(0, 24)).toEqual(Buffer.from(m.msgId));
      expect(record.readBigUInt64BE(32)).toBe(BigInt(m.expiresAt));
      const ring = decodeSlot(master, slot)!;
      const epoch = ring.epochs.find((e) => e.id === epochOf(keyRecord))!;
      const keyKey = Buffer.concat([Buffer.of(0x6d), rid, Buffer.from(m.msgId)]);
      const dataKey = unwrapDataKey(keyRecord, epoch.key, keyKey)!;
      const block = openBlob(dataKey, record.subarray(40), keyKey)!;
      expect(block.length).toBe(256);
      expect(new TextDecoder().decode(block.subarray(2, 2 + block.readUInt16BE(0)))).toBe("by the book");
      // The same blob under another message's name does not open (the AAD binds it to its id).
      const other = Buffer.concat([Buffer.of(0x6d), rid, Buffer.alloc(24)]);
      expect(unwrapDataKey(keyRecord, epoch.key, other)).toBeUndefined();
    } finally {
      raw.disconnect();
    }
  });
});
