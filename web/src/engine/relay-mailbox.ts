/**
 * Relay mailboxes, the step (docs/protocol/mailbox.md §1–§4): when the outbox may go to the
 * contact's mailbox (`allowMailbox`), to which queue (`mailboxRoute`), the outbox flushed there
 * (`flushMailbox`, `depositMessage`), bodies read from our queues (`receiveMailbox`) and what a
 * relay connection's state means (`relayStateChanged`). Called by the link controller
 * (link/controller.ts, link/links.ts); returns outcomes, imports no other step. The queues
 * themselves are queues.ts; a first contact's first message is intro.ts.
 */

import { equalBytes } from "../../../core/bytes.ts";
import type { LoftError } from "../../../core/errors.ts";
import { encodeInitialMessage } from "../../../core/prekey/index.ts";
import { canSend } from "../../../core/ratchet/index.ts";
import type { RelayMessage } from "../../../core/relay/client.ts";
import type { OutboxEntry, StoredMessage } from "./api.ts";
import {
  type EngineContext,
  emit,
  type Peer,
  reachableLive,
  serial,
  setMessageState,
  setService,
} from "./context.ts";
import { relayUnreachable } from "./errors.ts";
import { readyIntro } from "./intro.ts";
import {
  decodeMailboxBody,
  introBody,
  isSmpMailbox,
  MAX_PART,
  mailboxBodySize,
  ratchetBodies,
  sameQueue,
} from "./mailbox.ts";
import { follow, type Outcome, schedule } from "./outcome.ts";
import { loadRatchet, seal } from "./peer-ratchet.ts";
import { finishDeposit, hasUnfinishedDeposit, movedOff, newDeposit, queueOf, sendDeposit } from "./queues.ts";
import type { RelayConnState } from "./transport.ts";

/**
 * The outbox may go to the mailbox from `delayMs` from now on (until a live session comes up);
 * a flush follows then.
 */
export function allowMailbox(ctx: EngineContext, peer: Peer, delayMs: number): Outcome[] {
  if (!ctx.pool || ctx.stopped || peer.live) return [];
  peer.mailboxAt = Math.min(peer.mailboxAt, Date.now() + delayMs);
  return [schedule("mailbox", Math.max(0, peer.mailboxAt - Date.now()), { step: "flush" })];
}

/**
 * Where the outbox goes when there is no live session, if anywhere now: the contact's mailbox
 * (`tx`, from their announcement), or — first contact — their contact-address queue (`intro`).
 */
export async function mailboxRoute(ctx: EngineContext, peer: Peer): Promise<"tx" | "intro" | undefined> {
  if (!ctx.pool || peer.blocked || peer.live || ctx.stopped) return undefined;
  if (Date.now() < peer.mailboxAt) return undefined;
  const { ratchet } = await serial(peer, () => loadRatchet(ctx, peer));
  const sendable = ratchet !== undefined && canSend(ratchet.state);
  if (peer.tx && sendable) return "tx";
  if (peer.intro && sendable) return "intro";
  // A first contact goes through the contact address only when no live session can come up:
  // the contact is offline, or their device refused us (we are not in their contacts yet).
  if (!ratchet && !peer.intro && peer.addressRef && (!reachableLive(ctx, peer) || peer.refusedUs))
    return "intro";
  return undefined;
}

/**
 * The outbox, in order, into the contact's mailbox while no live session is up. Stops at the
 * first message that cannot go now (no route, a failed deposit: a timer retries) or as soon as a
 * live session is up (the controller flushes again, live).
 */
