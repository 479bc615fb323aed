/**
 * `npm run bench:scale [-- --json] [--pairs 6] [--messages 500] [--size 1024] [--rounds 2] [--idle 3000]`
 *
 * Scale-out on Redis (docs/operations.md, "Scale-out on Redis"): relay store-and-forward
 * throughput with 1, 2 and 3 relay instances (relay-ws/main.ts processes with `--redis`) on one
 * Debian redis-server (AOF, appendfsync always: the durable setting), next to one relay on its
 * embedded LMDB store (fsync) — all in the same run, subjects alternating in slices (each round
 * runs every subject once, order rotated; the better round of each is kept).
 *
 * With k instances, sender i talks to instance i mod k and its receiver to instance (i + 1) mod k:
 * with 2 or 3 instances every message crosses instances (pushed to the receiver's instance through
 * Redis pub/sub) — the case scale-out has to carry. Clients speak the real protocol 1.1
 * (bench/relay-wire.ts hot frames, HMAC authenticators), on loopback only.
 *
 * Figures: msgs/s, p50/p99 latency, server CPU per message (all relay processes + redis-server);
 * `redis_1_vs_embedded` = 1 instance on Redis / embedded store; `scale_efficiency_k` =
 * (k-instance msgs/s) / (k × 1-instance msgs/s): 1.0 is linear scaling (on a machine with the
 * cores for it — on 2 cores the instances, Redis and the clients share them). Then idle WebSockets
 * held across the 3 instances from several loopback source addresses (127.0.0.2…), RSS per
 * connection over all instances (`idle_ws_rss_kib`).
 */

import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { deriveRcvKey, newAuthKeyPair, newDhKeyPair } from "../core/relay/crypto.ts";
import { xchachaOpen } from "../relay-ws/node-crypto.ts";
import { type LoftProcess, startLoft } from "../test/support/loft-process.ts";
import { type RedisServer, startRedis } from "../test/support/redis-server.ts";
import { processCpuSeconds, rssKib } from "./proc-stats.ts";
import { numberFlag, percentile } from "./relay-cli.ts";
import { BenchConn, expectOk } from "./relay-conn.ts";
import { selfCheck } from "./relay-wire.ts";

const argv = process.argv.slice(2);
const JSON_OUT = argv.includes("--json");
const PAIRS = numberFlag("pairs", 6);
const MESSAGES = numberFlag("messages", 500);
const SIZE = Math.max(16, numberFlag("size", 1024));
const ROUNDS = numberFlag("rounds", 2);
const IDLE = numberFlag("idle", 3000);
const OUTSTANDING = numberFlag("outstanding", 16);
const WINDOW = 32;
const TIMEOUT_MS = 180_000;

const now = () => performance.timeOrigin + performance.now();
const say = (s: string) => (JSON_OUT ? process.stderr.write(`${s}\n`) : console.log(s));

function deadline<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`${what} timed out`)), TIMEOUT_MS).unref(),
    ),
  ]);
}

interface Result {
  msgsPerSecond: number;
  p50: number;
  p99: number;
  /** CPU of every server process of the subject (relays + redis-server), µs per message. */
  serverCpuUs: number;
}

