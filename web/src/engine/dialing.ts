/**
 * Dialing, the step (docs/protocol/chat.md §1, §6; docs/protocol/mailbox.md §6): whether and when
 * to dial a contact, backoff with full jitter after failures, the Noise handshake over a link,
 * when a direct attempt gives way to the relay, when to try direct again while on the relay,
 * incoming offers with glare resolution, and what a failed attempt means. The link controller
 * (link/controller.ts) holds the attempt and runs the dial; this module decides and returns
 * outcomes, and imports no other step.
 */
import { detailOf } from "../../../core/errors.ts";
import { type PreparedEphemerals, prepareEphemerals } from "../../../core/noise/index.ts";
import { proxyDataExtension, proxyFlagsExtension } from "../../../core/proxy/endpoint.ts";
import { establishSession, type Session } from "../../../core/session/index.ts";
import type { ContactRecord, EngineError, LinkPath } from "./api.ts";
import {
  type Attempt,
  cryptoOf,
  type EngineContext,
  emit,
  fullJitter,
  type Peer,
  providerOf,
  Refused,
} from "./context.ts";
import { closeDetailForLog, closeRule, describeFailure } from "./errors.ts";
import { mboxOrderExtension } from "./mailbox.ts";
import {
  forgetSuitesOnRefusal,
  learnSuites,
  offeredSuites,
  SUITE_OFFER_REFUSED,
  suitesExtension,
} from "./noise-suites.ts";
import { cancel, type DialReason, follow, type Outcome, presence, schedule } from "./outcome.ts";
import { refusalFor } from "./outgoing.ts";
import { bundlesExtension, ratchetVersionsExtension } from "./peer-ratchet.ts";
import { RATCHET_KEY_EXTENSION } from "./ratchet-store.ts";
import type { DialedLink, IncomingOffer } from "./transport.ts";

/** What dialing reads of the engine: timings, the transports and signaling, who we are, the listeners it tells. */
export type DialingContext = Pick<
  EngineContext,
  "cfg" | "stopped" | "signaling" | "direct" | "relayLive" | "selfId" | "user" | "listeners" | "storage"
>;

