/**
 * `npm run relay`: the relay alone — WebSocket mailbox at `/relay`, `/health`, `/metrics` —
 * configured by flags and environment variables (relay-ws/config.ts; flags win).
 * Logs "relay listening" with the bound port once ready; SIGTERM/SIGINT close every WebSocket
 * with 1001, wait for pending writes and close the store.
 */
import { ConfigError, describeOptions, int, readConfig, str } from "../host/config.ts";
import { closeOnSignals, createHost, createRegistry } from "../host/host.ts";
import { createLogger } from "../host/log.ts";
import { relayOptions } from "./config.ts";
import { createRelayService } from "./service.ts";

const options = {
  port: { flag: "port", env: "PORT", default: 8081, parse: int(0, 65535), help: "TCP port to listen on" },
  host: { flag: "host", env: "HOST", default: "0.0.0.0", parse: str, help: "address to bind" },
  ...relayOptions,
};

async function main() {
  if (process.argv.includes("--help")) {
    console.log(`loft relay — WebSocket mailbox relay\n\n${describeOptions(options)}`);
    return;
  }
  const { port, host, ...relayConfig } = readConfig(options);
  const log = createLogger("relay");
  const registry = createRegistry();
  const hostServer = createHost({ port, host, staticDir: undefined, registry, log });
  const relay = createRelayService(relayConfig, { registry, log });
  hostServer.mount(relay);
  const bound = await hostServer.listen();
  log.info({ port: bound }, "relay listening");
  closeOnSignals(() => hostServer.close(), log);
}

main().catch((e) => {
  if (e instanceof ConfigError) {
    console.error(`configuration error: ${e.message}`);
    process.exit(2);
  }
  console.error(e);
  process.exit(1);
});
