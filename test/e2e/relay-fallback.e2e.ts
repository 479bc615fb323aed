/**
 * Live chat through the relay when no direct path exists, in real Chromium through the real
 * server (`npm run build` first; `node scripts/e2e.mjs test/e2e/relay-fallback.e2e.ts`).
 *
 * The direct path is made impossible and only it: an init script drops every remote ICE candidate
 * (trickled ones and any in the SDP), so no connectivity check is ever sent and no data channel
 * opens, while WebSockets (signaling, relay) work as usual. The engine gives the direct attempt a
 * few seconds, then runs the same Noise + ratchet session over a RelayLink (queue pair on the
 * relay); presence says "via relay", messages reach "delivered" both ways, and none of them went
 * through the mailbox.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  incoming,
  introduce,
  openChatFromHome,
  openChatHere,
  outgoing,
  sendText,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";
import { NO_DIRECT_PATH } from "../support/no-direct-path.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

describe("live chat through the relay when no direct path comes up", () => {
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let a: Page;
  let b: Page;
  let logs: string[];

  beforeAll(async () => {
    env = await startTwoBrowsers({ initScript: NO_DIRECT_PATH });
    ({ loft, a, b, logs } = env);
  });
  afterAll(async () => {
    await env?.close();
  });

  it("chats both ways through the relay; presence says so; every message is delivered", async () => {
    const [aliceId] = await introduce(a, b, loft.url);
    // By clicks: a reload now would end the first connection while it opens (loft-ui.ts `startChatting`).
    await openChatHere(a);
    await openChatFromHome(b, aliceId);
    await waitForPresence(a, "online · via relay");
    await waitForPresence(b, "online · via relay");

    await sendText(a, "hello over the relay");
    await incoming(b, "hello over the relay").waitFor({ timeout: 30_000 });
    await waitForState(a, "hello over the relay", "delivered");
    await sendText(b, "the relay carries this too");
    await incoming(a, "the relay carries this too").waitFor({ timeout: 30_000 });
    await waitForState(b, "the relay carries this too", "delivered");
    for (let i = 1; i <= 5; i++) await sendText(a, `relay burst ${i}`);
    await incoming(b, "relay burst 5").waitFor({ timeout: 30_000 });
    await waitForState(a, "relay burst 5", "delivered");

    expect(await outgoing(a, "hello over the relay").getAttribute("data-state")).toBe("delivered");
    expect(logs.some((l) => l.includes("going through the relay"))).toBe(true);
    // The direct channel never opened: no selected ICE candidate pair was ever logged.
    expect(logs.some((l) => / path [0-9a-f]{8}: /.test(l))).toBe(false);
    await waitForPresence(a, "online · via relay");
  });
});
