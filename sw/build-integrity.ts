/**
 * Honest updates, the Service Worker's half (docs/decisions.md "Honest updates"): the build hash
 * this SW announces is recomputed from its own precache manifest (the same canonical text as
 * scripts/build-hash.ts), and every precached file is checked against the SHA-256 its manifest
 * entry carries. A SW whose manifest does not hash to the build hash it announces, or whose cached
 * files do not match their entries, refuses to install or to activate, and says so.
 */
declare const self: { location: { href: string } }; // the part used here (also type-checks outside sw/)

interface ManifestEntry {
  url: string;
  revision?: string | null;
  integrity?: string | undefined;
}

const hex = (b: ArrayBuffer) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
const base64 = (b: ArrayBuffer) => btoa(String.fromCharCode(...new Uint8Array(b)));

export function canonicalManifest(entries: readonly ManifestEntry[], swSource: string): string {
  return `${[...entries]
    .sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0))
    .map((e) => `${e.url}\n${e.revision ?? ""}\n${e.integrity ?? ""}\n`)
    .join("")}sw.js\n${swSource}\n`;
}

export async function manifestHash(entries: readonly ManifestEntry[], swSource: string): Promise<string> {
  return hex(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonicalManifest(entries, swSource))),
  );
}

type Injected = readonly (string | ManifestEntry)[];
/** The injected manifest (sw/index.ts reads `self.__WB_MANIFEST`, once: workbox-build replaces one). */
const entriesOf = (injected: Injected): ManifestEntry[] =>
  injected.map((e) => (typeof e === "string" ? { url: e, revision: null } : e));

/** Why this build must not run, or undefined when its manifest matches the hash it announces. */
export async function checkManifest(
  injected: Injected,
  swSource: string,
  announced: string,
): Promise<string | undefined> {
  const entries = entriesOf(injected);
  if (entries.some((e) => !e.integrity)) return "a precached file has no SHA-256 in the manifest";
  const actual = await manifestHash(entries, swSource);
  if (actual !== announced) return `its manifest hashes to ${actual}, not to the announced ${announced}`;
  return undefined;
}

/** Why the cached copy of this build differs from its manifest, or undefined when every file matches. */
export async function checkCachedFiles(
  injected: Injected,
  cacheName: string,
  cacheKeyFor: (url: string) => string | undefined,
): Promise<string | undefined> {
  const cache = await caches.open(cacheName);
  for (const entry of entriesOf(injected)) {
    const key = cacheKeyFor(new URL(entry.url, self.location.href).href);
    const res = key ? await cache.match(key) : undefined;
    if (!res) return `${entry.url} is missing from the cache`;
    const digest = `sha256-${base64(await crypto.subtle.digest("SHA-256", await res.arrayBuffer()))}`;
    if (digest !== entry.integrity) return `${entry.url} differs from the build it announced`;
  }
  return undefined;
}
