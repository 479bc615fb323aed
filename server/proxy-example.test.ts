/**
 * The documented deployment, run for real on loopback: deploy/nginx/loft.conf in Debian's nginx
 * (ports, certificate and upstream templated, nothing else changed) in front of the real server
 * started with deploy/systemd/loft.service's ExecStart arguments and Environment. Through it:
 * public /health (status only) with the security headers and HSTS, no /metrics, HTTP → HTTPS,
 * WebSockets to /signal and /relay (a full relay opening), precompressed files passed through —
 * and two clients behind the proxy count as two sources (a client's own X-Forwarded-For is not
 * believed), while without the unit's LOFT_TRUST_PROXY every client is the proxy.
 */

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { encodeVersionHeader, SIGNALING_VERSION } from "../core/codec/version.ts";
import { RelayClient } from "../core/relay/client.ts";
import { WebSocketLink } from "../core/relay/ws-link.ts";
import { request } from "../host/http-testing.ts";
import { SERVER_NODE_OPTIONS } from "../host/node-options.ts";
import { precompressDir } from "../host/precompress.ts";
import { type LoftProcess, startLoft } from "../test/support/loft-process.ts";
import {
  freePort,
  type RunningNginx,
  selfSignedCert,
  startNginx,
  type TlsFiles,
} from "../test/support/nginx.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NGINX_EXAMPLE = readFileSync(join(ROOT, "deploy/nginx/loft.conf"), "utf8");
const UNIT = readFileSync(join(ROOT, "deploy/systemd/loft.service"), "utf8");

/** Replace `from` (which must occur exactly once) by `to`: the example drifting fails loudly. */
function once(text: string, from: string, to: string): string {
  const parts = text.split(from);
  if (parts.length !== 2) throw new Error(`deploy/nginx/loft.conf: expected "${from}" exactly once`);
  return parts.join(to);
}

/** The example with loopback ports, a test certificate and the upstream's real port. */
function templatedNginx(ports: { http: number; https: number; loft: number }, tls: TlsFiles): string {
  let conf = NGINX_EXAMPLE;
  conf = once(conf, "server 127.0.0.1:8080;", `server 127.0.0.1:${ports.loft};`);
  conf = once(conf, "listen 80;", `listen 127.0.0.1:${ports.http};`);
  conf = once(conf, "listen [::]:80;", "");
  conf = once(conf, "listen 443 ssl http2;", `listen 127.0.0.1:${ports.https} ssl http2;`);
  conf = once(conf, "listen [::]:443 ssl http2;", "");
  conf = once(conf, "/etc/letsencrypt/live/loft.example/fullchain.pem", tls.cert);
  conf = once(conf, "/etc/letsencrypt/live/loft.example/privkey.pem", tls.key);
  return conf;
}

/** The unit's ExecStart arguments after `server/main.ts`, and its Environment, as a test can use them. */
function unitCommand(): { args: string[]; env: Record<string, string> } {
  const exec = /^ExecStart=(.*)$/m.exec(UNIT)?.[1]?.trim().split(/\s+/) ?? [];
  // The operator paths' Node options (host/node-options.ts) before the entry.
  const start = ["/usr/bin/node", ...SERVER_NODE_OPTIONS, "--import", "tsx", "server/main.ts"];
  expect(exec.slice(0, start.length)).toEqual(start);
  const env: Record<string, string> = {};
  for (const m of UNIT.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)) env[m[1]!] = m[2]!;
  return { args: exec.slice(start.length), env };
}

interface Stack {
  loft: LoftProcess;
  nginx: RunningNginx;
  https: number;
  http: number;
  close(): Promise<void>;
}

let tls: TlsFiles;
let dir: string;
let staticDir: string;

