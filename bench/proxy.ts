/**
 * `npm run bench:proxy [-- --json] [--quick] [--size 1048576] [--noble] [--relay] [--one-thread]
 *   [--origin-with-exposing] [--in-flight N]`
 *
 * The E2EE fetch proxy next to fetching the same files from the same local HTTP server directly,
 * same run. Topology (`topology` in the JSON; bench/README.md §bench:proxy): by default `split,
 * origin apart` — the exposing side (Bob's engines, as `loft expose`) runs in a worker thread
 * (bench/proxy-peer.ts), the origin it serves in a third thread (the local service beside `loft
 * expose` is another process), the requester (Alice's engines, and the direct baseline's client)
 * on the main thread, links between them MessagePorts carrying the in-memory link's messages;
 * both subjects reach the same origin on its own thread. `--origin-with-exposing`: the origin in
 * the exposing side's thread (the default before session 15).
 * `--one-thread`: everything on one thread, the bench before session 13 (the ratio is then a
 * share of one core). The proxied path is the real one minus the browser: two engines
 * (web/src/engine, real signaling, real Noise XXhfs sessions over the harness's in-memory links
 * standing in for the data channel), Alice's `proxyClient(bob)` → PROXY session frames → Bob's
 * proxy server → `httpOriginHandler` (host/proxy-origin.ts, what `loft expose` serves) → the
 * origin, and back with credit flow control. The direct path is `fetch()` of the same URL.
 *
 * Figures: throughput of `--size` bodies, one at a time or `--in-flight N` at once on both sides
 * (MB/s; subjects alternate in slices,
 * bench/harness.ts `alternate`; `proxy_vs_direct` is the median per-round ratio, and
 * `proxy_vs_direct_cpu` the same per CPU-second of this process), and p50/p99
 * latency of a 1 KiB file fetched alone, proxy and direct alternating request by request
 * (`p50_overhead_ms` = proxied p50 − direct p50). Everything targets 127.0.0.1.
 * The engines use the node:crypto provider (host/crypto-node.ts), as `loft expose` does
 * (cli/peer.ts) — so the session runs AES-256-GCM natively, as between two browsers; `--noble`
 * runs them on the pure-JS reference provider instead (`--node-crypto`, the default, is still
 * accepted). `--relay`: no direct link opens (the harness's hub blocks it), so the session runs
 * on the live relay link through a real relay (relay-ws/testing.ts, LMDB, WebSockets on
 * 127.0.0.1): the path `loft expose` always takes (cli/no-direct.ts). With
 * `--relay`, a second pair of engines whose live relay links keep one SEND in flight (the link
 * before it pipelined, `sendWindow: 1`) runs in the same alternation: `pipelined_vs_single` is
 * the relay link's send window (DEFAULT_SEND_WINDOW) against one at a time, same relay, same run.
 */
import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { type EventLoopUtilization, performance as nodePerformance } from "node:perf_hooks";
import { createUserIdentity } from "../core/identity/identity.ts";
import type { BodyReader } from "../core/proxy/body.ts";
import { DEFAULT_SEND_WINDOW } from "../core/relay/live-link.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { startTestRelay, type TestRelay } from "../relay-ws/testing.ts";
import { startSignaling } from "../signaling/testing.ts";
import { EngineHarness, type EngineNode, until } from "../test/support/engine.ts";
import { type CpuProfile, topSelf } from "./cpu-profile.ts";
import {
  ALTERNATION,
  type AlternationOptions,
  alternate,
  latencyRows,
  log,
  QUICK,
  rateOf,
  report,
  sliceRatio,
  sliceRatioRange,
} from "./harness.ts";
import {
  addCard,
  benchEngine,
  serveOrigin,
  startExposingSide,
  startOrigin,
  startOriginThread,
} from "./proxy-peer.ts";
import { numberFlag, percentile } from "./relay-cli.ts";

