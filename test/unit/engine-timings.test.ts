/**
 * test/support/engine-timings.ts: the timings browser tests give their pages are ones a page
 * takes (web/src/page-timings.ts) — one it refuses is silently the engine's default instead.
 */
import { describe, expect, it } from "vitest";
import { pageTimings } from "../../web/src/page-timings.ts";
import { PATIENT_LANE, PATIENT_TIMINGS } from "../support/engine-timings.ts";

describe("engine timings of the browser tests", () => {
  it("every patient timing is taken whole by a page: none is refused and left at its default", () => {
    expect(Object.keys(PATIENT_TIMINGS).length).toBeGreaterThan(0);
    expect(pageTimings(PATIENT_TIMINGS)).toEqual(PATIENT_TIMINGS);
    expect(pageTimings(PATIENT_LANE)).toEqual(PATIENT_LANE);
  });
});
