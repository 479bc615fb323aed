/**
 * Scale-out on Redis (docs/operations.md, "Scale-out on Redis"): the one `--redis URL` /
 * `LOFT_REDIS_URL` option every entry point reads (server/main.ts, relay-ws/main.ts,
 * signaling/main.ts), and the one way a service connects to that Redis. Empty (the default): no
 * Redis, each service keeps its state in process and the relay uses its embedded LMDB store.
 *
 * Connection policy (docs/operations.md, "What OK means on Redis"): commands are never queued while
 * Redis is unreachable and never re-sent after a reconnect — a command either got its reply on the
 * connection it was sent on, or failed with `RedisUnavailableError`. A write that Redis may have
 * executed without us seeing the reply is therefore never answered OK; the client retries it (the
 * relay's send ids make a retried SEND a DUPLICATE, never a second copy).
 */
import { Redis, type RedisOptions } from "ioredis";
import { ConfigError, type OptionSpec } from "./config.ts";

/** `redis://[user:password@]host[:port][/db]` or `rediss://` (TLS); empty: off. */
export function redisUrl(raw: string): string {
  const text = raw.trim();
  if (text === "") return "";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`expected a redis:// or rediss:// URL, got "${raw}"`);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:")
    throw new ConfigError(`expected a redis:// or rediss:// URL, got "${url.protocol}//…"`);
  if (url.hostname === "") throw new ConfigError("the Redis URL has no host");
  const db = url.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d{1,2}$/.test(db))
    throw new ConfigError(`the Redis URL's database must be a number, got "${db}"`);
  return text;
}

/** The shared option: one spec, spread into each entry point's options. */
export const redisOption = {
  redis: {
    flag: "redis",
    env: "LOFT_REDIS_URL",
    default: "",
    parse: redisUrl,
    help: "redis://host:port of the Redis shared by several Loft instances (scale-out); empty: one instance, state in process and the embedded store",
  } satisfies OptionSpec<string>,
};

/** A command that could not reach Redis (down, restarting, timed out, connection lost). */
export class RedisUnavailableError extends Error {
  override name = "RedisUnavailableError";
  readonly code = "LOFT_ERR_REDIS_UNAVAILABLE";
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`Redis unavailable: ${reason}`, options);
  }
}

/** Redis answered that it is out of memory (`maxmemory` reached): a refusal, not an outage. */
export function isRedisOom(e: unknown): boolean {
  const message = (e as { message?: unknown } | undefined)?.message;
  return typeof message === "string" && message.startsWith("OOM ");
}

/** Whether `e` is a failure to reach Redis rather than an answer from it (ReplyError). */
export function isRedisConnectionError(e: unknown): boolean {
  if (e instanceof RedisUnavailableError) return true;
  const err = e as { name?: unknown; message?: unknown; code?: unknown } | undefined;
  if (err?.name === "ReplyError") {
    // LOADING (replaying the AOF after a restart), READONLY (a replica not promoted yet),
    // MASTERDOWN, TRYAGAIN: Redis is there but cannot serve us now.
    return (
      typeof err.message === "string" &&
      /^(LOADING|READONLY|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS)/.test(err.message)
    );
  }
  return true;
}

/**
 * A failure's first line, short, without addresses (Redis's own included): it goes to logs and to
 * the detailed /health, which never show an address (docs/operations-relay.md, "Logs").
 */
export function redisReason(message: string): string {
  return message
    .split("\n")[0]!
    .slice(0, 120)
    .replace(/\[?[0-9a-f.:]*[.:][0-9a-f.:]+\]?(:\d+)?/gi, "<redis>");
}

/** Wrap a failure of a Redis call: connection problems become RedisUnavailableError. */
export function redisFailure(e: unknown): unknown {
  if (e instanceof RedisUnavailableError || !isRedisConnectionError(e)) return e;
  const message = (e as { message?: unknown } | undefined)?.message;
  return new RedisUnavailableError(
    typeof message === "string" ? message.split("\n")[0]!.slice(0, 120) : "error",
    {
      cause: e,
    },
  );
}

export interface RedisConnectOptions {
  /** Shown in `CLIENT LIST` (e.g. "loft-relay"); never an address or an identity. */
  name: string;
  /** Milliseconds a command may wait for its reply before it fails as unavailable (default 10 s). */
  commandTimeoutMs?: number;
  /** Told on each change: "ready" or the reason it is not. */
  onStatus?: (status: "ready" | "down", reason: string) => void;
}

/**
 * An ioredis connection with the policy above: no offline queue, no resend of unanswered commands,
 * reconnection forever with a capped back-off (recovery by itself once Redis is back).
 */
export function connectRedis(url: string, options: RedisConnectOptions): Redis {
  const redisOptions: RedisOptions = {
    connectionName: options.name,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? 10_000,
    connectTimeout: 5_000,
    lazyConnect: true,
    // Forever, at most 1 s apart: the instance keeps serving what does not need Redis and comes
    // back by itself (docs/operations.md, "Redis unreachable").
    retryStrategy: (times) => Math.min(50 * times, 1_000),
    reconnectOnError: (e) => /^(READONLY|LOADING)/.test(e.message),
  };
  const redis = new Redis(url, redisOptions);
  let last: string | undefined;
  const tell = (status: "ready" | "down", reason: string) => {
    const key = `${status}:${reason}`;
    if (key === last) return;
    last = key;
    options.onStatus?.(status, reason);
  };
  redis.on("ready", () => tell("ready", ""));
  // The reason goes to logs and the detailed /health: without addresses (Redis's own included).
  redis.on("error", (e: Error) => tell("down", redisReason(e.message)));
  redis.on("close", () => tell("down", "connection closed"));
  redis.on("end", () => tell("down", "connection ended"));
  return redis;
}

/** Redact the password of a Redis URL for logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "redis://…";
  }
}
