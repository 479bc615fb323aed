/**
 * A Loft `Link` (core/link/link.ts) over a serial byte stream (docs/device.md §4): fragmentation
 * of link messages into frames, sequence numbers, cumulative ACKs that double as flow-control
 * credit, and go-back-N retransmission of frames the CRC threw away. One `SerialLink` is one
 * connection; the HELLO exchange that opens it is endpoint.ts. Pure code: timers are the only
 * outside thing it uses.
 *
 * What is a security boundary and what is not: CRC, seq and ACK only make the cable reliable.
 * A frame an attacker changed with a correct CRC, or replayed with the expected seq, reaches the
 * Noise session, which refuses it (LOFT_ERR_DECRYPT) — docs/protocol/session.md §5.
 */
import { fromUtf8 } from "../bytes.ts";
import { LoftError } from "../errors.ts";
import type { LinkCloseInfo } from "../link/link.ts";
import { QueueLink } from "../link/queue-link.ts";
import {
  DEFAULT_FRAME_PAYLOAD,
  encodeFrame,
  FRAME_ACK,
  FRAME_CLOSE,
  FRAME_DATA,
  FRAME_DATA_END,
  type Frame,
  MAX_CLOSE_REASON_BYTES,
  MAX_FRAME_PAYLOAD,
} from "./frame.ts";
import type { Hello } from "./hello.ts";

/** Bytes to and from the cable. `write` must not throw; a failed port reports `portClosed`. */
export interface BytePort {
  write(bytes: Uint8Array): void;
  close(): void;
}

/** What reads a `BytePort` (an endpoint): the bytes in any chunking, then the end of the port. */
export interface BytePortSink {
  receiveBytes(chunk: Uint8Array): void;
  portClosed(detail?: string): void;
}

export interface LinkTuning {
  /** Largest frame payload we receive (announced in HELLO). Default 240. */
  maxPayload?: number;
  /** Frames we can buffer (announced in HELLO). Default 8. */
  window?: number;
  /** Largest link message we receive (announced in HELLO). Default 65535. */
  maxMessage?: number;
  /** Wait for an ACK before resending the unacknowledged frames. Default 1000 ms. */
  retransmitMs?: number;
  /** Consecutive retransmissions without progress before the link closes LOFT_ERR_TIMEOUT. Default 6. */
  maxRetransmits?: number;
}

const DEFAULTS = {
  maxPayload: DEFAULT_FRAME_PAYLOAD,
  window: 8,
  maxMessage: 0xffff,
  retransmitMs: 1000,
  maxRetransmits: 6,
};

/** Counters for diagnostics and the bench; never contain payload bytes. */
export interface LinkStats {
  framesSent: number;
  framesReceived: number;
  retransmitted: number;
  faults: number;
  duplicates: number;
  outOfOrder: number;
}

const SEQ_MOD = 0x10000;
const seqDiff = (a: number, b: number) => (a - b + SEQ_MOD) % SEQ_MOD;

function closeReasonBytes(reason: string): Uint8Array {
  let bytes = new TextEncoder().encode(reason);
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return bytes;
  bytes = bytes.subarray(0, MAX_CLOSE_REASON_BYTES);
  while (bytes.length > 0 && (bytes[bytes.length - 1]! & 0xc0) === 0x80)
    bytes = bytes.subarray(0, bytes.length - 1);
  if (bytes.length > 0 && bytes[bytes.length - 1]! >= 0xc0) bytes = bytes.subarray(0, bytes.length - 1);
  return bytes;
}

