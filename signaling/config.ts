/**
 * Operator options of the signaling/rendezvous service (docs/operations-signaling.md). Declared
 * once as `OptionSpec`s so that `signaling/main.ts` (standalone) and `server/main.ts` (one
 * process) read the same flags and environment variables through `host/config.ts` (flags win).
 */
import * as v from "valibot";
import { MAX_URL_CHARS, serverUrlSchema } from "../core/codec/server-url.ts";
import { SIGNALING } from "../core/wire/signaling.ts";
import { MAX_SERVERS } from "../core/wire/sremp.ts";
import { trustProxyOption } from "../host/client-source.ts";
import {
  bool,
  ConfigError,
  int,
  keepSources,
  list,
  type OptionSpec,
  optionName,
  readConfig,
  str,
} from "../host/config.ts";
import { allowedOriginsOption, crossOriginPagesOption } from "../host/origin.ts";
import { redisOption } from "../host/redis.ts";
import { shutdownOptions } from "../host/standalone.ts";
import { isTurnUrl } from "./turn-credentials.ts";

const spec = <T>(s: OptionSpec<T>): OptionSpec<T> => s;

/** The smallest --signal-max-payload-bytes allowed. */
const MIN_PAYLOAD_BYTES = 256;

export const signalingOptions = {
  maxFrameBytes: spec({
    flag: "signal-max-frame-bytes",
    env: "LOFT_SIGNAL_MAX_FRAME_BYTES",
    default: 65_535,
    parse: int(1_024, 65_535),
    help: "largest WebSocket message accepted (ws maxPayload); larger closes with 1009",
  }),
  maxPayloadBytes: spec({
    flag: "signal-max-payload-bytes",
    env: "LOFT_SIGNAL_MAX_PAYLOAD_BYTES",
    default: 16_384,
    parse: int(MIN_PAYLOAD_BYTES, 60_000),
    help: "largest opaque SDP/ICE payload inside a SIGNAL envelope",
  }),
  ttlMinSeconds: spec({
    flag: "signal-ttl-min",
    env: "LOFT_SIGNAL_TTL_MIN",
    default: 30,
    parse: int(1, 86_400),
    help: "shortest registration TTL granted (seconds); shorter requests are raised to it",
  }),
  ttlMaxSeconds: spec({
    flag: "signal-ttl-max",
    env: "LOFT_SIGNAL_TTL_MAX",
    default: 300,
    parse: int(1, 86_400),
    help: "longest registration TTL granted (seconds); longer requests are lowered to it",
  }),
  clockSkewSeconds: spec({
    flag: "signal-clock-skew",
    env: "LOFT_SIGNAL_CLOCK_SKEW",
    default: 120,
    parse: int(5, 3_600),
    help: "accepted |server clock - signed timestamp| for REGISTER and SIGNAL (seconds)",
  }),
  maxConnections: spec({
    flag: "signal-max-connections",
    env: "LOFT_SIGNAL_MAX_CONNECTIONS",
    default: 50_000,
    parse: int(1, 10_000_000),
    help: "open WebSocket connections in total; further upgrades get HTTP 503",
  }),
  maxConnectionsPerSource: spec({
    flag: "signal-max-connections-per-source",
    env: "LOFT_SIGNAL_MAX_CONNECTIONS_PER_SOURCE",
    default: 64,
    parse: int(1, 1_000_000),
    help: "open connections from one source address; further upgrades get HTTP 429",
  }),
  maxRegistrations: spec({
    flag: "signal-max-registrations",
    env: "LOFT_SIGNAL_MAX_REGISTRATIONS",
    default: 50_000,
    parse: int(1, 10_000_000),
    help: "registered identities in total; further REGISTERs answer REGISTRY_FULL",
  }),
  maxRegistrationsPerSource: spec({
    flag: "signal-max-registrations-per-source",
    env: "LOFT_SIGNAL_MAX_REGISTRATIONS_PER_SOURCE",
    default: 32,
    parse: int(1, 1_000_000),
    help: "registered identities from one source address",
  }),
  maxSubscriptions: spec({
    flag: "signal-max-subscriptions",
    env: "LOFT_SIGNAL_MAX_SUBSCRIPTIONS",
    default: 512,
    parse: int(0, 1_024),
    help: "identity keys one connection may watch for presence",
  }),
  maxRoomMembers: spec({
    flag: "signal-max-room-members",
    env: "LOFT_SIGNAL_MAX_ROOM_MEMBERS",
    default: 64,
    parse: int(2, 255),
    help: "members present in one room rendezvous; a ROOM_JOIN past it (or past the joiner's own cap) answers ROOM_FULL",
  }),
  maxRoomsPerConnection: spec({
    flag: "signal-max-rooms-per-connection",
    env: "LOFT_SIGNAL_MAX_ROOMS_PER_CONNECTION",
    default: 16,
    parse: int(0, 1_024),
    help: "room rendezvous one connection may be present in; more answers TOO_MANY_ROOMS",
  }),
  maxRooms: spec({
    flag: "signal-max-rooms",
    env: "LOFT_SIGNAL_MAX_ROOMS",
    default: 50_000,
    parse: int(1, 10_000_000),
    help: "room rendezvous with anyone present, in total; a ROOM_JOIN opening one more answers TOO_MANY_ROOMS",
  }),
  roomJoinRate: spec({
    flag: "signal-room-join-rate",
    env: "LOFT_SIGNAL_ROOM_JOIN_RATE",
    default: 2,
    parse: int(1, 1_000),
    help: "ROOM_JOINs per second per connection (burst 5x); faster ones answer RATE_LIMITED",
  }),
  connRate: spec({
    flag: "signal-conn-rate",
    env: "LOFT_SIGNAL_CONN_RATE",
    default: 20,
    parse: int(1, 1_000_000),
    help: "messages per second per connection (token bucket refill)",
  }),
  connBurst: spec({
    flag: "signal-conn-burst",
    env: "LOFT_SIGNAL_CONN_BURST",
    default: 60,
    parse: int(1, 1_000_000),
    help: "token bucket size per connection",
  }),
  sourceRate: spec({
    flag: "signal-source-rate",
    env: "LOFT_SIGNAL_SOURCE_RATE",
    default: 100,
    parse: int(1, 1_000_000),
    help: "messages per second per source address, all its connections together",
  }),
  sourceBurst: spec({
    flag: "signal-source-burst",
    env: "LOFT_SIGNAL_SOURCE_BURST",
    default: 300,
    parse: int(1, 1_000_000),
    help: "token bucket size per source address",
  }),
  upgradeRate: spec({
    flag: "signal-upgrade-rate",
    env: "LOFT_SIGNAL_UPGRADE_RATE",
    default: 10,
    parse: int(1, 1_000_000),
    help: "new connections per second per source address (HTTP 429 beyond)",
  }),
  upgradeBurst: spec({
    flag: "signal-upgrade-burst",
    env: "LOFT_SIGNAL_UPGRADE_BURST",
    default: 30,
    parse: int(1, 1_000_000),
    help: "token bucket size for new connections per source address",
  }),
  sourceCpuMs: spec({
    flag: "signal-source-cpu-ms",
    env: "LOFT_SIGNAL_SOURCE_CPU_MS",
    default: 10,
    parse: int(1, 1_000),
    help: "signature-verification CPU time per second one source address may cost (ms); beyond it REGISTER and SIGNAL answer BUSY",
  }),
  sourceCpuBurstMs: spec({
    flag: "signal-source-cpu-burst-ms",
    env: "LOFT_SIGNAL_SOURCE_CPU_BURST_MS",
    default: 20,
    parse: int(1, 60_000),
    help: "verification CPU time one source address may bank (ms)",
  }),
  envelopeNonceBytes: spec({
    flag: "signal-envelope-nonce-bytes",
    env: "LOFT_SIGNAL_ENVELOPE_NONCE_BYTES",
    default: 16 * 1024 * 1024,
    parse: int(16_384, 1 << 30),
    help: "memory for the envelope nonces of all connections (replay check of SIGNAL; 64 per sender); when spent, the oldest are forgotten, nothing is refused",
  }),
  identityCacheSize: spec({
    flag: "signal-identity-cache",
    env: "LOFT_SIGNAL_IDENTITY_CACHE",
    default: 65_536,
    parse: int(16, 10_000_000),
    help: "verified identities remembered so renewals skip re-verifying them (least recently used evicted)",
  }),
  maxViolations: spec({
    flag: "signal-max-violations",
    env: "LOFT_SIGNAL_MAX_VIOLATIONS",
    default: 100,
    parse: int(1, 1_000_000),
    help: "rate-limited messages tolerated on one connection before it is closed with 4429",
  }),
  heartbeatMs: spec({
    flag: "signal-heartbeat-ms",
    env: "LOFT_SIGNAL_HEARTBEAT_MS",
    default: 30_000,
    parse: int(50, 3_600_000),
    help: "ping interval; a socket that missed the previous ping's pong is terminated",
  }),
  helloTimeoutMs: spec({
    flag: "signal-hello-timeout-ms",
    env: "LOFT_SIGNAL_HELLO_TIMEOUT_MS",
    default: 10_000,
    parse: int(50, 600_000),
    help: "time allowed for the client's VERSION_HEADER before closing with 4408",
  }),
  sweepMs: spec({
    flag: "signal-sweep-ms",
    env: "LOFT_SIGNAL_SWEEP_MS",
    default: 1_000,
    parse: int(10, 600_000),
    help: "how often expired registrations, nonces and idle rate buckets are swept",
  }),
  listAll: spec({
    flag: "signal-list-all",
    env: "LOFT_SIGNAL_LIST_ALL",
    default: false,
    parse: bool,
    help: "answer LOOKUP list_all with every registered peer (off: an empty list)",
  }),
  listAllMax: spec({
    flag: "signal-list-all-max",
    env: "LOFT_SIGNAL_LIST_ALL_MAX",
    default: 100,
    parse: int(1, 128),
    help: "most peers one list_all LOOKUP answers with (also bounded by one frame)",
  }),
  servers: spec({
    flag: "signal-servers",
    env: "LOFT_SIGNAL_SERVERS",
    default: [] as string[],
    parse: list,
    help: "comma-separated rendezvous URLs answered to LIST_SERVERS (e.g. wss://a.example/signal)",
  }),
  publicHost: spec({
    flag: "signal-public-host",
    env: "LOFT_SIGNAL_PUBLIC_HOST",
    default: "",
    parse: str,
    help: "host name peers reach this server by; used as the `endpoint` of registered peers",
  }),
  publicPort: spec({
    flag: "signal-public-port",
    env: "LOFT_SIGNAL_PUBLIC_PORT",
    default: 443,
    parse: int(0, 65_535),
    help: "port paired with --signal-public-host in peer endpoints",
  }),
  audience: spec({
    flag: "signal-audience",
    env: "LOFT_SIGNAL_AUDIENCE",
    default: [] as string[],
    parse: list,
    help: "comma-separated public URLs of this service (e.g. wss://a.example/signal) that REGISTER must name as audience; when empty, the URL the client reached (ws[s]://Host/signal)",
  }),
  trustProxy: trustProxyOption,
  allowedOrigins: allowedOriginsOption,
  crossOriginPages: crossOriginPagesOption(
    "signal-cross-origin-pages",
    "LOFT_SIGNAL_CROSS_ORIGIN_PAGES",
    "users pick this server in another deployment's Settings",
  ),
  turnUrls: spec({
    flag: "turn-url",
    env: "LOFT_TURN_URLS",
    default: [] as string[],
    parse: list,
    help: "comma-separated STUN/TURN URLs handed to registered clients (turn:host:3478?transport=udp,turns:host:5349,stun:host:3478); TURN URLs need --turn-secret",
  }),
  turnSecret: spec({
    flag: "turn-secret",
    env: "LOFT_TURN_SECRET",
    default: "",
    parse: str,
    help: "the secret shared with the TURN server (coturn use-auth-secret + static-auth-secret); prefer the environment variable, which ps does not show",
  }),
  turnTtlSeconds: spec({
    flag: "turn-ttl",
    env: "LOFT_TURN_TTL",
    default: 86_400,
    parse: int(600, 7 * 86_400),
    help: "lifetime of the TURN credentials handed out (seconds); clients get new ones at half of it",
  }),
  // The one --redis flag every service reads (host/redis.ts); here: share registrations,
  // presence, nonces and rooms with the other instances (docs/operations.md, "Scale-out on Redis").
  ...redisOption,
  redisDeadAfterMs: spec({
    flag: "signal-redis-dead-after-ms",
    env: "LOFT_SIGNAL_REDIS_DEAD_AFTER_MS",
    default: 10_000,
    parse: int(500, 600_000),
    help: "with --redis: an instance silent in Redis this long is taken for dead; the others remove its registrations and tell their watchers (instances heartbeat every fifth of it)",
  }),
  sourceSecret: spec({
    flag: "signal-source-secret",
    env: "LOFT_SIGNAL_SOURCE_SECRET",
    default: "",
    parse: str,
    help: "with --redis: the secret (the same on every instance) under which source addresses are hashed for the per-source limits shared in Redis; empty: derived from the Redis URL — set it when that URL has no password",
  }),
  shutdownGraceMs: spec({
    flag: "signal-shutdown-grace-ms",
    env: "LOFT_SIGNAL_SHUTDOWN_GRACE_MS",
    default: 2_000,
    parse: int(0, 60_000),
    help: "time given to clients to close after GOING_AWAY before sockets are terminated",
  }),
  reconnectSpreadMs: spec({
    flag: "signal-reconnect-spread-ms",
    env: "LOFT_SIGNAL_RECONNECT_SPREAD_MS",
    default: 5_000,
    parse: int(10, 600_000),
    help: "GOING_AWAY asks each client to reconnect after a random delay up to this (spreads the herd)",
  }),
};

