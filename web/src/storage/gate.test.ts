/** The storage gate (gate.ts): shared tasks run together; an exclusive task runs alone. */
import { describe, expect, it } from "vitest";
import { StorageGate } from "./gate.ts";

/** A promise with its resolver, to hold a task open until the test lets it go. */
function held(): { promise: Promise<void>; release: () => void } {
  let release!: () => void;
  const promise = new Promise<void>((r) => {
    release = r;
  });
  return { promise, release };
}

/** Let queued microtasks and a macrotask turn run. */
const settle = () => new Promise((r) => setTimeout(r, 0));

describe("StorageGate", () => {
  it("an exclusive task waits for running shared tasks and holds new ones back until done", async () => {
    const gate = new StorageGate();
    const log: string[] = [];
    const first = held();
    const a = gate.shared(async () => {
      log.push("a start");
      await first.promise;
      log.push("a end");
    });
    const inside = held();
    const x = gate.exclusive(async () => {
      log.push("x start");
      await inside.promise;
      log.push("x end");
    });
    const b = gate.shared(async () => {
      log.push("b");
    });
    await settle();
    expect(log).toEqual(["a start"]);
    expect(gate.closed).toBe(true);
    first.release();
    await settle();
    expect(log).toEqual(["a start", "a end", "x start"]);
    inside.release();
    await Promise.all([a, x, b]);
    expect(log).toEqual(["a start", "a end", "x start", "x end", "b"]);
    expect(gate.closed).toBe(false);
  });

  it("shared tasks run together; exclusive tasks one at a time; a failure releases the gate", async () => {
    const gate = new StorageGate();
    let running = 0;
    let most = 0;
    const tasks: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++)
      tasks.push(
        gate.shared(async () => {
          running++;
          most = Math.max(most, running);
          await settle();
          running--;
        }),
      );
    await Promise.all(tasks);
    expect(most).toBe(5);

    let exclusiveRunning = 0;
    const ex = (fail: boolean) =>
      gate.exclusive(async () => {
        exclusiveRunning++;
        expect(exclusiveRunning).toBe(1);
        await settle();
        exclusiveRunning--;
        if (fail) throw new Error("boom");
      });
    const results = await Promise.allSettled([ex(true), ex(false), gate.shared(async () => "after")]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "fulfilled"]);
    expect(await gate.shared(async () => 1)).toBe(1);
  });
});
