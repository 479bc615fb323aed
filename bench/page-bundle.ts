/**
 * The page of the browser benches (bench:chat, bench:files, bench:kdf; started with the server and
 * Chromium by bench/support/page-bench.ts): a bundle that Vite builds from a source
 * text importing the real modules (a virtual entry; nothing mocked), served from 127.0.0.1 on a
 * free port behind a bare HTML page that loads it.
 */
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { build, type Plugin } from "vite";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ENTRY = "virtual:loft-bench-page";
const BUNDLE = "page.js";

/** A repository file as an import specifier for the page source. */
export const repoModule = (path: string) => JSON.stringify(join(ROOT, path));

/** Bundles `source` (an ES module) into `outDir`. */
export async function buildPage(source: string, outDir: string): Promise<void> {
  const virtual: Plugin = {
    name: "loft-bench-page",
    resolveId: (id) => (id.endsWith(ENTRY) ? "\0loft-bench-page" : undefined),
    load: (id) => (id === "\0loft-bench-page" ? source : undefined),
  };
  await build({
    configFile: false,
    root: ROOT,
    logLevel: "warn",
    plugins: [virtual],
    define: { "process.env.NODE_ENV": JSON.stringify("production") },
    build: {
      outDir,
      emptyOutDir: true,
      target: "es2022",
      minify: false,
      copyPublicDir: false,
      lib: { entry: ENTRY, formats: ["es"], fileName: () => BUNDLE },
    },
  });
}

type Bench = Record<string, (...args: never[]) => unknown>;

/** Calls `window.loftBench[fn](...args)` in the page (the API a bench page source defines). */
export const callPage = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> =>
  page.evaluate(
    ([f, a]) => (window as unknown as { loftBench: Bench }).loftBench[f as string]!(...(a as never[])) as T,
    [fn, args] as const,
  );

/** Serves the page and the files of `dir` (the bundle and any chunk of it). */
export async function servePage(dir: string): Promise<{ url: string; close: () => void }> {
  const server = createServer(async (req, res) => {
    if (req.url === "/" || req.url === "/index.html") {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<!doctype html><meta charset="utf-8"><script type="module" src="/${BUNDLE}"></script>`);
      return;
    }
    try {
      const file = await readFile(join(dir, (req.url ?? "").replace(/^\/+/, "").replace(/\.\./g, "")));
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(file);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}
