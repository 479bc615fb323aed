/**
 * Onboarding, storage, contact links, safety codes and trust, in real Chromium against the real
 * server (`npm run build` first; run with `node scripts/e2e.mjs test/e2e/onboarding.e2e.ts`).
 *
 * Stable `data-testid`s of the PWA (web/src/ui/*), for these tests and anyone driving the UI
 * (screens also have URL paths: web/src/app/routes.ts):
 *   app:        loading, notice, update-banner, update-reload, back
 *   onboarding: onboarding, username-input, username-error, onboarding-passphrase,
 *               onboarding-passphrase-new, onboarding-passphrase-confirm,
 *               onboarding-passphrase-error, create-identity,
 *               restore-file, restore-passphrase, restore-submit, restore-error
 *   tab closed: tab-closed, tab-closed-why, tab-closed-reload (another tab deleted or restored)
 *   unlock:     unlock, unlock-passphrase, unlock-submit, unlock-error, unlock-restore,
 *               unlock-restore-file, unlock-restore-passphrase, unlock-restore-submit,
 *               unlock-restore-error, unlock-start-over, start-over-warning, start-over,
 *               confirm-start-over, cancel-start-over
 *   home:       home, my-username, nav-my-link, nav-add-contact, nav-settings, engine-status,
 *               notification-offer, enable-notifications, dismiss-notifications,
 *               requests, request-item [data-contact-id, data-username], request-warning,
 *               accept-request, decline-request,
 *               empty-contacts, contact-list, contact-item [data-contact-id, data-username,
 *               data-unread], contact-preview, contact-unread, contact-presence, contact-trust
 *   my link:    my-link-screen, my-link (textarea with the URL), my-link-qr, copy-link
 *   add:        add-screen, link-input, link-error, add-outcome [data-outcome = core TOFU kind
 *               or "self"], confirm-username, confirm-add, cancel-add
 *   contact:    contact-screen, contact-username, trust-state [data-trust], contact-id,
 *               identity-warning [data-kind], accept-new-key, keep-old-key, open-chat,
 *               open-safety, block-contact, unblock-contact, mark-unverified, delete-contact,
 *               confirm-delete-contact, delete-contact-error
 *   safety:     safety-screen, safety-code [data-digits], safety-group, safety-qr, mark-verified,
 *               verified-note
 *   chat:       chat, chat-contact, chat-presence, message-list, message [data-direction,
 *               data-state], message-text, message-state, retry-button, send-blocked,
 *               send-error, composer-input, send-button
 *   settings:   settings, settings-username, save-username, username-result,
 *               notifications-section, notify-on, notify-private, notify-off,
 *               allow-notifications, notifications-blocked, notifications-result, signaling-url,
 *               relay-urls, save-endpoints, endpoints-result, passphrase-new,
 *               passphrase-confirm, set-passphrase, remove-passphrase, passphrase-result,
 *               backup-section, backup-passphrase, export-backup, backup-result, import-file,
 *               import-passphrase, import-backup, import-result, delete-identity, confirm-delete
 */
import { rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../core/bytes.ts";
import { createUserIdentity, updateIdentity } from "../../core/identity/identity.ts";
import { expectNoAxeViolations } from "../support/axe.ts";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import {
  addOfflineContact,
  createIdentity,
  expectAddOutcome,
  holdEncrypt,
  incoming,
  inLoftDb,
  myLink,
  offlineLink,
  openChatFromHome,
  openContact,
  outgoing,
  renameByClicks,
  storedDraft,
  waitForState,
} from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const id = (page: Page, testid: string) => page.getByTestId(testid);

/** The data-testid of the element holding the keyboard focus (null: the page's body). */
const focused = (page: Page) =>
  page.evaluate(() => document.activeElement?.getAttribute("data-testid") ?? null);

/** What a second tab says while another tab runs the chat engine (app/model.ts `#runEngine`). */
const ELSEWHERE = "Loft is open in another tab or window; chat runs there. Messages you write here wait.";

async function pasteLink(page: Page, link: string) {
  await id(page, "nav-add-contact").click();
  await id(page, "link-input").fill(link);
}

describe("onboarding, contacts and trust in the PWA", () => {
  let loft: LoftProcess;
  let browser: Browser;
  let alice: BrowserContext;
  let bob: BrowserContext;
  let a: Page;
  let b: Page;
  let bobId: string;

  beforeAll(async () => {
    loft = await startLoft();
    browser = await launchChromium();
    alice = await browser.newContext({ acceptDownloads: true });
    bob = await browser.newContext();
    a = await alice.newPage();
    b = await bob.newPage();
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
    ),
  );

  it("refuses an empty or over-long username, then creates the identity in the browser", async () => {
    await a.goto(loft.url);
    await id(a, "create-identity").click();
    expect(await id(a, "username-error").textContent()).toBe(
      "Type a name first: it is what your contacts will see.",
    );
    // The focus is on the field to fix, which names the error (a keyboard or screen reader user lands there).
    expect(await a.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe(
      "username-input",
    );
    expect(await id(a, "username-input").getAttribute("aria-describedby")).toBe(
      "username-help username-error",
    );
    await id(a, "username-input").fill("x".repeat(41));
    await id(a, "create-identity").click();
    expect(await id(a, "username-error").textContent()).toContain("at most 40");
    await id(a, "username-input").fill("Alice");
    await id(a, "create-identity").click();
    expect(await id(a, "my-username").textContent()).toBe("Alice");
    expect(await id(a, "empty-contacts").isVisible()).toBe(true);
  });

  it("keeps private keys sealed under a non-extractable AES-GCM device key in IndexedDB", async () => {
    const shape = await inLoftDb(a, async ({ db, req }) => {
      const get = (store: string, key: string) => req(db.transaction(store).objectStore(store).get(key));
      const key = (await get("meta", "device-key")) as CryptoKey;
      const self = (await get("self", "self")) as { keys: Record<string, unknown>; username: string };
      return {
        algorithm: key.algorithm.name,
        extractable: key.extractable,
        sealedFields: Object.keys(self.keys).sort(),
        username: self.username,
      };
    });
    expect(shape).toEqual({
      algorithm: "AES-GCM",
      extractable: false,
      sealedFields: ["ct", "iv", "pass", "v"],
      username: "Alice",
    });
  });

  it("exchanges contact links both ways; both sides show the same safety code; verified survives reload", async () => {
    await createIdentity(b, loft.url, "Bob");
    const linkA = await myLink(a);
    const linkB = await myLink(b);
    expect(linkA).toMatch(new RegExp(`^${loft.url}/#c=[A-Za-z0-9_-]+$`));

    // Bob opens Alice's link: the app takes #c= from the URL and asks to confirm.
    await b.goto(linkA);
    await expectAddOutcome(b, "new-contact");
    expect(await id(b, "confirm-username").textContent()).toBe("Alice");
    await id(b, "confirm-add").click();
    expect(await id(b, "contact-username").textContent()).toBe("Alice");
    expect(await id(b, "trust-state").getAttribute("data-trust")).toBe("unknown");
    // The link (its #c= secret) left the address bar: what is there now is the contact's screen,
    // whose id rides in the fragment (/contact#<id>: docs/decisions.md, "Screens in the URL").
    expect(new URL(b.url()).hash).not.toContain("c=");
    expect(new URL(b.url()).pathname).toBe("/contact");

    // Alice pastes Bob's link.
    await pasteLink(a, linkB);
    await expectAddOutcome(a, "new-contact");
    await id(a, "confirm-add").click();
    expect(await id(a, "contact-username").textContent()).toBe("Bob");
    bobId = (await id(a, "contact-id").textContent())!;
    expect(bobId).toMatch(/^[0-9a-f]{64}$/);

    // Opening the same link again changes nothing.
    await b.goto(linkA);
    await expectAddOutcome(b, "unchanged");
    await id(b, "cancel-add").click();

    // Safety codes: same 60 digits on both sides, in 12 groups of 5.
    await openContact(a, { id: bobId });
    await id(a, "open-safety").click();
    await openContact(b, { username: "Alice" });
    await id(b, "open-safety").click();
    const codeA = await id(a, "safety-code").getAttribute("data-digits");
    const codeB = await id(b, "safety-code").getAttribute("data-digits");
    expect(codeA).toMatch(/^\d{60}$/);
    expect(codeB).toBe(codeA);
    await expect.poll(() => id(a, "safety-group").count()).toBe(12);
    const groups = await id(a, "safety-group").allTextContents();
    expect(groups.join("")).toBe(codeA);
    expect(await id(a, "safety-qr").isVisible()).toBe(true);

    // By keyboard: the button gives way to the note, and the focus goes to it, not the page's top.
    await id(a, "mark-verified").focus();
    await a.keyboard.press("Enter");
    await id(a, "verified-note").waitFor();
    await expect.poll(() => focused(a)).toBe("verified-note");
    await a.goto(loft.url); // a new visit to Home (a reload would stay on the safety screen)
    const bobItem = a.locator(`[data-testid=contact-item][data-contact-id="${bobId}"]`);
    expect(await bobItem.locator("[data-testid=contact-trust]").textContent()).toBe("Verified");
    expect(await id(a, "my-username").textContent()).toBe("Alice");
  });

  it("refuses your own link and a damaged link, in plain words", async () => {
    const linkA = await myLink(a);
    await pasteLink(a, linkA);
    await expectAddOutcome(a, "self");
    await id(a, "link-input").fill(linkA.slice(0, -10));
    expect(await id(a, "link-error").textContent()).toMatch(/damaged|does not verify/);
    await id(a, "back").click();
  });

  it("runs the chat engine in one tab only; a second tab says where chat runs", async () => {
    // A browser of its own with its own identity: the test stands alone (run by its name, or
    // after a test before it failed), and Alice's pages are left as they were.
    const dora = await browser.newContext();
    try {
      const first = await dora.newPage();
      await createIdentity(first, loft.url, "Dora");
      // The first tab holds the engine's lock (app/model.ts) before the second opens: else the
      // second could take it first, and the tabs' roles would be swapped.
      const held = () =>
        first.evaluate(async () => ((await navigator.locks.query()).held ?? []).map((l) => l.name));
      await expect.poll(held, { timeout: 30_000 }).toContain("loft-engine");
      const second = await dora.newPage();
      await second.goto(loft.url);
      await expect.poll(() => id(second, "engine-status").textContent()).toBe(ELSEWHERE);
      expect(await id(second, "my-username").textContent()).toBe("Dora");
      expect(await id(first, "engine-status").allTextContents()).not.toContain(ELSEWHERE);
    } finally {
      await dora.close();
    }
  });

  it("a link with a known username but another identity key warns and blocks sending until decided", async () => {
    const impostor = createUserIdentity({ username: "Bob", now: Date.now() });
    const link = offlineLink(loft.url, impostor);
    await a.goto(link);
    await expectAddOutcome(a, "username-collision");
    await id(a, "confirm-add").click();
    expect(await id(a, "identity-warning").getAttribute("data-kind")).toBe("username-collision");

    // The known Bob can't be messaged until the user decides.
    await id(a, "open-chat").click();
    await id(a, "send-blocked").waitFor();
    expect(await id(a, "composer-input").isDisabled()).toBe(true);
    expect(await id(a, "send-button").isDisabled()).toBe(true);

    // Keep the old key: the new one is stored as a Rejected contact; Bob is usable again.
    await id(a, "chat-contact").click();
    await id(a, "keep-old-key").click();
    await id(a, "identity-warning").waitFor({ state: "detached" });
    await a.goto(loft.url);
    const impostorItem = a.locator(
      `[data-testid=contact-item][data-contact-id="${toHex(impostor.identity.verified.identity_key)}"]`,
    );
    expect(await impostorItem.locator("[data-testid=contact-trust]").textContent()).toBe("Blocked");
    await openContact(a, { id: bobId });
    await id(a, "open-chat").click();
    expect(await id(a, "composer-input").isDisabled()).toBe(false);

    // The impostor opening again is refused: it is Rejected.
    await a.goto(link);
    await expectAddOutcome(a, "rejected");
    await id(a, "cancel-add").click();
  });

  it("a rotated noise key for a known contact warns and blocks sending; accepting keeps trust", async () => {
    const carol = createUserIdentity({ username: "Carol", now: Date.now() });
    await a.goto(offlineLink(loft.url, carol));
    await id(a, "confirm-add").click();
    await id(a, "open-safety").click();
    await id(a, "mark-verified").click();
    await id(a, "verified-note").waitFor();

    const rotated = updateIdentity(carol, { rotateNoiseKey: true }, Date.now());
    await a.goto(offlineLink(loft.url, rotated));
    await expectAddOutcome(a, "noise-key-rotated");
    await id(a, "confirm-add").click();
    expect(await id(a, "identity-warning").getAttribute("data-kind")).toBe("noise-key-rotated");
    await a.reload(); // the pending decision is stored, not just on screen
    await openContact(a, { username: "Carol" });
    await id(a, "identity-warning").waitFor();
    await id(a, "accept-new-key").click();
    await id(a, "identity-warning").waitFor({ state: "detached" });
    expect(await id(a, "trust-state").getAttribute("data-trust")).toBe("trusted");
  });

  it("Block makes a contact unreachable from the chat; Unblock restores it — by keyboard, the focus kept", async () => {
    await openContact(a, { username: "Carol" });
    // Carol is verified (the test before): Mark as not verified goes with the trust it undid, and
    // the focus moves to Safety code, not to the page's top.
    await id(a, "mark-unverified").focus();
    await a.keyboard.press("Enter");
    await a.locator("[data-testid=trust-state][data-trust=unknown]").waitFor();
    await expect.poll(() => focused(a)).toBe("open-safety");
    await id(a, "block-contact").focus();
    await a.keyboard.press("Enter");
    await a.locator("[data-testid=trust-state][data-trust=rejected]").waitFor();
    expect(await id(a, "open-chat").isDisabled()).toBe(true);
    // Block becomes Unblock under the focus: Enter again undoes it.
    expect(await focused(a)).toBe("unblock-contact");
    await a.keyboard.press("Enter");
    await a.locator("[data-testid=trust-state][data-trust=unknown]").waitFor();
    expect(await id(a, "open-chat").isDisabled()).toBe(false);
    expect(await focused(a)).toBe("block-contact");
  });

  /** Bob's chat with Alice, open (from wherever Bob's page is). */
  async function bobReadsAlice() {
    if ((await id(b, "chat-contact").count()) && (await id(b, "chat-contact").textContent()) === "Alice")
      return;
    await openContact(b, { username: "Alice" });
    await id(b, "open-chat").click();
    await id(b, "chat").waitFor();
  }

  /** Every text in `page`'s open chat, `direction` only, in the order shown. */
  const texts = (page: Page, direction: "in" | "out") =>
    page
      .locator(`[data-testid=message][data-direction=${direction}] [data-testid=message-text]`)
      .allTextContents();

  /** Alice's chat with Bob, open. */
  async function aliceChat(page: Page) {
    await openContact(page, { id: bobId });
    await id(page, "open-chat").click();
    await id(page, "chat").waitFor();
  }

  /** Type and press Enter, as a person does; nothing waits for the message's state. */
  async function typeAndEnter(page: Page, text: string) {
    await id(page, "composer-input").pressSequentially(text);
    await id(page, "composer-input").press("Enter");
  }

  // A message shown is a message kept (docs/protocol/chat.md §9, "The outbox journal"): each test
  // reloads or closes the page right after Enter, with no wait for any state; after it, the
  // message is in Alice's history once, in order, and reaches Bob once.
  it("history: a sent message is stored on the device and survives a reload", async () => {
    await aliceChat(a);
    await typeAndEnter(a, "hello from Alice");
    await a.reload();
    await aliceChat(a);
    await outgoing(a, "hello from Alice").waitFor();
    expect((await texts(a, "out")).filter((t) => t === "hello from Alice")).toHaveLength(1);
    await bobReadsAlice();
    await incoming(b, "hello from Alice").waitFor();
    await expect.poll(() => texts(b, "in")).toEqual(["hello from Alice"]);
  });

  it("a burst sent while storage cannot commit survives a reload in order, and reaches Bob once each", async () => {
    await aliceChat(a);
    // Hold every WebCrypto encryption in this page, never released: no message can be sealed
    // into IndexedDB before the reload, so only the outbox journal can bring them back.
    await holdEncrypt(a);
    const burst = ["burst 1", "burst 2", "burst 3", "burst 4", "burst 5"];
    for (const t of burst) await typeAndEnter(a, t);
    await expect.poll(() => texts(a, "out")).toEqual(["hello from Alice", ...burst]);
    await a.reload();
    await aliceChat(a);
    await outgoing(a, "burst 5").waitFor();
    await expect.poll(() => texts(a, "out")).toEqual(["hello from Alice", ...burst]);
    await bobReadsAlice();
    await incoming(b, "burst 5").waitFor({ timeout: 60_000 });
    await expect.poll(() => texts(b, "in")).toEqual(["hello from Alice", ...burst]);
    // Nothing of the journal is left once replayed, and nothing of it was ever plaintext.
    const left = await a.evaluate(() =>
      Object.keys(localStorage).filter((k) => k.startsWith("loft.outbox-journal.")),
    );
    expect(left).toEqual([]);
  });

  it("a message sent right before the tab closes is there when Loft opens again, and reaches Bob", async () => {
    await aliceChat(a);
    await typeAndEnter(a, "sent as the tab closed");
    await a.close();
    a = await alice.newPage();
    await a.goto(loft.url);
    await aliceChat(a);
    await outgoing(a, "sent as the tab closed").waitFor();
    expect((await texts(a, "out")).filter((t) => t === "sent as the tab closed")).toHaveLength(1);
    await bobReadsAlice();
    await incoming(b, "sent as the tab closed").waitFor({ timeout: 60_000 });
    expect((await texts(b, "in")).filter((t) => t === "sent as the tab closed")).toHaveLength(1);
  });

  /** The page's outbox journal entries (store key, sealed value). */
  const journal = (page: Page) =>
    page.evaluate(() => Object.entries(localStorage).filter(([k]) => k.startsWith("loft.outbox-journal.")));

  it("an entry still there after its commit landed (a crash in between) replays as nothing: one copy", async () => {
    await aliceChat(a);
    await holdEncrypt(a);
    await typeAndEnter(a, "kept once");
    const entries = await journal(a);
    expect(entries).toHaveLength(1);
    await a.evaluate(() => (window as unknown as { releaseEncrypt: () => void }).releaseEncrypt());
    await expect.poll(() => journal(a)).toEqual([]); // committed, and the entry gone
    await waitForState(a, "kept once", "delivered");
    await a.evaluate(([k, v]) => localStorage.setItem(k, v), entries[0]!);
    await a.reload();
    await aliceChat(a);
    await outgoing(a, "kept once").waitFor();
    expect((await texts(a, "out")).filter((t) => t === "kept once")).toHaveLength(1);
    // Not rolled back to "queued" by the replay: the stored message was left as it was.
    expect(await outgoing(a, "kept once").getAttribute("data-state")).toBe("delivered");
    expect(await journal(a)).toEqual([]);
  });

  it("a replayed message to a contact blocked meanwhile is kept as failed, not sent", async () => {
    await openContact(a, { username: "Carol" });
    await id(a, "open-chat").click();
    await id(a, "chat").waitFor();
    await holdEncrypt(a);
    await typeAndEnter(a, "to Carol before blocking");
    const [entry] = await journal(a);
    // Set the entry aside over a reload, block Carol, then put it back: it replays into a block.
    await a.evaluate(([k]) => localStorage.removeItem(k), entry!);
    await a.reload();
    await openContact(a, { username: "Carol" });
    await id(a, "block-contact").click();
    await a.locator("[data-testid=trust-state][data-trust=rejected]").waitFor();
    await a.evaluate(([k, v]) => localStorage.setItem(k, v), entry!);
    await a.reload();
    await id(a, "unblock-contact").click();
    await a.locator("[data-testid=trust-state][data-trust=unknown]").waitFor();
    await id(a, "open-chat").click();
    await waitForState(a, "to Carol before blocking", "failed");
    expect(await journal(a)).toEqual([]);
  });

  it("Retry, then a reload before the retry is stored: the message is queued again, not failed", async () => {
    await openContact(a, { username: "Carol" });
    await id(a, "open-chat").click();
    await waitForState(a, "to Carol before blocking", "failed");
    // No write can land before the reload (chat.md §9, "Retries"): only the retry's record can
    // bring it back.
    await holdEncrypt(a);
    await outgoing(a, "to Carol before blocking").getByTestId("retry-button").click();
    await a.reload();
    await openContact(a, { username: "Carol" });
    await id(a, "open-chat").click();
    // Carol is offline: queued for her, with its outbox entry, and nothing of the record left.
    await waitForState(a, "to Carol before blocking", "queued");
    expect(
      await a.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("loft.outbox-retry."))),
    ).toEqual([]);
  });

  it("a retry left between its writes, to a contact now blocked, is stored failed; retry records that localStorage cannot read leave the hand-overs' replay alone", async () => {
    await openContact(b, { username: "Alice" });
    const aliceId = (await id(b, "contact-id").textContent())!;
    await openContact(a, { username: "Carol" });
    // The state between a retry's two writes (chat.md §9, "Retries"): `queued`, no outbox entry
    // (Carol is offline: hers is the only one), the retry's record still there.
    const messageId = await a.evaluate(
      (self) =>
        new Promise<string>((resolve, reject) => {
          const open = indexedDB.open("loft");
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const tx = open.result.transaction("outbox", "readwrite");
            const all = tx.objectStore("outbox").getAll();
            all.onsuccess = () => {
              const entries = all.result as { messageId: string }[];
              if (entries.length !== 1) return reject(new Error(`outbox: ${entries.length} entries`));
              const mid = entries[0]!.messageId;
              tx.objectStore("outbox").delete(mid);
              tx.oncomplete = () => {
                open.result.close();
                localStorage.setItem(`loft.outbox-retry.${self}.${mid}`, "1");
                resolve(mid);
              };
            };
          };
        }),
      aliceId,
    );
    expect(messageId).toMatch(/^[A-Za-z0-9_-]+$/);
    await id(a, "block-contact").click();
    await a.locator("[data-testid=trust-state][data-trust=rejected]").waitFor();
    await a.reload();
    await id(a, "unblock-contact").click();
    await a.locator("[data-testid=trust-state][data-trust=unknown]").waitFor();
    await id(a, "open-chat").click();
    // Nothing would send it: failed, with the reason, for the person to retry — not `queued`.
    await waitForState(a, "to Carol before blocking", "failed");
    expect(
      await a.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("loft.outbox-retry."))),
    ).toEqual([]);
    // A retry record localStorage throws on (a broken store), and a hand-over pending over a
    // reload: the hand-over is still replayed (the records wait for the next start).
    await a.evaluate(
      (self) => localStorage.setItem(`loft.outbox-retry.${self}.AAAAAAAAAAAAAAAAAAAAAA`, "1"),
      aliceId,
    );
    await a.addInitScript(() => {
      const get = Storage.prototype.getItem;
      Storage.prototype.getItem = function (this: Storage, k: string) {
        if (k.startsWith("loft.outbox-retry.")) throw new DOMException("broken", "UnknownError");
        return get.call(this, k);
      };
    });
    await holdEncrypt(a);
    await typeAndEnter(a, "replayed though the retries are unreadable");
    expect(await journal(a)).toHaveLength(1);
    await a.reload();
    await openContact(a, { username: "Carol" });
    await id(a, "open-chat").click();
    await waitForState(a, "replayed though the retries are unreadable", "queued");
    expect(await journal(a)).toEqual([]);
    // Back to a working store for the next tests.
    await a.close();
    a = await alice.newPage();
    await a.goto(loft.url);
    await a.evaluate(() => {
      for (const k of Object.keys(localStorage))
        if (k.startsWith("loft.outbox-retry.")) localStorage.removeItem(k);
    });
    // The failed message's retry is replayed at start while another tab's retry lands and its send
    // moves the message on (`sent`) — after the replay read it, before its transaction: the
    // replay re-reads the record there and leaves it, rather than roll it back to `queued`.
    await a.addInitScript(
      ([self, mid]) => {
        const subtle = crypto.subtle;
        const encrypt = subtle.encrypt.bind(subtle);
        let landed = false;
        subtle.encrypt = async (...args: Parameters<SubtleCrypto["encrypt"]>) => {
          // The replay sealing this message (its record name is the additional data: vault.ts).
          const ad = (args[0] as AesGcmParams).additionalData;
          const sealing = ad && new TextDecoder().decode(ad as ArrayBuffer).includes(`message/${mid}`);
          if (!landed && sealing && localStorage.getItem(`loft.outbox-retry.${self}.${mid}`) !== null) {
            landed = true;
            await new Promise<void>((resolve, reject) => {
              const open = indexedDB.open("loft");
              open.onerror = () => reject(open.error);
              open.onsuccess = () => {
                const tx = open.result.transaction("messages", "readwrite");
                const get = tx.objectStore("messages").get(mid!);
                get.onsuccess = () => tx.objectStore("messages").put({ ...get.result, state: "sent" });
                tx.oncomplete = () => {
                  open.result.close();
                  resolve();
                };
              };
            });
          }
          return encrypt(...args);
        };
      },
      [aliceId, messageId],
    );
    // This load's replay is over (it precedes the first screen) before the record is written.
    await openContact(a, { username: "Carol" });
    await a.evaluate(
      ([self, mid]) => localStorage.setItem(`loft.outbox-retry.${self}.${mid}`, "1"),
      [aliceId, messageId],
    );
    await a.reload();
    await openContact(a, { username: "Carol" });
    await id(a, "open-chat").click();
    await waitForState(a, "to Carol before blocking", "sent");
    expect(
      await a.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("loft.outbox-retry."))),
    ).toEqual([]);
    await a.close();
    a = await alice.newPage();
    await a.goto(loft.url);
  });

  it("leaving while a message is truly unsaved (no room for its journal entry) asks first, from any screen; once stored, it does not", async () => {
    await aliceChat(a);
    await holdEncrypt(a);
    await a.evaluate(() => {
      const set = Storage.prototype.setItem;
      Storage.prototype.setItem = function (this: Storage, k: string, v: string) {
        if (k.startsWith("loft.outbox-journal.")) throw new DOMException("full", "QuotaExceededError");
        set.call(this, k, v);
      };
    });
    await typeAndEnter(a, "not in the journal");
    const dialogs: string[] = [];
    a.on("dialog", (d) => {
      dialogs.push(d.type());
      void d.dismiss(); // stay on the page
    });
    // Back, as a person leaves the chat, then closing the tab from the contact's screen: the
    // message is as unsaved there (the warning is the app's, not the chat screen's).
    await a.goBack();
    await id(a, "open-chat").waitFor();
    await a.close({ runBeforeUnload: true });
    await expect.poll(() => dialogs).toEqual(["beforeunload"]);
    expect(a.isClosed()).toBe(false);
    // The commit lands: nothing is unsaved, and the page closes without asking, on any screen.
    await a.evaluate(() => (window as unknown as { releaseEncrypt: () => void }).releaseEncrypt());
    await id(a, "open-chat").click();
    await waitForState(a, "not in the journal", "delivered");
    await a.goBack();
    await id(a, "open-chat").waitFor();
    const closed = a.waitForEvent("close");
    await a.close({ runBeforeUnload: true });
    await closed;
    expect(dialogs).toEqual(["beforeunload"]);
    a = await alice.newPage();
    await a.goto(loft.url);
  });

  it("a second tab opened while a hand-over commits leaves its journal entry to the first tab: one copy", async () => {
    await aliceChat(a);
    // The history is on screen (down to the previous test's last message) before it is read.
    await outgoing(a, "not in the journal").waitFor();
    const before = await texts(a, "out");
    await holdEncrypt(a);
    await typeAndEnter(a, "committing in the first tab");
    expect(await journal(a)).toHaveLength(1);
    // The second tab unlocks and replays the journal while the first tab's commit is held: the
    // entry is that tab's pending hand-over (its Web Lock), so it is left alone — the first tab
    // may still be refused and give the words back (docs/protocol/chat.md §9, "Several tabs").
    const second = await alice.newPage();
    try {
      await second.goto(loft.url);
      await aliceChat(second);
      // The journal is replayed before history is read (chat.md §9): once history is on screen,
      // a copy the second tab stored would be in it.
      await outgoing(second, "not in the journal").waitFor();
      expect(await texts(second, "out")).toEqual(before);
      expect(await journal(second)).toHaveLength(1);
    } finally {
      await second.close();
    }
    await a.evaluate(() => (window as unknown as { releaseEncrypt: () => void }).releaseEncrypt());
    await expect.poll(() => journal(a)).toEqual([]);
    await waitForState(a, "committing in the first tab", "delivered");
    await a.reload();
    await aliceChat(a);
    await outgoing(a, "committing in the first tab").waitFor();
    await expect.poll(() => texts(a, "out")).toEqual([...before, "committing in the first tab"]);
  });

  /**
   * From now until `roomAgain` (or a reload), the page's IndexedDB refuses every message write as
   * a full quota does; everything else, and localStorage (the journal), still takes writes.
   */
  const refuseMessageWrites = (page: Page) =>
    page.evaluate(() => {
      const put = IDBObjectStore.prototype.put;
      (window as unknown as { roomAgain: () => void }).roomAgain = () => {
        IDBObjectStore.prototype.put = put;
      };
      IDBObjectStore.prototype.put = function (
        this: IDBObjectStore,
        ...args: Parameters<IDBObjectStore["put"]>
      ) {
        if (this.name === "messages") throw new DOMException("full", "QuotaExceededError");
        return put.apply(this, args);
      };
    });
  const roomAgain = (page: Page) =>
    page.evaluate(() => (window as unknown as { roomAgain: () => void }).roomAgain());
  /** What the chat says about a message whose save was deferred (`SaveDeferred`). */
  const notice =
    "Loft could not save this message yet. It keeps trying and sends it once saved, at the latest the next time you open Loft. No need to send it again.";
  /**
   * Sends `text` with message writes refused (`refuseMessageWrites`, until `roomAgain`): the chat
   * says its save is deferred, and the journal's one entry holds the words (chat.md §9).
   */
  async function sendDeferred(page: Page, text: string) {
    await refuseMessageWrites(page);
    await typeAndEnter(page, text);
    await expect.poll(() => id(page, "send-error").textContent()).toBe(notice);
    expect(await journal(page)).toHaveLength(1);
  }

  it("a message whose commit fails for lack of room keeps its bubble, says so, and is stored once storage works again — or at the next start", async () => {
    await aliceChat(a);
    // The history is on screen (down to the previous test's last message) before it is read.
    await outgoing(a, "committing in the first tab").waitFor();
    const before = await texts(a, "out");
    // IndexedDB refuses the message's write, as a full quota does; localStorage (the journal)
    // still takes it. The entry must stay: it is the one copy of the words (chat.md §9).
    await sendDeferred(a, "kept while storage is full");
    // The bubble stays and the words are not given back: sending them again would make two.
    expect(await texts(a, "out")).toEqual([...before, "kept while storage is full"]);
    expect(await id(a, "composer-input").inputValue()).toBe("");
    // Room again: stored and sent in this session (the engine retries with backoff), no reload;
    // the notice goes.
    await roomAgain(a);
    await waitForState(a, "kept while storage is full", "delivered");
    await expect.poll(() => id(a, "send-error").isHidden()).toBe(true);
    expect(await journal(a)).toEqual([]);
    // Still full when the page goes: stored at the next start.
    await sendDeferred(a, "kept over a reload");
    await a.reload();
    await aliceChat(a);
    await waitForState(a, "kept over a reload", "delivered");
    await expect
      .poll(() => texts(a, "out"))
      .toEqual([...before, "kept while storage is full", "kept over a reload"]);
    expect(await journal(a)).toEqual([]);
  });

  it("a message whose save was deferred survives a new username: the next engine stores and sends it, before a later message", async () => {
    await aliceChat(a);
    await outgoing(a, "kept over a reload").waitFor();
    const before = await texts(a, "out");
    await bobReadsAlice();
    await incoming(b, "kept over a reload").waitFor({ timeout: 60_000 });
    const bobBefore = await texts(b, "in");
    await sendDeferred(a, "deferred across a new name");
    // A new name restarts the engine under the new identity version (app/model.ts
    // `changeUsername`), with no reload: the deferred save can only reach storage through the
    // hand-over to the next engine (docs/protocol/chat.md §9, "Deferred saves"). The journal
    // replay at the restart cannot store it either: storage still refuses.
    await id(a, "back").click();
    await renameByClicks(a, "Alice R");
    try {
      expect(await journal(a)).toHaveLength(1);
      await roomAgain(a);
      // A later message: the deferred one is stored first and goes first (chat.md §9).
      await openChatFromHome(a, bobId);
      await typeAndEnter(a, "after the new name");
      await waitForState(a, "deferred across a new name", "delivered");
      await waitForState(a, "after the new name", "delivered");
      await expect
        .poll(() => texts(a, "out"))
        .toEqual([...before, "deferred across a new name", "after the new name"]);
      await expect
        .poll(() => texts(b, "in"))
        .toEqual([...bobBefore, "deferred across a new name", "after the new name"]);
      await expect.poll(() => journal(a)).toEqual([]);
    } finally {
      // The name the later tests expect, whatever happened above (a reload drops the refusal).
      await a.goto(loft.url);
      await renameByClicks(a, "Alice");
    }
  });

  it("a deferred save that another tab's start stored meanwhile (its journal entry gone) is not stored again: one copy, sent once", async () => {
    await aliceChat(a);
    await outgoing(a, "after the new name").waitFor();
    const before = await texts(a, "out");
    const bobBefore = await texts(b, "in"); // on screen: polled whole by the test before
    await sendDeferred(a, "stored by the second tab");
    // Deferred, the hand-over is no longer pending in this tab (storage.ts `keepJournaled`): a
    // second tab's start replays the entry — its own writes work — and removes it.
    const second = await alice.newPage();
    try {
      await second.goto(loft.url);
      await aliceChat(second);
      await waitForState(second, "stored by the second tab", "queued");
      await expect.poll(() => journal(second)).toEqual([]);
    } finally {
      await second.close();
    }
    // The first tab's deferred save finds it stored and its entry gone (`storeJournaled`):
    // nothing is written over it, and the contact's later messages are no longer held behind it.
    await roomAgain(a);
    await typeAndEnter(a, "after the second tab");
    await waitForState(a, "stored by the second tab", "delivered");
    await waitForState(a, "after the second tab", "delivered");
    await expect
      .poll(() => texts(a, "out"))
      .toEqual([...before, "stored by the second tab", "after the second tab"]);
    await expect
      .poll(() => texts(b, "in"))
      .toEqual([...bobBefore, "stored by the second tab", "after the second tab"]);
    expect(await journal(a)).toEqual([]);
  });

  it("a passphrase locks the app across reloads; a wrong one is refused", async () => {
    await a.goto(loft.url);
    await id(a, "nav-settings").click();
    await id(a, "passphrase-new").fill("correct horse battery");
    await id(a, "passphrase-confirm").fill("correct horse battery");
    await id(a, "set-passphrase").click();
    await expect.poll(() => id(a, "passphrase-result").textContent()).toContain("Passphrase set");
    await a.goto(loft.url); // a new visit to Home (a reload would stay on Settings)
    await id(a, "unlock-passphrase").fill("wrong passphrase");
    await id(a, "unlock-submit").click();
    expect(await id(a, "unlock-error").textContent()).toContain("not right");
    await id(a, "unlock-passphrase").fill("correct horse battery");
    await id(a, "unlock-submit").click();
    expect(await id(a, "my-username").textContent()).toBe("Alice");
    await expect.poll(() => a.locator("[data-testid=contact-item]").count()).toBe(3);
  });

  it("private keys come back intact after reload + unlock: re-signing the identity works", async () => {
    // updateIdentity checks that the stored private identity key matches the public key. Each
    // save is waited for (its "Saved."): Home read before the second lands would show "Alice L".
    await renameByClicks(a, "Alice L");
    await renameByClicks(a, "Alice");
    expect(await id(a, "my-username").textContent()).toBe("Alice");
  });

  it("an encrypted backup restores identity, contacts, history, rooms, room names and drafts in a fresh browser", async () => {
    // What a person would miss on a new device (docs/protocol/backup.md §3): a room, the name they
    // gave it, and words typed and not sent — in the room and to Bob. By clicks: Alice's device
    // has a passphrase now, and a page load would lock it.
    const home = async () => {
      for (let i = 0; i < 3 && !(await id(a, "nav-settings").isVisible()); i++) await id(a, "back").click();
      await id(a, "nav-settings").waitFor();
    };
    await id(a, "nav-new-room").click();
    await id(a, "open-room").click();
    await id(a, "room-screen").waitFor();
    const roomId = (await id(a, "room-screen").getAttribute("data-room-id")) ?? "";
    await id(a, "rename-room").click();
    await id(a, "room-name-input").fill("Book club");
    await id(a, "save-room-name").click();
    await expect.poll(() => id(a, "room-title").textContent()).toBe("Book club");
    await id(a, "composer-input").fill("see you at eight");
    await expect
      .poll(() => storedDraft(a, `room:${roomId}`, "see you at eight"))
      .toEqual({ holdsPlain: false });
    await home();
    await openChatFromHome(a, bobId);
    await id(a, "composer-input").fill("dear Bob, about Sunday");
    await expect
      .poll(() => storedDraft(a, `chat:${bobId}`, "dear Bob, about Sunday"))
      .toEqual({ holdsPlain: false });
    await home();
    await id(a, "nav-settings").click();
    await id(a, "backup-passphrase").fill("backup passphrase 1");
    const [download] = await Promise.all([a.waitForEvent("download"), id(a, "export-backup").click()]);
    const path = await download.path();
    const file = await import("node:fs/promises").then((fs) => fs.readFile(path!, "utf8"));
    const doc = JSON.parse(file) as Record<string, unknown>;
    expect(doc.format).toBe("loft-backup");
    expect(doc).toMatchObject({ version: 3, kdf: "Argon2id", m: 32_768, t: 2, p: 1 });
    expect(file).not.toContain("Alice"); // names and history are inside the ciphertext

    const fresh = await browser.newContext();
    const c = await fresh.newPage();
    await c.goto(loft.url);
    await c.locator("summary").click();
    await id(c, "restore-file").setInputFiles(path!);
    await id(c, "restore-passphrase").fill("not the passphrase");
    await id(c, "restore-submit").click();
    await expect.poll(() => id(c, "restore-error").textContent()).toContain("Wrong passphrase");
    await id(c, "restore-passphrase").fill("backup passphrase 1");
    await id(c, "restore-submit").click();
    await c.locator("[data-testid=home], [data-testid=restore-error]").waitFor();
    expect(await id(c, "restore-error").count()).toBe(0);
    // The restore result names what came back and what did not, in words (app/backup.ts), and
    // stays on Home until dismissed (a notice would give way to the next one).
    const items = (list: string) => id(c, list).locator("li").allTextContents();
    await id(c, "restore-result").waitFor();
    const back = await items("restore-result-back");
    expect(back.slice(0, 3)).toEqual(["Your identity, Alice", "3 contacts", back[2]]);
    expect(back[2]).toMatch(/^\d+ messages$/);
    expect(back.slice(3)).toEqual(["1 room", "1 room name", "2 unsent drafts"]);
    expect(await items("restore-result-not")).toContain(
      "Encrypted sessions: they start again by themselves the next time you and your contacts are online.",
    );
    await expectNoAxeViolations(c, "home, after a restore");
    await id(c, "restore-result-done").click();
    await expect.poll(() => id(c, "restore-result").count()).toBe(0);
    expect(await id(c, "my-username").textContent()).toBe("Alice");
    const usernames = () =>
      c
        .locator("[data-testid=contact-item]")
        .evaluateAll((els) => els.map((e) => e.getAttribute("data-username")).sort());
    await expect.poll(usernames).toEqual(["Bob", "Bob", "Carol"]);
    await openContact(c, { id: bobId });
    expect(await id(c, "trust-state").getAttribute("data-trust")).toBe("trusted");
    await id(c, "open-chat").click();
    await c.locator("[data-testid=message-text]", { hasText: "hello from Alice" }).waitFor();
    // The draft to Bob is in his composer, the room is back with its name and its draft.
    await expect.poll(() => id(c, "composer-input").inputValue()).toBe("dear Bob, about Sunday");
    await c.goto(loft.url);
    await c.locator(`[data-testid=room-item][data-room-id="${roomId}"]`).click();
    await expect.poll(() => id(c, "room-title").textContent()).toBe("Book club");
    await expect.poll(() => id(c, "composer-input").inputValue()).toBe("see you at eight");
    await fresh.close();
  });

  it("delete identity wipes the device back to onboarding", async () => {
    await b.goto(loft.url);
    const seenOffers = () =>
      b.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("loft.signal.seen-offers.")));
    // Bob has accepted offers by now (net/seen-offers.ts); deleting the identity forgets them.
    await b.evaluate(() => localStorage.setItem("loft.signal.seen-offers.feedfacefeedface", "[]"));
    expect((await seenOffers()).length).toBeGreaterThan(0);
    // What the device keeps beside the main database: files (names, previews), shared folders.
    const leftovers = () =>
      b.evaluate(async () => {
        const dbs = (await indexedDB.databases()).map((d) => d.name).filter((n) => n === "loft-files");
        const opfs: string[] = [];
        for await (const name of (await navigator.storage.getDirectory()).keys()) opfs.push(name);
        return [...dbs, ...opfs.filter((n) => n === "loft-shares" || n === "loft-saving").sort()];
      });
    await b.evaluate(async () => {
      await new Promise((ok, no) => {
        const r = indexedDB.open("loft-files");
        r.onsuccess = () => ok(r.result.close());
        r.onerror = () => no(r.error);
      });
      await (await navigator.storage.getDirectory()).getDirectoryHandle("loft-shares", { create: true });
      await (await navigator.storage.getDirectory()).getDirectoryHandle("loft-saving", { create: true });
    });
    expect(await leftovers()).toEqual(["loft-files", "loft-saving", "loft-shares"]);
    // A second tab, unlocked, with words being typed in a chat whose draft write cannot finish
    // (encryption held): when it goes, it would copy them to localStorage (app/drafts.ts) after
    // the deletion cleared the copies. Told by the deleting tab, it locks at once and says why,
    // and closing it leaves nothing (app/other-tabs.ts; docs/protocol/chat.md §9, "Several tabs").
    const other = await bob.newPage();
    try {
      await other.goto(loft.url);
      const contact = other.getByTestId("contact-item").first();
      await openChatFromHome(other, (await contact.getAttribute("data-contact-id"))!);
      await holdEncrypt(other);
      await id(other, "composer-input").pressSequentially("typed in the other tab");
      await id(b, "nav-settings").click();
      await id(b, "delete-identity").click();
      await id(b, "confirm-delete").click();
      await id(b, "onboarding").waitFor();
      await id(other, "tab-closed").waitFor();
      expect(await id(other, "tab-closed-why").textContent()).toBe(
        "Your identity was deleted on this device in another tab.",
      );
      await expectNoAxeViolations(other, "tab closed");
      const closed = other.waitForEvent("close");
      await other.close({ runBeforeUnload: true });
      await closed;
    } finally {
      if (!other.isClosed()) await other.close();
    }
    expect(
      await b.evaluate(() =>
        Object.keys(localStorage).filter((k) => /^loft\.(draft-copy|outbox-journal|outbox-retry)\./.test(k)),
      ),
    ).toEqual([]);
    expect(await seenOffers()).toEqual([]);
    expect(await leftovers()).toEqual([]);
    await b.reload();
    await id(b, "onboarding").waitFor();
  });

  it("Delete identity while a large file is being prepared: nothing of it stays, no error follows, a new identity works", async () => {
    // A browser of its own (the test stands alone). The file is 1 GiB (sparse on disk: zeros),
    // far more than preparing — hashing and sealing, its sealed copy stored block by block —
    // gets through before the deletion, which stops it at its next block (transfers.ts `stop`).
    const big = join(tmpdir(), `loft-e2e-big-${process.pid}.bin`);
    const gone = await browser.newContext();
    try {
      // Made inside the try: whatever fails from here on, the file is removed below.
      await writeFile(big, "");
      await truncate(big, 1024 * 1024 * 1024);
      const p = await gone.newPage();
      const problems: string[] = [];
      p.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
      p.on("console", (m) => {
        if (m.type() === "error" || /could not be removed|preparing a file.* failed/.test(m.text()))
          problems.push(`${m.type()}: ${m.text()}`);
      });
      await createIdentity(p, loft.url, "Frank");
      await addOfflineContact(p, loft.url, "Grace");
      await id(p, "open-chat").click();
      await id(p, "chat").waitFor();
      await id(p, "attach-input").setInputFiles(big);
      const preparing = p.locator("[data-testid=file][data-state=hashing]");
      await preparing.waitFor();
      // Some of its sealed copy is stored by now: what the deletion must take away.
      await expect.poll(async () => (await deviceFiles(p)).chunkFiles).toBe(1);
      expect((await deviceFiles(p)).loftStores).toContain("secrets"); // the file's key, among others
      await id(p, "back").click();
      await id(p, "nav-settings").click();
      await id(p, "delete-identity").click();
      await id(p, "confirm-delete").click();
      await id(p, "onboarding").waitFor();
      expect(await deviceFiles(p)).toEqual({ loftStores: [], filesDb: false, folders: [], chunkFiles: 0 });

      // A new identity on the same device: it sends a file of its own, and only that file is
      // stored — no block of the deleted identity's file was written after the deletion.
      await createIdentity(p, loft.url, "Heidi");
      await addOfflineContact(p, loft.url, "Ivan");
      await id(p, "open-chat").click();
      await id(p, "chat").waitFor();
      await id(p, "attach-input").setInputFiles({
        name: "small.bin",
        mimeType: "application/octet-stream",
        buffer: Buffer.alloc(100_000, 7),
      });
      await p.locator("[data-testid=file][data-state=queued]").waitFor();
      await expect.poll(() => deviceFiles(p)).toMatchObject({ chunkFiles: 1 });
      expect(
        await inLoftDb(p, ({ db, req }) => req(db.transaction("self").objectStore("self").get("self"))),
      ).toMatchObject({ username: "Heidi" });
      expect(await p.getByRole("alert").allTextContents()).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      try {
        await gone.close();
      } finally {
        await rm(big, { force: true });
      }
    }
  });
});

