/**
 * One relay WebSocket: version header, HELLO with the session id, then commands
 * (docs/protocol/relay.md). Per-connection limits (frame size, token bucket, queues, messages in
 * flight, send buffer) are enforced here, and every command is charged to its source's budgets
 * (source-limits.ts: command cost, bytes stored, one-time prekeys taken); queue state lives in
 * the store and in the service's subscription table.
 *
 * Ordering: every decision about a command (authorization, quota, sequence number) is taken
 * synchronously against the store when the frame arrives; only the wait for durability is
 * asynchronous. Replies and pushed messages of one queue therefore leave in the order the commands
 * arrived (SMP §"Correlating responses with commands").
 */
import type { Duplex } from "node:stream";
import { equalBytes } from "../core/bytes.ts";
import { decodeVersionHeader, encodeVersionHeader, type VersionHeader } from "../core/codec/version.ts";
import type { WireErrorCode } from "../core/relay/errors.ts";
import {
  AUTH_RULES,
  authInput,
  type BatchResult,
  type ClientFrame,
  type Command,
  type CommandOf,
  decodeClientFrame,
  decodeCommand,
  encodeServerFrame,
  ID_LENGTH,
  MAX_BATCH,
  MAX_MSGS_FRAME,
  RELAY_VERSION_AUTHENTICATOR,
  RELAY_VERSION_BATCHED,
  RELAY_VERSION_BUCKETED,
  RELAY_VERSION_SIGNATURE,
  SESSION_ID_LENGTH,
  type ServerFrame,
} from "../core/relay/protocol.ts";
import { RedisUnavailableError } from "../host/redis.ts";
import type { ServerSocket as WebSocket } from "../host/websocket-server.ts";
import { ConnectionAuthenticator } from "./authenticator.ts";
import {
  type ConnectionHandle,
  type HandedOut,
  pushStillWanted,
  type RelayContext,
  type Subscription,
  stillDeliverable,
  takeHandedOut,
} from "./context.ts";
import { toHex } from "./hex.ts";
import { sealDeliveryParts } from "./node-crypto.ts";
import { PUSH_HIGH_WATER } from "./output-budget.ts";
import { queueDh } from "./queue-dh.ts";
import { lastingRandomBytes, pooledRandomBytes } from "./random-pool.ts";
import {
  COST,
  commandCost,
  type RelaySource,
  SOURCE_DEBT,
  storedBytes,
  storedMessageBytes,
} from "./source-limits.ts";
import { isNoSpaceError } from "./store/errors.ts";
import { freshQueueIds } from "./store/queue-ids.ts";
import type { AppendResult, NewMessage, QueueRecord, StoredMessageMeta } from "./store/types.ts";
import { encodeMsgs, encodeOk, encodeRes, fastDecode, msgParts } from "./wire-fast.ts";

const LOFT_CODE_TO_WIRE: Record<string, WireErrorCode> = {
  LOFT_ERR_FRAME_TOO_LARGE: "LARGE",
  LOFT_ERR_MALFORMED: "MALFORMED",
  LOFT_ERR_SCHEMA: "SCHEMA",
  LOFT_ERR_UNKNOWN_TYPE: "UNKNOWN",
};

/** A command waiting in a connection's inbox. */
interface Inbound {
  command: Command;
  frame: ClientFrame;
  ready: boolean;
  /** Messages of a batch the connection's rate admitted (a prefix; the rest is answered RATE). */
  admitted: number;
}

/** A signature check done ahead, on a worker: valid only for exactly this key and signature. */
interface PreVerdict {
  key: Uint8Array | undefined;
  signature: Uint8Array | undefined;
  remember: boolean;
  good: boolean;
}

/** The socket's property naming its connection (for the shared listeners). */
const CONNECTION = Symbol("loft.relayConnection");
type Carrier = WebSocket & { [CONNECTION]?: RelayConnection };

/** Commands a connection may have waiting for verification before its socket stops being read. */
export const INBOX_LIMIT = 256;

/** A delivery sealed for a 1.3 connection, waiting for the end of the tick to share a MSGS frame. */
interface Staged {
  msgId: Uint8Array;
  parts: Uint8Array[];
  length: number;
}

/** How a store's append result reads in a RES (docs/protocol/relay.md §Batches). */
const APPEND_TO_WIRE: Record<AppendResult, BatchResult> = {
  ok: "OK",
  quota: "QUOTA",
  full: "FULL",
  duplicate: "DUPLICATE",
  missing: "AUTH",
  suspended: "AUTH",
};

// Bits of RelayConnection's #flags. The state is "opening" while neither READY nor CLOSED is set.
const ALIVE = 1;
const RELEASED = 2;
const PUSH_PAUSED = 4;
const CORKED = 8;
const READ_PAUSED = 16;
/** Protocol 1.2 or later: bucketed deliveries. */
const BUCKETED = 32;
/** Protocol 1.3: batches. */
const BATCHED = 64;
const READY = 128;
const CLOSED = 256;

class Refused extends Error {
  constructor(readonly wire: WireErrorCode) {
    super(wire);
  }
}

export class RelayConnection implements ConnectionHandle {
  readonly #ctx: RelayContext;
  readonly #ws: WebSocket;
  readonly #source: RelaySource;
  /**
   * The session id of a 1.0 connection (signatures). From 1.1 on it lives in the authenticator's
   * bytes, beside the connection's key pair: one Buffer object (96 bytes) less per connection.
   * Drawn at the version header: the HELLO is its first use. A slice of a slab of connection-long
   * bytes, not an ArrayBuffer of its own nor of Node's pool, whose 8 KiB slabs it would keep alive
   * (random-pool.ts).
   */
  #session: Uint8Array | undefined;
  /**
   * The connection's state and booleans in one small integer (bits below): one field instead of
   * nine, 8 bytes each (idle WebSockets are counted in bytes, bench/README.md "bench:scale").
   * Read and written through the private accessors further down.
   */
  #flags = ALIVE;
  /**
   * The rate bucket (docs/protocol/relay.md §Limits): tokens left and when last refilled.
   * Both undefined while the bucket is full: the heartbeat forgets a bucket that refilled, so an
   * idle connection holds no boxed doubles (a full bucket is what a fresh one is).
   */
  #tokens: number | undefined;
  #refilledAt: number | undefined;
  // The Maps and Sets below are made on first use: an idle connection holds none of them (each
  // empty one cost ~180 bytes; idle WebSockets are counted in bytes, bench/README.md "bench:scale").
  /** Queues this connection created or subscribed (hex recipient ids), for the per-connection limit. */
  #queuesMade: Set<string> | undefined;
  /** Subscriptions this connection owns, by hex recipient id. */
  #subs: Map<string, Subscription> | undefined;
  /** Messages handed out by GET and not acknowledged, by hex recipient id. */
  #getsMade: Map<string, HandedOut> | undefined;
  /** NEWs past their limit check and not yet written: they hold a queue slot (no orphan queues). */
  #creating = 0;
  /** Bytes handed to the socket and not yet passed to the kernel (the client has not read them). */
  #queued = 0;
  /**
   * Commands whose signature is being verified on a worker (verify-pool.ts), or that wait for an
   * earlier command's: they run in arrival order, whatever order the verdicts come back in.
   */
  #inboxMade: Inbound[] | undefined;
  /** Verdicts computed ahead for a frame (the check `#dispatch` is expected to make). */
  #preverdictsMade: WeakMap<ClientFrame, PreVerdict> | undefined;
  /**
   * Protocol 1.1 (the client's header said so): commands carry authenticators, checked here with
   * keys agreed per queue on this connection (authenticator.ts). Undefined under 1.0: signatures.
   */
  #auth: ConnectionAuthenticator | undefined;
  /** 1.3 pushes sealed this tick, by hex recipient id (made on first use; flushed at tick end). */
  #staged: Map<string, { rid: Uint8Array; items: Staged[] }> | undefined;
  /** Bytes of the pushes staged this tick: output as far as `congested` and the budget go. */
  #stagedBytes = 0;

