/**
 * Two in-memory data channels joined end to end, standing in for the `loft-bulk` RTCDataChannel
 * pair in Node (web/src/net/bulk-lane.ts runs unchanged over them): ordered, reliable, messages
 * delivered in a later microtask as ArrayBuffers, `bufferedAmount` always 0. `cut` drops
 * everything from then on (the network vanished); `tamper` may change a message in transit.
 */
import type { BulkChannelLike } from "../../web/src/net/bulk-lane.ts";

export class FakeBulkChannel extends EventTarget implements BulkChannelLike {
  readyState: RTCDataChannelState = "connecting";
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  binaryType: BinaryType = "arraybuffer";
  other: FakeBulkChannel | undefined;
  cut = false;
  /** Messages sent on this end. */
  sent = 0;
  /** Sees (and may change or drop: return undefined) each message this end sends. */
  tamper: ((m: Uint8Array) => Uint8Array | undefined) | undefined;

  open(): void {
    this.readyState = "open";
    this.dispatchEvent(new Event("open"));
  }

  send(data: Uint8Array<ArrayBuffer>): void {
    if (this.readyState !== "open") throw new Error("InvalidStateError: the channel is not open");
    this.sent++;
    if (this.cut) return;
    const copy = this.tamper ? this.tamper(data.slice()) : data.slice();
    if (!copy) return;
    queueMicrotask(() => this.other?.receive(copy));
  }

  receive(m: Uint8Array): void {
    if (this.cut || this.readyState !== "open") return;
    const data = m.buffer.slice(m.byteOffset, m.byteOffset + m.byteLength);
    this.dispatchEvent(new MessageEvent("message", { data }));
  }

  close(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    const other = this.other;
    if (!this.cut) queueMicrotask(() => other?.remoteClosed());
  }

  remoteClosed(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.dispatchEvent(new Event("close"));
  }
}

/** Two joined channels, open unless `open` is false (then `open()` each). */
export function fakeChannelPair(open = true): [FakeBulkChannel, FakeBulkChannel] {
  const a = new FakeBulkChannel();
  const b = new FakeBulkChannel();
  a.other = b;
  b.other = a;
  if (open) {
    a.open();
    b.open();
  }
  return [a, b];
}
