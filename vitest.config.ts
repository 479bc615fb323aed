import { defineConfig } from "vitest/config";

// Unit, property and interop tests. Browser (Playwright) tests run separately through
// `npm run test:e2e`, inside the network namespace the runner creates (see scripts/e2e.mjs).
export default defineConfig({
  test: {
    // The default output, plus the files still running after two minutes (a hang names itself).
    reporters: ["default", "./test/support/slow-file-reporter.ts"],
    include: [
      "core/**/*.test.ts",
      "cli/**/*.test.ts",
      "device/**/*.test.ts",
      "signaling/**/*.test.ts",
      "relay-ws/**/*.test.ts",
      "smp/**/*.test.ts",
      "test/smp/**/*.test.ts",
      "host/**/*.test.ts",
      "server/**/*.test.ts",
      "test/unit/**/*.test.ts",
      "test/interop/**/*.test.ts",
      "test/vectors/**/*.test.ts",
      "test/fuzz/**/*.test.ts",
      "web/**/*.test.ts",
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Vitest's default in run mode is one worker less than the cores: a single worker on the
    // 2-core CI machine. Most files wait on sockets and timers, so two workers keep both cores busy.
    maxWorkers: 2,
    // expect.poll's default 1 s is a wall-clock bound a loaded machine can miss; waits are bounded
    // by this instead, never used to assert speed.
    expect: { poll: { timeout: 30_000 } },
  },
});
