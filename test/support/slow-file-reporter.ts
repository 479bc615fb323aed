/**
 * A Vitest reporter that names what is still running when a run takes too long: every 30 s it
 * prints each test file that has been running for more than two minutes, with the test inside it
 * that started last. A hang then shows up in the CI log as a file and a test name, rather than
 * as a log that just stops (a CI run once stalled in the unit suite for 90 minutes with no clue).
 * The timer is unref'd: the reporter never keeps a finished run alive.
 */
import type { Reporter, TestCase, TestModule } from "vitest/node";

/** How long a file runs before it is named (`LOFT_SLOW_FILE_MS` overrides, for trying it out). */
const REPORT_AFTER_MS = Number(process.env.LOFT_SLOW_FILE_MS) || 120_000;
const EVERY_MS = Math.min(30_000, REPORT_AFTER_MS);

export default class SlowFileReporter implements Reporter {
  readonly #started = new Map<string, number>();
  readonly #currentTest = new Map<string, string>();
  readonly #root = process.cwd();
  #timer: NodeJS.Timeout | undefined;

  onTestRunStart(): void {
    this.#timer = setInterval(() => this.#report(), EVERY_MS);
    this.#timer.unref();
  }

  onTestModuleStart(testModule: TestModule): void {
    this.#started.set(testModule.moduleId, Date.now());
  }

  onTestCaseReady(testCase: TestCase): void {
    this.#currentTest.set(testCase.module.moduleId, testCase.fullName);
  }

  onTestModuleEnd(testModule: TestModule): void {
    this.#started.delete(testModule.moduleId);
    this.#currentTest.delete(testModule.moduleId);
  }

  onTestRunEnd(): void {
    clearInterval(this.#timer);
    this.#report("unfinished when the run ended");
  }

  #report(heading = "still running"): void {
    const now = Date.now();
    for (const [file, since] of this.#started) {
      const seconds = Math.round((now - since) / 1000);
      if (heading === "still running" && now - since < REPORT_AFTER_MS) continue;
      const test = this.#currentTest.get(file);
      const name = file.startsWith(this.#root) ? file.slice(this.#root.length + 1) : file;
      process.stderr.write(`\n⏳ ${heading} after ${seconds} s: ${name}${test ? ` › ${test}` : ""}\n`);
    }
  }
}
