/**
 * Messages between the Service Worker and the window that carries proxied requests
 * (docs/protocol/proxy.md §Service Worker). A Service Worker cannot hold the contact's session, so
 * for each request under `/peer/<contact>/…` it opens a MessageChannel to a Loft window and
 * speaks this small pull protocol on it; the window runs the proxy client over the session and
 * answers. Bodies move one chunk per `pull`, so the page's reading pace is the pace all the way to
 * the serving side (its ReadableStream pulls → the port → the client's credit).
 */
import type { Headers, ProxyMethod, ResetCode } from "./frames.ts";

/** Why the SW could not even ask: no Loft window open to carry the request. */
export type PageErrorCode = ResetCode | "no_window" | "bad_request";

/** SW → window, on `navigator.serviceWorker`, with the request's port transferred. */
export interface PortRequest {
  type: "loft-proxy";
  contact: string;
  method: ProxyMethod;
  path: string;
  headers: Headers;
  /** A request body, already bounded by the SW (MAX_PORT_BODY). */
  body?: Uint8Array;
}

/** Window → SW on the port. */
export type PortReply =
  | { type: "accepted" }
  /** This window cannot carry requests now (Loft locked or not started): ask another. */
  | { type: "declined" }
  | { type: "head"; status: number; headers: Headers }
  | { type: "refused"; code: ResetCode; reason: string }
  | { type: "chunk"; bytes: Uint8Array }
  | { type: "end" }
  | { type: "error"; code: ResetCode; reason: string };

/** SW → window on the port. */
export type PortPull = { type: "pull" } | { type: "cancel"; reason: string };

/** Largest request body the SW forwards (shares take none; an exposed service's forms and uploads). */
export const MAX_PORT_BODY = 1024 * 1024;

export const CONTACT_ID = /^[0-9a-f]{64}$/;

export function isPortRequest(d: unknown): d is PortRequest {
  const r = d as PortRequest | null;
  return (
    typeof r === "object" &&
    r !== null &&
    r.type === "loft-proxy" &&
    typeof r.contact === "string" &&
    CONTACT_ID.test(r.contact) &&
    typeof r.method === "string" &&
    typeof r.path === "string" &&
    r.path.startsWith("/") &&
    Array.isArray(r.headers) &&
    r.headers.every((h) => Array.isArray(h) && typeof h[0] === "string" && typeof h[1] === "string") &&
    (r.body === undefined || r.body instanceof Uint8Array)
  );
}
