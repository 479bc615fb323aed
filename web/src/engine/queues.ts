/**
 * The relay queues of each contact (docs/protocol/mailbox.md §1–§4): our receiving queue (`rx`:
 * created, subscribed, announced inside a live session, forgotten) and the contact's queue for us
 * (`tx`, from their announcement), and the deposits that SEND into a queue with send ids and
 * backoff. A part the steps share (relay-mailbox.ts, messages.ts, first-contact.ts, intro.ts):
 * it imports no step, and asks for presence and timers through the outcomes it adds to `out`.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { equalBytes, toHex, wipe } from "../../../core/bytes.ts";
import { isLoftError, type LoftError } from "../../../core/errors.ts";
import { relayOrder } from "../../../core/relay/choice.ts";
import { sendsEntryBytes } from "../../../core/relay/client.ts";
import { newAuthKeyPair } from "../../../core/relay/crypto.ts";
import { isTemporaryRefusal } from "../../../core/relay/errors.ts";
import { SEND_ID_LENGTH } from "../../../core/relay/protocol.ts";
import {
  type Deposit,
  type EngineContext,
  emit,
  type Live,
  type Peer,
  relayBackoff,
  serial,
  setMessageState,
} from "./context.ts";
import { relayUnreachable } from "./errors.ts";
import {
  announcedLate,
  announcementOf,
  decodeRx,
  decodeTx,
  encodeRx,
  encodeTx,
  isMailboxUrl,
  mailboxBodySize,
  mailboxName,
  nextQueueOrder,
  type RxQueue,
  ratchetBodies,
  readsOrder,
  replacesQueue,
  SECRET,
  sameAnnounce,
  sameQueue,
  stampOrder,
  txOfAnnouncement,
} from "./mailbox.ts";
import { type Outcome, presence, schedule } from "./outcome.ts";
import { ratchetCanSend, seal, sendApp } from "./peer-ratchet.ts";
import { decodeIntro } from "./prekeys.ts";
import type { MailboxClient } from "./transport.ts";
import type { AppMessage } from "./wire.ts";

/** What a deposit reads of the engine: the relay connections, storage, its log and listeners. */
export type DepositContext = Pick<EngineContext, "cfg" | "pool" | "storage" | "listeners">;

/** Read our queues and the contacts' queues from storage; subscribe ours; create missing ones. */
export async function loadMailboxes(ctx: EngineContext): Promise<void> {
  for (const p of ctx.peers.values()) {
    const rx = await ctx.storage.loadSecret(SECRET.rx(p.id));
    if (rx) {
      const r = decodeRx(rx);
      wipe(rx);
      if (r.ok) useRx(ctx, p, r.value);
      else ctx.cfg.log(`stored mailbox of ${p.id.slice(0, 8)} unreadable: ${r.error.code}`);
    }
    const tx = await ctx.storage.loadSecret(SECRET.tx(p.id));
    if (tx) {
      const r = decodeTx(tx);
      wipe(tx);
      if (r.ok) p.tx = r.value;
    }
    const intro = await ctx.storage.loadSecret(SECRET.intro(p.id));
    if (intro) {
      const r = decodeIntro(intro);
      if (r.ok) p.intro = r.value;
    }
    const base = await ctx.storage.loadSecret(SECRET.base(p.id));
    if (base) ctx.bases.set(toHex(base), p.id);
    // A queue we moved off a dead relay: read while it lives, until retired (§1, "Moving off").
    const old = await ctx.storage.loadSecret(SECRET.rxOld(p.id));
    if (old) {
      const r = decodeRx(old);
      wipe(old);
      if (r.ok) {
        p.rxOld = r.value;
        ctx.rids.set(toHex(r.value.queue.recipientId), p.id);
        ctx.pool?.subscribe(r.value.url, r.value.queue);
      }
    }
  }
  void (async () => {
    for (const p of [...ctx.peers.values()]) if (!p.rx && !p.rejected) await ensureRx(ctx, p);
  })();
}

