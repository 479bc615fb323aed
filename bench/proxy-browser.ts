/**
 * `npm run bench:proxy-browser [-- --json] [--quick] [--size 4194304] [--relay]` — the E2EE fetch proxy's
 * browser path (docs/protocol/proxy.md §Service Worker), in real Chromium through the real server
 * and the real app, inside the test network namespace (scripts/e2e.mjs --bench).
 *
 * Bob's app shares a folder ("Share a folder": the files copied into OPFS) with Alice; Alice and
 * Bob are contacts with a live session. Subjects, alternating in slices (bench/harness.ts
 * `alternate`), each timed in its own page from `fetch()` to the last byte of `arrayBuffer()`:
 *
 *  - proxy:  a page of Alice's on the content origin fetches `/peer/<Bob>/big.bin` — her content
 *            Service Worker → MessagePort → the bridge frame → her Loft window → `proxyClient` →
 *            PROXY frames on the Noise session over the WebRTC data channel → Bob's window → his
 *            share handler → OPFS, and back, the SW asking for up to 4 chunks at once;
 *  - local:  Bob's own preview of the same file, `/peer/<Bob>/big.bin` in a page of his: the same
 *            Service Worker, port, window and share handler, with the proxy client and server
 *            joined inside his page (core/proxy/pair.ts) — no session, no data channel. What the
 *            browser plumbing costs without the network leg;
 *  - direct: a page of Alice's fetches the same bytes from a plain node:http server on 127.0.0.1
 *            (no Service Worker, no encryption above the loopback): the baseline;
 *  - raw:    the same number of bytes over a bare RTCDataChannel between Alice's and Bob's app
 *            pages (no Loft, no Noise; 64 KiB messages, 1 MiB of `bufferedAmount`): the ceiling of
 *            anything carried over a data channel on this machine.
 *
 * Figures: MB/s of each; `browser_proxy_vs_direct`, `browser_local_vs_direct` and
 * `browser_proxy_vs_raw_channel` (median of the per-round ratios, with their ranges); CPU of the
 * whole browser (every process, CDP
 * `SystemInfo.getProcessInfo`) per MB for each subject, above what it burns idle
 * (`browser_idle_cores`, measured for 2 s before the rounds, times each subject's wall time); p50/p99 latency of a 1 KiB file, proxy,
 * direct and local alternating request by request (`browser_p50_overhead_ms` = proxy p50 − direct
 * p50; `local.p50_ms`: the part of it that is the browser's plumbing, without the session).
 * Bob's and Alice's engines run in the same Chromium, on the same two cores, as the server does.
 * `--relay`: the direct path made impossible (test/support/no-direct-path.ts drops every ICE
 * candidate), so the session runs on the live relay link through the server's relay, 1 MiB bodies
 * by default, no raw-channel subject (there is no channel).
 * `LOFT_BENCH_PROFILE=1` (or `=local`) first logs each page's CPU profile over five proxied (or
 * own-share) bodies: self time per function (bench/cpu-profile.ts).
 * Figures: bench/README.md, "bench:proxy-browser".
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CDPSession, Page } from "playwright-core";
import { byId, introduce, openChat } from "../test/support/loft-ui.ts";
import { NO_DIRECT_PATH } from "../test/support/no-direct-path.ts";
import { startTwoBrowsers } from "../test/support/two-browsers.ts";
import { startProfile } from "./cpu-profile.ts";
import {
  alternate,
  latencyRows,
  log,
  QUICK,
  rateOf,
  report,
  type SelfTimed,
  sliceRatio,
  sliceRatioRange,
} from "./harness.ts";
import { numberFlag, percentile } from "./relay-cli.ts";

/** `--relay`: no direct path (test/support/no-direct-path.ts): the session runs on the live relay link. */
const RELAY = process.argv.includes("--relay");
const SIZE = numberFlag("size", (RELAY ? 1 : 4) * 1024 * 1024);
const LATENCY_REQUESTS = QUICK || RELAY ? 30 : 200;
const APP_HOST = "loft.example.com";
const big = Uint8Array.from({ length: SIZE }, (_, i) => (i * 31 + 7) & 0xff);
const small = new Uint8Array(1024).fill(0x61);
const INDEX =
  '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bench</title></head><body></body></html>';

/** In `page`: fetch `path` whole, timed by the page's own clock. */
function timedFetch(page: Page, path: string): Promise<{ bytes: number; ms: number }> {
  return page.evaluate(async (path) => {
    const t = performance.now();
    const res = await fetch(path, { cache: "no-store" });
    if (res.status !== 200)
      throw new Error(`${path}: ${res.status} ${res.headers.get("x-loft-proxy-error")}`);
    const bytes = (await res.arrayBuffer()).byteLength;
    return { bytes, ms: performance.now() - t };
  }, path);
}

