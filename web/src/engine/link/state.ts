/**
 * The link states of one contact, as a table (docs/design.md, "The link controller"), in the
 * manner of core/noise/handshake-state.ts: named states, and for each state the events that may
 * leave it and where they lead. The controller (controller.ts) holds the state; after every
 * change to the contact's attempt or live session it checks the move against this table and
 * logs any move the table does not allow (the engine tests fail on such a line).
 *
 *   idle ──dial──▶ dialing ──fallback──▶ relaying          (direct first, relay second; mailbox.md §6)
 *    │              │  │                    │
 *    │            offer up                  up
 *    ▼              ▼  ▼                    ▼
 *   answering ──up──▶ live ◀──up── upgrading ◀──dial── live (on the relay)
 *                      │ ▲
 *                   offer │ up / attempt-ended
 *                      ▼ │
 *                    renewing
 *
 * Any attempt that fails goes back (`attempt-ended`: to idle, or to live when a session is up);
 * a live session that closes goes to idle (`closed`), or keeps the attempt that runs beside it.
 */

export type LinkState =
  /** No attempt, no session. Dialed on presence, a send, a retry; or an offer comes in. */
  | "idle"
  /** Our direct attempt runs (WebRTC; open, Noise XXhfs, TOFU, HELLO). */
  | "dialing"
  /** The direct attempt gave way: our live link through the relay runs. */
  | "relaying"
  /** The contact's offer was accepted: their attempt runs. */
  | "answering"
  /** One live session (direct or relay), no attempt. */
  | "live"
  /** Live on the relay, and our direct attempt runs beside it. */
  | "upgrading"
  /** Live, and the contact's new attempt runs (it replaces the session when it comes up). */
  | "renewing"
  /** The engine stopped or the contact was deleted: nothing runs, nothing starts. */
  | "stopped";

export type LinkEvent =
  /** We start a direct attempt (`upgrade`: while live on the relay). */
  | "dial"
  /** The direct attempt ends for the relay (`relay-fallback`); the relay attempt may follow. */
  | "fallback"
  /** We accept the contact's offer (it replaces any attempt of ours). */
  | "offer"
  /** A verified session became the live one (replacing an older one). */
  | "up"
  /** The running attempt ended without a session. */
  | "attempt-ended"
  /** The live session closed, or was replaced while its successor is being verified. */
  | "closed"
  | "stop";

/** For each state, the events that may leave it and the states they may lead to. */
export const TRANSITIONS: Record<LinkState, Partial<Record<LinkEvent, readonly LinkState[]>>> = {
  idle: { dial: ["dialing"], fallback: ["relaying"], offer: ["answering"], stop: ["stopped"] },
  dialing: {
    fallback: ["relaying", "idle"],
    offer: ["answering"],
    up: ["live"],
    "attempt-ended": ["idle"],
    stop: ["stopped"],
  },
  relaying: { offer: ["answering"], up: ["live"], "attempt-ended": ["idle"], stop: ["stopped"] },
  answering: { offer: ["answering"], up: ["live"], "attempt-ended": ["idle"], stop: ["stopped"] },
  live: { dial: ["upgrading"], offer: ["renewing"], closed: ["idle"], stop: ["stopped"] },
  upgrading: {
    offer: ["renewing"],
    up: ["live"],
    "attempt-ended": ["live"],
    closed: ["dialing"],
    stop: ["stopped"],
  },
  renewing: {
    offer: ["renewing"],
    up: ["live"],
    "attempt-ended": ["live"],
    closed: ["answering"],
    stop: ["stopped"],
  },
  stopped: {},
};

/** The state the contact's attempt and live session amount to. */
export function linkStateOf(
  attempt: { direction: "out" | "in"; path: "direct" | "relay" } | undefined,
  live: object | undefined,
): LinkState {
  if (!attempt) return live ? "live" : "idle";
  if (attempt.direction === "in") return live ? "renewing" : "answering";
  if (live) return "upgrading";
  return attempt.path === "relay" ? "relaying" : "dialing";
}

/** Whether `event` may take `from` to `to` (staying put is always allowed). */
export function allowed(from: LinkState, event: LinkEvent, to: LinkState): boolean {
  return from === to || (TRANSITIONS[from][event]?.includes(to) ?? false);
}
