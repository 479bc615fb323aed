/**
 * RelayClient.connect closes its link on every failed opening, a timeout included. A relay
 * socket left open (or still CONNECTING) after its opening timed out holds up every other
 * WebSocket of the page to the same host — RFC 6455 §4.1 lets a client have one connection in
 * CONNECTING per host, and one Loft host serves signaling and the relay on one host:port
 * (host/host.ts). The stand-ins are faults, not relays: a TCP server that never answers the
 * upgrade, and a WebSocket server that upgrades and then says nothing.
 */
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { type SilentTcp, silentTcp } from "../../test/support/silent-tcp.ts";
import { LoftError } from "../errors.ts";
import { memoryLinkPair } from "../link/memory-link.ts";
import { RelayClient, type RelayClientOptions } from "./client.ts";
import { type WebSocketLike, WebSocketLink } from "./ws-link.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The silent TCP server (test/support/silent-tcp.ts), closed after the test. */
async function silent(): Promise<SilentTcp> {
  const tcp = await silentTcp();
  cleanups.push(() => tcp.close());
  return tcp;
}

function clientSocket(url: string): WebSocket {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  // Closing a socket that is still connecting makes `ws` emit "error"; nothing new to say.
  ws.on("error", () => {});
  cleanups.push(() => ws.terminate());
  return ws;
}

/** The error a failed opening on `ws` rejects with. */
async function failedOpening(ws: WebSocket, options: RelayClientOptions): Promise<LoftError> {
  const link = new WebSocketLink(ws as unknown as WebSocketLike);
  return (await RelayClient.connect(link, options).catch((x: unknown) => x)) as LoftError;
}

/** A WebSocket server that upgrades and then says nothing: the close codes it saw, and its URL. */
async function silentRelay(): Promise<{ url: string; closes: number[]; connected: () => number }> {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const closes: number[] = [];
  let connected = 0;
  wss.on("connection", (s) => {
    connected++;
    s.on("close", (code) => closes.push(code));
  });
  cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  const { port } = wss.address() as { port: number };
  return { url: `ws://127.0.0.1:${port}/relay`, closes, connected: () => connected };
}

describe("RelayClient.connect: a failed opening leaves no socket behind", () => {
  it("an upgrade never answered: the opening times out and the socket, still CONNECTING, is closed", async () => {
    const tcp = await silent();
    const ws = clientSocket(tcp.url("/relay"));
    await expect.poll(tcp.accepted).toBe(1);
    expect(ws.readyState).toBe(WebSocket.CONNECTING);
    const e = await failedOpening(ws, { timeoutMs: 200 });
    expect(e.code).toBe("LOFT_ERR_TIMEOUT");
    expect([WebSocket.CLOSING, WebSocket.CLOSED]).toContain(ws.readyState);
    // The server sees the TCP connection go: nothing of it is left in the client.
    await expect.poll(tcp.closed).toBe(1);
  });

  it("a relay that upgrades and never sends its header: the opening times out and the socket is closed", async () => {
    const relay = await silentRelay();
    const e = await failedOpening(clientSocket(relay.url), { timeoutMs: 200 });
    expect(e.code).toBe("LOFT_ERR_TIMEOUT");
    await expect.poll(() => relay.closes).toEqual([1000]);
  });
});

describe("RelayClient.connect: openTimeoutMs bounds the upgrade, not the relay's answer", () => {
  it("an upgrade never answered fails at openTimeoutMs, far inside the opening's timeout, and its socket is closed", async () => {
    const tcp = await silent();
    const ws = clientSocket(tcp.url("/relay"));
    // Only the open bound can end this opening within the test: the other is ten minutes.
    const e = await failedOpening(ws, { timeoutMs: 600_000, openTimeoutMs: 200 });
    expect(e.code).toBe("LOFT_ERR_TIMEOUT");
    expect(e.message).toContain("relay socket not open after 200 ms");
    await expect.poll(tcp.closed).toBe(1);
  });

  it("a socket that opened is left to the opening's timeout: a relay silent after the upgrade is not cut by the open bound", async () => {
    const relay = await silentRelay();
    const ws = clientSocket(relay.url);
    await expect.poll(() => ws.readyState).toBe(WebSocket.OPEN);
    const e = await failedOpening(ws, { timeoutMs: 300, openTimeoutMs: 1 });
    expect(e.code).toBe("LOFT_ERR_TIMEOUT");
    expect(e.message).toContain("relay opening timed out");
    expect(relay.connected()).toBe(1);
  });
});

describe("RelayClient.connect: a link that fails with something other than an Error", () => {
  // A Link (core/link/link.ts) may throw or reject with anything; the client fails with
  // LOFT_ERR_LINK_CLOSED naming its type, instead of a TypeError from reading `.message` of it.
  const causes: [unknown, string][] = [
    [undefined, "undefined"],
    [null, "null"],
    [42, "number"],
    [{ reason: "PEER-OR-LINK-TEXT" }, "object"],
  ];
  for (const [cause, type] of causes) {
    it(`sending the version header throws ${String(cause)}: LOFT_ERR_LINK_CLOSED, the value not quoted`, async () => {
      const [link] = memoryLinkPair();
      link.send = () => {
        throw cause;
      };
      const e = await RelayClient.connect(link, { timeoutMs: 1_000 }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(LoftError);
      expect((e as LoftError).code).toBe("LOFT_ERR_LINK_CLOSED");
      expect((e as LoftError).detail).toBe(`the link failed with a value of type ${type}`);
    });

    it(`the relay's header is awaited and the link rejects with ${String(cause)}: LOFT_ERR_LINK_CLOSED`, async () => {
      const [link] = memoryLinkPair();
      link.receive = () => Promise.reject(cause);
      const e = await RelayClient.connect(link, { timeoutMs: 1_000 }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(LoftError);
      expect((e as LoftError).message).toBe(
        `LOFT_ERR_LINK_CLOSED: the link failed with a value of type ${type}`,
      );
    });
  }

  it("a link's own LOFT_ERR_LINK_CLOSED keeps its words, without a second code", async () => {
    const [link] = memoryLinkPair();
    link.receive = () => Promise.reject(new LoftError("LOFT_ERR_LINK_CLOSED", "the data channel closed"));
    const e = await RelayClient.connect(link, { timeoutMs: 1_000 }).catch((x: unknown) => x);
    expect((e as LoftError).message).toBe("LOFT_ERR_LINK_CLOSED: the data channel closed");
  });
});
