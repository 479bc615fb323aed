/**
 * Live sessions, the step (docs/protocol/chat.md §2 "The session", §3 "Session frames and HELLO",
 * §6 "Heartbeats, dead links, reconnect"): TOFU on the identity a Noise handshake verified, the
 * HELLO exchange that keeps or re-bootstraps the ratchet, what a session coming up or closing
 * asks for, heartbeats and the frames read from a session. The link controller
 * (link/controller.ts) runs the session's life; this module returns outcomes and imports no other
 * step.
 */
import { equalBytes } from "../../../core/bytes.ts";
import { canSend, type RatchetKeyPair } from "../../../core/ratchet/index.ts";
import type { Session } from "../../../core/session/index.ts";
import type { LinkPath } from "./api.ts";
import { type EngineContext, emit, type Live, mailboxDelay, type Peer, Refused, timeout } from "./context.ts";
import { closeDetailForLog, closeRule, describeFailure } from "./errors.ts";
import { cancel, follow, type Outcome, presence, repeat } from "./outcome.ts";
import { refusalFor } from "./outgoing.ts";
import { loadRatchet, saveRatchet } from "./peer-ratchet.ts";
import { bootstrapChatRatchet } from "./ratchet-store.ts";
import { judgeIdentity, recordIdentityChange, recordIdentityUpdate } from "./tofu.ts";
import {
  CHAT_PROTOCOL_VERSION,
  decodeSessionFrame,
  encodeHello,
  encodePing,
  encodePong,
  type Hello,
  PING_BYTES,
} from "./wire.ts";

/** What the session step reads of the engine: timings, signaling (for the mailbox delay), our key, storage, the listeners it tells. */
export type SessionContext = Pick<
  EngineContext,
  "cfg" | "stopped" | "signaling" | "selfKey" | "storage" | "listeners"
>;

/**
 * TOFU on the identity the handshake verified (SREMP §identity; docs/protocol/identity.md, "Trust
 * on first use"). Resolves when the session may go on; throws `Refused` otherwise, after adding
 * what the person should see to `out`.
 */
export async function checkIdentity(
  ctx: SessionContext,
  peer: Peer,
  session: Session,
  out: Outcome[],
): Promise<void> {
  const c = await ctx.storage.getContact(peer.id);
  const refusal = refusalFor(c);
  if (refusal || !c) throw new Refused(c?.pending ? "identity-change" : "contact-blocked");
  const offered = session.remoteIdentity;
  const now = Date.now();
  const judged = await judgeIdentity(ctx, c, offered, now);
  switch (judged.verdict) {
    case "unchanged": {
      // `lastSeen` is written beside the session's start, not before it: HELLO and the outbox
      // need not wait for a sealed contact write (storage orders the writes of one record), and
      // a failed write costs only the date (bench/README.md, "Session 10: AES-GCM from the
      // first session"). The first verified connection with this contact: the app stops saying
      // we are waiting for them to accept us (web/src/app/contact-status.ts reads `lastSeen`),
      // so it reloads the contact once the write is in.
      const first = c.lastSeen <= c.firstSeen;
      ctx.storage.touchContact(peer.id, now).then(
        () => {
          if (first) emit(ctx, { type: "contact-updated", contactId: peer.id });
        },
        (e: unknown) => ctx.cfg.log(`last seen not stored: ${(e as Error).name}`),
      );
      return;
    }
    case "updated":
      await recordIdentityUpdate(ctx, peer.id, offered, judged.renamedFrom);
      await ctx.storage.touchContact(peer.id, now);
      peer.name = offered.verified.username;
      emit(ctx, { type: "contact-updated", contactId: peer.id });
      return;
    case "pending": {
      session.close("identity-change");
      const pending = await recordIdentityChange(ctx, peer.id, judged.change, offered, now);
      peer.blocked = true;
      out.push(presence("offline", undefined, refusalFor({ ...c, pending })));
      throw new Refused("identity-change");
    }
    default:
      throw new Refused("contact-blocked");
  }
}

