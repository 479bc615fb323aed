/**
 * The crypto backends in real Chromium (core/crypto): a page bundled from the real modules
 * (bench/page-bundle.ts; nothing mocked) builds the noble provider and the WebCrypto one — each
 * primitive detected against noble in the page — and replays every vector file through both: the
 * published Noise XX vectors and our XXhfs ones, the Double Ratchet and the PQXDH vectors, and the
 * identity files (identities, signed requests, contact links: core/wire/signed-vectors.ts). Node's
 * relay's 1.1 command authenticators. Node's
 * side of the same check is test/vectors/backends.test.ts.
 */
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPage, repoModule, servePage } from "../../bench/page-bundle.ts";
import { launchChromium } from "../support/browser.ts";
import { closeBrowser, tearDown } from "../support/teardown.ts";

const PAGE_SOURCE = `
import { nobleCrypto } from ${repoModule("core/crypto/noble.ts")};
import { createWebCryptoProvider } from ${repoModule("core/crypto/webcrypto.ts")};
import { runVectorFile } from ${repoModule("core/noise/vectors.ts")};
import { replayRatchetVectors } from ${repoModule("core/ratchet/vectors.ts")};
import { replayPqxdhVectors } from ${repoModule("core/prekey/vectors.ts")};
import { replayIdentityVectors } from ${repoModule("core/wire/signed-vectors.ts")};
import { replayRelayAuthVectors } from ${repoModule("core/relay/vectors.ts")};
window.loftVectors = async (files) => {
  const out = {};
  for (const provider of [nobleCrypto, await createWebCryptoProvider()]) {
    const noise = [];
    for (const f of files.noise) for (const o of await runVectorFile(f, provider)) noise.push(o.status);
    out[provider.name] = {
      backends: provider.backends,
      noise,
      ratchet: await replayRatchetVectors(files.ratchet, provider),
      ratchetV2: await replayRatchetVectors(files.ratchetV2, provider),
      ratchetV3: await replayRatchetVectors(files.ratchetV3, provider),
      pqxdh: await replayPqxdhVectors(files.pqxdh, provider),
      identity: await replayIdentityVectors(files.identity, provider),
      relayAuth: await replayRelayAuthVectors(files.relayAuth, provider),
    };
  }
  return out;
};
`;

const read = (path: string) => JSON.parse(readFileSync(new URL(`../../${path}`, import.meta.url), "utf8"));

interface Outcome {
  backends: Record<string, string>;
  noise: string[];
  ratchet: string;
  ratchetV2: string;
  ratchetV3: string;
  pqxdh: string;
  identity: string;
  relayAuth: string;
}

let browser: Browser;
let site: { url: string; close: () => void };
const outDir = join(tmpdir(), `loft-e2e-crypto-${process.pid}`);

beforeAll(async () => {
  await buildPage(PAGE_SOURCE, outDir);
  site = await servePage(outDir);
  browser = await launchChromium();
});

afterAll(() =>
  tearDown(
    () => closeBrowser(browser),
    () => site?.close(),
    () => rm(outDir, { recursive: true, force: true }),
  ),
);

describe("crypto backends in Chromium", () => {
  it("noble and WebCrypto both reproduce every vector file; WebCrypto serves what the browser has", async () => {
    const page = await browser.newPage();
    await page.goto(site.url);
    await page.waitForFunction(() => "loftVectors" in window);
    const files = {
      noise: [
        read("test/vectors/noise/noise-xx-blake2s.json"),
        read("test/vectors/noise/noise-xx-aesgcm-sha256.json"),
        read("docs/vectors/noise-xxhfs-mlkem768.json"),
        read("docs/vectors/noise-xxhfs-mlkem768-aesgcm.json"),
      ],
      ratchet: read("docs/vectors/ratchet-v1.json"),
      ratchetV2: read("docs/vectors/ratchet-v2.json"),
      ratchetV3: read("docs/vectors/ratchet-v3.json"),
      pqxdh: read("docs/vectors/pqxdh-v1.json"),
      identity: {
        identities: read("docs/vectors/identity-vectors.json"),
        requests: read("docs/vectors/identity-signed-requests.json"),
        links: read("docs/vectors/identity-contact-links.json"),
      },
      relayAuth: read("docs/vectors/relay-auth-v1.1.json"),
    };
    const results = (await page.evaluate(
      (f) => (window as unknown as { loftVectors(f: unknown): Promise<unknown> }).loftVectors(f),
      files,
    )) as Record<string, Outcome>;
    expect(Object.keys(results).sort()).toEqual(["noble", "webcrypto"]);
    for (const [name, r] of Object.entries(results)) {
      expect(
        r.noise.filter((s) => s === "failed"),
        name,
      ).toEqual([]);
      expect(r.noise.filter((s) => s === "passed").length, name).toBeGreaterThanOrEqual(10);
      expect(r.ratchet, name).toBe("passed");
      expect(r.ratchetV2, name).toBe("passed");
      expect(r.ratchetV3, name).toBe("passed");
      expect(r.pqxdh, name).toBe("passed");
      expect(r.identity, name).toBe("passed");
      expect(r.relayAuth, name).toBe("passed");
    }
    // Every browser has these natively; X25519 and Ed25519 depend on the Chromium version.
    const web = results.webcrypto!.backends;
    for (const p of ["aes256gcm", "sha256", "sha512", "hmacSha256", "hkdfSha256", "random"])
      expect(web[p], p).toBe("webcrypto");
    // No browser has ChaCha20-Poly1305, BLAKE2s or seeded ML-KEM in WebCrypto: noble, detected as such.
    for (const p of ["xchacha20poly1305", "blake2s", "hmacBlake2s", "mlkem768"])
      expect(web[p], p).toBe("noble");
    console.log(`Chromium WebCrypto backends: ${JSON.stringify(web)}`);
    await page.close();
  });
});
