/**
 * An in-memory pair of Links for tests and for wiring two state machines in one process.
 * Delivery is asynchronous (a microtask) so that tests exercise the same interleavings as a
 * real transport, and closing one end closes the other with `remote-closed`.
 */
import type { LinkCloseInfo } from "./link.ts";
import { QueueLink } from "./queue-link.ts";

class MemoryLink extends QueueLink {
  peer: MemoryLink | undefined;

  protected transmit(message: Uint8Array): void {
    const copy = message.slice();
    queueMicrotask(() => this.peer?.receiveFromPeer(copy));
  }

  receiveFromPeer(message: Uint8Array): void {
    this.deliver(message);
  }

  protected teardown(info: LinkCloseInfo): void {
    const peer = this.peer;
    queueMicrotask(() => peer?.remoteClosed(info));
  }

  remoteClosed(info: LinkCloseInfo): void {
    this.finish({ reason: "remote-closed", detail: info.reason }, false);
  }
}

/** Two connected Links: what one sends, the other receives. */
export function memoryLinkPair(): [QueueLink, QueueLink] {
  const a = new MemoryLink();
  const b = new MemoryLink();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
