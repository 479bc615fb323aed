/**
 * The serving side's request multiplexer (docs/protocol/proxy.md §Streams): one per session with
 * one contact (`peer`). Frames in (`receive`), frames out (`send`); each REQUEST is checked — id
 * fresh, concurrency, the contact's rate limit — and handed to a `ProxyHandler` (a share of files,
 * or an HTTP origin) whose body is then pumped to the peer no faster than the peer's credit allows.
 * Every request, served or refused, leaves one access record for the owner.
 */
import { err, LoftError, type LoftErrorCode, ok, type Result } from "../errors.ts";
import { type BodyReader, InboundBody, OutboundBody } from "./body.ts";
import type { ProxyRequestHead, ProxyResponse } from "./client.ts";
import {
  allowHeaders,
  decodeFrame,
  encodeDataParts,
  encodeFrameParts,
  type FrameParts,
  LEGACY_CHUNK,
  type ProxyFrame,
  REQUEST_BODY_WINDOW,
  RESPONSE_HEADERS,
  type ResetCode,
} from "./frames.ts";
import type { RequestLimiter } from "./rate-limit.ts";

export interface ServedRequest extends ProxyRequestHead {
  /** The contact asking (a session's authenticated peer; "me" for the owner's own preview). */
  peer: string;
  body: BodyReader;
}

export type Refusal = { refuse: ResetCode; reason: string };
/**
 * A handler's answer. `tailHoldMs` asks the body's sender to let a short tail wait that long for
 * the source's next chunk (core/proxy/body.ts `OutboundBody`, TAIL_HOLD_MS); absent: never.
 */
export type ServedResponse = ProxyResponse & { tailHoldMs?: number };
export type HandlerResult = ServedResponse | Refusal;
export type ProxyHandler = (request: ServedRequest) => Promise<HandlerResult>;

/** What the owner sees of each request (never the bodies; paths are the contact's own words). */
export interface AccessRecord {
  at: number;
  peer: string;
  method: string;
  path: string;
  outcome: "served" | "refused" | "cancelled" | "failed";
  status?: number;
  refused?: ResetCode;
  /** Response-body bytes sent. */
  bytes: number;
}

export interface ProxyServerOptions {
  peer: string;
  /** One frame per call, as the parts whose concatenation it is (frames.ts `encodeFrameParts`). */
  send: (frame: FrameParts) => void;
  handler: ProxyHandler;
  limiter?: RequestLimiter;
  log?: (record: AccessRecord) => void;
  now?: () => number;
  /** Requests open at once from this peer; more are refused with `too_many_requests` (default 16). */
  maxConcurrent?: number;
  /**
   * Largest DATA body this side sends (default LEGACY_CHUNK: what every peer accepts; up to
   * MAX_CHUNK to a peer that announced it, smaller to fit a carrier's unit).
   */
  maxChunk?: number;
  /**
   * The carrier's backpressure (docs/protocol/proxy.md §Flow control): awaited before each DATA
   * of a response body; resolves once the link can take more. Without it only the peer's credit
   * paces a body — and 16 bodies × a 1 MiB window is the whole of Chromium's 16 MiB data-channel
   * send buffer, whose overflow closes the link.
   */
  ready?: () => Promise<void>;
}

interface Stream {
  id: number;
  upload: InboundBody;
  download: OutboundBody | undefined;
  /** Response credit the peer granted: the REQUEST's window plus CREDITs before the body starts. */
  credit: number;
  record: AccessRecord;
}

