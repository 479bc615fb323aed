/**
 * The metrics listener (host/metrics.ts): the public port says only `{"status":"ok"}` and has
 * no /metrics; the listener, on 127.0.0.1 by default, serves /metrics and the detailed /health,
 * behind a bearer token when one is set; rendering is shared for a second, so a flood of scrapes
 * renders once.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Gauge, Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PRIMITIVES } from "../core/crypto/provider.ts";
import { type LoftProcess, startLoft } from "../test/support/loft-process.ts";
import { createHost } from "./host.ts";
import { request } from "./http-testing.ts";
import { createLogger } from "./log.ts";
import { cachedRender } from "./metrics.ts";

let dir: string;
let loft: LoftProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loft-metrics-"));
  loft = await startLoft({
    // --upgrade-answer-ms: server/main.ts hands it to createHost (the detailed /health shows it).
    args: ["--serve-static", "false", "--relay-data-dir", join(dir, "relay"), "--upgrade-answer-ms", "750"],
  });
});
afterAll(async () => {
  await loft?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("public /health and the metrics listener", () => {
  it("public /health says status only; /metrics is not on the public port", async () => {
    const health = await request(`${loft.url}/health`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body.toString())).toEqual({ status: "ok" });
    expect(health.headers["cache-control"]).toBe("no-store");
    const head = await request(`${loft.url}/health`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(head.headers["content-length"]).toBe(String(health.body.length));
    expect((await request(`${loft.url}/metrics`)).status).toBe(404);
    expect((await request(`${loft.url}/metrics`, { method: "HEAD" })).status).toBe(404);
  });

  it("the listener serves /metrics and the detailed /health, on 127.0.0.1 only", async () => {
    const base = loft.metricsUrl!;
    const metrics = await request(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    const text = metrics.body.toString();
    for (const name of [
      "loft_relay_",
      "loft_signaling_",
      "loft_nodejs_version_info",
      "loft_host_websocket_sources",
    ])
      expect(text).toContain(name);
    const health = JSON.parse((await request(`${base}/health`)).body.toString()) as {
      status: string;
      upgrade_answer_ms: number;
      services: Record<string, unknown>;
      crypto: Record<string, string>;
    };
    expect(health.status).toBe("ok");
    expect(health.upgrade_answer_ms).toBe(750);
    expect(Object.keys(health.services).sort()).toEqual(["relay", "signaling", "smp-bridge"]);
    // The crypto backend table: every primitive named, native where node:crypto has it.
    expect(Object.keys(health.crypto).sort()).toEqual([...PRIMITIVES].sort());
    for (const p of ["x25519", "ed25519", "chacha20poly1305", "aes256gcm", "sha256", "hkdfSha256"])
      expect(health.crypto[p], p).toBe("node");
    expect(health.crypto.mlkem768).toBe("noble");
    const head = await request(`${base}/metrics`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    // Bound to 127.0.0.1: another loopback address of this machine gets no answer.
    const port = new URL(base).port;
    await expect(request(`http://127.0.0.2:${port}/metrics`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it("with --metrics-token, the listener answers only the right bearer", async () => {
    const token = "s3cret-token-for-the-scraper";
    const guarded = await startLoft({
      args: ["--serve-static", "false", "--metrics-token", token, "--relay-data-dir", join(dir, "r2")],
    });
    try {
      const base = guarded.metricsUrl!;
      expect((await request(`${base}/metrics`)).status).toBe(401);
      expect((await request(`${base}/health`)).status).toBe(401);
      const wrong = await request(`${base}/metrics`, { headers: { authorization: `Bearer ${token}x` } });
      expect(wrong.status).toBe(401);
      expect(wrong.headers["www-authenticate"]).toMatch(/^Bearer/);
      const right = await request(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(right.status).toBe(200);
      expect(right.body.toString()).toContain("loft_relay_");
      expect(guarded.output()).not.toContain(token);
    } finally {
      await guarded.stop();
    }
  });

  it("--metrics-port off serves metrics nowhere; bad metrics flags stop the start", async () => {
    const off = await startLoft({
      args: ["--serve-static", "false", "--metrics-port", "off", "--relay-data-dir", join(dir, "r3")],
    });
    try {
      expect(off.metricsUrl).toBeUndefined();
      expect((await request(`${off.url}/metrics`)).status).toBe(404);
      expect(JSON.parse((await request(`${off.url}/health`)).body.toString())).toEqual({ status: "ok" });
    } finally {
      await off.stop();
    }
    await expect(startLoft({ args: ["--metrics-port", "nine"] })).rejects.toThrow(/--metrics-port/);
    // The port is taken (by the first server's metrics listener): a clear message, exit code 2.
    const taken = new URL(loft.metricsUrl!).port;
    await expect(
      startLoft({
        args: ["--serve-static", "false", "--metrics-port", taken, "--relay-data-dir", join(dir, "r4")],
      }),
    ).rejects.toThrow(
      /exited \(2\)[\s\S]*configuration error: --metrics-port\/--metrics-host: cannot listen on metrics listener 127\.0\.0\.1:\d+: EADDRINUSE/,
    );
    await expect(startLoft({ args: ["--metrics-token", "short"] })).rejects.toThrow(/--metrics-token/);
  });
});

describe("cached rendering", () => {
  it("renders at most once per second, shares an in-flight rendering, forgets a failure", async () => {
    let clock = 0;
    let renders = 0;
    let fail = false;
    const render = cachedRender(
      async () => {
        renders++;
        if (fail) throw new Error("collect failed");
        return `r${renders}`;
      },
      1_000,
      () => clock,
    );
    const first = await Promise.all(Array.from({ length: 50 }, () => render()));
    expect(new Set(first)).toEqual(new Set(["r1"]));
    clock = 999;
    expect(await render()).toBe("r1");
    clock = 1_000;
    expect(await render()).toBe("r2");
    fail = true;
    clock = 2_000;
    await expect(render()).rejects.toThrow(/collect failed/);
    fail = false;
    expect(await render()).toBe("r4");
    expect(renders).toBe(4);
  });

  it("a flood of scrapes on a real host collects the registry far fewer times than it is asked", async () => {
    const registry = new Registry();
    let collects = 0;
    new Gauge({
      name: "test_collects",
      help: "how often the registry was collected",
      registers: [registry],
      collect() {
        collects++;
        this.set(collects);
      },
    });
    const host = createHost({
      port: 0,
      host: "127.0.0.1",
      staticDir: undefined,
      registry,
      log: createLogger("metrics-test", "silent"),
      metrics: { port: 0, host: "127.0.0.1", token: undefined },
    });
    await host.listen();
    try {
      const scrapes = 40;
      const answers = await Promise.all(
        Array.from({ length: scrapes }, () => request(`http://127.0.0.1:${host.metricsPort()}/metrics`)),
      );
      expect(answers.every((a) => a.status === 200)).toBe(true);
      expect(collects).toBeGreaterThanOrEqual(1);
      expect(collects).toBeLessThan(scrapes / 4);
    } finally {
      await host.close();
    }
  });
});
