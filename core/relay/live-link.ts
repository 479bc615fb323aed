/**
 * A live `Link` through the relay, for two online peers without a direct path
 * (docs/protocol/relay.md §Live links). It maps onto a queue pair: each peer receives on a queue
 * it created (subscribed, push delivery) and sends into the other's queue (secured with its own
 * sender key). The Noise handshake and the ratchet run over this Link exactly as over a data
 * channel; the relay only sees Noise frames, cut into pieces, and delivers each re-encrypted (one
 * 16 KiB block under protocol 1.1, its size bucket under 1.2: docs/protocol/relay.md §Padding).
 *
 * Link messages (Noise frames up to 65535 bytes, or larger) are cut into relay bodies of at most
 * MAX_BODY bytes: `flags(1) ‖ seq(4) ‖ piece`, flag bit 0 = last piece of a message, bit 1 = the
 * sender closed the link, bit 2 = numbered (a big-endian u32 from 0 follows). Up to `sendWindow`
 * SENDs (default 8) are in flight: the relay answers each only after a durable commit, so one at
 * a time spent a disk flush per piece (docs/decisions.md, "A live link through the relay has one
 * SEND in flight and outwaits rate refusals", its update).
 * A piece refused for rate and sent again may be stored after later ones; the receiver hands
 * pieces on in sequence order, holding at most MAX_REORDER ahead of a missing one. Each received
 * piece is acknowledged at once (the bytes are handed to the consumer or held for order), an ACK
 * refused for rate tried again, paced with the connection's other ACKs (ack-pacer.ts).
 *
 * A temporary refusal (`RATE`, `SOURCE_RATE`, `STORE_RATE`: the relay rations per connection and
 * per source address, docs/operations-relay.md §Limits) is not an end: the same piece is sent
 * again with the same send id after a backoff (doubling, with jitter), so nothing is lost, doubled
 * or reordered. Only when the relay has refused for `giveUpMs` without storing anything does the
 * link close, with the refusal's code as reason (`LOFT_ERR_RELAY_RATE` / `_SOURCE_RATE` /
 * `_STORE_RATE`).
 * Any other refusal (QUOTA, AUTH, a closed connection) closes the link with its code at once.
 * A local close sends what is still queued, then the close marker, under the same bounds.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { err, isLoftError, LoftError, type Result } from "../errors.ts";
import type { LinkCloseInfo } from "../link/link.ts";
import { QueueLink } from "../link/queue-link.ts";
import { ackPacer } from "./ack-pacer.ts";
import type { RecipientQueue, RelayClient, RelayMessage, SenderQueue } from "./client.ts";
import { isTemporaryRefusal } from "./errors.ts";
import { MAX_BODY, SEND_ID_LENGTH } from "./protocol.ts";

const FLAG_LAST = 1;
const FLAG_CLOSE = 2;
/** Set on every piece this version sends: a sequence number follows the flags byte. */
const FLAG_SEQ = 4;
const SEQ_BYTES = 4;
/** Link-message bytes in one relay body: `flags(1) ‖ seq(4) ‖ piece` fills MAX_BODY. */
export const RELAY_LINK_PIECE = MAX_BODY - 1 - SEQ_BYTES;
/** Pieces in flight (sent, not yet answered) by default: the receiver reorders at most this many. */
export const DEFAULT_SEND_WINDOW = 8;
/** Most pieces a receiver holds ahead of a missing one (a sender's window is at most this). */
export const MAX_REORDER = 64;

export interface RelayLinkOptions {
  /** Largest reassembled message (default 1 MiB); a peer sending more closes the link. */
  maxMessageBytes?: number;
  /** SUB window on the receiving queue (default 16). */
  window?: number;
  /** Backoff after a temporary refusal (RATE, SOURCE_RATE, STORE_RATE). */
  retry?: Partial<RelaySendRetry>;
  /**
   * Most bytes waiting to be stored (default 4 MiB); a send beyond closes the link (with the
   * refusal in effect as reason) rather than holding unbounded memory while the relay refuses.
   */
  maxQueuedBytes?: number;
  /**
   * SENDs in flight at once (default 8, at most MAX_REORDER): each costs the relay a durable
   * commit before its OK, so one at a time leaves the link waiting on the disk between pieces.
   */
  sendWindow?: number;
}

