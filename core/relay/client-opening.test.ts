/**
 * RelayClient.connect closes its link on every failed opening, a timeout included. A relay
 * socket left open (or still CONNECTING) after its opening timed out holds up every other
 * WebSocket of the page to the same host — RFC 6455 §4.1 lets a client have one connection in
 * CONNECTING per host, and one Loft host serves signaling and the relay on one host:port
 * (host/host.ts). The stand-ins are faults, not relays: a TCP server that never answers the
 * upgrade, and a WebSocket server that upgrades and then says nothing.
 */
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import type { LoftError } from "../errors.ts";
import { RelayClient } from "./client.ts";
import { type WebSocketLike, WebSocketLink } from "./ws-link.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A TCP server that takes connections and never answers: the upgrade stays unanswered. */
async function silentTcp(): Promise<{ url: string; sockets: Socket[]; closed: () => number }> {
  const sockets: Socket[] = [];
  let closed = 0;
  const server: Server = createServer((s) => {
    sockets.push(s);
    s.on("error", () => {});
    s.on("close", () => closed++);
    s.resume(); // read the request (and see the client's end), answer nothing
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as { port: number };
  return { url: `ws://127.0.0.1:${port}/relay`, sockets, closed: () => closed };
}

function clientSocket(url: string): WebSocket {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  // Closing a socket that is still connecting makes `ws` emit "error"; nothing new to say.
  ws.on("error", () => {});
  cleanups.push(() => ws.terminate());
  return ws;
}

describe("RelayClient.connect: a failed opening leaves no socket behind", () => {
  it("an upgrade never answered: the opening times out and the socket, still CONNECTING, is closed", async () => {
    const { url, sockets, closed } = await silentTcp();
    const ws = clientSocket(url);
    await expect.poll(() => sockets.length).toBe(1);
    expect(ws.readyState).toBe(WebSocket.CONNECTING);
    const e = (await RelayClient.connect(new WebSocketLink(ws as unknown as WebSocketLike), {
      timeoutMs: 200,
    }).catch((x: unknown) => x)) as LoftError;
    expect(e.code).toBe("LOFT_ERR_TIMEOUT");
    expect([WebSocket.CLOSING, WebSocket.CLOSED]).toContain(ws.readyState);
    // The server sees the TCP connection go: nothing of it is left in the client.
    await expect.poll(closed).toBe(1);
  });

  it("a relay that upgrades and never sends its header: the opening times out and the socket is closed", async () => {
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
    const closes: number[] = [];
    wss.on("connection", (s) => s.on("close", (code) => closes.push(code)));
    cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    const { port } = wss.address() as { port: number };
    const ws = clientSocket(`ws://127.0.0.1:${port}/relay`);
    const e = (await RelayClient.connect(new WebSocketLink(ws as unknown as WebSocketLike), {
      timeoutMs: 200,
    }).catch((x: unknown) => x)) as LoftError;
    expect(e.code).toBe("LOFT_ERR_TIMEOUT");
    await expect.poll(() => closes).toEqual([1000]);
  });
});
