// Browser tests in real Chromium, inside a private network namespace this script creates
// (docs/design.md, "Testing"): WebRTC gathers no candidate on loopback alone and mDNS would leak onto
// the real interface, so the tests get their own `lo` plus a bridge with a test address
// (198.18.0.1/24, RFC 2544 benchmarking space) and a default route that goes nowhere else.
//
//   node scripts/e2e.mjs                      run test/e2e/**/*.e2e.ts
//   node scripts/e2e.mjs test/e2e/chat.e2e.ts run one file
//   node scripts/e2e.mjs --bench bench/chat.ts run a browser benchmark in the namespace
//
// The whole suite runs in two namespaces at once, one per project of test/e2e/vitest.config.ts:
// the files that change their namespace's network (take the test address away, throttle `lo`)
// run one at a time in a namespace of their own, beside the shared-network files, which no longer
// wait for them; the longest shared-network files follow them there (test/e2e/vitest.config.ts,
// AFTER_CHANGES), so both namespaces end at about the same time. Each namespace has its own `lo`
// and `loft0`, so the same address and the same ports in both are two separate networks. Named
// files run in one namespace, as before.
//
// It builds web/dist first (npm run build) when it is missing or older than its sources.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { exitedAndDrained } from "../test/support/child-exit.mjs";
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
  const env = { ...process.env, LOFT_NETNS: "1", LOFT_TEST_ADDR: NS_ADDR };
  const script = process.argv[1];
  const args = process.argv.slice(2);
  if (args.length > 0) {
    const r = spawnSync("unshare", ["-n", "--", process.execPath, script, ...args], {
      stdio: "inherit",
      env,
    });
    process.exit(r.status ?? 1);
  }
  // The whole suite: each project in a namespace of its own, both at once. Their output goes
  // through here line by line (a line of one never cut by the other), the changes-network lane's
  // marked; the run fails when either fails.
  if (process.stdout.isTTY) env.FORCE_COLOR ??= "1";
  env.LOFT_E2E_LANES = "1";
  const lane = (projects, mark) =>
    new Promise((resolve) => {
      const only = projects.flatMap((p) => ["--project", p]);
      const child = spawn("unshare", ["-n", "--", process.execPath, script, ...only], {
        stdio: ["ignore", "pipe", "pipe"],
        env,
      });
      for (const [from, to] of [
        [child.stdout, process.stdout],
        [child.stderr, process.stderr],
      ])
        createInterface({ input: from, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) =>
          to.write(`${mark}${line}\n`),
        );
      // Over when the lane's process exits: a stray grandchild that kept a pipe open cannot hold
      // the run open (scripts/test.mjs, the same for its steps); what is written is drained first.
      void exitedAndDrained(child, 500).then(({ code, signal, error }) => {
        if (error) console.error(`cannot start the ${projects.join(" + ")} lane: ${error.message}`);
        resolve(error ? 1 : (code ?? (signal ? 1 : 0)));
      });
    });
  const codes = await Promise.all([
    lane(["shared-network"], ""),
    lane(["changes-network", "shared-after-changes"], "[changes-network] "),
  ]);
  process.exit(codes.find((c) => c !== 0) ?? 0);
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
