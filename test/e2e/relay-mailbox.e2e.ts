/**
 * Offline delivery through relay mailboxes, in real Chromium through the real server
 * (`npm run build` first; `node scripts/e2e.mjs test/e2e/relay-mailbox.e2e.ts`): Alice and Bob meet
 * once (each side's mailbox for the other travels inside the E2EE session), Bob closes his
 * page, Alice writes 20 messages that reach "sent to relay", Bob opens Loft later and reads all 20
 * in order, each once, and Alice sees them delivered.
 */
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  byId,
  incoming,
  incomingTexts,
  openChat,
  outgoing,
  sendText,
  startChatting,
  waitForMailboxes,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

describe("relay mailboxes between two browsers", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let bob: BrowserContext;
  let a: Page;
  let b: Page;
  let aliceId: string;
  let bobId: string;
  let watch: TwoBrowsers["watch"];

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ loft, bob, a, b, watch } = env);
  });
  afterAll(async () => {
    await env?.close();
  });

  it("contacts that met once hold each other's mailbox", async () => {
    [aliceId, bobId] = await startChatting(a, b, loft.url);
    await sendText(a, "hello Bob");
    await incoming(b, "hello Bob").waitFor();
    await waitForState(a, "hello Bob", "delivered");
    await sendText(b, "hello Alice");
    await incoming(a, "hello Alice").waitFor();
    await waitForState(b, "hello Alice", "delivered");
    await waitForMailboxes(a, aliceId, b, bobId);
  });

  it("20 messages to Bob while his page is closed reach the relay, then Bob reads them all, in order, once", async () => {
    await b.close();
    await waitForPresence(a, "offline");
    const texts = Array.from({ length: 20 }, (_, i) => `away #${String(i + 1).padStart(2, "0")}`);
    for (const t of texts) await sendText(a, t);
    for (const t of texts) await waitForState(a, t, "relayed");
    expect(await byId(a, "message-state").last().textContent()).toBe("sent to relay");

    b = await bob.newPage();
    watch("bob", b);
    await b.goto(loft.url);
    await openChat(b, aliceId);
    await incoming(b, texts[19]!).waitFor({ timeout: 60_000 });
    const got = (await incomingTexts(b)).filter((t) => t.startsWith("away #"));
    expect(got).toEqual(texts);
    for (const t of texts) await waitForState(a, t, "delivered");
    expect(await outgoing(a, texts[0]!).getAttribute("data-state")).toBe("delivered");
  });
});
