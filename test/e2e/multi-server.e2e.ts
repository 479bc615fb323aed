/**
 * Several signaling servers and relays in real Chromium (`node scripts/e2e.mjs
 * test/e2e/multi-server.e2e.ts`; docs/protocol/signaling.md, "Several servers"; docs/protocol/
 * mailbox.md §1, "Several relays"). Two Loft processes, A (which serves the app) and B; Alice and
 * Bob list B first and A second for both signaling and relays (Settings, checked with axe), so
 * they register on B and keep their mailboxes there. B is then killed mid-test:
 * - signaling fails over: Bob reopens the app and both meet again through A, chatting directly;
 * - Bob's mailbox relay is gone: Alice's message to Bob, away, says in plain words that the relay
 *   can't be reached and waits; when Bob comes back it goes to him once, and is delivered.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import { launchChromium } from "../support/browser.ts";
import { freePort } from "../support/free-port.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import {
  byId,
  incoming,
  incomingTexts,
  introduce,
  openChat,
  sendText,
  waitForMailboxes,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const ws = (loft: LoftProcess) => loft.url.replace(/^http/, "ws");

describe("several signaling servers and relays, one of them killed", () => {
  let dir: string;
  let loftA: LoftProcess;
  let loftB: LoftProcess;
  let browser: Browser;
  let alice: BrowserContext;
  let bob: BrowserContext;
  let a: Page;
  let b: Page;
  const logs: string[] = [];
  const watch = (name: string, page: Page) => page.on("console", (m) => logs.push(`${name}: ${m.text()}`));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "loft-e2e-multi-"));
    // Both processes and the browser start at once; B lets the app served by A connect
    // (--allowed-origins, docs/operations.md "Scaling out"), so A's port is chosen first.
    const portA = await freePort();
    [loftA, loftB, browser] = await Promise.all([
      startLoft({ port: portA, args: ["--relay-data-dir", join(dir, "a"), "--relay-conn-rate", "0"] }),
      startLoft({
        args: ["--relay-data-dir", join(dir, "b"), "--relay-conn-rate", "0"].concat([
          "--allowed-origins",
          `http://127.0.0.1:${portA}`,
        ]),
      }),
      launchChromium(),
    ]);
    alice = await browser.newContext();
    bob = await browser.newContext();
    a = await alice.newPage();
    b = await bob.newPage();
    watch("alice", a);
    watch("bob", b);
  });
  afterAll(() => {
    if (process.env.LOFT_E2E_LOGS) console.log(logs.join("\n"));
    return tearDown(
      () => closeBrowser(browser),
      () => loftA?.stop(),
      () => loftB?.stop(),
      () => rmSync(dir, { recursive: true, force: true }),
    );
  });

  /** Settings: B's servers first, then A's (one per line), saved; then a new start of the app. */
  const useBothServers = async (page: Page) => {
    await byId(page, "nav-settings").click();
    await byId(page, "signaling-url").fill(`${ws(loftB)}/signal\n${ws(loftA)}/signal`);
    await byId(page, "relay-urls").fill(`${ws(loftB)}/relay\n${ws(loftA)}/relay`);
    await byId(page, "save-endpoints").click();
    await expect.poll(() => byId(page, "endpoints-result").textContent()).toContain("Saved");
    if (page === a) await expectNoAxeViolations(page, "Settings (several servers)");
    await page.goto(loftA.url);
    await byId(page, "home").waitFor();
  };

  it("registers on the first server, fails over to the second when it dies, and says when a mailbox relay is down", async () => {
    const [aliceId, bobId] = await introduce(a, b, loftA.url, ["Alice", "Bob"], useBothServers);
    // The servers saved are the ones the page shows again.
    await a.goto(loftA.url);
    await byId(a, "nav-settings").click();
    expect(await byId(a, "signaling-url").inputValue()).toBe(`${ws(loftB)}/signal\n${ws(loftA)}/signal`);
    await openChat(a, bobId);
    await openChat(b, aliceId);
    await waitForPresence(a, /^online/);
    await sendText(b, "through B");
    await incoming(a, "through B").waitFor();
    await waitForMailboxes(a, aliceId, b, bobId);

    // B dies: its signaling and its relay (where both mailboxes are) with it.
    expect(await loftB.stop("SIGKILL")).toBe(null);
    await b.reload();
    await byId(b, "chat").waitFor();
    await waitForPresence(a, /^online/);
    await sendText(b, "through A");
    await incoming(a, "through A").waitFor();
    await waitForState(b, "through A", "delivered");

    // Bob goes away (leaving the page closes his links at once); Alice's message has only his
    // mailbox, on the dead relay.
    await b.goto("about:blank");
    await waitForPresence(a, "offline");
    await sendText(a, "while B is down");
    await expect
      .poll(() => byId(a, "chat-problem").textContent(), { timeout: 30_000 })
      .toContain("the relay can't be reached");
    expect(await byId(a, "chat-problem").getAttribute("data-kind")).toBe("relay-unreachable");
    await waitForState(a, "while B is down", "queued");

    // Bob comes back (signaling through A): the waiting message reaches him once, live.
    await b.goto(loftA.url);
    await openChat(b, aliceId);
    await incoming(b, "while B is down").waitFor({ timeout: 30_000 });
    await waitForState(a, "while B is down", "delivered");
    expect((await incomingTexts(b)).filter((t) => t === "while B is down")).toHaveLength(1);
  });
});
