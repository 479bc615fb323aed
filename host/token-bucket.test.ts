/**
 * The shared token bucket (host/token-bucket.ts) under random operation sequences: whatever the
 * sequence, it never holds more than its burst nor grants more than it holds plus what refilled,
 * refunds never mint units, and debt stays bounded.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../test/support/fuzz.ts";
import { TokenBucket } from "./token-bucket.ts";

type Op =
  | { k: "take"; n: number; dt: number }
  | { k: "charge"; n: number; dt: number }
  | { k: "refund"; n: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    k: fc.constant("take" as const),
    n: fc.integer({ min: 0, max: 500 }),
    dt: fc.integer({ min: 0, max: 2000 }),
  }),
  fc.record({
    k: fc.constant("charge" as const),
    n: fc.integer({ min: 0, max: 50 }),
    dt: fc.integer({ min: 0, max: 2000 }),
  }),
  fc.record({ k: fc.constant("refund" as const), n: fc.integer({ min: 0, max: 500 }) }),
);

describe("TokenBucket", () => {
  it("grants at most burst + refill + refunds, never more than burst at once; debt is bounded", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.array(opArb, { maxLength: 60 }),
        (rate, burst, ops) => {
          let now = 0;
          const b = new TokenBucket(rate, burst, now);
          let granted = 0;
          let refunded = 0;
          for (const op of ops) {
            if (op.k === "refund") {
              b.refund(op.n);
              refunded += op.n;
              continue;
            }
            now += op.dt;
            if (op.k === "take") {
              if (b.take(op.n, now)) granted += op.n;
            } else {
              b.charge(op.n, now, 256);
              // Debt never grows beyond the limit plus one charge.
              expect(b.overdrawn(256 + op.n, now)).toBe(false);
            }
            expect(b.take(burst + 1, now)).toBe(false);
          }
          // Charges only lower the level: takes never exceed what the bucket ever held.
          expect(granted).toBeLessThanOrEqual(burst + (now / 1000) * rate + refunded + 1e-6);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("rate 0 is unlimited", () => {
    const b = new TokenBucket(0, 1, 0);
    for (let i = 0; i < 100; i++) expect(b.take(1_000_000, 0)).toBe(true);
    expect(b.charge(1_000_000, 0, 0)).toBe(true);
    expect(b.overdrawn(0, 0)).toBe(false);
  });
});

describe("TokenBucket, as signaling uses it", () => {
  it("allows its burst, then its rate", () => {
    const b = new TokenBucket(10, 3, 0);
    expect([b.take(1, 0), b.take(1, 0), b.take(1, 0), b.take(1, 0)]).toEqual([true, true, true, false]);
    expect(b.take(1, 50)).toBe(false);
    expect(b.take(1, 100)).toBe(true);
    expect(b.full(10_000)).toBe(true);
  });

  it("charged after the work with no debt bound: refuses while in debt, until refilled", () => {
    const b = new TokenBucket(10, 5, 0); // 10 ms per second, 5 ms banked
    expect(b.overdrawn(0, 0)).toBe(false);
    b.charge(4, 0);
    expect(b.overdrawn(0, 0)).toBe(false);
    b.charge(4, 0); // -3: overspent
    expect(b.overdrawn(0, 0)).toBe(true);
    expect(b.overdrawn(0, 200)).toBe(true); // -3 + 2 = -1
    expect(b.overdrawn(0, 300)).toBe(false);
    expect(b.full(10_000)).toBe(true);
  });
});
