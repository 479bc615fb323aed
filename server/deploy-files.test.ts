/**
 * deploy/ checked against the server it deploys (docs/operations.md, "Containers", "Scaling out",
 * "Alerts"). Docker does not run here, so the Dockerfile and compose file are read statically:
 * a multi-stage build, a non-root user, a HEALTHCHECK on the public /health of the port the
 * command listens on, the data volume under the relay's data dir, every folder server/main.ts
 * imports copied into the image; every flag and LOFT_* variable compose and the systemd template
 * pass is one `server/main.ts --help` lists, the proxy
 * balances over the instances' ports, Redis is durable. What can run does: the template unit
 * through `systemd-analyze verify`, the coturn configuration in Debian's coturn (it answers STUN),
 * and the alert rules against a real server's /metrics — every loft_* metric they name exists.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request } from "../host/http-testing.ts";
import { SERVER_NODE_OPTIONS } from "../host/node-options.ts";
import { freePort } from "../test/support/free-port.ts";
import { type LoftProcess, startLoft } from "../test/support/loft-process.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const DOCKERFILE = read("deploy/Dockerfile");
const COMPOSE = read("deploy/compose.yaml");
const CADDYFILE = read("deploy/caddy/Caddyfile");
const TEMPLATE_UNIT = read("deploy/systemd/loft@.service");
const ALERTS = read("deploy/prometheus/alerts.yml");
const run = promisify(execFile);

/** Environment variables read outside the options table (host/log.ts). */
const OTHER_ENV = new Set(["LOG_LEVEL"]);

/** The server's flags and environment variables, from its own `--help`. */
async function serverOptions(): Promise<{ flags: Set<string>; env: Set<string> }> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", "server/main.ts", "--help"], {
    cwd: ROOT,
    timeout: 30_000,
  });
  const flags = new Set<string>();
  const env = new Set<string>();
  for (const m of stdout.matchAll(/^ {2}--([a-z0-9-]+)\s+([A-Z0-9_]+)\s/gm)) {
    flags.add(m[1]!);
    env.add(m[2]!);
  }
  return { flags, env };
}

/** Every relative module server/main.ts reaches (imports, dynamic imports, worker URLs), by path. */
function importClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [resolve(ROOT, entry)];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    const specs = [
      ...text.matchAll(/(?:from|import)\s*\(?\s*"(\.\.?\/[^"]+)"/g),
      ...text.matchAll(/new URL\(\s*"(\.\.?\/[^"]+\.ts)"\s*,\s*import\.meta\.url/g),
    ].map((m) => m[1]!);
    for (const s of specs) if (s.endsWith(".ts")) todo.push(resolve(dirname(file), s));
  }
  return new Set([...seen].map((f) => relative(ROOT, f)));
}

/** The `--flag value` pairs of an argument list. */
function flagsOf(args: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) continue;
    const next = args[i + 1];
    out.set(a.slice(2), next !== undefined && !next.startsWith("--") ? next : "");
  }
  return out;
}

/** Compose's `command:` list of the shared Loft service (the `x-loft` anchor). */
function composeCommand(): string[] {
  const block = /^ {2}command:\n((?: {4}- .*\n)+)/m.exec(COMPOSE);
  if (!block) throw new Error("deploy/compose.yaml: no command list under x-loft");
  return block[1]!
    .trim()
    .split("\n")
    .map((l) =>
      l
        .trim()
        .replace(/^- /, "")
        .replace(/^"(.*)"$/, "$1"),
    );
}

/** Top-level services of the compose file. */
function composeServices(): string[] {
  const body = COMPOSE.split(/^services:\n/m)[1]!.split(/^\S/m)[0]!;
  return [...body.matchAll(/^ {2}([a-z0-9-]+):\n/gm)].map((m) => m[1]!);
}

function checkOptions(
  known: { flags: Set<string>; env: Set<string> },
  flags: Iterable<string>,
  env: Iterable<string>,
): void {
  for (const f of flags) expect(known.flags.has(f), `--${f} is not an option of server/main.ts`).toBe(true);
  for (const e of env)
    expect(known.env.has(e) || OTHER_ENV.has(e), `${e} is not read by server/main.ts`).toBe(true);
}

