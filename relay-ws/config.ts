/**
 * Relay options: flags and environment variables through host/config.ts (flags win).
 * Every limit is configurable; defaults follow docs/design.md, "Relay mailbox", and
 * docs/operations-relay.md, "Options" (48 h TTL, 7 days maximum, 5 failed deliveries, GC every
 * 5 minutes).
 */

import { availableParallelism } from "node:os";
import { DEFAULT_FRAME_LIMIT, MAX_WINDOW, MIN_FRAME_LIMIT } from "../core/relay/protocol.ts";
import { trustProxyOption } from "../host/client-source.ts";
import { bool, ConfigError, int, type OptionSpec, str } from "../host/config.ts";
import { allowedOriginsOption, crossOriginPagesOption } from "../host/origin.ts";

export const MAX_TTL_SECONDS = 7 * 24 * 3600;

/**
 * Signature checks on worker threads (relay-ws/verify-pool.ts): one per core beyond the one the
 * event loop runs on, at most 4 (two verifications per message; beyond 4 the event loop's own work
 * per message is the bound, bench/README-relay.md).
 */
export const DEFAULT_VERIFY_THREADS = Math.min(4, Math.max(0, availableParallelism() - 1));

/**
 * At-rest sealing on a worker thread (relay-ws/store/seal-pool.ts) wherever a second core exists:
 * it takes 9–19 % off the event loop's CPU per message (the loop bounds the relay's rate) at no
 * measurable cost in all, most with protocol 1.3 batches (bench/README-relay.md, "Seal threads:
 * the default"; docs/decisions.md (Relay), "Sealing at rest on a worker thread"). On one core
 * the worker would only compete with the loop.
 */
export const DEFAULT_SEAL_THREADS = availableParallelism() >= 2 ? 1 : 0;

/** A byte count: an integer, or with a binary suffix K, M, G, T ("4G" = 4 GiB). */
export function byteSize(raw: string): number {
  const m = /^\s*(\d+)\s*([KMGT]?)i?B?\s*$/i.exec(raw);
  if (!m) throw new ConfigError(`expected a byte count like 4096, 512M or 4G, got "${raw}"`);
  const n = Number(m[1]) * 1024 ** " KMGT".indexOf((m[2] || " ").toUpperCase());
  if (!Number.isSafeInteger(n)) throw new ConfigError(`byte count too large: "${raw}"`);
  return n;
}

const redisPrefix = (raw: string): string => {
  if (!/^[A-Za-z0-9:_.-]{1,32}$/.test(raw))
    throw new ConfigError(`expected 1–32 characters of A–Z a–z 0–9 : _ . -, got "${raw}"`);
  return raw;
};

const engine = (raw: string): "lmdb" => {
  if (raw !== "lmdb") throw new ConfigError(`unknown store engine "${raw}" (available: lmdb)`);
  return raw;
};

