/**
 * The server dies mid-burst (`npm run build` first; `node scripts/e2e.mjs test/e2e/relay-fault.e2e.ts`):
 * Alice writes to Bob, whose page is closed; the server process (PWA + signaling + relay) is killed
 * with SIGKILL in the middle of her burst and started again on the same port and relay data
 * directory. Every message Alice saw "sent to relay" (the relay acknowledged it) reaches Bob, the
 * ones written during the outage follow once the relay is back, none shows twice, and Alice sees
 * them all delivered; while the relay is gone the chat header says so in plain words. Afterwards the relay's store files and both server processes' logs hold no
 * plaintext marker and no IP address (raw bytes searched).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import {
  byId,
  incoming,
  incomingTexts,
  openChat,
  sendText,
  startChatting,
  waitForMailboxes,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const MARKER = "PLAINTEXT-MARKER-c0ffee";

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe("relay mailbox across a server crash", () => {
  let loft: LoftProcess;
  let dataDir: string;
  let browser: Browser;
  let alice: BrowserContext;
  let bob: BrowserContext;
  let a: Page;
  let b: Page;
  let aliceId: string;
  let bobId: string;
  const logs: string[] = [];
  const serverLogs: string[] = [];
  const watch = (name: string, page: Page) =>
    page.on("console", (m) => logs.push(`${(performance.now() / 1000).toFixed(2)} ${name}: ${m.text()}`));
  const start = (port = 0) =>
    startLoft({ port, args: ["--relay-data-dir", dataDir, "--relay-conn-rate", "0"] });

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "loft-e2e-fault-"));
    loft = await start();
    browser = await launchChromium();
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
      () => loft?.stop(),
      () => rmSync(dataDir, { recursive: true, force: true }),
    );
  });

  it("acknowledged messages survive a SIGKILL of the server; none is lost or doubled", async () => {
    [aliceId, bobId] = await startChatting(a, b, loft.url);
    await sendText(b, "hi Alice");
    await incoming(a, "hi Alice").waitFor();
    await waitForState(b, "hi Alice", "delivered");
    await waitForMailboxes(a, aliceId, b, bobId);

    await b.close();
    await waitForPresence(a, "offline");
    const texts = Array.from({ length: 20 }, (_, i) => `${MARKER} #${String(i + 1).padStart(2, "0")}`);
    for (const t of texts.slice(0, 10)) await sendText(a, t);
    await waitForState(a, texts[2]!, "relayed");
    // SIGKILL in the middle of the burst: some messages are on the relay, some on the way.
    expect(await loft.stop("SIGKILL")).toBe(null);
    serverLogs.push(loft.output());
    const relayedBeforeKill = await a
      .locator("[data-testid=message][data-direction=out][data-state=relayed] [data-testid=message-text]")
      .allTextContents();
    expect(relayedBeforeKill.length).toBeGreaterThanOrEqual(3);
    for (const t of texts.slice(10)) await sendText(a, t);
    // The chat header says why, in plain words, while the relay is gone.
    await expect
      .poll(() => byId(a, "chat-problem").textContent(), { timeout: 30_000 })
      .toContain("the relay can't be reached");
    expect(await byId(a, "chat-problem").getAttribute("data-kind")).toBe("relay-unreachable");

    loft = await start(loft.port);
    for (const t of texts) await waitForState(a, t, "relayed", 90_000);

    b = await bob.newPage();
    watch("bob", b);
    await b.goto(loft.url);
    await openChat(b, aliceId);
    await incoming(b, texts[19]!).waitFor({ timeout: 60_000 });
    // All of them, in order, once on screen (the history is read after the chat opens).
    const got = async () => (await incomingTexts(b)).filter((t) => t.startsWith(MARKER));
    await expect.poll(got).toEqual(texts);
    for (const t of relayedBeforeKill) expect(await got()).toContain(t);
    for (const t of texts) await waitForState(a, t, "delivered");

    await browser.close();
    expect(await loft.stop("SIGTERM")).toBe(0);
    serverLogs.push(loft.output());

    const needles = [MARKER, "127.0.0.1", "198.18.0.1", "::ffff:"].map((s) => Buffer.from(s));
    const files = filesUnder(dataDir);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const n of needles) expect(bytes.includes(n), `${n} found in ${f}`).toBe(false);
    }
    const allLogs = serverLogs.join("\n");
    expect(allLogs).toContain("listening");
    for (const n of needles) expect(Buffer.from(allLogs).includes(n), `${n} found in the logs`).toBe(false);
    expect(/\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/.test(allLogs)).toBe(false);
  });
});