let options: { flags: Set<string>; env: Set<string> };
let loft: LoftProcess;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loft-deploy-"));
  [options, loft] = await Promise.all([
    serverOptions(),
    startLoft({ args: ["--relay-data-dir", join(dir, "relay"), "--serve-static", "false"] }),
  ]);
});
afterAll(async () => {
  await loft?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("deploy/Dockerfile", () => {
  const lines = DOCKERFILE.split("\n").filter((l) => l.trim() && !l.startsWith("#"));
  const stages = lines.filter((l) => l.startsWith("FROM "));
  const runtime = lines.slice(lines.lastIndexOf(stages.at(-1)!));
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(DOCKERFILE)![1]!) as string[];

  it("builds in one stage and runs from another, as a user that is not root", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages[0]).toMatch(/ AS build$/);
    expect(runtime.some((l) => l.startsWith("COPY --from=build "))).toBe(true);
    const user = runtime.filter((l) => l.startsWith("USER ")).at(-1);
    expect(user).toBeDefined();
    expect(user!.slice(5).trim()).not.toMatch(/^(root|0)(:|$)/);
    // The Node image satisfies package.json's engines.
    const version = /^ARG NODE_VERSION=(\d+)\.(\d+)/m.exec(DOCKERFILE)!;
    const engines = JSON.parse(read("package.json")).engines.node as string;
    const [major, minor] = /(\d+)\.(\d+)/.exec(engines)!.slice(1).map(Number) as [number, number];
    expect(Number(version[1]) > major || (Number(version[1]) === major && Number(version[2]) >= minor)).toBe(
      true,
    );
  });

  it("checks its health on the public /health of the port it listens on; its data is a volume", () => {
    const flags = flagsOf(cmd);
    const health = /^HEALTHCHECK .*\n?.*CMD (\[.*\])$/m.exec(DOCKERFILE);
    expect(health).not.toBeNull();
    expect(health![1]).toContain(`http://127.0.0.1:${flags.get("port")}/health`);
    const volumes = JSON.parse(/^VOLUME (\[.*\])$/m.exec(DOCKERFILE)![1]!) as string[];
    expect(volumes.some((v) => flags.get("relay-data-dir")!.startsWith(`${v}/`))).toBe(true);
    expect(DOCKERFILE).toMatch(new RegExp(`^EXPOSE .*\\b${flags.get("port")}\\b`, "m"));
    checkOptions(options, flags.keys(), []);
    // The same start as the systemd unit: node, with the operator paths' options, runs the
    // sources through tsx.
    expect(JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(DOCKERFILE)![1]!)).toEqual([
      "node",
      ...SERVER_NODE_OPTIONS,
      "--import",
      "tsx",
      "server/main.ts",
    ]);
  });

  it("copies every folder server/main.ts imports, and tsx survives the pruning", () => {
    const folders = new Set([...importClosure("server/main.ts")].map((f) => f.split("/")[0]!));
    expect(folders.has("relay-ws") && folders.has("signaling")).toBe(true);
    for (const f of folders) expect(runtime).toContain(`COPY --from=build /src/${f} ./${f}`);
    expect(runtime).toContain("COPY --from=build /src/web/dist ./web/dist");
    expect(DOCKERFILE).toMatch(/cp -a node_modules\/tsx node_modules\/esbuild/);
    const ignore = read(".dockerignore").split("\n");
    for (const p of ["node_modules", "web/dist", ".git", ".data"]) expect(ignore).toContain(p);
    // The compose file's secrets stay out of the build context (and of git).
    const gitignore = read(".gitignore").split("\n");
    for (const p of ["deploy/loft.env", "deploy/relay-master.key"]) {
      expect(ignore).toContain(p);
      expect(gitignore).toContain(p);
      expect(COMPOSE).toContain(p.replace("deploy/", ""));
    }
  });
});

