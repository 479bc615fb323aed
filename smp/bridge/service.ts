/**
 * The SMP bridge as a HostedService (host/host.ts) at `/smp-bridge` (docs/protocol/smp.md, "The
 * bridge"; docs/operations.md, "SMP bridge"): browsers reach SMP servers — another Loft
 * instance's listener, a SimpleX server, a GoRelay box — through their relay. Admission: this
 * origin's pages and `--allowed-origins` (a page elsewhere must not spend its visitors' budget
 * here), `--smp-bridge-max-per-source` connections per client address (the relay has no accounts:
 * a user is an address, as in every other budget) and `--smp-bridge-max-connections` in all,
 * then the destination policy (policy.ts) for each OPEN. Nothing about a destination or a client
 * address is logged; /health and /metrics count connections by outcome. WebSockets are answered
 * by the process's `--ws-impl` layer (host/websocket-server.ts), as the relay's are.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { Counter, Gauge, type Registry } from "prom-client";
import { encodeBridgeFrame } from "../../core/smp/bridge-frames.ts";
import { sourceOf, type TrustedProxies } from "../../host/client-source.ts";
import type { HostedService } from "../../host/host.ts";
import type { Logger } from "../../host/log.ts";
import { originAllowed } from "../../host/origin.ts";
import { createUpgrader, type WsImpl } from "../../host/websocket-server.ts";
import type { SmpBridgeConfig } from "./config.ts";
import { DestinationPolicy, type Resolver } from "./policy.ts";
import { BridgeTunnel, type TunnelResult } from "./tunnel.ts";

export const SMP_BRIDGE_PATH = "/smp-bridge";
/** OPEN frame, then the server's address, then the TLS handshake: each must come this soon. */
const DEFAULT_TIMEOUT_MS = 10_000;
/** How often every tunnel's browser is pinged; one that did not answer the previous ping is cut. */
const DEFAULT_HEARTBEAT_MS = 30_000;
/** A browser sends blocks (16 385-byte frames) and one OPEN: nothing bigger. */
const MAX_FRAME = 16_385;

export interface SmpBridgeDeps {
  registry: Registry;
  log: Logger;
  trusted: TrustedProxies;
  allowedOrigins: readonly string[];
  /** DNS, injectable for the policy tests. */
  resolve?: Resolver;
  timeoutMs?: number;
  /** Heartbeat period (ms): 30 s, as the relay's; tests lengthen it and run `heartbeat` themselves. */
  heartbeatMs?: number;
  /** The WebSocket server layer (host/websocket-server.ts, `--ws-impl`); lean by default. */
  wsImpl?: WsImpl;
}

export interface SmpBridgeService extends HostedService {
  readonly connectionCount: number;
  /** One heartbeat round now (tunnel.ts `heartbeat`), what the timer runs every `heartbeatMs`. */
  heartbeat(): void;
}

export function createSmpBridgeService(config: SmpBridgeConfig, deps: SmpBridgeDeps): SmpBridgeService {
  const log = deps.log.child({ service: "smp-bridge" });
  const policy = new DestinationPolicy(config, deps.resolve);
  const perSource = new Map<string, number>();
  const tunnels = new Set<BridgeTunnel>();
  const outcomes = new Map<string, number>();
  let closing = false;
  const results = new Counter({
    name: "loft_smp_bridge_connections_total",
    help: "Bridged SMP connections by outcome (ok: the server closed or the browser left after the handshake; otherwise the bridge error)",
    labelNames: ["result"],
    registers: [deps.registry],
  });
  new Gauge({
    name: "loft_smp_bridge_open",
    help: "Bridged SMP connections open now",
    registers: [deps.registry],
    collect() {
      this.set(tunnels.size);
    },
  });
  // The same layer as the relay and signaling in this process (docs/operations.md, "Idle
  // connections"): a frame over MAX_FRAME closes the connection with 1009 in either.
  const wss = createUpgrader(deps.wsImpl ?? "lean", { maxPayload: MAX_FRAME });
  // One timer for every tunnel (tunnel.ts `heartbeat`): a browser gone without closing does not
  // hold its tunnel and the TLS connection behind it for ever.
  const heartbeat = () => {
    for (const t of tunnels) t.heartbeat();
  };
  const heartbeatTimer = setInterval(heartbeat, deps.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
  heartbeatTimer.unref();

  const count = (result: string) => {
    results.inc({ result });
    outcomes.set(result, (outcomes.get(result) ?? 0) + 1);
  };

  return {
    name: "smp-bridge",
    path: SMP_BRIDGE_PATH,
    get connectionCount() {
      return tunnels.size;
    },
    heartbeat,
    handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
      if (closing || !originAllowed(req, deps.allowedOrigins)) {
        count(closing ? "closing" : "origin");
        socket.end(
          `HTTP/1.1 ${closing ? "503 Service Unavailable" : "403 Forbidden"}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
        );
        return;
      }
      const source = sourceOf(req, deps.trusted);
      wss.handleUpgrade(req, socket, head, (ws) => {
        // Over a limit, the browser gets a reason (a refused upgrade tells a page nothing).
        const held = perSource.get(source) ?? 0;
        if (held >= config.smpBridgeMaxPerSource || tunnels.size >= config.smpBridgeMaxConnections) {
          count("LIMIT");
          ws.send(
            encodeBridgeFrame({
              kind: "ERROR",
              error: "LIMIT",
              detail:
                held >= config.smpBridgeMaxPerSource
                  ? `at most ${config.smpBridgeMaxPerSource} per user`
                  : "the bridge is full",
            }),
          );
          ws.close(1008, "LIMIT");
          return;
        }
        perSource.set(source, held + 1);
        const started = performance.now();
        const tunnel = new BridgeTunnel({
          ws,
          policy,
          timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          onEnd: (result: TunnelResult, opened: boolean) => {
            tunnels.delete(tunnel);
            const left = (perSource.get(source) ?? 1) - 1;
            if (left > 0) perSource.set(source, left);
            else perSource.delete(source);
            const r = opened && (result === "CLOSED" || result === "client_closed") ? "ok" : result;
            count(r);
            log.debug(
              { result: r, seconds: Math.round((performance.now() - started) / 1000) },
              "smp bridge connection ended",
            );
          },
        });
        tunnels.add(tunnel);
      });
    },
    health() {
      let heldBytes = 0;
      let paused = 0;
      for (const t of tunnels) {
        const h = t.held;
        heldBytes += h.bytes;
        if (h.paused) paused++;
      }
      // heldBytes: what the bridge holds for slow browsers (at most WS_HIGH_WATER and one TLS
      // read per connection); paused: connections whose server is not read until the browser catches up.
      return { connections: tunnels.size, heldBytes, paused, outcomes: Object.fromEntries(outcomes) };
    },
    async close() {
      closing = true;
      clearInterval(heartbeatTimer);
      for (const t of [...tunnels]) t.goAway();
      wss.close();
    },
  };
}
