/**
 * `npm run bench:relay [-- --json] [--n 4] [--messages 1000] [--size 1024] [--idle 5000]`
 *
 * Store-and-forward throughput and latency of the relay (relay-ws/main.ts as its own process,
 * LMDB store, durable commits) for N senders and N receivers on loopback, next to Mosquitto
 * (Debian's broker, started here on a free loopback port with a temp config: persistence on,
 * QoS 1, persistent sessions) with the same payload sizes in the same run, as a ratio. Then how
 * many idle relay WebSockets one relay process holds and its RSS per connection (Mosquitto's per
 * idle MQTT connection as the baseline).
 *
 * The relay clients here speak the real protocol (core/relay encoders) but authorize and decrypt
 * with node:crypto, so the numbers measure the relay, not noble in the bench process. The "relay"
 * subject's clients speak protocol 1.1 (an HMAC authenticator per command, every delivery one 16 KiB
 * block); the "bucketed" subject runs the same relay process with 1.2 clients (deliveries padded
 * to the body's size bucket, docs/protocol/relay.md §Padding) and the "signed" subject with 1.0
 * clients (an Ed25519 signature per command), for the before/after in one run; `--processes K`
 * adds K relay processes as the subject "multi" (PROCESSES below; bench/README-relay.md). Every
 * round prints the servers' read and write system calls per message too. Every loop is bounded;
 * everything targets 127.0.0.1 only.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { PerformanceObserver, performance } from "node:perf_hooks";
import {
  deriveRcvKey,
  newAuthKeyPair,
  newDhKeyPair,
  openFromRelay,
  sealForRecipient,
} from "../core/relay/crypto.ts";
import { deliveryBucket, MAX_BATCH, padBlock, type RelayAuthMode } from "../core/relay/protocol.ts";
import { xchachaOpen } from "../relay-ws/node-crypto.ts";
import { type LoftProcess, startLoft } from "../test/support/loft-process.ts";
import { processCpuSeconds, processSyscalls, rssKib, threadCpuSeconds } from "./proc-stats.ts";
import { numberFlag, percentile, rotatingRounds, stringFlag } from "./relay-cli.ts";
import { BenchConn, type ClientMode, expectOk } from "./relay-conn.ts";
import { commitBucketsOf, commitLine, type Pause, parsePauses, tailLines } from "./relay-tail.ts";
import { selfCheck } from "./relay-wire.ts";

// ------------------------------------------------------------------------------------------------
// options

const argv = process.argv.slice(2);
const JSON_OUT = argv.includes("--json");
/**
 * `--tail`: after each relay round, where its slowest 1 % of messages waited — the relay's GC
 * pauses (bench/support/gc-log.cjs in the relay process), this process's (the clients'), and the
 * rest — against the middle 10 % (p45–p55) of the same round.
 */
const TAIL = argv.includes("--tail");
const N = numberFlag("n", 4);
const MESSAGES = numberFlag("messages", 1000);
const SIZE = Math.max(16, numberFlag("size", 1024));
const IDLE = numberFlag("idle", 5000);
/** Write a V8 CPU profile of the (fsync) relay process into this directory (`node --cpu-prof`). */
const PROFILE_DIR = stringFlag("profile");
/** Which subjects besides the relay: `relay,bucketed,batched,signed,nosync,mosquitto` (default all). */
const SUBJECTS = (stringFlag("subjects") ?? "relay,bucketed,batched,signed,nosync,mosquitto").split(",");
const ROUNDS = numberFlag("rounds", 2);
/**
 * Another checkout of Loft (a directory with relay-ws/main.ts and node_modules) whose relay runs
 * as the subject "baseline", same flags, alternating with the others: before/after in one run.
 */
const BASELINE_DIR = stringFlag("baseline");
/** More flags for the relay processes, e.g. `--relay-args "--relay-verify-threads 2"`. */
const EXTRA_RELAY_ARGS = (stringFlag("relay-args") ?? "").split(" ").filter((a) => a !== "");
/**
 * Flags for the "baseline" relay only, in place of `--relay-args`: with `--baseline .` the same
 * checkout with one flag changed is the before/after, e.g. `--relay-args "--relay-seal-threads 0"
 * --baseline . --baseline-args "--relay-seal-threads 1"` (both in one run, alternating).
 */
const BASELINE_ARGS = stringFlag("baseline-args");
/**
 * Node options of the relay processes (`--node-args "--max-semi-space-size=2"`, what operators
 * run: host/node-options.ts); `--baseline-node-args` gives the baseline relay its own in their
 * place, so `--baseline .` compares one checkout under two Node options in one run.
 */
const NODE_ARGS = (stringFlag("node-args") ?? "").split(" ").filter((a) => a !== "");
const BASELINE_NODE_ARGS = stringFlag("baseline-node-args");
const OUTSTANDING = numberFlag("outstanding", 32);
/**
 * `--processes K` (K ≥ 2) adds the subject "multi": K relay processes, each on its own data dir
 * (one relay process per data dir: relay-ws/store/dir-lock.ts), each pair's sender and receiver
 * on the same process (pair i on process i mod K), so no delivery crosses processes — the most
 * several processes can give on this machine.
 */
