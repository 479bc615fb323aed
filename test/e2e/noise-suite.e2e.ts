/**
 * The Noise suite in real Chromium (web/src/engine/noise-suites.ts; docs/decisions.md, "AES-GCM
 * Noise suite, offered from the first dial"): the very first session between two new contacts
 * runs AES-GCM (native in the browser), on both pages, and the contact screen says which cipher
 * protects it; that the contact answers offers is stored sealed with the contact (never in clear
 * in IndexedDB), and after both pages reload the first session is AES-GCM again.
 *
 * `npm run build` first; `node scripts/e2e.mjs test/e2e/noise-suite.e2e.ts`. Waits are on
 * conditions only.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  byId,
  incoming,
  inLoftDb,
  openChat,
  openContact,
  sendText,
  startChatting,
  waitForPresence,
} from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

/** The suite the contact screen shows for `contactId` once the session is up. */
async function suiteShown(page: Page, contactId: string): Promise<string | null> {
  await openContact(page, { id: contactId });
  const line = byId(page, "contact-encryption");
  await line.waitFor({ timeout: 60_000 });
  return line.getAttribute("data-suite");
}

/** The raw (stored) contact record's field names. */
function rawContactFields(page: Page, id: string): Promise<string[]> {
  return inLoftDb(
    page,
    async ({ db, req }, key) =>
      Object.keys(((await req(db.transaction("contacts").objectStore("contacts").get(key))) ?? {}) as object),
    id,
  );
}

describe("the Noise suite a contact answers, across reloads", () => {
  let t: TwoBrowsers;
  let bobId = "";

  beforeAll(async () => {
    t = await startTwoBrowsers();
  });
  afterAll(async () => {
    await t?.close();
  });

  it("the first session runs AES-GCM, and again after both reload; the mark is sealed", async () => {
    const [aId, bId] = await startChatting(t.a, t.b, t.loft.url);
    bobId = bId;
    // Their first session: nothing known about each other, and the dialler offered AES-GCM.
    expect(await suiteShown(t.a, bId)).toBe("AESGCM_SHA256");
    expect(await suiteShown(t.b, aId)).toBe("AESGCM_SHA256");
    // The mark is in the sealed part only: no such field in clear.
    for (const [page, id] of [
      [t.a, bId],
      [t.b, aId],
    ] as const)
      expect(await rawContactFields(page, id)).not.toContain("answersSuiteOffers");

    // Both reload (so neither keeps the mark in memory): the stored mark makes the dial offer AES-GCM.
    await t.a.reload();
    await t.b.reload();
    await openChat(t.b, aId);
    expect(await suiteShown(t.a, bId)).toBe("AESGCM_SHA256");
    expect(await byId(t.a, "contact-encryption").textContent()).toMatch(/AES-256-GCM/);
    await openChat(t.a, bId);
    await waitForPresence(t.a, /^online/);
    await sendText(t.a, "over AES-GCM after a reload");
    await incoming(t.b, "over AES-GCM after a reload").waitFor({ timeout: 60_000 });
  });

  it("the contact screen's buttons stay where they are when the session opens or ends (a click on Chat landed above it)", async () => {
    const chatButtonTop = async () => (await byId(t.a, "open-chat").boundingBox())?.y;
    await openContact(t.a, { id: bobId });
    await byId(t.a, "contact-encryption").waitFor({ timeout: 60_000 });
    const withSession = await chatButtonTop();
    // Bob goes away: the session ends and the encryption line empties.
    await t.b.goto("about:blank");
    await byId(t.a, "contact-encryption").waitFor({ state: "detached", timeout: 60_000 });
    expect(withSession).toBeDefined();
    expect(await chatButtonTop()).toBe(withSession);
    await t.b.goto(t.loft.url);
  });
});
