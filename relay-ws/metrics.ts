/**
 * Prometheus metrics of the relay (docs/operations-relay.md §Metrics). Labels carry command names,
 * results and error codes only — never queue ids, message ids or addresses.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { StoreStats } from "./store/types.ts";

export interface RelayMetrics {
  connectionsTotal: Counter<"result">;
  /** Openings by the version the client's header chose (1.1: authenticators, 1.0: signatures). */
  openings: Counter<"version">;
  commands: Counter<"command" | "result">;
  errors: Counter<"code">;
  deliveries: Counter<string>;
  gcRemoved: Counter<"reason">;
  sendCommitSeconds: Histogram<string>;
}

export function createRelayMetrics(
  registry: Registry,
  sources: {
    connections: () => number;
    subscriptions: () => number;
    store: () => StoreStats;
    outputQueued: () => number;
    keyCacheBytes: () => number;
    /** Signature verifications so far: on verify threads, on the event loop; thread failures. */
    verifications: () => {
      thread: number;
      eventLoop: number;
      threadFailures: number;
      threadRespawns?: number;
    };
    /** Protocol 1.1 key agreements and authenticator checks so far. */
    authenticators: () => { agreements: number; checks: number };
    /** Whether the store can serve now (false: Redis unreachable, with --redis). */
    storeAvailable?: () => boolean;
  },
): RelayMetrics {
  const registers = [registry];
  new Counter({
    name: "loft_relay_verifications_total",
    help: "Command signature verifications by where they ran (thread: a verify thread; event_loop: no thread configured, or every thread full)",
    labelNames: ["where"],
    registers,
    collect() {
      const v = sources.verifications();
      this.reset();
      this.inc({ where: "thread" }, v.thread);
      this.inc({ where: "event_loop" }, v.eventLoop);
    },
  });
  new Counter({
    name: "loft_relay_authenticator_checks_total",
    help: "Protocol 1.1 command authenticator checks (one HMAC each)",
    registers,
    collect() {
      this.reset();
      this.inc(sources.authenticators().checks);
    },
  });
  new Counter({
    name: "loft_relay_authenticator_agreements_total",
    help: "Protocol 1.1 key agreements (one X25519 per queue id named on a connection)",
    registers,
    collect() {
      this.reset();
      this.inc(sources.authenticators().agreements);
    },
  });
  new Counter({
    name: "loft_relay_verify_thread_failures_total",
    help: "Verify threads that died (replaced; their checks were done on the event loop)",
    registers,
    collect() {
      this.reset();
      this.inc(sources.verifications().threadFailures);
    },
  });
  new Counter({
    name: "loft_relay_seal_failovers_total",
    help: "Seal worker failovers (stuck past its batch timeout, crashed or exited): stored messages are sealed on the event loop from then on",
    registers,
    collect() {
      this.reset();
      this.inc(sources.store().sealFailovers ?? 0);
    },
  });
  new Counter({
    name: "loft_relay_worker_respawns_total",
    help: "Worker threads started in place of failed ones, by pool (seal, verify), after a back-off of 1 s doubling up to 1 min while they keep failing",
    labelNames: ["pool"],
    registers,
    collect() {
      this.reset();
      this.inc({ pool: "seal" }, sources.store().sealRespawns ?? 0);
      this.inc({ pool: "verify" }, sources.verifications().threadRespawns ?? 0);
    },
  });
  new Gauge({
    name: "loft_relay_store_up",
    help: "1 while the relay store can serve, 0 while it cannot (with --redis: Redis unreachable; alert on it)",
    registers,
    collect() {
      this.set(sources.storeAvailable?.() === false ? 0 : 1);
    },
  });
  new Gauge({
    name: "loft_relay_output_queued_bytes",
    help: "Output bytes not yet read by clients, all connections together",
    registers,
    collect() {
      this.set(sources.outputQueued());
    },
  });
  new Gauge({
    name: "loft_relay_key_cache_bytes",
    help: "Memory of the cache of parsed Ed25519 keys (estimated)",
    registers,
    collect() {
      this.set(sources.keyCacheBytes());
    },
  });
  new Gauge({
    name: "loft_relay_connections",
    help: "Open relay WebSockets",
    registers,
    collect() {
      this.set(sources.connections());
    },
  });
  new Gauge({
    name: "loft_relay_subscriptions",
    help: "Queues subscribed for push delivery",
    registers,
    collect() {
      this.set(sources.subscriptions());
    },
  });
  new Gauge({
    name: "loft_relay_stored_messages",
    help: "Messages held in the store",
    registers,
    collect() {
      this.set(sources.store().messages);
    },
  });
  new Gauge({
    name: "loft_relay_stored_bytes",
    help: "Bytes the stored messages occupy (padded and sealed)",
    registers,
    collect() {
      this.set(sources.store().bytes);
    },
  });
  new Gauge({
    name: "loft_relay_store_used_bytes",
    help: "Bytes counted against the storage quota (blobs and key records of every queue)",
    registers,
    collect() {
      this.set(sources.store().storedBytes);
    },
  });
  new Gauge({
    name: "loft_relay_store_quota_bytes",
    help: "The storage quota in bytes (0: none)",
    registers,
    collect() {
      this.set(sources.store().quotaBytes);
    },
  });
  new Gauge({
    name: "loft_relay_key_epochs",
    help: "At-rest epoch keys alive (normally 1 to 3)",
    registers,
    collect() {
      this.set(sources.store().keyEpochs);
    },
  });
  new Gauge({
    name: "loft_relay_queues",
    help: "Queues in the store",
    registers,
    collect() {
      this.set(sources.store().queues);
    },
  });
  return {
    openings: new Counter({
      name: "loft_relay_openings_total",
      help: "Relay openings by protocol version the client chose (1.3: 1.2 and batches, 1.2: authenticators and bucketed deliveries, 1.1: authenticators, 1.0: signatures)",
      labelNames: ["version"],
      registers,
    }),
    connectionsTotal: new Counter({
      name: "loft_relay_connections_total",
      help: "WebSocket upgrades by result (accepted, rate_limited, source_full, origin, full, closing)",
      labelNames: ["result"],
      registers,
    }),
    commands: new Counter({
      name: "loft_relay_commands_total",
      help: "Commands by type and result (ok or the wire error code)",
      labelNames: ["command", "result"],
      registers,
    }),
    errors: new Counter({
      name: "loft_relay_errors_total",
      help: "Errors sent or connections closed, by code",
      labelNames: ["code"],
      registers,
    }),
    deliveries: new Counter({
      name: "loft_relay_deliveries_total",
      help: "Messages handed to recipients (pushed or GET)",
      registers,
    }),
    gcRemoved: new Counter({
      name: "loft_relay_gc_removed_total",
      help: "Entries removed without an ACK, by reason (expired, delivery_failures, send_ids)",
      labelNames: ["reason"],
      registers,
    }),
    sendCommitSeconds: new Histogram({
      name: "loft_relay_send_commit_seconds",
      help: "Time from a SEND's arrival to its durable commit",
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers,
    }),
  };
}
