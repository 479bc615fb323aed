/**
 * `npm run bench:scale [-- --json] [--pairs 6] [--messages 500] [--size 1024] [--rounds 2] [--idle 3000] [--idle-only]
 *   [--settle 5] [--ws-impl lean|ws] [--floors-only] [--node operator|defaults|operator,defaults] [--idle-rounds N]`
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
 * held across the 3 instances from several loopback source addresses (127.0.0.2…, 200 each), by
 * child processes (bench/idle-holder.ts, 12 000 each, so that no process needs a higher
 * `ulimit -n`): RSS growth per connection over all instances (`idle_ws_rss_kib`), against Node
 * alone holding as many per process in the same run (bench/idle-floor.ts: bare `net` sockets,
 * `http` + `ws` WebSockets, `http` + our layer host/websocket.ts; `idle_ws_vs_ws_floor`,
 * `idle_ws_vs_lean_floor`), and one signaling process holding as many (`idle_signaling_rss_kib`).
 * `--idle-only` skips the throughput rounds; `--floors-only` measures only the three baselines,
 * `--idle` connections each; `--ws-impl` picks the relays' and signaling's WebSocket layer
 * (default lean); `--settle` the seconds waited before each RSS reading. `--node` names the Node
 * options the servers run with: `operator` (default) those of the operator paths
 * (host/node-options.ts: `npm start`, the deploy units), `defaults` none; several, comma-separated,
 * measure the idle connections per set on fresh instances, alternating in `--idle-rounds` rounds
 * (default 2 then: A B, B A; each set's figure the mean of its rounds), in the same run (the
 * throughput rounds, signaling and the baselines use the first).
 */

import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { deriveRcvKey, newAuthKeyPair, newDhKeyPair } from "../core/relay/crypto.ts";
import { SERVER_NODE_OPTIONS } from "../host/node-options.ts";
import { xchachaOpen } from "../relay-ws/node-crypto.ts";
import { type LoftProcess, startLoft } from "../test/support/loft-process.ts";
import { metricValue } from "../test/support/metrics.ts";
import { type RedisServer, startRedis } from "../test/support/redis-server.ts";
import { liftedSignalingArgs, spawnIdleHolder } from "./idle-holders.ts";
import { processCpuSeconds, rssKib } from "./proc-stats.ts";
import { numberFlag, percentile, rotatingRounds, stringFlag } from "./relay-cli.ts";
import { BenchConn, expectOk } from "./relay-conn.ts";
import { selfCheck } from "./relay-wire.ts";

const argv = process.argv.slice(2);
const JSON_OUT = argv.includes("--json");
const PAIRS = numberFlag("pairs", 6);
const MESSAGES = numberFlag("messages", 500);
const SIZE = Math.max(16, numberFlag("size", 1024));
const ROUNDS = numberFlag("rounds", 2);
const IDLE = numberFlag("idle", 3000);
/** Only the idle connections (no throughput rounds): `--idle-only`. */
const IDLE_ONLY = argv.includes("--idle-only");
/** Only the baselines of bench/idle-floor.ts, `--idle` connections each: `--floors-only`. */
const FLOORS_ONLY = argv.includes("--floors-only");
/** The relays' and signaling's WebSocket layer (host/websocket-server.ts): `--ws-impl lean|ws`. */
const WS_IMPL = stringFlag("ws-impl") ?? "lean";
/**
 * Seconds between the last connection held and the RSS reading, and between the processes' start
 * and the first reading: `--settle` (the collector shrinks the heap some seconds after a burst).
 */
const SETTLE_S = numberFlag("settle", 5);
/** Node option sets of the servers (`--node`): the operator paths' (host/node-options.ts) or none. */
const NODE_VARIANTS = (stringFlag("node") ?? "operator").split(",").map((v) => {
  if (v !== "operator" && v !== "defaults") throw new Error(`--node: operator or defaults, not ${v}`);
  return v;
});
const nodeArgsOf = (v: string): string[] => (v === "operator" ? [...SERVER_NODE_OPTIONS] : []);
/**
 * Rounds of the idle measurement (`--idle-rounds`): each set measured once per round, the order
 * rotated from round to round (A B, B A). Two by default when several sets are compared, one
 * otherwise.
 */
const IDLE_ROUNDS = numberFlag("idle-rounds", NODE_VARIANTS.length > 1 ? 2 : 1);
/** The sets' order in round `r`: rotated by one each round (two sets: A B, then B A). */
const variantOrder = (r: number): string[] =>
  NODE_VARIANTS.map((_, j) => NODE_VARIANTS[(r + j) % NODE_VARIANTS.length]!);
/** The first set: throughput rounds, signaling and the baselines run with it. */
const NODE_ARGS = nodeArgsOf(NODE_VARIANTS[0]!);
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

