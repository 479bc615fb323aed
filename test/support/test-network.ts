/**
 * The test network namespace of browser tests (scripts/e2e.mjs): the data channel runs over the
 * test address on the `loft0` bridge, while pages, signaling and relay use loopback. Files that
 * take the address away (the direct path dies, as when switching networks) put it back with
 * `restoreTestAddress` — in a `finally` or `afterAll`, so the next test and file find it.
 */
import { execFileSync } from "node:child_process";

/** The direct path's address (scripts/e2e.mjs sets LOFT_TEST_ADDR). */
export const TEST_ADDR = process.env.LOFT_TEST_ADDR ?? "198.18.0.1";

/** `ip …` in this process's namespace; throws with its stderr on failure. */
export const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });

/**
 * The test address and the default route back, as scripts/e2e.mjs made them (each step fails
 * harmlessly when already there). Only inside the test namespace: never on the host's interfaces.
 */
export function restoreTestAddress(): void {
  if (!process.env.LOFT_NETNS) return;
  try {
    ip("addr", "add", `${TEST_ADDR}/24`, "dev", "loft0");
  } catch {}
  try {
    ip("route", "replace", "default", "dev", "loft0");
  } catch {}
}

/**
 * Slow the direct path (the data channel over TEST_ADDR, through `lo`) to `mbit` Mbit/s while
 * signaling and the relay on 127.0.0.1 stay fast, so "mid-transfer" is a state a test can wait
 * for instead of a race with loopback speed. Undone by `unthrottle` (in a `finally`/`afterAll`).
 */
export function throttleDirect(mbit: number): void {
  // Shaping `lo` outside the namespace would slow the host's own loopback.
  if (!process.env.LOFT_NETNS)
    throw new Error("run through scripts/e2e.mjs (it creates the network namespace)");
  for (const cmd of [
    "qdisc add dev lo root handle 1: htb default 10 r2q 100000",
    "class add dev lo parent 1: classid 1:10 htb rate 10gbit",
    `class add dev lo parent 1: classid 1:20 htb rate ${mbit}mbit ceil ${mbit}mbit`,
    `filter add dev lo parent 1: protocol ip prio 1 u32 match ip dst ${TEST_ADDR}/32 flowid 1:20`,
  ])
    execFileSync("tc", cmd.split(" "), { stdio: "pipe" });
}

/** Remove `throttleDirect`'s shaping (harmless when there is none). */
export function unthrottle(): void {
  if (!process.env.LOFT_NETNS) return;
  try {
    execFileSync("tc", "qdisc del dev lo root".split(" "), { stdio: "pipe" });
  } catch {}
}

/** `ip`/`tc` output in this process's namespace ("" when the command fails). */
const read = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { stdio: "pipe" }).toString();
  } catch {
    return "";
  }
};

/**
 * The namespace's network as scripts/e2e.mjs made it, whatever a file before left: the test
 * address on `loft0`, the default route through it, no shaping on `lo`. Every browser test file
 * starts from it (test/support/e2e-setup.ts), in every project of test/e2e/vitest.config.ts — the
 * files that run after the changes-network ones in their namespace too, which otherwise relied on
 * each of those putting it back in its own `finally`. Returns what had to be put back (nothing
 * when the network was as made); outside the test namespace it touches nothing.
 */
export function resetTestNetwork(): string[] {
  if (!process.env.LOFT_NETNS) return [];
  const fixed: string[] = [];
  if (!read("ip", ["-o", "addr", "show", "dev", "loft0"]).includes(` ${TEST_ADDR}/24 `))
    fixed.push(`the test address ${TEST_ADDR} was gone from loft0`);
  if (!/^default dev loft0\b/m.test(read("ip", ["route", "show", "default"])))
    fixed.push("the default route through loft0 was gone");
  // Each put back only when its check failed: else a file as made spawned three more processes
  // (`ip` twice, `tc`) at its start for nothing.
  if (fixed.length > 0) restoreTestAddress();
  if (/\bqdisc htb\b/.test(read("tc", ["qdisc", "show", "dev", "lo"]))) {
    fixed.push("lo was throttled");
    unthrottle();
  }
  return fixed;
}
