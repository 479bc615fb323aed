/**
 * `npm run bench:relay-live [-- --json] [--quick] [--chars 100] [--batch 16]`
 *
 * Chat over the live relay link, with the app's relay connections on protocol 1.3 (1.2 plus
 * several messages per frame), 1.2 (each delivery padded to its body's size bucket) and 1.1 (each
 * delivery one 16 KiB block): docs/decisions.md (Relay), "The app speaks relay protocol 1.2",
 * "Several messages per frame: relay protocol 1.3". Three pairs of engines
 * (web/src/engine, real signaling, a real relay: relay-ws/testing.ts, LMDB with fsync,
 * WebSockets on 127.0.0.1) whose direct links never open (the harness's hub blocks them), so
 * every message runs Noise + ratchet over a `RelayLink` through the relay. The "batched" pair has
 * the app's defaults (`relayDelivery: "bucket"`, `relayBatch: true`), the "bucketed" pair
 * `relayBatch: false` (1.2), the "blocks" pair `relayDelivery: "block"` (1.1).
 *
 * Figures: chat messages of `--chars` characters per second, Alice → Bob, `--batch` handed over
 * at once, each counted when its receipt makes it `delivered` (subjects alternate in slices,
 * bench/harness.ts `alternate`; `live_bucketed_vs_blocks` and `live_batched_vs_bucketed` are
 * median per-round ratios), the
 * same per CPU-second of this process — relay, both engines and signaling all run in it, so
 * this is what the whole path costs (`live_bucketed_vs_blocks_cpu`, `live_batched_vs_bucketed_cpu`)
 * — and the p50/p99 of one
 * message alone, send to `delivered`, the pairs alternating message by message.
 */
import { relayCounter, startTestRelay } from "../relay-ws/testing.ts";
import { startSignaling } from "../signaling/testing.ts";
import { EngineHarness } from "../test/support/engine.ts";
import type { MessageId } from "../web/src/engine/api.ts";
import { RelayLiveTransport } from "../web/src/net/relay-live.ts";
import { alternate, log, QUICK, rateOf, report, sliceRatio, sliceRatioRange } from "./harness.ts";
import { numberFlag, percentile } from "./relay-cli.ts";

const CHARS = numberFlag("chars", 100);
const BATCH = numberFlag("batch", 16);
const LATENCY_MESSAGES = QUICK ? 20 : 200;