const PROCESSES = numberFlag("processes", 0);
/** Which opening the idle connections make: `authenticator` (1.1, default) or `signature` (1.0). */
const IDLE_AUTH: RelayAuthMode = stringFlag("idle-auth") === "signature" ? "signature" : "authenticator";
/** How a bench client opens: 1.0 signatures, 1.1 authenticators, or 1.2 (authenticators, bucketed deliveries). */
/**
 * `--delivery bucket`: the "relay" subject's clients speak 1.2 too, and so do the "baseline"
 * subject's (a before/after of the 1.2 path: `--delivery bucket --baseline DIR`; a profile of it
 * alone: `--subjects relay --delivery bucket --profile DIR`); default 1.1, 16 KiB blocks.
 */
const RELAY_CLIENTS: ClientMode =
  stringFlag("delivery") === "bucket"
    ? "bucket"
    : stringFlag("delivery") === "batch"
      ? "batch"
      : "authenticator";
const WINDOW = 64;
const TIMEOUT_MS = 120_000;

const now = () => performance.timeOrigin + performance.now();
const say = (s: string) => {
  if (!JSON_OUT) console.log(s);
  else process.stderr.write(`${s}\n`);
};

function payload(): Uint8Array {
  const b = new Uint8Array(randomBytes(SIZE));
  new DataView(b.buffer).setFloat64(0, now());
  return b;
}
const sentAt = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(0);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

function deadline<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`${what} timed out`)), TIMEOUT_MS).unref(),
    ),
  ]);
}

interface RunResult {
  msgsPerSecond: number;
  p50: number;
  p99: number;
  /** CPU the server process spent per message (user + system), µs. */
  serverCpuUs: number;
  /** The server's main thread (the relay's event loop) alone, µs per message. */
  loopCpuUs: number;
  /** Read and write system calls of the server process(es) per message (/proc/<pid>/io). */
  syscalls: number;
  /** CPU this bench process (the clients) spent per message, µs. */
  clientCpuUs: number;
  /** `--tail`: where the slowest messages waited (one line per set). */
  tail?: string[];
}

/** What a run measures itself (rate, latency); `withCpu` adds the CPU and system calls around it. */
type Timing = Omit<RunResult, "serverCpuUs" | "clientCpuUs" | "loopCpuUs" | "syscalls">;

/** Time a run's CPU use on the server (by pid) and in this process. */
async function withCpu(
  pid: number | number[],
  messages: number,
  run: () => Promise<Timing>,
): Promise<RunResult> {
  // Several server processes (the "multi" subject): their CPU summed, and their loops'.
  const pids = Array.isArray(pid) ? pid : [pid];
  const sum = (f: (p: number) => number) => pids.reduce((a, p) => a + f(p), 0);
  const server0 = sum(processCpuSeconds);
  const loop0 = sum((p) => threadCpuSeconds(p));
  const sys0 = sum(processSyscalls);
  const client0 = process.cpuUsage();
  const r = await run();
  const client = process.cpuUsage(client0);
  const server = sum(processCpuSeconds) - server0;
  const loop = sum((p) => threadCpuSeconds(p)) - loop0;
  const sys = sum(processSyscalls) - sys0;
  return {
    ...r,
    serverCpuUs: (server * 1e6) / messages,
    loopCpuUs: (loop * 1e6) / messages,
    syscalls: sys / messages,
    clientCpuUs: (client.user + client.system) / messages,
  };
}

// ------------------------------------------------------------------------------------------------
// relay side