/** Whether to dial now, after the glare delay, or not at all. */
export function dialDecision(ctx: DialingContext, peer: Peer, why: DialReason): Outcome[] {
  if (ctx.stopped || !ctx.direct || ctx.signaling?.state !== "registered") return [];
  if (peer.live || peer.attempt || peer.manualOff || peer.blocked || !peer.online || peer.device) return [];
  // Glare avoidance: when a contact comes online both ends learn it at once; the lower key
  // dials first, the higher one only if nothing arrived meanwhile. A contact change counts too
  // (a request accepted, a contact unblocked, the answer to our resubscription): it makes us
  // visible to the contact at the moment it makes the contact dialable for us, so both ends
  // would dial together, and the loser's channel setup would be wasted (docs/protocol/chat.md §1).
  const together = why === "presence" || why === "registered" || why === "changed";
  const delay = together && ctx.selfId > peer.id ? ctx.cfg.glareDelayMs : 0;
  if (delay > 0) return [schedule("retry", delay, { step: "maybe-dial", why: "retry" })];
  return [cancel("retry"), follow({ step: "dial" })];
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

/** One more failure: the next dial after a full-jitter backoff, and not before `minMs`. */
export function retryLater(ctx: DialingContext, peer: Peer, minMs = 0): Outcome[] {
  if (ctx.stopped || peer.manualOff || !peer.online || peer.live) return [];
  peer.failures++;
  const max = peer.failures >= DIRECT_UNAVAILABLE_AFTER ? UNAVAILABLE_BACKOFF_MAX_MS : ctx.cfg.backoffMaxMs;
  let delay = fullJitter(ctx.cfg.backoffInitialMs, max, peer.failures);
  // Relay first after a lost path (`directPathLost`): both ends usually lose the path together and
  // would both dial the relay within the same backoff, one setup wasted on glare. The lower key
  // dials within half a glare delay; the higher one waits a glare delay more and by then is
  // answering the lower key's relay offer, so its retry dials nothing (chat.md §1, "Who dials,
  // who accepts"; docs/design.md, "Relay first after a lost path").
  if (peer.relayFirst && ctx.relayLive)
    delay = ctx.selfId < peer.id ? Math.min(delay, ctx.cfg.glareDelayMs / 2) : delay + ctx.cfg.glareDelayMs;
  // `minMs` last: a floor the caller needs (the dialer's relay offer that must come first,
  // `attemptFailed`) holds for the lower key too.
  return [schedule("retry", Math.max(minMs, delay), { step: "maybe-dial", why: "retry" })];
}

/** The presence while a new attempt runs: "connecting", unless retries run quietly (unavailable). */
export function attemptPresence(peer: Peer): Outcome[] {
  return !peer.live && !directUnavailable(peer) ? [presence("connecting")] : [];
}

/** A direct attempt may start (`upgrade`: we are live on the relay and try direct again). */
export function mayDialDirect(ctx: DialingContext, peer: Peer, upgrade: boolean): boolean {
  if (peer.blocked || !ctx.direct || peer.attempt || ctx.stopped) return false;
  return !peer.live || (upgrade && peer.live.path === "relay");
}

/**
 * A live session on `path` closed with `reason`, its link with `linkReason`: true when that was
 * the direct path dying — ICE failed (`closeRule(...).pathFailure`, the link's reason: the session
 * itself says only LOFT_ERR_LINK_CLOSED), or the channel stopped answering (`heartbeat-timeout`,
 * which is how a network change shows when no close event comes; chat.md §6). A direct redial
 * would then most likely wait out `relayFallbackMs` on the same dead path, so the next dial goes
 * through the relay at once and direct is tried again from there by the upgrade timer
 * (`planUpgrade`; docs/design.md, "Relay first after a lost path").
 */
export function directPathLost(path: LinkPath, reason: string, linkReason?: string): boolean {
  if (path !== "direct") return false;
  if (reason === "heartbeat-timeout" || closeRule(reason).pathFailure) return true;
  return linkReason !== undefined && closeRule(linkReason).pathFailure;
}

/** A live relay attempt may start. */
export function mayDialRelay(ctx: DialingContext, peer: Peer): boolean {
  return ctx.relayLive !== undefined && !peer.blocked && !peer.attempt && !peer.live && !ctx.stopped;
}

/**
 * Noise XXhfs over an open link, bound to the contact's identity key (chat.md §2), offering AES-GCM
 * unless the contact is known not to answer a suite offer (noise-suites.ts). An offer the contact
 * refuses throws `Refused(SUITE_OFFER_REFUSED)`, which `attemptFailed` turns into a plain dial.
 */
export async function handshake(
  ctx: DialingContext,
  peer: Peer,
  link: DialedLink,
  path: LinkPath,
  ratchetKey?: Uint8Array,
  prepared?: PreparedEphemerals,
): Promise<Session> {
  const role = ratchetKey ? "responder" : "initiator";
  const suites = offeredSuites(providerOf(ctx), peer, role);
  try {
    const session = await establishSession({
      link,
      role,
      kind: path,
      self: ctx.user,
      expectedIdentityKey: peer.key,
      // noise.suites (noise-suites.ts); proxy.data: the DATA size we accept, proxy.flags: we
      // read REQUEST's NO_BODY (proxy-link.ts); ratchet.v2: the ratchet message versions we read
      // (peer-ratchet.ts); chat.bundle: we read several chat messages under one ratchet message
      // (peer-ratchet.ts, docs/protocol/chat.md §5 "Bundles"); mbox.order: we read `n` in `mbox`
      // (mailbox.ts, docs/protocol/mailbox.md §1 "The order of announcements")
      extensions: {
        ...suitesExtension(),
        ...proxyDataExtension(),
        ...proxyFlagsExtension(),
        ...ratchetVersionsExtension(),
        ...bundlesExtension(),
        ...mboxOrderExtension(),
        ...(ratchetKey ? { [RATCHET_KEY_EXTENSION]: ratchetKey } : {}),
      },
      handshakeTimeoutMs: ctx.cfg.handshakeTimeoutMs,
      // session.detached: ratchet bodies beside the Noise frame, not inside it (peer-ratchet.ts)
      detachedFrames: true,
      ...suites,
      ...cryptoOf(ctx),
      ...(prepared ? { prepared } : {}),
    });
    if (learnSuites(peer, session)) storeSuiteMark(ctx, peer);
    return session;
  } catch (e) {
    if (forgetSuitesOnRefusal(peer, e, suites.suites !== undefined)) {
      storeSuiteMark(ctx, peer);
      ctx.cfg.log(`${peer.id.slice(0, 8)} refused the Noise suite offer: dialling again without one`);
      throw new Refused(SUITE_OFFER_REFUSED);
    }
    throw e;
  }
}

/**
 * Keep the suite mark with the contact (sealed), so the first dial after a reload offers AES-GCM
 * as well. Not awaited: the session must not wait for a storage write; a failed write only means
 * one more ChaChaPoly session after the next reload.
 */
function storeSuiteMark(ctx: DialingContext, peer: Peer): void {
  ctx.storage.setAnswersSuiteOffers(peer.id, peer.answersSuiteOffers === true).catch((e: unknown) => {
    ctx.cfg.log(`noise suites: the contact's mark was not stored: ${(e as Error).name}`);
  });
}

/**
 * The dialler's ephemeral X25519 and ML-KEM-768 key pairs, made while the link opens (ICE, DTLS,
 * SCTP take several times longer): they do not depend on the peer, and ML-KEM key generation is
 * the largest single part of the initiator's handshake in a browser (docs/decisions.md, "The
 * client's data path and handshake, measured"). After a macrotask, so that the dial's own first
 * steps go first. Undefined if making them failed (the handshake then makes its own). The caller
 * wipes what the handshake did not take (`wipeEphemerals`).
 */
export function prepareDialKeys(ctx: DialingContext): Promise<PreparedEphemerals | undefined> {
  return new Promise<void>((resolve) => setTimeout(resolve, 0))
    .then(() => prepareEphemerals(providerOf(ctx)))
    .catch(() => undefined);
}

/**
 * Wait for a link to open, at most `ms` (no limit when undefined). False when the time ran out
 * or the path itself failed (ICE, open timeout): a case for the relay. Other failures (refused,
 * glare, peer offline, a forged signal) are thrown as they are.
 */
export async function openedWithin(
  link: DialedLink,
  ms: number | undefined,
  /** Told why, when the result is false: the path's close reason, or "not open in time". */
  why?: (reason: string) => void,
): Promise<boolean> {
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
  if (r === "late") {
    if (link.state === "open") return true;
    why?.("not open in time");
    return false;
  }
  const info = link.state === "closed" ? await link.closed : undefined;
  if (info && closeRule(info.reason).pathFailure) {
    why?.(info.reason);
    return false;
  }
  throw r.e;
}

/**
 * On the relay path: when to try a direct channel again ("switches to direct when it can";
 * docs/protocol/mailbox.md §6). Both ends start this timer together — the relay session comes up
 * on both at once, and a failed upgrade ends on both at once (the receiving end counts it too, in
 * the link controller's `offer`) — so without a rule both dialled together every time and one of
 * the two offers was lost to glare. The glare rule of chat.md §1 applies: the higher key waits
 * `glareDelayMs` longer and, finding the lower key's attempt running, plans its next turn.
 */
export function planUpgrade(ctx: DialingContext, peer: Peer): Outcome[] {
  if (ctx.stopped || peer.live?.path !== "relay") return [cancel("upgrade")];
  const backoff = Math.min(
    ctx.cfg.directRetryMaxMs,
    ctx.cfg.directRetryMs * 2 ** Math.min(peer.upgradeFailures, 8),
  );
  const glare = ctx.selfId > peer.id ? ctx.cfg.glareDelayMs : 0;
  return [schedule("upgrade", backoff + glare, { step: "upgrade-due" })];
}

/** The upgrade timer fired. */
export function upgradeDue(peer: Peer): Outcome[] {
  if (peer.live?.path !== "relay") return [];
  if (peer.attempt || !peer.online || peer.blocked || peer.manualOff)
    return [follow({ step: "plan-upgrade" })];
  return [follow({ step: "dial", upgrade: true })];
}

/** What to do with an incoming offer, given our own attempt (glare, chat.md §1). */
export function offerDecision(
  ctx: DialingContext,
  peer: Peer | undefined,
  contact: ContactRecord | undefined,
  offer: IncomingOffer,
): { accept: false; refuse: "refused" | "glare" } | { accept: true; path: LinkPath; closeOurs?: string } {
  if (ctx.stopped || !contact || !peer || refusalFor(contact)) return { accept: false, refuse: "refused" };
  const path: LinkPath = offer.path ?? "direct";
  const mine = peer.attempt;
  if (mine?.direction === "out") {
    const fresh = Date.now() - mine.startedAt < ctx.cfg.staleDialMs;
    // A relay offer means the peer gave up on a direct channel: it wins over our direct attempt.
    const relayOverDirect = path === "relay" && mine.path === "direct";
    if (!relayOverDirect && ctx.selfId < peer.id && fresh && mine.link.state === "connecting")
      // Glare: both dialed; the lower identity key's attempt wins (docs/protocol/chat.md).
      return { accept: false, refuse: "glare" };
    return { accept: true, path, closeOurs: "glare-yield" };
  }
  return mine ? { accept: true, path, closeOurs: "superseded" } : { accept: true, path };
}

/**
 * An attempt failed (it is no longer the contact's attempt): close its link with the reason,
 * and say what the person sees and when to try again.
 */
export async function attemptFailed(
  ctx: DialingContext,
  peer: Peer,
  attempt: Attempt,
  e: unknown,
): Promise<Outcome[]> {
  let reason: string;
  let detail: string | undefined;
  if (e instanceof Refused) reason = e.reason;
  else if (e instanceof Error && "code" in e && typeof e.code === "string") {
    reason = e.code;
    // The words without the code (a LoftError's `message` is `code: detail`): the log line and
    // describeFailure's detail put the reason first themselves.
    detail = detailOf(e);
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
  // With the detail (never a payload): ERR_DATA_CHANNEL alone does not say whether the peer's page
  // went away ("User-Initiated Abort") or this end failed.
  const shown = closeDetailForLog(reason, detail);
  const more = shown && shown !== reason ? ` (${shown})` : "";
  ctx.cfg.log(`attempt ${attempt.direction} ${peer.id.slice(0, 8)} ended: ${reason}${more}`);
  // A peer from before suites refused our offer (noise-suites.ts): not a failure — the same dial
  // again at once, now without an offer (the mark is false, so this happens once per contact).
  // If no dial may start now (the contact went offline meanwhile), the usual retry, quietly.
  if (reason === SUITE_OFFER_REFUSED && !ctx.stopped) {
    const again = dialDecision(ctx, peer, "retry");
    if (again.length > 0) return again;
    return [...retryLater(ctx, peer), ...(!peer.live && !peer.attempt ? [presence("offline")] : [])];
  }
  if (ctx.stopped || closeRule(reason).quiet) return [];
  // The dialer gave up its own attempt before the channel opened (`bye` `cancelled`, chat.md §1):
  // what comes next is the dialer's first — above all its live link through the relay, whose
  // offer follows at once (mailbox.md §6). A dial back before it would cross it (a relay offer
  // answered with glare, a second WebRTC setup for nothing), so ours waits at least the glare
  // delay, and the relay offer cancels it. It stays a retry: if the dialer went quiet (its
  // retries backed off further than ours), this side still tries.
  const cancelledByDialer = attempt.direction === "in" && reason === "bye-cancelled";
  const out: Outcome[] = [];
  if (reason === "bye-refused" && !peer.refusedUs) {
    peer.refusedUs = true;
    out.push(follow({ step: "allow-mailbox", delayMs: 0 }));
  }
  const error = describeFailure(reason, peer.name, detail, peer.addressRef !== undefined);
  if (error.kind === "verification-failed") emit(ctx, { type: "error", contactId: peer.id, error });
  out.push(...retryLater(ctx, peer, cancelledByDialer ? ctx.cfg.glareDelayMs : 0));
  if (!peer.live && !peer.attempt) {
    // A verification failure stays what it is; plain failures past the threshold say the path is down.
    const unavailable = directUnavailable(peer) && error.kind !== "verification-failed";
    out.push(presence("offline", undefined, unavailable ? unavailableError(peer) : error, unavailable));
  }
  return out;
}

/**
 * Once `session` closed and its send chain settled (core/session `settled`), say how many frames
 * it dropped because its link closed under it (`dropped`): a drop is never silent
 * (docs/protocol/session.md §5) — chat, call signals and `file.*` go again on the next session,
 * files resume from the receiver's point, proxy requests ended with LOFT_ERR_LINK_CLOSED. `who`:
 * the other end, as the log names it. A contact's session (link/controller.ts) and a room
 * member's (rooms/mesh.ts).
 */
export function logDropsOf(session: Session, who: string, log: (line: string) => void): void {
  void session.closed
    .then(() => session.settled())
    .then(() => {
      if (session.dropped > 0)
        log(`session ${who}: ${session.dropped} frames dropped, its link had closed under it`);
    });
}