async function main(): Promise<void> {
  const signaling = await startSignaling();
  const relay = await startTestRelay();
  // Each pair's engines speak the version `kind` names while the pair is made: 1.3 (as the app
  // does), 1.2 (no batches) or 1.1 (blocks).
  let kind: "batched" | "bucketed" | "blocks" = "batched";
  const h = new EngineHarness(() => ({
    signalingUrl: signaling.url,
    relayUrl: relay.url,
    config: {
      log: () => {},
      relayDelivery: kind === "blocks" ? "block" : "bucket",
      relayBatch: kind === "batched",
      relayTransport: (deps) => new RelayLiveTransport(deps),
      relayFallbackMs: 200,
    },
  }));
  /** A pair on the relay path; `send(n)` hands over n messages and resolves when all are delivered. */
  const chattingPair = async () => {
    const [alice, bob] = await h.pair(true);
    if (alice.engine.presence(bob.id).path !== "relay") throw new Error("not on the relay path");
    const waiting = new Map<MessageId, () => void>();
    alice.engine.subscribe((e) => {
      if (e.type === "message-state" && e.state === "delivered") waiting.get(e.id)?.();
    });
    let n = 0;
    const send = async (count: number): Promise<number> => {
      const done: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        const text = `${n++} `.padEnd(CHARS, "x");
        const id = await alice.engine.send(bob.id, text);
        done.push(
          new Promise<void>((resolve) =>
            waiting.set(id, () => {
              waiting.delete(id);
              resolve();
            }),
          ),
        );
      }
      await Promise.all(done);
      return count;
    };
    return { alice, bob, send };
  };
  const opened = (version: string) => relayCounter(relay, "loft_relay_openings_total", { version });
  try {
    kind = "bucketed";
    const bucketed = await chattingPair();
    kind = "blocks";
    const blocks = await chattingPair();
    kind = "batched";
    const batched = await chattingPair();
    // The pairs speak what they should: two openings each of 1.3, 1.2 and 1.1 (the test relay's
    // own helpers open none here).
    if ((await opened("1.3")) < 2 || (await opened("1.2")) < 2 || (await opened("1.1")) < 2)
      throw new Error(
        `openings: 1.3 ${await opened("1.3")}, 1.2 ${await opened("1.2")}, 1.1 ${await opened("1.1")}`,
      );

    log(`throughput: ${BATCH} messages of ${CHARS} characters at a time, each until delivered`);
    const rates = await alternate([
      { name: "batched", run: () => batched.send(BATCH) },
      { name: "bucketed", run: () => bucketed.send(BATCH) },
      { name: "blocks", run: () => blocks.send(BATCH) },
    ]);
    const t = rateOf(rates, "batched");
    const b = rateOf(rates, "bucketed");
    const k = rateOf(rates, "blocks");

    log(`latency: ${LATENCY_MESSAGES} messages alone, alternating`);
    const lt: number[] = [];
    const lb: number[] = [];
    const lk: number[] = [];
    const pairs: [typeof bucketed, number[]][] = [
      [batched, lt],
      [bucketed, lb],
      [blocks, lk],
    ];
    for (let i = 0; i < LATENCY_MESSAGES; i++) {
      for (let j = 0; j < pairs.length; j++) {
        const [pair, into] = pairs[(i + j) % pairs.length]!;
        const at = performance.now();
        await pair.send(1);
        into.push(performance.now() - at);
      }
    }
    lt.sort((x, y) => x - y);
    lb.sort((x, y) => x - y);
    lk.sort((x, y) => x - y);
    const ratio = sliceRatio(b, k);
    const cpuRatio = sliceRatio(b, k, "cpu");
    const batchRatio = sliceRatio(t, b);
    const batchCpuRatio = sliceRatio(t, b, "cpu");
    report(
      "bench:relay-live — chat over the live relay link, relay protocol 1.3 (batches) vs 1.2 (buckets) vs 1.1 (16 KiB blocks), same relay, same run",
      [
        {
          name: `1.3: messages of ${CHARS} chars, ${BATCH} at a time`,
          value: t.perSecond,
          unit: "msg/s",
          baseline: { name: "1.2 buckets", value: b.perSecond },
          ratio: batchRatio,
          ratioRange: sliceRatioRange(t, b),
          cpuRatio: batchCpuRatio,
        },
        {
          name: "1.3: one message alone, p50 to delivered",
          value: percentile(lt, 50),
          unit: "ms",
          baseline: { name: "1.2 buckets", value: percentile(lb, 50) },
        },
        {
          name: `messages of ${CHARS} chars, ${BATCH} at a time`,
          value: b.perSecond,
          unit: "msg/s",
          baseline: { name: "1.1 blocks", value: k.perSecond },
          ratio,
          ratioRange: sliceRatioRange(b, k),
          cpuRatio,
        },
        {
          name: "one message alone, p50 to delivered",
          value: percentile(lb, 50),
          unit: "ms",
          baseline: { name: "1.1 blocks", value: percentile(lk, 50) },
        },
        {
          name: "one message alone, p99 to delivered",
          value: percentile(lb, 99),
          unit: "ms",
          baseline: { name: "1.1 blocks", value: percentile(lk, 99) },
        },
      ],
      {
        bench: "relay-live",
        chars: CHARS,
        batch: BATCH,
        bucketed: {
          msgs_per_s: b.perSecond,
          msgs_per_cpu_s: b.perCpuSecond,
          p50_ms: percentile(lb, 50),
          p99_ms: percentile(lb, 99),
        },
        blocks: {
          msgs_per_s: k.perSecond,
          msgs_per_cpu_s: k.perCpuSecond,
          p50_ms: percentile(lk, 50),
          p99_ms: percentile(lk, 99),
        },
        batched: {
          msgs_per_s: t.perSecond,
          msgs_per_cpu_s: t.perCpuSecond,
          p50_ms: percentile(lt, 50),
          p99_ms: percentile(lt, 99),
        },
        live_batched_vs_bucketed: batchRatio,
        live_batched_vs_bucketed_range: sliceRatioRange(t, b),
        live_batched_vs_bucketed_cpu: batchCpuRatio,
        p50_batched_vs_bucketed: percentile(lt, 50) / percentile(lb, 50),
        live_bucketed_vs_blocks: ratio,
        live_bucketed_vs_blocks_range: sliceRatioRange(b, k),
        live_bucketed_vs_blocks_cpu: cpuRatio,
        p50_bucketed_vs_blocks: percentile(lb, 50) / percentile(lk, 50),
      },
    );
  } finally {
    await h.stopAll();
    await relay.close();
    await signaling.close();
  }
}

await main();