  constructor(ctx: RelayContext, ws: WebSocket, source: RelaySource) {
    this.#ctx = ctx;
    this.#ws = ws;
    this.#source = source;
    // The client has `--relay-opening-timeout` to send its version header (openingDue).
    ctx.openings.add(this);
    // Shared listeners (`this` is the socket, the connection its CONNECTION property): no closure
    // per connection.
    (ws as Carrier)[CONNECTION] = this;
    ws.on("message", RelayConnection.#listeners.message);
    ws.on("close", RelayConnection.#listeners.close);
    ws.on("error", RelayConnection.#listeners.error);
    ws.on("pong", RelayConnection.#listeners.pong);
    ws.on("ping", RelayConnection.#listeners.ping);
    this.#send(encodeVersionHeader());
  }

  static readonly #listeners = {
    message(this: Carrier, data: Buffer, isBinary: boolean) {
      const conn = this[CONNECTION];
      if (conn) conn.#onFrame(toBytes(data), isBinary);
    },
    close(this: Carrier) {
      const conn = this[CONNECTION];
      if (!conn) return;
      conn.#releaseOutput();
      conn.#onClosed();
    },
    error(this: Carrier) {
      this[CONNECTION]?.close(1011, "LOFT_ERR_LINK_CLOSED");
    },
    pong(this: Carrier) {
      const conn = this[CONNECTION];
      if (conn) conn.#alive = true;
    },
    ping(this: Carrier) {
      const conn = this[CONNECTION];
      if (conn) conn.#onPing();
    },
  };

  // ---- the bits of #flags ------------------------------------------------------------------

  get #state(): "opening" | "ready" | "closed" {
    return this.#flags & CLOSED ? "closed" : this.#flags & READY ? "ready" : "opening";
  }

  set #state(s: "opening" | "ready" | "closed") {
    this.#flags = (this.#flags & ~(READY | CLOSED)) | (s === "closed" ? CLOSED : s === "ready" ? READY : 0);
  }

  #bit(bit: number, on: boolean): void {
    this.#flags = on ? this.#flags | bit : this.#flags & ~bit;
  }

  /** Answered the last ping (heartbeat). */
  get #alive(): boolean {
    return (this.#flags & ALIVE) !== 0;
  }

  set #alive(on: boolean) {
    this.#bit(ALIVE, on);
  }

  /** Set once the socket is gone and its backlog given back to the global budget. */
  get #released(): boolean {
    return (this.#flags & RELEASED) !== 0;
  }