export async function flushMailbox(ctx: EngineContext, peer: Peer): Promise<Outcome[]> {
  const out: Outcome[] = [];
  // A deposit cut short (a receipt's, a file's) goes on first: queues.ts `finishDeposit`, mailbox.md §2.
  // Only then is the route looked up here: a flush with nothing held reads no state before the outbox.
  if (hasUnfinishedDeposit(peer) && (await mailboxRoute(ctx, peer)) && !(await finishDeposit(ctx, peer, out)))
    return out;
  const tx = peer.tx;
  for (const entry of await ctx.storage.listOutbox(peer.id)) {
    if (peer.blocked) return out;
    // The contact replaced its mailbox while this pass ran (queues.ts `onAnnounce`): what went
    // into the old one without a receipt is `queued` again, ahead of what this pass has not sent
    // yet — a pass from the top sends it first, the outbox order kept (mailbox.md §1, "Moving
    // off a dead relay").
    if (peer.tx !== tx) return [...out, follow({ step: "flush" })];
    if (!(await mailboxRoute(ctx, peer))) return out;
    const m = await ctx.storage.getMessage(entry.messageId);
    if (m?.direction !== "out" || m.state === "delivered") {
      await ctx.storage.deleteOutbox(entry.messageId);
      continue;
    }
    if (m.state === "failed" || m.state === "relayed") continue;
    if (!(await depositMessage(ctx, peer, m, entry, out))) return out;
  }
  return out;
}

/** One outgoing message into the contact's mailbox: `relayed` once the relay stored it. */
async function depositMessage(
  ctx: EngineContext,
  peer: Peer,
  m: StoredMessage,
  entry: OutboxEntry,
  out: Outcome[],
): Promise<boolean> {
  let d = peer.deposit?.messageId === m.id ? peer.deposit : undefined;
  // Made for a mailbox the contact has since replaced (the address came while it was being made:
  // `onAnnounce` drops `peer.deposit`, not one made after): made anew for the new one. Kept, its
  // retry went into the old queue on every pass — on the dead relay the queue moved off, the
  // outbox stalled, new queue included, until a live session (mailbox.md §1, "Moving off a dead
  // relay"). What of it the relay took is finishDeposit's (tried once there). Not `movedOff`: that
  // asks whether the contact announced another queue; this, whether `d` is for the queue we would
  // deposit into now — also false when the contact's queue was dropped on an `AUTH` (no `tx`), and
  // a deposit kept for that queue would only be refused again.
  if (d?.route === "tx" && !(peer.tx && sameQueue(d.target, peer.tx))) d = undefined;
  if (!d) {
    if (!peer.tx && !(await readyIntro(ctx, peer, out))) return false;
    const route = peer.tx ? "tx" : "intro";
    const intro = peer.intro;
    const target = peer.tx
      ? { url: peer.tx.url, queue: peer.tx.queue }
      : intro
        ? { url: intro.url, queue: { senderId: intro.sid } }
        : undefined;
    if (!target) return false;
    await setMessageState(ctx, m, "sending");
    const sealed = await serial(peer, () => seal(ctx, peer, { t: "msg", id: m.id, at: m.at, text: m.text }));
    if (!sealed) {
      await setMessageState(ctx, m, "queued");
      return false;
    }
    let bodies: Uint8Array[];
    if (route === "tx" || !intro) bodies = ratchetBodies(sealed, mailboxBodySize(target.url));
    else {
      // Until the first reply, every message carries the initial header (docs/protocol/prekeys.md).
      const wrapped = encodeInitialMessage(intro.header, sealed);
      if (wrapped.length > MAX_PART) {
        await setMessageState(ctx, m, "queued");
        emit(ctx, {
          type: "error",
          contactId: peer.id,
          error: {
            kind: "message-refused",
            message: `This message is too long for a first contact; it waits until ${peer.name} has replied.`,
          },
        });
        return false;
      }
      bodies = [introBody(wrapped)];
    }
    d = newDeposit(m.id, route, target, bodies);
    peer.deposit = d;
  }
  if (!(await sendDeposit(ctx, peer, d, out))) {
    if (m.state === "sending") await setMessageState(ctx, m, "queued");
    return false;
  }
  if (peer.deposit === d) peer.deposit = undefined;
  await ctx.storage.putOutbox({ ...entry, attempts: entry.attempts + 1 });
  // Stored in a mailbox the contact replaced while it went (`onAnnounce` ran meanwhile, and
  // passed it by as `sending`): the contact may never read it there (mailbox.md §1, "Moving off a
  // dead relay"), so it goes again into the new one, as what was `relayed` there does.
  if (movedOff(peer, d)) {
    await setMessageState(ctx, m, "queued");
    return true;
  }
  await setMessageState(ctx, m, "relayed");
  return true;
}

