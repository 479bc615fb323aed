/**
 * Static files for the built PWA. Paths are resolved inside the root only (no `..` escape);
 * hashed assets are cached for a year, the shell and the Service Worker are always revalidated
 * so that an update reaches users on their next visit; unknown paths fall back to index.html
 * (client-side routes such as /room/...).
 */
import { createReadStream } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize, relative, resolve, sep } from "node:path";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".webmanifest": "application/manifest+json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".wasm": "application/wasm",
  ".txt": "text/plain; charset=utf-8",
};

/** `file` itself, once symlinks are followed, when it stays inside `base` (already real). */
async function realInside(base: string, file: string): Promise<string | undefined> {
  const real = await realpath(file).catch(() => undefined);
  return real !== undefined && (real === base || real.startsWith(base + sep)) ? real : undefined;
}

export async function serveStatic(root: string, pathname: string, req: IncomingMessage, res: ServerResponse) {
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
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    const index = await realInside(base, join(base, "index.html"));
    info = index === undefined ? undefined : await stat(index).catch(() => undefined);
    if (index === undefined || !info?.isFile()) {
      res.writeHead(503, { "content-type": "text/plain" }).end("PWA not built: run `npm run build`\n");
      return;
    }
    file = index;
  }
  // Hashed build output lives in <root>/assets/; judged relative to the root, whose own path may
  // contain an "assets" folder.
  const immutable = relative(base, file).startsWith(`assets${sep}`);
  res.writeHead(200, {
    "content-type": TYPES[extname(file)] ?? "application/octet-stream",
    "content-length": info.size,
    "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  });
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  // A read error after the headers (file removed or unreadable) cuts the response, never the process.
  const stream = createReadStream(file);
  stream.on("error", () => res.destroy());
  stream.pipe(res);
}
