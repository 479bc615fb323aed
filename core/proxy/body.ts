/**
 * Bodies of proxied requests and responses, with credit-based flow control (docs/protocol/proxy.md
 * §Flow control). A receiver grants a window of bytes; the sender never sends past what it was
 * granted; the receiver grants more only as its consumer reads. So nobody — serving side,
 * requesting side, or anything in between — ever holds more than one window of a body, however
 * slow the consumer, however large the body.
 */
import { concatBytes } from "../bytes.ts";
import { LEGACY_CHUNK, MAX_CHUNK } from "./frames.ts";

/** Pull-based body: `read()` gives the next chunk or null at the end; `cancel()` stops it early. */
export interface BodyReader {
  read(): Promise<Uint8Array | null>;
  cancel(reason?: string): void;
  /**
   * Optional: bytes the source holds now, which `read()` returns without waiting (0: the next
   * read waits, e.g. for the network). Lets a sender top a DATA frame up from the next chunk
   * instead of sending a short tail alone (OutboundBody); a source without it counts as holding
   * nothing (its short tail waits for the next chunk only where the sender holds tails: OutboundBody
   * `tailHoldMs`).
   */
  available?(): number;
}

export const emptyBody = (): BodyReader => ({ read: async () => null, cancel: () => undefined });

/** A whole body in memory as a reader, in chunks of at most `chunk` bytes. */
export function bytesBody(bytes: Uint8Array, chunk = MAX_CHUNK): BodyReader {
  let at = 0;
  let cancelled = false;
  return {
    async read() {
      if (cancelled || at >= bytes.length) return null;
      const out = bytes.subarray(at, Math.min(bytes.length, at + chunk));
      at += out.length;
      return out;
    },
    cancel() {
      cancelled = true;
    },
    available: () => (cancelled ? 0 : bytes.length - at),
  };
}

/** Read a whole body (tests and small bodies only: it buffers everything, up to `max` bytes). */
export async function readAll(body: BodyReader, max = 64 * 1024 * 1024): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const chunk = await body.read();
    if (chunk === null) break;
    total += chunk.length;
    if (total > max) {
      body.cancel("too large");
      throw new RangeError(`body over ${max} bytes`);
    }
    parts.push(chunk);
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * `source` read as chunks of up to `max` bytes: each `read()` takes the next chunk and joins to
 * it the chunks `source` already holds (`available`), while they fit — never waiting for more, so
 * a slow body's bytes go on as they come. Short DATA (a relay piece's worth, 16 KiB) then cross
 * to the Service Worker as one message of up to one DATA's size instead of four
 * (docs/protocol/proxy.md §Service Worker). Each chunk is a fresh copy the caller owns
 * (transferable); a chunk that would not fit waits for the next read; a source error rejects the
 * read that meets it.
 */
export function joinHeld(source: BodyReader, max: number): BodyReader {
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError("joinHeld: max must be ≥ 1");
  /** Read ahead and kept for the next `read()`: a chunk that did not fit, or null (the end). */
  let carried: Uint8Array | null | undefined;
  const next = (): Promise<Uint8Array | null> => {
    if (carried === undefined) return source.read();
    const c = carried;
    carried = undefined;
    return Promise.resolve(c);
  };
  return {
    async read() {
      const first = await next();
      if (first === null) return null;
      const parts = [first];
      let size = first.length;
      while (size < max && (source.available?.() ?? 0) > 0) {
        const more = await source.read();
        if (more === null || size + more.length > max) {
          carried = more;
          break;
        }
        parts.push(more);
        size += more.length;
      }
      return concatBytes(...parts); // a fresh buffer, even for one part
    },
    cancel(reason) {
      carried = undefined;
      source.cancel(reason);
    },
    available: () => (carried ? carried.length : 0) + (source.available?.() ?? 0),
  };
}

/**
 * The receiving end of one body: chunks arrive from the peer (`push`, never past the granted
 * window), the consumer pulls them (`read`), and every `window / 2` bytes consumed the owner is
 * asked to grant that much more (`grant`), so the window refills while the consumer keeps up.
 */
export class InboundBody implements BodyReader {
  readonly #chunks: Uint8Array[] = [];
  #credit: number;
  readonly #window: number;
  #consumed = 0;
  #ended = false;
  #error: Error | undefined;
  #waiter: (() => void) | undefined;
  #cancelled = false;
  #onSettled: (() => void) | undefined;
  readonly #grant: (bytes: number) => void;
  readonly #onCancel: (reason: string) => void;

  constructor(window: number, grant: (bytes: number) => void, onCancel: (reason: string) => void) {
    this.#window = window;
    this.#credit = window;
    this.#grant = grant;
    this.#onCancel = onCancel;
  }

