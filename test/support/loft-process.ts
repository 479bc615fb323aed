/**
 * Starts the real `server/main.ts` as a child process on a free loopback port and waits for its
 * "listening" log line. Tests get the base URL and can stop it gracefully or SIGKILL it (fault
 * tests) and start it again on the same port and data directory. The metrics listener goes on a
 * free port too (`--metrics-port 0` unless the test names one): `metricsUrl`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface LoftProcess {
  readonly url: string;
  readonly port: number;
  /** Base URL of the metrics listener (/metrics, detailed /health), when the process has one. */
  readonly metricsUrl: string | undefined;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout/stderr so far (structured logs). */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  entry?: string;
  port?: number;
  host?: string;
  args?: string[];
  env?: Record<string, string>;
  /**
   * Keep the per-source signaling verification budget at its production default. Off by default:
   * every browser page of a test connects from the same loopback address, i.e. one source, so a
   * test with several pages registering and dialing at once would be answered BUSY where real
   * users on separate addresses would not. The abuse suite, which measures those budgets, sets it.
   */
  productionLimits?: boolean;
}

/** Signaling budgets for tests whose pages all share one loopback source (see productionLimits). */
const ONE_SOURCE_TEST_ENV: Record<string, string> = {
  LOFT_SIGNAL_SOURCE_CPU_MS: "1000",
  LOFT_SIGNAL_SOURCE_CPU_BURST_MS: "10000",
};

export async function startLoft(options: StartOptions = {}): Promise<LoftProcess> {
  const entry = options.entry ?? "server/main.ts";
  const host = options.host ?? "127.0.0.1";
  const args = options.args ?? [];
  // Only the combined server has a metrics listener; many run at once in tests, so no fixed port.
  const metricsArgs =
    entry === "server/main.ts" && !args.some((a) => a.startsWith("--metrics-port"))
      ? ["--metrics-port", "0"]
      : [];
  const child = spawn(
    process.execPath,
    ["--import", "tsx", entry, "--port", String(options.port ?? 0), "--host", host, ...metricsArgs, ...args],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        LOG_LEVEL: "info",
        ...(options.productionLimits ? {} : ONE_SOURCE_TEST_ENV),
        ...options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let metricsPort: number | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      for (const line of out.split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          const rec = JSON.parse(line) as { msg?: string; port?: number; metricsPort?: number };
          if (rec.msg?.includes("listening") && typeof rec.port === "number") {
            if (typeof rec.metricsPort === "number") metricsPort = rec.metricsPort;
            resolve(rec.port);
          }
        } catch {}
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    exited.then((code) => reject(new Error(`${entry} exited (${code}) before listening:\n${out}`)));
  });
  return {
    url: `http://${host}:${port}`,
    port,
    metricsUrl: metricsPort === undefined ? undefined : `http://127.0.0.1:${metricsPort}`,
    child,
    output: () => out,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