function useRx(ctx: EngineContext, peer: Peer, rx: RxQueue): void {
  peer.rx = rx;
  ctx.rids.set(toHex(rx.queue.recipientId), peer.id);
  ctx.pool?.subscribe(rx.url, rx.queue);
}

/**
 * Our receiving queue for this contact: NEW on our mailbox server, secured with a sender key we
 * hand over. The server is the `smp://` one Settings name when there is one (docs/protocol/mailbox.md
 * §1, "Mailboxes on SMP servers"; a paired device's stays on a relay, which it reads), else the
 * reachable relay holding the fewest of our mailboxes (core/relay/choice.ts; mailbox.md §1,
 * "Several relays"); when one fails, the next is tried (our relays after the SMP server), so one
 * server down never stops a new contact from getting a mailbox.
 */
export function ensureRx(ctx: EngineContext, peer: Peer): Promise<RxQueue | undefined> {
  if (peer.rx) return Promise.resolve(peer.rx);
  const pool = ctx.pool;
  const smp = !peer.device ? ctx.mailboxServer : undefined;
  if (!pool || (!smp && ctx.relayUrls.length === 0) || peer.rejected || ctx.stopped)
    return Promise.resolve(undefined);
  peer.rxCreating ??= (async () => {
    try {
      const relays = relayOrder(
        ctx.relayUrls,
        (url) => mailboxesOn(ctx, url),
        (url) => pool.isDown(url),
      );
      let last: unknown;
      for (const server of smp ? [smp, ...relays] : relays) {
        if (ctx.stopped) return undefined;
        try {
          return await createRx(ctx, peer, server);
        } catch (e) {
          last = e;
          ctx.cfg.log(
            `mailbox for ${peer.id.slice(0, 8)} not created at ${mailboxName(server)}: ${(e as LoftError).code ?? e}`,
          );
        }
      }
      ctx.cfg.log(`mailbox for ${peer.id.slice(0, 8)} not created: ${(last as LoftError)?.code ?? last}`);
      return undefined;
    } finally {
      peer.rxCreating = undefined;
    }
  })();
  return peer.rxCreating;
}

/** How many of our mailboxes live on `url` (what spreads new ones): contacts' and rooms'. */
export function mailboxesOn(ctx: Pick<EngineContext, "peers" | "roomQueuesOn">, url: string): number {
  return contactQueuesOn(ctx, url) + (ctx.roomQueuesOn?.(url) ?? 0);
}

/** How many of our contacts' receiving queues live on `url`. */
export function contactQueuesOn(ctx: Pick<EngineContext, "peers">, url: string): number {
  let n = 0;
  for (const p of ctx.peers.values()) if (p.rx?.url === url) n++;
  return n;
}

/**
 * NEW + KEY on `server` (a relay URL, or an `smp://` address that may carry its password).
 * `replacing`: the queue this one replaces (on a dead relay, `moveRx`), kept as `rxOld`.
 */
async function createRx(
  ctx: EngineContext,
  peer: Peer,
  server: string,
  replacing?: RxQueue,
): Promise<RxQueue | undefined> {
  const pool = ctx.pool!;
  // Records and announcements name an SMP server without its password (only NEW needs it).
  const url = mailboxName(server);
  const client = await pool.mailbox(server);
  const queue = await client.createQueue({ subscribe: false });
  const sender = newAuthKeyPair();
  await client.secureQueue(queue, sender.publicKey);
  // Ordered after the queue it replaces (or our last one): the contact ignores an older
  // announcement read after this one's (mailbox.md §1, "The order of announcements").
  const n = nextQueueOrder(Date.now(), (replacing ?? peer.rx)?.n);
  const rx: RxQueue = { url, queue, senderSecret: sender.secretKey, n };
  if (ctx.peers.get(peer.id) !== peer || peer.rx !== replacing) {
    client.deleteQueue(queue).catch(() => {});
    return undefined;
  }
  if (replacing) {
    // Moved twice before the first old one retired: that one goes now (best effort).
    if (peer.rxOld) await retireOldRx(ctx, peer);
    await ctx.storage.saveSecret(SECRET.rxOld(peer.id), encodeRx(replacing));
    peer.rxOld = replacing; // stays in `rids` and subscribed: read while it lives
  }
  await ctx.storage.saveSecret(SECRET.rx(peer.id), encodeRx(rx));
  // Deleted while the write ran (links.ts `forget`: gone from `peers` first): `forgetMailbox`
  // waits for this creation, but the queue must not be used, and neither it nor its secret stay.
  if (ctx.peers.get(peer.id) !== peer) {
    await ctx.storage.deleteSecret(SECRET.rx(peer.id)).catch(() => {});
    await client.deleteQueue(queue).catch(() => {});
    return undefined;
  }
  useRx(ctx, peer, rx);
  ctx.cfg.log(`mailbox for ${peer.id.slice(0, 8)} created at ${url}`);
  return rx;
}

