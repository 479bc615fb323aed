/**
 * Frames of Loft's E2EE fetch proxy (docs/protocol/proxy.md). Each frame is one application
 * message of a Loft session (docs/protocol/session.md, "Transport frames": one DATA frame, so a
 * proxy frame never needs chunking), and the session's Noise transport keeps them confidential,
 * authenticated and in order. Layout, all integers big-endian:
 *
 *   version u8 (= 1) ‖ type u8 ‖ request id u32 ‖ body
 *
 *   0x01 REQUEST   method u8 ‖ window u32 ‖ path len u16 ‖ path ‖ headers
 *                  (method's bit 0x80, NO_BODY: no request body, no END follows — sent only to a
 *                  peer that announced it, endpoint.ts `PROXY_FLAGS_EXTENSION`)
 *   0x02 RESPONSE  status u16 ‖ headers
 *   0x03 DATA      bytes (1..MAX_CHUNK)
 *   0x04 END       (empty)
 *   0x05 CREDIT    bytes u32 (1..MAX_WINDOW)
 *   0x06 RESET     code u8 ‖ reason (UTF-8, ≤ 256 bytes)
 *
 *   headers = count u8 ‖ count × (name len u8 ‖ name ‖ value len u16 ‖ value)
 *
 * Decoding is strict: a frame that is not exactly one of these — wrong version, unknown type,
 * trailing bytes, a header outside the allowlist, a path or head over its limit — is a typed
 * `LoftError` and nothing else. Stream rules (ids, credit, order) live in ./streams.ts.
 */
import { concatBytes, cutUtf8, fromUtf8, utf8 } from "../bytes.ts";
import { err, LoftError, type LoftErrorCode, ok, type Result } from "../errors.ts";

export const PROXY_VERSION = 1;

export const T_REQUEST = 0x01;
export const T_RESPONSE = 0x02;
export const T_DATA = 0x03;
export const T_END = 0x04;
export const T_CREDIT = 0x05;
export const T_RESET = 0x06;

/**
 * Largest body chunk in one DATA frame a receiver accepts: what fills one session DATA frame
 * (65 518 bytes, docs/protocol/session.md "Transport frames") after the PROXY type byte, the
 * channel byte (endpoint.ts) and the 6-byte head, so one DATA frame is one Noise transport message.
 */
export const MAX_CHUNK = 65_510;
/**
 * Largest DATA body sent to a peer that has not announced what it accepts (endpoint.ts,
 * `PROXY_DATA_EXTENSION`): receivers before the announcement refuse DATA over 16 KiB.
 */
export const LEGACY_CHUNK = 16 * 1024;
/** Largest encoded request or response head (path and headers included). */
export const MAX_HEAD_BYTES = 8 * 1024;
/** Largest request path, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 2048;
/** Most headers in one head. */
export const MAX_HEADERS = 32;
/** Largest flow-control window one side may grant in total (and in one CREDIT). */
export const MAX_WINDOW = 1024 * 1024;
/**
 * Request-body bytes a requester may send before the serving side grants more with CREDIT (the
 * response body's first window is the REQUEST frame's `window`).
 */
export const REQUEST_BODY_WINDOW = 64 * 1024;
/** Largest RESET reason, in UTF-8 bytes. */
export const MAX_REASON_BYTES = 256;
/**
 * REQUEST's method byte, bit 0x80 (docs/protocol/proxy.md §Frames, "Body-less requests"): the
 * request has no body and its END is implied — the serving side's request body ends at the
 * REQUEST, and an END, or DATA, for that id afterwards breaks the stream rules. The low 7 bits
 * are the method. Sent only to a peer that announced it reads the flag (endpoint.ts
 * `PROXY_FLAGS_EXTENSION`): a receiver from before reads 0x81 as an unknown method and closes
 * the session.
 */
