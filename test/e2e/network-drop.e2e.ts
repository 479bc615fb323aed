/**
 * A network drop without a reload, in real Chromium through the real server (`npm run build`
 * first; `node scripts/e2e.mjs test/e2e/network-drop.e2e.ts`). Inside the test network namespace
 * (scripts/e2e.mjs) the data channel runs over the test address 198.18.0.1 while pages, signaling
 * and relay use loopback, so removing that address kills exactly the direct path, as switching
 * networks does. The engine must notice by heartbeat (no close event is trusted), keep the chat
 * going through the relay, and come back to a direct channel once the address returns — with
 * every message delivered exactly once.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import {
  byId,
  incomingTexts,
  introduce,
  openChatFromHome,
  openChatHere,
  sendText,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";

const TEST_ADDR = process.env.LOFT_TEST_ADDR ?? "198.18.0.1";
const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });

describe("a network drop without a reload", () => {
  let loft: LoftProcess;
  let dataDir: string;
  let browser: Browser;
  let a: Page;
  let b: Page;

  beforeAll(async () => {
    if (!process.env.LOFT_NETNS)
      throw new Error("run through scripts/e2e.mjs (it creates the network namespace)");
    dataDir = mkdtempSync(join(tmpdir(), "loft-e2e-drop-"));
    loft = await startLoft({ args: ["--relay-data-dir", dataDir] });
    browser = await launchChromium();
    a = await (await browser.newContext()).newPage();
    b = await (await browser.newContext()).newPage();
  });
  afterAll(async () => {
    // Leave the namespace as the next test file expects it.
    try {
      ip("addr", "add", `${TEST_ADDR}/24`, "dev", "loft0");
    } catch {}
    try {
      ip("route", "replace", "default", "dev", "loft0");
    } catch {}
    await browser?.close();
    await loft?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("notices the dead channel, keeps delivering through the relay, and goes direct again", {
    timeout: 360_000,
  }, async () => {
    const [aliceId] = await introduce(a, b, loft.url);
    // By clicks: a reload now would end the first connection while it opens (loft-ui.ts `startChatting`).
    await openChatHere(a);
    await openChatFromHome(b, aliceId);
    await waitForPresence(a, "online · direct");
    await sendText(a, "before the drop");
    await waitForState(a, "before the drop", "delivered");

    // The direct path disappears; nothing tells the pages (no close event, no reload).
    ip("addr", "del", `${TEST_ADDR}/24`, "dev", "loft0");
    await expect
      .poll(() => byId(a, "chat-presence").textContent(), { timeout: 60_000 })
      .not.toBe("online · direct");

    await sendText(a, "during the drop");
    await waitForState(a, "during the drop", "delivered", 90_000);

    // The address comes back: the engine finds the direct path again by itself.
    ip("addr", "add", `${TEST_ADDR}/24`, "dev", "loft0");
    ip("route", "replace", "default", "dev", "loft0");
    await waitForPresence(a, "online · direct", 120_000);
    await sendText(a, "after the drop");
    await waitForState(a, "after the drop", "delivered", 60_000);

    await b.locator("[data-testid=message-text]", { hasText: "after the drop" }).waitFor();
    const texts = await incomingTexts(b);
    for (const t of ["before the drop", "during the drop", "after the drop"])
      expect(texts.filter((x) => x === t)).toHaveLength(1);
  });
});
