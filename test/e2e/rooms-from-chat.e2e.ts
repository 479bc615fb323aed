/**
 * A room link opened in a page that has a 1:1 chat open (docs/protocol/rooms.md §3): the page
 * navigates to the link (`page.goto`, a full load), joins, and sees the room's members — here the
 * contact it was chatting with, who made the room.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
  });
});
