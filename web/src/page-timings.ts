/**
 * Engine timings a browser test may set for its pages before the app loads: an init script assigns
 * `globalThis.loftEngineTimings` (test/support/engine-timings.ts), and web/src/chat-engine.ts
 * starts the engine with them. For tests whose assertion is about what the engine does, not how
 * fast a loaded machine lets it (docs/contributing.md, "Tests"). Only the timing keys below, only
 * finite positive numbers a timer can wait (`MAX_TIMER_MS`): never a transport or a hook. No real page sets it, and then the engine
 * runs on its defaults (web/src/engine/config.ts `DEFAULT_ENGINE_CONFIG`). A proxy head bound only
 * under the Service Worker's own (`SW_HEAD_MS`): at or past it, the worker's page would always come
 * first and the requester's bound would never be the one seen (docs/protocol/proxy.md §Streams).
 *
 * The app's one bound around the engine is set the same way, under the same global
 * (`engineHandBackMs`): how long a restore waits for the tab running the chat to let the engine
 * lock go (app/model.ts `#whileEngineLockHeld`). One seam for every test-settable page timing.
 */
import { SW_HEAD_MS } from "../../core/proxy/port.ts";
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
  // A proxied request never answered: cli.e2e waits for the requester's own "No answer in time".
  "proxyHeadTimeoutMs",
] as const;

export type PageTimings = Partial<Pick<EngineConfig, (typeof PAGE_TIMING_KEYS)[number]>>;

/** What a test may set for its pages: the engine's timings and the app's own bounds around it. */
export type PageTimingsSet = PageTimings & { engineHandBackMs?: number; proxyIdleMs?: number };

/**
 * How long a restore waits for the tab running the chat to stop it and let the engine lock go
 * (app/model.ts `#whileEngineLockHeld`; docs/protocol/backup.md §5): that engine's stop is bounded
 * by a few seconds (engine/config.ts `stopSettleMs`, plus the writes it then finishes); a tab that
 * has not let go by then is not coming (frozen in the background).
 */
export const ENGINE_HAND_BACK_MS = 20_000;

/**
 * How long the window carrying a proxied request goes without a message from the Service Worker
 * before it ends the request (web/src/proxy/host.ts): a worker stopped mid-body never pulls again,
 * and before the response head, a page that hands over no next piece of its request body for this
 * long is told so (docs/protocol/proxy.md §Streams, "The head wait") — an HTTP server's bound on
 * a pause in a request body, which the requester's head wait leaves to it.
 */
export const PROXY_IDLE_MS = 120_000;

/**
 * The longest delay a timer takes: a longer one (a test's "never", 1e10) overflows the 32-bit
 * delay of setTimeout in browsers and Node alike and fires at once — the opposite of what was
 * asked for. Such a value is refused like any other bad one, and the default holds.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const positive = (v: unknown): v is number =>
  typeof v === "number" && Number.isFinite(v) && v > 0 && v <= MAX_TIMER_MS;

/** The page's own timing `key` a browser test set, else `fallback` (a bad value: the fallback). */
function pageTiming(key: "engineHandBackMs" | "proxyIdleMs", fallback: number, from: unknown): number {
  const value = typeof from === "object" && from !== null ? (from as PageTimingsSet)[key] : undefined;
  return positive(value) ? value : fallback;
}

/** `ENGINE_HAND_BACK_MS`, or the `engineHandBackMs` a browser test set (restore.e2e's frozen tab). */
export const engineHandBackMs = (
  from: unknown = (globalThis as { loftEngineTimings?: unknown }).loftEngineTimings,
): number => pageTiming("engineHandBackMs", ENGINE_HAND_BACK_MS, from);

/** `PROXY_IDLE_MS`, or the `proxyIdleMs` a browser test set (cli.e2e's stalled upload). */
export const proxyIdleMs = (
  from: unknown = (globalThis as { loftEngineTimings?: unknown }).loftEngineTimings,
): number => pageTiming("proxyIdleMs", PROXY_IDLE_MS, from);

/**
 * Keys with an upper bound besides a timer's: the requester's head wait must end before the
 * Service Worker's own (`SW_HEAD_MS`), or the SW's bare page answers first (docs/protocol/proxy.md).
 */
const PAGE_TIMING_BELOW: Partial<Record<(typeof PAGE_TIMING_KEYS)[number], number>> = {
  proxyHeadTimeoutMs: SW_HEAD_MS,
};

export function pageTimings(
  from: unknown = (globalThis as { loftEngineTimings?: unknown }).loftEngineTimings,
): PageTimings {
  if (typeof from !== "object" || from === null) return {};
  const timings: PageTimings = {};
  for (const key of PAGE_TIMING_KEYS) {
    const value = (from as Record<string, unknown>)[key];
    if (positive(value) && value < (PAGE_TIMING_BELOW[key] ?? Number.POSITIVE_INFINITY)) timings[key] = value;
  }
  return timings;
}
