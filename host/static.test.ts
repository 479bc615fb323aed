/**
 * Static files through a real host on loopback: nothing outside the root is served (dot-dot in
 * any spelling, symlinks pointing out), cache headers are judged relative to the root, a missing
 * build answers 503 for the shell and 404 for assets; the build's precompressed copies are served
 * by Accept-Encoding with their own length and an ETag per encoding, revalidation answers 304,
 * and source maps stay private unless the operator serves them.
 */
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost, type Host } from "./host.ts";
import { request } from "./http-testing.ts";
import { createLogger } from "./log.ts";
import { precompressDir } from "./precompress.ts";

const SECRET = "top-secret-outside-the-root";
let dir: string;
let host: Host;
let missingHost: Host;
let base: string;
let missingBase: string;
let mapsHost: Host;
let mapsBase: string;
let root: string;
const APP = `export const app = ${JSON.stringify("the app ".repeat(500))};\n`;

async function startHost(staticDir: string, serveSourceMaps = false): Promise<[Host, string]> {
  const h = createHost({
    port: 0,
    host: "127.0.0.1",
    staticDir,
    serveSourceMaps,
    registry: new Registry(),
    log: createLogger("static-test", "silent"),
  });
  return [h, `http://127.0.0.1:${await h.listen()}`];
}

