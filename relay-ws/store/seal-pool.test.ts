/**
 * At-rest sealing on a worker thread (seal-pool.ts, `--relay-seal-threads 1`): the bytes are those
 * of at-rest.ts for the same keys and IVs (docs/protocol/relay.md §At rest), answers come back in
 * submission order whatever the batch boundaries, and a worker that dies mid-batch loses nothing:
 * what it held, and everything after, is sealed on the event loop, still in order.
 */
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { defaultRelayConfig, relayOptions } from "../config.ts";
import { blockUntilAnswered } from "../testing.ts";
import { bucketSize, openBlob, sealBlob, unwrapDataKey, wrapDataKey } from "./at-rest.ts";
import { type Sealed, SealPool } from "./seal-pool.ts";

const pools: SealPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.close();
});
const pool = () => {
  const p = new SealPool();
  pools.push(p);
  return p;
};

interface Input {
  epoch: number;
  epochKey: Buffer;
  dataKey: Buffer;
  keyKey: Buffer;
  block: Buffer;
  iv1: Buffer;
  iv2: Buffer;
}
const input = (size: number, epoch = 7): Input => ({
  epoch,
  epochKey: randomBytes(32),
  dataKey: randomBytes(32),
  keyKey: Buffer.concat([Buffer.of(0x6d), randomBytes(32)]),
  block: randomBytes(size),
  iv1: randomBytes(12),
  iv2: randomBytes(12),
});
/** What at-rest.ts makes of the same input (computed before the pool wipes the data key). */
const expected = (i: Input) => ({
  keyRecord: wrapDataKey(i.epoch, i.epochKey, i.dataKey, i.keyKey, i.iv2),
  sealed: sealBlob(i.dataKey, i.block, i.keyKey, i.iv1),
});
/** A pool replacing failed workers after 50, 100, 200 ms…, started: what it told and when. */
async function respawningPool(): Promise<{ p: SealPool; told: string[]; respawned: number[] }> {
  const told: string[] = [];
  const respawned: number[] = [];
  const p = new SealPool({
    respawnBaseMs: 50,
    respawnMaxMs: 10_000,
    onFailover: (reason) => told.push(reason),
    onRespawn: (d) => respawned.push(d.delayMs),
  });
  pools.push(p);
  await submit(p, input(256));
  return { p, told, respawned };
}

/** The order jobs resolve in: `track(k)` goes on job k's promise, `order` lists the k's as they settle. */
function resolutionOrder(): { order: number[]; track: (k: number) => (s: Sealed) => Sealed } {
  const order: number[] = [];
  return {
    order,
    track: (k) => (s) => {
      order.push(k);
      return s;
    },
  };
}

const submit = (p: SealPool, i: Input) =>
  p.seal(i.epoch, i.epochKey, Buffer.from(i.dataKey), i.keyKey, i.block, i.iv1, i.iv2);

