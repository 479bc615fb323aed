/**
 * Engine timings for the pages of one browser context (web/src/page-timings.ts): an init script
 * that sets them before the app loads. For tests whose assertion is about what the
 * engine does, not how fast: e.g. "two new contacts connect on the first attempt" holds only
 * while no timer (relay fallback, open and handshake timeouts, the stale-dial rule) ends that
 * attempt first, which on a loaded machine is a legitimate outcome, not a failure.
 */
import type { BrowserContext } from "playwright-core";
import type { PageTimings } from "../../web/src/page-timings.ts";

export type EngineTimings = PageTimings;

/** Every timer that could end a first direct attempt on a slow machine, far out of reach. */
export const PATIENT_TIMINGS: EngineTimings = {
  openTimeoutMs: 90_000,
  relayFallbackMs: 90_000,
  staleDialMs: 90_000,
  handshakeTimeoutMs: 90_000,
  helloTimeoutMs: 90_000,
  heartbeatTimeoutMs: 90_000,
};

export async function useEngineTimings(context: BrowserContext, timings: EngineTimings): Promise<void> {
  await context.addInitScript(`globalThis.loftEngineTimings = ${JSON.stringify(timings)};`);
}
