/**
 * The Loft device emulator (docs/device.md §9): a device that speaks exactly the documented
 * protocol over a serial port (a real one or a pty) or TCP, keeps its identity in a file, and
 * streams fake telemetry. What the tests and a technician without hardware pair with.
 *
 *   npm run device:emulator -- --serial /dev/pts/7 [--baud 115200] [--state FILE] [--json]
 *   npm run device:emulator -- --tcp 7070 [--host 127.0.0.1] ...   (one connection at a time)
 *
 * Options: --state FILE (default ./loft-device.json), --name TEXT (HELLO name), --username TEXT,
 * --no-pq (announce no ML-KEM: plain XX), --telemetry-ms N, --factory-reset (wipe the state
 * before starting), --no-relay (no Wi-Fi: reach the relay only through an attached browser),
 * --json (one JSON object per line on stdout, for tests and tools).
 */
import { createServer, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { SerialPort } from "serialport";
import { DeviceEndpoint } from "../core/device/endpoint.ts";
import { CAP_XXHFS } from "../core/device/hello.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { DEFAULT_DEVICE_CAPS, DeviceAgent } from "./agent.ts";
import { fileStore } from "./file-store.ts";
import { nodeStreamPort } from "./node-port.ts";
import { RelayUplink } from "./relay-uplink.ts";
import { fakeTelemetry } from "./telemetry.ts";

const { values } = parseArgs({
  options: {
    serial: { type: "string" },
    baud: { type: "string", default: "115200" },
    tcp: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    state: { type: "string", default: "loft-device.json" },
    name: { type: "string", default: "loft-emulator 0.1" },
    username: { type: "string", default: "Loft device emulator" },
    "no-pq": { type: "boolean", default: false },
    "telemetry-ms": { type: "string", default: "1000" },
    "factory-reset": { type: "boolean", default: false },
    "no-relay": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});

function say(event: string, fields: Record<string, unknown>, human: string): void {
  if (values.json) process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
  else process.stdout.write(`${human}\n`);
}

async function main(): Promise<void> {
  if ((values.serial === undefined) === (values.tcp === undefined)) {
    process.stderr.write("usage: device:emulator -- --serial PATH | --tcp PORT [options]\n");
    process.exit(2);
  }
  const caps = values["no-pq"] ? DEFAULT_DEVICE_CAPS & ~CAP_XXHFS : DEFAULT_DEVICE_CAPS;
  const store = fileStore(values.state);
  const crypto = await createNodeCryptoProvider();
  let uplink: RelayUplink | undefined;
  // The device's own relay connection (Wi-Fi), with the settings of the last `link`.
  const connectRelay = () => {
    uplink?.stop();
    uplink = undefined;
    agent.useUplink(undefined);
    const relay = agent.relay;
    if (!relay || values["no-relay"]) return;
    uplink = new RelayUplink({
      queue: relay.queue,
      mbox: relay.mbox,
      crypto,
      receive: (m) => agent.fromOwner(m, "uplink"),
      log: (line) => say("relay", { state: line }, line),
    });
    agent.useUplink(uplink);
    uplink.start();
  };
  const agent: DeviceAgent = await DeviceAgent.start({
    store,
    caps,
    crypto,
    username: values.username,
    telemetry: fakeTelemetry(),
    telemetryMs: Number(values["telemetry-ms"]),
    events: {
      code: (code, protocol) =>
        say(
          "code",
          { code, protocol },
          `PAIRING CODE  ${code.slice(0, 3)} ${code.slice(3)}   (${protocol === "XXhfs" ? "post-quantum hybrid" : "classical X25519 only"})`,
        ),
      paired: (owner) => say("paired", { owner }, `paired with ${owner}`),
      reset: () => {
        connectRelay();
        say("reset", {}, "factory reset: owner and credentials forgotten, new identity");
      },
      linked: (url) => {
        say("linked", { relay: url }, `linked to the owner through ${url}`);
        connectRelay();
      },
      fromOwner: (t, via) => say("from-owner", { t, via }, `from the owner (${via}): ${t}`),
      toOwner: (t, via) => {
        if (values.json || t !== "dev.telemetry") say("to-owner", { t, via }, `to the owner (${via}): ${t}`);
      },
      ended: (reason) => say("ended", { reason }, `connection ended: ${reason}`),
    },
  });
  if (values["factory-reset"]) await agent.factoryReset();
  connectRelay();
  agent.startDetachedTelemetry();
  const serveOn = (port: ReturnType<typeof nodeStreamPort>) => {
    const endpoint = new DeviceEndpoint(
      port,
      { caps, name: values.name, state: () => agent.helloState, window: 4 },
      (c) => {
        void agent.serve(c);
      },
    );
    port.attach(endpoint);
    endpoint.boot();
    return endpoint;
  };
  const key = agent.identity.identity.verified.identity_key;
  const keyHex = Buffer.from(key).toString("hex");
  if (values.serial !== undefined) {
    const serial = new SerialPort({ path: values.serial, baudRate: Number(values.baud), autoOpen: false });
    await new Promise<void>((resolve, reject) => serial.open((e) => (e ? reject(e) : resolve())));
    const port = nodeStreamPort(serial);
    serveOn(port);
    say(
      "listening",
      { serial: values.serial, identity: keyHex, paired: agent.paired },
      `listening on ${values.serial} at ${values.baud} baud`,
    );
    await port.closed;
    say("port-closed", {}, "serial port closed");
    process.exit(0);
  }
  // One cable at a time: a new TCP connection unplugs the previous one, as a new HELLO would.
  let current: Socket | undefined;
  const server = createServer((socket) => {
    current?.destroy();
    current = socket;
    socket.setNoDelay(true);
    serveOn(nodeStreamPort(socket));
  });
  server.listen(Number(values.tcp), values.host, () => {
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : Number(values.tcp);
    say(
      "listening",
      { tcp: port, identity: keyHex, paired: agent.paired },
      `listening on tcp ${values.host}:${port}`,
    );
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`device emulator: ${(e as Error).message}\n`);
  process.exit(1);
});
