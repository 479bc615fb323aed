import { describe, expect, it } from "vitest";
import { dayLabel, isoDay, localDay, outgoingStateLabel, refusedWords } from "./format.ts";

const at = (y: number, m: number, d: number, h = 12) => new Date(y, m - 1, d, h).getTime();

describe("chat screen words", () => {
  it("labels date separators Today, Yesterday, the weekday, then the date", () => {
    const now = at(2026, 12, 3, 9);
    expect(dayLabel(at(2026, 12, 3, 0), now)).toBe("Today");
    expect(dayLabel(at(2026, 12, 2, 23), now)).toBe("Yesterday");
    expect(dayLabel(at(2026, 11, 29), now)).toBe(
      new Date(at(2026, 11, 29)).toLocaleDateString(undefined, { weekday: "long" }),
    );
    expect(dayLabel(at(2026, 6, 1), now)).not.toMatch(/2026/);
    expect(dayLabel(at(2025, 6, 1), now)).toMatch(/2025/);
    expect(localDay(at(2026, 12, 3, 0)) - localDay(at(2026, 12, 2, 23))).toBe(1);
    expect(isoDay(at(2026, 1, 5))).toBe("2026-01-05");
  });

  it("a message being stored, or queued for an online contact, reads sending…", () => {
    expect(outgoingStateLabel("queued", false, false)).toBe("sending…");
    expect(outgoingStateLabel("queued", true, true)).toBe("sending…");
    expect(outgoingStateLabel("queued", true, false)).toBe("waiting to send");
    expect(outgoingStateLabel("delivered", true, true)).toBe("delivered");
  });
});

describe("a room member chip's words when it does not let us in", () => {
  it("says why, from the room's state: removed, a link out of date, or a link not this room's", () => {
    // The host removed us (the engine then counts every member not linked as refused).
    expect(refusedWords({ status: "removed", wasMember: true })).toBe(
      "not connected: you were removed from the room",
    );
    // We were a member (the state we hold lists us) and the room's secret moved on past ours.
    expect(refusedWords({ status: "refused", wasMember: true })).toBe(
      "refused you: your link is out of date",
    );
    expect(refusedWords({ status: "in", wasMember: true })).toBe("refused you: your link is out of date");
    // Never a member: the link's secret is not the room's.
    expect(refusedWords({ status: "refused", wasMember: false })).toBe(
      "refused you: your link is not this room's",
    );
  });
});
