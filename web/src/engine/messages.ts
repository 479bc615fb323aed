/**
 * Application messages, the step (docs/protocol/chat.md §5 "Application messages";
 * docs/protocol/mailbox.md §3, §4): what a queued message asks for, the outbox flushed in order
 * over the live session, incoming messages (stored before their event, de-duplicated) and
 * delivery receipts. Called by the link controller (link/controller.ts); returns outcomes,
 * imports no other step. The outbox into the mailbox is relay-mailbox.ts `flushMailbox`.
 */
import { wipe } from "../../../core/bytes.ts";
import { isDeviceAppMessage } from "../../../core/device/relay.ts";
import {
  BODY_FAILED,
  canSend,
  expireSkippedKeys,
  isBodyFailure,
  ratchetDecrypt,
} from "../../../core/ratchet/index.ts";
import { randomId } from "../lib/base64url.ts";
import type { OutboxEntry, StoredMessage } from "./api.ts";
import { isCallSignal } from "./calls/wire.ts";
import {
  cryptoOf,
  type EngineContext,
  emit,
  type Live,
  mailboxDelay,
  type Peer,
  relayBackoff,
  serial,
  setMessageState,
  stamp,
} from "./context.ts";
import { isFileAppMessage } from "./files/wire.ts";
import { introDone } from "./intro.ts";
import { follow, type Outcome, schedule } from "./outcome.ts";
import { loadRatchet, ratchetCanSend, saveRatchet, sendApp, sendApps } from "./peer-ratchet.ts";
import { onAnnounce, sendByMailbox } from "./queues.ts";
import { type AppMessage, BUNDLE_MARKER, decodeAppPlaintext, MAX_RECEIPT_IDS } from "./wire.ts";

/**
 * What the messages step reads of the engine: timings, signaling (for the mailbox delay), the
 * relay connections (receipts by mailbox), storage, the listeners it tells, the message clock.
 */
export type MessagesContext = Pick<
  EngineContext,
  "cfg" | "stopped" | "signaling" | "pool" | "storage" | "listeners" | "lastStamp" | "files" | "calls"
>;

/** A message was queued: send it live, or dial and let the mailbox take it if no session comes. */
export function afterQueued(ctx: MessagesContext, peer: Peer): Outcome[] {
  if (peer.live) return [follow({ step: "flush" })];
  return [
    follow({ step: "maybe-dial", why: "send" }),
    follow({ step: "allow-mailbox", delayMs: mailboxDelay(ctx, peer) }),
  ];
}

/**
 * One ratchet message from the contact, over the live session `live` or (undefined) from our
 * mailbox. Runs inside serial.
 */
