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
