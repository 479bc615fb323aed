/**
 * Signature checks on worker threads (verify-pool.ts, `--relay-verify-threads`): verdicts are the
 * OpenSSL verdicts whatever the thread, a full pool sends the overflow back to the event loop, a
 * worker that dies loses no job, and a relay with several verify threads still runs each
 * connection's commands in arrival order (docs/protocol/relay.md §Commands) — pipelined signed
 * SENDs are stored, and so delivered, in the order they were sent. A stuck verify or seal thread
 * is failed over by its watchdog (verify-pool.ts, store/seal-pool.ts): nothing waits forever.
 */
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { utf8 } from "../core/bytes.ts";
import type { RelayMessage } from "../core/relay/client.ts";
import { RESPAWN_BASE_MS, RespawnBackoff } from "./batch-watchdog.ts";
import { LmdbStore } from "./store/lmdb.ts";
import { SealPool } from "./store/seal-pool.ts";
import { blockUntilAnswered, connectRelay, masterKeyFor, relayCounter, startTestRelay } from "./testing.ts";
import { VerifyPool } from "./verify-pool.ts";

function jobs(n: number) {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return Array.from({ length: n }, (_, i) => {
    const m = randomBytes(40 + i);
    const s = sign(null, m, privateKey);
    // Every third signature is damaged.
    if (i % 3 === 0) s[i % 64]! ^= 1;
    const raw = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(12));
    return { raw, key: publicKey, m: new Uint8Array(m), s: new Uint8Array(s), good: i % 3 !== 0 };
  });
}

/**
 * A relay whose store seals with `pool`: "before" is stored, `fail` breaks the seal thread while
 * it sends `m0…` (and says how many), then the failover is counted once, a new thread replaces the
 * old one and seals five `n…`, and the queue holds every message, in order.
 */
async function sealThreadFailover(
  pool: SealPool,
  fail: (send: (text: string) => Promise<unknown>) => Promise<number>,
): Promise<void> {
  const relay = await startTestRelay(
    { ratePerSecond: 0, queueQuota: 1_000 },
    { store: (dir) => new LmdbStore({ path: dir, masterKey: masterKeyFor(dir), sealPool: pool }) },
  );
  try {
    const alice = await connectRelay(relay.url);
    const bob = await connectRelay(relay.url);
    const q = await alice.createQueue({ subscribe: false });
    const sender = await bob.senderSecure({ senderId: q.senderId });
    const send = (text: string) => bob.send(sender, utf8(text));
    await send("before");
    expect(await relayCounter(relay, "loft_relay_seal_failovers_total")).toBe(0);
    const n = await fail(send);
    expect(await relayCounter(relay, "loft_relay_seal_failovers_total")).toBe(1);
    await expect
      .poll(
        async () => (await relayCounter(relay, "loft_relay_worker_respawns_total", { pool: "seal" })) === 1,
      )
      .toBe(true);
    const batches = pool.batches;
    await Promise.all(Array.from({ length: 5 }, (_, i) => send(`n${i}`)));
    expect(pool.batches).toBeGreaterThan(batches); // sealed on the new thread
    expect(pool.alive).toBe(true);
    const got: string[] = [];
    for (let m = await alice.get(q); m && got.length < n + 10; m = await alice.get(q)) {
      got.push(new TextDecoder().decode(m.body));
      await alice.ack(q, m.msgId);
    }
    expect(got).toEqual([
      "before",
      ...Array.from({ length: n }, (_, i) => `m${i}`),
      ...Array.from({ length: 5 }, (_, i) => `n${i}`),
    ]);
    alice.close();
    bob.close();
  } finally {
    await relay.close();
  }
}

