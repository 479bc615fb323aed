/**
 * The proxy's flow control with a LARGE body through the Service Worker (docs/protocol/proxy.md
 * §Flow control, "Not held back"): a page on the content origin fetches a shared file much larger
 * than what Chromium drains for a page's stopped fetch(), reads one chunk and stops. Chromium then
 * drains the worker's stream ahead of the page (as it drains a body served directly, with no
 * worker: proxy.e2e.ts "reads one chunk and stops"), but only up to a bound of its own: the Loft
 * window is not made to hand the worker the whole file. Once the page reads on, every byte arrives.
 *
 * What the window handed the worker is counted where it posts each chunk (web/src/proxy/host.ts
 * `reply`), against the file's size. The real share handler reads the file from OPFS.
 *
 * By hand (docs/protocol/proxy.md §Flow control records the figures): LOFT_PROXY_LARGE_MIB=256.
 */
const APP_HOST = "loft.example.com";

import { mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { byId, createIdentity } from "../support/loft-ui.ts";

const MIB = 1024 * 1024;
/** Well past the ~55 MiB Chromium held back through the worker, and the ~64–86 MiB directly. */
const SIZE = Number(process.env.LOFT_PROXY_LARGE_MIB ?? 128) * MIB;
/** The file's byte at `i` (a whole number of MiB repeats it exactly: 256 divides 1 MiB). */
const byteAt = (i: number) => (i * 13 + 5) & 0xff;

describe("proxy flow control: a large body through the Service Worker", () => {
  let dir: string;
  let loft: LoftProcess;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let app: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "loft-proxy-large-"));
    loft = await startLoft();
    app = `http://${APP_HOST}:${loft.port}`;
    const content = `http://peer.${APP_HOST}:${loft.port}`;
    // Two origins of one site, as in proxy.e2e.ts (the bridge frame's worker is the tab's).
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

  it("a page that reads one chunk of a shared file far larger than Chromium's drain and stops: the window is not drained of the whole file, and reading on gets every byte", {
    // The stop is waited on for up to 120 s (below); the file's 128 MiB are written and read around it.
    timeout: 240_000,
  }, async () => {
    await createIdentity(page, app, "Dana");
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
    await page.waitForFunction(() => document.documentElement.dataset.contentOrigin === "ready");
    const folder = join(dir, "large-site");
    await mkdir(folder, { recursive: true });
    const block = Buffer.from(Array.from({ length: MIB }, (_, i) => byteAt(i)));
    const f = await open(join(folder, "huge.bin"), "w");
    for (let i = 0; i < SIZE / MIB; i++) await f.write(block);
    await f.close();
    await writeFile(join(folder, "index.html"), "<!doctype html><title>large</title><p>large</p>");
    await page.goto(`${app}/settings`);
    await byId(page, "share-folder-input").setInputFiles(folder);
    await expect
      .poll(() => byId(page, "share-status").textContent())
      .toContain("Shared “large-site”: 2 files");
    // At the window, per port (one port per request, web/src/proxy/host.ts `carry`): the worker's
    // pulls as they arrive, and what answered them — each chunk (its bytes counted as it is posted)
    // or the end (after which the pulls still coming are owed nothing).
    await page.evaluate(() => {
      type Flow = { pulls: number; answered: number; handed: number; ended: boolean };
      const ports = new Map<MessagePort, Flow>();
      (globalThis as { flows?: Map<MessagePort, Flow> }).flows = ports;
      const of = (port: MessagePort) => {
        const f = ports.get(port) ?? { pulls: 0, answered: 0, handed: 0, ended: false };
        ports.set(port, f);
        return f;
      };
      const post = MessagePort.prototype.postMessage;
      MessagePort.prototype.postMessage = function (this: MessagePort, m: unknown, t?: unknown) {
        const r = m as { type?: string; bytes?: Uint8Array };
        if (r?.type === "chunk" && r.bytes) {
          of(this).handed += r.bytes.length;
          of(this).answered++;
        } else if (r?.type === "end" || r?.type === "error") {
          of(this).answered++;
          of(this).ended = true;
        }
        return (post as (m: unknown, t?: unknown) => void).call(this, m, t);
      } as typeof post;
      const onmessage = Object.getOwnPropertyDescriptor(MessagePort.prototype, "onmessage")!;
      Object.defineProperty(MessagePort.prototype, "onmessage", {
        ...onmessage,
        set(this: MessagePort, handler: unknown) {
          const port = this;
          onmessage.set!.call(
            port,
            typeof handler === "function"
              ? function (this: MessagePort, e: MessageEvent) {
                  if ((e.data as { type?: string } | null)?.type === "pull") of(port).pulls++;
                  return handler.call(this, e);
                }
              : handler,
          );
        },
      });
    });
    const [preview] = await Promise.all([context.waitForEvent("page"), byId(page, "share-preview").click()]);
    await preview.waitForLoadState();
    /** huge.bin's port: the one that handed the most (the other requests are a few bytes each). */
    const flow = () =>
      page.evaluate(() => {
        const flows = (
          globalThis as {
            flows?: Map<MessagePort, { pulls: number; answered: number; handed: number; ended: boolean }>;
          }
        ).flows!;
        return [...flows.values()].reduce((a, b) => (b.handed > a.handed ? b : a), {
          pulls: 0,
          answered: 0,
          handed: 0,
          ended: false,
        });
      });
    const handed = async () => (await flow()).handed;

    const first = await preview.evaluate(async () => {
      const reader = (await fetch("huge.bin", { cache: "no-store" })).body!.getReader();
      (globalThis as { held?: unknown }).held = reader;
      return [...(await reader.read()).value!];
    });
    expect(first.length).toBeGreaterThan(0);
    expect(first.every((b, i) => b === byteAt(i))).toBe(true);
    // Wait until the browser has stopped pulling the worker's stream, shown, not guessed from a
    // pause: the window owes the worker nothing (every pull it received answered, or the body
    // ended), and the preview page then fetches a page of the share through the same worker and
    // window — the browser, the worker and the window all running — with no pull arriving
    // meanwhile; three rounds in a row. (Two equal readings 2 s apart passed whenever a loaded
    // machine held the browser that long.) A browser that drains the whole file settles at its
    // size, and fails below.
    let quiet = 0;
    let seen = -1;
    await expect
      .poll(
        async () => {
          const before = await flow();
          const index = await preview.evaluate(async () =>
            (await fetch("index.html", { cache: "no-store" })).text(),
          );
          const after = await flow();
          const still =
            index.includes("<p>large</p>") &&
            (before.ended || before.answered === before.pulls) &&
            after.pulls === before.pulls &&
            after.handed === before.handed;
          quiet = still ? quiet + 1 : 0;
          seen = after.handed;
          return quiet;
        },
        { timeout: 120_000 },
      )
      .toBeGreaterThanOrEqual(3);
    console.log(
      `[proxy-large] ${SIZE / MIB} MiB shared; the page read ${first.length} B, the window handed the worker ${(seen / MIB).toFixed(1)} MiB (${seen} B)`,
    );
    expect(seen).toBeGreaterThanOrEqual(first.length);
    expect(seen, "the browser drained the whole body through the worker").toBeLessThan(SIZE);

    // The page reads on: the rest arrives, every byte in its place, nothing lost to the pause.
    const rest = await preview.evaluate(
      async ({ from }) => {
        const reader = (globalThis as { held?: ReadableStreamDefaultReader<Uint8Array> }).held!;
        let at = from;
        let wrong = -1;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          for (let i = 0; i < value.length; i++)
            if (wrong < 0 && value[i] !== ((at + i) * 13 + 5) % 256) wrong = at + i;
          at += value.length;
        }
        return { at, wrong };
      },
      { from: first.length },
    );
    expect(rest).toEqual({ at: SIZE, wrong: -1 });
    expect(await handed()).toBe(SIZE);
  });
});
