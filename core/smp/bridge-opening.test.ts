/**
 * connectSmpBridge (core/smp/bridge-link.ts) against a bridge that never answers the upgrade (a
 * fault stand-in: a TCP server that reads and says nothing): the opening times out, its socket —
 * still CONNECTING — is closed, and closing it raises nothing in Node (`ws` emits "error" when a
 * connecting socket is closed; vitest fails the run on an uncaught one). A socket left CONNECTING
 * holds up every other WebSocket to that host (RFC 6455 §4.1).
 */
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import type { WebSocketLike } from "../relay/ws-link.ts";
import { connectSmpBridge } from "./bridge-link.ts";
import type { SmpClientError } from "./client.ts";

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

describe("connectSmpBridge: an unanswered upgrade", () => {
  it("times out and closes its socket, with no uncaught error", async () => {
    let closed = 0;
    server = createServer((s) => {
      s.on("error", () => {});
      s.on("close", () => closed++);
      s.resume();
    });
    const srv = server;
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    const { port } = srv.address() as { port: number };
    const e = (await connectSmpBridge(
      `ws://127.0.0.1:${port}/smp-bridge`,
      `smp://${"A".repeat(43)}@127.0.0.1:5223`,
      {
        webSocket: (url) => new WebSocket(url, { perMessageDeflate: false }) as unknown as WebSocketLike,
        connectTimeoutMs: 200,
      },
    ).catch((x: unknown) => x)) as SmpClientError;
    expect(e.code).toBe("TIMEOUT");
    await expect.poll(() => closed).toBe(1);
  });
});
