/**
 * Engine timings for the pages of one browser context (web/src/page-timings.ts): an init script
 * that sets them before the app loads — and the app's bound around the engine, `engineHandBackMs`
 * (how long a restore waits for another tab's engine; restore.e2e's frozen tab). For tests whose assertion is about what the
 * engine does, not how fast: e.g. "two new contacts connect on the first attempt" holds only
 * while no timer (relay fallback, open and handshake timeouts, the stale-dial rule) ends that
 * attempt first, which on a loaded machine is a legitimate outcome, not a failure.
 */
import type { BrowserContext } from "playwright-core";
import { PAGE_TIMING_KEYS, type PageTimingsSet } from "../../web/src/page-timings.ts";

export type EngineTimings = PageTimingsSet;

/**
 * Every timer that could end a first direct attempt on a slow machine, far out of reach: each
 * timing a page takes (a key added there is patient here too) — but the fetch proxy's head bound,
 * which ends no attempt, and which a page takes only under the Service Worker's own 35 s
 * (web/src/page-timings.ts): 90 s there was refused, and had it been taken, the worker's page
 * without the requester's reason would have come first.
 */
export const PATIENT_TIMINGS: EngineTimings = Object.fromEntries(
  PAGE_TIMING_KEYS.filter((k) => k !== "proxyHeadTimeoutMs").map((k) => [k, 90_000]),
);

/**
 * For a page whose files' chunk size a test checks (docs/protocol/files.md §2, "The chunk size"):
 * the sender waits for its peer's lane to say which chunks it takes however loaded the machine —
 * the lane's answer, not the 2 s bound, decides the size.
 */
export const PATIENT_LANE: EngineTimings = { laneAnswerMs: 90_000 };

/** The line the sender's page logs when its lane's answer chose 255 KiB chunks (files/transfers.ts). */
export const WIDE_CHUNKS_CHOSEN =
  / alice: \[loft engine\] files: preparing a file in chunks of 261120 bytes: every end's bulk lane takes them$/;

export async function useEngineTimings(context: BrowserContext, timings: EngineTimings): Promise<void> {
  await context.addInitScript(`globalThis.loftEngineTimings = ${JSON.stringify(timings)};`);
}
