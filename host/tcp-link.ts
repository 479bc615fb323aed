/**
 * A Node TCP socket as a Loft `Link` (core/link/link.ts): every message is one frame, a 2-byte
 * big-endian length followed by that many bytes — the framing the Noise spec recommends (rev 34,
 * §13: "applications are recommended to add a 16-bit big-endian length field prior to each
 * message") and that our dissononce interop peer (test/interop/dissononce-peer.py) uses. A frame is therefore at most 65535 bytes, exactly the Noise
 * message limit (§3); larger messages are chunked above (core/session).
 *
 * Used by `scripts/noise-peer.ts` and the interop tests (test/interop/). Parsing follows `ws`'s
 * receiver habit: a small state machine that never buffers more than one frame.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { LoftError } from "../core/errors.ts";
import type { LinkCloseInfo } from "../core/link/link.ts";
import { QueueLink } from "../core/link/queue-link.ts";

/** Largest payload one frame carries (the 2-byte length field; Noise §3). */
export const MAX_TCP_FRAME = 65535;
const HEADER = 2;

/** Splits a byte stream into length-prefixed frames; holds at most one partial frame. */
export class FrameReader {
  #header = Buffer.alloc(HEADER);
  #headerFilled = 0;
  #frame: Uint8Array | undefined;
  #frameFilled = 0;

  /** Feed bytes from the stream; returns the frames they complete, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#frame === undefined) {
        const n = Math.min(HEADER - this.#headerFilled, chunk.length - offset);
        this.#header.set(chunk.subarray(offset, offset + n), this.#headerFilled);
        this.#headerFilled += n;
        offset += n;
        if (this.#headerFilled < HEADER) break;
        this.#frame = new Uint8Array(this.#header.readUInt16BE(0));
        this.#frameFilled = 0;
        this.#headerFilled = 0;
      }
      const frame = this.#frame;
      const n = Math.min(frame.length - this.#frameFilled, chunk.length - offset);
      frame.set(chunk.subarray(offset, offset + n), this.#frameFilled);
      this.#frameFilled += n;
      offset += n;
      if (this.#frameFilled < frame.length) break;
      frames.push(frame);
      this.#frame = undefined;
    }
    return frames;
  }

  /** True when bytes of an unfinished frame are buffered (a stream that ends here was cut). */
  get partial(): boolean {
    return this.#headerFilled > 0 || this.#frame !== undefined;
  }
}

/** One message → one frame: 2-byte big-endian length, then the bytes (copied once, one write). */
export function encodeFrame(message: Uint8Array): Buffer {
  if (message.length > MAX_TCP_FRAME)
    throw new LoftError(
      "LOFT_ERR_FRAME_TOO_LARGE",
      `${message.length} bytes exceeds a ${MAX_TCP_FRAME}-byte frame`,
    );
  const frame = Buffer.allocUnsafe(HEADER + message.length);
  frame.writeUInt16BE(message.length, 0);
  frame.set(message, HEADER);
  return frame;
}

export class TcpLink extends QueueLink {
  readonly #socket: Socket;
  readonly #reader = new FrameReader();

  private constructor(socket: Socket, state: "connecting" | "open") {
    super(state);
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      for (const frame of this.#reader.push(chunk)) this.deliver(frame);
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      this.finish({ reason: "LOFT_ERR_LINK_CLOSED", detail: e.code ?? "socket error" }, false);
      socket.destroy();
    });
    socket.on("close", () => {
      const detail = this.#reader.partial ? "stream ended inside a frame" : undefined;
      this.finish({ reason: "remote-closed", ...(detail ? { detail } : {}) }, false);
    });
  }

  /** Wrap an accepted (already connected) socket. */
  static fromSocket(socket: Socket): TcpLink {
    return new TcpLink(socket, "open");
  }

  /** Connect to host:port; resolves once the TCP connection is up, rejects if it fails. */
  static connect(host: string, port: number): Promise<TcpLink> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host, port });
      const link = new TcpLink(socket, "connecting");
      const onError = (e: Error) => reject(e);
      socket.once("error", onError);
      socket.once("connect", () => {
        socket.off("error", onError);
        link.markOpen();
        resolve(link);
      });
    });
  }

  /** Frames larger than 65535 bytes throw LoftError(LOFT_ERR_FRAME_TOO_LARGE). */
  protected transmit(message: Uint8Array): void {
    this.#socket.write(encodeFrame(message));
  }

  protected teardown(_info: LinkCloseInfo): void {
    // Flush what was written, then close; destroy soon after in case the peer never reads.
    this.#socket.end(() => this.#socket.destroy());
  }
}

export interface TcpListener {
  readonly server: Server;
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

/** Listen on host:port and hand each accepted connection to `onLink` as a TcpLink. */
export function listenTcp(host: string, port: number, onLink: (link: TcpLink) => void): Promise<TcpListener> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => onLink(TcpLink.fromSocket(socket)));
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address.port : port;
      resolve({
        server,
        port: bound,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}
