import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { distinctUrls, preferredOrder, relayOrder } from "./choice.ts";

const A = "wss://a.example/relay";
const B = "wss://b.example/relay";
const C = "wss://c.example/relay";

describe('relay choice (docs/protocol/mailbox.md §1, "Several relays")', () => {
  it("puts a new queue on the reachable relay holding the fewest of ours, ties in configured order", () => {
    const load = new Map([
      [A, 2],
      [B, 1],
      [C, 1],
    ]);
    expect(
      relayOrder(
        [A, B, C],
        (u) => load.get(u)!,
        () => false,
      ),
    ).toEqual([B, C, A]);
    expect(
      relayOrder(
        [A, B],
        () => 0,
        () => false,
      ),
    ).toEqual([A, B]);
  });

  it("tries relays known to be down last, still in load and configured order", () => {
    const down = new Set([A, B]);
    expect(
      relayOrder(
        [A, B, C],
        () => 0,
        (u) => down.has(u),
      ),
    ).toEqual([C, A, B]);
    expect(
      relayOrder(
        [A, B, C],
        (u) => (u === A ? 5 : 0),
        () => true,
      ),
    ).toEqual([B, C, A]);
    expect(preferredOrder([A, B, C], (u) => u === A)).toEqual([B, C, A]);
  });

  it("takes turns: queues made one after another alternate between two relays", () => {
    const count = new Map<string, number>();
    const made: string[] = [];
    for (let i = 0; i < 6; i++) {
      const url = relayOrder(
        [A, B],
        (u) => count.get(u) ?? 0,
        () => false,
      )[0]!;
      count.set(url, (count.get(url) ?? 0) + 1);
      made.push(url);
    }
    expect(made).toEqual([A, B, A, B, A, B]);
  });

  it("drops empty entries and repeats, keeps the first of each", () => {
    expect(distinctUrls([" ", A, B, A, "", ` ${B} `])).toEqual([A, B]);
    expect(
      relayOrder(
        [],
        () => 0,
        () => false,
      ),
    ).toEqual([]);
  });

  it("always returns every configured relay exactly once, reachable ones first", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ u: fc.constantFrom(A, B, C, "wss://d/relay"), n: fc.nat(9), down: fc.boolean() }),
        ),
        (rows) => {
          const load = (u: string) => rows.find((r) => r.u === u)!.n;
          const down = (u: string) => rows.find((r) => r.u === u)!.down;
          const urls = rows.map((r) => r.u);
          const out = relayOrder(urls, load, down);
          expect([...out].sort()).toEqual(distinctUrls(urls).sort());
          const firstDown = out.findIndex(down);
          if (firstDown >= 0) expect(out.slice(firstDown).every(down)).toBe(true);
        },
      ),
    );
  });
});
