/**
 * How many frames of one connection the relay handles per event-loop turn. ws either emits every
 * frame of a read chunk at once (`allowSynchronousEvents: true`: a client writing hundreds of
 * frames holds the loop while they are all handled) or defers each frame to its own turn (`false`:
 * fair, but every frame then pays a turn of its own — a `setImmediate`, a microtask drain and, for
 * its answer, a `writev` of its own; ~40 % of the relay's event loop was turn overhead, bench/README-relay.md).
 * Here a connection gets up to `max` frames per turn, then yields: other connections' frames wait
 * for at most `max` frames of each busy connection, and the answers to a connection's frames of
 * one turn leave in one `writev` (connection.ts corks per turn).
 *
 * Uses ws's Receiver flag `_allowSynchronousEvents`, which it reads per frame (ws 8.x
 * lib/receiver.js); if a ws version lacks it, every frame keeps its own turn (the server option).
 */
import type { WebSocket } from "ws";

/** Frames of one connection handled per event-loop turn (relay default). */
export const FRAMES_PER_TURN = 16;

interface ReceiverFlag {
  _allowSynchronousEvents?: boolean;
}

/** Let `ws` hand over up to `max` frames per turn (call before its first frame). */
export function boundFramesPerTurn(ws: WebSocket, max = FRAMES_PER_TURN): void {
  const receiver = (ws as unknown as { _receiver?: ReceiverFlag })._receiver;
  if (!receiver || typeof receiver._allowSynchronousEvents !== "boolean" || max <= 1) return;
  receiver._allowSynchronousEvents = true;
  let handled = 0;
  const nextTurn = () => {
    handled = 0;
    receiver._allowSynchronousEvents = true;
  };
  // Registered first, so it counts each frame before the connection handles it.
  ws.prependListener("message", () => {
    if (handled++ === 0) setImmediate(nextTurn);
    if (handled >= max) receiver._allowSynchronousEvents = false;
  });
}
