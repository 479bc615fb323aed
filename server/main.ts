/**
 * `npm start`: one Node process on one port serving the built PWA, `/health`, `/metrics`, and the
 * signaling (`/signal`) and relay (`/relay`) WebSocket services with the embedded store.
 */
import { fileURLToPath } from "node:url";
import { type RelayConfig, relayOptions } from "../relay-ws/config.ts";
import { createRelayService } from "../relay-ws/service.ts";
import { signalingConfigFrom, signalingOptions } from "../signaling/config.ts";
import { createSignalingService } from "../signaling/service.ts";
import { bool, ConfigError, describeOptions, int, prefixed, readConfig, str, unprefixed } from "./config.ts";
import { closeOnSignals, createHost, createRegistry } from "./host.ts";
import { createLogger } from "./log.ts";

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
  ...signalingOptions,
  // Relay option keys overlap signaling's (maxFrameBytes, maxConnections); their flags don't
  // (--relay-* vs --signal-*), so they are read under a prefix and unwrapped below.
  ...prefixed("relay.", relayOptions),
};

async function main() {
  if (process.argv.includes("--help")) {
    console.log(`loft — PWA + signaling + relay on one port\n\n${describeOptions(options)}`);
    return;
  }
  const config = readConfig(options);
  const signaling = signalingConfigFrom(config);
  const relay = unprefixed("relay.", config) as RelayConfig;
  const log = createLogger("loft");
  const registry = createRegistry();
  const host = createHost({
    port: config.port,
    host: config.host,
    staticDir: config.serveStatic ? config.staticDir : undefined,
    registry,
    log,
  });
  host.mount(createSignalingService(signaling, { registry, log }));
  host.mount(createRelayService(relay, { registry, log }));
  const port = await host.listen();
  log.info({ port }, "loft listening");
  closeOnSignals(() => host.close(), log);
}

main().catch((e) => {
  if (e instanceof ConfigError) {
    console.error(`configuration error: ${e.message}`);
    process.exit(2);
  }
  console.error(e);
  process.exit(1);
});
