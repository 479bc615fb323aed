/**
 * What a failing browser test prints by itself: the console lines of the pages it watched, the
 * server's output and the signaling/relay counters, from when the test started (the last
 * `TAIL_LINES` of each). A passing run stays quiet; LOFT_E2E_LOGS=1 still prints everything at the
 * end (test/support/two-browsers.ts `close`). A failure in a loaded CI run can then be read from
 * the CI log alone, without a rerun that passes.
 *
 * Test environments register what they hold (`showOnFailure`); the e2e config's setup file
 * (test/support/e2e-setup.ts) marks where each test starts and prints the report once a test
 * failed — after the file's own `afterEach` hooks, so what a recovery hook waited for is in it.
 */

/** At most this many lines of each source are printed (the latest ones). */
export const TAIL_LINES = 300;

export interface FailureLogSource {
  /** What the lines are, as printed in the heading ("pages", "server stdout/stderr"). */
  readonly name: string;
  /** Every line so far, oldest first; the list only grows (lines are never rewritten). */
  lines(): readonly string[];
  /** Lines to add at the time of the failure (the state of a page, counters), best effort. */
  snapshot?(): Promise<string[]>;
}

interface Registered {
  source: FailureLogSource;
  /** How many of its lines were there when the current test started. */
  mark: number;
}

const registered = new Set<Registered>();
/** When the current test started, in the pages' log time (`performance.now()` of this process, s). */
let startedAt = 0;

/** Show `source` in the report of any test failing from now on; returns the way to stop. */
export function showOnFailure(source: FailureLogSource): () => void {
  // Lines from before the registration, made while the current test ran, belong to it.
  const entry: Registered = { source, mark: 0 };
  registered.add(entry);
  return () => registered.delete(entry);
}

/** A test starts: what each source holds so far belongs to earlier tests. */
export function markTestStart(): void {
  startedAt = performance.now() / 1000;
  for (const entry of registered) entry.mark = entry.source.lines().length;
}

/** The lines of `all` from `mark`, at most the last `max`, with a note of what was left out. */
export function tailSince(all: readonly string[], mark: number, max = TAIL_LINES): string[] {
  const since = all.slice(Math.min(mark, all.length));
  if (since.length <= max) return since;
  return [`… ${since.length - max} earlier lines of this test left out`, ...since.slice(-max)];
}

/**
 * The report of a failed test: each source's lines since the test started, then its snapshot;
 * empty when no source is registered (a test file without these environments).
 */
export async function failureReport(testName: string): Promise<string> {
  if (registered.size === 0) return "";
  const out = [
    `\n===== logs of the failed test "${testName}" (since it started at ${startedAt.toFixed(2)} s; now ${(performance.now() / 1000).toFixed(2)} s) =====`,
  ];
  for (const { source, mark } of registered) {
    const lines = tailSince(source.lines(), mark);
    out.push(`--- ${source.name}: ${lines.length === 0 ? "nothing" : `${lines.length} lines`} ---`, ...lines);
    if (source.snapshot) {
      let snap: string[];
      try {
        snap = await source.snapshot();
      } catch (e) {
        snap = [`(could not be read: ${(e as Error).message})`];
      }
      out.push(`--- ${source.name}, at the failure ---`, ...snap);
    }
  }
  out.push(`===== end of the logs of "${testName}" =====\n`);
  return out.join("\n");
}
