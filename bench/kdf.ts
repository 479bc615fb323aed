/**
 * bench:kdf — what one passphrase guess costs (`npm run bench:kdf [-- --json] [-- --quick]`): the
 * time to derive the passphrase key with the current KDF (Argon2id, vault.ts `PASSPHRASE_KDF`) in
 * real Chromium and in Node, next to the previous KDF (PBKDF2-HMAC-SHA-256, 600 000 iterations,
 * WebCrypto) measured in the same page and run: `argon2id_vs_pbkdf2`. The browser figure is the
 * one the unlock and backup screens pay (the KDF runs on the main thread, yielding every 10 ms).
 *
 * The page runs a bundle built here with Vite from web/src/storage/vault.ts itself; nothing is
 * mocked. Figures: bench/README.md, "bench:kdf".
 */
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { launchChromium } from "../test/support/browser.ts";
import { derivePassphraseKey, PASSPHRASE_KDF, PBKDF2_ITERATIONS } from "../web/src/storage/vault.ts";
import { log, median, report } from "./harness.ts";
import { buildPage, repoModule, servePage } from "./page-bundle.ts";

const QUICK = process.argv.includes("--quick");
const RUNS = QUICK ? 2 : 5;

const PAGE_SOURCE = `
import { derivePassphraseKey, PASSPHRASE_KDF, PBKDF2_ITERATIONS } from ${repoModule("web/src/storage/vault.ts")};
const salt = crypto.getRandomValues(new Uint8Array(16));
async function time(params) {
  const start = performance.now();
  await derivePassphraseKey("correct horse battery staple", salt, params);
  return performance.now() - start;
}
window.loftKdf = {
  argon2id: () => time(PASSPHRASE_KDF),
  pbkdf2: () => time({ kdf: "PBKDF2-SHA256", iterations: PBKDF2_ITERATIONS }),
};
`;

async function runs(what: string, once: () => Promise<number>): Promise<number> {
  await once(); // warm-up (JIT, WebAssembly-free noble code paths)
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) ms.push(await once());
  log(`  ${what}: ${ms.map((x) => x.toFixed(0)).join(", ")} ms`);
  return median(ms);
}

async function main() {
  const outDir = join(tmpdir(), `loft-bench-kdf-${process.pid}`);
  log("building the bench page…");
  await buildPage(PAGE_SOURCE, outDir);
  const site = await servePage(outDir);
  const browser = await launchChromium();
  try {
    const page: Page = await (await browser.newContext()).newPage();
    await page.goto(site.url);
    await page.waitForFunction(() => "loftKdf" in window);
    type Kdf = Record<"argon2id" | "pbkdf2", () => Promise<number>>;
    const inPage = (f: "argon2id" | "pbkdf2") =>
      page.evaluate((name) => (window as unknown as { loftKdf: Kdf }).loftKdf[name](), f);
    const chromeArgon = await runs("Chromium Argon2id", () => inPage("argon2id"));
    const chromePbkdf2 = await runs("Chromium PBKDF2", () => inPage("pbkdf2"));
    const salt = new Uint8Array(16);
    const nodeTime = async (params: Parameters<typeof derivePassphraseKey>[2]) => {
      const start = performance.now();
      await derivePassphraseKey("correct horse battery staple", salt, params);
      return performance.now() - start;
    };
    const nodeArgon = await runs("Node Argon2id", () => nodeTime(PASSPHRASE_KDF));
    const params = `m=${PASSPHRASE_KDF.m} KiB, t=${PASSPHRASE_KDF.t}, p=${PASSPHRASE_KDF.p}`;
    report(
      `bench:kdf (Chromium ${browser.version()})`,
      [
        {
          name: `Argon2id (${params}) in Chromium, one derivation`,
          value: chromeArgon,
          unit: "ms",
          baseline: { name: `PBKDF2-SHA256 ${PBKDF2_ITERATIONS} (WebCrypto)`, value: chromePbkdf2 },
        },
        { name: `Argon2id (${params}) in Node`, value: nodeArgon, unit: "ms" },
      ],
      {
        argon2id_chromium_ms: Math.round(chromeArgon),
        pbkdf2_chromium_ms: Math.round(chromePbkdf2),
        argon2id_node_ms: Math.round(nodeArgon),
        argon2id_vs_pbkdf2: Number((chromeArgon / chromePbkdf2).toFixed(2)),
        params: { ...PASSPHRASE_KDF },
      },
    );
  } finally {
    await browser.close();
    site.close();
    await rm(outDir, { recursive: true, force: true });
  }
}

await main();
