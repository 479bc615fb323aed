/**
 * bench:ui — what the chat screen costs per message, in real Chromium (`npm run bench:ui
 * [-- --json] [-- --quick]`; standalone: no server, no network, so no namespace needed):
 *
 *  (a) append_ms_{10,1000,10000}: median ms to append one message to a chat already showing 10,
 *      1 000 and 10 000 messages and lay the page out (samples of 20 appends, each laid out) — the real list (web/src/ui/chat/
 *      MessageList.tsx + timeline.ts + follow.ts, as Chat.tsx drives them). It must stay flat:
 *      `flatness` = append_ms_10000 / append_ms_10.
 *      Baseline, same page, same run: a bare `appendChild` of the same bubble markup into the same
 *      chunk containers (the floor); also reported, the same into one flat list
 *      (`append_flat_list_ms`: what a list that is not chunked pays in layout alone).
 *  (b) a 500-message burst, one message per task, into a chat showing 500: main-thread long
 *      tasks (> 50 ms) and the longest, next to the same burst through the bare `appendChild`
 *      floor, and a 100-message burst (30 with --quick) through the previous screen's way
 *      (history re-read and 500 rows re-rendered per message), compared per 100 messages.
 *
 * The page is bundled here by Vite (with the Solid plugin) from bench/ui-page.tsx and the real
 * modules, and served to Chromium through request interception. Figures: bench/README.md.
 */
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { build } from "vite";
import solid from "vite-plugin-solid";
import { launchChromium } from "../test/support/browser.ts";
import { log, report } from "./harness.ts";

const QUICK = process.argv.includes("--quick");
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SIZES = [10, 1_000, 10_000] as const;
const SAMPLES = QUICK ? 10 : 40;
const BURST = 500;
/** The previous screen re-renders 500 rows per message (~0.5 s each here): a shorter burst. */
const OLD_BURST = QUICK ? 30 : 100;
const ORIGIN = "http://bench.loft.invalid";

async function buildPage(outDir: string): Promise<void> {
  await build({
    configFile: false,
    root: ROOT,
    logLevel: "warn",
    plugins: [solid()],
    define: { "process.env.NODE_ENV": JSON.stringify("production") },
    build: {
      outDir,
      emptyOutDir: true,
      target: "es2022",
      minify: true,
      copyPublicDir: false,
      lib: { entry: join(ROOT, "bench/ui-page.tsx"), formats: ["es"], fileName: () => "bench.js" },
    },
  });
}

/** Serve the bundle and the app's stylesheet from memory: nothing listens, nothing leaves. */
async function open(page: Page, outDir: string): Promise<void> {
  const js = await readFile(join(outDir, "bench.js"), "utf8");
  const css = await readFile(join(ROOT, "web/src/styles.css"), "utf8");
  await page.route(`${ORIGIN}/**`, (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === "/bench.js") return route.fulfill({ contentType: "text/javascript", body: js });
    if (path === "/styles.css") return route.fulfill({ contentType: "text/css", body: css });
    return route.fulfill({
      contentType: "text/html",
      body: '<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/styles.css"><title>bench</title><body></body><script type="module" src="/bench.js"></script></html>',
    });
  });
  await page.goto(`${ORIGIN}/`);
  await page.waitForFunction(() => document.title === "ready");
}

type Kind = "timeline" | "bare" | "flat" | "reload";
interface Burst {
  long_tasks: number;
  longest_ms: number;
  total_ms: number;
  bubbles: number;
}
type BenchApi = {
  appendCost(kind: Kind, n: number, samples: number): Promise<number>;
  burst(kind: Kind, start: number, n: number): Promise<Burst>;
};
const api = <K extends keyof BenchApi>(page: Page, fn: K, ...args: Parameters<BenchApi[K]>) =>
  page.evaluate(
    ([f, a]) => {
      const b = (window as unknown as { loftBench: Record<string, (...x: unknown[]) => unknown> }).loftBench;
      return b[f as string]!(...(a as unknown[]));
    },
    [fn, args] as const,
  ) as ReturnType<BenchApi[K]>;

