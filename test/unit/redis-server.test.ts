import { createServer } from "node:net";
import Redis from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { type RedisServer, startRedis } from "../support/redis-server.ts";

// The test support itself: a write acknowledged under `appendfsync always` survives SIGKILL.
describe("test/support/redis-server", () => {
  let redis: RedisServer | undefined;
  afterAll(async () => {
    await redis?.stop();
  });

  it("starts Debian's redis-server, and an acknowledged write survives kill -9 and restart", async () => {
    redis = await startRedis();
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    expect(await client.set("k", "v")).toBe("OK");
    client.disconnect();
    await redis.kill();
    await redis.restart();
    const again = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await again.connect();
    expect(await again.get("k")).toBe("v");
    again.disconnect();
  });

  it("ensureRunning() leaves a running redis-server alone and starts a killed one again", async () => {
    redis ??= await startRedis();
    expect(redis.running()).toBe(true);
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    try {
      expect(await client.set("e", "1")).toBe("OK");
      const id = await client.client("ID");
      // Running: not restarted — the same connection still answers, under the same client id.
      await redis.ensureRunning();
      expect(await client.client("ID")).toBe(id);
    } finally {
      client.disconnect();
    }
    await redis.kill();
    expect(redis.running()).toBe(false);
    await redis.ensureRunning();
    expect(redis.running()).toBe(true);
    const again = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await again.connect();
    try {
      expect(await again.get("e")).toBe("1");
    } finally {
      again.disconnect();
    }
  });

  it("restart() waits for its port when something took it while Redis was down", async () => {
    redis ??= await startRedis();
    const server = redis;
    const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    expect(await client.set("p", "kept")).toBe("OK");
    client.disconnect();
    await server.kill();
    // Another listener on Redis's port (as another test's server, or an outgoing connection's
    // source port, could take it): the first redis-server of the restart cannot bind.
    // (It drops what connects: a connection left open would hold its close() forever.)
    const holder = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      holder.once("error", reject);
      holder.listen(server.port, server.host, resolve);
    });
    const before = (server.output().match(/Address already in use/gi) ?? []).length;
    const restarted = server.restart();
    try {
      await expect
        .poll(() => (server.output().match(/Address already in use/gi) ?? []).length)
        .toBeGreaterThan(before);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
    await restarted;
    expect(server.running()).toBe(true);
    const again = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await again.connect();
    try {
      expect(await again.get("p")).toBe("kept");
    } finally {
      again.disconnect();
    }
  });

  it("restart() does not take another redis-server holding its port for its own", async () => {
    redis ??= await startRedis();
    const server = redis;
    const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    expect(await client.set("o", "ours")).toBe("OK");
    client.disconnect();
    await server.kill();
    // Another test's redis-server took the port while ours was down: it answers PING too, but the
    // restart is not done until our own process answers (before, its PONG counted as ours and
    // restart() resolved while our process died of the taken port).
    const other = await startRedis({ port: server.port });
    const before = (server.output().match(/Address already in use/gi) ?? []).length;
    const restarted = server.restart();
    try {
      await expect
        .poll(() => (server.output().match(/Address already in use/gi) ?? []).length)
        .toBeGreaterThan(before);
    } finally {
      await other.stop();
    }
    await restarted;
    expect(server.running()).toBe(true);
    const again = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await again.connect();
    try {
      expect(await again.get("o")).toBe("ours");
    } finally {
      again.disconnect();
    }
  });

  it("ensureRunning() starts a redis-server that died by itself again, and rejects: the test saw a crash", async () => {
    redis ??= await startRedis();
    const server = redis;
    await server.ensureRunning();
    const pid = async () => {
      const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await client.connect();
      try {
        return Number(/process_id:(\d+)/.exec(await client.info("server"))?.[1]);
      } finally {
        client.disconnect();
      }
    };
    // Killed from outside (as the kernel's OOM killer would), not by kill(): a crash.
    process.kill(await pid(), "SIGKILL");
    await expect.poll(() => server.running()).toBe(false);
    await expect(server.ensureRunning()).rejects.toThrow(/exited by itself/);
    // Started again all the same, for the tests after this one; the crash is reported once.
    expect(server.running()).toBe(true);
    await server.ensureRunning();
    // A crash the test's own restart() came after is reported all the same.
    process.kill(await pid(), "SIGKILL");
    await expect.poll(() => server.running()).toBe(false);
    await server.restart();
    await expect(server.ensureRunning()).rejects.toThrow(/exited by itself/);
    await server.ensureRunning();
  });
});
