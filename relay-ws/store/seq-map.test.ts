import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { SeqMap } from "./seq-map.ts";

describe("SeqMap", () => {
  it("answers as a Map keyed by queue and seq, and counts only queues with an entry", () => {
    const queue = fc.constantFrom("aa", "bb", "cc");
    // Small seqs, and past 2^31 and 2^53 − 1 (a double, not a small integer, to V8).
    const seq = fc.oneof(
      fc.integer({ min: 0, max: 4 }),
      fc.constantFrom(2 ** 31 + 1, Number.MAX_SAFE_INTEGER),
    );
    const op = fc.oneof(
      fc.record({ k: fc.constant("set" as const), queue, seq, v: fc.integer() }),
      fc.record({ k: fc.constant("delete" as const), queue, seq }),
      fc.record({ k: fc.constant("deleteQueue" as const), queue }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 100 }), (ops) => {
        const m = new SeqMap<number>();
        const ref = new Map<string, number>();
        for (const o of ops) {
          if (o.k === "set") {
            m.set(o.queue, o.seq, o.v);
            ref.set(`${o.queue}/${o.seq}`, o.v);
          } else if (o.k === "delete") {
            m.delete(o.queue, o.seq);
            ref.delete(`${o.queue}/${o.seq}`);
          } else {
            m.deleteQueue(o.queue);
            for (const k of [...ref.keys()]) if (k.startsWith(`${o.queue}/`)) ref.delete(k);
          }
          expect(m.size).toBe(new Set([...ref.keys()].map((k) => k.split("/")[0])).size);
          for (const q of ["aa", "bb", "cc"])
            for (const s of [0, 1, 2, 3, 4, 2 ** 31 + 1, Number.MAX_SAFE_INTEGER]) {
              expect(m.get(q, s)).toBe(ref.get(`${q}/${s}`));
              expect(m.has(q, s)).toBe(ref.has(`${q}/${s}`));
            }
        }
      }),
      { numRuns: FUZZ_RUNS / 10 },
    );
  });
});
