/**
 * Relay mailboxes (docs/protocol/mailbox.md §1–§4): our receiving queue per contact (created,
 * announced inside the session, subscribed, forgotten), the contact's queue for us, when the
 * outbox may go there, deposits with send ids and backoff, relay messages and connection states.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { equalBytes, toHex, wipe } from "../../../core/bytes.ts";
import { isLoftError, type LoftError } from "../../../core/errors.ts";
import { encodeInitialMessage } from "../../../core/prekey/index.ts";
import { canSend } from "../../../core/ratchet/index.ts";
import type { RelayMessage } from "../../../core/relay/client.ts";
import { newAuthKeyPair } from "../../../core/relay/crypto.ts";
import { isTemporaryRefusal } from "../../../core/relay/errors.ts";
import { SEND_ID_LENGTH } from "../../../core/relay/protocol.ts";
import type { OutboxEntry, StoredMessage } from "./api.ts";
import {
  type Deposit,
  type EngineContext,
  emit,
  type Live,
  type Peer,
  reachableLive,
  serial,
  setPresence,
  setService,
} from "./context.ts";
import { relayUnreachable } from "./errors.ts";
import { onIntroBody, readyIntro, scheduleAddressSetup } from "./first-contact.ts";
import {
  decodeMailboxBody,
  decodeRx,
  decodeTx,
  encodeRx,
  encodeTx,
  introBody,
  MAX_PART,
  type RxQueue,
  ratchetBodies,
  SECRET,
  type TxQueue,
} from "./mailbox.ts";
import { flush, receive, sendReceipts, setState } from "./messages.ts";
import { loadRatchet, seal, sendApp } from "./peer-ratchet.ts";
import { decodeIntro } from "./prekeys.ts";
import type { RelayConnState } from "./transport.ts";
import type { AppMessage } from "./wire.ts";

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
  }
  void (async () => {
    for (const p of [...ctx.peers.values()]) if (!p.rx && !p.rejected) await ensureRx(ctx, p);
  })();
  for (const p of ctx.peers.values()) allowMailbox(ctx, p, ctx.cfg.mailboxDelayMs);
}

export function useRx(ctx: EngineContext, peer: Peer, rx: RxQueue): void {
  peer.rx = rx;
  ctx.rids.set(toHex(rx.queue.recipientId), peer.id);
  ctx.pool?.subscribe(rx.url, rx.queue);
}

/** Our receiving queue for this contact: NEW on our relay, secured with a sender key we hand over. */
export function ensureRx(ctx: EngineContext, peer: Peer): Promise<RxQueue | undefined> {
  if (peer.rx) return Promise.resolve(peer.rx);
  const pool = ctx.pool;
  const url = ctx.relayUrls[0];
  if (!pool || !url || peer.rejected || ctx.stopped) return Promise.resolve(undefined);
  peer.rxCreating ??= (async () => {
    try {
      const client = await pool.client(url);
      const queue = await client.createQueue({ subscribe: false });
      const sender = newAuthKeyPair();
      await client.secureQueue(queue, sender.publicKey);
      const rx: RxQueue = { url, queue, senderSecret: sender.secretKey };
      if (ctx.peers.get(peer.id) !== peer) {
        client.deleteQueue(queue).catch(() => {});
        return undefined;
      }
      await ctx.storage.saveSecret(SECRET.rx(peer.id), encodeRx(rx));
      useRx(ctx, peer, rx);
      ctx.cfg.log(`mailbox for ${peer.id.slice(0, 8)} created`);
      return rx;
    } catch (e) {
      ctx.cfg.log(`mailbox for ${peer.id.slice(0, 8)} not created: ${(e as LoftError).code ?? e}`);
      return undefined;
    } finally {
      peer.rxCreating = undefined;
    }
  })();
  return peer.rxCreating;
}

