/**
 * Dialing (docs/protocol/chat.md §1, §6; docs/protocol/mailbox.md §6): when to dial a contact,
 * backoff with full jitter after failures, direct attempts that fall back to a live relay link,
 * retrying direct while on the relay, incoming offers with glare resolution, failed attempts.
 */
import { toHex, wipe } from "../../../core/bytes.ts";
import { establishSession } from "../../../core/session/index.ts";
import type { EngineError, LinkPath } from "./api.ts";
import {
  type Attempt,
  type EngineContext,
  emit,
  type Peer,
  Refused,
  setPresence,
  timeout,
} from "./context.ts";
import { closeRule, describeFailure } from "./errors.ts";
import { refusalFor } from "./outgoing.ts";
import { freshRatchetKeyPair, RATCHET_KEY_EXTENSION } from "./ratchet-store.ts";
import { allowMailbox } from "./relay-mailbox.ts";
import { runSession } from "./session.ts";
import type { DialedLink, IncomingOffer } from "./transport.ts";

export function maybeDial(
  ctx: EngineContext,
  peer: Peer,
  why: "presence" | "registered" | "changed" | "send" | "retry",
): void {
  if (ctx.stopped || !ctx.direct || ctx.signaling?.state !== "registered") return;
  if (peer.live || peer.attempt || peer.manualOff || peer.blocked || !peer.online) return;
  // Glare avoidance: when a contact comes online both ends learn it at once; the lower key
  // dials first, the higher one only if nothing arrived meanwhile.
  const delay =
    (why === "presence" || why === "registered") && ctx.selfId > peer.id ? ctx.cfg.glareDelayMs : 0;
  clearTimeout(peer.retryTimer);
  if (delay > 0) {
    peer.retryTimer = setTimeout(() => maybeDial(ctx, peer, "retry"), delay);
    return;
  }
  void dial(ctx, peer);
}

/**
 * Failed direct attempts in a row, with the server still saying the contact is online, after
 * which the path counts as unavailable: a server that lies about presence (or a contact whose
 * network blocks every path) must not keep the chat flashing "connecting…" (issue #17).
 */
export const DIRECT_UNAVAILABLE_AFTER = 3;
/** Backoff ceiling once the direct path counts as unavailable. */
const UNAVAILABLE_BACKOFF_MAX_MS = 5 * 60_000;

/** True when the last attempts all failed although the contact is said to be online. */
export function directUnavailable(peer: Peer): boolean {
  return peer.online && !peer.live && peer.failures >= DIRECT_UNAVAILABLE_AFTER;
}

function unavailableError(peer: Peer): EngineError {
  return {
    kind: "peer-offline",
    message: `${peer.name} is shown online, but ${DIRECT_UNAVAILABLE_AFTER} connection attempts in a row failed: the direct path is unavailable. Messages wait on this device or go through the relay; trying again every few minutes.`,
  };
}

export function scheduleRetry(ctx: EngineContext, peer: Peer): void {
  if (ctx.stopped || peer.manualOff || !peer.online || peer.live) return;
  clearTimeout(peer.retryTimer);
  peer.failures++;
  const max = peer.failures >= DIRECT_UNAVAILABLE_AFTER ? UNAVAILABLE_BACKOFF_MAX_MS : ctx.cfg.backoffMaxMs;
  const ceiling = Math.min(max, ctx.cfg.backoffInitialMs * 2 ** Math.min(peer.failures, 16));
  const delay = Math.floor(Math.random() * ceiling) + 200;
  peer.retryTimer = setTimeout(() => maybeDial(ctx, peer, "retry"), delay);
}

/**
 * Dial a direct channel. If it has not opened after `relayFallbackMs` (or the path failed), the
 * chat goes live through the relay instead. `upgrade`: we are on the relay and try direct again
 * (no fallback; a failure leaves the relay session alone).
 */