describe("deploy/compose.yaml and its proxy", () => {
  const command = composeCommand();
  const flags = flagsOf(command);

  it("two Loft instances, Redis, coturn and a TLS proxy", () => {
    expect(composeServices()).toEqual(
      expect.arrayContaining(["loft-1", "loft-2", "redis", "coturn", "caddy", "redis-exporter"]),
    );
    expect(flags.get("redis")).toBe("redis://redis:6379");
    // Durable Redis: acknowledged means on disk (docs/operations.md, "Backups").
    expect(COMPOSE).toMatch(/"--appendonly", "yes", "--appendfsync", "always"/);
  });

  it("passes only flags and variables the server reads", () => {
    const env = [...COMPOSE.matchAll(/^ {4}(LOFT_[A-Z0-9_]+):/gm)].map((m) => m[1]!);
    expect(env.length).toBeGreaterThan(3);
    const envFile = read("deploy/loft.env.example");
    const secrets = [...envFile.matchAll(/^(LOFT_[A-Z0-9_]+)=/gm)].map((m) => m[1]!);
    expect(secrets).toEqual(["LOFT_TURN_SECRET", "LOFT_METRICS_TOKEN"]);
    checkOptions(options, flags.keys(), [...env, ...secrets]);
  });

  it("the proxy balances over both instances' port, trusted by address, health-checked on /health", () => {
    const port = flags.get("port");
    expect(CADDYFILE).toMatch(new RegExp(`reverse_proxy loft-1:${port} loft-2:${port} \\{`));
    expect(CADDYFILE).toMatch(/health_uri \/health\n/);
    expect(CADDYFILE).toMatch(/respond \/metrics 404/);
    const proxyAddress = /caddy:[\s\S]*?ipv4_address: ([\d.]+)/.exec(COMPOSE)![1];
    expect(COMPOSE).toContain(`LOFT_TRUST_PROXY: ${proxyAddress}\n`);
    // The data volume holds the relay's data dir; the master key is a secret off that volume.
    expect(flags.get("relay-data-dir")).toMatch(/^\/data\//);
    expect(COMPOSE).toMatch(/- loft-1-data:\/data\n/);
    expect(flags.get("relay-master-key-file")).toBe("/run/secrets/relay-master-key");
    expect(COMPOSE).toMatch(/secrets:\n {4}- relay-master-key\n/);
  });

  it("coturn's configuration runs in Debian's coturn in the REST-API mode, and it answers STUN", async () => {
    const conf = read("deploy/coturn/turnserver.conf");
    expect(conf).toMatch(/^use-auth-secret$/m);
    expect(conf).not.toMatch(/^static-auth-secret/m); // the secret comes from the environment
    const port = await freePort();
    const work = mkdtempSync(join(dir, "turn-"));
    const file = join(work, "turnserver.conf");
    writeFileSync(
      file,
      `${conf.replace(/^listening-port=\d+$/m, `listening-port=${port}`)}\nstatic-auth-secret=${randomBytes(16).toString("hex")}\n`,
    );
    let out = "";
    const child: ChildProcess = spawn(
      "turnserver",
      ["-c", file, "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--log-file", "stdout"].concat([
        "--pidfile",
        join(work, "pid"),
        "--userdb",
        join(work, "db.sqlite"),
      ]),
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    try {
      await expect.poll(() => stunAnswers(port), { timeout: 15_000 }).toBe(true);
      expect(out).not.toMatch(/Bad configuration format|CONFIG ERROR/);
    } finally {
      child.kill("SIGTERM");
    }
  });
});

/** One STUN Binding request (RFC 5389) to 127.0.0.1:port; true when a success answer comes back. */
function stunAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const tx = randomBytes(12);
    const req = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), tx]);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    socket.on("message", (m) =>
      done(m.length >= 20 && m.readUInt16BE(0) === 0x0101 && m.subarray(8, 20).equals(tx)),
    );
    socket.on("error", () => done(false));
    socket.send(req, port, "127.0.0.1");
  });
}

