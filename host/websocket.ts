/**
 * The server side of RFC 6455 on the socket `node:http` hands over at an upgrade: the opening
 * handshake's answer (§4.2.2), then our own framing (§5) — what relay-ws/ and signaling/ use in
 * place of `ws` when `--ws-impl lean` (the default; docs/operations.md, "Idle connections").
 *
 * Why not `ws`: an idle `ws` connection costs a `WebSocket`, a `Receiver` (a writable stream) and a
 * `Sender`, with their event tables (bench/README.md, "bench:scale": 5.2 KiB per idle connection in
 * Node with `http` + `ws`, 2.9 KiB with this layer). Here an idle connection is one object of a
 * dozen fields next to its `net.Socket`:
 *
 * - no buffer while idle: bytes of a frame not yet complete, and the fragments of a message not yet
 *   complete, are held only until it completes;
 * - listeners are interned: every connection that registers the same functions in the same order
 *   shares one listener table (`Listeners`), so the relay's five shared listeners cost one pointer;
 * - one shared `Deadlines` for the close handshakes' timeouts, no timer per connection.
 *
 * What it implements: the `ws` API subset relay-ws/connection.ts and signaling/service.ts use
 * (`on`/`once`/`prependListener`/`removeListener` for message, close, error, ping, pong; `send`
 * with a write callback; `ping`; `close(code, reason)`; `terminate`; `pause`/`resume`;
 * `bufferedAmount`; `readyState`), and of RFC 6455:
 *
 * - §5.1, §5.3: client frames must be masked (an unmasked one closes with 1002); server frames are not.
 * - §5.2: RSV bits must be 0 (no extension is ever agreed: `Sec-WebSocket-Extensions`, hence
 *   permessage-deflate, is ignored, so the client may not use one); unknown opcodes close with
 *   1002; a 64-bit length with its most significant bit set closes with 1002.
 * - §5.4: fragmentation — continuation frames appended to the message begun; a continuation with
 *   no message begun, or a new data frame inside one, closes with 1002; control frames may come
 *   between fragments.
 * - §5.5: control frames ≤ 125 bytes and never fragmented (else 1002); a ping is answered with a
 *   pong carrying its payload (§5.5.2) and emitted; a pong is emitted.
 * - §7.4, §10.4: `maxPayload` (a frame's length, or a fragmented message's total) is checked on the
 *   frame header, before any byte of the payload is buffered: over it closes with 1009.
 * - §8.1: text frames are accepted and their complete message checked as UTF-8 (1007 if not; our
 *   protocols are binary and refuse text frames themselves, with their own error).
 * - §5.5.1, §7.1, §7.4: the close handshake — a close frame's code must be one an endpoint may
 *   send (1000–1003, 1007–1014, 3000–4999), its reason UTF-8, its payload not 1 byte; we echo the
 *   code and close TCP first (§7.1.1, the server does); a close we start waits `closeTimeoutMs`
 *   for the answer, then cuts the connection.
 *
 * Events: `message(data: Buffer, isBinary)`, `ping(data)`, `pong(data)`, `error(err)` (a protocol
 * violation, with `code` `LOFT_WS_*`, before the close), `close(code, reason: Buffer)` once the TCP
 * connection is gone (1005 when the close frame had no code, 1006 when there was no close frame).
 */

import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { Deadlines } from "./deadlines.ts";

/** RFC 6455 §1.3: appended to the client's key before hashing. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** §4.1: the key is 16 random bytes, base64. */
const KEY_RE = /^[+/0-9A-Za-z]{22}==$/;

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

type Listener = (...args: never[]) => void;
type EventName = "message" | "close" | "error" | "ping" | "pong";

/**
 * An immutable listener table, shared by every connection that reached it through the same
 * registrations (a transition tree, as V8's hidden classes). The transitions are weak on the
 * function: a table made for a one-off closure goes with the closure.
 */
class Listeners {
  readonly #transitions = new Map<string, WeakMap<Listener, Listeners>>();
  constructor(
    readonly table: Readonly<Record<string, readonly Listener[]>>,
    /** The table this one was made from by appending `fn` to `event` (to undo a `once`). */
    readonly parent?: Listeners,
    readonly event?: string,
    readonly fn?: Listener,
  ) {}

  with(event: string, fn: Listener, prepend: boolean): Listeners {
    const key = prepend ? `^${event}` : event;
    let byFn = this.#transitions.get(key);
    if (!byFn) {
      byFn = new WeakMap();
      this.#transitions.set(key, byFn);
    }
    let next = byFn.get(fn);
    if (!next) {
      const old = this.table[event] ?? [];
      next = prepend
        ? new Listeners({ ...this.table, [event]: [fn, ...old] })
        : new Listeners({ ...this.table, [event]: [...old, fn] }, this, event, fn);
      byFn.set(fn, next);
    }
    return next;
  }

