/**
 * Several signaling servers (docs/protocol/signaling.md, "Several servers"): the client is on the
 * first one that answers, falls back to the next at once when one is down — before registering
 * and after a drop — and says "unreachable" only when none of them answers. Real services on
 * loopback, real WebSockets.
 */
import { request } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import type { LoftError } from "../core/errors.ts";
import { SignalingClient, type SignalingEvent } from "../core/signaling/client.ts";
import { startRedis } from "../test/support/redis-server.ts";
import type { SignalingConfig } from "./config.ts";
import { makeUser, type RunningSignaling, startSignaling, wsFactory } from "./testing.ts";

/** The HTTP status a WebSocket upgrade to `url` is answered with (101 when accepted). */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url.replace(/^ws/, "http"));
    const req = request({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      resolve(101);
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.setTimeout(5_000, () => req.destroy(new Error("upgrade timed out")));
    req.end();
  });
}

/** A loopback port nothing listens on (it was just free). */
async function deadPort(): Promise<number> {
  const probe: Server = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", () => resolve()));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("signaling client with several servers", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  const server = async (port = 0, config: Partial<SignalingConfig> = {}): Promise<RunningSignaling> => {
    // Clients come back within 50 ms of a GOING_AWAY (the default spreads them over seconds).
    const s = await startSignaling({ reconnectSpreadMs: 50, ...config }, port);
    cleanup.push(() => s.close());
    return s;
  };
  const client = (url: string, fallbackUrls: string[], user = makeUser()) => {
    const c = new SignalingClient({
      url,
      fallbackUrls,
      user,
      connect: wsFactory(),
      reconnect: { initialMs: 10, maxMs: 50 },
      requestTimeoutMs: 2_000,
    });
    const events: SignalingEvent[] = [];
    c.on((e) => events.push(e));
    cleanup.push(() => c.close());
    return { c, events, user };
  };

  it("registers on the first server that answers, with no error for the one that is down", async () => {
    const dead = `ws://127.0.0.1:${await deadPort()}/signal`;
    const up = await server();
    const { c, events } = client(dead, [up.url]);
    await c.start();
    expect(c.state).toBe("registered");
    expect(c.url).toBe(up.url);
    expect(events.filter((e) => e.type === "error")).toEqual([]);
    // The registration is real: a second client on that server finds it online.
    const other = client(up.url, []);
    await other.c.start();
    const seen = await other.c.lookup(c.identityKey);
    expect(seen.online).toBe(true);
  });

  it("moves to the next server when the one it was on goes away, and is reachable there", async () => {
    const a = await server();
    const b = await server();
    const alice = client(a.url, [b.url]);
    await alice.c.start();
    expect(alice.c.url).toBe(a.url);
    // Bob is on B only: he reaches Alice once she has moved there.
    const bob = client(b.url, []);
    await bob.c.start();
    await a.close();
    await until(() => alice.c.state === "registered" && alice.c.url === b.url, "alice on B");
    const got = new Promise<Uint8Array>((resolve) =>
      alice.c.on((e) => {
        if (e.type === "signal") resolve(e.envelope.payload);
      }),
    );
    await bob.c.signal(alice.c.identityKey, "offer", new Uint8Array([1, 2, 3]));
    expect(await got).toEqual(new Uint8Array([1, 2, 3]));
  });

  it("says unreachable once every server failed, goes on trying, and comes back on the first", async () => {
    const portA = await deadPort();
    const portB = await deadPort();
    const urlA = `ws://127.0.0.1:${portA}/signal`;
    const { c, events } = client(urlA, [`ws://127.0.0.1:${portB}/signal`]);
    const err = (await c.start().catch((e) => e)) as LoftError;
    expect(err.code).toBe("LOFT_ERR_SIGNALING_UNREACHABLE");
    // One error for the round of both servers, not one per server.
    expect(events.filter((e) => e.type === "error").length).toBe(1);
    const a = await server(portA);
    await until(() => c.state === "registered", "registered once A is up");
    expect(c.url).toBe(a.url);
  });

  it("a server that takes the connection and says nothing counts as down: the next one is used", async () => {
    // A WebSocket server that accepts and never sends its VERSION_HEADER (a hung instance).
    const silent = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => silent.once("listening", () => resolve()));
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          for (const c of silent.clients) c.terminate();
          silent.close(() => resolve());
        }),
    );
    const silentUrl = `ws://127.0.0.1:${(silent.address() as { port: number }).port}/signal`;
    const up = await server();
    const c = new SignalingClient({
      url: silentUrl,
      fallbackUrls: [up.url],
      user: makeUser(),
      connect: wsFactory(),
      reconnect: { initialMs: 10, maxMs: 50 },
      // Also the REGISTER's bound on the working server: wide enough for a loaded CI machine.
      requestTimeoutMs: 2_000,
    });
    cleanup.push(() => c.close());
    const errors: LoftError[] = [];
    c.on((e) => {
      if (e.type === "error") errors.push(e.error);
    });
    await c.start();
    expect(c.url).toBe(up.url);
    expect(errors).toEqual([]);
    // The silent server's connection was given up, not left open.
    await until(() => [...silent.clients].every((ws) => ws.readyState !== ws.OPEN), "silent socket closed");
    // With no other server: unreachable, said so, and the socket closed by the client with why
    // (client.ts `#abandon`: one way out for the hello's, the upgrade's and UNAVAILABLE's give-ups).
    const closes: string[] = [];
    silent.on("connection", (ws) => ws.on("close", (code, reason) => closes.push(`${code} ${reason}`)));
    const alone = new SignalingClient({
      url: silentUrl,
      user: makeUser(),
      connect: wsFactory(),
      reconnect: false,
      requestTimeoutMs: 1_000,
    });
    cleanup.push(() => alone.close());
    expect(await alone.start().catch((e: LoftError) => e)).toMatchObject({
      code: "LOFT_ERR_SIGNALING_UNREACHABLE",
      message: expect.stringContaining("did not answer"),
    });
    expect(alone.state).toBe("closed");
    await until(() => closes.length === 1, "the lone client's socket closed");
    expect(closes).toEqual(["1000 no VERSION_HEADER"]);
  });

  it("a server that takes the TCP connection and never answers the upgrade is left after the upgrade's own bound", async () => {
    // Accepts, reads the upgrade request and answers nothing (a black hole behind a load balancer,
    // a middlebox that swallows upgrades): the client's socket stays CONNECTING.
    const swallowed: Socket[] = [];
    let closedByClient = 0;
    const swallow = createServer((socket) => {
      swallowed.push(socket);
      socket.on("error", () => {});
      socket.on("close", () => closedByClient++);
      socket.resume();
    });
    await new Promise<void>((resolve) => swallow.listen(0, "127.0.0.1", () => resolve()));
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of swallowed) socket.destroy();
          swallow.close(() => resolve());
        }),
    );
    const swallowUrl = `ws://127.0.0.1:${(swallow.address() as { port: number }).port}/signal`;
    const up = await server();
    const options = {
      user: makeUser(),
      connect: wsFactory(),
      // The whole opening's bound (up to the VERSION_HEADER), and every request's: far beyond the
      // waits below, so only the upgrade's own bound can move the client on.
      requestTimeoutMs: 120_000,
      // Far below the request timeout, far above a loaded loopback upgrade of the live server.
      openTimeoutMs: 2_000,
    };
    const c = new SignalingClient({
      ...options,
      url: swallowUrl,
      fallbackUrls: [up.url],
      reconnect: { initialMs: 10, maxMs: 50 },
    });
    cleanup.push(() => c.close());
    const errors: LoftError[] = [];
    c.on((e) => {
      if (e.type === "error") errors.push(e.error);
    });
    void c.start().catch(() => {});
    await until(
      () => c.state === "registered",
      "registered on the next server, the upgrade unanswered",
      30_000,
    );
    expect(c.url).toBe(up.url);
    expect(errors).toEqual([]);
    // The unanswered upgrade's socket was given up by the client, not left open.
    expect(swallowed.length).toBe(1);
    await until(() => closedByClient === 1, "the swallowed upgrade's socket closed by the client");
    // With no other server: unreachable, as a refused connection is.
    const alone = new SignalingClient({ ...options, url: swallowUrl, reconnect: false });
    cleanup.push(() => alone.close());
    const failed = alone.start().catch((e: LoftError) => e);
    await until(() => alone.state === "closed", "the lone client gave up on the unanswered upgrade", 30_000);
    expect(await failed).toMatchObject({
      code: "LOFT_ERR_SIGNALING_UNREACHABLE",
      message: expect.stringContaining("did not answer the upgrade"),
    });
  });

  it("Redis down on the server in use: UNAVAILABLE moves the client to the next server at once, and a new connection there is refused (503)", async () => {
    // docs/operations.md, "Redis down: one rule": an instance that lost Redis refuses new
    // WebSockets with 503 and answers UNAVAILABLE on open ones; the client goes to its next server.
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const a = await server(0, { redis: redis.url });
    const b = await server();
    const alice = client(a.url, [b.url]);
    await alice.c.start();
    expect(alice.c.url).toBe(a.url);
    await redis.kill();
    await until(() => a.service.unavailable?.() !== undefined, "A knows Redis is gone");
    expect(await upgradeStatus(a.url)).toBe(503);
    // Her next request there is answered UNAVAILABLE: she leaves A for B instead of asking A again.
    await alice.c.register().catch(() => {});
    await until(() => alice.c.state === "registered" && alice.c.url === b.url, "alice on B");
    // Someone starting now goes past A (its upgrade refused) to B, with no error to show.
    const bob = client(a.url, [b.url]);
    await bob.c.start();
    expect(bob.c.url).toBe(b.url);
    expect(bob.events.filter((e) => e.type === "error")).toEqual([]);
    expect((await bob.c.lookup(alice.c.identityKey)).online).toBe(true);
  });

  it("repeats and empty fallbacks are ignored: one server is one server", async () => {
    const up = await server();
    const { c, events } = client(up.url, [up.url, ""]);
    await c.start();
    await up.close();
    const err = await new Promise<LoftError>((resolve) =>
      c.on((e) => {
        if (e.type === "error") resolve(e.error);
      }),
    );
    expect(["LOFT_ERR_SIGNALING_CLOSED", "LOFT_ERR_SIGNALING_UNREACHABLE"]).toContain(err.code);
    expect(c.url).toBe(up.url);
    expect(events.some((e) => e.type === "registered")).toBe(true);
  });
});
