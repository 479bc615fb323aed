/**
 * The E2EE fetch proxy over a contact's live session (docs/protocol/proxy.md §Carrying frames over
 * a session): one `ProxyEndpoint` per live session — its requesting side is what this device uses
 * to open `/peer/<contact>/…`, its serving side answers the contact from this device's shares.
 * Each proxy message travels in one PROXY session frame (wire.ts, 0x20), straight on the Noise
 * session: the transport already gives it confidentiality, integrity, order and replay
 * protection, and bodies are flow-controlled by the proxy's own credit (nothing is read ahead of
 * the window the other side granted), so a slow reader holds the source back end to end; the
 * serving side also waits on the link's drain before each DATA, so many bodies' windows together
 * never overflow the data channel's send buffer (docs/protocol/proxy.md §Flow control).
 *
 * The engine knows nothing of shares: the app sets what serves them (`serveProxy`). Until it does,
 * every request from a contact is refused `not_shared`.
 */

import { LoftError } from "../../../core/errors.ts";
import { TAGLEN } from "../../../core/noise/primitives.ts";
import type { ProxyClient } from "../../../core/proxy/client.ts";
import { ProxyEndpoint, peerChunkLimit, peerReadsNoBody } from "../../../core/proxy/endpoint.ts";
import { MAX_CHUNK, MAX_WINDOW } from "../../../core/proxy/frames.ts";
import type { ProxyHandler } from "../../../core/proxy/server.ts";
import { RELAY_LINK_PIECE } from "../../../core/relay/live-link.ts";
import type { LinkPath, ProxyServing } from "./api.ts";
import type { EngineContext, Live, Peer } from "./context.ts";
import { FRAME } from "./wire.ts";

/** The session frame type of a proxy message (docs/protocol/chat.md §3), its first part. */
const PROXY_FRAME_TYPE = Uint8Array.of(FRAME.PROXY);

const serving = new WeakMap<EngineContext, ProxyServing>();
const endpoints = new WeakMap<Live, ProxyEndpoint>();

const NOTHING_SHARED: ProxyHandler = async (request) => {
  request.body.cancel("nothing shared");
  return { refuse: "not_shared", reason: "nothing shared" };
};

/**
 * What one DATA frame adds around its body on the link: the session frame's type byte and AEAD
 * tag (core/session/frames.ts, Noise), the PROXY type byte (wire.ts), the channel byte
 * (core/proxy/endpoint.ts) and the proxy frame head (version, type, request id: 6 bytes).
 */
const DATA_OVERHEAD = 1 + TAGLEN + 1 + 1 + 6;
/**
 * The live relay link sends each link message as pieces of `RELAY_LINK_PIECE` bytes (core/relay/
 * live-link.ts: a flags byte and a sequence number, then the piece), one relay message per piece:
 * a DATA whose Noise message ends a few bytes into a piece costs a whole extra relay message for
 * that tail (the relay's per-connection rate counts messages), so on the relay a body's DATA fills
 * whole pieces exactly — as many as fit in one session frame (four), `RELAY_DATA_CHUNK` bytes.
 * Four pieces of one message leave together (the link sends them in one turn): a SREMP 1.3 relay
 * takes them as one SENDS frame under one authenticator, and each end seals or opens one Noise
 * message, not four (docs/protocol/proxy.md, "DATA size"; bench/README.md §bench:proxy-browser).
 */
export const RELAY_DATA_PIECES = Math.floor((MAX_CHUNK + DATA_OVERHEAD) / RELAY_LINK_PIECE);
export const RELAY_DATA_CHUNK = RELAY_DATA_PIECES * RELAY_LINK_PIECE - DATA_OVERHEAD;

/**
 * The largest DATA body to send on a session over `path` to a peer that accepts `accepted`
 * (core/proxy/endpoint.ts `peerChunkLimit`; docs/protocol/proxy.md, "DATA size"): on a direct
 * link, one whole session frame's worth, so each DATA costs one seal and one link message; on the
 * relay, the most whole relay pieces the peer accepts (one for a peer that takes 16 KiB).
 */
