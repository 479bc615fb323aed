// Browser tests in real Chromium, inside a private network namespace this script creates
// (docs/design.md, "Testing"): WebRTC gathers no candidate on loopback alone and mDNS would leak onto
// the real interface, so the tests get their own `lo` plus a bridge with a test address
// (198.18.0.1/24, RFC 2544 benchmarking space) and a default route that goes nowhere else.
//
//   node scripts/e2e.mjs                      run test/e2e/**/*.e2e.ts
//   node scripts/e2e.mjs test/e2e/chat.e2e.ts run one file
//   node scripts/e2e.mjs --bench bench/chat.ts run a browser benchmark in the namespace
//
// It builds web/dist first (npm run build) when it is missing or older than its sources.
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { distStaleness } from "./dist-freshness.mjs";

const NS_ADDR = "198.18.0.1";

if (!process.env.LOFT_NETNS) {
  if (process.getuid?.() !== 0) {
    console.error("browser tests need root to create a network namespace (unshare -n)");
    process.exit(1);
  }
  // The tests serve the built PWA: build it first when it is missing or older than its sources
  // (otherwise every page load would wait out its timeout on a fresh clone).
  const root = fileURLToPath(new URL("..", import.meta.url));
  const stale = distStaleness(root);
  if (stale) {
    console.log(`${stale}: building the PWA first (npm run build)`);
    const b = spawnSync("npm", ["run", "-s", "build"], { cwd: root, stdio: "inherit" });
    if (b.status !== 0) {
      console.error("the PWA build failed: fix it before running browser tests");
      process.exit(b.status || 1);
    }
  }
  const r = spawnSync("unshare", ["-n", "--", process.execPath, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, LOFT_NETNS: "1", LOFT_TEST_ADDR: NS_ADDR },
  });
  process.exit(r.status ?? 1);
}

for (const cmd of [
  "link set lo up",
  "link add loft0 type bridge",
  `addr add ${NS_ADDR}/24 dev loft0`,
  "link set loft0 up",
  "route add default dev loft0",
]) {
  execFileSync("ip", cmd.split(" "), { stdio: "inherit" });
}

const args = process.argv.slice(2);
let r;
if (args[0] === "--bench") {
  r = spawnSync("npx", ["tsx", ...args.slice(1)], { stdio: "inherit" });
} else {
  r = spawnSync("npx", ["vitest", "run", "--config", "test/e2e/vitest.config.ts", ...args], {
    stdio: "inherit",
  });
}
process.exit(r.status ?? 1);