export async function dial(ctx: EngineContext, peer: Peer, upgrade = false): Promise<void> {
  if (peer.blocked || !ctx.direct || peer.attempt || ctx.stopped) return;
  if (peer.live && !(upgrade && peer.live.path === "relay")) return;
  const link = ctx.direct.dial(peer.key);
  const attempt: Attempt = { link, direction: "out", path: "direct", startedAt: Date.now() };
  peer.attempt = attempt;
  // Once the path counts as unavailable, retries run quietly under that label.
  if (!peer.live && !directUnavailable(peer)) setPresence(ctx, peer, "connecting");
  ctx.cfg.log(`dial ${peer.id.slice(0, 8)}${upgrade ? " (direct, while on the relay)" : ""}`);
  try {
    const fallback = !upgrade && ctx.relayLive !== undefined;
    const opened = await openedWithin(link, fallback ? ctx.cfg.relayFallbackMs : undefined);
    if (!opened) {
      if (peer.attempt !== attempt) {
        if (link.state !== "closed") link.close("superseded");
        return;
      }
      ctx.cfg.log(`no direct channel to ${peer.id.slice(0, 8)}: going through the relay`);
      link.close("relay-fallback");
      peer.attempt = undefined;
      await dialRelay(ctx, peer);
      return;
    }
    const session = await establishSession({
      link,
      role: "initiator",
      kind: "direct",
      self: ctx.user,
      expectedIdentityKey: peer.key,
      handshakeTimeoutMs: ctx.cfg.handshakeTimeoutMs,
    });
    await runSession(ctx, peer, attempt, session, undefined, "direct");
  } catch (e) {
    await attemptFailed(ctx, peer, attempt, e);
    if (upgrade) {
      peer.upgradeFailures++;
      scheduleUpgrade(ctx, peer);
    }
  }
}

/**
 * Wait for a link to open, at most `ms` (no limit when undefined). False when the time ran out
 * or the path itself failed (ICE, open timeout): a case for the relay. Other failures (refused,
 * glare, peer offline, a forged signal) are thrown as they are.
 */
export async function openedWithin(link: DialedLink, ms: number | undefined): Promise<boolean> {
  if (ms === undefined) {
    await link.opened;
    return true;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const r = await Promise.race([
    link.opened.then(
      () => "open" as const,
      (e: unknown) => ({ e }),
    ),
    new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), ms);
    }),
  ]);
  clearTimeout(timer);
  if (r === "open") return true;
  if (r === "late") return link.state === "open";
  const info = link.state === "closed" ? await link.closed : undefined;
  if (info && closeRule(info.reason).pathFailure) return false;
  throw r.e;
}

/** A live link through the relay (RelayLink over a queue pair), Noise with link kind "relay". */
export async function dialRelay(ctx: EngineContext, peer: Peer): Promise<void> {
  const relay = ctx.relayLive;
  if (!relay || peer.blocked || peer.attempt || peer.live || ctx.stopped) return;
  const link = relay.dial(peer.key);
  const attempt: Attempt = { link, direction: "out", path: "relay", startedAt: Date.now() };
  peer.attempt = attempt;
  if (!directUnavailable(peer)) setPresence(ctx, peer, "connecting");
  ctx.cfg.log(`dial ${peer.id.slice(0, 8)} through the relay`);
  try {
    await timeout(link.opened, ctx.cfg.openTimeoutMs, "open-timeout");
    const session = await establishSession({
      link,
      role: "initiator",
      kind: "relay",
      self: ctx.user,
      expectedIdentityKey: peer.key,
      handshakeTimeoutMs: ctx.cfg.handshakeTimeoutMs,
    });
    await runSession(ctx, peer, attempt, session, undefined, "relay");
  } catch (e) {
    await attemptFailed(ctx, peer, attempt, e);
  }
}

/** On the relay path: try a direct channel again later ("switches to direct when it can"). */
export function scheduleUpgrade(ctx: EngineContext, peer: Peer): void {
  clearTimeout(peer.upgradeTimer);
  if (ctx.stopped || peer.live?.path !== "relay") return;
  peer.upgradeTimer = setTimeout(
    () => {
      if (peer.live?.path !== "relay") return;
      if (peer.attempt || !peer.online || peer.blocked || peer.manualOff) scheduleUpgrade(ctx, peer);
      else void dial(ctx, peer, true);
    },
    Math.min(ctx.cfg.directRetryMaxMs, ctx.cfg.directRetryMs * 2 ** Math.min(peer.upgradeFailures, 8)),
  );
}

