/**
 * Rooms when members cannot reach each other directly, or are away, in real Chromium through the
 * real server (`npm run build` first; `node scripts/e2e.mjs test/e2e/rooms-relay.e2e.ts`;
 * docs/protocol/rooms.md §2, §3, §9):
 *
 *  - with the direct path impossible for every page (test/support/no-direct-path.ts), Ann, Bea and
 *    Cat join a room from its link and are linked through the relay — each member's chip says
 *    "via relay" — and every message reaches everyone, delivered;
 *  - Cat is away while Ann writes (Ann's copy for Cat: "sent to relay"), then Ann and Bea are gone
 *    too: Cat, back with nobody there, reads it from her relay mailbox; her answer goes into theirs,
 *    and Ann, back, reads it and sees her own message delivered to all;
 *  - no server ever received the room id or its secret: every WebSocket frame and HTTP request the
 *    pages sent is searched for them (raw, hex, base64url), while the room hash of §2 is found in
 *    what each member sent (the search sees the joins) — Ann's room screen reloaded with her
 *    Service Worker bypassed included (the address bar's path goes to the server then: the room's
 *    id is in its fragment, web/src/app/routes.ts), and Cat back through the older `/room/<id>`
 *    address, which still opens the room and becomes the fragment form;
 *  - with the operator's cap at two members (`--signal-max-room-members 2`) a third joiner is told
 *    in words that the room is full, and gets in from the same link once a member has left.
 *
 * Every wait is on a condition, never a duration.
 */
import { createHash } from "node:crypto";
import type { BrowserContext, Page, Request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromBase64url } from "../../core/codec/base64url.ts";
import { expectNoAxeViolations } from "../support/axe.ts";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  byId,
  createIdentity,
  onlineMembers as online,
  ourRoomMessage as ours,
  roomRecipient as recipient,
  secretNames,
  roomTexts as texts,
  typeAndSend,
} from "../support/loft-ui.ts";
import { NO_DIRECT_PATH } from "../support/no-direct-path.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;
const T = 60_000;

/**
 * Everything a page sends to a server: WebSocket frames (as bytes) and HTTP requests (URL and
 * body) that left the browser — not those its Service Worker answered (a navigation inside the
 * app, or a reload, is served from its precache: sw/index.ts; Ann's reload with it bypassed is
 * not).
 */
interface Sent {
  frames: Buffer[];
  requests: string[];
}
function record(page: Page, sent: Sent): void {
  page.on("websocket", (ws) =>
    ws.on("framesent", (f) =>
      sent.frames.push(typeof f.payload === "string" ? Buffer.from(f.payload) : f.payload),
    ),
  );
  const sentOut = async (r: Request) => {
    if ((await r.response().catch(() => null))?.fromServiceWorker()) return;
    sent.requests.push(`${r.url()}\n${r.postDataBuffer()?.toString("latin1") ?? ""}`);
  };
  page.on("requestfinished", (r) => void sentOut(r));
  page.on("requestfailed", (r) => void sentOut(r));
}

/** The room's id and secret from its link (docs/protocol/rooms.md §1), and its rendezvous hash (§2). */
function roomParts(link: string): { id: Uint8Array; secret: Uint8Array; hash: Buffer } {
  const fields = new URLSearchParams(new URL(link).hash.slice(1));
  const id = fromBase64url(fields.get("room") ?? "");
  const secret = fromBase64url(fields.get("k") ?? "");
  if (!id.ok || !secret.ok) throw new Error(`not a room link: ${link}`);
  const hash = createHash("sha256")
    .update(Buffer.concat([Buffer.from("loft/room/rendezvous/v1"), Buffer.from([0]), id.value]))
    .digest();
  return { id: id.value, secret: secret.value, hash };
}