/** Loft as the unit starts it (data dir, ports and `env` overrides aside) behind the example nginx. */
async function startStack(
  envOverride: (env: Record<string, string>) => Record<string, string>,
): Promise<Stack> {
  const unit = unitCommand();
  const args: string[] = [];
  for (let i = 0; i < unit.args.length; i++) {
    const flag = unit.args[i]!;
    const value = unit.args[i + 1];
    if (flag === "--port" || flag === "--host")
      i++; // startLoft binds 127.0.0.1 on a free port
    else if (flag === "--relay-data-dir") {
      args.push(flag, mkdtempSync(join(dir, "relay-")));
      i++;
    } else if (flag === "--relay-master-key-file") {
      // The credential systemd would hand over: a key file outside the data dir.
      // biome-ignore lint/suspicious/noTemplateCurlyInString: systemd's own ${} expansion, verbatim
      expect(value).toBe("${CREDENTIALS_DIRECTORY}/relay-master-key");
      const keyFile = join(mkdtempSync(join(dir, "credentials-")), "relay-master-key");
      writeFileSync(keyFile, randomBytes(32).toString("hex"), { mode: 0o600 });
      args.push(flag, keyFile);
      i++;
    } else args.push(flag);
    if (flag === "--host") expect(value).toBe("127.0.0.1");
  }
  // Many tests run at once: the metrics listener on a free port rather than the unit's 9464.
  const env = envOverride({ ...unit.env, LOFT_METRICS_PORT: "0" });
  const loft = await startLoft({ args: [...args, "--static-dir", staticDir], env });
  for (let attempt = 1; ; attempt++) {
    const ports = { http: await freePort(), https: await freePort(), loft: loft.port };
    try {
      const nginx = await startNginx(templatedNginx(ports, tls), ports.https);
      return {
        loft,
        nginx,
        https: ports.https,
        http: ports.http,
        async close() {
          await nginx.stop();
          await loft.stop();
        },
      };
    } catch (e) {
      // Another process took a port between freePort() and nginx's bind: try new ones.
      if (attempt >= 3 || !/Address already in use/.test(String(e))) {
        await loft.stop();
        throw e;
      }
    }
  }
}

const httpsGet = (port: number, path: string, headers: Record<string, string> = {}) =>
  request(`https://127.0.0.1:${port}${path}`, { headers, ca: tls.pem });

/** A WebSocket through the proxy from `localAddress`, as a browser on the proxy's origin opens it. */
function openSocket(port: number, path: string, localAddress: string, extra: Record<string, string> = {}) {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, {
    ca: tls.pem,
    localAddress,
    origin: `https://127.0.0.1:${port}`,
    headers: extra,
    perMessageDeflate: false,
  });
  const opened = new Promise<WebSocket>((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
  return opened;
}

/** The host's count of distinct WebSocket sources, from the metrics listener. */
async function sources(loft: LoftProcess): Promise<number> {
  const text = (await request(`${loft.metricsUrl}/metrics`)).body.toString();
  const line = text.split("\n").find((l) => l.startsWith("loft_host_websocket_sources "));
  return line ? Number(line.split(" ")[1]) : Number.NaN;
}

const closeAll = (sockets: WebSocket[]) =>
  Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve();
          ws.once("close", () => resolve());
          ws.close();
        }),
    ),
  );

let stack: Stack;

beforeAll(async () => {
  tls = selfSignedCert();
  dir = mkdtempSync(join(tmpdir(), "loft-proxy-"));
  staticDir = join(dir, "dist");
  mkdirSync(join(staticDir, "assets"), { recursive: true });
  writeFileSync(join(staticDir, "index.html"), `<!doctype html><title>Loft</title>${"<p>x</p>".repeat(100)}`);
  writeFileSync(
    join(staticDir, "assets", "app-1.js"),
    `export const x = ${JSON.stringify("y".repeat(4000))};`,
  );
  await precompressDir(staticDir);
  stack = await startStack((env) => env);
}, 60_000);
afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(tls.dir, { recursive: true, force: true });
});

