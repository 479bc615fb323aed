/**
 * What every server entry point shares about its listeners: the metrics listener setting
 * (`--metrics-port`, `--metrics-host`, `--metrics-token`; host/metrics.ts), the warning when it
 * is reachable from the network without a token, and the exit codes for a bad start (2: the
 * operator's to fix — a bad option, a port in use — with no stack trace; 1: anything else), and
 * the stop bound (`--shutdown-timeout-ms`: how long SIGTERM's graceful close may take).
 * `npm run signaling` and `npm run relay` use it so that they expose exactly what `npm start`
 * does: a public `/health` that says `{"status":"ok"}`, `/metrics` and the detailed `/health`
 * only on the metrics listener (docs/operations-signaling.md, docs/operations-relay.md).
 */
import { ConfigError, int, optionName } from "./config.ts";
import { DEFAULT_SHUTDOWN_TIMEOUT_MS, ListenError, UPGRADE_ANSWER_MS } from "./host.ts";
import type { Logger } from "./log.ts";
import type { MetricsListenerOptions } from "./metrics.ts";

/**
 * The stop bound of every entry point (host/host.ts `closeOnSignals`; docs/operations.md,
 * "Stopping"): after SIGTERM/SIGINT, how long the graceful close may take before the process logs
 * what was still pending and exits with code 1.
 */
export const shutdownOptions = {
  shutdownTimeoutMs: {
    flag: "shutdown-timeout-ms",
    env: "LOFT_SHUTDOWN_TIMEOUT_MS",
    default: DEFAULT_SHUTDOWN_TIMEOUT_MS,
    parse: int(100, 600_000),
    help: "after SIGTERM/SIGINT, how long the graceful stop may take; then the process logs what was still pending and exits with code 1",
  },
};

/**
 * The upgrade bound of every entry point (host/host.ts `UPGRADE_ANSWER_MS`; docs/operations.md,
 * "Upgrades no service answers"): an upgrade no service answered in this long is refused with
 * 503. A browser holds its other WebSockets to the host:port while one is connecting (RFC 6455
 * §4.1), so the bound is also how long one stuck upgrade can keep that person off the others.
 */
export const upgradeOptions = {
  upgradeAnswerMs: {
    flag: "upgrade-answer-ms",
    env: "LOFT_UPGRADE_ANSWER_MS",
    default: UPGRADE_ANSWER_MS,
    parse: int(100, 60_000),
    help: "how long a service gets to answer a WebSocket upgrade (101 or a refusal); then the host refuses it with 503",
  },
};

/** The parsed metrics options (host/metrics.ts `metricsOptions`). */
export interface MetricsConfig {
  metricsPort: number | "off";
  metricsHost: string;
  metricsToken: string | undefined;
}

/** `HostOptions.metrics` for a parsed configuration: a separate listener, or "off". */
export function metricsListener(config: MetricsConfig): MetricsListenerOptions | "off" {
  return config.metricsPort === "off"
    ? "off"
    : { port: config.metricsPort, host: config.metricsHost, token: config.metricsToken };
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** Log a warning when the metrics listener is bound off loopback with no token. */
export function warnIfMetricsExposed(
  log: Logger,
  config: MetricsConfig,
  metricsPort: number | undefined,
): void {
  if (metricsPort !== undefined && !isLoopback(config.metricsHost) && config.metricsToken === undefined)
    log.warn({ metricsPort }, "metrics listener is reachable from the network without --metrics-token");
}

/**
 * A listener that could not bind, as a refusal naming the options as the operator set them: `PORT`
 * given in the environment is named `PORT`, not `--port` (host/config.ts `optionName`). `config` is
 * the readConfig result the listener's port and host were read in; anything else passes through.
 */
export function listenRefusal(e: unknown, config: object): unknown {
  if (!(e instanceof ListenError)) return e;
  const [port, host] = e.listener === "metrics" ? ["metrics-port", "metrics-host"] : ["port", "host"];
  return new ConfigError(
    `${optionName(config, { flag: port })}/${optionName(config, { flag: host })}: cannot listen on ${e.message}`,
  );
}

/** The end of `main().catch(…)`: a clear line and exit code 2 for configuration and bind errors. */
export function exitOnStartupError(e: unknown): never {
  if (e instanceof ConfigError) {
    console.error(`configuration error: ${e.message}`);
    process.exit(2);
  }
  // A ListenError not named by `listenRefusal` (a listener bound outside the entry point's main).
  if (e instanceof ListenError) {
    const flag = e.listener === "metrics" ? "--metrics-port/--metrics-host" : "--port/--host";
    console.error(`configuration error: ${flag}: cannot listen on ${e.message}`);
    process.exit(2);
  }
  console.error(e);
  process.exit(1);
}
