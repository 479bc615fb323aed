/**
 * The window side of the E2EE fetch proxy (docs/protocol/proxy.md §Service Worker): the content
 * origin's Service Worker hands each `/peer/<contact>/…` request to a Loft window over a
 * MessagePort, through the bridge page this window frames (./bridge.ts); this module takes it, sends it through the proxy client of that contact's session, and streams the answer
 * back one chunk per pull.
 *
 * Which session carries it:
 * - `/peer/<me>/…` — the person's own shares: a proxy client joined to a proxy server in this
 *   page (core/proxy/pair.ts), serving the shares from OPFS through the same share handler,
 *   rules, rate limit and access log that serve contacts. This is the "Share a folder" preview.
 * - `/peer/<contact>/…` — the proxy client over that contact's live session: the engine keeps a
 *   `ProxyEndpoint` (core/proxy/endpoint.ts) per session (web/src/engine/proxy-link.ts) and
 *   provides its `client` through `remote`; no live session: "Your contact is offline".
 * And the other way: `serving` answers contacts' requests from the same shares.
 */
import type { BodyReader } from "../../../core/proxy/body.ts";
import { bytesBody, joinHeld } from "../../../core/proxy/body.ts";
import { type ProxyClient, ProxyResetError, type ProxyResponse } from "../../../core/proxy/client.ts";
import { MAX_CHUNK } from "../../../core/proxy/frames.ts";
import { connectProxy } from "../../../core/proxy/pair.ts";
import type { PortPull, PortReply, PortRequest } from "../../../core/proxy/port.ts";
import { contactRequestLimit } from "../../../core/proxy/rate-limit.ts";
import type { AccessRecord } from "../../../core/proxy/server.ts";
import { shareHandler } from "../../../core/proxy/share.ts";
import type { ProxyServing } from "../engine/api.ts";
import { proxyIdleMs } from "../page-timings.ts";
import { mountBridge } from "./bridge.ts";
import { asShares, listShares, OpfsFileSource, type StoredShare } from "./opfs-shares.ts";

export interface ProxyHostDeps {
  /** The unlocked person's contact id, or undefined while Loft is locked or not set up. */
  me: () => string | undefined;
  isContact: (id: string) => boolean;
  /** The proxy client over an open session with `contact` (the engine's seam), if any. */
  remote: (contact: string) => ProxyClient | undefined;
  /** Every request served or refused on this device's shares, for the owner. */
  log: (record: AccessRecord) => void;
}

export interface ProxyHost {
  reloadShares: () => Promise<void>;
  /** What serves this device's shares to contacts over their sessions (the engine's `serveProxy`). */
  serving: ProxyServing;
}

