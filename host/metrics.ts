/**
 * Where operators read the process's figures: Prometheus `/metrics` and the detailed `/health`
 * (each service's counters, the Node version through the default metrics) are served on a
 * separate listener, bound to 127.0.0.1 by default (`--metrics-port`, `--metrics-host`), with an
 * optional bearer token for scrapers on other machines (`--metrics-token`). The public port keeps
 * a `/health` that says `{"status":"ok"}` and nothing else. Rendering is cached for a second, so
 * a flood of scrapes costs one rendering per second, not one per request (issue #17: a /metrics
 * flood raised the relay's PING 1.8 → 19.8 ms).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { ConfigError, int } from "./config.ts";

/** A rendering reused for this long; a request in the meantime shares it (and any in flight). */
export const METRICS_CACHE_MS = 1_000;

/**
 * `render` at most once per `maxAgeMs`: calls in between (and while one runs) get the same
 * promise. A failed rendering is not kept.
 */
export function cachedRender(
  render: () => Promise<string>,
  maxAgeMs = METRICS_CACHE_MS,
  now: () => number = () => performance.now(),
): () => Promise<string> {
  let last: { at: number; text: Promise<string> } | undefined;
  return () => {
    const t = now();
    if (last === undefined || t - last.at >= maxAgeMs) {
      const text = render();
      const entry = { at: t, text };
      last = entry;
      text.catch(() => {
        if (last === entry) last = undefined;
      });
    }
    return last.text;
  };
}

/** The metrics listener's address, and the token it requires (undefined: none). */
export interface MetricsListenerOptions {
  port: number;
  host: string;
  token: string | undefined;
}

/**
 * `Authorization: Bearer <token>` (scheme case-insensitive, RFC 9110 §11.1) compared in constant
 * time: both sides hashed to one length first.
 */
export function bearerAllowed(req: IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const header = req.headers.authorization ?? "";
  const m = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
  const given = createHash("sha256")
    .update(m?.[1] ?? "")
    .digest();
  const expected = createHash("sha256").update(token).digest();
  return timingSafeEqual(given, expected) && m !== null;
}

const portOrOff = (raw: string): number | "off" => (raw === "off" ? "off" : int(0, 65535)(raw));

/** The combined server's metrics options (server/main.ts). */
export const metricsOptions = {
  metricsPort: {
    flag: "metrics-port",
    env: "LOFT_METRICS_PORT",
    default: 9464 as number | "off",
    parse: portOrOff,
    help: "port of the metrics listener (/metrics and detailed /health); 'off' serves metrics nowhere",
  },
  metricsHost: {
    flag: "metrics-host",
    env: "LOFT_METRICS_HOST",
    default: "127.0.0.1",
    parse: (raw: string) => raw,
    help: "address the metrics listener binds (keep it loopback unless a token is set)",
  },
  metricsToken: {
    flag: "metrics-token",
    env: "LOFT_METRICS_TOKEN",
    default: undefined as string | undefined,
    parse: (raw: string): string | undefined => {
      if (!/^[\x21-\x7e]{16,512}$/.test(raw))
        throw new ConfigError("a metrics token is 16 to 512 printable characters without spaces");
      return raw;
    },
    help: "bearer token the metrics listener requires (Authorization: Bearer …); set it when the listener is not on loopback",
  },
};