export function proxyChunkFor(path: LinkPath, accepted: number): number {
  if (path !== "relay") return Math.min(MAX_CHUNK, accepted);
  const pieces = Math.min(RELAY_DATA_PIECES, Math.floor((accepted + DATA_OVERHEAD) / RELAY_LINK_PIECE));
  return pieces >= 1 ? pieces * RELAY_LINK_PIECE - DATA_OVERHEAD : accepted;
}

/**
 * The response window this side grants per request (docs/protocol/proxy.md §Flow control): the
 * most a body can have in flight, so on a link with a round trip of `rtt` a body moves at most
 * about window / rtt. 1 MiB (the protocol's largest) on a direct link — a data channel across
 * the internet has tens of milliseconds of round trip, where 256 KiB, refilled at half, held a
 * body to a few MB/s; 256 KiB on the live relay link, whose per-connection pace is the limit and
 * where every byte in flight also sits in the relay's queue.
 */
export function proxyWindowFor(path: LinkPath): number {
  return path === "relay" ? 256 * 1024 : MAX_WINDOW;
}

export function serveProxy(ctx: EngineContext, s: ProxyServing | undefined): void {
  if (s) serving.set(ctx, s);
  else serving.delete(ctx);
}

/** The session's endpoint, made on first use; it ends (both directions) when the session closes. */
function endpointOf(ctx: EngineContext, peer: Peer, live: Live): ProxyEndpoint {
  const known = endpoints.get(live);
  if (known) return known;
  const maxChunk = proxyChunkFor(live.path, peerChunkLimit(live.session.remoteExtensions));
  let cut = false;
  const endpoint = new ProxyEndpoint(
    (message) => {
      if (live.session.writable) {
        // Bulk (docs/protocol/session.md §5, "Bulk frames"): a body's window never holds a chat
        // message back; the proxy's frames keep their order among themselves.
        live.session.sendParts([PROXY_FRAME_TYPE, ...message], { bulk: true });
        return;
      }
      // The link closed under the session (its reader still draining): the frame would be dropped
      // and its request left waiting for a session that can no longer answer. Every request ends
      // now, with a clear error (docs/protocol/proxy.md §Carrying frames over a session) — after
      // the call that sent it, not inside it.
      if (cut) return;
      cut = true;
      queueMicrotask(() => {
        ctx.cfg.log(`proxy ${peer.id.slice(0, 8)}: requests ended, the link closed under the session`);
        endpoint.close(new LoftError("LOFT_ERR_LINK_CLOSED", "the link closed under the session"));
      });
    },
    {
      peer: peer.id,
      maxChunk,
      // Looked up per request: shares and contacts change while a session lasts.
      handler: (request) => (serving.get(ctx)?.handler ?? NOTHING_SHARED)(request),
      limiter: { take: (key, at) => serving.get(ctx)?.limiter.take(key, at) ?? true },
      log: (record) => serving.get(ctx)?.log(record),
      // The link's backpressure before each response DATA (as file transfers do, files/
      // transfers.ts): credit bounds each body, not 16 bodies' windows together, which on a
      // slow link would overflow the data channel's buffer and close the session.
      ready: () => live.drain?.() ?? Promise.resolve(),
    },
    // A body-less request is one REQUEST frame to a peer that reads NO_BODY (proxy.flags).
    {
      maxChunk,
      window: proxyWindowFor(live.path),
      noBody: peerReadsNoBody(live.session.remoteExtensions),
      headTimeoutMs: ctx.cfg.proxyHeadTimeoutMs,
    },
  );
  endpoints.set(live, endpoint);
  void live.session.closed.then(() => endpoint.close());
  return endpoint;
}

/** The requesting side over the contact's live session, or undefined when there is none. */
export function proxyClientOf(ctx: EngineContext, peer: Peer | undefined): ProxyClient | undefined {
  const live = peer?.live;
  // Not one whose link closed under it: its requests could not leave (`writable`).
  if (!peer || !live?.session.writable) return undefined;
  return endpointOf(ctx, peer, live).client;
}

/** One PROXY frame from the live session; a protocol violation closes the session. */
export function receiveProxy(ctx: EngineContext, peer: Peer, live: Live, message: Uint8Array): void {
  const r = endpointOf(ctx, peer, live).receive(message);
  if (!r.ok) live.session.close(r.error.code, r.error.detail);
}
