/**
 * The link state table (link/state.ts) and the contact's timers (link/timers.ts): every move the
 * table allows leads to a state the attempt and live session can be in, every such pair of fields
 * names exactly one state, and `clearAll` stops every named timer, intervals included.
 */
import { describe, expect, it } from "vitest";
import { until } from "../../../../test/support/engine.ts";
import { LinkTimers, TIMER_NAMES } from "../timers.ts";
import { allowed, type LinkState, linkStateOf, TRANSITIONS } from "./state.ts";

const ATTEMPTS = [
  undefined,
  { direction: "out", path: "direct" },
  { direction: "out", path: "relay" },
  { direction: "in", path: "direct" },
  { direction: "in", path: "relay" },
] as const;
const LIVES = [undefined, {}] as const;

describe("link state table", () => {
  it("names one state for every attempt and live session there can be, and stopped for none", () => {
    const named = new Set<LinkState>();
    for (const a of ATTEMPTS) for (const l of LIVES) named.add(linkStateOf(a, l));
    expect([...named].sort()).toEqual(
      Object.keys(TRANSITIONS)
        .filter((s) => s !== "stopped")
        .sort(),
    );
  });

  it("leads only to states it knows, lets every state stop, and lets nothing leave stopped", () => {
    for (const [from, events] of Object.entries(TRANSITIONS) as [
      LinkState,
      (typeof TRANSITIONS)[LinkState],
    ][]) {
      for (const targets of Object.values(events))
        for (const to of targets ?? []) expect(TRANSITIONS).toHaveProperty(to);
      if (from !== "stopped") expect(allowed(from, "stop", "stopped")).toBe(true);
    }
    expect(Object.keys(TRANSITIONS.stopped)).toEqual([]);
    expect(allowed("idle", "up", "live")).toBe(false);
    expect(allowed("live", "closed", "idle")).toBe(true);
    expect(allowed("upgrading", "closed", "dialing")).toBe(true);
  });
});

describe("link timers", () => {
  it("runs one timer per name, and clearAll stops every one of them", async () => {
    const timers = new LinkTimers();
    const fired: string[] = [];
    for (const name of TIMER_NAMES) {
      if (name === "heartbeat") timers.every(name, 5, () => fired.push(name));
      else timers.set(name, 30, () => fired.push(name));
    }
    timers.set("retry", 5, () => fired.push("retry again")); // replaces the first retry
    expect(timers.running().sort()).toEqual([...TIMER_NAMES].sort());
    await until(() => fired.includes("retry again") && fired.includes("heartbeat"), "the short ones");
    expect(timers.has("retry")).toBe(false);
    timers.clearAll();
    expect(timers.running()).toEqual([]);
    const seen = fired.length;
    // Past every timer's due time (the 30 ms ones): nothing more fires.
    const end = Date.now() + 60;
    await until(() => Date.now() > end, "past due");
    expect(fired.slice(seen)).toEqual([]);
    expect(fired.filter((f) => f === "retry")).toEqual([]);
  });
});
