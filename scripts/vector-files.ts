/**
 * The command line the vector generators in scripts/ share (`npm run vectors:check`):
 * run as a script, not imported by a test, a generator writes each of its files, or with `--check`
 * writes nothing and exits 1 after naming every committed file that differs from what it produces.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Whether the module at `moduleUrl` (its `import.meta.url`) is the script node was started with. */
export function isScript(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && fileURLToPath(moduleUrl) === process.argv[1];
}

/** Write `[path, text]` pairs, or with `--check` compare them with the committed files. */
export function writeOrCheck(outputs: readonly (readonly [path: string, text: string])[]): void {
  if (!process.argv.includes("--check")) {
    for (const [path, text] of outputs) {
      writeFileSync(path, text);
      console.log(`wrote ${path}`);
    }
    return;
  }
  let stale = false;
  for (const [path, text] of outputs) {
    let committed = "";
    try {
      committed = readFileSync(path, "utf8");
    } catch {}
    if (committed !== text) {
      console.error(`${path} differs from what the generator produces`);
      stale = true;
    }
  }
  if (stale) process.exit(1);
}
