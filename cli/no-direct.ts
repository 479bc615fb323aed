/**
 * The direct transport of a peer that has none (docs/design.md, "Transports"): Node has no WebRTC
 * data channel without a native module, and node-datachannel is not allowed to build here
 * (package.json `allowScripts`), so a headless peer goes live through the relay only.
 *
 * - Our dials: every one fails at once with `ERR_WEBRTC_SUPPORT`, a path failure
 *   (web/src/engine/errors.ts), so the engine's controller takes the live relay link straight away
 *   instead of waiting `relayFallbackMs`; no upgrade to direct is ever possible.
 * - Contacts' direct offers (a browser dialing us): answered at once with `bye` `no-direct`
 *   (docs/protocol/chat.md §1), a path failure on their side too, so their engine dials the relay
 *   at once instead of waiting out its own fallback timer (4 s) for an answer that never comes.
 *   Any signer gets it, as any signer gets `refused` from a browser: it says only that this
 *   identity is online, which an offer's `refused` says too. Candidates trickled after the offer
 *   are dropped (nothing listens for them).
 */
import type { LinkCloseInfo } from "../core/link/link.ts";
import { QueueLink } from "../core/link/queue-link.ts";
import type { DialedLink, LiveTransport, TransportDeps } from "../web/src/engine/transport.ts";
import { decodeSignalPayload, encodeSignalPayload } from "../web/src/net/signal-payload.ts";

export const NO_DIRECT_REASON = "ERR_WEBRTC_SUPPORT";

/** A link that never opens: closed with a path failure as soon as it is made. */
class NoDirectLink extends QueueLink implements DialedLink {
  readonly opened: Promise<void>;
  constructor() {
    super("connecting");
    this.opened = this.closed.then((info) =>
      Promise.reject(Object.assign(new Error(info.detail ?? info.reason), { code: info.reason })),
    );
    this.opened.catch(() => {});
    queueMicrotask(() =>
      this.close(NO_DIRECT_REASON, "no WebRTC in this Node peer: the relay carries the link"),
    );
  }
  protected transmit(): void {}
  protected teardown(_info: LinkCloseInfo): void {}
}

export function noDirectTransport(deps: TransportDeps): LiveTransport {
  const off = deps.signaling.on((event) => {
    if (event.type !== "signal" || event.envelope.kind !== "offer") return;
    const decoded = decodeSignalPayload("offer", event.envelope.payload);
    // A relay offer is the relay transport's (web/src/net/relay-live.ts); malformed ones are dropped.
    if (!decoded.ok || decoded.value.kind !== "offer") return;
    const bye = encodeSignalPayload({ kind: "bye", conn: decoded.value.conn, reason: "no-direct" });
    deps.signaling.signal(event.envelope.from, "bye", bye).catch(() => {});
  });
  return { path: "direct", dial: () => new NoDirectLink(), close: off };
}
