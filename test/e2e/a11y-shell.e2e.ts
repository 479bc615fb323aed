/**
 * axe-core on every screen of the app shell, in real Chromium, light theme (test/support/axe.ts):
 * onboarding, unlock, home (empty, then with a contact and the notification offer), my contact
 * link, add contact (empty and with a link), contact, safety code and settings — zero violations
 * of any impact. Also: the notification offer's "Not now" is remembered.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUserIdentity } from "../../core/identity/identity.ts";
import { expectNoAxeViolations } from "../support/axe.ts";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { byId, offlineLink } from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

describe("accessibility of the app shell (axe-core, light theme)", () => {
  let loft: LoftProcess;
  let browser: Browser;
  let p: Page;
  let bobLink: string;
  let bobId: string;

  beforeAll(async () => {
    loft = await startLoft();
    browser = await launchChromium();
    const ctx = await browser.newContext({ colorScheme: "light" });
    p = await ctx.newPage();
    bobLink = offlineLink(loft.url, createUserIdentity({ username: "Bob", now: Date.now() }));
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
    ),
  );

  it("onboarding", async () => {
    await p.goto(loft.url);
    await byId(p, "onboarding").waitFor();
    await expectNoAxeViolations(p, "onboarding");
    // With the errors shown.
    await byId(p, "onboarding-passphrase-new").fill("short");
    await byId(p, "create-identity").click();
    await byId(p, "username-error").waitFor();
    await expectNoAxeViolations(p, "onboarding (errors)");
  });

  it("home, empty", async () => {
    await byId(p, "username-input").fill("Alice");
    await byId(p, "onboarding-passphrase-new").fill("orange staple 42");
    await byId(p, "onboarding-passphrase-confirm").fill("orange staple 42");
    await byId(p, "create-identity").click();
    await byId(p, "empty-contacts").waitFor();
    await expectNoAxeViolations(p, "home (empty)");
  });

  it("my contact link", async () => {
    await byId(p, "nav-my-link").click();
    await byId(p, "my-link").waitFor();
    await expectNoAxeViolations(p, "my contact link");
    await byId(p, "back").click();
  });

  it("add contact, empty and with a link", async () => {
    await byId(p, "nav-add-contact").click();
    await byId(p, "add-screen").waitFor();
    await expectNoAxeViolations(p, "add contact");
    await byId(p, "link-input").fill("https://example.org/#c=broken");
    await byId(p, "link-error").waitFor();
    await expectNoAxeViolations(p, "add contact (bad link)");
    await byId(p, "link-input").fill(bobLink);
    await byId(p, "add-outcome").waitFor();
    await expectNoAxeViolations(p, "add contact (confirm)");
    await byId(p, "confirm-add").click();
  });

  it("contact", async () => {
    await byId(p, "contact-screen").waitFor();
    bobId = (await byId(p, "contact-id").textContent())!;
    await expectNoAxeViolations(p, "contact");
    await byId(p, "delete-contact").click();
    await expectNoAxeViolations(p, "contact (confirm delete)");
    // From the keyboard (WAI-ARIA alert dialog pattern): the safe choice takes the focus, Escape
    // closes the question and the focus goes back to the button that asked it.
    const focused = () => p.evaluate(() => document.activeElement?.textContent?.trim());
    await expect.poll(focused).toBe("Cancel");
    await p.keyboard.press("Escape");
    await expect
      .poll(() => p.getByRole("alertdialog", { name: "Delete contact", exact: true }).count())
      .toBe(0);
    await expect
      .poll(() => p.evaluate(() => document.activeElement?.getAttribute("data-testid")))
      .toBe("delete-contact");
  });

  it("safety code", async () => {
    await p.goto(`${loft.url}/contact/${bobId}/safety`);
    await byId(p, "unlock").waitFor();
    await expectNoAxeViolations(p, "unlock");
    await p.locator("summary").first().click();
    await p.locator("summary").nth(1).click();
    await byId(p, "start-over").click();
    await expectNoAxeViolations(p, "unlock (forgot: restore and start over open)");
    await byId(p, "cancel-start-over").click();
    // Cancel draws "Start over…" again (a `<Show fallback>`): the focus goes to the button now on
    // screen (ui/confirm.ts keeps the opener by its ref, drawn anew), not to a removed one.
    await expect
      .poll(() => p.evaluate(() => document.activeElement?.getAttribute("data-testid")))
      .toBe("start-over");
    await byId(p, "unlock-passphrase").fill("orange staple 42");
    await byId(p, "unlock-submit").click();
    await byId(p, "safety-code").waitFor();
    await expectNoAxeViolations(p, "safety code");
  });

  it("home with a contact and the notification offer", async () => {
    await byId(p, "back").click();
    await byId(p, "back").click();
    await byId(p, "contact-list").waitFor();
    await byId(p, "notification-offer").waitFor();
    await expectNoAxeViolations(p, "home (contacts)");
    // "Not now" is remembered: the offer stays away after a new start.
    await byId(p, "dismiss-notifications").click();
    await expect.poll(() => byId(p, "notification-offer").count()).toBe(0);
    await p.reload();
    await byId(p, "unlock-passphrase").fill("orange staple 42");
    await byId(p, "unlock-submit").click();
    await byId(p, "contact-list").waitFor();
    expect(await byId(p, "notification-offer").count()).toBe(0);
  });

  it("settings", async () => {
    await byId(p, "nav-settings").click();
    await byId(p, "settings").waitFor();
    await byId(p, "signaling-url").waitFor();
    await expectNoAxeViolations(p, "settings");
    await byId(p, "delete-identity").click();
    await expectNoAxeViolations(p, "settings (confirm delete)");
    // Cancel by Enter on the focused safe choice: the focus returns to "Delete my identity…".
    await expect.poll(() => p.evaluate(() => document.activeElement?.textContent?.trim())).toBe("Cancel");
    await p.keyboard.press("Enter");
    await expect.poll(() => byId(p, "confirm-delete").count()).toBe(0);
    await expect
      .poll(() => p.evaluate(() => document.activeElement?.getAttribute("data-testid")))
      .toBe("delete-identity");
  });

  it("settings and home in the dark theme too", async () => {
    await p.emulateMedia({ colorScheme: "dark" });
    await expectNoAxeViolations(p, "settings (dark)");
    await byId(p, "back").click();
    await byId(p, "contact-list").waitFor();
    await expectNoAxeViolations(p, "home (dark)");
    await p.emulateMedia({ colorScheme: "light" });
  });
});