/** The contact was deleted: delete our queue at the relay and both records. */
export async function forgetMailbox(ctx: EngineContext, peer: Peer): Promise<void> {
  const rx = peer.rx;
  peer.rx = undefined;
  peer.tx = undefined;
  if (rx) {
    ctx.rids.delete(toHex(rx.queue.recipientId));
    ctx.pool?.unsubscribe(rx.url, rx.queue.recipientId);
    await ctx.pool
      ?.client(rx.url)
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
  if (!peer.ratchet || !canSend(peer.ratchet.state)) return;
  live.announced = true;
  await serial(peer, () =>
    sendApp(ctx, peer, live, {
      t: "mbox",
      u: rx.url,
      s: new Uint8Array(rx.queue.senderId),
      k: new Uint8Array(rx.senderSecret),
    }),
  ).catch(() => {
    live.announced = false;
  });
}

/** The contact's mailbox for us (inside serial). */
export async function onAnnounce(
  ctx: EngineContext,
  peer: Peer,
  m: { u: string; s: Uint8Array; k: Uint8Array },
): Promise<void> {
  if (!/^wss?:\/\//.test(m.u)) {
    ctx.cfg.log("ignored a mailbox announcement with a non-WebSocket URL");
    return;
  }
  const old = peer.tx;
  if (
    old &&
    old.url === m.u &&
    equalBytes(old.queue.senderId, m.s) &&
    equalBytes(old.queue.senderAuthSecret, m.k)
  )
    return;
  const tx: TxQueue = { url: m.u, queue: { senderId: m.s.slice(), senderAuthSecret: m.k.slice() } };
  await ctx.storage.saveSecret(SECRET.tx(peer.id), encodeTx(tx));
  peer.tx = tx;
  peer.deposit = undefined;
  ctx.cfg.log(`mailbox of ${peer.id.slice(0, 8)} known`);
}

/**
 * The outbox may go to the mailbox from `delayMs` from now on (until a live session comes up);
 * schedules a flush then.
 */
export function allowMailbox(ctx: EngineContext, peer: Peer, delayMs: number): void {
  if (!ctx.pool || ctx.stopped || peer.live) return;
  peer.mailboxAt = Math.min(peer.mailboxAt, Date.now() + delayMs);
  clearTimeout(peer.mailboxTimer);
  peer.mailboxTimer = setTimeout(() => void flush(ctx, peer), Math.max(0, peer.mailboxAt - Date.now()));
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

/** One outgoing message into the contact's mailbox: `relayed` once the relay stored it. */
export async function depositMessage(
  ctx: EngineContext,
  peer: Peer,
  m: StoredMessage,
  entry: OutboxEntry,
): Promise<boolean> {
  let d = peer.deposit?.messageId === m.id ? peer.deposit : undefined;
  if (!d) {
    if (!peer.tx && !(await readyIntro(ctx, peer))) return false;
    const route = peer.tx ? "tx" : "intro";
    const intro = peer.intro;
    const target = peer.tx
      ? { url: peer.tx.url, queue: peer.tx.queue }
      : intro
        ? { url: intro.url, queue: { senderId: intro.sid } }
        : undefined;
    if (!target) return false;
    await setState(ctx, m, "sending");
    const sealed = await serial(peer, () => seal(ctx, peer, { t: "msg", id: m.id, at: m.at, text: m.text }));
    if (!sealed) {
      await setState(ctx, m, "queued");
      return false;
    }
    let bodies: Uint8Array[];
    if (route === "tx" || !intro) bodies = ratchetBodies(sealed);
    else {
      // Until the first reply, every message carries the initial header (docs/protocol/prekeys.md).
      const wrapped = encodeInitialMessage(intro.header, sealed);
      if (wrapped.length > MAX_PART) {
        await setState(ctx, m, "queued");
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
    d = {
      messageId: m.id,
      route,
      target,
      bodies: bodies.map((body) => ({ body, sendId: randomBytes(SEND_ID_LENGTH) })),
      next: 0,
    };
    peer.deposit = d;
  }
  if (!(await sendDeposit(ctx, peer, d))) {
    if (m.state === "sending") await setState(ctx, m, "queued");
    return false;
  }
  if (peer.deposit === d) peer.deposit = undefined;
  await ctx.storage.putOutbox({ ...entry, attempts: entry.attempts + 1 });
  await setState(ctx, m, "relayed");
  return true;
}

/**
 * SEND the bodies of one deposit, each with its own send id: a retry after a lost answer gets
 * DUPLICATE ("already stored"), so nothing is stored twice. On failure: backoff and retry.
 */
export async function sendDeposit(ctx: EngineContext, peer: Peer, d: Deposit): Promise<boolean> {
  const pool = ctx.pool;
  if (!pool) return false;
  const { url, queue } = d.target;
  try {
    const client = await pool.client(url);
    for (; d.next < d.bodies.length; d.next++) {
      const b = d.bodies[d.next]!;
      try {
        await client.send(queue, b.body, { sendId: b.sendId });
      } catch (e) {
        if (!(isLoftError(e) && e.code === "LOFT_ERR_RELAY_DUPLICATE")) throw e;
      }
    }
    if (peer.relayFailures > 0) {
      peer.relayFailures = 0;
      if (peer.presence.lastError?.kind === "relay-unreachable")
        setPresence(ctx, peer, peer.presence.status, peer.presence.path);
    }
    return true;
  } catch (e) {
    const code = isLoftError(e) ? e.code : "internal";
    ctx.cfg.log(`mailbox send to ${peer.id.slice(0, 8)} failed: ${code}`);
    if (code === "LOFT_ERR_RELAY_AUTH" && d.route === "intro") {
      setPresence(ctx, peer, peer.presence.status, peer.presence.path, {
        kind: "relay-unreachable",
        url,
        message: `${peer.name}'s contact address no longer accepts messages. Ask them for a new link, or wait until you are both online.`,
      });
      return false;
    }
    const tx = peer.tx;
    if (code === "LOFT_ERR_RELAY_AUTH") {
      // The contact's queue is gone or no longer takes our key: wait for a new announcement.
      if (tx && tx.queue.senderId === queue.senderId) {
        peer.tx = undefined;
        peer.deposit = undefined;
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
      setPresence(
        ctx,
        peer,
        p.status,
        p.path,
        relayUnreachable(url, peer.name, code),
        p.directUnavailable ?? false,
      );
    } else if (!peer.live)
      setPresence(ctx, peer, "offline", undefined, relayUnreachable(url, peer.name, code));
    clearTimeout(peer.mailboxTimer);
    peer.mailboxTimer = setTimeout(() => void flush(ctx, peer), relayBackoff(ctx, peer.relayFailures));
    return false;
  }
}

export function relayBackoff(ctx: EngineContext, failures: number): number {
  const ceiling = Math.min(
    ctx.cfg.relayBackoffMaxMs,
    ctx.cfg.relayBackoffInitialMs * 2 ** Math.min(failures, 16),
  );
  return Math.floor(Math.random() * ceiling) + 200;
}

export function onRelayMessage(ctx: EngineContext, url: string, m: RelayMessage): void {
  const address = ctx.address;
  if (address && equalBytes(address.queue.recipientId, m.recipientId)) {
    ctx.addressChain = ctx.addressChain
      .then(() => onIntroBody(ctx, url, address, m))
      .catch((e) => ctx.cfg.log(`first-contact message failed: ${(e as Error).message}`));
    return;
  }
  const id = ctx.rids.get(toHex(m.recipientId));
  const peer = id ? ctx.peers.get(id) : undefined;
  if (!peer?.rx || !equalBytes(peer.rx.queue.recipientId, m.recipientId)) {
    ctx.cfg.log("a relay message for a queue we do not know");
    return;
  }
  void serial(peer, () => receiveMailbox(ctx, peer, url, m)).catch((e) =>
    ctx.cfg.log(`mailbox receive failed: ${(e as Error).message}`),
  );
}

/** One body from our mailbox for this contact (inside serial); ACKed once processed. */
export async function receiveMailbox(
  ctx: EngineContext,
  peer: Peer,
  url: string,
  m: RelayMessage,
): Promise<void> {
  const rx = peer.rx;
  if (!rx || !equalBytes(rx.queue.recipientId, m.recipientId)) return;
  const ack = async (ids: Uint8Array[]) => {
    for (const msgId of ids) await ctx.pool?.ack(url, rx.queue, msgId);
  };
  if (peer.rejected) return ack([m.msgId]); // blocked: dropped unread
  if (peer.blocked) return; // an identity decision is pending: it stays on the relay
  const item = decodeMailboxBody(m.body);
  if (!item.ok || item.value.type !== "ratchet") {
    ctx.cfg.log(`dropped a mailbox body: ${item.ok ? item.value.type : item.error.code}`);
    return ack([m.msgId]);
  }
  const done = peer.pieces.add(m.msgId, item.value.part, item.value.last);
  if (!done) return;
  if (done.message) await receive(ctx, peer, undefined, done.message);
  await ack(done.ids);
}

export function onRelayState(
  ctx: EngineContext,
  url: string,
  state: RelayConnState,
  error?: LoftError,
): void {
  if (ctx.stopped) return;
  if (state === "connected")
    for (const p of ctx.peers.values()) {
      // Unacknowledged pieces are redelivered from the first one on the new connection.
      if (p.rx?.url === url) void serial(p, async () => p.pieces.reset());
      if (p.tx?.url === url && !p.live) {
        void flush(ctx, p);
        if (p.receipts.size > 0) void sendReceipts(ctx, p);
      }
    }
  if (url !== ctx.relayUrls[0]) return;
  if (state === "connected") {
    ctx.relayDown = false;
    setService(ctx, { relay: "connected" });
    if (!ctx.address || ctx.prekeys?.bundleSpk === 0) scheduleAddressSetup(ctx, 0);
  } else if (state === "connecting") {
    if (ctx.service.relay !== "unreachable") setService(ctx, { relay: "connecting" });
  } else {
    setService(ctx, { relay: "unreachable" });
    if (!ctx.relayDown) {
      ctx.relayDown = true;
      emit(ctx, { type: "error", error: relayUnreachable(url, undefined, error?.code) });
    }
  }
}

/** One application message into the contact's mailbox (`tx`), sealed now. */
export async function sendByMailbox(ctx: EngineContext, peer: Peer, message: AppMessage): Promise<boolean> {
  const tx = peer.tx;
  if (!tx) return false;
  const sealed = await serial(peer, () => seal(ctx, peer, message));
  if (!sealed) return false;
  return sendDeposit(ctx, peer, {
    messageId: "",
    route: "tx",
    target: { url: tx.url, queue: tx.queue },
    bodies: ratchetBodies(sealed).map((body) => ({ body, sendId: randomBytes(SEND_ID_LENGTH) })),
    next: 0,
  });
}
