/**
 * Static files through a real host on loopback: nothing outside the root is served (dot-dot in
 * any spelling, symlinks pointing out), cache headers are judged relative to the root, and a
 * missing build answers 503 for the shell and 404 for assets.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost, type Host } from "./host.ts";
import { createLogger } from "./log.ts";

const SECRET = "top-secret-outside-the-root";
let dir: string;
let host: Host;
let missingHost: Host;
let base: string;
let missingBase: string;

async function startHost(staticDir: string): Promise<[Host, string]> {
  const h = createHost({
    port: 0,
    host: "127.0.0.1",
    staticDir,
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
  const root = join(dir, "assets", "dist");
  mkdirSync(join(root, "assets"), { recursive: true });
  writeFileSync(join(root, "index.html"), "<!doctype html>shell");
  writeFileSync(join(root, "sw.js"), "// sw");
  writeFileSync(join(root, "assets", "app-1234.js"), "// app");
  mkdirSync(join(dir, "outside"));
  writeFileSync(join(dir, "outside", "secret.txt"), SECRET);
  writeFileSync(join(dir, "secret.txt"), SECRET);
  symlinkSync(join(dir, "outside", "secret.txt"), join(root, "leak.txt"));
  symlinkSync(join(dir, "outside"), join(root, "out"));
  [host, base] = await startHost(root);
  [missingHost, missingBase] = await startHost(join(dir, "no-such-dist"));
});
afterAll(async () => {
  await host.close();
  await missingHost.close();
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
});
