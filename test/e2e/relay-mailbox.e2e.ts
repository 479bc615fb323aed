/**
 * Offline delivery through relay mailboxes, in real Chromium through the real server
 * (`npm run build` first; `node scripts/e2e.mjs test/e2e/relay-mailbox.e2e.ts`): Alice and Bob meet
 * once (each side's mailbox for the other travels inside the E2EE session), Bob closes his
 * page, Alice writes 20 messages that reach "sent to relay", Bob opens Loft later and reads all 20
 * in order, each once, and Alice sees them delivered. Files while Bob's page is closed: a small one
 * goes into his mailbox in slices (docs/protocol/files.md §9), a large one says it is too large for
 * the mailbox and waits; Bob opens Loft, has the small one at once and is offered the large one
 * live, and both downloads have Alice's SHA-256.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
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

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
/** The file row named `name` (the whole name), optionally in `state`. */
const fileRow = (page: Page, name: string, state?: string) =>
  page
    .locator(`[data-testid=file]${state ? `[data-state=${state}]` : ""}`)
    .filter({ has: page.getByTestId("file-name").getByText(name, { exact: true }) });
async function download(page: Page, name: string): Promise<Uint8Array> {
  const [d] = await Promise.all([
    page.waitForEvent("download"),
    fileRow(page, name, "done").getByTestId("file-download").click(),
  ]);
  return new Uint8Array(readFileSync(await d.path()));
}

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

  it("20 messages and two files to Bob while his page is closed: the messages and the small file through the relay, read in order, once; the large file when he is back", async () => {
    await b.close();
    await waitForPresence(a, "offline");
    const texts = Array.from({ length: 20 }, (_, i) => `away #${String(i + 1).padStart(2, "0")}`);
    for (const t of texts) await sendText(a, t);
    for (const t of texts) await waitForState(a, t, "relayed");
    expect(await byId(a, "message-state").last().textContent()).toBe("sent to relay");
    // Files meanwhile: a small one goes into Bob's mailbox, a large one waits for him.
    const small = new Uint8Array(randomBytes(300_000));
    const large = new Uint8Array(randomBytes(2 * 1024 * 1024));
    await byId(a, "attach-input").setInputFiles({
      name: "small.bin",
      mimeType: "application/octet-stream",
      buffer: Buffer.from(small),
    });
    await fileRow(a, "small.bin", "relayed").waitFor({ timeout: 60_000 });
    await expect
      .poll(() => fileRow(a, "small.bin").getByTestId("file-status").textContent())
      .toBe("In Bob's relay mailbox: Bob gets it when online");
    await byId(a, "attach-input").setInputFiles({
      name: "large.bin",
      mimeType: "application/octet-stream",
      buffer: Buffer.from(large),
    });
    await fileRow(a, "large.bin", "queued").waitFor({ timeout: 60_000 });
    await expect
      .poll(() => fileRow(a, "large.bin").getByTestId("file-status").textContent())
      .toMatch(
        /^Too large for Bob's relay mailbox \(up to 0\.\d MiB at a time\): it will be offered when Bob is online\.$/,
      );

    b = await bob.newPage();
    watch("bob", b);
    await b.goto(loft.url);
    await openChat(b, aliceId);
    await incoming(b, texts[19]!).waitFor({ timeout: 60_000 });
    // All of them, in order, once on screen (the history is read after the chat opens).
    await expect
      .poll(async () => (await incomingTexts(b)).filter((t) => t.startsWith("away #")))
      .toEqual(texts);
    for (const t of texts) await waitForState(a, t, "delivered");
    expect(await outgoing(a, texts[0]!).getAttribute("data-state")).toBe("delivered");
    // The small file came through the mailbox; the large one is offered live now.
    expect(sha(await download(b, "small.bin"))).toBe(sha(small));
    await fileRow(a, "small.bin", "done").waitFor({ timeout: 60_000 });
    await fileRow(b, "large.bin", "offered").getByTestId("file-accept").click({ timeout: 60_000 });
    expect(sha(await download(b, "large.bin"))).toBe(sha(large));
    await fileRow(a, "large.bin", "done").waitFor({ timeout: 60_000 });
  });
});