/** What one body from our mailbox for this contact asks for (inside serial). */
export type MailboxBody =
  /** Acknowledge these relay message ids; `message`: a whole ratchet message to read first. */
  | { kind: "ack"; ids: Uint8Array[]; message?: Uint8Array }
  /**
   * Leave it on the relay: `piece`, a piece of an unfinished message (acknowledged with the last
   * one); `blocked`, an identity decision is pending; `elsewhere`, not our current queue for
   * this contact.
   */
  | { kind: "keep"; why: "piece" | "blocked" | "elsewhere" };

/** One body from our mailbox for this contact: reassembled from pieces, dropped or kept. */
export function receiveMailbox(ctx: EngineContext, peer: Peer, m: RelayMessage): MailboxBody {
  const rx = queueOf(peer, m.recipientId); // the current queue, or one moved off a dead relay
  if (!rx) return { kind: "keep", why: "elsewhere" };
  if (peer.rejected) return { kind: "ack", ids: [m.msgId] }; // blocked: dropped unread
  // An identity decision is pending: it stays on the relay.
  if (peer.blocked) return { kind: "keep", why: "blocked" };
  const item = decodeMailboxBody(m.body, mailboxBodySize(rx.url));
  if (!item.ok || item.value.type !== "ratchet") {
    ctx.cfg.log(`dropped a mailbox body: ${item.ok ? item.value.type : item.error.code}`);
    return { kind: "ack", ids: [m.msgId] };
  }
  const done = peer.pieces.add(m.msgId, item.value.part, item.value.last);
  if (isSmpMailbox(rx.url)) {
    // An SMP server delivers the next message only after the ACK of this one (SMP "Subscribe
    // to queue"; docs/protocol/smp.md, "Commands"): each piece is acknowledged as it comes and
    // kept here until the last (docs/protocol/mailbox.md §4).
    if (!done) return { kind: "ack", ids: [m.msgId] };
    return { kind: "ack", ids: [m.msgId], ...(done.message ? { message: done.message } : {}) };
  }
  if (!done) return { kind: "keep", why: "piece" };
  return { kind: "ack", ids: done.ids, ...(done.message ? { message: done.message } : {}) };
}

/**
 * A body of our mailbox for this contact was left on the relay unread (`why`; a failed read:
 * "failed"), `msgId` the first body of that queue not acknowledged (the first piece of its
 * message): hold the bodies after it, unread and unacknowledged, until the mailbox is read again
 * from it (`rereadMailbox`) — the relay redelivers unacknowledged bodies only on a new SUB
 * (docs/protocol/relay.md §Commands), so the later ones read now would be shown before it
 * (docs/protocol/mailbox.md §4, "In order"). Inside serial. While an identity decision is
 * pending, the decision re-reads it (link/controller.ts `changed`); otherwise a timer does.
 */
export function holdMailbox(
  ctx: Pick<EngineContext, "cfg">,
  peer: Peer,
  why: "blocked" | "failed",
  held: { msgId: Uint8Array; rid: Uint8Array },
): Outcome[] {
  if (!peer.rxHeld) {
    ctx.cfg.log(`mailbox of ${peer.id.slice(0, 8)} held (${why}): read again from there`);
    peer.rxHeld = { msgId: held.msgId.slice(), rid: held.rid.slice(), rereads: 0 };
  }
  if (why === "blocked") return [];
  return [schedule("reread", ctx.cfg.relayBackoffInitialMs, { step: "reread" }, true)];
}

/** SUBs sent for one held body before the hold gives up and reads on (it may have expired). */
const MAX_REREADS = 4;

/**
 * Whether a body from our mailbox waits for the held one (inside serial). The hold ends only when
 * the held body itself comes back: bodies pushed on the subscription before the relay took the
 * new SUB (still in flight, or queued behind the read that failed) come before it and would
 * otherwise be read first — the relay redelivers in queue order only after the SUB.
 */
