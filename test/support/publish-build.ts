import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildHash, type IntegrityEntry } from "../../scripts/build-hash.ts";

/**
 * Publish a new build in `dir` the way `npm run build` would: change manifest.webmanifest's
 * description, recompute every manifest entry (md5 revision, SHA-256 integrity) and the build
 * hash, and write them into sw.js. Returns the new build hash.
 */
export async function publishBuild(dir: string, description: string): Promise<string> {
  const swPath = join(dir, "sw.js");
  const sw = await readFile(swPath, "utf8");
  const injected = /\[\{"integrity":[^\]]*\]/.exec(sw)![0];
  const entries = JSON.parse(injected) as IntegrityEntry[];
  const oldHash = buildHash(entries);
  if (!sw.includes(oldHash)) throw new Error("sw.js does not carry the build hash of its manifest");
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
  const hash = buildHash(next);
  await writeFile(swPath, sw.replace(injected, JSON.stringify(next)).replaceAll(oldHash, hash));
  return hash;
}

/** The build hash of the manifest injected in `dir`/sw.js (what `npm run build` printed for it). */
export async function servedBuildHash(dir: string): Promise<string> {
  const sw = await readFile(join(dir, "sw.js"), "utf8");
  return buildHash(JSON.parse(/\[\{"integrity":[^\]]*\]/.exec(sw)![0]) as IntegrityEntry[]);
}
