/**
 * Moving our contacts' mailboxes off a dead relay (docs/protocol/mailbox.md §1, "Moving off a dead
 * relay"). When relay-health.ts says one of our relays is dead, each contact's receiving queue on
 * it gets a new queue on a live relay of ours (queues.ts `moveRx`; the old one stays subscribed,
 * read while it lives), and the contact is told the new address inside the ratchet with the usual
 * `mbox` message: over the live session if one is up (which also retires the old queue), else into
 * the contact's own mailbox, retried with backoff; and again at every start until the old queue
 * retires, since nothing says an announcement left in a mailbox was read. The old queue retires
 * once the contact writes into the new one (link/controller.ts `relayMessage`). A queue a live
 * relay lost (AUTH on SUB: `queueGone`) moves the same way, at once, and its old one retires at once.
 */
import { equalBytes, toHex } from "../../../core/bytes.ts";
import { type EngineContext, type Peer, relayBackoff } from "./context.ts";
import { announcementOf, readsOrder } from "./mailbox.ts";
import type { Outcome } from "./outcome.ts";
import { announce, moveRx, retireOldRx, sendByMailbox } from "./queues.ts";

/** Hands a contact's outcomes to its link controller (link/links.ts). */
export type ApplyOutcomes = (peer: Peer, outcomes: Outcome[]) => void;

/** Tries of one announcement through the contact's mailbox in one run (then: at the next start, or live). */
const MAX_ANNOUNCE_TRIES = 12;

/** `url`, one of our relays, is dead: every contact's queue on it moves to another of ours. */
export async function moveOffRelay(ctx: EngineContext, url: string, apply: ApplyOutcomes): Promise<void> {
  if (!ctx.relayUrls.includes(url) || ctx.relayUrls.length < 2 || ctx.stopped) return;
  for (const peer of [...ctx.peers.values()]) {
    if (peer.rx?.url !== url) continue;
    if (await moveRx(ctx, peer, url)) void announceMove(ctx, peer, apply);
  }
}

/**
 * A relay refused to SUB one of our contacts' queues with AUTH: the queue is gone (the relay lost
 * or deleted it), so it is as good as on a dead relay. A current queue moves (to another relay of
 * ours first, this one last) and the old one retires at once — there is nothing left to read; an
 * old queue already moved off just retires. Not a contact's queue: false (the rooms' perhaps).
 */
export async function queueGone(
  ctx: EngineContext,
  url: string,
  recipientId: Uint8Array,
  apply: ApplyOutcomes,
): Promise<boolean> {
  for (const peer of [...ctx.peers.values()]) {
    if (peer.rxOld && equalBytes(peer.rxOld.queue.recipientId, recipientId)) {
      await retireOldRx(ctx, peer);
      return true;
    }
    if (!peer.rx || !equalBytes(peer.rx.queue.recipientId, recipientId)) continue;
    ctx.cfg.log(`mailbox for ${peer.id.slice(0, 8)} is gone at ${url}: moving it`);
    if (await moveRx(ctx, peer, url, true)) {
      await retireOldRx(ctx, peer);
      void announceMove(ctx, peer, apply);
    }
    return true;
  }
  return false;
}

/** At start: announcements of moves whose old queue has not retired yet go again. */
export function resumeMoves(ctx: EngineContext, apply: ApplyOutcomes): void {
  for (const peer of ctx.peers.values()) if (peer.rxOld) void announceMove(ctx, peer, apply);
}

/** Tell the contact our new queue, inside the ratchet (`mbox`, mailbox.md §1 "Announcement"). */
export async function announceMove(
  ctx: EngineContext,
  peer: Peer,
  apply: ApplyOutcomes,
  tries = 0,
  rx = peer.rx,
): Promise<void> {
  // Stops once the queue moved again (that move announces itself) or the contact went.
  if (ctx.stopped || !rx || peer.rx !== rx || ctx.peers.get(peer.id) !== peer) return;
  // Nothing goes back to a contact request before the user accepts it (§5), nor to a blocked one.
  if (peer.request || peer.blocked || peer.rejected) return;
  if (peer.live) {
    // The session announces again (queues.ts `announce`), and the old queue retires on success.
    peer.live.announced = false;
    await announce(ctx, peer, peer.live);
    return;
  }
  // No way to the contact now: the next live session announces it (every session does).
  if (!peer.tx || !ctx.pool) return;
  const out: Outcome[] = [];
  const sent = await sendByMailbox(ctx, peer, { t: "mbox", ...announcementOf(rx, readsOrder(peer.tx)) }, out);
  apply(peer, out);
  if (sent) {
    ctx.cfg.log(
      `new mailbox ${toHex(rx.queue.senderId).slice(0, 8)} announced to ${peer.id.slice(0, 8)} through its mailbox`,
    );
    return;
  }
  if (!peer.tx || tries + 1 >= MAX_ANNOUNCE_TRIES) return;
  setTimeout(() => void announceMove(ctx, peer, apply, tries + 1, rx), relayBackoff(ctx, tries + 1));
}