export type SignalingConfig = {
  [K in keyof typeof signalingOptions]: (typeof signalingOptions)[K]["default"];
};

/** Defaults for every option; tests override a few (`{ ...defaultSignalingConfig(), heartbeatMs: 100 }`). */
export function defaultSignalingConfig(): SignalingConfig {
  return readConfig(signalingOptions, [], {});
}

/**
 * The clients' close grace must end within the process's stop bound (host/standalone.ts
 * `shutdownOptions`): otherwise every stop would run into the bound and exit 1 (docs/operations.md,
 * "Stopping"). The message names both values as read: either may come from a flag, the
 * environment or a default, and the operator must see which to change — each named as it was set
 * (`timeoutRead`: the config the bound was read in, for its source).
 */
export function checkShutdownGrace(
  c: SignalingConfig,
  shutdownTimeoutMs: number,
  timeoutRead: object = {},
): void {
  if (c.shutdownGraceMs >= shutdownTimeoutMs)
    throw new ConfigError(
      `${optionName(c, signalingOptions.shutdownGraceMs)} is ${c.shutdownGraceMs} ms, ${optionName(timeoutRead, shutdownOptions.shutdownTimeoutMs)} ${shutdownTimeoutMs} ms: the grace must be below the stop bound (at most ${shutdownTimeoutMs - 1} ms with this bound)`,
    );
}