export const relayOptions = {
  dataDir: {
    flag: "relay-data-dir",
    env: "LOFT_RELAY_DATA_DIR",
    default: ".data/relay",
    parse: str,
    help: "folder of the relay store",
  },
  store: {
    flag: "relay-store",
    env: "LOFT_RELAY_STORE",
    default: "lmdb" as "lmdb",
    parse: engine,
    help: "store engine",
  },
  sync: {
    flag: "relay-sync",
    env: "LOFT_RELAY_SYNC",
    default: true,
    parse: bool,
    help: "fsync every commit (false: faster, but acknowledged messages can be lost in a power cut)",
  },
  // --- store: keys at rest, disk budget, idle expiry (docs/operations-relay.md §Keys, §Disk) ---
  masterKeyFile: {
    flag: "relay-master-key-file",
    env: "LOFT_RELAY_MASTER_KEY_FILE",
    default: "",
    parse: str,
    help: "file with the 32-byte master key sealing the at-rest keys (hex/base64/raw; keep it off the data disk). Or set LOFT_RELAY_MASTER_KEY. None: one is generated in the data dir",
  },
  previousMasterKeyFile: {
    flag: "relay-previous-master-key-file",
    env: "LOFT_RELAY_PREVIOUS_MASTER_KEY_FILE",
    default: "",
    parse: str,
    help: "the master key being rotated out: the keyring is re-sealed under the new key at start",
  },
  keyEpochSeconds: {
    flag: "relay-key-epoch",
    env: "LOFT_RELAY_KEY_EPOCH_S",
    default: 3600,
    parse: int(60, 7 * 24 * 3600),
    help: "seconds per at-rest key epoch; a deleted message stays decryptable from stale disk pages at most about 2 epochs + one GC interval",
  },
  storeQuotaBytes: {
    flag: "relay-store-quota",
    env: "LOFT_RELAY_STORE_QUOTA",
    default: 4 * 1024 ** 3,
    parse: byteSize,
    help: "bytes all queues together may store (suffix K, M, G, T; 0: no quota); beyond it SEND and PKSET get FULL",
  },
  minFreeDiskBytes: {
    flag: "relay-min-free-disk",
    env: "LOFT_RELAY_MIN_FREE_DISK",
    default: 256 * 1024 ** 2,
    parse: byteSize,
    help: "refuse new messages (FULL) while the data dir's filesystem has less free space (0: never)",
  },
  hotBlockBytes: {
    flag: "relay-hot-blocks",
    env: "LOFT_RELAY_HOT_BLOCKS",
    default: 16 * 1024 ** 2,
    parse: byteSize,
    help: "memory for messages kept from SEND until their first delivery, so a pushed message is not read back from disk and decrypted (suffix K, M, G; 0: none)",
  },
  queueIdleDays: {
    flag: "relay-queue-idle-days",
    env: "LOFT_RELAY_QUEUE_IDLE_DAYS",
    default: 90,
    parse: int(0, 36_500),
    help: "days without SEND, SUB/GET, PKSET or ACK after which a queue is deleted (0: never)",
  },
  // --- Redis engine (--redis URL; docs/operations.md, "Scale-out on Redis") ---
  redisWait: {
    flag: "relay-redis-wait",
    env: "LOFT_RELAY_REDIS_WAIT",
    default: 0,
    parse: int(0, 16),
    help: "with --redis: replicas that must acknowledge each write (Redis WAIT) before the relay answers OK (0: the primary's AOF alone)",
  },
  redisWaitTimeoutMs: {
    flag: "relay-redis-wait-timeout",
    env: "LOFT_RELAY_REDIS_WAIT_TIMEOUT_MS",
    default: 1_000,
    parse: int(1, 60_000),
    help: "with --relay-redis-wait: milliseconds to wait for the replicas; fewer in time: the write is answered UNAVAILABLE (the client retries)",
  },
  redisPrefix: {
    flag: "relay-redis-prefix",
    env: "LOFT_RELAY_REDIS_PREFIX",
    default: "loft:r:",
    parse: redisPrefix,
    help: "with --redis: prefix of the relay's keys (several deployments can share one Redis)",
  },
  // --- end of store options ---
  ttlSeconds: {
    flag: "relay-ttl",
    env: "LOFT_RELAY_TTL_S",
    default: 48 * 3600,
    parse: int(1, MAX_TTL_SECONDS),
    help: "seconds a message is kept (at most 7 days)",
  },
  gcIntervalSeconds: {
    flag: "relay-gc-interval",
    env: "LOFT_RELAY_GC_INTERVAL_S",
    default: 300,
    parse: int(1, 86_400),
    help: "seconds between garbage collections",
  },
  maxDeliveries: {
    flag: "relay-max-deliveries",
    env: "LOFT_RELAY_MAX_DELIVERIES",
    default: 5,
    parse: int(1, 100),
    help: "unacknowledged deliveries after which a message is dropped",
  },
  queueQuota: {
    flag: "relay-queue-quota",
    env: "LOFT_RELAY_QUEUE_QUOTA",
    default: 128,
    parse: int(1, 100_000),
    help: "messages one queue may hold",
  },
  maxPrekeys: {
    flag: "relay-max-prekeys",
    env: "LOFT_RELAY_MAX_PREKEYS",
    default: 100,
    parse: int(0, 10_000),
    help: "one-time prekeys one queue may hold",
  },
  maxFrameBytes: {
    flag: "relay-max-frame",
    env: "LOFT_RELAY_MAX_FRAME",
    default: DEFAULT_FRAME_LIMIT,
    parse: int(MIN_FRAME_LIMIT, 1 << 20),
    help: "largest accepted WebSocket frame in bytes (larger: typed error; twice as large: connection closed)",
  },
  maxQueuesPerConnection: {
    flag: "relay-max-queues-per-conn",
    env: "LOFT_RELAY_MAX_QUEUES_PER_CONN",
    default: 512,
    parse: int(1, 1_000_000),
    help: "queues one connection may create or subscribe",
  },
  maxInFlight: {
    flag: "relay-max-inflight",
    env: "LOFT_RELAY_MAX_INFLIGHT",
    default: 128,
    parse: int(1, 100_000),
    help: "unacknowledged messages delivered to one connection",
  },
  maxWindow: {
    flag: "relay-max-window",
    env: "LOFT_RELAY_MAX_WINDOW",
    default: 32,
    parse: int(1, MAX_WINDOW),
    help: "largest SUB window granted",
  },
  rateBurst: {
    flag: "relay-rate-burst",
    env: "LOFT_RELAY_RATE_BURST",
    default: 400,
    parse: int(1, 10_000_000),
    help: "commands a connection may send in a burst",
  },
  ratePerSecond: {
    flag: "relay-rate",
    env: "LOFT_RELAY_RATE",
    default: 200,
    parse: int(0, 10_000_000),
    help: "commands per second per connection, sustained (0: unlimited)",
  },
  connectionsPerSecondPerSource: {
    flag: "relay-conn-rate",
    env: "LOFT_RELAY_CONN_RATE",
    default: 20,
    parse: int(0, 1_000_000),
    help: "new connections per second per source address, 3× as burst (0: unlimited; addresses kept in memory only)",
  },
  maxConnections: {
    flag: "relay-max-connections",
    env: "LOFT_RELAY_MAX_CONNECTIONS",
    default: 50_000,
    parse: int(1, 10_000_000),
    help: "open WebSockets",
  },
  sendBufferBytes: {
    flag: "relay-send-buffer",
    env: "LOFT_RELAY_SEND_BUFFER",
    default: 8 << 20,
    parse: int(1 << 16, 1 << 30),
    help: "bytes queued to a slow client before it is disconnected",
  },
  openingTimeoutSeconds: {
    flag: "relay-opening-timeout",
    env: "LOFT_RELAY_OPENING_TIMEOUT_S",
    default: 10,
    parse: int(1, 3600),
    help: "seconds a client has to send its version header",
  },
  // -------------------------------------------------------------------------------------------
  // Connection, source and output limits (relay-ws/source-limits.ts, docs/operations-relay.md
  // §Limits and abuse). A "source" is a client address behind `--trust-proxy` (IPv6 by /64).
  trustProxy: trustProxyOption,
  allowedOrigins: allowedOriginsOption,
  crossOriginPages: crossOriginPagesOption(
    "relay-cross-origin-pages",
    "LOFT_RELAY_CROSS_ORIGIN_PAGES",
    "federation: contacts' apps elsewhere deposit here",
  ),
  maxConnectionsPerSource: {
    flag: "relay-max-connections-per-source",
    env: "LOFT_RELAY_MAX_CONNECTIONS_PER_SOURCE",
    default: 64,
    parse: int(1, 10_000_000),
    help: "open WebSockets from one source address (HTTP 429 beyond)",
  },
  sourceCostRate: {
    flag: "relay-source-rate",
    env: "LOFT_RELAY_SOURCE_RATE",
    default: 2_000,
    parse: int(0, 100_000_000),
    help: "command cost units per second per source address, all its connections together (0: unlimited; a PING costs 1, a signature check 10, a NEW 30)",
  },
  sourceCostBurst: {
    flag: "relay-source-burst",
    env: "LOFT_RELAY_SOURCE_BURST",
    default: 5_000,
    parse: int(200, 1_000_000_000),
    help: "command cost units one source address may spend in a burst",
  },
  sourceStoreRate: {
    flag: "relay-source-store-rate",
    env: "LOFT_RELAY_SOURCE_STORE_RATE",
    default: 128 << 10,
    parse: int(0, 1 << 30),
    help: "bytes per second one source address may add to the store, sustained (0: unlimited)",
  },
  sourceStoreBurst: {
    flag: "relay-source-store-burst",
    env: "LOFT_RELAY_SOURCE_STORE_BURST",
    default: 32 << 20,
    parse: int(64 << 10, 2 ** 40),
    help: "bytes one source address may add to the store in a burst",
  },
  prekeyQueuePerHour: {
    flag: "relay-prekey-queue-rate",
    env: "LOFT_RELAY_PREKEY_QUEUE_RATE",
    default: 360,
    parse: int(0, 1_000_000),
    help: "one-time prekeys handed out per queue per hour, sustained (beyond: the bundle alone; 0: unlimited)",
  },
  prekeyQueueBurst: {
    flag: "relay-prekey-queue-burst",
    env: "LOFT_RELAY_PREKEY_QUEUE_BURST",
    default: 20,
    parse: int(1, 1_000_000),
    help: "one-time prekeys handed out per queue in a burst",
  },
  prekeySourcePerHour: {
    flag: "relay-prekey-source-rate",
    env: "LOFT_RELAY_PREKEY_SOURCE_RATE",
    default: 120,
    parse: int(0, 1_000_000),
    help: "one-time prekeys handed to one source address per hour, sustained (beyond: the bundle alone; 0: unlimited)",
  },
  prekeySourceBurst: {
    flag: "relay-prekey-source-burst",
    env: "LOFT_RELAY_PREKEY_SOURCE_BURST",
    default: 10,
    parse: int(1, 1_000_000),
    help: "one-time prekeys handed to one source address in a burst",
  },
  sendBufferTotal: {
    flag: "relay-send-buffer-total",
    env: "LOFT_RELAY_SEND_BUFFER_TOTAL",
    default: 256 << 20,
    parse: int(1 << 16, 2 ** 40),
    help: "unread output bytes across all connections; beyond it, connections holding more than 64 KiB unread are cut",
  },
  bucketed: {
    flag: "relay-bucketed",
    env: "LOFT_RELAY_BUCKETED",
    default: true,
    parse: bool,
    help: "serve protocol 1.2 (deliveries padded to the body's size bucket); false: refuse its header with ERR VERSION, as a relay from before 1.2 does, so clients fall back to 1.1",
  },
  batched: {
    flag: "relay-batched",
    env: "LOFT_RELAY_BATCHED",
    default: true,
    parse: bool,
    help: "serve protocol 1.3 (several messages per SENDS, ACKS and MSGS frame); false: refuse its header with ERR VERSION, as a relay from before 1.3 does, so clients fall back to 1.2",
  },
  verifyThreads: {
    flag: "relay-verify-threads",
    env: "LOFT_RELAY_VERIFY_THREADS",
    default: DEFAULT_VERIFY_THREADS,
    parse: int(0, 64),
    help: "worker threads verifying command signatures (0: on the event loop); default one per CPU beyond the first, at most 4",
  },
  sealThreads: {
    flag: "relay-seal-threads",
    env: "LOFT_RELAY_SEAL_THREADS",
    default: DEFAULT_SEAL_THREADS,
    parse: int(0, 1),
    help: "1: seal stored messages at rest (AES-GCM) on a worker thread, so a second core takes that work; 0: on the event loop; default 1 where the machine has two or more CPUs",
  },
  keyCacheBytes: {
    flag: "relay-key-cache-bytes",
    env: "LOFT_RELAY_KEY_CACHE_BYTES",
    default: 64 << 20,
    parse: int(0, 2 ** 40),
    help: "memory for parsed Ed25519 keys that verified a signature (least recently used evicted first)",
  },
} satisfies Record<string, OptionSpec<unknown>>;

export type RelayConfig = { [K in keyof typeof relayOptions]: (typeof relayOptions)[K]["default"] };

export const defaultRelayConfig = (overrides: Partial<RelayConfig> = {}): RelayConfig => ({
  ...(Object.fromEntries(Object.entries(relayOptions).map(([k, s]) => [k, s.default])) as RelayConfig),
  ...overrides,
});
