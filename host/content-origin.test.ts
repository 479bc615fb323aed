/**
 * The content origin (host/content-origin.ts) as the host serves it: by Host header, the same
 * listener is the app on `loft.example` and only the bridge and its worker on
 * `peer.loft.example`; the app may frame that one origin, and the bridge only the app.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost, type Host } from "./host.ts";
import { rawExchange, request } from "./http-testing.ts";
import { createLogger } from "./log.ts";

let host: Host;
let port: number;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "loft-content-origin-"));
  for (const [name, text] of Object.entries({
    "index.html": "<!doctype html><title>app</title>",
    "sw.js": "// the app's worker",
    "peer-bridge.html": "<!doctype html><title>bridge</title>",
    "peer-bridge.js": "// bridge",
    "peer-sw.js": "// content worker",
  }))
    await writeFile(join(dir, name), text);
  host = createHost({
    port: 0,
    host: "127.0.0.1",
    staticDir: dir,
    registry: new Registry(),
    log: createLogger("content-origin-test", "silent"),
  });
  // A service on /signal that answers every upgrade 418, to see which requests reach it.
  host.mount({
    name: "probe",
    path: "/signal",
    handleUpgrade: (_req, socket) => socket.end("HTTP/1.1 418 I'm a teapot\r\nConnection: close\r\n\r\n"),
    health: () => ({}),
    close: async () => undefined,
  });
  port = await host.listen();
});
afterAll(async () => {
  await host.close();
  await rm(dir, { recursive: true, force: true });
});

const get = (path: string, hostHeader: string, method = "GET") =>
  request({ port, path }, { method, headers: { host: hostHeader } });

describe("content origin", () => {
  it("serves only the bridge and its worker on peer.<host>, framed by the app's host only", async () => {
    for (const path of ["/peer-bridge.html", "/peer-bridge.js", "/peer-sw.js"]) {
      const res = await get(path, "peer.loft.example:8443");
      expect(res.status, path).toBe(200);
      const csp = String(res.headers["content-security-policy"]);
      expect(csp).toContain("frame-ancestors loft.example:8443");
      expect(csp).toContain("default-src 'none'");
      expect(res.headers["x-frame-options"]).toBeUndefined();
    }
    // Never the app, its worker or its API on the content origin.
    for (const path of ["/", "/index.html", "/sw.js", "/settings", "/health", "/metrics"])
      expect((await get(path, "peer.loft.example:8443")).status, path).toBe(404);
    const open = await get(`/peer/${"a".repeat(64)}/index.html`, "peer.loft.example:8443");
    expect(open.status).toBe(503);
    expect(open.body.toString()).toContain("Open Loft to reach this");
    expect((await get("/peer-sw.js", "peer.loft.example", "POST")).status).toBe(404);
    // No WebSocket service either: a contact's page cannot reach signaling or the relay as the app.
    const upgrade = (hostHeader: string) =>
      rawExchange(
        port,
        `GET /signal HTTP/1.1\r\nHost: ${hostHeader}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      );
    expect(await upgrade("loft.example")).toMatch(/^HTTP\/1\.1 418/);
    expect(await upgrade("peer.loft.example")).toMatch(/^HTTP\/1\.1 404/);
  });

  it("lets the app frame its content origin, and keeps every other frame out", async () => {
    const app = await get("/", "loft.example:8443");
    expect(app.body.toString()).toContain("<title>app</title>");
    const csp = String(app.headers["content-security-policy"]);
    expect(csp).toContain("frame-src peer.loft.example:8443");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(app.headers["x-frame-options"]).toBe("DENY");
    // An IP address has no subdomain; a Host that is not a name is never written into the CSP.
    for (const h of ["127.0.0.1:8080", "bad host;script-src *", "[::1]:8080"]) {
      const res = await get("/", h).catch(() => undefined);
      if (res) expect(String(res.headers["content-security-policy"]), h).not.toContain("frame-src");
    }
  });
});