export async function onOffer(ctx: EngineContext, offer: IncomingOffer): Promise<void> {
  const id = toHex(offer.from);
  const c = await ctx.storage.getContact(id);
  const peer = ctx.peers.get(id);
  if (ctx.stopped || !c || !peer || refusalFor(c)) {
    ctx.cfg.log(`refused an offer from ${id.slice(0, 8)}`);
    offer.refuse("refused");
    return;
  }
  const path: LinkPath = offer.path ?? "direct";
  const mine = peer.attempt;
  if (mine?.direction === "out") {
    const fresh = Date.now() - mine.startedAt < ctx.cfg.staleDialMs;
    // A relay offer means the peer gave up on a direct channel: it wins over our direct attempt.
    const relayOverDirect = path === "relay" && mine.path === "direct";
    if (!relayOverDirect && ctx.selfId < id && fresh && mine.link.state === "connecting") {
      // Glare: both dialed; the lower identity key's attempt wins (docs/protocol/chat.md).
      offer.refuse("glare");
      return;
    }
    mine.link.close("glare-yield");
  } else if (mine) {
    mine.link.close("superseded");
  }
  peer.manualOff = false;
  clearTimeout(peer.retryTimer);
  const link = offer.accept();
  const attempt: Attempt = { link, direction: "in", path, startedAt: Date.now() };
  peer.attempt = attempt;
  if (!peer.live && !directUnavailable(peer)) setPresence(ctx, peer, "connecting");
  const keyPair = freshRatchetKeyPair();
  try {
    await link.opened;
    const session = await establishSession({
      link,
      role: "responder",
      kind: path,
      self: ctx.user,
      expectedIdentityKey: peer.key,
      extensions: { [RATCHET_KEY_EXTENSION]: keyPair.publicKey },
      handshakeTimeoutMs: ctx.cfg.handshakeTimeoutMs,
    });
    await runSession(ctx, peer, attempt, session, keyPair, path);
  } catch (e) {
    await attemptFailed(ctx, peer, attempt, e);
    if (peer.live?.path === "relay") scheduleUpgrade(ctx, peer);
  } finally {
    wipe(keyPair.secretKey);
  }
}

export async function attemptFailed(
  ctx: EngineContext,
  peer: Peer,
  attempt: Attempt,
  e: unknown,
): Promise<void> {
  if (peer.attempt === attempt) peer.attempt = undefined;
  let reason: string;
  let detail: string | undefined;
  if (e instanceof Refused) reason = e.reason;
  else if (e instanceof Error && "code" in e && typeof e.code === "string") {
    reason = e.code;
    detail = e.message;
  } else {
    const info = attempt.link.state === "closed" ? await attempt.link.closed : undefined;
    reason = info?.reason ?? "internal";
    detail = info?.detail ?? (e as Error)?.message;
  }
  // A handshake that failed because the link went away reports the link's reason instead.
  if (reason === "LOFT_ERR_LINK_CLOSED" && attempt.link.state === "closed") {
    const info = await attempt.link.closed;
    if (info.reason !== "LOFT_ERR_LINK_CLOSED") {
      reason = info.reason;
      detail = info.detail;
    }
  }
  if (attempt.link.state !== "closed") attempt.link.close(reason, detail);
  ctx.cfg.log(`attempt ${attempt.direction} ${peer.id.slice(0, 8)} ended: ${reason}`);
  if (ctx.stopped || closeRule(reason).quiet) return;
  if (reason === "bye-refused" && !peer.refusedUs) {
    peer.refusedUs = true;
    allowMailbox(ctx, peer, 0);
  }
  const error = describeFailure(reason, peer.name, detail, peer.addressRef !== undefined);
  if (error.kind === "verification-failed") emit(ctx, { type: "error", contactId: peer.id, error });
  scheduleRetry(ctx, peer);
  if (!peer.live && !peer.attempt) {
    // A verification failure stays what it is; plain failures past the threshold say the path is down.
    const unavailable = directUnavailable(peer) && error.kind !== "verification-failed";
    setPresence(ctx, peer, "offline", undefined, unavailable ? unavailableError(peer) : error, unavailable);
  }
}
