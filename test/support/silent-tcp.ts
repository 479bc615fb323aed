/**
 * A fault stand-in, not a server of ours: a TCP server on loopback that takes each connection,
 * reads what comes (and so sees the client's end) and never answers. A WebSocket upgrade sent to
 * it stays unanswered, its socket CONNECTING — the fault behind a page locked out of its own host
 * (RFC 6455 §4.1: one connection in CONNECTING per host; docs/decisions.md (Relay), "A relay
 * socket's opening has its own bound"). Counts the connections taken and those that closed.
 */
import { createServer, type Socket } from "node:net";

export interface SilentTcp {
  /** `ws://127.0.0.1:<port><path>`. */
  url(path: string): string;
  /** Connections taken so far. */
  accepted(): number;
  /** Of those, how many have closed (the client let go, or `close`). */
  closed(): number;
  /** Destroy every connection and stop listening. */
  close(): Promise<void>;
}

export async function silentTcp(): Promise<SilentTcp> {
  let accepted = 0;
  let closed = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => {
      closed++;
      sockets.delete(s);
    });
    s.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    accepted: () => accepted,
    closed: () => closed,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
