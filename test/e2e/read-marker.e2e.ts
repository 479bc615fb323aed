/**
 * Moving a contact's clear fields (the read marker `readAt`, written each time a chat is read;
 * `lastSeen`, on each handshake) leaves its sealed part alone (web/src/storage/storage.ts
 * `#updateClearFields`): no decrypt and re-encrypt per event, and the opened-contact cache stays
 * valid. Seen from outside: the sealed blob (its IV) is the same before and after the marker moves.
 *
 * `npm run build` first; `node scripts/e2e.mjs test/e2e/read-marker.e2e.ts`. Waits are on
 * conditions only.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { addOfflineContact, createIdentity, inLoftDb, openChat } from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

/** The raw contact record's read marker and sealed IV (hex). */
function rawContact(page: Page, id: string): Promise<{ readAt?: number; iv: string } | undefined> {
  return inLoftDb(
    page,
    async ({ db, req }, key) => {
      const rec = (await req(db.transaction("contacts").objectStore("contacts").get(key))) as
        | { readAt?: number; sealed?: { iv: Uint8Array } }
        | undefined;
      if (!rec?.sealed) return undefined;
      const iv = Array.from(rec.sealed.iv, (b) => b.toString(16).padStart(2, "0")).join("");
      return { ...(rec.readAt !== undefined ? { readAt: rec.readAt } : {}), iv };
    },
    id,
  );
}

describe("read marker", () => {
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

  it("moves without re-sealing the contact", async () => {
    const p = await (await browser.newContext()).newPage();
    await createIdentity(p, loft.url, "Alice");
    const id = await addOfflineContact(p, loft.url, "Bob");
    const before = await rawContact(p, id);
    expect(before?.readAt).toBeUndefined();

    await openChat(p, id); // open, visible and at the bottom: read
    await expect.poll(async () => (await rawContact(p, id))?.readAt, { timeout: 30_000 }).toBeGreaterThan(0);
    expect((await rawContact(p, id))?.iv).toBe(before?.iv);
  });
});
