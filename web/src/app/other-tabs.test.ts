/**
 * The other-tabs news (app/other-tabs.ts; docs/protocol/chat.md §9, "Several tabs"): what a tab
 * becomes after each news, and the channel itself — Node's own BroadcastChannel, the one a
 * browser has: another channel of the same name stands for another tab.
 */
import { afterEach, describe, expect, it } from "vitest";
import { afterOtherTabNews, type OtherTabNews, onOtherTabs, tellOtherTabs } from "./other-tabs.ts";

const ALL: OtherTabNews[] = [
  "identity-deleted",
  "backup-restoring",
  "backup-restored",
  "backup-not-restored",
];

describe("what a tab becomes after another tab's news", () => {
  it("an open tab locks for any news but a restore that did not go through", () => {
    expect(ALL.map((n) => afterOtherTabNews("open", n))).toEqual([
      "identity-deleted",
      "backup-restoring",
      "backup-restored",
      "open",
    ]);
  });

  it("locked by a restore under way, it says how the restore ended, and nothing else moves it", () => {
    expect(ALL.map((n) => afterOtherTabNews("backup-restoring", n))).toEqual([
      "backup-restoring",
      "backup-restoring",
      "backup-restored",
      "backup-not-restored",
    ]);
  });

  it("locked by a restore that ended, it says what is new: another restore, the identity deleted", () => {
    for (const ended of ["backup-restored", "backup-not-restored"] as const) {
      expect(ALL.map((n) => afterOtherTabNews(ended, n))).toEqual([
        "identity-deleted",
        "backup-restoring",
        ended,
        ended,
      ]);
    }
  });

  it("locked by a deletion, or with no news kept, it stays as it is", () => {
    for (const n of ALL) {
      expect(afterOtherTabNews("identity-deleted", n)).toBe("identity-deleted");
      expect(afterOtherTabNews(undefined, n)).toBeUndefined();
    }
  });

  it("a failed restore, then one that went through: the words follow the last one", () => {
    const seen: ReturnType<typeof afterOtherTabNews>[] = ["open"];
    for (const n of [
      "backup-restoring",
      "backup-not-restored",
      "backup-restoring",
      "backup-restored",
    ] as const)
      seen.push(afterOtherTabNews(seen.at(-1), n));
    expect(seen).toEqual([
      "open",
      "backup-restoring",
      "backup-not-restored",
      "backup-restoring",
      "backup-restored",
    ]);
  });
});

describe("the tabs' channel (a real BroadcastChannel)", () => {
  const opened: BroadcastChannel[] = [];
  const stops: (() => void)[] = [];
  /** Another tab's end of the channel. */
  const otherTab = () => {
    const c = new BroadcastChannel("loft-tabs");
    opened.push(c);
    return c;
  };
  afterEach(() => {
    for (const stop of stops.splice(0)) stop();
    for (const c of opened.splice(0)) c.close();
  });

  /** Everything this tab's handler was given, until the test ends. */
  function follow(): OtherTabNews[] {
    const heard: OtherTabNews[] = [];
    stops.push(onOtherTabs((n) => heard.push(n)));
    return heard;
  }

  it("hands each news another tab sends to the handler, in order", async () => {
    const heard = follow();
    const other = otherTab();
    for (const n of ALL) other.postMessage({ type: `loft-${n}` });
    await expect.poll(() => heard).toEqual(ALL);
  });

  it("ignores anything else on the channel, and goes on with what follows", async () => {
    const heard = follow();
    const other = otherTab();
    for (const junk of [
      null,
      "loft-identity-deleted",
      42,
      {},
      { type: 5 },
      { type: "identity-deleted" },
      { type: "loft-nothing" },
      { type: "loft-" },
      { type: "toString" },
      { type: "__proto__" },
      { type: "hasOwnProperty" },
      { type: "LOFT-BACKUP-RESTORED" },
      [{ type: "loft-backup-restored" }],
    ])
      other.postMessage(junk);
    other.postMessage({ type: "loft-backup-restoring" });
    // Messages from one sender arrive in order: once the last is heard, all the junk was read.
    await expect.poll(() => heard).toEqual(["backup-restoring"]);
  });

  it("tells every other tab, and not itself", async () => {
    const heardHere = follow();
    const other = otherTab();
    const heardThere: unknown[] = [];
    other.onmessage = (e) => heardThere.push(e.data);
    tellOtherTabs("backup-not-restored");
    tellOtherTabs("identity-deleted");
    await expect
      .poll(() => heardThere)
      .toEqual([{ type: "loft-backup-not-restored" }, { type: "loft-identity-deleted" }]);
    // Sent from here after the two, heard back by this tab's handler: the two never came back.
    other.postMessage({ type: "loft-backup-restored" });
    await expect.poll(() => heardHere).toEqual(["backup-restored"]);
  });

  it("stops handing news over once unsubscribed", async () => {
    const before: OtherTabNews[] = [];
    const stop = onOtherTabs((n) => before.push(n));
    const after = follow();
    const other = otherTab();
    other.postMessage({ type: "loft-backup-restoring" });
    await expect.poll(() => before).toEqual(["backup-restoring"]);
    stop();
    other.postMessage({ type: "loft-backup-restored" });
    // The handler still subscribed hears it: by then the stopped one would have too.
    await expect.poll(() => after).toEqual(["backup-restoring", "backup-restored"]);
    expect(before).toEqual(["backup-restoring"]);
  });
});
