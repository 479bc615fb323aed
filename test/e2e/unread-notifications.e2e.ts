/**
 * Unread counts, previews, the tab title and notifications, in real Chromium with two browsers
 * (web/src/app/activity.ts, web/src/app/notifications.ts). Bob writes to Alice while she is on
 * Home: Home counts and previews, the title says "(n) Loft", opening the chat clears both, and
 * the read marker survives a reload. Notifications: none while Alice's page is in front; with
 * another tab in front (Chromium's focus emulation off, so the page really loses the focus) one
 * is shown through the Service Worker registration, with the text, without it ("hide message
 * text"), or not at all (off).
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  addByLink,
  byId,
  createIdentity,
  incoming,
  myLink,
  openChat,
  sendText,
  startChatting,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

/** Notifications currently shown for the app's origin, read through its SW registration. */
function shown(page: Page): Promise<{ title: string; body: string; tag: string }[]> {
  return page.evaluate(async () => {
    const reg = await navigator.serviceWorker.getRegistration("/");
    const list = (await reg?.getNotifications()) ?? [];
    return list.map((n) => ({ title: n.title, body: n.body, tag: n.tag }));
  });
}

describe("unread state and notifications", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let a: Page;
  let b: Page;
  let bobId: string;
  /** A second tab of Alice's, in front of her Loft page. */
  let front: Page;
  const item = () => a.locator(`[data-testid=contact-item][data-contact-id="${bobId}"]`);
  const unread = async () => Number(await item().getAttribute("data-unread"));
  /**
   * Put Alice's Loft page in the background for real: Playwright keeps every page focused by
   * emulation (re-applied on each load), so turn that off, then bring her other tab to the front.
   */
  const toBackground = async () => {
    const cdp = await env.alice.newCDPSession(a);
    // Kept attached: the override lasts as long as the session.
    await cdp.send("Emulation.setFocusEmulationEnabled", { enabled: false });
    await a.bringToFront();
    await front.bringToFront();
    await expect.poll(() => a.evaluate(() => document.hasFocus())).toBe(false);
  };

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ loft, a, b } = env);
    await env.alice.grantPermissions(["notifications"], { origin: loft.url });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("Alice and Bob are connected", async () => {
    [, bobId] = await startChatting(a, b, loft.url);
    await sendText(b, "first");
    await incoming(a, "first").waitFor();
  });

  it("counts Bob's messages on Home and in the title, previews the last one, clears on opening", async () => {
    await byId(a, "back").click();
    await byId(a, "home").waitFor();
    expect(await unread()).toBe(0);
    expect(await a.title()).toBe("Loft");
    for (const t of ["one", "two", "three"]) await sendText(b, t);
    await expect.poll(unread).toBe(3);
    expect(await item().getByTestId("contact-unread").textContent()).toBe("3 unread");
    expect(await item().getByTestId("contact-preview").textContent()).toBe("three");
    expect(await a.title()).toBe("(3) Loft");
    await expectNoAxeViolations(a, "home (unread)");
    // Alice's page is in front and focused: no notification.
    expect(await shown(a)).toEqual([]);

    await item().click();
    await byId(a, "chat").waitFor();
    await expect.poll(() => a.title()).toBe("Loft");
    await byId(a, "back").click();
    expect(await unread()).toBe(0);
    expect(await item().getByTestId("contact-unread").count()).toBe(0);
  });

  it("keeps the count across a reload, from the stored read marker", async () => {
    await sendText(b, "while you were reloading");
    await expect.poll(unread).toBe(1);
    await a.reload();
    await byId(a, "home").waitFor();
    await expect.poll(unread).toBe(1);
    expect(await a.title()).toBe("(1) Loft");
    await openChat(a, bobId);
    await expect.poll(() => a.title()).toBe("Loft");
    await a.reload();
    await byId(a, "chat").waitFor();
    await byId(a, "back").click();
    expect(await unread()).toBe(0);
  });

  it("previews Alice's own last message", async () => {
    await openChat(a, bobId);
    await waitForPresence(a, /^online/);
    await sendText(a, "my reply");
    await waitForState(a, "my reply", "delivered");
    await byId(a, "back").click();
    await expect.poll(() => item().getByTestId("contact-preview").textContent()).toBe("You: my reply");
  });

  it("shows a notification for a page in the background, as the setting says", async () => {
    await byId(a, "home").waitFor();
    front = await env.alice.newPage();
    await front.goto(`${loft.url}/health`);
    await toBackground();

    await sendText(b, "are you there?");
    await expect
      .poll(() => shown(front))
      .toEqual([{ title: "Bob", body: "are you there?", tag: `chat:${bobId}` }]);

    // A click on it (dispatched in the real Service Worker: headless Chromium has no notification
    // UI to click) closes it and opens Bob's chat in Alice's open page.
    const [sw] = env.alice.serviceWorkers();
    expect(sw).toBeDefined();
    await sw!.evaluate(async () => {
      // Service Worker globals (the test's tsconfig has the DOM library, not the worker one).
      const scope = globalThis as unknown as {
        registration: ServiceWorkerRegistration;
        NotificationEvent: new (type: string, init: { notification: Notification }) => Event;
      };
      const [n] = await scope.registration.getNotifications();
      // A script-made event can't be extended (waitUntil throws); the handler has started its work by then.
      globalThis.dispatchEvent(new scope.NotificationEvent("notificationclick", { notification: n! }));
    });
    await byId(a, "chat").waitFor();
    // The chat's address holds the contact's id in the fragment (web/src/app/routes.ts).
    expect([new URL(a.url()).pathname, new URL(a.url()).hash]).toEqual(["/chat", `#${bobId}`]);
    await expect.poll(() => shown(front)).toEqual([]);
    await a.bringToFront();
    await byId(a, "back").click();
    await byId(a, "home").waitFor();

    // "Hide message text": the name, never the text.
    await a.bringToFront();
    await byId(a, "nav-settings").click();
    await byId(a, "notify-private").check();
    await expect.poll(() => byId(a, "notifications-result").textContent()).toBe("Saved.");
    await toBackground();
    await sendText(b, "secret plans");
    await expect
      .poll(() => shown(front))
      .toEqual([{ title: "Bob", body: "New message", tag: `chat:${bobId}` }]);

    // Off: the message arrives (counted on Home) and nothing is shown.
    await a.bringToFront();
    await byId(a, "notify-off").check();
    await expect.poll(() => byId(a, "notify-off").isChecked()).toBe(true);
    await byId(a, "back").click();
    await byId(a, "home").waitFor();
    await a.evaluate(async () => {
      const reg = await navigator.serviceWorker.getRegistration("/");
      for (const n of (await reg?.getNotifications()) ?? []) n.close();
    });
    await toBackground();
    const before = await unread();
    await sendText(b, "quiet please");
    await expect.poll(unread).toBe(before + 1);
    expect(await shown(a)).toEqual([]);
    // The setting is stored: after a reload it is still off.
    await a.reload();
    await byId(a, "nav-settings").click();
    expect(await byId(a, "notify-off").isChecked()).toBe(true);
  });

  it("a contact request while Alice is online says what happened and notifies without its text", async () => {
    const aliceLink = await myLink(a, true);
    await byId(a, "nav-settings").click();
    await byId(a, "notify-on").check();
    await expect.poll(() => byId(a, "notifications-result").textContent()).toBe("Saved.");
    await byId(a, "back").click();
    await byId(a, "home").waitFor();

    const carol = await (await env.browser.newContext()).newPage();
    env.watch("carol", carol);
    await createIdentity(carol, loft.url, "Carol");
    const aliceForCarol = await addByLink(carol, aliceLink);
    await toBackground();
    await openChat(carol, aliceForCarol);
    await sendText(carol, "hello from Carol");

    const request = a.locator("[data-testid=request-item][data-username=Carol]");
    await request.waitFor({ timeout: 60_000 });
    const words = await request.textContent();
    expect(words).toContain("sent you a contact request");
    expect(words).not.toContain("offline");
    await expectNoAxeViolations(a, "home (contact request)");
    await expect
      .poll(() => shown(front), { timeout: 30_000 })
      .toContainEqual(
        expect.objectContaining({ title: "Contact request", body: "Carol wants to talk to you." }),
      );
    expect(JSON.stringify(await shown(front))).not.toContain("hello from Carol");
  });
});
