import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

describe("npm start serves the PWA shell and health", () => {
  let loft: LoftProcess;
  let browser: Browser;
  beforeAll(async () => {
    loft = await startLoft();
    browser = await launchChromium();
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
    ),
  );

  it("answers GET /health with status ok", async () => {
    const res = await fetch(`${loft.url}/health`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe("ok");
  });

  it("renders the app in Chromium from a secure (loopback) origin", async () => {
    const page = await browser.newPage();
    await page.goto(loft.url);
    expect(await page.locator("h1").textContent()).toBe("Loft");
    expect(await page.evaluate(() => window.isSecureContext)).toBe(true);
  });
});