describe("deploy/systemd/loft@.service", () => {
  it("is valid for systemd as a template and as an instance", async () => {
    const work = mkdtempSync(join(dir, "unit-"));
    const template = join(work, "loft@.service");
    writeFileSync(template, TEMPLATE_UNIT);
    symlinkSync(template, join(work, "loft@1.service"));
    for (const unit of [template, join(work, "loft@1.service")]) {
      // verify reports unknown keys on stderr with exit code 0: both streams are read.
      const { stdout, stderr } = await run("systemd-analyze", ["verify", "--man=no", unit], {
        timeout: 30_000,
      });
      expect(`${stdout}${stderr}`.split("\n").filter((l) => l.includes("loft@"))).toEqual([]);
    }
  });

  it("starts instance N on 808N and 946N with the server's own flags, hardened", () => {
    const exec = /^ExecStart=(.*)$/m.exec(TEMPLATE_UNIT)![1]!.trim().split(/\s+/);
    const start = ["/usr/bin/node", ...SERVER_NODE_OPTIONS, "--import", "tsx", "server/main.ts"];
    expect(exec.slice(0, start.length)).toEqual(start);
    const flags = flagsOf(exec.slice(start.length));
    expect(flags.get("port")).toBe("808%i");
    expect(flags.get("metrics-port")).toBe("946%i");
    expect(flags.get("relay-data-dir")).toBe("/var/lib/loft/relay-%i");
    expect(flags.get("redis")).toBe("redis://127.0.0.1:6379");
    const env = [...TEMPLATE_UNIT.matchAll(/^Environment=([A-Z_]+)=/gm)].map((m) => m[1]!);
    checkOptions(options, flags.keys(), env);
    for (const line of [
      "DynamicUser=yes",
      "NoNewPrivileges=yes",
      "CapabilityBoundingSet=",
      "ProtectSystem=strict",
      "SystemCallFilter=@system-service",
      "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ])
      expect(TEMPLATE_UNIT.split("\n")).toContain(line);
  });
});

describe("deploy/prometheus/alerts.yml", () => {
  const exprs = [...ALERTS.matchAll(/^ {8}expr: (.+)$/gm)].map((m) => m[1]!);
  const names = (e: string) =>
    [...e.replace(/"[^"]*"/g, "").matchAll(/\b([a-z_][a-z0-9_]*)\b\s*(?=[{[)\s>=<!]|$)/g)]
      .map((m) => m[1]!)
      .filter((n) => n.startsWith("loft_") || n.startsWith("redis_") || n === "up");

  it("alerts on queue depth, commit latency, errors and Redis", () => {
    const alerts = [...ALERTS.matchAll(/^ {6}- alert: (\w+)$/gm)].map((m) => m[1]!);
    expect(alerts.length).toBe(exprs.length);
    for (const a of [
      "LoftRelayQueueDepthHigh",
      "LoftRelayCommitSlow",
      "LoftRelayInternalErrors",
      "LoftSignalingInternalErrors",
      "LoftRedisUnreachable",
      "LoftInstanceDown",
    ])
      expect(alerts).toContain(a);
  });

  it("every loft_* metric an alert names is exported by the server; the others come from named exporters", async () => {
    const res = await request(`${loft.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    const exported = new Set([...res.body.toString().matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]!));
    const used = new Set(exprs.flatMap(names));
    expect(used.size).toBeGreaterThan(6);
    for (const name of used) {
      if (name === "up") continue; // Prometheus's own, per scrape target
      if (name.startsWith("redis_")) {
        // redis_exporter's (compose service "redis-exporter").
        expect(name).toBe("redis_up");
        continue;
      }
      const base = name.replace(/_(bucket|sum|count)$/, "");
      expect(exported.has(name) || exported.has(base), `${name} is not in the server's /metrics`).toBe(true);
    }
  });
});

describe("the operator paths' Node options (host/node-options.ts)", () => {
  it("npm start, npm run relay and npm run signaling start node with them", () => {
    const scripts = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts;
    const node = `node ${SERVER_NODE_OPTIONS.join(" ")} --import tsx`;
    expect(scripts.start).toContain(`${node} server/main.ts`);
    expect(scripts.relay).toBe(`${node} relay-ws/main.ts`);
    expect(scripts.signaling).toBe(`${node} signaling/main.ts`);
    const unit = read("deploy/systemd/loft.service");
    expect(/^ExecStart=(.*)$/m.exec(unit)![1]).toContain(`/usr/bin/${node} server/main.ts `);
  });
});
