/**
 * A relay host with the SMP bridge mounted (what `npm start` runs at `/smp-bridge`), in process on
 * a loopback port, and a Node WebSocket factory for core/smp/bridge-link.ts that records every
 * frame the bridge sends to the "browser" (the no-plaintext checks read them).
 */
import { Registry } from "prom-client";
import WebSocket from "ws";
import type { WebSocketLike } from "../../core/relay/ws-link.ts";
import { NO_TRUSTED_PROXIES } from "../../host/client-source.ts";
import { createHost } from "../../host/host.ts";
import { createLogger } from "../../host/log.ts";
import type { WsImpl } from "../../host/websocket-server.ts";
import type { SmpBridgeConfig } from "../../smp/bridge/config.ts";
import type { Resolver } from "../../smp/bridge/policy.ts";
import { createSmpBridgeService, SMP_BRIDGE_PATH, type SmpBridgeService } from "../../smp/bridge/service.ts";

export interface TestBridge {
  url: string;
  service: SmpBridgeService;
  registry: Registry;
  close(): Promise<void>;
}

/**
 * Loopback destinations are allowed unless a test says otherwise (every test server is on 127.0.0.1).
 * `wsImpl`: the WebSocket server layer (`--ws-impl`), lean as in production unless given.
 */
export async function startTestBridge(
  overrides: Partial<SmpBridgeConfig> = {},
  deps: {
    resolve?: Resolver;
    timeoutMs?: number;
    heartbeatMs?: number;
    allowedOrigins?: string[];
    wsImpl?: WsImpl;
  } = {},
): Promise<TestBridge> {
  const registry = new Registry();
  const log = createLogger("smp-bridge-test", process.env.LOG_LEVEL ?? "warn");
  const host = createHost({
    port: 0,
    host: "127.0.0.1",
    staticDir: undefined,
    registry,
    log,
    metrics: "public",
  });
  const service = createSmpBridgeService(
    {
      smpBridge: true,
      smpBridgeAllow: [],
      smpBridgeDeny: [],
      smpBridgePrivate: true,
      smpBridgeMaxPerSource: 8,
      smpBridgeMaxConnections: 100,
      ...overrides,
    },
    {
      registry,
      log,
      trusted: NO_TRUSTED_PROXIES,
      allowedOrigins: deps.allowedOrigins ?? [],
      ...(deps.resolve ? { resolve: deps.resolve } : {}),
      ...(deps.timeoutMs ? { timeoutMs: deps.timeoutMs } : {}),
      ...(deps.heartbeatMs ? { heartbeatMs: deps.heartbeatMs } : {}),
      ...(deps.wsImpl ? { wsImpl: deps.wsImpl } : {}),
    },
  );
  host.mount(service);
  const port = await host.listen();
  return { url: `ws://127.0.0.1:${port}${SMP_BRIDGE_PATH}`, service, registry, close: () => host.close() };
}

/** A `webSocket` option for connectSmpBridge that keeps what the bridge sent and what was sent to it. */
export function recordingWebSocket(): {
  factory: (url: string) => WebSocketLike;
  received: Uint8Array[];
  sent: Uint8Array[];
} {
  const received: Uint8Array[] = [];
  const sent: Uint8Array[] = [];
  const factory = (url: string): WebSocketLike => {
    const ws = new WebSocket(url);
    ws.on("message", (data: Buffer) => received.push(new Uint8Array(data)));
    const send = ws.send.bind(ws);
    (ws as unknown as { send: (d: Uint8Array) => void }).send = (d: Uint8Array) => {
      sent.push(d.slice());
      send(d);
    };
    return ws as unknown as WebSocketLike;
  };
  return { factory, received, sent };
}

/** True when `needle` occurs anywhere in `hay`. */
export function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).indexOf(Buffer.from(needle)) >= 0;
}
