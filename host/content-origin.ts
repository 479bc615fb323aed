/**
 * The content origin (docs/decisions.md "Contacts' content on an origin of its own";
 * docs/protocol/proxy.md §Isolation): what a contact shares is shown under
 * `peer.<the app's host>/peer/<contact>/…`, never on the app's origin, so a shared page's script
 * cannot read the app's IndexedDB, OPFS, caches or cookies, nor talk to the app's Service Worker.
 *
 * The same listener serves both origins and tells them apart by the Host header. On the content
 * origin it serves only three files of the build: the bridge page that the app frames
 * (`/peer-bridge.html` and its script) and the content origin's own Service Worker
 * (`/peer-sw.js`, built from sw/peer-origin.ts). A `/peer/…` request that reaches the network
 * (no Service Worker yet) gets a page saying to open Loft; everything else is 404 — the app is
 * never served there. The app's pages, in turn, may frame that one origin (`frame-src`), and the
 * bridge page may be framed by the app's origin only (`frame-ancestors`).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { contentOriginPolicy, isPeerPath } from "../core/proxy/port.ts";
import { type StaticOptions, serveStatic } from "./static.ts";

/** The label in front of the app's host that names its content origin. */
export const CONTENT_LABEL = "peer.";

/** The files the content origin serves from the build. */
const CONTENT_FILES = new Set(["/peer-bridge.html", "/peer-bridge.js", "/peer-sw.js"]);

/** A Host header fit to be written into a CSP: a DNS name (or `localhost`) with an optional port. */
const HOST = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::\d{1,5})?$/;
/** An IPv4 address: it has no subdomain, so no content origin (contacts' content is refused). */
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?$/;

/** The request's Host, lowercased, when it is a name that can have a `peer.` subdomain. */
export function namedHost(req: IncomingMessage): string | undefined {
  const host = req.headers.host?.toLowerCase();
  if (host === undefined || host.length > 253 || !HOST.test(host) || IPV4.test(host)) return undefined;
  return host;
}

/** True when the request is for the content origin (`peer.<app host>`). */
export function isContentOrigin(req: IncomingMessage): boolean {
  return namedHost(req)?.startsWith(CONTENT_LABEL) === true;
}

/**
 * The app's CSP with `frame-src` for its content origin (the bridge page), when the request names
 * a host that can have one; otherwise the CSP unchanged (`default-src 'none'` keeps frames out).
 * Scheme-less sources match the page's own scheme.
 */
export function appPolicy(req: IncomingMessage, csp: string): string {
  const host = namedHost(req);
  return host === undefined ? csp : `${csp}; frame-src ${CONTENT_LABEL}${host}`;
}

const OPEN_LOFT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Open Loft to reach this</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body><main>
<h1>Open Loft to reach this</h1><p>This address shows what one of your contacts shares, end to end
encrypted. Open Loft in this browser, then open this address again.</p><p>If Loft is open and you
still see this page, this server's name cannot have a content address (its operator's guide says
why: the name must be under a public domain).</p></main></body></html>`;

/** Answer a request for the content origin. */
export async function serveContentOrigin(
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
  staticDir: string | undefined,
  options: StaticOptions,
): Promise<void> {
  const appHost = namedHost(req)!.slice(CONTENT_LABEL.length);
  res.setHeader("content-security-policy", contentOriginPolicy(appHost));
  res.removeHeader("x-frame-options");
  const read = req.method === "GET" || req.method === "HEAD";
  if (read && staticDir && CONTENT_FILES.has(pathname)) {
    await serveStatic(staticDir, pathname, req, res, options);
    return;
  }
  if (read && isPeerPath(pathname)) {
    res.writeHead(503, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    res.end(req.method === "HEAD" ? undefined : OPEN_LOFT);
    return;
  }
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
}