const SIZE = numberFlag("size", 1024 * 1024);
const RELAY = process.argv.includes("--relay");
const NOBLE = process.argv.includes("--noble");
/** The old topology: origin, both engines and the client on one thread (bench/README.md §bench:proxy). */
const ONE_THREAD = process.argv.includes("--one-thread");
/**
 * Rounds long enough that one round's ratio means something (bench/README.md §bench:proxy): the
 * harness's 0.15 s slices held a handful of 1 MiB bodies on a loaded machine, and per-round ratios
 * spread over 0.05–16. 1 s slices, 12 rounds; `LOFT_BENCH_ROUNDS`/`LOFT_BENCH_SLICE_SECONDS` still
 * override, `--quick` keeps the harness's short form.
 */
const ROUNDS: AlternationOptions = QUICK
  ? {}
  : {
      rounds: process.env.LOFT_BENCH_ROUNDS ? ALTERNATION.rounds : 12,
      sliceSeconds: process.env.LOFT_BENCH_SLICE_SECONDS ? ALTERNATION.sliceSeconds : 1,
      warmupSeconds: 1,
    };
/**
 * Where the origin runs (split only; bench/README.md §bench:proxy, "Topology"): by default in a
 * thread of its own, as `loft expose http://127.0.0.1:PORT`'s local service is another process —
 * the exposing thread then runs Bob's engine and the origin's client only, and the direct
 * baseline fetches that same origin from this thread (the same origin, the same client as
 * before). `--origin-with-exposing`: the layout before session 15, the origin's server in the
 * exposing side's thread (its HTTP work shared with Bob's engine). `--origin-apart`, the flag
 * that asked for the new default, is still accepted.
 */
const ORIGIN_APART = !ONE_THREAD && !process.argv.includes("--origin-with-exposing");
const TOPOLOGY = ONE_THREAD
  ? "one-thread"
  : ORIGIN_APART
    ? "split, origin apart"
    : "split, origin with exposing";
const LATENCY_REQUESTS = QUICK ? 40 : 300;
/**
 * `--in-flight N`: bodies each subject keeps in flight at once (bench/README.md §bench:proxy,
 * "Bodies in flight"). The same N for the proxy and for the direct baseline, or the ratio would
 * compare concurrency, not paths: proxied, N requests open at once over the one session (docs/
 * protocol/proxy.md §Streams, each with its own window); direct, N fetches at once (undici opens
 * as many keep-alive connections, as a browser does up to six per origin).
 */
const IN_FLIGHT = numberFlag("in-flight", 1);
if (!Number.isSafeInteger(IN_FLIGHT) || IN_FLIGHT < 1 || IN_FLIGHT > 16)
  throw new RangeError("--in-flight must be 1…16 (the proxy client's concurrency)");

/**
 * `fetchOne(path)` IN_FLIGHT times at once, `per` bodies in all: each that ends starts the next,
 * so N stay in flight until the last `N - 1`; resolves with the bytes read.
 */
async function inFlight(
  fetchOne: (path: string) => Promise<number>,
  path: string,
  per: number,
): Promise<number> {
  let started = 0;
  let bytes = 0;
  const lane = async () => {
    while (started < per) {
      started++;
      bytes += await fetchOne(path);
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, per) }, lane));
  return bytes;
}

async function drain(body: BodyReader): Promise<number> {
  let n = 0;
  for (;;) {
    const c = await body.read();
    if (c === null) return n;
    n += c.length;
  }
}

/** The two ways to fetch `/big` or `/small`: through the proxy (`single`: a second pair, `--relay`) and directly. */
interface Subjects {
  proxied: (path: string) => Promise<number>;
  single: ((path: string) => Promise<number>) | undefined;
  direct: (path: string) => Promise<number>;
  stop: () => Promise<void>;
  /** The exposing side's thread's event-loop utilization (split topology only). */
  workerElu?: () => EventLoopUtilization;
  /** Profile the exposing side's thread (split topology only): the function given stops it. */
  workerProfile?: () => Promise<() => Promise<CpuProfile>>;
}

/**
 * How busy each thread was while one subject ran (event-loop utilization, summed over its
 * calls): which side of the split is the bottleneck — a thread near 1 is saturated.
 */
