/**
 * Signaling registration and presence, the step (docs/protocol/chat.md §1 "Who dials, who
 * accepts"; docs/protocol/signaling.md "SUBSCRIBE", "Client behaviour"): the identity keys we
 * watch, the signaling client's state and errors as service status, contacts coming online or
 * going offline. Engine-wide: each function returns the outcomes per contact, which the links
 * (link/links.ts) hand to each contact's controller. Imports no other step.
 */
import { equalBytes, toHex } from "../../../core/bytes.ts";
import type { LoftError } from "../../../core/errors.ts";
import type { SignalingEvent } from "../../../core/signaling/client.ts";
import { type EngineContext, emit, type Peer, setService } from "./context.ts";
import { registerRefusalMessage, signalingLostMessage } from "./errors.ts";
import { cancel, type DialReason, follow, type Outcome, presence } from "./outcome.ts";

/** What the presence step reads and updates: the contacts watched, the service status, what signaling said so far. */
export type PresenceContext = Pick<
  EngineContext,
  | "cfg"
  | "stopped"
  | "peers"
  | "service"
  | "signaling"
  | "signalingUrl"
  | "everRegistered"
  | "registerBusy"
  | "listeners"
>;

/** Outcomes for some contacts. */
export type PeerOutcomes = { peer: Peer; outcomes: Outcome[] }[];

/** Also who may see us (SUBSCRIBE `only_watched`): accepted contacts, never open requests. */
export function watchKeys(ctx: PresenceContext): Uint8Array[] {
  return [...ctx.peers.values()].filter((p) => !p.rejected && !p.request && !p.device).map((p) => p.key);
}

export function onSignaling(ctx: PresenceContext, e: SignalingEvent): PeerOutcomes {
  if (ctx.stopped) return [];
  switch (e.type) {
    case "state":
      if (e.state === "registered") {
        // Registered again on a new connection: ours dropped — a network change may have killed
        // the live sessions' paths as well, silently. Each is probed now rather than left to the
        // heartbeat timeout (chat.md §6), so the contact is redialled within seconds.
        const again = ctx.everRegistered;
        ctx.everRegistered = true;
        ctx.registerBusy = 0;
        setService(ctx, { signaling: "connected" });
        return [...ctx.peers.values()].map((peer) => ({
          peer,
          outcomes: [
            follow({ step: "maybe-dial", why: "registered" }),
            ...(again && peer.live ? [follow({ step: "probe", reconnect: true })] : []),
          ],
        }));
      }
      if (e.state === "reconnecting" || e.state === "connecting") {
        if (ctx.service.signaling === "connected") setService(ctx, { signaling: "connecting" });
      }
      return [];
    case "presence":
      return onPresence(ctx, e.key, e.online);
    case "error":
      return onSignalingError(ctx, e.error);
    case "rejected":
      ctx.cfg.log(`dropped a signaling envelope (${e.reason}) from ${toHex(e.from).slice(0, 8)}`);
      return [];
    default:
      return [];
  }
}

/** Signaling is unusable (down, incompatible, or refusing us): say so once, use the mailbox. */
function signalingDown(ctx: PresenceContext, message: string): PeerOutcomes {
  const wasUp = ctx.service.signaling !== "unreachable";
  setService(ctx, { signaling: "unreachable" });
  const out = [...ctx.peers.values()]
    .filter((p) => !p.live)
    .map((peer) => ({
      peer,
      outcomes: [follow({ step: "allow-mailbox", delayMs: ctx.cfg.mailboxDelayMs })],
    }));
  if (wasUp)
    emit(ctx, {
      type: "error",
      error: { kind: "signaling-unreachable", url: ctx.signaling?.url ?? ctx.signalingUrl, message },
    });
  return out;
}

function onSignalingError(ctx: PresenceContext, error: LoftError): PeerOutcomes {
  ctx.cfg.log(`signaling: ${error.code}`);
  const lost = signalingLostMessage(error.code, ctx.everRegistered);
  if (lost) return signalingDown(ctx, lost);
  ctx.registerBusy = error.code === "LOFT_ERR_SIGNALING_BUSY" ? ctx.registerBusy + 1 : 0;
  const refusal = registerRefusalMessage(error.code, ctx.registerBusy);
  if (refusal) return signalingDown(ctx, refusal);
  if (error.code === "LOFT_ERR_SIGNALING_REPLACED") {
    emit(ctx, {
      type: "error",
      error: {
        kind: "internal",
        message: "This identity signed in from another tab or device; this one stopped connecting.",
      },
    });
  }
  return [];
}

/** Signaling says a watched contact is online or offline (`changed`: the answer to our resubscription). */
export function onPresence(
  ctx: PresenceContext,
  key: Uint8Array,
  online: boolean,
  why: Extract<DialReason, "presence" | "changed"> = "presence",
): PeerOutcomes {
  const peer = ctx.peers.get(toHex(key));
  if (!peer || !equalBytes(peer.key, key)) return [];
  const was = peer.online;
  peer.online = online;
  const outcomes: Outcome[] = [];
  if (online && !was) {
    peer.failures = 0;
    outcomes.push(follow({ step: "maybe-dial", why }));
  } else if (!online) {
    outcomes.push(cancel("retry"));
    // The contact left: its next dial comes when it is back, on whatever network it has then, not
    // as the redial after our lost path (dialing.ts `directPathLost`).
    if (!peer.live) peer.relayFirst = false;
    // A direct dial still connecting cannot finish once the page that would answer it is gone
    // (a reload, a closed tab): end it now, or it would win the glare rule against the offer of
    // the contact's next page and hold the chat until its open timeout (chat.md §1).
    const mine = peer.attempt;
    if (mine?.direction === "out" && mine.path === "direct" && mine.link.state === "connecting")
      mine.link.close("presence-offline", "signaling says the contact went offline");
    if (!peer.live && !peer.attempt) outcomes.push(presence("offline"));
    if (!peer.live) outcomes.push(follow({ step: "allow-mailbox", delayMs: 0 }));
    else if (was) outcomes.push(follow({ step: "probe" }));
  }
  return [{ peer, outcomes }];
}
