/**
 * The HTTP host's entry points under fuzz, on loopback: FUZZ_RUNS random requests to the real
 * host serving a built-PWA fixture — request targets mixing dot-dot in every spelling, percent
 * escapes, backslashes and NULs; random methods; random Accept-Encoding and If-None-Match — and
 * random Authorization headers to the metrics listener. Every answer is one the host means
 * (never a 500), carries the security headers, never contains a file from outside the root, and a
 * compressed answer decodes to the file it claims to be. The bearer check alone gets FUZZ_RUNS
 * headers too.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import fc from "fast-check";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost, type Host } from "../../host/host.ts";
import { type Answer, request } from "../../host/http-testing.ts";
import { createLogger } from "../../host/log.ts";
import { bearerAllowed } from "../../host/metrics.ts";
import { precompressDir } from "../../host/precompress.ts";
import { FUZZ_RUNS } from "../support/fuzz.ts";

const SECRET = "outside-the-root-never-served";
const TOKEN = "fuzz-token-0123456789abcdef";
let dir: string;
let root: string;
let host: Host;
let port: number;
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loft-host-fuzz-"));
  root = join(dir, "dist");
  mkdirSync(join(root, "assets"), { recursive: true });
  writeFileSync(join(dir, "secret.txt"), SECRET);
  writeFileSync(join(root, "index.html"), `<!doctype html>${"<p>shell</p>".repeat(50)}`);
  writeFileSync(join(root, "sw.js"), `self.x = ${JSON.stringify("sw".repeat(300))};`);
  writeFileSync(join(root, "assets", "app-1.js"), `export const a = ${JSON.stringify("a".repeat(3000))};`);
  writeFileSync(join(root, "assets", "app-1.js.map"), `{"sources":["${SECRET}"]}`);
  writeFileSync(join(root, "icon.png"), Buffer.alloc(600, 1));
  await precompressDir(root);
  host = createHost({
    port: 0,
    host: "127.0.0.1",
    staticDir: root,
    registry: new Registry(),
    log: createLogger("host-fuzz", "silent"),
    metrics: { port: 0, host: "127.0.0.1", token: TOKEN },
  });
  port = await host.listen();
});
afterAll(async () => {
  agent.destroy();
  await host.close();
  rmSync(dir, { recursive: true, force: true });
});

const send = (p: number, method: string, path: string, headers: Record<string, string>) =>
  request({ port: p, path }, { method, headers, agent });

const segment = fc.constantFrom(
  "",
  ".",
  "..",
  "%2e%2e",
  "%2E.",
  "..%2f..",
  "..\\..",
  "%5c",
  "%00",
  "%",
  "%zz",
  "assets",
  "app-1.js",
  "app-1.js.br",
  "app-1.js.gz",
  "app-1.js.map",
  "index.html",
  "sw.js",
  "icon.png",
  "secret.txt",
  "health",
  "metrics",
  "room",
  "~",
  "a?b=..",
  "%F0%9F%98%80",
);
const target = fc.array(segment, { maxLength: 6 }).map((s) => `/${s.join("/")}`);
const printable = fc.string({ maxLength: 80 });
const encodingHeader = fc.oneof(
  printable,
  fc
    .array(
      fc.tuple(fc.constantFrom("br", "gzip", "x-gzip", "*", "identity", "deflate"), fc.option(printable)),
    )
    .map((parts) => parts.map(([e, q]) => (q === null ? e : `${e};q=${q}`)).join(", ")),
);

const SECURITY_HEADERS = [
  "content-security-policy",
  "permissions-policy",
  "cross-origin-opener-policy",
  "x-content-type-options",
  "referrer-policy",
];

function decoded(got: Answer): Buffer {
  const enc = got.headers["content-encoding"];
  if (enc === "br") return brotliDecompressSync(got.body);
  if (enc === "gzip") return gunzipSync(got.body);
  expect(enc).toBeUndefined();
  return got.body;
}

describe("host HTTP entry points under fuzz", () => {
  it(`answers ${FUZZ_RUNS} random requests as meant, with the security headers, nothing from outside`, async () => {
    const files = new Set(
      ["index.html", "sw.js", "assets/app-1.js", "icon.png"].map((f) =>
        readFileSync(join(root, f)).toString("hex"),
      ),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"),
        target,
        fc.option(encodingHeader),
        fc.option(printable),
        async (method, path, acceptEncoding, ifNoneMatch) => {
          const headers: Record<string, string> = {};
          if (acceptEncoding !== null) headers["accept-encoding"] = acceptEncoding;
          if (ifNoneMatch !== null) headers["if-none-match"] = ifNoneMatch;
          const got = await send(port, method, path, headers);
          expect([200, 304, 400, 403, 404]).toContain(got.status);
          for (const h of SECURITY_HEADERS) expect(got.headers[h], h).toBeDefined();
          expect(got.body.includes(SECRET)).toBe(false);
          // What the host resolves the target to (undefined: not a URL, answered 400).
          const served = URL.canParse(path, "http://h") ? new URL(path, "http://h").pathname : undefined;
          if (got.status === 200 && method === "GET" && served !== "/health") {
            const body = decoded(got);
            expect(Number(got.headers["content-length"])).toBe(got.body.length);
            expect(files.has(body.toString("hex")), path).toBe(true);
          }
          if (method === "HEAD" || got.status === 304) expect(got.body.length).toBe(0);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
    expect((await send(port, "GET", "/health", {})).status).toBe(200);
  }, 300_000);

  it("the metrics listener answers random Authorization headers with 401, the right one with 200", async () => {
    const metricsPort = host.metricsPort()!;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          printable,
          printable.map((s) => `Bearer ${s}`),
          fc.constant(`Bearer ${TOKEN.slice(0, -1)}`),
          fc.constant(`Bearer ${TOKEN}x`),
        ),
        fc.constantFrom("/metrics", "/health", "/x"),
        async (authorization, path) => {
          const got = await send(metricsPort, "GET", path, { authorization });
          expect(got.status).toBe(401);
          for (const h of SECURITY_HEADERS) expect(got.headers[h], h).toBeDefined();
        },
      ),
      { numRuns: Math.max(500, Math.floor(FUZZ_RUNS / 20)) },
    );
    expect((await send(metricsPort, "GET", "/metrics", { authorization: `Bearer ${TOKEN}` })).status).toBe(
      200,
    );
  }, 120_000);

  it(`the bearer check refuses ${FUZZ_RUNS} random headers and never throws`, () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 700 }),
          fc.string().map((s) => `Bearer ${s}`),
        ),
        (authorization) => {
          const req = { headers: { authorization } } as unknown as IncomingMessage;
          expect(bearerAllowed(req, TOKEN)).toBe(
            /^bearer$/i.test(authorization.slice(0, 6)) &&
              authorization.slice(7) === TOKEN &&
              authorization[6] === " ",
          );
          expect(bearerAllowed(req, undefined)).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});
