/**
 * Screens in the URL (web/src/app/navigation.ts) in real Chromium: Back/Forward move between
 * screens, a reload keeps the screen, a deep link to a chat opens it (after unlocking when a
 * passphrase is set) with Home below it, unknown and deleted-contact addresses land on Home with
 * a notice (sticky at the top of a scrolled page; the same words said again announced again), and
 * the focus moves to each new screen. A contact's id is in the fragment
 * (`/chat#<id>`, `/contact#<id>`, `/safety#<id>`): a reload without the Service Worker asks the server
 * for the path and never shows it the id; the older `/chat/<id>` addresses still open and are rewritten.
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import {
  addOfflineContact,
  announced,
  byId,
  createIdentity,
  storedDraft,
  watchLiveRegions,
} from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const path = (page: Page) => new URL(page.url()).pathname;
/** The address bar's path and fragment. */
const address = (page: Page) => [new URL(page.url()).pathname, new URL(page.url()).hash];
/** What has the keyboard focus: its data-testid, else tag and text. */
const focused = (page: Page) =>
  page.evaluate(() => {
    const el = document.activeElement as HTMLElement | null;
    return el?.dataset.testid ?? `${el?.tagName.toLowerCase()}:${el?.textContent?.trim() ?? ""}`;
  });

describe("screens in the URL", () => {
  let loft: LoftProcess;
  let browser: Browser;
  let context: BrowserContext;
  let a: Page;
  let bobId: string;

  beforeAll(async () => {
    loft = await startLoft();
    browser = await launchChromium();
    context = await browser.newContext();
    a = await context.newPage();
    await createIdentity(a, loft.url, "Alice");
    bobId = await addOfflineContact(a, loft.url, "Bob");
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
    ),
  );

  it("moves Back and Forward between screens and keeps the screen across a reload", async () => {
    await a.goto(loft.url);
    await byId(a, "home").waitFor();
    await byId(a, "nav-settings").click();
    await byId(a, "settings").waitFor();
    expect(path(a)).toBe("/settings");
    await a.goBack();
    await byId(a, "home").waitFor();
    expect(path(a)).toBe("/");
    await a.goForward();
    await byId(a, "settings").waitFor();
    await a.reload();
    await byId(a, "settings").waitFor();
    expect(path(a)).toBe("/settings");
    // The in-app ← Back is the browser's Back here: Forward returns to Settings.
    await byId(a, "back").click();
    await byId(a, "home").waitFor();
    await a.goForward();
    await byId(a, "settings").waitFor();
  });

  it("Android-style Back from a chat returns Home, not out of the app; reload keeps the chat", async () => {
    await a.goto(loft.url);
    await a.locator(`[data-testid=contact-item][data-contact-id="${bobId}"]`).click();
    await byId(a, "chat").waitFor();
    expect(address(a)).toEqual(["/chat", `#${bobId}`]);
    await a.reload();
    await byId(a, "chat").waitFor();
    await a.goBack();
    await byId(a, "home").waitFor();
    expect(path(a)).toBe("/");
  });

  it("opens a deep link to a chat, with Home below it; an older /chat/<id> link takes today's address", async () => {
    const fresh = await context.newPage();
    await fresh.goto(`${loft.url}/chat#${bobId}`);
    await byId(fresh, "chat").waitFor();
    await fresh.goBack();
    await byId(fresh, "home").waitFor();
    expect(path(fresh)).toBe("/");
    await fresh.goto(`${loft.url}/chat/${bobId}`);
    await byId(fresh, "chat").waitFor();
    await expect.poll(() => address(fresh)).toEqual(["/chat", `#${bobId}`]);
    await fresh.goBack();
    await byId(fresh, "home").waitFor();
    expect(path(fresh)).toBe("/");
    await fresh.close();
  });

  it("Back into a history entry from before the id moved to the fragment shows today's address", async () => {
    await a.goto(loft.url);
    await byId(a, "home").waitFor();
    // An entry an older version of the app left in this tab's history: the chat at its former path.
    await a.evaluate((id) => history.pushState({ loft: 1, depth: 1, prev: "/" }, "", `/chat/${id}`), bobId);
    await byId(a, "nav-settings").click();
    await byId(a, "settings").waitFor();
    await a.goBack();
    await byId(a, "chat").waitFor();
    // As a reload does (navigation.ts `attach`): the next reload asks the server for no id.
    await expect.poll(() => address(a)).toEqual(["/chat", `#${bobId}`]);
  });

  it("lands on Home with a notice for an unknown address or a contact not on this device", async () => {
    await a.goto(`${loft.url}/no-such-screen`);
    await byId(a, "home").waitFor();
    expect(path(a)).toBe("/");
    await expect.poll(() => byId(a, "notice").textContent()).toContain("not a screen of Loft");
    // The notice stays at the top of a page scrolled down (styles.css: its region is sticky, the
    // notice inside it need not be): in a short window, Home scrolled to its end, it is still there.
    // The window's size put back whatever happens: the later tests share this page.
    const size = a.viewportSize();
    await a.setViewportSize({ width: 400, height: 360 });
    try {
      await a.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
      expect(await a.evaluate(() => window.scrollY)).toBeGreaterThan(0);
      expect(await byId(a, "notice").evaluate((e) => e.getBoundingClientRect().top)).toBe(0);
    } finally {
      if (size) await a.setViewportSize(size);
    }
    await a.goto(`${loft.url}/chat/${"0".repeat(64)}`);
    await byId(a, "home").waitFor();
    expect(path(a)).toBe("/");
    await expect.poll(() => byId(a, "notice").textContent()).toContain("not on this device");
  });

  it("a notice said again in the same words, with nothing in between, is announced again, the focus on it kept", async () => {
    await a.goto(loft.url);
    await byId(a, "nav-my-link").click();
    await byId(a, "my-link-screen").waitFor();
    await watchLiveRegions(a);
    // The browser refuses the clipboard (as one whose site settings block it does): Copy link
    // says so in the app's notice (ui/ShareButton.tsx), each time it is clicked.
    await a.evaluate(() =>
      Object.defineProperty(navigator.clipboard, "writeText", {
        value: () => Promise.reject(new DOMException("Write permission denied.", "NotAllowedError")),
      }),
    );
    const refused = "Copying is not allowed here: select the link and copy it yourself.";
    await byId(a, "copy-link").click();
    await expect.poll(() => announced(a, "notice-news")).toEqual([`${refused} ✕`]);
    // Clicked again, refused again: the same words, said again (ui/LiveRegion.tsx `news`, AppModel
    // `noticeSaid`). Before, they stayed in the element that held them, nothing came into the live
    // region, and a screen reader said nothing: the second click seemed to do nothing.
    await byId(a, "copy-link").click();
    await expect.poll(() => announced(a, "notice-news")).toEqual([`${refused} ✕`, `${refused} ✕`]);
    expect(await byId(a, "notice").textContent()).toBe(`${refused} ✕`);
    await expectNoAxeViolations(a, "my link (a notice said again)");
    // Said again while the focus is on the notice's own Dismiss (a keyboard user about to close
    // it; in use, a contact's next file offer coming then): announced, and the focus stays on
    // Dismiss. Copy link is clicked from a script here, which leaves the focus where it is. Before,
    // the whole notice was drawn anew, its focused button with it, and the focus fell to the page.
    await byId(a, "notice").getByRole("button", { name: "Dismiss" }).focus();
    await a.evaluate(() => (document.querySelector("[data-testid=copy-link]") as HTMLElement).click());
    await expect.poll(() => announced(a, "notice-news")).toEqual(Array(3).fill(`${refused} ✕`));
    expect(
      await a.evaluate(() => {
        const f = document.activeElement;
        return f?.closest("[data-testid=notice]") ? f.getAttribute("aria-label") : f?.tagName;
      }),
    ).toBe("Dismiss");
    // Dismissed from the keyboard, and nothing said since: nothing more is announced (a notice is
    // read when it is said, not each time the page redraws around it).
    await a.keyboard.press("Enter");
    await expect.poll(() => byId(a, "notice-news").textContent()).toBe("");
    await byId(a, "back").click();
    await byId(a, "home").waitFor();
    expect(await announced(a, "notice-news")).toEqual(Array(3).fill(`${refused} ✕`));
  });

  it("a deleted contact's screens, reached with Back, land on Home with a notice; its draft goes with it", async () => {
    const carolId = await addOfflineContact(a, loft.url, "Carol");
    await a.goto(`${loft.url}/chat/${carolId}`);
    await byId(a, "composer-input").fill("note for Carol");
    await expect
      .poll(() => storedDraft(a, `chat:${carolId}`, "note for Carol"))
      .toEqual({ holdsPlain: false });
    await a.goto(`${loft.url}/contact/${carolId}`);
    await byId(a, "open-safety").click();
    await byId(a, "safety-screen").waitFor();
    await byId(a, "back").click();
    await byId(a, "contact-screen").waitFor();
    await byId(a, "delete-contact").click();
    await byId(a, "confirm-delete-contact").click();
    await byId(a, "home").waitFor();
    await expect.poll(() => storedDraft(a, `chat:${carolId}`, "note for Carol")).toBeNull();
    await a.goForward(); // the safety screen of the deleted contact
    await expect.poll(() => path(a)).toBe("/");
    await expect.poll(() => byId(a, "notice").textContent()).toContain("not on this device");
  });

  it("moves the focus to each new screen's heading or first control", async () => {
    await a.goto(loft.url);
    await byId(a, "home").waitFor();
    await byId(a, "nav-add-contact").click();
    await byId(a, "add-screen").waitFor();
    await expect.poll(() => focused(a)).toBe("link-input");
    await byId(a, "back").click();
    await byId(a, "home").waitFor();
    await expect.poll(() => focused(a)).toMatch(/^h1:Loft/);
    await byId(a, "nav-settings").click();
    await expect.poll(() => focused(a)).toBe("h1:Settings");
    // Back from a chat: the focus returns to that conversation on Home.
    await a.goto(loft.url);
    await a.locator(`[data-testid=contact-item][data-contact-id="${bobId}"]`).click();
    await byId(a, "chat").waitFor();
    await byId(a, "back").click();
    await byId(a, "home").waitFor();
    await expect.poll(() => focused(a)).toBe("contact-item");
    expect(await a.evaluate(() => (document.activeElement as HTMLElement).dataset.contactId)).toBe(bobId);
  });

  it("opens a deep link to a chat after unlocking", async () => {
    await a.goto(`${loft.url}/settings`);
    await byId(a, "passphrase-new").fill("correct horse battery");
    await byId(a, "passphrase-confirm").fill("correct horse battery");
    await byId(a, "set-passphrase").click();
    await expect.poll(() => byId(a, "passphrase-result").textContent()).toContain("Passphrase set");
    await a.goto(`${loft.url}/chat#${bobId}`);
    await byId(a, "unlock").waitFor();
    expect(address(a)).toEqual(["/chat", `#${bobId}`]);
    await byId(a, "unlock-passphrase").fill("correct horse battery");
    await byId(a, "unlock-submit").click();
    await byId(a, "chat").waitFor();
  });

  it("a reload without the Service Worker asks the server for no contact id (chat, contact, safety code; older links too)", async () => {
    // A browser of its own, without the Service Worker: every navigation and reload reaches the
    // server, as on a first visit, a hard reload or while a worker is replaced.
    const own = await browser.newContext({ serviceWorkers: "block" });
    try {
      const p = await own.newPage();
      const asked: string[] = [];
      p.on("request", (r) => asked.push(r.url()));
      await createIdentity(p, loft.url, "Gina");
      const hal = await addOfflineContact(p, loft.url, "Hal");
      // Each screen about Hal, reached by clicks, then reloaded: the server is asked for its path.
      const reload = async (screen: string, at: [string, string]) => {
        expect(address(p)).toEqual(at);
        const navigation = p.waitForRequest((r) => r.isNavigationRequest());
        await p.reload();
        expect(new URL((await navigation).url()).pathname).toBe(at[0]);
        await byId(p, screen).waitFor();
        expect(address(p)).toEqual(at);
      };
      await p.goto(loft.url);
      asked.length = 0;
      await p.locator(`[data-testid=contact-item][data-contact-id="${hal}"]`).click();
      await byId(p, "chat").waitFor();
      await reload("chat", ["/chat", `#${hal}`]);
      await byId(p, "chat-contact").click();
      await byId(p, "contact-screen").waitFor();
      await reload("contact-screen", ["/contact", `#${hal}`]);
      await byId(p, "open-safety").click();
      await byId(p, "safety-screen").waitFor();
      await reload("safety-screen", ["/safety", `#${hal}`]);
      expect(asked.filter((u) => u.includes(hal))).toEqual([]);
      // Links and bookmarks from before: the first load asks for that path (nothing to do about
      // an address typed or saved before), the app then shows today's form, and the next reload
      // sends the server no id.
      for (const [old, screen, now] of [
        [`/chat/${hal}`, "chat", "/chat"],
        [`/contact/${hal}`, "contact-screen", "/contact"],
        [`/contact/${hal}/safety`, "safety-screen", "/safety"],
      ] as const) {
        await p.goto(`${loft.url.replace(/\/$/, "")}${old}`);
        await byId(p, screen).waitFor();
        await expect.poll(() => address(p)).toEqual([now, `#${hal}`]);
        asked.length = 0;
        await reload(screen, [now, `#${hal}`]);
        expect(asked.filter((u) => u.includes(hal))).toEqual([]);
      }
    } finally {
      await own.close();
    }
  });

  it("a chat engine that does not load: Home says so and a conversation without messages says it", async () => {
    // A browser of its own, without the Service Worker (its cache would serve the engine's code).
    const own = await browser.newContext({ serviceWorkers: "block" });
    try {
      const p = await own.newPage();
      await createIdentity(p, loft.url, "Erin");
      const frank = await addOfflineContact(p, loft.url, "Frank");
      const preview = p.locator(
        `[data-testid=contact-item][data-contact-id="${frank}"] [data-testid=contact-preview]`,
      );
      await p.goto(loft.url);
      await expect.poll(() => preview.textContent()).toBe("No messages yet");
      // Neither the engine nor its offline stand-in loads (as when a new version replaced them).
      await own.route(/\/assets\/(chat-)?engine-[^/]+\.js$/, (route) => route.abort());
      await p.reload();
      await expect
        .poll(() => byId(p, "engine-status").textContent())
        .toBe(
          "Loft could not load its chat engine (a new version may have been installed). Reload the page.",
        );
      await expect.poll(() => preview.textContent()).toBe("No messages yet");
    } finally {
      await own.close();
    }
  });
});
