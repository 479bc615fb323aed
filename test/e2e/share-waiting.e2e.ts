/**
 * "Share → Loft" while Loft is locked and offline (sw/share-target.ts, web/src/app/share.ts): the
 * share is kept by the Service Worker, the /share screen offers it after the unlock, and — the
 * person left without sending — Home offers it again after the next unlock, still offline, until
 * it is sent or discarded. axe on Home with the offer.
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { byId } from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const PASS = "orange staple 42";
const T = 30_000;

async function unlock(page: Page): Promise<void> {
  await byId(page, "unlock").waitFor({ timeout: T });
  await byId(page, "unlock-passphrase").fill(PASS);
  await byId(page, "unlock-submit").click();
}

describe("Share → Loft while locked and offline", () => {
  let loft: LoftProcess;
  let browser: Browser;
  let ctx: BrowserContext;
  let p: Page;

  beforeAll(async () => {
    loft = await startLoft();
    browser = await launchChromium();
    ctx = await browser.newContext();
    p = await ctx.newPage();
  }, 60_000);
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
    ),
  );

  it("the shared file is kept, offered after unlock, and again on Home until sent or discarded", async () => {
    await p.goto(loft.url);
    await byId(p, "username-input").fill("Alice");
    await byId(p, "onboarding-passphrase-new").fill(PASS);
    await byId(p, "onboarding-passphrase-confirm").fill(PASS);
    await byId(p, "create-identity").click();
    await byId(p, "my-username").waitFor({ timeout: T });
    await p.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: T });
    await p.reload();
    await byId(p, "unlock").waitFor({ timeout: T });

    // Locked and offline: the system's share sheet POSTs to /share (manifest share_target).
    await ctx.setOffline(true);
    const status = await p.evaluate(async () => {
      const form = new FormData();
      form.append("files", new File(["hello from the share sheet"], "note.txt", { type: "text/plain" }));
      // Not followed here: the share sheet's navigation follows it (the Service Worker serves the
      // screen offline); a page's fetch of it would go to the network.
      const res = await fetch("/share", { method: "POST", body: form, redirect: "manual" });
      return res.type;
    });
    expect(status).toBe("opaqueredirect");
    await p.goto(new URL("/share", loft.url).toString());
    await unlock(p);
    await byId(p, "share-screen").waitFor({ timeout: T });
    // As below: the screen shows before the shared file is read back from the share cache.
    await expect
      .poll(() => byId(p, "shared-file").allTextContents(), { timeout: T })
      .toEqual(["note.txt · 26 B"]);

    // Left without sending (nobody to send to yet): Home offers it, after another lock too.
    await byId(p, "back").click();
    await byId(p, "home").waitFor();
    await byId(p, "shared-waiting").waitFor({ timeout: T });
    expect(await byId(p, "shared-waiting-text").textContent()).toBe("note.txt is waiting to be sent.");
    await expectNoAxeViolations(p, "home with a share waiting");
    await p.reload();
    await unlock(p);
    await byId(p, "shared-waiting").waitFor({ timeout: T });
    await byId(p, "shared-waiting-send").click();
    await byId(p, "share-screen").waitFor();
    // The screen is shown before the kept file is read back from the share cache: poll for it.
    await expect
      .poll(() => byId(p, "shared-file").allTextContents(), { timeout: T })
      .toEqual(["note.txt · 26 B"]);
    await byId(p, "back").click();
    await byId(p, "shared-waiting-discard").click();
    await expect.poll(() => byId(p, "shared-waiting").count(), { timeout: T }).toBe(0);
    expect(await p.evaluate(() => caches.has("loft-share"))).toBe(false);
    await ctx.setOffline(false);
  });
});
