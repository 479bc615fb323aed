/**
 * `npm run bench:handshake-profile` — where an XX and an XXhfs+ML-KEM-768 handshake spend their
 * time, per crypto backend (noble, WebCrypto, node:crypto), in one Node process: each primitive
 * call of the provider is timed (a wrapper around the backend, nothing else changes) over many
 * complete handshakes (bench/loft-subjects.ts `handshake`, both sides in this process, empty
 * payloads, run one after the other so no two calls overlap). Per primitive: ms per handshake and
 * its share of the handshake's time (and the calls made); "state machine" is what no primitive accounts for (Noise's
 * own JavaScript, codecs, promise hops). Backends and patterns alternate round by round, so the
 * machine's load falls on all of them alike.
 *
 * `--json`: the last line is one JSON object; `--quick`: fewer handshakes; `--chromium`: the
 * WebCrypto comparison again inside headless Chromium (`inChromium`). Method and figures:
 * bench/README.md ("bench:handshake-profile").
 */

import { nobleCrypto } from "../core/crypto/noble.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../core/crypto/webcrypto.ts";
import type { HandshakePattern } from "../core/noise/index.ts";
import { XX, XX_AESGCM, XX_HFS, XX_HFS_AESGCM } from "../core/noise/index.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { JSON_OUTPUT, log, machine, QUICK } from "./harness.ts";
import { handshake } from "./loft-subjects.ts";
import { type Spent, timed } from "./timed-provider.ts";

const ROUNDS = QUICK ? 3 : 8;
const PER_ROUND = QUICK ? 10 : 40;

interface Profile {
  /** Whole handshakes measured. */
  handshakes: number;
  /** ms per handshake (both sides). */
  ms: number;
  /** Primitive → ms per handshake; "state machine" is the rest. */
  parts: Record<string, number>;
}

interface Case {
  key: string;
  pattern: HandshakePattern;
  crypto: CryptoProvider;
  spent: Spent;
  total: number;
  handshakes: number;
}

const providers: [string, CryptoProvider][] = [
  ["noble", nobleCrypto],
  ["webcrypto", await createWebCryptoProvider()],
  ["node", await createNodeCryptoProvider()],
];
const patterns: [string, HandshakePattern][] = [
  ["XX", XX],
  ["XXhfs", XX_HFS],
  ["XX_AESGCM", XX_AESGCM],
  ["XXhfs_AESGCM", XX_HFS_AESGCM],
];
const cases: Case[] = [];
for (const [backend, base] of providers)
  for (const [pattern, p] of patterns) {
    // The browser's pair is AES-GCM on WebCrypto; noble and node:crypto run ChaChaPoly.
    if (pattern.endsWith("AESGCM") !== backend.startsWith("webcrypto")) continue;
    const spent: Spent = new Map();
    cases.push({
      key: `${pattern}_${backend}`,
      pattern: p,
      crypto: timed(base, spent),
      spent,
      total: 0,
      handshakes: 0,
    });
  }

for (const c of cases) await handshake(c.pattern, c.crypto); // warm-up (JIT, noble's tables)
for (const c of cases) c.spent.clear();
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? cases : [...cases].reverse();
  for (const c of order) {
    const t0 = performance.now();
    for (let i = 0; i < PER_ROUND; i++) await handshake(c.pattern, c.crypto);
    c.total += performance.now() - t0;
    c.handshakes += PER_ROUND;
  }
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** Per handshake: the whole, each primitive, and what no primitive accounts for. */
function profileOf(total: number, handshakes: number, spent: Spent): Profile {
  const parts: Record<string, number> = {};
  let attributed = 0;
  for (const [name, ms] of [...spent].sort((a, b) => b[1] - a[1])) {
    parts[name] = round2(ms / handshakes);
    attributed += ms;
  }
  parts["state machine"] = round2((total - attributed) / handshakes);
  return { handshakes, ms: round2(total / handshakes), parts };
}

const profiles: Record<string, Profile> = {};
for (const c of cases) profiles[c.key] = profileOf(c.total, c.handshakes, c.spent);

/**
 * `--chromium`: the profile again inside headless Chromium, where the WebCrypto provider is the
 * PWA's: XX and XXhfs+ML-KEM-768 with the AES-GCM suite on WebCrypto, and XXhfs on noble (the
 * path before issue #10), rounds alternating. A page bundled from the real modules (and
 * bench/timed-provider.ts), served on loopback.
 */