/**
 * Our receiving queue for this contact on a dead relay moves to a live one of ours
 * (docs/protocol/mailbox.md §1, "Moving off a dead relay"): a new queue where `ensureRx` would
 * put one, the dead relay excepted; the old one becomes `rxOld`, still read. `gone`: the relay
 * answers but lost the queue (AUTH on SUB) — it may take the new one too, after the others. The
 * caller announces the new one (mailbox-move.ts). False when nothing moved (not on that relay, no
 * other relay, a device's queue, every relay tried failed).
 */
export async function moveRx(
  ctx: EngineContext,
  peer: Peer,
  deadUrl: string,
  gone = false,
): Promise<boolean> {
  const old = peer.rx;
  const pool = ctx.pool;
  // A paired device reads its one queue itself (docs/device.md §13): it is not moved from here.
  if (!pool || !old || old.url !== deadUrl || peer.device || peer.rejected || ctx.stopped) return false;
  if (peer.rxCreating) return false; // a move (or a creation) is already under way
  const others = relayOrder(
    ctx.relayUrls.filter((u) => u !== deadUrl),
    (url) => mailboxesOn(ctx, url),
    (url) => pool.isDown(url),
  );
  if (gone && ctx.relayUrls.includes(deadUrl)) others.push(deadUrl);
  let moved = false;
  peer.rxCreating = (async () => {
    for (const server of others) {
      if (ctx.stopped) return undefined;
      try {
        const rx = await createRx(ctx, peer, server, old);
        if (rx) moved = true;
        return rx;
      } catch (e) {
        ctx.cfg.log(
          `mailbox for ${peer.id.slice(0, 8)} not moved to ${server}: ${(e as LoftError).code ?? e}`,
        );
      }
    }
    return undefined;
  })();
  try {
    await peer.rxCreating;
  } finally {
    peer.rxCreating = undefined;
  }
  if (moved) ctx.cfg.log(`mailbox for ${peer.id.slice(0, 8)} moved off ${deadUrl} to ${peer.rx?.url}`);
  return moved;
}

/** Which of our queues for this contact `recipientId` names: the current one, or the old one. */
export function queueOf(peer: Pick<Peer, "rx" | "rxOld">, recipientId: Uint8Array): RxQueue | undefined {
  if (peer.rx && equalBytes(peer.rx.queue.recipientId, recipientId)) return peer.rx;
  if (peer.rxOld && equalBytes(peer.rxOld.queue.recipientId, recipientId)) return peer.rxOld;
  return undefined;
}

/**
 * The contact has our new address (it wrote into the new queue, or took the announcement over a
 * live session): the old queue is retired — unsubscribed, deleted at its relay if that answers
 * (the relay's TTL drops it otherwise), its record forgotten. Whatever the contact had left there
 * and we never read is still in its outbox, unreceipted: it went again into the new queue when the
 * contact took our announcement (`depositAgain`; mailbox.md §1, "Moving off a dead relay").
 */