describe("VerifyPool", () => {
  it("answers each job with its own verdict, across threads and batches", async () => {
    const pool = new VerifyPool(3, 1000);
    try {
      const js = jobs(300);
      const verdicts = await Promise.all(js.map((j) => pool.submit(j.raw, j.key, j.m, j.s)));
      expect(verdicts).toEqual(js.map((j) => j.good));
    } finally {
      await pool.close();
    }
  });

  it("a full pool answers undefined (the caller verifies inline); a closed one too", async () => {
    const pool = new VerifyPool(1, 2);
    const [a, b, c] = jobs(3);
    const p1 = pool.submit(a!.raw, a!.key, a!.m, a!.s);
    const p2 = pool.submit(b!.raw, b!.key, b!.m, b!.s);
    expect(pool.submit(c!.raw, c!.key, c!.m, c!.s)).toBeUndefined();
    expect(await Promise.all([p1, p2])).toEqual([a!.good, b!.good]);
    // Room again once answered.
    expect(await pool.submit(c!.raw, c!.key, c!.m, c!.s)).toBe(c!.good);
    await pool.close();
    expect(pool.submit(c!.raw, c!.key, c!.m, c!.s)).toBeUndefined();
    // Stopping the threads on close is not a failure (loft_relay_verify_thread_failures_total).
    expect(pool.failures).toBe(0);
  });

  it("a worker that dies hands its jobs back: every job still gets its right verdict, the thread is replaced", async () => {
    const respawned: number[] = [];
    const pool = new VerifyPool(2, 1000, undefined, {
      respawnBaseMs: 50,
      onRespawn: (d) => respawned.push(d.respawns),
    });
    try {
      const js = jobs(120);
      const pending = js.map((j) => pool.submit(j.raw, j.key, j.m, j.s));
      // Let the first batches reach the threads, then kill one mid-work.
      await new Promise((r) => setImmediate(r));
      await pool.killWorkerForTest(0);
      expect(await Promise.all(pending)).toEqual(js.map((j) => j.good));
      expect(pool.failures).toBe(1);
      // Replaced after the back-off (batch-watchdog.ts RespawnBackoff), not at once.
      await expect.poll(() => pool.threads === 2).toBe(true);
      expect(respawned).toEqual([1]);
      const [x] = jobs(1);
      expect(await pool.submit(x!.raw, x!.key, x!.m, x!.s)).toBe(x!.good);
    } finally {
      await pool.close();
    }
  });

  /** One thread, replaced 50 ms after a failure (doubling, at most 10 s); the waits told, in `told`. */
  const failingPool = () => {
    const told: number[] = [];
    const pool = new VerifyPool(1, 1000, undefined, {
      respawnBaseMs: 50,
      respawnMaxMs: 10_000,
      onFailure: (d) => told.push(d.respawnInMs),
    });
    return { pool, told };
  };

  it("RespawnBackoff: never below its base, doubling while failures follow within 2 × max, capped at max, back to base after 2 × max without one", () => {
    const b = new RespawnBackoff(1_000, 60_000);
    const waits: number[] = [];
    let now = 0;
    // A worker that fails as soon as it starts: each failure right after its wait ended.
    for (let i = 0; i < 9; i++) {
      const wait = b.next(now);
      waits.push(wait);
      now += wait;
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    // Failures at the same moment (several verify threads): each waits longer, none at once.
    expect([b.next(now), b.next(now)]).toEqual([60_000, 60_000]);
    expect(b.next(now + 120_000)).toBe(60_000); // within 2 × max (120 s): not yet reset
    expect(b.next(now + 120_000 + 120_001)).toBe(1_000);
    expect(b.next(now + 240_002)).toBe(2_000);
    expect(new RespawnBackoff().next()).toBe(RESPAWN_BASE_MS);
  });

  it("a thread that keeps failing is replaced after a back-off that doubles; none after close", async () => {
    const { pool, told } = failingPool();
    try {
      for (let round = 0; round < 3; round++) {
        await pool.killWorkerForTest(0);
        expect(pool.threads).toBe(0);
        // Meanwhile the caller verifies inline (no thread: undefined).
        const [w] = jobs(1);
        expect(pool.submit(w!.raw, w!.key, w!.m, w!.s)).toBeUndefined();
        await expect.poll(() => pool.threads === 1).toBe(true);
        expect(await pool.submit(w!.raw, w!.key, w!.m, w!.s)).toBe(w!.good);
      }
      expect(told).toEqual([50, 100, 200]);
      expect({ failures: pool.failures, respawns: pool.respawns }).toEqual({ failures: 3, respawns: 3 });
      await pool.killWorkerForTest(0);
    } finally {
      await pool.close();
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(pool.threads).toBe(0);
    expect(pool.respawns).toBe(3);
  });

  it("a thread that cannot be started (new Worker throws) is tried again after the next back-off, the event loop verifying meanwhile", async () => {
    // Without the catch the throw came from a timer: an uncaught exception, the relay's end.
    const { pool, told } = failingPool();
    try {
      pool.failSpawnsForTest(2);
      await pool.killWorkerForTest(0);
      const [w] = jobs(1);
      expect(pool.submit(w!.raw, w!.key, w!.m, w!.s)).toBeUndefined(); // no thread: inline
      await expect.poll(() => pool.threads === 1).toBe(true);
      expect(told).toEqual([50, 100, 200]);
      expect({ failures: pool.failures, respawns: pool.respawns }).toEqual({ failures: 3, respawns: 1 });
      expect(await pool.submit(w!.raw, w!.key, w!.m, w!.s)).toBe(w!.good);
    } finally {
      await pool.close();
    }
  });

  it("a stuck worker: the watchdog fails it over — every job gets its verdict on the event loop, the thread is replaced and counted", async () => {
    const pool = new VerifyPool(1, 1000, 500, { respawnBaseMs: 50 });
    try {
      const [w] = jobs(1);
      expect(await pool.submit(w!.raw, w!.key, w!.m, w!.s)).toBe(w!.good); // the thread runs
      pool.hangWorkerForTest(0);
      const js = jobs(30);
      const pending = js.map((j) => pool.submit(j.raw, j.key, j.m, j.s));
      expect(await Promise.all(pending)).toEqual(js.map((j) => j.good));
      expect(pool.failures).toBe(1);
      await expect.poll(() => pool.threads === 1).toBe(true);
      const [x] = jobs(1);
      expect(await pool.submit(x!.raw, x!.key, x!.m, x!.s)).toBe(x!.good);
    } finally {
      await pool.close();
    }
  });

  it("a blocked event loop is not a stuck worker: no failover, the thread and its key cache stay", async () => {
    const pool = new VerifyPool(1, 1000, 500);
    try {
      const [w, x] = jobs(2);
      const answers = pool.countAnswersForTest(0)!;
      expect(await pool.submit(w!.raw, w!.key, w!.m, w!.s)).toBe(w!.good); // the thread runs
      expect(blockUntilAnswered(answers, 1)).toBe(true);
      const pending = pool.submit(x!.raw, x!.key, x!.m, x!.s);
      await new Promise((r) => setImmediate(r)); // posted: the watchdog's clock runs
      const posted = performance.now();
      // The loop blocked until the thread's answer waits in the port — however late a loaded
      // machine schedules the thread (bounded) — and past the timeout: when the loop wakes, the
      // timer fires before the poll phase delivers that answer.
      expect(blockUntilAnswered(answers, 2)).toBe(true);
      while (performance.now() < posted + 600);
      expect(await pending).toBe(x!.good);
      expect(pool.failures).toBe(0);
      // The same thread answers the next job (its key cache stays with it): a replacement would
      // not count on this counter.
      expect(await pool.submit(w!.raw, w!.key, w!.m, w!.s)).toBe(w!.good);
      expect(blockUntilAnswered(answers, 3)).toBe(true);
    } finally {
      await pool.close();
    }
  });
});

describe("relay with verify threads", () => {
  // With threads, the messages are also sealed at rest on a worker (--relay-seal-threads 1,
  // relay-ws/store/seal-pool.ts): the order holds through both.
  for (const [threads, sealThreads] of [
    [0, 0],
    [3, 1],
  ] as const) {
    it(`--relay-verify-threads ${threads} --relay-seal-threads ${sealThreads}: pipelined signed SENDs are stored and pushed in send order; bad signatures get AUTH`, async () => {
      const relay = await startTestRelay({ verifyThreads: threads, sealThreads, ratePerSecond: 0 });
      try {
        const got: RelayMessage[] = [];
        // Signatures (protocol 1.0): what the verify threads serve (1.1 authenticators run inline).
        const alice = await connectRelay(relay.url, { auth: "signature", onMessage: (m) => got.push(m) });
        const bob = await connectRelay(relay.url, { auth: "signature" });
        const q = await alice.createQueue({ subscribe: false });
        const sender = await bob.senderSecure({ senderId: q.senderId });
        const n = 120;
        await Promise.all(Array.from({ length: n }, (_, i) => bob.send(sender, utf8(`m${i}`))));
        await alice.subscribe(q, 32);
        for (let i = 0; i < n; i++) {
          await expect.poll(() => got.length > i).toBe(true);
          expect(new TextDecoder().decode(got[i]!.body)).toBe(`m${i}`);
          await alice.ack(q, got[i]!.msgId);
        }
        // A SEND signed by another key is refused, on whichever thread it was checked.
        const forged = { senderId: q.senderId, senderAuthSecret: new Uint8Array(randomBytes(32)) };
        await expect(bob.send(forged, utf8("forged"))).rejects.toMatchObject({ code: "LOFT_ERR_RELAY_AUTH" });
        // Where the checks ran shows in the metrics: on threads when there are some.
        const onThreads = await relayCounter(relay, "loft_relay_verifications_total", { where: "thread" });
        const onLoop = await relayCounter(relay, "loft_relay_verifications_total", { where: "event_loop" });
        if (threads === 0) expect(onThreads).toBe(0);
        else expect(onThreads).toBeGreaterThan(n);
        expect(onThreads + onLoop).toBeGreaterThanOrEqual(2 * n);
        expect(await relayCounter(relay, "loft_relay_verify_thread_failures_total")).toBe(0);
        alice.close();
        bob.close();
      } finally {
        await relay.close();
      }
    });
  }

  it("a seal thread that crashes with SENDs in flight: every SEND is answered OK and stored in order; a new thread seals the later ones (loft_relay_worker_respawns_total)", async () => {
    const pool = new SealPool({ respawnBaseMs: 100 });
    await sealThreadFailover(pool, async (send) => {
      const batches = pool.batches;
      // SENDs pipelined, the thread killed (a crash, not a close) mid-stream: once it sealed a
      // first batch, while the rest still come in (store/seal-pool.test.ts pins the exact case of
      // one batch out and the next waiting behind it).
      const sends = Array.from({ length: 200 }, (_, i) => send(`m${i}`));
      await expect.poll(() => pool.batches > batches, { interval: 1 }).toBe(true);
      await pool.kill();
      await Promise.all(sends);
      return 200;
    });
  });

  it("a stuck seal thread: SENDs are still answered OK, in order, after the watchdog fails it over; counted in loft_relay_seal_failovers_total; a new thread replaces it (loft_relay_worker_respawns_total)", async () => {
    const pool = new SealPool({ batchTimeoutMs: 500, respawnBaseMs: 100 });
    await sealThreadFailover(pool, async (send) => {
      pool.hangForTest();
      await Promise.all(Array.from({ length: 10 }, (_, i) => send(`m${i}`)));
      return 10;
    });
  });
});