export async function receive(
  ctx: MessagesContext,
  peer: Peer,
  live: Live | undefined,
  sealed: Uint8Array,
  detached = false,
): Promise<Outcome[]> {
  const out: Outcome[] = [];
  if (live && peer.live !== live) {
    // Replaced: the new session may run a new ratchet, and the peer sends this again on it.
    if (peer.live) return out;
    // Read after its session closed (the peer's CLOSE right behind it, a peer that sent and
    // stopped: the CLI): read as a mailbox body is — a failed decrypt drops it, never a desync —
    // rather than dropped, which lost it until the peer's next session (chat.md §6, "Stopping").
    return receive(ctx, peer, undefined, sealed);
  }
  const r = live ? peer.ratchet : (await loadRatchet(ctx, peer)).ratchet;
  if (!r) return out;
  const couldSend = canSend(r.state);
  const now = Date.now();
  const opened = await ratchetDecrypt(r.state, sealed, now, cryptoOf(ctx));
  if (!opened.ok) {
    if (opened.error.code === "LOFT_ERR_REPLAY" || !live) {
      // A failed decrypt changes nothing, but skipped keys past their TTL must still go (DR §6.4).
      const pruned = expireSkippedKeys(r.state, now);
      if (pruned !== r.state) await saveRatchet(ctx, peer, { id: r.id, state: pruned });
    }
    if (opened.error.code === "LOFT_ERR_REPLAY") return out; // a copy we already read
    if (!live) {
      // Most likely sealed under a ratchet both ends have since replaced; the sender still has
      // it in its outbox (no receipt) and sends it again on the next session.
      ctx.cfg.log(`dropped a mailbox message that does not decrypt: ${opened.error.code}`);
      return out;
    }
    // A detached body (docs/protocol/session.md §5) is outside the Noise AEAD: one that fails
    // behind a header that opened may have been changed in transit, which is what a Noise
    // failure closes the session for — the ratchets agree, so ours is kept; the message is still
    // in the sender's outbox (no receipt) and comes again on the next session.
    if (detached && isBodyFailure(opened.error)) {
      ctx.cfg.log("a detached ratchet body failed authentication: closing the session");
      live.session.close("LOFT_ERR_DECRYPT", BODY_FAILED);
      return out;
    }
    // The ratchets disagree although the HELLO ids matched (state rolled back or corrupted).
    // Drop ours: the next connection starts a new one, and the peer resends what we missed.
    ctx.cfg.log(`ratchet decrypt failed: ${opened.error.code}`);
    peer.ratchet = undefined;
    await ctx.storage.deleteSession(peer.id);
    live.session.close("ratchet-desync", opened.error.code);
    return out;
  }
  // One application message, or a bundle's chat messages in order (chat.md §5, "Bundles"): a
  // bundle with any message wrong is refused whole — nothing stored, shown or receipted, so the
  // sender, which keeps each in its outbox until its receipt, sends them all again.
  const app = decodeAppPlaintext(opened.value.plaintext);
  // What a refusal may log: the decoder's text can quote what the peer sent (an unknown type, an
  // id), so the log gets the code, whether it was a bundle and the plaintext's length only.
  const refused = app.ok
    ? ""
    : `${app.error.code} (${opened.value.plaintext[0] === BUNDLE_MARKER ? "a bundle" : "a message"} of ${opened.value.plaintext.length} bytes)`;
  wipe(opened.value.plaintext);
  const saved = saveRatchet(ctx, peer, { id: r.id, state: opened.value.state });
  // A chat message's duplicate check and its storage overlap the sealed state write instead of
  // waiting for it (two IndexedDB round trips off the first message's path, bench/README-chat.md).
  // Nothing is shown, receipted or acted on before that write is in (DR §3.5: the state that
  // consumed the message key is durable before anything depends on the message). A bundle's
  // messages are stored one after the other, in the order they were sent.
  const stored =
    app.ok && !peer.intro && app.value.some((m) => m.t === "msg")
      ? storeAll(ctx, peer, app.value)
      : undefined;
  // Awaited below in every case; `stored` is awaited after it, so its failure cannot go unseen.
  stored?.catch(() => {});
  try {
    await saved;
  } catch (e) {
    // A message may be stored although the state that read it is not: it is not shown now,
    // and its resend would find it a duplicate — kept aside so that the resend shows it.
    for (const fresh of (await stored?.catch(() => undefined)) ?? [])
      if (fresh?.remoteId) keepUnshown(peer, fresh.remoteId, fresh);
    throw e;
  }
  if (peer.intro) await introDone(ctx, peer);
  if (!app.ok) {
    ctx.cfg.log(`dropped an application message: ${refused}`);
    return out;
  }
  // Which ratchet message carried a chat message, for whoever traces a lost one (chat.md §5,
  // "Bundles"): a bundle is read whole or not at all.
  if (app.value.length > 1) ctx.cfg.log(`read a bundle of ${app.value.length} chat messages`);
  for (const [i, m] of app.value.entries()) {
    if (isFileAppMessage(m)) await ctx.files?.onMessage(peer, m);
    // A paired device's telemetry and console answers (docs/device.md §13): for its screen.
    else if (isDeviceAppMessage(m)) {
      if (peer.device && m.t !== "dev.cmd") emit(ctx, { type: "device", contactId: peer.id, message: m });
    }
    // A call's signals only mean something live; one read later from the mailbox is stale.
    else if (isCallSignal(m)) {
      if (live) ctx.calls?.receive(peer, m);
    } else if (m.t === "msg") {
      const fresh =
        (stored ? (await stored)[i] : await storeIncoming(ctx, peer, m)) ?? takeUnshown(peer, m.id);
      if (fresh) emit(ctx, { type: "message", message: fresh });
      // Live, the receipt goes as soon as the messages already queued behind this one are read:
      // a burst is acknowledged by a few `rcpt` messages of up to MAX_RECEIPT_IDS ids, each one
      // ratchet message and one sealed state write on both ends, not one per message.
      out.push(...queueReceipt(peer, m.id, live ? 0 : MAILBOX_RECEIPT_DELAY_MS));
    } else if (m.t === "mbox") {
      await onAnnounce(ctx, peer, m, live ? "live" : "mailbox");
      // Receipts held back for want of a mailbox, and an outbox that had no route, can go now.
      if (!live) {
        if (peer.receipts.size > 0) out.push(follow({ step: "receipts" }));
        out.push(follow({ step: "flush" }));
      }
    } else if (m.t === "rcpt") {
      for (const id of m.ids) {
        const sent = await ctx.storage.getMessage(id);
        // Only the contact a message went to can acknowledge it.
        if (sent?.direction !== "out" || sent.contactId !== peer.id || sent.state === "delivered") continue;
        await setMessageState(ctx, sent, "delivered");
        await ctx.storage.deleteOutbox(id);
      }
    }
  }
  if (!couldSend && canSend(opened.value.state)) {
    out.push(follow({ step: "flush" }));
    if (peer.live) out.push(follow({ step: "announce" }));
  }
  return out;
}

