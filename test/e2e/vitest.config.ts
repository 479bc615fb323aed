import { defineConfig } from "vitest/config";

// Browser tests: run only through `npm run test:e2e` (scripts/e2e.mjs), which creates the private
// network namespace first. One file at a time: each drives its own Chromium and servers.
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.e2e.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: false,
  },
});
