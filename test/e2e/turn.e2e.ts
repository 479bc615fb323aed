/**
 * Relay-only direct links ("Use TURN relays only", EngineSettings.iceTransportPolicy "relay") in
 * real Chromium through the real server (`npm run build` first;
 * `node scripts/e2e.mjs test/e2e/turn.e2e.ts`).
 *
 * Setup: the test starts Debian's coturn (`turnserver` from package `coturn`, /usr/bin on Debian;
 * test/support/turn-server.ts) inside the private network namespace scripts/e2e.mjs made, with
 * the namespace's one address (198.18.0.1) as both `--listening-ip` and `--relay-ip`, on a free
 * port, UDP/TCP only (`--no-tls --no-dtls --no-cli`), static long-term credentials
 * (`--lt-cred-mech --user u:p --realm loft.test`), a temp `--pidfile` and `--userdb`, and
 * `--log-file stdout --simple-log --verbose` (without `--verbose` coturn logs no per-request
 * lines). It is ready once it answers a STUN Binding request, and is stopped at the end. Both
 * browsers relay through the same coturn, so each relayed address is a peer of the other's
 * allocation on coturn's own IP; coturn accepts that as is (198.18.0.1 is not loopback, so
 * `--allow-loopback-peers` is not needed).
 *
 * Two browser contexts each enter the TURN server in Settings → Servers and tick "Use TURN relays
 * only" (first refused while no TURN server is entered), reload so the engine starts with it,
 * become contacts and chat both ways over the data channel until `delivered`. The engine logs
 * the selected ICE candidate pair: it must be relay/relay, never a host candidate, and coturn's
 * log must show the allocations.
 *
 * The second suite runs coturn in its REST-API mode (`--use-auth-secret --static-auth-secret`)
 * and the server with `--turn-url` + `--turn-secret`: nobody types a TURN server; the signaling
 * server pushes each registered browser time-limited credentials (ICE_SERVERS), Settings says the
 * site provides a TURN relay and lets "TURN relays only" be ticked with the field empty, and the
 * chat runs relay/relay with usernames of the form `<expiry>:<tag>` in coturn's log. Neither the
 * page's storage nor anything it logged holds the shared secret.
 *
 * Sync points are conditions (DOM text, state attributes, console lines), never durations.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LoftProcess } from "../support/loft-process.ts";
import {
  byId,
  incoming,
  inLoftDb,
  introduce,
  openChatFromHome,
  openChatHere,
  sendText,
  waitForPresence,
  waitForState,
} from "../support/loft-ui.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";
import { startTurn, TURN_PASSWORD, TURN_USER, type TurnServer } from "../support/turn-server.ts";
import { startTwoBrowsers, type TwoBrowsers } from "../support/two-browsers.ts";

const id = byId;

/** Settings → Servers: the TURN server and relay-only, saved; the reload starts the engine with them. */
async function useTurnOnly(page: Page, turn: TurnServer): Promise<void> {
  await page.goto(new URL(page.url()).origin);
  await id(page, "nav-settings").click();
  await id(page, "ice-servers").waitFor();
  // Refused while no TURN server is entered.
  await id(page, "ice-servers").fill("");
  await id(page, "ice-relay-only").click();
  await expect.poll(() => id(page, "endpoints-result").textContent()).toContain("needs a TURN server");
  expect(await id(page, "ice-relay-only").isChecked()).toBe(false);

  await id(page, "ice-servers").fill(`${turn.url} ${TURN_USER} ${TURN_PASSWORD}`);
  await id(page, "ice-relay-only").check();
  await id(page, "save-endpoints").click();
  await expect.poll(() => id(page, "endpoints-result").textContent()).toContain("Saved");
  await page.reload(); // a new start of the app, still on Settings
  expect(await id(page, "ice-relay-only").isChecked()).toBe(true);
  await id(page, "back").click();
}

/** Both pages logged a selected candidate pair relay/relay over UDP, and no page any other pair. */
async function expectRelayPathsOnly(logs: string[]): Promise<void> {
  for (const who of ["alice", "bob"])
    await expect
      .poll(() =>
        logs.filter((l) => l.includes(` ${who}: `) && / path [0-9a-f]{8}: relay\/relay udp/.test(l)),
      )
      .not.toHaveLength(0);
  expect(logs.filter((l) => / path [0-9a-f]{8}: /.test(l) && !/relay\/relay/.test(l))).toEqual([]);
}