/**
 * A bare RTCDataChannel between Alice's page `a` and Bob's page `b` (no Loft: SDP handed across by
 * the bench, ICE gathered first), with the channel settings of a direct link's session channel
 * (ordered, reliable). Bob answers each `go` message with `size` bytes in 64 KiB messages, held
 * back by `bufferedAmount` (1 MiB, as the session channel's drain).
 */
async function rawChannel(a: Page, b: Page, size: number): Promise<void> {
  const offer = await a.evaluate(async () => {
    const g = globalThis as unknown as { __raw: RTCPeerConnection; __rawCh: RTCDataChannel };
    const pc = new RTCPeerConnection();
    g.__raw = pc;
    g.__rawCh = pc.createDataChannel("raw", { ordered: true });
    g.__rawCh.binaryType = "arraybuffer";
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== "complete")
      await new Promise<void>((r) =>
        pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r()),
      );
    return pc.localDescription!.sdp;
  });
  const answer = await b.evaluate(
    async ({ offer, size }) => {
      const g = globalThis as unknown as { __raw: RTCPeerConnection };
      const pc = new RTCPeerConnection();
      g.__raw = pc;
      pc.ondatachannel = ({ channel }) => {
        channel.binaryType = "arraybuffer";
        const piece = new Uint8Array(64 * 1024).fill(7);
        channel.onmessage = async () => {
          for (let sent = 0; sent < size; ) {
            if (channel.bufferedAmount > 1024 * 1024)
              await new Promise<void>((r) => {
                channel.bufferedAmountLowThreshold = 256 * 1024;
                channel.onbufferedamountlow = () => r();
              });
            const n = Math.min(piece.length, size - sent);
            channel.send(n === piece.length ? piece : piece.subarray(0, n));
            sent += n;
          }
        };
      };
      await pc.setRemoteDescription({ type: "offer", sdp: offer });
      await pc.setLocalDescription(await pc.createAnswer());
      if (pc.iceGatheringState !== "complete")
        await new Promise<void>((r) =>
          pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r()),
        );
      return pc.localDescription!.sdp;
    },
    { offer, size },
  );
  await a.evaluate(async (sdp) => {
    const g = globalThis as unknown as { __raw: RTCPeerConnection; __rawCh: RTCDataChannel };
    await g.__raw.setRemoteDescription({ type: "answer", sdp });
    if (g.__rawCh.readyState !== "open") await new Promise((r) => (g.__rawCh.onopen = r));
  }, answer);
}

/** In Alice's page: ask Bob's bare channel for `size` bytes and time them to the last one. */
function timedRaw(a: Page, size: number): Promise<{ bytes: number; ms: number }> {
  return a.evaluate(async (size) => {
    const ch = (globalThis as unknown as { __rawCh: RTCDataChannel }).__rawCh;
    const t = performance.now();
    let got = 0;
    await new Promise<void>((resolve) => {
      ch.onmessage = (e: MessageEvent<ArrayBuffer>) => {
        got += e.data.byteLength;
        if (got >= size) resolve();
      };
      ch.send("go");
    });
    return { bytes: got, ms: performance.now() - t };
  }, size);
}

/** CPU time so far of each browser process, by type and id, in seconds. */
async function cpuByProcess(cdp: CDPSession): Promise<Map<string, number>> {
  const info = (await cdp.send("SystemInfo.getProcessInfo")) as {
    processInfo: { type: string; id: number; cpuTime: number }[];
  };
  return new Map(info.processInfo.map((p) => [`${p.type} ${p.id}`, p.cpuTime]));
}

/**
 * CPU time so far of every thread of the given browser processes, by process type and thread name
 * (Linux: /proc/<pid>/task/<tid>/stat, utime + stime), in seconds; empty where /proc is not there.
 * Says which thread of a renderer works (its main thread, a worker's, the compositor, the IO
 * thread carrying WebSocket and port messages) where CDP's per-process figure cannot.
 */
