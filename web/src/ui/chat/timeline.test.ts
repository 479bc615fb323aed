/**
 * The chat timeline's bookkeeping (timeline.ts) under random operations: whatever order messages
 * arrive in (appends, pages of older history, out-of-order inserts, duplicates, removals), the
 * chunks read in order are every message once, sorted by time; no chunk is empty or over
 * CHUNK_SIZE; exactly the first message of each local day carries a date separator.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import type { StoredMessage } from "../../engine/api.ts";
import { localDay } from "../format.ts";
import { CHUNK_SIZE, createTimeline, type Timeline } from "./timeline.ts";

const HOUR = 3_600_000;
const msg = (n: number, at: number): StoredMessage => ({
  id: `m${n}`,
  contactId: "c",
  direction: n % 2 ? "in" : "out",
  text: `t${n}`,
  at,
  state: n % 2 ? "received" : "queued",
});

function check(tl: Timeline, expected: Map<string, number>) {
  const chunks = tl.chunks().map((c) => c.ids());
  for (const c of chunks) {
    expect(c.length).toBeGreaterThan(0);
    expect(c.length).toBeLessThanOrEqual(CHUNK_SIZE);
  }
  const flat = chunks.flat();
  expect(new Set(flat).size).toBe(flat.length);
  // (Sorted arrays, not Sets: deep equality of large Sets is quadratic.)
  expect([...flat].sort()).toEqual([...expected.keys()].sort());
  expect(tl.size()).toBe(flat.length);
  const ats = flat.map((id) => tl.byId[id]!.at);
  for (let i = 1; i < ats.length; i++) expect(ats[i]).toBeGreaterThanOrEqual(ats[i - 1]!);
  flat.forEach((id, i) => {
    const dayStart = i === 0 || localDay(ats[i - 1]!) !== localDay(ats[i]!);
    expect(tl.byId[id]!.dayStart).toBe(dayStart);
  });
  expect(tl.oldest()?.id).toBe(flat[0]);
}

const op = fc.oneof(
  fc.record({ k: fc.constant("append" as const), gap: fc.integer({ min: 0, max: 30 * HOUR }) }),
  fc.record({ k: fc.constant("late" as const), back: fc.integer({ min: 0, max: 60 * HOUR }) }),
  fc.record({
    k: fc.constant("page" as const),
    n: fc.integer({ min: 1, max: 120 }),
    gap: fc.integer({ min: 1, max: 9 * HOUR }),
  }),
  fc.record({ k: fc.constant("dup" as const), pick: fc.nat() }),
  fc.record({ k: fc.constant("remove" as const), pick: fc.nat() }),
);

describe("chat timeline", () => {
  it("keeps every message once, in time order, in bounded chunks, with correct day separators", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const tl = createTimeline();
        const expected = new Map<string, number>();
        let n = 0;
        let newest = Date.UTC(2026, 5, 1);
        let oldest = newest;
        for (const o of ops) {
          if (o.k === "append") {
            newest += o.gap;
            expect(tl.insert(msg(n, newest), false)).toBe(true);
            expected.set(`m${n++}`, newest);
          } else if (o.k === "late") {
            const at = newest - o.back;
            tl.insert(msg(n, at));
            expected.set(`m${n++}`, at);
            oldest = Math.min(oldest, at);
          } else if (o.k === "page") {
            const page: StoredMessage[] = [];
            for (let i = 0; i < o.n; i++) {
              oldest -= o.gap;
              page.push(msg(n, oldest));
              expected.set(`m${n++}`, oldest);
            }
            expect(tl.insertMany(page.reverse())).toBe(o.n);
          } else if (o.k === "dup" && expected.size > 0) {
            const id = [...expected.keys()][o.pick % expected.size]!;
            expect(tl.insert({ ...msg(0, 0), id })).toBe(false);
            expect(tl.insertMany([{ ...msg(0, 0), id }])).toBe(0);
          } else if (o.k === "remove" && expected.size > 0) {
            const id = [...expected.keys()][o.pick % expected.size]!;
            tl.remove(id);
            expected.delete(id);
          }
          check(tl, expected);
        }
      }),
      { numRuns: Math.max(300, Math.floor(FUZZ_RUNS / 30)) },
    );
  });

  it("a state change updates one message and marks it stored", () => {
    const tl = createTimeline();
    tl.insert(msg(0, 1000), false);
    expect(tl.byId.m0!.stored).toBe(false);
    expect(tl.update("m0", "delivered")).toBe(true);
    expect(tl.byId.m0).toMatchObject({ state: "delivered", stored: true });
    expect(tl.update("nope", "sent")).toBe(false);
  });
});

describe("file transfers in the timeline (insertFile)", () => {
  it("sit among the messages by time, once each, and are never the oldest message (paging reads messages)", () => {
    const tl = createTimeline();
    tl.insertMany([msg(1, 10 * HOUR), msg(2, 12 * HOUR)]);
    expect(tl.insertFile("c/out/1", 11 * HOUR)).toBe(true);
    expect(tl.insertFile("c/out/1", 11 * HOUR)).toBe(false);
    expect(tl.insertFile("c/in/2", 9 * HOUR)).toBe(true);
    const flat = tl.chunks().flatMap((c) => c.ids());
    expect(flat).toEqual(["file:c/in/2", "m1", "file:c/out/1", "m2"]);
    expect(tl.byId["file:c/out/1"]!.file).toBe("c/out/1");
    expect(tl.byId["file:c/in/2"]!.dayStart).toBe(true);
    expect(tl.oldest()?.id).toBe("m1");
    // A message sent after a file goes below it.
    tl.insert(msg(3, 13 * HOUR));
    expect(
      tl
        .chunks()
        .flatMap((c) => c.ids())
        .slice(-2),
    ).toEqual(["m2", "m3"]);
  });
});