describe("direct chat through a TURN relay only", () => {
  let turn: TurnServer;
  let env: TwoBrowsers;
  let loft: LoftProcess;
  let a: Page;
  let b: Page;
  let logs: string[];

  beforeAll(async () => {
    turn = await startTurn();
    env = await startTwoBrowsers();
    ({ loft, a, b, logs } = env);
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(env?.browser),
      () => env?.close(`--- coturn ---\n${turn?.output()}`),
      () => turn?.stop(),
    ),
  );

  it("chats both ways over a relayed data channel; every message reaches delivered", async () => {
    const [aliceId] = await introduce(a, b, loft.url, ["Alice", "Bob"], (page) => useTurnOnly(page, turn));

    // By clicks: a reload now would end the first connection while it opens (loft-ui.ts `startChatting`).
    await openChatHere(a);
    await openChatFromHome(b, aliceId);
    await waitForPresence(a, "online · direct");
    await waitForPresence(b, "online · direct");

    await sendText(a, "hello Bob, through TURN");
    await incoming(b, "hello Bob, through TURN").waitFor();
    await waitForState(a, "hello Bob, through TURN", "delivered");
    await sendText(b, "hi Alice, my address stays hidden");
    await incoming(a, "hi Alice, my address stays hidden").waitFor();
    await waitForState(b, "hi Alice, my address stays hidden", "delivered");
    expect(await id(a, "chat-presence").textContent()).toBe("online · direct");
    expect(await id(b, "chat-presence").textContent()).toBe("online · direct");

    // The selected candidate pair is TURN on both ends, on both sides; never a host candidate.
    await expectRelayPathsOnly(logs);

    // coturn saw the allocations and the permissions for the other side's relayed address.
    await expect.poll(() => turn.output()).toMatch(/user <u>: incoming packet ALLOCATE processed, success/);
    await expect.poll(() => turn.output()).toMatch(/incoming packet CREATE_PERMISSION processed, success/);
  });
});

/** Both pages: relay-only with the Settings field empty, since the site's server provides TURN. */
async function useServerTurnOnly(page: Page): Promise<void> {
  await page.goto(new URL(page.url()).origin);
  await id(page, "nav-settings").click();
  await id(page, "server-turn").waitFor();
  await id(page, "ice-servers").fill("");
  await id(page, "ice-relay-only").check();
  await id(page, "save-endpoints").click();
  await expect.poll(() => id(page, "endpoints-result").textContent()).toContain("Saved");
  await page.reload();
  expect(await id(page, "ice-relay-only").isChecked()).toBe(true);
  await id(page, "back").click();
}

describe("TURN credentials handed out by the server (coturn REST API)", () => {
  const secret = `turn-secret-${Math.random().toString(36).slice(2)}-shared`;
  let turn: TurnServer;
  let env: TwoBrowsers;
  let a: Page;
  let b: Page;
  let logs: string[];

  beforeAll(async () => {
    turn = await startTurn({ authSecret: secret });
    env = await startTwoBrowsers({
      loftArgs: ["--turn-url", turn.url],
      loftEnv: { LOFT_TURN_SECRET: secret },
    });
    ({ a, b, logs } = env);
  });
  afterAll(() =>
    tearDown(
      () => closeBrowser(env?.browser),
      () => env?.close(`--- coturn ---\n${turn?.output()}`),
      () => turn?.stop(),
    ),
  );

  it("relay-only without a TURN server typed in: the chat runs relay/relay on short-lived credentials", async () => {
    const [aliceId] = await introduce(a, b, env.loft.url, ["Alice", "Bob"], useServerTurnOnly);
    await openChatHere(a);
    await openChatFromHome(b, aliceId);
    await waitForPresence(a, "online · direct");
    await sendText(a, "hello over a server-issued TURN");
    await incoming(b, "hello over a server-issued TURN").waitFor();
    await waitForState(a, "hello over a server-issued TURN", "delivered");

    await expectRelayPathsOnly(logs);
    // coturn accepted REST usernames (expiry:tag), a day ahead by default, never a static user.
    await expect
      .poll(() => turn.output())
      .toMatch(/user <\d{10}:[A-Za-z0-9_-]{12}>: incoming packet ALLOCATE processed, success/);
    const expiry = Number(/user <(\d{10}):/.exec(turn.output())![1]);
    expect(expiry * 1000).toBeGreaterThan(Date.now() + 23 * 3600_000);
    // The secret itself never reached a page: not in what it logged, not in its storage.
    expect(logs.join("\n")).not.toContain(secret);
    for (const page of [a, b]) {
      const stored = await inLoftDb(page, async ({ db, req }) => {
        const out: unknown[] = [];
        for (const name of Array.from(db.objectStoreNames))
          out.push(await req(db.transaction(name).objectStore(name).getAll()));
        return JSON.stringify(out);
      });
      expect(stored).not.toContain(secret);
      expect(stored).not.toContain("turn:");
    }
  });
});
