/**
 * The conversation screen in real Chromium, driven as people drive it (issue #8; `npm run build`
 * first, then `node scripts/e2e.mjs test/e2e/chat-screen.e2e.ts`): a 200-message burst typed with
 * the keyboard arrives exactly, in order, on both sides; so does a burst that waited behind a slow
 * ratchet state write, in bundles (chat.md §5); typing at human speed loses no letter;
 * words typed and not sent wait in the composer while the person is elsewhere in the app, and
 * across a reload (sealed at rest), and are gone once sent;
 * the newest message is visible above the composer; a reader scrolled up stays put and gets a
 * pill; history survives a reload; links are safe anchors and HTML stays text; the character
 * counter and the length error; a stranger with Alice's link sees no presence until she accepts
 * (and the first-contact wording); axe-core finds nothing, light or dark.
 *
 * Every wait is on a condition (a count, an attribute, a scroll position), never a duration.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import {
  addByLink,
  byId,
  createIdentity,
  heldCount,
  holdEncrypt,
  incoming,
  incomingTexts,
  myLink,
  openChat,
  openChatFromHome,
  openChatHere,
  outgoing,
  releaseHeld,
  sendText,
  startChatting,
  storedDraft,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";
import { fetchMetric } from "../support/metrics.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const BURST = 200;

const outgoingTexts = (page: Page) =>
  page.locator("[data-testid=message][data-direction=out] [data-testid=message-text]").allTextContents();

/** Scroll up until every page of history is on screen (bounded). */
async function loadAllHistory(page: Page): Promise<void> {
  const complete = async () => (await page.getByTestId("chat").getAttribute("data-history")) === "complete";
  for (let i = 0; i < 40 && !(await complete()); i++) {
    const count = await page.getByTestId("message").count();
    await page.evaluate(() => window.scrollTo(0, 0));
    // A page is prepended (the reader is moved down by its height), or the history is complete.
    await expect
      .poll(async () => (await page.getByTestId("message").count()) > count || (await complete()))
      .toBe(true);
  }
  expect(await complete()).toBe(true);
  await page.getByTestId("history-start").waitFor();
}

const scrollY = (page: Page) => page.evaluate(() => Math.round(document.scrollingElement!.scrollTop));

/**
 * The newest bubble is inside the viewport, below the sticky header and above the composer
 * area (never covered by it).
 */
async function newestBubbleVisible(page: Page): Promise<{ ok: boolean; detail: string }> {
  return page.evaluate(() => {
    const bubbles = document.querySelectorAll("[data-testid=message]");
    const last = bubbles[bubbles.length - 1];
    const foot = document.querySelector(".chat-foot");
    const head = document.querySelector(".chat-head");
    if (!last || !foot || !head) return { ok: false, detail: "missing elements" };
    const b = last.getBoundingClientRect();
    const f = foot.getBoundingClientRect();
    const h = head.getBoundingClientRect();
    const ok = b.top >= h.bottom - 0.5 && b.bottom <= f.top + 0.5 && b.bottom <= window.innerHeight;
    return { ok, detail: `bubble ${b.top}-${b.bottom}, header bottom ${h.bottom}, composer top ${f.top}` };
  });
}

async function expectNewestVisible(page: Page): Promise<void> {
  await expect.poll(async () => (await newestBubbleVisible(page)).ok).toBe(true);
}

/**
 * Hold the page's next write of a ratchet state (storage.ts `saveSession`: sealed under the AAD
 * `loft/sealed/v1/session/<contact>`, storage/vault.ts) until `releaseHeld`, as a slow disk
 * would: its seal waits (no IndexedDB transaction is held open, so the rest of storage goes on).
 * Counts the outbox writes meanwhile (`outboxPuts`).
 */
async function holdFirstRatchetWrite(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = globalThis as unknown as { outboxPuts: number };
    w.outboxPuts = 0;
    const put = IDBObjectStore.prototype.put;
    IDBObjectStore.prototype.put = function (
      this: IDBObjectStore,
      ...args: Parameters<IDBObjectStore["put"]>
    ) {
      if (this.name === "outbox") w.outboxPuts++;
      return put.apply(this, args);
    };
  });
  await holdEncrypt(page, { aadPrefix: "loft/sealed/v1/session/", once: true });
}

const outboxPuts = (page: Page) =>
  page.evaluate(() => (globalThis as unknown as { outboxPuts: number }).outboxPuts);

