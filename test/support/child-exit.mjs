// When a child process is over: exited, and what it wrote read to the end. Plain JavaScript so
// that scripts/e2e.mjs, which runs on Node before tsx is loaded, imports the same copy as the
// TypeScript test support (test/support/loft-process.ts, test/support/redis-server.ts); its types
// are in child-exit.d.mts.

/**
 * Resolves once `child` exited and its pipes closed: its last writes may still be in the pipes
 * at 'exit' (a log line read once after the exit could miss them), so it waits for 'close', which
 * comes once stdout and stderr ended too — at most `drainMs` after the exit, since a grandchild
 * that inherited the pipes (a server's worker, Redis's AOF rewrite) could hold them open for ever.
 * 'exit' never comes when the spawn itself failed: then it resolves with that `error` and no code.
 */
export function exitedAndDrained(child, drainMs) {
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      const drained = setTimeout(() => resolve({ code, signal }), drainMs);
      child.once("close", () => {
        clearTimeout(drained);
        resolve({ code, signal });
      });
    });
    child.once("error", (error) => {
      if (child.pid === undefined) resolve({ code: null, signal: null, error });
    });
  });
}
