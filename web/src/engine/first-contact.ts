/**
 * Offline first contact (docs/protocol/mailbox.md §5 "First contact through the contact address";
 * docs/protocol/prekeys.md): our prekey store and contact-address queue (bundle and one-time
 * prekeys published), starting a first contact through a contact's address, and contact requests
 * from first contacts we receive.
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { equalBytes, toHex, wipe } from "../../../core/bytes.ts";
import { isLoftError, type LoftError } from "../../../core/errors.ts";
import { decodeIdentity, encodeIdentity } from "../../../core/identity/identity.ts";
import {
  acceptInitialMessage,
  createPrekeyStore,
  decodeInitialMessage,
  initiateSession,
  replenishOneTimePrekeys,
  rotateSignedPrekeys,
  signedPrekeyRotationDue,
} from "../../../core/prekey/index.ts";
import type { RelayMessage } from "../../../core/relay/client.ts";
import { SEND_ID_LENGTH } from "../../../core/relay/protocol.ts";
import {
  type EngineContext,
  emit,
  type Peer,
  peerFor,
  reachableLive,
  serial,
  setPresence,
} from "./context.ts";
import { maybeDial } from "./dialing.ts";
import { relayUnreachable } from "./errors.ts";
import {
  type AddressQueue,
  decodeAddress,
  decodeMailboxBody,
  encodeAddress,
  encodeTx,
  introBody,
  MAX_PART,
  SECRET,
  type TxQueue,
} from "./mailbox.ts";
import { flush, receive, sendReceipts } from "./messages.ts";
import { refusalFor } from "./outgoing.ts";
import { saveRatchet } from "./peer-ratchet.ts";
import {
  ADDRESS_REF,
  decodePrekeyState,
  encodeAddressRef,
  encodeIntro,
  encodePrekeyState,
  fetchedBundle,
  type IntroState,
  ONE_TIME_TARGET,
  oneTimeEntries,
  prekeyRatchetId,
  publishedBundle,
} from "./prekeys.ts";
import { resubscribe } from "./presence.ts";
import { allowMailbox, ensureRx, relayBackoff, sendByMailbox, sendDeposit } from "./relay-mailbox.ts";
import { judgeIdentity, recordIdentityChange, recordIdentityUpdate } from "./tofu.ts";
import type { RelayConnections } from "./transport.ts";
import { decodeAppMessage, encodeAppMessage } from "./wire.ts";

/** Run `task` after every earlier prekey-store / contact-address task. */
export function addressSerial<T>(ctx: EngineContext, task: () => Promise<T>): Promise<T> {
  const run = ctx.addressChain.then(task, task);
  ctx.addressChain = run.catch(() => {});
  return run;
}

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
    const url = ctx.relayUrls[0];
    if (!pool || !url || ctx.stopped) return;
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
          const client = await pool.client(url);
          const queue = await client.createQueue({ subscribe: false });
          address = { ok: true, value: { url, queue } };
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

