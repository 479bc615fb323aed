/**
 * Offline first contact, the step (docs/protocol/mailbox.md §5 "First contact through the contact
 * address"; docs/protocol/prekeys.md): our prekey store and contact-address queue (bundle and
 * one-time prekeys published), first contacts we receive (contact requests) and what accepting
 * one asks for. Bodies from our contact-address queue come in through the links' inbound dispatch
 * (link/links.ts); this module returns what follows and imports no other step. A first contact we
 * start is intro.ts.
 */
import { equalBytes, toHex, wipe } from "../../../core/bytes.ts";
import type { LoftError } from "../../../core/errors.ts";
import { decodeIdentity, encodeIdentity } from "../../../core/identity/identity.ts";
import {
  acceptInitialMessage,
  createPrekeyStore,
  decodeInitialMessage,
  replenishOneTimePrekeys,
  rotateSignedPrekeys,
  signedPrekeyRotationDue,
} from "../../../core/prekey/index.ts";
import { preferredOrder } from "../../../core/relay/choice.ts";
import type { RelayMessage } from "../../../core/relay/client.ts";
import type { ContactId } from "./api.ts";
import {
  addressSerial,
  cryptoOf,
  type EngineContext,
  mailboxDelay,
  type Peer,
  peerFor,
  providerOf,
  relayBackoff,
  serial,
} from "./context.ts";
import {
  type AddressQueue,
  announcementOf,
  decodeAddress,
  decodeMailboxBody,
  encodeAddress,
  encodeTx,
  isMailboxUrl,
  readsOrder,
  SECRET,
  type TxQueue,
} from "./mailbox.ts";
import { follow, type Outcome } from "./outcome.ts";
import { refusalFor } from "./outgoing.ts";
import { saveRatchet } from "./peer-ratchet.ts";
import {
  ADDRESS_REF,
  decodePrekeyState,
  encodeAddressRef,
  encodePrekeyState,
  ONE_TIME_TARGET,
  oneTimeEntries,
  prekeyRatchetId,
  publishedBundle,
} from "./prekeys.ts";
import { ensureRx, sendByMailbox } from "./queues.ts";
import { judgeIdentity, recordIdentityChange, recordIdentityUpdate } from "./tofu.ts";
import { decodeAppMessage } from "./wire.ts";

export function scheduleAddressSetup(ctx: EngineContext, delayMs: number): void {
  if (ctx.stopped || !ctx.pool) return;
  clearTimeout(ctx.addressTimer);
  ctx.addressTimer = setTimeout(() => {
    ctx.addressReady = setupAddress(ctx);
  }, delayMs);
}

/**
 * Our prekey store (created once), our contact-address queue (created once, subscribed), the
 * bundle and one-time prekeys published there (rotated weekly, replenished when used).
 */
