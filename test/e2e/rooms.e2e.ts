/**
 * Rooms through the UI in real Chromium (docs/protocol/rooms.md; `npm run build` first, then
 * `node scripts/e2e.mjs test/e2e/rooms.e2e.ts`): Ann makes a room, Bea joins from the link, they
 * chat at typing speed (every message in order, delivered to each member); Cat joins late and is
 * connected to everyone present; someone with the room id but a wrong secret is refused and the
 * members see the refused attempt; a member away while another writes gets it when back; a reload
 * keeps the history; Back works; unread counts on Home; a member names the room on her device
 * (keyboard, axe; the id stays visible, a reload keeps the name and her unsent words, the others
 * see no change); leaving deletes the room's draft;
 * safety codes match per member and one is marked verified, and the member link's cipher (AES-GCM)
 * is shown; the host hands the role over and the
 * new host removes a member (both asked inline and by keyboard, never the browser's confirm(); told so; the old link admits it no more, the room's link changes);
 * a member who leaves disappears for the others. axe on each new screen.
 *
 * Four browser contexts share one Chromium; every wait is on a condition, never a duration.
 */
import type { BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  byId,
  createIdentity,
  onlineMembers as online,
  storedDraft,
  roomTexts as texts,
  typeAndSend,
} from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;
const T = 60_000;

/** Whether the element has the keyboard focus (run in the page). */
const isFocused = (e: Element) => e === document.activeElement;

/** The inline confirmation `name` on `page`, once it is open with the keyboard focus on its Cancel. */
async function openConfirmation(page: Page, name: string): Promise<Locator> {
  const dialog = page.getByRole("alertdialog", { name, exact: true });
  await expect
    .poll(() => dialog.getByRole("button", { name: "Cancel", exact: true }).evaluate(isFocused))
    .toBe(true);
  return dialog;
}

/** From Cancel, Shift+Tab reaches the confirming button `confirm`, and Enter presses it. */
async function confirmByKeyboard(page: Page, dialog: Locator, confirm: string): Promise<void> {
  await page.keyboard.press("Shift+Tab");
  expect(await dialog.getByRole("button", { name: confirm, exact: true }).evaluate(isFocused)).toBe(true);
  await page.keyboard.press("Enter");
}

