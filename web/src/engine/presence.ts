/**
 * Signaling registration and presence (docs/protocol/chat.md §1 "Who dials, who accepts";
 * docs/protocol/signaling.md "SUBSCRIBE", "Client behaviour"): the identity keys we watch, the
 * signaling client's state and errors as service status, contacts coming online or going offline.
 */
import { equalBytes, toHex } from "../../../core/bytes.ts";
import type { SignalingError, SignalingEvent } from "../../../core/signaling/client.ts";
import { type EngineContext, emit, setPresence, setService } from "./context.ts";
import { maybeDial } from "./dialing.ts";
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

/** BUSY refusals in a row before the user is told (the client retries each after 1–5 s). */
const BUSY_TOLD_AFTER = 3;

/**
 * Plain words for a server that refuses to register us (docs/protocol/signaling.md,
 * REGISTER_REQUEST): without a registration contacts see us offline, so this must not be silent.
 * Undefined for codes that are not a registration refusal. (The engine's other error wording is
 * in errors.ts.)
 */
function registerRefusalMessage(code: string, busyInARow = 0): string | undefined {
  switch (code) {
    case "WRONG_AUDIENCE":
      return "The signaling server refused to sign you in: it expects to be reached at another address. Check the server address in Settings → Servers.";
    case "BAD_CHALLENGE":
      return "The signaling server refused to sign you in: its sign-in check did not match this connection (a proxy in between may be changing it). Reconnecting…";
    case "STALE_TIMESTAMP":
      return "The signaling server refused to sign you in because this device's clock is off by more than two minutes. Check the date and time.";
    case "BUSY":
      return busyInARow >= BUSY_TOLD_AFTER
        ? "The signaling server is too busy to sign you in right now. Retrying…"
        : undefined;
    default:
      return undefined;
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

export function onSignalingError(ctx: EngineContext, error: SignalingError): void {
  ctx.cfg.log(`signaling: ${error.code}`);
  if (error.code === "UNREACHABLE" || error.code === "CLOSED" || error.code === "UNSUPPORTED_VERSION") {
    signalingDown(
      ctx,
      error.code === "UNSUPPORTED_VERSION"
        ? "The signaling server runs an incompatible version. Reload the app to update it, or pick another server in Settings → Servers."
        : ctx.everRegistered
          ? "Lost the connection to the signaling server. Reconnecting…"
          : "The signaling server can't be reached. Retrying…",
    );
    return;
  }
  ctx.registerBusy = error.code === "BUSY" ? ctx.registerBusy + 1 : 0;
  const refusal = registerRefusalMessage(error.code, ctx.registerBusy);
  if (refusal) signalingDown(ctx, refusal);
  else if (error.code === "REPLACED") {
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