export const NO_BODY = 0x80;
/** Request ids are u32; 0 is never used. */
export const MAX_REQUEST_ID = 0xffff_ffff;
const PREFIX = 6;

export const METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] as const;
export type ProxyMethod = (typeof METHODS)[number];

/**
 * Request headers carried to the serving side. Everything else (cookies, authorization, the
 * browser's fingerprinting headers) stays in the browser: the contact sees what it needs to answer.
 */
export const REQUEST_HEADERS: ReadonlySet<string> = new Set([
  "accept",
  "accept-language",
  "cache-control",
  "content-type",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "range",
]);

/** Response headers carried back (no Set-Cookie, no CSP or CORS from the contact: the SW sets its own). */
export const RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  "accept-ranges",
  "cache-control",
  "content-disposition",
  "content-language",
  "content-length",
  "content-range",
  "content-type",
  "etag",
  "expires",
  "last-modified",
  "location",
  "vary",
]);

/** Why a request ended early (RESET). Codes are wire values; names are what the SW and logs show. */
export const RESET_CODES = {
  cancelled: 0,
  not_a_contact: 1,
  not_shared: 2,
  rate_limited: 3,
  too_large: 4,
  too_many_requests: 5,
  timeout: 6,
  origin_error: 7,
  protocol_error: 8,
  contact_offline: 9,
  internal: 10,
} as const;
export type ResetCode = keyof typeof RESET_CODES;
const RESET_NAMES = Object.fromEntries(Object.entries(RESET_CODES).map(([k, v]) => [v, k])) as Record<
  number,
  ResetCode
>;

export type Headers = [name: string, value: string][];

export type ProxyFrame =
  | {
      type: "request";
      id: number;
      method: ProxyMethod;
      window: number;
      path: string;
      headers: Headers;
      /** NO_BODY: no request body and no END follows (absent: a body, however empty, then END). */
      noBody?: true;
    }
  | { type: "response"; id: number; status: number; headers: Headers }
  | { type: "data"; id: number; bytes: Uint8Array }
  | { type: "end"; id: number }
  | { type: "credit"; id: number; bytes: number }
  | { type: "reset"; id: number; code: ResetCode; reason: string };

const TOKEN = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
/** Visible ASCII, space and tab: no CR, LF or NUL can reach a header (no response splitting). */
const VALUE = /^[\t\x20-\x7e]*$/;

/** Keep only allowlisted headers, names lowercased; values with control characters are dropped. */
export function allowHeaders(pairs: Iterable<[string, string]>, allow: ReadonlySet<string>): Headers {
  const out: Headers = [];
  for (const [rawName, value] of pairs) {
    const name = rawName.toLowerCase();
    if (allow.has(name) && VALUE.test(value) && value.length <= 4096 && out.length < MAX_HEADERS)
      out.push([name, value]);
  }
  return out;
}

// --- encoding --------------------------------------------------------------------------------------

