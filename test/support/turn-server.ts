/**
 * Debian's coturn (`turnserver`, package `coturn`) started by a browser test inside the test
 * network namespace (docs/design.md, "Testing": "TURN paths use Debian's `coturn`"). One address (the namespace's
 * 198.18.0.1) serves as listener and relay address; plain UDP/TCP only (no TLS/DTLS, no CLI),
 * static long-term credentials (or, with `authSecret`, coturn's REST-API scheme: `--use-auth-secret
 * --static-auth-secret`, the credentials the signaling server hands out), a temp pid file and user
 * database, everything logged to stdout.
 * Ready once it answers a STUN Binding request (RFC 8489 §6), not after a delay.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.ts";

export const TURN_USER = "u";
export const TURN_PASSWORD = "p";
export const TURN_REALM = "loft.test";

export interface TurnServer {
  readonly host: string;
  readonly port: number;
  /** For RTCIceServer / the Settings field: `turn:host:port?transport=udp`. */
  readonly url: string;
  /** Everything coturn logged so far. */
  output(): string;
  stop(): Promise<void>;
}

/** `/usr/bin/turnserver` on Debian; `/usr/sbin` on some other layouts; else from PATH. */
function turnserverPath(): string {
  if (process.env.LOFT_TURNSERVER) return process.env.LOFT_TURNSERVER;
  for (const p of ["/usr/bin/turnserver", "/usr/sbin/turnserver"]) if (existsSync(p)) return p;
  return "turnserver";
}

/** One STUN Binding request; resolves true if a matching response arrives before `ms`. */
function stunBinding(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const tx = randomBytes(12);
    const request = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), tx]);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    socket.on("message", (m) => {
      if (m.length >= 20 && m.readUInt16BE(0) === 0x0101 && m.subarray(8, 20).equals(tx)) done(true);
    });
    socket.on("error", () => done(false));
    socket.send(request, port, host);
  });
}

export interface TurnOptions {
  host?: string;
  /** Time-limited credentials only (coturn REST API): the secret shared with Loft's --turn-secret. */
  authSecret?: string;
}

export async function startTurn(options: TurnOptions = {}): Promise<TurnServer> {
  const host = options.host ?? process.env.LOFT_TEST_ADDR ?? "198.18.0.1";
  const credentials = options.authSecret
    ? ["--use-auth-secret", "--static-auth-secret", options.authSecret]
    : ["--lt-cred-mech", "--user", `${TURN_USER}:${TURN_PASSWORD}`];
  const port = await freePort(host);
  const dir = mkdtempSync(join(tmpdir(), "loft-turn-"));
  const child: ChildProcess = spawn(
    turnserverPath(),
    [
      "-n", // no config file
      "--listening-ip",
      host,
      "--relay-ip",
      host,
      "--listening-port",
      String(port),
      ...credentials,
      "--realm",
      TURN_REALM,
      "--no-tls",
      "--no-dtls",
      "--no-cli",
      "--log-file",
      "stdout",
      "--simple-log",
      "--verbose", // session lines: "ALLOCATE processed, success", permissions, channel binds
      "--pidfile",
      join(dir, "turnserver.pid"),
      "--userdb",
      join(dir, "turndb.sqlite"),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout!.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr!.on("data", (c: Buffer) => {
    out += c.toString();
  });
  let running = true;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", (e) => {
      out += `\nturnserver failed to start: ${e.message}`;
      resolve();
    });
  });
  void exited.then(() => {
    running = false;
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  // Bounded: 100 probes of at most 200 ms each.
  for (let i = 0; i < 100 && running; i++) {
    if (await stunBinding(host, port, 200))
      return { host, port, url: `turn:${host}:${port}?transport=udp`, output: () => out, stop };
  }
  await stop();
  throw new Error(`turnserver did not answer STUN on ${host}:${port}:\n${out}`);
}
