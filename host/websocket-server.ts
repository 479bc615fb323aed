/**
 * The WebSocket server layer of relay-ws/ and signaling/ (docs/operations.md, "Idle connections"):
 * `--ws-impl lean` (the default) answers upgrades with our own RFC 6455 framing
 * (host/websocket.ts: ~2 KiB less per idle connection), `--ws-impl ws` with the `ws` package as
 * before. Both hand over a `ServerSocket`: the part of `ws`'s `WebSocket` the services use.
 * Clients (tests, CLI, device) keep `ws`.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { ConfigError, type OptionSpec } from "./config.ts";
import { acceptUpgrade, type FrameGate, LeanWebSocket } from "./websocket.ts";

export type WsImpl = "lean" | "ws";

const wsImpl = (raw: string): WsImpl => {
  if (raw !== "lean" && raw !== "ws") throw new ConfigError(`expected lean or ws, got "${raw}"`);
  return raw;
};

/** One flag for every WebSocket service of the process. */
export const wsImplOption = {
  wsImpl: {
    flag: "ws-impl",
    env: "LOFT_WS_IMPL",
    default: "lean" as WsImpl,
    parse: wsImpl,
    help: "WebSocket server layer: lean (our RFC 6455 framing, less memory per connection) or ws (the ws package)",
  } satisfies OptionSpec<WsImpl>,
};

// biome-ignore lint/suspicious/noExplicitAny: each event has its own arguments (as in ws's overloads)
type Listener = (this: any, ...args: any[]) => void;

/** What relay-ws/ and signaling/ use of an accepted WebSocket; `ws`'s and ours both have it. */
export interface ServerSocket {
  readonly readyState: number;
  readonly OPEN: number;
  readonly bufferedAmount: number;
  on(event: "message" | "close" | "error" | "ping" | "pong", fn: Listener): unknown;
  once(event: "message" | "close" | "error" | "ping" | "pong", fn: Listener): unknown;
  prependListener(event: "message" | "close" | "error" | "ping" | "pong", fn: Listener): unknown;
  removeListener(event: "message" | "close" | "error" | "ping" | "pong", fn: Listener): unknown;
  send(data: Uint8Array | string, options?: { binary?: boolean }, cb?: (err?: Error | null) => void): void;
  /**
   * The lean layer only (host/websocket.ts): one binary message from its pieces, written without
   * first copying them into one buffer. Undefined on `ws`'s sockets: send their concatenation.
   */
  sendParts?: (parts: readonly Uint8Array[], cb?: (err?: Error | null) => void) => void;
  ping(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  pause(): void;
  resume(): void;
}

export interface UpgradeOptions {
  /** Largest message accepted; over it the connection is closed with 1009 (RFC 6455 §7.4.1). */
  maxPayload: number;
  /**
   * `ws` only: hand over every message of a read at once (true), or one per event-loop turn
   * (false). The lean layer hands over at once unless a gate (`gateOf`) says wait.
   */
  allowSynchronousEvents?: boolean;
}

export interface Upgrader {
  readonly impl: WsImpl;
  /** Answer the upgrade; `cb` gets the WebSocket once the 101 is written (nothing if refused). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, cb: (ws: ServerSocket) => void): void;
  close(cb?: () => void): void;
}

export function createUpgrader(impl: WsImpl, options: UpgradeOptions): Upgrader {
  if (impl === "ws") {
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxPayload,
      perMessageDeflate: false,
      clientTracking: false,
      ...(options.allowSynchronousEvents === undefined
        ? {}
        : { allowSynchronousEvents: options.allowSynchronousEvents }),
    });
    return {
      impl,
      handleUpgrade: (req, socket, head, cb) => wss.handleUpgrade(req, socket, head, (ws) => cb(ws)),
      close: (cb) => wss.close(() => cb?.()),
    };
  }
  const lean = { maxPayload: options.maxPayload };
  return {
    impl,
    handleUpgrade(req, socket, head, cb) {
      const ws = acceptUpgrade(req, socket, head, lean);
      if (ws) cb(ws);
    },
    close: (cb) => cb?.(),
  };
}

/** The lean layer's socket, for what only it has (the frame gate); undefined for `ws`'s. */
export function leanSocket(ws: ServerSocket): { gate: FrameGate | undefined } | undefined {
  return ws instanceof LeanWebSocket ? ws : undefined;
}

/** The socket under a WebSocket (both layers keep it as `_socket`), to cork its writes. */
export function rawSocketOf(ws: ServerSocket): Duplex | undefined {
  return (ws as unknown as { _socket?: Duplex | null })._socket ?? undefined;
}
