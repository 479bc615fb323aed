/**
 * Starts the real `server/main.ts` (or `signaling/main.ts`, `relay-ws/main.ts`) as a child process
 * on a free loopback port and waits for its "listening" log line. Tests get the base URL and can
 * stop it gracefully or SIGKILL it (fault tests) and start it again on the same port and data
 * directory. Every entry point has a metrics listener; it goes on a free port too
 * (`--metrics-port 0` unless the test names one): `metricsUrl`.
 *
 * A child that never says "listening" (a hang, a port that never binds, a spawn failure) does not
 * outlive the attempt: after `startTimeoutMs` it gets SIGTERM, then SIGKILL after a short grace,
 * and `startLoft` rejects with a `LoftStartError` once it has exited (or the bounded wait ended).
 * A started child does not outlive its test either: `stop()` sends SIGKILL when a graceful stop
 * has not ended after `stopGraceMs`, and one still running when the test process exits (a hook
 * that timed out before its `stop()`) is killed then.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { processExists } from "../../host/process-alive.ts";
import { exitedAndDrained } from "./child-exit.mjs";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** How long a child gets to say "listening" by default: generous, for a loaded 2-core machine. */
export const DEFAULT_START_TIMEOUT_MS = 60_000;
/** After SIGTERM, how long before SIGKILL; after SIGKILL, how long we wait for the exit. */
const KILL_GRACE_MS = 3_000;
/**
 * How long `stop()` waits for a graceful stop (SIGTERM: the host closes its services, then its
 * HTTP connections after 2 s, host/host.ts `closeServer`) before it sends SIGKILL.
 */
export const DEFAULT_STOP_GRACE_MS = 15_000;
/**
 * After the child's exit, how long we wait for its pipes to be read to their end ('close'): a
 * grandchild that inherited them could hold them open for ever.
 */
const DRAIN_MS = 5_000;

export interface LoftProcess {
  readonly url: string;
  readonly port: number;
  /** Base URL of the metrics listener (/metrics, detailed /health), when the process has one. */
  readonly metricsUrl: string | undefined;
  readonly child: ChildProcess;
  /**
   * Everything the process wrote to stdout/stderr so far (structured logs); after `stop()` (or a
   * start that failed), everything it wrote.
   */
  output(): string;
  /**
   * Sends `signal` (SIGTERM by default) and resolves with the exit code (null when a signal ended
   * it). A child still running `stopGraceMs` later gets SIGKILL: a stop never waits on a child
   * that ignores or hangs on its signal.
   */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  entry?: string;
  port?: number;
  host?: string;
  args?: string[];
  env?: Record<string, string>;
  /** Give up (and kill the child) when it has not logged "listening" by then. */
  startTimeoutMs?: number;
  /**
   * Keep the per-source signaling verification budget at its production default. Off by default:
   * every browser page of a test connects from the same loopback address, i.e. one source, so a
   * test with several pages registering and dialing at once would be answered BUSY where real
   * users on separate addresses would not. The abuse suite, which measures those budgets, sets it.
   */
  productionLimits?: boolean;
  /** Node options before the entry (`--cpu-prof`, …: some are refused in NODE_OPTIONS). */
  nodeArgs?: string[];
  /**
   * Modules loaded before the entry, after tsx (so they may be TypeScript and share the entry's
   * module instances): test hooks such as test/support/hold-relay-new.ts.
   */
  imports?: string[];
  /** After `stop()`'s signal, how long before SIGKILL (`DEFAULT_STOP_GRACE_MS`). */
  stopGraceMs?: number;
}

/** The child did not start: why, its pid (already gone), its exit code, and what it wrote. */
export class LoftStartError extends Error {
  override name = "LoftStartError";
  constructor(
    message: string,
    readonly reason: "exited" | "timeout" | "spawn-failed",
    readonly pid: number | undefined,
    readonly exitCode: number | null,
    readonly output: string,
  ) {
    super(message);
  }
}

const hasExited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

/** SIGTERM, then SIGKILL after a grace; resolves once the child exited or the bounded wait ended. */
async function killChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      void exited.then(() => {
        clearTimeout(t);
        resolve();
      });
    });
  if (hasExited(child)) return;
  child.kill("SIGTERM");
  await wait(KILL_GRACE_MS);
  if (hasExited(child)) return;
  child.kill("SIGKILL");
  await wait(KILL_GRACE_MS);
}

/**
 * Children started and not exited yet. One still running when this test process exits (a hook
 * timed out before its `stop()`, the worker torn down) would hold its port and data dir with no
 * one left to stop it: it gets SIGKILL then (an exit hook runs only synchronous code).
 */
const started = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of started) child.kill("SIGKILL");
});

/** Signaling budgets for tests whose pages all share one loopback source (see productionLimits). */
const ONE_SOURCE_TEST_ENV: Record<string, string> = {
  LOFT_SIGNAL_SOURCE_CPU_MS: "1000",
  LOFT_SIGNAL_SOURCE_CPU_BURST_MS: "10000",
};

/** Where the default relay data dirs go (`.data/` of the worktree; git ignores it). */
const DATA_ROOT = join(ROOT, ".data");
/** A default relay data dir's name: `relay-w<worker>-<pid of the test process>`. */
const WORKER_DIR = /^relay-w[0-9]+-([1-9][0-9]*)$/;

