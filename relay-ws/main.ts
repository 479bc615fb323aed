/**
 * `npm run relay`: the relay alone — the WebSocket mailbox at `/relay` — configured by flags and
 * environment variables (relay-ws/config.ts; flags win). With `--redis URL` its queues live in
 * that Redis, shared with the other instances (relay-ws/store/redis.ts). Like `npm start`, the public port's
 * `/health` says `{"status":"ok"}` only; `/metrics` and the detailed `/health` are on the metrics
 * listener (`--metrics-port`, default 9464 on 127.0.0.1; host/metrics.ts).
 * Logs "relay listening" with `port` and `metricsPort` once ready; SIGTERM/SIGINT close every
 * WebSocket with 1001, wait for pending writes and close the store — within the stop bound
 * (`--shutdown-timeout-ms`, host/host.ts `closeOnSignals`), else exit 1 naming what was pending.
 */
import { trustedProxies } from "../host/client-source.ts";
import { describeOptions, int, keepSources, readConfig, str } from "../host/config.ts";
import { closeOnSignals, createHost, createRegistry } from "../host/host.ts";
import { createLogger } from "../host/log.ts";
import { metricsOptions } from "../host/metrics.ts";
import { redisOption } from "../host/redis.ts";
import {
  exitOnStartupError,
  listenRefusal,
  metricsListener,
  shutdownOptions,
  upgradeOptions,
  warnIfMetricsExposed,
} from "../host/standalone.ts";
import { wsImplOption } from "../host/websocket-server.ts";
import { smpBridgeOptions } from "../smp/bridge/config.ts";
import { createSmpBridgeService } from "../smp/bridge/service.ts";
import { smpOptions } from "../smp/server/config.ts";
import { startSmpListener } from "../smp/server/listener.ts";
import { relayOptions } from "./config.ts";
import { createRelayService } from "./service.ts";
import { openRedisRelayStore } from "./store/open.ts";

const options = {
  port: { flag: "port", env: "PORT", default: 8081, parse: int(0, 65535), help: "TCP port to listen on" },
  host: { flag: "host", env: "HOST", default: "0.0.0.0", parse: str, help: "address to bind" },
  ...metricsOptions,
  ...shutdownOptions,
  ...upgradeOptions,
  ...redisOption,
  ...wsImplOption,
  ...relayOptions,
  ...smpOptions,
  ...smpBridgeOptions,
};

async function main() {
  if (process.argv.includes("--help")) {
    console.log(`loft relay — WebSocket mailbox relay\n\n${describeOptions(options)}`);
    return;
  }
  const config = readConfig(options);
  const {
    port,
    host,
    metricsPort,
    metricsHost,
    metricsToken,
    smpPort,
    smpHost,
    smpAddressHost,
    smpPassword,
    smpDir,
    smpBridge,
    smpBridgeAllow,
    smpBridgeDeny,
    smpBridgePrivate,
    smpBridgeMaxPerSource,
    smpBridgeMaxConnections,
    redis,
    wsImpl,
    shutdownTimeoutMs,
    upgradeAnswerMs,
    ...relayConfig
  } = config;
  const metrics = { metricsPort, metricsHost, metricsToken };
  const log = createLogger("relay");
  const registry = createRegistry();
  const hostServer = createHost({
    port,
    host,
    staticDir: undefined,
    registry,
    log,
    metrics: metricsListener(metrics),
    trustedProxies: trustedProxies(relayConfig.trustProxy),
    upgradeAnswerMs,
  });
  // --redis: one of several instances on one Redis (docs/operations.md, "Scale-out on Redis").
  const store = redis ? await openRedisRelayStore(relayConfig, redis, { log }) : undefined;
  const relay = createRelayService(relayConfig, { registry, log, wsImpl, ...(store ? { store } : {}) });
  hostServer.mount(relay);
  // Browsers' SMP connections to SMP servers (docs/operations.md, "SMP bridge").
  if (smpBridge)
    hostServer.mount(
      createSmpBridgeService(config, {
        registry,
        log,
        trusted: trustedProxies(relayConfig.trustProxy),
        allowedOrigins: relayConfig.allowedOrigins,
        wsImpl,
      }),
    );
  const bound = await hostServer.listen().catch((e: unknown) => {
    throw listenRefusal(e, config);
  });
  // SMP over TLS on its own port, into the same queues (docs/operations.md, "SMP listener").
  if (smpPort !== "off")
    await startSmpListener(
      relay,
      keepSources(config, {
        smpPort,
        smpHost,
        smpAddressHost,
        smpPassword,
        smpDir,
        dataDir: relayConfig.dataDir,
      }),
      log,
    );
  const boundMetrics = hostServer.metricsPort();
  warnIfMetricsExposed(log, metrics, boundMetrics);
  log.info({ port: bound, metricsPort: boundMetrics }, "relay listening");
  closeOnSignals(() => hostServer.close(), log, {
    timeoutMs: shutdownTimeoutMs,
    stillPending: () => hostServer.stillPending(),
  });
}

main().catch(exitOnStartupError);
