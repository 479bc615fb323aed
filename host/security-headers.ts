/**
 * The browser security headers the host puts on every response it writes — the PWA, `sw.js`,
 * `/health`, `/metrics`, 404s, 426s, errors and refused WebSocket upgrades — so that no path is
 * left without them (docs/operations.md, "Browser security headers"; why each value:
 * docs/decisions.md, "Content-Security-Policy and federation").
 *
 * The Content-Security-Policy is the one the built app satisfies with no violation
 * (test/e2e/csp.e2e.ts): scripts and styles only from this origin (no inline script, no eval),
 * nothing framed but the content origin (host/content-origin.ts adds its `frame-src`) and no
 * framing, no plugins, no `<base>`, no form posts. `connect-src` is `'self'`
 * plus the operator's list (`--csp-connect-src`): by default any `wss:`/`ws:` server, because a
 * contact's link may name a relay on another host and users may choose other servers in Settings.
 * Violations are reported to `/csp-report` and counted (host/csp-reports.ts).
 */
import type { Duplex } from "node:stream";
import { ConfigError } from "./config.ts";
import { CSP_REPORT_PATH } from "./csp-reports.ts";

/**
 * Features the app does not use are switched off for the page and anything it could embed;
 * copying the contact link stays on for this origin only. Sharing it (`navigator.share`) needs no
 * entry: `web-share` defaults to this origin, and Chromium on desktop Linux rejects the name as
 * unknown, noisily. Features the app uses are `(self)`: Web Serial (pairing a device) and, for
 * calls, autoplay, camera, display capture and the microphone. Only names Chromium knows: an
 * unknown one is a console error.
 */
export const PERMISSIONS_POLICY = [
  "accelerometer=()",
  "encrypted-media=()",
  "fullscreen=()",
  "geolocation=()",
  "gyroscope=()",
  "hid=()",
  "magnetometer=()",
  "midi=()",
  "payment=()",
  "picture-in-picture=()",
  "publickey-credentials-get=()",
  "screen-wake-lock=()",
  "serial=(self)",
  "usb=()",
  "xr-spatial-tracking=()",
  "clipboard-write=(self)",
  // Calls (docs/protocol/calls.md): microphone, camera, screen sharing, and the contact's voice
  // playing without a click on the <video> first.
  "autoplay=(self)",
  "camera=(self)",
  "display-capture=(self)",
  "microphone=(self)",
].join(", ");

/** `connect-src` sources beyond `'self'` when the operator names none. */
export const DEFAULT_CONNECT_SOURCES: readonly string[] = ["wss:", "ws:"];

/** The Content-Security-Policy for `connectSources` (already validated) beyond `'self'`. */
export function contentSecurityPolicy(connectSources: readonly string[]): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob:", // blob: for received images shown inline (docs/protocol/files.md)
    "media-src blob:", // voice notes played inline from their decrypted file (docs/protocol/calls.md)
    "font-src 'self'",
    "manifest-src 'self'",
    "worker-src 'self'",
    `connect-src ${["'self'", ...connectSources].join(" ")}`,
    "frame-ancestors 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    // report-uri rather than report-to: every browser sends these at once; Chromium would delay
    // (batch) Reporting API reports and ignores report-uri when report-to is present.
    `report-uri ${CSP_REPORT_PATH}`,
  ].join("; ");
}

/** Every header of the set, for `connectSources` beyond `'self'`. Built once per host. */
export function securityHeaders(connectSources: readonly string[]): Readonly<Record<string, string>> {
  return Object.freeze({
    "content-security-policy": contentSecurityPolicy(connectSources),
    "permissions-policy": PERMISSIONS_POLICY,
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "origin-agent-cluster": "?1",
  });
}

/**
 * The raw bytes of a short answer written straight to a socket (a refused WebSocket upgrade,
 * which never reaches Node's response object), with the same security headers.
 */
export function rawResponse(
  status: number,
  reason: string,
  headers: Readonly<Record<string, string>>,
  body = "",
): string {
  const lines = [`HTTP/1.1 ${status} ${reason}`, "Connection: close"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (body !== "") lines.push("Content-Type: text/plain");
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

/**
 * One `connect-src` source from the operator: a scheme (`wss:`, `https:`) or an origin with an
 * optional `*.` host wildcard and port (`wss://relay.example`, `wss://*.example:8443`). Anything
 * else — quotes, paths, semicolons, spaces — is refused, so the header cannot be broken or widened
 * by a typo.
 */
function connectSource(raw: string): string {
  if (/^[a-z][a-z0-9+.-]*:$/i.test(raw)) return raw.toLowerCase();
  const m =
    /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:(?:\d{1,5}|\*))?\/?$/i.exec(
      raw,
    );
  if (!m) throw new ConfigError(`connect source "${raw}" is not a scheme (wss:) or an origin (wss://host)`);
  return raw.replace(/\/$/, "").toLowerCase();
}

/** The `--csp-connect-src` option, read by the combined server. */
export const cspConnectOption = {
  flag: "csp-connect-src",
  env: "LOFT_CSP_CONNECT_SRC",
  default: [...DEFAULT_CONNECT_SOURCES] as string[],
  parse: (raw: string): string[] => {
    const entries = raw
      .split(/[\s,]+/)
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    if (entries.length === 1 && entries[0] === "none") return [];
    return entries.map(connectSource);
  },
  help: "servers the app may connect to besides its own origin (CSP connect-src): schemes (wss:) or origins (wss://relay.example), comma-separated; 'none' for this origin only",
};

/**
 * Make the first thing written to an upgrade socket carry the security headers when it is a
 * refusal (any status but 101): services and the `ws` library answer refused WebSocket handshakes
 * by writing raw HTTP to the socket (`socket.end("HTTP/1.1 403 …")`), past Node's response object
 * and so past the host's headers. The lines go right after the status line; the wrapper removes
 * itself after the first write, so frames after a 101 are never looked at.
 */
export function secureUpgradeRefusals(socket: Duplex, headers: Readonly<Record<string, string>>): void {
  const lines = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  const write = socket.write;
  const end = socket.end;
  const restore = () => {
    socket.write = write;
    socket.end = end;
  };
  const patch = (chunk: unknown): unknown => {
    restore();
    if (typeof chunk !== "string" && !Buffer.isBuffer(chunk)) return chunk;
    const text = typeof chunk === "string" ? chunk : chunk.toString("latin1");
    if (!/^HTTP\/1\.[01] [1-5]\d\d/.test(text) || text.startsWith("HTTP/1.1 101")) return chunk;
    const eol = text.indexOf("\r\n");
    if (eol < 0) return chunk;
    const patched = `${text.slice(0, eol + 2)}${lines}${text.slice(eol + 2)}`;
    return typeof chunk === "string" ? patched : Buffer.from(patched, "latin1");
  };
  socket.write = function (this: Duplex, chunk: unknown, ...rest: unknown[]) {
    return (write as (...a: unknown[]) => boolean).call(this, patch(chunk), ...rest);
  } as Duplex["write"];
  socket.end = function (this: Duplex, chunk?: unknown, ...rest: unknown[]) {
    if (typeof chunk === "function" || chunk === undefined) {
      restore();
      return (end as (...a: unknown[]) => Duplex).call(this, chunk, ...rest);
    }
    return (end as (...a: unknown[]) => Duplex).call(this, patch(chunk), ...rest);
  } as Duplex["end"];
}