/** A raw GET, so that the path reaches the server exactly as written (fetch would normalise it). */
function rawGet(port: string, path: string): Promise<string> {
  return new Promise((resolve) => {
    const c = createConnection(Number(port), "127.0.0.1");
    let out = "";
    c.on("data", (d) => {
      out += d;
    });
    c.on("error", () => {});
    c.on("close", () => resolve(out));
    c.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loft-static-"));
  // The root sits under a folder named "assets": only <root>/assets/ is immutable.
  root = join(dir, "assets", "dist");
  mkdirSync(join(root, "assets"), { recursive: true });
  writeFileSync(join(root, "index.html"), `<!doctype html>shell${"<p>app</p>".repeat(60)}`);
  writeFileSync(join(root, "sw.js"), "// sw");
  writeFileSync(join(root, "assets", "app-1234.js"), "// app");
  writeFileSync(join(root, "assets", "big-1.js"), APP);
  writeFileSync(join(root, "assets", "big-1.js.map"), JSON.stringify({ version: 3, sources: ["secret.ts"] }));
  writeFileSync(join(root, "icon.png"), Buffer.alloc(4_000, 7)); // compressible bytes, but a PNG
  await precompressDir(root);
  mkdirSync(join(dir, "outside"));
  writeFileSync(join(dir, "outside", "secret.txt"), SECRET);
  writeFileSync(join(dir, "secret.txt"), SECRET);
  symlinkSync(join(dir, "outside", "secret.txt"), join(root, "leak.txt"));
  symlinkSync(join(dir, "outside"), join(root, "out"));
  [host, base] = await startHost(root);
  [missingHost, missingBase] = await startHost(join(dir, "no-such-dist"));
  [mapsHost, mapsBase] = await startHost(root, true);
});
afterAll(async () => {
  await host.close();
  await missingHost.close();
  await mapsHost.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("static files", () => {
  it("serves the shell, sw.js and assets with the right cache headers", async () => {
    const shell = await fetch(`${base}/`);
    expect(shell.headers.get("cache-control")).toBe("no-cache");
    expect(await shell.text()).toContain("shell");
    const sw = await fetch(`${base}/sw.js`);
    expect(sw.status).toBe(200);
    expect(sw.headers.get("cache-control")).toBe("no-cache");
    expect(sw.headers.get("content-type")).toMatch(/^text\/javascript/);
    const asset = await fetch(`${base}/assets/app-1234.js`);
    expect(asset.headers.get("cache-control")).toMatch(/immutable/);
    expect((await fetch(`${base}/room/abc`)).headers.get("cache-control")).toBe("no-cache");
  });

  it("never serves a file outside the root", async () => {
    const port = base.split(":").pop() ?? "";
    for (const path of [
      "/leak.txt",
      "/out/secret.txt",
      "/out/",
      "/../secret.txt",
      "/%2e%2e/secret.txt",
      "/..%2fsecret.txt",
      "/%2e%2e%2fsecret.txt",
      "/assets/..%2f..%2f..%2fsecret.txt",
      "/..\\secret.txt",
    ]) {
      const answer = await rawGet(port, path);
      expect(answer, path).toMatch(/^HTTP\/1\.1 (200|400|403|404)/);
      expect(answer, path).not.toContain(SECRET);
    }
    expect(await rawGet(port, "/%")).toMatch(/^HTTP\/1\.1 400/);
  });

  it("answers 503 for the shell and 404 for an asset when the build is missing", async () => {
    expect((await fetch(`${missingBase}/`)).status).toBe(503);
    expect((await fetch(`${missingBase}/room/abc`)).status).toBe(503);
    expect((await fetch(`${missingBase}/assets/app.js`)).status).toBe(404);
    expect((await fetch(`${missingBase}/health`)).status).toBe(200);
  });

  it("serves the precompressed copy the client accepts, with its length, Vary and an ETag per encoding", async () => {
    const url = `${base}/assets/big-1.js`;
    const br = await request(url, { headers: { "accept-encoding": "gzip, deflate, br" } });
    expect(br.status).toBe(200);
    expect(br.headers["content-encoding"]).toBe("br");
    expect(br.headers["content-type"]).toMatch(/^text\/javascript/);
    expect(br.headers.vary).toBe("Accept-Encoding");
    expect(Number(br.headers["content-length"])).toBe(br.body.length);
    expect(br.body.length).toBeLessThan(APP.length / 4);
    expect(brotliDecompressSync(br.body).toString()).toBe(APP);

    const gz = await request(url, { headers: { "accept-encoding": "gzip" } });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(Number(gz.headers["content-length"])).toBe(gz.body.length);
    expect(gunzipSync(gz.body).toString()).toBe(APP);

    const plain = await request(url);
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.headers.vary).toBe("Accept-Encoding");
    expect(plain.body.toString()).toBe(APP);
    expect(new Set([br.headers.etag, gz.headers.etag, plain.headers.etag]).size).toBe(3);

    const head = await request(url, { method: "HEAD", headers: { "accept-encoding": "br" } });
    expect(head.headers["content-length"]).toBe(br.headers["content-length"]);
    expect(head.headers["content-encoding"]).toBe("br");
    expect(head.body.length).toBe(0);
  });

  it("never compresses what is already compressed, and never serves the copies by name", async () => {
    const png = await request(`${base}/icon.png`, { headers: { "accept-encoding": "br, gzip" } });
    expect(png.status).toBe(200);
    expect(png.headers["content-encoding"]).toBeUndefined();
    expect(png.headers.vary).toBeUndefined();
    expect(png.body).toEqual(readFileSync(join(root, "icon.png")));
    for (const path of ["/assets/big-1.js.br", "/assets/big-1.js.gz"])
      expect((await request(`${base}${path}`)).status, path).toBe(404);
  });

  it("serves a file replaced after the build as it now is, not its stale precompressed copy", async () => {
    const file = join(root, "assets", "late-1.js");
    writeFileSync(file, APP);
    await precompressDir(root);
    const later = APP.replace("the app", "the NEW app");
    writeFileSync(file, later);
    utimesSync(file, new Date(), new Date(Date.now() + 5_000)); // strictly newer than its copies
    const answer = await request(`${base}/assets/late-1.js`, { headers: { "accept-encoding": "br, gzip" } });
    expect(answer.headers["content-encoding"]).toBeUndefined();
    expect(answer.body.toString()).toBe(later);
  });

  it("answers a revalidation with 304 and no body when the ETag still matches", async () => {
    const first = await request(`${base}/`, { headers: { "accept-encoding": "br" } });
    const etag = String(first.headers.etag);
    const again = await request(`${base}/`, { headers: { "accept-encoding": "br", "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    expect(again.headers.etag).toBe(etag);
    expect(again.headers["cache-control"]).toBe("no-cache");
    // Another encoding is another representation: full answer.
    const other = await request(`${base}/`, { headers: { "if-none-match": etag } });
    expect(other.status).toBe(200);
    expect(
      (await request(`${base}/`, { headers: { "if-none-match": `"nope", W/${other.headers.etag}` } })).status,
    ).toBe(304);
  });

  it("keeps source maps private unless the host is told to serve them", async () => {
    expect((await request(`${base}/assets/big-1.js.map`)).status).toBe(404);
    const served = await request(`${mapsBase}/assets/big-1.js.map`);
    expect(served.status).toBe(200);
    expect(served.body.toString()).toContain("secret.ts");
  });
});
