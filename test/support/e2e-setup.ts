/**
 * Setup file of the browser tests, run for every file of every project (test/e2e/vitest.config.ts):
 * - each file starts from the namespace's network as scripts/e2e.mjs made it (`resetTestNetwork`):
 *   the shared-after-changes files run where the changes-network files took the test address away
 *   or throttled `lo`, and a file that failed before putting it back must not break the next one;
 *   what had to be put back is said;
 * - each test marks where its logs start, and a failing one prints them
 *   (test/support/failure-logs.ts) — after the file's own `afterEach` hooks, which Vitest runs
 *   before `onTestFailed` handlers.
 */
import { beforeAll, beforeEach } from "vitest";
import { failureReport, markTestStart } from "./failure-logs.ts";
import { resetTestNetwork } from "./test-network.ts";

// Vitest heads what a file's hooks print with the file's name: the one that found the network so.
beforeAll(() => {
  const fixed = resetTestNetwork();
  if (fixed.length > 0)
    console.warn(
      `test network at this file's start: ${fixed.join("; ")} — a file before it left it so; put back`,
    );
});

beforeEach(({ task, onTestFailed }) => {
  markTestStart();
  onTestFailed(async () => {
    const report = await failureReport(task.fullName);
    if (report) console.log(report);
  });
});