/** Relay instances on Redis (throughput: 1, 2 and 3 of them; the idle connections: over all). */
const INSTANCES = 3;

/** Connections per holder process: under the usual `ulimit -n` (20 000 here) with room to spare. */
const PER_HOLDER = 12_000;
/** Connections per loopback source address (127.0.0.2, 127.0.0.3, …; bench/idle-holder.ts). */
const PER_SOURCE = 200;

interface IdleFigures {
  held: number;
  /** RSS growth of all instances, per held connection. */
  rssKib: number;
  /** Of which, per connection: V8 heap in use, and memory outside the heap (ArrayBuffers, …). */
  heapKib: number;
  externalKib: number;
}

/** The mean of several rounds' figures (connections held: the mean too). */
function meanFigures(rounds: IdleFigures[]): IdleFigures {
  const mean = (f: (x: IdleFigures) => number) => rounds.reduce((s, x) => s + f(x), 0) / rounds.length;
  return {
    held: Math.round(mean((x) => x.held)),
    rssKib: mean((x) => x.rssKib),
    heapKib: mean((x) => x.heapKib),
    externalKib: mean((x) => x.externalKib),
  };
}

/**
 * The baselines: Node alone holding as many connections as one instance did (bench/idle-floor.ts:
 * bare `net` sockets; `http` + `ws` WebSockets), measured the same way, in the same run.
 */
