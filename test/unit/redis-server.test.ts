import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { portHolder, type RedisServer, startRedis } from "../support/redis-server.ts";

/** `f` with a connection to `url`, closed after. */
async function withClient<T>(url: string, f: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  try {
    return await f(client);
  } finally {
    client.disconnect();
  }
}

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

  /**
   * A write, kill(), then `hold` takes the port (and returns how to let it go) while Redis is down:
   * the restart's first redis-server cannot bind; once the port is let go, restart() is done, on
   * our own process, with the write there.
   */
  async function restartPastHolder(key: string, hold: (port: number) => Promise<() => Promise<void>>) {
    redis ??= await startRedis();
    const server = redis;
    await withClient(server.url, async (c) => expect(await c.set(key, "kept")).toBe("OK"));
    await server.kill();
    const letGo = await hold(server.port);
    const before = (server.output().match(/Address already in use/gi) ?? []).length;
    const restarted = server.restart();
    try {
      await expect
        .poll(() => (server.output().match(/Address already in use/gi) ?? []).length)
        .toBeGreaterThan(before);
    } finally {
      await letGo();
    }
    await restarted;
    expect(server.running()).toBe(true);
    await withClient(server.url, async (c) => expect(await c.get(key)).toBe("kept"));
  }

  it("restart() waits for its port when something took it while Redis was down", async () => {
    // Another listener on Redis's port (as another test's server, or an outgoing connection's
    // source port, could take it). (It drops what connects: a connection left open would hold
    // its close() forever.)
    await restartPastHolder("p", async (port) => {
      const holder = createServer((socket) => socket.destroy());
      await new Promise<void>((resolve, reject) => {
        holder.once("error", reject);
        holder.listen(port, "127.0.0.1", resolve);
      });
      return () => new Promise<void>((resolve) => holder.close(() => resolve()));
    });
  });

  it("restart() does not take another redis-server holding its port for its own", async () => {
    // Another test's redis-server took the port: it answers PING too, but the restart is not done
    // until our own process answers (before, its PONG counted as ours and restart() resolved while
    // our process died of the taken port: nothing was listening once the other one stopped).
    await restartPastHolder("o", async (port) => {
      const other = await startRedis({ port });
      return () => other.stop();
    });
  });

  it("ensureRunning() starts a redis-server that died by itself again, and rejects: the test saw a crash", async () => {
    redis ??= await startRedis();
    const server = redis;
    await server.ensureRunning();
    const pid = () =>
      withClient(server.url, async (c) => Number(/process_id:(\d+)/.exec(await c.info("server"))?.[1]));
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

  it("a port another process holds is named in the error, with that process's pid", async () => {
    // Either bound ends the start: its bind refused until then, or still starting when it came.
    const refusal = (port: number, holder: string) =>
      new RegExp(`(could not bind|did not answer PING on) 127\\.0\\.0\\.1:${port} within 1 s: ${holder}\\n`);
    // Another redis-server: it answers PING, with its own pid.
    const other = await startRedis();
    try {
      const pid = await withClient(other.url, async (c) =>
        Number(/process_id:(\d+)/.exec(await c.info("server"))?.[1]),
      );
      await expect(startRedis({ port: other.port, startWithinMs: 1_000 })).rejects.toThrow(
        refusal(other.port, `another redis-server \\(pid ${pid}\\) answers on 127\\.0\\.0\\.1:${other.port}`),
      );
    } finally {
      await other.stop();
    }
    // Any other listener: the pid holding the socket (this test's own process).
    const holder = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const port = (holder.address() as AddressInfo).port;
    try {
      await expect(startRedis({ port, startWithinMs: 1_000 })).rejects.toThrow(
        refusal(port, `pid ${process.pid} \\(.*\\) holds 127\\.0\\.0\\.1:${port}`),
      );
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });

  it("our own redis-server answering only after the start's deadline is named as ours, slow to start, not as another", async () => {
    // The start's deadline passed and its PING answered late: the answer is our process's own.
    const server = await startRedis();
    try {
      const pid = await withClient(server.url, async (c) =>
        Number(/process_id:(\d+)/.exec(await c.info("server"))?.[1]),
      );
      const where = `127.0.0.1:${server.port}`;
      expect(await portHolder("127.0.0.1", server.port, pid)).toBe(
        `this redis-server (pid ${pid}) answers on ${where} only now: slow to start, the port is not taken`,
      );
      // Another pid was starting: this one is another redis-server, holding the port.
      expect(await portHolder("127.0.0.1", server.port, pid + 1)).toBe(
        `another redis-server (pid ${pid}) answers on ${where}`,
      );
    } finally {
      await server.stop();
    }
  });

  it("a redis-server killed by a signal while starting is reported as such, at once", async () => {
    // A stand-in that dies as a crash (or the OOM killer) would end it, before it answers PING.
    const dir = mkdtempSync(join(tmpdir(), "loft-redis-crash-"));
    const script = join(dir, "redis-server");
    writeFileSync(script, "#!/bin/sh\nkill -SEGV $$\n", { mode: 0o755 });
    const before = process.env.LOFT_REDIS_SERVER;
    process.env.LOFT_REDIS_SERVER = script;
    try {
      // Before: its exit code is null, so it was pinged until the 20 s deadline and reported as
      // one that "did not answer PING" (past this test's own bound).
      await expect(startRedis()).rejects.toThrow(/^redis-server exited \(signal SIGSEGV\)/);
    } finally {
      if (before === undefined) delete process.env.LOFT_REDIS_SERVER;
      else process.env.LOFT_REDIS_SERVER = before;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
