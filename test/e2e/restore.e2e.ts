/**
 * Restoring a backup, through the UI in real Chromium against the real server
 * (`node scripts/e2e.mjs test/e2e/restore.e2e.ts`; docs/protocol/backup.md, docs/user-guide.md
 * "Backups"):
 *
 * - a member of a room, backed up and restored on a new device (a fresh browser context, the old
 *   one gone), is back in the room: the others see it connected, what a member wrote while it
 *   was away comes to it live, messages go both ways and reach everyone (docs/protocol/rooms.md
 *   §3, §9: the new device starts its own pair ratchets);
 * - another tab of the device, open while a backup is restored in one, locks at once and says why
 *   (app/other-tabs.ts, ui/TabClosed.tsx; docs/protocol/chat.md §9, "Several tabs"): what it was
 *   writing never lands, and its Reload shows the restored identity, contacts and drafts;
 * - a backup restored in Settings while chat runs (docs/protocol/backup.md §5): the engine stops
 *   before the import writes anything (a message arriving meanwhile stored nothing over the
 *   restore) and starts again after; an import the storage refuses says so, changes nothing, and
 *   the engine starts again over the data kept; restored in a tab whose chat runs in another tab,
 *   the import waits until that tab's engine has stopped (the engine lock let go), a tab
 *   opened while it waits is locked too when the import begins, and words typed in the restoring
 *   tab during the import are not written into the restored device;
 * - the restore belongs to the tab, not to the Settings screen (app/model.ts `restoring`): left and
 *   opened again during the import, Settings says it is under way, its button busy, refuses a second
 *   one, and shows how it ended; its result line is a live region drawn empty (ui/LiveRegion.tsx),
 *   each failure drawn anew into it (announced), and brought into view on a Settings opened again
 *   — said in the notice instead, the page left where it is, while the person types in another field;
 *   a failure while Settings is left is said in the app's notice; Delete identity waits too;
 * - words typed in a conversation's or a room's composer before and during an import that fails
 *   are both there after it;
 * - the unlock screen's restore keeps Unlock and Start over busy and refuses an unlock meanwhile
 *   (an engine started then would run under the import); an unlock under way keeps that restore
 *   and Start over busy, and refuses them.
 *
 * Every wait is on a condition, never a duration; axe runs on each new screen state.
 */
import { readFile } from "node:fs/promises";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DraftKey, draftSecret } from "../../web/src/engine/local-notes.ts";
import { expectNoAxeViolations } from "../support/axe.ts";
import { useEngineTimings } from "../support/engine-timings.ts";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  addOfflineContact,
  allowWrites,
  announced,
  byId,
  createIdentity,
  createRoom,
  failWrites,
  heldCount,
  holdEncrypt,
  holdsEncryptionOf,
  incoming,
  inLoftDb,
  introduce,
  onlineMembers as online,
  openChatFromHome,
  openChatHere,
  releaseHeld,
  roomTexts,
  sendText,
  setPassphraseAndLock,
  storedDraft,
  typeAndSend,
  waitForMailboxes,
  waitForPresence,
  watchLiveRegions,
} from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;
const T = 60_000;

/**
 * From Home (or any screen with Back), Settings → a backup under `passphrase`; the file, read (the
 * download goes with its browser context, and a device given up is closed).
 */
async function exportBackup(page: Page, passphrase: string): Promise<BackupFile> {
  await openSettings(page);
  await id(page, "backup-passphrase").fill(passphrase);
  const [download] = await Promise.all([page.waitForEvent("download"), id(page, "export-backup").click()]);
  const buffer = await readFile(await download.path());
  expect(JSON.parse(buffer.toString("utf8"))).toMatchObject({ format: "loft-backup" });
  await id(page, "back").click();
  await id(page, "home").waitFor();
  return { name: download.suggestedFilename(), mimeType: "application/json", buffer };
}

interface BackupFile {
  name: string;
  mimeType: string;
  buffer: Buffer;
}

/**
 * A conversation's stored draft as sealed bytes (hex of its IV and ciphertext), null when there is
 * none: every write seals under a fresh IV, so any write since a reading changes it.
 */
const sealedDraft = (page: Page, key: DraftKey) =>
  inLoftDb(
    page,
    async ({ db, req }, name) => {
      const value = await req(db.transaction("secrets").objectStore("secrets").get(name));
      if (value === undefined) return null;
      const { iv, ct } = value as { iv: Uint8Array; ct: Uint8Array };
      return [...iv, ...ct].map((b) => b.toString(16).padStart(2, "0")).join("");
    },
    draftSecret(key),
  );

/** Contacts listed on Home, by name, sorted; read whole once the list is drawn. */
const contactNames = (page: Page) =>
  page
    .locator("[data-testid=contact-item]")
    .evaluateAll((els) => els.map((e) => e.getAttribute("data-username")).sort());

/**
 * The WebSockets (signaling, relays) of the page's current document, counted in the page (open
 * now, made so far, when the page last closed one): Playwright never reports a socket of a document navigated away from as closed.
 */
async function track(
  page: Page,
): Promise<{ open: () => Promise<number>; made: () => Promise<number>; lastClose: () => Promise<number> }> {
  await page.addInitScript(() => {
    const w = globalThis as unknown as {
      loftOpenSockets: number;
      loftSocketsMade: number;
      loftLastClose: number;
    };
    w.loftOpenSockets = 0;
    w.loftSocketsMade = 0;
    w.loftLastClose = 0;
    const Native = WebSocket;
    globalThis.WebSocket = class extends Native {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        w.loftOpenSockets++;
        w.loftSocketsMade++;
        this.addEventListener("close", () => {
          w.loftOpenSockets--;
        });
      }
      override close(...args: Parameters<WebSocket["close"]>): void {
        w.loftLastClose = Date.now();
        super.close(...args);
      }
    };
  });
  type Counts = { loftOpenSockets: number; loftSocketsMade: number; loftLastClose: number };
  return {
    open: () => page.evaluate(() => (globalThis as unknown as Counts).loftOpenSockets),
    made: () => page.evaluate(() => (globalThis as unknown as Counts).loftSocketsMade),
    lastClose: () => page.evaluate(() => (globalThis as unknown as Counts).loftLastClose),
  };
}

/**
 * The restore's transaction (the first to clear the "self" store: storage.ts `#writeBundle`) kept
 * busy until `releaseImport`, and every write another transaction asks for meanwhile recorded by
 * store name: queued behind the restore's, each would land over what it restored.
 */
const holdImport = (page: Page) =>
  page.evaluate(() => {
    const w = globalThis as unknown as {
      importHeld: boolean;
      importBegan: number;
      importGo: boolean;
      importFail: boolean;
      writesDuringImport: string[];
    };
    w.importHeld = false;
    w.importGo = false;
    w.importFail = false;
    w.writesDuringImport = [];
    let held: IDBTransaction | undefined;
    const proto = IDBObjectStore.prototype as IDBObjectStore & Record<string, unknown>;
    for (const method of ["put", "add", "delete", "clear"]) {
      const original = proto[method] as (...args: unknown[]) => unknown;
      proto[method] = function (this: IDBObjectStore, ...args: unknown[]) {
        if (held && !w.importGo && this.transaction !== held) w.writesDuringImport.push(this.name);
        const request = original.apply(this, args);
        if (!held && method === "clear" && this.name === "self") {
          held = this.transaction;
          w.importHeld = true;
          w.importBegan = Date.now();
          const spin = () => {
            // `failImport`: the storage refuses the import (as a full disk), nothing of it stays.
            if (w.importFail) this.transaction.abort();
            else if (!w.importGo) this.get("none").onsuccess = spin;
          };
          spin();
        }
        return request;
      };
    }
  });