/** HELLO both ways; keep the stored ratchet if both ends hold the same one, else start anew. */
export async function hello(
  ctx: SessionContext,
  peer: Peer,
  session: Session,
  keyPair: RatchetKeyPair | undefined,
): Promise<Hello> {
  const { ratchet: stored, unreadable } = await loadRatchet(ctx, peer);
  session.send(
    encodeHello({
      version: CHAT_PROTOCOL_VERSION,
      ...(stored ? { ratchetId: stored.id } : {}),
      canSend: stored ? canSend(stored.state) : false,
    }),
  );
  let bytes: Uint8Array;
  try {
    bytes = await timeout(session.receive(), ctx.cfg.helloTimeoutMs, "hello-timeout");
  } catch (e) {
    session.close(e instanceof Refused ? e.reason : "LOFT_ERR_LINK_CLOSED");
    throw e;
  }
  const frame = decodeSessionFrame(bytes);
  if (!frame.ok || frame.value.type !== "hello" || frame.value.hello.version !== CHAT_PROTOCOL_VERSION) {
    const code = frame.ok ? "LOFT_ERR_UNSUPPORTED_VERSION" : frame.error.code;
    session.close(code);
    throw new Refused(code);
  }
  const theirs = frame.value.hello;
  if (stored && theirs.ratchetId && equalBytes(stored.id, theirs.ratchetId)) return theirs;
  // No shared ratchet: start one from this handshake (both ends decide the same way).
  const fresh = await bootstrapChatRatchet(session, ctx.selfKey, keyPair, ctx.cfg.crypto);
  if (!fresh.ok) {
    session.close(fresh.error.code);
    throw new Refused(fresh.error.code);
  }
  await saveRatchet(ctx, peer, fresh.value);
  const peerHad = theirs.ratchetId !== undefined;
  if (stored || unreadable || peerHad) {
    // Visible, never silent (docs/protocol/chat.md, "Lost ratchet state").
    const who =
      !stored && peerHad
        ? "this device had lost the previous one"
        : stored && !peerHad
          ? `${peer.name}'s device had lost the previous one`
          : "the previous one no longer matched on both devices";
    ctx.cfg.log(`ratchet re-bootstrapped with ${peer.id.slice(0, 8)}`);
    emit(ctx, {
      type: "error",
      contactId: peer.id,
      error: {
        kind: "internal",
        message: `Started a new secure session with ${peer.name}: ${who}. Messages not yet delivered are sent again.`,
      },
    });
  }
  // Both ends now hold fresh states: only the Noise initiator's (Alice's) can send yet.
  return { ...theirs, canSend: session.role === "responder" };
}

/** A verified session with a HELLO exchanged, as the contact's live session. */
export function newLive(session: Session, path: LinkPath): Live {
  const now = Date.now();
  return { session, path, lastInbound: now, sent: new Set(), announced: false, pinging: false, tickAt: now };
}

/**
 * What a session that just became the contact's live session asks for: heartbeats, no retry and
 * no mailbox while it lasts, the upgrade to direct when it runs on the relay, "online", then the
 * outbox, our mailbox announcement and held-back receipts.
 */
export function sessionUp(ctx: SessionContext, peer: Peer, path: LinkPath): Outcome[] {
  peer.failures = 0;
  peer.refusedUs = false;
  peer.relayFirst = false; // a session is up: the next loss decides again
  peer.mailboxAt = Number.POSITIVE_INFINITY;
  const out: Outcome[] = [
    repeat("heartbeat", ctx.cfg.heartbeatIntervalMs, { step: "heartbeat" }),
    cancel("retry"),
    cancel("mailbox"),
  ];
  if (path === "relay") out.push(follow({ step: "plan-upgrade" }));
  else {
    out.push(cancel("upgrade"));
    peer.upgradeFailures = 0;
  }
  out.push(presence("online", path));
  return out;
}