class Busy {
  readonly #active = new Map<string, [number, number, number]>();
  constructor(readonly workerElu: (() => EventLoopUtilization) | undefined) {}
  wrap<T>(name: string, run: () => Promise<T>): () => Promise<T> {
    return async () => {
      const m0 = nodePerformance.eventLoopUtilization();
      const w0 = this.workerElu?.();
      try {
        return await run();
      } finally {
        const m = nodePerformance.eventLoopUtilization(m0);
        const w = w0 && this.workerElu ? this.workerElu() : undefined;
        const a = this.#active.get(name) ?? [0, 0, 0];
        a[0] += m.active;
        a[1] += m.active + m.idle;
        if (w && w0) a[2] += w.active - w0.active;
        this.#active.set(name, a);
      }
    };
  }
  /** The share of its wall time each thread's event loop was busy while `name` ran. */
  of(name: string): { main: number; exposing?: number } {
    const [main, total, worker] = this.#active.get(name) ?? [0, 0, 0];
    return { main: main / total, ...(this.workerElu ? { exposing: worker / total } : {}) };
  }
}

const proxiedVia = (alice: EngineNode, bobId: string) => async (path: string) => {
  const c = alice.engine.proxyClient(bobId);
  if (!c) throw new Error("the session to Bob closed");
  const res = await c.request({ method: "GET", path, headers: [] });
  if (res.status !== 200) throw new Error(`proxied ${path}: ${res.status}`);
  return drain(res.body);
};

const directTo = (base: string) => async (path: string) => {
  const res = await fetch(`${base}${path}`);
  if (res.status !== 200) throw new Error(`direct ${path}: ${res.status}`);
  return (await res.arrayBuffer()).byteLength;
};

