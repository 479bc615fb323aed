/**
 * core/bytes.ts's `allOrWipe`: secrets made together come back in order, and when one fails the
 * others are wiped by their own wipe and the first failure (in argument order, not in time) is
 * thrown (docs/design.md, "Cryptography": secrets are wiped when done).
 */
import { describe, expect, it } from "vitest";
import { allOrWipe, wipe } from "./bytes.ts";

/** A promise settled when the test says, so the order in time is the test's. */
function later<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("allOrWipe", () => {
  it("returns every value in argument order and wipes none", async () => {
    const a = Uint8Array.of(1, 2);
    const b = { key: Uint8Array.of(3) };
    const wiped: unknown[] = [];
    const [x, y] = await allOrWipe(
      [Promise.resolve(a), (v) => wiped.push(v)],
      [Promise.resolve(b), (v) => wiped.push(v)],
    );
    expect(x).toBe(a);
    expect(y).toBe(b);
    expect(wiped).toEqual([]);
    expect(a).toEqual(Uint8Array.of(1, 2));
  });

  it("one fails: each value that was made is wiped by its own wipe, and the failure is thrown", async () => {
    const made = Uint8Array.of(7, 7, 7);
    const pair = { secretKey: Uint8Array.of(9, 9) };
    const fault = new Error("provider failed");
    await expect(
      allOrWipe(
        [Promise.resolve(made), wipe],
        [Promise.reject(fault), wipe],
        [Promise.resolve(pair), (p) => p.secretKey.fill(0)],
      ),
    ).rejects.toBe(fault);
    expect(made).toEqual(new Uint8Array(3));
    expect(pair.secretKey).toEqual(new Uint8Array(2));
  });

  it("waits for every secret before it throws: one made after the failure is wiped too", async () => {
    const slow = later<Uint8Array>();
    const fault = new Error("first");
    const result = allOrWipe([Promise.reject(fault), wipe], [slow.promise, wipe]);
    const made = Uint8Array.of(5);
    slow.resolve(made);
    await expect(result).rejects.toBe(fault);
    expect(made).toEqual(Uint8Array.of(0));
  });

  it("a wipe that throws (a provider's forget) keeps no other from wiping, and neither fault is lost", async () => {
    const fault = new Error("made nothing");
    const forgot = new Error("forget failed");
    const after = Uint8Array.of(4, 4);
    const result = allOrWipe(
      [
        Promise.resolve(Uint8Array.of(1)),
        () => {
          throw forgot;
        },
      ],
      [Promise.reject(fault), wipe],
      [Promise.resolve(after), wipe],
    );
    const thrown = await result.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(after).toEqual(new Uint8Array(2));
    expect(thrown).toBeInstanceOf(AggregateError);
    expect((thrown as AggregateError).errors).toEqual([fault, forgot]);
  });

  it("several fail: the first in argument order is thrown, whichever failed first in time", async () => {
    const first = later<Uint8Array>();
    const second = later<Uint8Array>();
    const result = allOrWipe([first.promise, wipe], [second.promise, wipe]);
    second.reject(new Error("second"));
    first.reject(new Error("first"));
    await expect(result).rejects.toThrow("first");
  });
});
