/**
 * host/process-alive.ts: this process and a running child exist; a child that has exited and been
 * reaped is gone (ESRCH); a process of another user exists (EPERM), checked from an unprivileged
 * child when this test runs as root (root may signal anyone, so it never sees EPERM itself).
 */
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { processExists } from "./process-alive.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

describe("processExists", () => {
  it("is true for this process and a running child, false once the child is gone", async () => {
    expect(processExists(process.pid)).toBe(true);
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", () => resolve());
        child.once("error", reject);
      });
      const pid = child.pid!;
      expect(processExists(pid)).toBe(true);
      child.kill("SIGKILL");
      await exited; // reaped by Node: its pid no longer names a process (ESRCH)
      expect(processExists(pid)).toBe(false);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("counts a process of another user as running (EPERM)", () => {
    // pid 1 is root's. Not root: this process gets EPERM. Root: ask from a child running as nobody.
    if (process.getuid?.() !== 0) {
      expect(processExists(1)).toBe(true);
      return;
    }
    const probe = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "-e",
        'import("./host/process-alive.ts").then((m) => { try { process.kill(1, 0); console.log("no EPERM"); } catch (e) { console.log(e.code, m.processExists(1)); } })',
      ],
      { cwd: ROOT, uid: 65534, gid: 65534, encoding: "utf8", timeout: 30_000 },
    );
    expect(probe.stderr).toBe("");
    expect(probe.stdout.trim()).toBe("EPERM true");
  });
});
