/**
 * Application messages (docs/protocol/chat.md §5 "Application messages"; docs/protocol/mailbox.md
 * §3, §4): the outbox flushed in order over the live session or into the mailbox, message states,
 * incoming messages (stored before their event, de-duplicated) and delivery receipts.
 */
import { wipe } from "../../../core/bytes.ts";
import { canSend, expireSkippedKeys, ratchetDecrypt } from "../../../core/ratchet/index.ts";
import { randomId } from "../lib/base64url.ts";
import type { MessageState, StoredMessage } from "./api.ts";
import {
  cryptoOf,
  type EngineContext,
  emit,
  type Live,
  type Peer,
  reachableLive,
  serial,
  stamp,
} from "./context.ts";
import { maybeDial } from "./dialing.ts";
import { introDone } from "./first-contact.ts";
import { loadRatchet, saveRatchet, sendApp } from "./peer-ratchet.ts";
import {
  allowMailbox,
  announce,
  depositMessage,
  mailboxRoute,
  onAnnounce,
  relayBackoff,
  sendByMailbox,
} from "./relay-mailbox.ts";
import { decodeAppMessage, MAX_RECEIPT_IDS } from "./wire.ts";

export function afterQueued(ctx: EngineContext, peer: Peer): void {
  if (peer.live) void flush(ctx, peer);
  else {
    maybeDial(ctx, peer, "send");
    allowMailbox(ctx, peer, reachableLive(ctx, peer) ? ctx.cfg.mailboxDelayMs : 0);
  }
}

/**
 * One ratchet message from the contact, over the live session `live` or (undefined) from our
 * mailbox. Runs inside serial.
 */
export async function receive(
  ctx: EngineContext,
  peer: Peer,
  live: Live | undefined,
  sealed: Uint8Array,
): Promise<void> {
  if (live && peer.live !== live) return;
  const r = live ? peer.ratchet : (await loadRatchet(ctx, peer)).ratchet;
  if (!r) return;
  const couldSend = canSend(r.state);
  const now = Date.now();
  const opened = await ratchetDecrypt(r.state, sealed, now, cryptoOf(ctx));
  if (!opened.ok) {
    if (opened.error.code === "LOFT_ERR_REPLAY" || !live) {
      // A failed decrypt changes nothing, but skipped keys past their TTL must still go (DR §6.4).
      const pruned = expireSkippedKeys(r.state, now);
      if (pruned !== r.state) await saveRatchet(ctx, peer, { id: r.id, state: pruned });
    }
    if (opened.error.code === "LOFT_ERR_REPLAY") return; // a copy we already read
    if (!live) {
      // Most likely sealed under a ratchet both ends have since replaced; the sender still has
      // it in its outbox (no receipt) and sends it again on the next session.
      ctx.cfg.log(`dropped a mailbox message that does not decrypt: ${opened.error.code}`);
      return;
    }
    // The ratchets disagree although the HELLO ids matched (state rolled back or corrupted).
    // Drop ours: the next connection starts a new one, and the peer resends what we missed.
    ctx.cfg.log(`ratchet decrypt failed: ${opened.error.code}`);
    peer.ratchet = undefined;
    await ctx.storage.deleteSession(peer.id);
    live.session.close("ratchet-desync", opened.error.code);
    return;
  }
  await saveRatchet(ctx, peer, { id: r.id, state: opened.value.state });
  if (peer.intro) await introDone(ctx, peer);
  const app = decodeAppMessage(opened.value.plaintext);
  wipe(opened.value.plaintext);
  if (!app.ok) {
    ctx.cfg.log(`dropped an application message: ${app.error.code}`);
    return;
  }
  const m = app.value;
  if (m.t === "msg") {
    const dup = await ctx.storage.findIncoming(peer.id, m.id);
    if (!dup) {
      const stored: StoredMessage = {
        id: randomId(),
        contactId: peer.id,
        direction: "in",
        text: m.text,
        at: stamp(ctx),
        sentAt: m.at,
        state: "received",
        remoteId: m.id,
      };
      await ctx.storage.putMessage(stored);
      emit(ctx, { type: "message", message: stored });
    }
    if (live) await sendApp(ctx, peer, live, { t: "rcpt", ids: [m.id] }).catch(() => {});
    else queueReceipt(ctx, peer, m.id);
  } else if (m.t === "mbox") {
    await onAnnounce(ctx, peer, m);
  } else if (m.t === "rcpt") {
    for (const id of m.ids) {
      const out = await ctx.storage.getMessage(id);
      // Only the contact a message went to can acknowledge it.
      if (out?.direction !== "out" || out.contactId !== peer.id || out.state === "delivered") continue;
      await setState(ctx, out, "delivered");
      await ctx.storage.deleteOutbox(id);
    }
  }
  if (!couldSend && canSend(opened.value.state)) {
    void flush(ctx, peer);
    if (peer.live) void announce(ctx, peer, peer.live);
  }
}