/** How many characters of a refused URL a message shows at most. */
const SHOWN_URL_CHARS = 60;

/**
 * A refused URL as a message may show it (the message goes to the log and the terminal): what
 * could be a credential left out — the user info before an `@` (`turn:loft:secret@host`,
 * `wss://user:password@host`), the query, and whatever follows whitespace (a secret pasted after
 * the URL) — and at most SHOWN_URL_CHARS characters, enough for the operator to find the entry.
 */
export function shownUrl(u: string): string {
  let s = u.trim().split(/\s/, 1)[0] ?? "";
  const at = s.lastIndexOf("@");
  if (at >= 0) s = `${/^(?:stuns?|turns?|wss?|https?):(?:\/\/)?/i.exec(s)?.[0] ?? ""}…${s.slice(at)}`;
  s = s.replace(/\?.*$/, "?…");
  if (s.length > SHOWN_URL_CHARS) s = `${s.slice(0, SHOWN_URL_CHARS)}…`;
  return JSON.stringify(s);
}

/**
 * Cross-option checks readConfig cannot express; throws a message naming the options, the values
 * read and what is allowed (readConfig's own messages do the same for one option). A URL is shown
 * through `shownUrl`: never a credential written into it.
 */
export function checkSignalingConfig(c: SignalingConfig): void {
  // Each option as the operator set it: its flag, or the environment variable it came from.
  const name = (key: keyof typeof signalingOptions) => optionName(c, signalingOptions[key]);
  if (c.ttlMinSeconds > c.ttlMaxSeconds)
    throw new ConfigError(
      `${name("ttlMinSeconds")} is ${c.ttlMinSeconds} s, ${name("ttlMaxSeconds")} ${c.ttlMaxSeconds} s: the minimum must not exceed the maximum`,
    );
  if (c.maxPayloadBytes + 1_024 > c.maxFrameBytes) {
    // A smaller payload is offered only when one exists: the payload's own bound is 256
    // (signalingOptions.maxPayloadBytes), the frame's 65 535 is never short of payload + 1024.
    const payload = c.maxFrameBytes - 1_024;
    throw new ConfigError(
      `${name("maxFrameBytes")} is ${c.maxFrameBytes}, ${name("maxPayloadBytes")} ${c.maxPayloadBytes}: the frame must exceed the payload by at least 1024 (a frame of at least ${c.maxPayloadBytes + 1_024}${payload >= MIN_PAYLOAD_BYTES ? `, or a payload of at most ${payload}` : ""})`,
    );
  }
  for (const a of c.audience) {
    let u: URL | undefined;
    try {
      u = new URL(a);
    } catch {}
    if (!u || !["ws:", "wss:", "http:", "https:"].includes(u.protocol))
      throw new ConfigError(`${name("audience")}: ${shownUrl(a)} is not a ws(s):// or http(s):// URL`);
  }
  for (const u of c.turnUrls)
    if (!/^(stun|stuns|turn|turns):[^\s]{1,500}$/.test(u))
      throw new ConfigError(
        `${name("turnUrls")}: ${shownUrl(u)} is not a stun:, stuns:, turn: or turns: URL`,
      );
  if (c.turnUrls.length > SIGNALING.MAX_ICE_URLS)
    throw new ConfigError(
      `${name("turnUrls")}: ${c.turnUrls.length} URLs given, at most ${SIGNALING.MAX_ICE_URLS} allowed`,
    );
  if (c.turnUrls.some(isTurnUrl) && !c.turnSecret)
    throw new ConfigError(
      `${name("turnUrls")} names a TURN server: give its shared secret with --turn-secret (or LOFT_TURN_SECRET)`,
    );
  if (c.turnSecret && !c.turnUrls.some(isTurnUrl))
    throw new ConfigError(
      `${name("turnSecret")} needs at least one turn: or turns: URL in ${name("turnUrls")}`,
    );
  if (c.servers.length > MAX_SERVERS)
    throw new ConfigError(
      `${name("servers")}: ${c.servers.length} URLs given, at most ${MAX_SERVERS} allowed`,
    );
  for (const u of c.servers) {
    if (u.length > MAX_URL_CHARS)
      throw new ConfigError(
        `${name("servers")}: a URL of ${u.length} characters (${shownUrl(u)}), at most ${MAX_URL_CHARS} allowed`,
      );
    if (!v.safeParse(serverUrlSchema, u).success)
      throw new ConfigError(
        `${name("servers")}: ${shownUrl(u)} is not a ws://, wss://, http:// or https:// URL`,
      );
  }
}

/**
 * The signaling part of a config read with more options (server/main.ts merges
 * `...signalingOptions` into its own specs and reads them together, since readConfig refuses
 * unknown flags).
 */
export function signalingConfigFrom(all: SignalingConfig & Record<string, unknown>): SignalingConfig {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(signalingOptions)) out[key] = all[key];
  const config = keepSources(all, out as SignalingConfig);
  checkSignalingConfig(config);
  return config;
}