/** `--one-thread`: origin, both engines and the client in this thread (the bench before session 13). */
async function oneThread(signalingUrl: string, relay: TestRelay | undefined): Promise<Subjects> {
  const origin = await startOrigin(SIZE);
  const base = origin.base;
  const crypto = NOBLE ? undefined : await createNodeCryptoProvider();
  // Nodes 1 and 2 (the first pair) use the link's default send window; 3 and 4 one SEND at a time.
  let made = 0;
  const h = new EngineHarness(() =>
    benchEngine(signalingUrl, relay?.url, crypto, made++ < 2 ? DEFAULT_SEND_WINDOW : 1),
  );
  /** A pair whose Bob serves the origin to Alice; `proxied(path)` fetches through it. */
  const servingPair = async () => {
    const [alice, bob] = await h.pair(RELAY);
    if (RELAY && alice.engine.presence(bob.id).path !== "relay") throw new Error("not on the relay path");
    await until(() => h.online(alice, bob) && h.online(bob, alice), "both online");
    serveOrigin(bob, base, alice.id);
    return proxiedVia(alice, bob.id);
  };
  const stop = async () => {
    try {
      await h.stopAll();
    } finally {
      origin.close(() => {});
    }
  };
  try {
    const proxied = await servingPair();
    const single = RELAY ? await servingPair() : undefined;
    return { proxied, single, direct: directTo(base), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The default, the real topology: the exposing side (Bob's engines and the origin they serve, as
 * `loft expose` and its local service) in a worker thread (bench/proxy-peer.ts), Alice's engines
 * and the direct client here; links between the threads are MessagePorts.
 */
async function split(signalingUrl: string, relay: TestRelay | undefined): Promise<Subjects> {
  const origin = ORIGIN_APART ? await startOriginThread(SIZE) : undefined;
  const side = await startExposingSide({
    ...(origin ? { originBase: origin.base } : {}),
    size: SIZE,
    signalingUrl,
    ...(relay ? { relayUrl: relay.url } : {}),
    noble: NOBLE,
    blockDirect: RELAY,
  });
  const crypto = NOBLE ? undefined : await createNodeCryptoProvider();
  let sendWindow = DEFAULT_SEND_WINDOW;
  const h = new EngineHarness(() => benchEngine(signalingUrl, relay?.url, crypto, sendWindow));
  const servingPair = async (window: number) => {
    sendWindow = window;
    const user = createUserIdentity({ username: "alice", now: Date.now() });
    const { card, ready } = await side.bob(user, window);
    const alice = h.node("alice", user, undefined, undefined, { transport: side.transport.factory(user) });
    addCard(alice, card);
    await alice.engine.start();
    await until(() => alice.engine.presence(card.id).status === "online", "Alice sees Bob online", 30_000);
    if (relay)
      await until(() => h.knowsMailboxOf(alice, { id: card.id } as EngineNode), "Alice holds Bob's mailbox");
    await ready;
    if (RELAY && alice.engine.presence(card.id).path !== "relay") throw new Error("not on the relay path");
    return proxiedVia(alice, card.id);
  };
  const stop = async () => {
    try {
      await h.stopAll();
    } finally {
      await side.stop();
      await origin?.stop();
    }
  };
  try {
    const proxied = await servingPair(DEFAULT_SEND_WINDOW);
    const single = RELAY ? await servingPair(1) : undefined;
    return {
      proxied,
      single,
      direct: directTo(side.base),
      stop,
      workerElu: () => side.elu(),
      workerProfile: () => side.profile(),
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function main(): Promise<void> {
  const signaling = await startSignaling();
  // `--relay-unlimited`: the relay without its per-connection command rate (what the path costs,
  // not the policy).
  const relay: TestRelay | undefined = RELAY
    ? await startTestRelay(process.argv.includes("--relay-unlimited") ? { ratePerSecond: 0 } : {})
    : undefined;
  let subjects: Subjects | undefined;
  try {
    subjects = await (ONE_THREAD ? oneThread : split)(signaling.url, relay);
    const { proxied, single, direct } = subjects;
    if ((await proxied("/big")) !== SIZE || (await direct("/big")) !== SIZE) throw new Error("wrong size");
    if (single && (await single("/big")) !== SIZE) throw new Error("wrong size");

    if (process.env.LOFT_BENCH_PROFILE) {
      // Where a proxied body's time goes in this process (bench/README.md §bench:proxy): the V8
      // CPU profile of 6 s of back-to-back proxied bodies, self time per function, idle included.
      for (let i = 0; i < 30; i++) await proxied("/big");
      const inspector = new Session();
      inspector.connect();
      await inspector.post("Profiler.enable");
      await inspector.post("Profiler.setSamplingInterval", { interval: 100 });
      await inspector.post("Profiler.start");
      const stopWorker = await subjects.workerProfile?.();
      const t0 = performance.now();
      let bodies = 0;
      while (performance.now() - t0 < (QUICK ? 1000 : 6000)) {
        await proxied("/big");
        bodies++;
      }
      const { profile } = await inspector.post("Profiler.stop");
      inspector.disconnect();
      const workerProfile = await stopWorker?.();
      // LOFT_BENCH_PROFILE_OUT=<dir>: the whole profiles too, for DevTools or a by-caller look.
      const out = process.env.LOFT_BENCH_PROFILE_OUT;
      if (out) {
        await writeFile(join(out, "proxy-requester.cpuprofile"), JSON.stringify(profile));
        if (workerProfile)
          await writeFile(join(out, "proxy-exposing.cpuprofile"), JSON.stringify(workerProfile));
      }
      // The inspector session profiles this thread: split, that is the requester's side, and the
      // worker profiles its own (the exposing side) over the same bodies; `--one-thread` profiles
      // both engines and the origin together.
      log(
        `--- CPU profile over ${bodies} proxied bodies (% of all samples, self time; ${ONE_THREAD ? "every part, one thread" : "the requester's thread"})`,
      );
      for (const r of topSelf(profile as CpuProfile, 25, { ofAll: true }))
        log(`${r.pct.toFixed(1).padStart(5)}%  ${r.fn}`);
      if (workerProfile) {
        log("--- the same bodies on the exposing side's thread (Bob's engine and the origin)");
        for (const r of topSelf(workerProfile, 30, { ofAll: true }))
          log(`${r.pct.toFixed(1).padStart(5)}%  ${r.fn}`);
      }
    }

    log(`throughput: ${SIZE} B bodies, ${IN_FLIGHT} in flight`);
    const busy = new Busy(subjects.workerElu);
    // A call moves 4 × IN_FLIGHT bodies (one body with one in flight, as before): long enough that
    // the lanes' ramp and tail are a small part of it, short enough for several calls per slice.
    const per = IN_FLIGHT === 1 ? 1 : 4 * IN_FLIGHT;
    const rates = await alternate(
      [
        { name: "proxy", run: busy.wrap("proxy", async () => (await inFlight(proxied, "/big", per)) / 1e6) },
        { name: "direct", run: busy.wrap("direct", async () => (await inFlight(direct, "/big", per)) / 1e6) },
        ...(single ? [{ name: "single", run: async () => (await inFlight(single, "/big", per)) / 1e6 }] : []),
      ],
      ROUNDS,
    );
    const p = rateOf(rates, "proxy");
    const d = rateOf(rates, "direct");
    const one = single ? rateOf(rates, "single") : undefined;

    log(`latency: ${LATENCY_REQUESTS} requests of 1 KiB each way, alternating`);
    const lp: number[] = [];
    const ld: number[] = [];
    for (let i = 0; i < LATENCY_REQUESTS; i++) {
      for (const [fn, into] of (i % 2 === 0
        ? [
            [proxied, lp],
            [direct, ld],
          ]
        : [
            [direct, ld],
            [proxied, lp],
          ]) as [typeof proxied, number[]][]) {
        const t = performance.now();
        await fn("/small");
        into.push(performance.now() - t);
      }
    }
    lp.sort((a, b) => a - b);
    ld.sort((a, b) => a - b);
    const ratio = sliceRatio(p, d);
    const roundRatios = p.slices.map((x, i) => x / d.slices[i]!);
    const sortedRounds = [...roundRatios].sort((a, b) => a - b);
    report(
      `bench:proxy — E2EE fetch proxy (engine, Noise session${RELAY ? ", live relay link" : ""}) vs direct HTTP, same origin, same run`,
      [
        {
          name: `throughput, ${(SIZE / 1024).toFixed(0)} KiB bodies`,
          value: p.perSecond,
          unit: "MB/s",
          baseline: { name: "direct", value: d.perSecond },
          ratio,
          ratioRange: sliceRatioRange(p, d),
        },
        ...(one
          ? [
              {
                name: `relay link, ${DEFAULT_SEND_WINDOW} SENDs in flight`,
                value: p.perSecond,
                unit: "MB/s",
                baseline: { name: "one SEND in flight", value: one.perSecond },
                ratio: sliceRatio(p, one),
                ratioRange: sliceRatioRange(p, one),
              },
            ]
          : []),
        ...latencyRows((p) => `latency p${p}, 1 KiB`, lp, { name: "direct", samples: ld }),
      ],
      {
        bench: "proxy",
        path: RELAY ? "relay" : "in-memory link",
        crypto: NOBLE ? "noble" : "node",
        topology: TOPOLOGY,
        size_bytes: SIZE,
        in_flight: IN_FLIGHT,
        proxy: { mb_per_s: p.perSecond, p50_ms: percentile(lp, 50), p99_ms: percentile(lp, 99) },
        direct: { mb_per_s: d.perSecond, p50_ms: percentile(ld, 50), p99_ms: percentile(ld, 99) },
        proxy_vs_direct: ratio,
        proxy_vs_direct_range: sliceRatioRange(p, d),
        // The spread of the per-round ratios: the middle half, and every round in order.
        proxy_vs_direct_iqr: [percentile(sortedRounds, 25), percentile(sortedRounds, 75)],
        proxy_vs_direct_rounds: roundRatios.map((r) => Math.round(r * 1000) / 1000),
        rounds: p.slices.length,
        slice_seconds: ROUNDS.sliceSeconds ?? ALTERNATION.sliceSeconds,
        // The same per CPU-second of this process (bench/README.md, "Alternating slices"): what a
        // proxied byte costs next to a direct one, less moved by other processes' load.
        proxy_vs_direct_cpu: sliceRatio(p, d, "cpu"),
        proxy_vs_direct_cpu_range: sliceRatioRange(p, d, "cpu"),
        p50_overhead_ms: percentile(lp, 50) - percentile(ld, 50),
        // Event-loop utilization of each thread while each subject ran (`exposing`: the worker).
        busy: { proxy: busy.of("proxy"), direct: busy.of("direct") },
        ...(one
          ? {
              send_window: DEFAULT_SEND_WINDOW,
              single: { mb_per_s: one.perSecond },
              pipelined_vs_single: sliceRatio(p, one),
              pipelined_vs_single_range: sliceRatioRange(p, one),
            }
          : {}),
      },
    );
  } finally {
    await subjects?.stop();
    await relay?.close();
    await signaling.close();
  }
}

await main();