  without(event: string, fn: Listener): Listeners {
    // Removing what was added last (a `once` that fired): back to the shared table before it.
    if (this.fn === fn && this.event === event && this.parent) return this.parent;
    const old = this.table[event];
    const at = old ? old.lastIndexOf(fn) : -1;
    if (!old || at < 0) return this;
    return new Listeners({ ...this.table, [event]: [...old.slice(0, at), ...old.slice(at + 1)] });
  }
}

const NO_LISTENERS = new Listeners({});

/** A frame-per-turn budget (relay-ws/frame-turns.ts): told of each message before it is handed over. */
export interface FrameGate {
  /** `ws` hands over one message now: may it hand over another in this turn? */
  admit(ws: LeanWebSocket): boolean;
  /**
   * It may not: called once that message was handed over; the gate calls `ws.proceed()` when its
   * next may go.
   */
  defer(ws: LeanWebSocket): void;
}

export interface LeanOptions {
  /** Largest message (a frame, or a fragmented message in all) accepted; over it, 1009. */
  maxPayload: number;
  /** How long a close we started waits for the peer's close frame (ms). */
  closeTimeoutMs?: number;
}

/** Why a connection was closed by us for a protocol violation (the `error` event's `code`). */
export class WebSocketProtocolError extends Error {
  constructor(
    readonly code: string,
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
  }
}

const WS = Symbol("loft.ws");
type Carrier = Duplex & { [WS]?: LeanWebSocket };

/**
 * A close handshake's entry in its deadline queue. Deadlines cannot be cancelled (host/deadlines.ts),
 * so the queue holds this, not the connection: once the TCP connection is gone the entry is emptied
 * and the connection, its socket and what its listeners hold are released at once, not when the
 * close timeout (30 s by default) passes.
 */
interface Closing {
  ws: LeanWebSocket | undefined;
  /** The peer's close reason (§5.5.1), once its close frame came. */
  reason: Buffer;
}

/** Close handshakes waiting for the peer's answer; one timer for all (host/deadlines.ts). */
const closing = new Map<number, Deadlines<Closing>>();
function closeDeadlines(ms: number): Deadlines<Closing> {
  let d = closing.get(ms);
  if (!d) {
    // §7.1.1: the peer did not answer our close frame in time: cut the TCP connection.
    d = new Deadlines<Closing>(ms, (c) => c.ws?.closeTimedOut(), Math.min(1000, ms));
    closing.set(ms, d);
  }
  return d;
}

/** Close handshakes of any length still holding a connection whose TCP connection is open (tests). */
export function closingHeld(): number {
  return closingHeldCount;
}
let closingHeldCount = 0;

/** A fragmented message begun (§5.4): its fragments, their bytes, its opcode, its frame count. */
interface Fragments {
  parts: Buffer[];
  bytes: number;
  opcode: number;
  /** Frames of the message begun, empty ones included (bounded: MAX_FRAGMENTS). */
  count: number;
}

/** LeanWebSocket's `#flags`: the state in bits 0–1, then flags, then the pongs owed. */
const STATE = 0x3;
const PAUSED = 0x4;
/** The frame gate said wait: nothing is read until its turn (`proceed`). */
const GATE_WAIT = 0x8;
/** Our close frame went out. */
const CLOSE_SENT = 0x10;
/** The peer's close frame came (or a violation ended reading). */
const CLOSE_RECEIVED = 0x20;
/** One pong owed (bits 8 and up count them). */
const PONG = 0x100;

/** §5.5.1 / §7.4.1: codes an endpoint may put in a close frame. */
export function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

const EMPTY = Buffer.alloc(0);
/** `sendParts`: pieces up to this many bytes are copied together; larger ones written as they are. */
const PIECE_COPY = 4096;

