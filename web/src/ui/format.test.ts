import { describe, expect, it } from "vitest";
import type { RoomMemberView } from "../engine/rooms/api.ts";
import { dayLabel, isoDay, localDay, outgoingStateLabel, refusedWords, whoIsBehind } from "./format.ts";

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
  const member = (state: RoomMemberView["state"]): RoomMemberView => ({
    key: "ab".repeat(32),
    name: undefined,
    state,
    host: false,
    verified: false,
    canBeHost: false,
  });
  const one = [member("refused")];
  const two = [member("refused"), member("refused")];

  it("says why, from the room's state: removed, a link out of date, or a link not this room's", () => {
    // The host removed us (the engine then counts every member not linked as refused).
    expect(refusedWords({ status: "removed", wasMember: true, members: two })).toBe(
      "not connected: you were removed from the room",
    );
    // We were a member (the state we hold lists us); every member here refused us, and they are
    // several: the room's secret moved on past ours.
    expect(refusedWords({ status: "refused", wasMember: true, members: two })).toBe(
      "refused you: your link is out of date",
    );
    // Never a member: the link's secret is not the room's.
    expect(refusedWords({ status: "refused", wasMember: false, members: one })).toBe(
      "refused you: your link is not this room's",
    );
  });

  it("says only what is known of whose link is out of date", () => {
    // One member, who refused us: either of the two may be the one behind. Before: "your link is
    // out of date", a guess — the member may have missed the rotations, not us.
    expect(whoIsBehind({ members: one })).toBe("unknown");
    expect(refusedWords({ status: "refused", wasMember: true, members: one })).toBe(
      "refused you: your link and theirs differ, one of them is out of date",
    );
    // Linked to another member (who holds our secret): the one refusing us is behind, not us.
    // Before: "your link is out of date".
    const linked = [member("online"), member("refused")];
    expect(whoIsBehind({ members: linked })).toBe("them");
    expect(refusedWords({ status: "in", wasMember: true, members: linked })).toBe(
      "refused you: their link is out of date",
    );
    expect(whoIsBehind({ members: two })).toBe("us");
  });
});