const releaseImport = (page: Page) =>
  page.evaluate(() => {
    (globalThis as unknown as { importGo: boolean }).importGo = true;
  });

/** The held import refused by the storage (its transaction aborted): the restore fails. */
const failImport = (page: Page) =>
  page.evaluate(() => {
    const w = globalThis as unknown as { importGo: boolean; importFail: boolean };
    w.importFail = true;
    w.importGo = true;
  });

const importHeld = (page: Page) =>
  page.evaluate(() => (globalThis as unknown as { importHeld: boolean }).importHeld);

const writesDuringImport = (page: Page) =>
  page.evaluate(() => (globalThis as unknown as { writesDuringImport: string[] }).writesDuringImport);

const importBegan = (page: Page) =>
  page.evaluate(() => (globalThis as unknown as { importBegan: number }).importBegan);

/**
 * The page's next write to the "messages" store kept busy (its transaction open) until
 * `releaseMessages`: a message handed over whose store has not ended, which an engine's stop waits
 * for (engine.ts `stop`, bounded by `stopSettleMs`).
 */
const holdMessages = (page: Page) =>
  page.evaluate(() => {
    const w = globalThis as unknown as { messagesHeld: boolean; messagesGo: boolean };
    w.messagesHeld = false;
    w.messagesGo = false;
    const proto = IDBObjectStore.prototype;
    const put = proto.put;
    proto.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore["put"]>) {
      const request = put.apply(this, args);
      if (this.name === "messages" && !w.messagesHeld) {
        w.messagesHeld = true;
        const spin = () => {
          if (!w.messagesGo) this.get("none").onsuccess = spin;
        };
        spin();
      }
      return request;
    };
  });

/** Home, from any screen with Back. */
async function goHome(page: Page): Promise<void> {
  while (!(await id(page, "nav-settings").isVisible())) await id(page, "back").click();
}

/** Settings, from Home or any screen with Back. */
async function openSettings(page: Page): Promise<void> {
  await goHome(page);
  await id(page, "nav-settings").click();
  await id(page, "settings").waitFor();
}

/**
 * In the open Settings, while a restore runs: Restore backup with `file` submitted past its busy
 * button (a script, an assistive tool), refused in words.
 */
async function restorePastBusyButton(page: Page, file: BackupFile, passphrase: string): Promise<void> {
  await id(page, "import-file").setInputFiles(file);
  await id(page, "import-passphrase").fill(passphrase);
  await id(page, "import-backup").evaluate((b) => (b as HTMLButtonElement).form?.requestSubmit());
  await expect
    .poll(() => id(page, "import-result").textContent(), { timeout: T })
    .toContain("one is being restored in this tab already");
}

/**
 * Click the button `testid` past its `disabled` (a script, an assistive tool): the model's refusal
 * is what is left to say why.
 */
async function clickPastDisabled(page: Page, testid: string): Promise<void> {
  await id(page, testid).evaluate((b) => {
    (b as HTMLButtonElement).disabled = false;
    (b as HTMLButtonElement).click();
  });
}

/** Settings → Restore backup with `file` and its passphrase (the restore is not waited for). */
async function restoreInSettings(page: Page, file: BackupFile, passphrase: string): Promise<void> {
  await openSettings(page);
  await id(page, "import-file").setInputFiles(file);
  await id(page, "import-passphrase").fill(passphrase);
  await id(page, "import-backup").click();
}

