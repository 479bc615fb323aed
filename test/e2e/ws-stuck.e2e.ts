/**
 * A relay upgrade that is never answered, on the same host:port as signaling, in real Chromium
 * (`npm run build` first; `node scripts/e2e.mjs test/e2e/ws-stuck.e2e.ts`). Chromium keeps one
 * WebSocket per host:port in CONNECTING and queues the others behind it (RFC 6455 §4.1): a relay
 * socket the app left CONNECTING after its own opening timed out held up the page's signaling
 * for good — nothing connected until the page navigated. The engine opens its relay before
 * signaling (web/src/engine/engine.ts `pool.keep` before `signaling.start`), so every start
 * meets the stuck socket first.
 *
 * The fault: a TCP proxy in front of the real server (the pages load the app through it, so
 * /signal and /relay are both on its host:port) that forwards every byte both ways, except that
 * it swallows /relay upgrades — reads them and never answers. Both people still come online and
 * chat (directly: signaling is all they need); each stuck relay socket is closed by the page.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/free-port.ts";
import { incoming, sendText, startChatting, waitForState } from "../support/loft-ui.ts";
import { tearDown } from "../support/teardown.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

/** The swallowing proxy: counts the /relay upgrades it held and how many of them the page closed. */
interface Proxy {
  url: string;
  swallowed: () => number;
  closedByPage: () => number;
  close: () => Promise<void>;
}

async function swallowingProxy(port: number, targetPort: number): Promise<Proxy> {
  let swallowed = 0;
  let closedByPage = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    client.once("data", (first: Buffer) => {
      const head = first.toString("latin1");
      if (/^GET \/relay[ ?]/.test(head) && /\r\nupgrade: *websocket/i.test(head)) {
        swallowed++;
        client.on("close", () => closedByPage++);
        client.resume(); // read whatever comes; answer nothing
        return;
      }
      const up = createConnection(targetPort, "127.0.0.1");
      sockets.add(up);
      up.on("close", () => {
        sockets.delete(up);
        client.destroy();
      });
      up.on("error", () => {});
      client.on("close", () => up.destroy());
      up.write(first);
      client.pipe(up);
      up.pipe(client);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    swallowed: () => swallowed,
    closedByPage: () => closedByPage,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("a relay upgrade never answered, on signaling's host:port", () => {
  let env: TwoBrowsers;
  let proxy: Proxy | undefined;
  let a: Page;
  let b: Page;

  beforeAll(async () => {
    const port = await freePort();
    env = await startTwoBrowsers({ loftArgs: ["--allowed-origins", `http://127.0.0.1:${port}`] });
    ({ a, b } = env);
    proxy = await swallowingProxy(port, Number(new URL(env.loft.url).port));
  });
  // The proxy is closed even when the pages' close throws or hangs (test/support/teardown.ts).
  afterAll(() =>
    tearDown(
      () => env?.close(),
      () => proxy?.close(),
    ),
  );

  it("both people still come online through signaling and chat; the page closes each stuck relay socket", async () => {
    const p = proxy!;
    await startChatting(a, b, p.url);
    await sendText(a, "through signaling, past a stuck relay");
    await incoming(b, "through signaling, past a stuck relay").waitFor({ timeout: 60_000 });
    await waitForState(a, "through signaling, past a stuck relay", "delivered");
    // The fault was met (the relay upgrades hung), and the pages let go of every stuck socket but
    // the attempt each may have under way (one per relay URL, web/src/net/reconnector.ts): a
    // socket left CONNECTING would pile up here as the pools retry.
    expect(p.swallowed()).toBeGreaterThan(0);
    await expect.poll(p.closedByPage, { timeout: 30_000 }).toBeGreaterThan(0);
    await expect.poll(() => p.swallowed() - p.closedByPage(), { timeout: 30_000 }).toBeLessThanOrEqual(2);
  });
});
