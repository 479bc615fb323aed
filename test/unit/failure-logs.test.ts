/**
 * test/support/failure-logs.ts: a failed browser test's report holds each source's lines since
 * that test started (the latest `TAIL_LINES`, saying how many were left out), then its snapshot;
 * a source that stopped showing is not in it, and a snapshot that fails says so instead.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  failureReport,
  markTestStart,
  showOnFailure,
  TAIL_LINES,
  tailSince,
} from "../support/failure-logs.ts";

describe("failure logs", () => {
  const stops: (() => void)[] = [];
  afterEach(() => {
    for (const stop of stops.splice(0)) stop();
  });

  it("a test file without registered sources gets no report", async () => {
    markTestStart();
    expect(await failureReport("a test")).toBe("");
  });

  it("tailSince keeps the lines from the mark, the last ones when there are too many", () => {
    expect(tailSince(["a", "b", "c"], 1)).toEqual(["b", "c"]);
    expect(tailSince(["a"], 5)).toEqual([]);
    const many = Array.from({ length: 10 }, (_, i) => `l${i}`);
    expect(tailSince(many, 2, 3)).toEqual(["… 5 earlier lines of this test left out", "l7", "l8", "l9"]);
  });

  it("the report has what came after the test started, and each snapshot", async () => {
    const lines = ["before 1", "before 2"];
    stops.push(
      showOnFailure({ name: "pages", lines: () => lines, snapshot: async () => ["page: /room/1"] }),
      showOnFailure({
        name: "server",
        lines: () => [],
        snapshot: () => Promise.reject(new Error("metrics listener gone")),
      }),
    );
    markTestStart();
    lines.push("during 1", "during 2");
    const report = (await failureReport("a test")).split("\n");
    expect(report).toContain("during 1");
    expect(report).toContain("during 2");
    expect(report).not.toContain("before 2");
    expect(report).toContain("page: /room/1");
    expect(report).toContain("--- server: nothing ---");
    expect(report).toContain("(could not be read: metrics listener gone)");
  });

  it("a source registered during a test counts from its first line; a stopped one is left out", async () => {
    markTestStart();
    const lines = Array.from({ length: TAIL_LINES + 7 }, (_, i) => `line ${i}`);
    const stop = showOnFailure({ name: "late", lines: () => lines });
    stops.push(showOnFailure({ name: "kept", lines: () => ["kept line"] }));
    let report = await failureReport("a test");
    expect(report).toContain("… 7 earlier lines of this test left out");
    expect(report).toContain(`line ${TAIL_LINES + 6}`);
    expect(report).not.toContain("line 6\n");
    stop();
    report = await failureReport("a test");
    expect(report).not.toContain("--- late");
    expect(report).toContain("kept line");
  });
});