export interface RelaySendRetry {
  /** First pause after a refusal (ms); doubles on each further refusal of the same piece. */
  firstDelayMs: number;
  /** Longest pause between two tries (ms). */
  maxDelayMs: number;
  /** Close the link when the relay has refused this long without storing a piece (ms). */
  giveUpMs: number;
}

export const DEFAULT_SEND_RETRY: RelaySendRetry = { firstDelayMs: 100, maxDelayMs: 5_000, giveUpMs: 30_000 };

interface Outgoing {
  body: Uint8Array;
  /** Kept across tries: a retry of a stored piece answers DUPLICATE, never stores it twice. */
  sendId: Uint8Array;
  /** A SEND of it is waiting for the relay's answer. */
  inFlight: boolean;
  /** The temporary refusal its last try got, until it is stored. */
  refused?: string;
  seq: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The pause before reconnecting a pooled relay/SMP connection after `failures` failures: exponential
 * backoff with full jitter, never under 200 ms.
 */
export function reconnectDelay(failures: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 16));
  return Math.floor(Math.random() * ceiling) + 200;
}

/** The pause before try `refusals + 1`: doubling up to the cap, half fixed and half random. */
function backoff(retry: RelaySendRetry, refusals: number): number {
  const cap = Math.min(retry.maxDelayMs, retry.firstDelayMs * 2 ** Math.min(refusals, 30));
  // Half random: peers refused together do not come back together.
  return cap / 2 + Math.random() * (cap / 2);
}

/**
 * Run a relay command, trying again after a temporary refusal (RATE, SOURCE_RATE, STORE_RATE:
 * nothing was done) with the live link's backoff, for at most `giveUpMs`; then, or on any other
 * error, the error is thrown. For the commands that set a live link up (NEW, SKEY, SUB), each
 * safe to repeat after such a refusal.
 */
export async function retryTemporary<T>(
  attempt: () => Promise<T>,
  retry: Partial<RelaySendRetry> = {},
): Promise<T> {
  const bounds = { ...DEFAULT_SEND_RETRY, ...retry };
  const started = Date.now();
  for (let refusals = 0; ; refusals++) {
    try {
      return await attempt();
    } catch (e) {
      if (!(isLoftError(e) && isTemporaryRefusal(e.code))) throw e;
      const left = started + bounds.giveUpMs - Date.now();
      if (left <= 0) throw e;
      await sleep(Math.min(left, backoff(bounds, refusals)));
    }
  }
}

/** One piece ready for the consumer: its flags and bytes. */
export interface ReadyPiece {
  flags: number;
  piece: Uint8Array;
}

/**
 * The receiving side's order (docs/protocol/relay.md §Live links): relay bodies in the order the
 * queue delivers them in, pieces out in the order they were sent. Pure, so it is fuzzed alone
 * (test/fuzz/relay-codecs.test.ts).
 */
export class PieceOrder {
  #expected = 0;
  readonly #ahead = new Map<number, Uint8Array>();

