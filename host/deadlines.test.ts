/**
 * host/deadlines.ts: one timer for many same-length deadlines (the relay's opening timeout).
 * A hand-driven clock decides what is due; the real interval (10 ms ticks) runs it.
 */
import { describe, expect, it } from "vitest";
import { Deadlines } from "./deadlines.ts";

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
}

describe("Deadlines", () => {
  it("hands each item over once, in the order added, only after its delay", async () => {
    let now = 0;
    const due: number[] = [];
    const d = new Deadlines<number>(
      100,
      (n) => due.push(n),
      10,
      () => now,
    );
    d.add(1);
    now = 50;
    d.add(2);
    d.add(3);
    expect(d.size).toBe(3);
    // Ticks run with nothing due yet.
    await new Promise((r) => setTimeout(r, 50));
    expect(due).toEqual([]);
    now = 100;
    await until(() => due.length === 1);
    expect(due).toEqual([1]);
    now = 150;
    await until(() => due.length === 3);
    expect(due).toEqual([1, 2, 3]);
    expect(d.size).toBe(0);
    d.close();
  });

  it("keeps going when one item's handler throws, and restarts its timer when items come again", async () => {
    let now = 0;
    const due: string[] = [];
    const d = new Deadlines<string>(
      5,
      (s) => {
        if (s === "bad") throw new Error("boom");
        due.push(s);
      },
      10,
      () => now,
    );
    d.add("bad");
    d.add("good");
    now = 5;
    await until(() => due.length === 1);
    expect(d.size).toBe(0);
    d.add("again");
    now = 10;
    await until(() => due.length === 2);
    expect(due).toEqual(["good", "again"]);
    d.close();
  });

  it("holds thousands of items with one timer and compacts what it handed over", async () => {
    let now = 0;
    let count = 0;
    const d = new Deadlines<object>(
      1,
      () => count++,
      5,
      () => now,
    );
    for (let i = 0; i < 5000; i++) d.add({});
    now = 1;
    await until(() => count === 5000);
    expect(d.size).toBe(0);
    d.close();
  });
});
