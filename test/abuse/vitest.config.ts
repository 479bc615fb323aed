import { defineConfig } from "vitest/config";

// The abuse suite (test/abuse/README.md): bounded floods on loopback against the real server.
// One file at a time — each measures latency and must not share the CPU with another flood.
export default defineConfig({
  test: {
    // The default output, plus the files still running after two minutes (a hang names itself).
    reporters: ["default", "./test/support/slow-file-reporter.ts"],
    include: ["test/abuse/**/*.abuse.ts"],
    testTimeout: 300_000,
    hookTimeout: 60_000,
    pool: "forks",
    fileParallelism: false,
  },
});
