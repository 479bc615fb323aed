/**
 * `npm start`: one Node process on one port serving the built PWA, a public `/health`, and the
 * signaling (`/signal`) and relay (`/relay`) WebSocket services with the embedded store; `/metrics`
 * and the detailed `/health` on a separate listener bound to 127.0.0.1 (docs/operations.md).
 */
import { fileURLToPath } from "node:url";
import { trustedProxies } from "../host/client-source.ts";
import {
  bool,
  describeOptions,
  int,
  keepSources,
  prefixed,
  readConfig,
  str,
  unprefixed,
} from "../host/config.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { closeOnSignals, createHost, createRegistry } from "../host/host.ts";
import { createLogger } from "../host/log.ts";
import { metricsOptions } from "../host/metrics.ts";
import { redisOption } from "../host/redis.ts";
import { cspConnectOption } from "../host/security-headers.ts";
import {
  exitOnStartupError,
  listenRefusal,
  metricsListener,
  shutdownOptions,
  upgradeOptions,
  warnIfMetricsExposed,
} from "../host/standalone.ts";
import { wsImplOption } from "../host/websocket-server.ts";
import { type RelayConfig, relayOptions } from "../relay-ws/config.ts";
import { createRelayService } from "../relay-ws/service.ts";
import { openRedisRelayStore } from "../relay-ws/store/open.ts";
import { checkShutdownGrace, signalingConfigFrom, signalingOptions } from "../signaling/config.ts";
import { createSignalingService } from "../signaling/service.ts";
import { smpBridgeOptions } from "../smp/bridge/config.ts";
import { createSmpBridgeService } from "../smp/bridge/service.ts";
import { smpOptions } from "../smp/server/config.ts";
import { startSmpListener } from "../smp/server/listener.ts";

const options = {
  port: { flag: "port", env: "PORT", default: 8080, parse: int(0, 65535), help: "TCP port to listen on" },
  host: { flag: "host", env: "HOST", default: "0.0.0.0", parse: str, help: "address to bind" },
  staticDir: {
    flag: "static-dir",
    env: "LOFT_STATIC_DIR",
    default: fileURLToPath(new URL("../web/dist", import.meta.url)),
    parse: str,
    help: "folder of the built PWA",
  },
  serveStatic: {
    flag: "serve-static",
    env: "LOFT_SERVE_STATIC",
    default: true,
    parse: bool,
    help: "serve the PWA",
  },
  serveSourceMaps: {
    flag: "serve-source-maps",
    env: "LOFT_SERVE_SOURCE_MAPS",
    default: false,
    parse: bool,
    help: "serve *.map files when the build has them (LOFT_SOURCEMAP=1 npm run build)",
  },
  cspConnectSrc: cspConnectOption,
  ...metricsOptions,
  ...shutdownOptions,
  ...upgradeOptions,
  // Scale-out: one flag for every service of the process (host/redis.ts).
  ...redisOption,
  // The WebSocket server layer of signaling and the relay (host/websocket-server.ts).
  ...wsImplOption,
  ...signalingOptions,
  // Relay option keys overlap signaling's (maxFrameBytes, maxConnections); their flags don't
  // (--relay-* vs --signal-*), so they are read under a prefix and unwrapped below.
  ...prefixed("relay.", relayOptions),
  ...smpOptions,
  ...smpBridgeOptions,
};

async function main() {
  if (process.argv.includes("--help")) {
    console.log(`loft — PWA + signaling + relay on one port\n\n${describeOptions(options)}`);
    return;
  }
  const config = readConfig(options);
  const signaling = signalingConfigFrom(config);
  checkShutdownGrace(signaling, config.shutdownTimeoutMs, config);
  const relay = unprefixed("relay.", config) as RelayConfig;
  const log = createLogger("loft");
  // The node:crypto provider (host/crypto-node.ts), each primitive checked against noble at
  // startup; the log line and the detailed /health say which implementation serves which primitive. The services mounted
  // here verify Ed25519 and seal at rest through node:crypto already (host/node-ed25519.ts,
  // relay-ws/node-crypto.ts); the provider is for what runs Noise or the ratchet in this process.
  const crypto = await createNodeCryptoProvider();
  log.info({ crypto: crypto.backends }, "crypto backends");
  const registry = createRegistry();
  const host = createHost({
    port: config.port,
    host: config.host,
    staticDir: config.serveStatic ? config.staticDir : undefined,
    registry,
    log,
    metrics: metricsListener(config),
    connectSources: config.cspConnectSrc,
    serveSourceMaps: config.serveSourceMaps,
    trustedProxies: trustedProxies(config.trustProxy),
    cryptoBackends: crypto.backends,
    upgradeAnswerMs: config.upgradeAnswerMs,
  });
  host.mount(createSignalingService(signaling, { registry, log, wsImpl: config.wsImpl }));
  // --redis: the relay's queues in that Redis, shared with the other instances (docs/operations.md,
  // "Scale-out on Redis"); without it, the embedded LMDB store.
  const relayStore = config.redis ? await openRedisRelayStore(relay, config.redis, { log }) : undefined;
  const relayService = createRelayService(relay, {
    registry,
    log,
    wsImpl: config.wsImpl,
    ...(relayStore ? { store: relayStore } : {}),
  });
  host.mount(relayService);
  // Browsers' SMP connections to SMP servers (docs/operations.md, "SMP bridge").
  if (config.smpBridge)
    host.mount(
      createSmpBridgeService(config, {
        registry,
        log,
        trusted: trustedProxies(config.trustProxy),
        allowedOrigins: relay.allowedOrigins,
        wsImpl: config.wsImpl,
      }),
    );
  const port = await host.listen().catch((e: unknown) => {
    throw listenRefusal(e, config);
  });
  // The SMP-over-TLS listener on its own port, into the same queues (docs/operations.md, "SMP listener").
  if (config.smpPort !== "off")
    await startSmpListener(
      relayService,
      keepSources(config, { ...config, smpPort: config.smpPort, dataDir: relay.dataDir }),
      log,
    );
  const metricsPort = host.metricsPort();
  warnIfMetricsExposed(log, config, metricsPort);
  log.info({ port, metricsPort }, "loft listening");
  closeOnSignals(() => host.close(), log, {
    timeoutMs: config.shutdownTimeoutMs,
    stillPending: () => host.stillPending(),
  });
}

main().catch(exitOnStartupError);