async function idleFloor(variant: "net" | "ws" | "lean", count: number): Promise<IdleFigures> {
  const child = spawn(
    process.execPath,
    [...NODE_ARGS, "--import", "tsx", fileURLToPath(new URL("./idle-floor.ts", import.meta.url)), variant],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  try {
    const port = await deadline(
      new Promise<number>((resolve, reject) => {
        child.stdout!.once("data", (d: Buffer) =>
          resolve((JSON.parse(d.toString()) as { port: number }).port),
        );
        child.once("exit", (code) => reject(new Error(`idle floor exited (${code})`)));
      }),
      "idle floor",
    );
    return await idle([`ws://127.0.0.1:${port}/relay`], [child.pid!], [], count);
  } finally {
    child.stdin!.end();
    child.kill();
  }
}

/** `count` idle connections to one signaling/main.ts process, its limits lifted for one machine. */
async function idleSignaling(count: number): Promise<IdleFigures> {
  const p = await startLoft({
    entry: "signaling/main.ts",
    args: [...liftedSignalingArgs(count), "--ws-impl", WS_IMPL],
    nodeArgs: NODE_ARGS,
  });
  try {
    return await idle(
      [`ws://127.0.0.1:${p.port}/signal`],
      [p.child.pid!],
      [p.metricsUrl!],
      count,
      "signaling",
    );
  } finally {
    await p.stop("SIGTERM");
  }
}

/** The instances' V8 heap in use and external memory, from their metrics listeners (bytes). */
async function heapFigures(metricsUrls: string[]): Promise<{ heap: number; external: number }> {
  let heap = 0;
  let external = 0;
  for (const u of metricsUrls) {
    const text = await (await fetch(`${u}/metrics`)).text();
    heap += metricValue(text, "loft_nodejs_heap_size_used_bytes");
    external += metricValue(text, "loft_nodejs_external_memory_bytes");
  }
  return { heap, external };
}

/**
 * IDLE WebSockets spread over the instances, opened and held by child processes
 * (bench/idle-holder.ts; PER_HOLDER each, so no process needs more file descriptors than
 * `ulimit -n` gives), PER_SOURCE per loopback source address.
 */
async function idle(
  urls: string[],
  pids: number[],
  metricsUrls: string[],
  total = IDLE,
  service: "relay" | "signaling" = "relay",
): Promise<IdleFigures> {
  const targets = urls.map((u) => {
    const url = new URL(u);
    return { host: url.hostname, port: Number(url.port), path: url.pathname };
  });
  // The same settle before the first reading as after the last: what the processes' start left
  // (module loading, the collector's later shrinking) counts in neither reading.
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  const before = pids.reduce((s, pid) => s + rssKib(pid), 0);
  const heapBefore = await heapFigures(metricsUrls);
  const holders: ChildProcess[] = [];
  try {
    const counts: number[] = [];
    for (let at = 0; at < total; at += PER_HOLDER) counts.push(Math.min(PER_HOLDER, total - at));
    const results = await deadline(
      Promise.all(
        counts.map((count, h) => {
          const { child, done } = spawnIdleHolder({
            targets,
            count,
            firstSource: (h * PER_HOLDER) / PER_SOURCE,
            perSource: PER_SOURCE,
            concurrency: 64,
            service,
          });
          holders.push(child);
          return done;
        }),
      ),
      "idle connections",
    );
    const held = results.reduce((s, r) => s + r.held, 0);
    // Let the instances finish what the openings left (timers, buffers, the garbage collector's
    // idle-time work) before reading.
    await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
    const after = pids.reduce((s, pid) => s + rssKib(pid), 0);
    const heapAfter = await heapFigures(metricsUrls);
    const per = (bytesOrKib: number, unit: number) => (held ? bytesOrKib / unit / held : Number.NaN);
    return {
      held,
      rssKib: per(after - before, 1),
      heapKib: per(heapAfter.heap - heapBefore.heap, 1024),
      externalKib: per(heapAfter.external - heapBefore.external, 1024),
    };
  } finally {
    for (const h of holders) h.stdin?.end();
    await Promise.all(
      holders.map(
        (h) =>
          new Promise<void>((resolve) => {
            if (h.exitCode !== null || h.signalCode !== null) return resolve();
            const t = setTimeout(() => h.kill("SIGKILL"), 10_000);
            h.once("exit", () => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
  }
}

type Subject = { name: string; run: () => Promise<Result> };
type Throughput = { runs: Map<string, Result[]>; e: Result; r1: Result; r2: Result; r3: Result };

/** Each round runs every subject once, the order rotated; the better round of each is kept. */
async function runSubjects(subjects: Subject[]): Promise<Throughput> {
  say(
    `scale bench: ${PAIRS} senders → ${PAIRS} receivers, ${MESSAGES} messages each, ${SIZE} B, ${OUTSTANDING} in flight per sender, ${ROUNDS} rounds; Redis AOF appendfsync always`,
  );
  const runs = await rotatingRounds(
    subjects,
    ROUNDS,
    (s) => s.run(),
    (s, round, r) =>
      say(
        `  round ${round + 1} ${s.name.padEnd(9)} ${r.msgsPerSecond.toFixed(0).padStart(6)} msgs/s  p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  servers ${r.serverCpuUs.toFixed(0)} µs/msg`,
      ),
  );
  const best = (name: string) =>
    runs.get(name)!.reduce((a, b) => (b.msgsPerSecond > a.msgsPerSecond ? b : a));
  return { runs, e: best("embedded"), r1: best("redis-1"), r2: best("redis-2"), r3: best("redis-3") };
}

function reportThroughput({ e, r1, r2, r3 }: Throughput): void {
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
}

function throughputJson({ runs, e, r1, r2, r3 }: Throughput) {
  return {
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
    rounds: Object.fromEntries([...runs].map(([k, v]) => [k, v.map((x) => Math.round(x.msgsPerSecond))])),
  };
}

async function main() {
  if (FLOORS_ONLY) {
    const f: Record<string, IdleFigures> = {};
    for (const v of ["net", "ws", "lean"] as const) {
      f[v] = await idleFloor(v, IDLE);
      say(`${v}: ${f[v].held} held, ${f[v].rssKib.toFixed(2)} KiB RSS each`);
    }
    if (JSON_OUT)
      console.log(
        JSON.stringify(
          Object.fromEntries(Object.entries(f).map(([k, v]) => [`idle_floor_${k}_kib`, v.rssKib])),
        ),
      );
    return;
  }
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
    "--ws-impl",
    WS_IMPL,
  ];
  let redis: RedisServer | undefined;
  const procs: LoftProcess[] = [];
  try {
    redis = await startRedis();
    const redisPid = Number(/process_id:(\d+)/.exec(await redisInfo(redis))?.[1]);
    const startInstances = (nodeArgs: string[]) =>
      Promise.all(
        Array.from({ length: INSTANCES }, () =>
          startLoft({ entry: "relay-ws/main.ts", args: ["--redis", redis!.url, ...common], nodeArgs }),
        ),
      );
    const url = (p: LoftProcess) => `ws://127.0.0.1:${p.port}/relay`;
    const pid = (p: LoftProcess) => p.child.pid!;
    const metricsOf = (p: LoftProcess) => p.metricsUrl!;
    // The throughput subjects' processes (not started with --idle-only: the idle sets start their own).
    const throughput = IDLE_ONLY
      ? undefined
      : await (async () => {
          const embedded = await startLoft({
            entry: "relay-ws/main.ts",
            args: ["--relay-data-dir", dataDir, ...common],
            nodeArgs: NODE_ARGS,
          });
          procs.push(embedded);
          const instances = await startInstances(NODE_ARGS);
          procs.push(...instances);
          return runSubjects([
            { name: "embedded", run: () => run([url(embedded)], [pid(embedded)]) },
            ...[1, 2, 3].map((k) => ({
              name: `redis-${k}`,
              run: () => run(instances.slice(0, k).map(url), [...instances.slice(0, k).map(pid), redisPid]),
            })),
          ]);
        })();
    // Idle connections per Node option set, each measurement on instances of its own started for
    // it (a set's figure is not the previous one's leftovers), the sets alternating in rounds as
    // every bench's subjects do (A B, then B A: the machine's load as it drifts through the run
    // falls on both); a set's figures are the mean of its rounds.
    const idleRounds = new Map<string, IdleFigures[]>(NODE_VARIANTS.map((v) => [v, []]));
    for (let round = 0; IDLE > 0 && round < IDLE_ROUNDS; round++)
      for (const v of variantOrder(round)) {
        const set = await startInstances(nodeArgsOf(v));
        try {
          const f = await idle(set.map(url), set.map(pid), set.map(metricsOf));
          idleRounds.get(v)!.push(f);
          say(
            `  idle, round ${round + 1}, node ${v} (${nodeArgsOf(v).join(" ") || "no options"}): ${f.rssKib.toFixed(2)} KiB RSS each (V8 heap ${f.heapKib.toFixed(2)} KiB)`,
          );
        } finally {
          await Promise.all(set.map((p) => p.stop("SIGTERM")));
        }
      }
    const byVariant: Record<string, IdleFigures> = {};
    for (const [v, rounds] of idleRounds) if (rounds.length > 0) byVariant[v] = meanFigures(rounds);
    const idleFigures = byVariant[NODE_VARIANTS[0]!];
    const perInstance = Math.round(IDLE / INSTANCES);
    // Signaling's idle connections too (a browser holds one beside its relay connections): one
    // signaling/main.ts process holding as many as one relay instance did.
    const signalingIdle = IDLE > 0 ? await idleSignaling(perInstance) : undefined;
    const floors =
      IDLE > 0
        ? {
            net: await idleFloor("net", perInstance),
            ws: await idleFloor("ws", perInstance),
            lean: await idleFloor("lean", perInstance),
          }
        : undefined;
    say("");
    if (throughput) reportThroughput(throughput);
    if (idleFigures)
      say(
        `idle WebSockets across 3 instances: ${idleFigures.held} of ${IDLE}, ${idleFigures.rssKib.toFixed(2)} KiB RSS each ` +
          `(V8 heap ${idleFigures.heapKib.toFixed(2)} KiB, external ${idleFigures.externalKib.toFixed(2)} KiB, ` +
          `the rest native: sockets, libuv, malloc)`,
      );
    if (signalingIdle)
      say(
        `idle signaling WebSockets, one process: ${signalingIdle.held} of ${perInstance}, ${signalingIdle.rssKib.toFixed(2)} KiB RSS each (V8 heap ${signalingIdle.heapKib.toFixed(2)} KiB)`,
      );
    if (idleFigures && floors)
      say(
        `  baselines, Node alone holding ${perInstance} in one process: bare net sockets ${floors.net.rssKib.toFixed(2)} KiB, ` +
          `http + ws WebSockets ${floors.ws.rssKib.toFixed(2)} KiB, http + host/websocket.ts ${floors.lean.rssKib.toFixed(2)} KiB; ` +
          `Loft (--ws-impl ${WS_IMPL}) / ws floor ${(idleFigures.rssKib / floors.ws.rssKib).toFixed(2)}`,
      );
    say(
      `machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}`,
    );
    if (JSON_OUT)
      console.log(
        JSON.stringify({
          ...(throughput ? throughputJson(throughput) : {}),
          idle_ws_held: idleFigures?.held ?? null,
          idle_ws_rss_kib: idleFigures?.rssKib ?? null,
          idle_ws_heap_kib: idleFigures?.heapKib ?? null,
          idle_ws_external_kib: idleFigures?.externalKib ?? null,
          idle_signaling_rss_kib: signalingIdle?.rssKib ?? null,
          idle_floor_net_kib: floors?.net.rssKib ?? null,
          idle_floor_ws_kib: floors?.ws.rssKib ?? null,
          idle_floor_lean_kib: floors?.lean.rssKib ?? null,
          idle_ws_vs_ws_floor: idleFigures && floors ? idleFigures.rssKib / floors.ws.rssKib : null,
          idle_ws_vs_lean_floor: idleFigures && floors ? idleFigures.rssKib / floors.lean.rssKib : null,
          ws_impl: WS_IMPL,
          node: NODE_VARIANTS[0],
          node_options: NODE_ARGS.join(" "),
          ...Object.fromEntries(
            Object.entries(byVariant).flatMap(([v, f]) => [
              [`idle_ws_rss_kib_node_${v}`, f.rssKib],
              [`idle_ws_heap_kib_node_${v}`, f.heapKib],
              [`idle_ws_rss_kib_node_${v}_rounds`, idleRounds.get(v)!.map((r) => r.rssKib)],
            ]),
          ),
          idle_rounds: IDLE_ROUNDS,
          idle_order: Object.fromEntries(
            Array.from({ length: IDLE_ROUNDS }, (_, r) => [`round_${r + 1}`, variantOrder(r)]),
          ),
          settle_s: SETTLE_S,
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
