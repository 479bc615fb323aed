/**
 * The page stops its engine while that engine is still starting (app/model.ts `#stopEngine`): a
 * new username restarts the engine under the new identity version, and here it comes while the
 * first start still waits for the engine's code (its chunk held back by the test, as a slow
 * network would). The first start is stopped, not kept: one engine runs afterwards, one signaling
 * connection — before, both engines ran over one storage, each with its own connection.
 *
 * `npm run build` first; `node scripts/e2e.mjs test/e2e/engine-restart.e2e.ts`. Waits are on
 * conditions only.
 */
import type { Browser, Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { byId, createIdentity } from "../support/loft-ui.ts";
import { fetchMetric } from "../support/metrics.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

describe("an engine stopped while it starts", () => {
  let loft: LoftProcess;
  let browser: Browser;

  beforeAll(async () => {
    loft = await startLoft();
    browser = await launchChromium();
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
    ),
  );

  it("a new username while the first start waits: that start is stopped, one engine and one connection follow", async () => {
    // No Service Worker: the page's own requests (the engine's chunk) reach the test's route.
    const context = await browser.newContext({ serviceWorkers: "block" });
    const page = await context.newPage();
    await createIdentity(page, loft.url, "Ann");
    const metrics = loft.metricsUrl!;
    await expect.poll(() => fetchMetric(metrics, "loft_signaling_registrations")).toBe(1);

    // The engine's chunk (web/src/engine-loader.ts imports it at each start) is held after a reload.
    const held: Route[] = [];
    let holding = true;
    await context.route(/\/assets\/chat-engine-[^/]*\.js$/, (route) =>
      holding ? void held.push(route) : route.continue(),
    );
    const signaling: string[] = [];
    page.on("websocket", (ws) => {
      if (new URL(ws.url()).pathname === "/signal") signaling.push(ws.url());
    });
    await page.reload();
    await byId(page, "home").waitFor();
    await expect.poll(() => held.length).toBeGreaterThan(0);
    await expect.poll(() => fetchMetric(metrics, "loft_signaling_registrations")).toBe(0);

    // A new username now: the engine restarts under the new identity version (model.ts
    // `changeUsername`) while the first start still waits for its code.
    await byId(page, "nav-settings").click();
    await byId(page, "settings-username").fill("Annie");
    await byId(page, "save-username").click();
    holding = false;
    for (const route of held.splice(0)) await route.continue();

    await expect
      .poll(() => byId(page, "username-result").textContent())
      .toBe("Saved. Contacts see the new name next time you connect.");
    await expect.poll(() => fetchMetric(metrics, "loft_signaling_registrations")).toBe(1);
    await expect.poll(() => signaling.length).toBeGreaterThan(0);
    // One engine: one signaling connection since the reload, and no registration replaced by
    // another of the same identity (two engines would each register it).
    expect(signaling).toHaveLength(1);
    expect(await fetchMetric(metrics, "loft_signaling_register_requests_total", 'outcome="replaced"')).toBe(
      0,
    );
    await context.close();
  });

  it("the page warms its crypto once (web/src/engine/warm-up.ts): at idle after the start, not again when the engine restarts", async () => {
    const context = await browser.newContext({ serviceWorkers: "block" });
    const page = await context.newPage();
    const engineLines: string[] = [];
    page.on("console", (m) => {
      if (m.text().includes("crypto warm")) engineLines.push(m.text());
    });
    await createIdentity(page, loft.url, "Bea");
    // A fresh page with no contact: nothing dials, so the warm-up runs — the page's provider, the
    // suite and ratchet version a first contact gets.
    await expect
      .poll(() => engineLines)
      .toEqual([
        expect.stringMatching(/crypto warmed up: Noise_XXhfs_25519\+MLKEM768_AESGCM_SHA256, ratchet 0x03, /),
      ]);
    const metrics = loft.metricsUrl!;
    // A new username restarts the engine in the same page: the page's warm-up is the new engine's.
    await byId(page, "nav-settings").click();
    await byId(page, "settings-username").fill("Beatrix");
    await byId(page, "save-username").click();
    await expect
      .poll(() => byId(page, "username-result").textContent())
      .toBe("Saved. Contacts see the new name next time you connect.");
    await expect.poll(() => fetchMetric(metrics, "loft_signaling_registrations")).toBeGreaterThan(0);
    // The restarted engine asked the page's warm-up, which had run: nothing more ran or was logged.
    await page.evaluate(() => new Promise((resolve) => requestIdleCallback(resolve, { timeout: 2000 })));
    expect(engineLines).toHaveLength(1);
    await context.close();
  });
});
