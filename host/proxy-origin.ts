/**
 * A proxy handler that forwards to a local HTTP origin (docs/protocol/proxy.md §Serving an HTTP
 * origin) — what `loft expose http://127.0.0.1:PORT --to <contact>` serves. The request keeps
 * only the allowlisted headers it arrived with; redirects are handed back, never followed; the
 * response body is read from the origin only as fast as the contact's credit allows (the
 * multiplexer pulls), and cancelling the request aborts the origin fetch.
 */
import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { type BodyReader, TAIL_HOLD_MS } from "../core/proxy/body.ts";
import { normalizePath } from "../core/proxy/paths.ts";
import type { HandlerResult, ProxyHandler, ServedRequest } from "../core/proxy/server.ts";

/**
 * What the origin's socket and response may hold unread in this process, per request
 * (docs/protocol/proxy.md §Serving an HTTP origin). Node's default (16 KiB) pauses the socket
 * after every 64 KiB read and resumes it on the next pull — a trip through the event loop per
 * chunk, about a tenth of a proxied MiB's time (bench/README.md §bench:proxy); 256 KiB keeps the
 * socket read while the contact's credit lasts. A slow contact still holds the origin back:
 * past this the socket is paused and the origin's writes wait on TCP.
 */
const ORIGIN_READ_AHEAD = 256 * 1024;
/**
 * Most bytes one `read()` of the reader takes from the response: a socket read's size (libuv
 * reads 64 KiB), so a chunk the socket delivered whole comes out as itself, never joined (a fresh
 * buffer and a copy) with the others waiting behind it.
 */
const SOCKET_READ = 64 * 1024;

export interface OriginOptions {
  /** e.g. "http://127.0.0.1:8080" (no path). */
  origin: string;
  /** Contacts allowed to reach it. */
  contacts: ReadonlySet<string>;
  isContact: (peer: string) => boolean;
  /** Request bodies larger than this are refused with `too_large` (default 8 MiB). */
  maxRequestBody?: number;
}

export function httpOriginHandler(options: OriginOptions): ProxyHandler {
  const origin = new URL(options.origin);
  if (origin.pathname !== "/" || origin.search || origin.hash)
    throw new TypeError("origin: no path, query or hash");
  const maxBody = options.maxRequestBody ?? 8 * 1024 * 1024;
  const secure = origin.protocol === "https:";
  // One keep-alive pool per origin: a page's requests reuse connections, as a browser's would.
  const agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  return async (request: ServedRequest): Promise<HandlerResult> => {
    if (!options.isContact(request.peer)) return refuse(request, "not_a_contact", "not a contact");
    const url = sharedUrl(request, options.contacts, origin);
    if (!url) return refuse(request, "not_shared", "nothing is shared at that path");
    const hasBody = request.method !== "GET" && request.method !== "HEAD";
    if (!hasBody) request.body.cancel("no body");
    const headers: Record<string, string> = {};
    for (const [name, value] of request.headers)
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    // identity: the body's bytes and Content-Length reach the contact as the origin sent them
    headers["accept-encoding"] = "identity";
    // node:http, not fetch: it never follows a redirect (they are handed back), and it hands the
    // body over as the socket's own chunks, with no web-stream layer per chunk — the origin read
    // is a large part of a proxied body's cost (bench/README.md §bench:proxy).
    // highWaterMark: Node's http.request takes it (the socket's and the response's read-ahead)
    // though @types/node does not list it yet.
    const asked: RequestOptions = { method: request.method, headers, agent };
    Object.assign(asked, { highWaterMark: ORIGIN_READ_AHEAD });
    const req = (secure ? httpsRequest : httpRequest)(url, asked);
    let tooLarge = false;
    const answered = new Promise<IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", reject);
    });
    if (hasBody) void upload(req, request, maxBody, () => (tooLarge = true));
    else req.end();
    let res: IncomingMessage;
    try {
      res = await answered;
    } catch {
      req.destroy();
      if (tooLarge) return { refuse: "too_large", reason: `request body over ${maxBody} bytes` };
      return { refuse: "origin_error", reason: "the shared service did not answer" };
    } finally {
      // Later errors (a cancel destroys both) surface through the body reader, never as an
      // unhandled 'error' event.
      req.on("error", () => undefined);
    }
    const out = responseReader(res, req);
    const pairs: [string, string][] = [];
    for (const [name, value] of Object.entries(res.headers))
      if (value !== undefined) pairs.push([name, Array.isArray(value) ? value.join(", ") : value]);
    const named = (n: string) => pairs.some(([k]) => k === n);
    const kept = pairs.filter(([n]) => n !== "content-length" || !named("content-encoding"));
    // node:http hands the body over one socket read (64 KiB) at a time, the next one rarely in
    // when a DATA is cut: a short tail waits TAIL_HOLD_MS for it, not a DATA of its own
    // (core/proxy/body.ts; bench/README.md §bench:proxy, session 16 — 17 DATA per 1 MiB, not 32).
    return { status: res.statusCode ?? 502, headers: kept, body: out, tailHoldMs: TAIL_HOLD_MS };
  };
}