async function runRelay(
  url: string | string[],
  pairsCount = N,
  outstanding = OUTSTANDING,
  auth: ClientMode = "authenticator",
  tailFrom?: { gcLog: string; metricsUrl: string | undefined },
): Promise<Timing> {
  const latencies: number[] = [];
  // `--tail`: when each message arrived (latencies[i] ended at arrivals[i]).
  const arrivals: number[] = [];
  const clientGc = tailFrom ? watchOwnGc() : undefined;
  const commits0 = tailFrom?.metricsUrl ? await commitBuckets(tailFrom.metricsUrl) : undefined;
  const pairs = await Promise.all(
    Array.from({ length: pairsCount }, async (_, i) => {
      const at = Array.isArray(url) ? url[i % url.length]! : url;
      const rx = new BenchConn(at, auth);
      const tx = new BenchConn(at, auth);
      await Promise.all([rx.ready, tx.ready]);
      const rk = newAuthKeyPair();
      const sk = newAuthKeyPair();
      const dh = newDhKeyPair();
      const rSign = await rx.authorizer(rk);
      const sSign = await tx.authorizer(sk);
      const ids = await expectOk(
        rx.request({ k: "NEW", i: 0, rk: rk.publicKey, dk: dh.publicKey, sub: false }, rSign),
        "NEW",
      );
      if (ids.k !== "IDS") throw new Error("NEW");
      const rcv = deriveRcvKey(dh.secretKey, ids.d, ids.r);
      if (!rcv.ok) throw rcv.error;
      await expectOk(tx.request({ k: "SKEY", i: 0, q: ids.s, sk: sk.publicKey }, sSign), "SKEY");
      return { rx, tx, rid: ids.r, sid: ids.s, rSign, sSign, rcvKey: rcv.value };
    }),
  );
  const start = now();
  await deadline(
    Promise.all(
      pairs.map(async (p) => {
        let received = 0;
        const done = new Promise<void>((resolve) => {
          p.rx.onPush = (f) => {
            if (f.k === "MSGS") {
              // 1.3: a burst in one frame, acknowledged in one ACKS.
              for (const [m, b] of f.ms) {
                const plain = xchachaOpen(p.rcvKey, m, b);
                if (!plain) throw new Error("delivery does not open");
                const t = now();
                latencies.push(t - sentAt(plain.subarray(10)));
                if (TAIL) arrivals.push(t);
              }
              void p.rx.request({ k: "ACKS", i: 0, q: p.rid, ms: f.ms.map(([m]) => m) }, p.rSign);
              received += f.ms.length;
              if (received === MESSAGES) resolve();
              return;
            }
            if (f.k !== "MSG") return;
            const plain = xchachaOpen(p.rcvKey, f.m, f.b);
            if (!plain) throw new Error("delivery does not open");
            // u64 timestamp ‖ u16 length ‖ body
            const t = now();
            latencies.push(t - sentAt(plain.subarray(10)));
            if (TAIL) arrivals.push(t);
            void p.rx.request({ k: "ACK", i: 0, q: p.rid, m: f.m }, p.rSign);
            if (++received === MESSAGES) resolve();
          };
        });
        await expectOk(p.rx.request({ k: "SUB", i: 0, q: p.rid, w: WINDOW }, p.rSign), "SUB");
        let sent = 0;
        let inFlight = 0;
        await new Promise<void>((resolve, reject) => {
          const pump = () => {
            if (auth === "batch") {
              // 1.3: what the window has room for now leaves in SENDS frames of up to MAX_BATCH
              // (a client corking the SENDs of one tick, core/relay/client.ts).
              while (inFlight < outstanding && sent < MESSAGES) {
                const k = Math.min(MAX_BATCH, outstanding - inFlight, MESSAGES - sent);
                sent += k;
                inFlight += k;
                const ms = Array.from(
                  { length: k },
                  () => [new Uint8Array(randomBytes(16)), payload()] as [Uint8Array, Uint8Array],
                );
                p.tx.request({ k: "SENDS", i: 0, q: p.sid, ms }, p.sSign).then((f) => {
                  if (f.k === "ERR") return reject(new Error(`SENDS: ${f.e}`));
                  if (f.k !== "RES" || f.r.some((r) => r !== "OK"))
                    return reject(new Error(`SENDS: ${JSON.stringify(f)}`));
                  inFlight -= k;
                  if (sent === MESSAGES && inFlight === 0) resolve();
                  else pump();
                });
              }
              return;
            }
            while (inFlight < outstanding && sent < MESSAGES) {
              sent++;
              inFlight++;
              p.tx
                .request(
                  { k: "SEND", i: 0, q: p.sid, n: new Uint8Array(randomBytes(16)), b: payload() },
                  p.sSign,
                )
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
    "relay run",
  );
  const seconds = (now() - start) / 1000;
  for (const p of pairs) {
    p.rx.ws.close();
    p.tx.ws.close();
  }
  const tail =
    clientGc && tailFrom ? await tailReport(latencies, arrivals, tailFrom.gcLog, clientGc.stop()) : undefined;
  if (tail && commits0 && tailFrom?.metricsUrl)
    tail.push(commitLine(commits0, await commitBuckets(tailFrom.metricsUrl)));
  latencies.sort((a, b) => a - b);
  return {
    msgsPerSecond: (pairsCount * MESSAGES) / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    ...(tail ? { tail } : {}),
  };
}

/** This process's GC pauses from now until `stop()`. */
function watchOwnGc(): { stop: () => Pause[] } {
  const pauses: Pause[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const start = performance.timeOrigin + e.startTime;
      pauses.push({
        start,
        end: start + e.duration,
        kind: (e as PerformanceEntry & { detail: { kind: number } }).detail.kind,
      });
    }
  });
  obs.observe({ entryTypes: ["gc"] });
  return {
    stop: () => {
      obs.disconnect();
      return pauses;
    },
  };
}

/** The relay's GC pauses bench/support/gc-log.cjs wrote so far. */
async function relayPauses(path: string): Promise<Pause[]> {
  // It appends every 50 ms: wait for the round's last pauses.
  await new Promise((r) => setTimeout(r, 200));
  return existsSync(path) ? parsePauses(readFileSync(path, "latin1")) : [];
}

/** The relay's `loft_relay_send_commit_seconds` histogram (SEND's arrival → durable commit): le → count. */
async function commitBuckets(metricsUrl: string): Promise<Map<string, number>> {
  return commitBucketsOf(await (await fetch(`${metricsUrl}/metrics`)).text());
}

/** `--tail`'s lines for a round (bench/relay-tail.ts `tailLines`), with the relay's pauses from its log. */
async function tailReport(
  latencies: number[],
  arrivals: number[],
  gcLog: string,
  clientPauses: Pause[],
): Promise<string[]> {
  return tailLines(latencies, arrivals, await relayPauses(gcLog), clientPauses);
}

/**
 * What a recipient pays per delivery in a browser: core's `openFromRelay` (noble XChaCha20-Poly1305,
 * the PWA's path) on one SIZE-byte message, as the 16 KiB block of 1.1 and as the bucket of 1.2;
 * the two alternate in slices of 50, 8 slices each, medians of the per-slice µs.
 */
function recipientOpen(): { blockUs: number; bucketUs: number } {
  const key = new Uint8Array(randomBytes(32));
  const id = new Uint8Array(randomBytes(24));
  const body = new Uint8Array(randomBytes(Math.min(SIZE, 16_382)));
  const forms = {
    block: sealForRecipient(key, id, 1, padBlock(body)),
    bucket: sealForRecipient(key, id, 1, padBlock(body, deliveryBucket(body.length))),
  };
  const slices: Record<"block" | "bucket", number[]> = { block: [], bucket: [] };
  for (let k = 0; k < 16; k++) {
    const form = k % 2 === 0 ? "block" : "bucket";
    const t = performance.now();
    for (let j = 0; j < 50; j++) if (!openFromRelay(key, id, forms[form], form).ok) throw new Error("open");
    slices[form].push(((performance.now() - t) * 1000) / 50);
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
  return { blockUs: median(slices.block), bucketUs: median(slices.bucket) };
}

async function idleRelay(url: string, pid: number): Promise<{ held: number; rssPerConnKib: number }> {
  const before = rssKib(pid);
  const conns: BenchConn[] = [];
  try {
    for (let at = 0; at < IDLE; at += 250) {
      const batch = Array.from({ length: Math.min(250, IDLE - at) }, () => new BenchConn(url, IDLE_AUTH));
      const settled = await Promise.allSettled(batch.map((c) => deadline(c.ready, "idle connection")));
      batch.forEach((c, i) => {
        if (settled[i]!.status === "fulfilled") conns.push(c);
        else c.ws.terminate();
      });
      if (settled.some((s) => s.status === "rejected")) break;
    }
    await new Promise((r) => setTimeout(r, 1000));
    const after = rssKib(pid);
    return { held: conns.length, rssPerConnKib: conns.length ? (after - before) / conns.length : Number.NaN };
  } finally {
    for (const c of conns) c.ws.terminate();
  }
}

// ------------------------------------------------------------------------------------------------
// Mosquitto side

// biome-ignore lint/suspicious/noExplicitAny: mqtt is loaded by name (a devDependency of the bench)
type MqttClient = any;

async function loadMqtt(): Promise<{ connectAsync: (url: string, opts: object) => Promise<MqttClient> }> {
  const name = "mqtt";
  const mod = await import(name);
  return mod.default ?? mod;
}

async function startMosquitto(): Promise<{ port: number; child: ChildProcess; dir: string }> {
  if (spawnSync("mosquitto", ["-h"]).error) {
    if (process.getuid?.() === 0) spawnSync("apt-get", ["install", "-y", "mosquitto"], { stdio: "ignore" });
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "loft-bench-mosquitto-"));
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence true",
      `persistence_location ${dir}/`,
      "max_queued_messages 1000000",
      "max_inflight_messages 0",
      "log_dest none",
      "",
    ].join("\n"),
  );
  const child = spawn("mosquitto", ["-c", conf], { stdio: "ignore" });
  const mqtt = await loadMqtt();
  for (let i = 0; i < 100; i++) {
    try {
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
      await c.endAsync();
      return { port, child, dir };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error("mosquitto did not start");
}

async function runMosquitto(port: number, pairsCount = N, outstanding = OUTSTANDING): Promise<Timing> {
  const mqtt = await loadMqtt();
  const url = `mqtt://127.0.0.1:${port}`;
  const latencies: number[] = [];
  const tag = randomBytes(4).toString("hex");
  const pairs = await Promise.all(
    Array.from({ length: pairsCount }, async (_, i) => {
      const topic = `bench/${tag}/${i}`;
      const rx = await mqtt.connectAsync(url, {
        clientId: `sub-${tag}-${i}`,
        clean: false,
        reconnectPeriod: 0,
      });
      await rx.subscribeAsync(topic, { qos: 1 });
      const tx = await mqtt.connectAsync(url, { clientId: `pub-${tag}-${i}`, reconnectPeriod: 0 });
      return { rx, tx, topic };
    }),
  );
  const start = now();
  await deadline(
    Promise.all(
      pairs.map(async (p) => {
        let received = 0;
        const done = new Promise<void>((resolve) => {
          p.rx.on("message", (_t: string, m: Buffer) => {
            latencies.push(now() - sentAt(new Uint8Array(m.buffer, m.byteOffset, m.byteLength)));
            if (++received === MESSAGES) resolve();
          });
        });
        let sent = 0;
        let inFlight = 0;
        await new Promise<void>((resolve, reject) => {
          const pump = () => {
            while (inFlight < outstanding && sent < MESSAGES) {
              sent++;
              inFlight++;
              p.tx.publish(p.topic, Buffer.from(payload()), { qos: 1 }, (e: Error | undefined) => {
                if (e) return reject(e);
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
    "mosquitto run",
  );
  const seconds = (now() - start) / 1000;
  await Promise.all(pairs.flatMap((p) => [p.rx.endAsync(), p.tx.endAsync()]));
  latencies.sort((a, b) => a - b);
  return {
    msgsPerSecond: (pairsCount * MESSAGES) / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

async function idleMosquitto(port: number, pid: number, count: number): Promise<number> {
  const mqtt = await loadMqtt();
  const before = rssKib(pid);
  const clients: MqttClient[] = [];
  try {
    for (let at = 0; at < count; at += 250) {
      clients.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(250, count - at) }, () =>
            mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, keepalive: 0 }),
          ),
        )),
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
    return (rssKib(pid) - before) / clients.length;
  } finally {
    for (const c of clients) c.end(true);
  }
}

// ------------------------------------------------------------------------------------------------

/** Relay flags that lift the rate limits and quotas a bench would otherwise measure instead. */
const NO_RATE_LIMITS = [
  "--relay-rate",
  "0",
  "--relay-conn-rate",
  "0",
  // One process measures from one address: no per-source limits (relay-ws/source-limits.ts).
  "--relay-max-connections-per-source",
  "10000000",
  "--relay-source-rate",
  "0",
  "--relay-source-store-rate",
  "0",
  "--relay-queue-quota",
  "100000",
];

/** Relay flags of every relay process the bench starts, `extra` last. */
const relayArgs = (extra: string[]) => [
  ...NO_RATE_LIMITS,
  "--relay-max-inflight",
  "100000",
  "--relay-max-window",
  "255",
  "--relay-max-connections",
  "1000000",
  ...extra,
];
const RELAY_ARGS = relayArgs(EXTRA_RELAY_ARGS);

interface Subject {
  name: string;
  pid: number;
  run: (pairs?: number, outstanding?: number) => Promise<RunResult>;
}

/** A relay process as a subject: `run(n, o)` sends through its `/relay` (n pairs, o in flight each), its CPU measured. */
function relaySubject(name: string, relay: LoftProcess, auth?: ClientMode, gcLog?: string): Subject {
  const url = `ws://127.0.0.1:${relay.port}/relay`;
  const pid = relay.child.pid!;
  const tail = gcLog ? { gcLog, metricsUrl: relay.metricsUrl } : undefined;
  return {
    name,
    pid,
    run: (n = N, o = OUTSTANDING) => withCpu(pid, n * MESSAGES, () => runRelay(url, n, o, auth, tail)),
  };
}

async function main() {
  selfCheck();
  const dataDir = mkdtempSync(join(tmpdir(), "loft-bench-relay-"));
  const noSyncDir = mkdtempSync(join(tmpdir(), "loft-bench-relay-nosync-"));
  // `--tail`: the fsync relay's GC pauses, logged where the bench reads them after each round.
  const gcLogDir = TAIL ? mkdtempSync(join(tmpdir(), "loft-bench-relay-gc-")) : undefined;
  const gcLog = gcLogDir ? join(gcLogDir, "gc.log") : undefined;
  let relay: LoftProcess | undefined;
  let relayNoSync: LoftProcess | undefined;
  let relayBaseline: LoftProcess | undefined;
  const multi: LoftProcess[] = [];
  const multiDir = PROCESSES >= 2 ? mkdtempSync(join(tmpdir(), "loft-bench-relay-multi-")) : undefined;
  const baselineDataDir = BASELINE_DIR ? mkdtempSync(join(tmpdir(), "loft-bench-relay-base-")) : undefined;
  let mosq: { port: number; child: ChildProcess; dir: string } | undefined;
  try {
    relay = await startLoft({
      entry: "relay-ws/main.ts",
      args: ["--relay-data-dir", dataDir, ...RELAY_ARGS],
      nodeArgs: [
        ...NODE_ARGS,
        ...(PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`] : []),
        ...(gcLog ? ["--require", resolve(import.meta.dirname, "support/gc-log.cjs")] : []),
      ],
      ...(gcLog ? { env: { LOFT_BENCH_GC_LOG: gcLog } } : {}),
    });
    const subjects: Subject[] = [];
    const fsync = relaySubject("relay", relay, RELAY_CLIENTS, gcLog);
    subjects.push(fsync);
    if (SUBJECTS.includes("bucketed")) subjects.push(relaySubject("bucketed", relay, "bucket", gcLog));
    if (SUBJECTS.includes("batched")) subjects.push(relaySubject("batched", relay, "batch", gcLog));
    if (SUBJECTS.includes("signed")) subjects.push(relaySubject("signed", relay, "signature"));
    if (SUBJECTS.includes("nosync")) {
      relayNoSync = await startLoft({
        entry: "relay-ws/main.ts",
        args: ["--relay-data-dir", noSyncDir, "--relay-sync", "false", ...RELAY_ARGS],
        nodeArgs: NODE_ARGS,
      });
      subjects.push(relaySubject("nosync", relayNoSync));
    }
    if (BASELINE_DIR && baselineDataDir) {
      relayBaseline = await startLoft({
        entry: join(resolve(BASELINE_DIR), "relay-ws/main.ts"),
        args: [
          "--relay-data-dir",
          baselineDataDir,
          ...(BASELINE_ARGS === undefined
            ? RELAY_ARGS
            : relayArgs(BASELINE_ARGS.split(" ").filter((a) => a !== ""))),
        ],
        nodeArgs:
          BASELINE_NODE_ARGS === undefined
            ? NODE_ARGS
            : BASELINE_NODE_ARGS.split(" ").filter((a) => a !== ""),
      });
      subjects.push(relaySubject("baseline", relayBaseline, RELAY_CLIENTS));
    }
    if (multiDir) {
      for (let k = 0; k < PROCESSES; k++)
        multi.push(
          await startLoft({
            entry: "relay-ws/main.ts",
            args: ["--relay-data-dir", join(multiDir, String(k)), ...RELAY_ARGS],
            nodeArgs: NODE_ARGS,
          }),
        );
      const urls = multi.map((p) => `ws://127.0.0.1:${p.port}/relay`);
      const pids = multi.map((p) => p.child.pid!);
      subjects.push({
        name: "multi",
        pid: pids[0]!,
        run: (n = N, o = OUTSTANDING) =>
          withCpu(pids, n * MESSAGES, () => runRelay(urls, n, o, RELAY_CLIENTS)),
      });
    }
    let mosquitto: Subject | undefined;
    if (SUBJECTS.includes("mosquitto")) {
      const m = await startMosquitto();
      mosq = m;
      const pid = m.child.pid!;
      mosquitto = {
        name: "mosquitto",
        pid,
        run: (n = N, o = OUTSTANDING) => withCpu(pid, n * MESSAGES, () => runMosquitto(m.port, n, o)),
      };
      subjects.push(mosquitto);
    }
    say(
      `relay bench: ${N} senders → ${N} receivers, ${MESSAGES} messages each, ${SIZE} B payloads, ${OUTSTANDING} in flight per sender, ${ROUNDS} rounds`,
    );
    // Subjects alternate in slices: each round runs every subject once, the order rotated each
    // round, so a burst of load from elsewhere on the machine hits them alike. The better round
    // of each is kept (other work only ever slows a run down).
    const runs = await rotatingRounds(
      subjects,
      ROUNDS,
      (subject) => subject.run(),
      (subject, round, r) => {
        say(
          `  round ${round + 1} ${subject.name.padEnd(9)} ${r.msgsPerSecond.toFixed(0).padStart(6)} msgs/s  p99 ${r.p99.toFixed(1)} ms  server ${r.serverCpuUs.toFixed(0)} µs/msg (loop ${r.loopCpuUs.toFixed(0)}, ${r.syscalls.toFixed(1)} syscalls)  clients ${r.clientCpuUs.toFixed(0)} µs/msg`,
        );
        for (const line of r.tail ?? []) say(line);
      },
    );
    const best = (name: string) =>
      runs.get(name)?.reduce((a, b) => (b.msgsPerSecond > a.msgsPerSecond ? b : a));
    const r = best("relay")!;
    const m = best("mosquitto");
    const ns = best("nosync");
    const sg = best("signed");
    const bk = best("bucketed");
    const bt = best("batched");
    const base = best("baseline");
    const mu = best("multi");
    // Unloaded latency (one pair, one message at a time): what a live link through the relay sees.
    const rLive = await fsync.run(1, 1);
    const mLive = await mosquitto?.run(1, 1);
    const opens = recipientOpen();
    const idle = IDLE > 0 ? await idleRelay(`ws://127.0.0.1:${relay.port}/relay`, fsync.pid) : undefined;
    const mosqIdle =
      IDLE > 0 && mosq ? await idleMosquitto(mosq.port, mosq.child.pid!, Math.min(IDLE, 2000)) : undefined;

    const machine = `${cpus()[0]?.model ?? "?"} × ${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}`;
    const row = (name: string, x: RunResult | undefined) =>
      x
        ? say(
            `${name.padEnd(26)} ${x.msgsPerSecond.toFixed(0).padStart(8)} ${x.p50.toFixed(2).padStart(8)} ${x.p99.toFixed(2).padStart(8)} ${x.serverCpuUs.toFixed(0).padStart(11)} ${x.clientCpuUs.toFixed(0).padStart(11)}`,
          )
        : undefined;
    say("");
    say(
      `${"".padEnd(26)} ${"msgs/s".padStart(8)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"server µs/m".padStart(11)} ${"client µs/m".padStart(11)}`,
    );
    row("loft relay (LMDB, fsync)", r);
    row("loft relay, 1.2 buckets", bk);
    row("loft relay, 1.3 batches", bt);
    row("loft relay, 1.0 signatures", sg);
    row("loft relay, no fsync", ns);
    row("baseline relay (--baseline)", base);
    row(`loft relay, ${PROCESSES} processes`, mu);
    row("mosquitto (QoS 1)", m);
    row("loft relay, 1 in flight", rLive);
    row("mosquitto, 1 in flight", mLive);
    if (m) {
      say(`relay / mosquitto throughput: ${(r.msgsPerSecond / m.msgsPerSecond).toFixed(2)}×`);
      say(`relay p99 / mosquitto p99: ${(r.p99 / m.p99).toFixed(1)}×`);
      if (bk)
        say(
          `relay with 1.2 bucketed deliveries / mosquitto: ${(bk.msgsPerSecond / m.msgsPerSecond).toFixed(2)}× throughput, p99 ${(bk.p99 / m.p99).toFixed(1)}×`,
        );
      if (bt)
        say(
          `relay with 1.3 batches / mosquitto: ${(bt.msgsPerSecond / m.msgsPerSecond).toFixed(2)}× throughput, p99 ${(bt.p99 / m.p99).toFixed(1)}×, server CPU ${(bt.serverCpuUs / m.serverCpuUs).toFixed(1)}× per message`,
        );
      if (ns) say(`relay without fsync / mosquitto: ${(ns.msgsPerSecond / m.msgsPerSecond).toFixed(2)}×`);
      if (sg)
        say(`relay with 1.0 signatures / mosquitto: ${(sg.msgsPerSecond / m.msgsPerSecond).toFixed(2)}×`);
    }
    say(
      `recipient opening one ${SIZE}-byte message (core, noble: the browser's path): ${opens.blockUs.toFixed(0)} µs as a 1.1 block, ${opens.bucketUs.toFixed(0)} µs as a 1.2 bucket (${(opens.blockUs / opens.bucketUs).toFixed(1)}×)`,
    );
    if (base)
      say(
        `relay / baseline: ${(r.msgsPerSecond / base.msgsPerSecond).toFixed(2)}× throughput, ${(base.serverCpuUs / r.serverCpuUs).toFixed(2)}× less server CPU per message, ${(base.loopCpuUs / r.loopCpuUs).toFixed(2)}× less on its event loop`,
      );
    if (idle)
      say(
        `idle relay WebSockets held: ${idle.held} of ${IDLE}, ${idle.rssPerConnKib.toFixed(1)} KiB RSS each`,
      );
    if (mosqIdle !== undefined)
      say(`idle MQTT connections (baseline): ${mosqIdle.toFixed(1)} KiB RSS each in mosquitto`);
    say(`machine: ${machine}`);
    if (JSON_OUT)
      console.log(
        JSON.stringify({
          relay_vs_mosquitto: m ? r.msgsPerSecond / m.msgsPerSecond : null,
          relay_p99_vs_mosquitto: m ? r.p99 / m.p99 : null,
          relay_msgs_per_s: r.msgsPerSecond,
          p50_ms: r.p50,
          p99_ms: r.p99,
          relay_cpu_us_per_msg: r.serverCpuUs,
          relay_client_cpu_us_per_msg: r.clientCpuUs,
          relay_signed_vs_mosquitto: m && sg ? sg.msgsPerSecond / m.msgsPerSecond : null,
          relay_signed_msgs_per_s: sg?.msgsPerSecond ?? null,
          relay_signed_cpu_us_per_msg: sg?.serverCpuUs ?? null,
          relay_authenticator_vs_signed: sg ? r.msgsPerSecond / sg.msgsPerSecond : null,
          relay_bucketed_vs_mosquitto: m && bk ? bk.msgsPerSecond / m.msgsPerSecond : null,
          relay_bucketed_p99_vs_mosquitto: m && bk ? bk.p99 / m.p99 : null,
          relay_bucketed_msgs_per_s: bk?.msgsPerSecond ?? null,
          relay_bucketed_p99_ms: bk?.p99 ?? null,
          relay_bucketed_cpu_us_per_msg: bk?.serverCpuUs ?? null,
          relay_bucketed_client_cpu_us_per_msg: bk?.clientCpuUs ?? null,
          relay_bucketed_vs_blocks: bk ? bk.msgsPerSecond / r.msgsPerSecond : null,
          relay_batched_vs_mosquitto: m && bt ? bt.msgsPerSecond / m.msgsPerSecond : null,
          relay_batched_p99_vs_mosquitto: m && bt ? bt.p99 / m.p99 : null,
          relay_batched_msgs_per_s: bt?.msgsPerSecond ?? null,
          relay_batched_p99_ms: bt?.p99 ?? null,
          relay_batched_cpu_us_per_msg: bt?.serverCpuUs ?? null,
          relay_batched_loop_cpu_us_per_msg: bt?.loopCpuUs ?? null,
          relay_batched_client_cpu_us_per_msg: bt?.clientCpuUs ?? null,
          relay_batched_vs_bucketed: bt && bk ? bt.msgsPerSecond / bk.msgsPerSecond : null,
          relay_batched_cpu_vs_bucketed: bt && bk ? bk.serverCpuUs / bt.serverCpuUs : null,
          relay_bucketed_loop_cpu_us_per_msg: bk?.loopCpuUs ?? null,
          recipient_open_block_us: opens.blockUs,
          recipient_open_bucket_us: opens.bucketUs,
          recipient_open_block_vs_bucket: opens.blockUs / opens.bucketUs,
          relay_nosync_vs_mosquitto: m && ns ? ns.msgsPerSecond / m.msgsPerSecond : null,
          relay_nosync_msgs_per_s: ns?.msgsPerSecond ?? null,
          relay_vs_baseline: base ? r.msgsPerSecond / base.msgsPerSecond : null,
          relay_cpu_vs_baseline: base ? base.serverCpuUs / r.serverCpuUs : null,
          relay_loop_cpu_us_per_msg: r.loopCpuUs,
          baseline_loop_cpu_us_per_msg: base?.loopCpuUs ?? null,
          relay_loop_cpu_vs_baseline: base ? base.loopCpuUs / r.loopCpuUs : null,
          baseline_msgs_per_s: base?.msgsPerSecond ?? null,
          relay_multi_vs_mosquitto: m && mu ? mu.msgsPerSecond / m.msgsPerSecond : null,
          relay_multi_p99_vs_mosquitto: m && mu ? mu.p99 / m.p99 : null,
          relay_multi_vs_single: mu ? mu.msgsPerSecond / r.msgsPerSecond : null,
          relay_multi_msgs_per_s: mu?.msgsPerSecond ?? null,
          relay_multi_p99_ms: mu?.p99 ?? null,
          relay_multi_cpu_us_per_msg: mu?.serverCpuUs ?? null,
          relay_multi_loop_cpu_us_per_msg: mu?.loopCpuUs ?? null,
          relay_syscalls_per_msg: r.syscalls,
          relay_multi_syscalls_per_msg: mu?.syscalls ?? null,
          processes: PROCESSES || null,
          baseline_p99_ms: base?.p99 ?? null,
          baseline_cpu_us_per_msg: base?.serverCpuUs ?? null,
          mosquitto_msgs_per_s: m?.msgsPerSecond ?? null,
          mosquitto_p50_ms: m?.p50 ?? null,
          mosquitto_p99_ms: m?.p99 ?? null,
          mosquitto_cpu_us_per_msg: m?.serverCpuUs ?? null,
          mosquitto_client_cpu_us_per_msg: m?.clientCpuUs ?? null,
          live_p50_ms: rLive.p50,
          live_p99_ms: rLive.p99,
          mosquitto_live_p50_ms: mLive?.p50 ?? null,
          mosquitto_live_p99_ms: mLive?.p99 ?? null,
          idle_ws_held: idle?.held ?? null,
          idle_ws_rss_kib: idle?.rssPerConnKib ?? null,
          mosquitto_idle_rss_kib: mosqIdle ?? null,
          rounds: Object.fromEntries(
            [...runs].map(([k, v]) => [k, v.map((x) => Math.round(x.msgsPerSecond))]),
          ),
          n: N,
          messages: MESSAGES,
          size: SIZE,
          relay_args: EXTRA_RELAY_ARGS,
          baseline_args:
            BASELINE_ARGS === undefined ? null : BASELINE_ARGS.split(" ").filter((a) => a !== ""),
          node_args: NODE_ARGS,
          baseline_node_args:
            BASELINE_NODE_ARGS === undefined ? null : BASELINE_NODE_ARGS.split(" ").filter((a) => a !== ""),
          machine,
        }),
      );
  } finally {
    await relay?.stop("SIGTERM");
    await relayNoSync?.stop("SIGTERM");
    await relayBaseline?.stop("SIGTERM");
    for (const p of multi) await p.stop("SIGTERM");
    if (multiDir) rmSync(multiDir, { recursive: true, force: true });
    if (baselineDataDir) rmSync(baselineDataDir, { recursive: true, force: true });
    rmSync(noSyncDir, { recursive: true, force: true });
    mosq?.child.kill("SIGTERM");
    rmSync(dataDir, { recursive: true, force: true });
    if (gcLogDir) rmSync(gcLogDir, { recursive: true, force: true });
    if (mosq) rmSync(mosq.dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
