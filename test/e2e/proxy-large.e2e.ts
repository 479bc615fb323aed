/**
 * The proxy's flow control with a LARGE body through the Service Worker (docs/protocol/proxy.md
 * §Flow control, "Not held back"): a page on the content origin fetches a file much larger than
 * what Chromium drains for a stopped fetch() on the direct path, reads one chunk and stops. What
 * the Loft window handed the worker (bytes of `chunk` replies on the worker's port) is counted
 * against the file's size: does the browser stop pulling the worker's stream at some bound?
 */
const APP_HOST = "loft.example.com";

import { mkdir, mkdtemp, open, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { byId, createIdentity } from "../support/loft-ui.ts";

const MIB = 1024 * 1024;
const SIZE = Number(process.env.LOFT_PROXY_LARGE_MIB ?? 256) * MIB;

describe("proxy flow control: a large body through the Service Worker", () => {
  let dir: string;
  let loft: LoftProcess;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "loft-proxy-large-"));
    loft = await startLoft();
    const app = `http://${APP_HOST}:${loft.port}`;
    const content = `http://peer.${APP_HOST}:${loft.port}`;
    browser = await launchChromium([
      "--host-resolver-rules=MAP *.example.com 127.0.0.1",
      `--unsafely-treat-insecure-origin-as-secure=${app},${content}`,
    ]);
    context = await browser.newContext();
    page = await context.newPage();
  });
  afterAll(async () => {
    await browser?.close();
    await loft?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("measures what the window hands the worker for a page that reads one chunk and stops", async () => {
    const app = `http://${APP_HOST}:${loft.port}`;
    await createIdentity(page, app, "Dana");
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
    await page.waitForFunction(() => document.documentElement.dataset.contentOrigin === "ready");
    const folder = join(dir, "large-site");
    await mkdir(folder, { recursive: true });
    const f = await open(join(folder, "huge.bin"), "w");
    const block = Buffer.alloc(MIB, 7);
    for (let i = 0; i < SIZE / MIB; i++) await f.write(block);
    await f.close();
    const { writeFile } = await import("node:fs/promises");
    await writeFile(join(folder, "index.html"), "<!doctype html><title>large</title><p>large</p>");
    await page.goto(`${app}/settings`);
    await byId(page, "share-folder-input").setInputFiles(folder);
    await expect
      .poll(() => byId(page, "share-status").textContent(), { timeout: 120_000 })
      .toContain("2 files");
    // Every chunk the window hands a worker, counted where it is posted (web/src/proxy/host.ts).
    await page.evaluate(() => {
      const g = globalThis as { handed?: number };
      g.handed = 0;
      const post = MessagePort.prototype.postMessage;
      MessagePort.prototype.postMessage = function (this: MessagePort, m: unknown, t?: unknown) {
        const r = m as { type?: string; bytes?: Uint8Array };
        if (r?.type === "chunk" && r.bytes) g.handed! += r.bytes.length;
        return (post as (m: unknown, t?: unknown) => void).call(this, m, t);
      } as typeof post;
    });
    const [preview] = await Promise.all([context.waitForEvent("page"), byId(page, "share-preview").click()]);
    await preview.waitForLoadState();
    const cdp = await browser.newBrowserCDPSession();
    const rss = async () => {
      const { processInfo } = (await cdp.send("SystemInfo.getProcessInfo")) as {
        processInfo: { type: string; id: number }[];
      };
      const out: Record<string, number> = {};
      for (const p of processInfo) {
        const status = await readFile(`/proc/${p.id}/status`, "utf8").catch(() => "");
        const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
        out[p.type] = (out[p.type] ?? 0) + Math.round(kb / 1024);
      }
      return out;
    };
    const handed = () => page.evaluate(() => (globalThis as { handed?: number }).handed ?? 0);
    /** Samples `get` each second until it has not moved for `quiet` samples or reached `top`. */
    const settle = async (get: () => Promise<number> | number, top: number, quiet = 8) => {
      let last = -1;
      let still = 0;
      const samples: string[] = [];
      for (let s = 0; s < 300 && still < quiet; s++) {
        await new Promise((r) => setTimeout(r, 1000));
        const h = await get();
        samples.push((h / MIB).toFixed(1));
        still = h === last ? still + 1 : 0;
        last = h;
        if (h >= top) break;
      }
      return { last, samples: samples.join(" ") };
    };

    // Served directly over HTTP (as in proxy.e2e.ts): a server that writes only as its socket takes more.
    let written = 0;
    const origin = createServer((req, res) => {
      if (req.url !== "/big") return res.end("<!doctype html><title>direct</title>");
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(SIZE) });
      const chunk = Buffer.alloc(64 * 1024, 7);
      const more = () => {
        while (written < SIZE) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    });
    await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
    const rounds = Number(process.env.LOFT_PROXY_LARGE_ROUNDS ?? 1);
    for (let round = 0; round < rounds; round++) {
      {
        const before = await rss();
        const h0 = await handed();
        const read = await preview.evaluate(async () => {
          const reader = (await fetch("huge.bin", { cache: "no-store" })).body!.getReader();
          (globalThis as { held?: unknown }).held = reader;
          return (await reader.read()).value!.length;
        });
        const { last, samples } = await settle(async () => (await handed()) - h0, SIZE);
        const after = await rss();
        console.log(
          `[proxy-large] round ${round} WORKER size ${SIZE / MIB} MiB, page read ${read} B, window handed the worker ${(last / MIB).toFixed(1)} MiB; samples ${samples}`,
        );
        console.log(`[proxy-large] RSS MiB before ${JSON.stringify(before)} after ${JSON.stringify(after)}`);
        await preview.evaluate(() => (globalThis as { held?: ReadableStreamDefaultReader }).held!.cancel());
      }
      {
        written = 0;
        const direct = await context.newPage();
        await direct.goto(`http://127.0.0.1:${(origin.address() as AddressInfo).port}/`);
        const before = await rss();
        const read = await direct.evaluate(async () => {
          const reader = (await fetch("/big")).body!.getReader();
          (globalThis as { held?: unknown }).held = reader;
          return (await reader.read()).value!.length;
        });
        const { last, samples } = await settle(() => written, SIZE);
        const after = await rss();
        console.log(
          `[proxy-large] round ${round} DIRECT size ${SIZE / MIB} MiB, page read ${read} B, server let go of ${(last / MIB).toFixed(1)} MiB; samples ${samples}`,
        );
        console.log(`[proxy-large] RSS MiB before ${JSON.stringify(before)} after ${JSON.stringify(after)}`);
        await direct.close();
        origin.closeAllConnections();
      }
    }
    await new Promise((r) => origin.close(r));
  });
});
