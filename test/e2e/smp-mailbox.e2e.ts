/**
 * A mailbox on an SMP server, in real Chromium through the real server (docs/protocol/mailbox.md
 * §1, "Mailboxes on SMP servers"; issue #14; `node scripts/e2e.mjs test/e2e/smp-mailbox.e2e.ts`):
 * one `npm start` process runs the relay, its SMP listener and its bridge. Bob enters the
 * listener's `smp://` address as his mailbox server in Settings (a wrong address is refused with
 * a reason; axe on the screen), meets Alice, and closes his page. Alice's messages — one of them
 * long enough to take several SMP bodies — go into his SMP queue through her relay's bridge
 * ("sent to relay"); Bob opens Loft again and reads them, in order, each once, over his own bridged
 * SMP session, and Alice sees them delivered.
 */
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loggedSmpAddress } from "../smp/logged-address.ts";
import { expectNoAxeViolations } from "../support/axe.ts";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  addByLink,
  byId,
  createIdentity,
  incoming,
  incomingTexts,
  myLink,
  openChat,
  sendText,
  waitForMailboxes,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";
import { fetchMetric } from "../support/metrics.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;

/** WebSocket URLs a page opened, so the test can tell the bridge carried its mailbox. */
function socketsOf(page: Page): string[] {
  const urls: string[] = [];
  page.on("websocket", (ws) => urls.push(new URL(ws.url()).pathname));
  return urls;
}

describe("a mailbox on an SMP server, through the relay's bridge", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let bob: BrowserContext;
  let a: Page;
  let b: Page;
  let aliceId: string;
  let bobId: string;
  let smpAddress: string;
  let aliceSockets: string[];
  let bobSockets: string[];

  beforeAll(async () => {
    env = await startTwoBrowsers({
      loftArgs: [
        "--smp-port",
        "0",
        "--smp-host",
        "127.0.0.1",
        "--smp-address-host",
        "localhost",
        // The listener is on loopback, which the bridge refuses unless told (docs/operations.md).
        "--smp-bridge-private",
        "true",
      ],
    });
    ({ loft, bob, a, b } = env);
    smpAddress = await loggedSmpAddress(loft);
    aliceSockets = socketsOf(a);
    bobSockets = socketsOf(b);
  });
  afterAll(async () => {
    await env?.close();
  });

  it("Settings takes an smp:// server as the mailbox server, refuses anything else, and passes axe", async () => {
    await createIdentity(a, loft.url, "Alice");
    await createIdentity(b, loft.url, "Bob");
    await b.goto(loft.url);
    await id(b, "nav-settings").click();
    await id(b, "mailbox-server").waitFor();
    await id(b, "mailbox-server").fill("https://not-an-smp-server.example");
    await id(b, "save-endpoints").click();
    await expect
      .poll(() => id(b, "endpoints-result").textContent())
      .toBe(
        "The mailbox server must be an SMP server address: smp://fingerprint@host:port (a password goes after the fingerprint: smp://fingerprint:password@host).",
      );
    await id(b, "mailbox-server").fill(smpAddress);
    await id(b, "save-endpoints").click();
    await expect
      .poll(() => id(b, "endpoints-result").textContent())
      .toBe("Saved. They are used from the next start of the app.");
    await expectNoAxeViolations(b, "Settings with a mailbox server");
    await b.reload(); // a new start of the app, still on Settings
    expect(await id(b, "mailbox-server").inputValue()).toBe(smpAddress);
    await id(b, "back").click();
  });

  it("contacts that met once hold each other's mailbox; Bob's is his SMP queue, reached through the bridge", async () => {
    aliceId = await addByLink(b, await myLink(a));
    bobId = await addByLink(a, await myLink(b));
    await openChat(a, bobId);
    await openChat(b, aliceId);
    await waitForPresence(a, /^online/);
    await sendText(a, "hello Bob");
    await incoming(b, "hello Bob").waitFor();
    await waitForState(a, "hello Bob", "delivered");
    await sendText(b, "hello Alice");
    await incoming(a, "hello Alice").waitFor();
    await waitForState(b, "hello Alice", "delivered");
    await waitForMailboxes(a, aliceId, b, bobId);
    // Bob's page created and reads his queue through the bridge; Alice's never needed it yet.
    expect(bobSockets).toContain("/smp-bridge");
    expect(aliceSockets).not.toContain("/smp-bridge");
    expect(await fetchMetric(loft.metricsUrl!, "loft_smp_bridge_open")).toBeGreaterThanOrEqual(1);
  });

  it("messages to Bob while his page is closed go into his SMP queue; he reads them all, in order, once", async () => {
    await b.close();
    await waitForPresence(a, "offline");
    // Over 16 086 bytes once encrypted: several SMP bodies (docs/protocol/mailbox.md §2).
    const long = `long ${"0123456789".repeat(1000)}`;
    const texts = ["away #1", long, "away #3"];
    for (const t of texts) await sendText(a, t);
    // A long text is folded: "Read more" shows all of it, as a person would open it.
    await id(a, "read-more").click();
    for (const t of texts) await waitForState(a, t, "relayed");
    // Alice deposited through her relay's bridge into the SMP server (Bob's queue).
    expect(aliceSockets).toContain("/smp-bridge");

    b = await bob.newPage();
    env.watch("bob", b);
    await b.goto(loft.url);
    await openChat(b, aliceId);
    await incoming(b, "away #3").waitFor({ timeout: 60_000 });
    await id(b, "read-more").click();
    // The whole long text once it is unfolded (read on screen, which may lag the click).
    await expect
      .poll(async () =>
        (await incomingTexts(b)).filter((t) => t.startsWith("away #") || t.startsWith("long ")),
      )
      .toEqual(texts);
    for (const t of texts) await waitForState(a, t, "delivered");
  });
});
