/**
 * test/support/teardown.ts: the end of a browser test file runs every step, in order, whatever
 * the one before did — a close that throws, or one that never ends, no longer leaves the real
 * server running (the old `await browser?.close(); await loft?.stop();` did) — and the file
 * still fails with what went wrong.
 */
import type { Browser } from "playwright-core";
import { describe, expect, it } from "vitest";
import { processExists } from "../../host/process-alive.ts";
import { startLoft } from "../support/loft-process.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

/** A browser whose close never settles: a Chromium that hangs on Browser.close. */
const hangingBrowser = { close: () => new Promise<void>(() => undefined) } as unknown as Browser;

describe("tearDown", () => {
  it("stops the server after a close that threw, and throws that failure", async () => {
    const loft = await startLoft({ entry: "signaling/main.ts" });
    const pid = loft.child.pid!;
    const order: string[] = [];
    const ended = tearDown(
      () => {
        order.push("browser");
        throw new Error("Target closed");
      },
      undefined, // a part the file never started
      async () => {
        order.push("server");
        expect(await loft.stop()).toBe(0);
      },
    );
    await expect(ended).rejects.toThrow("Target closed");
    expect(order).toEqual(["browser", "server"]);
    expect(processExists(pid)).toBe(false);
  });

  it("a Chromium that does not close is given up on after its bound; the steps after it run", async () => {
    const loft = await startLoft({ entry: "signaling/main.ts" });
    const pid = loft.child.pid!;
    const ended = tearDown(
      () => closeBrowser(hangingBrowser, 200),
      () => loft.stop(),
    );
    await expect(ended).rejects.toThrow("Chromium did not close within 200 ms");
    expect(processExists(pid)).toBe(false);
  });

  it("every failure is told, in one error", async () => {
    const ended = tearDown(
      () => Promise.reject(new Error("first")),
      () => undefined,
      () => Promise.reject(new Error("second")),
    );
    await expect(ended).rejects.toThrow(/2 steps of the teardown failed: Error: first; Error: second/);
    await expect(tearDown(undefined, () => undefined)).resolves.toBeUndefined();
    await expect(closeBrowser(undefined)).resolves.toBeUndefined();
  });
});