/**
 * What the page's device keeps: the stores of the `loft` database that hold anything (its `meta`
 * aside: a device key is made again at once), whether the `loft-files` database exists, the Loft
 * folders of its origin-private file system, and how many transfer files the chunks folder holds.
 */
function deviceFiles(
  page: Page,
): Promise<{ loftStores: string[]; filesDb: boolean; folders: string[]; chunkFiles: number }> {
  return page.evaluate(async () => {
    const names = (await indexedDB.databases()).map((d) => d.name);
    const loftStores: string[] = [];
    if (names.includes("loft")) {
      const db = await new Promise<IDBDatabase>((ok, no) => {
        const r = indexedDB.open("loft");
        r.onsuccess = () => ok(r.result);
        r.onerror = () => no(r.error);
      });
      for (const store of Array.from(db.objectStoreNames)) {
        if (store === "meta") continue;
        const n = await new Promise<number>((ok) => {
          const r = db.transaction(store).objectStore(store).count();
          r.onsuccess = () => ok(r.result);
        });
        if (n > 0) loftStores.push(store);
      }
      db.close();
    }
    const root = await navigator.storage.getDirectory();
    const folders: string[] = [];
    let chunkFiles = 0;
    for await (const [name, handle] of root as unknown as AsyncIterable<[string, FileSystemHandle]>) {
      if (!name.startsWith("loft-")) continue;
      folders.push(name);
      if (name === "loft-file-chunks")
        for await (const _ of (handle as unknown as { keys(): AsyncIterable<string> }).keys()) chunkFiles++;
    }
    return {
      loftStores: loftStores.sort(),
      filesDb: names.includes("loft-files"),
      folders: folders.sort(),
      chunkFiles,
    };
  });
}