/** Whether this machine stores a Uint32Array's words little-endian (unmask's word loop). */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * XOR `payload` in place with the 4-byte masking key (§5.3: byte i with key byte i mod 4). Four
 * bytes at a time over the payload's aligned middle, one at a time at its ends: a byte loop cost
 * ~2 µs of the event loop per 1 KiB SEND (bench/README-relay.md, "Results: a delivery written
 * as it was sealed").
 */
export function unmask(payload: Uint8Array, mask: Uint8Array): void {
  const n = payload.length;
  let i = 0;
  if (LITTLE_ENDIAN && n >= 16) {
    const head = (4 - (payload.byteOffset & 3)) & 3;
    for (; i < head; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
    const words = (n - i) >>> 2;
    // The key as the little-endian word starting at byte i of the payload (key byte i mod 4 first).
    const key =
      (mask[i & 3]! | (mask[(i + 1) & 3]! << 8) | (mask[(i + 2) & 3]! << 16) | (mask[(i + 3) & 3]! << 24)) >>>
      0;
    const w = new Uint32Array(payload.buffer, payload.byteOffset + i, words);
    for (let k = 0; k < words; k++) w[k] = w[k]! ^ key;
    i += words * 4;
  }
  for (; i < n; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
}

/** Bytes of an unmasked server frame's header for an `n`-byte payload (§5.2). */
function frameHeaderLength(n: number): number {
  return n < 126 ? 2 : n < 65536 ? 4 : 10;
}

/** Write a final (FIN) unmasked frame header at the start of `out`; returns its length (§5.2). */
function writeFrameHeader(out: Buffer, opcode: number, n: number): number {
  out[0] = 0x80 | opcode;
  if (n < 126) {
    out[1] = n;
    return 2;
  }
  if (n < 65536) {
    out[1] = 126;
    out.writeUInt16BE(n, 2);
    return 4;
  }
  out[1] = 127;
  out.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
  out.writeUInt32BE(n >>> 0, 6);
  return 10;
}
/** Most frames one message may come in (§5.4 sets no limit; ours need far fewer). */
const MAX_FRAGMENTS = 1024;
/** Most pongs owed and not yet written before a pinging peer that does not read is cut. */
const MAX_PENDING_PONGS = 60;

/**
 * The accepted connection. Fields are few and most stay undefined while idle (bench:scale counts
 * its bytes; bench/idle-census.ts counts them by constructor).
 */
export class LeanWebSocket {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;

  /** `ws` exposes the socket as `_socket`; relay-ws/connection.ts corks it. */
  _socket: Duplex;
  #listeners = NO_LISTENERS;
  /**
   * The state (CONNECTING … CLOSED, bits 0–1), the flags PAUSED, GATE_WAIT, CLOSE_SENT,
   * CLOSE_RECEIVED, and the pongs we owe not yet written (bits 8 and up, bounded by
   * MAX_PENDING_PONGS): one small integer where they were six fields (8 bytes each).
   */
  #flags = OPEN;
  readonly #options: LeanOptions;
  /** Received bytes not yet parsed (a frame not complete). */
  #chunks: Buffer[] | undefined;
  #buffered = 0;
  /** A fragmented message begun (§5.4): made at its first fragment, dropped at its last. */
  #message: Fragments | undefined;
  /** The frame gate, and its counters for this connection (the turn it last counted, and how many). */
  gate: FrameGate | undefined;
  gateTurn = -1;
  gateCount = 0;
  /** The close code the peer sent (1005: none), or ours on a violation; 1006 until then. */
  #closeCode = 1006;
  /** The subprotocol selected at the opening (§4.2.2), if any. */
  readonly #protocol: string | undefined;
  /** The close deadline's entry while one runs: emptied when the socket goes (see `Closing`). */
  #closing: Closing | undefined;

  constructor(socket: Duplex, options: LeanOptions, protocol?: string) {
    this._socket = socket;
    this.#options = options;
    this.#protocol = protocol;
    (socket as Carrier)[WS] = this;
    socket.on("data", onSocketData);
    socket.on("close", onSocketClose);
    // Node destroys a socket before it emits 'error' (a reset, a failed write): a listener is only
    // there so that the event does not throw. When the host's is on the socket already
    // (host/host.ts), ours would turn the listener into an array of two (64 bytes per connection).
    if (socket.listenerCount("error") === 0) socket.on("error", onSocketError);
    compactListeners(socket, "close");
    // The peer closed its side with no close frame (§7.1.5: 1006): the stream ends ours (no 'end'
    // listener of our own: an idle connection's listener table stays smaller).
    (socket as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = false;
  }

  get CONNECTING(): number {
    return CONNECTING;
  }
  get OPEN(): number {
    return OPEN;
  }
  get CLOSING(): number {
    return CLOSING;
  }
  get CLOSED(): number {
    return CLOSED;
  }

  get readyState(): number {
    return this.#flags & STATE;
  }

  /** The subprotocol selected at the opening (§4.2.2, as `ws`'s: the first the client offered), or "". */
  get protocol(): string {
    return this.#protocol ?? "";
  }

  get #state(): number {
    return this.#flags & STATE;
  }

  set #state(state: number) {
    this.#flags = (this.#flags & ~STATE) | state;
  }

  #has(flag: number): boolean {
    return (this.#flags & flag) !== 0;
  }

  #set(flag: number, on: boolean): void {
    this.#flags = on ? this.#flags | flag : this.#flags & ~flag;
  }

  /** Bytes handed to the socket and not yet passed to the kernel (as `ws`'s, once open). */
  get bufferedAmount(): number {
    return this._socket.writableLength;
  }

  /** Bytes received and held: a frame not yet complete, the fragments of a message begun. */
  get heldBytes(): number {
    return this.#buffered + (this.#message?.bytes ?? 0);
  }

  // ---- events ---------------------------------------------------------------------------------

  on(event: EventName, fn: Listener): this {
    this.#listeners = this.#listeners.with(event, fn, false);
    return this;
  }

  addListener(event: EventName, fn: Listener): this {
    return this.on(event, fn);
  }

  prependListener(event: EventName, fn: Listener): this {
    this.#listeners = this.#listeners.with(event, fn, true);
    return this;
  }

  once(event: EventName, fn: Listener): this {
    const self = this;
    const wrapper = function (this: unknown, ...args: never[]) {
      self.removeListener(event, wrapper);
      fn.apply(self, args);
    };
    return this.on(event, wrapper);
  }

  removeListener(event: EventName, fn: Listener): this {
    this.#listeners = this.#listeners.without(event, fn);
    return this;
  }

  off(event: EventName, fn: Listener): this {
    return this.removeListener(event, fn);
  }

  listenerCount(event: EventName): number {
    return this.#listeners.table[event]?.length ?? 0;
  }

  #emit(event: EventName, ...args: unknown[]): void {
    const list = this.#listeners.table[event];
    if (!list) return;
    for (const fn of list) (fn as (...a: unknown[]) => void).apply(this, args);
  }

  // ---- sending --------------------------------------------------------------------------------

  /**
   * Send one message: binary unless `data` is a string or `binary: false` (§5.6). `cb` runs once
   * the bytes reached the kernel, or with an error if the connection is gone first.
   */
  send(
    data: Uint8Array | string,
    options?: { binary?: boolean } | ((err?: Error | null) => void),
    cb?: (err?: Error | null) => void,
  ): void {
    if (typeof options === "function") {
      cb = options;
      options = undefined;
    }
    const text = typeof data === "string" || options?.binary === false;
    const payload = typeof data === "string" ? Buffer.from(data) : data;
    if (this.#state !== OPEN) {
      if (cb) process.nextTick(cb, new Error("WebSocket is not open"));
      return;
    }
    this.#frame(text ? 0x1 : 0x2, payload, cb);
  }

  /**
   * Send one binary message given in pieces (a frame's head, a cipher's output pieces, its tail),
   * written as they are instead of copied into one buffer first: the same bytes on the wire as
   * `send` of their concatenation (§5.6). Pieces up to PIECE_COPY bytes are gathered into one
   * buffer with the frame header; larger ones go to the socket as they are, all corked into one
   * `writev`. `cb` as for `send`.
   */
  sendParts(parts: readonly Uint8Array[], cb?: (err?: Error | null) => void): void {
    if (this.#state !== OPEN) {
      if (cb) process.nextTick(cb, new Error("WebSocket is not open"));
      return;
    }
    const socket = this._socket;
    if (socket.destroyed || !socket.writable) {
      if (cb) process.nextTick(cb, new Error("WebSocket is not open"));
      return;
    }
    let n = 0;
    for (const p of parts) n += p.length;
    const headerLength = frameHeaderLength(n);
    // The chunks to write: runs of small pieces copied together (the first with the header), large
    // pieces by reference. Sized in a first pass, so each run is one allocation.
    const chunks: Uint8Array[] = [];
    let run = headerLength;
    let runParts: Uint8Array[] = [];
    const flushRun = () => {
      if (run === 0) return;
      const out = Buffer.allocUnsafe(run);
      let at = 0;
      if (chunks.length === 0) at = writeFrameHeader(out, 0x2, n);
      for (const p of runParts) {
        out.set(p, at);
        at += p.length;
      }
      chunks.push(out);
      run = 0;
      runParts = [];
    };
    for (const p of parts) {
      if (p.length === 0) continue;
      if (p.length <= PIECE_COPY) {
        runParts.push(p);
        run += p.length;
        continue;
      }
      flushRun();
      chunks.push(p);
    }
    flushRun();
    if (chunks.length === 1) {
      if (cb) socket.write(chunks[0]!, cb);
      else socket.write(chunks[0]!);
      return;
    }
    socket.cork();
    const last = chunks.length - 1;
    for (let k = 0; k < last; k++) socket.write(chunks[k]!);
    if (cb) socket.write(chunks[last]!, cb);
    else socket.write(chunks[last]!);
    socket.uncork();
  }

  ping(data: Uint8Array = EMPTY): void {
    if (this.#state !== OPEN) return;
    if (data.length > 125) throw new RangeError("a ping payload is at most 125 bytes (RFC 6455 §5.5)");
    this.#frame(0x9, data);
  }

  /**
   * Start the close handshake (§7.1.2): our close frame, then wait for the peer's (its TCP close
   * follows ours, §7.1.1) at most `closeTimeoutMs`.
   */
  close(code?: number, reason?: string | Uint8Array): void {
    if (this.#state === CLOSED) return;
    if (this.#state === CLOSING) {
      // Both close frames crossed: our part is done.
      if (this.#has(CLOSE_SENT) && this.#has(CLOSE_RECEIVED)) this._socket.end();
      return;
    }
    if (code !== undefined && !validCloseCode(code)) throw new RangeError(`invalid close code ${code}`);
    const why = typeof reason === "string" ? Buffer.from(reason) : (reason ?? EMPTY);
    if (why.length > 123) throw new RangeError("a close reason is at most 123 bytes (RFC 6455 §5.5)");
    this.#sendClose(code, why);
    if (this.#has(CLOSE_RECEIVED)) this._socket.end();
    else this.#awaitClose();
  }

  /**
   * Wait at most `closeTimeoutMs` for the TCP connection to go (§7.1.1), then cut it; the wait's
   * entry (made once: a second call finds the first's).
   */
  #awaitClose(): Closing {
    if (this.#closing) return this.#closing;
    const c: Closing = { ws: this, reason: EMPTY };
    this.#closing = c;
    closingHeldCount++;
    closeDeadlines(this.#options.closeTimeoutMs ?? 30_000).add(c);
    return c;
  }

  /** Cut the TCP connection, no close handshake (`close` is emitted with 1006). */
  terminate(): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSING;
    this._socket.destroy();
  }

  /** Stop handing over messages and reading from the socket until `resume`. */
  pause(): void {
    if (this.#state === CLOSED || this.#has(PAUSED)) return;
    this.#set(PAUSED, true);
    this._socket.pause();
  }

  resume(): void {
    if (!this.#has(PAUSED)) return;
    this.#set(PAUSED, false);
    if (this.#has(GATE_WAIT)) return; // the socket stays paused until the gate's turn (proceed)
    if (this.#state !== CLOSED) this._socket.resume();
    this.#parse();
  }

  /** The gate's turn came: read again, and hand over what is buffered. */
  proceed(): void {
    if (!this.#has(GATE_WAIT)) return;
    this.#set(GATE_WAIT, false);
    if (this.#has(PAUSED)) return;
    if (this.#state !== CLOSED) this._socket.resume();
    this.#parse();
  }

  /** The close deadline passed (closeDeadlines). */
  closeTimedOut(): void {
    if (this.#state !== CLOSED) this._socket.destroy();
  }

  #sendClose(code: number | undefined, reason: Uint8Array): void {
    this.#state = CLOSING;
    if (this.#has(CLOSE_SENT)) return;
    this.#set(CLOSE_SENT, true);
    let payload: Buffer = EMPTY;
    if (code !== undefined) {
      payload = Buffer.allocUnsafe(2 + reason.length);
      payload.writeUInt16BE(code, 0);
      payload.set(reason, 2);
    }
    this.#frame(0x8, payload);
  }

  /** One unmasked server frame (§5.2): FIN set, no fragmentation of what we send. */
  #frame(opcode: number, payload: Uint8Array, cb?: (err?: Error | null) => void): void {
    const n = payload.length;
    const headerLength = frameHeaderLength(n);
    const socket = this._socket;
    if (socket.destroyed || !socket.writable) {
      if (cb) process.nextTick(cb, new Error("WebSocket is not open"));
      return;
    }
    // Small frames go in one buffer (one write); large ones as header + payload, corked (one writev).
    const out = Buffer.allocUnsafe(n <= 16_384 ? headerLength + n : headerLength);
    writeFrameHeader(out, opcode, n);
    if (n <= 16_384) {
      out.set(payload, headerLength);
      if (cb) socket.write(out, cb);
      else socket.write(out);
    } else {
      socket.cork();
      socket.write(out);
      if (cb) socket.write(payload, cb);
      else socket.write(payload);
      socket.uncork();
    }
  }

  // ---- receiving ------------------------------------------------------------------------------

  /** Bytes from the socket (onSocketData). */
  received(chunk: Buffer): void {
    if (this.#has(CLOSE_RECEIVED) || this.#state === CLOSED) return;
    if (this.#chunks) this.#chunks.push(chunk);
    else this.#chunks = [chunk];
    this.#buffered += chunk.length;
    if (!this.#has(PAUSED) && !this.#has(GATE_WAIT)) this.#parse();
  }

  /** The first `n` buffered bytes, one contiguous Buffer (consumed). */
  #take(n: number): Buffer {
    const chunks = this.#chunks!;
    this.#buffered -= n;
    const first = chunks[0]!;
    if (first.length === n) {
      chunks.shift();
      if (chunks.length === 0) this.#chunks = undefined;
      return first;
    }
    if (first.length > n) {
      chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = chunks[0]!;
      const want = n - at;
      if (c.length <= want) {
        out.set(c, at);
        at += c.length;
        chunks.shift();
      } else {
        out.set(c.subarray(0, want), at);
        chunks[0] = c.subarray(want);
        at = n;
      }
    }
    if (chunks.length === 0) this.#chunks = undefined;
    return out;
  }

  /** Byte `i` of what is buffered, without consuming it. */
  #peek(i: number): number {
    for (const c of this.#chunks!) {
      if (i < c.length) return c[i]!;
      i -= c.length;
    }
    return 0;
  }

  /** Parse and hand over complete frames while allowed. */
  #parse(): void {
    while (this.#chunks && this.#state !== CLOSED && !this.#has(CLOSE_RECEIVED)) {
      if (this.#has(PAUSED) || this.#has(GATE_WAIT)) return;
      if (this.#buffered < 2) return;
      const b0 = this.#peek(0);
      const b1 = this.#peek(1);
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if ((b0 & 0x70) !== 0) {
        this.#fail("RSV", 1002, "RSV bits set, no extension agreed");
        return;
      }
      const control = opcode >= 0x8;
      if (control) {
        if (opcode > 0xa) {
          this.#fail("OPCODE", 1002, `unknown opcode ${opcode}`);
          return;
        }
        if (!fin) {
          this.#fail("FRAGMENTED_CONTROL", 1002, "fragmented control frame");
          return;
        }
      } else if (opcode > 0x2) {
        this.#fail("OPCODE", 1002, `unknown opcode ${opcode}`);
        return;
      } else if (opcode === 0x0 && !this.#message) {
        this.#fail("CONTINUATION", 1002, "continuation frame with no message begun");
        return;
      } else if (opcode !== 0x0 && this.#message) {
        this.#fail("CONTINUATION", 1002, "new data frame inside a fragmented message");
        return;
      }
      if ((b1 & 0x80) === 0) {
        this.#fail("UNMASKED", 1002, "client frame not masked");
        return;
      }
      let length = b1 & 0x7f;
      let headerLength = 2;
      if (length === 126) {
        if (this.#buffered < 4) return;
        length = (this.#peek(2) << 8) | this.#peek(3);
        headerLength = 4;
      } else if (length === 127) {
        if (this.#buffered < 10) return;
        const top = this.#peek(2);
        if (top & 0x80) {
          this.#fail("LENGTH", 1002, "64-bit length with its top bit set");
          return;
        }
        // Anything past 2^32 is past any maxPayload we accept: no need for the high bytes' value.
        if (top | this.#peek(3) | this.#peek(4) | this.#peek(5)) {
          this.#fail("TOO_BIG", 1009, "frame larger than the limit");
          return;
        }
        length =
          ((this.#peek(6) << 24) >>> 0) + ((this.#peek(7) << 16) | (this.#peek(8) << 8) | this.#peek(9));
        headerLength = 10;
      }
      if (control && length > 125) {
        this.#fail("CONTROL_LENGTH", 1002, "control frame over 125 bytes");
        return;
      }
      // §10.4: the limit is checked before any of the payload is held.
      if (!control && (this.#message?.bytes ?? 0) + length > this.#options.maxPayload) {
        this.#fail("TOO_BIG", 1009, "message larger than the limit");
        return;
      }
      if (this.#buffered < headerLength + 4 + length) return;
      const header = this.#take(headerLength + 4);
      const mask = header.subarray(headerLength);
      // Unmasked in place (§5.3), as `ws` does: each read chunk is a buffer of its own.
      const payload = length === 0 ? Buffer.alloc(0) : this.#take(length);
      unmask(payload, mask);
      if (control) this.#control(opcode, payload);
      else this.#data(opcode, fin, payload);
    }
  }

  #control(opcode: number, payload: Buffer): void {
    if (opcode === 0x9) {
      if (this.#state === OPEN) {
        // A peer that pings without reading would grow our output without bound: past
        // MAX_PENDING_PONGS unwritten pongs the connection is cut (as ws's maxPendingAutoPongs).
        if (this.#flags >= MAX_PENDING_PONGS * PONG) {
          this.#fail("PING_FLOOD", 1008, "too many pings left unanswered by a peer that does not read");
          return;
        }
        this.#flags += PONG;
        this.#frame(0xa, payload, () => {
          this.#flags -= PONG;
        });
      }
      this.#emit("ping", payload);
      return;
    }
    if (opcode === 0xa) {
      this.#emit("pong", payload);
      return;
    }
    // §5.5.1 close.
    if (payload.length === 1) {
      this.#fail("CLOSE_PAYLOAD", 1002, "close frame of one byte");
      return;
    }
    let code = 1005;
    let reason: Buffer = EMPTY;
    if (payload.length >= 2) {
      code = payload.readUInt16BE(0);
      if (!validCloseCode(code)) {
        this.#fail("CLOSE_CODE", 1002, `invalid close code ${code}`);
        return;
      }
      reason = payload.subarray(2);
      if (!isUtf8(reason)) {
        this.#fail("UTF8", 1007, "close reason not UTF-8");
        return;
      }
    }
    this.#set(CLOSE_RECEIVED, true);
    this.#closeCode = code;
    this.#chunks = undefined;
    this.#buffered = 0;
    this.#message = undefined;
    // Echo the code (§5.5.1), then close TCP first (§7.1.1).
    if (!this.#has(CLOSE_SENT)) this.#sendClose(code === 1005 ? undefined : code, EMPTY);
    this._socket.end();
    // A peer that never closes its side is cut after the same timeout as a close we start.
    this.#awaitClose().reason = reason;
  }

  #data(opcode: number, fin: boolean, payload: Buffer): void {
    if (!fin) {
      this.#message ??= { parts: [], bytes: 0, opcode, count: 0 };
      const m = this.#message;
      // Empty fragments add no bytes (maxPayload never sees them) but each is a frame to keep
      // count of: a message in more than MAX_FRAGMENTS frames is refused, and empty ones are not
      // held at all.
      if (++m.count > MAX_FRAGMENTS) {
        this.#fail("FRAGMENTS", 1008, "message in too many fragments");
        return;
      }
      if (payload.length > 0) m.parts.push(payload);
      m.bytes += payload.length;
      return;
    }
    let message = payload;
    const m = this.#message;
    if (m) {
      m.parts.push(payload);
      message = Buffer.concat(m.parts, m.bytes + payload.length);
      opcode = m.opcode;
      this.#message = undefined;
    }
    if (opcode === 0x1 && !isUtf8(message)) {
      this.#fail("UTF8", 1007, "text message not UTF-8");
      return;
    }
    if (this.#state !== OPEN) return;
    const gate = this.gate;
    if (gate && !gate.admit(this)) {
      // Nothing more is read while the gate holds this connection (as ws pauses its socket): a
      // peer sending many small frames would otherwise be buffered here without bound.
      this.#set(GATE_WAIT, true);
      this._socket.pause();
    }
    try {
      this.#emit("message", message, opcode === 0x2);
    } finally {
      // A listener that throws must not leave the connection held with nobody to release it.
      if (gate && this.#has(GATE_WAIT)) gate.defer(this);
    }
  }

  /** A protocol violation: `error`, our close frame with `closeCode`, nothing more read (§7.1.7). */
  #fail(code: string, closeCode: number, message: string): void {
    this.#chunks = undefined;
    this.#buffered = 0;
    this.#message = undefined;
    this.#set(CLOSE_RECEIVED, true);
    this.#closeCode = closeCode;
    if (this.#state === CLOSED) return;
    const wasOpen = this.#state === OPEN;
    // Our close frame goes first, then the error (as `ws` does): a listener that closes on error
    // finds the connection closing already, and the peer learns the violation's code.
    this.#sendClose(closeCode, EMPTY);
    this._socket.end();
    this.#awaitClose();
    if (wasOpen) this.#emit("error", new WebSocketProtocolError(`LOFT_WS_${code}`, closeCode, message));
  }

  /** The TCP connection is gone (onSocketClose). */
  closed(): void {
    if (this.#state === CLOSED) return;
    // Frames that arrived before the connection went are still the peer's (a SEND and then the
    // close, say): handed over first, as ws does; the gate's turn no longer matters.
    if (this.#chunks && this.#state === OPEN && !this.#has(CLOSE_RECEIVED)) {
      this.gate = undefined;
      this.#set(GATE_WAIT, false);
      this.#set(PAUSED, false);
      this.#parse();
    }
    this.#state = CLOSED;
    this.#chunks = undefined;
    this.#buffered = 0;
    this.#message = undefined;
    // What can go goes now: the close deadline's entry lets go of this connection (it is not due
    // for up to closeTimeoutMs), the socket of it, and nothing more is read.
    let reason: Buffer = EMPTY;
    if (this.#closing) {
      reason = this.#closing.reason;
      this.#closing.ws = undefined;
      this.#closing = undefined;
      closingHeldCount--;
    }
    const s = this._socket as Carrier;
    s.removeListener("data", onSocketData);
    s[WS] = undefined;
    this.gate = undefined;
    this.#emit("close", this.#closeCode, reason);
  }
}

/**
 * EventEmitter keeps two or more listeners of one event in an array, and V8 grows an array of two
 * to 19 slots when a third is pushed (176 bytes): an upgraded socket has three 'close' listeners
 * (the host's, the service's, ours). An exact copy holds the same listeners, in the same order,
 * in 3 (bench/README.md, "bench:scale": 144 bytes per idle connection).
 *
 * Node's `_events` table is not public API, so a Node that keeps its listeners otherwise must
 * find this a no-op, never a crash: nothing is changed unless `_events` is a writable object whose
 * entry is an array of more than two; after the copy is put in, the emitter must report the very
 * same listeners (`rawListeners`), else the original array is put back; anything that throws
 * (a frozen table, a getter) leaves the socket as it was. Returns whether it compacted.
 */
export function compactListeners(socket: Duplex, event: string): boolean {
  let table: Record<string, unknown> | undefined;
  let list: unknown;
  try {
    const events: unknown = (socket as { _events?: unknown })._events;
    if (typeof events !== "object" || events === null) return false;
    table = events as Record<string, unknown>;
    list = table[event];
    if (!Array.isArray(list) || list.length <= 2) return false;
    const original: unknown[] = list;
    const copy = original.slice();
    table[event] = copy;
    const now = socket.rawListeners(event);
    if (table[event] === copy && now.length === original.length && now.every((f, i) => f === original[i]))
      return true;
    table[event] = original;
    return false;
  } catch {
    // A table that refused the copy is unchanged; one that took it and then threw gets its array back.
    try {
      if (table && list !== undefined && table[event] !== list) table[event] = list;
    } catch {}
    return false;
  }
}

// Shared socket listeners (`this` is the socket): no closure per connection.
function onSocketData(this: Carrier, chunk: Buffer): void {
  this[WS]?.received(chunk);
}
function onSocketClose(this: Carrier): void {
  this[WS]?.closed();
}
function onSocketError(this: Carrier): void {
  // A reset or write error: the connection is gone (close follows, 1006).
  this.destroy();
}

/** The opening handshake's refusal (§4.2.1: 400 for a malformed request). */
function refuse(socket: Duplex, status: string, extra = ""): void {
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n${extra}Content-Length: 0\r\n\r\n`);
}

/** RFC 7230 §3.2.6 `tchar`: what a subprotocol name (a token, RFC 6455 §4.1 item 10) is made of. */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The subprotocols a `Sec-WebSocket-Protocol` header offers (RFC 6455 §4.1 item 10, §11.3.4:
 * tokens separated by commas and optional spaces or tabs), in order; undefined when the header is
 * malformed — empty, an empty item, a character outside a token, or a name given twice — which
 * `ws` (lib/subprotocol.js) refuses with 400 too.
 */
export function parseSubprotocols(header: string): string[] | undefined {
  const names = header.split(",").map((n) => n.replace(/^[ \t]+|[ \t]+$/g, ""));
  // ws accepts no blank before the first name or after the last (Node's parser strips them anyway).
  if (/^[ \t]|[ \t]$/.test(header)) return undefined;
  for (const n of names) if (!TOKEN_RE.test(n)) return undefined;
  return new Set(names).size === names.length ? names : undefined;
}

/**
 * Answer an upgrade request (§4.2.1, §4.2.2): validate it, write the 101 with
 * `Sec-WebSocket-Accept`, and return the connection — or answer 400 / 426 and return undefined.
 * A subprotocol offered is echoed as `ws` does by default: the first one the client named
 * (§4.2.2 item 5.4: the server selects one of those offered; the services speak the same protocol
 * whatever the name and a browser fails a connection whose answer names none of those it offered);
 * a malformed `Sec-WebSocket-Protocol` is answered 400. No extension is selected (the answer
 * names none).
 */
export function acceptUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: LeanOptions,
): LeanWebSocket | undefined {
  if (!socket.readable || !socket.writable) {
    socket.destroy();
    return undefined;
  }
  const key = req.headers["sec-websocket-key"];
  const version = req.headers["sec-websocket-version"];
  if (version !== "13") {
    refuse(socket, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
    return undefined;
  }
  if (
    req.method !== "GET" ||
    req.headers.upgrade?.toLowerCase() !== "websocket" ||
    typeof key !== "string" ||
    !KEY_RE.test(key)
  ) {
    refuse(socket, "400 Bad Request");
    return undefined;
  }
  const offered = req.headers["sec-websocket-protocol"];
  let protocol: string | undefined;
  if (offered !== undefined) {
    protocol = parseSubprotocols(offered)?.[0];
    if (protocol === undefined) {
      refuse(socket, "400 Bad Request");
      return undefined;
    }
  }
  const accept = createHash("sha1")
    .update(key + GUID)
    .digest("base64");
  const s = socket as Duplex & { setNoDelay?: (v: boolean) => void; setTimeout?: (ms: number) => void };
  s.setTimeout?.(0);
  s.setNoDelay?.(true);
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${protocol === undefined ? "" : `Sec-WebSocket-Protocol: ${protocol}\r\n`}\r\n`,
  );
  // Frames that came with the request are read after the caller has set its listeners (as `ws`).
  if (head.length > 0) socket.unshift(head);
  return new LeanWebSocket(socket, options, protocol);
}
