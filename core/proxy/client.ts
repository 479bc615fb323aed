/**
 * The requesting side of the proxy (docs/protocol/proxy.md §Streams): many requests at once over
 * one session, each with its own id (1, 2, 3… never reused), its own response window, and its own
 * end. `receive` takes every frame the serving side sends; `send` is the session's. A frame that
 * breaks the rules (an id never requested, a second RESPONSE, DATA past the window or after END)
 * is a typed error: every open request fails with it and the caller should close the session.
 */
import { err, isLoftError, LoftError, type LoftErrorCode, ok, type Result } from "../errors.ts";
import { type BodyReader, emptyBody, InboundBody, OutboundBody } from "./body.ts";
import {
  decodeFrame,
  encodeDataParts,
  encodeFrameParts,
  type FrameParts,
  type Headers,
  LEGACY_CHUNK,
  MAX_REQUEST_ID,
  MAX_WINDOW,
  type ProxyFrame,
  type ProxyMethod,
  REQUEST_BODY_WINDOW,
  type ResetCode,
} from "./frames.ts";

export interface ProxyRequestHead {
  method: ProxyMethod;
  /** Path and query as the serving side sees it, starting with "/". */
  path: string;
  headers: Headers;
}

export interface ProxyResponse {
  status: number;
  headers: Headers;
  body: BodyReader;
}

/** A request the serving side (or this side) ended with a RESET: `code` says why. */
export class ProxyResetError extends Error {
  constructor(
    readonly code: ResetCode,
    readonly reason: string,
  ) {
    super(`proxy request reset: ${code}${reason ? ` (${reason})` : ""}`);
    this.name = "ProxyResetError";
  }
}

/**
 * How long a request waits for its response head before it is reset with `timeout` (the page's
 * "No answer in time"), unless the client is given its own `headTimeoutMs`.
 */
export const HEAD_TIMEOUT_MS = 30_000;

export interface ProxyClientOptions {
  /** Response-body window granted per request (default 256 KiB). */
  window?: number;
  /** Requests open at once; more wait for a slot (default 16). */
  maxConcurrent?: number;
  /** Time to wait for the response head before resetting with `timeout` (default HEAD_TIMEOUT_MS). */
  headTimeoutMs?: number;
  /**
   * Largest DATA body of a request body (default LEGACY_CHUNK: what every peer accepts; up to
   * MAX_CHUNK to a peer that announced it, smaller to fit a carrier's unit).
   */
  maxChunk?: number;
  /**
   * The peer's serving side reads REQUEST's NO_BODY (it announced `proxy.flags`, endpoint.ts
   * `peerReadsNoBody`): a request with no body (GET and HEAD from the Service Worker, `loft`) is
   * then one REQUEST frame, not REQUEST and an empty END (docs/protocol/proxy.md, "Body-less
   * requests"). Default false: what every peer reads.
   */
  noBody?: boolean;
}

interface Stream {
  id: number;
  resolve: (r: ProxyResponse) => void;
  reject: (e: Error) => void;
  body: InboundBody | undefined;
  upload: OutboundBody | undefined;
  timer: unknown;
  /** A read of the page's body is pending: the head wait is stopped until it returns. */
  pageRead: boolean;
}

export class ProxyClient {
  readonly #send: (frame: FrameParts) => void;
  readonly #window: number;
  readonly #maxConcurrent: number;
  readonly #headTimeoutMs: number;
  readonly #maxChunk: number;
  readonly #noBody: boolean;
  readonly #streams = new Map<number, Stream>();
  readonly #queue: (() => void)[] = [];
  /**
   * Requests counted against `maxConcurrent`: open ones, and ended ones whose body is still
   * unread (docs/protocol/proxy.md §Flow control). A body that fits its window ENDs while all of
   * it sits here; freeing its slot at END would let a page that never reads hold any number of
   * windows in memory.
   */
  #slots = 0;
  #nextId = 1;
  #failed: LoftError | undefined;

  /** `send` is the session's: one frame per call, as the parts whose concatenation it is (frames.ts). */
  constructor(send: (frame: FrameParts) => void, options: ProxyClientOptions = {}) {
    this.#send = send;
    this.#window = Math.min(options.window ?? 256 * 1024, MAX_WINDOW);
    this.#maxConcurrent = options.maxConcurrent ?? 16;
    this.#headTimeoutMs = options.headTimeoutMs ?? HEAD_TIMEOUT_MS;
    this.#maxChunk = options.maxChunk ?? LEGACY_CHUNK;
    this.#noBody = options.noBody ?? false;
  }

  /** Requests holding a slot: open, or ended with a body not yet read to its end or cancelled. */
  get open(): number {
    return this.#slots;
  }

