/**
 * test/support/child-exit.mjs, the one "wait for the child's close after its exit" of the test
 * support (loft-process.ts, redis-server.ts) and scripts/e2e.mjs: real child processes.
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { exitedAndDrained } from "../support/child-exit.mjs";

const node = (script: string) =>
  spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "pipe"] });

describe("exitedAndDrained", () => {
  it("resolves with the exit code once everything the child wrote before its exit is read", async () => {
    const child = node(`process.stdout.write("x".repeat(4 << 20)); process.exitCode = 7;`);
    let read = 0;
    child.stdout.on("data", (d: Buffer) => {
      read += d.length;
    });
    expect(await exitedAndDrained(child, 60_000)).toEqual({ code: 7, signal: null });
    expect(read).toBe(4 << 20);
  });

  it("a grandchild holding the pipes open does not hold it: it resolves after drainMs", async ({
    onTestFinished,
  }) => {
    const child = spawn("sh", ["-c", "sleep 300 & echo $!; exit 3"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    // The sleep goes whatever the outcome, a hang of this test included.
    onTestFinished(() => {
      const pid = Number.parseInt(out, 10);
      if (pid > 0)
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
    });
    // Without the bound, 'close' never comes while the sleep lives: this would hang.
    expect(await exitedAndDrained(child, 200)).toEqual({ code: 3, signal: null });
    expect(out).toMatch(/^\d+\n$/);
  });

  it("says the signal that ended the child", async () => {
    const child = node("setInterval(() => {}, 1000); console.log('up');");
    child.stdout.once("data", () => child.kill("SIGTERM"));
    expect(await exitedAndDrained(child, 60_000)).toEqual({ code: null, signal: "SIGTERM" });
  });

  it("a spawn that failed resolves with its error and no code (there was no exit)", async () => {
    const child = spawn("/nonexistent/loft-no-such-command", [], { stdio: ["ignore", "pipe", "pipe"] });
    const end = await exitedAndDrained(child, 60_000);
    expect(end).toMatchObject({ code: null, signal: null });
    expect(end.error?.message).toMatch(/ENOENT/);
  });
});