  set #released(on: boolean) {
    this.#bit(RELEASED, on);
  }

  /** Pushes stopped because of the backlog; the drain resumes them. */
  get #pushPaused(): boolean {
    return (this.#flags & PUSH_PAUSED) !== 0;
  }

  set #pushPaused(on: boolean) {
    this.#bit(PUSH_PAUSED, on);
  }

  /** Writes are being gathered until the end of this tick (#cork). */
  get #corked(): boolean {
    return (this.#flags & CORKED) !== 0;
  }

  set #corked(on: boolean) {
    this.#bit(CORKED, on);
  }

  /** Reading from the socket stopped because the inbox is full; resumed when it drains. */
  get #readPaused(): boolean {
    return (this.#flags & READ_PAUSED) !== 0;
  }

  set #readPaused(on: boolean) {
    this.#bit(READ_PAUSED, on);
  }

  /**
   * Protocol 1.2: deliveries carry the body's size bucket, not the 16 KiB block
   * (docs/protocol/relay.md §Padding).
   */
  get #padding(): "block" | "bucket" {
    return this.#flags & BUCKETED ? "bucket" : "block";
  }

  /**
   * Protocol 1.3: SENDS/ACKS accepted, and pushes of one queue that leave in the same tick share
   * MSGS frames (docs/protocol/relay.md §Batches).
   */
  get #batch(): boolean {
    return (this.#flags & BATCHED) !== 0;
  }

  /** The session id (HELLO `s`; signed over under 1.0, the authenticators' salt from 1.1). */
  get sessionId(): Uint8Array {
    const s = this.#auth?.sessionId ?? this.#session;
    if (!s) throw new Error("no session id before the version header");
    return s;
  }

  get #queues(): Set<string> {
    this.#queuesMade ??= new Set();
    return this.#queuesMade;
  }

  /** Subscriptions this connection owns, by hex recipient id (made on first use). */
  get subs(): Map<string, Subscription> {
    this.#subs ??= new Map();
    return this.#subs;
  }

  get #gets(): Map<string, HandedOut> {
    this.#getsMade ??= new Map();
    return this.#getsMade;
  }

  get #inbox(): Inbound[] {
    this.#inboxMade ??= [];
    return this.#inboxMade;
  }

  get #preverdicts(): WeakMap<ClientFrame, PreVerdict> {
    this.#preverdictsMade ??= new WeakMap();
    return this.#preverdictsMade;
  }

  /** The opening deadline passed (context `openings`): close unless the header came. */
  openingDue(): void {
    if (this.#state === "opening") this.close(1002, "LOFT_ERR_TIMEOUT");
  }

  /** In-flight (delivered, unacknowledged) messages across this connection's subscriptions and GETs. */
  get inFlight(): number {
    let n = this.#getsMade?.size ?? 0;
    if (this.#subs) for (const s of this.#subs.values()) n += s.inflight.size;
    return n;
  }

  /** Heartbeat: terminate a connection that did not answer the previous ping. */
  heartbeat(): void {
    if (this.#state === "closed") return;
    // A bucket that refilled is forgotten: the next frame starts from a full one, as it would.
    if (this.#refilledAt !== undefined && this.#tokensAt(this.#ctx.now()) >= this.#ctx.config.rateBurst)
      this.#tokens = this.#refilledAt = undefined;
    if (!this.#alive) {
      this.#ws.terminate();
      return;
    }
    this.#alive = false;
    this.#ws.ping();
  }

  close(code: number, reason: string, isError = true): void {
    if (this.#state === "closed") return;
    if (isError) this.#ctx.metrics.errors.inc({ code: reason });
    this.#ws.close(code, reason);
    this.#onClosed();
  }

  /** Send a server frame; cut a client that does not read. */
  sendFrame(frame: ServerFrame): void {
    // An END leaves after the pushes of this tick (1.3 holds them to the tick's end), as under
    // 1.2, where each push left at once: the client reads the queue's messages before its END.
    if (frame.k === "END" && this.#staged) this.#flushStaged();
    this.#send(encodeServerFrame(frame));
  }

  /**
   * Whether pushes to this connection should wait: its client is behind by more than
   * PUSH_HIGH_WATER, or all clients together hold the global budget and this one is behind at all.
   * Asked by the service's pump; a true answer arms the resume on drain.
   */
  get congested(): boolean {
    // Staged pushes (1.3) leave at the tick's end but count now: else one tick stages a whole
    // window per subscription past the budget that paces 1.2's pushes, and the flush, refused
    // by the global output budget, cuts a client that was reading.
    const queued = this.#queued + this.#stagedBytes;
    const c = queued > PUSH_HIGH_WATER || (this.#ctx.output.strained && queued > 0);
    if (c) this.#pushPaused = true;
    return c;
  }

  #send(bytes: Uint8Array): void {
    this.#write(bytes.length, bytes);
  }

  /**
   * Send one frame given in pieces (msgParts: a MSG around the cipher's output pieces): the lean
   * socket writes them as they are, so a delivery is not copied into a frame buffer first (16 KiB
   * per 1.1 delivery); `ws`'s sockets get their concatenation.
   */
  #sendParts(parts: readonly Uint8Array[]): void {
    let n = 0;
    for (const p of parts) n += p.length;
    this.#write(n, parts);
  }

  #write(n: number, what: Uint8Array | readonly Uint8Array[]): void {
    if (this.#state === "closed") return;
    if (this.#queued + n > this.#ctx.config.sendBufferBytes || !this.#ctx.output.admits(this.#queued, n)) {
      this.#slowConsumer();
      return;
    }
    this.#queued += n;
    this.#ctx.output.add(n);
    this.#cork();
    const done = () => this.#written(n);
    if (what instanceof Uint8Array) this.#ws.send(what, { binary: true }, done);
    else if (this.#ws.sendParts) this.#ws.sendParts(what, done);
    else this.#ws.send(Buffer.concat(what), { binary: true }, done);
  }

  /**
   * Hold this socket's writes until the current tick ends: the OKs a group commit releases and the
   * MSGs a pump sends in one go leave in one `writev` instead of one syscall per frame (the
   * syscalls were ~5 % of the relay's time, bench/README-relay.md).
   */
  #cork(): void {
    if (this.#corked) return;
    const socket = (this.#ws as unknown as { _socket?: Duplex | null })._socket;
    if (!socket || socket.destroyed) return;
    this.#corked = true;
    socket.cork();
    process.nextTick(() => {
      this.#corked = false;
      socket.uncork();
    });
  }

  /** `n` bytes reached the kernel (or the socket is gone): give them back, resume paused pushes. */
  #written(n: number): void {
    if (this.#released) return;
    this.#queued -= n;
    this.#ctx.output.remove(n);
    if (
      this.#pushPaused &&
      this.#queued <= PUSH_HIGH_WATER / 2 &&
      !(this.#ctx.output.strained && this.#queued > 0)
    ) {
      this.#pushPaused = false;
      if (this.#subs) for (const sub of this.#subs.values()) this.#ctx.pump(sub);
    }
  }

  #releaseOutput(): void {
    if (this.#released) return;
    this.#released = true;
    this.#ctx.output.remove(this.#queued);
    this.#queued = 0;
  }

  /**
   * A client that does not read its output is cut with terminate, not close: a close frame would
   * queue behind the unread output, and ws would keep the socket and its buffers through its 30 s
   * closing timeout.
   */
  #slowConsumer(): void {
    if (this.#state === "closed") return;
    this.#ctx.metrics.errors.inc({ code: "LOFT_ERR_RELAY_SLOW_CONSUMER" });
    this.#ws.terminate();
    this.#releaseOutput();
    this.#onClosed();
  }

  #onClosed(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#auth?.dispose();
    // Commands not started yet were never answered: the client retries them (same send id).
    if (this.#inboxMade) this.#inboxMade.length = 0;
    if (this.#subs) {
      for (const sub of this.#subs.values()) this.#ctx.unsubscribe(sub);
      this.#subs.clear();
    }
    if (this.#getsMade) {
      for (const g of this.#getsMade.values()) this.#ctx.store.releaseDeliveries(g.rid, [g.seq]);
      this.#getsMade.clear();
    }
    this.#ctx.connectionClosed(this);
  }

  #error(wire: WireErrorCode, corr?: number, command = "frame"): void {
    this.#ctx.metrics.commands.inc({ command, result: wire });
    this.#ctx.metrics.errors.inc({ code: wire });
    this.sendFrame(corr === undefined ? { k: "ERR", e: wire } : { k: "ERR", i: corr, e: wire });
  }

  /**
   * The tokens the rate bucket holds at `now` (docs/protocol/relay.md §Limits): refilled at
   * `ratePerSecond` since it was last taken from, up to `rateBurst`; a full bucket when none is
   * kept (fresh, or forgotten by the heartbeat once it had refilled).
   */
  #tokensAt(now: number): number {
    const { ratePerSecond, rateBurst } = this.#ctx.config;
    if (this.#tokens === undefined || this.#refilledAt === undefined) return rateBurst;
    return Math.min(rateBurst, this.#tokens + ((now - this.#refilledAt) / 1000) * ratePerSecond);
  }

  /**
   * Take up to `count` tokens (a batch: one per message) and return how many were admitted: all,
   * or as many whole tokens as the bucket holds — a batch larger than what is left, even larger
   * than the burst, passes a prefix at the configured rate and the client retries the rest
   * (docs/protocol/relay.md §Batches, §Limits). 0: refused whole, and charged one token (what a
   * refused frame cost before batches), not `count`.
   */
  #takeToken(count = 1): number {
    const { ratePerSecond, rateBurst } = this.#ctx.config;
    if (ratePerSecond === 0) return count;
    const now = this.#ctx.now();
    let tokens = this.#tokensAt(now);
    this.#refilledAt = now;
    const admitted = Math.max(0, Math.min(count, Math.floor(tokens)));
    tokens -= admitted > 0 ? admitted : 1;
    this.#tokens = tokens;
    // Spending a whole burst beyond the limit (only a client ignoring RATE errors does) closes it.
    if (tokens < -rateBurst) this.close(1008, "LOFT_ERR_RELAY_RATE");
    return admitted;
  }

  /**
   * Charge a frame's cost to its source's budget, shared by all the source's connections. A
   * refused frame is still charged its decoding; once the source is SOURCE_DEBT in debt (it
   * ignores SOURCE_RATE), each of its connections that sends again is closed.
   */
  #chargeSource(cost: number): boolean {
    const now = this.#ctx.now();
    // With --redis, the source's spending over all instances too (shared-limits.ts).
    // Over it there, the command is refused like one over the local budget (and the debt rule
    // below still closes a source that ignores the refusals).
    const tag = this.#source.sharedTag;
    const shared = this.#ctx.shared;
    const sharedOver = tag !== undefined && shared?.over(tag, "cost") === true;
    if (!sharedOver && this.#source.commands.take(cost, now)) {
      if (tag) shared?.spend(tag, "cost", cost);
      return true;
    }
    if (!this.#source.commands.charge(COST.frame, now, SOURCE_DEBT))
      this.close(1008, "LOFT_ERR_RELAY_SOURCE_RATE");
    return false;
  }

  /** Reserve bytes of the source's storage budget for a write; STORE_RATE when spent. */
  #reserveStorage(bytes: number): void {
    const tag = this.#source.sharedTag;
    if (bytes > 0 && tag && this.#ctx.shared?.over(tag, "store")) throw new Refused("STORE_RATE");
    if (bytes > 0 && !this.#source.storage.take(bytes, this.#ctx.now())) throw new Refused("STORE_RATE");
    if (tag) this.#ctx.shared?.spend(tag, "store", bytes);
  }

  /**
   * ws answers every ping with a pong by itself: a client that floods pings, or pings without
   * reading, would grow our output without bound. A ping costs a token like any frame, and counts
   * against the send buffer.
   */
  #onPing(): void {
    if (this.#state === "closed") return;
    if (this.#ws.bufferedAmount > this.#ctx.config.sendBufferBytes) {
      this.#slowConsumer();
      return;
    }
    if (this.#takeToken() > 0) this.#chargeSource(COST.frame);
  }

  // ------------------------------------------------------------------------------------------

  #onFrame(bytes: Uint8Array, isBinary: boolean): void {
    if (this.#state === "closed") return;
    if (this.#state === "opening") {
      const version = isBinary ? clientVersion(bytes) : undefined;
      // `--relay-bucketed false` answers the 1.2 header as a relay from before 1.2 does, so the
      // clients' fall-back to 1.1 can be exercised (docs/protocol/relay.md §Versions).
      if (
        !version ||
        (version === RELAY_VERSION_BUCKETED && !this.#ctx.config.bucketed) ||
        // 1.3 includes 1.2's bucketed deliveries: a relay that refuses 1.2 refuses 1.3 too.
        (version === RELAY_VERSION_BATCHED && (!this.#ctx.config.batched || !this.#ctx.config.bucketed))
      ) {
        this.#error("VERSION");
        this.close(1002, "LOFT_ERR_UNSUPPORTED_VERSION");
        return;
      }
      this.#state = "ready";
      this.#ctx.metrics.openings.inc({ version: `${version.version_major}.${version.version_minor}` });
      const c = this.#ctx.config;
      if (version === RELAY_VERSION_BUCKETED || version === RELAY_VERSION_BATCHED) this.#bit(BUCKETED, true);
      if (version === RELAY_VERSION_BATCHED) this.#bit(BATCHED, true);
      if (version !== RELAY_VERSION_SIGNATURE)
        this.#auth = new ConnectionAuthenticator(
          undefined,
          this.#ctx.authStats,
          2 * c.maxQueuesPerConnection,
        );
      else this.#session = lastingRandomBytes(SESSION_ID_LENGTH);
      this.sendFrame({
        k: "HELLO",
        s: this.sessionId,
        fl: c.maxFrameBytes,
        qq: c.queueQuota,
        mi: c.maxInFlight,
        ...(this.#auth ? { x: this.#auth.publicKey } : {}),
      });
      return;
    }
    // A source that kept sending through its SOURCE_RATE refusals is cut before this frame costs
    // any decoding: refusing costs the relay too.
    if (this.#source.commands.overdrawn(SOURCE_DEBT, this.#ctx.now())) {
      this.close(1008, "LOFT_ERR_RELAY_SOURCE_RATE");
      return;
    }
    // Every frame costs a token, well-formed or not; the RATE reply carries the request id when
    // one can be read.
    // SEND and ACK, nearly all of a busy relay's frames, are read straight from their canonical
    // bytes (wire-fast.ts); everything else, and anything malformed, goes through the generic codec.
    const limit = this.#ctx.config.maxFrameBytes;
    const fast = isBinary ? fastDecode(bytes, limit) : undefined;
    const frame = fast
      ? ({ ok: true, value: fast.frame } as const)
      : isBinary
        ? decodeClientFrame(bytes, limit)
        : undefined;
    const cmd = fast
      ? ({ ok: true, value: fast.command } as const)
      : frame?.ok
        ? decodeCommand(frame.value.t, limit)
        : undefined;
    // A batch (1.3) costs a token per message: the per-connection rate counts messages, as
    // before batches (docs/protocol/relay.md §Limits). A batch larger than the tokens left runs
    // its admitted prefix; the rest is answered RATE message by message (and not charged).
    const count = cmd?.ok && "ms" in cmd.value ? cmd.value.ms.length : 1;
    const admitted = this.#takeToken(count);
    if (admitted === 0) {
      this.#error("RATE", cmd?.ok ? cmd.value.i : cmd?.corr, cmd?.ok ? cmd.value.k : "frame");
      return;
    }
    const cost = cmd?.ok ? commandCost(cmd.value) - COST.store * (count - admitted) : COST.frame;
    if (!this.#chargeSource(cost)) {
      if (this.open)
        this.#error("SOURCE_RATE", cmd?.ok ? cmd.value.i : cmd?.corr, cmd?.ok ? cmd.value.k : "frame");
      return;
    }
    if (!frame) {
      this.#error("MALFORMED");
      return;
    }
    if (!frame.ok) {
      this.#error(LOFT_CODE_TO_WIRE[frame.error.code] ?? "MALFORMED");
      return;
    }
    if (!cmd?.ok) {
      this.#error(cmd ? (LOFT_CODE_TO_WIRE[cmd.error.code] ?? "SCHEMA") : "SCHEMA", cmd?.corr);
      return;
    }
    const command = cmd.value;
    const outer = frame.value;
    // SENDS and ACKS exist from 1.3 on: an earlier connection answers them as a relay from
    // before 1.3 does (its decoder knows no such command).
    if (!this.#batch && (command.k === "SENDS" || command.k === "ACKS")) {
      this.#error("UNKNOWN", command.i, command.k);
      return;
    }
    // 1.1: an authenticated command's id must exceed the previous one's — the same frame twice,
    // or one held back and sent later, is refused before any work.
    if (this.#auth && outer.a !== undefined && !this.#auth.admit(command.i)) {
      this.#error("AUTH", command.i, command.k);
      return;
    }
    // Authenticators cost one HMAC: checked inline, in arrival order, no worker round trip.
    if (!this.#ctx.verifyPool || this.#auth) {
      this.#run(command, outer, admitted);
      return;
    }
    const entry: Inbound = { command, frame: outer, ready: false, admitted };
    this.#inbox.push(entry);
    if (this.#inbox.length >= INBOX_LIMIT && !this.#readPaused) {
      this.#readPaused = true;
      this.#ws.pause();
    }
    void this.#preverify(command, outer).then(() => {
      entry.ready = true;
      this.#drainInbox();
    });
  }

  /** Run the commands at the head of the inbox whose verdicts are in, in arrival order. */
  #drainInbox(): void {
    const inbox = this.#inbox;
    while (inbox.length > 0 && inbox[0]!.ready) {
      const e = inbox.shift()!;
      if (this.#state !== "closed") this.#run(e.command, e.frame, e.admitted);
    }
    if (this.#readPaused && inbox.length <= INBOX_LIMIT / 2 && this.#state !== "closed") {
      this.#readPaused = false;
      this.#ws.resume();
    }
  }

  /**
   * Verify, ahead of `#dispatch` and on a worker, the signature `#dispatch` will check: the same
   * key lookup, the same key (or the dummy key). `#verified` uses the verdict only if the check it
   * makes is exactly this one (a queue secured meanwhile, say, is checked again inline).
   */
  async #preverify(cmd: Command, frame: ClientFrame): Promise<void> {
    try {
      const expected = await this.#expectedCheck(cmd, frame);
      if (!expected) return;
      const good = await this.#ctx.verifier.verifyOn(
        this.#ctx.verifyPool,
        expected.key,
        authInput(this.sessionId, frame.t),
        expected.signature,
        expected.remember,
      );
      this.#preverdicts.set(frame, { ...expected, good });
    } catch {
      // No verdict ahead: #dispatch verifies inline (and meets the same failure).
    }
  }

  /** The key and signature `#dispatch` will verify `cmd` with (undefined: none). */
  async #expectedCheck(cmd: Command, frame: ClientFrame): Promise<Omit<PreVerdict, "good"> | undefined> {
    const store = this.#ctx.store;
    if (AUTH_RULES[cmd.k] === "none" && frame.a !== undefined)
      return { key: undefined, signature: frame.a, remember: true };
    switch (cmd.k) {
      case "PING":
        return undefined;
      case "NEW":
        return { key: cmd.rk, signature: frame.a, remember: true };
      case "SKEY":
        return {
          key: cmd.sk,
          signature: frame.a,
          remember: (await store.queueBySender(cmd.q)) !== undefined,
        };
      // SENDS names the sender id, as SEND does (ACKS the recipient id: the default below).
      case "SEND":
      case "SENDS":
        return { key: (await store.queueBySender(cmd.q))?.senderKey, signature: frame.a, remember: true };
      case "PKGET":
        return { key: undefined, signature: undefined, remember: true };
      default:
        return {
          key: (await store.queueByRecipient(cmd.q))?.recipientKey,
          signature: frame.a,
          remember: true,
        };
    }
  }

  #run(command: Command, outer: ClientFrame, admitted: number): void {
    this.#ctx.track(
      this.#dispatch(command, outer, admitted).then(
        () => this.#ctx.metrics.commands.inc({ command: command.k, result: "ok" }),
        (e: unknown) => {
          if (e instanceof Refused) return this.#error(e.wire, command.i, command.k);
          // A commit the disk had no room for (ACK, DEL, …): nothing changed; the client retries.
          if (isNoSpaceError(e)) return this.#error("FULL", command.i, command.k);
          // The shared store (Redis) is unreachable: not answered OK, so not done as far as the
          // client knows; it retries (same send id) here or on another relay.
          if (e instanceof RedisUnavailableError) return this.#error("UNAVAILABLE", command.i, command.k);
          this.#ctx.log.error({ err: e, command: command.k }, "relay command failed");
          this.#error("INTERNAL", command.i, command.k);
        },
      ),
    );
  }

  /**
   * Verify a signature over this connection's session: one key parse and one verification on
   * every failure path, against a dummy key when there is no key (verifier.ts), so unknown ids and
   * bad signatures cost the same.
   */
  #verified(
    cmd: Command,
    publicKey: Uint8Array | undefined,
    frame: ClientFrame,
    remember = true,
    signature: Uint8Array | undefined = frame.a,
  ): boolean {
    if (this.#auth) return this.#auth.check("q" in cmd ? toHex(cmd.q) : "", publicKey, frame.t, signature);
    const pre = this.#preverdictsMade?.get(frame);
    if (pre) {
      this.#preverdictsMade?.delete(frame);
      if (
        pre.remember === remember &&
        pre.signature === signature &&
        (pre.key === publicKey ||
          (pre.key !== undefined && publicKey !== undefined && equalBytes(pre.key, publicKey)))
      )
        return pre.good;
    }
    return this.#ctx.verifier.verify(publicKey, authInput(this.sessionId, frame.t), signature, remember);
  }

  async #recipientQueue(cmd: Command & { q: Uint8Array }, frame: ClientFrame): Promise<QueueRecord> {
    const q = await this.#ctx.store.queueByRecipient(cmd.q);
    if (!this.#verified(cmd, q?.recipientKey, frame) || !q) throw new Refused("AUTH");
    return q;
  }

  async #dispatch(cmd: Command, frame: ClientFrame, admitted: number): Promise<void> {
    if (AUTH_RULES[cmd.k] === "none" && frame.a !== undefined) {
      this.#verified(cmd, undefined, frame);
      throw new Refused("AUTH");
    }
    switch (cmd.k) {
      case "PING":
        return this.sendFrame({ k: "OK", i: cmd.i });
      case "NEW":
        return this.#new(cmd, frame);
      case "KEY": {
        const q = await this.#recipientQueue(cmd, frame);
        if (!this.#ctx.verifier.validKey(cmd.sk)) throw new Refused("AUTH");
        if ((await this.#ctx.store.secureQueue(q.recipientId, cmd.sk)) !== "ok") throw new Refused("AUTH");
        return this.sendFrame({ k: "OK", i: cmd.i });
      }
      case "SKEY": {
        const q = await this.#ctx.store.queueBySender(cmd.q);
        // The key is cached only when the queue exists (verifier.ts): made-up queue ids with
        // fresh self-signed keys must not churn the cache.
        const signed = this.#verified(cmd, cmd.sk, frame, q !== undefined);
        if (!signed || !q || q.suspended) throw new Refused("AUTH");
        if ((await this.#ctx.store.secureQueue(q.recipientId, cmd.sk)) !== "ok") throw new Refused("AUTH");
        return this.sendFrame({ k: "OK", i: cmd.i });
      }
      case "SEND":
        return this.#sendCmd(cmd, frame);
      case "SUB":
        return this.#sub(cmd, frame);
      case "GET":
        return this.#get(cmd, frame);
      case "ACK":
        return this.#ack(cmd, frame);
      case "OFF": {
        const q = await this.#recipientQueue(cmd, frame);
        await this.#ctx.store.suspendQueue(q.recipientId);
        return this.sendFrame({ k: "OK", i: cmd.i });
      }
      case "DEL": {
        const q = await this.#recipientQueue(cmd, frame);
        const hex = toHex(q.recipientId);
        this.#ctx.endSubscription(hex, this);
        this.#ctx.bundles.forget(hex);
        this.#gets.delete(hex);
        await this.#ctx.store.deleteQueue(q.recipientId);
        return this.sendFrame({ k: "OK", i: cmd.i });
      }
      case "PKSET": {
        const q = await this.#recipientQueue(cmd, frame);
        const update = {
          oneTime: cmd.po,
          replaceOneTime: cmd.pr,
          ...(cmd.pb ? { bundle: cmd.pb } : {}),
        };
        const bytes = storedBytes(cmd);
        this.#reserveStorage(bytes);
        if (cmd.pb) this.#ctx.bundles.forget(toHex(q.recipientId));
        const r = await this.#ctx.store.setPrekeys(q.recipientId, update, this.#ctx.config.maxPrekeys);
        // Again once written: a PKGET meanwhile may have cached the bundle being replaced.
        if (cmd.pb) this.#ctx.bundles.forget(toHex(q.recipientId));
        if (r !== "ok") this.#source.storage.refund(bytes);
        if (r === "limit") throw new Refused("LIMIT");
        if (r === "full") throw new Refused("FULL");
        if (r === "missing") throw new Refused("AUTH");
        return this.sendFrame({ k: "OK", i: cmd.i });
      }
      case "PKGET":
        return this.#pkget(cmd, frame);
      case "SENDS":
        return this.#sends(cmd, frame, admitted);
      case "ACKS":
        return this.#acks(cmd, frame, admitted);
    }
  }

  /**
   * PKGET: the bundle, and one one-time prekey while both the source and the queue have some of
   * their one-time-prekey budgets left. Beyond either, the bundle alone: first contact keeps
   * working on the signed (last-resort) prekey and nobody can drain the one-time prekeys.
   */
  async #pkget(cmd: CommandOf<"PKGET">, frame: ClientFrame): Promise<void> {
    const q = await this.#ctx.store.queueBySender(cmd.q);
    this.#verified(cmd, undefined, frame, true, undefined);
    if (!q) throw new Refused("AUTH");
    const hex = toHex(q.recipientId);
    const now = this.#ctx.now();
    const fromSource = this.#source.prekeys.take(1, now);
    const fromQueue = fromSource && this.#ctx.prekeysPerQueue.take(hex, now);
    if (fromSource && !fromQueue) this.#source.prekeys.refund(1);
    const bundles = this.#ctx.bundles;
    const cached = fromQueue ? undefined : bundles.get(hex);
    if (cached) return this.sendFrame({ k: "PK", i: cmd.i, pb: cached });
    const p = await this.#ctx.store.takePrekeys(q.recipientId);
    if (!p) throw new Refused("NO_BUNDLE");
    bundles.set(hex, p.bundle);
    if (fromQueue && !p.oneTime) {
      this.#source.prekeys.refund(1);
      this.#ctx.prekeysPerQueue.refund(hex);
    }
    if (p.oneTime && !fromQueue) {
      // RelayStore has no bundle-only read yet (asked of relay-store): put the one-time prekey
      // back, under a fresh at-rest key. The bundle is cached now, so this happens once per queue
      // until its owner publishes a new bundle.
      const back = await this.#ctx.store.setPrekeys(
        q.recipientId,
        { oneTime: [p.oneTime], replaceOneTime: false },
        Number.MAX_SAFE_INTEGER,
      );
      p.oneTime.fill(0);
      if (back !== "ok") throw new Refused("AUTH");
      return this.sendFrame({ k: "PK", i: cmd.i, pb: p.bundle });
    }
    return this.sendFrame(
      p.oneTime ? { k: "PK", i: cmd.i, pb: p.bundle, po: p.oneTime } : { k: "PK", i: cmd.i, pb: p.bundle },
    );
  }

  #claimQueue(hex: string): void {
    if (this.#queues.has(hex)) return;
    if (this.#queues.size + this.#creating >= this.#ctx.config.maxQueuesPerConnection)
      throw new Refused("LIMIT");
    this.#queues.add(hex);
  }

  async #new(cmd: CommandOf<"NEW">, frame: ClientFrame): Promise<void> {
    if (!this.#verified(cmd, cmd.rk, frame)) throw new Refused("AUTH");
    // Checked and reserved in the same turn as the frame arrived, before any write: pipelined
    // NEWs cannot all pass the check and leave queues nobody can hold.
    if (this.#queues.size + this.#creating >= this.#ctx.config.maxQueuesPerConnection)
      throw new Refused("LIMIT");
    const bytes = storedBytes(cmd);
    this.#reserveStorage(bytes);
    this.#creating++;
    try {
      await this.#createQueue(cmd);
    } catch (e) {
      this.#source.storage.refund(bytes);
      throw e;
    } finally {
      this.#creating--;
    }
  }

  async #createQueue(cmd: CommandOf<"NEW">): Promise<void> {
    const store = this.#ctx.store;
    const { recipientId: rid, senderId: sid } = await freshQueueIds(store, ID_LENGTH);
    const dh = queueDh(cmd.dk, rid);
    if (!dh) throw new Refused("AUTH");
    await store.createQueue({
      recipientId: rid,
      senderId: sid,
      recipientKey: cmd.rk,
      rcvKey: dh.rcvKey,
      senderKey: undefined,
      suspended: false,
    });
    this.#queues.add(toHex(rid));
    this.sendFrame({ k: "IDS", i: cmd.i, r: rid, s: sid, d: dh.publicKey });
    if (cmd.sub && this.#state !== "closed")
      this.#ctx.subscribe(this, rid, dh.rcvKey, Math.min(8, this.#ctx.config.maxWindow));
  }

  /**
   * The live queue a SEND or SENDS names, once its sender is authorized: a secured queue's sender
   * key must sign, an unsecured queue takes no signature (SMP §Send message); AUTH otherwise.
   */
  async #senderQueue(cmd: CommandOf<"SEND"> | CommandOf<"SENDS">, frame: ClientFrame) {
    const q = await this.#ctx.store.queueBySender(cmd.q);
    const authorized = q?.senderKey
      ? this.#verified(cmd, q.senderKey, frame)
      : !this.#verified(cmd, undefined, frame) && frame.a === undefined;
    if (!q || !authorized || q.suspended) throw new Refused("AUTH");
    return q;
  }

  async #sendCmd(cmd: CommandOf<"SEND">, frame: ClientFrame): Promise<void> {
    const started = performance.now();
    const q = await this.#senderQueue(cmd, frame);
    // Charged what is stored (a whole padded block, whatever the body), given back if nothing is.
    const bytes = storedBytes(cmd);
    this.#reserveStorage(bytes);
    const now = this.#ctx.clock();
    const result = await this.#ctx.store.append(
      q.recipientId,
      {
        msgId: pooledRandomBytes(ID_LENGTH),
        sendId: cmd.n,
        timestamp: Math.floor(now / 1000),
        expiresAt: now + this.#ctx.config.ttlSeconds * 1000,
        body: cmd.b,
      },
      this.#ctx.config.queueQuota,
    );
    if (result !== "ok") this.#source.storage.refund(bytes);
    if (result === "quota") throw new Refused("QUOTA");
    if (result === "full") throw new Refused("FULL");
    if (result === "duplicate") throw new Refused("DUPLICATE");
    if (result !== "ok") throw new Refused("AUTH");
    this.#ctx.metrics.sendCommitSeconds.observe((performance.now() - started) / 1000);
    this.#send(encodeOk(cmd.i));
  }

  /**
   * SENDS (1.3): one authorization for the batch (as SEND's), the storage budget reserved message
   * by message, then one `appendBatch` — one group commit — and one RES once it is durable. A
   * message the budget does not cover, and every one after it, is STORE_RATE and not stored: like
   * the store's own refusals, a batch stores a prefix of itself (duplicates aside), so the queue's
   * order is the batch's (docs/protocol/relay.md §Batches). Messages past the `admitted` prefix
   * (the connection's rate) are RATE, not stored.
   *
   * The store tells duplicates only once it has the batch, so their reservations come back after
   * the commit; when the budget stopped the batch and duplicates gave some back, the rest goes on
   * in a further commit — a retry of `[dup, …, dup, new]` near the budget edge stores `new` as
   * the same SENDs one by one would.
   */
  async #sends(cmd: CommandOf<"SENDS">, frame: ClientFrame, admitted: number): Promise<void> {
    const started = performance.now();
    const q = await this.#senderQueue(cmd, frame);
    const now = this.#ctx.clock();
    const timestamp = Math.floor(now / 1000);
    const expiresAt = now + this.#ctx.config.ttlSeconds * 1000;
    const r: BatchResult[] = [];
    let budget: WireErrorCode | undefined;
    for (;;) {
      const from = r.length;
      const messages: NewMessage[] = [];
      const reserved: number[] = [];
      budget = undefined;
      for (const [n, b] of cmd.ms.slice(from, admitted)) {
        const bytes = storedMessageBytes(b.length);
        try {
          this.#reserveStorage(bytes);
        } catch (e) {
          if (!(e instanceof Refused)) throw e;
          budget = e.wire;
          break;
        }
        reserved.push(bytes);
        messages.push({ msgId: pooledRandomBytes(ID_LENGTH), sendId: n, timestamp, expiresAt, body: b });
      }
      let results: AppendResult[] = [];
      try {
        if (messages.length > 0)
          results = await this.#ctx.store.appendBatch(q.recipientId, messages, this.#ctx.config.queueQuota);
      } catch (e) {
        for (const bytes of reserved) this.#source.storage.refund(bytes);
        // Messages an earlier round stored are stored: a whole-frame ERR makes the client send
        // them again, and they answer DUPLICATE then (same send ids).
        throw e;
      }
      let refunded = false;
      let stopped = false;
      results.forEach((result, k) => {
        if (result !== "ok") {
          this.#source.storage.refund(reserved[k]!);
          refunded = true;
        }
        if (result !== "ok" && result !== "duplicate") stopped = true;
        r.push(APPEND_TO_WIRE[result]);
      });
      // Go on only after a budget stop whose round gave budget back and refused nothing else:
      // the prefix rule holds (nothing after a refusal is stored).
      if (budget === undefined || stopped || !refunded || results.length < messages.length) break;
    }
    for (let k = r.length; k < cmd.ms.length; k++) r.push(k < admitted ? (budget ?? "STORE_RATE") : "RATE");
    this.#ctx.metrics.sendCommitSeconds.observe((performance.now() - started) / 1000);
    this.#countRefusals(r);
    this.#send(encodeRes(cmd.i, r));
  }

  /** A batch's per-message refusals reach the error counter as those of single commands do. */
  #countRefusals(results: readonly BatchResult[]): void {
    for (const r of results) if (r !== "OK") this.#ctx.metrics.errors.inc({ code: r });
  }

  /**
   * ACKS (1.3): one authorization, then each message id as ACK takes it — `NO_MSG` for one not
   * in flight to this connection (or named twice) — its deletion enqueued at once, so the batch's
   * deletions share a commit; one RES once they are durable.
   */
  async #acks(cmd: CommandOf<"ACKS">, frame: ClientFrame, admitted: number): Promise<void> {
    const q = await this.#recipientQueue(cmd, frame);
    const hex = toHex(q.recipientId);
    const sub = this.subs.get(hex);
    const pending = cmd.ms.map((m, k): BatchResult | Promise<BatchResult> => {
      // Past the prefix the connection's rate admitted: not taken, the client retries it.
      if (k >= admitted) return "RATE";
      const seq = takeHandedOut(sub, this.#gets, hex, toHex(m));
      if (seq === undefined) return "NO_MSG";
      return this.#ctx.acknowledge(q.recipientId, hex, seq, m).then((removed) => (removed ? "OK" : "NO_MSG"));
    });
    // The window slots are free now; the next messages need not wait for the deletions' commit.
    if (sub) this.#ctx.pump(sub);
    const results = await Promise.all(pending);
    this.#countRefusals(results);
    this.#send(encodeRes(cmd.i, results));
  }

  async #sub(cmd: CommandOf<"SUB">, frame: ClientFrame): Promise<void> {
    const q = await this.#recipientQueue(cmd, frame);
    const hex = toHex(q.recipientId);
    this.#claimQueue(hex);
    this.#releaseGet(hex);
    // Pushes staged this tick (1.3) leave before the OK, as before an END (`sendFrame`): a SUB
    // again's are the old window's, which under 1.2 left at once. After the OK they would reach the
    // client as the new window's, ahead of its redelivery and twice (docs/protocol/relay.md
    // §Commands, SUB).
    if (this.#staged) this.#flushStaged();
    this.sendFrame({ k: "OK", i: cmd.i });
    this.#ctx.subscribe(this, q.recipientId, q.rcvKey, Math.min(cmd.w, this.#ctx.config.maxWindow));
  }

  async #get(cmd: CommandOf<"GET">, frame: ClientFrame): Promise<void> {
    const q = await this.#recipientQueue(cmd, frame);
    const hex = toHex(q.recipientId);
    if (this.subs.has(hex)) throw new Refused("PROHIBITED");
    // A message handed out by the previous GET and not acknowledged counts as a failed delivery.
    const outstanding = this.#releaseGet(hex);
    if (!outstanding && this.inFlight >= this.#ctx.config.maxInFlight) throw new Refused("LIMIT");
    let after = -1;
    for (;;) {
      const m = await this.#ctx.store.next(q.recipientId, after);
      if (!m) return this.sendFrame({ k: "OK", i: cmd.i });
      after = m.seq;
      // Acknowledged, its deletion not durable yet (service.ts `acknowledge`): not handed out again.
      if (this.#ctx.deletionUnderWay(hex, m.seq)) continue;
      if (await this.#deliver(q.recipientId, q.rcvKey, m, cmd.i, undefined)) {
        this.#gets.set(hex, { seq: m.seq, msgId: toHex(m.msgId), rid: q.recipientId });
        return;
      }
    }
  }

  /** Forget the message the last GET handed out (a failed delivery unless it was ACKed). */
  #releaseGet(hex: string): { seq: number; rid: Uint8Array } | undefined {
    const g = this.#gets.get(hex);
    if (!g) return undefined;
    this.#gets.delete(hex);
    this.#ctx.store.releaseDeliveries(g.rid, [g.seq]);
    return g;
  }

  async #ack(cmd: CommandOf<"ACK">, frame: ClientFrame): Promise<void> {
    const q = await this.#recipientQueue(cmd, frame);
    const hex = toHex(q.recipientId);
    const msgHex = toHex(cmd.m);
    const sub = this.subs.get(hex);
    const seq = takeHandedOut(sub, this.#gets, hex, msgHex);
    if (seq === undefined) throw new Refused("NO_MSG");
    const removed = this.#ctx.acknowledge(q.recipientId, hex, seq, cmd.m);
    // The window slot is free now; the next message need not wait for the deletion's commits.
    if (sub) this.#ctx.pump(sub);
    if (!(await removed)) throw new Refused("NO_MSG");
    this.#send(encodeOk(cmd.i));
  }

  /**
   * Hand one stored message to this connection (pushed, or as the answer to GET `corr`), unless it
   * expired or already failed `maxDeliveries` times — then it is dropped and false returned. The
   * answer comes at once while nothing waits (the LMDB store reads synchronously, nothing to
   * drop): a push makes no promise (bench/README-relay.md, "Results: fewer objects per message").
   */
  deliver(
    rid: Uint8Array,
    rcvKey: Uint8Array,
    m: StoredMessageMeta,
    sub: Subscription,
  ): boolean | Promise<boolean> {
    return this.#deliver(rid, rcvKey, m, undefined, sub);
  }

  /** A push (`sub`) or the answer to GET `corr`. */
  #deliver(
    rid: Uint8Array,
    rcvKey: Uint8Array,
    m: StoredMessageMeta,
    corr: number | undefined,
    sub: Subscription | undefined,
  ): boolean | Promise<boolean> {
    const still = stillDeliverable(this.#ctx, rid, m);
    if (still !== true) return still;
    const block = this.#ctx.store.readBucket(rid, m.seq);
    // Only a push that waited can have been overtaken by a SUB again or an END (context.ts
    // `pushStillWanted`); one read at once is checked by nothing — no call per push.
    return block instanceof Promise
      ? block.then((b) => this.#deliverBlock(rid, rcvKey, m, b, corr, sub))
      : this.#deliverBlock(rid, rcvKey, m, block, corr, undefined);
  }

  #deliverBlock(
    rid: Uint8Array,
    rcvKey: Uint8Array,
    m: StoredMessageMeta,
    block: Uint8Array | undefined,
    corr: number | undefined,
    waitedFor: Subscription | undefined,
  ): boolean {
    if (!block) return false;
    if (this.#state === "closed" || (waitedFor && !pushStillWanted(waitedFor, m))) {
      // Handed over by the store (a kept block left its cache): ours to wipe, sent or not.
      block.fill(0);
      return false;
    }
    const ctx = this.#ctx;
    void ctx.store.markDelivered(rid, m.seq);
    const b = sealDeliveryParts(rcvKey, m.msgId, m.timestamp, block, this.#padding);
    block.fill(0);
    ctx.metrics.deliveries.inc();
    if (this.#batch && corr === undefined) this.#stage(rid, m.msgId, b);
    else this.#sendParts(msgParts(rid, m.msgId, b, corr));
    return true;
  }

  /**
   * 1.3: hold a push until the end of this tick, when every push of its queue sealed meanwhile
   * leaves in MSGS frames of at most MAX_BATCH messages and MAX_MSGS_FRAME bytes (one alone: a
   * plain MSG). A pump hands out a window of messages in one tick, so a burst shares frames
   * (docs/protocol/relay.md §Batches).
   */
  #stage(rid: Uint8Array, msgId: Uint8Array, parts: Uint8Array[]): void {
    let length = 0;
    for (const p of parts) length += p.length;
    if (!this.#staged) {
      this.#staged = new Map();
      process.nextTick(() => this.#flushStaged());
    }
    const hex = toHex(rid);
    let entry = this.#staged.get(hex);
    if (!entry) {
      entry = { rid, items: [] };
      this.#staged.set(hex, entry);
    }
    entry.items.push({ msgId, parts, length });
    // Counted at once, here and in the relay-wide budget, as 1.2's pushes are when sent: the
    // pump's `congested` (and every connection's `strained`) sees them before the flush.
    this.#stagedBytes += length;
    this.#ctx.output.add(length);
  }

  #flushStaged(): void {
    const staged = this.#staged;
    this.#staged = undefined;
    // Handed from the staged count to the sent one (`#send` counts each frame again).
    this.#ctx.output.remove(this.#stagedBytes);
    this.#stagedBytes = 0;
    if (!staged || this.#state === "closed") return;
    for (const { rid, items } of staged.values()) {
      let from = 0;
      while (from < items.length) {
        // MSGS overhead: map, "k", "MSGS", "ms", array header, "q" and the id: < 48 bytes; per
        // entry the pair, the id and the bin16 header: 30 bytes.
        let to = from + 1;
        let bytes = 48 + 30 + items[from]!.length;
        while (
          to < items.length &&
          to - from < MAX_BATCH &&
          bytes + 30 + items[to]!.length <= MAX_MSGS_FRAME
        ) {
          bytes += 30 + items[to]!.length;
          to++;
        }
        if (to - from === 1) this.#sendParts(msgParts(rid, items[from]!.msgId, items[from]!.parts));
        else this.#send(encodeMsgs(rid, items.slice(from, to)));
        from = to;
      }
    }
  }

  get open(): boolean {
    return this.#state !== "closed";
  }
}

/**
 * The client's version header: 1.0 (signatures), 1.1 (authenticators) or 1.2 (authenticators,
 * bucketed deliveries); undefined otherwise.
 */
function clientVersion(bytes: Uint8Array): VersionHeader | undefined {
  if (decodeVersionHeader(bytes, RELAY_VERSION_AUTHENTICATOR).ok) return RELAY_VERSION_AUTHENTICATOR;
  if (decodeVersionHeader(bytes, RELAY_VERSION_BUCKETED).ok) return RELAY_VERSION_BUCKETED;
  if (decodeVersionHeader(bytes, RELAY_VERSION_BATCHED).ok) return RELAY_VERSION_BATCHED;
  if (decodeVersionHeader(bytes, RELAY_VERSION_SIGNATURE).ok) return RELAY_VERSION_SIGNATURE;
  return undefined;
}

function toBytes(data: unknown): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data as Buffer[]));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  const b = data as Buffer;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
