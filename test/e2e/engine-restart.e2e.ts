/**
 * The page stops its engine while that engine is still starting (app/model.ts `#stopEngine`): a
 * new username restarts the engine under the new identity version, and here it comes while the
 * first start still waits for the engine's code (its chunk held back by the test, as a slow
 * network would). The first start is stopped, not kept: one engine runs afterwards, one signaling
 * connection — before, both engines ran over one storage, each with its own connection. And a
 * deletion made while the code is still held — in this tab, or in another, which closes this one
 * (app/model.ts `closeForOtherTab`) — ends without it: the stop does not wait for the network
 * (engine-loader.ts `madeUnlessStopped`), and a closed tab lets the engine lock go at once — nor
 * does it start an engine again when the close came while a new username was being saved. A
 * start whose engine lock the browser refuses ends too (offline, saying so), not waits for ever.
 *
 * `npm run build` first; `node scripts/e2e.mjs test/e2e/engine-restart.e2e.ts`. Waits are on
 * conditions only.
 */
import type { Browser, Page, Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { byId, createIdentity, inLoftDb } from "../support/loft-ui.ts";
import { fetchMetric } from "../support/metrics.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

/** The engine's chunk, as the build names it (web/src/engine-loader.ts imports it at each start). */
const ENGINE_CHUNK = /\/assets\/chat-engine-[^/]*\.js$/;

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

  const registrations = () => fetchMetric(loft.metricsUrl!, "loft_signaling_registrations");

  /**
   * A page of its own context whose identity `username` is created and registered. No Service
   * Worker: the page's own requests (the engine's chunk) reach the test's route.
   */
  async function registeredPage(username: string): Promise<Page> {
    const context = await browser.newContext({ serviceWorkers: "block" });
    const page = await context.newPage();
    await createIdentity(page, loft.url, username);
    await expect.poll(registrations).toBe(1);
    return page;
  }

  /**
   * `page` reloaded with the engine's chunk (web/src/engine-loader.ts imports it at each start)
   * held — its requests only, as a slow network holds it: the start waits for the code, and no
   * engine runs. `release` lets the held requests and every later one go; `signaling` lists the
   * page's signaling connections since the reload.
   */
  async function reloadHoldingEngineCode(page: Page) {
    const held: Route[] = [];
    let holding = true;
    await page
      .context()
      .route(ENGINE_CHUNK, (route) =>
        holding && route.request().frame().page() === page ? void held.push(route) : route.continue(),
      );
    const signaling: string[] = [];
    page.on("websocket", (ws) => {
      if (new URL(ws.url()).pathname === "/signal") signaling.push(ws.url());
    });
    await page.reload();
    await byId(page, "home").waitFor();
    await expect.poll(() => held.length).toBeGreaterThan(0);
    await expect.poll(registrations).toBe(0);
    return {
      held: () => held.length,
      signaling,
      release: async () => {
        holding = false;
        for (const route of held.splice(0)) await route.continue().catch(() => undefined);
      },
    };
  }

  /**
   * A second tab of `page`'s context, on Home: the chat runs in `page` (its "loft-engine" Web
   * Lock), so this one runs the offline stand-in.
   */
  async function secondTab(page: Page): Promise<Page> {
    const other = await page.context().newPage();
    await other.goto(loft.url);
    await byId(other, "home").waitFor();
    return other;
  }

  /** The identity deleted from Settings, confirmed (app/model.ts `deleteIdentity`). */
  async function deleteFromSettings(page: Page): Promise<void> {
    await byId(page, "nav-settings").click();
    await byId(page, "delete-identity").click();
    await byId(page, "confirm-delete").click();
  }

  it("a new username while the first start waits: that start is stopped, one engine and one connection follow", async () => {
    const page = await registeredPage("Ann");
    const code = await reloadHoldingEngineCode(page);

    // A new username now: the engine restarts under the new identity version (model.ts
    // `changeUsername`) while the first start still waits for its code.
    await byId(page, "nav-settings").click();
    await byId(page, "settings-username").fill("Annie");
    await byId(page, "save-username").click();
    // Released once the new name is stored — `changeUsername` stops the engine right after that
    // save. Released at the click, a loaded machine could let the first start finish before the
    // save: two engines one after the other, legitimately, and two connections to count.
    await expect
      .poll(() =>
        inLoftDb(page, ({ db, req }) =>
          req(db.transaction("self").objectStore("self").get("self")).then(
            (self) => (self as { username?: string } | undefined)?.username,
          ),
        ),
      )
      .toBe("Annie");
    await code.release();

    await expect
      .poll(() => byId(page, "username-result").textContent())
      .toBe("Saved. Contacts see the new name next time you connect.");
    await expect.poll(registrations).toBe(1);
    await expect.poll(() => code.signaling.length).toBeGreaterThan(0);
    // One engine: one signaling connection since the reload, and no registration replaced by
    // another of the same identity (two engines would each register it).
    expect(code.signaling).toHaveLength(1);
    expect(
      await fetchMetric(loft.metricsUrl!, "loft_signaling_register_requests_total", 'outcome="replaced"'),
    ).toBe(0);
    await page.context().close();
  });

  it("another tab deletes the identity while this one's start waits for the engine's code: this tab lets the engine go at once, and the next identity's engine runs", async () => {
    const page = await registeredPage("Cy");
    const other = await secondTab(page);
    // The first tab's start waits for its code, holding the engine lock (app/model.ts `#loadEngine`);
    // the code is not let go before the end.
    const code = await reloadHoldingEngineCode(page);

    // Deleted in the other tab: the first one is closed (app/model.ts `closeForOtherTab`), which
    // stops its start and lets the lock go once that stop ends — before, only when the code came.
    await deleteFromSettings(other);
    await byId(other, "onboarding").waitFor();
    await byId(page, "tab-closed").waitFor();
    // A new identity in the other tab takes the lock and runs the chat: it registers. Before, the
    // closed tab still held the lock, and this one ran the offline stand-in ("open in another tab").
    await createIdentity(other, loft.url, "Dee");
    await expect.poll(registrations).toBe(1);
    expect(code.held()).toBeGreaterThan(0);
    await code.release();
    await page.context().close();
  });

  it("another tab deletes the identity while a new username is being saved here: this tab, closed, starts no engine again", async () => {
    const page = await registeredPage("Eve");
    const other = await secondTab(page);
    // The new identity version's save held open (its transaction kept busy, so it has not ended):
    // the page's new username (app/model.ts `changeUsername`) waits in it, before its engine
    // restart, while the other tab's news arrives.
    await page.evaluate(() => {
      const w = globalThis as unknown as { loftSaveHeld: boolean; loftSaveGo: boolean };
      w.loftSaveHeld = false;
      w.loftSaveGo = false;
      const proto = IDBObjectStore.prototype;
      const put = proto.put;
      proto.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore["put"]>) {
        const request = put.apply(this, args);
        if (this.name === "self" && !w.loftSaveGo) {
          w.loftSaveHeld = true;
          const spin = () => {
            if (!w.loftSaveGo) this.get("none").onsuccess = spin;
          };
          spin();
        }
        return request;
      };
    });
    await byId(page, "nav-settings").click();
    await byId(page, "settings-username").fill("Evie");
    await byId(page, "save-username").click();
    await expect
      .poll(() => page.evaluate(() => (globalThis as unknown as { loftSaveHeld: boolean }).loftSaveHeld))
      .toBe(true);

    // Deleted in the other tab: this one is closed (app/model.ts `closeForOtherTab`: its engine
    // stopped, the engine lock let go); the deletion itself waits for this tab's database to close.
    await deleteFromSettings(other);
    await byId(page, "tab-closed").waitFor();
    await page.evaluate(() => {
      (globalThis as unknown as { loftSaveGo: boolean }).loftSaveGo = true;
    });
    await byId(other, "onboarding").waitFor();
    // The save ended, the new username went on — but no engine restart in a closed tab: a new
    // identity in the other tab takes the lock and registers. Before, the closed tab took the
    // lock again for an engine over its closed storage, and this one ran the offline stand-in.
    await createIdentity(other, loft.url, "Fay");
    await expect.poll(registrations).toBe(1);
    await byId(page, "tab-closed").waitFor();
    await page.context().close();
  });

  it("the identity deleted while the start still waits for the engine's code: the deletion does not wait for it", async () => {
    const page = await registeredPage("Bea");
    const code = await reloadHoldingEngineCode(page);

    // Deleted now (Settings): the page stops the start under way (app/model.ts `deleteIdentity`,
    // `#stopEngine`) — before, that stop waited for the held code, and the deletion with it.
    await deleteFromSettings(page);
    await byId(page, "onboarding").waitFor();
    // The code was never let go, and no engine ran since the reload: no signaling connection.
    expect(code.held()).toBeGreaterThan(0);
    expect(code.signaling).toEqual([]);
    await code.release();
    await page.context().close();
  });

  it("the browser refuses the engine lock: the start ends offline and says so, and a deletion does not wait for it", async () => {
    const page = await registeredPage("Gil");
    // The lock request rejects, as the browser's does for a document no longer fully active
    // (app/model.ts `#takeEngineLock`). Before, that start waited for ever, and every stop after
    // it (a deletion here) with it.
    await page.addInitScript(() => {
      const locks = navigator.locks;
      const request = locks.request.bind(locks) as (...a: unknown[]) => Promise<unknown>;
      locks.request = ((name: string, ...rest: unknown[]) =>
        name === "loft-engine"
          ? Promise.reject(new DOMException("refused by the test", "InvalidStateError"))
          : request(name, ...rest)) as LockManager["request"];
    });
    await page.reload();
    await byId(page, "home").waitFor();
    await expect
      .poll(() => byId(page, "engine-status").textContent())
      .toBe(
        "Loft could not check that no other tab runs the chat. Messages you write here wait. Reload the page.",
      );
    await expect.poll(registrations).toBe(0);
    await deleteFromSettings(page);
    await byId(page, "onboarding").waitFor();
    await page.context().close();
  });

  it("the page warms its crypto once (web/src/engine/warm-up.ts): at idle after the start, not again when the engine restarts — the restarted engine takes the page's", async () => {
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
    // The restarted engine asked the page's warm-up, which had run: it says it took that one
    // (warm-up.ts `PageWarmUp`), and nothing ran again. Its line is the end of its request,
    // whatever came of it: a second run would have said "warmed up" a second time instead, and a
    // restarted engine that never asked would say nothing — both fail here, where a count taken
    // at some moment after the restart could not tell a second run from one not yet logged.
    await expect
      .poll(() => engineLines)
      .toEqual([
        expect.stringMatching(/crypto warmed up: Noise_XXhfs_25519\+MLKEM768_AESGCM_SHA256, ratchet 0x03, /),
        expect.stringMatching(
          /crypto warm-up: already run in this page \(Noise_XXhfs_25519\+MLKEM768_AESGCM_SHA256\), not again$/,
        ),
      ]);
    await context.close();
  });
});
