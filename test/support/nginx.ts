/**
 * Debian's nginx (installed by scripts/system-deps.mjs) run by a test on loopback: a throwaway
 * prefix folder, a self-signed certificate for 127.0.0.1 made with openssl, and a main config
 * that includes the site config under test inside its http block. Started in the foreground and
 * stopped by its own pid. Used by server/proxy-example.test.ts with deploy/nginx/loft.conf.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.ts";

export const NGINX = "/usr/sbin/nginx";

export interface TlsFiles {
  dir: string;
  cert: string;
  key: string;
  /** The certificate's PEM, to trust it as a CA in clients. */
  pem: string;
}

/** A self-signed P-256 certificate for 127.0.0.1 in a new folder. */
export function selfSignedCert(): TlsFiles {
  const dir = mkdtempSync(join(tmpdir(), "loft-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"].concat([
      "-keyout",
      key,
      "-out",
      cert,
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ]),
    { stdio: "ignore" },
  );
  return { dir, cert, key, pem: readFileSync(cert, "utf8") };
}

export interface RunningNginx {
  readonly child: ChildProcess;
  /** nginx's error log so far. */
  errors(): string;
  stop(): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(port, "127.0.0.1");
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

/**
 * Run nginx with `site` (the text of a config for the http block) until stop(); resolves once
 * `waitPort` accepts connections (bounded: 100 tries, 20 s) or rejects with nginx's error log.
 */
export async function startNginx(site: string, waitPort: number): Promise<RunningNginx> {
  const prefix = mkdtempSync(join(tmpdir(), "loft-nginx-"));
  // Worker processes run as an unprivileged user when the master is root: let them in.
  chmodSync(prefix, 0o755);
  for (const d of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) {
    mkdirSync(join(prefix, d));
    chmodSync(join(prefix, d), 0o777);
  }
  const errorLog = join(prefix, "error.log");
  writeFileSync(join(prefix, "site.conf"), site);
  writeFileSync(
    join(prefix, "nginx.conf"),
    [
      "daemon off;",
      "worker_processes 1;",
      `pid ${join(prefix, "nginx.pid")};`,
      `error_log ${errorLog} warn;`,
      "events { worker_connections 256; }",
      "http {",
      "  access_log off;",
      `  client_body_temp_path ${join(prefix, "body")};`,
      `  proxy_temp_path ${join(prefix, "proxy")};`,
      `  fastcgi_temp_path ${join(prefix, "fastcgi")};`,
      `  uwsgi_temp_path ${join(prefix, "uwsgi")};`,
      `  scgi_temp_path ${join(prefix, "scgi")};`,
      `  include ${join(prefix, "site.conf")};`,
      "}",
      "",
    ].join("\n"),
  );
  const child = spawn(NGINX, ["-p", prefix, "-c", join(prefix, "nginx.conf"), "-e", errorLog], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  // A missing binary: say how to get it rather than crash on an unhandled 'error' event.
  child.on("error", (e) => {
    stderr += `cannot run ${NGINX} (${e.message}): install it with \`node scripts/system-deps.mjs\` (as root)\n`;
  });
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const errors = () => {
    let log = "";
    try {
      log = readFileSync(errorLog, "utf8");
    } catch {}
    return `${stderr}${log}`;
  };
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
    rmSync(prefix, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (let i = 0; i < 100 && Date.now() < deadline; i++) {
    if (child.exitCode !== null || child.pid === undefined) break;
    if (await canConnect(waitPort)) return { child, errors, stop };
    await new Promise((r) => setTimeout(r, 200));
  }
  const log = errors();
  await stop();
  throw new Error(`nginx did not start:\n${log}`);
}

export { freePort };