/** What follows once the live session is running (after the optional ratchet sync). */
export function sessionRunning(peer: Peer): Outcome[] {
  const out = [follow({ step: "flush" }), follow({ step: "announce" })];
  if (peer.receipts.size > 0) out.push(follow({ step: "receipts" }));
  return out;
}

/**
 * One turn of the event loop: what arrived while the loop was blocked (a frozen tab, a long task,
 * a laptop waking) is handed over first. On wake the heartbeat's timer can run before the tasks
 * that carry frames received long ago (Node runs timers before the poll phase's I/O; a browser
 * picks among its task sources freely), so the timeout is judged after them: a `setImmediate`
 * (after the poll phase) where there is one, a posted message (a task of its own) in a browser.
 */
function nextTurn(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;
  if (immediate) return new Promise((resolve) => void immediate(resolve));
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      resolve();
    };
    port2.postMessage(null);
  });
}

const closed = (live: Live): boolean => live.session.state === "closed";

/**
 * One heartbeat tick of the live session (chat.md §6 "Heartbeats"): nothing received for
 * `heartbeatTimeoutMs` closes it (`heartbeat-timeout`), else a PING goes out. A stall of our own
 * event loop is not a silent peer (as the relay's worker watchdog, relay-ws/batch-watchdog.ts):
 * the verdict waits one turn of the loop (`nextTurn`), so frames that arrived during the stall are
 * read first; and a tick that comes at least two intervals after the previous one (the loop, not
 * the peer, was silent that long: frames still being decrypted may not count yet) sends a PING
 * instead and leaves the verdict to the next tick — once per silence (`sparedAt`), so a session
 * that really is silent is still closed. Await-safe: the session's `send` may be asynchronous;
 * the tick resolves once the PING is handed over, never rejects (a session closed meanwhile ends
 * through its close), and a tick while the previous PING is still being sent sends none, so PINGs
 * never pile up behind a slow send.
 */
export async function heartbeat(ctx: SessionContext, live: Live): Promise<void> {
  if (closed(live)) return;
  const tick = Date.now();
  const stalled = tick - live.tickAt >= 2 * ctx.cfg.heartbeatIntervalMs;
  live.tickAt = tick;
  if (tick - live.lastInbound > ctx.cfg.heartbeatTimeoutMs) {
    await nextTurn();
    if (closed(live)) return; // closed meanwhile (not narrowed: the await let it change)
    const now = Date.now();
    if (now - live.lastInbound > ctx.cfg.heartbeatTimeoutMs) {
      const spared = live.sparedAt !== undefined && live.sparedAt >= live.lastInbound;
      if (!stalled || spared) {
        live.session.close("heartbeat-timeout", "no frame from the peer within the heartbeat timeout");
        return;
      }
      live.sparedAt = now;
    }
  }
  await ping(live);
}

/**
 * One PING on the live session, resolved once it is handed over; none while the previous one is
 * still being sent (`Live.pinging`), so PINGs never pile up behind a slow send. Never rejects: a
 * session closed meanwhile ends through its close.
 */
async function ping(live: Live): Promise<void> {
  if (live.pinging) return;
  live.pinging = true;
  try {
    await live.session.send(encodePing(crypto.getRandomValues(new Uint8Array(PING_BYTES))));
  } catch {
    // closed meanwhile
  } finally {
    live.pinging = false;
  }
}

/**
 * The presence or reconnect probe's PING (chat.md §6, "Presence probe"), sent at once. It judges
 * nothing and leaves the heartbeat's own clock alone: `tickAt` moves only on the interval's tick,
 * and the one spare for a stall (`sparedAt`) is the heartbeat's. A probe that ran the heartbeat's
 * tick instead made the next real tick look on time after a stall of our own, or used up the
 * spare that tick was owed, and a healthy session was closed (chat.md §6, "A stall of our own is
 * not a silent peer").
 */
