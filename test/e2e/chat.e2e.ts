/**
 * Direct end-to-end encrypted chat between two real Chromium contexts through the real server
 * (`npm run build` first; `node scripts/e2e.mjs test/e2e/chat.e2e.ts`): identities created in the
 * PWA, contact links exchanged, the same safety code on both sides, messages both ways over a
 * WebRTC data channel (Noise XXhfs session + Double Ratchet) reaching `delivered`, history and
 * chat surviving a reload, and a contact that comes back under a new identity key: the warning,
 * and nothing sent until the user decides.
 *
 * Sync points are conditions (a message in the DOM, a state attribute, a signaling metric), never
 * durations. The data-testids are the UI's (see test/e2e/onboarding.e2e.ts).
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  addByLink,
  byId,
  createIdentity,
  expectAddOutcome,
  incoming,
  incomingTexts,
  inLoftDb,
  introduce,
  myLink,
  openChat,
  openChatFromHome,
  openChatHere,
  outgoing,
  renameByClicks,
  sendText,
  waitForState,
} from "../support/loft-ui.ts";
import { fetchMetric } from "../support/metrics.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;

async function waitForDirect(page: Page) {
  await expect
    .poll(() => id(page, "chat-presence").textContent(), { timeout: 30_000 })
    .toBe("online · direct");
}

/** The metrics listener of the combined server (host/metrics.ts): /metrics is not public. */
function metricsUrl(loft: LoftProcess): string {
  if (loft.metricsUrl === undefined) throw new Error("the server has no metrics listener");
  return loft.metricsUrl;
}

/** The name of the file whose row holds the keyboard focus (null: the focus is outside every file). */
const focusedFile = (page: Page) =>
  page.evaluate(
    () =>
      document.activeElement?.closest("[data-testid=file]")?.querySelector("[data-testid=file-name]")
        ?.textContent ?? null,
  );

