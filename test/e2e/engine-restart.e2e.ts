/**
 * The page stops its engine while that engine is still starting (app/model.ts `#stopEngine`): a
 * new username restarts the engine under the new identity version, and here it comes while the
 * first start still waits for the engine's code (its chunk held back by the test, as a slow
 * network would). The first start is stopped, not kept: one engine runs afterwards, one signaling
 * connection — before, both engines ran over one storage, each with its own connection. And a
 * deletion made while the code is still held ends without it: the stop does not wait for the
 * network (engine-loader.ts `madeUnlessStopped`).
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

  it("another tab deletes the identity while this one's start waits for the engine's code: this tab lets the engine go at once, and the next identity's engine runs", async () => {
    const context = await browser.newContext({ serviceWorkers: "block" });
    const page = await context.newPage();
    await createIdentity(page, loft.url, "Cy");
    const metrics = loft.metricsUrl!;
    await expect.poll(() => fetchMetric(metrics, "loft_signaling_registrations")).toBe(1);
    // A second tab: the chat runs in the first (its "loft-engine" Web Lock), so this one runs offline.
    const other = await context.newPage();
    await other.goto(loft.url);
    await byId(other, "home").waitFor();

    // The first tab's engine code held after its reload (that tab's requests only), never let go
    // before the end: its start waits for it, holding the engine lock (app/model.ts `#loadEngine`).
    const held: Route[] = [];
    await context.route(/\/assets\/chat-engine-[^/]*\.js$/, (route) =>
      route.request().frame().page() === page ? void held.push(route) : route.continue(),
    );
    await page.reload();
    await byId(page, "home").waitFor();
    await expect.poll(() => held.length).toBeGreaterThan(0);
    await expect.poll(() => fetchMetric(metrics, "loft_signaling_registrations")).toBe(0);

    // Deleted in the other tab: the first one is closed (app/model.ts `closeForOtherTab`), which
    // stops its start and lets the lock go once that stop ends — before, only when the code came.
    await byId(other, "nav-settings").click();
    await byId(other, "delete-identity").click();
    await byId(other, "confirm-delete").click();
    await byId(other, "onboarding").waitFor();
    await byId(page, "tab-closed").waitFor();
    // A new identity in the other tab takes the lock and runs the chat: it registers. Before, the
    // closed tab still held the lock, and this one ran the offline stand-in ("open in another tab").
    await createIdentity(other, loft.url, "Dee");
    await expect.poll(() => fetchMetric(metrics, "loft_signaling_registrations")).toBe(1);
    expect(held.length).toBeGreaterThan(0);
    await context.unroute(/\/assets\/chat-engine-[^/]*\.js$/);
    for (const route of held.splice(0)) await route.continue().catch(() => undefined);
    await context.close();
  });

  it("the identity deleted while the start still waits for the engine's code: the deletion does not wait for it", async () => {
    const context = await browser.newContext({ serviceWorkers: "block" });
    const page = await context.newPage();
    await createIdentity(page, loft.url, "Bea");
    const metrics = loft.metricsUrl!;
    await expect.poll(() => fetchMetric(metrics, "loft_signaling_registrations")).toBe(1);

    // The engine's chunk held after a reload, as a stalled network holds it, and never let go
    // before the deletion has ended.
    const held: Route[] = [];
    await context.route(/\/assets\/chat-engine-[^/]*\.js$/, (route) => void held.push(route));
    const signaling: string[] = [];
    page.on("websocket", (ws) => {
      if (new URL(ws.url()).pathname === "/signal") signaling.push(ws.url());
    });
    await page.reload();
    await byId(page, "home").waitFor();
    await expect.poll(() => held.length).toBeGreaterThan(0);
    await expect.poll(() => fetchMetric(metrics, "loft_signaling_registrations")).toBe(0);

    // Deleted now (Settings): the page stops the start under way (app/model.ts `deleteIdentity`,
    // `#stopEngine`) — before, that stop waited for the held code, and the deletion with it.
    await byId(page, "nav-settings").click();
    await byId(page, "delete-identity").click();
    await byId(page, "confirm-delete").click();
    await byId(page, "onboarding").waitFor();
    // The code was never let go, and no engine ran since the reload: no signaling connection.
    expect(held.length).toBeGreaterThan(0);
    expect(signaling).toEqual([]);
    await context.unroute(/\/assets\/chat-engine-[^/]*\.js$/);
    for (const route of held.splice(0)) await route.continue().catch(() => undefined);
    await context.close();
  });
});
