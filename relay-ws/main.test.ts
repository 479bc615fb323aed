/**
 * `relay-ws/main.ts` as its own process (what `npm run relay` runs): the public port answers a
 * minimal /health and 404 for /metrics (no figures to the internet); the metrics listener serves
 * Prometheus /metrics and the detailed /health; the relay works on either WebSocket layer
 * (`--ws-impl lean|ws`, host/websocket-server.ts); a metrics port in use, or an unknown layer, is a
 * configuration error (exit 2) naming the flag; a graceful stop held by an operation that never
 * settles ends at the stop bound with exit code 1 and a log line naming what was pending
 * (docs/operations.md, "Stopping").
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LoftStartError, startLoft } from "../test/support/loft-process.ts";
import { connectRelay } from "./testing.ts";

const dataDir = mkdtempSync(join(tmpdir(), "loft-relay-main-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("standalone relay process", () => {
  it.each(["lean", "ws"])(
    "keeps /metrics and the detailed /health off the public port and serves them on the metrics listener (--ws-impl %s)",
    async (impl) => {
      const proc = await startLoft({
        entry: "relay-ws/main.ts",
        args: ["--relay-data-dir", dataDir, "--ws-impl", impl],
        // The upgrade bound reaches the host (relay-ws/main.ts hands it to createHost).
        env: { LOFT_UPGRADE_ANSWER_MS: "2500" },
      });
      try {
        expect(await (await fetch(`${proc.url}/health`)).json()).toEqual({ status: "ok" });
        expect((await fetch(`${proc.url}/metrics`)).status).toBe(404);
        expect((await fetch(`${proc.url}/health`, { method: "HEAD" })).status).toBe(200);

        const client = await connectRelay(`ws://127.0.0.1:${proc.port}/relay`);
        await client.createQueue();
        const health = (await (await fetch(`${proc.metricsUrl}/health`)).json()) as {
          upgrade_answer_ms: number;
          services: { relay: { connections: number; queues: number } };
        };
        expect(health.upgrade_answer_ms).toBe(2500);
        expect(health.services.relay.connections).toBe(1);
        expect(health.services.relay.queues).toBeGreaterThanOrEqual(1);
        const metrics = await (await fetch(`${proc.metricsUrl}/metrics`)).text();
        expect(metrics).toMatch(/loft_relay_commands_total\{command="NEW",result="ok"\} 1/);
        expect(metrics).toContain("loft_host_websocket_sources 1");
        client.close();
        expect(await proc.stop("SIGTERM")).toBe(0);
        expect(proc.output()).not.toMatch(/127\.0\.0\.1/);
      } finally {
        await proc.stop("SIGKILL");
      }
    },
  );

  it("a stop held by an operation that never settles ends at the stop bound: exit 1, what was pending logged", async () => {
    const proc = await startLoft({
      entry: "relay-ws/main.ts",
      // 2 s, not less: on a loaded machine the steps before "operations" (companions) could outlast a
      // shorter bound, and the pending step logged would then not be the held NEW's.
      args: ["--relay-data-dir", dataDir, "--shutdown-timeout-ms", "2000"],
      // Every NEW's store write never settles in that process (the hook says so on stdout).
      imports: ["./test/support/hold-relay-new.ts"],
    });
    const client = await connectRelay(`ws://127.0.0.1:${proc.port}/relay`);
    try {
      void client.createQueue().catch(() => {}); // never answered: the connection closes under it
      await expect.poll(() => proc.output().includes("test hook: a NEW is held")).toBe(true);
      expect(await proc.stop("SIGTERM")).toBe(1);
      const bounded = proc
        .output()
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as { msg?: string; timeoutMs?: number; pending?: unknown })
        .filter((rec) => rec.msg === "shutdown did not finish within the stop bound; exiting with code 1");
      expect(bounded).toEqual([
        {
          level: 50,
          time: expect.any(Number),
          name: "relay",
          msg: "shutdown did not finish within the stop bound; exiting with code 1",
          timeoutMs: 2000,
          pending: {
            step: "services",
            services: { "/relay": { step: "operations", operations: 1, sockets: expect.any(Number) } },
          },
        },
      ]);
    } finally {
      client.close();
      await proc.stop("SIGKILL");
    }
  });

  it("an unknown --ws-impl is a configuration error naming the flag", async () => {
    const err = await startLoft({
      entry: "relay-ws/main.ts",
      args: ["--relay-data-dir", dataDir, "--ws-impl", "uws"],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoftStartError);
    expect((err as LoftStartError).exitCode).toBe(2);
    expect((err as LoftStartError).output).toMatch(/--ws-impl.*expected lean or ws, got "uws"/);
  });

  it("an upgrade bound out of range is a configuration error naming the variable (docs/operations.md)", async () => {
    const err = await startLoft({
      entry: "relay-ws/main.ts",
      args: ["--relay-data-dir", dataDir],
      env: { LOFT_UPGRADE_ANSWER_MS: "10" },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoftStartError);
    expect((err as LoftStartError).exitCode).toBe(2);
    expect((err as LoftStartError).output).toMatch(
      /configuration error: LOFT_UPGRADE_ANSWER_MS: expected an integer in \[100, 60000\], got "10"/,
    );
  });

  it("a metrics port already in use is a configuration error naming the flag", async () => {
    const blocker = createServer();
    const port = await new Promise<number>((resolve) =>
      blocker.listen(0, "127.0.0.1", () => resolve((blocker.address() as { port: number }).port)),
    );
    try {
      const err = await startLoft({
        entry: "relay-ws/main.ts",
        args: ["--relay-data-dir", dataDir, "--metrics-port", String(port)],
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LoftStartError);
      expect((err as LoftStartError).exitCode).toBe(2);
      expect((err as LoftStartError).output).toMatch(
        /--metrics-port\/--metrics-host: cannot listen on .*EADDRINUSE/,
      );
    } finally {
      blocker.close();
    }
  });
});