export function probe(live: Live): Promise<void> {
  return ping(live);
}

/**
 * The probe's window is over (`presenceProbeMs` after its PING at `since`): `answered` (a frame
 * came since), `silent` (the controller closes the session), `again` (PING once more and wait
 * another window) or `closed` (it ended meanwhile). The same tolerance as the heartbeat's for a
 * stall of our own (chat.md §6): the verdict waits one turn of the event loop, so frames that
 * arrived while it was blocked are read first; and a window that ends at least twice its length
 * after its PING — our loop, not the peer, was silent that long — is given one more window
 * instead of a verdict, once (`spared`), so a peer that really is gone is still closed.
 */
export async function probeVerdict(
  ctx: SessionContext,
  live: Live,
  since: number,
  spared: boolean,
): Promise<"answered" | "silent" | "again" | "closed"> {
  if (closed(live)) return "closed";
  if (live.lastInbound >= since) return "answered";
  await nextTurn();
  if (closed(live)) return "closed"; // (not narrowed: the await let it change)
  if (live.lastInbound >= since) return "answered";
  if (!spared && Date.now() - since >= 2 * ctx.cfg.presenceProbeMs) return "again";
  return "silent";
}

/**
 * One frame read from the live session: a ratchet message to read (in order, inside serial), or
 * `next` (a PING answered), or `stop` (the session was closed for a malformed frame). Await-safe:
 * it resolves once a PONG is handed to the session (whose `send` may be asynchronous), so the read
 * loop answers frames in the order they came; a failed send is caught (the session's close ends
 * the loop).
 */
export async function readFrame(
  live: Live,
  bytes: Uint8Array,
): Promise<
  | { kind: "ratchet"; message: Uint8Array }
  | { kind: "proxy"; message: Uint8Array }
  | { kind: "next" }
  | { kind: "stop" }
> {
  live.lastInbound = Date.now();
  const { session } = live;
  const frame = decodeSessionFrame(bytes);
  if (!frame.ok) {
    session.close(frame.error.code, frame.error.detail);
    return { kind: "stop" };
  }
  const f = frame.value;
  if (f.type === "ping") {
    try {
      await session.send(encodePong(f.nonce));
    } catch {
      // closed meanwhile
    }
  } else if (f.type === "ratchet") return { kind: "ratchet", message: f.message };
  else if (f.type === "proxy") return { kind: "proxy", message: f.message };
  else if (f.type === "hello") {
    session.close("LOFT_ERR_MALFORMED", "a second HELLO");
    return { kind: "stop" };
  }
  return { kind: "next" };
}

/** The live session closed (it was the contact's live one): what the person sees, what follows. */
export function sessionClosed(ctx: SessionContext, peer: Peer, reason: string, detail?: string): Outcome[] {
  const shown = closeDetailForLog(reason, detail);
  ctx.cfg.log(`session ${peer.id.slice(0, 8)} closed: ${reason}${shown ? ` (${shown})` : ""}`);
  const out: Outcome[] = [cancel("upgrade")];
  if (ctx.stopped) return out;
  // What this session did not get receipted goes to the mailbox if no new session comes up.
  out.push(follow({ step: "allow-mailbox", delayMs: mailboxDelay(ctx, peer) }));
  const peerOnPurpose = reason === "remote-closed" && detail !== undefined && closeRule(detail).peerOnPurpose;
  if (closeRule(reason).quiet || peerOnPurpose) {
    if (!peer.attempt) out.push(presence("offline"));
    return out;
  }
  const error = describeFailure(reason, peer.name, detail);
  if (error.kind === "verification-failed") emit(ctx, { type: "error", contactId: peer.id, error });
  if (!peer.attempt) out.push(presence("offline", undefined, error));
  out.push(follow({ step: "retry-later" }));
  return out;
}
