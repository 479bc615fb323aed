/**
 * Engine timings a browser test may set for its pages before the app loads: an init script assigns
 * `globalThis.loftEngineTimings` (test/support/engine-timings.ts), and web/src/chat-engine.ts
 * starts the engine with them. For tests whose assertion is about what the engine does, not how
 * fast a loaded machine lets it (docs/contributing.md, "Tests"). Only the timing keys below, only
 * finite positive numbers: never a transport or a hook. No real page sets it, and then the engine
 * runs on its defaults (web/src/engine/config.ts `DEFAULT_ENGINE_CONFIG`).
 */
import type { EngineConfig } from "./engine/index.ts";

export const PAGE_TIMING_KEYS = [
  "openTimeoutMs",
  "relayFallbackMs",
  "staleDialMs",
  "handshakeTimeoutMs",
  "helloTimeoutMs",
  "heartbeatTimeoutMs",
  // A relay socket's upgrade on a loaded machine's loopback can outlast the 5 s bound.
  "relayOpenTimeoutMs",
  // A lane's answer on a loaded machine can outlast its bound: a file then goes in 64 KiB chunks.
  "laneAnswerMs",
] as const;

export type PageTimings = Partial<Pick<EngineConfig, (typeof PAGE_TIMING_KEYS)[number]>>;

export function pageTimings(
  from: unknown = (globalThis as { loftEngineTimings?: unknown }).loftEngineTimings,
): PageTimings {
  if (typeof from !== "object" || from === null) return {};
  const timings: PageTimings = {};
  for (const key of PAGE_TIMING_KEYS) {
    const value = (from as Record<string, unknown>)[key];
    if (typeof value === "number" && Number.isFinite(value) && value > 0) timings[key] = value;
  }
  return timings;
}