let ownRelayDir: string | undefined;

/**
 * This test process's default relay data dir, `.data/relay-w<N>-<pid>` (N the test worker,
 * `VITEST_POOL_ID`), chosen on first use. The pid keeps two test runs overlapping in one worktree
 * apart: each numbers its workers from 1, and with `relay-w<N>` alone their servers shared a dir
 * (the second refused with LOFT_ERR_RELAY_DATA_DIR_IN_USE, or reading the first's store). Removed
 * when this process exits; a dir whose process is gone (killed, so no exit hook ran) is removed at
 * the next first use, by any run, and so is one named like this process's own (a killed process
 * had this pid before).
 */
export function workerRelayDataDir(worker: string): string {
  if (ownRelayDir !== undefined) return ownRelayDir;
  mkdirSync(DATA_ROOT, { recursive: true });
  const name = `relay-w${worker}-${process.pid}`;
  for (const other of readdirSync(DATA_ROOT)) {
    const m = WORKER_DIR.exec(other);
    // This process's own name, before its first use, is a leftover too: of a killed process whose
    // pid this one got (pids are reused), its store — or a relay of it still running — not ours.
    if (m && (other === name || !processExists(Number(m[1]))))
      rmSync(join(DATA_ROOT, other), { recursive: true, force: true });
  }
  const dir = join(DATA_ROOT, name);
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  ownRelayDir = dir;
  return dir;
}

/**
 * A server started without `--relay-data-dir` gets its relay store in this test process's own dir
 * (workerRelayDataDir): one relay process per data dir (docs/operations-relay.md §Storage) — two
 * e2e files run at once, each on its own worker — while a file that stops and restarts its server
 * finds the same store again, as with the one default dir before.
 */
function defaultRelayDataDir(args: string[]): Record<string, string> {
  const worker = process.env.VITEST_POOL_ID;
  // A LOFT_RELAY_DATA_DIR in `options.env` wins anyway (spread after this); one in this process's
  // environment would not, so it is kept here.
  if (worker === undefined || args.includes("--relay-data-dir")) return {};
  if (process.env.LOFT_RELAY_DATA_DIR !== undefined) return {};
  return { LOFT_RELAY_DATA_DIR: workerRelayDataDir(worker) };
}

export async function startLoft(options: StartOptions = {}): Promise<LoftProcess> {
  const entry = options.entry ?? "server/main.ts";
  const host = options.host ?? "127.0.0.1";
  const args = options.args ?? [];
  const timeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  // Many run at once in tests, so no fixed metrics port.
  const metricsArgs = args.some((a) => a.startsWith("--metrics-port")) ? [] : ["--metrics-port", "0"];
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      "--import",
      "tsx",
      ...(options.imports ?? []).flatMap((m) => ["--import", m]),
      entry,
      "--port",
      String(options.port ?? 0),
      "--host",
      host,
      ...metricsArgs,
      ...args,
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        LOG_LEVEL: "info",
        ...(options.productionLimits ? {} : ONE_SOURCE_TEST_ENV),
        ...defaultRelayDataDir(args),
        ...options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  started.add(child);
  let out = "";
  // Resolves once the child exited and what it wrote is read (a log line read once after stop()
  // could miss them otherwise), or its spawn failed: child-exit.mjs.
  child.once("exit", () => started.delete(child));
  const exited = exitedAndDrained(child, DRAIN_MS).then((end) => {
    if (end.error) started.delete(child);
    return end.code;
  });
  let metricsPort: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      let pending = "";
      child.stdout!.on("data", (chunk: Buffer) => {
        const text = chunk.toString();
        out += text;
        pending += text;
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) {
          if (!line.startsWith("{")) continue;
          try {
            const rec = JSON.parse(line) as { msg?: string; port?: number; metricsPort?: number };
            if (rec.msg?.includes("listening") && typeof rec.port === "number") {
              if (typeof rec.metricsPort === "number") metricsPort = rec.metricsPort;
              resolve(rec.port);
            }
          } catch {}
        }
      });
      child.stderr!.on("data", (c: Buffer) => {
        out += c.toString();
      });
      child.once("error", (e) =>
        reject(
          new LoftStartError(`${entry} failed: ${e.message}\n${out}`, "spawn-failed", child.pid, null, out),
        ),
      );
      void exited.then((code) =>
        reject(
          new LoftStartError(
            `${entry} exited (${code}) before listening:\n${out}`,
            "exited",
            child.pid,
            code,
            out,
          ),
        ),
      );
      timer = setTimeout(
        () =>
          reject(
            new LoftStartError(
              `${entry} did not log "listening" within ${timeoutMs} ms; stopped it:\n${out}`,
              "timeout",
              child.pid,
              null,
              out,
            ),
          ),
        timeoutMs,
      );
    });
  } catch (e) {
    await killChild(child, exited);
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return {
    url: `http://${host}:${port}`,
    port,
    metricsUrl: metricsPort === undefined ? undefined : `http://127.0.0.1:${metricsPort}`,
    child,
    output: () => out,
    async stop(signal = "SIGTERM") {
      if (hasExited(child)) return exited;
      child.kill(signal);
      const kill = setTimeout(() => {
        if (!hasExited(child)) child.kill("SIGKILL");
      }, options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS);
      try {
        return await exited;
      } finally {
        clearTimeout(kill);
      }
    },
  };
}
