/**
 * File transfer between two real Chromium contexts through the real server (`npm run build`
 * first; `node scripts/e2e.mjs test/e2e/files.e2e.ts`; docs/protocol/files.md), driven through
 * the chat screen: a few MiB attached with the button go both ways, the receiver accepts, the
 * transfer reaches "done" on both sides and the downloaded file has the sender's SHA-256; an offer
 * declined by the receiver and one cancelled by the sender end on both sides; a pasted image is
 * shown inline on the receiving side (CSP `img-src blob:`); the screen has no axe violations with
 * transfers on it. Mid-transfer cancel and resume after a cut link are in
 * web/src/engine/files/transfers.test.ts (loopback moves MiBs faster than a page can click).
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import { byId, startChatting } from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** The file row named `name` on `page`, optionally in state `state`. */
const row = (page: Page, name: string, state?: string) =>
  page.locator(`[data-testid=file]${state ? `[data-state=${state}]` : ""}`, {
    has: page.locator("[data-testid=file-name]", { hasText: name }),
  });

async function attach(page: Page, name: string, bytes: Uint8Array, mimeType = "application/octet-stream") {
  await byId(page, "attach-input").setInputFiles({ name, mimeType, buffer: Buffer.from(bytes) });
}

/** Download a received file through its Download button; its bytes. */
async function download(page: Page, name: string): Promise<Uint8Array> {
  const [d] = await Promise.all([
    page.waitForEvent("download"),
    row(page, name, "done").getByTestId("file-download").click(),
  ]);
  expect(d.suggestedFilename()).toBe(name);
  const path = await d.path();
  return new Uint8Array(readFileSync(path));
}

describe("files between two browsers", () => {
  let env: TwoBrowsers;
  let a: Page;
  let b: Page;

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ a, b } = env);
  });
  afterAll(async () => {
    await env?.close();
  });

  it("sends a few MiB both ways; the downloaded copy has the sender's hash", {
    timeout: 180_000,
  }, async () => {
    await startChatting(a, b, env.loft.url);
    const toBob = new Uint8Array(randomBytes(3 * 1024 * 1024 + 4321));
    await attach(a, "holiday.bin", toBob);
    await row(a, "holiday.bin", "offered").waitFor({ timeout: 30_000 });
    await row(b, "holiday.bin", "offered").getByTestId("file-accept").click();
    await row(b, "holiday.bin", "done").waitFor({ timeout: 60_000 });
    await row(a, "holiday.bin", "done").waitFor({ timeout: 30_000 });
    expect(sha(await download(b, "holiday.bin"))).toBe(sha(toBob));
    await expect
      .poll(() => row(b, "holiday.bin").getByTestId("file-status").textContent())
      .toMatch(/checked/);

    const toAlice = new Uint8Array(randomBytes(2 * 1024 * 1024));
    await attach(b, "notes.bin", toAlice);
    await row(a, "notes.bin", "offered").getByTestId("file-accept").click();
    await row(a, "notes.bin", "done").waitFor({ timeout: 60_000 });
    await row(b, "notes.bin", "done").waitFor({ timeout: 30_000 });
    expect(sha(await download(a, "notes.bin"))).toBe(sha(toAlice));
  });

  it("a declined offer and a cancelled one end on both sides", { timeout: 120_000 }, async () => {
    await attach(a, "unwanted.bin", new Uint8Array(randomBytes(1000)));
    await row(b, "unwanted.bin", "offered").getByTestId("file-decline").click();
    await row(a, "unwanted.bin", "declined").waitFor({ timeout: 30_000 });
    await row(b, "unwanted.bin", "declined").waitFor();

    await attach(a, "oops.bin", new Uint8Array(randomBytes(1000)));
    await row(b, "oops.bin", "offered").waitFor({ timeout: 30_000 });
    await row(a, "oops.bin", "offered").getByTestId("file-cancel").click();
    await row(b, "oops.bin", "cancelled").waitFor({ timeout: 30_000 });
    await expect.poll(() => row(b, "oops.bin").getByTestId("file-status").textContent()).toMatch(/cancelled/);
    await row(a, "oops.bin", "cancelled").waitFor();
  });

  it("a pasted image is offered and shown inline once received", { timeout: 120_000 }, async () => {
    // A 2×2 PNG, pasted as the clipboard's file (what a screenshot paste gives the page).
    const png =
      "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAEUlEQVR4nGP4z8DwH4QZYAwAR8oH+WdZbrcAAAAASUVORK5CYII=";
    await a.evaluate((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], "", { type: "image/png" }));
      window.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt }));
    }, png);
    const offered = b.locator("[data-testid=file][data-state=offered]", { hasText: "pasted-" });
    await offered.getByTestId("file-accept").click();
    const preview = b.locator("[data-testid=file][data-state=done] [data-testid=file-preview]");
    await preview.waitFor({ timeout: 30_000 });
    // The image decoded (a blob: URL the CSP allows), not a broken icon.
    await expect.poll(() => preview.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(2);
    await expectNoAxeViolations(b, "chat with files");
  });
});
