/**
 * The browser's end of the relay's SMP bridge (docs/protocol/smp.md, "The bridge"): open a
 * WebSocket to the relay's `/smp-bridge` path, ask for an `smp://` server in OPEN, wait for READY and the
 * server hello, and hand an `SmpClient` the blocks both ways. Written against the structural
 * WebSocket interface of core/relay/ws-link.ts, so the browser's WebSocket and Node's `ws` both fit.
 */
import type { WebSocketLike } from "../relay/ws-link.ts";
import { formatSmpServerAddress, parseSmpServerAddress, withoutPassword } from "./address.ts";
import { decodeBridgeFrame, describeBridgeError, encodeBridgeFrame } from "./bridge-frames.ts";
import { SmpClient, SmpClientError, type SmpClientOptions } from "./client.ts";

/** `WebSocket.CONNECTING` (WHATWG WebSockets; the `ws` package uses the same value). */
const CONNECTING = 0;

export interface BridgeConnectOptions extends SmpClientOptions {
  /** Makes the WebSocket (the browser: `(url) => new WebSocket(url)`). */
  webSocket: (url: string) => WebSocketLike;
  /** How long the bridge and the server get to be ready (default 30 s). */
  connectTimeoutMs?: number;
  /**
   * How long the WebSocket may stay connecting (its upgrade unanswered) before the opening fails
   * with TIMEOUT, within `connectTimeoutMs`; absent or 0: only `connectTimeoutMs`. A browser holds
   * every other WebSocket to the host while one is connecting (RFC 6455 §4.1), and the bridge is
   * on the relay's host:port (docs/decisions.md (Relay), "A relay socket's opening has its own
   * bound").
   */
  openTimeoutMs?: number;
}

export interface BridgedSmp {
  client: SmpClient;
  /** The TLS version the relay reached the server with. */
  tls: string;
}

/**
 * `bridgeUrl` is the relay's bridge endpoint (`wss://relay.example/smp-bridge`). A password in
 * `serverAddress` stays in the browser: OPEN names the server without it, and the client puts it
 * into NEW (SMP basic auth; docs/protocol/smp.md, "Addresses").
 */
export function connectSmpBridge(
  bridgeUrl: string,
  serverAddress: string,
  options: BridgeConnectOptions,
): Promise<BridgedSmp> {
  const address = parseSmpServerAddress(serverAddress);
  if (!address)
    return Promise.reject(
      new SmpClientError("BRIDGE", "not an smp:// server address", { bridgeError: "BAD_ADDRESS" }),
    );
  const open = formatSmpServerAddress(withoutPassword(address));
  const clientOptions: SmpClientOptions = {
    ...options,
    ...(address.password !== undefined ? { password: new TextEncoder().encode(address.password) } : {}),
  };
  const ws = options.webSocket(bridgeUrl);
  ws.binaryType = "arraybuffer";
  return new Promise((resolve, reject) => {
    let tls: string | undefined;
    let client: SmpClient | undefined;
    let settled = false;
    const sink = {
      send: (block: Uint8Array) => ws.send(encodeBridgeFrame({ kind: "BLOCK", block })),
      close: () => {
        try {
          ws.close(1000, "done");
        } catch {
          // already closing
        }
      },
    };
    const fail = (e: SmpClientError) => {
      clearTimeout(timer);
      clearTimeout(openTimer);
      if (client) client.fail(e);
      else if (!settled) {
        settled = true;
        reject(e);
        sink.close();
      }
    };
    const timer = setTimeout(
      () => fail(new SmpClientError("TIMEOUT", "the bridge did not connect in time")),
      options.connectTimeoutMs ?? 30_000,
    );
    const openMs = options.openTimeoutMs ?? 0;
    const openTimer =
      openMs > 0
        ? setTimeout(() => {
            if (ws.readyState === CONNECTING)
              fail(new SmpClientError("TIMEOUT", `the bridge's socket did not open in ${openMs} ms`));
          }, openMs)
        : undefined;
    ws.addEventListener("open", () => ws.send(encodeBridgeFrame({ kind: "OPEN", address: open })));
    ws.addEventListener("error", () => {
      // A close event follows every error event (WHATWG WebSockets §"fail the WebSocket
      // connection"), and `fail` is told there. Without a listener, Node's `ws` throws the error
      // it emits when a socket still connecting is closed — our own timeout's close among them.
    });
    ws.addEventListener("message", (event: { data: unknown }) => {
      const data = event.data instanceof ArrayBuffer ? new Uint8Array(event.data) : event.data;
      const frame = data instanceof Uint8Array ? decodeBridgeFrame(data) : undefined;
      if (!frame) return fail(new SmpClientError("MALFORMED", "the bridge sent a malformed frame"));
      if (frame.kind === "ERROR")
        return fail(
          new SmpClientError(
            "BRIDGE",
            `${describeBridgeError(frame.error)}${frame.detail ? `: ${frame.detail}` : ""}`,
            {
              bridgeError: frame.error,
            },
          ),
        );
      if (frame.kind === "READY" && tls === undefined && !client) {
        tls = frame.tls;
        return;
      }
      if (frame.kind !== "BLOCK" || tls === undefined)
        return fail(new SmpClientError("MALFORMED", `the bridge sent ${frame.kind} out of order`));
      if (client) return client.receive(frame.block);
      try {
        client = SmpClient.handshake(sink, frame.block, address.fingerprint, clientOptions);
      } catch (e) {
        return fail(e as SmpClientError);
      }
      clearTimeout(timer);
      clearTimeout(openTimer);
      settled = true;
      resolve({ client, tls });
    });
    ws.addEventListener("close", (event: { code?: number; reason?: string }) =>
      fail(new SmpClientError("CLOSED", `the bridge closed the connection (${event.code ?? 1006})`)),
    );
  });
}
