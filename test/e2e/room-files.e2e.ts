/**
 * Files to a room through the UI in real Chromium (docs/protocol/files.md §8; `node scripts/e2e.mjs
 * test/e2e/room-files.e2e.ts`): Ann, Bea and Cat are in one room; Ann attaches a file once and
 * each member gets its own offer over its member session (the chunks on its link's bulk lane),
 * accepts, and downloads a copy with
 * Ann's SHA-256, while Ann's screen shows one row per member (to Bea, to Cat) reaching
 * "Delivered". Cat is away when Ann sends the next file: Ann's row for Cat says it will be offered
 * when Cat is online, Bea declines hers, and Cat, back in the room, is offered it and gets it
 * with the right hash. The room screen with file rows has no axe violations, and Home names the
 * file of a room with no message yet.
 *
 * Three browser contexts share one Chromium; every wait is on a condition, never a duration.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoAxeViolations } from "../support/axe.ts";
import { PATIENT_LANE, useEngineTimings, WIDE_CHUNKS_CHOSEN } from "../support/engine-timings.ts";
import type { LoftProcess } from "../support/loft-process.ts";
import { byId, createIdentity, onlineMembers as online } from "../support/loft-ui.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;
const T = 60_000;

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** The file row named `name` on `page` for the member `peer` ("to Bea", "from Ann"), optionally in `state`. */
const row = (page: Page, name: string, peer: string, state?: string) =>
  page
    .locator(`[data-testid=file]${state ? `[data-state=${state}]` : ""}`)
    .filter({ has: page.getByTestId("file-name").getByText(name, { exact: true }) })
    .filter({ has: page.getByTestId("file-peer").getByText(peer, { exact: true }) });

async function download(page: Page, name: string, peer: string): Promise<Uint8Array> {
  const [d] = await Promise.all([
    page.waitForEvent("download"),
    row(page, name, peer, "done").getByTestId("file-download").click(),
  ]);
  expect(d.suggestedFilename()).toBe(name);
  return new Uint8Array(readFileSync(await d.path()));
}

describe("files to a room", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let cat: BrowserContext;
  let a: Page;
  let b: Page;
  let c: Page;
  let roomUrl = "";

  beforeAll(async () => {
    env = await startTwoBrowsers();
    ({ loft, a, b } = env);
    await useEngineTimings(env.alice, PATIENT_LANE); // Ann: the lanes' answers pick the chunk size
    cat = await env.browser.newContext();
    c = await cat.newPage();
    env.watch("cat", c);
    await Promise.all([
      createIdentity(a, loft.url, "Ann"),
      createIdentity(b, loft.url, "Bea"),
      createIdentity(c, loft.url, "Cat"),
    ]);
  }, 120_000);
  afterAll(async () => {
    await env?.close();
  });

  it("Ann, Bea and Cat meet in a room", async () => {
    await id(a, "nav-new-room").click();
    await id(a, "room-link-qr").waitFor({ timeout: T });
    const link = await id(a, "room-link").inputValue();
    await id(a, "open-room").click();
    await id(a, "room-screen").waitFor();
    const roomId = (await id(a, "room-screen").getAttribute("data-room-id")) ?? "";
    roomUrl = `${loft.url.replace(/\/$/, "")}/room/${roomId}`;
    await b.goto(link);
    await c.goto(link);
    for (const p of [a, b, c]) await expect.poll(() => online(p).count(), { timeout: T }).toBe(2);
  });

  it("one file attached once reaches every member, each with its own offer, progress and the right hash", async () => {
    const file = new Uint8Array(randomBytes(3 * 1024 * 1024 + 123));
    await id(a, "attach-input").setInputFiles({
      name: "plan.bin",
      mimeType: "application/octet-stream",
      buffer: Buffer.from(file),
    });
    for (const p of [b, c]) {
      await row(p, "plan.bin", "from Ann", "offered").waitFor({ timeout: T });
      await row(p, "plan.bin", "from Ann", "offered").getByTestId("file-accept").click();
    }
    for (const [p, who] of [
      [b, "to Bea"],
      [c, "to Cat"],
    ] as const) {
      await row(p, "plan.bin", "from Ann", "done").waitFor({ timeout: T });
      await row(a, "plan.bin", who, "done").waitFor({ timeout: T });
    }
    expect(sha(await download(b, "plan.bin", "from Ann"))).toBe(sha(file));
    expect(sha(await download(c, "plan.bin", "from Ann"))).toBe(sha(file));
    // To each member on its link's bulk lane, claimed for the member session (protocol/files.md §2, §8).
    const pumps = env.logs.filter((l) => / alice: \[loft engine\] files: sending from chunk \d+ /.test(l));
    expect(pumps.filter((l) => l.endsWith(" on the bulk lane")).length).toBeGreaterThanOrEqual(2);
    expect(pumps.filter((l) => l.endsWith(" inside the session"))).toEqual([]);
    // In 255 KiB chunks (protocol/files.md §2, "The chunk size"): every member's lane said it takes
    // them — Ann waited for both to say so (PATIENT_LANE), and her log says why.
    await expect.poll(() => env.logs).toContainEqual(expect.stringMatching(WIDE_CHUNKS_CHOSEN));
    await expect.poll(() => id(a, "file").count()).toBe(2);
    await expectNoAxeViolations(a, "room with files");
    // A room of just a file is not "No messages yet" on Home: its preview names the file
    // (ui/NoMessagePreview.tsx). Bea looks, then goes back in.
    await id(b, "back").click();
    await id(b, "home").waitFor();
    const item = b.locator(`[data-testid=room-item][data-room-id="${roomUrl.split("/room/")[1]}"]`);
    await expect.poll(() => item.getByTestId("room-preview").textContent()).toBe("File: plan.bin");
    expect(await b.getByText("No messages yet", { exact: true }).count()).toBe(0);
    await item.click();
    await id(b, "room-screen").waitFor();
  });

  it("a member away when the file is sent is offered it when back, and gets it whole", async () => {
    await c.goto("about:blank");
    await expect.poll(() => online(a).count(), { timeout: T }).toBe(1);
    const file = new Uint8Array(randomBytes(700_000));
    await id(a, "attach-input").setInputFiles({
      name: "later.bin",
      mimeType: "application/octet-stream",
      buffer: Buffer.from(file),
    });
    const forCat = row(a, "later.bin", "to Cat", "queued");
    await forCat.waitFor({ timeout: T });
    // Cat's relay mailbox (docs/protocol/files.md §9) takes files up to ≈ 0.7 MiB: this one waits.
    await expect
      .poll(() => forCat.getByTestId("file-status").textContent())
      .toBe(
        "Too large for Cat's relay mailbox (up to 0.7 MiB at a time): it will be offered when Cat is online.",
      );
    await row(b, "later.bin", "from Ann", "offered").getByTestId("file-decline").click();
    await row(a, "later.bin", "to Bea", "declined").waitFor({ timeout: T });
    await c.goto(roomUrl);
    await id(c, "room-screen").waitFor({ timeout: T });
    await row(c, "later.bin", "from Ann", "offered").getByTestId("file-accept").click({ timeout: T });
    await row(a, "later.bin", "to Cat", "done").waitFor({ timeout: T });
    expect(sha(await download(c, "later.bin", "from Ann"))).toBe(sha(file));
    await expectNoAxeViolations(c, "room with a received file");
  });
});
