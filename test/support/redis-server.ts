/**
 * Debian's `redis-server` (package `redis-server`) started by a test on a loopback port, for the
 * scale-out mode (`--redis URL`). Durable as the relay
 * requires: AOF on with `appendfsync always`, so an OK the relay gave after a Redis write survives
 * `kill -9` of Redis (docs/design.md, relay semantics: OK only after the durable commit). No RDB
 * snapshots, no protected mode (loopback only), its own temp directory, everything logged to a
 * buffer a failing test can print.
 * Ready once it answers PING, not after a delay — and only its own answer counts (`INFO server`
 * names the process): another server that took the port answers PING as well.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exitedAndDrained } from "./child-exit.mjs";
import { freePort } from "./free-port.ts";

/**
 * After an exit, how long its output may take to be read to the end: a fork of redis-server (an
 * AOF rewrite) inherits its pipes and could hold them open past it.
 */
const DRAIN_MS = 2_000;

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `redis://host:port` — what `--redis` / `LOFT_REDIS_URL` take. */
  readonly url: string;
  /** The data directory (the AOF lives here); kept across restart(), removed by stop(). */
  readonly dir: string;
  /** Everything redis-server logged so far. */
  output(): string;
  /** SIGKILL, as a crash: nothing flushed beyond what `appendfsync always` already wrote. */
  kill(): Promise<void>;
  /**
   * Starts it again on the same port and directory (after kill() or by itself after a crash). A
   * port something else took while Redis was down is tried again until it is free (20 s at most).
   */
  restart(): Promise<void>;
  /**
   * Whether redis-server is running now (started and not killed, crashed or stopped since).
   */
  running(): boolean;
  /**
   * restart() unless it is running; a running one is left alone (its connections stay). For an
   * afterEach: a test that killed Redis and failed before its own restart() leaves the next test
   * a live Redis, so that failure stays the only one instead of failing every test after it.
   * Rejects (once started again) when redis-server exited by itself since the last call — not by
   * kill(), restart() or stop() — even if a restart() came after: a crash the test must see, not
   * one a silent restart hides.
   */
  ensureRunning(): Promise<void>;
  /** SIGTERM (SIGKILL if it is still there 5 s later), waits for the exit, removes the data directory. */
  stop(): Promise<void>;
}

export interface RedisOptions {
  host?: string;
  /** A fixed port (restart() reuses it anyway); default: a free one. */
  port?: number;
  /** Extra `redis-server` arguments, e.g. `["--replicaof", "127.0.0.1", "6380"]`. */
  args?: string[];
  /** How long a start or restart waits for its port and its PING (default 20 s). */
  startWithinMs?: number;
}

/** `/usr/bin/redis-server` on Debian; else from PATH (or `LOFT_REDIS_SERVER`). */
export function redisServerPath(): string {
  if (process.env.LOFT_REDIS_SERVER) return process.env.LOFT_REDIS_SERVER;
  for (const p of ["/usr/bin/redis-server", "/usr/sbin/redis-server"]) if (existsSync(p)) return p;
  return "redis-server";
}

/**
 * One RESP `PING`, then `INFO server`: the pid of the redis-server that answered `+PONG` within
 * `ms` (undefined: no answer, or not ready — a server loading its AOF answers `-LOADING`).
 */
function ping(host: string, port: number, ms: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    let got = "";
    const done = (pid: number | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(pid);
    };
    const timer = setTimeout(() => done(undefined), ms);
    socket.on("connect", () => socket.write("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"));
    socket.on("data", (d) => {
      got += d.toString("latin1");
      const pong = got.indexOf("\r\n");
      if (pong < 0) return;
      if (!got.startsWith("+PONG")) return done(undefined);
      // The INFO reply: `$<length>\r\n<text>\r\n`.
      const rest = got.slice(pong + 2);
      const head = /^\$(\d+)\r\n/.exec(rest);
      if (!head) return rest.length > 0 && !rest.startsWith("$") ? done(undefined) : undefined;
      if (rest.length < head[0].length + Number(head[1])) return;
      done(Number(/process_id:(\d+)/.exec(rest)?.[1]) || undefined);
    });
    socket.on("error", () => done(undefined));
  });
}

/**
 * The process holding `port`, for an error that says who took it: another redis-server (its
 * pid, from its own answer), else the pid and command of the process with a socket on that local
 * port (/proc/net/tcp, a listener first; an outgoing connection's source port counts too), else
 * that nothing holds it now. `ours`: the pid of the redis-server that was starting there — when
 * it is the one answering (its first PONG came after the deadline), it is named as ours, slow to
 * start, not as another holding the port.
 */
export async function portHolder(host: string, port: number, ours?: number): Promise<string> {
  const where = `${host}:${port}`;
  const redis = await ping(host, port, 500);
  if (redis !== undefined && redis === ours)
    return `this redis-server (pid ${redis}) answers on ${where} only now: slow to start, the port is not taken`;
  if (redis !== undefined) return `another redis-server (pid ${redis}) answers on ${where}`;
  const inodes: string[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || Number.parseInt(f[1]!.split(":")[1] ?? "", 16) !== port) continue;
      // State 0A is LISTEN: a listener names the holder better than a connection's source port.
      if (f[3] === "0A") inodes.unshift(f[9]!);
      else inodes.push(f[9]!);
    }
  }
  for (const inode of inodes.filter((i) => i !== "0")) {
    const pid = socketOwner(inode);
    if (pid !== undefined) {
      let comm = "?";
      try {
        comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      } catch {}
      return `pid ${pid} (${comm}) holds ${where}`;
    }
  }
  return inodes.length > 0
    ? `a socket of a process not visible here holds ${where}`
    : `nothing holds ${where} now (its holder let go)`;
}