/**
 * The origin's response body as a BodyReader, read straight from the stream's buffer (`read()`),
 * waiting on 'readable' only when it is empty: no async iterator (an async generator and several
 * promises per chunk, bench/README.md §bench:proxy). A response that closes before its end (the
 * origin reset the connection, or cut a body short of its Content-Length) rejects the read, so the
 * contact gets a RESET `origin_error`, never a body that looks whole.
 */
function responseReader(res: IncomingMessage, req: ClientRequest): BodyReader {
  let ended = false;
  let failed: Error | undefined;
  let waiter: (() => void) | undefined;
  const wake = () => {
    const w = waiter;
    waiter = undefined;
    w?.();
  };
  res.on("readable", wake);
  res.once("end", () => {
    ended = true;
    wake();
  });
  res.on("error", (e) => {
    failed ??= e;
    wake();
  });
  let closed = false;
  res.once("close", () => {
    closed = true;
    wake();
  });
  return {
    async read() {
      for (;;) {
        const held = res.readableLength;
        const chunk: Buffer | null = held > 0 ? res.read(Math.min(held, SOCKET_READ)) : res.read();
        if (chunk !== null) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
        if (ended) return null;
        if (failed) throw failed;
        // Closed with nothing left to read: whole only if every byte the origin announced came.
        if (closed) {
          if (res.complete) return null;
          throw new Error("the origin's response closed before its end");
        }
        await new Promise<void>((resolve) => {
          waiter = resolve;
        });
      }
    },
    cancel() {
      res.destroy();
      req.destroy();
    },
    // What the socket already delivered: the sender may join it to a short tail (core/proxy/body.ts).
    available: () => res.readableLength,
  };
}

/**
 * Streams the request body up as it arrives, pulled only as the origin's socket drains, so the
 * contact's credit follows the origin's pace; over `maxBody` the request is cut (`too_large`).
 */
async function upload(
  req: ClientRequest,
  request: ServedRequest,
  maxBody: number,
  tooLarge: () => void,
): Promise<void> {
  let sent = 0;
  try {
    for (;;) {
      const chunk = await request.body.read();
      if (chunk === null) return void req.end();
      sent += chunk.length;
      if (sent > maxBody) {
        tooLarge();
        request.body.cancel("too large");
        return void req.destroy(new RangeError("request body too large"));
      }
      if (!req.write(chunk))
        await new Promise<void>((resolve) => {
          const done = () => {
            req.off("drain", done);
            req.off("close", done);
            resolve();
          };
          req.on("drain", done);
          req.on("close", done);
        });
      if (req.destroyed) return request.body.cancel("origin stopped reading");
    }
  } catch (e) {
    req.destroy(e instanceof Error ? e : new Error("request body failed"));
  }
}

/**
 * The origin's URL for this request, or undefined when the origin is not shared with this contact
 * or the path is not a clean one that stays on the origin (one answer for all three: a contact
 * learns nothing about what exists beyond what is shared).
 */
function sharedUrl(request: ServedRequest, contacts: ReadonlySet<string>, origin: URL): URL | undefined {
  if (!contacts.has(request.peer) || !normalizePath(request.path).ok) return undefined;
  const url = new URL(request.path, origin);
  return url.origin === origin.origin ? url : undefined;
}

function refuse(request: ServedRequest, code: "not_a_contact" | "not_shared", reason: string): HandlerResult {
  request.body.cancel("refused");
  return { refuse: code, reason };
}
