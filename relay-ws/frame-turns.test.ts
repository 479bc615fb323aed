/**
 * Frames per event-loop turn (frame-turns.ts), on a real server — either WebSocket layer
 * (host/websocket-server.ts: `ws`, and ours, which asks the budget as its gate) — and ws clients
 * on loopback: frames
 * that reach the server in one read chunk are handled in turns — batched (not one frame per turn)
 * for a few busy connections, one frame per connection per turn for as many busy connections as the
 * budget (a flood from many connections makes nobody wait longer than before), in order, none lost.
 */
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createUpgrader, type ServerSocket, type WsImpl } from "../host/websocket-server.ts";
import { boundFramesPerTurn, TurnBudget } from "./frame-turns.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

interface Seen {
  client: number;
  frame: number;
  turn: number;
}

/** `clients` clients each write `count` frames at once; what the server handled, turn by turn. */
async function turnsOf(
  clients: number,
  count: number,
  budget: number | undefined,
  impl: WsImpl = "ws",
): Promise<Seen[]> {
  const server = createServer();
  const upgrader = createUpgrader(impl, { maxPayload: 1 << 20, allowSynchronousEvents: false });
  let onConnection!: (ws: ServerSocket) => void;
  server.on("upgrade", (req, socket, head) => upgrader.handleUpgrade(req, socket, head, onConnection));
  cleanup.push(() => {
    server.closeAllConnections();
    server.close();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const shared = budget === undefined ? undefined : new TurnBudget(budget);
  const seen: Seen[] = [];
  let turn = 0;
  let marked = false;
  let connected = 0;
  let allConnected!: () => void;
  const everyone = new Promise<void>((resolve) => {
    allConnected = resolve;
  });
  const done = new Promise<void>((resolve) => {
    onConnection = (ws) => {
      if (++connected === clients) allConnected();
      if (shared) boundFramesPerTurn(ws, shared);
      ws.on("message", (data: Buffer) => {
        // A new turn begins where a setImmediate scheduled in the previous one has run.
        if (!marked) {
          marked = true;
          turn++;
          setImmediate(() => {
            marked = false;
          });
        }
        const b = data as Buffer;
        seen.push({ client: b.readUInt32BE(0), frame: b.readUInt32BE(4), turn });
        if (seen.length === clients * count) resolve();
      });
    };
  });
  const port = (server.address() as AddressInfo).port;
  const sockets = await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = new WebSocket(`ws://127.0.0.1:${port}`);
      cleanup.push(() => client.terminate());
      await new Promise<void>((resolve, reject) => {
        client.once("open", () => resolve());
        client.once("error", reject);
      });
      return client;
    }),
  );
  // The server has every connection before the frames come.
  await everyone;
  for (const [c, client] of sockets.entries()) {
    // One write per client: its frames reach the server in one read chunk.
    const socket = (client as unknown as { _socket: Socket })._socket;
    socket.cork();
    for (let i = 0; i < count; i++) {
      const b = Buffer.alloc(64);
      b.writeUInt32BE(c, 0);
      b.writeUInt32BE(i, 4);
      client.send(b);
    }
    socket.uncork();
  }
  await done;
  return seen;
}

/** Frames per (turn, client). */
const perTurn = (seen: Seen[], skipFirstTurns = 0) => {
  const n = new Map<string, number>();
  const first = Math.min(...seen.map((s) => s.turn)) + skipFirstTurns;
  for (const s of seen)
    if (s.turn >= first) n.set(`${s.turn}:${s.client}`, (n.get(`${s.turn}:${s.client}`) ?? 0) + 1);
  return [...n.values()];
};

const inOrder = (seen: Seen[], clients: number, count: number) => {
  for (let c = 0; c < clients; c++)
    expect(seen.filter((s) => s.client === c).map((s) => s.frame)).toEqual(
      Array.from({ length: count }, (_, i) => i),
    );
};

describe.each(["ws", "lean"] as const)("frames per event-loop turn (%s)", (impl) => {
  it("one busy connection: its chunk is handled in turns of at most the budget, in order", async () => {
    const seen = await turnsOf(1, 40, 8, impl);
    inOrder(seen, 1, 40);
    const sizes = perTurn(seen);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(8);
    // Batched: the 40 frames of one chunk took about 40 / 8 turns, not 40.
    expect(sizes.length).toBeLessThanOrEqual(10);
  });

  it("as many busy connections as the budget: one frame per connection per turn, as without batching", async () => {
    const seen = await turnsOf(8, 6, 8, impl);
    inOrder(seen, 8, 6);
    // The first turn may give the first connections more (no count of busy ones yet); after it,
    // every connection gets its one frame per turn.
    expect(Math.max(...perTurn(seen, 1))).toBe(1);
  });

  it("without it: ws's server option holds (one frame per turn), ours hands over a chunk at once", async () => {
    const seen = await turnsOf(1, 12, undefined, impl);
    expect(Math.max(...perTurn(seen))).toBe(impl === "ws" ? 1 : 12);
  });
});
