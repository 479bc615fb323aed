// Is the built PWA (web/dist) missing or older than what it is built from? Browser tests serve
// web/dist through the real server; without it every page load times out instead of failing
// fast, so scripts/e2e.mjs asks this first and builds when needed.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** What `npm run build` reads: the app, the Service Worker, static files, core, the lockfile. */
export const BUILD_INPUTS = ["web", "sw", "public", "core", "package.json", "package-lock.json"];
/** Never inputs: the output itself, dependencies, and tests (not bundled). */
const SKIP = /(^|\/)(dist|node_modules)(\/|$)|\.test\.ts$/;
/** Bound on the walk, so a stray huge folder can't hang the test runner. */
const MAX_ENTRIES = 100_000;

/** Newest modification time (ms) among `inputs` under `root`, files only; 0 when none. */
export function newestInput(root, inputs = BUILD_INPUTS) {
  let newest = 0;
  let seen = 0;
  const stack = inputs.map((p) => p);
  while (stack.length > 0 && seen++ < MAX_ENTRIES) {
    const rel = stack.pop();
    if (SKIP.test(rel)) continue;
    let st;
    try {
      st = statSync(join(root, rel));
    } catch {
      continue; // an input that does not exist (yet) changes nothing
    }
    if (st.isDirectory()) for (const name of readdirSync(join(root, rel))) stack.push(`${rel}/${name}`);
    else if (st.mtimeMs > newest) newest = st.mtimeMs;
  }
  return newest;
}

/**
 * Why web/dist must be (re)built, or undefined when it is current. The build's own marker is
 * dist/sw.js, written last (after the app bundle and the precache manifest).
 */
export function distStaleness(root) {
  let built;
  try {
    built = Math.min(
      statSync(join(root, "web/dist/index.html")).mtimeMs,
      statSync(join(root, "web/dist/sw.js")).mtimeMs,
    );
  } catch {
    return "web/dist is missing (no build yet)";
  }
  const newest = newestInput(root);
  if (newest > built) return "web/dist is older than its sources";
  return undefined;
}