export async function savePrekeys(ctx: EngineContext): Promise<void> {
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

/**
 * Initiator: make sure the first-contact session exists and its first message (our identity and
 * our mailbox for the contact) is on the relay, before any other message goes after it.
 */
export async function readyIntro(ctx: EngineContext, peer: Peer): Promise<boolean> {
  if (!peer.intro && !(await startIntro(ctx, peer))) return false;
  const intro = peer.intro;
  if (!intro) return false;
  if (intro.sent) return true;
  const sent = await sendDeposit(ctx, peer, {
    messageId: "",
    route: "intro",
    target: { url: intro.url, queue: { senderId: intro.sid } },
    bodies: [{ body: introBody(intro.first), sendId: randomBytes(SEND_ID_LENGTH) }],
    next: 0,
  });
  if (!sent) return false;
  intro.sent = true;
  await ctx.storage.saveSecret(SECRET.intro(peer.id), encodeIntro(intro));
  ctx.cfg.log(`first contact with ${peer.id.slice(0, 8)} left at their contact address`);
  return true;
}

/** PQXDH (core/prekey) against the bundle at the contact's address; our ratchet starts as Alice. */
export async function startIntro(ctx: EngineContext, peer: Peer): Promise<boolean> {
  const ref = peer.addressRef;
  const pool = ctx.pool;
  if (!ref || !pool) return false;
  await ctx.addressReady;
  const rx = await ensureRx(ctx, peer);
  const failed = (code: string, message?: string) => {
    peer.relayFailures++;
    ctx.cfg.log(`first contact with ${peer.id.slice(0, 8)} not started: ${code}`);
    if (!peer.live)
      setPresence(
        ctx,
        peer,
        "offline",
        undefined,
        message
          ? { kind: "relay-unreachable", url: ref.url, message }
          : relayUnreachable(ref.url, peer.name, code),
      );
    clearTimeout(peer.mailboxTimer);
    peer.mailboxTimer = setTimeout(() => void flush(ctx, peer), relayBackoff(ctx, peer.relayFailures));
    return false;
  };
  if (!rx || !ctx.prekeys) return failed("no-mailbox");
  let fetched: Awaited<ReturnType<Awaited<ReturnType<RelayConnections["client"]>>["fetchPrekeys"]>>;
  try {
    fetched = await (await pool.client(ref.url)).fetchPrekeys(ref.sid);
  } catch (e) {
    const code = isLoftError(e) ? e.code : "internal";
    if (code === "LOFT_ERR_RELAY_NO_BUNDLE" || code === "LOFT_ERR_RELAY_AUTH")
      return failed(
        code,
        `${peer.name}'s contact address has no keys for a first message yet. Messages wait on this device until you are both online.`,
      );
    return failed(code);
  }
  const bundle = fetchedBundle(fetched);
  if (!bundle.ok) return failed(bundle.error.code, `${peer.name}'s contact address holds unusable keys.`);
  const plaintext = encodeAppMessage({
    t: "intro",
    i: new Uint8Array(encodeIdentity(ctx.user.identity)),
    u: rx.url,
    s: new Uint8Array(rx.queue.senderId),
    k: new Uint8Array(rx.senderSecret),
  });
  const started = await addressSerial(ctx, async () =>
    initiateSession({
      sender: ctx.prekeys!.store,
      bundle: bundle.value,
      recipientIdentityKey: peer.key,
      plaintext,
      now: Date.now(),
    }),
  );
  wipe(plaintext);
  if (!started.ok && started.error.code === "LOFT_ERR_STALE_PREKEY")
    // Genuine but too old (docs/protocol/prekeys.md, "Bundle"): the contact has not been online
    // to renew them — not a verification failure.
    return failed(
      started.error.code,
      `The keys at ${peer.name}'s contact address are too old to use: ${peer.name} has not been online for a long time. Messages wait on this device until you are both online.`,
    );
  if (!started.ok) {
    // Keys signed by someone else than the contact of the link: never use them.
    emit(ctx, {
      type: "error",
      contactId: peer.id,
      error: {
        kind: "verification-failed",
        check: "identity-signature",
        message: `Verification failed: the keys at ${peer.name}'s contact address are not ${peer.name}'s. Nothing was sent.`,
      },
    });
    return failed(
      started.error.code,
      `Verification failed for ${peer.name}'s contact address. Nothing was sent.`,
    );
  }
  if (started.value.message.length > MAX_PART)
    return failed("too-large", "Your identity is too large for a first message.");
  const intro: IntroState = {
    url: ref.url,
    sid: ref.sid,
    header: started.value.header,
    first: started.value.message,
    sent: false,
  };
  await serial(peer, () =>
    saveRatchet(ctx, peer, {
      id: prekeyRatchetId(started.value.header.baseKey),
      state: started.value.state,
    }),
  );
  await ctx.storage.saveSecret(SECRET.intro(peer.id), encodeIntro(intro));
  peer.intro = intro;
  return true;
}

/** The contact replied: our first contact is complete; later messages go to their mailbox. */
export async function introDone(ctx: EngineContext, peer: Peer): Promise<void> {
  if (!peer.intro) return;
  peer.intro = undefined;
  peer.deposit = undefined;
  await ctx.storage.deleteSecret(SECRET.intro(peer.id)).catch(() => {});
}

/** Responder: one body from our contact-address queue (inside addressChain); ACKed when done. */
export async function onIntroBody(
  ctx: EngineContext,
  url: string,
  address: AddressQueue,
  m: RelayMessage,
): Promise<void> {
  const ack = () => ctx.pool?.ack(url, address.queue, m.msgId);
  const item = decodeMailboxBody(m.body);
  if (!item.ok || item.value.type !== "intro") return ack();
  const bytes = item.value.message;
  const initial = decodeInitialMessage(bytes);
  if (!initial.ok) return ack();
  // A repeat of a first contact already accepted: the ratchet message goes to that contact.
  const known = ctx.bases.get(toHex(initial.value.header.baseKey));
  if (known) {
    const peer = ctx.peers.get(known);
    // Rejected, or an identity decision pending: dropped, like a new first contact from them.
    const c = peer ? await ctx.storage.getContact(known) : undefined;
    if (peer && c && c.trust !== "rejected" && !c.pending)
      await serial(peer, () => receive(ctx, peer, undefined, initial.value.ratchetMessage));
    return ack();
  }
  const pk = ctx.prekeys;
  if (!pk) return; // not set up yet: redelivered later
  const accepted = acceptInitialMessage(pk.store, bytes, { now: Date.now() });
  if (!accepted.ok) {
    ctx.cfg.log(`refused a first-contact message: ${accepted.error.code}`);
    return ack();
  }
  // The store (one-time prekeys used, replay cache) is saved only once the first contact is
  // stored: a crash before that redelivers the message, which must then still be accepted.
  const consume = async () => {
    pk.store = accepted.value.store;
    await savePrekeys(ctx);
    scheduleAddressSetup(ctx, 0); // publish replacements for the one-time prekeys used
  };
  const done = async () => {
    await consume();
    return ack();
  };
  const app = decodeAppMessage(accepted.value.plaintext);
  wipe(accepted.value.plaintext);
  if (!app.ok || app.value.t !== "intro") return done();
  const intro = app.value;
  const identity = decodeIdentity(intro.i);
  if (!identity.ok || !equalBytes(identity.value.verified.identity_key, accepted.value.senderIdentityKey)) {
    ctx.cfg.log("refused a first-contact message: the identity inside is not the sender's");
    return done();
  }
  const id = toHex(accepted.value.senderIdentityKey);
  const now = Date.now();
  let c = await ctx.storage.getContact(id);
  if (c?.trust === "rejected" || c?.pending) return done(); // declined or blocked: gets nothing
  if (!c) {
    let requests = 0;
    for (const p of ctx.peers.values()) if (p.request) requests++;
    if (requests >= ctx.cfg.maxContactRequests) {
      ctx.cfg.log("dropped a first contact from a stranger: too many contact requests waiting");
      return done();
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
        ctx.contactChanged(id);
      }
      return done();
    }
  }
  const peer = peerFor(ctx, c);
  peer.request = c.request !== undefined;
  peer.blocked = refusalFor(c) !== undefined;
  if (/^wss?:\/\//.test(intro.u)) {
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
  if (peer.request) {
    resubscribe(ctx);
    emit(ctx, { type: "contact-added", contactId: id });
  } else void afterAccept(ctx, peer);
}

/**
 * We accepted a first contact (the user accepted a request, or it came from a known contact):
 * tell them our mailbox through theirs — our first reply, which completes their side — send the
 * receipts we held back and whatever we wrote meanwhile.
 */
export async function afterAccept(ctx: EngineContext, peer: Peer): Promise<void> {
  const rx = await ensureRx(ctx, peer);
  if (rx && peer.tx && !peer.live)
    await sendByMailbox(ctx, peer, {
      t: "mbox",
      u: rx.url,
      s: new Uint8Array(rx.queue.senderId),
      k: new Uint8Array(rx.senderSecret),
    });
  if (peer.receipts.size > 0) void sendReceipts(ctx, peer);
  allowMailbox(ctx, peer, reachableLive(ctx, peer) ? ctx.cfg.mailboxDelayMs : 0);
  maybeDial(ctx, peer, "changed");
}