describe("the conversation screen never loses a word", () => {
  let env: TwoBrowsers;
  let a: Page;
  let b: Page;
  let aliceId: string;
  const sent: string[] = [];

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ a, b } = env);
  });
  afterAll(async () => {
    await env?.close();
  });

  it("opens with a heading and the focus in the composer; axe finds nothing, light or dark", async () => {
    // (expect.poll, used by the helpers, only runs inside a test.)
    [aliceId] = await startChatting(a, b, env.loft.url);
    await waitForPresence(b, /^online/);
    expect(await a.locator("h1").textContent()).toBe("Bob");
    expect(await a.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe(
      "composer-input",
    );
    // The list is not a live region; a separate status announces new messages.
    expect(await byId(a, "message-list").getAttribute("aria-live")).toBeNull();
    await sendText(a, "hello Bob");
    await incoming(b, "hello Bob").waitFor();
    await waitForState(a, "hello Bob", "delivered");
    sent.push("hello Bob");
    await expect.poll(() => byId(b, "chat-announcer").textContent()).toBe("Alice: hello Bob");
    for (const scheme of ["light", "dark"] as const) {
      await a.emulateMedia({ colorScheme: scheme });
      await b.emulateMedia({ colorScheme: scheme });
      await expectNoAxeViolations(a, `chat (${scheme}, sender)`);
      await expectNoAxeViolations(b, `chat (${scheme}, receiver)`);
    }
    await a.emulateMedia({ colorScheme: "light" });
    await b.emulateMedia({ colorScheme: "light" });
    // The header's status and trust badge are two items: on a phone the badge may wrap under the
    // status, and no " ·" is left dangling at the end of the first line.
    const size = a.viewportSize();
    await a.setViewportSize({ width: 390, height: 844 });
    expect(await byId(a, "chat-trust").textContent()).toBe("Not verified");
    // biome-ignore lint/performance/useDomNodeTextContent: innerText has the rendered line breaks.
    const lines = (await a.locator(".chat-head .sub").innerText()).split("\n");
    expect(lines.filter((l) => l.trimEnd().endsWith("·"))).toEqual([]);
    if (size) await a.setViewportSize(size);
  });

  it(`${BURST} messages typed with Enter and no pauses arrive exactly, in order, on both sides`, async () => {
    const burst = Array.from({ length: BURST }, (_, i) => `burst ${String(i + 1).padStart(3, "0")} ok`);
    await byId(a, "composer-input").focus();
    for (const text of burst) {
      await a.keyboard.type(text);
      await a.keyboard.press("Enter");
    }
    sent.push(...burst);
    // The sender shows every message at once, before any is delivered.
    expect((await outgoingTexts(a)).slice(-BURST)).toEqual(burst);
    await expect
      .poll(async () => (await incomingTexts(b)).length, { timeout: 120_000 })
      .toBeGreaterThanOrEqual(sent.length);
    await waitForState(a, burst[BURST - 1]!, "delivered", 120_000);
    expect(await incomingTexts(b)).toEqual(sent);
    expect(await outgoingTexts(a)).toEqual(sent);
    expect(await byId(a, "composer-input").inputValue()).toBe("");
    // The newest message is fully visible above the composer, on both sides.
    await expectNewestVisible(a);
    await expectNewestVisible(b);
  });

  it("a burst typed while a ratchet state write is still on disk goes in bundles (chat.bundle): complete, in order, every one delivered", async () => {
    // docs/protocol/chat.md §5, "Bundles": both pages list chat.bundle, so the outbox flush puts
    // consecutive chat messages under one ratchet message. Alice's first ratchet state write of
    // the burst is held (a slow disk, the first message's flush waiting in it): the messages typed
    // meanwhile wait in her outbox, and the flush after it sends them FLUSH_BATCH at a time, each
    // batch one bundle. Bob's engine logs each bundle it reads (messages.ts `receive`): without
    // bundles there is no such line. Every wait is on a condition.
    const texts = Array.from({ length: 40 }, (_, i) => `bundled ${String(i + 1).padStart(2, "0")} ✓`);
    const from = env.logs.length;
    await holdFirstRatchetWrite(a);
    sent.push(...texts);
    try {
      await byId(a, "composer-input").focus();
      await a.keyboard.type(texts[0]!);
      await a.keyboard.press("Enter");
      await expect.poll(() => heldCount(a)).toBe(1);
      for (const text of texts.slice(1)) {
        await a.keyboard.type(text);
        await a.keyboard.press("Enter");
      }
      // Every message in Alice's outbox before the write goes on, so the next flush lists them all.
      await expect.poll(() => outboxPuts(a)).toBeGreaterThanOrEqual(texts.length);
    } finally {
      await releaseHeld(a);
    }
    await waitForState(a, texts[texts.length - 1]!, "delivered", 120_000);
    await expect.poll(async () => (await incomingTexts(b)).length).toBeGreaterThanOrEqual(sent.length);
    expect(await incomingTexts(b)).toEqual(sent);
    expect(await outgoingTexts(a)).toEqual(sent);
    for (const text of texts) await waitForState(a, text, "delivered");
    const bundles = env.logs
      .slice(from)
      .map((l) => / bob: \[loft engine\] read a bundle of (\d+) chat messages$/.exec(l)?.[1])
      .filter((k) => k !== undefined)
      .map(Number);
    // All but the first message (its flush was under way) came in bundles of at most FLUSH_BATCH.
    expect(bundles.reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(texts.length - 1);
    expect(bundles.every((k) => k >= 2 && k <= 16)).toBe(true);
    await expectNewestVisible(b);
  });

  it("typing at human speed right after Enter loses no first letter", async () => {
    const texts = ["Quick note", "Second thought", "Zebra crossing", "Last one, really", "Okay bye"];
    await byId(b, "composer-input").focus();
    for (const [i, text] of texts.entries()) {
      await b.keyboard.type(text, { delay: 60 + ((i * 37) % 91) });
      await b.keyboard.press("Enter");
    }
    await waitForState(b, "Okay bye", "delivered");
    expect((await outgoingTexts(b)).slice(-texts.length)).toEqual(texts);
    await expect.poll(async () => (await incomingTexts(a)).slice(-texts.length)).toEqual(texts);
    await expectNewestVisible(a);
    await expectNewestVisible(b);
  });

  it("words typed and not sent wait in the composer when the person leaves the chat and comes back", async () => {
    await byId(b, "composer-input").focus();
    await b.keyboard.type("half a thought");
    await byId(b, "back").click();
    await byId(b, "home").waitFor();
    await openChatFromHome(b, aliceId);
    expect(await byId(b, "composer-input").inputValue()).toBe("half a thought");
    expect(await byId(b, "send-button").isEnabled()).toBe(true);
    // Emptied, it stays empty: the draft is gone with the text.
    await byId(b, "composer-input").fill("");
    await b.goBack();
    await byId(b, "home").waitFor();
    await b.goForward();
    await byId(b, "chat").waitFor();
    expect(await byId(b, "composer-input").inputValue()).toBe("");
  });

  it("a reader scrolled to the top stays there, keeps a selection, and gets a pill to the bottom", async () => {
    await loadAllHistory(b);
    expect(await incomingTexts(b)).toEqual(sent);
    // Bob reads the top of the chat and selects the first message's text.
    await b.evaluate(() => window.scrollTo(0, 0));
    const topBefore = await scrollY(b);
    const firstTop = () =>
      b.evaluate(() =>
        Math.round(document.querySelector("[data-testid=message]")!.getBoundingClientRect().top),
      );
    const anchorBefore = await firstTop();
    await b.evaluate(() => {
      const text = document.querySelector("[data-testid=message-text]")!;
      const range = document.createRange();
      range.selectNodeContents(text);
      getSelection()!.removeAllRanges();
      getSelection()!.addRange(range);
    });
    expect(await b.evaluate(() => getSelection()!.toString())).toBe("hello Bob");

    for (const t of ["while you read 1", "while you read 2", "while you read 3"]) await sendText(a, t);
    sent.push("while you read 1", "while you read 2", "while you read 3");
    await incoming(b, "while you read 3").waitFor();
    await expect.poll(() => byId(b, "new-messages-pill").textContent()).toBe("3 new messages ↓");
    // Scrolled up, they are not read yet: the unread count (tab title, Home) says so.
    expect(await b.title()).toBe("(3) Loft");
    expect(await scrollY(b)).toBe(topBefore);
    expect(await firstTop()).toBe(anchorBefore);
    expect(await b.evaluate(() => getSelection()!.toString())).toBe("hello Bob");

    await byId(b, "new-messages-pill").click();
    await expectNewestVisible(b);
    await byId(b, "new-messages-pill").waitFor({ state: "detached" });
    // At the bottom they are read.
    await expect.poll(() => b.title()).toBe("Loft");
  });

  it("a reload keeps the history and its order, and the words typed and not sent", async () => {
    // Typed at burst speed (no delay between keys): the draft is written sealed, debounced.
    const draft = "Draft typed fast, then a reload: every letter of it comes back, ✓ and all.";
    await byId(b, "composer-input").focus();
    await b.keyboard.type(draft);
    await expect.poll(() => storedDraft(b, `chat:${aliceId}`, draft)).toEqual({ holdsPlain: false });
    await b.reload();
    await openChat(b, aliceId);
    await expect.poll(() => byId(b, "composer-input").inputValue()).toBe(draft);
    expect(await byId(b, "send-button").isEnabled()).toBe(true);
    // Words typed in the last moment before a reload — the debounced write not due yet, and the
    // one `pagehide` starts cannot finish — come back too: a sealed copy is kept synchronously
    // (app/drafts.ts, storage/draft-copies.ts) and folded into the sealed draft at the next start.
    const more = " And these, typed just before the reload.";
    await byId(b, "composer-input").press("End");
    await b.keyboard.type(more);
    await b.reload();
    await openChat(b, aliceId);
    await expect.poll(() => byId(b, "composer-input").inputValue()).toBe(draft + more);
    await expect.poll(() => storedDraft(b, `chat:${aliceId}`, draft + more)).toEqual({ holdsPlain: false });
    // Folded: no copy is left beside the sealed draft.
    expect(
      await b.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("loft.draft-copy."))),
    ).toEqual([]);
    await incoming(b, "while you read 3").waitFor();
    await expectNewestVisible(b);
    // The newest page first; the rest as the reader scrolls up.
    const shown = await incomingTexts(b);
    expect(shown.length).toBeLessThan(sent.length);
    expect(shown).toEqual(sent.slice(-shown.length));
    await loadAllHistory(b);
    expect(await incomingTexts(b)).toEqual(sent);
    expect(await b.getByTestId("day-separator").allTextContents()).toEqual(["Today"]);
  });

  it("a draft sent is gone: after the next reload the composer is empty", async () => {
    const draft = await byId(b, "composer-input").inputValue();
    await byId(b, "composer-input").press("Enter");
    await incoming(a, draft).waitFor();
    expect(await byId(b, "composer-input").inputValue()).toBe("");
    await expect.poll(() => storedDraft(b, `chat:${aliceId}`, draft)).toBeNull();
    await b.reload();
    await openChat(b, aliceId);
    await outgoing(b, draft).waitFor();
    expect(await byId(b, "composer-input").inputValue()).toBe("");
  });

  it("links are safe anchors; javascript: and HTML stay text", async () => {
    await b.evaluate(() => window.scrollTo(0, document.scrollingElement!.scrollHeight));
    const text =
      'see https://example.org/a?b=1, javascript:alert(1) <b>bold</b> <img src=x onerror="alert(1)"> mailto:alice@example.org';
    await sendText(a, text);
    const bubble = b.locator("[data-testid=message][data-direction=in]", {
      hasText: "see https://example.org",
    });
    await bubble.waitFor();
    expect(await bubble.getByTestId("message-text").textContent()).toBe(text);
    const anchors = await bubble.locator("a").evaluateAll((els) =>
      els.map((e) => ({
        href: e.getAttribute("href"),
        rel: e.getAttribute("rel"),
        target: e.getAttribute("target"),
        text: e.textContent,
      })),
    );
    expect(anchors).toEqual([
      {
        href: "https://example.org/a?b=1",
        rel: "noopener noreferrer",
        target: "_blank",
        text: "https://example.org/a?b=1",
      },
      {
        href: "mailto:alice@example.org",
        rel: "noopener noreferrer",
        target: "_blank",
        text: "mailto:alice@example.org",
      },
    ]);
    expect(await bubble.locator("b, img, script").count()).toBe(0);
    await expectNoAxeViolations(b, "chat with links");
  });

  it("a very long message sent from the keyboard's Send folds behind Read more; the focus is back in the composer", async () => {
    const long = Array.from({ length: 300 }, (_, i) => `word${i}`).join(" ");
    await byId(a, "composer-input").fill(long);
    // Tab from the composer reaches Send; Enter on it sends, and the now disabled button must not
    // drop the focus to the page (the next words go in the composer).
    await a.keyboard.press("Tab");
    expect(await a.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe("send-button");
    await a.keyboard.press("Enter");
    await expect.poll(() => byId(a, "composer-input").inputValue()).toBe("");
    expect(await a.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe(
      "composer-input",
    );
    const bubble = b.locator("[data-testid=message][data-direction=in]", { hasText: "word0 word1" });
    await bubble.waitFor();
    const textOf = () => bubble.getByTestId("message-text").textContent();
    expect((await textOf())!.length).toBeLessThan(long.length);
    await bubble.getByTestId("read-more").click();
    expect(await textOf()).toBe(long);
    expect(await bubble.getByTestId("read-more").getAttribute("aria-expanded")).toBe("true");
  });

  it("shows a counter near the limit and the length error next to the composer, keeping the text", async () => {
    const input = byId(a, "composer-input");
    await input.fill("x".repeat(14_000));
    await expect.poll(() => byId(a, "char-counter").textContent()).toBe("");
    await input.fill("x".repeat(15_000));
    await expect.poll(() => byId(a, "char-counter").textContent()).toBe("15,000 / 16,000");
    await input.fill("y".repeat(16_010));
    await expect.poll(() => byId(a, "char-counter").textContent()).toBe("16,010 / 16,000 — 10 too many");
    const before = await a.getByTestId("message").count();
    await input.press("Enter");
    await expect.poll(() => byId(a, "send-error").textContent()).toContain("the limit is 16,000");
    expect(await input.inputValue()).toHaveLength(16_010);
    expect(await a.getByTestId("message").count()).toBe(before);
    // The error is in view, right by the composer.
    const inView = await byId(a, "send-error").evaluate((e) => {
      const r = e.getBoundingClientRect();
      return r.top >= 0 && r.bottom <= window.innerHeight;
    });
    expect(inView).toBe(true);
    await input.fill("");
  });
});

