/**
 * `signaling/main.ts` as its own process (what `npm run signaling` runs): it logs "listening"
 * with its port and metrics port, answers a minimal public /health and 404 for /metrics on the
 * public port, serves /metrics and the detailed /health on the metrics listener, serves /signal,
 * reads flags, and exits cleanly on SIGTERM after telling clients to reconnect.
 */
import { describe, expect, it } from "vitest";
import { CLOSE } from "../core/wire/signaling.ts";

import { type LoftStartError, startLoft } from "../test/support/loft-process.ts";
import { metricValue } from "../test/support/metrics.ts";
import { makeUser, RawClient, registerOn } from "./testing.ts";

describe("standalone signaling process", () => {
  it("public /health minimal, /metrics only on the metrics listener, serves /signal, shuts down gracefully", async () => {
    // --upgrade-answer-ms: signaling/main.ts hands it to createHost (the detailed /health shows it).
    const proc = await startLoft({
      entry: "signaling/main.ts",
      args: ["--signal-list-all", "true", "--upgrade-answer-ms", "1500"],
    });
    try {
      expect(await (await fetch(`${proc.url}/health`)).json()).toEqual({ status: "ok" });
      expect((await fetch(`${proc.url}/metrics`)).status).toBe(404);
      expect(proc.metricsUrl).toBeDefined();
      const health = (await (await fetch(`${proc.metricsUrl}/health`)).json()) as {
        status: string;
        upgrade_answer_ms: number;
        services: {
          signaling: { accepting: boolean; connections: number; registrations: number; list_all: boolean };
        };
      };
      expect(health.status).toBe("ok");
      expect(health.upgrade_answer_ms).toBe(1500);
      expect(health.services.signaling).toMatchObject({
        accepting: true,
        connections: 0,
        registrations: 0,
        list_all: true,
      });

      const c = await RawClient.hello(`ws://127.0.0.1:${proc.port}/signal`);
      const user = makeUser("alice");
      expect((await c.request(await registerOn(c, user, { id: 1 }))).t).toBe("REGISTER_RESPONSE");
      const after = (await (await fetch(`${proc.metricsUrl}/health`)).json()) as typeof health;
      expect(after.services.signaling).toMatchObject({ connections: 1, registrations: 1 });
      const metrics = await (await fetch(`${proc.metricsUrl}/metrics`)).text();
      expect(metricValue(metrics, "loft_signaling_registrations")).toBe(1);
      expect(metricValue(metrics, "loft_signaling_register_requests_total", 'outcome="new"')).toBe(1);

      const goingAway = c.until("GOING_AWAY");
      expect(await proc.stop("SIGTERM")).toBe(0);
      await goingAway;
      expect((await c.closed).code).toBe(CLOSE.GOING_AWAY);
      // Logs carry neither addresses nor identities. The stop above resolved once the pipes were
      // read to their end (test/support/loft-process.ts): its last log line is in the output.
      expect(proc.output()).not.toMatch(/127\.0\.0\.1/);
      expect(proc.output()).toMatch(/"msg":"signaling shutting down"/);
    } finally {
      await proc.stop("SIGKILL");
    }
  });

  it("requires the metrics token when one is set, and --metrics-port off serves metrics nowhere", async () => {
    const token = "signaling-scrape-token-0123";
    const guarded = await startLoft({ entry: "signaling/main.ts", args: ["--metrics-token", token] });
    try {
      expect((await fetch(`${guarded.metricsUrl}/metrics`)).status).toBe(401);
      const ok = await fetch(`${guarded.metricsUrl}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain("loft_signaling_registrations");
      // Read after the stop, which waits until the pipes are read to their end
      // (test/support/loft-process.ts): everything the process wrote, not what reached us so far.
      expect(await guarded.stop()).toBe(0);
      expect(guarded.output()).not.toContain(token);
    } finally {
      await guarded.stop("SIGKILL");
    }
    const off = await startLoft({ entry: "signaling/main.ts", args: ["--metrics-port", "off"] });
    try {
      expect(off.metricsUrl).toBeUndefined();
      expect((await fetch(`${off.url}/metrics`)).status).toBe(404);
      expect(await (await fetch(`${off.url}/health`)).json()).toEqual({ status: "ok" });
    } finally {
      await off.stop("SIGKILL");
    }
  });

  it("refuses a bad option with exit code 2", async () => {
    await expect(startLoft({ entry: "signaling/main.ts", args: ["--signal-ttl-min", "0"] })).rejects.toThrow(
      /exited \(2\)/,
    );
    // A close grace the stop bound would always cut (docs/operations.md, "Stopping").
    const err = await startLoft({
      entry: "signaling/main.ts",
      args: ["--signal-shutdown-grace-ms", "2000", "--shutdown-timeout-ms", "1000"],
    }).catch((e: unknown) => e);
    expect((err as LoftStartError).exitCode).toBe(2);
    // Complete: a start that failed rejects once the pipes are read to their end.
    expect((err as LoftStartError).output).toMatch(
      /configuration error: --signal-shutdown-grace-ms is 2000 ms, --shutdown-timeout-ms 1000 ms: the grace must be below the stop bound/,
    );
  });
});
