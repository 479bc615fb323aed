/**
 * The default member cap of a room (8, the joiner included: web/src/engine/rooms/mesh.ts
 * `DEFAULT_ROOM_MEMBER_CAP`, docs/protocol/rooms.md §3) in real Chromium against the real server
 * (`npm run build`, then `node scripts/e2e.mjs test/e2e/rooms-cap.e2e.ts`): with eight present, a
 * ninth who opens the link is told the room is full, in words (ui/Room.tsx), and the eight are not
 * disturbed. The joiners' member links are kept from opening (they answer no offer and reach no
 * relay): the cap is about who is present at the rendezvous, and nine pages linking in a full mesh
 * would only load the machine. axe on the refused screen. Every wait is on a condition.
 */
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import { byId, createIdentity, createRoom, NO_MEMBER_LINK } from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;
const T = 60_000;

const NAMES = ["Cat", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy"];

describe("rooms: the default cap of 8 members", () => {
  let env: TwoBrowsers;
  let a: Page;
  let b: Page;
  const contexts: BrowserContext[] = [];
  const pages: Page[] = [];

  beforeAll(async () => {
    env = await startTwoBrowsers({ initScript: NO_MEMBER_LINK });
    ({ a, b } = env);
    for (const name of NAMES) {
      const context = await env.browser.newContext();
      await context.addInitScript(NO_MEMBER_LINK);
      contexts.push(context);
      const page = await context.newPage();
      env.watch(name.toLowerCase(), page);
      pages.push(page);
    }
    await Promise.all([
      createIdentity(a, env.loft.url, "Ann"),
      createIdentity(b, env.loft.url, "Bea"),
      ...pages.map((p, i) => createIdentity(p, env.loft.url, NAMES[i]!)),
    ]);
  }, 240_000);
  afterAll(async () => {
    await env?.close();
  });

  it("eight are in; the ninth is told the room is full, and the eight stay", async () => {
    const { link } = await createRoom(a, T);
    const members = (p: Page) => p.locator("[data-testid=room-member]").count();
    // Ann and seven more: Bea, Cat … Hal, one at a time, each seen present by Ann.
    const seven = [b, ...pages.slice(0, 6)];
    for (const [n, p] of seven.entries()) {
      await p.goto(link);
      await id(p, "room-screen").waitFor({ timeout: T });
      await expect.poll(() => members(a), { timeout: T }).toBe(n + 1);
      expect(await id(p, "room-full").count()).toBe(0);
    }
    // Ivy is the ninth.
    const ivy = pages[6]!;
    await ivy.goto(link);
    await expect
      .poll(() => id(ivy, "room-full").textContent(), { timeout: T })
      .toBe("This room is full: it has as many members as a room can have. Try again when someone leaves.");
    expect(await id(ivy, "room-status").textContent()).toBe("Room is full");
    expect(await members(ivy)).toBe(0);
    await expectNoAxeViolations(ivy, "room (full)");
    // The eight are as they were: Ann, the host, still has seven others.
    expect(await members(a)).toBe(7);
    expect(await id(a, "room-status").textContent()).toBe("7 other members here");
  });
});