/** One connection between an owner and a device, as a Link of whole messages. */
export class SerialLink extends QueueLink {
  readonly stats: LinkStats = {
    framesSent: 0,
    framesReceived: 0,
    retransmitted: 0,
    faults: 0,
    duplicates: 0,
    outOfOrder: 0,
  };
  readonly #port: BytePort;
  readonly #peer: Hello;
  readonly #maxMessage: number;
  readonly #retransmitMs: number;
  readonly #maxRetransmits: number;
  readonly #onFinish: (link: SerialLink) => void;
  // transmit side
  #nextSeq = 0;
  /** Frames waiting for credit, oldest first from `#pendingHead` (no O(n) shift per frame). */
  #pending: Frame[] = [];
  #pendingHead = 0;
  readonly #unacked: { seq: number; wire: Uint8Array }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #retransmits = 0;
  #fastRetransmitAt = -1;
  // receive side
  #expected = 0;
  #parts: Uint8Array[] = [];
  #partBytes = 0;
  #ackDue = false;

  constructor(
    port: BytePort,
    peer: Hello,
    tuning: Required<LinkTuning>,
    onFinish: (link: SerialLink) => void,
  ) {
    super("open");
    this.#port = port;
    this.#peer = peer;
    this.#maxMessage = tuning.maxMessage;
    this.#retransmitMs = tuning.retransmitMs;
    this.#maxRetransmits = tuning.maxRetransmits;
    this.#onFinish = onFinish;
  }

  /** The peer's HELLO as decoded. */
  get peer(): Hello {
    return this.#peer;
  }

  /** Frames still waiting for an ACK or for credit (0 once everything sent was acknowledged). */
  get inFlight(): number {
    return this.#unacked.length + this.#pending.length - this.#pendingHead;
  }

