/**
 * The scale-out flag shared by every entry point (docs/operations.md, "Scale-out on Redis"):
 * `--redis URL` / `LOFT_REDIS_URL` turns an instance into one of N stateless instances sharing
 * their state through one Redis. Declared once here so that `server/main.ts`, `signaling/main.ts`
 * and `relay-ws/main.ts` read the same flag the same way; the empty default means "no Redis": the
 * in-process state (signaling) and the embedded store (relay), as on one box.
 *
 * `openRedis` makes the ioredis connection every service uses the same way: it never queues a
 * command while disconnected (a request fails at once, so a client gets a clear error rather than
 * a hang), bounds every command in time, and reconnects by itself with a capped backoff.
 */
import { Redis } from "ioredis";
import { ConfigError, type OptionSpec } from "./config.ts";
import type { Logger } from "./log.ts";

/** `redis://[user:password@]host[:port][/db]` or `rediss://` (TLS); "" = no Redis. */
export function parseRedisUrl(raw: string): string {
  const text = raw.trim();
  if (text === "") return "";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`expected a redis:// or rediss:// URL, got "${redactRedisUrl(text)}"`);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:")
    throw new ConfigError(`expected a redis:// or rediss:// URL, got a ${url.protocol} URL`);
  if (url.hostname === "") throw new ConfigError("the Redis URL names no host");
  if (url.pathname !== "" && url.pathname !== "/" && !/^\/\d{1,2}$/.test(url.pathname))
    throw new ConfigError("the Redis URL's path must be a database number, e.g. /0");
  return text;
}

/** The URL without its password, for logs and errors. */
export function redactRedisUrl(text: string): string {
  return text.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

export const redisOption: OptionSpec<string> = {
  flag: "redis",
  env: "LOFT_REDIS_URL",
  default: "",
  parse: parseRedisUrl,
  help: "Redis URL (redis://host:6379/0): share state with other instances through it (docs/operations.md, Scale-out on Redis); empty: this process alone",
};

export interface RedisOpenOptions {
  /** What the connection is for, in its client name and logs (e.g. "signaling", "signaling-sub"). */
  role: string;
  log: Logger;
  /** Longest a command may take before it fails (ms). */
  commandTimeoutMs?: number;
}

/**
 * One ioredis connection to `url`. Commands fail at once while it is down (no offline queue) and
 * after `commandTimeoutMs` when Redis hangs; it reconnects forever, 100 ms doubling to 2 s.
 * Errors are logged once per outage (ioredis emits one per reconnect attempt), without the URL's
 * password.
 */
export function openRedis(url: string, options: RedisOpenOptions): Redis {
  const redis = new Redis(url, {
    connectionName: `loft-${options.role}`,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? 2_000,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(2_000, 100 * 2 ** Math.min(times, 5)),
    lazyConnect: false,
  });
  let down = false;
  redis.on("error", (e: Error & { code?: string }) => {
    if (down) return;
    down = true;
    options.log.warn({ role: options.role, code: e.code, err: e.message }, "redis unreachable");
  });
  redis.on("ready", () => {
    if (down) options.log.info({ role: options.role }, "redis reachable again");
    down = false;
  });
  return redis;
}