export async function retireOldRx(ctx: Pick<EngineContext, "cfg" | "pool" | "rids" | "storage">, peer: Peer) {
  const old = peer.rxOld;
  if (!old) return;
  peer.rxOld = undefined;
  ctx.rids.delete(toHex(old.queue.recipientId));
  ctx.pool?.unsubscribe(old.url, old.queue.recipientId);
  await ctx.storage.deleteSecret(SECRET.rxOld(peer.id)).catch(() => {});
  ctx.cfg.log(`old mailbox for ${peer.id.slice(0, 8)} on ${old.url} retired`);
  if (ctx.pool && !ctx.pool.isDown(old.url))
    await ctx.pool
      .mailbox(old.url)
      .then((c) => c.deleteQueue(old.queue))
      .catch(() => {});
}

/** The contact was deleted: delete our queue at the relay and both records. */
export async function forgetMailbox(ctx: EngineContext, peer: Peer): Promise<void> {
  // A queue being created (or moved) is not in `peer.rx` yet: wait for it, so what it leaves —
  // a queue set as `rx`, or an old one kept as `rxOld` — is deleted below, not left behind.
  await peer.rxCreating?.catch(() => undefined);
  await retireOldRx(ctx, peer);
  const rx = peer.rx;
  peer.rx = undefined;
  peer.tx = undefined;
  if (rx) {
    ctx.rids.delete(toHex(rx.queue.recipientId));
    ctx.pool?.unsubscribe(rx.url, rx.queue.recipientId);
    await ctx.pool
      ?.mailbox(rx.url)
      .then((c) => c.deleteQueue(rx.queue))
      .catch(() => {});
  }
  for (const name of [SECRET.rx, SECRET.tx, SECRET.intro, SECRET.base])
    await ctx.storage.deleteSecret(name(peer.id)).catch(() => {});
  for (const [k, id] of ctx.bases) if (id === peer.id) ctx.bases.delete(k);
}

/** Tell the contact, inside the session, where to leave messages for us when we are offline. */
export async function announce(ctx: EngineContext, peer: Peer, live: Live): Promise<void> {
  if (live.announced) return;
  const rx = await ensureRx(ctx, peer);
  if (!rx || peer.live !== live || live.announced) return;
  if (!ratchetCanSend(peer)) return;
  live.announced = true;
  // `n` only to a contact whose handshake listed `mbox.order`: an app from before it refuses the
  // whole `mbox` (mailbox.md §1, "The order of announcements").
  const withOrder = readsOrder(peer.tx, live.session);
  const sent = await serial(peer, async () => {
    if (withOrder) await stampQueueOrder(ctx, peer, rx);
    return sendApp(ctx, peer, live, { t: "mbox", ...announcementOf(rx, withOrder) });
  }).then(
    () => true,
    () => {
      live.announced = false;
      return false;
    },
  );
  // The session is ordered and reliable: the contact now writes to the new queue only.
  if (sent && peer.rxOld && peer.rx === rx) await retireOldRx(ctx, peer);
}

/**
 * `n` for a queue of ours made before it (mailbox.ts `stampOrder`): not while the queue is being
 * replaced (the new one has its own).
 */
async function stampQueueOrder(
  ctx: Pick<EngineContext, "cfg" | "storage">,
  peer: Peer,
  rx: RxQueue,
): Promise<void> {
  if (rx.n !== undefined || peer.rx !== rx || peer.rxCreating) return;
  await stampOrder(
    rx,
    (sealed) => ctx.storage.saveSecret(SECRET.rx(peer.id), sealed),
    (line) => ctx.cfg.log(`mailbox order for ${peer.id.slice(0, 8)} ${line}`),
  );
}

/**
 * The contact's mailbox for us (inside serial). One that replaces another (the contact moved its
 * queue off a dead relay, or its relay lost it: mailbox.md §1, "Moving off a dead relay") sends
 * again what we left in the old one (`depositAgain`).
 */