async function cpuByThread(processes: { type: string; id: number }[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const tick = 100; // USER_HZ on Linux
  for (const { type, id } of processes) {
    let tids: string[];
    try {
      tids = await readdir(`/proc/${id}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const stat = await readFile(`/proc/${id}/task/${tid}/stat`, "utf8");
        const close = stat.lastIndexOf(")");
        const name = stat.slice(stat.indexOf("(") + 1, close).replace(/[0-9]+$/, "");
        const fields = stat.slice(close + 2).split(" ");
        const seconds = (Number(fields[11]) + Number(fields[12])) / tick;
        const key = `${type} ${id} ${name}`;
        out.set(key, (out.get(key) ?? 0) + seconds);
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return out;
}

/** CPU time of the whole browser so far (every process), in seconds. */
async function browserCpu(cdp: CDPSession): Promise<number> {
  const info = (await cdp.send("SystemInfo.getProcessInfo")) as { processInfo: { cpuTime: number }[] };
  return info.processInfo.reduce((s, p) => s + p.cpuTime, 0);
}

async function main(): Promise<void> {
  const siteDir = await mkdtemp(join(tmpdir(), "loft-bench-proxy-"));
  const direct = createServer((req, res) => {
    const body =
      req.url === "/big.bin" ? big : req.url === "/small.bin" ? small : req.url === "/" ? INDEX : null;
    if (body === null) return void res.writeHead(404).end();
    res.writeHead(200, {
      "content-type": req.url === "/" ? "text/html" : "application/octet-stream",
      "content-length": body.length,
      "cache-control": "no-store",
    });
    res.end(body);
  });
  direct.keepAliveTimeout = 120_000;
  await new Promise<void>((r) => direct.listen(0, "127.0.0.1", r));
  const directUrl = `http://127.0.0.1:${(direct.address() as AddressInfo).port}`;
  // The app as `loft.example.com` and its content origin `peer.loft.example.com` (as in
  // test/e2e/proxy.e2e.ts): shared pages need the content origin (docs/protocol/proxy.md §Isolation).
  const env = await startTwoBrowsers({
    ...(RELAY ? { initScript: NO_DIRECT_PATH } : {}),
    chromiumArgs: (loft) => [
      `--host-resolver-rules=MAP *.example.com 127.0.0.1`,
      `--unsafely-treat-insecure-origin-as-secure=http://${APP_HOST}:${loft.port},http://peer.${APP_HOST}:${loft.port}`,
    ],
  });
  const app = `http://${APP_HOST}:${env.loft.port}`;
  const content = `http://peer.${APP_HOST}:${env.loft.port}`;
  try {
    const { a, b } = env;
    const [, bobId] = await introduce(a, b, app);
    const folder = join(siteDir, "bench-site");
    await rm(folder, { recursive: true, force: true });
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, "index.html"), INDEX);
    await writeFile(join(folder, "big.bin"), big);
    await writeFile(join(folder, "small.bin"), small);
    // Bob shares the folder with Alice (Settings → Share a folder, then tick Alice).
    await b.goto(`${app}/settings`);
    await byId(b, "share-folder-input").setInputFiles(folder);
    await b.waitForFunction(
      () => document.querySelector("[data-testid=share-status]")?.textContent?.startsWith("Shared “"),
      undefined,
      { timeout: 120_000 },
    );
    await byId(b, "share-item").getByLabel("Alice").check();
    await b.waitForFunction(() => document.documentElement.dataset.contentOrigin === "ready", undefined, {
      timeout: 60_000,
    });
    // Not waitForPresence: its waits are vitest polls, which need a test runner.
    await openChat(a, bobId);
    await a.waitForFunction(
      (relay) =>
        document
          .querySelector("[data-testid=chat-presence]")
          ?.textContent?.startsWith(relay ? "online · via relay" : "online"),
      RELAY,
      { timeout: 60_000 },
    );
    await a.waitForFunction(() => document.documentElement.dataset.contentOrigin === "ready", undefined, {
      timeout: 60_000,
    });
    const presence = (await byId(a, "chat-presence").textContent()) ?? "";
    log(`Alice sees Bob: ${presence}`);

    const proxyPage = await env.alice.newPage();
    await proxyPage.goto(`${content}/peer/${bobId}/index.html`);
    const localPage = await env.bob.newPage();
    await localPage.goto(`${content}/peer/${bobId}/index.html`);
    const directPage = await env.alice.newPage();
    await directPage.goto(`${directUrl}/`);
    for (const [name, page] of [
      ["proxy", proxyPage],
      ["local", localPage],
      ["direct", directPage],
    ] as const) {
      const got = await timedFetch(page, "big.bin");
      if (got.bytes !== SIZE) throw new Error(`${name}: ${got.bytes} bytes, not ${SIZE}`);
    }

    if (process.env.LOFT_BENCH_PROFILE) {
      // Where each page's CPU goes while Alice fetches through Bob (self time per function).
      const which = process.env.LOFT_BENCH_PROFILE === "local" ? localPage : proxyPage;
      // First without the profiler (its sampling costs each page CPU of its own).
      const byType = await env.browser.newBrowserCDPSession();
      const processes = (
        (await byType.send("SystemInfo.getProcessInfo")) as { processInfo: { type: string; id: number }[] }
      ).processInfo;
      // The same browser idle for 2 s first: what each thread burns doing nothing, per second.
      const idle0 = await cpuByThread(processes);
      const idleT = performance.now();
      await new Promise((r) => setTimeout(r, 2000));
      const idleSeconds = (performance.now() - idleT) / 1000;
      const idle1 = await cpuByThread(processes);
      const before = await cpuByProcess(byType);
      const threads0 = await cpuByThread(processes);
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) await timedFetch(which, "big.bin");
      const wall = (performance.now() - t0) / 1000;
      const threads1 = await cpuByThread(processes);
      const after = await cpuByProcess(byType);
      const mb = (5 * SIZE) / 1e6;
      log(`--- browser CPU by process over five bodies (ms per MB; ${(mb / wall).toFixed(2)} MB/s)`);
      for (const [key, t] of after) {
        const ms = ((t - (before.get(key) ?? 0)) * 1000) / mb;
        if (ms >= 0.5) log(`${ms.toFixed(1).padStart(7)}  ${key}`);
      }
      log("--- by thread (ms per MB; and what the thread burns idle for as long, ms per MB)");
      const rows = [...threads1]
        .map(([key, t]) => {
          const busy = ((t - (threads0.get(key) ?? t)) * 1000) / mb;
          const idle = (((idle1.get(key) ?? 0) - (idle0.get(key) ?? 0)) / idleSeconds) * ((wall * 1000) / mb);
          return { key, busy, idle };
        })
        .sort((x, y) => y.busy - x.busy);
      for (const r of rows)
        if (r.busy >= 1) log(`${r.busy.toFixed(1).padStart(7)} ${r.idle.toFixed(1).padStart(7)}  ${r.key}`);
      const stops = await Promise.all(
        [a, b, which].map((page) => startProfile(page, { intervalUs: 200, top: 30 })),
      );
      for (let i = 0; i < 5; i++) await timedFetch(which, "big.bin");
      for (const [name, stop] of [
        ["Alice's app page", stops[0]!],
        ["Bob's app page", stops[1]!],
        ["the fetching page", stops[2]!],
      ] as const) {
        log(`--- ${name}`);
        for (const r of await stop()) log(`${r.pct.toFixed(1).padStart(5)}%  ${r.fn}`);
      }
    }

    const cdp = await env.browser.newBrowserCDPSession();
    const cpu = new Map<string, { seconds: number; wall: number; mb: number }>();
    // What the browser burns doing nothing (six pages open, their timers): subtracted from each
    // subject's CPU for the time it ran, or a slow subject's per-MB figure is mostly this.
    const idleAt = await browserCpu(cdp);
    const idleT = performance.now();
    await new Promise((r) => setTimeout(r, 2000));
    const idleCores = ((await browserCpu(cdp)) - idleAt) / ((performance.now() - idleT) / 1000);
    if (!RELAY) {
      await rawChannel(a, b, SIZE);
      if ((await timedRaw(a, SIZE)).bytes !== SIZE) throw new Error("raw channel: wrong size");
    }
    const subject = (name: string, page: Page) => ({
      name,
      run: async (): Promise<SelfTimed> => {
        const c0 = await browserCpu(cdp);
        const w0 = performance.now();
        const got = name === "raw" ? await timedRaw(a, SIZE) : await timedFetch(page, "big.bin");
        const used = (await browserCpu(cdp)) - c0;
        const wall = (performance.now() - w0) / 1000;
        const sum = cpu.get(name) ?? { seconds: 0, wall: 0, mb: 0 };
        cpu.set(name, { seconds: sum.seconds + used, wall: sum.wall + wall, mb: sum.mb + got.bytes / 1e6 });
        return { ops: got.bytes / 1e6, seconds: got.ms / 1000 };
      },
    });
    log(`throughput: one ${SIZE} B body at a time`);
    const rates = await alternate([
      subject("proxy", proxyPage),
      subject("direct", directPage),
      subject("local", localPage),
      ...(RELAY ? [] : [subject("raw", a)]),
    ]);
    const p = rateOf(rates, "proxy");
    const d = rateOf(rates, "direct");
    const l = rateOf(rates, "local");
    const r = RELAY ? undefined : rateOf(rates, "raw");
    /** Browser CPU milliseconds per MB of `name`'s bodies, above the browser's idle. */
    const cpuPerMb = (name: string) => {
      const c = cpu.get(name)!;
      return (Math.max(0, c.seconds - idleCores * c.wall) * 1000) / c.mb;
    };

    log(`latency: ${LATENCY_REQUESTS} requests of 1 KiB each way (proxy, direct, local), alternating`);
    const lp: number[] = [];
    const ld: number[] = [];
    const ll: number[] = [];
    for (let i = 0; i < LATENCY_REQUESTS; i++) {
      const order: [Page, number[]][] = [
        [proxyPage, lp],
        [directPage, ld],
        [localPage, ll],
      ];
      if (i % 2 === 1) order.reverse();
      for (const [page, into] of order) into.push((await timedFetch(page, "small.bin")).ms);
    }
    for (const l of [lp, ld, ll]) l.sort((x, y) => x - y);
    const overhead = percentile(lp, 50) - percentile(ld, 50);
    const direct = { name: "direct", samples: ld };
    report(
      "bench:proxy-browser — /peer/<contact>/… through the Service Worker and the live session vs a direct fetch, same browser, same run",
      [
        {
          name: `throughput, ${(SIZE / 1024).toFixed(0)} KiB bodies (proxy)`,
          value: p.perSecond,
          unit: "MB/s",
          baseline: { name: "direct", value: d.perSecond },
          ratio: sliceRatio(p, d),
          ratioRange: sliceRatioRange(p, d),
        },
        {
          name: "own share, no session (local)",
          value: l.perSecond,
          unit: "MB/s",
          baseline: { name: "direct", value: d.perSecond },
          ratio: sliceRatio(l, d),
          ratioRange: sliceRatioRange(l, d),
        },
        ...(r
          ? [
              {
                name: "proxy vs a bare data channel between the pages",
                value: p.perSecond,
                unit: "MB/s",
                baseline: { name: "raw channel", value: r.perSecond },
                ratio: sliceRatio(p, r),
                ratioRange: sliceRatioRange(p, r),
              },
              {
                name: "browser CPU per MB (raw channel)",
                value: cpuPerMb("raw"),
                unit: "ms",
                baseline: { name: "direct", value: cpuPerMb("direct") },
              },
            ]
          : []),
        {
          name: "browser CPU per MB (proxy)",
          value: cpuPerMb("proxy"),
          unit: "ms",
          baseline: { name: "direct", value: cpuPerMb("direct") },
        },
        {
          name: "browser CPU per MB (local)",
          value: cpuPerMb("local"),
          unit: "ms",
          baseline: { name: "direct", value: cpuPerMb("direct") },
        },
        ...latencyRows((p) => `latency p${p}, 1 KiB`, lp, direct, [50]),
        ...latencyRows(() => "latency p50, 1 KiB, own share (local)", ll, direct, [50]),
        ...latencyRows((p) => `latency p${p}, 1 KiB`, lp, direct, [99]),
      ],
      {
        bench: "proxy-browser",
        path: RELAY ? "relay" : "direct",
        browser_idle_cores: idleCores,
        presence,
        size_bytes: SIZE,
        proxy: {
          mb_per_s: p.perSecond,
          p50_ms: percentile(lp, 50),
          p99_ms: percentile(lp, 99),
          cpu_ms_per_mb: cpuPerMb("proxy"),
        },
        local: {
          mb_per_s: l.perSecond,
          cpu_ms_per_mb: cpuPerMb("local"),
          p50_ms: percentile(ll, 50),
          p99_ms: percentile(ll, 99),
        },
        direct: {
          mb_per_s: d.perSecond,
          p50_ms: percentile(ld, 50),
          p99_ms: percentile(ld, 99),
          cpu_ms_per_mb: cpuPerMb("direct"),
        },
        browser_proxy_vs_direct: sliceRatio(p, d),
        browser_proxy_vs_direct_range: sliceRatioRange(p, d),
        browser_local_vs_direct: sliceRatio(l, d),
        browser_local_vs_direct_range: sliceRatioRange(l, d),
        browser_proxy_vs_local: sliceRatio(p, l),
        ...(r
          ? {
              raw_channel: { mb_per_s: r.perSecond, cpu_ms_per_mb: cpuPerMb("raw") },
              browser_proxy_vs_raw_channel: sliceRatio(p, r),
              browser_proxy_vs_raw_channel_range: sliceRatioRange(p, r),
              raw_channel_vs_direct: sliceRatio(r, d),
            }
          : {}),
        browser_p50_overhead_ms: overhead,
      },
    );
  } finally {
    await env.close();
    direct.close();
    await rm(siteDir, { recursive: true, force: true });
  }
}

await main();