export async function setState(ctx: EngineContext, m: StoredMessage, state: MessageState): Promise<void> {
  await ctx.storage.setMessageState(m.id, state);
  m.state = state;
  emit(ctx, { type: "message-state", contactId: m.contactId, id: m.id, state });
}

/**
 * Send the contact's outbox in order (single-flight per contact): over the live session, or —
 * when there is none and the mailbox is allowed (allowMailbox) — into the contact's mailbox.
 */
export async function flush(ctx: EngineContext, peer: Peer): Promise<void> {
  if (peer.flushing) {
    peer.flushAgain = true;
    return;
  }
  peer.flushing = true;
  try {
    do {
      peer.flushAgain = false;
      for (const entry of await ctx.storage.listOutbox(peer.id)) {
        if (peer.blocked) return;
        const live = peer.live && peer.live.session.state !== "closed" ? peer.live : undefined;
        if (live) {
          if (!peer.ratchet || !canSend(peer.ratchet.state)) return;
          if (live.sent.has(entry.messageId)) continue;
        } else if (!(await mailboxRoute(ctx, peer))) return;
        const m = await ctx.storage.getMessage(entry.messageId);
        if (m?.direction !== "out" || m.state === "delivered") {
          await ctx.storage.deleteOutbox(entry.messageId);
          continue;
        }
        if (m.state === "failed") continue;
        if (!live) {
          if (m.state === "relayed") continue;
          if (!(await depositMessage(ctx, peer, m, entry))) return;
          continue;
        }
        if (m.state === "queued") await setState(ctx, m, "sending");
        try {
          // "sent" and the attempt count are written in the same serial step as the send: the
          // peer's receipt is read in a later step, so a late write never turns "delivered"
          // back into "sent" nor brings back the outbox entry the receipt removed.
          await serial(peer, async () => {
            await sendApp(ctx, peer, live, { t: "msg", id: m.id, at: m.at, text: m.text });
            live.sent.add(m.id);
            await ctx.storage.putOutbox({ ...entry, attempts: entry.attempts + 1 });
            if (m.state === "sending") await setState(ctx, m, "sent");
          });
        } catch (e) {
          ctx.cfg.log(`send stopped: ${(e as Error).message}`);
          return;
        }
      }
    } while (peer.flushAgain);
  } finally {
    peer.flushing = false;
  }
}

/** A receipt for a message that came through the mailbox; sent shortly, batched. */
export function queueReceipt(ctx: EngineContext, peer: Peer, id: string): void {
  peer.receipts.add(id);
  if (!peer.receiptTimer)
    peer.receiptTimer = setTimeout(() => {
      peer.receiptTimer = undefined;
      void sendReceipts(ctx, peer);
    }, 50);
}

/** Receipts go live if a session is up, else into the contact's mailbox. */
export async function sendReceipts(ctx: EngineContext, peer: Peer): Promise<void> {
  // A contact request, a blocked contact or a pending identity decision: nothing goes back.
  while (peer.receipts.size > 0 && !ctx.stopped && !peer.blocked) {
    const ids = [...peer.receipts].slice(0, MAX_RECEIPT_IDS);
    const live = peer.live && peer.live.session.state !== "closed" ? peer.live : undefined;
    let sent = false;
    if (live) {
      sent = await serial(peer, () => sendApp(ctx, peer, live, { t: "rcpt", ids })).then(
        () => true,
        () => false,
      );
    } else if (peer.tx && ctx.pool) {
      sent = await sendByMailbox(ctx, peer, { t: "rcpt", ids });
    } else return; // sent on the next session
    if (!sent) {
      clearTimeout(peer.receiptTimer);
      peer.receiptTimer = setTimeout(
        () => {
          peer.receiptTimer = undefined;
          void sendReceipts(ctx, peer);
        },
        relayBackoff(ctx, Math.max(1, peer.relayFailures)),
      );
      return;
    }
    for (const id of ids) peer.receipts.delete(id);
  }
}
