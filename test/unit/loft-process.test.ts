/**
 * test/support/loft-process.ts: a child that never says "listening" is killed, not left behind,
 * and `startLoft` rejects with a typed reason within a bounded time.
 */
import { describe, expect, it } from "vitest";
import { LoftStartError, startLoft } from "../support/loft-process.ts";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("startLoft", () => {
  it("kills a child that never logs 'listening' (even one ignoring SIGTERM) and rejects with reason 'timeout'", async () => {
    // The limit must leave the child time to start and print "starting" (node + tsx): 3 s ran out
    // before the first line in a full run at load ~28 on 2 cores, and the output was empty.
    const err = await startLoft({
      entry: "test/unit/fixtures/never-listens.ts",
      startTimeoutMs: 10_000,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LoftStartError);
    const e = err as LoftStartError;
    expect(e.reason).toBe("timeout");
    expect(e.output).toContain('"msg":"starting"');
    expect(e.pid).toBeTypeOf("number");
    expect(alive(e.pid!)).toBe(false);
  });

  it("rejects with reason 'exited' and the exit code when the child stops before listening", async () => {
    const err = await startLoft({ entry: "signaling/main.ts", args: ["--signal-ttl-min", "0"] }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(LoftStartError);
    expect((err as LoftStartError).reason).toBe("exited");
    expect((err as LoftStartError).exitCode).toBe(2);
  });
});
