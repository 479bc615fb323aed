/**
 * Offline first contact, in real Chromium through the real server (`npm run build` first;
 * `node scripts/e2e.mjs test/e2e/relay-first-contact.e2e.ts`): Bob has been online once (his
 * contact link carries his contact address; his signed prekeys are at the relay) and closed his
 * page. Alice, who has never been online at the same time as Bob, opens his link and writes; her
 * message reaches "sent to relay". Bob opens Loft later, sees a contact request from Alice,
 * accepts, reads her message and replies; Alice reads the reply and sees her message delivered.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nobleCrypto } from "../../core/crypto/noble.ts";
import { parseContactLinkUrl } from "../../core/identity/contact-link.ts";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import {
  addByLink,
  byId,
  createIdentity,
  incoming,
  myLink,
  openChat,
  sendText,
  waitForState,
} from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

describe("first contact through the relay while the other side is offline", () => {
  let loft: LoftProcess;
  let dataDir: string;
  let browser: Browser;
  let alice: BrowserContext;
  let bob: BrowserContext;
  let a: Page;
  let b: Page;
  const logs: string[] = [];
  const watch = (name: string, page: Page) =>
    page.on("console", (m) => logs.push(`${(performance.now() / 1000).toFixed(2)} ${name}: ${m.text()}`));

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "loft-e2e-first-"));
    loft = await startLoft({ args: ["--relay-data-dir", dataDir] });
    browser = await launchChromium();
    alice = await browser.newContext();
    bob = await browser.newContext();
    b = await bob.newPage();
    watch("bob", b);
  });
  afterAll(() => {
    if (process.env.LOFT_E2E_LOGS) console.log(logs.join("\n"));
    return tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
      () => rmSync(dataDir, { recursive: true, force: true }),
    );
  });

  it("Alice writes to offline Bob from his link; Bob accepts later, reads and replies", async () => {
    // Bob: online once, long enough to publish his contact address; then gone.
    await createIdentity(b, loft.url, "Bob");
    const bobLink = await myLink(b, true);
    const parsed = await parseContactLinkUrl(nobleCrypto, bobLink);
    expect(parsed.ok && parsed.value.refs?.addr).toBeTruthy();
    await b.close();

    // Alice has never been online with Bob.
    a = await alice.newPage();
    watch("alice", a);
    await createIdentity(a, loft.url, "Alice");
    const bobId = await addByLink(a, bobLink);
    await openChat(a, bobId);
    await sendText(a, "hi Bob, I got your link");
    await waitForState(a, "hi Bob, I got your link", "relayed");

    // Bob comes back: a contact request, nothing sent back before he accepts.
    b = await bob.newPage();
    watch("bob", b);
    await b.goto(loft.url);
    const request = b.locator("[data-testid=request-item][data-username=Alice]");
    await request.waitFor({ timeout: 60_000 });
    expect(await a.locator("[data-testid=message][data-direction=out]").getAttribute("data-state")).toBe(
      "relayed",
    );
    await request.getByTestId("accept-request").click();
    await byId(b, "chat").waitFor();
    await incoming(b, "hi Bob, I got your link").waitFor({ timeout: 30_000 });
    await sendText(b, "hi Alice, nice to meet you");

    await incoming(a, "hi Alice, nice to meet you").waitFor({ timeout: 60_000 });
    await waitForState(a, "hi Bob, I got your link", "delivered");
    await waitForState(b, "hi Alice, nice to meet you", "delivered");
    // From now on they are ordinary contacts: a second round goes through as usual.
    await sendText(a, "talk soon");
    await incoming(b, "talk soon").waitFor({ timeout: 60_000 });
    await waitForState(a, "talk soon", "delivered");
  });
});
