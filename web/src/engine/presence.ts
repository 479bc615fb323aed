/**
 * Signaling registration and presence (docs/protocol/chat.md §1 "Who dials, who accepts";
 * docs/protocol/signaling.md "SUBSCRIBE", "Client behaviour"): the identity keys we watch, the
 * signaling client's state and errors as service status, contacts coming online or going offline.
 */
import { equalBytes, toHex } from "../../../core/bytes.ts";
import type { LoftError } from "../../../core/errors.ts";
import type { SignalingEvent } from "../../../core/signaling/client.ts";
import { type EngineContext, emit, setPresence, setService } from "./context.ts";
import { maybeDial } from "./dialing.ts";
import { registerRefusalMessage, signalingLostMessage } from "./errors.ts";
import { allowMailbox } from "./relay-mailbox.ts";

/** Also who may see us (SUBSCRIBE `only_watched`): accepted contacts, never open requests. */
export function watchKeys(ctx: EngineContext): Uint8Array[] {
  return [...ctx.peers.values()].filter((p) => !p.rejected && !p.request).map((p) => p.key);
}

export function resubscribe(ctx: EngineContext): void {
  const s = ctx.signaling;
  if (!s) return;
  s.subscribe(watchKeys(ctx)).then(
    (states) => {
      // An answer to our own (re)subscription after a contact changed: no glare delay needed.
      for (const st of states) onPresence(ctx, st.key, st.online, "changed");
    },
    () => {}, // re-sent by the client after its next (re)connect
  );
}

export function onSignaling(ctx: EngineContext, e: SignalingEvent): void {
  if (ctx.stopped) return;
  switch (e.type) {
    case "state":
      if (e.state === "registered") {
        ctx.everRegistered = true;
        ctx.registerBusy = 0;
        setService(ctx, { signaling: "connected" });
        for (const p of ctx.peers.values()) maybeDial(ctx, p, "registered");
      } else if (e.state === "reconnecting" || e.state === "connecting") {
        if (ctx.service.signaling === "connected") setService(ctx, { signaling: "connecting" });
      }
      return;
    case "presence":
      onPresence(ctx, e.key, e.online);
      return;
    case "error":
      onSignalingError(ctx, e.error);
      return;
    case "rejected":
      ctx.cfg.log(`dropped a signaling envelope (${e.reason}) from ${toHex(e.from).slice(0, 8)}`);
      return;
    default:
      return;
  }
}

/** Signaling is unusable (down, incompatible, or refusing us): say so once, use the mailbox. */
function signalingDown(ctx: EngineContext, message: string): void {
  const wasUp = ctx.service.signaling !== "unreachable";
  setService(ctx, { signaling: "unreachable" });
  for (const p of ctx.peers.values()) if (!p.live) allowMailbox(ctx, p, ctx.cfg.mailboxDelayMs);
  if (wasUp)
    emit(ctx, { type: "error", error: { kind: "signaling-unreachable", url: ctx.signalingUrl, message } });
}

export function onSignalingError(ctx: EngineContext, error: LoftError): void {
  ctx.cfg.log(`signaling: ${error.code}`);
  const lost = signalingLostMessage(error.code, ctx.everRegistered);
  if (lost) {
    signalingDown(ctx, lost);
    return;
  }
  ctx.registerBusy = error.code === "LOFT_ERR_SIGNALING_BUSY" ? ctx.registerBusy + 1 : 0;
  const refusal = registerRefusalMessage(error.code, ctx.registerBusy);
  if (refusal) signalingDown(ctx, refusal);
  else if (error.code === "LOFT_ERR_SIGNALING_REPLACED") {
    emit(ctx, {
      type: "error",
      error: {
        kind: "internal",
        message: "This identity signed in from another tab or device; this one stopped connecting.",
      },
    });
  }
}

export function onPresence(
  ctx: EngineContext,
  key: Uint8Array,
  online: boolean,
  why: "presence" | "changed" = "presence",
): void {
  const peer = ctx.peers.get(toHex(key));
  if (!peer || !equalBytes(peer.key, key)) return;
  const was = peer.online;
  peer.online = online;
  if (online && !was) {
    peer.failures = 0;
    maybeDial(ctx, peer, why);
  } else if (!online) {
    clearTimeout(peer.retryTimer);
    if (!peer.live && !peer.attempt) setPresence(ctx, peer, "offline");
    if (!peer.live) allowMailbox(ctx, peer, 0);
  }
}