/** The pid with an open descriptor on socket `inode` (undefined: none visible). */
function socketOwner(inode: string): number | undefined {
  const link = `socket:[${inode}]`;
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === link) return Number(pid);
      } catch {}
    }
  }
  return undefined;
}

export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const host = options.host ?? "127.0.0.1";
  let port = options.port ?? (await freePort(host));
  const within = options.startWithinMs ?? 20_000;
  const dir = mkdtempSync(join(tmpdir(), "loft-redis-"));
  let log = "";
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  /** Processes ended on purpose (kill(), restart(), stop(), a launch given up). */
  const ended = new WeakSet<ChildProcess>();
  /** How a started redis-server exited by itself, until ensureRunning() reports it. */
  let crash: string | undefined;

  /** Starts redis-server on `port`; `mayMove`: on another free port when that one is taken. */
  const launch = async (mayMove: boolean) => {
    const args = () => [
      "--bind",
      host,
      "--port",
      String(port),
      "--dir",
      dir,
      "--appendonly",
      "yes",
      "--appendfsync",
      "always",
      "--save",
      "",
      "--protected-mode",
      "no",
      "--daemonize",
      "no",
      "--logfile",
      "",
      ...(options.args ?? []),
    ];
    const deadline = Date.now() + within;
    for (;;) {
      const started = await launchOnce(args(), deadline);
      if (started === "started") return;
      if (mayMove) port = await freePort(host);
      // The port was taken while Redis was down (restart() keeps its port): by another test's
      // server, or as the source port of an outgoing connection (ports from freePort() and the
      // kernel's ephemeral ones are the same range). Such a holder goes away: try again until the
      // deadline, as free-port.ts asks of callers that start an external server.
      if (Date.now() > deadline)
        throw new Error(
          `redis-server could not bind ${host}:${port} within ${within / 1000} s: ${await portHolder(host, port)}\n${log}`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  /** One redis-server process: "started" once it answers PING, "port taken" when its bind failed. */
  const launchOnce = async (args: string[], deadline: number): Promise<"started" | "port taken"> => {
    const proc = spawn(redisServerPath(), args, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    let own = "";
    const take = (d: Buffer) => {
      own += d.toString();
      log += d.toString();
    };
    proc.stdout?.on("data", take);
    proc.stderr?.on("data", take);
    let ours = false;
    exited = new Promise((resolve) =>
      proc.once("exit", (code, sig) => {
        // One that never answered as ours (its port taken) is the launch's business, not a crash.
        if (ours && !ended.has(proc)) crash ??= `code ${code}, signal ${sig}`;
        resolve();
      }),
    );
    // Its whole output read (stdout and stderr closed), for the reason of an exit.
    const closed = exitedAndDrained(proc, DRAIN_MS);
    const spawnError = new Promise<never>((_, reject) => proc.once("error", reject));
    for (;;) {
      // Ended by a signal too (exitCode stays null then): else the loop pinged a dead process
      // until the 20 s deadline and reported a server that did not answer.
      if (proc.exitCode !== null || proc.signalCode !== null) {
        await closed;
        if (/Address already in use/i.test(own)) return "port taken";
        const how = proc.signalCode !== null ? `signal ${proc.signalCode}` : `code ${proc.exitCode}`;
        throw new Error(`redis-server exited (${how}):\n${log}`);
      }
      // Only our own process's answer: another server on the port (another test's, taken while
      // ours was down) answers PING as well, and restart() then resolved while ours was failing.
      const pid = await Promise.race([ping(host, port, 500), spawnError]);
      if (pid !== undefined && pid === proc.pid && proc.exitCode === null) {
        ours = true;
        return "started";
      }
      if (Date.now() > deadline) {
        // Who answers there instead, if anyone (another redis-server, any listener), before ours goes.
        const holder = await portHolder(host, port, proc.pid);
        ended.add(proc);
        proc.kill("SIGKILL");
        throw new Error(
          `redis-server (pid ${proc.pid}) did not answer PING on ${host}:${port} within ${within / 1000} s: ${holder}\n${log}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  // Redis may refuse a SIGTERM ("Writing initial AOF, can't exit": a replica right after its
  // first sync) and then never exits on its own: after a grace period it gets SIGKILL, so a
  // stop() is always bounded.
  const signal = async (sig: NodeJS.Signals) => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const proc = child;
      ended.add(proc);
      proc.kill(sig);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        exited,
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            proc.kill("SIGKILL");
            resolve(exited);
          }, 5_000);
        }),
      ]);
      clearTimeout(timer);
    }
  };

  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  try {
    await launch(options.port === undefined);
  } catch (e) {
    // Nothing started: its directory goes (stop() is never called on what was not returned).
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    dir,
    output: () => log,
    kill: () => signal("SIGKILL"),
    restart: async () => {
      await signal("SIGKILL");
      await launch(false);
    },
    running,
    ensureRunning: async () => {
      if (!running()) await launch(false);
      const why = crash;
      crash = undefined;
      if (why !== undefined)
        throw new Error(`redis-server exited by itself (${why}) and was started again:\n${log.slice(-4000)}`);
    },
    stop: async () => {
      await signal("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
