import { defineConfig } from "vitest/config";

// Browser tests: run only through `npm run test:e2e` (scripts/e2e.mjs), which creates the private
// network namespace first. Each file drives its own Chromium and servers.

/**
 * Files that change their namespace's network: they take the test address away (the direct path
 * dies: network-drop, a call's reconnect, a file's resume) or throttle it on `lo` (files). Beside
 * them another file's direct path would die or crawl mid-test, so they run one at a time, never
 * with a shared-network file in the same namespace: the whole suite (scripts/e2e.mjs, no files
 * named) gives them a namespace of their own, beside the shared one; named files share one
 * namespace, and then this group runs after the other.
 */
const CHANGES_NETWORK = [
  "test/e2e/calls.e2e.ts",
  "test/e2e/files.e2e.ts",
  "test/e2e/files-large.e2e.ts",
  "test/e2e/network-drop.e2e.ts",
];

/**
 * The longest shared-network files (a wait for a proxy answer that never comes, real Argon2id
 * in `loft`'s processes; a dozen proxied sites). In the whole suite (LOFT_E2E_LANES, set by
 * scripts/e2e.mjs) they run in the changes-network namespace once its files are done — one at a
 * time, the network as the suite found it (each changes-network file puts it back,
 * test/support/test-network.ts) — so the two namespaces take about as long as each other.
 */
const AFTER_CHANGES = ["test/e2e/cli.e2e.ts", "test/e2e/proxy.e2e.ts"];
const LANES = process.env.LOFT_E2E_LANES === "1";

export default defineConfig({
  test: {
    // The default output, plus the files still running after two minutes (a hang names itself).
    reporters: ["default", "./test/support/slow-file-reporter.ts"],
    // Every project's files (`extends: true`): each file starts from the namespace's network as
    // scripts/e2e.mjs made it — after a changes-network file, whatever it left — and a failing test
    // prints its pages' console lines and the server's output by itself.
    setupFiles: ["./test/support/e2e-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // expect.poll gives up after 1 s by default: a page on a loaded 2-core machine can take longer
    // to show what it will show. Bounded like every other wait in these files, never a speed check.
    expect: { poll: { timeout: 30_000 } },
    projects: [
      {
        extends: true,
        test: {
          name: "shared-network",
          include: ["test/e2e/**/*.e2e.ts"],
          exclude: LANES ? [...CHANGES_NETWORK, ...AFTER_CHANGES] : CHANGES_NETWORK,
          // Two files at a time on the 2-core CI machine: each drives its own Chromium and servers
          // on ephemeral loopback ports, offline is per browser context, and most of a browser test
          // is waiting on the other page, so two keep both cores busy.
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: "changes-network",
          include: CHANGES_NETWORK,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
      ...(LANES
        ? [
            {
              extends: true as const,
              test: {
                name: "shared-after-changes",
                include: AFTER_CHANGES,
                maxWorkers: 1,
                sequence: { groupOrder: 2 },
              },
            },
          ]
        : []),
    ],
  },
});
