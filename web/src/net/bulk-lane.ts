/**
 * The bulk lane of a direct link (docs/protocol/files.md §2, "The bulk lane"): a second ordered,
 * reliable data channel on the same RTCPeerConnection as the session's channel, label `loft-bulk`,
 * negotiated out of band on SCTP stream `BULK_STREAM_ID` (both ends create it once the session
 * channel opens, so no `datachannel` event reaches the answerer, which takes the first one for the session).
 * It carries frames that are already sealed end to end — FILE_CHUNK, each chunk under its
 * per-transfer key from the ratchet, bound to transfer, index and total (files.md §3) — *beside*
 * the Noise session instead of inside it, so each byte of a file has one AEAD pass, not two.
 *
 * Nothing on the lane is trusted for being there: DTLS authenticates nobody (docs/design.md,
 * "Transports", Direct). What protects a lane frame is its own AEAD and the receiver's rule
 * (files.md §4); the lane only exists while its link does (closed with it), and the engine reads
 * it only for the link's live, authenticated session (`claim`).
 *
 * A lane message is either a frame of the session frame table (first byte ≠ 0x00) or the lane's
 * own hello, `BULK_HELLO` = 00 ‖ "loft-bulk/1". Each end sends the hello when its engine claims
 * the lane; a sender uses the lane only after the peer's hello came (`ready`): a peer that runs
 * an older version never says it, and its chunks keep going inside the session. What arrives
 * before this end claimed the lane is dropped and counted, as is any other message starting
 * with 0x00 (`classifyBulkMessage`).
 *
 * Since session 18 an end that takes chunks larger than the default also says so right after its
 * hello, `BULK_CHUNKS` = 00 ‖ "loft-bulk/chunks" ‖ u32be(the largest chunk it takes, plaintext
 * bytes): a sender offers such chunks only to a peer that said it (`peerChunkBytes`). A peer of
 * an older version drops it as a 0x00 message other than its hello, and is offered the default.
 */
import { equalBytes, utf8 } from "../../../core/bytes.ts";
import { err, LoftError, ok, type Result } from "../../../core/errors.ts";
import type { LinkCloseInfo } from "../../../core/link/link.ts";
import { QueueLink } from "../../../core/link/queue-link.ts";

/** The lane's data channel label (diagnostics: chrome://webrtc-internals shows it). */
export const BULK_LABEL = "loft-bulk";
/**
 * The SCTP stream both ends open the lane on (`negotiated: true`). Far from the in-band ids the
 * session channel takes (0 or 1) and under 1 024, the smallest stream count a browser offers.
 */
export const BULK_STREAM_ID = 1000;
/** 00 ‖ "loft-bulk/1": this end reads the lane. */
export const BULK_HELLO: Uint8Array = Uint8Array.of(0x00, ...utf8("loft-bulk/1"));
const BULK_CHUNKS_PREFIX = Uint8Array.of(0x00, ...utf8("loft-bulk/chunks"));
/** 00 ‖ "loft-bulk/chunks" ‖ u32be: 21 bytes. */
export const BULK_CHUNKS_BYTES = BULK_CHUNKS_PREFIX.length + 4;
/**
 * The largest chunk this end takes (plaintext bytes), as its `BULK_CHUNKS` says: one whose wide
 * frame (13-byte header, 16-byte tag) is one lane message of Chromium's largest, 256 KiB — the
 * receiver's maximum of docs/protocol/files.md §2 (files/wire.ts `MAX_CHUNK_BYTES`; the unit
 * tests check they agree).
 */
export const BULK_CHUNK_MAX = 256 * 1024 - 13 - 16;
/** 00 ‖ "loft-bulk/chunks" ‖ u32be(`max`): the largest chunk this end takes. */
export function encodeBulkChunks(max: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(BULK_CHUNKS_BYTES);
  out.set(BULK_CHUNKS_PREFIX);
  new DataView(out.buffer).setUint32(BULK_CHUNKS_PREFIX.length, max);
  return out;
}
/**
 * Above this many bytes queued in the lane's channel, `drain()` waits. The files' window (64
 * chunks ≈ 4 MiB) is what bounds a transfer; this keeps the channel fed between ACKs, far under
 * Chromium's 16 MiB at which a data channel closes.
 */