export async function onAnnounce(
  ctx: Pick<EngineContext, "cfg" | "storage" | "listeners">,
  peer: Peer,
  m: { u: string; s: Uint8Array; k: Uint8Array; n?: number },
  from: "live" | "mailbox",
): Promise<void> {
  if (!isMailboxUrl(m.u)) {
    ctx.cfg.log("ignored a mailbox announcement with neither a WebSocket URL nor an smp:// server");
    return;
  }
  // An older queue of the contact's read late (mailbox.ts `announcedLate`).
  if (announcedLate(from, m.n, Math.max(peer.tx?.n ?? -1, seenOrder.get(peer) ?? -1))) {
    ctx.cfg.log(`an older mailbox of ${peer.id.slice(0, 8)} announced late, ignored`);
    return;
  }
  if (m.n !== undefined) seenOrder.set(peer, m.n);
  const old = peer.tx;
  const tx = txOfAnnouncement(m);
  if (sameAnnounce(old, tx)) return;
  await ctx.storage.saveSecret(SECRET.tx(peer.id), encodeTx(tx));
  peer.tx = tx;
  peer.deposit = undefined;
  ctx.cfg.log(`mailbox of ${peer.id.slice(0, 8)} known`);
  // Dropped for an `AUTH` (`depositNow`): the queue it replaces is the one its relay lost. Only
  // another queue is a move (`replacesQueue`), as for rooms: a new key for the same queue leaves
  // what we put there readable, and sending it again only doubled it.
  const lost = lostTx.delete(peer);
  if (replacesQueue(old, lost, tx)) await depositAgain(ctx, peer);
}

/**
 * The order (`mbox` `n`) of the last announcement taken from each contact this run (a live one
 * may lower it), kept when an `AUTH` drops its `tx` record (which holds it across restarts): an
 * announcement read from the mailbox below it is older.
 */
const seenOrder = new WeakMap<Peer, number>();

/**
 * Contacts whose mailbox we dropped when its relay refused a deposit with `AUTH` (the queue is
 * gone: the relay lost it, or deleted it), until their next `mbox`: what we had left in that queue
 * was lost with it, and the queue they announce next replaces it (`onAnnounce`).
 */
const lostTx = new WeakSet<Peer>();

/**
 * What we left in the contact's former queue and have no receipt for goes again, into the new one:
 * back to `queued`, so the outbox takes it in order, before anything written later (the contact
 * drops a copy it read already by its message id, chat.md §5). The contact retires its old queue
 * once a body arrives in the new one (link/controller.ts `relayMessage`), and what it had not read
 * there by then is never read: its relay is down (the queue moved for that), or the pushes
 * queued behind that body go with the queue's `DEL`. It cannot drain the old queue first — a
 * subscribed queue says nowhere that it is empty, and `GET` is refused on the connection that
 * subscribed it (docs/protocol/relay.md §Commands) —, so what it would lose goes again: before,
 * such a message reached it only at their next live session, after the later ones (mailbox.md §1).
 */
async function depositAgain(ctx: Pick<EngineContext, "cfg" | "storage" | "listeners">, peer: Peer) {
  let again = 0;
  for (const entry of await ctx.storage.listOutbox(peer.id)) {
    const m = await ctx.storage.getMessage(entry.messageId);
    if (m?.direction !== "out" || m.state !== "relayed") continue;
    await setMessageState(ctx, m, "queued");
    again++;
  }
  if (again > 0)
    ctx.cfg.log(
      `${again} message(s) left in ${peer.id.slice(0, 8)}'s former mailbox go again into its new one`,
    );
}

/** A deposit of `bodies` for `target`, each body with its own fresh send id (mailbox.md §3). */
export function newDeposit(
  messageId: Deposit["messageId"],
  route: Deposit["route"],
  target: Deposit["target"],
  bodies: readonly Uint8Array[],
): Deposit {
  return {
    messageId,
    route,
    target,
    bodies: bodies.map((body) => ({ body, sendId: randomBytes(SEND_ID_LENGTH) })),
    next: 0,
  };
}

/**
 * SEND the bodies of one deposit, each with its own send id: a retry after a lost answer gets
 * DUPLICATE ("already stored"), so nothing is stored twice. On failure: the presence says why and
 * a `mailbox` timer retries the flush with backoff (outcomes added to `out`).
 */
