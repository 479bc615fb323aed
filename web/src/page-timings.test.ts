import { describe, expect, it } from "vitest";
import { HEAD_TIMEOUT_MS } from "../../core/proxy/client.ts";
import { SW_HEAD_MS } from "../../core/proxy/port.ts";
import {
  ENGINE_HAND_BACK_MS,
  engineHandBackMs,
  MAX_TIMER_MS,
  PAGE_TIMING_KEYS,
  PROXY_IDLE_MS,
  pageTimings,
  proxyIdleMs,
} from "./page-timings.ts";

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

  it("a delay no timer can wait (above 2^31 − 1 ms) is refused: setTimeout would fire it at once", () => {
    expect(pageTimings({ relayFallbackMs: MAX_TIMER_MS })).toEqual({ relayFallbackMs: MAX_TIMER_MS });
    expect(
      pageTimings({ relayFallbackMs: MAX_TIMER_MS + 1, staleDialMs: 1e10, openTimeoutMs: 90_000 }),
    ).toEqual({
      openTimeoutMs: 90_000,
    });
    expect(pageTimings({ heartbeatTimeoutMs: Number.MAX_SAFE_INTEGER })).toEqual({});
  });

  it("a proxy head bound at or past the Service Worker's is refused: the worker's page, without the requester's reason, would always come first", () => {
    // The engine's own default is under it (docs/protocol/proxy.md §Streams).
    expect(HEAD_TIMEOUT_MS).toBeLessThan(SW_HEAD_MS);
    expect(pageTimings({ proxyHeadTimeoutMs: SW_HEAD_MS - 1 })).toEqual({
      proxyHeadTimeoutMs: SW_HEAD_MS - 1,
    });
    expect(pageTimings({ proxyHeadTimeoutMs: 10_000, openTimeoutMs: 90_000 })).toEqual({
      proxyHeadTimeoutMs: 10_000,
      openTimeoutMs: 90_000,
    });
    for (const proxyHeadTimeoutMs of [SW_HEAD_MS, 90_000, MAX_TIMER_MS])
      expect(pageTimings({ proxyHeadTimeoutMs, openTimeoutMs: 90_000 })).toEqual({ openTimeoutMs: 90_000 });
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

describe("engineHandBackMs (app/model.ts: a restore waiting for another tab's engine)", () => {
  it("nothing set, or nothing usable: the 20 s every real page waits", () => {
    expect(ENGINE_HAND_BACK_MS).toBe(20_000);
    for (const from of [undefined, null, "3000", 3000, {}, { relayFallbackMs: 3000 }])
      expect(engineHandBackMs(from)).toBe(20_000);
    for (const v of ["3000", 0, -1, Number.NaN, Number.POSITIVE_INFINITY, MAX_TIMER_MS + 1, 1e10, () => 1])
      expect(engineHandBackMs({ engineHandBackMs: v })).toBe(20_000);
  });

  it("a finite positive engineHandBackMs, read from globalThis.loftEngineTimings as the engine's are", () => {
    expect(engineHandBackMs({ engineHandBackMs: 10_000 })).toBe(10_000);
    const g = globalThis as { loftEngineTimings?: unknown };
    g.loftEngineTimings = { engineHandBackMs: 3_000, relayFallbackMs: 60_000 };
    try {
      expect(engineHandBackMs()).toBe(3_000);
      // Not an engine timing: the engine is never handed it.
      expect(pageTimings()).toEqual({ relayFallbackMs: 60_000 });
    } finally {
      delete g.loftEngineTimings;
    }
  });
});

describe("proxyIdleMs (web/src/proxy/host.ts: a request whose Service Worker goes silent)", () => {
  it("nothing set, or nothing usable: the 120 s every real page waits, past the worker's head bound", () => {
    expect(PROXY_IDLE_MS).toBe(120_000);
    expect(PROXY_IDLE_MS).toBeGreaterThan(SW_HEAD_MS);
    for (const from of [undefined, null, "3000", 3000, {}, { proxyHeadTimeoutMs: 3000 }])
      expect(proxyIdleMs(from)).toBe(PROXY_IDLE_MS);
    for (const v of ["3000", 0, -1, Number.NaN, Number.POSITIVE_INFINITY, MAX_TIMER_MS + 1, 1e10, () => 1])
      expect(proxyIdleMs({ proxyIdleMs: v })).toBe(PROXY_IDLE_MS);
  });

  it("a finite positive proxyIdleMs, read from globalThis.loftEngineTimings; never an engine timing", () => {
    expect(proxyIdleMs({ proxyIdleMs: 20_000 })).toBe(20_000);
    const g = globalThis as { loftEngineTimings?: unknown };
    g.loftEngineTimings = { proxyIdleMs: 20_000, proxyHeadTimeoutMs: 10_000 };
    try {
      expect(proxyIdleMs()).toBe(20_000);
      expect(pageTimings()).toEqual({ proxyHeadTimeoutMs: 10_000 });
    } finally {
      delete g.loftEngineTimings;
    }
  });
});
