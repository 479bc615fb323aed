/**
 * Settings says so when setting the passphrase fails (web/src/ui/Settings.tsx): a stored record
 * that no longer opens stops the re-seal (storage.ts `setPassphrase`), the page names the failure
 * and that nothing changed, and the device still starts without a passphrase.
 *
 * `npm run build` first; `node scripts/e2e.mjs test/e2e/settings-passphrase-error.e2e.ts`. Waits
 * are on conditions only.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { addOfflineContact, byId, createIdentity, inLoftDb } from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

/** Flip one ciphertext byte of every sealed contact record, as disk damage would. */
function damageContacts(page: Page): Promise<number> {
  return inLoftDb(page, async ({ db, req, done }) => {
    const tx = db.transaction("contacts", "readwrite");
    const store = tx.objectStore("contacts");
    const all = (await req(store.getAll())) as { sealed?: { ct: Uint8Array } }[];
    let damaged = 0;
    for (const c of all) {
      if (!c.sealed) continue;
      c.sealed.ct[0] = (c.sealed.ct[0] ?? 0) ^ 1;
      store.put(c);
      damaged++;
    }
    await done(tx);
    return damaged;
  });
}

describe("settings: a failed passphrase change", () => {
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

  it("shows why and that nothing changed, and the device keeps starting without a passphrase", async () => {
    const p = await (await browser.newContext()).newPage();
    await createIdentity(p, loft.url, "Alice");
    await addOfflineContact(p, loft.url, "Bob");
    expect(await damageContacts(p)).toBe(1);

    await byId(p, "back").click();
    await byId(p, "nav-settings").click();
    await byId(p, "passphrase-new").fill("orange staple 42");
    await byId(p, "passphrase-confirm").fill("orange staple 42");
    await byId(p, "set-passphrase").click();
    await expect
      .poll(() => byId(p, "passphrase-result").textContent(), { timeout: 60_000 })
      .toContain("Nothing was changed");
    expect(await byId(p, "passphrase-result").textContent()).toContain("could not be decrypted");
    expect(await byId(p, "passphrase-result").getAttribute("class")).toBe("error");
    expect(await byId(p, "set-passphrase").textContent()).toBe("Set passphrase");
    expect(await byId(p, "set-passphrase").isEnabled()).toBe(true);

    await p.reload(); // still on Settings (its own address), with no unlock screen first
    await byId(p, "settings").waitFor();
    expect(await byId(p, "unlock").count()).toBe(0);
  });
});
