/**
 * WebSocket Origin check for `/signal` and `/relay`: browsers send `Origin` on every WebSocket
 * handshake and let any page open a socket to any server, so without a check any web page a user
 * visits can use their browser to talk to our servers (cross-site WebSocket hijacking) and spend
 * the user's per-source budget. Accepted: the server's own origin (the Host the request was sent
 * to, so the PWA served from here always works), and the origins the operator lists
 * (`--allowed-origins`, for PWAs served elsewhere). Requests without `Origin` are not from a
 * browser page (CLI, devices, other servers) and are accepted: the check protects browsers, it is
 * not authentication.
 */
import type { IncomingMessage } from "node:http";
import { ConfigError } from "./config.ts";

/** True when the request may open a WebSocket. `allowed` holds normalized origins or "*". */
export function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (allowed.includes("*")) return true;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false; // "null" (sandboxed frames, file:) and garbage
  }
  if (parsed.origin === "null") return false;
  if (allowed.includes(parsed.origin)) return true;
  // Same origin: the host the browser addressed. The scheme is not compared: behind a TLS proxy
  // the page is https while this hop is plain http.
  return req.headers.host !== undefined && parsed.host === req.headers.host.toLowerCase();
}

/** The shared `--allowed-origins` option, read by signaling, the relay and the combined server. */
export const allowedOriginsOption = {
  flag: "allowed-origins",
  env: "LOFT_ALLOWED_ORIGINS",
  default: [] as string[],
  parse: (raw: string): string[] =>
    raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .map((s) => {
        if (s === "*") return s;
        let u: URL;
        try {
          u = new URL(s);
        } catch {
          throw new ConfigError(`allowed origin "${s}" is not a URL`);
        }
        if ((u.protocol !== "https:" && u.protocol !== "http:") || u.origin === "null" || u.pathname !== "/")
          throw new ConfigError(`allowed origin "${s}" must be an http(s) origin without a path`);
        return u.origin;
      }),
  help: "comma-separated origins (https://app.example) whose pages may open /signal and /relay WebSockets besides this server's own; '*' allows any page",
};

/** What a service does with pages of other origins (`--relay-/--signal-cross-origin-pages`). */
export type CrossOriginPages = "separate" | "refuse";

/**
 * A service's `--…-cross-origin-pages` option; `why` says why that service accepts other
 * origins' pages by default (docs/decisions.md).
 */
export function crossOriginPagesOption(flag: string, env: string, why: string) {
  return {
    flag,
    env,
    default: "separate" as CrossOriginPages,
    parse: (raw: string): CrossOriginPages => {
      if (raw === "separate" || raw === "refuse") return raw;
      throw new ConfigError(`expected "separate" or "refuse", got "${raw}"`);
    },
    help: `pages of other origins than this server's and --allowed-origins: 'separate' accepts them under their own per-source budget (${why}), 'refuse' answers 403`,
  };
}

/**
 * The per-source key a connection is counted under: pages of other origins apart from this
 * origin's own, so a hostile page cannot spend its visitors' budget here.
 */
export function pageSourceKey(source: string, ownPage: boolean): string {
  return ownPage ? source : `${source} cross-origin`;
}
