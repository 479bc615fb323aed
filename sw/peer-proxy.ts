/**
 * The E2EE fetch proxy's Service Worker end (docs/protocol/proxy.md §Service Worker). It runs on
 * the content origin (`peer.<app host>`, sw/peer-origin.ts), never on the app's: every request
 * under `/peer/<contact>/<path>` — fetch(), <img>, <video>, <iframe>, a navigation in a new tab —
 * is answered by that contact through a Loft window. The SW cannot hold the session, so it opens
 * a MessageChannel, hands one end to the bridge page (`/peer-bridge.html`) that a Loft window
 * frames, which passes it to that window; the SW sends the request head, and streams the answer
 * into a Response whose body is a ReadableStream pulled chunk by chunk (backpressure: nothing is
 * fetched faster than the browser reads this stream — which, for a page's fetch(), Chromium does
 * whether or not the page reads, as for a body served directly, up to a bound of its own (about
 * 55 MiB measured, not the whole body): docs/protocol/proxy.md, "Flow control"). The page
 * dropping the request cancels it end to end.
 * When it cannot be answered, the person gets a clear page (./peer-errors.ts), never the network.
 */
import {
  allowHeaders,
  type Headers,
  METHODS,
  type ProxyMethod,
  REQUEST_HEADERS,
} from "../core/proxy/frames.ts";
import {
  CONTACT_ID,
  headWait,
  type PageErrorCode,
  type PortReply,
  type PortRequest,
} from "../core/proxy/port.ts";
import { errorPage } from "./peer-errors.ts";

declare const self: ServiceWorkerGlobalScope;

/** How long a window has to take the request before the next one is asked (it is running Loft). */
const ACCEPT_MS = 3000;
/**
 * Chunks queued in the SW ahead of the page (each ≤ 65 510 bytes: one DATA body, or short ones
 * the window joined up to that size), and pulls the SW keeps outstanding at the window: queued +
 * asked-for never exceed it (docs/protocol/proxy.md §Service Worker). One pull at a time made every chunk wait for a round trip between this
 * worker's process and the window's (bench:proxy-browser).
 */
const QUEUED_CHUNKS = 4;

/** The bridge page a Loft window frames on this origin (./peer-bridge.ts). */
const BRIDGE_PATH = "/peer-bridge.html";
/** The app's host: this origin is `peer.` + the app's. */
export const APP_HOST = self.location.host.replace(/^peer\./, "");
/** The app's address, for the error pages' "Open Loft" link. */
const APP_HOME = `${self.location.protocol}//${APP_HOST}/`;

/**
 * Headers every proxied response gets, whatever the contact sent. The shared page runs on the
 * content origin, apart from the app (docs/protocol/proxy.md §Isolation); it may load only what
 * this origin serves and is kept from framing, plugins and form posts elsewhere.
 */
const PROXY_HEADERS: [string, string][] = [
  ["x-content-type-options", "nosniff"],
  ["referrer-policy", "no-referrer"],
  ["cross-origin-opener-policy", "noopener-allow-popups"],
  [
    "content-security-policy",
    "default-src 'self' data: blob:; script-src 'self'; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'",
  ],
];

