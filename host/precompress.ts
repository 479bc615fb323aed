/**
 * Build-time compression of the PWA (run by web/vite.config.ts after the build, Service Worker
 * included): a brotli (`.br`, quality 11) and a gzip (`.gz`, level 9) copy beside every text file
 * worth compressing, kept only when smaller. The host serves them by `Accept-Encoding`
 * (host/static.ts) and compresses nothing on the fly: the event loop it would spend is the one
 * signaling and the relay share (docs/decisions.md, "Precompressed static files").
 */
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { promisify } from "node:util";
import { brotliCompress, constants, gzip } from "node:zlib";
import type { ContentEncoding } from "./accept-encoding.ts";

/** Text types worth compressing; images, fonts and anything already compressed are not. */
export const COMPRESSIBLE_EXTENSIONS: ReadonlySet<string> = new Set([
  ".html",
  ".js",
  ".mjs",
  ".css",
  ".json",
  ".webmanifest",
  ".svg",
  ".txt",
  ".wasm",
  ".map",
]);

/** The suffix of each encoding's precompressed file. */
export const ENCODING_SUFFIX: Readonly<Record<ContentEncoding, string>> = { br: ".br", gzip: ".gz" };

/** Below this a compressed copy saves less than the headers it costs. */
const MIN_BYTES = 256;

const brotli = promisify(brotliCompress);
const gz = promisify(gzip);

export interface PrecompressReport {
  files: number;
  /** Bytes of the files that got a copy, as they are. */
  identityBytes: number;
  brotliBytes: number;
  gzipBytes: number;
}

async function* filesUnder(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(path);
    else if (entry.isFile()) yield path;
  }
}

/** Write `.br` and `.gz` beside each compressible file under `dir` (recursively). */
export async function precompressDir(dir: string): Promise<PrecompressReport> {
  const report: PrecompressReport = { files: 0, identityBytes: 0, brotliBytes: 0, gzipBytes: 0 };
  for await (const file of filesUnder(dir)) {
    if (!COMPRESSIBLE_EXTENSIONS.has(extname(file))) continue;
    if ((await stat(file)).size < MIN_BYTES) continue;
    const data = await readFile(file);
    const br = await brotli(data, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
        [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
        [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      },
    });
    const gzipped = await gz(data, { level: constants.Z_BEST_COMPRESSION });
    if (br.length >= data.length && gzipped.length >= data.length) continue;
    report.files++;
    report.identityBytes += data.length;
    if (br.length < data.length) {
      await writeFile(file + ENCODING_SUFFIX.br, br);
      report.brotliBytes += br.length;
    } else report.brotliBytes += data.length;
    if (gzipped.length < data.length) {
      await writeFile(file + ENCODING_SUFFIX.gzip, gzipped);
      report.gzipBytes += gzipped.length;
    } else report.gzipBytes += data.length;
  }
  return report;
}
