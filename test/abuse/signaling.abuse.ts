/**
 * Signaling floods against the real combined server (issue #17, "CPU exhaustion by
 * unauthenticated REGISTERs"): four sources flood /signal while an innocent user on 127.0.0.1
 * pings the relay and round-trips LOOKUPs on /signal. What must hold: the innocent's relay PING
 * and signaling round trip stay ≤ 50 ms at p99, the server's event loop likewise, the innocent
 * never fails a request and can still register afterwards, and the flood really was refused
 * (so the figures are not those of an idle server).
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeUser, RawClient, registerOn } from "../../signaling/testing.ts";
import { metricValue } from "../support/metrics.ts";
import { expectInnocentUnaffected } from "./judge.ts";
import type { SignalFloodParams } from "./signaling-floods.ts";
import {
  type AbuseServer,
  FLOOD_MS,
  type FloodReport,
  floodFromChild,
  innocentRelay,
  LONG,
  MAX_SERVER_CORES,
  measureFlood,
  probe,
  record,
  startAbuseServer,
} from "./support.ts";

const FLOODS = new URL("./signaling-floods.ts", import.meta.url);
/** The innocent's LOOKUPs stay well under its own per-connection rate limit (20/s). */
const SIGNAL_PROBE_MS = 100;

describe("signaling floods from four sources", () => {
  let server: AbuseServer;
  let relay: Awaited<ReturnType<typeof innocentRelay>>;
  let innocent: RawClient;
  let nextId = 100;
  const innocentUser = makeUser("innocent");
  const innocentKey = innocentUser.identity.verified.identity_key as Uint8Array<ArrayBuffer>;

  const lookup = async () => {
    const reply = await innocent.request({
      t: "LOOKUP_REQUEST",
      id: nextId++,
      target_identity: innocentKey,
      list_all: false,
    });
    if (reply.t !== "LOOKUP_RESPONSE") throw new Error(reply.t);
  };

  const params = (): SignalFloodParams => ({
    signalUrl: server.signalUrl,
    durationMs: FLOOD_MS,
    maxFrames: LONG ? 4_000_000 : 200_000,
    // Five times what the server lets one source send (100/s): the excess must be refused cheaply.
    ratePerSource: LONG ? 2_000 : 500,
    connectionsPerSource: 8,
  });

  /** Baseline, flood, figures; the innocent-side assertions every scenario shares. */
  async function measure(scenario: string, flood: () => Promise<FloodReport>): Promise<string> {
    const { figures, metrics } = await measureFlood(
      server,
      relay,
      { signal: () => probe(lookup, SIGNAL_PROBE_MS) },
      flood,
    );
    record(scenario, {
      ...figures,
      verifySeconds: metricValue(metrics, "loft_signaling_verify_seconds_total"),
    });
    expectInnocentUnaffected(figures, MAX_SERVER_CORES, ["signal"]);

    // And the innocent can still register.
    const fresh = await RawClient.hello(server.signalUrl);
    try {
      const reply = await fresh.request(await registerOn(fresh, makeUser(`late-${scenario}`), { id: 1 }));
      expect(reply.t).toBe("REGISTER_RESPONSE");
    } finally {
      fresh.close();
    }
    return metrics;
  }

  beforeAll(async () => {
    server = await startAbuseServer();
    relay = await innocentRelay(server);
    innocent = await RawClient.hello(server.signalUrl);
    const reg = await innocent.request(await registerOn(innocent, innocentUser, { id: 1, ttl: 300 }));
    if (reg.t !== "REGISTER_RESPONSE") throw new Error(`innocent not registered: ${JSON.stringify(reg)}`);
  });
  afterAll(async () => {
    innocent?.close();
    relay?.client.close();
    await server?.stop();
  });

  it("REGISTER flood (forged identities, bad and good signatures): the innocent is unaffected", async () => {
    const metrics = await measure("register-flood", () => floodFromChild(FLOODS, "registerFlood", params()));
    // The flood was real and refused cheaply: rate limits and the CPU budget answered it.
    const refused = ["source", "connection", "cpu"].reduce(
      (sum, scope) => sum + metricValue(metrics, "loft_signaling_rate_limited_total", `scope="${scope}"`),
      0,
    );
    expect(refused).toBeGreaterThan(0);
    expect(metricValue(metrics, "loft_signaling_errors_total", 'code="BAD_SIGNATURE"')).toBeGreaterThan(0);
  });

  it("malformed-frame flood (garbage, truncated, wrong shapes, oversized, text): the innocent is unaffected", async () => {
    const metrics = await measure("malformed-flood", () =>
      floodFromChild(FLOODS, "malformedFlood", params()),
    );
    expect(metricValue(metrics, "loft_signaling_errors_total", 'code="MALFORMED"')).toBeGreaterThan(0);
  });
});
