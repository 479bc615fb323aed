/**
 * The setup most browser tests share: the real server (with its own relay data folder), one
 * Chromium, and two browser contexts — Alice's and Bob's — each with one page whose console lines
 * are collected (timestamped) for assertions and, with LOFT_E2E_LOGS=1, printed at the end.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { launchChromium } from "./browser.ts";
import { type LoftProcess, startLoft } from "./loft-process.ts";

export interface TwoBrowsers {
  loft: LoftProcess;
  browser: Browser;
  alice: BrowserContext;
  bob: BrowserContext;
  a: Page;
  b: Page;
  /** Console lines of every watched page, `"<seconds> <name>: <text>"`. */
  logs: string[];
  /** The relay's data folder (removed by close()). */
  dataDir: string;
  /** Collect a further page's console lines under `name`. */
  watch(name: string, page: Page): void;
  /** Print logs when LOFT_E2E_LOGS is set, close Chromium, stop the server, remove the data. */
  close(extraLog?: string): Promise<void>;
}

export interface TwoBrowsersOptions {
  /** A script run in every page of both contexts before the app (Playwright addInitScript). */
  initScript?: string;
  /** More server flags. */
  loftArgs?: string[];
  /** More server environment variables (secrets, which a flag would show in `ps`). */
  loftEnv?: Record<string, string>;
  /** More Chromium flags, given the started server (its port). */
  chromiumArgs?: (loft: LoftProcess) => string[];
}

export async function startTwoBrowsers(options: TwoBrowsersOptions = {}): Promise<TwoBrowsers> {
  const dataDir = mkdtempSync(join(tmpdir(), "loft-e2e-"));
  const loft = await startLoft({
    args: ["--relay-data-dir", dataDir, ...(options.loftArgs ?? [])],
    ...(options.loftEnv ? { env: options.loftEnv } : {}),
  });
  const browser = await launchChromium(options.chromiumArgs?.(loft));
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  if (options.initScript) {
    await alice.addInitScript(options.initScript);
    await bob.addInitScript(options.initScript);
  }
  const logs: string[] = [];
  const watch = (name: string, page: Page) =>
    page.on("console", (m) => logs.push(`${(performance.now() / 1000).toFixed(2)} ${name}: ${m.text()}`));
  const a = await alice.newPage();
  const b = await bob.newPage();
  watch("alice", a);
  watch("bob", b);
  return {
    loft,
    browser,
    alice,
    bob,
    a,
    b,
    logs,
    dataDir,
    watch,
    async close(extraLog) {
      if (process.env.LOFT_E2E_LOGS) console.log(`${logs.join("\n")}${extraLog ? `\n${extraLog}` : ""}`);
      await browser.close();
      await loft.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The setup for the tests of one `describe` (called in its body): started before the first test
 * (`started` then takes the parts it needs), closed after the last.
 */
export function twoBrowsersPerSuite(started: (env: TwoBrowsers) => void, options?: TwoBrowsersOptions): void {
  let env: TwoBrowsers | undefined;
  beforeAll(async () => {
    env = await startTwoBrowsers(options);
    started(env);
  });
  afterAll(async () => {
    await env?.close();
  });
}
