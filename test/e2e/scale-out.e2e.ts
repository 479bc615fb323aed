/**
 * Scale-out on Redis (docs/operations.md, "Scale-out on Redis"; issue #13's browser test): three
 * real Loft instances (`server/main.ts --redis`, each with its own embedded relay store) and one
 * Debian redis-server started here. Alice's browser uses instance A, Bob's instance B: they add
 * each other by link and chat over a direct data channel, so every offer, answer and ICE candidate
 * crossed from one instance to the other through Redis — each instance forwarded envelopes only
 * the other's client had sent. Instance C holds nobody and still says Redis is fine.
 *
 * Sync points are conditions (a message in the DOM, a state attribute, a metric), never durations.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../support/browser.ts";
import { type LoftProcess, startLoft } from "../support/loft-process.ts";
import {
  addByLink,
  byId,
  createIdentity,
  incoming,
  incomingTexts,
  myLink,
  openChat,
  sendText,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";
import { fetchMetric } from "../support/metrics.ts";
import { NO_DIRECT_PATH } from "../support/no-direct-path.ts";
import { type RedisServer, startRedis } from "../support/redis-server.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const metrics = (p: LoftProcess) => {
  if (!p.metricsUrl) throw new Error("no metrics listener");
  return p.metricsUrl;
};

async function health(p: LoftProcess) {
  const r = await fetch(`${metrics(p)}/health`);
  return (await r.json()) as {
    status: string;
    services: { signaling: { redis: string; registrations: number } };
  };
}

describe("three Loft instances on one Redis", () => {
  let redis: RedisServer;
  let loft: LoftProcess[] = [];
  const dirs: string[] = [];
  let browser: Browser;
  let a: Page;
  let b: Page;
  let aliceId = "";
  let bobId = "";

  beforeAll(async () => {
    redis = await startRedis();
    // One relay master key for all three (what an operator gives instances sharing one relay
    // store; docs/operations-relay.md), so the same command serves when the relay is on Redis too.
    const masterKey = randomBytes(32).toString("hex");
    loft = await Promise.all(
      [0, 1, 2].map(() => {
        const dir = mkdtempSync(join(tmpdir(), "loft-scale-"));
        dirs.push(dir);
        return startLoft({
          args: ["--relay-data-dir", dir, "--redis", redis.url],
          env: { LOFT_RELAY_MASTER_KEY: masterKey },
        });
      }),
    );
    browser = await launchChromium();
    a = await (await browser.newContext()).newPage();
    b = await (await browser.newContext()).newPage();
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(browser),
      () => Promise.all(loft.map((p) => p.stop())),
      () => redis?.stop(),
      () => {
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
      },
    ),
  );

  it("two browsers on different instances chat directly, signaled through Redis", async () => {
    const [onA, onB, onC] = loft as [LoftProcess, LoftProcess, LoftProcess];
    await createIdentity(a, onA.url, "Alice");
    await createIdentity(b, onB.url, "Bob");
    // A link opens the app of the server it names; each opens it in the app of their own instance.
    const on = (p: LoftProcess, link: string) => p.url + link.slice(new URL(link).origin.length);
    aliceId = await addByLink(b, on(onB, await myLink(a)));
    bobId = await addByLink(a, on(onA, await myLink(b)));
    await openChat(a, bobId);
    await openChat(b, aliceId);
    for (const page of [a, b])
      await expect.poll(() => byId(page, "chat-presence").textContent()).toBe("online · direct");

    await sendText(a, "hello Bob, from instance A");
    await incoming(b, "hello Bob, from instance A").waitFor();
    await waitForState(a, "hello Bob, from instance A", "delivered");
    await sendText(b, "hi Alice, from instance B");
    await incoming(a, "hi Alice, from instance B").waitFor();
    await waitForState(b, "hi Alice, from instance B", "delivered");

    // Each instance holds one of them, and each forwarded envelopes to its own client that the
    // other instance's client had sent (an instance counts what it hands to its sockets).
    expect((await health(onA)).services.signaling.registrations).toBe(1);
    expect((await health(onB)).services.signaling.registrations).toBe(1);
    const forwarded = async (p: LoftProcess) => {
      let n = 0;
      for (const kind of ["offer", "answer", "ice"])
        n += await fetchMetric(metrics(p), "loft_signaling_envelopes_forwarded_total", `kind="${kind}"`);
      return n;
    };
    expect(await forwarded(onA)).toBeGreaterThan(0);
    expect(await forwarded(onB)).toBeGreaterThan(0);
    const c = await health(onC);
    expect(c.services.signaling).toMatchObject({ redis: "ok", registrations: 0 });
  });

  it("the same two, with no direct path, chat through the relay across instances: none lost, none doubled", async () => {
    const [onA, onB] = loft as [LoftProcess, LoftProcess, LoftProcess];
    // From now on no ICE candidate reaches either peer connection (test/support/no-direct-path.ts),
    // and both reload: their engines start again and can only meet through the relay.
    for (const page of [a, b]) {
      await page.context().addInitScript(NO_DIRECT_PATH);
      await page.reload();
    }
    await openChat(a, bobId);
    await openChat(b, aliceId);
    for (const page of [a, b]) await waitForPresence(page, "online · via relay");

    const sendsOn = async (p: LoftProcess) =>
      fetchMetric(metrics(p), "loft_relay_commands_total", 'command="SEND",result="ok"');
    const [sendsA, sendsB] = [await sendsOn(onA), await sendsOn(onB)];
    const fromA = Array.from({ length: 6 }, (_, i) => `A to B through the relay #${i + 1}`);
    const fromB = Array.from({ length: 6 }, (_, i) => `B to A through the relay #${i + 1}`);
    // Interleaved, as two people typing: each side's messages cross while the other's do.
    for (let i = 0; i < fromA.length; i++) {
      await sendText(a, fromA[i]!);
      await sendText(b, fromB[i]!);
    }
    await waitForState(a, fromA.at(-1)!, "delivered");
    await waitForState(b, fromB.at(-1)!, "delivered");
    for (const m of fromA) await waitForState(a, m, "delivered");
    for (const m of fromB) await waitForState(b, m, "delivered");
    // Every message exactly once on the other side, in the order sent (after the direct ones).
    await expect.poll(() => incomingTexts(b)).toEqual(["hello Bob, from instance A", ...fromA]);
    await expect.poll(() => incomingTexts(a)).toEqual(["hi Alice, from instance B", ...fromB]);
    // The relay carried them: the instances' relays took SENDs meanwhile (metrics rendered at
    // most once a second: polled).
    await expect
      .poll(async () => (await sendsOn(onA)) + (await sendsOn(onB)), { timeout: 10_000 })
      .toBeGreaterThan(sendsA + sendsB);
    for (const page of [a, b]) await waitForPresence(page, "online · via relay");
  });
});