export function sendDeposit(ctx: DepositContext, peer: Peer, d: Deposit, out: Outcome[]): Promise<boolean> {
  // One deposit at a time per contact: the pieces of one message must be contiguous on the queue
  // (docs/protocol/mailbox.md §2: pieces carry no sequence numbers), and deposits also start outside the link
  // controller (a file's parts, files/transfers.ts; a device command, devices.ts).
  const run = (depositChains.get(peer) ?? Promise.resolve()).then(() => depositNow(ctx, peer, d, out));
  depositChains.set(
    peer,
    run.catch(() => undefined),
  );
  return run;
}

const depositChains = new WeakMap<Peer, Promise<unknown>>();

/**
 * Per contact, a deposit of several pieces that failed once a SEND of it was tried: some of its
 * pieces may be on the relay, and the receiver joins pieces until one marked last (mailbox.md §2),
 * so nothing else goes into that queue before the rest of it. The next deposit into the same
 * queue sends the rest first, with the same send ids (what the relay has answers DUPLICATE), and
 * fails without sending anything of its own while that does not go through.
 */
const unfinished = new WeakMap<Peer, Deposit>();

/** Whether a deposit went for a relay queue the contact has since replaced by another (`onAnnounce`). */
export const movedOff = (peer: Peer, d: Deposit): boolean =>
  d.route === "tx" && peer.tx !== undefined && !sameQueue(d.target, peer.tx);

/** Whether the contact has a deposit cut short (finishDeposit has something to send). */
export const hasUnfinishedDeposit = (peer: Peer): boolean => unfinished.has(peer);

/**
 * Send the rest of the contact's unfinished deposit, if any (a flush does it before the outbox).
 * One cut short into a mailbox the contact has since replaced (`onAnnounce`) is tried once, then
 * let go either way: its relay is most likely the dead one the queue moved off, and waiting for it
 * stalled the outbox, new queue included, until a live session. The try completes the message
 * where the old queue is still read (its relay back): pieces left alone there would be joined by
 * the contact with the next message it reads (one piece buffer per contact, mailbox.md §8). A
 * message cut short went back to `queued` and goes whole into the new queue as well (a copy read
 * twice is dropped by its id); a receipt's or a file's frame is left, as the rest of what was in
 * the old queue is (mailbox.md §1, "Moving off a dead relay").
 */
export async function finishDeposit(ctx: DepositContext, peer: Peer, out: Outcome[]): Promise<boolean> {
  const held = unfinished.get(peer);
  if (!held) return true;
  if (movedOff(peer, held)) {
    // Its failure says nothing of the contact's current relay: no presence, no retry of its own.
    const done = await sendDeposit(ctx, peer, held, []);
    if (unfinished.get(peer) === held) unfinished.delete(peer);
    if (!done) ctx.cfg.log(`a deposit cut short in ${peer.id.slice(0, 8)}'s former mailbox dropped`);
    return true;
  }
  return sendDeposit(ctx, peer, held, out);
}