describe("rooms with no direct path: through the relay; members away catch up from their mailboxes", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let cat: BrowserContext;
  let a: Page;
  let b: Page;
  let c: Page;
  let link = "";
  let roomId = "";
  const sent: Record<"ann" | "bea" | "cat", Sent> = {
    ann: { frames: [], requests: [] },
    bea: { frames: [], requests: [] },
    cat: { frames: [], requests: [] },
  };

  beforeAll(async () => {
    env = await startTwoBrowsers({ initScript: NO_DIRECT_PATH });
    ({ loft, a, b } = env);
    cat = await env.browser.newContext();
    await cat.addInitScript(NO_DIRECT_PATH);
    c = await cat.newPage();
    env.watch("cat", c);
    record(a, sent.ann);
    record(b, sent.bea);
    record(c, sent.cat);
    await Promise.all([
      createIdentity(a, loft.url, "Ann"),
      createIdentity(b, loft.url, "Bea"),
      createIdentity(c, loft.url, "Cat"),
    ]);
  }, 120_000);
  afterAll(async () => {
    await env?.close();
  });

  it("three members with no direct path are linked through the relay and chat, delivered to all", {
    timeout: 240_000,
  }, async () => {
    await id(a, "nav-new-room").click();
    await id(a, "room-link-qr").waitFor({ timeout: T });
    link = await id(a, "room-link").inputValue();
    await id(a, "open-room").click();
    await id(a, "room-screen").waitFor();
    roomId = (await id(a, "room-screen").getAttribute("data-room-id")) ?? "";
    await b.goto(link);
    await id(b, "room-screen").waitFor({ timeout: T });
    await c.goto(link);
    await id(c, "room-screen").waitFor({ timeout: T });
    for (const p of [a, b, c]) await expect.poll(() => online(p).count(), { timeout: T }).toBe(2);
    // No data channel can open: every member link runs through the relay, and each chip says so.
    for (const p of [a, b, c]) {
      expect(
        await p.locator("[data-testid=room-member]").evaluateAll((l) => l.map((e) => e.dataset.path)),
      ).toEqual(["relay", "relay"]);
      expect(await id(p, "room-member-path").allTextContents()).toEqual(["via relay", "via relay"]);
    }
    await expectNoAxeViolations(c, "room, members via relay");
    await typeAndSend(a, "over the relay");
    await typeAndSend(b, "bea too");
    await typeAndSend(c, "and cat");
    // Each sender's messages keep their order; two senders' may interleave either way.
    const got = (p: Page) => texts(p, "in").then((t) => t.sort());
    await expect.poll(() => got(a), { timeout: T }).toEqual(["and cat", "bea too"]);
    await expect.poll(() => got(b), { timeout: T }).toEqual(["and cat", "over the relay"]);
    await expect.poll(() => got(c), { timeout: T }).toEqual(["bea too", "over the relay"]);
    for (const [p, text] of [
      [a, "over the relay"],
      [b, "bea too"],
      [c, "and cat"],
    ] as const)
      await expect
        .poll(() => ours(p, text).getByTestId("room-message-state").textContent(), { timeout: T })
        .toBe("Delivered to all 2");
  });

  it("Cat is away while Ann writes; back with nobody there, she reads it from her relay mailbox", {
    timeout: 300_000,
  }, async () => {
    const key = async (p: Page, name: string) =>
      (await p.locator("[data-testid=room-member]", { hasText: name }).getAttribute("data-key")) ?? "";
    const [annKey, beaKey, catKey] = [await key(c, "Ann"), await key(c, "Bea"), await key(a, "Cat")];
    // Inside each member session the two hand each other a mailbox (rooms.md §9); wait until the
    // pairs with Cat hold one both ways, so what follows cannot be a race with that hand-over.
    const holds = (p: Page, member: string) =>
      expect
        .poll(async () => (await secretNames(p)).includes(`room-tx/${roomId}/${member}`), { timeout: T })
        .toBe(true);
    await holds(a, catKey);
    await holds(b, catKey);
    await holds(c, annKey);
    await holds(c, beaKey);

    await c.goto("about:blank");
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    await typeAndSend(a, "while cat was away");
    await expect
      .poll(() => recipient(a, "while cat was away", "Cat").textContent(), { timeout: T })
      .toBe("Cat: sent to relay");
    await expect
      .poll(() => recipient(a, "while cat was away", "Bea").getAttribute("data-state"), { timeout: T })
      .toBe("delivered");
    await expect
      .poll(() => ours(a, "while cat was away").getByTestId("room-message-state").textContent())
      .toBe("Delivered to 1 of 2");

    // Ann and Bea go too: nobody can hand it to Cat live any more.
    await a.goto("about:blank");
    await b.goto("about:blank");
    // The address rooms had before still opens the room (served by her Service Worker), and the
    // address bar takes today's form, the id out of the path.
    await c.goto(`${loft.url.replace(/\/$/, "")}/room/${roomId}`);
    await id(c, "room-screen").waitFor({ timeout: T });
    expect([new URL(c.url()).pathname, new URL(c.url()).hash]).toEqual(["/room", `#${roomId}`]);
    await expect.poll(() => texts(c, "in"), { timeout: T }).toContain("while cat was away");
    expect(await online(c).count()).toBe(0);
    // Her answer waits in their mailboxes.
    await typeAndSend(c, "cat is back");
    for (const name of ["Ann", "Bea"])
      await expect
        .poll(() => recipient(c, "cat is back", name).textContent(), { timeout: T })
        .toBe(`${name}: sent to relay`);

    // Ann back, with no Service Worker between her page and the server (a first visit, a hard
    // reload, a worker gone): she opens the room from Home and reloads it — the reload asks the
    // server for the address bar's path, searched below for the room id.
    await a.goto(loft.url);
    await a.locator(`[data-testid=room-item][data-room-id="${roomId}"]`).click();
    await id(a, "room-screen").waitFor({ timeout: T });
    // Her worker unregistered: no navigation is given to it any more (the page registers it again).
    await a.evaluate(async () => {
      for (const r of await navigator.serviceWorker.getRegistrations()) await r.unregister();
    });
    const reloaded = a.waitForRequest((r) => r.isNavigationRequest());
    await a.reload();
    expect(new URL((await reloaded).url()).pathname).toBe("/room");
    await id(a, "room-screen").waitFor({ timeout: T });
    expect(await id(a, "room-screen").getAttribute("data-room-id")).toBe(roomId);
    // Ann has Cat's answer, and Cat's receipt for hers.
    await expect.poll(() => texts(a, "in"), { timeout: T }).toContain("cat is back");
    await expect
      .poll(() => ours(a, "while cat was away").getByTestId("room-message-state").textContent(), {
        timeout: T,
      })
      .toBe("Delivered to all 2");
    await expect
      .poll(() => recipient(c, "cat is back", "Ann").getAttribute("data-state"), { timeout: T })
      .toBe("delivered");
  });

  it("no server received the room id or its secret; each member's join named only the room hash", () => {
    const { id: roomIdBytes, secret, hash } = roomParts(link);
    expect(Buffer.from(roomIdBytes).toString("hex")).toBe(roomId);
    const needles = (bytes: Uint8Array, name: string) => [
      { name: `${name} (bytes)`, bytes: Buffer.from(bytes) },
      { name: `${name} (hex)`, bytes: Buffer.from(Buffer.from(bytes).toString("hex")) },
      { name: `${name} (base64url)`, bytes: Buffer.from(Buffer.from(bytes).toString("base64url")) },
    ];
    const secrets = [...needles(roomIdBytes, "room id"), ...needles(secret, "room secret")];
    for (const [who, s] of Object.entries(sent)) {
      expect(s.frames.length, `${who} sent frames`).toBeGreaterThan(0);
      expect(s.requests.length, `${who} sent requests`).toBeGreaterThan(0);
      // The search sees what it must: the room hash went out in this member's ROOM_JOIN.
      expect(
        s.frames.some((f) => f.includes(hash)),
        `${who} sent the room hash`,
      ).toBe(true);
      for (const n of secrets) {
        expect(
          s.frames.filter((f) => f.includes(n.bytes)).length,
          `${who}: ${n.name} in a WebSocket frame`,
        ).toBe(0);
        // A URL's fragment is never sent over HTTP (Playwright reports it with the navigation):
        // what is checked is the path, the query and the body.
        const onTheWire = s.requests.map((r) => {
          const [url = "", body = ""] = r.split("\n");
          const u = new URL(url);
          u.hash = "";
          return Buffer.from(`${u.toString()}\n${body}`, "latin1");
        });
        expect(
          onTheWire.filter((r) => r.includes(n.bytes)).length,
          `${who}: ${n.name} in an HTTP request`,
        ).toBe(0);
      }
    }
  });
});