export function setupAddress(ctx: EngineContext): Promise<void> {
  return addressSerial(ctx, async () => {
    const pool = ctx.pool;
    if (!pool || ctx.relayUrls.length === 0 || ctx.stopped) return;
    const secret = ctx.user.privateIdentityKey;
    const now = Date.now();
    try {
      if (!ctx.prekeys) {
        const blob = await ctx.storage.loadSecret(SECRET.prekeys);
        if (blob) {
          const r = decodePrekeyState(blob);
          wipe(blob);
          if (r.ok) ctx.prekeys = r.value;
          else ctx.cfg.log(`stored prekeys unreadable: ${r.error.code}`);
        }
        if (!ctx.prekeys) {
          const store = createPrekeyStore({
            identitySecretKey: secret,
            now,
            oneTimePrekeys: ONE_TIME_TARGET,
            oneTimeKemPrekeys: ONE_TIME_TARGET,
          });
          ctx.prekeys = { store, published: 0, bundleSpk: 0 };
          await savePrekeys(ctx);
        }
      }
      const pk = ctx.prekeys;
      // Weekly, early when junk first contacts fill the replay cache, and once for a store from
      // before signed bundle times; the new bundle is published below (its SPK id changed).
      const due = signedPrekeyRotationDue(pk.store, now);
      if (due) {
        pk.store = rotateSignedPrekeys(pk.store, { identitySecretKey: secret, now });
        await savePrekeys(ctx);
        ctx.cfg.log(`signed prekey rotated (${due})`);
      }
      if (
        pk.store.oneTimePrekeys.length < ONE_TIME_TARGET ||
        pk.store.oneTimeKemPrekeys.length < ONE_TIME_TARGET
      ) {
        pk.store = replenishOneTimePrekeys(pk.store, {
          identitySecretKey: secret,
          oneTimePrekeys: ONE_TIME_TARGET,
          oneTimeKemPrekeys: ONE_TIME_TARGET,
        });
        await savePrekeys(ctx);
      }
      if (!ctx.address) {
        const blob = await ctx.storage.loadSecret(SECRET.address);
        let address = blob ? decodeAddress(blob) : undefined;
        if (blob) wipe(blob);
        if (!address?.ok) {
          // On the first relay the user listed, or the next reachable one when it is down
          // (core/relay/choice.ts; mailbox.md §1, "Several relays"): the address is in our link.
          let created: AddressQueue | undefined;
          let last: unknown;
          for (const url of preferredOrder(ctx.relayUrls, (u) => pool.isDown(u))) {
            try {
              const client = await pool.client(url);
              created = { url, queue: await client.createQueue({ subscribe: false }) };
              break;
            } catch (e) {
              last = e;
            }
          }
          if (!created) throw last;
          address = { ok: true, value: created };
          await ctx.storage.saveSecret(SECRET.address, encodeAddress(address.value));
        }
        ctx.address = address.value;
        pool.subscribe(address.value.url, address.value.queue);
      }
      const address = ctx.address;
      const spkId = pk.store.signedPrekeys[0]!.id;
      const fresh = oneTimeEntries(pk.store, pk.published);
      if (pk.bundleSpk !== spkId || fresh.entries.length > 0) {
        const client = await pool.client(address.url);
        await client.publishPrekeys(address.queue, {
          ...(pk.bundleSpk !== spkId ? { bundle: publishedBundle(pk.store) } : {}),
          oneTimePrekeys: fresh.entries,
        });
        pk.bundleSpk = spkId;
        pk.published = fresh.last;
        await savePrekeys(ctx);
        ctx.cfg.log(`prekeys published (${fresh.entries.length} one-time)`);
      }
      ctx.addressFailures = 0;
    } catch (e) {
      ctx.addressFailures++;
      ctx.cfg.log(`contact address not ready: ${(e as LoftError).code ?? (e as Error).message}`);
      scheduleAddressSetup(ctx, relayBackoff(ctx, ctx.addressFailures));
    }
  });
}

async function savePrekeys(ctx: EngineContext): Promise<void> {
  if (!ctx.prekeys) return;
  const blob = encodePrekeyState(ctx.prekeys);
  try {
    await ctx.storage.saveSecret(SECRET.prekeys, blob);
  } finally {
    wipe(blob);
  }
}

/** Our contact address for our link, once the prekeys are published there (waits at most 10 s). */
export async function contactLinkRefs(ctx: EngineContext): Promise<Record<string, Uint8Array> | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    ctx.addressReady,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 10_000);
    }),
  ]);
  clearTimeout(timer);
  const a = ctx.address;
  if (!a || !ctx.prekeys || ctx.prekeys.bundleSpk === 0) return undefined;
  return { [ADDRESS_REF]: encodeAddressRef({ url: a.url, sid: a.queue.senderId }) };
}

/** What one body from our contact-address queue asks of the links (link/links.ts). */
export type IntroBody =
  /** Handled here: acknowledged, or left on the relay for later. */
  | { kind: "done" }
  /**
   * A repeat of a first contact already accepted: read `message` as a mailbox message from
   * `peer` (in its serialized order), then `ack`.
   */
  | { kind: "repeat"; peer: Peer; message: Uint8Array; ack: () => Promise<void> }
  /** A first contact stored and acknowledged: a request for the user, or accepted at once. */
  | { kind: "accepted"; peer: Peer; request: boolean }
  /** A known contact presented a changed identity: recorded as pending, the contact changed. */
  | { kind: "identity-change"; contactId: ContactId };

