/**
 * Renames are never silent (issue #17; docs/protocol/identity.md "Trust on first use"): a known
 * contact whose new signed identity takes the name of another contact — "dora" for a known
 * "Dora" — is a pending decision that blocks sending; accepting stores the new name with trust
 * kept; a plain rename is stored as an update.
 *
 * `npm run build` first; `node scripts/e2e.mjs test/e2e/rename.e2e.ts`. Waits are on conditions.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../core/bytes.ts";
import { createUserIdentity, updateIdentity } from "../../core/identity/identity.ts";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import {
  addByLink,
  createIdentity,
  expectAddOutcome,
  byId as id,
  offlineLink,
  openContact,
} from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

describe("renames in the PWA", () => {
  let loft: LoftProcess;
  let browser: Browser;
  let a: Page;
  const dora = createUserIdentity({ username: "Dora", now: Date.now() });
  const eve = createUserIdentity({ username: "Eve", now: Date.now() });
  const eveId = toHex(eve.identity.verified.identity_key);
  const doraId = toHex(dora.identity.verified.identity_key);

  beforeAll(async () => {
    loft = await startLoft();
    browser = await launchChromium();
    a = await (await browser.newContext()).newPage();
    await createIdentity(a, loft.url, "Alice");
    for (const u of [dora, eve]) await addByLink(a, offlineLink(loft.url, u));
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
    ),
  );

  it("a known contact taking another contact's name is a decision, and sending waits", async () => {
    const eveAsDora = updateIdentity(eve, { username: "dora" }, Date.now() + 1);
    await a.goto(offlineLink(loft.url, eveAsDora));
    await expectAddOutcome(a, "rename-collision");
    await id(a, "confirm-add").click();
    await id(a, "identity-warning").waitFor();
    // Home names the kind of pending change: a rename onto another's name, not "Key changed".
    await a.goto(loft.url);
    const eveTrust = a.locator(
      `[data-testid=contact-item][data-contact-id="${eveId}"] [data-testid=contact-trust]`,
    );
    await eveTrust.waitFor();
    expect(await eveTrust.getAttribute("data-pending")).toBe("rename-collision");
    expect(await eveTrust.textContent()).toBe("⚠ Took another contact's name");
    await openContact(a, { id: eveId });
    expect(await id(a, "identity-warning").getAttribute("data-kind")).toBe("rename-collision");
    expect(await id(a, "contact-username").textContent()).toBe("Eve");
    await id(a, "open-chat").click();
    await id(a, "send-blocked").waitFor();
    expect(await id(a, "composer-input").isDisabled()).toBe(true);

    // Accepting stores the new name; nothing else changes.
    await id(a, "chat-contact").click();
    expect(await id(a, "accept-new-key").textContent()).toContain("dora");
    await id(a, "accept-new-key").click();
    await id(a, "identity-warning").waitFor({ state: "detached" });
    expect(await id(a, "contact-username").textContent()).toBe("dora");
    await openContact(a, { id: doraId });
    expect(await id(a, "contact-username").textContent()).toBe("Dora");
  });

  it("a rename to a name nobody uses is an ordinary update", async () => {
    const dorothea = updateIdentity(dora, { username: "Dorothea" }, Date.now() + 1);
    await a.goto(offlineLink(loft.url, dorothea));
    await expectAddOutcome(a, "updated");
    await id(a, "confirm-add").click();
    await expect.poll(() => id(a, "contact-username").textContent()).toBe("Dorothea");
    await openContact(a, { id: doraId });
    expect(await id(a, "contact-username").textContent()).toBe("Dorothea");
    expect(await id(a, "identity-warning").count()).toBe(0);
  });

  it("an opened contact is not decrypted again until it is written (storage.ts #contactCache)", async () => {
    await openContact(a, { id: eveId });
    // Count AES-GCM opens per sealed record name (the AAD is "loft/sealed/v1/<name>").
    await a.evaluate(() => {
      const w = window as unknown as { opens: Record<string, number> };
      w.opens = {};
      const decrypt = SubtleCrypto.prototype.decrypt;
      SubtleCrypto.prototype.decrypt = function (this: SubtleCrypto, alg, key, data) {
        const aad = (alg as AesGcmParams).additionalData;
        if (aad) {
          const name = new TextDecoder().decode(aad as Uint8Array);
          w.opens[name] = (w.opens[name] ?? 0) + 1;
        }
        return decrypt.call(this, alg, key, data);
      } as typeof decrypt;
    });
    // Each change re-lists every contact (AppModel.refreshContacts → listContacts).
    await id(a, "block-contact").click();
    await id(a, "unblock-contact").click();
    await id(a, "block-contact").waitFor();
    expect(await id(a, "trust-state").getAttribute("data-trust")).toBe("unknown");
    const opens = await a.evaluate(() => (window as unknown as { opens: Record<string, number> }).opens);
    // Eve was written (twice): her new records are opened; Dora was not: she comes from the cache.
    expect(opens[`loft/sealed/v1/contact/${eveId}`] ?? 0).toBeGreaterThan(0);
    expect(opens[`loft/sealed/v1/contact/${doraId}`] ?? 0).toBe(0);
  });
});
