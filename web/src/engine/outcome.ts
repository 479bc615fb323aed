/**
 * What a step module asks of the link controller (docs/design.md, "The link controller"). Steps
 * (dialing, session, messages, relay-mailbox, first-contact, presence) do their own I/O — storage,
 * ratchet, sending on a session or to a relay — and RETURN what should follow: a presence to
 * show, a timer to set or clear, another step to run. They never call another step: the
 * controller applies outcomes in the order given, and is the one place that sets presence and
 * timers.
 */
import type { EngineError, LinkPath, Presence } from "./api.ts";
import type { TimerName } from "./timers.ts";

/** Why a dial is considered (chat.md §1): the glare delay applies to the first two only. */
export type DialReason = "presence" | "registered" | "changed" | "send" | "retry";

/** A step the controller runs next (now, or when a timer fires). */
export type FollowUp =
  /** Dial if the contact may and should be dialed now (dialing.ts `dialDecision`). */
  | { step: "maybe-dial"; why: DialReason }
  /** Dial at once, no checks but the dial's own; `upgrade`: direct while live on the relay. */
  | { step: "dial"; upgrade?: boolean }
  /** A dial failed or a session ended: the next dial after a backoff (dialing.ts `retryLater`). */
  | { step: "retry-later" }
  /** On the relay path: plan the next try of direct (dialing.ts `planUpgrade`). */
  | { step: "plan-upgrade" }
  /** The upgrade timer fired: on the relay path, try direct again (dialing.ts `upgradeDue`). */
  | { step: "upgrade-due" }
  /** The outbox may go to the mailbox after `delayMs` (relay-mailbox.ts `allowMailbox`). */
  | { step: "allow-mailbox"; delayMs: number }
  /** Send the outbox, live or into the mailbox (single-flight). */
  | { step: "flush" }
  /** Send the receipts waiting for mailbox messages. */
  | { step: "receipts" }
  /** Announce our mailbox on the live session (relay-mailbox.ts `announce`). */
  | { step: "announce" }
  /** Heartbeat tick of the live session. */
  | { step: "heartbeat" }
  /**
   * Signaling says the contact went offline while a live session is up — or (`reconnect`) our own
   * signaling connection came back, after a network change, say: PING now, and close the session
   * if nothing arrives within `presenceProbeMs` (chat.md §6).
   */
  | { step: "probe"; reconnect?: true }
  /**
   * The probe's time is up: nothing received since `since` (ms) closes the live session, unless
   * the window ended late (a stall of our own) and was not `spared` once already (session.ts
   * `probeVerdict`).
   */
  | { step: "probe-due"; since: number; reconnect?: true; spared?: true }
  /** Read our mailbox again from the body left on the relay (relay-mailbox.ts `rereadMailbox`). */
  | { step: "reread" };

export type Outcome =
  /** What the person sees (chat.md §7). */
  | {
      kind: "presence";
      status: Presence["status"];
      path?: LinkPath;
      error?: EngineError;
      directUnavailable?: boolean;
    }
  /**
   * Set (or replace) the named timer; `ifIdle`: only when it is not running already; `every`:
   * again every `ms` until cancelled.
   */
  | { kind: "schedule"; timer: TimerName; ms: number; next: FollowUp; ifIdle?: boolean; every?: boolean }
  | { kind: "cancel"; timer: TimerName }
  | { kind: "follow"; next: FollowUp };

export const follow = (next: FollowUp): Outcome => ({ kind: "follow", next });
export const schedule = (timer: TimerName, ms: number, next: FollowUp, ifIdle = false): Outcome => ({
  kind: "schedule",
  timer,
  ms,
  next,
  ...(ifIdle ? { ifIdle } : {}),
});
/** Run `next` every `ms` until the named timer is cancelled (the live session's heartbeat). */
export const repeat = (timer: TimerName, ms: number, next: FollowUp): Outcome => ({
  kind: "schedule",
  timer,
  ms,
  next,
  every: true,
});
export const cancel = (timer: TimerName): Outcome => ({ kind: "cancel", timer });
export const presence = (
  status: Presence["status"],
  path?: LinkPath,
  error?: EngineError,
  directUnavailable = false,
): Outcome => ({
  kind: "presence",
  status,
  ...(path ? { path } : {}),
  ...(error ? { error } : {}),
  ...(directUnavailable ? { directUnavailable } : {}),
});
