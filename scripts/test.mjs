// `npm test`: the whole suite, in order of cost — system packages, typecheck, lint/format, import cycles,
// unit + property + interop tests, the short abuse suite (test/abuse), the PWA build, then
// browser tests in a private network namespace. Stops at the first failing step and says which.
//
// Every step has a time bound: a step that hangs is killed (its whole process group) and reported
// as a failure naming the step, instead of a CI run that stalls until its own limit with no clue
// (test/support/slow-file-reporter.ts names the test file still running). Output goes through
// pipes this script forwards, and a step is over when its process exits: a stray grandchild that
// kept the pipe open cannot hold the run (or CI's log) open after the suite ended.
import { spawn } from "node:child_process";
import { ensureSystemDeps } from "./system-deps.mjs";

const MIN = 60_000;
const steps = [
  ["typecheck", "npm", ["run", "-s", "typecheck"], 5 * MIN],
  ["lint + format", "npx", ["biome", "check", "."], 2 * MIN],
  ["import cycles (scripts/check-cycles.mjs)", "node", ["scripts/check-cycles.mjs"], 2 * MIN],
  ["unit, property and interop tests", "npx", ["vitest", "run"], 15 * MIN],
  [
    "abuse suite, short form (bounded floods on loopback)",
    "npx",
    ["vitest", "run", "--config", "test/abuse/vitest.config.ts"],
    5 * MIN,
  ],
  ["build the PWA", "npm", ["run", "-s", "build"], 5 * MIN],
  ["browser tests (Chromium, private network namespace)", "node", ["scripts/e2e.mjs"], 25 * MIN],
];

/** Kills a step's whole process group (it was started detached, as the group's leader). */
function killGroup(child) {
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Runs one step; resolves with its exit code, or "timeout" when it outlived `limitMs`. */
function runStep(cmd, args, limitMs) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    child.stdout.pipe(process.stdout, { end: false });
    child.stderr.pipe(process.stderr, { end: false });
    const onSignal = () => {
      killGroup(child);
      process.exit(130);
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, limitMs);
    child.once("error", (e) => {
      console.error(`cannot start ${cmd}: ${e.message}`);
      clearTimeout(timer);
      resolve(127);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      // Whatever the step left behind in its group (a server a test forgot) goes with it; output
      // already written is drained for a moment, then the pipes are let go.
      killGroup(child);
      setTimeout(() => {
        child.stdout.unpipe();
        child.stderr.unpipe();
        child.stdout.destroy();
        child.stderr.destroy();
        resolve(timedOut ? "timeout" : (code ?? signal));
      }, 500);
    });
  });
}

ensureSystemDeps();
const started = Date.now();
for (const [name, cmd, args, limitMs] of steps) {
  const t0 = Date.now();
  console.log(`\n=== ${name}`);
  const result = await runStep(cmd, args, limitMs);
  if (result === "timeout") {
    console.error(
      `\n✗ ${name} did not finish within ${limitMs / MIN} min and was stopped (see ⏳ lines above)`,
    );
    process.exit(1);
  }
  if (result !== 0) {
    console.error(`\n✗ ${name} failed (exit ${result})`);
    process.exit(typeof result === "number" && result !== 0 ? result : 1);
  }
  console.log(`✓ ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}
console.log(`\nall green in ${((Date.now() - started) / 1000).toFixed(0)} s`);