  protected transmit(message: Uint8Array): void {
    const limit = Math.min(this.#peer.maxMessage, 0xffff);
    if (message.length > limit)
      throw new LoftError(
        "LOFT_ERR_FRAME_TOO_LARGE",
        `${message.length} bytes exceeds the peer's ${limit}-byte message bound`,
      );
    const size = this.#peer.maxPayload;
    let offset = 0;
    do {
      const end = Math.min(offset + size, message.length);
      this.#pending.push({
        type: end === message.length ? FRAME_DATA_END : FRAME_DATA,
        seq: 0,
        payload: message.slice(offset, end),
      });
      offset = end;
    } while (offset < message.length);
    this.#pump();
  }

  #write(bytes: Uint8Array): void {
    this.stats.framesSent++;
    this.#port.write(bytes);
  }

  /** Send what the peer's window allows. */
  #pump(): void {
    while (this.#pendingHead < this.#pending.length && this.#unacked.length < this.#peer.window) {
      const frame = this.#pending[this.#pendingHead++]!;
      frame.seq = this.#nextSeq;
      this.#nextSeq = (this.#nextSeq + 1) % SEQ_MOD;
      const wire = encodeFrame(frame);
      this.#unacked.push({ seq: frame.seq, wire });
      this.#write(wire);
    }
    if (this.#pendingHead === this.#pending.length) {
      this.#pending = [];
      this.#pendingHead = 0;
    } else if (this.#pendingHead > 1024) {
      this.#pending = this.#pending.slice(this.#pendingHead);
      this.#pendingHead = 0;
    }
    if (this.#unacked.length > 0 && this.#timer === undefined) this.#arm();
  }

  #arm(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#onTimeout();
    }, this.#retransmitMs);
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #onTimeout(): void {
    if (this.state === "closed" || this.#unacked.length === 0) return;
    if (this.#retransmits >= this.#maxRetransmits) {
      this.close("LOFT_ERR_TIMEOUT", "the other side stopped acknowledging frames");
      return;
    }
    this.#retransmits++;
    this.#resend();
    this.#arm();
  }

  /** Go-back-N: resend every unacknowledged frame, oldest first. */
  #resend(): void {
    for (const u of this.#unacked) {
      this.stats.retransmitted++;
      this.#write(u.wire);
    }
  }

  /** Called by the endpoint for each frame of this link, in stream order. */
  onFrame(frame: Frame): void {
    if (this.state === "closed") return;
    this.stats.framesReceived++;
    switch (frame.type) {
      case FRAME_ACK:
        this.#onAck(frame.seq);
        return;
      case FRAME_CLOSE: {
        let detail = "closed";
        try {
          // fromUtf8 keeps a leading U+FEFF (docs/protocol/wire.md, "Canonical MessagePack").
          detail = fromUtf8(frame.payload) || "closed";
        } catch {}
        this.#disarm();
        this.finish({ reason: "remote-closed", detail }, false);
        this.#onFinish(this);
        return;
      }
      case FRAME_DATA:
      case FRAME_DATA_END:
        this.#onData(frame);
        return;
      default:
        return;
    }
  }

  #onAck(ack: number): void {
    if (this.#unacked.length === 0) return;
    const base = this.#unacked[0]!.seq;
    const n = seqDiff(ack, base);
    if (n === 0) {
      // The peer still expects `base`: it lost a frame. Resend once per hole, not per ACK.
      if (this.#fastRetransmitAt !== base) {
        this.#fastRetransmitAt = base;
        this.#resend();
        this.#disarm();
        this.#arm();
      }
      return;
    }
    if (n > this.#unacked.length) return; // acknowledges frames never sent: stale or forged, ignore
    this.#unacked.splice(0, n);
    this.#retransmits = 0;
    this.#fastRetransmitAt = -1;
    this.#disarm();
    this.#pump();
  }

  #onData(frame: Frame): void {
    this.#ackDue = true;
    if (frame.seq !== this.#expected) {
      // Behind: a retransmission or a replay we already have. Ahead: a frame before it was lost.
      if (seqDiff(this.#expected, frame.seq) <= SEQ_MOD / 2) this.stats.duplicates++;
      else this.stats.outOfOrder++;
      return;
    }
    if (frame.type === FRAME_DATA && frame.payload.length === 0) {
      // A sender never cuts an empty fragment before the last one (§4). Empty fragments do not
      // count against maxMessage, so keeping them would let a hostile peer grow the reassembly
      // without bound: the link closes instead.
      this.close("LOFT_ERR_MALFORMED", "an empty DATA fragment before DATA_END");
      return;
    }
    this.#expected = (this.#expected + 1) % SEQ_MOD;
    this.#partBytes += frame.payload.length;
    if (this.#partBytes > this.#maxMessage) {
      this.close("LOFT_ERR_FRAME_TOO_LARGE", `a message longer than ${this.#maxMessage} bytes`);
      return;
    }
    this.#parts.push(frame.payload);
    if (frame.type === FRAME_DATA_END) {
      const message = new Uint8Array(this.#partBytes);
      let o = 0;
      for (const p of this.#parts) {
        message.set(p, o);
        o += p.length;
      }
      this.#parts = [];
      this.#partBytes = 0;
      this.deliver(message);
    }
  }

  /** Send one cumulative ACK for everything consumed since the last one (the endpoint calls this per chunk). */
  flushAck(): void {
    if (!this.#ackDue || this.state === "closed") return;
    this.#ackDue = false;
    this.#write(encodeFrame({ type: FRAME_ACK, seq: this.#expected, payload: new Uint8Array(0) }));
  }

  noteFault(): void {
    this.stats.faults++;
  }

  /** The cable went away or the peer restarted. */
  lost(detail: string): void {
    this.#disarm();
    this.finish({ reason: "LOFT_ERR_LINK_CLOSED", detail }, false);
    this.#onFinish(this);
  }

  protected teardown(info: LinkCloseInfo): void {
    this.#disarm();
    this.#pending = [];
    this.#pendingHead = 0;
    this.#unacked.length = 0;
    this.#write(encodeFrame({ type: FRAME_CLOSE, seq: 0, payload: closeReasonBytes(info.reason) }));
    this.#onFinish(this);
  }
}

/** Link tuning with every default filled in; a payload bound outside 64 … 1024 throws. */
export function resolveTuning(o: LinkTuning): Required<LinkTuning> {
  const t = {
    ...DEFAULTS,
    ...Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)),
  } as Required<LinkTuning>;
  if (t.maxPayload < 64 || t.maxPayload > MAX_FRAME_PAYLOAD) throw new RangeError("maxPayload out of range");
  return t;
}
