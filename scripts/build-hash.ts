/**
 * The build hash (README "Checking the build", docs/decisions.md "Honest updates"): one SHA-256
 * over the Service Worker's precache manifest, where every precached file carries its own
 * SHA-256 (as a subresource-integrity value, which the browser enforces when the SW fetches it).
 * So the hash names every byte of the app shell: `npm run build` prints it, Settings shows the
 * running one, the update banner shows the waiting one, and sw/build-integrity.ts recomputes it
 * in the browser the same way — the canonical text below is the one definition both sides use:
 *
 *   for each entry, sorted by url:  url "\n" revision-or-empty "\n" integrity "\n"
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

/** What the Service Worker precaches: the whole built shell except itself and source maps. */
export const precacheGlobs = (outDir: string) => ({
  globDirectory: outDir,
  globPatterns: ["**/*.{html,js,css,svg,png,ico,webmanifest,woff2}"],
  globIgnores: ["sw.js", "**/*.map"],
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

export function canonicalManifest(entries: readonly (ManifestEntry | IntegrityEntry)[]): string {
  return [...entries]
    .sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0))
    .map((e) => `${e.url}\n${e.revision ?? ""}\n${e.integrity ?? ""}\n`)
    .join("");
}

/** The build hash: lowercase hex SHA-256 of the canonical manifest. */
export const buildHash = (entries: readonly (ManifestEntry | IntegrityEntry)[]): string =>
  createHash("sha256").update(canonicalManifest(entries)).digest("hex");