export function waitsForHeld(peer: Peer, m: Pick<RelayMessage, "msgId" | "recipientId">): boolean {
  const held = peer.rxHeld;
  if (!held || !equalBytes(m.recipientId, held.rid)) return false;
  if (!equalBytes(m.msgId, held.msgId)) return true;
  peer.rxHeld = undefined;
  return false;
}

/**
 * Read our mailbox for this contact again from its first unacknowledged body: the pieces
 * collected so far are dropped, and a new SUB makes the relay (or SMP server) deliver every
 * unacknowledged body again, in queue order (docs/protocol/relay.md §Commands). Inside serial.
 * While the held body has not come back, another re-read follows with backoff; after
 * MAX_REREADS the hold is let go (the body expired or was taken elsewhere: reading on beats a
 * mailbox stalled for good).
 */
export function rereadMailbox(ctx: Pick<EngineContext, "cfg" | "pool">, peer: Peer): Outcome[] {
  const held = peer.rxHeld;
  if (held && held.rereads >= MAX_REREADS) {
    ctx.cfg.log(`mailbox of ${peer.id.slice(0, 8)}: the held body did not come back; reading on`);
    peer.rxHeld = undefined;
  } else if (held) held.rereads++;
  peer.pieces.reset();
  // Both queues while the contact may still write into the one we moved off (queues.ts `moveRx`).
  for (const rx of [peer.rxOld, peer.rx]) if (rx) ctx.pool?.subscribe(rx.url, rx.queue);
  if (!peer.rxHeld) return [];
  const wait = ctx.cfg.relayBackoffInitialMs * 2 ** peer.rxHeld.rereads;
  return [schedule("reread", wait, { step: "reread" }, true)];
}

/**
 * A relay connection changed state: the service status, and per contact what may go now.
 * `setupAddress`: our contact address should be (re)published (first-contact.ts).
 */
export function relayStateChanged(
  ctx: EngineContext,
  url: string,
  state: RelayConnState,
  error?: LoftError,
): { peers: { peer: Peer; outcomes: Outcome[]; resetPieces: boolean }[]; setupAddress: boolean } {
  const peers: { peer: Peer; outcomes: Outcome[]; resetPieces: boolean }[] = [];
  if (ctx.stopped) return { peers, setupAddress: false };
  if (state === "connected")
    for (const p of ctx.peers.values()) {
      // Unacknowledged pieces are redelivered from the first one on the new connection.
      const resetPieces = p.rx?.url === url;
      const outcomes: Outcome[] = [];
      if (p.tx?.url === url && !p.live) {
        outcomes.push(follow({ step: "flush" }));
        if (p.receipts.size > 0) outcomes.push(follow({ step: "receipts" }));
      }
      if (resetPieces || outcomes.length > 0) peers.push({ peer: p, outcomes, resetPieces });
    }
  // The service status is about our relays together (mailbox.md §1, "Several relays"): up while
  // any of them is, unreachable (said once) only when every one has failed.
  if (!ctx.relayUrls.includes(url)) return { peers, setupAddress: false };
  const others = ctx.relayUrls.filter((u) => u !== url);
  let setupAddress = false;
  if (state === "connected") {
    ctx.relayDown = false;
    setService(ctx, { relay: "connected" });
    // No contact address yet (its relay was down: another one takes it), or its bundle unpublished.
    setupAddress = !ctx.address || (ctx.address.url === url && ctx.prekeys?.bundleSpk === 0);
  } else if (others.some((u) => ctx.pool?.isUp(u))) {
    ctx.cfg.log(`relay ${url} ${state}; another of our relays is up`);
  } else if (state === "connecting" || !others.every((u) => ctx.pool?.isDown(u))) {
    if (ctx.service.relay !== "unreachable") setService(ctx, { relay: "connecting" });
  } else {
    setService(ctx, { relay: "unreachable" });
    if (!ctx.relayDown) {
      ctx.relayDown = true;
      emit(ctx, { type: "error", error: relayUnreachable(url, undefined, error?.code) });
    }
  }
  return { peers, setupAddress };
}