class Writer {
  #buf: Uint8Array;
  #at = 0;
  constructor(size: number) {
    this.#buf = new Uint8Array(size);
  }
  u8(v: number): this {
    this.#grow(1);
    this.#buf[this.#at++] = v;
    return this;
  }
  u16(v: number): this {
    this.#grow(2);
    this.#buf[this.#at++] = v >>> 8;
    this.#buf[this.#at++] = v & 0xff;
    return this;
  }
  u32(v: number): this {
    this.#grow(4);
    this.#buf[this.#at++] = v >>> 24;
    this.#buf[this.#at++] = (v >>> 16) & 0xff;
    this.#buf[this.#at++] = (v >>> 8) & 0xff;
    this.#buf[this.#at++] = v & 0xff;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.#grow(b.length);
    this.#buf.set(b, this.#at);
    this.#at += b.length;
    return this;
  }
  #grow(n: number): void {
    if (this.#at + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#at + n));
    next.set(this.#buf);
    this.#buf = next;
  }
  done(): Uint8Array {
    // Sized exactly (a DATA frame always is): hand over the buffer itself, no second copy.
    return this.#at === this.#buf.length ? this.#buf : this.#buf.slice(0, this.#at);
  }
}

/**
 * A head over the limits (§Frames, "Limits": the path, the header count or a value, the head's
 * bytes) comes from what a page asked for, not from a bug: a LoftError the request's sender turns
 * into `too_large` before anything is sent (client.ts).
 */
const headTooLarge = (what: string) => new LoftError("LOFT_ERR_FRAME_TOO_LARGE", `proxy: ${what}`);

function prefix(type: number, id: number, size: number): Writer {
  if (!Number.isInteger(id) || id < 1 || id > MAX_REQUEST_ID)
    throw new RangeError(`proxy: bad request id ${id}`);
  return new Writer(PREFIX + size).u8(PROXY_VERSION).u8(type).u32(id);
}

function writeHeaders(w: Writer, headers: Headers, allow: ReadonlySet<string>): void {
  if (headers.length > MAX_HEADERS) throw headTooLarge("too many headers");
  w.u8(headers.length);
  for (const [name, value] of headers) {
    if (!allow.has(name) || !VALUE.test(value)) throw new RangeError(`proxy: header not allowed: ${name}`);
    const n = utf8(name);
    const v = utf8(value);
    if (v.length > 0xffff) throw headTooLarge("header value too long");
    w.u8(n.length).bytes(n).u16(v.length).bytes(v);
  }
}

/**
 * The bytes of one frame. Throws a RangeError (a programming error) for a frame our own code
 * should never build — headers outside the allowlist, a chunk over MAX_CHUNK — and a LoftError
 * `LOFT_ERR_FRAME_TOO_LARGE` for a head over the limits (a path over 2 048 bytes, a head over
 * MAX_HEAD_BYTES: what a page asked for).
 */
export function encodeFrame(frame: ProxyFrame): Uint8Array {
  switch (frame.type) {
    case "request": {
      const method = METHODS.indexOf(frame.method);
      const path = utf8(frame.path);
      if (method < 0) throw new RangeError(`proxy: method ${frame.method}`);
      if (path.length === 0) throw new RangeError("proxy: empty path");
      if (path.length > MAX_PATH_BYTES) throw headTooLarge(`path over ${MAX_PATH_BYTES} bytes`);
      checkWindow(frame.window);
      const w = prefix(T_REQUEST, frame.id, 64 + path.length)
        .u8((method + 1) | (frame.noBody ? NO_BODY : 0))
        .u32(frame.window)
        .u16(path.length)
        .bytes(path);
      writeHeaders(w, frame.headers, REQUEST_HEADERS);
      return checkHead(w.done());
    }
    case "response": {
      if (!Number.isInteger(frame.status) || frame.status < 100 || frame.status > 599)
        throw new RangeError(`proxy: status ${frame.status}`);
      const w = prefix(T_RESPONSE, frame.id, 64).u16(frame.status);
      writeHeaders(w, frame.headers, RESPONSE_HEADERS);
      return checkHead(w.done());
    }
    case "data":
      return concatBytes(...encodeFrameParts(frame));
    case "end":
      return prefix(T_END, frame.id, 0).done();
    case "credit":
      if (!Number.isInteger(frame.bytes) || frame.bytes < 1 || frame.bytes > MAX_WINDOW)
        throw new RangeError("proxy: credit");
      return prefix(T_CREDIT, frame.id, 4).u32(frame.bytes).done();
    case "reset": {
      const reason = cutUtf8(frame.reason, MAX_REASON_BYTES);
      return prefix(T_RESET, frame.id, 1 + reason.length)
        .u8(RESET_CODES[frame.code])
        .bytes(reason)
        .done();
    }
  }
}

/**
 * A frame's bytes as parts, in order: DATA as its 6-byte head and then the body itself, not
 * copied (whoever joins the parts — the session building its frame — copies it once); any
 * other frame as one part, `encodeFrame`'s bytes.
 */
export type FrameParts = readonly Uint8Array[];

export function encodeFrameParts(frame: ProxyFrame): FrameParts {
  if (frame.type !== "data") return [encodeFrame(frame)];
  return encodeDataParts(frame.id, [frame.bytes]);
}

/** A DATA frame whose body is the concatenation of `body` (1…MAX_CHUNK bytes), as parts, uncopied. */
export function encodeDataParts(id: number, body: readonly Uint8Array[]): FrameParts {
  let size = 0;
  for (const part of body) size += part.length;
  if (size < 1 || size > MAX_CHUNK) throw new RangeError("proxy: chunk size");
  return [prefix(T_DATA, id, 0).done(), ...body];
}

function checkWindow(window: number): void {
  if (!Number.isInteger(window) || window < 0 || window > MAX_WINDOW) throw new RangeError("proxy: window");
}

function checkHead(bytes: Uint8Array): Uint8Array {
  if (bytes.length > MAX_HEAD_BYTES) throw headTooLarge(`head over ${MAX_HEAD_BYTES} bytes`);
  return bytes;
}

// --- decoding --------------------------------------------------------------------------------------

class ReadError extends Error {
  constructor(
    readonly code: LoftErrorCode,
    message: string,
  ) {
    super(message);
  }
}

class Reader {
  #at: number;
  readonly #view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    at: number,
  ) {
    this.#at = at;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  #need(n: number): void {
    if (this.#at + n > this.bytes.length) throw new ReadError("LOFT_ERR_MALFORMED", "proxy frame truncated");
  }
  u8(): number {
    this.#need(1);
    return this.bytes[this.#at++]!;
  }
  u16(): number {
    this.#need(2);
    const v = this.#view.getUint16(this.#at);
    this.#at += 2;
    return v;
  }
  u32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.#at);
    this.#at += 4;
    return v;
  }
  take(n: number): Uint8Array {
    this.#need(n);
    const out = this.bytes.slice(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }
  rest(): Uint8Array {
    return this.take(this.bytes.length - this.#at);
  }
  /** The remaining bytes as a view of the frame (no copy: a DATA body is the bulk of a body's bytes). */
  restView(): Uint8Array {
    const out = this.bytes.subarray(this.#at);
    this.#at = this.bytes.length;
    return out;
  }
  text(n: number): string {
    try {
      return fromUtf8(this.take(n));
    } catch (e) {
      if (e instanceof ReadError) throw e;
      throw new ReadError("LOFT_ERR_MALFORMED", "proxy frame: invalid UTF-8");
    }
  }
  end(): void {
    if (this.#at !== this.bytes.length)
      throw new ReadError("LOFT_ERR_MALFORMED", "proxy frame: trailing bytes");
  }
}

function readHeaders(r: Reader, allow: ReadonlySet<string>): Headers {
  const count = r.u8();
  if (count > MAX_HEADERS) throw new ReadError("LOFT_ERR_SCHEMA", `proxy frame: ${count} headers`);
  const out: Headers = [];
  for (let i = 0; i < count; i++) {
    const name = r.text(r.u8());
    const value = r.text(r.u16());
    if (!TOKEN.test(name) || !allow.has(name))
      throw new ReadError(
        "LOFT_ERR_SCHEMA",
        `proxy frame: header not allowed: ${JSON.stringify(name.slice(0, 40))}`,
      );
    if (!VALUE.test(value)) throw new ReadError("LOFT_ERR_SCHEMA", `proxy frame: bad value for ${name}`);
    out.push([name, value]);
  }
  return out;
}

function readWindow(r: Reader): number {
  const w = r.u32();
  if (w > MAX_WINDOW) throw new ReadError("LOFT_ERR_SCHEMA", `proxy frame: window ${w} over ${MAX_WINDOW}`);
  return w;
}

/**
 * One frame from its bytes, or a typed error (never a throw) for anything that is not exactly a
 * frame. A DATA frame's `bytes` is a view of `bytes`, not a copy: the caller hands over the buffer.
 */
export function decodeFrame(bytes: Uint8Array): Result<ProxyFrame> {
  if (!(bytes instanceof Uint8Array)) return err("LOFT_ERR_MALFORMED", "proxy frame: not bytes");
  if (bytes.length < PREFIX) return err("LOFT_ERR_MALFORMED", `proxy frame: ${bytes.length} bytes`);
  if (bytes[0] !== PROXY_VERSION)
    return err("LOFT_ERR_UNSUPPORTED_VERSION", `proxy frame version ${bytes[0]}`);
  const type = bytes[1]!;
  const headLimited = type === T_REQUEST || type === T_RESPONSE;
  if (headLimited && bytes.length > MAX_HEAD_BYTES)
    return err("LOFT_ERR_FRAME_TOO_LARGE", `proxy head: ${bytes.length} bytes over ${MAX_HEAD_BYTES}`);
  if (type === T_DATA && bytes.length > PREFIX + MAX_CHUNK)
    return err("LOFT_ERR_FRAME_TOO_LARGE", `proxy chunk: ${bytes.length - PREFIX} bytes over ${MAX_CHUNK}`);
  const r = new Reader(bytes, 2);
  try {
    const id = r.u32();
    if (id === 0) return err("LOFT_ERR_SCHEMA", "proxy frame: request id 0");
    let frame: ProxyFrame;
    switch (type) {
      case T_REQUEST: {
        const m = r.u8();
        const method = METHODS[(m & ~NO_BODY) - 1];
        if (!method) return err("LOFT_ERR_SCHEMA", `proxy request: method ${m}`);
        const window = readWindow(r);
        const pathLen = r.u16();
        if (pathLen === 0 || pathLen > MAX_PATH_BYTES)
          return err("LOFT_ERR_SCHEMA", `proxy request: path of ${pathLen} bytes`);
        const path = r.text(pathLen);
        const headers = readHeaders(r, REQUEST_HEADERS);
        frame = {
          type: "request",
          id,
          method,
          window,
          path,
          headers,
          ...(m & NO_BODY ? { noBody: true } : {}),
        };
        break;
      }
      case T_RESPONSE: {
        const status = r.u16();
        if (status < 100 || status > 599) return err("LOFT_ERR_SCHEMA", `proxy response: status ${status}`);
        frame = { type: "response", id, status, headers: readHeaders(r, RESPONSE_HEADERS) };
        break;
      }
      case T_DATA: {
        const data = r.restView();
        if (data.length === 0) return err("LOFT_ERR_SCHEMA", "proxy data: empty chunk");
        frame = { type: "data", id, bytes: data };
        break;
      }
      case T_END:
        frame = { type: "end", id };
        break;
      case T_CREDIT: {
        const n = r.u32();
        if (n === 0 || n > MAX_WINDOW) return err("LOFT_ERR_SCHEMA", `proxy credit: ${n}`);
        frame = { type: "credit", id, bytes: n };
        break;
      }
      case T_RESET: {
        const c = r.u8();
        const code = RESET_NAMES[c];
        if (!code) return err("LOFT_ERR_SCHEMA", `proxy reset: code ${c}`);
        const rest = r.rest();
        if (rest.length > MAX_REASON_BYTES)
          return err("LOFT_ERR_FRAME_TOO_LARGE", "proxy reset: reason too long");
        const reason = new Reader(rest, 0).text(rest.length);
        frame = { type: "reset", id, code, reason };
        break;
      }
      default:
        return err("LOFT_ERR_UNKNOWN_TYPE", `proxy frame type ${type}`);
    }
    r.end();
    return ok(frame);
  } catch (e) {
    if (e instanceof ReadError) return err(e.code, e.message);
    throw e;
  }
}
