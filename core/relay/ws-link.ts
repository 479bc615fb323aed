/**
 * A `Link` over a WebSocket: one binary WebSocket message per Link message (RFC 6455 §5.6).
 * Written against a small structural interface that both the browser's `WebSocket` and the `ws`
 * package satisfy, so core/ needs neither DOM nor Node types. Messages sent while the socket is
 * still connecting are queued and flushed on open.
 */
import { LoftError } from "../errors.ts";
import type { LinkCloseInfo } from "../link/link.ts";
import { QueueLink } from "../link/queue-link.ts";

/** The part of the WebSocket API this adapter uses (browser `WebSocket` and `ws` both fit). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  // biome-ignore lint/suspicious/noExplicitAny: event shapes differ between browser and ws
  addEventListener(type: string, listener: (event: any) => void): void;
}

const OPEN = 1;

/** Close code and reason the peer sent (or 1006 when the socket dropped). */
export interface WebSocketCloseDetail {
  code: number;
  reason: string;
}

export class WebSocketLink extends QueueLink {
  readonly #ws: WebSocketLike;
  #backlog: Uint8Array[] | undefined = [];
  /** The close code/reason received from the peer, once closed. */
  remoteClose: WebSocketCloseDetail | undefined;

  constructor(ws: WebSocketLike) {
    super(ws.readyState === OPEN ? "open" : "connecting");
    this.#ws = ws;
    ws.binaryType = "arraybuffer";
    if (ws.readyState === OPEN) this.#backlog = undefined;
    ws.addEventListener("open", () => {
      this.markOpen();
      const backlog = this.#backlog ?? [];
      this.#backlog = undefined;
      for (const m of backlog) this.#ws.send(m);
    });
    ws.addEventListener("message", (event: { data: unknown }) => {
      const data = event.data;
      if (data instanceof ArrayBuffer) this.deliver(new Uint8Array(data));
      else if (data instanceof Uint8Array) this.deliver(new Uint8Array(data));
      else this.close("LOFT_ERR_MALFORMED", "text frame on a binary link");
    });
    ws.addEventListener("close", (event: { code?: number; reason?: string }) => {
      this.remoteClose = { code: event.code ?? 1006, reason: String(event.reason ?? "") };
      this.finish(
        { reason: "remote-closed", detail: `${this.remoteClose.code} ${this.remoteClose.reason}` },
        false,
      );
    });
    ws.addEventListener("error", () => {
      // A close event follows every error event (WHATWG WebSockets §"fail the WebSocket connection").
    });
  }

  protected transmit(message: Uint8Array): void {
    if (this.#backlog) {
      this.#backlog.push(message.slice());
      return;
    }
    try {
      this.#ws.send(message);
    } catch (e) {
      throw new LoftError("LOFT_ERR_LINK_CLOSED", (e as Error).message);
    }
  }

  protected teardown(info: LinkCloseInfo): void {
    try {
      this.#ws.close(1000, info.reason.slice(0, 120));
    } catch {
      // already closing
    }
  }
}
