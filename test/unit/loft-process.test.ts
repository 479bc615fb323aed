/**
 * test/support/loft-process.ts: a child that never says "listening" is killed, not left behind,
 * and `startLoft` rejects with a typed reason within a bounded time; a started child that ignores
 * SIGTERM is killed by `stop()` after its grace, or when the test process exits without stopping
 * it; each test process has its own default relay data dir, removed when it is done.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { processExists } from "../../host/process-alive.ts";
import { LoftStartError, startLoft, workerRelayDataDir } from "../support/loft-process.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** `script` (an ES module, run from the worktree) in a node process of its own: another test process. */
function inOtherProcess(script: string) {
  return spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 45_000,
  });
}

describe("startLoft", () => {
  // The first three wait on children of their own asynchronously (no spawnSync, which would hold
  // this worker's event loop, and with it the first test's timer and its child's output), so they
  // run side by side, each with its own `expect` as concurrent tests must: the first one's 10 s
  // wait for its limit is no longer added to the other two.
  it.concurrent("kills a child that never logs 'listening' (even one ignoring SIGTERM) and rejects with reason 'timeout'", async ({
    expect,
  }) => {
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
    expect(processExists(e.pid!)).toBe(false);
  });

  it.concurrent("stop() kills a child that ignores SIGTERM after its grace, and resolves", async ({
    expect,
  }) => {
    const loft = await startLoft({ entry: "test/unit/fixtures/ignores-sigterm.ts", stopGraceMs: 500 });
    const pid = loft.child.pid!;
    // Bounded here, not by the test's timeout: before, stop() waited for an exit that never came.
    const code = await Promise.race([
      loft.stop(),
      new Promise<"still waiting">((resolve) => setTimeout(() => resolve("still waiting"), 20_000)),
    ]);
    expect(code).toBe(null);
    expect(loft.child.signalCode).toBe("SIGKILL");
    expect(processExists(pid)).toBe(false);
  });

  it.concurrent("rejects with reason 'exited' and the exit code when the child stops before listening", async ({
    expect,
  }) => {
    const err = await startLoft({ entry: "signaling/main.ts", args: ["--signal-ttl-min", "0"] }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(LoftStartError);
    expect((err as LoftStartError).reason).toBe("exited");
    expect((err as LoftStartError).exitCode).toBe(2);
  });

  it("a child still running when the test process exits is killed with it", async () => {
    // Another test process (its own node) starts a child that ignores SIGTERM, and exits without
    // stopping it — as a worker does after a hook timed out before its stop().
    const other = inOtherProcess(
      `import { startLoft } from "./test/support/loft-process.ts";
       const loft = await startLoft({ entry: "test/unit/fixtures/ignores-sigterm.ts" });
       console.log(JSON.stringify({ pid: loft.child.pid }));
       process.exit(0);`,
    );
    expect(other.status, other.stderr).toBe(0);
    const { pid } = JSON.parse(other.stdout.trim().split("\n").at(-1)!) as { pid: number };
    expect(pid).toBeTypeOf("number");
    // Killed at once; gone once init has reaped it (bounded poll).
    await expect.poll(() => processExists(pid)).toBe(false);
  });

  it("stop() and a start that failed answer only once the child's output is read to its end", async () => {
    // The child's exit and its last writes come through different channels: its exit code was
    // handed over while its last lines could still be in the pipes, so a test reading the output
    // right after stop() (signaling/main.test.ts: the shutdown's log line) could miss them. The
    // fixture's lines come after its exit every time.
    for (let round = 0; round < 2; round++) {
      const loft = await startLoft({ entry: "test/unit/fixtures/last-words.ts" });
      expect(await loft.stop()).toBe(3);
      expect(loft.output()).toContain('"msg":"last words on stdout"');
      expect(loft.output()).toContain("last words on stderr");
      const err = await startLoft({
        entry: "test/unit/fixtures/last-words.ts",
        args: ["--before-listening"],
      }).catch((e: unknown) => e);
      expect((err as LoftStartError).reason).toBe("exited");
      expect((err as LoftStartError).output).toContain('"msg":"last words on stdout"');
      expect((err as LoftStartError).output).toContain("last words on stderr");
    }
  });

  it("two test runs overlapping in one worktree get their own default relay data dirs; each is removed once its process is gone", () => {
    // This file's worker: its servers above chose this process's dir already, and in a full run it
    // is any of them (with "1" here the file failed whenever it ran on worker 2).
    const worker = process.env.VITEST_POOL_ID ?? "1";
    // Another run's worker of the same number (a process of its own): the dir it would give its
    // servers, made as a relay would, and removed by its exit.
    const other = inOtherProcess(
      `import { mkdirSync } from "node:fs";
       import { workerRelayDataDir } from "./test/support/loft-process.ts";
       const dir = workerRelayDataDir(${JSON.stringify(worker)});
       mkdirSync(dir, { recursive: true });
       console.log(JSON.stringify({ dir, pid: process.pid }));`,
    );
    expect(other.status, other.stderr).toBe(0);
    const { dir: theirs, pid } = JSON.parse(other.stdout.trim().split("\n").at(-1)!) as {
      dir: string;
      pid: number;
    };
    const mine = workerRelayDataDir(worker);
    expect(dirname(mine)).toBe(join(ROOT, ".data"));
    expect(basename(mine)).toBe(`relay-w${worker}-${process.pid}`);
    expect(basename(theirs)).toBe(`relay-w${worker}-${pid}`);
    expect(existsSync(theirs)).toBe(false);
    // A run killed before its exit hook ran leaves its dir: the next process's first use removes it.
    // So does one whose pid this process has now (pids are reused): its own name, with the killed
    // run's store in it, is a leftover too, never a store to start on (nor one an orphaned relay of
    // that run still holds).
    mkdirSync(theirs, { recursive: true });
    const next = inOtherProcess(
      `import { existsSync, mkdirSync, writeFileSync } from "node:fs";
       import { join } from "node:path";
       import { workerRelayDataDir } from "./test/support/loft-process.ts";
       const leftover = join(${JSON.stringify(join(ROOT, ".data"))}, "relay-w2-" + process.pid);
       mkdirSync(leftover, { recursive: true });
       writeFileSync(join(leftover, "data.mdb"), "a killed run's store");
       const dir = workerRelayDataDir("2");
       console.log(JSON.stringify({ same: dir === leftover, kept: existsSync(join(leftover, "data.mdb")) }));`,
    );
    expect(next.status, next.stderr).toBe(0);
    expect(existsSync(theirs)).toBe(false);
    expect(JSON.parse(next.stdout.trim().split("\n").at(-1)!)).toEqual({ same: true, kept: false });
  });
});
