/**
 * `npm run bench:static`: what a first visit moves over the wire, and what compressing it on the
 * fly would cost the event loop. Serves the real build (`npm run build` first) from the real host
 * on loopback and fetches every file of the shell — everything the Service Worker precaches, plus
 * sw.js — three ways: as is (the baseline: what the host sent before precompression), gzip, and
 * brotli. Then compresses the same files in this process the way an on-the-fly server would
 * (zlib defaults: gzip level 6, brotli quality 11 — Node's default) against serving a copy made
 * at build time, which costs no compression at all (bench/README.md; docs/operations.md).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { Registry } from "prom-client";
import { createHost } from "../host/host.ts";
import { request } from "../host/http-testing.ts";
import { createLogger } from "../host/log.ts";
import { JSON_OUTPUT, report } from "./harness.ts";

const DIST = fileURLToPath(new URL("../web/dist", import.meta.url));

/** The shell: every built file but the precompressed copies and source maps. */
function shellFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...shellFiles(path));
    else if (!/\.(br|gz|map)$/.test(name)) out.push(`/${relative(DIST, path)}`);
  }
  return out;
}

const files = shellFiles(DIST);
if (!files.includes("/index.html")) throw new Error("no build in web/dist: run `npm run build` first");

const host = createHost({
  port: 0,
  host: "127.0.0.1",
  staticDir: DIST,
  registry: new Registry(),
  log: createLogger("bench-static", "silent"),
  metrics: "off",
});
const base = `http://127.0.0.1:${await host.listen()}`;

/** Body bytes on the wire for the whole shell with this Accept-Encoding. */
async function wireBytes(acceptEncoding: string | undefined): Promise<number> {
  let total = 0;
  for (const f of files) {
    const answer = await request(`${base}${f}`, {
      headers: acceptEncoding ? { "accept-encoding": acceptEncoding } : {},
    });
    if (answer.status !== 200) throw new Error(`${f}: ${answer.status}`);
    total += answer.body.length;
  }
  return total;
}

const identity = await wireBytes(undefined);
const gzip = await wireBytes("gzip");
const brotli = await wireBytes("gzip, deflate, br");
await host.close();

/** Milliseconds of CPU to compress the shell once, as an on-the-fly server would per first visit. */
function compressMs(compress: (b: Buffer) => Buffer): number {
  const data = files.map((f) => readFileSync(join(DIST, f)));
  const runs = process.argv.includes("--quick") ? 1 : 3;
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) for (const d of data) compress(d);
  return (performance.now() - t0) / runs;
}
const gzipMs = compressMs((d) => gzipSync(d));
const brotliMs = compressMs((d) =>
  brotliCompressSync(d, { params: { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_DEFAULT_QUALITY } }),
);

const kib = (n: number) => n / 1024;
report(
  "bench:static — a first visit (the shell the Service Worker precaches, plus sw.js)",
  [
    {
      name: "bytes, brotli (precompressed)",
      value: kib(brotli),
      unit: "KiB",
      baseline: { name: "as is", value: kib(identity) },
    },
    {
      name: "bytes, gzip (precompressed)",
      value: kib(gzip),
      unit: "KiB",
      baseline: { name: "as is", value: kib(identity) },
    },
    { name: "on-the-fly gzip -6, event loop per visit", value: gzipMs, unit: "ms" },
    { name: "on-the-fly brotli q11, event loop per visit", value: brotliMs, unit: "ms" },
  ],
  {
    bench: "static",
    files: files.length,
    identity_bytes: identity,
    gzip_bytes: gzip,
    brotli_bytes: brotli,
    brotli_vs_identity: brotli / identity,
    gzip_vs_identity: gzip / identity,
    onthefly_gzip_ms_per_visit: gzipMs,
    onthefly_brotli_ms_per_visit: brotliMs,
    precompressed_ms_per_visit: 0,
  },
);
if (!JSON_OUTPUT) console.log("");
