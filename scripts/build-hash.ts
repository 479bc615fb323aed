/**
 * The build hash (README "Checking the build", docs/decisions.md "Honest updates"): one SHA-256
 * over the Service Worker's precache manifest, where every precached file carries its own
 * SHA-256 (as a subresource-integrity value, which the browser enforces when the SW fetches it).
 * and over the Service Worker's own code (sw.js is not in its precache: its SHA-256, taken with
 * both hashes still placeholders, is written into it as `__SW_SOURCE__`). So the hash names every
 * byte of the app: `npm run build` prints it, Settings shows the running one, the update banner
 * shows the waiting one, and sw/build-integrity.ts recomputes it in the browser the same way —
 * the canonical text below is the one definition both sides use:
 *
 *   for each entry, sorted by url:  url "\n" revision-or-empty "\n" integrity "\n"
 *   then:                           "sw.js\n" source-hash "\n"
 *
 * To check a deployment's sw.js by hand: put the two placeholders back in place of the build
 * hash and the source hash, SHA-256 the file, compare with the source hash.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ManifestEntry, ManifestTransform } from "workbox-build";

export interface IntegrityEntry {
  url: string;
  revision: string | null;
  integrity: string;
}

/**
 * What the Service Worker precaches: the whole built shell except itself, source maps and the
 * content origin's files (served on `peer.<host>` only; docs/protocol/proxy.md §Isolation).
 */
export const precacheGlobs = (outDir: string) => ({
  globDirectory: outDir,
  globPatterns: ["**/*.{html,js,css,svg,png,ico,webmanifest,woff2}"],
  globIgnores: ["sw.js", "**/*.map", "peer-sw.js", "peer-bridge.html", "peer-bridge.js"],
});

/** A workbox manifestTransform adding `integrity: sha256-…` to every entry, from the file's bytes. */
export const integrityTransform =
  (outDir: string): ManifestTransform =>
  async (entries) => ({
    manifest: entries.map((e) => ({
      ...e,
      integrity: `sha256-${createHash("sha256")
        .update(readFileSync(join(outDir, e.url)))
        .digest("base64")}`,
    })),
    warnings: [],
  });

/** Stand-ins written into sw.js at build time, replaced once both hashes are known. */
export const BUILD_HASH_PLACEHOLDER = "loft-build-hash-placeholder-000000000000000000000000000000000000";
export const SOURCE_HASH_PLACEHOLDER = "loft-sw-source-placeholder-0000000000000000000000000000000000000";

export function canonicalManifest(
  entries: readonly (ManifestEntry | IntegrityEntry)[],
  swSource: string,
): string {
  return `${[...entries]
    .sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0))
    .map((e) => `${e.url}\n${e.revision ?? ""}\n${e.integrity ?? ""}\n`)
    .join("")}sw.js\n${swSource}\n`;
}

const sha256hex = (s: string) => createHash("sha256").update(s).digest("hex");

/** The build hash: lowercase hex SHA-256 of the canonical manifest with the SW's source hash. */
export const buildHash = (entries: readonly (ManifestEntry | IntegrityEntry)[], swSource: string): string =>
  sha256hex(canonicalManifest(entries, swSource));

/**
 * Seal a built sw.js whose text still holds both placeholders (manifest injected): its source
 * hash, then the build hash, written in. Returns the sealed text and the build hash.
 */
export function sealServiceWorker(
  text: string,
  entries: readonly (ManifestEntry | IntegrityEntry)[],
): { text: string; hash: string; source: string } {
  if (!text.includes(BUILD_HASH_PLACEHOLDER) || !text.includes(SOURCE_HASH_PLACEHOLDER))
    throw new Error("sw.js: build-hash placeholders missing");
  const source = sha256hex(text);
  const hash = buildHash(entries, source);
  return {
    text: text.replaceAll(BUILD_HASH_PLACEHOLDER, hash).replaceAll(SOURCE_HASH_PLACEHOLDER, source),
    hash,
    source,
  };
}
