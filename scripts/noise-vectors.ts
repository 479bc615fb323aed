/**
 * `npm run noise:vectors -- FILE…` — replays every vector of cacophony-format Noise test-vector
 * files (cacophony, snow, noise-c, or our docs/vectors/noise-*.json) against core/noise, prints
 * one line per vector that failed, then the skipped count on its own line and finally
 * `N passed, N failed`. Exits non-zero when any vector failed or no file was given.
 */
import { readFileSync } from "node:fs";
import { runVectorFile, type VectorOutcome } from "../core/noise/vectors.ts";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: tsx scripts/noise-vectors.ts FILE [FILE…]");
  process.exit(2);
}

const outcomes: VectorOutcome[] = [];
for (const file of files) {
  let results: VectorOutcome[];
  try {
    results = runVectorFile(JSON.parse(readFileSync(file, "utf8")));
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