export async function handlePeerRequest(event: FetchEvent): Promise<Response> {
  const request = event.request;
  const url = new URL(request.url);
  const m = /^\/peer\/([^/]*)(\/.*)?$/.exec(url.pathname);
  if (!m || !CONTACT_ID.test(m[1]!)) return errorPage("bad_request", undefined, APP_HOME);
  if (m[2] === undefined) return Response.redirect(`${url.origin}/peer/${m[1]}/${url.search}`, 302);
  const method = request.method as ProxyMethod;
  if (!METHODS.includes(method)) return errorPage("bad_request", `method ${method}`, APP_HOME);
  // All contacts' pages share this origin: a page of one contact may not load another's content
  // (it could read it, being same-origin) — no fetch, subresource or frame. A top-level
  // navigation stays allowed: the new page starts its own browsing context group (COOP
  // `noopener-allow-popups`, PROXY_HEADERS), so the page that opened it keeps no handle on it.
  // The Loft windows are looked up while the requester is (each a round trip to the browser).
  const windows = bridgeWindows();
  windows.catch(() => undefined);
  if (request.mode !== "navigate" || request.destination !== "document") {
    const from = await requester(event);
    if (from !== undefined && from !== m[1]) return errorPage("other_contact", undefined, APP_HOME);
  }
  // A request body is streamed to the window as it asks for it (PortRequest `upload`): never read
  // whole here; the serving side's credit paces the page's upload, and it bounds the size.
  const upload = method !== "GET" && method !== "HEAD" ? request.body : null;
  const message: PortRequest = {
    type: "loft-proxy",
    contact: m[1]!,
    method,
    path: `${m[2]}${url.search}`,
    headers: allowHeaders(request.headers, REQUEST_HEADERS),
    ...(upload ? { upload: true as const } : {}),
  };
  const port = await sendToWindow(message, await windows);
  if (!port) {
    void upload?.cancel().catch(() => undefined);
    return errorPage("no_window", undefined, APP_HOME);
  }
  return answer(port, method, request.signal, upload ? uploader(port, upload) : undefined);
}

/**
 * Answers the window's `upload-pull`s with the request body, one piece each; `handed` once each
 * piece (or the end, or the failure) is posted — until then the worker waits on the page, not on
 * the window (core/proxy/port.ts `headWait`).
 */
function uploader(port: MessagePort, body: ReadableStream<Uint8Array>): (handed: () => void) => void {
  const reader = body.getReader();
  let reading = Promise.resolve();
  return (handed) => {
    // One read at a time, in order, however the pulls arrive.
    reading = reading.then(async () => {
      try {
        const { done, value } = await reader.read();
        if (done) port.postMessage({ type: "upload-end" });
        else {
          const bytes = value.slice();
          port.postMessage({ type: "upload-chunk", bytes }, [bytes.buffer]);
        }
      } catch {
        port.postMessage({ type: "cancel", reason: "the page's request body failed" });
      } finally {
        handed();
      }
    });
  };
}

/**
 * Whose page made this request: the contact id in the requesting client's `/peer/<id>/` path,
 * `""` for a client elsewhere on this origin (the bridge page: it never fetches content), or
 * undefined for a navigation (no client) or a client that is gone.
 */
async function requester(event: FetchEvent): Promise<string | undefined> {
  if (!event.clientId) return undefined;
  const client = await self.clients.get(event.clientId);
  if (!client) return undefined;
  return /^\/peer\/([0-9a-f]{64})\//.exec(new URL(client.url).pathname)?.[1] ?? "";
}

/**
 * A port to a Loft window that accepted the request, trying focused and visible windows first:
 * each is reached through the bridge page it frames, which passes the port on to it.
 */
async function sendToWindow(message: PortRequest, windows: WindowClient[]): Promise<MessagePort | undefined> {
  for (const client of windows) {
    const channel = new MessageChannel();
    const accepted = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ACCEPT_MS);
      channel.port1.onmessage = (e: MessageEvent<PortReply>) => {
        clearTimeout(timer);
        resolve(e.data?.type === "accepted");
      };
    });
    client.postMessage(message, [channel.port2]);
    if (await accepted) return channel.port1;
    channel.port1.close();
  }
  return undefined;
}

/** The bridge pages Loft windows frame on this origin, focused and visible first. */
async function bridgeWindows(): Promise<WindowClient[]> {
  return (await self.clients.matchAll({ type: "window", includeUncontrolled: true }))
    .filter((c) => new URL(c.url).pathname === BRIDGE_PATH)
    .sort((a, b) => rank(b) - rank(a));
}

