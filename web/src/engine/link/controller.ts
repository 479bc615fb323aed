/**
 * One contact's link controller (docs/design.md, "The link controller"): the only owner of the
 * contact's link state — its attempt and live session, as the state machine of state.ts — of all
 * its timers (timers.ts) and of what it shows as presence, and the inbound dispatch for the
 * contact: frames from its live session, bodies from our mailbox for it, a first contact
 * accepted. The steps (dialing, session, messages, relay-mailbox, first-contact) decide and do
 * their I/O; they return outcomes (outcome.ts) that the controller applies here, in order,
 * running the follow-ups they ask for. Steps may await core calls: everything that touches the
 * ratchet runs on the contact's task chain (`serial`), one inbound frame at a time, in order.
 */
import { wipe } from "../../../../core/bytes.ts";
import type { LinkCloseOptions } from "../../../../core/link/link.ts";
import { type PreparedEphemerals, suiteOf, wipeEphemerals } from "../../../../core/noise/index.ts";
import { MESSAGE_PREFIX_LEN } from "../../../../core/ratchet/index.ts";
import type { RelayMessage } from "../../../../core/relay/client.ts";
import type { Session } from "../../../../core/session/index.ts";
import type { ContactRecord, EngineError, LinkPath, MessageId, Presence } from "../api.ts";
import {
  type Attempt,
  addressRefOf,
  type EngineContext,
  emit,
  type Live,
  mailboxDelay,
  type Peer,
  providerOf,
  Refused,
  serial,
  timeout,
} from "../context.ts";
import {
  attemptFailed,
  attemptPresence,
  dialDecision,
  directPathLost,
  handshake,
  logDropsOf,
  mayDialDirect,
  mayDialRelay,
  offerDecision,
  openedWithin,
  planUpgrade,
  prepareDialKeys,
  retryLater,
  upgradeDue,
} from "../dialing.ts";
import { describeFailure } from "../errors.ts";
import { isFileFrame } from "../files/wire.ts";
import { afterAccept } from "../first-contact.ts";
import { afterQueued, flushLive, receive, sendReceipts } from "../messages.ts";
import { cancel, type FollowUp, type Outcome, presence, schedule } from "../outcome.ts";
import { refusalFor } from "../outgoing.ts";
import { ratchetCanSend, sendApp } from "../peer-ratchet.ts";
import { receiveProxy } from "../proxy-link.ts";
import { announce, ensureRx, forgetMailbox, queueOf, retireOldRx } from "../queues.ts";
import { freshRatchetKeyPair } from "../ratchet-store.ts";
import {
  allowMailbox,
  flushMailbox,
  holdMailbox,
  receiveMailbox,
  rereadMailbox,
  waitsForHeld,
} from "../relay-mailbox.ts";
import {
  checkIdentity,
  heartbeat,
  hello,
  newLive,
  probe,
  probeVerdict,
  readFrame,
  sessionClosed,
  sessionRunning,
  sessionUp,
} from "../session.ts";
import type { BulkLane, IncomingOffer } from "../transport.ts";
import { FRAME } from "../wire.ts";
import { allowed, type LinkEvent, type LinkState, linkStateOf } from "./state.ts";

/**
 * A session closed by a stop, a person's action or a lost race, to a peer that is answering: its
 * link may wait, bounded, until the peer has the CLOSE (core/link/link.ts `LinkCloseInfo.orderly`,
 * docs/protocol/chat.md §6, "Stopping"). A failure or a silent peer closes at once.
 */
const ORDERLY: LinkCloseOptions = { orderly: true };

/** What a controller asks of the engine-wide links (links.ts). */
export interface LinkHub {
  /** Subscribe again to the presence of the contacts we watch. */
  resubscribe(): void;
}

export class LinkController {
  readonly #ctx: EngineContext;
  readonly peer: Peer;
  readonly #hub: LinkHub;
  #state: LinkState = "idle";

  constructor(ctx: EngineContext, peer: Peer, hub: LinkHub) {
    this.#ctx = ctx;
    this.peer = peer;
    this.#hub = hub;
  }

  get state(): LinkState {
    return this.#state;
  }

  // ---- outcomes ------------------------------------------------------------------------------

