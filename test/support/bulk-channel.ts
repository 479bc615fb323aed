/**
 * Two in-memory data channels joined end to end, standing in for the `loft-bulk` RTCDataChannel
 * pair in Node (web/src/net/bulk-lane.ts runs unchanged over them): ordered, reliable, messages
 * delivered in a later microtask as ArrayBuffers, `bufferedAmount` always 0. `cut` drops
 * everything from then on (the network vanished); `tamper` may change, drop, repeat or hold back
 * messages in transit.
 */
import type { BulkChannelLike } from "../../web/src/net/bulk-lane.ts";

export class FakeBulkChannel extends EventTarget implements BulkChannelLike {
  readyState: RTCDataChannelState = "connecting";
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  binaryType: BinaryType = "arraybuffer";
  other: FakeBulkChannel | undefined;
  cut = false;
  /** Frames (messages other than the lane's hello) sent on this end. */
  frames = 0;
  /** Sees each message this end sends and says what goes instead (none, itself, changed, more). */
  tamper: ((m: Uint8Array) => Uint8Array[]) | undefined;

  open(): void {
    this.readyState = "open";
    this.dispatchEvent(new Event("open"));
  }

  send(data: Uint8Array<ArrayBuffer>): void {
    if (this.readyState !== "open") throw new Error("InvalidStateError: the channel is not open");
    if (data[0] !== 0) this.frames++;
    if (this.cut) return;
    const out = this.tamper ? this.tamper(data.slice()) : [data.slice()];
    for (const m of out) queueMicrotask(() => this.other?.receive(m));
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
