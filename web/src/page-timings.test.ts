import { describe, expect, it } from "vitest";
import { PAGE_TIMING_KEYS, pageTimings } from "./page-timings.ts";

describe("pageTimings", () => {
  it("nothing set (every real page): no override, the engine's defaults hold", () => {
    expect(pageTimings()).toEqual({});
    expect(pageTimings(undefined)).toEqual({});
    expect(pageTimings(null)).toEqual({});
    expect(pageTimings("relayFallbackMs=1")).toEqual({});
  });

  it("takes the known timing keys with finite positive numbers, and nothing else", () => {
    const all = Object.fromEntries(PAGE_TIMING_KEYS.map((k, i) => [k, 1_000 * (i + 1)]));
    expect(pageTimings(all)).toEqual(all);
    expect(
      pageTimings({
        relayFallbackMs: 90_000,
        openTimeoutMs: "90000",
        staleDialMs: Number.POSITIVE_INFINITY,
        handshakeTimeoutMs: -1,
        helloTimeoutMs: 0,
        heartbeatTimeoutMs: Number.NaN,
        transport: () => undefined,
        log: () => undefined,
        mailboxDelayMs: 5,
      }),
    ).toEqual({ relayFallbackMs: 90_000 });
  });

  it("reads globalThis.loftEngineTimings, as an init script sets it", () => {
    const g = globalThis as { loftEngineTimings?: unknown };
    g.loftEngineTimings = { relayFallbackMs: 60_000 };
    try {
      expect(pageTimings()).toEqual({ relayFallbackMs: 60_000 });
    } finally {
      delete g.loftEngineTimings;
    }
  });
});
