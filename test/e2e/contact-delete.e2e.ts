/**
 * Deleting a contact asks first, inline (ui/ConfirmCard.tsx, ui/confirm.ts), never with the
 * browser's confirm(): in real Chromium against the real server
 * (`node scripts/e2e.mjs test/e2e/contact-delete.e2e.ts`).
 *
 * What a keyboard or screen-reader user meets (WAI-ARIA Authoring Practices, alert dialog
 * pattern): the Delete button says whether its question is open (`aria-expanded`); the question is
 * an alert dialog named "Delete contact" and described by its words, which name the contact; the
 * focus lands on Cancel (a stray Enter deletes nothing); Escape and Cancel close it and give the
 * focus back to Delete, and nothing is deleted; a deletion the storage refuses (a full disk) says
 * why in words, keeps the contact and gives the focus back to Delete, and loses
 * nothing (the contact's draft and the file offered to it stay); Delete, reached by
 * Shift+Tab and pressed with Enter, deletes the contact and its conversation and goes Home. A
 * deletion whose files' forgetting fails afterwards (their store refuses) is still a deletion, said
 * as one, and leaves nothing for good: the next run forgets the transfers of a contact no longer
 * stored (engine/files/transfers.ts). axe on each state.
 */
import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import {
  addOfflineContact,
  allowWrites,
  byId,
  createIdentity,
  failWrites,
  inLoftDb,
  openContact,
  storedDraft,
} from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const id = byId;

/** Whether the element has the keyboard focus (run in the page). */
const isFocused = (e: Element) => e === document.activeElement;

/** The dialog's accessible description: the text of the elements its aria-describedby names. */
const description = (dialog: Locator) =>
  dialog.evaluate((el) =>
    (el.getAttribute("aria-describedby") ?? "")
      .split(/\s+/)
      .filter(Boolean)
      .map((ref) => document.getElementById(ref)?.textContent?.trim() ?? "")
      .join(" "),
  );

/** Keys of the file transfers stored on the device (the `loft-files` database's `transfers`). */
const storedTransfers = (page: Page) =>
  page.evaluate(
    () =>
      new Promise<string[]>((resolve, reject) => {
        const open = indexedDB.open("loft-files");
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const db = open.result;
          const keys = db.transaction("transfers").objectStore("transfers").getAllKeys();
          keys.onerror = () => reject(keys.error);
          keys.onsuccess = () => {
            db.close();
            resolve((keys.result as string[]).sort());
          };
        };
      }),
  );

/** Contact ids stored on the device (IndexedDB `contacts`). */
const storedContacts = (page: Page) =>
  inLoftDb(page, async ({ db, req }) =>
    ((await req(db.transaction("contacts").objectStore("contacts").getAllKeys())) as string[]).sort(),
  );

