/**
 * Live sessions (docs/protocol/chat.md §2 "The session", §3 "Session frames and HELLO", §6
 * "Heartbeats, dead links, reconnect"): TOFU on the identity a Noise handshake verified, the HELLO
 * exchange that keeps or re-bootstraps the ratchet, the contact's one live session with its
 * heartbeat and read loop, and what happens when it closes.
 */
import { equalBytes } from "../../../core/bytes.ts";
import { canSend, type RatchetKeyPair } from "../../../core/ratchet/index.ts";
import type { Session } from "../../../core/session/index.ts";
import type { LinkPath } from "./api.ts";
import {
  type Attempt,
  type EngineContext,
  emit,
  type Live,
  type Peer,
  Refused,
  reachableLive,
  serial,
  setPresence,
  timeout,
} from "./context.ts";
import { scheduleRetry, scheduleUpgrade } from "./dialing.ts";
import { closeRule, describeFailure } from "./errors.ts";
import { flush, receive, sendReceipts } from "./messages.ts";
import { refusalFor } from "./outgoing.ts";
import { loadRatchet, saveRatchet, sendApp } from "./peer-ratchet.ts";
import { bootstrapChatRatchet } from "./ratchet-store.ts";
import { allowMailbox, announce } from "./relay-mailbox.ts";
import { judgeIdentity, recordIdentityChange, recordIdentityUpdate } from "./tofu.ts";
import {
  CHAT_PROTOCOL_VERSION,
  decodeSessionFrame,
  encodeHello,
  encodePing,
  encodePong,
  type Hello,
  PING_BYTES,
} from "./wire.ts";

/** TOFU on the identity the handshake verified (SREMP §identity; docs/protocol/identity.md, "Trust on first use"). */
export async function checkIdentity(ctx: EngineContext, peer: Peer, session: Session): Promise<void> {
  const c = await ctx.storage.getContact(peer.id);
  const refusal = refusalFor(c);
  if (refusal || !c) throw new Refused(c?.pending ? "identity-change" : "contact-blocked");
  const offered = session.remoteIdentity;
  const now = Date.now();
  const judged = await judgeIdentity(ctx, c, offered, now);
  switch (judged.verdict) {
    case "unchanged":
      await ctx.storage.touchContact(peer.id, now);
      return;
    case "updated":
      await recordIdentityUpdate(ctx, peer.id, offered, judged.renamedFrom);
      await ctx.storage.touchContact(peer.id, now);
      peer.name = offered.verified.username;
      emit(ctx, { type: "contact-updated", contactId: peer.id });
      return;
    case "pending": {
      session.close("identity-change");
      const pending = await recordIdentityChange(ctx, peer.id, judged.change, offered, now);
      peer.blocked = true;
      setPresence(ctx, peer, "offline", undefined, refusalFor({ ...c, pending }));
      throw new Refused("identity-change");
    }
    default:
      throw new Refused("contact-blocked");
  }
}

/**
 * A verified session: TOFU, HELLO exchange and ratchet choice, then it becomes the contact's
 * live session (replacing an older one) until it closes.
 */
export async function runSession(
  ctx: EngineContext,
  peer: Peer,
  attempt: Attempt,
  session: Session,
  keyPair: RatchetKeyPair | undefined,
  path: LinkPath,
): Promise<void> {
  if (ctx.stopped) {
    session.close("stopped");
    throw new Refused("stopped");
  }
  await checkIdentity(ctx, peer, session);
  if (peer.attempt !== attempt) {
    session.close("superseded");
    throw new Refused("superseded");
  }
  // A newer session replaces the old one at once: the peer dialed because it considers it dead.
  const old = peer.live;
  if (old) {
    peer.live = undefined;
    old.session.close("replaced");
  }
  const theirs = await serial(peer, () => hello(ctx, peer, session, keyPair));
  if (peer.attempt !== attempt || session.state === "closed") {
    session.close("superseded");
    throw new Refused("superseded");
  }
  peer.attempt = undefined;
  const live: Live = {
    session,
    path,
    lastInbound: Date.now(),
    sent: new Set(),
    announced: false,
    heartbeat: setInterval(() => heartbeat(ctx, live), ctx.cfg.heartbeatIntervalMs),
  };
  peer.live = live;
  peer.failures = 0;
  peer.refusedUs = false;
  clearTimeout(peer.retryTimer);
  clearTimeout(peer.mailboxTimer);
  peer.mailboxAt = Number.POSITIVE_INFINITY;
  if (path === "relay") scheduleUpgrade(ctx, peer);
  else {
    clearTimeout(peer.upgradeTimer);
    peer.upgradeFailures = 0;
  }
  setPresence(ctx, peer, "online", path);
  ctx.cfg.log(`session ${session.role} ${peer.id.slice(0, 8)} open`);
  attempt.link.pathInfo?.().then(
    (p) => ctx.cfg.log(`path ${peer.id.slice(0, 8)}: ${p.local}/${p.remote} ${p.protocol}`),
    () => {},
  );
  void session.closed.then((info) => onSessionClosed(ctx, peer, live, info.reason, info.detail));
  void readLoop(ctx, peer, live);
  if (!theirs.canSend && peer.ratchet && canSend(peer.ratchet.state))
    await serial(peer, () => sendApp(ctx, peer, live, { t: "sync" })).catch(() => {});
  void flush(ctx, peer);
  void announce(ctx, peer, live);
  if (peer.receipts.size > 0) void sendReceipts(ctx, peer);
}