/** Responder: one body from our contact-address queue (inside addressChain); ACKed when done. */
export async function onIntroBody(
  ctx: EngineContext,
  url: string,
  address: AddressQueue,
  m: RelayMessage,
): Promise<IntroBody> {
  const ack = async () => {
    await ctx.pool?.ack(url, address.queue, m.msgId);
  };
  const done: IntroBody = { kind: "done" };
  const item = decodeMailboxBody(m.body);
  if (!item.ok || item.value.type !== "intro") return ack().then(() => done);
  const bytes = item.value.message;
  const initial = decodeInitialMessage(bytes);
  if (!initial.ok) return ack().then(() => done);
  // A repeat of a first contact already accepted: the ratchet message goes to that contact.
  const known = ctx.bases.get(toHex(initial.value.header.baseKey));
  if (known) {
    const peer = ctx.peers.get(known);
    // Rejected, or an identity decision pending: dropped, like a new first contact from them.
    const c = peer ? await ctx.storage.getContact(known) : undefined;
    if (peer && c && c.trust !== "rejected" && !c.pending)
      return { kind: "repeat", peer, message: initial.value.ratchetMessage, ack };
    return ack().then(() => done);
  }
  const pk = ctx.prekeys;
  if (!pk) return done; // not set up yet: redelivered later
  const accepted = await acceptInitialMessage(pk.store, bytes, { now: Date.now(), ...cryptoOf(ctx) });
  if (!accepted.ok) {
    ctx.cfg.log(`refused a first-contact message: ${accepted.error.code}`);
    return ack().then(() => done);
  }
  // The store (one-time prekeys used, replay cache) is saved only once the first contact is
  // stored: a crash before that redelivers the message, which must then still be accepted.
  const consume = async () => {
    pk.store = accepted.value.store;
    await savePrekeys(ctx);
    scheduleAddressSetup(ctx, 0); // publish replacements for the one-time prekeys used
  };
  const finish = async (result: IntroBody = done) => {
    await consume();
    await ack();
    return result;
  };
  const app = decodeAppMessage(accepted.value.plaintext);
  wipe(accepted.value.plaintext);
  if (!app.ok || app.value.t !== "intro") return finish();
  const intro = app.value;
  const identity = await decodeIdentity(providerOf(ctx), intro.i);
  if (!identity.ok || !equalBytes(identity.value.verified.identity_key, accepted.value.senderIdentityKey)) {
    ctx.cfg.log("refused a first-contact message: the identity inside is not the sender's");
    return finish();
  }
  const id = toHex(accepted.value.senderIdentityKey);
  const now = Date.now();
  let c = await ctx.storage.getContact(id);
  if (c?.trust === "rejected" || c?.pending) return finish(); // declined or blocked: gets nothing
  if (!c) {
    let requests = 0;
    for (const p of ctx.peers.values()) if (p.request) requests++;
    if (requests >= ctx.cfg.maxContactRequests) {
      ctx.cfg.log("dropped a first contact from a stranger: too many contact requests waiting");
      return finish();
    }
    c = {
      id,
      identity: encodeIdentity(identity.value),
      username: identity.value.verified.username,
      trust: "unknown",
      firstSeen: now,
      lastSeen: now,
      endpoints: { signaling: [], relay: [intro.u] },
      request: { at: now },
    };
    await ctx.storage.addContact(c);
  } else {
    const judged = await judgeIdentity(ctx, c, identity.value, now);
    if (judged.verdict === "updated") {
      await recordIdentityUpdate(ctx, id, identity.value, judged.renamedFrom);
    } else if (judged.verdict !== "unchanged") {
      if (judged.verdict === "pending") {
        await recordIdentityChange(ctx, id, judged.change, identity.value, now);
        return finish({ kind: "identity-change", contactId: id });
      }
      return finish();
    }
  }
  const peer = peerFor(ctx, c);
  peer.request = c.request !== undefined;
  peer.blocked = refusalFor(c) !== undefined;
  if (isMailboxUrl(intro.u)) {
    const tx: TxQueue = {
      url: intro.u,
      queue: { senderId: intro.s.slice(), senderAuthSecret: intro.k.slice() },
    };
    await ctx.storage.saveSecret(SECRET.tx(id), encodeTx(tx));
    peer.tx = tx;
  }
  await serial(peer, async () => {
    const hadRatchet = peer.ratchet !== undefined || (await ctx.storage.loadSession(id)) !== undefined;
    await saveRatchet(ctx, peer, {
      id: prekeyRatchetId(accepted.value.baseKey),
      state: accepted.value.state,
    });
    if (hadRatchet) ctx.cfg.log(`first contact from ${id.slice(0, 8)} replaced a ratchet`);
  });
  await ctx.storage.saveSecret(SECRET.base(id), accepted.value.baseKey);
  ctx.bases.set(toHex(accepted.value.baseKey), id);
  await consume();
  await ack();
  ctx.cfg.log(`first contact from ${id.slice(0, 8)}${peer.request ? " (a request)" : ""}`);
  return { kind: "accepted", peer, request: peer.request };
}

/**
 * We accepted a first contact (the user accepted a request, or it came from a known contact):
 * tell them our mailbox through theirs — our first reply, which completes their side — then send
 * the receipts we held back and whatever we wrote meanwhile.
 */
export async function afterAccept(ctx: EngineContext, peer: Peer): Promise<Outcome[]> {
  const out: Outcome[] = [];
  const rx = await ensureRx(ctx, peer);
  if (rx && peer.tx && !peer.live)
    await sendByMailbox(ctx, peer, { t: "mbox", ...announcementOf(rx, readsOrder(peer.tx)) }, out);
  if (peer.receipts.size > 0) out.push(follow({ step: "receipts" }));
  out.push(follow({ step: "allow-mailbox", delayMs: mailboxDelay(ctx, peer) }));
  out.push(follow({ step: "maybe-dial", why: "changed" }));
  return out;
}
