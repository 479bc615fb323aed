/**
 * What a person sees of a room, in real Chromium against the real server
 * (`npm run build`, then `node scripts/e2e.mjs test/e2e/rooms-ux.e2e.ts`):
 *
 * - a member chip stays while the room changes (a message comes): the focus on its Safety code
 *   button is kept (ui/Room.tsx draws the chips from a store reconciled by member key);
 * - a member chip says "connecting…" while the member is here and no link to it opened (Dee's page
 *   answers no offer and reaches no relay), and, for a member that closed the link on our
 *   handshake, why in words a person understands — not "closed our link" (ui/format.ts
 *   `refusedWords`): Mal, with the room id but another secret, reads "refused you: your link is
 *   not this room's" on each member;
 * - a Leave the storage refuses (a full disk: loft-ui.ts `failWrites`) says so, gives the focus back
 *   to Leave, and changes nothing: still in the room, after a reload too, and the others were told
 *   nothing (no goodbye: Ann still has Bea connected) — engine/rooms/mesh.ts `leave` stores first;
 * - history the storage refuses (a full disk again) shows the "could not be saved" card on the room
 *   (RoomView.unsaved), which passes axe and goes once a write lands;
 * - Share → Loft to a room with two files, the second refused: trying again offers the second only
 *   (before, the first was offered twice: app/share.ts).
 *
 * axe on each screen changed. Every wait is on a condition, never a duration.
 */
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  allowWrites,
  byId,
  createIdentity,
  createRoom,
  failWrites,
  NO_MEMBER_LINK,
  onlineMembers as online,
} from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;
const T = 60_000;

/** Each member chip's words about its state (connecting, refused), in order. */
const chipWords = (page: Page, state: "connecting" | "refused") =>
  page
    .locator(`[data-testid=room-member][data-state=${state}] [data-testid=room-member-${state}]`)
    .allTextContents();

/** Whether the element has the keyboard focus (run in the page). */
const isFocused = (e: Element) => e === document.activeElement;

