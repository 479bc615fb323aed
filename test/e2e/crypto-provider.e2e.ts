/**
 * The PWA's crypto provider in real Chromium (web/src/crypto.ts; docs/decisions.md, "Identity
 * signatures on the provider"): Settings shows which primitive this browser runs natively, and a
 * pasted contact link is verified with the page's provider (async) — a valid link offers the
 * contact, a link whose identity signature was changed is refused in words, and an edit never
 * leaves the previous link's outcome on screen.
 *
 * `npm run build` first; `node scripts/e2e.mjs test/e2e/crypto-provider.e2e.ts`. Waits are on
 * conditions only.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromBase64url, toBase64url } from "../../core/codec/base64url.ts";
import { PRIMITIVES } from "../../core/crypto/provider.ts";
import { createUserIdentity } from "../../core/identity/identity.ts";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import { byId, createIdentity, offlineLink } from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

/** The link with one bit of its identity's signature flipped (the payload is still well formed). */
function withBadSignature(link: string): string {
  const [origin, fragment] = link.split("#c=") as [string, string];
  const bytes = fromBase64url(fragment);
  if (!bytes.ok) throw bytes.error;
  const payload = bytes.value.slice();
  // the identity's encoding starts {signature: bin 64, …}: "signature" then c4 40 and 64 bytes
  const marker = new TextEncoder().encode("signature");
  let at = -1;
  for (let i = 0; i + marker.length < payload.length && at < 0; i++)
    if (marker.every((b, j) => payload[i + j] === b)) at = i + marker.length;
  if (at < 0 || payload[at] !== 0xc4 || payload[at + 1] !== 0x40) throw new Error("no signature in the link");
  payload[at + 2 + 10]! ^= 0x01;
  return `${origin}#c=${toBase64url(payload)}`;
}

describe("the page's crypto provider", () => {
  let loft: LoftProcess;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    loft = await startLoft();
    browser = await launchChromium();
    page = await (await browser.newContext()).newPage();
    await createIdentity(page, loft.url, "Alice");
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => loft?.stop(),
    ),
  );

  it("Settings shows, per primitive, whether the browser runs it natively", async () => {
    await byId(page, "nav-settings").click();
    const table = byId(page, "crypto-backends");
    await table.waitFor();
    const rows = await table
      .locator("tr")
      .evaluateAll((trs) =>
        trs.map((tr) => [tr.getAttribute("data-primitive"), tr.getAttribute("data-backend")]),
      );
    const backends = Object.fromEntries(rows) as Record<string, string>;
    expect(Object.keys(backends).sort()).toEqual([...PRIMITIVES].sort());
    // Chromium has these natively; no browser has ChaCha20-Poly1305, BLAKE2s or seeded ML-KEM.
    for (const p of ["ed25519", "x25519", "aes256gcm", "sha256", "hkdfSha256"])
      expect(backends[p], p).toBe("webcrypto");
    for (const p of ["chacha20poly1305", "blake2s", "mlkem768"]) expect(backends[p], p).toBe("noble");
    await expect
      .poll(() => table.locator('tr[data-primitive="ed25519"] td').nth(1).textContent())
      .toBe("browser (native)");
  });

  it("a pasted link is verified: valid offers the contact, a changed signature is refused, edits never show a stale outcome", async () => {
    const link = offlineLink(loft.url, createUserIdentity({ username: "Bob", now: Date.now() }));
    const forged = withBadSignature(link);
    await page.goto(loft.url);
    await byId(page, "nav-add-contact").click();
    const input = byId(page, "link-input");

    await input.fill(forged);
    await expect.poll(() => byId(page, "link-error").textContent()).toContain("does not verify");
    expect(await byId(page, "add-outcome").count()).toBe(0);

    await input.fill(link);
    await expect.poll(() => byId(page, "add-outcome").getAttribute("data-outcome")).toBe("new-contact");
    expect(await byId(page, "link-error").count()).toBe(0);
    expect(await byId(page, "confirm-username").textContent()).toBe("Bob");

    // Back to the forged one: the valid link's outcome goes, the refusal comes back.
    await input.fill(forged);
    await expect.poll(() => byId(page, "add-outcome").count()).toBe(0);
    await expect.poll(() => byId(page, "link-error").textContent()).toContain("does not verify");

    await input.fill(link);
    await byId(page, "confirm-add").click();
    await byId(page, "contact-screen").waitFor();
  });
});
