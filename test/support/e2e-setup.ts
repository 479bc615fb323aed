/**
 * Setup file of the browser tests (test/e2e/vitest.config.ts): each test marks where its logs
 * start, and a failing one prints them (test/support/failure-logs.ts) — after the file's own
 * `afterEach` hooks, which Vitest runs before `onTestFailed` handlers.
 */
import { beforeEach } from "vitest";
import { failureReport, markTestStart } from "./failure-logs.ts";

beforeEach(({ task, onTestFailed }) => {
  markTestStart();
  onTestFailed(async () => {
    const report = await failureReport(task.fullName);
    if (report) console.log(report);
  });
});