export const BULK_DRAIN_BYTES = 4 * 1024 * 1024;

export type BulkMessage =
  | { kind: "hello" }
  | { kind: "chunks"; max: number }
  | { kind: "frame"; frame: Uint8Array };

/** What one lane message is; a typed error for an empty one or a 0x00 message that is not the hello. */
export function classifyBulkMessage(bytes: Uint8Array): Result<BulkMessage> {
  if (bytes.length === 0) return err("LOFT_ERR_MALFORMED", "an empty bulk lane message");
  if (bytes[0] !== 0x00) return ok({ kind: "frame", frame: bytes });
  if (equalBytes(bytes, BULK_HELLO)) return ok({ kind: "hello" });
  if (
    bytes.length >= BULK_CHUNKS_PREFIX.length &&
    equalBytes(bytes.subarray(0, BULK_CHUNKS_PREFIX.length), BULK_CHUNKS_PREFIX)
  ) {
    if (bytes.length !== BULK_CHUNKS_BYTES) return err("LOFT_ERR_MALFORMED", "BULK_CHUNKS is 21 bytes");
    return ok({
      kind: "chunks",
      max: new DataView(bytes.buffer, bytes.byteOffset).getUint32(BULK_CHUNKS_PREFIX.length),
    });
  }
  return err("LOFT_ERR_UNKNOWN_TYPE", "a bulk lane control message other than its hello");
}

/** What the lane uses of an RTCDataChannel (a fake one in Node tests: test/support/bulk-channel.ts). */
export interface BulkChannelLike {
  readonly readyState: string;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  binaryType: BinaryType;
  addEventListener(type: string, listener: (ev: Event) => void): void;
  removeEventListener(type: string, listener: (ev: Event) => void): void;
  send(data: Uint8Array<ArrayBuffer>): void;
  close(): void;
}

/**
 * One end of the lane, a `Link` (send / receive whole messages, in order). `connecting` until its
 * channel is attached and open; it never reopens. When the channel fails while the lane is open,
 * `onFailure` runs (the direct link closes: the lane exists only with its session).
 */
export class BulkLane extends QueueLink {
  #channel: BulkChannelLike | undefined;
  #claimed = false;
  #peerReady = false;
  #peerChunkBytes: number | undefined;
  #answer: (() => void) | undefined;
  readonly #answered: Promise<void>;
  readonly #chunkBytes: number;
  #drainWaiters: (() => void)[] = [];
  /** What `attach` listens to on its channel: removed once the lane closed. */
  readonly #listening: [string, (ev: Event) => void][] = [];
  /** Messages dropped: before the claim, or not understood (`classifyBulkMessage`). */
  dropped = 0;
  readonly #onFailure: (info: LinkCloseInfo) => void;
  readonly #drainBytes: number;