describe("restoring a backup", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let cat: BrowserContext;
  let a: Page;
  let b: Page;
  let c: Page;

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ loft, a, b } = env);
    cat = await env.browser.newContext();
    c = await cat.newPage();
    env.watch("cat", c);
    await Promise.all([
      createIdentity(a, loft.url, "Ann"),
      createIdentity(b, loft.url, "Bea"),
      createIdentity(c, loft.url, "Cat"),
    ]);
  }, 120_000);
  afterAll(() =>
    tearDown(
      () => closeBrowser(env?.browser),
      () => env?.close(),
    ),
  );

  /**
   * A device of its own (a browser context: its storage, its tabs) where `name` creates an
   * identity in a first tab (watched as the name in lower case) and backs it up at once, under
   * "<name> backup passphrase". The caller closes the device.
   */
  async function deviceWithBackup(name: string) {
    const device = await env.browser.newContext();
    const p = await device.newPage();
    env.watch(name.toLowerCase(), p);
    await createIdentity(p, loft.url, name);
    const passphrase = `${name.toLowerCase()} backup passphrase`;
    const backup = await exportBackup(p, passphrase);
    return { device, p, backup, passphrase };
  }

  /** Another tab of `device`, watched as `watchAs`, with Loft open on Home. */
  async function openTab(device: BrowserContext, watchAs: string): Promise<Page> {
    const tab = await device.newPage();
    env.watch(watchAs, tab);
    await tab.goto(loft.url);
    await id(tab, "home").waitFor({ timeout: T });
    return tab;
  }

  it("a room member restored on a new device rejoins the room and talks with the others", async () => {
    // Ann makes a room; Bea and Cat join from its link; all three are connected and talk.
    await id(a, "nav-new-room").click();
    await id(a, "room-link-qr").waitFor({ timeout: T });
    const link = await id(a, "room-link").inputValue();
    await id(a, "open-room").click();
    await id(a, "room-screen").waitFor();
    const roomId = (await id(a, "room-screen").getAttribute("data-room-id")) ?? "";
    await b.goto(link);
    await id(b, "room-screen").waitFor({ timeout: T });
    await c.goto(link);
    await id(c, "room-screen").waitFor({ timeout: T });
    for (const p of [a, b, c]) await expect.poll(() => online(p).count(), { timeout: T }).toBe(2);
    // One at a time: each message has reached everyone before the next is written, so every
    // screen lists them in one order.
    await typeAndSend(a, "hello all");
    await expect.poll(() => roomTexts(b, "in"), { timeout: T }).toEqual(["hello all"]);
    await expect.poll(() => roomTexts(c, "in"), { timeout: T }).toEqual(["hello all"]);
    await typeAndSend(b, "bea on her old phone");
    await expect
      .poll(() => roomTexts(c, "in"), { timeout: T })
      .toEqual(["hello all", "bea on her old phone"]);
    await expect
      .poll(() => b.locator("[data-testid=room-message][data-direction=out][data-state=delivered]").count(), {
        timeout: T,
      })
      .toBe(1);

    // Bea backs up, and her old device goes away: the others see her leave.
    const backup = await exportBackup(b, "bea backup passphrase");
    await env.bob.close();
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    await expect.poll(() => online(c).count(), { timeout: T }).toBe(1);
    // Ann writes while Bea is away: Cat reads it now; Bea's copy waits, unconfirmed (rooms.md §9).
    await typeAndSend(a, "while you were away");
    await expect
      .poll(() => roomTexts(c, "in"), { timeout: T })
      .toEqual(["hello all", "bea on her old phone", "while you were away"]);

    // A new device: the backup restored from the first screen brings the room back.
    const device = await env.browser.newContext();
    const n = await device.newPage();
    env.watch("bea-new", n);
    await n.goto(loft.url);
    await n.locator("summary", { hasText: "Restore from a backup" }).click();
    await id(n, "restore-file").setInputFiles(backup);
    await id(n, "restore-passphrase").fill("bea backup passphrase");
    await id(n, "restore-submit").click();
    await id(n, "restore-result").waitFor({ timeout: T });
    await expect.poll(() => id(n, "restore-result-back").locator("li").allTextContents()).toContain("1 room");
    // What the card says of room messages after the backup, which the rest of this test shows
    // true: the old device never received "while you were away", and it reaches this one.
    await expect
      .poll(() => id(n, "restore-result-not").locator("li").allTextContents())
      .toContain(
        "Room messages your old device received after the backup was made: they stay with it. The ones it had not received reach this device when their writer is in the room with you.",
      );
    await id(n, "restore-result-done").click();
    expect(await id(n, "my-username").textContent()).toBe("Bea");
    await n.locator(`[data-testid=room-item][data-room-id="${roomId}"]`).click();
    await id(n, "room-screen").waitFor();
    // Its history came with it; the members present dial it as a newcomer (rooms.md §3), and
    // Ann's link to it sends again what Bea had not confirmed: what Ann wrote while she was away.
    for (const p of [n, a, c]) await expect.poll(() => online(p).count(), { timeout: T }).toBe(2);
    await expect
      .poll(() => n.locator("[data-testid=room-message-text]").allTextContents(), { timeout: T })
      .toEqual(["hello all", "bea on her old phone", "while you were away"]);
    await expectNoAxeViolations(n, "room, restored on a new device");

    // Messages go both ways, to everyone, and are confirmed by everyone.
    await typeAndSend(n, "bea on her new phone");
    await expect
      .poll(() => roomTexts(a, "in"), { timeout: T })
      .toEqual(["bea on her old phone", "bea on her new phone"]);
    await expect
      .poll(() => roomTexts(c, "in"), { timeout: T })
      .toEqual(["hello all", "bea on her old phone", "while you were away", "bea on her new phone"]);
    await expect
      .poll(
        () => n.locator("[data-testid=room-message][data-direction=out]").last().getAttribute("data-state"),
        {
          timeout: T,
        },
      )
      .toBe("delivered");
    await typeAndSend(a, "welcome back");
    await expect
      .poll(() => roomTexts(n, "in"), { timeout: T })
      .toEqual(["hello all", "while you were away", "welcome back"]);
    await typeAndSend(c, "hi again");
    await expect
      .poll(() => roomTexts(n, "in"), { timeout: T })
      .toEqual(["hello all", "while you were away", "welcome back", "hi again"]);
    await expect
      .poll(
        () => a.locator("[data-testid=room-message][data-direction=out]").last().getAttribute("data-state"),
        {
          timeout: T,
        },
      )
      .toBe("delivered");
    await device.close();
  });

  it("another tab locks while a backup is restored in one, keeps nothing it was writing, and a reload shows the restored device", async () => {
    const dana = await env.browser.newContext();
    try {
      const p = await dana.newPage();
      env.watch("dana", p);
      await createIdentity(p, loft.url, "Dana");
      const eveId = await addOfflineContact(p, loft.url, "Eve");
      // Words to Eve not sent yet: a draft the backup carries (docs/protocol/backup.md §3).
      await id(p, "open-chat").click();
      await id(p, "composer-input").fill("from the backup");
      await expect
        .poll(() => storedDraft(p, `chat:${eveId}`, "from the backup"))
        .toEqual({ holdsPlain: false });
      const backup = await exportBackup(p, "dana backup passphrase");
      // After the backup: a contact the restore takes away.
      await addOfflineContact(p, loft.url, "Finn");
      await p.goto(loft.url);
      await expect.poll(() => contactNames(p)).toEqual(["Eve", "Finn"]);

      // The other tab, with words being typed to Eve whose draft write cannot finish yet
      // (encryption held): left to go on, it would land after the restore — in the restored device.
      const q = await dana.newPage();
      env.watch("dana-2", q);
      await q.goto(loft.url);
      await openChatFromHome(q, eveId);
      await expect.poll(() => id(q, "composer-input").inputValue()).toBe("from the backup");
      await holdEncrypt(q);
      await id(q, "composer-input").pressSequentially(", typed in the other tab");
      // Its draft write started and waits on the held encryption (a write still in its debounce
      // would simply be dropped when the tab locks: nothing to show). It holds what was typed when
      // it started, on a loaded machine only the first letters typed here: the backup's words and
      // the comma after them.
      await expect.poll(() => holdsEncryptionOf(q, "from the backup,"), { timeout: T }).toBe(true);
      const refused: string[] = [];
      q.on("console", (m) => {
        if (m.text().startsWith("drafts: a draft was not stored")) refused.push(m.text());
      });

      // The import held open while the other tab's words are read: they change once it is done.
      await holdImport(p);
      await id(p, "nav-settings").click();
      await id(p, "import-file").setInputFiles(backup);
      await id(p, "import-passphrase").fill("dana backup passphrase");
      await id(p, "import-backup").click();

      // Told before anything is replaced, the other tab locks and says why.
      await id(q, "tab-closed").waitFor({ timeout: T });
      expect(await id(q, "tab-closed-why").textContent()).toBe(
        "A backup is being restored on this device in another tab.",
      );
      expect(await id(q, "composer-input").count()).toBe(0);
      await expectNoAxeViolations(q, "tab closed (a backup restored in another tab)");
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      await releaseImport(p);

      // The restoring tab ends on Home with the backup's contacts, Eve's draft the backup's.
      await id(p, "restore-result").waitFor({ timeout: T });
      // The locked tab, told the restore is done, says so. Before, it said one was under way, for ever.
      await expect
        .poll(() => id(q, "tab-closed-why").textContent(), { timeout: T })
        .toBe("A backup was restored on this device in another tab.");
      await expect.poll(() => contactNames(p)).toEqual(["Eve"]);
      const restored = await sealedDraft(p, `chat:${eveId}`);
      expect(restored).not.toBeNull();

      // The locked tab's held write goes on now, into the restored device — and must not land: it
      // is refused (the tab's storage closed), and the stored draft stays the backup's. Waited on
      // until one of the two shows, so a write that lands fails here rather than being cut short by
      // the reload below.
      await releaseHeld(q);
      await expect
        .poll(async () => refused.length > 0 || (await sealedDraft(p, `chat:${eveId}`)) !== restored, {
          timeout: T,
        })
        .toBe(true);
      expect(await sealedDraft(p, `chat:${eveId}`), "the locked tab's draft write landed").toBe(restored);
      expect(refused).toHaveLength(1);

      // The locked tab's Reload (its page going: no draft copy written) starts from what the
      // device holds now, on the screen it showed: Eve's chat with the backup's draft — not the
      // words typed in this tab — then Home with the restored identity and contacts.
      await id(q, "tab-closed-reload").click();
      await id(q, "chat").waitFor({ timeout: T });
      await expect.poll(() => id(q, "composer-input").inputValue()).toBe("from the backup");
      await id(q, "back").click();
      await id(q, "home").waitFor();
      expect(await id(q, "my-username").textContent()).toBe("Dana");
      await expect.poll(() => contactNames(q)).toEqual(["Eve"]);
    } finally {
      await dana.close();
    }
  });
  it("a backup restored where chat runs: the engine stops before the import writes, and a failed import starts it again", async () => {
    const gus = await env.browser.newContext();
    const hal = await env.browser.newContext();
    try {
      const g = await gus.newPage();
      const h = await hal.newPage();
      env.watch("gus", g);
      env.watch("hal", h);
      const { open, made } = await track(g);
      // Gus and Hal talk, each holding the other's mailbox: Hal's next message reaches Gus's
      // engine live or through the relay, and his engine stores it (ratchet and history).
      const [gId, hId] = await introduce(g, h, loft.url, ["Gus", "Hal"]);
      await openChatHere(g);
      await openChatFromHome(h, gId);
      await waitForPresence(g, /^online/);
      await sendText(h, "before the backup");
      await incoming(g, "before the backup").waitFor({ timeout: T });
      await waitForMailboxes(g, gId, h, hId);
      const backup = await exportBackup(g, "gus backup passphrase");
      await expect.poll(open).toBeGreaterThan(0);

      // The restore here, its transaction held open once it began writing.
      await holdImport(g);
      await restoreInSettings(g, backup, "gus backup passphrase");
      await expect.poll(() => importHeld(g), { timeout: T }).toBe(true);
      // Gus's engine stopped before the import wrote anything: no connection of it is left, and
      // Hal's message now waits for him instead of being stored over the restore. Before, the
      // engine ran until the import was done (app/backup.ts, then `reload`): its connections stayed
      // open here, and a message arriving meanwhile stored a ratchet state and history the backup
      // does not hold, each write landing after the restore's.
      await expect.poll(open, { timeout: T }).toBe(0);
      await sendText(h, "during the restore");
      await expect
        .poll(
          () => h.locator("[data-testid=message][data-direction=out]").last().getAttribute("data-state"),
          { timeout: T },
        )
        .toMatch(/^(sent|relayed|delivered)$/);
      expect(await writesDuringImport(g)).toEqual([]);
      await releaseImport(g);
      await id(g, "restore-result").waitFor({ timeout: T });
      expect(await writesDuringImport(g)).toEqual([]);
      // The chat starts again over the restored device.
      await expect.poll(open, { timeout: T }).toBeGreaterThan(0);
      await id(g, "restore-result-done").click();

      // A restore the storage refuses (as on a full disk): told in words, nothing changed, and the
      // engine stopped for it starts again over what was kept: new connections of its own, and
      // Hal sees Gus online again.
      await waitForPresence(h, /^online/);
      await failWrites(g, ["self"]);
      const before = await made();
      await restoreInSettings(g, backup, "gus backup passphrase");
      await id(g, "import-result").waitFor({ timeout: T });
      const said = (await id(g, "import-result").textContent()) ?? "";
      expect(said).toMatch(/^Could not restore the backup: .*Nothing was changed\.$/);
      await allowWrites(g);
      await expect.poll(made, { timeout: T }).toBeGreaterThan(before);
      await expect.poll(open, { timeout: T }).toBeGreaterThan(0);
      await waitForPresence(h, /^online/);
      await id(g, "back").click();
      await expect.poll(() => contactNames(g)).toEqual(["Hal"]);
    } finally {
      await gus.close();
      await hal.close();
    }
  });
  it("a backup restored in a tab whose chat runs in another: the import waits until that tab's engine has stopped", async () => {
    const ida = await env.browser.newContext();
    try {
      // The first tab runs the chat (it holds the engine lock); its engine's stop will wait on a
      // message whose store is held, as long as a stop waits (engine.ts `stop`).
      const q = await ida.newPage();
      env.watch("ida", q);
      const chat = await track(q);
      await createIdentity(q, loft.url, "Ida");
      const joId = await addOfflineContact(q, loft.url, "Jo");
      await expect.poll(chat.open).toBeGreaterThan(0);
      const backup = await exportBackup(q, "ida backup passphrase");
      // The second tab runs the offline stand-in (chat runs in the first); the restore is made here.
      const p = await ida.newPage();
      env.watch("ida-2", p);
      await p.goto(loft.url);
      await id(p, "home").waitFor({ timeout: T });
      await openChatFromHome(q, joId);
      await holdMessages(q);
      await sendText(q, "held while it is stored");
      await expect
        .poll(() => q.evaluate(() => (globalThis as unknown as { messagesHeld: boolean }).messagesHeld))
        .toBe(true);

      await holdImport(p);
      await restoreInSettings(p, backup, "ida backup passphrase");
      await id(q, "tab-closed").waitFor({ timeout: T });
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      // The first tab's engine had stopped (its connections closed) before the import began.
      // Before, the second tab imported at once, while that engine still ran and stored.
      await expect.poll(chat.open, { timeout: T }).toBe(0);
      expect(await chat.lastClose()).toBeLessThanOrEqual(await importBegan(p));
      await q.evaluate(() => {
        (globalThis as unknown as { messagesGo: boolean }).messagesGo = true;
      });
      await releaseImport(p);
      await id(p, "restore-result").waitFor({ timeout: T });
      await expect.poll(() => contactNames(p)).toEqual(["Jo"]);
    } finally {
      await ida.close();
    }
  });
  it("a restore waiting for another tab's engine says so, a tab opened meanwhile is locked too when the import begins, and words typed during the import do not land", async () => {
    const { device: max, p: first, backup, passphrase } = await deviceWithBackup("Max");
    try {
      // The backup holds no contact; the device then gets one (Ned), which the restore takes away.
      const nedId = await addOfflineContact(first, loft.url, "Ned");
      await first.close();
      // A tab holding the engine lock until the test lets it go (as a tab whose engine's stop takes
      // its time): the restore waits for it, here as long as the test needs, not the 20 s.
      await useEngineTimings(max, { engineHandBackMs: 600_000 });
      const holder = await max.newPage();
      env.watch("max-holder", holder);
      await holder.addInitScript(() => {
        void navigator.locks?.request(
          "loft-engine",
          () =>
            new Promise<void>((letGo) => {
              (globalThis as unknown as { letGo: () => void }).letGo = letGo;
            }),
        );
      });
      await holder.goto(loft.url);
      await id(holder, "home").waitFor({ timeout: T });
      const p = await openTab(max, "max-2");

      // The form's live region is drawn with it, empty: a screen reader announces the words that
      // come into it, not those of a region inserted already filled (as it was before).
      await id(p, "nav-settings").click();
      await id(p, "import-backup").waitFor();
      expect(await id(p, "restore-waiting-news").getAttribute("role")).toBe("status");
      expect(await id(p, "restore-waiting-news").textContent()).toBe("");
      await restoreInSettings(p, backup, passphrase);
      // While the restore waits for the other tab (up to page-timings.ts `engineHandBackMs`), it
      // says so, with the bound, in that live region. Before, the button stayed busy with nothing
      // said. The wait lasts until the test ends it: the words are read and axe-checked while they
      // show, however long a loaded machine takes between those steps.
      await id(p, "restore-waiting").waitFor({ timeout: T });
      expect(await id(p, "restore-waiting-news").textContent()).toContain("(up to 600 seconds)");
      await expectNoAxeViolations(p, "settings (a restore waiting for another tab)");
      // A second restore submitted meanwhile past the busy button is refused in words, about that
      // attempt: they go once the first one has ended (below).
      await restorePastBusyButton(p, backup, passphrase);
      // Opened now, after the other tabs were told of the restore: it knows nothing of it, and
      // shows (and could write over) what the import is about to replace.
      const late = await openTab(max, "max-late");
      await expect.poll(() => contactNames(late)).toEqual(["Ned"]);

      // The person leaves Settings for Ned's chat while the restore waits; the import, once the
      // engine lock comes, is held open.
      await holdImport(p);
      await id(p, "back").click();
      await openChatFromHome(p, nedId);
      await holder.evaluate(() => (globalThis as unknown as { letGo: () => void }).letGo());
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      // Told again once no engine runs and the import begins, the late tab locks itself like the
      // others, the import still under way. Before, it went on over the restored device with what
      // it had read of the replaced one.
      await id(late, "tab-closed").waitFor({ timeout: T });
      expect(await id(late, "tab-closed-why").textContent()).toBe(
        "A backup is being restored on this device in another tab.",
      );
      // Words typed to Ned during the import, their write started at once (as when the page is
      // hidden): they belong to the device the import replaces, and must not land in the restored
      // one. Before, the write waited for the import (storage.ts `importBundle`, exclusive) and
      // landed after it: Ned's draft in a device without Ned.
      await id(p, "composer-input").fill("typed during the restore");
      await p.evaluate(() => window.dispatchEvent(new Event("pagehide")));
      await releaseImport(p);
      await id(p, "restore-result").waitFor({ timeout: T });
      await expect.poll(() => contactNames(p)).toEqual([]);
      expect(await sealedDraft(p, `chat:${nedId}`), "a draft typed during the import landed").toBeNull();
      await expect
        .poll(() => id(late, "tab-closed-why").textContent(), { timeout: T })
        .toBe("A backup was restored on this device in another tab.");
      // Settings opened once the restore went through says nothing of the refused second one.
      // Before, its words stayed there, "Could not restore the backup", over a restore done.
      await openSettings(p);
      expect(await id(p, "import-result-news").textContent()).toBe("");
    } finally {
      await max.close();
    }
  });
  it("words typed during an import that fails are the device's: written once it failed after the draft stored before, there when the chat is opened again", async () => {
    const { device: ora, p, backup, passphrase } = await deviceWithBackup("Ora");
    try {
      const penId = await addOfflineContact(p, loft.url, "Pen");
      // A draft to Pen stored before the restore, and not read in this run (the page reloaded).
      await id(p, "open-chat").click();
      await id(p, "composer-input").fill("from before");
      await expect.poll(() => storedDraft(p, `chat:${penId}`, "from before")).toEqual({ holdsPlain: false });
      await p.goto(loft.url);
      await id(p, "home").waitFor({ timeout: T });
      const storedBefore = await sealedDraft(p, `chat:${penId}`);
      await holdImport(p);
      await restoreInSettings(p, backup, passphrase);
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      // Words typed to Pen while the import runs: not written meanwhile (they would land in the
      // restored device). The stored draft cannot be read while the import holds the storage:
      // the composer opens empty.
      await id(p, "back").click();
      await openChatFromHome(p, penId);
      expect(await id(p, "composer-input").inputValue()).toBe("");
      await id(p, "composer-input").fill("typed during a restore that fails");
      await p.evaluate(() => window.dispatchEvent(new Event("pagehide")));
      // The storage refuses the import: nothing was replaced, Pen is still here, and the words are
      // written without a key more, after the draft stored before, which the composer shows now.
      // Before, they were dropped from memory with the draft store (never written, and gone from
      // the composer once the chat was left and opened again); then they were written alone, over
      // the stored draft, which was lost.
      await failImport(p);
      const both = "from before\ntyped during a restore that fails";
      await expect.poll(() => id(p, "composer-input").inputValue(), { timeout: T }).toBe(both);
      await expect.poll(() => sealedDraft(p, `chat:${penId}`), { timeout: T }).not.toBe(storedBefore);
      expect(await writesDuringImport(p)).toEqual([]);
      await id(p, "back").click();
      await expect.poll(() => contactNames(p)).toEqual(["Pen"]);
      await openChatFromHome(p, penId);
      await expect.poll(() => id(p, "composer-input").inputValue(), { timeout: T }).toBe(both);
      // What the device holds: read from storage after a reload.
      await p.goto(loft.url);
      await openChatFromHome(p, penId);
      await expect.poll(() => id(p, "composer-input").inputValue(), { timeout: T }).toBe(both);
    } finally {
      await ora.close();
    }
  });
  it("words typed in a room's composer before an import that fails are there after it, with those typed during it", async () => {
    const { device: rae, p, backup, passphrase } = await deviceWithBackup("Rae");
    try {
      // A room made after the backup, with a draft stored before the restore, not read in this run
      // (the page reloaded): the import would take the room away; failed, it keeps both.
      const { roomId } = await createRoom(p, T);
      const room = `room:${roomId}` as const;
      await id(p, "composer-input").fill("room words from before");
      await expect.poll(() => storedDraft(p, room, "room words from before")).toEqual({ holdsPlain: false });
      await p.goto(loft.url);
      await id(p, "home").waitFor({ timeout: T });
      const storedBefore = await sealedDraft(p, room);
      const openRoom = () => p.locator(`[data-testid=room-item][data-room-id="${roomId}"]`).click();
      await holdImport(p);
      await restoreInSettings(p, backup, passphrase);
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      // Words typed in the room while the import runs (its stored draft cannot be read meanwhile:
      // the composer opens empty), their write started at once.
      await id(p, "back").click();
      await openRoom();
      await id(p, "room-screen").waitFor();
      expect(await id(p, "composer-input").inputValue()).toBe("");
      await id(p, "composer-input").fill("typed in the room during a restore that fails");
      await p.evaluate(() => window.dispatchEvent(new Event("pagehide")));
      // The storage refuses the import: the room's composer shows the draft stored before, then
      // what was typed during the import, as a conversation's does (the test before), and the
      // device holds both — in the composer opened again, and after a reload.
      await failImport(p);
      const both = "room words from before\ntyped in the room during a restore that fails";
      await expect.poll(() => id(p, "composer-input").inputValue(), { timeout: T }).toBe(both);
      await expect.poll(() => sealedDraft(p, room), { timeout: T }).not.toBe(storedBefore);
      expect(await writesDuringImport(p)).toEqual([]);
      await id(p, "back").click();
      await id(p, "home").waitFor();
      await openRoom();
      await expect.poll(() => id(p, "composer-input").inputValue(), { timeout: T }).toBe(both);
      await p.goto(loft.url);
      await id(p, "home").waitFor({ timeout: T });
      await openRoom();
      await expect.poll(() => id(p, "composer-input").inputValue(), { timeout: T }).toBe(both);
    } finally {
      await rae.close();
    }
  });
  it("a restore failure reaching Settings opened again is brought into view, and each failure is announced", async () => {
    const { device: sam, p, backup, passphrase } = await deviceWithBackup("Sam");
    try {
      // A phone's screen: the restore form's result line is below the fold of Settings.
      await p.setViewportSize({ width: 400, height: 640 });
      await watchLiveRegions(p);
      /** Whether the restore's result line is on the screen, whole. */
      const resultInView = () =>
        id(p, "import-result").evaluate((el) => {
          const r = el.getBoundingClientRect();
          return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight;
        });
      const FAILED = /^Could not restore the backup: .*Nothing was changed\.$/;
      await holdImport(p);
      await restoreInSettings(p, backup, passphrase);
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      // Settings left and opened again while the import runs, at its top: the result line's
      // region is far below the fold.
      await id(p, "back").click();
      await openSettings(p);
      await p.evaluate(() => window.scrollTo(0, 0));
      expect(
        await id(p, "import-result-news").evaluate(
          (el) => el.getBoundingClientRect().top > window.innerHeight,
        ),
      ).toBe(true);
      // The import fails: the words come into view. Before, only the screen that submitted the
      // restore brought them into view — gone, its element no longer on the page — and the person
      // saw nothing of how it ended.
      await failImport(p);
      await expect.poll(() => id(p, "import-result").textContent(), { timeout: T }).toMatch(FAILED);
      await expect.poll(resultInView, { timeout: T }).toBe(true);
      const said = (await id(p, "import-result").textContent()) ?? "";
      await expectNoAxeViolations(p, "settings (a restore failed while opened again)");
      // The same restore, failing the same way, from this screen: announced again, in view again.
      await holdImport(p);
      await id(p, "import-file").setInputFiles(backup);
      await id(p, "import-passphrase").fill(passphrase);
      await id(p, "import-backup").click();
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      await p.evaluate(() => window.scrollTo(0, 0));
      await failImport(p);
      await expect.poll(() => announced(p, "import-result-news"), { timeout: T }).toEqual([said, said]);
      await expect.poll(resultInView, { timeout: T }).toBe(true);
    } finally {
      await sam.close();
    }
  });
  it("a restore failure reaching Settings while the person types in another field leaves the page where it is: said once, in the notice", async () => {
    const { device: tia, p, backup, passphrase } = await deviceWithBackup("Tia");
    try {
      await p.setViewportSize({ width: 400, height: 640 });
      await watchLiveRegions(p);
      const FAILED = /^Could not restore the backup: .*Nothing was changed\. ✕$/;
      await holdImport(p);
      await restoreInSettings(p, backup, passphrase);
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      // Settings opened again while the import runs, its name typed in at the top of the screen
      // (the restore's form far below the fold).
      await id(p, "back").click();
      await openSettings(p);
      await p.evaluate(() => window.scrollTo(0, 0));
      await id(p, "settings-username").click();
      await p.keyboard.press("End");
      await p.keyboard.type(" Tam");
      const fieldInView = () =>
        id(p, "settings-username").evaluate((el) => {
          const r = el.getBoundingClientRect();
          return r.top >= 0 && r.bottom <= window.innerHeight;
        });
      expect(await fieldInView()).toBe(true);
      // The import fails: said in the notice, at the top, where the person is; the page stays, the
      // field in view, the keys still going to it. Before, the page scrolled down to the failure
      // under the restore's form (2,000 px and more here), and the next key scrolled it back to
      // the field, the failure out of sight again.
      await failImport(p);
      await expect.poll(() => id(p, "notice").textContent(), { timeout: T }).toMatch(FAILED);
      expect(await p.evaluate(() => window.scrollY)).toBe(0);
      expect(await fieldInView()).toBe(true);
      expect(await p.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe(
        "settings-username",
      );
      // Said once: in the notice, not under the form as well.
      const notice = (await id(p, "notice").textContent()) ?? "";
      expect(await announced(p, "notice-news")).toEqual([notice]);
      expect(await announced(p, "import-result-news")).toEqual([]);
      expect(await id(p, "import-result-news").textContent()).toBe("");
      await p.keyboard.type("s");
      expect(await id(p, "settings-username").inputValue()).toBe("Tia Tams");
      expect(await p.evaluate(() => window.scrollY)).toBe(0);
      await expectNoAxeViolations(p, "settings (a restore failed while typing elsewhere)");
      // The notice dismissed (by reflex, say) and Settings left: the failure is not lost, Settings
      // opened again says it under Restore. Before, it went with the notice, and nothing on any
      // screen said the backup had not been restored.
      await id(p, "notice").getByRole("button", { name: "Dismiss" }).click();
      await expect.poll(() => id(p, "notice-news").textContent()).toBe("");
      await openSettings(p);
      expect(await id(p, "import-result").textContent()).toBe(notice.replace(/ ✕$/, ""));
      // Nothing was changed: the restore's form works, and a failure with the focus on it (no one
      // typing elsewhere) is said under it, brought into view.
      await holdImport(p);
      await id(p, "import-file").setInputFiles(backup);
      await id(p, "import-passphrase").fill(passphrase);
      await id(p, "import-backup").click();
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      await failImport(p);
      await expect
        .poll(() => id(p, "import-result").textContent(), { timeout: T })
        .toMatch(/^Could not restore the backup: /);
      expect(await announced(p, "import-result-news")).toHaveLength(1);
    } finally {
      await tia.close();
    }
  });
  it("Settings left and opened again during a restore shows it under way, its button busy, refuses a second one, and then shows how it ended", async () => {
    const { device: ida, p, backup, passphrase } = await deviceWithBackup("Ida");
    try {
      await addOfflineContact(p, loft.url, "Jon");
      // Home with a contact offers notifications (the browser not asked yet). The app's notice is
      // a live region drawn with it, empty, like the forms' result lines below.
      await goHome(p);
      await id(p, "notification-offer").waitFor({ timeout: T });
      expect(await id(p, "notice-news").getAttribute("role")).toBe("status");
      expect(await id(p, "notice-news").textContent()).toBe("");
      await holdImport(p);
      // The restore form's result line is a live region drawn with the form, empty: a screen
      // reader announces the words that come into it, not those of a region inserted filled.
      await openSettings(p);
      expect(await id(p, "import-result-news").getAttribute("role")).toBe("status");
      expect(await id(p, "import-result-news").textContent()).toBe("");
      expect(await id(p, "restore-progress-news").textContent()).toBe("");
      await restoreInSettings(p, backup, passphrase);
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      // A tab opened once the import began (told of it before: not locked), starting meanwhile.
      const late = await ida.newPage();
      env.watch("ida-2", late);
      await late.goto(loft.url);
      // Its app exists and listens to the other tabs (the loading screen is drawn by the AppModel,
      // which stays there while the held import locks the stores it boots from): news of the
      // refused restore sent from here on would reach it.
      await id(late, "loading").waitFor({ timeout: T });
      // Settings left and opened again while the import runs: the restore shows, its button busy
      // (app/model.ts `restoring`). Before, the state lived in the screen: opened anew, the button
      // was enabled and nothing said a restore was under way.
      await id(p, "back").click();
      await id(p, "home").waitFor();
      // No notification offer on Home meanwhile: its "Not now" is a setting, which would be
      // written after the import, in the restored device. Before, it was offered.
      await id(p, "contact-list").waitFor();
      expect(await id(p, "notification-offer").count()).toBe(0);
      await openSettings(p);
      await expect.poll(() => id(p, "import-backup").isDisabled()).toBe(true);
      expect(await id(p, "restore-progress").textContent()).toContain("Restoring the backup…");
      // The other settings wait too: changed now, they would land after the import, in the
      // restored device. A name saved past its busy button is refused in words — saved, the
      // replaced identity, renamed, would be written over the restored one once the import is done.
      expect(await id(p, "save-username").isDisabled()).toBe(true);
      expect(await id(p, "notify-off").isDisabled()).toBe(true);
      // Delete identity too: it would wait for the import, then delete the device it restored,
      // while the other tabs were told that a backup was restored.
      expect(await id(p, "delete-identity").isDisabled()).toBe(true);
      // Confirmed past the busy buttons, the model's refusal is said there, in words. Before, it
      // was thrown from the click handler and reached nobody.
      await clickPastDisabled(p, "delete-identity");
      await clickPastDisabled(p, "confirm-delete");
      await expect
        .poll(() => id(p, "delete-error").textContent(), { timeout: T })
        .toBe("Could not delete the identity: a backup is being restored in this tab. Wait for it to end.");
      await p.locator('[aria-label="Confirm deletion"] [data-cancel]').click();
      await id(p, "save-username").evaluate((b) => (b as HTMLButtonElement).form?.requestSubmit());
      await expect
        .poll(() => id(p, "username-result").textContent(), { timeout: T })
        .toBe(
          "Could not save your name: a backup is being restored in this tab. Try again once it has ended.",
        );
      await expectNoAxeViolations(p, "settings (opened again during a restore)");
      // The same backup submitted again past the busy button (a script, an assistive tool): the
      // model refuses it in words and tells no tab. Before the refusal, the second import began at
      // once (this tab holds the engine lock), queued behind the first — its writes asked for
      // meanwhile — and the first one's failure started the engine again while the second ran.
      await restorePastBusyButton(p, backup, passphrase);
      expect(await writesDuringImport(p)).toEqual([]);
      // Settings left again; the first import fails meanwhile; opened again, it says how the
      // restore ended, its button free.
      await id(p, "back").click();
      await id(p, "home").waitFor();
      await failImport(p);
      await expect.poll(() => contactNames(p), { timeout: T }).toEqual(["Jon"]);
      // Told where the person is, in the notice's live region: a restore that fails while
      // Settings is left said nothing until Settings was opened again (one that went through
      // said "Backup restored." wherever the person was).
      await expect
        .poll(() => id(p, "notice-news").textContent(), { timeout: T })
        .toMatch(/^Could not restore the backup: .*Nothing was changed\./);
      // The offer is back: the device is the same.
      await id(p, "notification-offer").waitFor({ timeout: T });
      await expectNoAxeViolations(p, "home (a restore failed meanwhile)");
      await openSettings(p);
      await expect
        .poll(() => id(p, "import-result").textContent(), { timeout: T })
        .toMatch(/^Could not restore the backup: .*Nothing was changed\.$/);
      await expect.poll(() => id(p, "import-backup").isDisabled()).toBe(false);
      expect(await id(p, "restore-progress").count()).toBe(0);
      expect(await writesDuringImport(p)).toEqual([]);
      // Settings left once it has shown how the restore ended, and opened again: the words are
      // gone. Before, they stayed until the next restore or a reload, about an old attempt.
      await id(p, "back").click();
      await id(p, "home").waitFor();
      await openSettings(p);
      expect(await id(p, "import-result-news").textContent()).toBe("");
      // The refused one told no tab of a restore: the late tab was not locked for it, and starts
      // once the first import has failed. Before, it was locked by that news of a restore that
      // never began (and then said that nothing was changed).
      await id(late, "home").waitFor({ timeout: T });
    } finally {
      await ida.close();
    }
  });
  it("the unlock screen's restore (a forgotten passphrase) keeps Unlock and Start over busy, and refuses an unlock submitted meanwhile", async () => {
    const { device: gil, p, backup, passphrase } = await deviceWithBackup("Gil");
    try {
      // After the backup: a contact the restore takes away, and a passphrase, then locked.
      await addOfflineContact(p, loft.url, "Hal");
      await openSettings(p);
      await setPassphraseAndLock(p, "amber lantern 31", T);
      await holdImport(p);
      await id(p, "unlock-restore").locator("summary").click();
      await id(p, "unlock-restore-file").setInputFiles(backup);
      await id(p, "unlock-restore-passphrase").fill(passphrase);
      await id(p, "unlock-restore-submit").click();
      await expect.poll(() => importHeld(p), { timeout: T }).toBe(true);
      // The passphrase remembered meanwhile: Unlock waits for the restore, and Start over with it.
      // Before, an unlock then started the engine over the device being replaced — begun before the
      // import, the import found this tab holding the engine lock and did not wait for its stop.
      expect(await id(p, "unlock-submit").isDisabled()).toBe(true);
      await id(p, "unlock-start-over").locator("summary").click();
      expect(await id(p, "start-over").isDisabled()).toBe(true);
      // Confirmed past the busy buttons, the model's refusal is said there, in words. Before, it
      // reached nobody, and left the confirm button busy until a reload.
      await clickPastDisabled(p, "start-over");
      await clickPastDisabled(p, "confirm-start-over");
      await expect
        .poll(() => id(p, "start-over-error").textContent(), { timeout: T })
        .toBe("Could not delete the identity: a backup is being restored in this tab. Wait for it to end.");
      await expectNoAxeViolations(p, "unlock (start over refused during a restore)");
      await id(p, "unlock-passphrase").fill("amber lantern 31");
      await id(p, "unlock-submit").evaluate((b) => (b as HTMLButtonElement).form?.requestSubmit());
      await expect
        .poll(() => id(p, "unlock-error").textContent(), { timeout: T })
        .toBe("Could not unlock: a backup is being restored in this tab. Wait for it to end.");
      await expectNoAxeViolations(p, "unlock (a restore under way)");
      expect(await writesDuringImport(p)).toEqual([]);
      // The restore goes through: the device opens restored (without Hal), on the screen that was
      // locked.
      await releaseImport(p);
      await id(p, "settings").waitFor({ timeout: T });
      await goHome(p);
      await expect.poll(() => contactNames(p)).toEqual([]);
    } finally {
      await gil.close();
    }
  });
  it("an unlock under way keeps the unlock screen's Restore and Start over busy, and refuses a restore or a start over submitted meanwhile", async () => {
    const { device: kim, p, backup, passphrase } = await deviceWithBackup("Kim");
    try {
      await addOfflineContact(p, loft.url, "Lou");
      await openSettings(p);
      await setPassphraseAndLock(p, "cobalt harbour 72", T);
      // The unlock's check of the passphrase (storage/vault.ts `unlock`, after the key derivation)
      // is held, as a slow device would take its time: no IndexedDB transaction is open then.
      await holdEncrypt(p, { method: "decrypt", aadPrefix: "loft/sealed/v1/passphrase-check", once: true });
      await id(p, "unlock-restore").locator("summary").click();
      await id(p, "unlock-restore-file").setInputFiles(backup);
      await id(p, "unlock-restore-passphrase").fill(passphrase);
      await id(p, "unlock-start-over").locator("summary").click();
      await id(p, "unlock-passphrase").fill("cobalt harbour 72");
      await id(p, "unlock-submit").click();
      await expect.poll(() => heldCount(p)).toBe(1);
      // Restore and Start over wait for the unlock. Before, a restore then began at once: the
      // engine the unlock starts once its key is derived ran under the import.
      await expect.poll(() => id(p, "unlock-restore-submit").isDisabled()).toBe(true);
      expect(await id(p, "start-over").isDisabled()).toBe(true);
      await id(p, "unlock-restore-submit").evaluate((b) => (b as HTMLButtonElement).form?.requestSubmit());
      await expect
        .poll(() => id(p, "unlock-restore-error").textContent(), { timeout: T })
        .toBe("Could not restore the backup: this device is being unlocked in this tab. Wait for it to end.");
      await clickPastDisabled(p, "start-over");
      await clickPastDisabled(p, "confirm-start-over");
      await expect
        .poll(() => id(p, "start-over-error").textContent(), { timeout: T })
        .toBe(
          "Could not delete the identity: this device is being unlocked in this tab. Wait for it to end.",
        );
      await expectNoAxeViolations(p, "unlock (an unlock under way)");
      // The unlock goes on: the device opens as it was, Lou still there.
      await releaseHeld(p);
      await id(p, "unlock").waitFor({ state: "detached", timeout: T });
      await goHome(p);
      await expect.poll(() => contactNames(p), { timeout: T }).toEqual(["Lou"]);
    } finally {
      await kim.close();
    }
  });
  it("a locked tab told of a restore that failed, then of one that went through, says the last one's words", async () => {
    const { device: uma, p, backup, passphrase } = await deviceWithBackup("Uma");
    try {
      await addOfflineContact(p, loft.url, "Vic");
      const other = await openTab(uma, "uma-2");
      // A restore the storage refuses (as on a full disk): the other tab locks, then says that
      // nothing was changed.
      await failWrites(p, ["self"]);
      await restoreInSettings(p, backup, passphrase);
      await id(p, "import-result").waitFor({ timeout: T });
      await allowWrites(p);
      await expect
        .poll(() => id(other, "tab-closed-why").textContent(), { timeout: T })
        .toBe("A backup restore in another tab did not go through: nothing on this device was changed.");
      // The same restore again, through this time: the device was replaced, and the locked tab
      // says so. Before, it went on saying that nothing was changed.
      await restoreInSettings(p, backup, passphrase);
      await id(p, "restore-result").waitFor({ timeout: T });
      await expect.poll(() => contactNames(p)).toEqual([]);
      await expect
        .poll(() => id(other, "tab-closed-why").textContent(), { timeout: T })
        .toBe("A backup was restored on this device in another tab.");
    } finally {
      await uma.close();
    }
  });
  it("a locked tab told of a restore that failed, then of the identity deleted, says it was deleted", async () => {
    const { device: wes, p, backup, passphrase } = await deviceWithBackup("Wes");
    try {
      const other = await openTab(wes, "wes-2");
      await failWrites(p, ["self"]);
      await restoreInSettings(p, backup, passphrase);
      await id(p, "import-result").waitFor({ timeout: T });
      await allowWrites(p);
      await expect
        .poll(() => id(other, "tab-closed-why").textContent(), { timeout: T })
        .toBe("A backup restore in another tab did not go through: nothing on this device was changed.");
      // The identity deleted now (Settings): the locked tab says so. Before, it went on saying
      // that nothing on the device was changed.
      await id(p, "delete-identity").click();
      await id(p, "confirm-delete").click();
      await expect
        .poll(() => id(other, "tab-closed-why").textContent(), { timeout: T })
        .toBe("Your identity was deleted on this device in another tab.");
    } finally {
      await wes.close();
    }
  });
  it("a backup restored while another tab never lets the engine lock go: refused in words, nothing changed", async () => {
    const { device: kit, p: first, backup, passphrase } = await deviceWithBackup("Kit");
    try {
      // The backup holds no contact; the device then gets one (Lee), which a refused restore keeps.
      await addOfflineContact(first, loft.url, "Lee");
      await first.close();
      // A tab that does not let go (frozen in the background, say): the engine lock taken before
      // its app loads and never released, whatever its app does when told of the restore.
      const frozen = await kit.newPage();
      env.watch("kit-frozen", frozen);
      // The restoring page gives up sooner than a person's 20 s (page-timings.ts `engineHandBackMs`):
      // the frozen tab never lets go, so the bound's length proves nothing here. Nothing is read
      // while the bound runs (the waiting words are checked where the test ends the wait: "a
      // restore waiting for another tab's engine says so…"), so no step here races it.
      await useEngineTimings(kit, { engineHandBackMs: 2_000 });
      await frozen.addInitScript(() => {
        void navigator.locks?.request("loft-engine", () => new Promise<never>(() => undefined));
      });
      await frozen.goto(loft.url);
      await id(frozen, "home").waitFor({ timeout: T });
      const p = await openTab(kit, "kit-2");

      await restoreInSettings(p, backup, passphrase);
      await id(p, "import-result").waitFor({ timeout: T });
      expect(await id(p, "import-result").textContent()).toBe(
        "Could not restore the backup: Loft still runs chat in another tab or window. Close it, then try again. Nothing was changed.",
      );
      await expect.poll(() => id(p, "restore-waiting").count()).toBe(0);
      // The tab told of the restore before it closed itself; told now that nothing was replaced,
      // it says so. Before, it said a backup was being restored, for ever.
      await expect
        .poll(() => id(frozen, "tab-closed-why").textContent(), { timeout: T })
        .toBe("A backup restore in another tab did not go through: nothing on this device was changed.");
      await expectNoAxeViolations(frozen, "tab closed (a backup restore in another tab failed)");
      await id(p, "back").click();
      await expect.poll(() => contactNames(p)).toEqual(["Lee"]);
    } finally {
      await kit.close();
    }
  });
});