/** PAIRS senders → PAIRS receivers; sender i on urls[i mod k], its receiver on urls[(i+1) mod k]. */
async function run(urls: string[], pids: number[]): Promise<Result> {
  const latencies: number[] = [];
  const k = urls.length;
  const pairs = await Promise.all(
    Array.from({ length: PAIRS }, async (_, i) => {
      const rx = new BenchConn(urls[(i + 1) % k]!, "authenticator");
      const tx = new BenchConn(urls[i % k]!, "authenticator");
      await Promise.all([rx.ready, tx.ready]);
      const rk = newAuthKeyPair();
      const sk = newAuthKeyPair();
      const dh = newDhKeyPair();
      const rAuth = await rx.authorizer(rk);
      const sAuth = await tx.authorizer(sk);
      const ids = await expectOk(
        rx.request({ k: "NEW", i: 0, rk: rk.publicKey, dk: dh.publicKey, sub: false }, rAuth),
        "NEW",
      );
      if (ids.k !== "IDS") throw new Error("NEW");
      const rcv = deriveRcvKey(dh.secretKey, ids.d, ids.r);
      if (!rcv.ok) throw rcv.error;
      await expectOk(tx.request({ k: "SKEY", i: 0, q: ids.s, sk: sk.publicKey }, sAuth), "SKEY");
      return { rx, tx, rid: ids.r, sid: ids.s, rAuth, sAuth, rcvKey: rcv.value };
    }),
  );
  const cpu0 = pids.map(processCpuSeconds);
  const start = now();
  await deadline(
    Promise.all(
      pairs.map(async (p) => {
        let received = 0;
        const done = new Promise<void>((resolve) => {
          p.rx.onPush = (f) => {
            if (f.k !== "MSG") return;
            const plain = xchachaOpen(p.rcvKey, f.m, f.b);
            if (!plain) throw new Error("delivery does not open");
            const body = plain.subarray(10);
            latencies.push(now() - new DataView(body.buffer, body.byteOffset, body.byteLength).getFloat64(0));
            void p.rx.request({ k: "ACK", i: 0, q: p.rid, m: f.m }, p.rAuth);
            if (++received === MESSAGES) resolve();
          };
        });
        await expectOk(p.rx.request({ k: "SUB", i: 0, q: p.rid, w: WINDOW }, p.rAuth), "SUB");
        let sent = 0;
        let inFlight = 0;
        await new Promise<void>((resolve, reject) => {
          const pump = () => {
            while (inFlight < OUTSTANDING && sent < MESSAGES) {
              sent++;
              inFlight++;
              const b = new Uint8Array(randomBytes(SIZE));
              new DataView(b.buffer).setFloat64(0, now());
              p.tx
                .request({ k: "SEND", i: 0, q: p.sid, n: new Uint8Array(randomBytes(16)), b }, p.sAuth)
                .then((f) => {
                  if (f.k === "ERR") return reject(new Error(`SEND: ${f.e}`));
                  inFlight--;
                  if (sent === MESSAGES && inFlight === 0) resolve();
                  else pump();
                });
            }
          };
          pump();
        });
        await done;
      }),
    ),
    "run",
  );
  const seconds = (now() - start) / 1000;
  const cpu = pids.reduce((sum, pid, i) => sum + processCpuSeconds(pid) - cpu0[i]!, 0);
  for (const p of pairs) {
    p.rx.ws.close();
    p.tx.ws.close();
  }
  latencies.sort((a, b) => a - b);
  return {
    msgsPerSecond: (PAIRS * MESSAGES) / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    serverCpuUs: (cpu * 1e6) / (PAIRS * MESSAGES),
  };
}

/** IDLE WebSockets spread over the instances, from 127.0.0.2… (a few hundred per source address). */
async function idle(urls: string[], pids: number[]): Promise<{ held: number; rssKib: number }> {
  const before = pids.reduce((s, pid) => s + rssKib(pid), 0);
  const conns: BenchConn[] = [];
  try {
    for (let at = 0; at < IDLE; at += 200) {
      const batch = Array.from(
        { length: Math.min(200, IDLE - at) },
        (_, j) =>
          new BenchConn(
            urls[(at + j) % urls.length]!,
            "authenticator",
            `127.0.0.${2 + Math.floor((at + j) / 200)}`,
          ),
      );
      const settled = await Promise.allSettled(batch.map((c) => deadline(c.ready, "idle connection")));
      batch.forEach((c, i) => {
        if (settled[i]!.status === "fulfilled") conns.push(c);
        else c.ws.terminate();
      });
      if (settled.some((s) => s.status === "rejected")) break;
    }
    await new Promise((r) => setTimeout(r, 1000));
    const after = pids.reduce((s, pid) => s + rssKib(pid), 0);
    return { held: conns.length, rssKib: conns.length ? (after - before) / conns.length : Number.NaN };
  } finally {
    for (const c of conns) c.ws.terminate();
  }
}

