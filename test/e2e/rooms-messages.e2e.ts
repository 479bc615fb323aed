/**
 * The room screen's message list while the room changes, in real Chromium against the real server
 * (`npm run build`, then `node scripts/e2e.mjs test/e2e/rooms-messages.e2e.ts`): text selected
 * inside a message stays selected while messages and receipts arrive — the message elements are
 * kept across changes (ui/Room.tsx draws the list from a store reconciled by writer and id; before,
 * every room change drew every message anew, and the selection went with the old elements); and
 * the list shows the newest message when the room opens and when a message comes (ours too), but
 * stays where a reader scrolled up when the room changes otherwise (a member goes).
 *
 * axe on the screen. Every wait is on a condition, never a duration.
 */
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  byId,
  createIdentity,
  createRoom,
  onlineMembers as online,
  ourRoomMessage,
  roomTexts,
} from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;
const T = 60_000;

/** Whether the element is inside the visible part of the box that scrolls it (or of the window). */
const inView = (l: Locator) =>
  l.evaluate((e) => {
    let box = e.parentElement;
    while (
      box &&
      !(box.scrollHeight > box.clientHeight && /auto|scroll/.test(getComputedStyle(box).overflowY))
    )
      box = box.parentElement;
    const r = e.getBoundingClientRect();
    const b = box ? box.getBoundingClientRect() : { top: 0, bottom: window.innerHeight };
    return r.bottom > b.top && r.top < b.bottom;
  });

const say = async (page: Page, text: string) => {
  await id(page, "composer-input").fill(text);
  await id(page, "composer-input").press("Enter");
};

describe("rooms: the message list keeps its elements", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let a: Page;
  let b: Page;

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ loft, a, b } = env);
    await Promise.all([createIdentity(a, loft.url, "Ann"), createIdentity(b, loft.url, "Bea")]);
  }, 180_000);
  afterAll(async () => {
    await env?.close();
  });

  it("text selected in a message stays selected while messages and receipts arrive", async () => {
    const { link } = await createRoom(a, T);
    await b.goto(link);
    await id(b, "room-screen").waitFor({ timeout: T });
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    await expect.poll(() => online(b).count(), { timeout: T }).toBe(1);

    await say(b, "select these words");
    await expect.poll(() => roomTexts(a, "in"), { timeout: T }).toEqual(["select these words"]);
    // Ann's own message, whose receipt comes while her selection is there (or just before).
    await say(a, "from ann");
    const text = await a
      .locator("[data-testid=room-message][data-direction=in] [data-testid=room-message-text]")
      .elementHandle();
    if (!text) throw new Error("no message text on Ann's page");
    await text.evaluate((e) => {
      (document.activeElement as HTMLElement | null)?.blur();
      const range = document.createRange();
      range.selectNodeContents(e);
      const selection = getSelection();
      selection?.removeAllRanges();
      selection?.addRange(range);
    });
    const selected = () =>
      text.evaluate((e) => ({
        connected: e.isConnected,
        inside: getSelection()?.containsNode(e, true) ?? false,
        text: getSelection()?.toString() ?? "",
      }));
    expect(await selected()).toEqual({ connected: true, inside: true, text: "select these words" });

    // Messages arrive (each a room change on Ann's page, and her receipts to Bea), and the
    // receipt for Ann's own message.
    await say(b, "one more");
    await say(b, "and another");
    await expect
      .poll(() => roomTexts(a, "in"), { timeout: T })
      .toEqual(["select these words", "one more", "and another"]);
    await expect
      .poll(() => ourRoomMessage(a, "from ann").getAttribute("data-state"), { timeout: T })
      .toBe("delivered");
    await expect
      .poll(() => ourRoomMessage(b, "and another").getAttribute("data-state"), { timeout: T })
      .toBe("delivered");
    // Before: the element was drawn anew at each change, the selection went with the old one.
    expect(await selected()).toEqual({ connected: true, inside: true, text: "select these words" });
    await text.dispose();
    await expectNoAxeViolations(a, "room (messages and receipts)");
  });

  it("a room opens at its newest message and follows new ones, ours too; a reader scrolled up stays there while the room changes otherwise", async () => {
    await id(a, "back").click();
    const { link, roomId } = await createRoom(a, T);
    await b.goto(link);
    await id(b, "room-screen").waitFor({ timeout: T });
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    await expect.poll(() => online(b).count(), { timeout: T }).toBe(1);
    // More than a screen of messages.
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i}`);
    for (const line of lines) await say(b, line);
    await expect.poll(() => roomTexts(a, "in"), { timeout: T }).toEqual(lines);
    const line = (n: number) =>
      a.locator("[data-testid=room-message]", {
        has: a.locator("[data-testid=room-message-text]", { hasText: new RegExp(`^line ${n}$`) }),
      });
    await expect.poll(() => inView(line(29)), { timeout: T }).toBe(true);
    // Opened again from Home: at its newest.
    await id(a, "back").click();
    await a.locator(`[data-testid=room-item][data-room-id="${roomId}"]`).click();
    await id(a, "room-screen").waitFor({ timeout: T });
    await expect.poll(() => roomTexts(a, "in"), { timeout: T }).toEqual(lines);
    await expect.poll(() => inView(line(29)), { timeout: T }).toBe(true);
    // Ann reads the first lines.
    await line(0).evaluate((e) => e.scrollIntoView({ block: "start" }));
    expect([await inView(line(0)), await inView(line(29))]).toEqual([true, false]);
    // Bea goes: the room changes (her presence), no message comes. Before: every room change
    // scrolled to the newest message, away from what Ann was reading.
    await b.goto("about:blank");
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(0);
    expect([await inView(line(0)), await inView(line(29))]).toEqual([true, false]);
    // Her own message comes into view.
    await say(a, "mine");
    await expect.poll(() => inView(ourRoomMessage(a, "mine")), { timeout: T }).toBe(true);
  });
});
