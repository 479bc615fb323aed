/**
 * Onboarding's optional passphrase step and the unlock screen's ways out of a forgotten
 * passphrase, in real Chromium through the UI: a passphrase chosen at onboarding locks the next
 * start, an empty one skips it; a locked device restores a backup (a wrong backup passphrase
 * changes nothing; afterwards there is no passphrase) or starts over after a warning that names
 * the identity, contacts and messages it deletes.
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { addOfflineContact, byId } from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const PASS = "orange staple 42";

async function start(page: Page, url: string, name: string, pass?: [string, string]): Promise<void> {
  await page.goto(url);
  await byId(page, "username-input").fill(name);
  if (pass) {
    await byId(page, "onboarding-passphrase-new").fill(pass[0]);
    await byId(page, "onboarding-passphrase-confirm").fill(pass[1]);
  }
  await byId(page, "create-identity").click();
}

describe("onboarding passphrase step and unlock options", () => {
  let loft: LoftProcess;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const newPage = async () => {
    const ctx = await browser.newContext({ acceptDownloads: true });
    contexts.push(ctx);
    return ctx.newPage();
  };

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

  it("refuses a short, guessable or mismatched passphrase without creating anything, then locks with a good one", async () => {
    const p = await newPage();
    await start(p, loft.url, "Alice", ["short", "short"]);
    await expect.poll(() => byId(p, "onboarding-passphrase-error").textContent()).toContain("at least 8");
    await start(p, loft.url, "Alice", ["password123", "password123"]);
    await expect
      .poll(() => byId(p, "onboarding-passphrase-error").textContent())
      .toContain("too easy to guess");
    expect(await byId(p, "onboarding-passphrase-strength").getAttribute("data-score")).toBe("0");
    await start(p, loft.url, "Alice", [PASS, `${PASS}!`]);
    await expect.poll(() => byId(p, "onboarding-passphrase-error").textContent()).toContain("differ");
    expect(await byId(p, "onboarding").isVisible()).toBe(true);
    await start(p, loft.url, "Alice", [PASS, PASS]);
    await expect.poll(() => byId(p, "my-username").textContent()).toBe("Alice");
    await p.reload();
    await byId(p, "unlock").waitFor();
    await byId(p, "unlock-passphrase").fill(PASS);
    await byId(p, "unlock-submit").click();
    await expect.poll(() => byId(p, "my-username").textContent()).toBe("Alice");
  });

  it("skips the passphrase when left empty: no unlock on the next start", async () => {
    const p = await newPage();
    await start(p, loft.url, "Sam");
    await expect.poll(() => byId(p, "my-username").textContent()).toBe("Sam");
    await p.reload();
    await byId(p, "home").waitFor();
    expect(await byId(p, "unlock").count()).toBe(0);
  });

  it("restores a backup from the unlock screen when the passphrase is forgotten", async () => {
    const p = await newPage();
    await start(p, loft.url, "Rita", [PASS, PASS]);
    await byId(p, "home").waitFor();
    await addOfflineContact(p, loft.url, "Bob");
    await byId(p, "back").click(); // in the app: a new page load would ask for the passphrase
    await byId(p, "nav-settings").click();
    await byId(p, "backup-passphrase").fill("backup passphrase 1");
    const [download] = await Promise.all([p.waitForEvent("download"), byId(p, "export-backup").click()]);
    const file = await download.path();

    await p.reload();
    await byId(p, "unlock").waitFor();
    await byId(p, "unlock-restore").locator("summary").click();
    await byId(p, "unlock-restore-file").setInputFiles(file);
    await byId(p, "unlock-restore-passphrase").fill("not the passphrase");
    await byId(p, "unlock-restore-submit").click();
    await expect.poll(() => byId(p, "unlock-restore-error").textContent()).toContain("Wrong passphrase");
    await byId(p, "unlock-restore-passphrase").fill("backup passphrase 1");
    await byId(p, "unlock-restore-submit").click();
    await expect.poll(() => byId(p, "notice").textContent()).toContain("Backup restored");
    // The screen that was locked (Settings, where a new passphrase can be set) opens.
    expect(await byId(p, "settings-username").inputValue()).toBe("Rita");
    await p.goto(loft.url);
    await p.locator("[data-testid=contact-item][data-username=Bob]").waitFor();
    // The device has no passphrase now.
    await p.reload();
    await byId(p, "home").waitFor();
    expect(await byId(p, "unlock").count()).toBe(0);
  });

  it("starts over after naming what is lost, and only after the confirmation", async () => {
    const p = await newPage();
    await start(p, loft.url, "Olga", [PASS, PASS]);
    await byId(p, "home").waitFor();
    await addOfflineContact(p, loft.url, "Bob");
    await p.reload();
    await byId(p, "unlock").waitFor();
    await byId(p, "unlock-start-over").locator("summary").click();
    const warning = await byId(p, "start-over-warning").textContent();
    expect(warning).toContain("“Olga”");
    expect(warning).toContain("1 contact and 0 messages");
    await byId(p, "start-over").click();
    await byId(p, "cancel-start-over").click();
    await p.reload();
    await byId(p, "unlock").waitFor(); // cancelling deleted nothing
    // Offer nonces the signaling client kept for this identity (net/seen-offers.ts) go too;
    // other sites' keys on this origin stay.
    await p.evaluate(() => {
      localStorage.setItem("loft.signal.seen-offers.0123456789abcdef", '[["x",1]]');
      localStorage.setItem("unrelated", "kept");
    });
    await byId(p, "unlock-start-over").locator("summary").click();
    await byId(p, "start-over").click();
    await byId(p, "confirm-start-over").click();
    await byId(p, "onboarding").waitFor();
    expect(
      await p.evaluate(() =>
        Object.keys(localStorage).filter((k) => k.startsWith("loft.signal.seen-offers.")),
      ),
    ).toEqual([]);
    expect(await p.evaluate(() => localStorage.getItem("unrelated"))).toBe("kept");
    await start(p, loft.url, "Olga again");
    await expect.poll(() => byId(p, "my-username").textContent()).toBe("Olga again");
    await byId(p, "empty-contacts").waitFor();
  });
});
