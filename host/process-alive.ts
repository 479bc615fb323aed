/**
 * Whether a process id names a running process, for the Node side's pid-named leftovers: the
 * relay data dir's lock and its temporary names (relay-ws/store/dir-lock.ts), the CLI's identity
 * lock (cli/state-file.ts) and the test harness's per-run data dirs (test/support/loft-process.ts).
 *
 * `kill(pid, 0)` sends nothing and only checks: it succeeds for our own processes; it fails with
 * EPERM for a process that exists under another user (another relay under another account — so it
 * counts as running) and with ESRCH for a pid no process has (gone). A reused pid looks alive; the
 * callers that must tell reuse apart compare more (dir-lock.ts: the start time and boot id).
 */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