  /** The pieces `body` makes ready, in order (none while one before it is missing), or why the link must close. */
  take(body: Uint8Array): Result<ReadyPiece[]> {
    if (body.length === 0) return { ok: true, value: [] };
    const flags = body[0]!;
    // Unnumbered (a sender before numbering, or the close marker of a sender whose sending
    // failed): acted on as it comes, in queue order.
    if (!(flags & FLAG_SEQ)) return { ok: true, value: [{ flags, piece: body.subarray(1) }] };
    if (body.length < 1 + SEQ_BYTES)
      return err("LOFT_ERR_MALFORMED", "a relay link piece without its sequence number");
    const seq = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(1);
    // Behind: already handed on (send ids make this impossible; a second copy changes nothing).
    if (seq < this.#expected) return { ok: true, value: [] };
    if (seq - this.#expected >= MAX_REORDER)
      return err("LOFT_ERR_SCHEMA", `a relay link piece ${seq - this.#expected} ahead of the next one`);
    if (seq !== this.#expected) {
      if (!this.#ahead.has(seq)) this.#ahead.set(seq, body);
      return { ok: true, value: [] };
    }
    const ready: ReadyPiece[] = [];
    for (let next: Uint8Array | undefined = body; next; ) {
      ready.push({ flags: next[0]!, piece: next.subarray(1 + SEQ_BYTES) });
      this.#ahead.delete(this.#expected);
      this.#expected++;
      next = this.#ahead.get(this.#expected);
    }
    return { ok: true, value: ready };
  }

  /** Pieces held ahead of a missing one. */
  get held(): number {
    return this.#ahead.size;
  }

  clear(): void {
    this.#ahead.clear();
  }
}

export class RelayLink extends QueueLink {
  readonly #client: RelayClient;
  readonly #own: RecipientQueue;
  readonly #peer: SenderQueue;
  readonly #max: number;
  readonly #retry: RelaySendRetry;
  readonly #maxQueued: number;
  readonly #window: number;
  #queuedBytes = 0;
  /** The temporary refusal being waited out, if any. */
  #refusal: string | undefined;
  #parts: Uint8Array[] = [];
  #size = 0;
  /** Pieces not yet stored by the relay, in sequence order; up to `#window` of them in flight. */
  #outbox: Outgoing[] = [];
  #inFlight = 0;
  #nextSeq = 0;
  /** After a temporary refusal: nothing is sent until this timer fires. */
  #pause: ReturnType<typeof setTimeout> | undefined;
  #refusals = 0;
  #refusedSince: number | undefined;
  /** Sending failed for good (given up, or a permanent refusal): nothing more is queued. */
  #broken = false;
  /** Receiving: pieces back in the order they were sent. */
  readonly #order = new PieceOrder();
  #resolveSettled!: () => void;
  /**
   * Resolves once the link is closed and nothing it queued is left to send: every piece — the
   * close marker last — answered by the relay, or sending over for good (given up, refused, the
   * connection gone). Never rejects. Whoever closes the relay connection waits for it (bounded),
   * so the last messages and the close marker are not cut off (docs/protocol/relay.md §Live links).
   */
  readonly settled: Promise<void> = new Promise((resolve) => {
    this.#resolveSettled = resolve;
  });

  private constructor(
    client: RelayClient,
    own: RecipientQueue,
    peer: SenderQueue,
    options: RelayLinkOptions,
  ) {
    super("open");
    this.#client = client;
    this.#own = own;
    this.#peer = peer;
    this.#max = options.maxMessageBytes ?? 1 << 20;
    this.#retry = { ...DEFAULT_SEND_RETRY, ...options.retry };
    this.#maxQueued = options.maxQueuedBytes ?? 4 << 20;
    this.#window = Math.max(1, Math.min(MAX_REORDER, options.sendWindow ?? DEFAULT_SEND_WINDOW));
    client.onQueueMessage(own.recipientId, (m) => this.#onPiece(m));
    void client.done.then((e) => {
      this.#drop();
      this.finish({ reason: e.code, detail: e.message }, false);
      this.#checkSettled();
    });
  }

  /** `settled` once closed with nothing queued or in flight, or with sending over for good. */
  #checkSettled(): void {
    if (this.state !== "closed") return;
    if (this.#broken || this.#client.closed || (this.#outbox.length === 0 && this.#inFlight === 0))
      this.#resolveSettled();
  }

  /**
   * Open a live link: subscribe to `own` (our receiving queue) on `client` and send into `peer`
   * (the other side's queue, already secured with our sender key). A SUB refused for rate is
   * tried again within the retry bounds.
   */
  static async open(
    client: RelayClient,
    own: RecipientQueue,
    peer: SenderQueue,
    options: RelayLinkOptions = {},
  ): Promise<RelayLink> {
    const link = new RelayLink(client, own, peer, options);
    try {
      await retryTemporary(() => client.subscribe(own, options.window ?? 16), options.retry);
    } catch (e) {
      link.close(isLoftError(e) ? e.code : "LOFT_ERR_LINK_CLOSED");
      throw e;
    }
    return link;
  }

  protected transmit(message: Uint8Array): void {
    if (this.#broken) throw new LoftError("LOFT_ERR_LINK_CLOSED", "the relay link stopped sending");
    if (this.#queuedBytes + message.length > this.#maxQueued) {
      const detail = `more than ${this.#maxQueued} bytes wait to be sent through the relay`;
      this.#fail(this.#refusal ?? "LOFT_ERR_CHUNK_LIMIT", detail);
      throw new LoftError("LOFT_ERR_LINK_CLOSED", detail);
    }
    for (let at = 0; at === 0 || at < message.length; at += RELAY_LINK_PIECE) {
      const last = at + RELAY_LINK_PIECE >= message.length;
      this.#enqueue(last ? FLAG_LAST : 0, message.subarray(at, at + RELAY_LINK_PIECE));
    }
  }

  /** Queue `flags ‖ seq ‖ piece` (docs/protocol/relay.md §Live links) and send what the window allows. */
  #enqueue(flags: number, piece: Uint8Array): void {
    if (this.#nextSeq > 0xffff_ffff) {
      this.#fail("LOFT_ERR_CHUNK_LIMIT", "the relay link's sequence numbers are used up");
      throw new LoftError("LOFT_ERR_LINK_CLOSED", "the relay link's sequence numbers are used up");
    }
    const body = new Uint8Array(1 + SEQ_BYTES + piece.length);
    body[0] = flags | FLAG_SEQ;
    new DataView(body.buffer).setUint32(1, this.#nextSeq++);
    body.set(piece, 1 + SEQ_BYTES);
    this.#outbox.push({ body, sendId: randomBytes(SEND_ID_LENGTH), inFlight: false, seq: this.#nextSeq - 1 });
    this.#queuedBytes += body.length;
    this.#launch();
  }

  /**
   * Send the oldest pieces not in flight, up to the window. Pieces are numbered, so a refused one
   * retried after later ones were stored still reaches the consumer in order (`#onPiece`).
   */
  #launch(): void {
    if (this.#pause !== undefined || this.#broken || this.#client.closed) return;
    // Only pieces within a window of the oldest one not stored: however often a piece is refused
    // while later ones are stored, the receiver never holds more than a window ahead of it.
    const limit = (this.#outbox[0]?.seq ?? 0) + this.#window;
    for (const next of this.#outbox) {
      if (this.#inFlight >= this.#window || next.seq >= limit) return;
      if (next.inFlight) continue;
      next.inFlight = true;
      this.#inFlight++;
      void this.#client.send(this.#peer, next.body, { sendId: next.sendId }).then(
        () => this.#answered(next, undefined),
        (e: unknown) => this.#answered(next, isLoftError(e) ? e.code : "LOFT_ERR_LINK_CLOSED"),
      );
    }
  }

  /** The relay answered one SEND: stored, refused for now (wait, then again), or refused for good. */
  #answered(piece: Outgoing, code: string | undefined): void {
    piece.inFlight = false;
    this.#inFlight--;
    try {
      this.#answer(piece, code);
    } finally {
      this.#checkSettled();
    }
  }

  #answer(piece: Outgoing, code: string | undefined): void {
    if (this.#broken) return;
    // DUPLICATE: an earlier try of this very piece was stored (its answer was lost).
    if (code === undefined || code === "LOFT_ERR_RELAY_DUPLICATE") {
      const i = this.#outbox.indexOf(piece);
      if (i >= 0) this.#outbox.splice(i, 1);
      this.#queuedBytes -= piece.body.length;
      // Stored: progress, so the give-up clock restarts; the refusal in effect (the reason a
      // link that gives up closes with) is over only once no piece waits on one — an OK for a
      // piece sent before a refusal can arrive after it.
      this.#refusedSince = undefined;
      if (!this.#outbox.some((o) => o.refused)) {
        this.#refusal = undefined;
        this.#refusals = 0;
      }
      this.#launch();
      return;
    }
    if (!isTemporaryRefusal(code)) {
      this.#fail(code, "relay refused a piece");
      return;
    }
    piece.refused = code;
    this.#refusal = code;
    const now = Date.now();
    const since: number = this.#refusedSince ?? now;
    this.#refusedSince = since;
    const left = since + this.#retry.giveUpMs - now;
    if (left <= 0) {
      const seconds = Math.round(this.#retry.giveUpMs / 100) / 10;
      this.#fail(code, `the relay kept refusing for ${seconds} s (${this.#outbox.length} pieces unsent)`);
      return;
    }
    // One pause for the whole window: the other pieces refused with it wait for the same timer.
    if (this.#pause !== undefined) return;
    this.#pause = setTimeout(
      () => {
        this.#pause = undefined;
        this.#launch();
      },
      Math.min(left, backoff(this.#retry, this.#refusals++)),
    );
  }

  /** Forget everything unsent (the connection ended, or sending failed for good). */
  #drop(): void {
    clearTimeout(this.#pause);
    this.#pause = undefined;
    this.#outbox = [];
    this.#queuedBytes = 0;
  }

  #fail(code: string, detail: string): void {
    this.#broken = true;
    this.#drop();
    this.close(code, detail);
    this.#checkSettled();
  }

  #onPiece(m: RelayMessage): void {
    // The relay pushes at most a SUB window of unacknowledged pieces: an ACK refused for rate and
    // dropped would stall the link for good once a window of them is lost, so it is retried like
    // a SEND (docs/protocol/relay.md §Live links, step 4), paced; a link that cannot acknowledge within
    // the bounds closes with the refusal's code. Other failures (the piece is gone) change nothing.
    // One pacer per connection (ack-pacer.ts), shared with the mailbox and the other links on it:
    // retries of their own would run the connection into the relay's rate debt together.
    ackPacer(this.#client, this.#retry)
      .ack(this.#own, m.msgId, this.#retry.giveUpMs)
      .catch((e: unknown) => {
        if (isLoftError(e) && isTemporaryRefusal(e.code) && this.state !== "closed")
          this.close(e.code, "the relay kept refusing acknowledgements");
      });
    if (this.state === "closed") return;
    const r = this.#order.take(m.body);
    if (!r.ok) {
      this.close(r.error.code, r.error.detail);
      return;
    }
    for (const { flags, piece } of r.value) {
      // (`state` is re-read: a piece taken can close the link.)
      if ((this.state as string) === "closed") return;
      this.#take(flags, piece);
    }
  }

  /** One piece, in order: reassemble link messages; the close marker ends the link. */
  #take(flags: number, piece: Uint8Array): void {
    if (flags & FLAG_CLOSE) {
      this.#client.onQueueMessage(this.#own.recipientId, undefined);
      this.#drop();
      this.#order.clear();
      this.finish({ reason: "remote-closed" }, false);
      this.#checkSettled();
      return;
    }
    this.#size += piece.length;
    if (this.#size > this.#max) {
      this.close("LOFT_ERR_CHUNK_LIMIT", "message exceeds the link's limit");
      return;
    }
    this.#parts.push(piece);
    if (flags & FLAG_LAST) {
      const whole = new Uint8Array(this.#size);
      let o = 0;
      for (const p of this.#parts) {
        whole.set(p, o);
        o += p.length;
      }
      this.#parts = [];
      this.#size = 0;
      this.deliver(whole);
    }
  }

  protected teardown(_info: LinkCloseInfo): void {
    this.#client.onQueueMessage(this.#own.recipientId, undefined);
    this.#order.clear();
    // After the pieces still queued, in order; once sending failed, one best-effort try without a
    // sequence number, which the receiver acts on at once (earlier pieces may never come).
    if (this.#client.closed) {
      // nothing can be sent any more
    } else if (this.#broken) this.#client.send(this.#peer, new Uint8Array([FLAG_CLOSE])).catch(() => {});
    else this.#enqueue(FLAG_CLOSE, new Uint8Array(0));
    this.#checkSettled(); // (QueueLink marks the link closed before its teardown)
  }
}