const round = (n: number, d = 3) => Number(n.toFixed(d));

async function main() {
  const outDir = join(tmpdir(), `loft-bench-ui-${process.pid}`);
  log("building the bench page…");
  await buildPage(outDir);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 420, height: 860 } });
    await open(page, outDir);
    const append: Record<string, number> = {};
    const floor: Record<string, number> = {};
    const flat: Record<string, number> = {};
    for (const n of SIZES) {
      log(`append to ${n}…`);
      append[n] = await api(page, "appendCost", "timeline", n, SAMPLES);
      floor[n] = await api(page, "appendCost", "bare", n, SAMPLES);
      flat[n] = await api(page, "appendCost", "flat", n, SAMPLES);
    }
    log(`burst of ${BURST}…`);
    const burst = await api(page, "burst", "timeline", BURST, BURST);
    const burstFloor = await api(page, "burst", "bare", BURST, BURST);
    const burstOld = await api(page, "burst", "reload", BURST, OLD_BURST);
    const per100 = (b: Burst, n: number) => (100 * b.long_tasks) / n;
    if (burst.bubbles !== 2 * BURST || burstFloor.bubbles !== 2 * BURST)
      throw new Error(`burst rendered ${burst.bubbles}/${burstFloor.bubbles} bubbles, expected ${2 * BURST}`);

    const rows = [
      ...SIZES.map((n) => ({
        name: `append one message to ${n.toLocaleString("en")}`,
        value: append[n]!,
        unit: "ms",
        baseline: { name: "bare appendChild", value: floor[n]! },
      })),
      {
        name: "long tasks per 100 messages, burst",
        value: per100(burst, BURST),
        unit: "",
        baseline: { name: "previous screen", value: Math.max(1, per100(burstOld, OLD_BURST)) },
      },
      {
        name: "longest task during the burst",
        value: burst.longest_ms,
        unit: "ms",
        baseline: { name: "previous screen", value: Math.max(1, burstOld.longest_ms) },
      },
      {
        name: "burst, total",
        value: burst.total_ms,
        unit: "ms",
        baseline: { name: "bare appendChild", value: burstFloor.total_ms },
      },
    ];
    const summary = {
      bench: "ui",
      append_ms: Object.fromEntries(SIZES.map((n) => [n, round(append[n]!)])),
      append_floor_ms: Object.fromEntries(SIZES.map((n) => [n, round(floor[n]!)])),
      append_flat_list_ms: Object.fromEntries(SIZES.map((n) => [n, round(flat[n]!)])),
      append_vs_floor: Object.fromEntries(SIZES.map((n) => [n, round(append[n]! / floor[n]!, 2)])),
      flatness: round(append[10_000]! / append[10]!, 2),
      floor_flatness: round(floor[10_000]! / floor[10]!, 2),
      burst: {
        messages: BURST,
        long_tasks: burst.long_tasks,
        longest_ms: round(burst.longest_ms, 1),
        total_ms: round(burst.total_ms, 1),
      },
      burst_floor: {
        long_tasks: burstFloor.long_tasks,
        longest_ms: round(burstFloor.longest_ms, 1),
        total_ms: round(burstFloor.total_ms, 1),
      },
      burst_previous_screen: {
        messages: OLD_BURST,
        long_tasks: burstOld.long_tasks,
        longest_ms: round(burstOld.longest_ms, 1),
        total_ms: round(burstOld.total_ms, 1),
      },
      burst_total_vs_floor: round(burst.total_ms / burstFloor.total_ms, 2),
      samples: SAMPLES,
    };
    report("bench:ui — chat screen render cost (real Chromium)", rows, summary);
  } finally {
    await browser.close();
    await rm(outDir, { recursive: true, force: true });
  }
}

await main();