export function startProxyHost(deps: ProxyHostDeps): ProxyHost {
  let shares: StoredShare[] = [];
  const reloadShares = async () => {
    shares = await listShares();
  };
  const loaded = reloadShares();
  let local: { me: string; client: ProxyClient } | undefined;
  const source = new OpfsFileSource();
  const limiter = contactRequestLimit();

  const localClient = (me: string): ProxyClient => {
    if (local?.me === me) return local.client;
    local?.client.close();
    const pair = connectProxy({
      peer: me,
      handler: shareHandler(
        { shares: () => asShares(shares, me), isContact: (id) => id === me || deps.isContact(id) },
        source,
      ),
      limiter,
      log: deps.log,
    });
    local = { me, client: pair.client };
    return pair.client;
  };

  // Contacts reach the same shares over their sessions: the same rules, one rate limit per
  // contact (the bucket is keyed by contact id), the same access log.
  const serving: ProxyServing = {
    handler: (request) => {
      const me = deps.me();
      if (!me) return Promise.resolve({ refuse: "not_shared", reason: "Loft is locked" });
      return loaded.then(() =>
        shareHandler({ shares: () => asShares(shares, me), isContact: deps.isContact }, source)(request),
      );
    },
    limiter,
    log: deps.log,
  };

  mountBridge((req, port) => {
    const me = deps.me();
    if (!me) return port.postMessage({ type: "declined" } satisfies PortReply);
    port.postMessage({ type: "accepted" } satisfies PortReply);
    void loaded.then(() => carry(req, port, me));
  });

  const carry = async (req: PortRequest, port: MessagePort, me: string) => {
    const reply = (r: PortReply, transfer: Transferable[] = []) => port.postMessage(r, transfer);
    let client: ProxyClient | undefined;
    if (req.contact === me) client = localClient(me);
    else if (!deps.isContact(req.contact))
      return reply({ type: "refused", code: "not_a_contact", reason: "not one of your contacts" });
    else client = deps.remote(req.contact);
    if (!client)
      return reply({ type: "refused", code: "contact_offline", reason: "no session with this contact" });

    const abort = new AbortController();
    let body: BodyReader | undefined;
    let done = false;
    const stop = (reason: string) => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      abort.abort();
      body?.cancel(reason);
      port.close();
    };
    // A Service Worker stopped mid-body (its tab gone without a cancel) never pulls again: the
    // request is reset after `idleMs` without a message from it (web/src/page-timings.ts
    // `PROXY_IDLE_MS`), so it cannot hold a slot of the session.
    const idleMs = proxyIdleMs();
    let headSent = false;
    const idled = () => {
      // Before the head, a worker silent while the body goes up is waiting on its page for the
      // next piece (core/proxy/port.ts `headWait`, stopped meanwhile): the page is told, or its
      // fetch waits on for as long as it hands nothing over (docs/protocol/proxy.md §Streams,
      // "The head wait").
      if (!done && !headSent && req.upload)
        reply({
          type: "refused",
          code: "cancelled",
          reason: `the page sent no more of its request body for ${Math.round(idleMs / 1000)} s`,
        });
      stop("idle");
    };
    let idle = setTimeout(idled, idleMs);
    port.addEventListener("close", () => stop("port closed")); // where MessagePort close events exist
    const upload = req.upload ? portUpload(port) : undefined;
    port.onmessage = (m: MessageEvent<PortPull>) => {
      clearTimeout(idle);
      if (m.data?.type === "cancel") {
        upload?.fail(m.data.reason);
        return stop(m.data.reason);
      }
      idle = setTimeout(idled, idleMs);
      if (m.data?.type === "pull") void pull();
      else if (m.data?.type === "upload-chunk" || m.data?.type === "upload-end") upload?.arrived(m.data);
    };
    let res: ProxyResponse;
    try {
      res = await client.request(
        { method: req.method, path: req.path, headers: req.headers },
        upload?.body ?? (req.body ? bytesBody(req.body) : undefined),
        abort.signal,
      );
    } catch (e) {
      if (done) return;
      done = true;
      clearTimeout(idle);
      const code = e instanceof ProxyResetError ? e.code : "protocol_error";
      reply({ type: "refused", code, reason: e instanceof ProxyResetError ? e.reason : "session closed" });
      port.close();
      return;
    }
    // What the session already holds is joined, up to one DATA's size, into each chunk sent
    // (core/proxy/body.ts `joinHeld`): on the relay path a DATA is a 16 KiB piece, and each
    // chunk is a message between this window's and the worker's processes.
    body = joinHeld(res.body, MAX_CHUNK);
    if (done) return body.cancel("cancelled");
    headSent = true;
    reply({ type: "head", status: res.status, headers: res.headers });
    // One chunk per pull; pulls that arrive while a read is pending are counted, never dropped.
    let wanted = 0;
    let reading = false;
    const pull = async () => {
      wanted++;
      if (reading || !body) return;
      reading = true;
      try {
        while (wanted > 0) {
          wanted--;
          const chunk = await body.read();
          if (chunk === null) {
            reply({ type: "end" });
            done = true;
            clearTimeout(idle);
            port.close();
            return;
          }
          // A copy of its own already (joinHeld): its buffer moves to the worker, not copied again.
          reply({ type: "chunk", bytes: chunk }, [chunk.buffer]);
        }
      } catch (e) {
        if (done) return;
        const code = e instanceof ProxyResetError ? e.code : "protocol_error";
        reply({ type: "error", code, reason: e instanceof Error ? e.message : "failed" });
        stop("failed");
      } finally {
        reading = false;
      }
    };
  };

  return { reloadShares, serving };
}

/**
 * A streamed request body (PortRequest `upload`): each `read` asks the Service Worker for one
 * piece (`upload-pull`) and waits for it, so the proxy client reads the page's upload only as its
 * credit allows — nothing buffers the whole body.
 */
function portUpload(port: MessagePort): {
  body: BodyReader;
  arrived: (m: Extract<PortPull, { type: "upload-chunk" | "upload-end" }>) => void;
  fail: (reason: string) => void;
} {
  let waiting: { resolve: (b: Uint8Array | null) => void; reject: (e: Error) => void } | undefined;
  let ended = false;
  let failed: Error | undefined;
  return {
    body: {
      read: () => {
        if (failed) return Promise.reject(failed);
        if (ended) return Promise.resolve(null);
        return new Promise<Uint8Array | null>((resolve, reject) => {
          waiting = { resolve, reject };
          port.postMessage({ type: "upload-pull" } satisfies PortReply);
        });
      },
      cancel: () => {
        ended = true;
        waiting?.resolve(null);
        waiting = undefined;
      },
    },
    arrived: (m) => {
      const w = waiting;
      waiting = undefined;
      if (m.type === "upload-end") ended = true;
      w?.resolve(m.type === "upload-chunk" ? m.bytes : null);
    },
    fail: (reason) => {
      failed = new Error(reason);
      waiting?.reject(failed);
      waiting = undefined;
    },
  };
}
