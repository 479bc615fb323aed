/**
 * Whether another checkout's store can run in this process beside this checkout's
 * (bench/relay-store.ts `--baseline DIR`, bench/README-relay.md "The store alone").
 *
 * Both stores must load the one lmdb-js this checkout loads. A second copy — DIR's own
 * node_modules, even hard-linked to the same files, is another path and so another module —
 * brings its own msgpackr record structures and native binding into the process, and the two
 * stores then misread each other's records ("Extra 124 of 125 byte(s)" on the first append).
 * Node identifies a module by its real path (symlinks resolved), so a DIR/node_modules symlink to
 * this checkout's node_modules shares it; a copy does not.
 */
import { realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

/**
 * The real path of the lmdb-js entry a module at `dir`/relay-ws/store/lmdb.ts would load, if any
 * (`dir` relative to the working directory, as the bench loads it: createRequire takes only an
 * absolute path).
 */
function lmdbFrom(dir: string): string | undefined {
  try {
    return realpathSync(createRequire(join(resolve(dir), "relay-ws/store/lmdb.ts")).resolve("lmdb"));
  } catch {
    return undefined;
  }
}

/**
 * Why `dir`'s store cannot run beside the store of `checkout` in one process, or undefined when it
 * can: the message says what to do.
 */
export function inProcessBaselineProblem(dir: string, checkout: string): string | undefined {
  const here = lmdbFrom(checkout);
  const there = lmdbFrom(dir);
  if (here !== undefined && there === here) return undefined;
  const modules = join(resolve(checkout), "node_modules");
  const found = there === undefined ? "loads no lmdb-js" : `loads lmdb-js from ${there}`;
  return (
    `--baseline ${dir}: it ${found}, not this checkout's (${here ?? "none found"}). Both stores run ` +
    "in this process and must share one lmdb-js: two copies cannot read each other's records " +
    "(a hard-linked copy of node_modules is still a second copy). Make DIR with a link to this " +
    `checkout's modules: mkdir DIR && git archive <commit> | tar -x -C DIR && ln -s ${modules} DIR/node_modules`
  );
}