  /** False when the peer sent past its credit or after the end (a protocol violation). */
  push(bytes: Uint8Array): boolean {
    if (this.#ended || bytes.length > this.#credit) return false;
    this.#credit -= bytes.length;
    if (this.#cancelled) return true;
    this.#chunks.push(bytes);
    this.#wake();
    return true;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Nothing more will be read from it: cancelled, or ended with nothing left (`fail` changes nothing). */
  get settled(): boolean {
    return this.#cancelled || (this.#ended && this.#chunks.length === 0);
  }

  /**
   * Call `f` once when the body is settled (at once if it is): the requesting side holds a
   * request's concurrency slot until then, so unread bodies cannot pile up (docs/protocol/proxy.md
   * §Flow control).
   */
  whenSettled(f: () => void): void {
    if (this.settled) f();
    else this.#onSettled = f;
  }

  /** Bytes held now, waiting for the consumer (never more than the window). */
  get buffered(): number {
    let n = 0;
    for (const c of this.#chunks) n += c.length;
    return n;
  }

  /** BodyReader `available`: what `read()` returns now without waiting (0 after a failure). */
  available(): number {
    return this.#error ? 0 : this.buffered;
  }

  end(): void {
    this.#ended = true;
    this.#wake();
    this.#settle();
  }

  fail(error: Error): void {
    if (this.#ended && this.#chunks.length === 0) return;
    this.#error ??= error;
    this.#ended = true;
    this.#chunks.length = 0;
    this.#wake();
    this.#settle();
  }

  async read(): Promise<Uint8Array | null> {
    for (;;) {
      if (this.#error) throw this.#error;
      const chunk = this.#chunks.shift();
      if (chunk) {
        this.#consumed += chunk.length;
        if (!this.#ended && this.#consumed >= this.#window / 2) {
          const n = this.#consumed;
          this.#consumed = 0;
          this.#credit += n;
          this.#grant(n);
        }
        this.#settle();
        return chunk;
      }
      if (this.#ended || this.#cancelled) return null;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
    }
  }

  cancel(reason = "cancelled"): void {
    if (this.#cancelled || (this.#ended && this.#chunks.length === 0)) return;
    this.#cancelled = true;
    this.#chunks.length = 0;
    this.#wake();
    this.#settle();
    this.#onCancel(reason);
  }

  #settle(): void {
    if (!this.settled || !this.#onSettled) return;
    const f = this.#onSettled;
    this.#onSettled = undefined;
    f();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}

/**
 * How long a DATA that would carry only the short tail of a source chunk — the bytes past a full
 * DATA cut from it — may wait for the source's next chunk to fill it (OutboundBody `tailHoldMs`;
 * docs/protocol/proxy.md, "Zero copies of a body between layers"). node:http gives `loft expose`
 * one 64 KiB socket read at a time, a DATA holds 65 510 bytes: without the wait every chunk went
 * out as a full DATA and a 26-byte one whenever the next chunk was not in yet — it rarely is
 * (bench/README.md §bench:proxy, session 16: 32 DATA per 1 MiB body instead of 17), and each costs
 * a seal, an open and a link message (on the relay, a relay message). Short enough that a slow
 * source's bytes still go out as they come, to within this.
 *
 * Only the node:http origin asks for it (host/proxy-origin.ts), where it was measured. A browser
 * clamps nested timers to 4 ms or more (HTML Standard, "Timers") and throttles a hidden tab's to
 * about one a second, and the Loft tab is usually hidden while the proxied site runs in another:
 * there a 2 ms hold could keep an upload's or a share's tail back for a second.
 */
export const TAIL_HOLD_MS = 2;

/** A tail is held (`tailHoldMs`) only when shorter than this share of a DATA's room. */
const TAIL_HOLD_SHARE = 1 / 4;

const HOLD_EXPIRED = Symbol("hold expired");

/**
 * The sending end of one body: reads `source` only while credit is left, cuts what it reads into
 * chunks of at most `maxChunk` (LEGACY_CHUNK by default; what the peer accepts up to MAX_CHUNK,
 * less if the carrier wants smaller: a relay piece) and the credit left, and sends each; `end`
 * once the source is done. A DATA frame may join the tail of one source chunk to the start of
 * the next (its body given as parts, copied once by the session), when the source already holds
 * that next chunk (`available`), or — when the owner asked for a hold (`tailHoldMs`, 0 by
 * default) and that tail is short — gives it within `tailHoldMs`: a source that reads 64 KiB at a
 * time would otherwise cost a second frame for every chunk's 26-byte tail over a 65 510-byte DATA.
 */
export class OutboundBody {
  #credit: number;
  #waiter: (() => void) | undefined;
  #stopped = false;
  readonly #source: BodyReader;
  readonly #maxChunk: number;
  readonly #ready: (() => Promise<void>) | undefined;
  readonly #tailHoldMs: number;
  /** A source read started while a tail was held and not taken yet (one read at a time). */
  #reading: Promise<Uint8Array | null> | undefined;
  /** Ends the running hold at once (`stop`), as if it ran out; undefined when none runs. */
  #endHold: (() => void) | undefined;

  /**
   * `ready`, when given, is the carrier's backpressure: awaited before each DATA, it resolves once
   * the link below can take more (a data channel's send buffer drained). Credit alone bounds what
   * one body has in flight, not what many bodies together put into one link's queue.
   *
   * `tailHoldMs` is how long a short tail may wait for the source's next chunk (TAIL_HOLD_MS where
   * it was measured: a node:http origin). 0, the default, never waits on the source: a browser's
   * timers may fire a second late in a hidden tab (see TAIL_HOLD_MS).
   */
  constructor(
    source: BodyReader,
    credit: number,
    maxChunk = LEGACY_CHUNK,
    ready?: () => Promise<void>,
    tailHoldMs = 0,
  ) {
    if (!Number.isSafeInteger(maxChunk) || maxChunk < 1 || maxChunk > MAX_CHUNK)
      throw new RangeError(`maxChunk must be 1…${MAX_CHUNK}`);
    if (!Number.isFinite(tailHoldMs) || tailHoldMs < 0) throw new RangeError("tailHoldMs must be ≥ 0");
    this.#source = source;
    this.#credit = credit;
    this.#maxChunk = maxChunk;
    this.#ready = ready;
    this.#tailHoldMs = tailHoldMs;
  }

  addCredit(bytes: number): boolean {
    if (this.#credit + bytes > Number.MAX_SAFE_INTEGER) return false;
    this.#credit += bytes;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
    return true;
  }

  /** Stop reading (the peer cancelled or the request failed); the source is cancelled. */
  stop(reason = "cancelled"): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#source.cancel(reason);
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
    // A held tail ends now too, not when its timer fires: the pump returns at once either way.
    this.#endHold?.();
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The source's next chunk: the read a hold started, if any, else a new one. */
  #read(): Promise<Uint8Array | null> {
    const r = this.#reading ?? this.#source.read();
    this.#reading = undefined;
    return r;
  }

  /**
   * The source's next chunk if it comes within `tailHoldMs`, else HOLD_EXPIRED — also at once
   * when stopped meanwhile — and the read goes on, kept for the next `#read` (a source is never
   * read twice at once).
   */
  async #readWithin(): Promise<Uint8Array | null | typeof HOLD_EXPIRED> {
    const reading = this.#read();
    let timer: unknown;
    const expired = new Promise<typeof HOLD_EXPIRED>((resolve) => {
      this.#endHold = () => resolve(HOLD_EXPIRED);
      timer = setTimeout(this.#endHold, this.#tailHoldMs);
    });
    try {
      const first = await Promise.race([reading, expired]);
      if (first === HOLD_EXPIRED) this.#reading = reading;
      return first;
    } finally {
      this.#endHold = undefined;
      clearTimeout(timer);
    }
  }

  /**
   * Pump the source to `data` until its end (`end` called) or until stopped. Each `data` call is
   * one DATA body, as the parts whose concatenation it is (1…maxChunk bytes, never past the
   * credit). Source errors reject.
   */
  async pump(data: (parts: Uint8Array[]) => void, end: () => void): Promise<void> {
    let pending: Uint8Array | null = null;
    let ended = false;
    for (;;) {
      while (this.#credit === 0 && !this.#stopped) await new Promise<void>((r) => (this.#waiter = r));
      if (this.#stopped) return;
      // What is left of a chunk the last DATA was cut from (not a fresh read): its tail.
      const tail = pending !== null && pending.length > 0;
      if (!tail) {
        pending = await this.#read();
        if (this.#stopped) return;
        if (pending === null) return this.#end(end);
        if (pending.length === 0) continue;
      }
      let rest: Uint8Array = pending!;
      const room = Math.min(this.#credit, this.#maxChunk);
      const parts: Uint8Array[] = [];
      let size = 0;
      // At most one hold per DATA: an empty chunk given within it must not start another, or a
      // source that gives one every millisecond would hold the tail for ever (`tailHoldMs` bounds
      // the wait, not each read).
      let held = false;
      for (;;) {
        const n = Math.min(rest.length, room - size);
        if (n > 0) parts.push(rest.subarray(0, n));
        size += n;
        rest = rest.subarray(n);
        // Full, or this chunk has more: send. Emptied with room left: top up from what the
        // source already holds; a short tail also waits a moment for the next chunk where the owner
        // asked for it (`tailHoldMs`); otherwise never waiting on the source (a slow source's bytes
        // go out as they come).
        if (size === room || rest.length > 0) break;
        let next: Uint8Array | null;
        if ((this.#source.available?.() ?? 0) > 0) next = await this.#read();
        else if (
          this.#tailHoldMs > 0 &&
          tail &&
          !held &&
          parts.length === 1 &&
          size < room * TAIL_HOLD_SHARE
        ) {
          held = true;
          const got = await this.#readWithin();
          if (this.#stopped) return;
          if (got === HOLD_EXPIRED) break;
          next = got;
        } else break;
        if (this.#stopped) return;
        if (next === null) {
          ended = true;
          break;
        }
        rest = next;
      }
      pending = rest;
      this.#credit -= size;
      // Waited for last, just before the send, so what it saw of the link is still true when the
      // DATA goes (nothing else of this body runs in between).
      if (this.#ready) {
        await this.#ready();
        if (this.#stopped) return;
      }
      data(parts);
      if (ended) return this.#end(end);
    }
  }

  #end(end: () => void): void {
    this.#stopped = true;
    end();
  }
}
