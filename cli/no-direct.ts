/**
 * The direct transport of a peer that has none (docs/design.md, "Transports"): Node has no WebRTC
 * data channel without a native module, and node-datachannel is not allowed to build here
 * (package.json `allowScripts`), so a headless peer goes live through the relay only. Every dial
 * fails at once with `ERR_WEBRTC_SUPPORT`, a path failure (web/src/engine/errors.ts), so the
 * engine's controller takes the live relay link straight away instead of waiting
 * `relayFallbackMs`; no upgrade to direct is ever possible. Direct offers from contacts are never
 * answered (nothing listens for them): the contact's engine falls back to the relay on its own,
 * and our own relay dial wins over its direct attempt (chat.md §1, "a relay offer … wins").
 */
import type { LinkCloseInfo } from "../core/link/link.ts";
import { QueueLink } from "../core/link/queue-link.ts";
import type { DialedLink, LiveTransport, TransportDeps } from "../web/src/engine/transport.ts";

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

export function noDirectTransport(_deps: TransportDeps): LiveTransport {
  return { path: "direct", dial: () => new NoDirectLink(), close: () => {} };
}
