/**
 * Messages between the Service Worker and the window that carries proxied requests
 * (docs/protocol/proxy.md §Service Worker). A Service Worker cannot hold the contact's session, so
 * for each request under `/peer/<contact>/…` it opens a MessageChannel to a Loft window and
 * speaks this small pull protocol on it; the window runs the proxy client over the session and
 * answers. Bodies move one chunk per `pull`, so the page's reading pace is the pace all the way to
 * the serving side (its ReadableStream pulls → the port → the client's credit).
 */
import type { Headers, ProxyMethod, ResetCode } from "./frames.ts";

/**
 * Why the SW could not even ask: no Loft window open to carry the request, a bad address, no
 * content origin to show contacts' content on (the app is reached by IP address), or a page of one
 * contact loading another contact's content (docs/protocol/proxy.md §Isolation).
 */
export type PageErrorCode = ResetCode | "no_window" | "bad_request" | "no_content_origin" | "other_contact";

/**
 * Content origin's SW → the bridge page it frames in a Loft window → that window (a
 * `postMessage` to the app's origin), with the request's port transferred.
 */
export interface PortRequest {
  type: "loft-proxy";
  contact: string;
  method: ProxyMethod;
  path: string;
  headers: Headers;
  /**
   * A whole request body, as Service Workers before streamed uploads (`upload`) sent it; still
   * accepted from one that has not updated yet.
   */
  body?: Uint8Array;
  /**
   * The request body follows on the port, streamed: one `upload-chunk` (or `upload-end`) from the
   * SW per `upload-pull` from the window, so the serving side's credit paces the page's upload and
   * nothing holds the whole body (the serving side bounds its size: `too_large`).
   */
  upload?: true;
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
  | { type: "error"; code: ResetCode; reason: string }
  /** The next piece of the request body, please (`upload: true`). */
  | { type: "upload-pull" };

/** SW → window on the port. */
export type PortPull =
  | { type: "pull" }
  | { type: "cancel"; reason: string }
  /** A piece of the streamed request body, answering one `upload-pull`. */
  | { type: "upload-chunk"; bytes: Uint8Array }
  /** The request body is complete. */
  | { type: "upload-end" };

export const CONTACT_ID = /^[0-9a-f]{64}$/;

/**
 * How long the Service Worker waits for a response head once a window took the request, while it
 * waits on the window (not on the page's own upload: `headWait`); its page then says "No answer
 * in time" without details. Longer than the requester's own bound
 * (core/proxy/client.ts `HEAD_TIMEOUT_MS`), whose reset the window answers as `refused` and whose
 * page names it: a requester's bound at or past this one would never be the one seen
 * (docs/protocol/proxy.md §Streams; web/src/page-timings.ts refuses such a `proxyHeadTimeoutMs`).
 */
export const SW_HEAD_MS = 35_000;

/**
 * The Service Worker's wait for a response head (sw/peer-proxy.ts `answer`), the same rule as the
 * requester's (core/proxy/client.ts `#awaitHead`, docs/protocol/proxy.md §Streams): `onTimeout`
 * once `ms` pass while the worker waits on the window — from now, and again from each piece of
 * the request body it hands over (`handed`: an `upload-chunk` or `upload-end` posted). From an
 * `upload-pull` (`pulled`: the window asks for the next piece) until that piece is handed over,
 * the worker waits on the page's own request body, which may pause as long as the user types or
 * records: the wait is stopped. `over` at the head or a failure: nothing starts it again (an
 * answer that came before the whole body went up leaves the rest unbound by it).
 */
export function headWait(
  onTimeout: () => void,
  ms: number = SW_HEAD_MS,
): { pulled: () => void; handed: () => void; over: () => void } {
  let done = false;
  /** Pieces asked for and not handed over yet. */
  let owed = 0;
  let timer: ReturnType<typeof setTimeout> | undefined = setTimeout(onTimeout, ms);
  const stop = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  return {
    pulled: () => {
      if (done) return;
      owed++;
      stop();
    },
    handed: () => {
      if (done) return;
      owed = Math.max(0, owed - 1);
      stop();
      if (owed === 0) timer = setTimeout(onTimeout, ms);
    },
    over: () => {
      done = true;
      stop();
    },
  };
}

/** Whether `pathname` is contacts' content, `/peer` or under `/peer/` (docs/protocol/proxy.md). */
export const isPeerPath = (pathname: string): boolean =>
  pathname === "/peer" || pathname.startsWith("/peer/");

/**
 * Whether an app reached at `hostname` has a content origin, `peer.<host>` (docs/protocol/proxy.md
 * §Isolation). An IP address has no subdomain. `localhost` (and `x.localhost`) has one, but
 * `peer.localhost` is another site to the browser, which then partitions the bridge frame's
 * Service Worker away from a tab of that origin: the content could not be answered. (So is any
 * name under a suffix the browser does not know, such as `.lan`: docs/operations.md.)
 */
export function hasContentOrigin(hostname: string): boolean {
  return !/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\]|(.+\.)?localhost)$/i.test(hostname);
}

/**
 * The CSP of what the content origin serves itself (the bridge page and script, its worker, the
 * "Open Loft" page), from the host (host/content-origin.ts) or from the content origin's worker
 * (sw/peer-origin.ts): its own scripts and worker only; framed by the app's origin only.
 */
export function contentOriginPolicy(appHost: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "worker-src 'self'",
    "connect-src 'self'",
    `frame-ancestors ${appHost}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
}

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
    (r.body === undefined || r.body instanceof Uint8Array) &&
    (r.upload === undefined || (r.upload === true && r.body === undefined))
  );
}
