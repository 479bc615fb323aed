/**
 * How many frames of one connection the relay handles per event-loop turn. ws either emits every
 * frame of a read chunk at once (`allowSynchronousEvents: true`: a client writing hundreds of
 * frames holds the loop while they are all handled) or defers each frame to its own turn (`false`:
 * fair, but every frame then pays a turn of its own — a `setImmediate`, a microtask drain and, for
 * its answer, a `writev` of its own; ~40 % of the relay's event loop was turn overhead,
 * bench/README-relay.md).
 *
 * Here the connections share a budget of frames per turn: each gets `budget / connections active
 * in the turn` (at least one) before it yields. A few busy connections batch (their answers of one
 * turn leave in one `writev`: connection.ts corks per turn); with as many busy connections as the
 * budget or more, each gets one frame per turn, exactly as before — so a frame waits behind at most
 * max(budget, busy connections) others, never more than with one frame per connection per turn
 * (a flood from hundreds of connections does not make an innocent client wait longer).
 *
 * Uses ws's Receiver flag `_allowSynchronousEvents`, which it reads per frame (ws 8.x
 * lib/receiver.js); if a ws version lacks it, every frame keeps its own turn (the server option).
 * The lean layer (host/websocket.ts) asks the budget itself before each message (its `gate`).
 */
import type { LeanWebSocket } from "../host/websocket.ts";
import { leanSocket, type ServerSocket } from "../host/websocket-server.ts";

type WebSocket = ServerSocket;

/** Frames handled per event-loop turn, all connections together (relay default). */
const FRAMES_PER_TURN = 64;

interface ReceiverFlag {
  _allowSynchronousEvents?: boolean;
  /** The budget's turn this receiver last handled a frame in, and how many it handled then. */
  _loftTurn?: number;
  _loftHandled?: number;
}

/** One budget per relay service: the turn's counters, and the connections that yielded in it. */
export class TurnBudget {
  readonly #budget: number;
  /** Increments at every turn (where a setImmediate scheduled in the previous one has run). */
  turn = 0;
  /** Connections that handled a frame in this turn and in the previous one. */
  #active = 0;
  #lastActive = 0;
  #scheduled = false;
  #yielded: ReceiverFlag[] = [];
  /** Lean sockets that used their share in this turn: they go on in the next. */
  #waiting: LeanWebSocket[] = [];
  /**
   * One listener for every connection of this budget (`this` is the socket), its counters on the
   * socket's receiver: no closure per connection (idle connections are counted in bytes,
   * bench/README.md "bench:scale").
   */
  readonly listener: (this: WebSocket) => void;

  constructor(budget = FRAMES_PER_TURN) {
    this.#budget = Math.max(1, Math.floor(budget));
    const self = this;
    this.listener = function (this: WebSocket) {
      const receiver = (this as unknown as { _receiver: ReceiverFlag })._receiver;
      if (receiver._loftTurn !== self.turn) {
        receiver._loftTurn = self.turn;
        receiver._loftHandled = 0;
        self.enter();
      }
      receiver._loftHandled = (receiver._loftHandled ?? 0) + 1;
      if (receiver._loftHandled >= self.share) self.yieldTurn(receiver);
    };
  }

  /** The lean layer's gate (host/websocket.ts FrameGate): `ws` hands over a message now. */
  admit(ws: LeanWebSocket): boolean {
    if (ws.gateTurn !== this.turn) {
      ws.gateTurn = this.turn;
      ws.gateCount = 0;
      this.enter();
    }
    return ++ws.gateCount < this.share;
  }

  /**
   * The lean layer's gate: `ws` used its share. As a ws receiver that yields schedules its next
   * frame with setImmediate once the frame's listeners ran, so here: the waiting go on once the
   * turn has moved (the budget's own immediate, scheduled earlier, runs first).
   */
  defer(ws: LeanWebSocket): void {
    this.#waiting.push(ws);
    if (this.#waiting.length === 1)
      setImmediate(() => {
        const waiting = this.#waiting;
        this.#waiting = [];
        for (const w of waiting) w.proceed();
      });
  }

  /** A connection handles its first frame of this turn. */
  enter(): void {
    this.#active++;
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#lastActive = this.#active;
      this.#active = 0;
      this.turn++;
      for (const r of this.#yielded) r._allowSynchronousEvents = true;
      this.#yielded = [];
    });
  }

  /** Frames one connection may handle in this turn. */
  get share(): number {
    return Math.max(1, Math.floor(this.#budget / Math.max(1, this.#active, this.#lastActive)));
  }

  /** `receiver` used its share: its next frame waits for the next turn. */
  yieldTurn(receiver: ReceiverFlag): void {
    receiver._allowSynchronousEvents = false;
    this.#yielded.push(receiver);
  }
}

/** Let `ws` hand over up to its share of `budget` per turn (call before its first frame). */
export function boundFramesPerTurn(ws: WebSocket, budget: TurnBudget): void {
  const lean = leanSocket(ws);
  if (lean) {
    lean.gate = budget;
    return;
  }
  const receiver = (ws as unknown as { _receiver?: ReceiverFlag })._receiver;
  if (!receiver || typeof receiver._allowSynchronousEvents !== "boolean") return;
  receiver._allowSynchronousEvents = true;
  receiver._loftTurn = -1;
  receiver._loftHandled = 0;
  // Registered first, so it counts each frame before the connection handles it.
  ws.prependListener("message", budget.listener);
}
