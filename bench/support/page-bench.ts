/**
 * The start-up and the end that the browser benches driving whole engines in Chromium pages
 * (bench:chat, bench:files, bench:rooms-browser) share: the bench page built from its source and
 * served (bench/page-bundle.ts), the real server (its signaling at `signalingUrl`), Chromium, and
 * pages with the bench page loaded; `close` ends them in the order of test/support/teardown.ts —
 * Chromium first (bounded), then the servers, then the bundle's folder, every step tried even when
 * one before it failed (each bench had its own copy, which stopped at the first step that threw).
 */
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../../test/support/browser.ts";
import { type LoftProcess, startLoft } from "../../test/support/loft-process.ts";
import { closeBrowser, type TeardownStep, tearDown } from "../../test/support/teardown.ts";
import { log } from "../harness.ts";
import { buildPage, servePage } from "../page-bundle.ts";

export interface PageBench {
  /** Where the bench page is served (http://127.0.0.1:port). */
  readonly site: { url: string; close: () => void };
  readonly loft: LoftProcess;
  /** The server's signaling, for the pages' engines. */
  readonly signalingUrl: string;
  readonly browser: Browser;
  /** The bundle's folder (removed by `close`): a bench may keep profiles of its own in it. */
  readonly outDir: string;
  /** A new page in a browser context of its own (off the record: storage of its own). */
  newPage(): Promise<Page>;
  /** `page` at `url` (the bench page by default), once its `window.loftBench` is there. */
  load(page: Page, url?: string): Promise<Page>;
  /** `newPage` then `load`. */
  openPage(): Promise<Page>;
  /**
   * Chromium closed first, then `more` (what the bench started besides: other browsers, servers),
   * then the server, the page's server and the folder; throws what failed, all of it.
   */
  close(...more: TeardownStep[]): Promise<void>;
}

export interface PageBenchOptions {
  /** The browser (launched with `outDir` known); Chromium from test/support/browser.ts by default. */
  launch?: (outDir: string) => Promise<Browser>;
}

/** Builds and serves the bench page of `source` (`name` names its folder), starts the server and Chromium. */
export async function startPageBench(
  name: string,
  source: string,
  options: PageBenchOptions = {},
): Promise<PageBench> {
  const outDir = join(tmpdir(), `loft-bench-${name}-${process.pid}`);
  let site: PageBench["site"] | undefined;
  let loft: LoftProcess | undefined;
  let browser: Browser | undefined;
  const end = (...more: TeardownStep[]) =>
    tearDown(
      () => closeBrowser(browser),
      ...more,
      () => loft?.stop(),
      () => site?.close(),
      () => rm(outDir, { recursive: true, force: true }),
    );
  try {
    log("building the bench page…");
    await buildPage(source, outDir);
    site = await servePage(outDir);
    loft = await startLoft();
    browser = options.launch ? await options.launch(outDir) : await launchChromium();
  } catch (e) {
    // What started is stopped before the error goes on: a failed start leaves no server behind.
    await end().catch((also: unknown) => console.error(`after a failed start: ${String(also)}`));
    throw e;
  }
  const started = { site, loft, browser };
  const load = async (page: Page, url = started.site.url) => {
    await page.goto(url);
    await page.waitForFunction(() => "loftBench" in window);
    return page;
  };
  const newPage = async () => (await started.browser.newContext()).newPage();
  return {
    ...started,
    signalingUrl: `ws://127.0.0.1:${loft.port}/signal`,
    outDir,
    newPage,
    load,
    openPage: async () => load(await newPage()),
    close: end,
  };
}

/** Runs a bench's `main`: exit 0 when it ends (a bench may leave timers behind), 1 with the error. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