/** At most this many stored-but-unshown messages are kept aside per contact (`Peer.unshown`). */
const MAX_UNSHOWN = 256;

function keepUnshown(peer: Peer, remoteId: string, message: StoredMessage): void {
  peer.unshown ??= new Map();
  const unshown = peer.unshown;
  unshown.set(remoteId, message);
  if (unshown.size > MAX_UNSHOWN) unshown.delete(unshown.keys().next().value as string);
}

/** The stored record of `remoteId` that was never shown, once (then forgotten). */
function takeUnshown(peer: Peer, remoteId: string): StoredMessage | undefined {
  const message = peer.unshown?.get(remoteId);
  peer.unshown?.delete(remoteId);
  return message;
}

/**
 * Store the chat messages of one ratchet message in order (`storeIncoming` each): per message, the
 * new record, or undefined for a copy or a message that is not a `msg`. A write that fails part-way
 * through a bundle leaves the messages before it stored but never shown, and their resend (no
 * receipt went) would find them copies: they are kept aside (`keepUnshown`) so that it shows them.
 */
async function storeAll(
  ctx: MessagesContext,
  peer: Peer,
  messages: readonly AppMessage[],
): Promise<(StoredMessage | undefined)[]> {
  const out: (StoredMessage | undefined)[] = [];
  try {
    for (const m of messages) out.push(m.t === "msg" ? await storeIncoming(ctx, peer, m) : undefined);
  } catch (e) {
    for (const fresh of out) if (fresh?.remoteId) keepUnshown(peer, fresh.remoteId, fresh);
    throw e;
  }
  return out;
}

/** Store an incoming chat message unless a copy is stored already: the new record, or undefined for a copy. */
async function storeIncoming(
  ctx: MessagesContext,
  peer: Peer,
  m: { id: string; at: number; text: string },
): Promise<StoredMessage | undefined> {
  if (await ctx.storage.findIncoming(peer.id, m.id)) return undefined;
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
  return stored;
}

/** Most outbox messages sent under one sealed ratchet write (`sendApps`). */
export const FLUSH_BATCH = 16;

/**
 * The contact's outbox in order over the live session. Stops when the ratchet cannot send yet
 * (the first message from the contact lets it), when the session closes, or when the contact is
 * blocked. Consecutive entries go in batches of up to FLUSH_BATCH: each message `sending`, then
 * all encrypted, the ratchet state written once, all sent, then each `sent` (docs/protocol/chat.md §5).
 *
 * The `sync` a fresh responder is owed (`live.syncOwed`, chat.md §4 "Who can send") goes on every
 * way out while this session is still the live one — a failed batch or a storage error part-way
 * included — unless a message carried it: otherwise the peer, which cannot send before our first
 * ratchet message, would wait for the next flush.
 */
export async function flushLive(ctx: MessagesContext, peer: Peer, live: Live): Promise<Outcome[]> {
  const stopped = () => peer.blocked || peer.live !== live || live.session.state === "closed";
  try {
    await flushOutbox(ctx, peer, live, stopped);
  } finally {
    if (live.syncOwed && !stopped())
      await serial(peer, () => sendApp(ctx, peer, live, { t: "sync" })).catch(() => {});
  }
  return [];
}