describe("relay store seal pool", () => {
  it("is on by default wherever a second core exists; 0 turns it off, 2 is refused", () => {
    // bench/README-relay.md, "Seal threads: the default": less event-loop CPU per message with a
    // free core; on one core the worker would only compete with the event loop.
    expect(defaultRelayConfig().sealThreads).toBe(availableParallelism() >= 2 ? 1 : 0);
    expect(relayOptions.sealThreads.parse("0")).toBe(0);
    expect(() => relayOptions.sealThreads.parse("2")).toThrow();
  });

  it("seals exactly as at-rest.ts does, for every bucket size and key-key, in submission order", async () => {
    const p = pool();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 16_382 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        async (bodies, epoch) => {
          const inputs = bodies.map((n) => input(bucketSize(n, 16_384), epoch));
          const want = inputs.map(expected);
          const got = await Promise.all(inputs.map((i) => submit(p, i)));
          for (const [k, g] of got.entries()) {
            expect(g.keyRecord.equals(want[k]!.keyRecord)).toBe(true);
            expect(g.sealed.equals(want[k]!.sealed)).toBe(true);
            // And it opens: the data key unwraps, the blob opens to the block.
            const dk = unwrapDataKey(g.keyRecord, inputs[k]!.epochKey, inputs[k]!.keyKey)!;
            expect(openBlob(dk, g.sealed, inputs[k]!.keyKey)?.equals(inputs[k]!.block)).toBe(true);
          }
        },
      ),
      { numRuns: 25 },
    );
    expect(p.batches).toBeGreaterThan(0);
    expect(p.alive).toBe(true);
  });

  it("wipes the data key it was given once sealed", async () => {
    const p = pool();
    const i = input(256);
    const dk = Buffer.from(i.dataKey);
    await p.seal(i.epoch, i.epochKey, dk, i.keyKey, i.block, i.iv1, i.iv2);
    expect(dk.every((b) => b === 0)).toBe(true);
  });

  it("a worker killed with batches out: every job still resolves, same bytes, in order, then sealed here", async () => {
    const p = pool();
    const inputs = Array.from({ length: 300 }, (_, k) => input(256 << (k % 3)));
    const want = inputs.map(expected);
    const { order, track } = resolutionOrder();
    const first = inputs.slice(0, 200).map((i, k) => submit(p, i).then(track(k)));
    await new Promise((r) => setImmediate(r)); // the first batch is posted
    await p.kill();
    const rest = inputs.slice(200).map((i, k) => submit(p, i).then(track(200 + k)));
    const got = await Promise.all([...first, ...rest]);
    expect(p.alive).toBe(false);
    expect(order).toEqual(inputs.map((_, k) => k));
    for (const [k, g] of got.entries()) {
      expect(g.keyRecord.equals(want[k]!.keyRecord)).toBe(true);
      expect(g.sealed.equals(want[k]!.sealed)).toBe(true);
    }
  });

  it("jobs submitted while the batch is out wait for its answer, then leave as the next batch, in order (one batch out, MAX_BATCHES_OUT)", async () => {
    const p = pool();
    await submit(p, input(256)); // the worker runs
    const batches = p.batches;
    const inputs = Array.from({ length: 60 }, (_, k) => input(256 << (k % 3)));
    const want = inputs.map(expected);
    const { order, track } = resolutionOrder();
    const first = inputs.slice(0, 30).map((i, k) => submit(p, i).then(track(k)));
    await new Promise((r) => setImmediate(r)); // the first batch is posted, not answered yet
    // Behind it: nothing posts these but its answer (no timer, no watchdog while it answers).
    const rest = inputs.slice(30).map((i, k) => submit(p, i).then(track(30 + k)));
    const got = await Promise.all([...first, ...rest]);
    expect(order).toEqual(inputs.map((_, k) => k));
    for (const [k, g] of got.entries()) expect(g).toEqual(want[k]);
    expect(p.batches).toBe(batches + 2);
    expect({ alive: p.alive, failovers: p.failovers }).toEqual({ alive: true, failovers: 0 });
  });

  it("a worker killed with a batch out and the next waiting behind it: every job sealed (here), in order; after the respawn later jobs go to the new worker", async () => {
    const { p, told } = await respawningPool();
    const inputs = Array.from({ length: 120 }, (_, k) => input(256 << (k % 3)));
    const want = inputs.map(expected);
    const { order, track } = resolutionOrder();
    const first = inputs.slice(0, 60).map((i, k) => submit(p, i).then(track(k)));
    await new Promise((r) => setImmediate(r)); // the first batch is out
    const rest = inputs.slice(60).map((i, k) => submit(p, i).then(track(60 + k)));
    await p.kill();
    const got = await Promise.all([...first, ...rest]);
    expect(order).toEqual(inputs.map((_, k) => k));
    for (const [k, g] of got.entries()) expect(g).toEqual(want[k]);
    expect(told).toEqual(["exit"]);
    await expect.poll(() => p.alive).toBe(true);
    const batches = p.batches;
    const later = Array.from({ length: 20 }, () => input(512));
    expect(await Promise.all(later.map((i) => submit(p, i)))).toEqual(later.map(expected));
    expect(p.batches).toBeGreaterThan(batches); // on the new worker
    expect(p.failovers).toBe(1);
  });

  it("a hung worker with a batch out and more gathering behind it: one failover for all of them, in order; after the respawn later jobs go to the new worker", async () => {
    const told: { reason: string; jobs: number }[] = [];
    const p = new SealPool({
      batchTimeoutMs: 1_000,
      respawnBaseMs: 50,
      onFailover: (reason, d) => told.push({ reason, jobs: d.jobs }),
    });
    pools.push(p);
    await submit(p, input(256)); // the worker runs
    p.hangForTest();
    const inputs = Array.from({ length: 40 }, (_, k) => input(256 << (k % 2)));
    const want = inputs.map(expected);
    const pending: Promise<Sealed>[] = [];
    // Four event-loop turns: the first batch goes to the stuck worker, the rest wait behind it.
    for (let turn = 0; turn < 4; turn++) {
      for (const i of inputs.slice(turn * 10, turn * 10 + 10)) pending.push(submit(p, i));
      await new Promise((r) => setImmediate(r));
    }
    const got = await Promise.all(pending);
    for (const [k, g] of got.entries()) expect(g).toEqual(want[k]);
    expect(told).toEqual([{ reason: "timeout", jobs: 40 }]);
    await expect.poll(() => p.alive).toBe(true);
    const batches = p.batches;
    const later = Array.from({ length: 10 }, () => input(256));
    expect(await Promise.all(later.map((i) => submit(p, i)))).toEqual(later.map(expected));
    expect(p.batches).toBeGreaterThan(batches); // on the new worker
    expect({ failovers: p.failovers, respawns: p.respawns }).toEqual({ failovers: 1, respawns: 1 });
  });

  it("a hung worker: the oldest batch's watchdog fails it over once (reason told), nothing lost, same bytes, in order", async () => {
    const told: { reason: string; jobs: number }[] = [];
    const p = new SealPool({
      batchTimeoutMs: 500,
      onFailover: (reason, d) => told.push({ reason, jobs: d.jobs }),
    });
    pools.push(p);
    const warm = input(256);
    await submit(p, warm);
    expect(told).toEqual([]);
    p.hangForTest();
    const inputs = Array.from({ length: 50 }, (_, k) => input(256 << (k % 2)));
    const want = inputs.map(expected);
    const got = await Promise.all(inputs.map((i) => submit(p, i)));
    expect(p.alive).toBe(false);
    expect(p.failovers).toBe(1);
    expect(told.length).toBe(1);
    expect(told[0]!.reason).toBe("timeout");
    expect(told[0]!.jobs).toBe(50);
    for (const [k, g] of got.entries()) {
      expect(g.keyRecord.equals(want[k]!.keyRecord)).toBe(true);
      expect(g.sealed.equals(want[k]!.sealed)).toBe(true);
    }
  });

  it("a blocked event loop is not a stuck worker: its answer, waiting since, is taken before the watchdog's verdict", async () => {
    const told: string[] = [];
    const p = new SealPool({ batchTimeoutMs: 500, onFailover: (reason) => told.push(reason) });
    pools.push(p);
    const answers = p.countAnswersForTest();
    await submit(p, input(256)); // the worker runs
    expect(blockUntilAnswered(answers, 1)).toBe(true);
    const i = input(256);
    const want = expected(i);
    const pending = submit(p, i);
    await new Promise((r) => setImmediate(r)); // posted: the watchdog's clock runs
    const posted = performance.now();
    // The loop blocked (a long synchronous pass, a major GC) until the worker's answer waits in
    // the port — however late a loaded machine schedules the thread (bounded) — and past the
    // timeout: when it wakes, the timer fires before the poll phase delivers that answer.
    expect(blockUntilAnswered(answers, 2)).toBe(true);
    while (performance.now() < posted + 600);
    expect(await pending).toEqual(want);
    expect({ failovers: p.failovers, alive: p.alive, told }).toEqual({ failovers: 0, alive: true, told: [] });
    const batches = p.batches;
    await submit(p, input(256));
    expect(p.batches).toBe(batches + 1); // still on the worker
  });

  it("a failed worker is replaced after a back-off that doubles while it keeps failing: jobs go to the new one, same bytes; none after close", async () => {
    const { p, told, respawned } = await respawningPool();
    for (let round = 0; round < 3; round++) {
      await p.kill();
      const i = input(512);
      expect(await submit(p, i)).toEqual(expected(i)); // here, meanwhile
      expect(p.alive).toBe(false);
      await expect.poll(() => p.alive).toBe(true);
      const batches = p.batches;
      const j = input(256);
      expect(await submit(p, j)).toEqual(expected(j));
      expect(p.batches).toBe(batches + 1); // on the new worker
    }
    expect(told).toEqual(["exit", "exit", "exit"]);
    expect(respawned).toEqual([50, 100, 200]);
    expect({ failovers: p.failovers, respawns: p.respawns }).toEqual({ failovers: 3, respawns: 3 });
    await p.kill();
    await p.close();
    await new Promise((r) => setTimeout(r, 500));
    expect(p.respawns).toBe(3);
    expect(p.alive).toBe(false);
  });

  it("a replacement that cannot be started (new Worker throws) is tried again after the next back-off; sealed here meanwhile", async () => {
    const { p, told, respawned } = await respawningPool();
    p.failSpawnsForTest(1);
    await p.kill();
    const i = input(256);
    expect(await submit(p, i)).toEqual(expected(i));
    await expect.poll(() => p.alive).toBe(true);
    expect(told).toEqual(["exit", "start"]);
    expect(respawned).toEqual([100]);
    expect({ failovers: p.failovers, respawns: p.respawns }).toEqual({ failovers: 2, respawns: 1 });
    const batches = p.batches;
    const j = input(256);
    expect(await submit(p, j)).toEqual(expected(j));
    expect(p.batches).toBe(batches + 1); // on the new worker
  });

  it("a crashed worker is told as such; closing is not a failover", async () => {
    const told: string[] = [];
    const p = new SealPool({ onFailover: (reason) => told.push(reason) });
    pools.push(p);
    await p.kill();
    await submit(p, input(256));
    expect(told).toEqual(["exit"]);
    const q = new SealPool({ onFailover: (reason) => told.push(reason) });
    await submit(q, input(256));
    await q.close();
    expect(told).toEqual(["exit"]);
    expect(q.failovers).toBe(0);
  });
});
