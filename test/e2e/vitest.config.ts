import { defineConfig } from "vitest/config";

// Browser tests: run only through `npm run test:e2e` (scripts/e2e.mjs), which creates the private
// network namespace first. Each file drives its own Chromium and servers.
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.e2e.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Two files at a time on the 2-core CI machine: each drives its own Chromium and servers on
    // ephemeral loopback ports, offline is per browser context, and most of a browser test is
    // waiting on the other page, so two keep both cores busy.
    maxWorkers: 2,
  },
});