describe("deleting a contact asks inline, by keyboard and for screen readers", () => {
  let loft: LoftProcess;
  let browser: Browser;
  let p: Page;
  let bobId: string;
  let nativeDialogs = 0;

  beforeAll(async () => {
    loft = await startLoft();
    browser = await launchChromium();
    p = await (await browser.newContext()).newPage();
    p.on("dialog", (d) => {
      nativeDialogs++;
      void d.dismiss();
    });
    await createIdentity(p, loft.url, "Alice");
    await addOfflineContact(p, loft.url, "Carol");
    bobId = await addOfflineContact(p, loft.url, "Bob");
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
    ),
  );

  it("Escape and Cancel close the question, give the focus back to Delete and delete nothing", async () => {
    await openContact(p, { id: bobId });
    const opener = id(p, "delete-contact");
    expect(await opener.getAttribute("aria-expanded")).toBe("false");
    await opener.focus();
    await p.keyboard.press("Enter");
    const dialog = p.getByRole("alertdialog", { name: "Delete contact", exact: true });
    await expect
      .poll(() => dialog.getByRole("button", { name: "Cancel", exact: true }).evaluate(isFocused))
      .toBe(true);
    expect(await description(dialog)).toBe(
      "Delete Bob and your whole conversation with them from this device?",
    );
    expect(await opener.getAttribute("aria-expanded")).toBe("true");
    await expectNoAxeViolations(p, "contact (delete asked)");

    await p.keyboard.press("Escape");
    await expect.poll(() => dialog.count()).toBe(0);
    await expect.poll(() => opener.evaluate(isFocused)).toBe(true);
    expect(await opener.getAttribute("aria-expanded")).toBe("false");

    // Again, closed by Enter on the focused Cancel.
    await p.keyboard.press("Enter");
    await expect
      .poll(() => dialog.getByRole("button", { name: "Cancel", exact: true }).evaluate(isFocused))
      .toBe(true);
    await p.keyboard.press("Enter");
    await expect.poll(() => dialog.count()).toBe(0);
    await expect.poll(() => opener.evaluate(isFocused)).toBe(true);

    expect(await id(p, "contact-username").textContent()).toBe("Bob");
    expect(await storedContacts(p)).toContain(bobId);
    expect(nativeDialogs).toBe(0);
  });

  it("a deletion the storage refuses says why, keeps the contact and its draft, and gives the focus back to Delete", async () => {
    // Words typed to Bob and not sent, stored (sealed) before the deletion is tried.
    await id(p, "open-chat").click();
    await id(p, "composer-input").fill("words for Bob");
    await expect.poll(() => storedDraft(p, `chat:${bobId}`, "words for Bob")).toEqual({ holdsPlain: false });
    // And a file offered to Bob, waiting for him to be online.
    await id(p, "attach-input").setInputFiles({
      name: "for-bob.bin",
      mimeType: "application/octet-stream",
      buffer: Buffer.alloc(1_000, 7),
    });
    await expect.poll(() => id(p, "file-name").allTextContents()).toEqual(["for-bob.bin"]);
    await id(p, "chat-contact").click();
    await id(p, "contact-screen").waitFor();
    // A full disk for the contacts store (loft-ui.ts failWrites): the deletion's own write fails.
    await failWrites(p, ["contacts"]);
    try {
      await id(p, "delete-contact").click();
      await id(p, "confirm-delete-contact").click();
      await expect
        .poll(() => p.getByRole("alert").allTextContents())
        .toEqual(["Could not delete the contact: this browser has no storage space left for Loft."]);
      await expect.poll(() => p.getByRole("alertdialog").count()).toBe(0);
      await expect.poll(() => id(p, "delete-contact").evaluate(isFocused)).toBe(true);
      expect(await id(p, "contact-username").textContent()).toBe("Bob");
      await expectNoAxeViolations(p, "contact (deletion refused)");
    } finally {
      await allowWrites(p);
    }
    expect(await storedContacts(p)).toContain(bobId);
    // The draft stayed with the contact, on disk and in the composer (it was discarded before
    // the deletion was tried: a refused deletion lost it).
    expect(await storedDraft(p, `chat:${bobId}`, "words for Bob")).toEqual({ holdsPlain: false });
    await id(p, "open-chat").click();
    await expect.poll(() => id(p, "composer-input").inputValue()).toBe("words for Bob");
    // So did the file offered to him (the contact's files were forgotten before its record).
    await expect.poll(() => id(p, "file-name").allTextContents()).toEqual(["for-bob.bin"]);
    await id(p, "chat-contact").click();
    await id(p, "contact-screen").waitFor();
  });

  it("Delete, by keyboard: the contact is gone from Home and from the device", async () => {
    const before = await storedContacts(p);
    expect(before).toHaveLength(2);
    await id(p, "delete-contact").focus();
    await p.keyboard.press("Enter");
    // Asked again, the refusal before is no longer shown.
    await expect.poll(() => id(p, "delete-contact-error").count()).toBe(0);
    const dialog = p.getByRole("alertdialog", { name: "Delete contact", exact: true });
    await expect
      .poll(() => dialog.getByRole("button", { name: "Cancel", exact: true }).evaluate(isFocused))
      .toBe(true);
    await p.keyboard.press("Shift+Tab");
    expect(await dialog.getByRole("button", { name: "Delete", exact: true }).evaluate(isFocused)).toBe(true);
    await p.keyboard.press("Enter");
    await id(p, "home").waitFor();
    await expect
      .poll(() =>
        p
          .locator("[data-testid=contact-item]")
          .evaluateAll((els) => els.map((e) => e.getAttribute("data-username"))),
      )
      .toEqual(["Carol"]);
    expect(await storedContacts(p)).toEqual(before.filter((c) => c !== bobId));
    // Its draft went with it (the deletion that was refused before had kept it).
    await expect.poll(() => storedDraft(p, `chat:${bobId}`, "words for Bob")).toBeNull();
    await expectNoAxeViolations(p, "home (after a contact was deleted)");
    // Back does not lead to the deleted contact's screen: Home replaced it in the history.
    expect(new URL(p.url()).pathname).toBe("/");
    expect(nativeDialogs).toBe(0);
  });

  it("a deletion whose files cannot be forgotten is still a deletion, and their records go on the next run", async () => {
    // Carol is offered a file (kept for her next session), so the device holds its transfer.
    await openContact(p, { username: "Carol" });
    const carolId = (await id(p, "contact-id").textContent())!;
    await id(p, "open-chat").click();
    await id(p, "attach-input").setInputFiles({
      name: "for-carol.bin",
      mimeType: "application/octet-stream",
      buffer: Buffer.alloc(1_000, 9),
    });
    await expect.poll(() => id(p, "file-name").allTextContents()).toEqual(["for-carol.bin"]);
    const carols = async () => (await storedTransfers(p)).filter((k) => k.startsWith(`${carolId}/`));
    await expect.poll(carols).toHaveLength(1);
    await id(p, "chat-contact").click();
    await id(p, "contact-screen").waitFor();
    // The files' store refuses (a full disk for it alone): the contact's record goes, its files' do not.
    await failWrites(p, ["transfers"]);
    try {
      await id(p, "delete-contact").click();
      await id(p, "confirm-delete-contact").click();
      // Deleted, and said so: Home, no refusal (the contact is gone; "could not delete" was false).
      await id(p, "home").waitFor();
      expect(await p.getByRole("alert").count()).toBe(0);
      expect(await storedContacts(p)).not.toContain(carolId);
      expect(await carols()).toHaveLength(1);
    } finally {
      await allowWrites(p);
    }
    // The next run reads its transfers (here when a chat lists its files): Carol's, of a contact
    // no longer stored, are forgotten — nothing is left that nothing shows.
    await p.reload();
    await id(p, "home").waitFor();
    const danId = await addOfflineContact(p, loft.url, "Dan");
    await id(p, "open-chat").click();
    await id(p, "chat").waitFor();
    expect(await storedContacts(p)).toEqual([danId]);
    await expect.poll(carols).toEqual([]);
  });
});