  /** Apply what a step returned, in order. After `stop`/`forget`, nothing is scheduled any more. */
  apply(outcomes: readonly Outcome[]): void {
    for (const o of outcomes) {
      switch (o.kind) {
        case "presence":
          this.#setPresence(o.status, o.path, o.error, o.directUnavailable ?? false);
          break;
        case "schedule": {
          if (this.#state === "stopped") break;
          if (o.ifIdle && this.peer.timers.has(o.timer)) break;
          const run = () => this.#follow(o.next);
          if (o.every) this.peer.timers.every(o.timer, o.ms, run);
          else this.peer.timers.set(o.timer, o.ms, run);
          break;
        }
        case "cancel":
          this.peer.timers.clear(o.timer);
          break;
        case "follow":
          this.#follow(o.next);
          break;
      }
    }
  }

  #follow(f: FollowUp): void {
    const { peer } = this;
    const ctx = this.#ctx;
    if (this.#state === "stopped") return;
    switch (f.step) {
      case "maybe-dial":
        this.apply(dialDecision(ctx, peer, f.why));
        return;
      case "dial":
        void this.#dial(f.upgrade === true);
        return;
      case "retry-later":
        this.apply(retryLater(ctx, peer));
        return;
      case "plan-upgrade":
        this.apply(planUpgrade(ctx, peer));
        return;
      case "upgrade-due":
        this.apply(upgradeDue(peer));
        return;
      case "allow-mailbox":
        this.apply(allowMailbox(ctx, peer, f.delayMs));
        return;
      case "flush":
        void this.#flush();
        return;
      case "receipts":
        void sendReceipts(ctx, peer).then((o) => this.apply(o));
        return;
      case "announce":
        if (peer.live) void announce(ctx, peer, peer.live);
        return;
      case "heartbeat":
        if (peer.live) void heartbeat(ctx, peer.live);
        return;
      case "probe":
        if (peer.live) this.#probe(peer.live, Date.now(), f.reconnect === true, false);
        return;
      case "reread":
        void serial(peer, async () => {
          if (peer.rxHeld) this.apply(rereadMailbox(ctx, peer));
        });
        return;
      case "probe-due":
        void this.#probeDue(f);
        return;
      default: {
        // A follow-up added to outcome.ts without a case here fails the typecheck.
        const unhandled: never = f;
        ctx.cfg.log(`link ${peer.id.slice(0, 8)}: no handler for follow-up ${JSON.stringify(unhandled)}`);
      }
    }
  }

  /**
   * Probe `live` (chat.md §6, "Presence probe"): a PING now, the verdict `presenceProbeMs` later
   * on whatever arrived since `since`. The PING is not a heartbeat tick (session.ts `probe`).
   */
  #probe(live: Live, since: number, reconnect: boolean, spared: boolean): void {
    const due: FollowUp = { step: "probe-due", since };
    if (reconnect) due.reconnect = true;
    if (spared) due.spared = true;
    this.apply([schedule("probe", this.#ctx.cfg.presenceProbeMs, due)]);
    void probe(live);
  }

  /** The probe's window is over: the session answered, stays for one more window, or is closed. */
  async #probeDue(f: Extract<FollowUp, { step: "probe-due" }>): Promise<void> {
    const ctx = this.#ctx;
    const { peer } = this;
    const live = peer.live;
    if (!live) return;
    const verdict = await probeVerdict(ctx, live, f.since, f.spared === true);
    if (peer.live !== live || this.#state === "stopped") return;
    const short = peer.id.slice(0, 8);
    if (verdict === "answered") ctx.cfg.log(`presence probe ${short}: the live session answered`);
    else if (verdict === "again") {
      // Our own event loop stalled through the window (chat.md §6): one more, with a new PING.
      ctx.cfg.log(`presence probe ${short}: the window ended late (a stall of ours): probing once more`);
      this.#probe(live, f.since, f.reconnect === true, true);
    } else if (verdict === "silent" && f.reconnect)
      // Our own network changed under the session: it stopped answering, as a heartbeat
      // timeout says, only sooner (chat.md §6).
      this.#closeLive(
        live,
        "heartbeat-timeout",
        "our signaling connection came back and the live session stopped answering",
      );
    else if (verdict === "silent")
      this.#closeLive(
        live,
        "presence-offline",
        "the contact went offline and the live session stopped answering",
      );
  }

  /** The one place a contact's presence is set (chat.md §7); an unchanged presence emits nothing. */
  #setPresence(
    status: Presence["status"],
    path: LinkPath | undefined,
    lastError: EngineError | undefined,
    directUnavailable: boolean,
  ): void {
    const { peer } = this;
    const prev = peer.presence;
    const suite =
      status === "online" && peer.live ? suiteOf(peer.live.session.protocolName)?.name : undefined;
    if (
      prev.status === status &&
      prev.path === path &&
      prev.suite === suite &&
      prev.lastError?.kind === lastError?.kind &&
      prev.lastError?.message === lastError?.message &&
      (prev.directUnavailable ?? false) === directUnavailable
    )
      return;
    peer.presence = {
      status,
      since: prev.status === status ? prev.since : Date.now(),
      ...(path ? { path } : {}),
      ...(lastError ? { lastError } : {}),
      ...(directUnavailable ? { directUnavailable } : {}),
      ...(suite ? { suite } : {}),
    };
    emit(this.#ctx, { type: "presence", contactId: peer.id, presence: peer.presence });
  }

  // ---- link state ----------------------------------------------------------------------------

  /** Check the move the last change made against the table (state.ts). */
  #moved(event: LinkEvent): void {
    if (this.#state === "stopped") return;
    const next = linkStateOf(this.peer.attempt, this.peer.live);
    if (!allowed(this.#state, event, next))
      this.#ctx.cfg.log(
        `link ${this.peer.id.slice(0, 8)}: unexpected transition ${this.#state} -${event}-> ${next}`,
      );
    this.#state = next;
  }

  #begin(attempt: Attempt, event: LinkEvent): void {
    this.peer.attempt = attempt;
    this.#moved(event);
  }

  #endAttempt(attempt: Attempt, event: LinkEvent = "attempt-ended"): void {
    if (this.peer.attempt !== attempt) return;
    this.peer.attempt = undefined;
    this.#moved(event);
  }

