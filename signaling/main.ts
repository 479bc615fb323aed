/**
 * `npm run signaling`: the signaling/rendezvous service alone, on its own host (docs/design.md,
 * "Operators"). Like `npm start`, the public port serves `/signal` and a `/health` that says
 * `{"status":"ok"}` only; `/metrics` and the detailed `/health` are on the metrics listener
 * (`--metrics-port`, default 9464 on 127.0.0.1; host/metrics.ts). Logs "signaling listening"
 * with `port` and `metricsPort` once ready. Options: `--help`, or docs/operations-signaling.md.
 */
import { trustedProxies } from "../host/client-source.ts";
import { describeOptions, int, keepSources, readConfig, str } from "../host/config.ts";
import { closeOnSignals, createHost, createRegistry } from "../host/host.ts";
import { createLogger } from "../host/log.ts";
import { metricsOptions } from "../host/metrics.ts";
import {
  exitOnStartupError,
  listenRefusal,
  metricsListener,
  shutdownOptions,
  upgradeOptions,
  warnIfMetricsExposed,
} from "../host/standalone.ts";
import { wsImplOption } from "../host/websocket-server.ts";
import { checkShutdownGrace, checkSignalingConfig, signalingOptions } from "./config.ts";
import { createSignalingService } from "./service.ts";

const options = {
  port: { flag: "port", env: "PORT", default: 8081, parse: int(0, 65535), help: "TCP port to listen on" },
  host: { flag: "host", env: "HOST", default: "0.0.0.0", parse: str, help: "address to bind" },
  ...metricsOptions,
  ...shutdownOptions,
  ...upgradeOptions,
  ...wsImplOption,
  ...signalingOptions,
};

async function main() {
  if (process.argv.includes("--help")) {
    console.log(`loft signaling — rendezvous + WebRTC signaling at /signal\n\n${describeOptions(options)}`);
    return;
  }
  const read = readConfig(options);
  const {
    port,
    host: bind,
    metricsPort,
    metricsHost,
    metricsToken,
    wsImpl,
    shutdownTimeoutMs,
    upgradeAnswerMs,
    ...rest
  } = read;
  // The refusals below name each option as it was set (flag or environment variable).
  const config = keepSources(read, rest);
  const metrics = { metricsPort, metricsHost, metricsToken };
  checkSignalingConfig(config);
  checkShutdownGrace(config, shutdownTimeoutMs, read);
  const log = createLogger("loft-signaling");
  const registry = createRegistry();
  const host = createHost({
    port,
    host: bind,
    staticDir: undefined,
    registry,
    log,
    metrics: metricsListener(metrics),
    trustedProxies: trustedProxies(config.trustProxy),
    upgradeAnswerMs,
  });
  const signaling = createSignalingService(config, { registry, log, wsImpl });
  host.mount(signaling);
  const listening = await host.listen().catch((e: unknown) => {
    throw listenRefusal(e, read);
  });
  // With --redis, say plainly when it is not there yet (requests answer UNAVAILABLE meanwhile,
  // /health is 503; the instance connects by itself once Redis answers).
  if (config.redis && !(await signaling.ready(5_000)))
    log.warn({}, "redis not reachable yet; signaling answers UNAVAILABLE until it is");
  const boundMetrics = host.metricsPort();
  warnIfMetricsExposed(log, metrics, boundMetrics);
  log.info({ port: listening, metricsPort: boundMetrics, path: "/signal" }, "signaling listening");
  closeOnSignals(() => host.close(), log, {
    timeoutMs: shutdownTimeoutMs,
    stillPending: () => host.stillPending(),
  });
}

main().catch(exitOnStartupError);