describe("a room at the operator's member cap says it is full", () => {
  let env: TwoBrowsers;
  let cat: BrowserContext;
  let c: Page;

  beforeAll(async () => {
    env = await startTwoBrowsers({ loftArgs: ["--signal-max-room-members", "2"] });
    cat = await env.browser.newContext();
    c = await cat.newPage();
    env.watch("cat", c);
    await Promise.all([
      createIdentity(env.a, env.loft.url, "Ann"),
      createIdentity(env.b, env.loft.url, "Bea"),
      createIdentity(c, env.loft.url, "Cat"),
    ]);
  }, 120_000);
  afterAll(async () => {
    await env?.close();
  });

  it("a third joiner is told the room is full, and gets in from the same link once one has left", {
    timeout: 240_000,
  }, async () => {
    const { a, b } = env;
    await id(a, "nav-new-room").click();
    await id(a, "room-link-qr").waitFor({ timeout: T });
    const link = await id(a, "room-link").inputValue();
    await id(a, "open-room").click();
    await id(a, "room-screen").waitFor();
    await b.goto(link);
    await id(b, "room-screen").waitFor({ timeout: T });
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    await c.goto(link);
    await expect
      .poll(() => id(c, "room-full").textContent(), { timeout: T })
      .toBe("This room is full: it has as many members as a room can have. Try again when someone leaves.");
    expect(await id(c, "room-status").getAttribute("data-status")).toBe("full");
    await expectNoAxeViolations(c, "room (full)");
    // Nobody saw Cat: she never got past the rendezvous.
    expect(await a.locator("[data-testid=room-member]").count()).toBe(1);
    expect(await b.locator("[data-testid=room-member]").count()).toBe(1);
    await typeAndSend(a, "just us");
    await expect.poll(() => texts(b, "in"), { timeout: T }).toEqual(["just us"]);
    expect(await texts(c, "in")).toEqual([]);

    // Bea leaves; Cat opens the same link again and is in, linked to Ann.
    await id(b, "leave-room").click();
    await id(b, "confirm-leave-room").click();
    await id(b, "home").waitFor({ timeout: T });
    await expect.poll(() => a.locator("[data-testid=room-member]").count(), { timeout: T }).toBe(0);
    await c.goto(link);
    await expect.poll(() => online(c).count(), { timeout: T }).toBe(1);
    expect(await id(c, "room-full").count()).toBe(0);
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    await typeAndSend(c, "in at last");
    await expect.poll(() => texts(a, "in"), { timeout: T }).toEqual(["in at last"]);
  });
});
