/**
 * A room link opened in a page that has a 1:1 chat open (docs/protocol/rooms.md §3): the page
 * navigates to the link (`page.goto`, a full load), joins, and sees the room's members — here the
 * contact it was chatting with, who made the room. Then the host goes away: the room says "host
 * away", and a message to it shows where its copy is (sent to relay; delivered once the host
 * reads it: web/src/engine/rooms/relay-path.test.ts). The invite's copy button puts the link on the clipboard. axe on the room.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import type { LoftProcess } from "../support/loft-process.ts";
import { byId, startChatting } from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const T = 60_000;

describe("a room link opened from an open 1:1 chat", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;

  beforeAll(async () => {
    env = await startTwoBrowsers();
    loft = env.loft;
    for (const p of [env.a, env.b]) p.on("dialog", (d) => void d.accept());
  }, 120_000);
  afterAll(async () => {
    await env?.close();
  });

  it("Bob, chatting with Alice, opens Alice's room link and sees Alice in the room", async () => {
    const { a, b } = env;
    await startChatting(a, b, loft.url);
    await a.goto(new URL(a.url()).origin);
    await byId(a, "nav-new-room").click();
    await byId(a, "room-link-qr").waitFor({ timeout: T });
    const link = await byId(a, "room-link").inputValue();
    await byId(a, "open-room").click();
    await byId(a, "room-screen").waitFor();
    await byId(b, "chat").waitFor();
    await b.goto(link);
    await byId(b, "room-screen").waitFor({ timeout: T });
    const online = (p: typeof a) => p.locator("[data-testid=room-member][data-state=online]");
    await expect.poll(() => online(b).count(), { timeout: T }).toBe(1);
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    await expect.poll(() => byId(b, "room-host-away").count(), { timeout: T }).toBe(0);
    // The host's absence is said in a live region drawn with the room, empty: a screen reader
    // announces the words that come into it, not those of a region inserted already filled.
    expect(await byId(b, "room-host-away-news").getAttribute("role")).toBe("status");
    expect(await byId(b, "room-host-away-news").textContent()).toBe("");

    // Copy the invite: the room's link, whole, on the clipboard.
    await env.bob.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(link).origin });
    await byId(b, "room-show-link").click();
    await byId(b, "copy-invite-link").click();
    await expect.poll(() => byId(b, "copy-invite-link").textContent()).toBe("Copied");
    expect(await b.evaluate(() => navigator.clipboard.readText())).toBe(link);

    // The host goes away: Bob is told, still writes; Alice's copy waits at her relay.
    await a.goto("about:blank");
    await byId(b, "room-host-away").waitFor({ timeout: T });
    expect(await byId(b, "room-host-away-news").textContent()).toContain("The host is away.");
    await expect.poll(() => byId(b, "room-status").textContent()).toBe("Nobody else here · host away");
    await expectNoAxeViolations(b, "room, host away");
    const input = byId(b, "composer-input");
    await input.pressSequentially("while the host is away");
    await input.press("Enter");
    const recipient = b.locator("[data-testid=room-message-recipient]").last();
    await expect.poll(() => recipient.getAttribute("data-state"), { timeout: T }).toBe("relayed");
    await expect.poll(() => recipient.textContent()).toBe("Alice: sent to relay");
    await expectNoAxeViolations(b, "room, a message sent to relay");
  });
});
