/**
 * `npm run bench:smp [-- --json] [--quick] [--batch 32] [--size 1024]`
 *
 * The relay's SMP path next to its WebSocket path, same process, same store, same run: a relay
 * (relay-ws/main.ts as its own process, LMDB, fsync per commit, `--smp-port`) receives SENDs from
 * one sender and pushes them to one subscribed receiver that acknowledges each, over SMP (TLS,
 * the spec-written test client, test/smp/client.ts) and over the WebSocket (core's RelayClient).
 * A slice is one batch of `--batch` messages of `--size` bytes, sent pipelined and received
 * completely; the two paths alternate in slices (bench/harness.ts `alternate`), so the machine's
 * load of the moment falls on both. Figures: messages/s SEND→MSG (with the ACK) and the p50/p99
 * latency from SEND to MSG, and `smp_vs_ws` (SMP msg/s ÷ WebSocket msg/s, median of the rounds).
 *
 * The bridged path (docs/protocol/smp.md, "The bridge") runs in the same rounds: core/smp's client,
 * as a page runs it, over the same relay's `/smp-bridge` WebSocket, which carries its blocks to the
 * SMP listener over TLS — the browser's way to SMP. Figures `bridged_vs_ws` and `bridged_vs_smp`.
 *
 * Same discipline on every path: one message in flight to the receiver (SMP delivers one at a
 * time until it is acknowledged; the WebSocket receiver subscribes with window 1). Both clients do
 * their crypto with noble in this process. Everything targets 127.0.0.1.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import WebSocket from "ws";
import { RelayClient } from "../core/relay/client.ts";
import { WebSocketLink } from "../core/relay/ws-link.ts";
import { connectSmpBridge } from "../core/smp/bridge-link.ts";
import type { SmpMessage } from "../core/smp/client.ts";
import { boxBeforeNm, cmd, openMsg, parseIds, SmpTestClient } from "../test/smp/client.ts";
import { loggedSmpAddress } from "../test/smp/logged-address.ts";
import { type LoftProcess, startLoft } from "../test/support/loft-process.ts";
import {
  alternate,
  latencyRows,
  log,
  median,
  QUICK,
  rateOf,
  report,
  sliceRatio,
  sliceRatioRange,
} from "./harness.ts";
import { numberFlag, percentile } from "./relay-cli.ts";

const BATCH = numberFlag("batch", 32);
const SIZE = Math.max(16, numberFlag("size", 1024));
const TIMEOUT_MS = 120_000;

/** A body that carries its send time (ms, float64) in its first 8 bytes. */
function stamped(): Uint8Array {
  const b = new Uint8Array(SIZE);
  new DataView(b.buffer).setFloat64(0, performance.now());
  return b;
}
const sentAt = (body: Uint8Array) => new DataView(body.buffer, body.byteOffset, 8).getFloat64(0);

async function smpPath(address: string, latencies: number[]) {
  const via = { connectHost: "127.0.0.1" };
  const rcv = await SmpTestClient.connect(address, via);
  const snd = await SmpTestClient.connect(address, via);
  const rcvAuth = ed25519.utils.randomSecretKey();
  const rcvDh = x25519.utils.randomSecretKey();
  const r = await rcv.command(
    new Uint8Array(0),
    cmd.new(ed25519.getPublicKey(rcvAuth), x25519.getPublicKey(rcvDh), true),
    { ed25519: rcvAuth },
  );
  const q = parseIds(r.params);
  const key = boxBeforeNm(q.srvDh, rcvDh);
  const signer = { ed25519: rcvAuth };
  return {
    async run(): Promise<number> {
      const sends = snd.batch(
        Array.from({ length: BATCH }, () => ({ entityId: q.sndId, command: cmd.send(stamped()) })),
      );
      for (let i = 0; i < BATCH; i++) {
        const m = openMsg((await rcv.nextPush((p) => p.tag === "MSG", TIMEOUT_MS)).params, key);
        latencies.push(performance.now() - sentAt(m.body));
        const ack = await rcv.command(q.rcvId, cmd.ack(m.msgId), signer);
        if (ack.tag !== "OK") throw new Error(`SMP ACK: ${ack.tag}`);
      }
      for (const s of await sends) if (s.tag !== "OK") throw new Error(`SMP SEND: ${s.tag}`);
      return BATCH;
    },
    close() {
      rcv.close();
      snd.close();
    },
  };
}

async function bridgedPath(bridgeUrl: string, address: string, latencies: number[]) {
  const webSocket = (u: string) => new WebSocket(u, { perMessageDeflate: false }) as never;
  const rcv = (await connectSmpBridge(bridgeUrl, address, { webSocket, timeoutMs: TIMEOUT_MS })).client;
  const snd = (await connectSmpBridge(bridgeUrl, address, { webSocket, timeoutMs: TIMEOUT_MS })).client;
  const q = await rcv.createQueue(true);
  const waiting: ((m: SmpMessage) => void)[] = [];
  const inbox: SmpMessage[] = [];
  rcv.onPush((p) => {
    if (p.tag !== "MSG") return;
    const w = waiting.shift();
    if (w) w(p.message);
    else inbox.push(p.message);
  });
  const next = () =>
    new Promise<SmpMessage>((resolve) => {
      const m = inbox.shift();
      if (m) resolve(m);
      else waiting.push(resolve);
    });
  return {
    async run(): Promise<number> {
      const sends = Promise.all(Array.from({ length: BATCH }, () => snd.send(q.sndId, stamped())));
      for (let i = 0; i < BATCH; i++) {
        const m = await next();
        latencies.push(performance.now() - sentAt(m.body));
        await rcv.ack(q, m.msgId);
      }
      await sends;
      return BATCH;
    },
    close() {
      rcv.close();
      snd.close();
    },
  };
}

