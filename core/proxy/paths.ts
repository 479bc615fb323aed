/**
 * The serving side's path rules (docs/protocol/proxy.md §Serving a share): a requested path
 * becomes a list of plain names inside the share, or is refused. Nothing is resolved — `..` is
 * not "cleaned up", it is refused — so what is served is always a file the owner put in the share.
 * Refused: `.` and `..` segments (raw or percent-encoded, `%2e%2e`), backslashes (raw or `%5c`),
 * encoded slashes (`%2f`), NUL and every other control character, empty segments (`//`, which
 * would make an absolute path), drive letters (`C:`), dot-files, bad percent-encoding, and paths
 * or segments over their limits.
 */
import { err, ok, type Result } from "../errors.ts";

export const MAX_SEGMENTS = 32;
export const MAX_SEGMENT_CHARS = 255;
export const INDEX_FILE = "index.html";

/** The path part of a request target (query and fragment dropped), split into safe names. */
export function normalizePath(target: string): Result<string[]> {
  if (typeof target !== "string" || !target.startsWith("/"))
    return err("LOFT_ERR_SCHEMA", "path must start with /");
  const cut = target.search(/[?#]/);
  const raw = cut >= 0 ? target.slice(0, cut) : target;
  if (raw.includes("\\")) return err("LOFT_ERR_SCHEMA", "backslash in path");
  const parts = raw.slice(1).split("/");
  if (parts.length > MAX_SEGMENTS) return err("LOFT_ERR_SCHEMA", "path too deep");
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === "") {
      if (i === parts.length - 1) break; // trailing slash: the folder's index
      return err("LOFT_ERR_SCHEMA", "empty path segment");
    }
    let name: string;
    try {
      name = decodeURIComponent(part);
    } catch {
      return err("LOFT_ERR_SCHEMA", "bad percent-encoding in path");
    }
    if (name === "." || name === "..") return err("LOFT_ERR_SCHEMA", "dot segment in path");
    if (name.startsWith(".")) return err("LOFT_ERR_SCHEMA", "hidden file in path");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    if (/[\\/\x00-\x1f\x7f]/.test(name)) return err("LOFT_ERR_SCHEMA", "forbidden character in path");
    if (/^[a-zA-Z]:/.test(name)) return err("LOFT_ERR_SCHEMA", "drive letter in path");
    if (name.length > MAX_SEGMENT_CHARS) return err("LOFT_ERR_SCHEMA", "path segment too long");
    out.push(name);
  }
  if (out.length === 0 || parts[parts.length - 1] === "") out.push(INDEX_FILE);
  return ok(out);
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  htm: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  json: "application/json",
  txt: "text/plain; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  csv: "text/csv; charset=utf-8",
  xml: "application/xml",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  ico: "image/x-icon",
  mp4: "video/mp4",
  m4v: "video/mp4",
  webm: "video/webm",
  ogv: "video/ogg",
  mp3: "audio/mpeg",
  m4a: "audio/mp4",
  oga: "audio/ogg",
  ogg: "audio/ogg",
  opus: "audio/ogg",
  wav: "audio/wav",
  flac: "audio/flac",
  pdf: "application/pdf",
  wasm: "application/wasm",
  woff: "font/woff",
  woff2: "font/woff2",
  ttf: "font/ttf",
  otf: "font/otf",
  zip: "application/zip",
  webmanifest: "application/manifest+json",
};

/** Content type by extension; anything unknown is a download (octet-stream), never sniffed. */
export function contentType(name: string): string {
  const dot = name.lastIndexOf(".");
  const ext = dot >= 0 ? name.slice(dot + 1).toLowerCase() : "";
  return TYPES[ext] ?? "application/octet-stream";
}

export type ByteRange = { start: number; end: number }; // end exclusive

/**
 * One `Range: bytes=…` against a file of `size` bytes (RFC 9110 §14.1.2): the range, "none"
 * (absent or not a single bytes range: serve the whole file), or "unsatisfiable" (416).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | "none" | "unsatisfiable" {
  if (!header) return "none";
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return "none";
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(m[1]);
  const last = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || last < start) return "unsatisfiable";
  return { start, end: last + 1 };
}
