/**
 * A first contact we start through the contact's address (docs/protocol/mailbox.md §5;
 * docs/protocol/prekeys.md): PQXDH against the bundle published there, our ratchet starting as
 * Alice, and the first message (our identity and our mailbox) left on the relay before any other.
 * A part used by relay-mailbox.ts when the outbox goes to the `intro` route; the receiving side
 * is first-contact.ts. Imports no step; presence and timers go into `out`.
 */
import { wipe } from "../../../core/bytes.ts";
import { isLoftError } from "../../../core/errors.ts";
import { encodeIdentity } from "../../../core/identity/identity.ts";
import { initiateSession } from "../../../core/prekey/index.ts";
import {
  addressSerial,
  cryptoOf,
  type EngineContext,
  emit,
  type Peer,
  relayBackoff,
  serial,
} from "./context.ts";
import { relayUnreachable } from "./errors.ts";
import { introBody, MAX_PART, SECRET } from "./mailbox.ts";
import { type Outcome, presence, schedule } from "./outcome.ts";
import { saveRatchet } from "./peer-ratchet.ts";
import { encodeIntro, fetchedBundle, type IntroState, prekeyRatchetId } from "./prekeys.ts";
import { ensureRx, newDeposit, sendDeposit } from "./queues.ts";
import type { RelayConnections } from "./transport.ts";
import { encodeAppMessage } from "./wire.ts";

/**
 * Make sure the first-contact session exists and its first message (our identity and our
 * mailbox for the contact) is on the relay, before any other message goes after it.
 */
export async function readyIntro(ctx: EngineContext, peer: Peer, out: Outcome[]): Promise<boolean> {
  if (!peer.intro && !(await startIntro(ctx, peer, out))) return false;
  const intro = peer.intro;
  if (!intro) return false;
  if (intro.sent) return true;
  const target = { url: intro.url, queue: { senderId: intro.sid } };
  const sent = await sendDeposit(ctx, peer, newDeposit("", "intro", target, [introBody(intro.first)]), out);
  if (!sent) return false;
  intro.sent = true;
  await ctx.storage.saveSecret(SECRET.intro(peer.id), encodeIntro(intro));
  ctx.cfg.log(`first contact with ${peer.id.slice(0, 8)} left at their contact address`);
  return true;
}

/** PQXDH (core/prekey) against the bundle at the contact's address; our ratchet starts as Alice. */
async function startIntro(ctx: EngineContext, peer: Peer, out: Outcome[]): Promise<boolean> {
  const ref = peer.addressRef;
  const pool = ctx.pool;
  if (!ref || !pool) return false;
  await ctx.addressReady;
  const rx = await ensureRx(ctx, peer);
  const failed = (code: string, message?: string) => {
    peer.relayFailures++;
    ctx.cfg.log(`first contact with ${peer.id.slice(0, 8)} not started: ${code}`);
    if (!peer.live)
      out.push(
        presence(
          "offline",
          undefined,
          message
            ? { kind: "relay-unreachable", url: ref.url, message }
            : relayUnreachable(ref.url, peer.name, code),
        ),
      );
    out.push(schedule("mailbox", relayBackoff(ctx, peer.relayFailures), { step: "flush" }));
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
      ...cryptoOf(ctx),
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
export async function introDone(ctx: Pick<EngineContext, "storage">, peer: Peer): Promise<void> {
  if (!peer.intro) return;
  peer.intro = undefined;
  peer.deposit = undefined;
  await ctx.storage.deleteSecret(SECRET.intro(peer.id)).catch(() => {});
}
