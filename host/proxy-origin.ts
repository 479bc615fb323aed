/**
 * A proxy handler that forwards to a local HTTP origin (docs/protocol/proxy.md §Serving an HTTP
 * origin) — what `loft expose http://127.0.0.1:PORT --to <contact>` serves. The request keeps
 * only the allowlisted headers it arrived with; redirects are handed back, never followed; the
 * response body is read from the origin only as fast as the contact's credit allows (the
 * multiplexer pulls), and cancelling the request aborts the origin fetch.
 */
import type { BodyReader } from "../core/proxy/body.ts";
import { normalizePath } from "../core/proxy/paths.ts";
import type { HandlerResult, ProxyHandler, ServedRequest } from "../core/proxy/server.ts";

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
  return async (request: ServedRequest): Promise<HandlerResult> => {
    if (!options.isContact(request.peer)) return refuse(request, "not_a_contact", "not a contact");
    const url = sharedUrl(request, options.contacts, origin);
    if (!url) return refuse(request, "not_shared", "nothing is shared at that path");
    const abort = new AbortController();
    const hasBody = request.method !== "GET" && request.method !== "HEAD";
    let sent = 0;
    let tooLarge = false;
    // The request body streams to the origin as it arrives (fetch's half-duplex upload), pulled
    // only as the origin reads, so the contact's credit follows the origin's pace.
    const body = hasBody
      ? new ReadableStream<Uint8Array>(
          {
            async pull(controller) {
              const chunk = await request.body.read();
              if (chunk === null) return controller.close();
              sent += chunk.length;
              if (sent > maxBody) {
                tooLarge = true;
                request.body.cancel("too large");
                return controller.error(new RangeError("request body too large"));
              }
              controller.enqueue(chunk);
            },
            cancel: () => request.body.cancel("origin stopped reading"),
          },
          { highWaterMark: 0 },
        )
      : undefined;
    if (!hasBody) request.body.cancel("no body");
    let res: Response;
    try {
      res = await fetch(url, {
        method: request.method,
        // identity: the body's bytes and Content-Length reach the contact as the origin sent them
        headers: [...request.headers, ["accept-encoding", "identity"]],
        redirect: "manual",
        signal: abort.signal,
        ...(body ? { body, duplex: "half" } : {}),
      } as RequestInit);
    } catch {
      if (tooLarge) return { refuse: "too_large", reason: `request body over ${maxBody} bytes` };
      return { refuse: "origin_error", reason: "the shared service did not answer" };
    }
    const reader = res.body?.getReader();
    const out: BodyReader = {
      read: async () => {
        if (!reader) return null;
        const { done, value } = await reader.read();
        return done ? null : value;
      },
      cancel: () => {
        abort.abort();
        void reader?.cancel().catch(() => undefined);
      },
    };
    const headers = [...res.headers].filter(
      ([n]) => n !== "content-length" || !res.headers.has("content-encoding"),
    );
    return { status: res.status, headers, body: out };
  };
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
