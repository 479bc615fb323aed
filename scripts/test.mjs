// `npm test`: the whole suite, in order of cost — system packages, typecheck, lint/format, import cycles,
// unit + property + interop tests, the short abuse suite (test/abuse), the PWA build, then
// browser tests in a private network namespace. Stops at the first failing step and says which.
import { spawnSync } from "node:child_process";
import { ensureSystemDeps } from "./system-deps.mjs";

const steps = [
  ["typecheck", "npm", ["run", "-s", "typecheck"]],
  ["lint + format", "npx", ["biome", "check", "."]],
  ["import cycles (scripts/check-cycles.mjs)", "node", ["scripts/check-cycles.mjs"]],
  ["unit, property and interop tests", "npx", ["vitest", "run"]],
  [
    "abuse suite, short form (bounded floods on loopback)",
    "npx",
    ["vitest", "run", "--config", "test/abuse/vitest.config.ts"],
  ],
  ["build the PWA", "npm", ["run", "-s", "build"]],
  ["browser tests (Chromium, private network namespace)", "node", ["scripts/e2e.mjs"]],
];

ensureSystemDeps();
const started = Date.now();
for (const [name, cmd, args] of steps) {
  const t0 = Date.now();
  console.log(`\n=== ${name}`);
  const r = spawnSync(cmd, args, { stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`\n✗ ${name} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
  console.log(`✓ ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}
console.log(`\nall green in ${((Date.now() - started) / 1000).toFixed(0)} s`);