describe("the documented nginx + systemd deployment", () => {
  it("the unit keeps the relay's master key off the data disk (a systemd credential)", () => {
    expect(UNIT).toMatch(/^LoadCredential=relay-master-key:\/etc\/loft\/relay-master\.key$/m);
    expect(unitCommand().args).toContain("--relay-master-key-file");
  });

  it("the unit file is valid for systemd", () => {
    const file = join(dir, "loft.service");
    writeFileSync(file, UNIT);
    const out = execFileSync("systemd-analyze", ["verify", "--man=no", file], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    expect(out).toBe("");
    // verify reports unknown keys on stderr with exit code 0: run again capturing it.
    const r = execFileSync("sh", ["-c", `systemd-analyze verify --man=no '${file}' 2>&1`], {
      encoding: "utf8",
    });
    expect(r.split("\n").filter((l) => l.includes("loft.service"))).toEqual([]);
  });

  it("public /health says status only, with the security headers and HSTS; /metrics is not forwarded", async () => {
    const health = await httpsGet(stack.https, "/health");
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body.toString())).toEqual({ status: "ok" });
    expect(health.headers["content-security-policy"]).toMatch(/frame-ancestors 'none'/);
    expect(health.headers["x-content-type-options"]).toBe("nosniff");
    expect(health.headers["strict-transport-security"]).toBe("max-age=31536000");
    expect((await httpsGet(stack.https, "/metrics")).status).toBe(404);
    // Metrics are on the loopback listener only, not through the proxy.
    expect((await request(`${stack.loft.metricsUrl}/metrics`)).status).toBe(200);
  });

  it("plain HTTP is sent to HTTPS; precompressed files pass through as the host sent them", async () => {
    const plain = (await request(`http://127.0.0.1:${stack.http}/x`)).status;
    expect(plain).toBe(301);
    const js = await httpsGet(stack.https, "/assets/app-1.js", { "accept-encoding": "br, gzip" });
    expect(js.status).toBe(200);
    expect(js.headers["content-encoding"]).toBe("br");
    expect(js.headers.vary).toBe("Accept-Encoding");
    expect(js.body.length).toBeLessThan(1_000);
  });

  it("WebSockets to /signal and /relay work through it, and two clients count as two sources", async () => {
    const sockets: WebSocket[] = [];
    try {
      // A relay opening end to end: version headers and HELLO through nginx.
      const relayWs = await openSocket(stack.https, "/relay", "127.0.0.2");
      sockets.push(relayWs);
      const relay = await RelayClient.connect(new WebSocketLink(relayWs), { timeoutMs: 10_000 });
      expect(relay).toBeInstanceOf(RelayClient);
      // Signaling: the socket opens and takes our version header without closing.
      const signal = await openSocket(stack.https, "/signal", "127.0.0.3");
      sockets.push(signal);
      signal.send(encodeVersionHeader(SIGNALING_VERSION));
      // The same first client again, claiming to be someone else: not believed.
      sockets.push(
        await openSocket(stack.https, "/signal", "127.0.0.2", { "x-forwarded-for": "203.0.113.9" }),
      );
      await expect.poll(() => sources(stack.loft), { timeout: 10_000 }).toBe(2);
      expect(signal.readyState).toBe(WebSocket.OPEN);
      expect(stack.loft.output()).not.toMatch(/127\.0\.0\.[23]|203\.0\.113\.9/);
    } finally {
      await closeAll(sockets);
    }
  });

  it("control: without the unit's LOFT_TRUST_PROXY, every client behind the proxy is one source", async () => {
    const untrusted = await startStack((env) => {
      const { LOFT_TRUST_PROXY: _dropped, ...rest } = env;
      return rest;
    });
    const sockets: WebSocket[] = [];
    try {
      sockets.push(await openSocket(untrusted.https, "/signal", "127.0.0.2"));
      sockets.push(await openSocket(untrusted.https, "/signal", "127.0.0.3"));
      await expect.poll(() => sources(untrusted.loft), { timeout: 10_000 }).toBe(1);
    } finally {
      await closeAll(sockets);
      await untrusted.close();
    }
  });
});
