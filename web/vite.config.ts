import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, defineConfig, type Plugin } from "vite";
import solid from "vite-plugin-solid";
import { getManifest, injectManifest } from "workbox-build";
import { precompressDir } from "../host/precompress.ts";
import {
  BUILD_HASH_PLACEHOLDER,
  precacheGlobs as globsFor,
  integrityTransform,
  SOURCE_HASH_PLACEHOLDER,
  sealServiceWorker,
} from "../scripts/build-hash.ts";
import { BRIDGE_HTML, BRIDGE_JS } from "../sw/peer-bridge.ts";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
/**
 * web/dist, or where `npm run build -- --outDir DIR` asks (set from the resolved config below):
 * a second build of the same source in another folder, to compare its printed build hash with a
 * running app's (README "Checking the build"; test/e2e/pwa.e2e.ts), leaves web/dist alone.
 */
let outDir = here("dist");
const pkg = JSON.parse(readFileSync(here("../package.json"), "utf8")) as { version: string };
/**
 * Source maps publish the whole source with comments: built only on request
 * (`LOFT_SOURCEMAP=1 npm run build`), and then served only with `--serve-source-maps`.
 */
const sourcemap = process.env.LOFT_SOURCEMAP === "1";

/** What the Service Worker precaches, each entry with its SHA-256 (scripts/build-hash.ts). */
const precacheGlobs = () => ({ ...globsFor(outDir), manifestTransforms: [integrityTransform(outDir)] });

/** A worker script (one classic IIFE, minified, no source map) built from `entry` into dist/`file`. */
async function buildWorker(entry: string, name: string, file: string, define: Record<string, string> = {}) {
  await build({
    configFile: false,
    logLevel: "warn",
    define: { ...define, "process.env.NODE_ENV": JSON.stringify("production") },
    build: {
      outDir,
      emptyOutDir: false,
      target: "es2022",
      minify: true,
      sourcemap: false,
      copyPublicDir: false,
      lib: { entry: here(entry), formats: ["iife"], name, fileName: () => file },
    },
  });
}

/**
 * After the app build, build sw/index.ts into dist/sw.js (a second Vite build, one classic
 * script) and inject the precache manifest with workbox-build. The build hash — a SHA-256 of that
 * manifest, where each file carries its own SHA-256 (scripts/build-hash.ts) — is baked into the SW
 * as `__SW_VERSION__`: it names the SW's cache, the SW checks its manifest against it before
 * installing or activating, and it is printed here for people to compare with what Settings
 * shows. An unchanged shell keeps its hash and cache; any change to a precached file makes a new one. Last, every text file (sw.js included) gets its `.br` and
 * `.gz` copy for the host to serve (host/precompress.ts); the precache lists the files, never
 * the copies. One hook, in this order: Rollup runs plugins' closeBundle hooks in parallel. Runs
 * inside `npm run build` (`vite build`).
 */
function serviceWorker(): Plugin {
  return {
    name: "loft-service-worker",
    apply: "build",
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    async closeBundle() {
      const { manifestEntries } = await getManifest(precacheGlobs());
      // Both hashes are placeholders until the file is complete (scripts/build-hash.ts).
      await buildWorker("../sw/index.ts", "loftServiceWorker", "sw.js", {
        __SW_VERSION__: JSON.stringify(BUILD_HASH_PLACEHOLDER),
        __SW_SOURCE__: JSON.stringify(SOURCE_HASH_PLACEHOLDER),
      });
      // The content origin's Service Worker and bridge page (docs/protocol/proxy.md §Isolation):
      // served on `peer.<host>` only, never precached by the app's worker (written after its manifest).
      await buildWorker("../sw/peer-origin.ts", "loftContentWorker", "peer-sw.js");
      writeFileSync(`${outDir}/peer-bridge.html`, BRIDGE_HTML);
      writeFileSync(`${outDir}/peer-bridge.js`, BRIDGE_JS);
      const { count, size, warnings } = await injectManifest({
        ...precacheGlobs(),
        swSrc: `${outDir}/sw.js`,
        swDest: `${outDir}/sw.js`,
      });
      for (const w of warnings) this.warn(w);
      const sealed = sealServiceWorker(readFileSync(`${outDir}/sw.js`, "utf8"), manifestEntries);
      writeFileSync(`${outDir}/sw.js`, sealed.text);
      console.log(`sw.js: precaching ${count} files (${(size / 1024).toFixed(1)} KiB)`);
      console.log(`build hash: ${sealed.hash}`);
      const packed = await precompressDir(outDir);
      const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
      console.log(
        `precompressed ${packed.files} files: ${kib(packed.identityBytes)} → br ${kib(packed.brotliBytes)}, gzip ${kib(packed.gzipBytes)}`,
      );
    },
  };
}

export default defineConfig(({ command }) => {
  // A build is a production build whatever NODE_ENV the shell has: Vite and the Solid plugin
  // follow it (NODE_ENV=test, as under Vitest, or =development builds other code), so the same
  // source would print another build hash than the one published (README "Checking the build").
  // Set here, before Vite reads it once the config is loaded; `npm run dev` is left alone.
  if (command === "build") process.env.NODE_ENV = "production";
  return {
    root: here("."),
    publicDir: here("../public"),
    plugins: [solid(), serviceWorker()],
    define: { __LOFT_VERSION__: JSON.stringify(pkg.version) },
    build: {
      outDir,
      emptyOutDir: true,
      target: "es2022",
      sourcemap,
    },
  };
});