export class ProxyServer {
  readonly #o: Required<Omit<ProxyServerOptions, "limiter" | "ready">> & {
    limiter: RequestLimiter | undefined;
    ready: (() => Promise<void>) | undefined;
  };
  readonly #streams = new Map<number, Stream>();
  #highest = 0;
  #failed: LoftError | undefined;

  constructor(options: ProxyServerOptions) {
    this.#o = {
      maxConcurrent: 16,
      maxChunk: LEGACY_CHUNK,
      log: () => undefined,
      now: () => Date.now(),
      limiter: undefined,
      ready: undefined,
      ...options,
    };
  }

  get open(): number {
    return this.#streams.size;
  }

  /** Take one frame from the requesting side. An error means the session must close. */
  receive(bytes: Uint8Array): Result<void> {
    if (this.#failed) return err(this.#failed.code, this.#failed.message);
    const decoded = decodeFrame(bytes);
    if (!decoded.ok) return this.#fail(decoded.error.code, decoded.error.message);
    const frame = decoded.value;
    if (frame.type === "request") return this.#request(frame);
    const stream = this.#streams.get(frame.id);
    if (!stream) {
      if (frame.id <= this.#highest) return ok(undefined); // ended while this was in flight
      return this.#fail("LOFT_ERR_SCHEMA", `proxy: ${frame.type} for request ${frame.id} never opened`);
    }
    switch (frame.type) {
      case "response":
        return this.#fail("LOFT_ERR_SCHEMA", "proxy: RESPONSE from the requesting side");
      case "data":
        if (!stream.upload.push(frame.bytes))
          return this.#fail("LOFT_ERR_SCHEMA", `proxy: DATA past the window or the end on ${frame.id}`);
        return ok(undefined);
      case "end":
        if (stream.upload.ended) return this.#fail("LOFT_ERR_REPLAY", `proxy: second END on ${frame.id}`);
        stream.upload.end();
        return ok(undefined);
      case "credit":
        if (stream.download) stream.download.addCredit(frame.bytes);
        else stream.credit += frame.bytes;
        return ok(undefined);
      case "reset":
        this.#end(stream, "cancelled");
        return ok(undefined);
    }
  }

  /** The session ended: stop every request (sources cancelled, records written). */
  close(error = new LoftError("LOFT_ERR_LINK_CLOSED", "proxy session closed")): void {
    this.#failed ??= error;
    for (const s of [...this.#streams.values()]) this.#end(s, "cancelled");
  }

  #request(frame: Extract<ProxyFrame, { type: "request" }>): Result<void> {
    if (frame.id <= this.#highest)
      return this.#fail("LOFT_ERR_REPLAY", `proxy: request id ${frame.id} not above ${this.#highest}`);
    this.#highest = frame.id;
    const { id } = frame;
    const record: AccessRecord = {
      at: this.#o.now(),
      peer: this.#o.peer,
      method: frame.method,
      path: frame.path,
      outcome: "served",
      bytes: 0,
    };
    const stream: Stream = {
      id,
      credit: frame.window,
      download: undefined,
      record,
      upload: new InboundBody(
        REQUEST_BODY_WINDOW,
        (n) => this.#emit({ type: "credit", id, bytes: n }),
        () => undefined,
      ),
    };
    if (this.#streams.size >= this.#o.maxConcurrent) {
      this.#refuse(record, id, {
        refuse: "too_many_requests",
        reason: `at most ${this.#o.maxConcurrent} at once`,
      });
      return ok(undefined);
    }
    if (this.#o.limiter && !this.#o.limiter.take(this.#o.peer, record.at)) {
      this.#refuse(record, id, { refuse: "rate_limited", reason: "too many requests, slow down" });
      return ok(undefined);
    }
    // NO_BODY (docs/protocol/proxy.md, "Body-less requests"): the request body ends here, so an
    // END for this id is a second END (LOFT_ERR_REPLAY) and DATA is past the end (LOFT_ERR_SCHEMA).
    if (frame.noBody) stream.upload.end();
    this.#streams.set(id, stream);
    const request: ServedRequest = {
      peer: this.#o.peer,
      method: frame.method,
      path: frame.path,
      headers: frame.headers,
      body: stream.upload,
    };
    this.#o
      .handler(request)
      .then((result) => this.#respond(stream, frame.method === "HEAD", result))
      .catch((e: unknown) => {
        if (this.#streams.get(id) !== stream) return;
        this.#emit({ type: "reset", id, code: "internal", reason: "the share could not be read" });
        this.#end(stream, "failed", e);
      });
    return ok(undefined);
  }

  #respond(stream: Stream, head: boolean, result: HandlerResult): void {
    const { id, record } = stream;
    if (this.#streams.get(id) !== stream) {
      if ("body" in result) result.body.cancel("request ended");
      return;
    }
    if ("refuse" in result) {
      this.#streams.delete(id);
      stream.upload.cancel();
      this.#refuse(record, id, result);
      return;
    }
    record.status = result.status;
    this.#emit({
      type: "response",
      id,
      status: result.status,
      headers: allowHeaders(result.headers, RESPONSE_HEADERS),
    });
    if (head) result.body.cancel("HEAD");
    const download = new OutboundBody(
      head ? { read: async () => null, cancel: () => undefined } : result.body,
      stream.credit,
      this.#o.maxChunk,
      this.#o.ready,
      result.tailHoldMs,
    );
    stream.download = download;
    download
      .pump(
        (parts) => {
          for (const part of parts) record.bytes += part.length;
          if (!this.#failed) this.#sendFrame(encodeDataParts(id, parts));
        },
        () => {
          this.#emit({ type: "end", id });
          this.#end(stream, "served");
        },
      )
      .catch((e: unknown) => {
        if (this.#streams.get(id) !== stream) return;
        this.#emit({
          type: "reset",
          id,
          code: "origin_error",
          reason: "the body could not be read to the end",
        });
        this.#end(stream, "failed", e);
      });
  }

  #refuse(record: AccessRecord, id: number, refusal: Refusal): void {
    this.#emit({ type: "reset", id, code: refusal.refuse, reason: refusal.reason });
    record.outcome = "refused";
    record.refused = refusal.refuse;
    this.#o.log(record);
  }

  #end(stream: Stream, outcome: AccessRecord["outcome"], _error?: unknown): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    stream.download?.stop(outcome);
    // Only a body someone may still read gets the error (an Error's stack costs ~20 µs a request).
    if (!stream.upload.settled) stream.upload.fail(new LoftError("LOFT_ERR_LINK_CLOSED", "request ended"));
    stream.record.outcome = outcome;
    this.#o.log(stream.record);
  }

  #fail(code: LoftErrorCode, message: string): Result<void> {
    const error = new LoftError(code, message);
    this.close(error);
    return { ok: false, error };
  }

  #emit(frame: ProxyFrame): void {
    if (this.#failed && frame.type !== "reset") return;
    this.#sendFrame(encodeFrameParts(frame));
  }

  #sendFrame(parts: FrameParts): void {
    try {
      this.#o.send(parts);
    } catch {
      // The session is gone; its close() reaches us through the owner.
    }
  }
}