async function main() {
  selfCheck();
  const keyDir = mkdtempSync(join(tmpdir(), "loft-bench-scale-key-"));
  const keyFile = join(keyDir, "master.key");
  writeFileSync(keyFile, randomBytes(32).toString("hex"), { mode: 0o600 });
  const dataDir = mkdtempSync(join(tmpdir(), "loft-bench-scale-lmdb-"));
  // Limits off: the bench measures the store and the fan-out, not the abuse budgets.
  const common = [
    "--relay-master-key-file",
    keyFile,
    "--relay-rate",
    "0",
    "--relay-conn-rate",
    "0",
    "--relay-source-rate",
    "0",
    "--relay-source-store-rate",
    "0",
    "--relay-queue-quota",
    "100000",
    "--relay-max-connections-per-source",
    "100000",
    "--relay-verify-threads",
    "0",
  ];
  let redis: RedisServer | undefined;
  const procs: LoftProcess[] = [];
  try {
    redis = await startRedis();
    const redisPid = Number(/process_id:(\d+)/.exec(await redisInfo(redis))?.[1]);
    const embedded = await startLoft({
      entry: "relay-ws/main.ts",
      args: ["--relay-data-dir", dataDir, ...common],
    });
    procs.push(embedded);
    const instances = await Promise.all(
      [0, 1, 2].map(() => startLoft({ entry: "relay-ws/main.ts", args: ["--redis", redis!.url, ...common] })),
    );
    procs.push(...instances);
    const url = (p: LoftProcess) => `ws://127.0.0.1:${p.port}/relay`;
    const pid = (p: LoftProcess) => p.child.pid!;
    const subjects = [
      { name: "embedded", run: () => run([url(embedded)], [pid(embedded)]) },
      ...[1, 2, 3].map((k) => ({
        name: `redis-${k}`,
        run: () => run(instances.slice(0, k).map(url), [...instances.slice(0, k).map(pid), redisPid]),
      })),
    ];
    say(
      `scale bench: ${PAIRS} senders → ${PAIRS} receivers, ${MESSAGES} messages each, ${SIZE} B, ${OUTSTANDING} in flight per sender, ${ROUNDS} rounds; Redis AOF appendfsync always`,
    );
    const runs = new Map<string, Result[]>(subjects.map((s) => [s.name, []]));
    for (let round = 0; round < ROUNDS; round++)
      for (let j = 0; j < subjects.length; j++) {
        const s = subjects[(round + j) % subjects.length]!;
        const r = await s.run();
        runs.get(s.name)!.push(r);
        say(
          `  round ${round + 1} ${s.name.padEnd(9)} ${r.msgsPerSecond.toFixed(0).padStart(6)} msgs/s  p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  servers ${r.serverCpuUs.toFixed(0)} µs/msg`,
        );
      }
    const best = (name: string) =>
      runs.get(name)!.reduce((a, b) => (b.msgsPerSecond > a.msgsPerSecond ? b : a));
    const e = best("embedded");
    const [r1, r2, r3] = [best("redis-1"), best("redis-2"), best("redis-3")];
    const held = IDLE > 0 ? await idle(instances.map(url), instances.map(pid)) : undefined;
    say("");
    say(
      `${"".padEnd(30)} ${"msgs/s".padStart(8)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"servers µs/m".padStart(12)}`,
    );
    for (const [label, x] of [
      ["embedded LMDB, 1 process", e],
      ["Redis, 1 instance", r1],
      ["Redis, 2 instances", r2],
      ["Redis, 3 instances", r3],
    ] as const)
      say(
        `${label.padEnd(30)} ${x.msgsPerSecond.toFixed(0).padStart(8)} ${x.p50.toFixed(2).padStart(8)} ${x.p99.toFixed(2).padStart(8)} ${x.serverCpuUs.toFixed(0).padStart(12)}`,
      );
    say(`redis-1 / embedded: ${(r1.msgsPerSecond / e.msgsPerSecond).toFixed(2)}×`);
    say(
      `scale_efficiency_2 = redis-2 / (2 × redis-1): ${(r2.msgsPerSecond / (2 * r1.msgsPerSecond)).toFixed(2)}`,
    );
    say(
      `scale_efficiency_3 = redis-3 / (3 × redis-1): ${(r3.msgsPerSecond / (3 * r1.msgsPerSecond)).toFixed(2)}`,
    );
    if (held)
      say(
        `idle WebSockets across 3 instances: ${held.held} of ${IDLE}, ${held.rssKib.toFixed(1)} KiB RSS each`,
      );
    say(
      `machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}`,
    );
    if (JSON_OUT)
      console.log(
        JSON.stringify({
          embedded_msgs_per_s: e.msgsPerSecond,
          redis_1_msgs_per_s: r1.msgsPerSecond,
          redis_2_msgs_per_s: r2.msgsPerSecond,
          redis_3_msgs_per_s: r3.msgsPerSecond,
          redis_1_vs_embedded: r1.msgsPerSecond / e.msgsPerSecond,
          scale_efficiency_2: r2.msgsPerSecond / (2 * r1.msgsPerSecond),
          scale_efficiency_3: r3.msgsPerSecond / (3 * r1.msgsPerSecond),
          embedded_p99_ms: e.p99,
          redis_1_p99_ms: r1.p99,
          redis_3_p99_ms: r3.p99,
          embedded_cpu_us_per_msg: e.serverCpuUs,
          redis_1_cpu_us_per_msg: r1.serverCpuUs,
          redis_3_cpu_us_per_msg: r3.serverCpuUs,
          idle_ws_held: held?.held ?? null,
          idle_ws_rss_kib: held?.rssKib ?? null,
          rounds: Object.fromEntries(
            [...runs].map(([k, v]) => [k, v.map((x) => Math.round(x.msgsPerSecond))]),
          ),
          pairs: PAIRS,
          messages: MESSAGES,
          size: SIZE,
          cores: cpus().length,
        }),
      );
  } finally {
    await Promise.all(procs.map((p) => p.stop("SIGTERM")));
    await redis?.stop();
    rmSync(keyDir, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** INFO server over a raw RESP connection (the bench needs Redis's pid for its CPU time). */
async function redisInfo(r: RedisServer): Promise<string> {
  const { Redis } = await import("ioredis");
  const c = new Redis(r.url);
  try {
    return await c.info("server");
  } finally {
    c.disconnect();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
