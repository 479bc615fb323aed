/**
 * `npm run signaling`: the signaling/rendezvous service alone, on its own host with `/health` and
 * `/metrics` (DESIGN.md, Operators). Options: `--help`, or docs/operations-signaling.md.
 */
import { ConfigError, describeOptions, int, readConfig, str } from "../host/config.ts";
import { closeOnSignals, createHost, createRegistry } from "../host/host.ts";
import { createLogger } from "../host/log.ts";
import { checkSignalingConfig, signalingOptions } from "./config.ts";
import { createSignalingService } from "./service.ts";

const options = {
  port: { flag: "port", env: "PORT", default: 8081, parse: int(0, 65535), help: "TCP port to listen on" },
  host: { flag: "host", env: "HOST", default: "0.0.0.0", parse: str, help: "address to bind" },
  ...signalingOptions,
};

async function main() {
  if (process.argv.includes("--help")) {
    console.log(`loft signaling — rendezvous + WebRTC signaling at /signal\n\n${describeOptions(options)}`);
    return;
  }
  const { port, host: bind, ...config } = readConfig(options);
  checkSignalingConfig(config);
  const log = createLogger("loft-signaling");
  const registry = createRegistry();
  const host = createHost({ port, host: bind, staticDir: undefined, registry, log });
  host.mount(createSignalingService(config, { registry, log }));
  const listening = await host.listen();
  log.info({ port: listening, path: "/signal" }, "signaling listening");
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
