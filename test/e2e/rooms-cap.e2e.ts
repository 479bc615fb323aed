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
import { byId, createIdentity } from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;
const T = 60_000;

/** As in rooms-ux.e2e.ts: a page whose member links never open (no WebRTC answer, no relay). */
const NO_MEMBER_LINK = `(() => {
  const proto = window.RTCPeerConnection && window.RTCPeerConnection.prototype;
  if (proto) proto.setRemoteDescription = () => new Promise(() => {});
  const Ws = window.WebSocket;
  window.WebSocket = new Proxy(Ws, {
    construct(target, [url, protocols]) {
      const u = String(url);
      return new target(/\\/relay$/.test(new URL(u, location.href).pathname) ? "ws://127.0.0.1:9/" : u, protocols);
    },
  });
})();`;

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
    await id(a, "nav-new-room").click();
    await id(a, "room-link-qr").waitFor({ timeout: T });
    const link = await id(a, "room-link").inputValue();
    await id(a, "open-room").click();
    await id(a, "room-screen").waitFor();
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