const rank = (c: WindowClient) => (c.focused ? 2 : 0) + (c.visibilityState === "visible" ? 1 : 0);

/** The Response: status and headers from the head, the body pulled from the port as the browser reads it. */
function answer(
  port: MessagePort,
  method: string,
  signal: AbortSignal,
  uploadPull?: (handed: () => void) => void,
): Promise<Response> {
  return new Promise<Response>((resolve) => {
    let onReply: (reply: PortReply) => void;
    let finished = false;
    // From the window's taking it, stopped from each `upload-pull` until its piece of the page's
    // body is handed over, then again from there (core/proxy/port.ts `headWait`).
    const head = headWait(() => fail("timeout"));
    const fail = (code: PageErrorCode, detail?: string) => {
      if (finished) return;
      finished = true;
      head.over();
      port.postMessage({ type: "cancel", reason: code });
      port.close();
      resolve(errorPage(code, detail, APP_HOME));
    };
    port.onmessage = (e: MessageEvent<PortReply>) => {
      if (e.data?.type === "upload-pull") {
        // Only a request with a body has pieces to hand over: a pull for none stops nothing.
        if (!uploadPull) return;
        head.pulled();
        uploadPull(head.handed);
      } else onReply(e.data);
    };
    onReply = (reply) => {
      if (reply.type === "refused") return fail(reply.code, reply.reason);
      if (reply.type !== "head") return;
      head.over();
      finished = true;
      const headers = responseHeaders(reply.headers);
      const nullBody = method === "HEAD" || [101, 204, 205, 304].includes(reply.status);
      if (nullBody) port.postMessage({ type: "cancel", reason: "no body" });
      resolve(
        new Response(nullBody ? null : bodyStream(port, signal, (r) => (onReply = r)), {
          status: reply.status,
          headers,
        }),
      );
    };
    signal.addEventListener("abort", () => fail("cancelled"));
  });
}

function responseHeaders(from: Headers): globalThis.Headers {
  const headers = new globalThis.Headers();
  for (const [name, value] of from) headers.append(name, value);
  for (const [name, value] of PROXY_HEADERS) headers.set(name, value);
  return headers;
}

/**
 * The body as a stream that asks the window for chunks — one `pull` message per chunk, as many
 * outstanding as the queue has room for — and cancels it when dropped.
 */
function bodyStream(
  port: MessagePort,
  signal: AbortSignal,
  listen: (onReply: (reply: PortReply) => void) => void,
): ReadableStream<Uint8Array> {
  let wake: (() => void) | undefined;
  let done = false;
  /** Pulls posted whose chunk has not arrived yet. */
  let asked = 0;
  const cancel = (reason: string) => {
    if (done) return;
    done = true;
    port.postMessage({ type: "cancel", reason });
    port.close();
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        listen((reply) => {
          if (done) return;
          if (reply.type === "chunk") {
            asked = Math.max(0, asked - 1);
            controller.enqueue(reply.bytes);
          } else if (reply.type === "end") {
            done = true;
            port.close();
            controller.close();
          } else if (reply.type === "error") {
            done = true;
            port.close();
            controller.error(new Error(`${reply.code}: ${reply.reason}`));
          }
          wake?.();
        });
        signal.addEventListener("abort", () => cancel("page dropped the request"));
      },
      pull(controller) {
        if (done) return;
        // Room in the queue not yet asked for: each pull message is answered by one chunk (or
        // the end), so the window never sends more than the queue can hold.
        const room = Math.max(0, (controller.desiredSize ?? 1) - asked);
        for (let i = 0; i < room; i++) port.postMessage({ type: "pull" });
        asked += room;
        return new Promise<void>((resolve) => {
          wake = resolve;
        });
      },
      cancel(reason) {
        cancel(String(reason ?? "cancelled"));
      },
    },
    new CountQueuingStrategy({ highWaterMark: QUEUED_CHUNKS }),
  );
}