describe("direct E2EE chat between two browsers", () => {
  let loft: LoftProcess;
  let browser: Browser;
  let bob: BrowserContext;
  let a: Page;
  let b: Page;
  let aliceId: string;
  let bobId: string;
  let env: TwoBrowsers;
  let logs: string[];

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ loft, browser, bob, a, b, logs } = env);
  });
  afterAll(async () => {
    await env?.close();
  });

  it("two new identities exchange links and see the same safety code", async () => {
    [aliceId, bobId] = await introduce(a, b, loft.url);
    // By clicks, as people go on after meeting: a reload now would end the engines' first
    // connection while it opens (docs/contributing.md, "Tests").
    await id(a, "open-safety").click();
    await openChatFromHome(b, aliceId);
    await id(b, "chat-contact").click();
    await id(b, "open-safety").click();
    const codeA = await id(a, "safety-code").getAttribute("data-digits");
    const codeB = await id(b, "safety-code").getAttribute("data-digits");
    expect(codeA).toMatch(/^\d{60}$/);
    expect(codeB).toBe(codeA);
  });

  it("chats both ways over a direct data channel; every message reaches delivered", async () => {
    // From the safety code back to the contact, and on to the chat.
    for (const page of [a, b]) {
      await id(page, "back").click();
      await openChatHere(page);
    }
    await waitForDirect(a);
    await waitForDirect(b);

    await sendText(a, "hello Bob, this is Alice");
    await incoming(b, "hello Bob, this is Alice").waitFor();
    await waitForState(a, "hello Bob, this is Alice", "delivered");

    await sendText(b, "hi Alice! Bob here");
    await incoming(a, "hi Alice! Bob here").waitFor();
    await waitForState(b, "hi Alice! Bob here", "delivered");

    // A burst keeps its order on the other side.
    for (let i = 1; i <= 5; i++) await sendText(a, `burst ${i}`);
    await incoming(b, "burst 5").waitFor();
    const texts = await incomingTexts(b);
    expect(texts.filter((t) => t.startsWith("burst "))).toEqual([
      "burst 1",
      "burst 2",
      "burst 3",
      "burst 4",
      "burst 5",
    ]);
    await waitForState(a, "burst 5", "delivered");
    expect(await id(a, "chat-presence").textContent()).toBe("online · direct");
    // The selected ICE candidate pair is host-to-host: a direct path, no TURN relay.
    await expect
      .poll(() => logs.filter((l) => / path [0-9a-f]{8}: host\/host udp/.test(l)).length)
      .toBeGreaterThan(0);
    expect(logs.some((l) => / path [0-9a-f]{8}: .*relay/.test(l))).toBe(false);
  });

  it("after a reload the history is intact and the chat resumes", async () => {
    await b.reload();
    await openChat(b, aliceId);
    // History is read from IndexedDB after the chat opens: wait for the newest message first.
    await b.locator("[data-testid=message-text]", { hasText: "burst 5" }).waitFor();
    await expect
      .poll(() => b.locator("[data-testid=message-text]").allTextContents())
      .toEqual(expect.arrayContaining(["hello Bob, this is Alice", "hi Alice! Bob here", "burst 5"]));
    // Delivered stays delivered across the reload.
    expect(await outgoing(b, "hi Alice! Bob here").getAttribute("data-state")).toBe("delivered");

    await waitForDirect(b);
    await waitForDirect(a);
    await sendText(b, "back after a reload");
    await incoming(a, "back after a reload").waitFor();
    await waitForState(b, "back after a reload", "delivered");
    await sendText(a, "welcome back");
    await incoming(b, "welcome back").waitFor();
    await waitForState(a, "welcome back", "delivered");
    // Each message appears once on the receiving side (duplicates are dropped by the peer's id).
    expect(await incoming(b, "welcome back").count()).toBe(1);
    expect(await incoming(b, "hello Bob, this is Alice").count()).toBe(1);
  });

  it("Alice's engine stops (saving her name restarts it): Bob sees her session stopped, not its link failing, and a notice of her new name", async () => {
    await waitForDirect(a);
    await waitForDirect(b);
    // Bob's engine log lines about his session with Alice (docs/protocol/chat.md §6, "Stopping").
    const closedLines = () =>
      logs.filter((l) => l.includes(` bob: [loft engine] session ${aliceId.slice(0, 8)} closed: `));
    const before = closedLines().length;
    // By clicks: a page load would end the connection without a stop.
    await id(a, "back").click();
    await id(a, "home").waitFor();
    await id(b, "back").click();
    await id(b, "home").waitFor();
    await renameByClicks(a, "Alicia");
    await expect.poll(() => closedLines().length, { timeout: 30_000 }).toBeGreaterThan(before);
    // Her stopping session's CLOSE reached Bob before her connection closed (webrtc-link.ts
    // `teardown`, an orderly close: the channel closes, and its close is waited for): before, it
    // could be dropped with the buffer, and Bob saw the link fail (transport-closed, a data-channel
    // error) and showed an error. On loopback nothing is lost on the way: network-drop.e2e.ts drops the packets.
    expect(closedLines()[before]).toMatch(/ closed: remote-closed \(stopped\)$/);
    // Her restarted engine reconnects with her new name: Bob's notice says so, and its button —
    // its words from the notice, not a file offer's "accept or decline" — opens their chat.
    await expect
      .poll(() => id(b, "notice").evaluate((n) => n.firstChild?.textContent), { timeout: 30_000 })
      .toBe("Alice is now called Alicia.");
    await b.getByRole("button", { name: "Open the chat with Alicia", exact: true }).click();
    await id(b, "chat").waitFor();
    expect([new URL(b.url()).pathname, new URL(b.url()).hash]).toEqual(["/chat", `#${aliceId}`]);
    // Back to her name, for the tests after this one.
    await renameByClicks(a, "Alice");
    await expect
      .poll(() => id(b, "notice").evaluate((n) => n.firstChild?.textContent), { timeout: 30_000 })
      .toBe("Alicia is now called Alice.");
    await openChatFromHome(a, bobId);
    await waitForDirect(a);
    await waitForDirect(b);
    await sendText(a, "back after a restart");
    await incoming(b, "back after a restart").waitFor();
  });

  it("a file offered while Bob is on Home: the notice says so and takes him to the chat where he answers", async () => {
    // A message of this test's own before the files, so the timeline check below does not depend on
    // what the tests before it sent last.
    await sendText(a, "before the files");
    await incoming(b, "before the files").waitFor();
    await id(b, "back").click();
    await id(b, "home").waitFor();
    await id(a, "attach-input").setInputFiles({
      name: "notes.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("a small file"),
    });
    await expect
      .poll(() => id(b, "notice").evaluate((n) => n.firstChild?.textContent))
      .toBe("Alice wants to send you notes.txt.");
    await id(b, "notice-open-chat").click();
    await id(b, "chat").waitFor();
    expect([new URL(b.url()).pathname, new URL(b.url()).hash]).toEqual(["/chat", `#${aliceId}`]);
    expect(await id(b, "notice").count()).toBe(0);
    // Each side's row says where the file is, as the engine's states mean it: offered is not yet
    // received, and the sender says "received" only once Bob's device checked the file.
    await expect
      .poll(() => id(a, "file-status").last().textContent())
      .toBe("Offered — waiting for Bob to accept");
    expect(await id(b, "file-status").last().textContent()).toBe(
      "Alice offers you this file · 12 B: accept to receive it",
    );
    // Answered from the keyboard: the button pressed goes with the offer, and the focus stays on
    // its row (its status says what happened, its next button is there), not on the page's top.
    await id(b, "file-decline").focus();
    await b.keyboard.press("Enter");
    await expect.poll(() => id(a, "file-status").last().textContent()).toBe("Bob declined");
    await expect.poll(() => focusedFile(b)).toBe("notes.txt");
    await id(a, "attach-input").setInputFiles({
      name: "notes 2.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("another small file"),
    });
    await b.locator("[data-testid=file][data-state=offered]").getByTestId("file-accept").focus();
    await b.keyboard.press("Enter");
    await expect
      .poll(() => b.locator("[data-testid=file][data-state=done]").getByTestId("file-status").textContent())
      .toBe("Received · 18 B, checked");
    expect(await focusedFile(b)).toBe("notes 2.txt");
    await expect
      .poll(() => a.locator("[data-testid=file][data-state=done]").getByTestId("file-status").textContent())
      .toBe("Received by Bob, checked · 18 B");
    // Files sit in the timeline by their time, among the messages (not all after them): a message
    // sent now comes below both files, and the earlier messages above them; on both sides.
    await sendText(a, "after the files");
    await incoming(b, "after the files").waitFor();
    const timeline = (p: Page) =>
      p
        .getByTestId("message-list")
        .locator("[data-testid=message-text], [data-testid=file-name]")
        .allTextContents();
    for (const p of [a, b]) {
      await expect
        .poll(async () => (await timeline(p)).slice(-4))
        .toEqual(["before the files", "notes.txt", "notes 2.txt", "after the files"]);
      await expectNoAxeViolations(p, "chat with files in the timeline");
    }
  });

  it("a side that lost its ratchet state gets a new session, visibly, and the chat goes on", async () => {
    // Bob's stored ratchet sessions vanish (e.g. storage re-created); identity and history stay.
    await inLoftDb(b, async ({ db, done }) => {
      const tx = db.transaction("sessions", "readwrite");
      tx.objectStore("sessions").clear();
      await done(tx);
    });
    // One page load, straight onto the chat: the engine may re-bootstrap as soon as the page is up,
    // and any navigation after that (openChat loads Home, then clicks) clears the app notice or
    // reloads the page past it, so the notice would be lost whenever the session came up first.
    await b.goto(`${loft.url}/chat/${aliceId}`);
    await id(b, "chat").waitFor();
    // Both sides say so in plain words instead of failing silently.
    await expect
      .poll(() => id(b, "notice").textContent(), { timeout: 30_000 })
      .toContain("new secure session");
    await expect
      .poll(() => id(a, "notice").textContent(), { timeout: 30_000 })
      .toContain("new secure session");
    await waitForDirect(b);
    await sendText(b, "my device forgot our session");
    await incoming(a, "my device forgot our session").waitFor();
    await waitForState(b, "my device forgot our session", "delivered");
    await sendText(a, "new session works");
    await incoming(b, "new session works").waitFor();
    await waitForState(a, "new session works", "delivered");
  });

  it("a contact that comes back with another identity key is flagged and gets nothing", async () => {
    // Bob goes away; Alice writes while he is gone: the message waits on her device.
    await b.close();
    await expect.poll(() => id(a, "chat-presence").textContent(), { timeout: 45_000 }).toBe("offline");
    await sendText(a, "are you still there?");
    // Bob is offline: the message goes into his relay mailbox (docs/protocol/mailbox.md).
    await waitForState(a, "are you still there?", "relayed");

    // Someone else shows up as "Bob" with a new key, and has Alice's link.
    const mallory = await browser.newContext();
    const m = await mallory.newPage();
    m.on("console", (msg) => logs.push(`new-bob: ${msg.text()}`));
    await createIdentity(m, loft.url, "Bob");
    const linkA = await myLink(a);
    const aliceAtM = await addByLink(m, linkA);
    const newBobLink = await myLink(m);

    // Alice opens the new "Bob" link: same username, different key → warning on the known Bob.
    const byesBefore = await fetchMetric(
      metricsUrl(loft),
      "loft_signaling_envelopes_forwarded_total",
      'kind="bye"',
    );
    await a.goto(newBobLink);
    await expectAddOutcome(a, "username-collision");
    await id(a, "confirm-add").click();
    expect(await id(a, "identity-warning").getAttribute("data-kind")).toBe("username-collision");

    // The new key holds Alice's link but is not her contact: presence is shown only to accepted
    // contacts, so it can't learn that she is online (both are registered) and never dials her.
    await openChatFromHome(m, aliceAtM); // at Home after showing its link
    await expect.poll(() => fetchMetric(metricsUrl(loft), "loft_signaling_registrations", "")).toBe(2);
    await expect.poll(() => id(m, "chat-presence").textContent()).toBe("waiting to be accepted");
    expect(await id(m, "chat-problem").getAttribute("data-kind")).toBe("awaiting-acceptance");
    expect(
      await fetchMetric(metricsUrl(loft), "loft_signaling_envelopes_forwarded_total", 'kind="bye"'),
    ).toBe(byesBefore);
    expect(await m.locator("[data-testid=message][data-direction=in]").count()).toBe(0);
    await mallory.close();

    // Sending to the known Bob is blocked while the change is pending (UI and engine).
    await openChat(a, bobId);
    await id(a, "send-blocked").waitFor();
    expect(await id(a, "composer-input").isDisabled()).toBe(true);

    // The real Bob comes back online: Alice's engine neither dials him nor accepts him, and the
    // message that was already in his mailbox is all he gets.
    const byesBeforeBob = await fetchMetric(
      metricsUrl(loft),
      "loft_signaling_envelopes_forwarded_total",
      'kind="bye"',
    );
    b = await bob.newPage();
    b.on("console", (msg) => logs.push(`bob: ${msg.text()}`));
    await b.goto(loft.url);
    await openChat(b, aliceId);
    await expect
      .poll(() => fetchMetric(metricsUrl(loft), "loft_signaling_envelopes_forwarded_total", 'kind="bye"'), {
        timeout: 30_000,
      })
      .toBeGreaterThan(byesBeforeBob);
    // Written before the warning, it was already in Bob's mailbox: Bob reads it, but his receipt
    // waits on the relay until Alice decides, and nothing new goes to him.
    await incoming(b, "are you still there?").waitFor({ timeout: 30_000 });
    expect(await outgoing(a, "are you still there?").getAttribute("data-state")).toBe("relayed");

    // Alice keeps the old key: Bob is usable again and the waiting message goes out.
    await id(a, "chat-contact").click();
    await id(a, "keep-old-key").click();
    await id(a, "identity-warning").waitFor({ state: "detached" });
    await openChat(a, bobId);
    await incoming(b, "are you still there?").waitFor({ timeout: 30_000 });
    await waitForState(a, "are you still there?", "delivered");
  });
});
