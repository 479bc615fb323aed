/**
 * Browser security headers on every response of the real combined server (server/main.ts as a
 * child process, relay and signaling mounted, a small built-PWA fixture): files, 304s, the shell
 * fallback, 404s, the relay's 426, bad request targets, refused upgrades, /health (GET and HEAD),
 * and the metrics listener. Plus the Content-Security-Policy's content and its operator flag.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LoftProcess, startLoft } from "../test/support/loft-process.ts";
import { type Answer, rawExchange, rawHeaders, request } from "./http-testing.ts";
import { precompressDir } from "./precompress.ts";
import { cspConnectOption, PERMISSIONS_POLICY } from "./security-headers.ts";

const EXPECTED: Record<string, string | RegExp> = {
  "content-security-policy": /^default-src 'none'; script-src 'self';.*frame-ancestors 'none'/,
  "permissions-policy": PERMISSIONS_POLICY,
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

function expectSecurityHeaders(get: (name: string) => string | undefined, what: string): void {
  for (const [name, value] of Object.entries(EXPECTED)) {
    const got = get(name);
    expect(got, `${what}: ${name}`).toBeDefined();
    if (typeof value === "string") expect(got, `${what}: ${name}`).toBe(value);
    else expect(got, `${what}: ${name}`).toMatch(value);
  }
}

const header = (a: Answer) => (name: string) => {
  const v = a.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
};

let dir: string;
let loft: LoftProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loft-headers-"));
  const root = join(dir, "dist");
  mkdirSync(join(root, "assets"), { recursive: true });
  writeFileSync(join(root, "index.html"), `<!doctype html><title>x</title>${"<p>shell</p>".repeat(100)}`);
  writeFileSync(join(root, "assets", "app-1.js"), `console.log(${JSON.stringify("x".repeat(2000))});`);
  await precompressDir(root);
  loft = await startLoft({ args: ["--static-dir", root, "--relay-data-dir", join(dir, "relay")] });
});
afterAll(async () => {
  await loft?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("security headers", () => {
  it("are on every HTTP answer of the public port", async () => {
    const shell = await request(`${loft.url}/`);
    const answers: [string, Answer, number][] = [
      ["shell", shell, 200],
      [
        "shell 304",
        await request(`${loft.url}/`, { headers: { "if-none-match": `${shell.headers.etag}` } }),
        304,
      ],
      ["client route", await request(`${loft.url}/room/abc`), 200],
      [
        "asset br",
        await request(`${loft.url}/assets/app-1.js`, { headers: { "accept-encoding": "br" } }),
        200,
      ],
      ["missing asset", await request(`${loft.url}/assets/nope.js`), 404],
      ["health", await request(`${loft.url}/health`), 200],
      ["HEAD health", await request(`${loft.url}/health`, { method: "HEAD" }), 200],
      ["public metrics", await request(`${loft.url}/metrics`), 404],
      ["POST", await request(`${loft.url}/`, { method: "POST" }), 404],
      ["relay without upgrade", await request(`${loft.url}/relay`), 426],
    ];
    for (const [what, answer, status] of answers) {
      expect(answer.status, what).toBe(status);
      expectSecurityHeaders(header(answer), what);
    }
  });

  it("are on bad request targets and refused upgrades, written raw", async () => {
    const upgrade = (path: string) =>
      `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    for (const [what, text, status] of [
      ["bad target", "GET // HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "400"],
      ["upgrade to nothing", upgrade("/nope"), "404"],
      ["upgrade with a bad target", upgrade("//"), "400"],
      // Refused by the services' WebSocket layer itself (host/websocket.ts), written raw: a version
      // it does not speak is 426 naming 13 (RFC 6455 §4.2.2), a missing key 400.
      ["relay: bad WebSocket version", upgrade("/relay").replace("Version: 13", "Version: 7"), "426"],
      ["signaling: no WebSocket key", upgrade("/signal").replace(/Sec-WebSocket-Key: .*\r\n/, ""), "400"],
    ] as const) {
      const answer = await rawExchange(loft.port, text);
      expect(answer, what).toMatch(new RegExp(`^HTTP/1\\.1 ${status}`));
      const h = rawHeaders(answer);
      expectSecurityHeaders((n) => h.get(n), what);
    }
  });

  it("are on the metrics listener's answers", async () => {
    const base = loft.metricsUrl!;
    for (const [what, path, status] of [
      ["metrics", "/metrics", 200],
      ["detailed health", "/health", 200],
      ["unknown", "/nope", 404],
    ] as const) {
      const answer = await request(`${base}${path}`);
      expect(answer.status, what).toBe(status);
      expectSecurityHeaders(header(answer), what);
    }
  });

  it("CSP: no inline script or eval, nothing framed, no plugins or <base>; connect-src own origin + wss:/ws:", async () => {
    const csp = header(await request(`${loft.url}/`))("content-security-policy") ?? "";
    const directives = new Map(
      csp.split(";").map((d) => {
        const [name = "", ...values] = d.trim().split(/\s+/);
        return [name, values.join(" ")] as const;
      }),
    );
    expect(directives.get("default-src")).toBe("'none'");
    expect(directives.get("script-src")).toBe("'self'");
    expect(directives.get("style-src")).toBe("'self'");
    expect(directives.get("frame-ancestors")).toBe("'none'");
    expect(directives.get("object-src")).toBe("'none'");
    expect(directives.get("base-uri")).toBe("'none'");
    expect(directives.get("form-action")).toBe("'none'");
    expect(directives.get("connect-src")).toBe("'self' wss: ws:");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
  });

  it("--csp-connect-src names the servers the app may reach, and refuses anything that is not a source", async () => {
    expect(cspConnectOption.parse("wss://relay.example, wss://*.example.org:8443")).toEqual([
      "wss://relay.example",
      "wss://*.example.org:8443",
    ]);
    expect(cspConnectOption.parse("none")).toEqual([]);
    for (const bad of ["wss://x; script-src *", "'unsafe-inline'", "*", "wss://x/path", "wss://a b"])
      expect(() => cspConnectOption.parse(bad), bad).toThrow(/connect source/);
    const strict = await startLoft({
      args: [
        "--serve-static",
        "false",
        "--csp-connect-src",
        "wss://relay.example",
        "--relay-data-dir",
        join(dir, "r2"),
      ],
    });
    try {
      const csp = header(await request(`${strict.url}/health`))("content-security-policy");
      expect(csp).toContain("connect-src 'self' wss://relay.example;");
    } finally {
      await strict.stop();
    }
    await expect(startLoft({ args: ["--csp-connect-src", "'unsafe-eval'"] })).rejects.toThrow(
      /configuration error: --csp-connect-src/,
    );
  });
});
