/**
 * `npm run noise:vectors -- [FILE…]` — replays every vector of cacophony-format Noise test-vector
 * files (cacophony, snow, noise-c, or our docs/vectors/noise-*.json) against core/noise, prints
 * one line per vector that failed (every vector with VERBOSE=1), then the skipped count on its own
 * line and finally `N passed, N failed`. Without FILE it runs the vendored published vectors and
 * ours. Exits non-zero when any vector failed or a file cannot be read.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runVectorFile, type VectorOutcome } from "../core/noise/vectors.ts";

const DEFAULT_FILES = [
  "test/vectors/noise/noise-xx-blake2s.json",
  "test/vectors/noise/noise-xx-aesgcm-sha256.json",
  "docs/vectors/noise-xxhfs-mlkem768.json",
  "docs/vectors/noise-xxhfs-mlkem768-aesgcm.json",
].map((f) => fileURLToPath(new URL(`../${f}`, import.meta.url)));
const files = process.argv.length > 2 ? process.argv.slice(2) : DEFAULT_FILES;

const outcomes: VectorOutcome[] = [];
for (const file of files) {
  let results: VectorOutcome[];
  try {
    results = await runVectorFile(JSON.parse(readFileSync(file, "utf8")));
  } catch (e) {
    console.error(`${file}: ${(e as Error).message}`);
    process.exit(2);
  }
  for (const r of results) {
    if (r.status === "failed") console.log(`FAIL ${file}#${r.index} ${r.protocolName}: ${r.reason}`);
    else if (process.env.VERBOSE) console.log(`${r.status} ${file}#${r.index} ${r.protocolName}`);
  }
  outcomes.push(...results);
}

const count = (s: VectorOutcome["status"]) => outcomes.filter((r) => r.status === s).length;
console.log(`${count("skipped")} skipped`);
console.log(`${count("passed")} passed, ${count("failed")} failed`);
process.exit(count("failed") > 0 ? 1 : 0);