describe("rooms: a mesh of pairwise E2EE links", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let cat: BrowserContext;
  let mal: BrowserContext;
  let a: Page;
  let b: Page;
  let c: Page;
  let m: Page;
  let link = "";
  let roomId = "";
  let nativeDialogs = 0;

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ loft, a, b } = env);
    cat = await env.browser.newContext();
    mal = await env.browser.newContext();
    c = await cat.newPage();
    m = await mal.newPage();
    env.watch("cat", c);
    env.watch("mal", m);
    // No screen asks with the browser's confirm() or alert(): each asks inline (ui/confirm.ts).
    for (const p of [a, b, c, m])
      p.on("dialog", (d) => {
        nativeDialogs++;
        void d.dismiss();
      });
    await Promise.all([
      createIdentity(a, loft.url, "Ann"),
      createIdentity(b, loft.url, "Bea"),
      createIdentity(c, loft.url, "Cat"),
      createIdentity(m, loft.url, "Mal"),
    ]);
  }, 120_000);
  afterAll(async () => {
    await env?.close();
  });

  it("Ann makes a room: its link, QR code and copy button; the room screen opens", async () => {
    await id(a, "nav-new-room").click();
    await id(a, "room-link-qr").waitFor({ timeout: T });
    link = await id(a, "room-link").inputValue();
    expect(link).toMatch(
      new RegExp(`^${loft.url.replace(/\/$/, "")}/#room=[\\w-]{22}&k=[\\w-]{43}&h=[\\w-]{43}$`),
    );
    await expectNoAxeViolations(a, "new room");
    // Home and Forward again, or a reload, show this same room: no second room is made on the way.
    await a.goBack();
    await expect.poll(() => a.locator("[data-testid=room-item]").count(), { timeout: T }).toBe(1);
    await a.goForward();
    await id(a, "room-link").waitFor({ timeout: T });
    expect(await id(a, "room-link").inputValue()).toBe(link);
    await a.reload();
    await id(a, "room-link").waitFor({ timeout: T });
    expect(await id(a, "room-link").inputValue()).toBe(link);
    await id(a, "open-room").click();
    await id(a, "room-screen").waitFor();
    roomId = (await id(a, "room-screen").getAttribute("data-room-id")) ?? "";
    expect(roomId).toMatch(/^[0-9a-f]{32}$/);
    // The link (with its secret) is gone from the address bar: it shows the room's screen, the
    // id in the fragment, which no server is sent (web/src/app/routes.ts).
    expect([new URL(a.url()).pathname, new URL(a.url()).hash]).toEqual(["/room", `#${roomId}`]);
  });

  it("Bea joins from the link; they chat at typing speed, in order, delivered to each member", async () => {
    await b.goto(link);
    await id(b, "room-screen").waitFor({ timeout: T });
    expect([new URL(b.url()).pathname, new URL(b.url()).hash]).toEqual(["/room", `#${roomId}`]);
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    await expect.poll(() => online(b).count(), { timeout: T }).toBe(1);
    await expect.poll(() => id(b, "room-member").textContent(), { timeout: T }).toContain("Ann");
    const burst = Array.from({ length: 6 }, (_, i) => `ann ${i + 1}`);
    for (const t of burst) await typeAndSend(a, t);
    await typeAndSend(b, "hi from bea");
    await expect.poll(() => texts(b, "in"), { timeout: T }).toEqual(burst);
    await expect.poll(() => texts(a, "in"), { timeout: T }).toEqual(["hi from bea"]);
    await expect
      .poll(() => a.locator("[data-testid=room-message][data-direction=out][data-state=delivered]").count(), {
        timeout: T,
      })
      .toBe(burst.length);
    await expectNoAxeViolations(b, "room");
    // Laid out as in a chat: each message in a bubble, one's own on the right, the others' on the left.
    const layout = (page: Page) =>
      page.evaluate(() => {
        const list = document.querySelector("[data-testid=room-messages]")!.getBoundingClientRect();
        const shown = [...document.querySelectorAll<HTMLElement>("[data-testid=room-message]")].map((li) => {
          const r = li.getBoundingClientRect();
          const side =
            r.width < list.width * 0.9 && Math.abs(r.right - list.right) < 1
              ? "right"
              : r.width < list.width * 0.9 && Math.abs(r.left - list.left) < 1
                ? "left"
                : "across";
          const bubble = getComputedStyle(li).backgroundColor !== "rgba(0, 0, 0, 0)" ? "bubble" : "bare";
          return `${li.dataset.direction} ${side} ${bubble}`;
        });
        return [...new Set(shown)].sort();
      });
    expect(await layout(a)).toEqual(["in left bubble", "out right bubble"]);
    // Each says when it was said.
    expect(await a.locator("[data-testid=room-message] .meta time").count()).toBe(burst.length + 1);
    expect(await layout(b)).toEqual(["in left bubble", "out right bubble"]);
  });

  it("Cat joins late and connects to everyone present; a message reaches both others", async () => {
    await c.goto(link);
    await id(c, "room-screen").waitFor({ timeout: T });
    await expect.poll(() => online(c).count(), { timeout: T }).toBe(2);
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(2);
    await expect.poll(() => online(b).count(), { timeout: T }).toBe(2);
    // A late joiner gets what is said from now on, not the history before it came.
    expect(await texts(c, "in")).toEqual([]);
    await typeAndSend(c, "cat here");
    await expect.poll(() => texts(a, "in"), { timeout: T }).toContain("cat here");
    await expect.poll(() => texts(b, "in"), { timeout: T }).toContain("cat here");
    await expect
      .poll(() => c.locator("[data-testid=room-message][data-state=delivered]").count(), { timeout: T })
      .toBe(1);
    await expect
      .poll(() => c.locator("[data-testid=room-message-state]").textContent())
      .toBe("Delivered to all 2");
  });

  it("someone with the room id but another secret is refused; members see the attempt, it reads nothing", async () => {
    const wrong = link.replace(/&k=([\w-])/, (_, ch: string) => `&k=${ch === "A" ? "B" : "A"}`);
    expect(wrong).not.toBe(link);
    // The attempts are said in a live region drawn with the room, empty: a screen reader
    // announces the words that come into it, not those of a region inserted already filled.
    expect(await id(a, "room-refused-news").getAttribute("role")).toBe("status");
    expect(await id(a, "room-refused-news").textContent()).toBe("");
    await m.goto(wrong);
    await id(m, "room-screen").waitFor({ timeout: T });
    await id(a, "room-refused-attempt").first().waitFor({ timeout: T });
    expect(await id(a, "room-refused-news").textContent()).toContain("tried to join and was refused");
    await expectNoAxeViolations(a, "room (an attempt refused)");
    await id(b, "room-refused-attempt").first().waitFor({ timeout: T });
    await id(m, "room-refused-us").waitFor({ timeout: T });
    await typeAndSend(a, "not for mal");
    await expect.poll(() => texts(b, "in"), { timeout: T }).toContain("not for mal");
    expect(await texts(m, "in")).toEqual([]);
    expect(await online(m).count()).toBe(0);
    // Mal is never counted as connected by the members.
    expect(await online(a).count()).toBe(2);
    await m.close();
  });

  it("Bea is away while Ann writes, and gets it when she is back; a reload keeps the history; Back goes Home, where the room shows its unread count", async () => {
    await b.goto("about:blank");
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    await typeAndSend(a, "while bea was away");
    const lastState = a
      .locator("[data-testid=room-message][data-direction=out] [data-testid=room-message-state]")
      .last();
    await expect.poll(() => lastState.textContent(), { timeout: T }).toBe("Delivered to 1 of 2");
    await b.goto(`${loft.url.replace(/\/$/, "")}/room/${roomId}`);
    await id(b, "room-screen").waitFor({ timeout: T });
    await expect.poll(() => texts(b, "in"), { timeout: T }).toContain("while bea was away");
    await expect.poll(() => lastState.textContent(), { timeout: T }).toBe("Delivered to all 2");
    await b.reload();
    await id(b, "room-screen").waitFor({ timeout: T });
    await expect.poll(() => texts(b, "in"), { timeout: T }).toContain("ann 6");
    expect(await texts(b, "out")).toEqual(["hi from bea"]);
    await expect.poll(() => online(b).count(), { timeout: T }).toBe(2);
    await id(b, "back").click();
    await id(b, "home").waitFor();
    await expectNoAxeViolations(b, "home with rooms");
    await typeAndSend(a, "while bea is away");
    const item = b.locator(`[data-testid=room-item][data-room-id="${roomId}"]`);
    await expect.poll(() => item.getAttribute("data-unread"), { timeout: T }).toBe("1");
    await item.click();
    await id(b, "room-screen").waitFor();
    await b.goBack();
    await id(b, "home").waitFor();
    await expect.poll(() => item.getAttribute("data-unread"), { timeout: T }).toBe("0");
  });

  it("Bea names the room on her device, by keyboard: Home and the header show the name, the id stays, a reload keeps it, Ann sees no change", async () => {
    const idLabel = `Room ${roomId.slice(0, 8)}`;
    const viewport = b.viewportSize() ?? { width: 1280, height: 720 };
    await b.locator(`[data-testid=room-item][data-room-id="${roomId}"]`).click();
    await id(b, "room-screen").waitFor();
    expect(await id(b, "room-title").textContent()).toBe(idLabel);
    await id(b, "rename-room").focus();
    await b.keyboard.press("Enter");
    await id(b, "rename-room-form").waitFor();
    expect(await b.evaluate(() => document.activeElement?.id)).toBe("room-name");
    await expectNoAxeViolations(b, "room, renaming");
    // Escape leaves the name as it was.
    await b.keyboard.type("Not this");
    await b.keyboard.press("Escape");
    await expect.poll(() => id(b, "rename-room-form").count()).toBe(0);
    expect(await id(b, "room-title").textContent()).toBe(idLabel);
    await b.keyboard.press("Enter");
    await id(b, "room-name-input").fill("");
    await b.keyboard.type("  Book   club  ");
    await b.keyboard.press("Enter");
    await expect.poll(() => id(b, "room-title").textContent()).toBe("Book club");
    expect(await id(b, "room-id").textContent()).toBe(idLabel);
    // The id and the members line are read as two lines, not run together ("Room 1a2b3c4d1 other
    // member here"), on a phone as on a desktop.
    for (const size of [{ width: 360, height: 740 }, viewport]) {
      await b.setViewportSize(size);
      // biome-ignore lint/performance/useDomNodeTextContent: innerText has the rendered line breaks.
      const lines = (await b.locator("[data-testid=room-screen] .who").innerText()).split("\n");
      expect(lines.slice(0, 2)).toEqual(["Book club", idLabel]);
    }
    // The focus goes back to Rename once the save has settled (Room.tsx `RenameRoom`'s onDone), which
    // can be a moment after the new name is drawn: the room's event may come first.
    await expect
      .poll(() => b.evaluate(() => document.activeElement?.getAttribute("data-testid")))
      .toBe("rename-room");
    // Words typed in the room and not sent come back after the reload too (sealed at rest).
    await id(b, "composer-input").focus();
    await b.keyboard.type("see you at eight");
    await expect
      .poll(() => storedDraft(b, `room:${roomId}`, "see you at eight"))
      .toEqual({ holdsPlain: false });
    // And the words typed just before it, by the draft copy (app/drafts.ts), folded at the next
    // start since the room is still here (app/model.ts `#conversationExists`).
    await b.keyboard.type(" or nine");
    await b.reload();
    await id(b, "room-screen").waitFor({ timeout: T });
    await expect.poll(() => id(b, "room-title").textContent(), { timeout: T }).toBe("Book club");
    await expect.poll(() => id(b, "composer-input").inputValue()).toBe("see you at eight or nine");
    await id(b, "composer-input").fill("");
    await expect.poll(() => storedDraft(b, `room:${roomId}`, "see you at eight")).toBeNull();
    await id(b, "back").click();
    await id(b, "home").waitFor();
    const item = b.locator(`[data-testid=room-item][data-room-id="${roomId}"]`);
    await expect.poll(() => item.locator(".name").textContent()).toBe(`Book club (${roomId.slice(0, 8)})`);
    // A local name: nothing is sent, Ann's room keeps its id label.
    expect(await id(a, "room-title").textContent()).toBe(idLabel);
  });

  it("safety codes match per member; the host hands over to Bea, who removes Cat: Cat is told, the old link admits it no more", async () => {
    const member = (p: Page, name: string) => p.locator("[data-testid=room-member]", { hasText: name });
    await b.locator(`[data-testid=room-item][data-room-id="${roomId}"]`).click();
    await id(b, "room-screen").waitFor();
    // The chips read name, role badge, action: "You" in the same colour as a member's name (not
    // greyed out as if disabled), "host" a filled badge of its own, the member's action a link
    // inside the one bordered chip (no box in a box).
    const style = (l: Locator, prop: "color" | "backgroundColor" | "borderTopWidth") =>
      l.evaluate((e, p) => getComputedStyle(e)[p], prop);
    const me = id(a, "room-me");
    expect(await style(me.locator(".member-name"), "color")).toBe(
      await style(member(a, "Bea").locator(".member-name"), "color"),
    );
    expect(await me.locator(".member-name").textContent()).toBe("You");
    expect(await style(me.getByTestId("room-host-badge"), "backgroundColor")).not.toBe("rgba(0, 0, 0, 0)");
    const open = member(a, "Bea").getByRole("button", { name: "Safety code of Bea", exact: true });
    expect(await style(open, "borderTopWidth")).toBe("0px");
    await open.click();
    await expect.poll(() => open.getAttribute("aria-expanded")).toBe("true");
    await id(a, "room-member-panel").waitFor();
    await open.click();
    await id(a, "room-member-panel").waitFor({ state: "detached" });
    // The same digits on both sides, then Ann marks Bea verified.
    await member(a, "Bea").getByTestId("room-member-open").click();
    await member(b, "Ann").getByTestId("room-member-open").click();
    const digits = await id(a, "room-safety-code").getAttribute("data-digits");
    expect(digits).toMatch(/^\d{60}$/);
    expect(await id(b, "room-safety-code").getAttribute("data-digits")).toBe(digits);
    // Their member link runs AES-GCM (native in the browser), offered by the dialing member as
    // to a contact (docs/protocol/rooms.md §4), and the panel says so.
    for (const p of [a, b]) {
      await expect
        .poll(() => id(p, "room-member-encryption").textContent(), { timeout: T })
        .toBe("end-to-end encrypted: Noise with X25519 + ML-KEM-768, AES-256-GCM");
      expect(await id(p, "room-member-encryption").getAttribute("data-suite")).toBe("AESGCM_SHA256");
    }
    await expectNoAxeViolations(a, "room member");
    await id(a, "room-mark-verified").click();
    await expect.poll(() => member(a, "Bea").getAttribute("data-verified")).toBe("true");
    // Ann (host) hands the role to Bea; everyone sees Bea as host.
    expect(await id(a, "room-me").getAttribute("data-host")).toBe("true");
    // By keyboard, inline (the Leave pattern): the focus goes to Cancel, Escape gives it back to
    // Make host; the second time Shift+Tab reaches the confirming button.
    await expect.poll(() => id(a, "room-make-host").isEnabled(), { timeout: T }).toBe(true);
    await id(a, "room-make-host").focus();
    await a.keyboard.press("Enter");
    const hostDialog = await openConfirmation(a, "Make host");
    await expectNoAxeViolations(a, "room member (make host confirmation)");
    await a.keyboard.press("Escape");
    await hostDialog.waitFor({ state: "detached" });
    await expect.poll(() => id(a, "room-make-host").evaluate(isFocused)).toBe(true);
    expect(await id(a, "room-me").getAttribute("data-host")).toBe("true");
    await a.keyboard.press("Enter");
    await openConfirmation(a, "Make host");
    await confirmByKeyboard(a, hostDialog, "Make host");
    await hostDialog.waitFor({ state: "detached" });
    // The confirmed question is gone with its buttons: the focus goes to the panel's heading, not
    // to the page's top (a keyboard user goes on from where they were).
    await expect.poll(() => a.locator("#room-member-heading").evaluate(isFocused)).toBe(true);
    await expect.poll(() => id(b, "room-me").getAttribute("data-host"), { timeout: T }).toBe("true");
    await expect.poll(() => member(c, "Bea").getAttribute("data-host"), { timeout: T }).toBe("true");
    expect(await id(a, "room-me").getAttribute("data-host")).toBe("false");
    // Bea removes Cat.
    await member(b, "Ann").getByTestId("room-member-open").click(); // close Ann's panel
    await member(b, "Cat").getByTestId("room-member-open").click();
    await id(b, "room-remove-member").focus();
    await b.keyboard.press("Enter");
    const removeDialog = await openConfirmation(b, "Remove from room");
    await expectNoAxeViolations(b, "room member (remove confirmation)");
    await confirmByKeyboard(b, removeDialog, "Remove");
    await id(c, "room-removed-us").waitFor({ timeout: T });
    // Cat dials no one now: her chips no longer say "connecting…" but why (ui/format.ts `refusedWords`).
    await expect
      .poll(() => c.locator("[data-testid=room-member-refused]").allTextContents(), { timeout: T })
      .toEqual([
        "not connected: you were removed from the room",
        "not connected: you were removed from the room",
      ]);
    expect(await c.locator("[data-testid=room-member-connecting]").count()).toBe(0);
    // Cat's panel is gone with Cat: the focus goes to the members list.
    await expect.poll(() => id(b, "room-members").evaluate(isFocused), { timeout: T }).toBe(true);
    await expect.poll(() => a.locator("[data-testid=room-member]").count(), { timeout: T }).toBe(1);
    await expect.poll(() => online(b).count(), { timeout: T }).toBe(1);
    await typeAndSend(a, "after cat");
    await expect.poll(() => texts(b, "in"), { timeout: T }).toContain("after cat");
    expect(await texts(c, "in")).not.toContain("after cat");
    expect(nativeDialogs).toBe(0);
    // The room has a new link now; the one Cat has lets it in no more.
    await id(a, "room-show-link").click();
    const fresh = await a.locator("[data-testid=room-invite] textarea").inputValue();
    expect(fresh).not.toBe(link);
    expect(fresh.split("&k=")[0]).toBe(link.split("&k=")[0]);
    // "Share…" beside Copy only where the browser has the Web Share API (Chromium on Linux has
    // none: no button); given one, it hands the system share sheet the room's link.
    expect(await id(a, "share-invite-link").count()).toBe(0);
    await id(a, "room-show-link").click();
    await a.evaluate(() => {
      const nav = navigator as Navigator & { shared?: ShareData };
      nav.share = async (data?: ShareData) => {
        nav.shared = data;
      };
      nav.canShare = () => true;
    });
    await id(a, "room-show-link").click();
    await a.getByRole("button", { name: "Share…", exact: true }).click();
    await expect
      .poll(() => a.evaluate(() => (navigator as Navigator & { shared?: ShareData }).shared?.url))
      .toBe(fresh);
    await id(c, "leave-room").click();
    await id(c, "confirm-leave-room").click();
    await id(c, "home").waitFor({ timeout: T });
    await c.goto(link);
    await id(c, "room-refused-us").waitFor({ timeout: T });
    expect(await online(a).count()).toBe(1);
    // Words Ann leaves unsent in the room (the next test checks they go when she leaves).
    await id(a, "composer-input").fill("never sent");
    await expect.poll(() => storedDraft(a, `room:${roomId}`, "never sent")).toEqual({ holdsPlain: false });
  });

  it("a member who leaves is gone for the others", async () => {
    // Leave asks inline, not with the browser's confirm(): the focus goes to Cancel, Escape keeps
    // the room and gives the focus back to Leave; the second time, Leave confirms.
    await id(a, "leave-room").click();
    const dialog = await openConfirmation(a, "Leave room");
    await expectNoAxeViolations(a, "room (leave confirmation)");
    await a.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
    await expect
      .poll(() => a.evaluate(() => document.activeElement?.getAttribute("data-testid")))
      .toBe("leave-room");
    await id(a, "leave-room").click();
    await id(a, "confirm-leave-room").click();
    await id(a, "home").waitFor({ timeout: T });
    expect(nativeDialogs).toBe(0);
    expect(await a.locator("[data-testid=room-item]").count()).toBe(0);
    await expect.poll(() => online(b).count(), { timeout: T }).toBe(0);
    await expect.poll(() => b.locator("[data-testid=room-member]").count(), { timeout: T }).toBe(0);
    // Ann comes back to the room's address (history, a bookmark): she is told how to join again, and
    // is offered nothing that cannot work there (no Invite without a link, no Leave, no composer).
    await a.goto(`${loft.url}/room/${roomId}`);
    await expect
      .poll(() => id(a, "room-missing").textContent(), { timeout: T })
      .toBe(
        "You are not in this room on this device — you may have left it. To join, open the room's link here.",
      );
    for (const gone of ["room-show-link", "leave-room", "composer-input", "attach-button"]) {
      expect(await id(a, gone).count()).toBe(0);
    }
    await expectNoAxeViolations(a, "room (not a member)");
    // Her unsent words in the room went with it (engine/rooms/store.ts `forget`).
    expect(await storedDraft(a, `room:${roomId}`, "never sent")).toBeNull();
  });
});