describe("rooms: member chips, a refused Leave, Share → room", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let dee: BrowserContext;
  let mal: BrowserContext;
  let a: Page;
  let b: Page;
  let d: Page;
  let m: Page;
  let link = "";
  let roomId = "";

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ loft, a, b } = env);
    dee = await env.browser.newContext();
    await dee.addInitScript(NO_MEMBER_LINK);
    mal = await env.browser.newContext();
    d = await dee.newPage();
    m = await mal.newPage();
    env.watch("dee", d);
    env.watch("mal", m);
    await Promise.all([
      createIdentity(a, loft.url, "Ann"),
      createIdentity(b, loft.url, "Bea"),
      createIdentity(d, loft.url, "Dee"),
      createIdentity(m, loft.url, "Mal"),
    ]);
  }, 180_000);
  afterAll(async () => {
    await env?.close();
  });

  it("Ann makes a room and Bea joins it: each has the other connected", async () => {
    ({ link, roomId } = await createRoom(a, T));
    await b.goto(link);
    await id(b, "room-screen").waitFor({ timeout: T });
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    await expect.poll(() => online(b).count(), { timeout: T }).toBe(1);
  });

  it("a member chip stays while the room changes: the focus on its Safety code button is kept", async () => {
    // Each room change (here a message from Bea) gives the screen a new view of the room; the chips
    // were drawn anew from it, so the focused button was detached and the focus fell to the page
    // (ui/Room.tsx, the members store reconciled by key).
    const open = a.locator("[data-testid=room-member]", { hasText: "Bea" }).getByTestId("room-member-open");
    await open.focus();
    const button = await open.elementHandle();
    if (!button) throw new Error("no Safety code button for Bea on Ann's page");
    expect(await button.evaluate(isFocused)).toBe(true);
    await id(b, "composer-input").fill("a change in the room");
    await id(b, "composer-input").press("Enter");
    await expect
      .poll(() => a.locator("[data-testid=room-message][data-direction=in]").allTextContents(), {
        timeout: T,
      })
      .toContainEqual(expect.stringContaining("a change in the room"));
    await expect
      .poll(() => b.locator("[data-testid=room-message][data-direction=out]").getAttribute("data-state"), {
        timeout: T,
      })
      .toBe("delivered");
    expect(await button.evaluate((e) => e.isConnected)).toBe(true);
    expect(await button.evaluate(isFocused)).toBe(true);
    await button.dispose();
  });

  it("a member here with no link open reads 'connecting…', for as long as none opens", async () => {
    await d.goto(link);
    await id(d, "room-screen").waitFor({ timeout: T });
    const deeChip = (page: Page) => page.locator("[data-testid=room-member]", { hasText: "Dee" });
    // Dee's name comes inside a session (room.hi), which never opens: her chip shows her key.
    await expect.poll(() => chipWords(a, "connecting"), { timeout: T }).toEqual(["connecting…"]);
    await expect.poll(() => chipWords(b, "connecting"), { timeout: T }).toEqual(["connecting…"]);
    await expect
      .poll(() => chipWords(d, "connecting"), { timeout: T })
      .toEqual(["connecting…", "connecting…"]);
    expect(await deeChip(a).count()).toBe(0);
    expect(await online(a).count()).toBe(1);
    await expectNoAxeViolations(a, "room (a member connecting)");
    await d.close();
    await expect.poll(() => chipWords(a, "connecting"), { timeout: T }).toEqual([]);
  });

  it("someone whose link is not the room's reads on each member chip that it refused them, and why", async () => {
    const wrong = link.replace(/&k=([\w-])/, (_, ch: string) => `&k=${ch === "A" ? "B" : "A"}`);
    await m.goto(wrong);
    await id(m, "room-refused-us").waitFor({ timeout: T });
    await expect
      .poll(() => chipWords(m, "refused"), { timeout: T })
      .toEqual(["refused you: your link is not this room's", "refused you: your link is not this room's"]);
    expect(await online(m).count()).toBe(0);
    await expectNoAxeViolations(m, "room (refused by its members)");
    await m.close();
  });

  it("a Leave the storage refuses says so, gives the focus back to Leave, and changes nothing: nobody was told", async () => {
    await failWrites(b, ["secrets"]);
    try {
      await id(b, "leave-room").click();
      await id(b, "confirm-leave-room").click();
      await expect
        .poll(() => id(b, "room-error").textContent(), { timeout: T })
        .toBe(
          "Could not leave the room: this browser has no storage space left for Loft. You are still in the room.",
        );
      await expect.poll(() => id(b, "leave-room").evaluate(isFocused)).toBe(true);
      expect(await id(b, "leave-room").getAttribute("aria-expanded")).toBe("false");
      await expectNoAxeViolations(b, "room (leave refused)");
    } finally {
      await allowWrites(b);
    }
    // Still a member, linked: Ann was sent no goodbye, and Bea still gets what Ann writes.
    expect(await online(b).count()).toBe(1);
    expect(await online(a).count()).toBe(1);
    await id(a, "composer-input").fill("still here?");
    await id(a, "composer-input").press("Enter");
    await expect
      .poll(() => b.locator("[data-testid=room-message][data-direction=in]").allTextContents(), {
        timeout: T,
      })
      .toEqual([expect.stringContaining("still here?")]);
    // And on this device: a reload opens the room again.
    await b.reload();
    await id(b, "room-screen").waitFor({ timeout: T });
    await expect
      .poll(() => id(b, "room-title").textContent(), { timeout: T })
      .toBe(`Room ${roomId.slice(0, 8)}`);
    await expect.poll(() => online(b).count(), { timeout: T }).toBe(1);
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
  });

  it("history the storage refuses shows a warning card on the room, gone once a write lands", async () => {
    // A full disk for Bea's secrets (loft-ui.ts failWrites): the room-log write of Ann's message
    // fails (engine/rooms/mesh.ts `#writeLog`), and the room says so instead of only a log line.
    await failWrites(b, ["secrets"]);
    try {
      await id(a, "composer-input").fill("not kept here");
      await id(a, "composer-input").press("Enter");
      await expect
        .poll(() => id(b, "room-unsaved").textContent(), { timeout: T })
        .toBe(
          "New messages in this room could not be saved on this device: this device has no storage space left. They are not confirmed to their writers and come again once there is space — free some, then reopen Loft.",
        );
      expect(await id(b, "room-unsaved").getAttribute("role")).toBe("alert");
      await expectNoAxeViolations(b, "room (history not saved)");
    } finally {
      await allowWrites(b);
    }
    // Space again: the next write lands and the card goes.
    await id(a, "composer-input").fill("kept again");
    await id(a, "composer-input").press("Enter");
    await expect
      .poll(() => b.locator("[data-testid=room-message][data-direction=in]").allTextContents(), {
        timeout: T,
      })
      .toContainEqual(expect.stringContaining("kept again"));
    await expect.poll(() => id(b, "room-unsaved").count(), { timeout: T }).toBe(0);
  });

  it("Share → Loft to the room: after the second file is refused, trying again offers the second only", async () => {
    // The system's share sheet POSTs two files to /share (manifest share_target; sw/share-target.ts).
    await a.goto(loft.url);
    await id(a, "home").waitFor();
    await a.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: T });
    const status = await a.evaluate(async () => {
      const form = new FormData();
      form.append(
        "files",
        new File([new Uint8Array(2_000).fill(1)], "one.bin", { type: "application/octet-stream" }),
      );
      // An image: its preview is drawn before it is offered (createImageBitmap, held below).
      const png = Uint8Array.from(
        atob(
          "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
        ),
        (c) => c.charCodeAt(0),
      );
      form.append("files", new File([png], "two.png", { type: "image/png" }));
      const res = await fetch("/share", { method: "POST", body: form });
      return { redirected: res.redirected, url: new URL(res.url).pathname };
    });
    expect(status).toEqual({ redirected: true, url: "/share" });
    await a.goto(new URL("/share", loft.url).toString());
    await expect.poll(() => id(a, "shared-file").count(), { timeout: T }).toBe(2);
    // The second file's preview waits for the test: the first is offered meanwhile, then the
    // storage refuses the second (a full disk).
    await a.evaluate(() => {
      const w = window as unknown as { releasePreview: () => void };
      const original = window.createImageBitmap.bind(window);
      let go!: () => void;
      const held = new Promise<void>((resolve) => {
        go = resolve;
      });
      w.releasePreview = go;
      window.createImageBitmap = ((...args: Parameters<typeof createImageBitmap>) =>
        held.then(() => original(...args))) as typeof createImageBitmap;
    });
    // A refusal is said in a live region drawn with the screen, empty: a screen reader announces
    // the words that come into it, not those of a region inserted already filled.
    expect(await id(a, "share-problem-news").getAttribute("role")).toBe("alert");
    expect(await id(a, "share-problem-news").textContent()).toBe("");
    await a.locator(`[data-testid=share-to-room][data-room-id="${roomId}"]`).click();
    const offered = () => b.locator("[data-testid=file] [data-testid=file-name]").allTextContents();
    await expect.poll(offered, { timeout: T }).toEqual(["one.bin"]);
    await failWrites(a, ["transfers"]);
    await a.evaluate(() => (window as unknown as { releasePreview: () => void }).releasePreview());
    await expect
      .poll(() => id(a, "share-problem").textContent(), { timeout: T })
      .toBe("Could not send: this browser has no storage space left for Loft.");
    await allowWrites(a);
    // What is left to share is the second file only; trying again offers it, and only it.
    await expect
      .poll(() => id(a, "shared-file").allTextContents())
      .toEqual([expect.stringMatching(/^two\.png · /)]);
    await expectNoAxeViolations(a, "share (a file refused)");
    await a.locator(`[data-testid=share-to-room][data-room-id="${roomId}"]`).click();
    await id(a, "room-screen").waitFor({ timeout: T });
    await expect.poll(async () => (await offered()).sort(), { timeout: T }).toEqual(["one.bin", "two.png"]);
    expect(await a.evaluate(() => caches.has("loft-share"))).toBe(false);
  });
});