/** HELLO both ways; keep the stored ratchet if both ends hold the same one, else start anew. */
export async function hello(
  ctx: EngineContext,
  peer: Peer,
  session: Session,
  keyPair: RatchetKeyPair | undefined,
): Promise<Hello> {
  const { ratchet: stored, unreadable } = await loadRatchet(ctx, peer);
  session.send(
    encodeHello({
      version: CHAT_PROTOCOL_VERSION,
      ...(stored ? { ratchetId: stored.id } : {}),
      canSend: stored ? canSend(stored.state) : false,
    }),
  );
  let bytes: Uint8Array;
  try {
    bytes = await timeout(session.receive(), ctx.cfg.helloTimeoutMs, "hello-timeout");
  } catch (e) {
    session.close(e instanceof Refused ? e.reason : "LOFT_ERR_LINK_CLOSED");
    throw e;
  }
  const frame = decodeSessionFrame(bytes);
  if (!frame.ok || frame.value.type !== "hello" || frame.value.hello.version !== CHAT_PROTOCOL_VERSION) {
    const code = frame.ok ? "LOFT_ERR_UNSUPPORTED_VERSION" : frame.error.code;
    session.close(code);
    throw new Refused(code);
  }
  const theirs = frame.value.hello;
  if (stored && theirs.ratchetId && equalBytes(stored.id, theirs.ratchetId)) return theirs;
  // No shared ratchet: start one from this handshake (both ends decide the same way).
  const fresh = bootstrapChatRatchet(session, ctx.selfKey, keyPair);
  if (!fresh.ok) {
    session.close(fresh.error.code);
    throw new Refused(fresh.error.code);
  }
  await saveRatchet(ctx, peer, fresh.value);
  const peerHad = theirs.ratchetId !== undefined;
  if (stored || unreadable || peerHad) {
    // Visible, never silent (docs/protocol/chat.md, "Lost ratchet state").
    const who =
      !stored && peerHad
        ? "this device had lost the previous one"
        : stored && !peerHad
          ? `${peer.name}'s device had lost the previous one`
          : "the previous one no longer matched on both devices";
    ctx.cfg.log(`ratchet re-bootstrapped with ${peer.id.slice(0, 8)}`);
    emit(ctx, {
      type: "error",
      contactId: peer.id,
      error: {
        kind: "internal",
        message: `Started a new secure session with ${peer.name}: ${who}. Messages not yet delivered are sent again.`,
      },
    });
  }
  // Both ends now hold fresh states: only the Noise initiator's (Alice's) can send yet.
  return { ...theirs, canSend: session.role === "responder" };
}

export function heartbeat(ctx: EngineContext, live: Live): void {
  if (live.session.state === "closed") return;
  if (Date.now() - live.lastInbound > ctx.cfg.heartbeatTimeoutMs) {
    live.session.close("heartbeat-timeout", "no frame from the peer within the heartbeat timeout");
    return;
  }
  try {
    live.session.send(encodePing(crypto.getRandomValues(new Uint8Array(PING_BYTES))));
  } catch {
    // closed meanwhile
  }
}

export async function readLoop(ctx: EngineContext, peer: Peer, live: Live): Promise<void> {
  const { session } = live;
  for (;;) {
    let bytes: Uint8Array;
    try {
      bytes = await session.receive();
    } catch {
      return;
    }
    live.lastInbound = Date.now();
    const frame = decodeSessionFrame(bytes);
    if (!frame.ok) {
      session.close(frame.error.code, frame.error.message);
      return;
    }
    const f = frame.value;
    if (f.type === "ping") {
      try {
        session.send(encodePong(f.nonce));
      } catch {}
    } else if (f.type === "ratchet") {
      await serial(peer, () => receive(ctx, peer, live, f.message)).catch((e) => {
        ctx.cfg.log(`receive failed: ${(e as Error).message}`);
      });
    } else if (f.type === "hello") {
      session.close("LOFT_ERR_MALFORMED", "a second HELLO");
      return;
    }
  }
}

export function onSessionClosed(
  ctx: EngineContext,
  peer: Peer,
  live: Live,
  reason: string,
  detail?: string,
): void {
  clearInterval(live.heartbeat);
  if (peer.live !== live) return;
  peer.live = undefined;
  clearTimeout(peer.upgradeTimer);
  ctx.cfg.log(`session ${peer.id.slice(0, 8)} closed: ${reason}${detail ? ` (${detail})` : ""}`);
  if (ctx.stopped) return;
  // What this session did not get receipted goes to the mailbox if no new session comes up.
  allowMailbox(ctx, peer, reachableLive(ctx, peer) ? ctx.cfg.mailboxDelayMs : 0);
  const peerOnPurpose = reason === "remote-closed" && detail !== undefined && closeRule(detail).peerOnPurpose;
  if (closeRule(reason).quiet || peerOnPurpose) {
    if (!peer.attempt) setPresence(ctx, peer, "offline");
    return;
  }
  const error = describeFailure(reason === "remote-closed" ? "remote-closed" : reason, peer.name, detail);
  if (error.kind === "verification-failed") emit(ctx, { type: "error", contactId: peer.id, error });
  if (!peer.attempt) setPresence(ctx, peer, "offline", undefined, error);
  scheduleRetry(ctx, peer);
}