  #goLive(live: Live): void {
    this.peer.attempt = undefined;
    this.peer.live = live;
    this.#moved("up");
  }

  #dropLive(live: Live): void {
    if (this.peer.live !== live) return;
    this.peer.live = undefined;
    this.#moved("closed");
  }

  /**
   * Close the attempt and the live session with `reason`. Both leave the link state here, in this
   * task (`#retire`), not when their close events arrive: a `connect()` or an offer right after
   * must find no session to wait for, whatever the order of the microtasks in between. The
   * person's own doing (a disconnect, a block, a deleted contact): the session's close is orderly
   * (core/link/link.ts `LinkCloseInfo.orderly`), so its CLOSE may reach a peer that is there.
   */
  #drop(reason: string): void {
    const attempt = this.peer.attempt;
    if (attempt) {
      attempt.link.close(reason);
      this.#endAttempt(attempt);
    }
    const live = this.peer.live;
    if (live) this.#closeLive(live, reason, undefined, ORDERLY);
  }

  /**
   * Close `live` ourselves (a disconnect, a block, a probe that got no answer): it is retired at
   * once, with `reason`, and its close event later finds it retired and does nothing. Orderly
   * only when `options` says so: a probe that got no answer closes at once.
   */
  #closeLive(live: Live, reason: string, detail?: string, options?: LinkCloseOptions): void {
    live.session.close(reason, detail, options);
    this.#retire(live, reason, detail);
  }

  // ---- user actions and contact changes ------------------------------------------------------

  /** The user opened the chat (`connect()`): dial now if the contact is online. */
  connect(): void {
    const { peer } = this;
    peer.manualOff = false;
    if (peer.live || peer.attempt) return;
    if (!peer.online) {
      this.apply([
        presence("offline", undefined, describeFailure("LOFT_ERR_SIGNALING_PEER_OFFLINE", peer.name)),
      ]);
      return;
    }
    peer.failures = 0;
    this.apply([cancel("retry")]);
    void this.#dial(false);
  }

  /** `disconnect()`: no dialing until `connect()` or an incoming connection. */
  disconnect(): void {
    this.peer.manualOff = true;
    this.apply([cancel("retry")]);
    this.#drop("user-disconnect");
    this.apply([presence("offline")]);
  }

  /** A message was queued for this contact (handOver, retry). */
  queued(resent?: MessageId): void {
    // Sent again even on the session that carried it once (the receiver drops a second copy).
    if (resent) this.peer.live?.sent.delete(resent);
    this.apply(afterQueued(this.#ctx, this.peer));
  }

  /** The stored contact changed (trust, a request accepted, an identity decided). */
  changed(c: ContactRecord): void {
    const ctx = this.#ctx;
    const p = this.peer;
    p.name = c.username;
    const wasRequest = p.request;
    const wasBlocked = p.blocked;
    p.request = c.request !== undefined;
    const ref = addressRefOf(c).addressRef;
    if (ref) p.addressRef = ref;
    const refusal = refusalFor(c);
    p.blocked = refusal !== undefined;
    p.rejected = c.trust === "rejected";
    if (refusal) {
      this.apply([cancel("retry")]);
      this.#drop(c.pending ? "identity-change" : "contact-blocked");
      p.ratchet = undefined;
      this.apply([presence("offline", undefined, refusal)]);
    } else if (!p.live) {
      // The UI may have replaced the stored identity and dropped the ratchet (accepted key).
      p.ratchet = undefined;
      p.failures = 0;
    }
    // What waited on the relay while the user decided is delivered again (SUB redelivers): read
    // now, or acknowledged unread once the contact is rejected.
    if (wasBlocked && p.rx) void serial(p, async () => this.apply(rereadMailbox(ctx, p)));
    this.#hub.resubscribe();
    if (refusal) return;
    this.#follow({ step: "maybe-dial", why: "changed" });
    // A new contact gets its mailbox now, announced on the first session.
    void ensureRx(ctx, p);
    if (wasRequest) void this.afterAccept();
    else if (!p.live) this.#follow({ step: "allow-mailbox", delayMs: mailboxDelay(ctx, p) });
  }

  /** A first contact was accepted (by the user, or at once for a known contact). */
  async afterAccept(): Promise<void> {
    this.apply(await afterAccept(this.#ctx, this.peer));
  }

  /** The contact was deleted: every timer stops, links close, our queue for it goes. */
  async forget(): Promise<void> {
    this.peer.timers.clearAll();
    // Stopped first: the close of the live session schedules nothing any more.
    this.#state = "stopped";
    this.#drop("contact-blocked");
    await forgetMailbox(this.#ctx, this.peer);
  }

  /** The engine stops: every timer stops, links close. */
  stop(): void {
    this.peer.timers.clearAll();
    this.peer.attempt?.link.close("stopped");
    this.peer.live?.session.close("stopped", undefined, ORDERLY);
    this.#state = "stopped";
  }

  // ---- dialing -------------------------------------------------------------------------------

  /**
   * Dial a direct channel. If it has not opened after `relayFallbackMs` (or the path failed), the
   * chat goes live through the relay instead. `upgrade`: we are on the relay and try direct again
   * (no fallback; a failure leaves the relay session alone).
   */
  async #dial(upgrade: boolean): Promise<void> {
    const ctx = this.#ctx;
    const { peer } = this;
    if (!mayDialDirect(ctx, peer, upgrade) || !ctx.direct) return;
    if (!upgrade && peer.relayFirst && mayDialRelay(ctx, peer)) {
      // The direct path just died under the live session (dialing.ts `directPathLost`): the
      // first redial goes through the relay at once instead of waiting out relayFallbackMs on
      // that path; once live there, the upgrade timer tries direct again (docs/design.md,
      // "Relay first after a lost path").
      peer.relayFirst = false;
      ctx.cfg.log(
        `no direct channel to ${peer.id.slice(0, 8)} (the direct path was lost): through the relay first`,
      );
      await this.#dialRelay();
      return;
    }
    const link = ctx.direct.dial(peer.key);
    const prepared = prepareDialKeys(ctx); // while the link opens
    const attempt: Attempt = { link, direction: "out", path: "direct", startedAt: Date.now() };
    this.#begin(attempt, "dial");
    // Once the path counts as unavailable, retries run quietly under that label.
    this.apply(attemptPresence(peer));
    ctx.cfg.log(`dial ${peer.id.slice(0, 8)}${upgrade ? " (direct, while on the relay)" : ""}`);
    try {
      const fallback = !upgrade && ctx.relayLive !== undefined;
      // `why`, for whoever reads the log: the path's own failure (e.g. `bye-no-direct` from a peer
      // without a direct transport, chat.md §1) or no channel within relayFallbackMs.
      let why = "";
      const opened = await openedWithin(link, fallback ? ctx.cfg.relayFallbackMs : undefined, (r) => {
        why = r;
      });
      if (!opened) {
        if (peer.attempt !== attempt) {
          if (link.state !== "closed") link.close("superseded");
          return;
        }
        ctx.cfg.log(`no direct channel to ${peer.id.slice(0, 8)} (${why}): going through the relay`);
        link.close("relay-fallback");
        this.#endAttempt(attempt, "fallback");
        // The keys made while the direct link tried to open serve the relay handshake instead.
        await this.#dialRelay(await prepared);
        return;
      }
      // Phase marks for whoever reads the log (bench:chat --profile splits the first message by them).
      ctx.cfg.log(`link out ${peer.id.slice(0, 8)} open`);
      const session = await handshake(ctx, peer, link, "direct", undefined, await prepared);
      ctx.cfg.log(`handshake out ${peer.id.slice(0, 8)} done`);
      await this.#runSession(attempt, session, undefined, "direct");
    } catch (e) {
      await this.#attemptFailed(attempt, e);
      if (upgrade) {
        peer.upgradeFailures++;
        this.apply(planUpgrade(ctx, peer));
      }
    } finally {
      // What the handshake did not take, with the provider that made it: its `forget` drops the
      // backend's own copies (node: OpenSSL's), core/crypto/provider.ts X25519.forget.
      void prepared.then((p) => wipeEphemerals(p, providerOf(ctx)));
    }
  }

  /**
   * A live link through the relay (RelayLink over a queue pair), Noise with link kind "relay";
   * `prepared`: the dialler's ephemeral keys a direct attempt made and did not use (the caller wipes
   * what is left of them).
   */
  async #dialRelay(prepared?: PreparedEphemerals): Promise<void> {
    const ctx = this.#ctx;
    const { peer } = this;
    const relay = ctx.relayLive;
    if (!relay || !mayDialRelay(ctx, peer)) return;
    const link = relay.dial(peer.key);
    const attempt: Attempt = { link, direction: "out", path: "relay", startedAt: Date.now() };
    this.#begin(attempt, "fallback");
    this.apply(attemptPresence(peer));
    ctx.cfg.log(`dial ${peer.id.slice(0, 8)} through the relay`);
    try {
      await timeout(link.opened, ctx.cfg.openTimeoutMs, "open-timeout");
      const session = await handshake(ctx, peer, link, "relay", undefined, prepared);
      await this.#runSession(attempt, session, undefined, "relay");
    } catch (e) {
      await this.#attemptFailed(attempt, e);
    }
  }

  /** An offer from the contact (known, not refused: links.ts checked the contact record). */
  async offer(offer: IncomingOffer, contact: ContactRecord | undefined): Promise<void> {
    const ctx = this.#ctx;
    const { peer } = this;
    const decision = offerDecision(ctx, peer, contact, offer);
    if (!decision.accept) {
      if (decision.refuse === "refused") ctx.cfg.log(`refused an offer from ${peer.id.slice(0, 8)}`);
      offer.refuse(decision.refuse);
      return;
    }
    if (decision.closeOurs) peer.attempt?.link.close(decision.closeOurs);
    peer.manualOff = false;
    this.apply([cancel("retry")]);
    const link = offer.accept();
    const attempt: Attempt = { link, direction: "in", path: decision.path, startedAt: Date.now() };
    this.#begin(attempt, "offer");
    this.apply(attemptPresence(peer));
    const keyPair = await freshRatchetKeyPair(ctx.cfg.crypto);
    try {
      await link.opened;
      ctx.cfg.log(`link in ${peer.id.slice(0, 8)} open`);
      const session = await handshake(ctx, peer, link, decision.path, keyPair.publicKey);
      ctx.cfg.log(`handshake in ${peer.id.slice(0, 8)} done`);
      await this.#runSession(attempt, session, keyPair, decision.path);
    } catch (e) {
      await this.#attemptFailed(attempt, e);
      if (peer.live?.path === "relay") {
        // The contact's upgrade to direct failed: counted here as on its side, so both ends keep
        // the same upgrade timer and its glare order (dialing.ts `planUpgrade`).
        if (decision.path === "direct") peer.upgradeFailures++;
        this.apply(planUpgrade(ctx, peer));
      }
    } finally {
      wipe(keyPair.secretKey);
    }
  }

  async #attemptFailed(attempt: Attempt, e: unknown): Promise<void> {
    this.#endAttempt(attempt);
    this.apply(await attemptFailed(this.#ctx, this.peer, attempt, e));
  }

  // ---- the live session ----------------------------------------------------------------------

  /**
   * A verified session: TOFU, HELLO exchange and ratchet choice, then it becomes the contact's
   * live session (replacing an older one) until it closes.
   */
  async #runSession(
    attempt: Attempt,
    session: Session,
    keyPair: Parameters<typeof hello>[3],
    path: LinkPath,
  ): Promise<void> {
    const ctx = this.#ctx;
    const { peer } = this;
    if (ctx.stopped) {
      session.close("stopped", undefined, ORDERLY);
      throw new Refused("stopped");
    }
    const refused: Outcome[] = [];
    try {
      await checkIdentity(ctx, peer, session, refused);
    } finally {
      this.apply(refused);
    }
    if (peer.attempt !== attempt) {
      session.close("superseded", undefined, ORDERLY);
      throw new Refused("superseded");
    }
    // A newer session replaces the old one at once: the peer dialed because it considers it dead.
    const old = peer.live;
    if (old) {
      this.#dropLive(old);
      old.session.close("replaced");
    }
    // Read while HELLO goes back and forth: whether the outbox can carry our first ratchet
    // message (below).
    const outboxWaiting = ctx.storage.listOutbox(peer.id).then(
      (entries) => entries.length > 0,
      () => false,
    );
    const theirs = await serial(peer, () => hello(ctx, peer, session, keyPair));
    ctx.cfg.log(`hello ${peer.id.slice(0, 8)} done`);
    if (peer.attempt !== attempt || session.state === "closed") {
      session.close("superseded", undefined, ORDERLY);
      throw new Refused("superseded");
    }
    const live = newLive(session, path);
    if (attempt.link.drain) live.drain = attempt.link.drain.bind(attempt.link);
    // The link's bulk lane is read for this session only (docs/protocol/files.md §2): claimed
    // before the transfers resume, so our hello is on its way before any `file.accept`.
    const bulk = ctx.files && attempt.link.bulk?.state !== "closed" ? attempt.link.bulk : undefined;
    if (bulk) {
      live.bulk = bulk;
      bulk.claim();
    }
    this.#goLive(live);
    this.apply(sessionUp(ctx, peer, path));
    ctx.cfg.log(`session ${session.role} ${peer.id.slice(0, 8)} open`);
    attempt.link.pathInfo?.().then(
      (p) => ctx.cfg.log(`path ${peer.id.slice(0, 8)}: ${p.local}/${p.remote} ${p.protocol}`),
      () => {},
    );
    logDropsOf(session, peer.id.slice(0, 8), ctx.cfg.log);
    void session.closed.then(async (info) => {
      if (live.retired) return; // we closed it ourselves (`#closeLive`): retired then
      // The session names a dead link LOFT_ERR_LINK_CLOSED; the link's own reason says whether
      // it was the path (an ICE failure: dialing.ts `directPathLost`).
      const link = attempt.link.state === "closed" ? await attempt.link.closed : undefined;
      this.#retire(live, info.reason, info.detail, link?.reason);
    });
    void this.#readLoop(live);
    if (bulk) void this.#bulkLoop(live, bulk);
    // The peer cannot send before our first ratchet message (chat.md §4, "Who can send"). A
    // waiting outbox carries it — the flush that follows at once sends its first message, which
    // does what a `sync` would, one encryption and one sealed state write sooner on the first
    // message's path (bench/README-chat.md); flushLive sends the `sync` if it held nothing to send.
    if (!theirs.canSend && ratchetCanSend(peer)) {
      if (await outboxWaiting) live.syncOwed = true;
      else await serial(peer, () => sendApp(ctx, peer, live, { t: "sync" })).catch(() => {});
    }
    this.apply(sessionRunning(peer));
    ctx.files?.sessionUp(peer, live);
    ctx.calls?.sessionUp(peer);
  }

  /** Frames from the live session, one at a time and in order. */
  async #readLoop(live: Live): Promise<void> {
    const ctx = this.#ctx;
    const { peer } = this;
    for (;;) {
      let bytes: Uint8Array;
      try {
        bytes = await live.session.receive();
      } catch {
        return;
      }
      // A detached frame's last bytes were not under the Noise AEAD: only a RATCHET frame, whose
      // body the ratchet authenticates, may come that way (docs/protocol/session.md §5) — and only
      // with the type byte and the whole 81-byte ratchet prefix (version, nonce, encrypted header)
      // in the Noise-protected head, which the security argument assumes (docs/protocol/ratchet.md,
      // "One AEAD pass per byte"): detached is the body, ciphertext ‖ tag, nothing more.
      // One look-up per frame: a head length is there only for a detached one.
      const head = live.session.detachedHead(bytes);
      const detached = head !== undefined;
      if (detached && bytes[0] !== FRAME.RATCHET) {
        live.session.close("LOFT_ERR_MALFORMED", `a detached frame of type ${bytes[0]}`);
        return;
      }
      if (detached && head !== 1 + MESSAGE_PREFIX_LEN) {
        live.session.close("LOFT_ERR_MALFORMED", `a detached RATCHET frame with a head of ${head} bytes`);
        return;
      }
      // File chunks and ACKs (0x10–0x17) go to the transfers, in order (docs/protocol/files.md).
      if (isFileFrame(bytes) && ctx.files) {
        live.lastInbound = Date.now();
        await ctx.files
          .onFrame(peer, live, bytes)
          .catch((e) => ctx.cfg.log(`file frame: ${(e as Error).message}`));
        continue;
      }
      const frame = await readFrame(live, bytes);
      if (frame.kind === "stop") return;
      if (frame.kind === "proxy") receiveProxy(ctx, peer, live, frame.message); // ../proxy-link.ts
      if (frame.kind === "ratchet")
        await serial(peer, async () =>
          this.apply(await receive(ctx, peer, live, frame.message, detached)),
        ).catch((e) => {
          ctx.cfg.log(`receive failed: ${(e as Error).message}`);
        });
    }
  }

  /**
   * Frames from the live session's bulk lane, one at a time and in order, to the transfers
   * (docs/protocol/files.md §2): only while this session is the contact's live one.
   */
  async #bulkLoop(live: Live, bulk: BulkLane): Promise<void> {
    const ctx = this.#ctx;
    const { peer } = this;
    for (;;) {
      let bytes: Uint8Array;
      try {
        bytes = await bulk.receive();
      } catch {
        return;
      }
      if (peer.live !== live || live.session.state === "closed") continue;
      live.lastInbound = Date.now();
      // By the frame's type, as in #readLoop: the files range to the transfers (a later user of
      // the lane adds its range here); any other type is dropped (files.md §2, rule 3).
      if (isFileFrame(bytes) && ctx.files)
        await ctx.files
          .onBulk(peer, live, bytes)
          .catch((e) => ctx.cfg.log(`bulk frame: ${(e as Error).message}`));
      else ctx.cfg.log(`bulk lane: dropped a frame of type ${bytes[0]} (LOFT_ERR_UNKNOWN_TYPE)`);
    }
  }

  /**
   * `live` closed: it leaves the link state and what its close asks for is applied — exactly once
   * per session (`Live.retired`), by whichever comes first: our own close (`#closeLive`, in the
   * task that closes it) or the session's close event (a close by the peer or the link). So the
   * order of a disconnect and a connect that follows is the order of the calls, not of the
   * microtasks that carry the close event.
   */
  #retire(live: Live, reason: string, detail?: string, linkReason?: string): void {
    if (live.retired) return;
    live.retired = true;
    const { peer } = this;
    if (peer.live !== live) {
      // Replaced: its heartbeat stops unless its successor is already up (and owns the timer).
      if (!peer.live) peer.timers.clear("heartbeat");
      return;
    }
    peer.timers.clear("heartbeat");
    this.#dropLive(live);
    if (directPathLost(live.path, reason, linkReason)) {
      peer.relayFirst = true;
      this.#ctx.cfg.log(
        `direct path to ${peer.id.slice(0, 8)} lost (${linkReason ?? reason}): next dial through the relay`,
      );
    }
    this.apply(sessionClosed(this.#ctx, peer, reason, detail));
  }

  // ---- the outbox ----------------------------------------------------------------------------

  /**
   * Send the contact's outbox in order (single-flight per contact): over the live session, or —
   * when there is none and the mailbox is allowed (relay-mailbox.ts `allowMailbox`) — into the
   * contact's mailbox.
   */
  async #flush(): Promise<void> {
    const ctx = this.#ctx;
    const { peer } = this;
    if (peer.flushing) {
      peer.flushAgain = true;
      return;
    }
    peer.flushing = true;
    try {
      do {
        peer.flushAgain = false;
        if (peer.blocked) return;
        const live = peer.live && peer.live.session.state !== "closed" ? peer.live : undefined;
        this.apply(live ? await flushLive(ctx, peer, live) : await flushMailbox(ctx, peer));
      } while (peer.flushAgain);
    } finally {
      peer.flushing = false;
    }
  }

  // ---- inbound from the relay ----------------------------------------------------------------

  /** One body from our mailbox for this contact: read in order (serial), ACKed once processed. */
  relayMessage(url: string, m: RelayMessage): void {
    const ctx = this.#ctx;
    const { peer } = this;
    void serial(peer, async () => {
      // A body before this one was left on the relay: this one waits for the re-read that
      // brings that one first (relay-mailbox.ts `holdMailbox`; mailbox.md §4, "In order").
      if (waitsForHeld(peer, m)) return;
      // Our queue for the contact, or the one we moved off a dead relay (queues.ts `moveRx`).
      const rx = queueOf(peer, m.recipientId);
      if (!rx) return;
      const body = receiveMailbox(ctx, peer, m);
      if (body.kind === "keep") {
        // Pieces wait for their last one; a body of a queue no longer ours has no later ones here.
        if (body.why === "blocked")
          this.apply(
            holdMailbox(ctx, peer, "blocked", { msgId: peer.pieces.first() ?? m.msgId, rid: m.recipientId }),
          );
        return;
      }
      if (body.message) {
        try {
          this.apply(await receive(ctx, peer, undefined, body.message));
        } catch (e) {
          // Not read (a storage failure): left on the relay, and read again before the later ones.
          ctx.cfg.log(`mailbox receive failed: ${(e as Error).message}`);
          this.apply(holdMailbox(ctx, peer, "failed", { msgId: body.ids[0] ?? m.msgId, rid: m.recipientId }));
          return;
        }
      }
      for (const msgId of body.ids) await ctx.pool?.ack(url, rx.queue, msgId);
      // The contact wrote into the new queue: it has our new address, the old one retires.
      if (rx === peer.rx && peer.rxOld) await retireOldRx(ctx, peer);
    }).catch((e) => ctx.cfg.log(`mailbox receive failed: ${(e as Error).message}`));
  }

  /** A ratchet message from a repeated first-contact body (first-contact.ts), then its ACK. */
  async introRepeat(message: Uint8Array, ack: () => Promise<void>): Promise<void> {
    await serial(this.peer, async () => this.apply(await receive(this.#ctx, this.peer, undefined, message)));
    await ack();
  }

  /** A relay connection came back: unacknowledged pieces are redelivered from the first one. */
  resetPieces(): void {
    void serial(this.peer, async () => this.peer.pieces.reset());
  }
}