describe("first contact, on the sender's side", () => {
  let env: TwoBrowsers;

  beforeAll(async () => {
    env = await startTwoBrowsers();
  });
  afterAll(async () => {
    await env?.close();
  });

  it("a stranger with Alice's link sees no presence until she accepts, and is told where words go", async () => {
    const { a, b } = env;
    const metrics = env.loft.metricsUrl!;
    const subscriptions = () => fetchMetric(metrics, "loft_signaling_presence_subscriptions");
    await createIdentity(a, env.loft.url, "Alice");
    await createIdentity(b, env.loft.url, "Bob");
    // Bob has Alice's link (with her contact address); Alice doesn't know Bob. Both are online.
    const linkA = await myLink(a, true);
    const aliceId = await addByLink(b, linkA);
    await openChat(b, aliceId);
    // Bob watches Alice; Alice watches nobody, so nobody may see her (docs/protocol/signaling.md,
    // "Contacts only"): to Bob she looks offline, and he is not told "offline" but why.
    await expect.poll(() => fetchMetric(metrics, "loft_signaling_registrations")).toBe(2);
    await expect.poll(subscriptions).toBe(1);
    await expect.poll(() => byId(b, "chat-presence").textContent()).toBe("waiting to be accepted");
    expect(await byId(b, "chat-problem").textContent()).toBe(
      "Waiting for Alice to accept — your messages reach Alice as a contact request.",
    );
    expect(await byId(b, "chat-problem").getAttribute("data-kind")).toBe("awaiting-acceptance");
    await expectNoAxeViolations(b, "chat (first contact)");

    // Bob writes: it reaches Alice as a contact request through her contact address.
    await sendText(b, "hi Alice, it's Bob");
    await expect
      .poll(() => outgoing(b, "hi Alice, it's Bob").getAttribute("data-state"), { timeout: 60_000 })
      .toBe("relayed");
    await a.goto(env.loft.url);
    const request = a.locator("[data-testid=request-item][data-username=Bob]");
    await request.waitFor({ timeout: 60_000 });
    // An open request is not an accepted contact: Alice still doesn't watch Bob, Bob still can't
    // see her, and nothing reached Bob.
    expect(await subscriptions()).toBe(1);
    expect(await byId(b, "chat-presence").textContent()).toBe("waiting to be accepted");
    expect(await outgoing(b, "hi Alice, it's Bob").getAttribute("data-state")).toBe("relayed");

    // Alice accepts: Bob is a contact, each sees the other online, and the message is delivered.
    await request.getByTestId("accept-request").click();
    await byId(a, "chat").waitFor();
    await expect.poll(subscriptions, { timeout: 30_000 }).toBe(2);
    await waitForPresence(b, /^online/);
    await byId(b, "chat-problem").waitFor({ state: "detached" });
    await waitForState(b, "hi Alice, it's Bob", "delivered");
    await waitForPresence(a, /^online/);
  });

  it("a request is in sight on a phone; declined from the keyboard it leaves the focus on Home's heading and nothing unread", async () => {
    const { a } = env;
    const carol = await env.browser.newContext();
    // Put back in any case: the describe's later tests share Alice's page.
    const size = a.viewportSize();
    try {
      const c = await carol.newPage();
      env.watch("carol", c);
      await createIdentity(c, env.loft.url, "Carol");
      await addByLink(c, await myLink(a, true));
      await openChatHere(c);
      await sendText(c, "hi Alice, it's Carol");
      // A phone: the request must be in sight without scrolling, above the offer of notifications
      // (shown here: Alice has contacts and was never asked).
      await a.setViewportSize({ width: 360, height: 740 });
      await a.goto(env.loft.url);
      const request = a.locator("[data-testid=request-item][data-username=Carol]");
      await request.waitFor({ timeout: 60_000 });
      await byId(a, "notification-offer").waitFor();
      const inView = (testid: string) =>
        request.getByTestId(testid).evaluate((el) => {
          const r = el.getBoundingClientRect();
          return r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth;
        });
      expect(await inView("accept-request")).toBe(true);
      expect(await inView("decline-request")).toBe(true);
      await expectNoAxeViolations(a, "home with a request (phone)");
      // The request is unread until Alice acts on it.
      await expect.poll(() => a.title()).toBe("(1) Loft");
      await request.getByTestId("decline-request").focus();
      await a.keyboard.press("Enter");
      await request.waitFor({ state: "detached" });
      // Decline is disabled while it runs and then gone: the focus must not stay on the page's body.
      await expect.poll(() => a.evaluate(() => document.activeElement?.tagName)).toBe("H1");
      expect(await a.evaluate(() => document.activeElement?.closest("main")?.dataset.testid)).toBe("home");
      // Declined is dealt with: Carol is listed as Blocked with nothing unread — no badge, no bold
      // preview, no count in the title — and so after a reload (the read marker is stored).
      const carolItem = a.locator("[data-testid=contact-item][data-username=Carol]");
      const nothingUnread = async () => {
        await expect.poll(() => carolItem.getAttribute("data-unread")).toBe("0");
        expect(await carolItem.getAttribute("class")).not.toMatch(/\bunread\b/);
        expect(await carolItem.getByTestId("contact-unread").count()).toBe(0);
        expect(await a.title()).toBe("Loft");
      };
      expect(await carolItem.getByTestId("contact-trust").textContent()).toContain("Blocked");
      await nothingUnread();
      await a.reload();
      await carolItem.waitFor();
      await nothingUnread();
      // Unblocked again, Carol is an ordinary contact whose message was already dealt with. Her
      // Contact screen by its address: through her chat, opening it would read the message.
      const carolScreen = `${env.loft.url}/contact#${await carolItem.getAttribute("data-contact-id")}`;
      await a.goto(carolScreen);
      await byId(a, "contact-screen").waitFor();
      await byId(a, "unblock-contact").click();
      await byId(a, "block-contact").waitFor();
      await byId(a, "back").click();
      await byId(a, "home").waitFor();
      await nothingUnread();
      // She writes again and it is unread; blocked from her Contact screen (whose chat a block
      // closes), it is not any more.
      await sendText(c, "hi again, it's Carol");
      await expect.poll(() => carolItem.getAttribute("data-unread"), { timeout: 60_000 }).toBe("1");
      await a.goto(carolScreen);
      await byId(a, "contact-screen").waitFor();
      await byId(a, "block-contact").click();
      await byId(a, "unblock-contact").waitFor();
      await byId(a, "back").click();
      await byId(a, "home").waitFor();
      await nothingUnread();
    } finally {
      if (size) await a.setViewportSize(size);
      await carol.close();
    }
  });
});