/** flushLive's walk of the outbox; returns early when stopped or when a batch fails. */
async function flushOutbox(
  ctx: MessagesContext,
  peer: Peer,
  live: Live,
  stopped: () => boolean,
): Promise<void> {
  let batch: { entry: OutboxEntry; m: StoredMessage; marked?: Promise<void> }[] = [];
  const sendBatch = async (): Promise<boolean> => {
    const ready = batch;
    batch = [];
    if (ready.length === 0) return true;
    try {
      // "sent" and the attempt counts are written in the same serial step as the sends: the
      // peer's receipt is read in a later step, so a late write never turns "delivered"
      // back into "sent" nor brings back the outbox entry the receipt removed.
      await serial(peer, async () => {
        // The `sending` marks are written while the batch is encrypted and its state sealed: a
        // mark is no precondition of the send (a message still `queued` after a crash is sent
        // again and the receiver drops the copy, chat.md §5); `sent` below waits for them, and
        // storage orders the writes of one message record.
        await Promise.all([
          sendApps(
            ctx,
            peer,
            live,
            ready.map(({ m }) => ({ t: "msg", id: m.id, at: m.at, text: m.text })),
            // A message sent before and never receipted goes in a ratchet message of its own
            // (chat.md §5, "Bundles"): the peer refuses a bundle whole, so one message it cannot
            // read — a newer sender's, say — sent again in a bundle with the same neighbours
            // would keep them from it on every session; alone, it keeps only itself back.
            new Set(ready.flatMap(({ entry }, i) => (entry.attempts > 0 ? [i] : []))),
          ),
          ...ready.map((r) => r.marked),
        ]);
        // `sent` only once the session handed the frames to its link: a link that closed under
        // the session (its reader still draining) drops them silently, and a message marked
        // `sent` then — which `loft send` reports as gone before it exits — stays `sending` in
        // the outbox for the next session or the mailbox instead (docs/protocol/chat.md §5).
        const left = live.session.flushed();
        left.catch(() => {}); // awaited below, after the attempt counts
        for (const { entry } of ready)
          await ctx.storage.putOutbox({ ...entry, attempts: entry.attempts + 1 });
        await left;
        for (const { m } of ready) {
          live.sent.add(m.id);
          if (m.state === "sending") await setMessageState(ctx, m, "sent");
        }
      });
      return true;
    } catch (e) {
      ctx.cfg.log(`send stopped: ${(e as Error).message}`);
      return false;
    }
  };
  for (const entry of await ctx.storage.listOutbox(peer.id)) {
    if (stopped()) return;
    if (!ratchetCanSend(peer)) break;
    if (live.sent.has(entry.messageId)) continue;
    const m = await ctx.storage.getMessage(entry.messageId);
    if (m?.direction !== "out" || m.state === "delivered") {
      await ctx.storage.deleteOutbox(entry.messageId);
      continue;
    }
    if (m.state === "failed") continue;
    const marked = m.state === "queued" ? setMessageState(ctx, m, "sending") : undefined;
    // Awaited in sendBatch; a failure there stops the flush like a failed send.
    marked?.catch(() => {});
    batch.push({ entry, m, ...(marked ? { marked } : {}) });
    if (batch.length >= FLUSH_BATCH && !(await sendBatch())) return;
  }
  if (!stopped()) await sendBatch();
}

/** How long a receipt for a message read from the mailbox waits for others to share its `rcpt`. */
const MAILBOX_RECEIPT_DELAY_MS = 50;

/** A receipt to send shortly, batched with the others received meanwhile (`sendReceipts`). */
function queueReceipt(peer: Peer, id: string, delayMs: number): Outcome[] {
  peer.receipts.add(id);
  return [schedule("receipt", delayMs, { step: "receipts" }, true)];
}

/** Peers whose receipts `sendReceipts` is sending now: that loop takes the ids added meanwhile. */
const sendingReceipts = new WeakSet<Peer>();

/** Receipts go live if a session is up, else into the contact's mailbox. */
export async function sendReceipts(ctx: MessagesContext, peer: Peer): Promise<Outcome[]> {
  if (sendingReceipts.has(peer)) return [];
  sendingReceipts.add(peer);
  try {
    return await sendReceiptsNow(ctx, peer);
  } finally {
    sendingReceipts.delete(peer);
  }
}

async function sendReceiptsNow(ctx: MessagesContext, peer: Peer): Promise<Outcome[]> {
  const out: Outcome[] = [];
  // A contact request, a blocked contact or a pending identity decision: nothing goes back.
  while (peer.receipts.size > 0 && !ctx.stopped && !peer.blocked) {
    const ids = [...peer.receipts].slice(0, MAX_RECEIPT_IDS);
    // A session whose link closed under it (not writable) would drop the receipt unseen.
    const live = peer.live?.session.writable ? peer.live : undefined;
    let sent = false;
    if (live) {
      sent = await serial(peer, () => sendApp(ctx, peer, live, { t: "rcpt", ids }))
        .then(() => live.session.flushed())
        .then(
          () => true,
          () => false,
        );
    } else if (peer.tx && ctx.pool) {
      sent = await sendByMailbox(ctx, peer, { t: "rcpt", ids }, out);
    } else {
      // Sent on the next session, or once the contact's mailbox is known (`receive`, "mbox").
      ctx.cfg.log(`receipts for ${peer.id.slice(0, 8)} wait for a session or their mailbox`);
      return out;
    }
    if (!sent) {
      out.push(schedule("receipt", relayBackoff(ctx, Math.max(1, peer.relayFailures)), { step: "receipts" }));
      return out;
    }
    for (const id of ids) peer.receipts.delete(id);
  }
  return out;
}
