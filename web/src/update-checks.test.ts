/**
 * When the open app looks for a new build (web/src/update-checks.ts): hourly, on a tab shown again
 * at most once per `shownAgainMs`, and on each signaling reconnect at most once per
 * `reconnectMinMs` (the first connection, at the page's start, is no reconnect — unless the server
 * was unreachable before it) — a reconnect storm (a flapping network, a server restarted over and over)
 * costs the server one sw.js per tab per interval, and the storm's last reconnect is still
 * followed by a look. The clock is a hand-driven one: the intervals are walked, not waited for.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { UPDATE_CHECKS, type UpdateCheckClock, UpdateChecks, updateCheckIntervals } from "./update-checks.ts";

/** A clock whose time moves only by `advance`, running each timer that falls due, in order. */
function handClock() {
  let now = 0;
  let next = 0;
  const timers = new Map<number, { at: number; run: () => void; every?: number }>();
  const clock: UpdateCheckClock = {
    now: () => now,
    setTimeout: (run, ms) => {
      timers.set(++next, { at: now + ms, run });
      return next;
    },
    clearTimeout: (h) => void timers.delete(h as number),
    setInterval: (run, ms) => {
      timers.set(++next, { at: now + ms, run, every: ms });
      return next;
    },
  };
  const advance = (ms: number) => {
    const end = now + ms;
    for (;;) {
      const due = [...timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [id, t] = due;
      now = t.at;
      if (t.every) t.at += t.every;
      else timers.delete(id);
      t.run();
    }
    now = end;
  };
  return { clock, advance, pending: () => timers.size };
}

function setup() {
  const hand = handClock();
  const looks: number[] = [];
  const checks = new UpdateChecks(() => looks.push(hand.clock.now()), hand.clock);
  return { ...hand, looks, checks };
}

const { hourlyMs, shownAgainMs, reconnectMinMs } = UPDATE_CHECKS;

describe("update checks", () => {
  it("look every hour once started, and not before", () => {
    const t = setup();
    t.checks.start();
    t.advance(hourlyMs - 1);
    expect(t.looks).toEqual([]);
    t.advance(2 * hourlyMs + 1);
    expect(t.looks).toEqual([hourlyMs, 2 * hourlyMs, 3 * hourlyMs]);
  });

  it("a tab shown again looks, but not again within shownAgainMs of any look", () => {
    const t = setup();
    t.checks.shown();
    expect(t.looks).toEqual([0]);
    t.advance(shownAgainMs - 1);
    t.checks.shown();
    expect(t.looks).toEqual([0]);
    t.advance(1);
    t.checks.shown();
    expect(t.looks).toEqual([0, shownAgainMs]);
    // A reconnect's look counts as a look: the tab shown just after it does not look again.
    t.advance(shownAgainMs);
    t.checks.reconnected();
    t.checks.shown();
    expect(t.looks).toEqual([0, shownAgainMs, 2 * shownAgainMs]);
  });

  it("a reconnect looks at once when no look was made within reconnectMinMs", () => {
    const t = setup();
    t.checks.reconnected();
    expect(t.looks).toEqual([0]);
    t.advance(reconnectMinMs);
    t.checks.reconnected();
    expect(t.looks).toEqual([0, reconnectMinMs]);
    expect(t.pending()).toBe(0);
  });

  it("the signaling server reached at the page's start does not look (the page load just did); each later reach is a reconnect", () => {
    const t = setup();
    t.checks.signalingReached();
    expect(t.looks).toEqual([]);
    expect(t.pending()).toBe(0);
    t.advance(1_000);
    t.checks.signalingReached();
    expect(t.looks).toEqual([1_000]);
    t.advance(1_000);
    t.checks.signalingReached();
    t.advance(reconnectMinMs);
    expect(t.looks).toEqual([1_000, 1_000 + reconnectMinMs]);
  });

  it("a page started while the server was unreachable looks when it is first reached: its load fetched no sw.js", () => {
    const t = setup();
    t.checks.signalingUnreachable();
    t.checks.signalingUnreachable();
    expect(t.looks).toEqual([]);
    t.advance(5_000);
    t.checks.signalingReached();
    expect(t.looks).toEqual([5_000]);
  });

  it("property: a reach that is the page's start (none and no unreachable before it) never looks; every other is followed by a look within reconnectMinMs", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("signalingReached", "signalingUnreachable"), fc.nat(120_000)), {
          minLength: 1,
          maxLength: 40,
        }),
        (steps) => {
          const t = setup();
          const reconnects: number[] = [];
          let before = false;
          for (const [what, gap] of steps) {
            t.advance(gap);
            if (what === "signalingReached" && !before) {
              // The page's start: no look, none deferred.
              t.checks[what]();
              expect([t.looks.length, t.pending()]).toEqual([0, 0]);
            } else {
              if (what === "signalingReached") reconnects.push(t.clock.now());
              t.checks[what]();
            }
            before = true;
          }
          t.advance(reconnectMinMs);
          for (const at of reconnects)
            expect(t.looks.some((l) => l >= at && l <= at + reconnectMinMs)).toBe(true);
          // Only reconnects look here: never closer than reconnectMinMs, never more than reconnects.
          expect(t.looks.length).toBeLessThanOrEqual(reconnects.length);
          for (let i = 1; i < t.looks.length; i++)
            expect(t.looks[i]! - t.looks[i - 1]!).toBeGreaterThanOrEqual(reconnectMinMs);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a reconnect storm looks once per reconnectMinMs, and its last reconnect is still followed by a look", () => {
    const t = setup();
    // A reconnect every 500 ms (the signaling client's first backoff) for five minutes.
    for (let at = 0; at < 5 * 60_000; at += 500) {
      t.checks.reconnected();
      t.advance(500);
    }
    const stormEnd = 5 * 60_000;
    expect(t.looks.length).toBeLessThanOrEqual(stormEnd / reconnectMinMs + 1);
    for (let i = 1; i < t.looks.length; i++)
      expect(t.looks[i]! - t.looks[i - 1]!).toBeGreaterThanOrEqual(reconnectMinMs);
    // The server was last restarted at the storm's end (the deploy): a look follows it.
    t.advance(reconnectMinMs);
    expect(t.looks.at(-1)!).toBeGreaterThanOrEqual(stormEnd - 500);
    expect(t.pending()).toBe(0);
  });

  it("a look made anyway (hourly) replaces a reconnect's deferred one", () => {
    const t = setup();
    t.checks.reconnected();
    t.advance(1_000);
    t.checks.reconnected();
    expect(t.pending()).toBe(1);
    t.checks.lookNow();
    expect(t.pending()).toBe(0);
    t.advance(reconnectMinMs);
    expect(t.looks).toEqual([0, 1_000]);
  });

  it("property: any sequence of triggers — looks from reconnects are reconnectMinMs apart, and every reconnect is followed by a look within reconnectMinMs", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("reconnected", "shown", "lookNow"), fc.nat(120_000)), {
          maxLength: 60,
        }),
        (steps) => {
          const t = setup();
          const reconnects: number[] = [];
          for (const [what, gap] of steps) {
            t.advance(gap);
            if (what === "reconnected") reconnects.push(t.clock.now());
            t.checks[what]();
          }
          t.advance(reconnectMinMs);
          for (const at of reconnects) {
            expect(t.looks.some((l) => l >= at && l <= at + reconnectMinMs)).toBe(true);
          }
          // Only reconnects here can make two looks closer than reconnectMinMs when a lookNow or a
          // shown tab came between; two looks both caused by reconnects never are.
          const onlyReconnects = steps.every(([w]) => w === "reconnected");
          if (onlyReconnects)
            for (let i = 1; i < t.looks.length; i++)
              expect(t.looks[i]! - t.looks[i - 1]!).toBeGreaterThanOrEqual(reconnectMinMs);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("intervals a test page sets: only the known keys, only finite positive numbers", () => {
    expect(updateCheckIntervals(undefined)).toEqual(UPDATE_CHECKS);
    expect(updateCheckIntervals("x")).toEqual(UPDATE_CHECKS);
    expect(
      updateCheckIntervals({ hourlyMs: 5, shownAgainMs: -1, reconnectMinMs: Number.NaN, other: 3 }),
    ).toEqual({
      ...UPDATE_CHECKS,
      hourlyMs: 5,
    });
    expect(updateCheckIntervals({ shownAgainMs: Number.POSITIVE_INFINITY, reconnectMinMs: "1" })).toEqual(
      UPDATE_CHECKS,
    );
  });
});