  /** `chunkBytes`: the largest chunk this end says it takes (`BULK_CHUNK_MAX`; 0: says nothing, as before session 18). */
  constructor(options: {
    onFailure: (info: LinkCloseInfo) => void;
    drainBytes?: number;
    chunkBytes?: number;
  }) {
    super("connecting");
    this.#onFailure = options.onFailure;
    this.#drainBytes = options.drainBytes ?? BULK_DRAIN_BYTES;
    this.#chunkBytes = options.chunkBytes ?? BULK_CHUNK_MAX;
    this.#answered = new Promise((resolve) => {
      this.#answer = resolve;
    });
    void this.closed.then(() => {
      this.#answer?.();
      for (const w of this.#drainWaiters.splice(0)) w();
      // The channel lets go of the lane: its listeners would keep the lane (and through
      // `onFailure` the link and its session) reachable from a channel the browser may still hold.
      for (const [type, f] of this.#listening.splice(0)) this.#channel?.removeEventListener(type, f);
    });
  }

  /** The peer reads the lane (its hello came) and the lane is open: frames sent now reach its engine. */
  get ready(): boolean {
    return this.#peerReady && this.state === "open";
  }

  /**
   * The largest chunk (plaintext bytes) the peer said it takes (`BULK_CHUNKS`, after its hello);
   * undefined: it said nothing (an older version) — it takes the default size only.
   */
  get peerChunkBytes(): number | undefined {
    return this.#peerChunkBytes;
  }

  /**
   * Resolves once the peer said which chunks it takes (`BULK_CHUNKS`: `peerChunkBytes` is set) or
   * the lane closed. A peer of an older version never says it: whoever waits bounds the wait
   * (files/transfers.ts, `laneAnswerMs`; docs/protocol/files.md §2, "The chunk size").
   */
  answered(): Promise<void> {
    return this.#answered;
  }

  /** Bytes queued in the channel and not yet handed to the network. */
  get bufferedAmount(): number {
    return this.#channel?.bufferedAmount ?? 0;
  }

  /** Give the lane its data channel (once). */
  attach(channel: BulkChannelLike): void {
    if (this.#channel || this.state === "closed") {
      if (!this.#channel) channel.close();
      return;
    }
    this.#channel = channel;
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = this.#drainBytes;
    // Events after this lane closed are ignored (its teardown closes the channel).
    const on = (type: string, f: (ev: Event) => void) => {
      const listener = (ev: Event) => {
        if (this.state !== "closed") f(ev);
      };
      this.#listening.push([type, listener]);
      channel.addEventListener(type, listener);
    };
    on("open", () => this.#opened());
    on("bufferedamountlow", () => {
      for (const w of this.#drainWaiters.splice(0)) w();
    });
    on("message", (ev) => this.#inbound((ev as MessageEvent).data));
    const failed = (detail: string) => {
      const info = { reason: "ERR_DATA_CHANNEL", detail };
      this.finish(info, true);
      this.#onFailure(info);
    };
    on("close", () => failed("the bulk lane's data channel closed"));
    on("error", () => failed("the bulk lane's data channel failed"));
    if (channel.readyState === "open") this.#opened();
  }

  /**
   * This end's engine reads the lane from now on (its live session is up): messages are kept for
   * `receive`, and the peer is told with the hello (once the channel is open).
   */
  claim(): void {
    if (this.#claimed || this.state === "closed") return;
    this.#claimed = true;
    if (this.state === "open") this.#sendHello();
  }

  /**
   * Resolves once the channel's buffer is at most the lane's threshold (or the lane closed).
   * Senders await it between frames; a data channel whose buffer overflows (16 MiB) closes.
   */
  drain(): Promise<void> {
    if (this.state !== "open" || this.bufferedAmount <= this.#drainBytes) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #opened(): void {
    if (this.state !== "connecting") return;
    this.markOpen();
    if (this.#claimed) this.#sendHello();
  }

  #sendHello(): void {
    try {
      this.#channel?.send(BULK_HELLO.slice());
      if (this.#chunkBytes > 0) this.#channel?.send(encodeBulkChunks(this.#chunkBytes));
    } catch (e) {
      this.close("ERR_DATA_CHANNEL", (e as Error).message);
    }
  }

  #inbound(data: unknown): void {
    if (this.state === "closed") return;
    const bytes =
      data instanceof ArrayBuffer ? new Uint8Array(data) : data instanceof Uint8Array ? data : undefined;
    const message = bytes ? classifyBulkMessage(bytes) : err("LOFT_ERR_MALFORMED", "not binary");
    if (!message.ok) {
      this.dropped++;
      return;
    }
    if (message.value.kind === "hello") {
      this.#peerReady = true;
      return;
    }
    if (message.value.kind === "chunks") {
      this.#peerChunkBytes = message.value.max;
      this.#answer?.();
      return;
    }
    // Nobody reads it yet (no live session on this link yet: files.md §2, rule 1).
    if (!this.#claimed) {
      this.dropped++;
      return;
    }
    this.deliver(message.value.frame);
  }

  protected transmit(message: Uint8Array): void {
    const channel = this.#channel;
    if (!channel || this.state !== "open")
      throw new LoftError("LOFT_ERR_LINK_CLOSED", "the bulk lane is not open");
    try {
      channel.send(message as Uint8Array<ArrayBuffer>);
    } catch (e) {
      const info = { reason: "ERR_DATA_CHANNEL", detail: (e as Error).message };
      this.finish(info, true);
      this.#onFailure(info);
      throw new LoftError("LOFT_ERR_LINK_CLOSED", "the bulk lane failed");
    }
  }

  protected teardown(_info: LinkCloseInfo): void {
    const channel = this.#channel;
    if (!channel) return;
    try {
      channel.close();
    } catch {
      // already gone
    }
  }
}
