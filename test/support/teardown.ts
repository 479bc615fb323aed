/**
 * The end of a browser test file (its `afterAll`): what the file started is closed in order, and
 * every step is tried even when one before it failed.
 *
 *   afterAll(() => tearDown(() => closeBrowser(browser), () => loft?.stop(), () => rm(dir, …)));
 *
 * The pattern the e2e files copied, `await browser?.close(); await loft?.stop();`, stopped at the
 * first step that threw or hung: a Chromium that would not close (or whose close rejected) left
 * the server running and the file's data folders on disk — no `stop()`, so no graceful close
 * (test/support/loft-process.ts): only the test process's exit hook killed it, with SIGKILL, and
 * a close that hung held the hook for its whole timeout first. Here each step runs after the one
 * before settled, Chromium's close is bounded, and the failures are thrown together at the end,
 * so the file still fails on them.
 *
 * The order matters: Chromium first, then the servers. Its pages hold WebSockets and data
 * channels to the server; a server stopped under them tells each live page GOING_AWAY and waits
 * its close grace for them (docs/operations.md, "Stopping"), while the pages' engines
 * dial again and log the refusals — a slower stop and console errors that belong to no test.
 */
import type { Browser, BrowserContext } from "playwright-core";

/** A step of the end: undefined (a part the file never started) is skipped. */
export type TeardownStep = (() => unknown) | undefined;

/**
 * How long Chromium gets to close. Past it the next steps run anyway (the browser process is then
 * killed by Playwright when the test process exits); bounded like every other wait here.
 */
const BROWSER_CLOSE_BOUND_MS = 30_000;

/** Run every step in order, each after the one before settled; throw what failed, all of it. */
export async function tearDown(...steps: TeardownStep[]): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    if (!step) continue;
    try {
      await step();
    } catch (e) {
      failures.push(e);
    }
  }
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1)
    throw new AggregateError(
      failures,
      `${failures.length} steps of the teardown failed: ${failures.join("; ")}`,
    );
}

/**
 * Close Chromium (or a persistent context) if it was launched; a close that has not ended after
 * `BROWSER_CLOSE_BOUND_MS` rejects, so the steps after it still run and the file fails saying so.
 */
export async function closeBrowser(
  browser: Browser | BrowserContext | undefined,
  boundMs = BROWSER_CLOSE_BOUND_MS,
): Promise<void> {
  if (!browser) return;
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Chromium did not close within ${boundMs} ms; the steps after it went on`)),
      boundMs,
    );
  });
  try {
    await Promise.race([browser.close(), bound]);
  } finally {
    clearTimeout(timer);
  }
}
