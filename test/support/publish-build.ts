import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { DEFAULT_RECONNECT } from "../../core/signaling/client.ts";
import {
  BUILD_HASH_PLACEHOLDER,
  buildHash,
  type IntegrityEntry,
  SOURCE_HASH_PLACEHOLDER,
  sealServiceWorker,
} from "../../scripts/build-hash.ts";
import { UPDATE_CHECKS, type UpdateCheckIntervals } from "../../web/src/update-checks.ts";

const INJECTED = /\[\{"integrity":[^\]]*\]/;

/**
 * A served sw.js taken apart: its manifest, its build hash and source hash (the two 64-hex
 * strings in it, told apart by which one is the build hash of the other), and its text with both
 * put back to placeholders — the text `npm run build` sealed.
 */
export async function openServiceWorker(dir: string) {
  const sw = await readFile(join(dir, "sw.js"), "utf8");
  const injected = INJECTED.exec(sw)![0];
  const entries = JSON.parse(injected) as IntegrityEntry[];
  const hexes = [...new Set(sw.match(/(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])/g) ?? [])];
  for (const hash of hexes)
    for (const source of hexes)
      if (hash !== source && buildHash(entries, source) === hash) {
        const template = sw
          .replaceAll(hash, BUILD_HASH_PLACEHOLDER)
          .replaceAll(source, SOURCE_HASH_PLACEHOLDER);
        if (createHash("sha256").update(template).digest("hex") !== source)
          throw new Error("sw.js does not hash to its source hash");
        return { entries, injected, hash, source, template };
      }
  throw new Error("sw.js does not carry the build hash of its manifest");
}

/**
 * Publish a new build in `dir` the way `npm run build` would: change manifest.webmanifest's
 * description, recompute every manifest entry (md5 revision, SHA-256 integrity), inject them and
 * seal sw.js again (scripts/build-hash.ts). Returns the new build hash.
 */
export async function publishBuild(dir: string, description: string): Promise<string> {
  const { entries, injected, template } = await openServiceWorker(dir);
  const manifestPath = join(dir, "manifest.webmanifest");
  const manifest = JSON.parse(await readFile(manifestPath, "utf8")) as { description?: string };
  manifest.description = description;
  await writeFile(manifestPath, JSON.stringify(manifest));
  const next: IntegrityEntry[] = [];
  for (const e of entries) {
    const bytes = await readFile(join(dir, e.url));
    next.push({
      integrity: `sha256-${createHash("sha256").update(bytes).digest("base64")}`,
      revision: createHash("md5").update(bytes).digest("hex"),
      url: e.url,
    });
  }
  const sealed = sealServiceWorker(template.replace(injected, JSON.stringify(next)), next);
  await writeFile(join(dir, "sw.js"), sealed.text);
  return sealed.hash;
}

/** The build hash `npm run build` printed for the sw.js in `dir`, recomputed from the file. */
export async function servedBuildHash(dir: string): Promise<string> {
  return (await openServiceWorker(dir)).hash;
}

/**
 * Ask `page`'s Service Worker registration to look for a new build now, as the app does by itself
 * (web/src/sw-client.ts). Right after a publish one look is not enough: Chromium merges it into a
 * look already under way — its own after a navigation, or the app's when its signaling connects —
 * whose answer may be the build before. So a test calls this inside `expect.poll` until what it
 * waits for is on screen.
 */
export async function lookForNewBuild(page: Page): Promise<void> {
  await page.evaluate(async () =>
    (await navigator.serviceWorker.getRegistration())?.update().catch(() => undefined),
  );
}

/**
 * The longest an open page takes to show a build put in place before its server restarted: its
 * signaling client's longest reconnect wait (core/signaling/client.ts `DEFAULT_RECONNECT`), then
 * the reconnect's look for a build, at most `reconnectMinMs` later (web/src/update-checks.ts),
 * then the install fetching the whole build (60 s on a loaded machine). Read from the code, so a
 * changed backoff or interval moves it.
 */
export const BANNER_AFTER_RESTART_MS = DEFAULT_RECONNECT.maxMs + UPDATE_CHECKS.reconnectMinMs + 60_000;

/**
 * When `context`'s pages look for new builds (web/src/update-checks.ts `updateCheckIntervals`):
 * an init script sets them before the app loads, as test/support/engine-timings.ts does for the
 * engine. For tests of the hourly and tab-shown looks, which would otherwise wait an hour or ten
 * minutes.
 */
export async function useUpdateChecks(
  context: BrowserContext,
  intervals: Partial<UpdateCheckIntervals>,
): Promise<void> {
  await context.addInitScript(`globalThis.loftUpdateChecks = ${JSON.stringify(intervals)};`);
}

/** The page's tab hidden, then shown again, as a person switching tabs makes it. */
export async function showTabAgain(page: Page): Promise<void> {
  await page.evaluate(() => {
    for (const state of ["hidden", "visible"]) {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
      document.dispatchEvent(new Event("visibilitychange"));
    }
  });
}
