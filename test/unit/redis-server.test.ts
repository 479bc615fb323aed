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
});