async function depositNow(ctx: DepositContext, peer: Peer, d: Deposit, out: Outcome[]): Promise<boolean> {
  const pool = ctx.pool;
  if (!pool) return false;
  const { url, queue } = d.target;
  const held = unfinished.get(peer);
  let tried: Deposit | undefined;
  try {
    const client = await pool.mailbox(url);
    if (held && held !== d && sameQueue(held.target, d.target)) {
      await sendRest(client, held);
      unfinished.delete(peer);
    }
    tried = d;
    await sendRest(client, d);
    if (unfinished.get(peer) === d) unfinished.delete(peer);
    if (peer.relayFailures > 0) {
      peer.relayFailures = 0;
      if (peer.presence.lastError?.kind === "relay-unreachable")
        out.push(presence(peer.presence.status, peer.presence.path));
    }
    return true;
  } catch (e) {
    const code = isLoftError(e) ? e.code : "internal";
    ctx.cfg.log(`mailbox send to ${peer.id.slice(0, 8)} failed: ${code}`);
    if (tried === d && d.bodies.length > 1) unfinished.set(peer, d);
    const u = unfinished.get(peer);
    if (code === "LOFT_ERR_RELAY_AUTH" && u && sameQueue(u.target, d.target)) unfinished.delete(peer); // gone
    if (code === "LOFT_ERR_RELAY_AUTH" && d.route === "intro") {
      out.push(
        presence(peer.presence.status, peer.presence.path, {
          kind: "relay-unreachable",
          url,
          message: `${peer.name}'s contact address no longer accepts messages. Ask them for a new link, or wait until you are both online.`,
        }),
      );
      return false;
    }
    const tx = peer.tx;
    if (code === "LOFT_ERR_RELAY_AUTH") {
      // The contact's queue is gone or no longer takes our key: wait for a new announcement.
      if (tx && tx.queue.senderId === queue.senderId) {
        peer.tx = undefined;
        peer.deposit = undefined;
        lostTx.add(peer);
        await ctx.storage.deleteSecret(SECRET.tx(peer.id)).catch(() => {});
        emit(ctx, {
          type: "error",
          contactId: peer.id,
          error: {
            kind: "internal",
            message: `${peer.name}'s relay mailbox no longer accepts messages. They wait on this device until you are both online.`,
          },
        });
      }
      return false;
    }
    peer.relayFailures++;
    if (isTemporaryRefusal(code)) {
      // The relay rations our address (RATE, SOURCE_RATE, STORE_RATE): nothing was stored, the
      // deposit keeps its place and send ids, and says the relay is busy — not that the contact
      // or the relay is gone, so the contact's presence stays as it is.
      const p = peer.presence;
      out.push(
        presence(p.status, p.path, relayUnreachable(url, peer.name, code), p.directUnavailable ?? false),
      );
    } else if (!peer.live) out.push(presence("offline", undefined, relayUnreachable(url, peer.name, code)));
    out.push(schedule("mailbox", relayBackoff(ctx, peer.relayFailures), { step: "flush" }));
    return false;
  }
}

/**
 * The bodies of `d` from `d.next` on, each with its send id (a retry gets DUPLICATE: stored).
 *
 * On a 1.3 relay connection (`sendsFrame`), the bodies that fit one SENDS frame are issued in one
 * tick, so they leave in one frame: one round trip and one commit for the run instead of one per
 * piece (docs/protocol/relay.md §Batches). The relay stores a prefix of a frame — never a body
 * after a refused one — so `d.next` moves past the leading stored (or DUPLICATE) ones and the
 * first refusal is thrown: the retry starts there with the same send ids, and the queue holds the
 * pieces once each, in order (docs/protocol/mailbox.md §2). Elsewhere, one SEND at a time.
 */
async function sendRest(client: MailboxClient, d: Deposit): Promise<void> {
  const frame = client.sendsFrame;
  while (d.next < d.bodies.length) {
    let n = 1;
    if (frame) {
      let bytes = sendsEntryBytes(d.bodies[d.next]!.sendId, d.bodies[d.next]!.body);
      while (d.next + n < d.bodies.length && n < frame.count) {
        const b = d.bodies[d.next + n]!;
        const more = sendsEntryBytes(b.sendId, b.body);
        if (bytes + more > frame.frameBytes) break;
        bytes += more;
        n++;
      }
    }
    const results = await Promise.allSettled(
      d.bodies
        .slice(d.next, d.next + n)
        .map((b) => client.send(d.target.queue, b.body, { sendId: b.sendId })),
    );
    for (const r of results) {
      if (r.status === "rejected" && !(isLoftError(r.reason) && r.reason.code === "LOFT_ERR_RELAY_DUPLICATE"))
        throw r.reason;
      d.next++;
    }
  }
}

/** One application message into the contact's mailbox (`tx`), sealed now. */
export async function sendByMailbox(
  ctx: DepositContext,
  peer: Peer,
  message: AppMessage,
  out: Outcome[],
): Promise<boolean> {
  const tx = peer.tx;
  if (!tx) return false;
  const sealed = await serial(peer, () => seal(ctx, peer, message));
  if (!sealed) return false;
  const target = { url: tx.url, queue: tx.queue };
  const bodies = ratchetBodies(sealed, mailboxBodySize(tx.url));
  return sendDeposit(ctx, peer, newDeposit("", "tx", target, bodies), out);
}