  /**
   * Send one request; resolves with the response head and a body reader, or rejects with a
   * ProxyResetError (refused, cancelled, timed out) or the LoftError that broke the session.
   */
  async request(head: ProxyRequestHead, body?: BodyReader, signal?: AbortSignalLike): Promise<ProxyResponse> {
    while (this.#slots >= this.#maxConcurrent && !this.#failed)
      await new Promise<void>((r) => this.#queue.push(r));
    if (this.#failed) throw this.#failed;
    if (signal?.aborted) throw new ProxyResetError("cancelled", "aborted before sending");
    if (this.#nextId > MAX_REQUEST_ID)
      throw new LoftError("LOFT_ERR_NONCE_EXHAUSTED", "proxy request ids used up");
    // Encoded before the request exists (docs/protocol/proxy.md §Frames, "Limits"): a path over
    // 2 048 bytes or a head over 8 KiB is the page's "Request too large", refused here. Had it
    // been registered first, its id would be spent and its head timer would later RESET an id the
    // peer never saw — an out-of-order frame that closes the session (§Streams).
    const id = this.#nextId;
    const noBody = this.#noBody && body === undefined;
    let requestFrame: FrameParts;
    try {
      requestFrame = encodeFrameParts({
        type: "request",
        id,
        method: head.method,
        window: this.#window,
        path: head.path,
        headers: head.headers,
        ...(noBody ? { noBody: true } : {}),
      });
    } catch (e) {
      if (isLoftError(e) && e.code === "LOFT_ERR_FRAME_TOO_LARGE")
        throw new ProxyResetError("too_large", "the request's address or headers are too long");
      throw e;
    }
    this.#nextId++;
    return new Promise<ProxyResponse>((resolve, reject) => {
      const stream: Stream = {
        id,
        resolve,
        reject,
        body: undefined,
        upload: undefined,
        timer: undefined,
        pageRead: false,
      };
      this.#streams.set(id, stream);
      this.#slots++;
      this.#awaitHead(stream);
      signal?.addEventListener("abort", () => this.reset(id, "cancelled", "aborted"));
      if (!this.#failed) this.#sendFrame(requestFrame);
      // NO_BODY: the REQUEST said it all; no upload, no END (and a CREDIT for it breaks the rules).
      if (noBody) return;
      const upload = new OutboundBody(
        this.#watchPage(stream, body ?? emptyBody()),
        REQUEST_BODY_WINDOW,
        this.#maxChunk,
      );
      stream.upload = upload;
      upload
        .pump(
          (parts) => this.#emitData(id, parts),
          () => {
            this.#emit({ type: "end", id });
            this.#awaitHead(stream); // the whole request is out: its answer is due
          },
        )
        .catch((e: unknown) =>
          this.reset(id, "origin_error", e instanceof Error ? e.message : "request body failed"),
        );
    });
  }

  /**
   * (Re)start `stream`'s wait for its response head: `headTimeoutMs` from now, if the requester is
   * waiting on the serving side (docs/protocol/proxy.md §Streams, "the head wait") — from the
   * REQUEST, from each CREDIT for its body, from each piece of the body the page hands over and
   * from its END. While a read of the page's body is pending (`pageRead`) the wait is stopped: the
   * page is slow, not the serving side. Counted from the REQUEST alone, an upload slower than the
   * bound ended as "No answer in time" (before session 22); restarted only on CREDIT and END, so
   * did a page whose body paused longer than the bound between two pieces (before session 23).
   * Once the RESPONSE came there is no head to wait for.
   */
  #awaitHead(stream: Stream): void {
    if (this.#streams.get(stream.id) !== stream) return; // ended meanwhile
    clearTimeout(stream.timer);
    stream.timer = undefined;
    if (stream.body || stream.pageRead) return;
    stream.timer = setTimeout(
      () => this.reset(stream.id, "timeout", "no response head in time"),
      this.#headTimeoutMs,
    );
  }

  /**
   * `source` as the upload reads it, stopping `stream`'s head wait while each read is pending and
   * starting it again when the piece (or the body's end) is handed over (`#awaitHead`).
   */
  #watchPage(stream: Stream, source: BodyReader): BodyReader {
    const watched: BodyReader = {
      read: async () => {
        stream.pageRead = true;
        this.#awaitHead(stream);
        try {
          return await source.read();
        } finally {
          stream.pageRead = false;
          this.#awaitHead(stream);
        }
      },
      cancel: (reason) => source.cancel(reason),
    };
    const available = source.available?.bind(source);
    if (available) watched.available = available;
    return watched;
  }

  /** End one request early from this side (the page dropped it): RESET to the peer, reader fails. */
  reset(id: number, code: ResetCode, reason: string): void {
    const stream = this.#streams.get(id);
    if (!stream) return;
    this.#emit({ type: "reset", id, code, reason });
    this.#finish(stream, new ProxyResetError(code, reason));
  }

  /** Take one frame from the serving side. An error means the session must close. */
  receive(bytes: Uint8Array): Result<void> {
    if (this.#failed) return err(this.#failed.code, this.#failed.message);
    const decoded = decodeFrame(bytes);
    if (!decoded.ok) return this.#fail(decoded.error.code, decoded.error.message);
    const frame = decoded.value;
    const stream = this.#streams.get(frame.id);
    if (!stream) {
      // Frames for a request that already ended (a RESET crossed them in flight) are dropped;
      // a frame for an id never requested, or a REQUEST at all, is a violation.
      if (frame.id < this.#nextId && frame.type !== "request") return ok(undefined);
      return this.#fail("LOFT_ERR_SCHEMA", `proxy: ${frame.type} for request ${frame.id} never sent`);
    }
    switch (frame.type) {
      case "request":
        return this.#fail("LOFT_ERR_SCHEMA", "proxy: REQUEST from the serving side");
      case "response": {
        if (stream.body)
          return this.#fail("LOFT_ERR_REPLAY", `proxy: second RESPONSE for request ${frame.id}`);
        clearTimeout(stream.timer);
        stream.timer = undefined;
        const body = new InboundBody(
          this.#window,
          (n) => this.#emit({ type: "credit", id: frame.id, bytes: n }),
          (reason) => this.reset(frame.id, "cancelled", reason),
        );
        stream.body = body;
        stream.resolve({ status: frame.status, headers: frame.headers, body });
        return ok(undefined);
      }
      case "data":
        if (!stream.body) return this.#fail("LOFT_ERR_SCHEMA", `proxy: DATA before RESPONSE on ${frame.id}`);
        if (!stream.body.push(frame.bytes))
          return this.#fail("LOFT_ERR_SCHEMA", `proxy: DATA past the window or the end on ${frame.id}`);
        return ok(undefined);
      case "end":
        if (!stream.body) return this.#fail("LOFT_ERR_SCHEMA", `proxy: END before RESPONSE on ${frame.id}`);
        if (stream.body.ended) return this.#fail("LOFT_ERR_REPLAY", `proxy: second END on ${frame.id}`);
        stream.body.end();
        this.#finish(stream, undefined);
        return ok(undefined);
      case "credit":
        if (!stream.upload?.addCredit(frame.bytes))
          return this.#fail(
            "LOFT_ERR_SCHEMA",
            `proxy: CREDIT for request ${frame.id}'s body: it has none, or the credit overflows`,
          );
        // The serving side is taking the body: no answer is due before it has all of it.
        this.#awaitHead(stream);
        return ok(undefined);
      case "reset":
        this.#finish(stream, new ProxyResetError(frame.code, frame.reason));
        return ok(undefined);
    }
  }

  /** The session ended: every open request fails with `error`. */
  close(error: LoftError = new LoftError("LOFT_ERR_LINK_CLOSED", "proxy session closed")): void {
    this.#failed ??= error;
    for (const s of [...this.#streams.values()]) this.#finish(s, error);
    for (const wake of this.#queue.splice(0)) wake();
  }

  #fail(code: LoftErrorCode, message: string): Result<void> {
    const error = new LoftError(code, message);
    this.close(error);
    return { ok: false, error };
  }

  #finish(stream: Stream, error: Error | undefined): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    clearTimeout(stream.timer);
    stream.upload?.stop();
    if (error) {
      stream.reject(error);
      stream.body?.fail(error);
    }
    // The slot is freed once nothing of the body is held: at once, or when it is read or cancelled.
    if (stream.body) stream.body.whenSettled(() => this.#release());
    else this.#release();
  }

  #release(): void {
    this.#slots--;
    this.#queue.shift()?.();
  }

  #emit(frame: ProxyFrame): void {
    if (this.#failed && frame.type !== "reset") return;
    this.#sendFrame(encodeFrameParts(frame));
  }

  /** A DATA frame of the request body (its body as parts: OutboundBody). */
  #emitData(id: number, body: Uint8Array[]): void {
    if (!this.#failed) this.#sendFrame(encodeDataParts(id, body));
  }

  #sendFrame(parts: FrameParts): void {
    try {
      this.#send(parts);
    } catch {
      // The session is gone; its close() reaches us through the owner.
    }
  }
}

/** The part of AbortSignal the client uses (core/ has no DOM types). */
export interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void): void;
}
