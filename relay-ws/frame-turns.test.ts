/**
 * Frames per event-loop turn (frame-turns.ts), on a real ws server and client on loopback: a chunk
 * of frames from one client is handled in turns of at most `max` frames — batched (not one frame
 * per turn) and bounded (not the whole chunk in one turn), in order, none lost.
 */
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { boundFramesPerTurn } from "./frame-turns.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/** Frames the server got, with the turn each was handled in, for `count` frames sent in one write. */
async function turnsOf(
  count: number,
  bound: number | undefined,
): Promise<{ order: number[]; turns: number[] }> {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", allowSynchronousEvents: false });
  cleanup.push(() => wss.close());
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const order: number[] = [];
  const turns: number[] = [];
  let turn = 0;
  let marked = false;
  const done = new Promise<void>((resolve) => {
    wss.on("connection", (ws) => {
      if (bound !== undefined) boundFramesPerTurn(ws, bound);
      ws.on("message", (data) => {
        // A new turn begins where a setImmediate scheduled in the previous one has run.
        if (!marked) {
          marked = true;
          turn++;
          setImmediate(() => {
            marked = false;
          });
        }
        order.push((data as Buffer).readUInt32BE(0));
        turns.push(turn);
        if (order.length === count) resolve();
      });
    });
  });
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  cleanup.push(() => client.terminate());
  await new Promise<void>((resolve, reject) => {
    client.once("open", () => resolve());
    client.once("error", reject);
  });
  // One write: every frame reaches the server in the same read chunk.
  const socket = (client as unknown as { _socket: Socket })._socket;
  socket.cork();
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(64);
    b.writeUInt32BE(i);
    client.send(b);
  }
  socket.uncork();
  await done;
  return { order, turns };
}

const perTurn = (turns: number[]) => {
  const n = new Map<number, number>();
  for (const t of turns) n.set(t, (n.get(t) ?? 0) + 1);
  return [...n.values()];
};

describe("frames per event-loop turn", () => {
  it("hands a chunk over in turns of at most `max` frames, in order", async () => {
    const { order, turns } = await turnsOf(40, 8);
    expect(order).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const sizes = perTurn(turns);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(8);
    // Batched: the 40 frames of one chunk took about 40 / 8 turns, not 40.
    expect(sizes.length).toBeLessThanOrEqual(10);
  });

  it("without it, the server option holds: one frame per turn", async () => {
    const { turns } = await turnsOf(12, undefined);
    expect(Math.max(...perTurn(turns))).toBe(1);
  });
});