async function wsPath(url: string, latencies: number[]) {
  const waiting: ((m: { msgId: Uint8Array; body: Uint8Array }) => void)[] = [];
  const inbox: { msgId: Uint8Array; body: Uint8Array }[] = [];
  const rcv = await RelayClient.connect(new WebSocketLink(new WebSocket(url, { perMessageDeflate: false })), {
    onMessage: (m) => {
      const w = waiting.shift();
      if (w) w(m);
      else inbox.push(m);
    },
  });
  const snd = await RelayClient.connect(new WebSocketLink(new WebSocket(url, { perMessageDeflate: false })));
  const queue = await rcv.createQueue();
  await rcv.subscribe(queue, 1);
  const next = () =>
    new Promise<{ msgId: Uint8Array; body: Uint8Array }>((resolve) => {
      const m = inbox.shift();
      if (m) resolve(m);
      else waiting.push(resolve);
    });
  return {
    async run(): Promise<number> {
      const sends = Promise.all(
        Array.from({ length: BATCH }, () => snd.send({ senderId: queue.senderId }, stamped())),
      );
      for (let i = 0; i < BATCH; i++) {
        const m = await next();
        latencies.push(performance.now() - sentAt(m.body));
        await rcv.ack(queue, m.msgId);
      }
      await sends;
      return BATCH;
    },
    close() {
      rcv.close();
      snd.close();
    },
  };
}

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), "loft-bench-smp-"));
  let proc: LoftProcess | undefined;
  try {
    proc = await startLoft({
      entry: "relay-ws/main.ts",
      args: [
        "--relay-data-dir",
        dataDir,
        "--smp-port",
        "0",
        "--smp-host",
        "127.0.0.1",
        "--smp-address-host",
        "localhost",
        "--relay-rate",
        "0",
        // One process measures from one address: no per-source limits (as bench/relay.ts).
        "--relay-source-rate",
        "0",
        "--relay-source-store-rate",
        "0",
        // The bridge reaches the listener on loopback.
        "--smp-bridge-private",
        "true",
      ],
    });
    const address = await loggedSmpAddress(proc);
    const smpLat: number[] = [];
    const wsLat: number[] = [];
    const bridgedLat: number[] = [];
    const smp = await smpPath(address, smpLat);
    const bridged = await bridgedPath(`ws://127.0.0.1:${proc.port}/smp-bridge`, address, bridgedLat);
    const ws = await wsPath(`ws://127.0.0.1:${proc.port}/relay`, wsLat);
    log(`bench:smp: batches of ${BATCH} × ${SIZE} B, one message in flight to the receiver`);
    const rates = await alternate(
      [
        { name: "smp", run: () => smp.run() },
        { name: "ws", run: () => ws.run() },
        { name: "bridged", run: () => bridged.run() },
      ],
      { sliceSeconds: 0, ...(QUICK ? { rounds: 2 } : { rounds: 12 }) },
    );
    smp.close();
    ws.close();
    bridged.close();
    const s = rateOf(rates, "smp");
    const w = rateOf(rates, "ws");
    const b = rateOf(rates, "bridged");
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    const ls = sorted(smpLat);
    const lw = sorted(wsLat);
    const lb = sorted(bridgedLat);
    const ratio = sliceRatio(s, w);
    report(
      "bench:smp — SMP SEND→MSG, direct and bridged, next to the WebSocket path, same relay, same run",
      [
        {
          name: "SMP SEND→MSG (+ACK), msg/s",
          value: median(s.slices),
          unit: "msg/s",
          baseline: { name: "WebSocket", value: median(w.slices) },
          ratio,
          ratioRange: sliceRatioRange(s, w),
        },
        ...latencyRows((p) => `SMP latency p${p}`, ls, { name: "WebSocket", samples: lw }),
        {
          name: "bridged SMP SEND→MSG (+ACK), msg/s",
          value: median(b.slices),
          unit: "msg/s",
          baseline: { name: "WebSocket", value: median(w.slices) },
          ratio: sliceRatio(b, w),
          ratioRange: sliceRatioRange(b, w),
        },
        {
          name: "bridged SMP latency p99",
          value: percentile(lb, 99),
          unit: "ms",
          baseline: { name: "WebSocket", value: percentile(lw, 99) },
        },
      ],
      {
        bench: "smp",
        batch: BATCH,
        size: SIZE,
        smp: { msg_per_s: median(s.slices), p50_ms: percentile(ls, 50), p99_ms: percentile(ls, 99) },
        ws: { msg_per_s: median(w.slices), p50_ms: percentile(lw, 50), p99_ms: percentile(lw, 99) },
        bridged: { msg_per_s: median(b.slices), p50_ms: percentile(lb, 50), p99_ms: percentile(lb, 99) },
        smp_vs_ws: ratio,
        smp_vs_ws_range: sliceRatioRange(s, w),
        bridged_vs_ws: sliceRatio(b, w),
        bridged_vs_ws_range: sliceRatioRange(b, w),
        bridged_vs_smp: sliceRatio(b, s),
      },
    );
  } catch (e) {
    if (proc) process.stderr.write(proc.output().split("\n").slice(-20).join("\n"));
    if (proc?.metricsUrl) {
      const text = await (await fetch(`${proc.metricsUrl}/metrics`)).text();
      process.stderr.write(
        `${text
          .split("\n")
          .filter((l) => l.startsWith("loft_relay_errors_total") || l.includes("SMP_"))
          .join("\n")}\n`,
      );
    }
    throw e;
  } finally {
    await proc?.stop("SIGTERM");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