async function inChromium(): Promise<Record<string, Profile>> {
  const { buildPage, callPage, repoModule, servePage } = await import("./page-bundle.ts");
  const { launchChromium } = await import("../test/support/browser.ts");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { rm } = await import("node:fs/promises");
  const source = `
import { handshake } from ${repoModule("bench/loft-subjects.ts")};
import { timed } from ${repoModule("bench/timed-provider.ts")};
import { XX_AESGCM, XX_HFS_AESGCM, XX_HFS, prepareEphemerals } from ${repoModule("core/noise/index.ts")};
import { nobleCrypto } from ${repoModule("core/crypto/noble.ts")};
import { createWebCryptoProvider } from ${repoModule("core/crypto/webcrypto.ts")};
window.loftBench = {
  async run(rounds, perRound) {
    const web = await createWebCryptoProvider();
    const cases = [["XX_AESGCM_webcrypto", XX_AESGCM, web], ["XXhfs_AESGCM_webcrypto", XX_HFS_AESGCM, web],
      ["XXhfs_noble", XX_HFS, nobleCrypto],
      // The dialler's ephemeral keys made before the clock starts, as while a link opens.
      ["XXhfs_AESGCM_webcrypto_prepared", XX_HFS_AESGCM, web, true]].map(([key, pattern, base, prepare]) => {
      const spent = new Map();
      return { key, pattern, base, prepare, crypto: timed(base, spent), spent, total: 0, handshakes: 0 };
    });
    for (const c of cases) await handshake(c.pattern, c.crypto);
    for (const c of cases) c.spent.clear();
    for (let r = 0; r < rounds; r++)
      for (const c of r % 2 ? [...cases].reverse() : cases) {
        for (let i = 0; i < perRound; i++) {
          const prepared = c.prepare ? await prepareEphemerals(c.base) : undefined;
          const t = performance.now();
          await handshake(c.pattern, c.crypto, prepared);
          c.total += performance.now() - t;
        }
        c.handshakes += perRound;
      }
    return cases.map((c) => ({ key: c.key, total: c.total, handshakes: c.handshakes, spent: [...c.spent] }));
  },
};`;
  const outDir = join(tmpdir(), `loft-bench-hs-${process.pid}`);
  await buildPage(source, outDir);
  const site = await servePage(outDir);
  const browser = await launchChromium();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(site.url);
    await page.waitForFunction(() => "loftBench" in window);
    const r = await callPage<{ key: string; total: number; handshakes: number; spent: [string, number][] }[]>(
      page,
      "run",
      ROUNDS,
      QUICK ? 5 : 20,
    );
    const out: Record<string, Profile> = {};
    for (const c of r) out[`${c.key}_chromium`] = profileOf(c.total, c.handshakes, new Map(c.spent));
    return out;
  } finally {
    await browser.close();
    site.close();
    await rm(outDir, { recursive: true, force: true });
  }
}
if (process.argv.includes("--chromium")) Object.assign(profiles, await inChromium());

if (!JSON_OUTPUT)
  for (const [key, p] of Object.entries(profiles)) {
    log(`${key}: ${p.ms} ms per handshake (both sides), ${p.handshakes} handshakes`);
    for (const [name, ms] of Object.entries(p.parts))
      log(
        `  ${name.padEnd(28)} ${ms.toFixed(2).padStart(7)} ms  ${((100 * ms) / p.ms).toFixed(0).padStart(3)} %`,
      );
  }

const share = (key: string, prefix: string) => {
  const p = profiles[key]!;
  const ms = Object.entries(p.parts)
    .filter(([n]) => n.startsWith(prefix))
    .reduce((sum, [, v]) => sum + v, 0);
  return Math.round((1000 * ms) / p.ms) / 1000;
};
console.log(
  JSON.stringify({
    bench: "handshake-profile",
    profiles,
    mlkem_share_xxhfs_webcrypto: share("XXhfs_AESGCM_webcrypto", "mlkem768"),
    x25519_share_xxhfs_webcrypto: share("XXhfs_AESGCM_webcrypto", "x25519"),
    mlkem_share_xxhfs_node: share("XXhfs_node", "mlkem768"),
    x25519_share_xxhfs_node: share("XXhfs_node", "x25519"),
    ...(profiles.XXhfs_AESGCM_webcrypto_chromium
      ? {
          mlkem_share_xxhfs_chromium: share("XXhfs_AESGCM_webcrypto_chromium", "mlkem768"),
          x25519_share_xxhfs_chromium: share("XXhfs_AESGCM_webcrypto_chromium", "x25519"),
          xxhfs_vs_xx_chromium: round2(
            profiles.XX_AESGCM_webcrypto_chromium!.ms / profiles.XXhfs_AESGCM_webcrypto_chromium!.ms,
          ),
          xxhfs_prepared_vs_not_chromium: round2(
            profiles.XXhfs_AESGCM_webcrypto_chromium!.ms /
              profiles.XXhfs_AESGCM_webcrypto_prepared_chromium!.ms,
          ),
          xxhfs_webcrypto_vs_noble_chromium: round2(
            profiles.XXhfs_noble_chromium!.ms / profiles.XXhfs_AESGCM_webcrypto_chromium!.ms,
          ),
        }
      : {}),
    xxhfs_vs_xx_webcrypto: round2(profiles.XX_AESGCM_webcrypto!.ms / profiles.XXhfs_AESGCM_webcrypto!.ms),
    xxhfs_vs_xx_node: round2(profiles.XX_node!.ms / profiles.XXhfs_node!.ms),
    machine: machine(),
  }),
);
