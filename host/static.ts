/**
 * Static files for the built PWA. Paths are resolved inside the root only (no `..` escape);
 * hashed assets are cached for a year, the shell and the Service Worker are always revalidated
 * (cheaply: every answer has an ETag and `If-None-Match` gets a 304) so that an update reaches
 * users on their next visit; unknown paths fall back to index.html (client-side routes such as
 * /chat or /room, whose ids are in the fragment: web/src/app/routes.ts).
 *
 * Text files are sent in the build's precompressed copy (`.br`, `.gz`; host/precompress.ts)
 * that the client accepts, with `Vary: Accept-Encoding` and that copy's length; nothing is
 * compressed on the fly. Source maps are not served unless the operator asks
 * (`--serve-source-maps`), and the `.br`/`.gz` copies are never served under their own names.
 */
import { createReadStream, type Stats } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize, relative, resolve, sep } from "node:path";
import { acceptedEncodings, type ContentEncoding } from "./accept-encoding.ts";
import { COMPRESSIBLE_EXTENSIONS, ENCODING_SUFFIX } from "./precompress.ts";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".webmanifest": "application/manifest+json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".wasm": "application/wasm",
  ".txt": "text/plain; charset=utf-8",
};

export interface StaticOptions {
  /** Serve `*.map` files when the build has them (off by default: they publish the source). */
  sourceMaps: boolean;
}

/** `file` itself, once symlinks are followed, when it stays inside `base` (already real). */
async function realInside(base: string, file: string): Promise<string | undefined> {
  const real = await realpath(file).catch(() => undefined);
  return real !== undefined && (real === base || real.startsWith(base + sep)) ? real : undefined;
}

/** A regular file inside `base`, with its stats, or undefined. */
async function fileInside(base: string, file: string): Promise<{ path: string; info: Stats } | undefined> {
  const path = await realInside(base, file);
  const info = path === undefined ? undefined : await stat(path).catch(() => undefined);
  return path !== undefined && info?.isFile() ? { path, info } : undefined;
}

/**
 * The precompressed copy of `file` in the best encoding the request accepts, if the build made
 * one and it is not older than the file: a file replaced after the build (a hand edit, a deploy
 * that copies only what changed) is served as it now is, never as its stale copy.
 */
async function variantFor(
  base: string,
  file: string,
  info: Stats,
  req: IncomingMessage,
): Promise<{ path: string; info: Stats; encoding: ContentEncoding } | undefined> {
  if (!COMPRESSIBLE_EXTENSIONS.has(extname(file))) return undefined;
  for (const encoding of acceptedEncodings(req.headers["accept-encoding"])) {
    const found = await fileInside(base, file + ENCODING_SUFFIX[encoding]);
    if (found && found.info.mtimeMs >= info.mtimeMs) return { ...found, encoding };
  }
  return undefined;
}

/** A strong validator for one representation: size and mtime of the bytes sent, and their encoding. */
function etagOf(info: Stats, encoding: ContentEncoding | undefined): string {
  return `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}${encoding ? `-${encoding}` : ""}"`;
}

/** True when `If-None-Match` names `etag` (or is `*`). */
function notModified(req: IncomingMessage, etag: string): boolean {
  const header = req.headers["if-none-match"];
  if (header === undefined || header.length > 4_096) return false;
  return header
    .split(",")
    .map((t) => t.trim().replace(/^W\//, ""))
    .some((t) => t === etag || t === "*");
}

function notFound(res: ServerResponse): void {
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
}

export async function serveStatic(
  root: string,
  pathname: string,
  req: IncomingMessage,
  res: ServerResponse,
  options: StaticOptions = { sourceMaps: false },
) {
  // The root's own real path: a symlink inside it that points elsewhere is not served.
  const base = await realpath(resolve(root)).catch(() => resolve(root));
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    res.writeHead(400).end();
    return;
  }
  let file = resolve(join(base, normalize(decoded)));
  if (file !== base && !file.startsWith(base + sep)) {
    res.writeHead(403).end();
    return;
  }
  const requested = extname(file);
  if ((requested === ".map" && !options.sourceMaps) || requested === ".br" || requested === ".gz") {
    notFound(res);
    return;
  }
  const real = await realInside(base, file);
  let info = real === undefined ? undefined : await stat(real).catch(() => undefined);
  if (real !== undefined) file = real;
  if (info?.isDirectory()) {
    const index = await realInside(base, join(file, "index.html"));
    info = index === undefined ? undefined : await stat(index).catch(() => undefined);
    if (index !== undefined) file = index;
  }
  if (!info?.isFile()) {
    if (extname(decoded) !== "") {
      notFound(res);
      return;
    }
    const index = await fileInside(base, join(base, "index.html"));
    if (index === undefined) {
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8" });
      res.end("PWA not built: run `npm run build`\n");
      return;
    }
    ({ path: file, info } = index);
  }
  const variant = await variantFor(base, file, info, req);
  const sent = variant ?? { path: file, info, encoding: undefined };
  // Hashed build output lives in <root>/assets/; judged relative to the root, whose own path may
  // contain an "assets" folder.
  const immutable = relative(base, file).startsWith(`assets${sep}`);
  const etag = etagOf(sent.info, sent.encoding);
  const headers: Record<string, string | number> = {
    "content-type": TYPES[extname(file)] ?? "application/octet-stream",
    "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
    etag,
  };
  // Caches must key compressible files by the encoding asked for, whichever one this answer has.
  if (COMPRESSIBLE_EXTENSIONS.has(extname(file))) headers.vary = "Accept-Encoding";
  if (notModified(req, etag)) {
    res.writeHead(304, headers).end();
    return;
  }
  if (sent.encoding) headers["content-encoding"] = sent.encoding;
  headers["content-length"] = sent.info.size;
  res.writeHead(200, headers);
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  // A read error after the headers (file removed or unreadable) cuts the response, never the process.
  const stream = createReadStream(sent.path);
  stream.on("error", () => res.destroy());
  stream.pipe(res);
}
