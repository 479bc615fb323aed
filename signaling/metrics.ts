/**
 * Prometheus metrics of the signaling service (docs/operations-signaling.md, Metrics). Labels are
 * bounded enums (message kinds, error codes, limit scopes); never identities, keys or addresses.
 */
import { Counter, Gauge, type Registry } from "prom-client";

export interface SignalingMetrics {
  connections: Gauge;
  registrations: Gauge;
  subscriptions: Gauge;
  connectionsTotal: Counter;
  registersTotal: Counter<"outcome">;
  envelopesForwarded: Counter<"kind">;
  errors: Counter<"code">;
  rateLimited: Counter<"scope">;
  upgradesRefused: Counter<"reason">;
  closes: Counter<"code">;
  expired: Counter;
  reaped: Counter;
  verifySeconds: Counter;
}

export function createSignalingMetrics(registry: Registry): SignalingMetrics {
  const registers = [registry];
  return {
    connections: new Gauge({
      name: "loft_signaling_connections",
      help: "Open signaling WebSocket connections",
      registers,
    }),
    registrations: new Gauge({
      name: "loft_signaling_registrations",
      help: "Identities currently registered (online)",
      registers,
    }),
    subscriptions: new Gauge({
      name: "loft_signaling_presence_subscriptions",
      help: "Presence subscriptions held, summed over connections",
      registers,
    }),
    connectionsTotal: new Counter({
      name: "loft_signaling_connections_total",
      help: "WebSocket connections accepted",
      registers,
    }),
    registersTotal: new Counter({
      name: "loft_signaling_register_requests_total",
      help: "REGISTER requests by outcome (new, renewed, replaced, refused)",
      labelNames: ["outcome"],
      registers,
    }),
    envelopesForwarded: new Counter({
      name: "loft_signaling_envelopes_forwarded_total",
      help: "Signed SIGNAL envelopes forwarded to their recipient, by kind",
      labelNames: ["kind"],
      registers,
    }),
    errors: new Counter({
      name: "loft_signaling_errors_total",
      help: "ERROR replies sent, by code",
      labelNames: ["code"],
      registers,
    }),
    rateLimited: new Counter({
      name: "loft_signaling_rate_limited_total",
      help: "Messages or upgrades refused by a rate limit, by scope (connection, source, upgrade, cpu, room)",
      labelNames: ["scope"],
      registers,
    }),
    upgradesRefused: new Counter({
      name: "loft_signaling_upgrades_refused_total",
      help: "WebSocket upgrades refused before the handshake, by reason",
      labelNames: ["reason"],
      registers,
    }),
    closes: new Counter({
      name: "loft_signaling_closes_total",
      help: "Connections closed, by WebSocket close code",
      labelNames: ["code"],
      registers,
    }),
    expired: new Counter({
      name: "loft_signaling_registrations_expired_total",
      help: "Registrations removed because their TTL ran out",
      registers,
    }),
    verifySeconds: new Counter({
      name: "loft_signaling_verify_seconds_total",
      help: "time spent verifying REGISTER and envelope signatures (per-source budgets are charged fixed costs per check, signaling/limits.ts)",
      registers,
    }),
    reaped: new Counter({
      name: "loft_signaling_heartbeat_reaped_total",
      help: "Sockets terminated for missing a heartbeat pong",
      registers,
    }),
  };
}

/** With --redis only (docs/operations-signaling.md, Metrics): Redis reachability and reaped instances. */
export function createSharedMetrics(registry: Registry, up: () => boolean): { instancesReaped: Counter } {
  const registers = [registry];
  new Gauge({
    name: "loft_signaling_redis_up",
    help: "1 while this instance reaches Redis (--redis), else 0",
    registers,
    collect() {
      this.set(up() ? 1 : 0);
    },
  });
  return {
    instancesReaped: new Counter({
      name: "loft_signaling_instances_reaped_total",
      help: "Silent signaling instances this one reaped (their registrations removed)",
      registers,
    }),
  };
}
