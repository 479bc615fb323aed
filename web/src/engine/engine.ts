/**
 * The chat engine (web/src/engine/api.ts `ChatEngine`; docs/protocol/chat.md): direct,
 * browser-to-browser end-to-end encrypted chat.
 *
 *   signaling (core/signaling/client.ts)   register + renew, presence of contacts, signed envelopes
 *   direct links (web/src/net/direct.ts)   WebRTC data channels, offer/answer/ICE through signaling
 *   Noise session (core/session)           XXhfs+ML-KEM-768, link kind "direct", bound to the
 *                                          contact's identity key: the only authentication
 *   HELLO exchange (wire.ts)               do both ends still hold the same ratchet?
 *   Double Ratchet (ratchet-store.ts)      one per contact, kept across connections; every
 *                                          application message under its own key
 *   outbox, receipts, heartbeats           the modules below
 *
 * This file is the `ChatEngine` facade: lifecycle (start/stop) and user actions. Each contact's
 * link is run by its link controller (link/controller.ts; docs/design.md, "The link controller"),
 * which applies what the steps return; the engine-wide dispatch is link/links.ts:
 *
 *   config.ts          timings and injectable transports (`EngineConfig`, `DEFAULT_ENGINE_CONFIG`)
 *   context.ts         `Peer`, `EngineContext`, events, service status, the per-contact task chain
 *   link/              the controller (state machine, timers, presence, inbound dispatch), outcomes
 *   presence.ts        step: signaling state and errors, watched keys, contacts coming online/offline
 *   dialing.ts         step: when to dial, backoff, relay fallback, direct retry, offers, glare
 *   session.ts         step: TOFU, HELLO and ratchet bootstrap, session up and closed, heartbeats
 *   messages.ts        step: the outbox over the live session, incoming messages, receipts
 *   relay-mailbox.ts   step: when and where the outbox goes to the mailbox, mailbox bodies, relay states
 *   first-contact.ts   step: prekeys and contact address, first contacts received, requests
 *   queues.ts, intro.ts, peer-ratchet.ts   parts the steps share: relay queues and deposits, a first
 *                      contact we start, the per-contact ratchet
 *
 * Per contact there is at most one live session. Dialing happens when a contact comes online
 * (presence), when the user opens the chat (`connect`), when a message is queued, and after a
 * failure with exponential backoff and full jitter; incoming offers are accepted only from
 * known contacts that are neither Rejected nor waiting on an identity decision. When both sides
 * dial at once (glare) the lower identity key's attempt wins (docs/protocol/chat.md §1, "Who dials, who accepts").
 */

import { toHex } from "../../../core/bytes.ts";
import type { ProxyClient } from "../../../core/proxy/client.ts";
import { distinctUrls } from "../../../core/relay/choice.ts";
import { SignalingClient } from "../../../core/signaling/client.ts";
import type {
  ChatEngine,
  ContactChange,
  ContactId,
  ContactRecord,
  EngineListener,
  EngineSettings,
  EngineStartOptions,
  HandedOver,
  MessageId,
  Presence,
  ProxyServing,
  ServiceStatus,
  StoredMessage,
} from "./api.ts";
import { EngineRefusal, RetryDeferred, SaveDeferred } from "./api.ts";
import { Calls } from "./calls/calls.ts";
import { RoomCalls } from "./calls/room-call.ts";
import { DEFAULT_ENGINE_CONFIG, type EngineConfig, type WarmUp, type WarmUpAsk } from "./config.ts";
import {
  cryptoOf,
  type EngineContext,
  emit,
  fullJitter,
  type Peer,
  providerOf,
  setService,
  settledWithin,
  stamp,
} from "./context.ts";
import { DeviceRelay } from "./devices.ts";
import { RoomFiles } from "./files/room-files.ts";
import { FileTransfers } from "./files/transfers.ts";
import { contactLinkRefs, setupAddress } from "./first-contact.ts";
import { acceptServerIceServers, iceServersFor } from "./ice-servers.ts";
import { Links } from "./link/links.ts";
import { LiveLeftovers } from "./live-leftovers.ts";
import { moveOffRelay, queueGone, resumeMoves } from "./mailbox-move.ts";
import type { Outcome } from "./outcome.ts";
import { newOutgoing, refusalFor, SendLines, sendableContact, sendRefusal } from "./outgoing.ts";
import { watchKeys } from "./presence.ts";
import { proxyClientOf, serveProxy } from "./proxy-link.ts";
import { contactQueuesOn } from "./queues.ts";
import { RelayHealth } from "./relay-health.ts";
import { DEFAULT_ROOM_MEMBER_CAP, type RoomFrameLane, RoomsEngine } from "./rooms/mesh.ts";
import type { IncomingOffer, RelayConnState } from "./transport.ts";

export { DEFAULT_ENGINE_CONFIG, type EngineConfig } from "./config.ts";

/**
 * The signaling servers to use, in order (docs/protocol/signaling.md, "Several servers"): ours
 * from Settings, then those our accepted contacts' links list, so that with every server of ours
 * down we still meet contacts on theirs. Empty when the user turned signaling off (no server of
 * their own): a contact's link never turns it on.
 */
export function signalingServers(
  settings: Pick<EngineSettings, "signalingUrl" | "signalingUrls">,
  contacts: readonly Pick<ContactRecord, "endpoints" | "trust" | "request">[],
): string[] {
  const own = distinctUrls(settings.signalingUrls?.length ? settings.signalingUrls : [settings.signalingUrl]);
  if (own.length === 0) return [];
  const listed = contacts
    .filter((c) => c.trust !== "rejected" && c.request === undefined)
    .flatMap((c) => c.endpoints?.signaling ?? [])
    .filter((u) => /^wss?:\/\/\S+$/.test(u));
  return distinctUrls([...own, ...listed]);
}

/**
 * The least time `stop` gives the record of live relay queues it could not delete, even past its
 * deadline: a stop ends within `stopSettleMs` plus this (config.ts `stopSettleMs`).
 */
const LEFTOVERS_WRITE_MS = 1_000;

export class Engine implements ChatEngine {
  readonly #ctx: EngineContext;
  /** Sends and retries per contact, stored in hand-over order (outgoing.ts). */
  readonly #lines = new SendLines();
  /** Every contact's link controller and the inbound dispatch (link/links.ts). */
  readonly #links: Links;
  /** Which of our relays are dead (relay-health.ts), and the moves off them under way. */
  #health: RelayHealth | undefined;
  /** Live relay links' queues a stop could not delete, deleted at the next start (live-leftovers.ts). */
  #leftovers: LiveLeftovers | undefined;
  readonly #moving = new Set<string>();
  /**
   * Hand-overs whose commit storage refused while the journal holds them (`SaveDeferred`), per
   * contact in hand-over order: stored again in this session, first, before any later message of
   * the contact (`#storeDeferred`; docs/protocol/chat.md §9, "The outbox journal").
   */
  readonly #deferred = new Map<ContactId, StoredMessage[]>();
  #deferTimer: ReturnType<typeof setTimeout> | undefined;
  /** Deferred saves retried in a row without one landing: the backoff's exponent. */
  #deferFailures = 0;
  /**
   * The latest connect/disconnect call per contact (`#userCall`); the entry goes with the contact
   * (`#reread`). Numbered by one engine-wide counter, so a contact deleted and added again never
   * matches a call made before.
   */
  readonly #userCalls = new Map<ContactId, number>();
  /** The one `stop` (`stop`). */
  #stopping: Promise<void> | undefined;
  /** `warmedUp` (warm-up.ts). */
  #warmUp: Promise<WarmUp | undefined> = Promise.resolve(undefined);
  /** An offer came in on a transport (a session being set up: `#warmUpAsk`). */
  #offered = false;
  #lastUserCall = 0;
  /** File transfers (files/transfers.ts; docs/protocol/files.md). */
  readonly #files: FileTransfers;
  /** Rooms: meshes of member links over the same signaling and transport (rooms/mesh.ts). */
  readonly rooms: RoomsEngine | undefined;
  /** One-to-one calls (calls/calls.ts; docs/protocol/calls.md). */
  readonly calls: Calls;
  /** Voice calls in rooms (calls/room-call.ts; docs/protocol/calls.md §7). */
  readonly roomCalls: RoomCalls | undefined;
  /** Paired devices through the relay (devices.ts; docs/device.md §13). */
  readonly devices: DeviceRelay;

  constructor(
    options: EngineStartOptions,
    config: Partial<EngineConfig> & Pick<EngineConfig, "transport" | "relayConnections">,
  ) {
    const selfKey = options.user.identity.verified.identity_key;
    this.#ctx = {
      user: options.user,
      storage: options.storage,
      cfg: { ...DEFAULT_ENGINE_CONFIG, ...config },
      selfKey,
      selfId: toHex(selfKey),
      listeners: new Set<EngineListener>(),
      peers: new Map<ContactId, Peer>(),
      service: { signaling: "disabled", relay: "disabled" },
      signaling: undefined,
      direct: undefined,
      relayLive: undefined,
      pool: undefined,
      relayUrls: [],
      rids: new Map<string, ContactId>(),
      relayDown: false,
      prekeys: undefined,
      address: undefined,
      addressReady: Promise.resolve(),
      addressTimer: undefined,
      addressFailures: 0,
      addressChain: Promise.resolve(),
      bases: new Map<string, ContactId>(),
      signalingUrl: "",
      started: false,
      stopped: false,
      everRegistered: false,
      registerBusy: 0,
      lastStamp: 0,
    };
    this.#links = new Links(this.#ctx, (contactId) => this.contactChanged(contactId));
    // Told whether a contact is still stored: the files of one deleted while forgetting them
    // failed are forgotten at the next read of the transfers ("delete" in `changeContact`).
    this.#files = new FileTransfers(this.#ctx, (id) =>
      this.#ctx.storage.getContact(id).then(
        (c) => c !== undefined,
        () => undefined,
      ),
    );
    this.#ctx.files = this.#files;
    const cfg = this.#ctx.cfg;
    this.rooms = cfg.offline
      ? undefined
      : new RoomsEngine({
          user: options.user,
          storage: options.storage,
          ...cryptoOf(this.#ctx),
          memberCap: cfg.roomMemberCap ?? DEFAULT_ROOM_MEMBER_CAP,
          handshakeTimeoutMs: cfg.handshakeTimeoutMs,
          relayFallbackMs: cfg.relayFallbackMs,
          retryBaseMs: cfg.backoffInitialMs,
          retryMaxMs: cfg.backoffMaxMs,
          log: cfg.log,
          now: () => stamp(this.#ctx),
        });
    this.calls = new Calls(this.#ctx, (contactId) => this.connect(contactId));
    this.#ctx.calls = this.calls;
    const rooms = this.rooms;
    this.roomCalls = rooms
      ? new RoomCalls({
          rooms,
          selfHex: toHex(selfKey),
          storage: options.storage,
          ice: this.#ctx,
          log: cfg.log,
        })
      : undefined;
    if (rooms && this.roomCalls)
      rooms.lane = bothLanes(this.roomCalls, new RoomFiles(this.#files, rooms, cfg.log));
    this.devices = new DeviceRelay(this.#ctx);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.#ctx.started) return;
    this.#ctx.started = true;
    const settings = await this.#ctx.storage.getSettings();
    this.#ctx.signalingUrl = settings.signalingUrl;
    const contacts = await this.#ctx.storage.listContacts();
    // A stop made while start awaited has closed what existed then: open nothing more (after each
    // await below too), or a signaling connection and relay pool would outlive the stopped engine.
    if (this.#ctx.stopped) return;
    for (const c of contacts) this.#links.for(c);
    if (this.#ctx.cfg.offline) return;
    this.#ctx.relayUrls = distinctUrls(settings.relayUrls ?? []);
    if (settings.mailboxServer) this.#ctx.mailboxServer = settings.mailboxServer;
    const ownRelay = this.#ctx.relayUrls[0];
    if (ownRelay) {
      this.#health = new RelayHealth({
        storage: this.#ctx.storage,
        deadAfterMs: this.#ctx.cfg.relayDeadAfterMs,
        tracked: () => this.#ctx.relayUrls,
        now: () => Date.now(),
        log: this.#ctx.cfg.log,
      });
      this.#ctx.pool = this.#ctx.cfg.relayConnections({
        webSocket: this.#ctx.cfg.relayWebSocket,
        timeoutMs: this.#ctx.cfg.relayTimeoutMs,
        openTimeoutMs: this.#ctx.cfg.relayOpenTimeoutMs,
        backoffInitialMs: this.#ctx.cfg.relayBackoffInitialMs,
        backoffMaxMs: this.#ctx.cfg.relayBackoffMaxMs,
        delivery: this.#ctx.cfg.relayDelivery,
        batch: this.#ctx.cfg.relayBatch,
        window: 16,
        onMessage: (url, m) =>
          void (this.rooms?.onRelayMessage(url, m) || this.#links.onRelayMessage(url, m)),
        onState: (url, state, error) => {
          this.#links.onRelayState(url, state, error);
          void this.#relayHealth(url, state);
        },
        // AUTH on SUB: the relay lost that queue of ours — its mailbox moves (mailbox.md §1).
        onSubscribeError: (url, rid, error) => {
          if (error.code !== "LOFT_ERR_RELAY_AUTH" || this.#ctx.stopped) return;
          void queueGone(this.#ctx, url, rid, this.#applyTo)
            .then((contact) => (contact ? undefined : this.rooms?.queueGone(url, rid)))
            .catch((e: unknown) =>
              this.#ctx.cfg.log(`moving a lost mailbox failed: ${(e as Error).message}`),
            );
        },
        log: this.#ctx.cfg.log,
        ...cryptoOf(this.#ctx),
        ...smpBridgeOf(ownRelay),
      });
      setService(this.#ctx, { relay: "connecting" });
      // Every relay of ours stays connected: new mailboxes spread across them and go to another
      // one when one is down (queues.ts ensureRx; mailbox.md §1, "Several relays").
      for (const url of this.#ctx.relayUrls) this.#ctx.pool.keep(url);
      // What the last stop could not delete goes now (docs/protocol/chat.md §6, "Stopping").
      // Not on a relay the user removed since (live-leftovers.ts `clean`): ours, and our contacts'
      // (a live link we answered made its queue on the caller's relay: relay-live.ts).
      const connectable = new Set([
        ...this.#ctx.relayUrls,
        ...distinctUrls(
          contacts.filter((c) => c.trust !== "rejected").flatMap((c) => c.endpoints?.relay ?? []),
        ),
      ]);
      void this.#liveLeftovers()
        .clean(this.#ctx.pool, (url) => connectable.has(url))
        .catch((e: unknown) => this.#ctx.cfg.log(`live queue clean-up failed: ${(e as Error).message}`));
      await this.#links.loadMailboxes();
      if (this.#ctx.stopped) return;
      resumeMoves(this.#ctx, this.#applyTo);
      // Room queues spread over the same relays, counting our contacts' queues too (and back).
      const rooms = this.rooms;
      if (rooms) this.#ctx.roomQueuesOn = (url) => rooms.queuesOn(url);
      await rooms?.useMailboxes(this.#ctx.pool, this.#ctx.relayUrls, (url) =>
        contactQueuesOn(this.#ctx, url),
      );
      if (this.#ctx.stopped) return;
      this.#ctx.addressReady = setupAddress(this.#ctx);
    }
    const signalingUrls = signalingServers(settings, contacts);
    if (!signalingUrls[0]) {
      setService(this.#ctx, { signaling: "disabled" });
      this.#links.mailboxOnly();
      return;
    }
    const seenOffers = this.#ctx.cfg.seenOffers?.(this.#ctx.selfId);
    const signaling = new SignalingClient({
      url: signalingUrls[0],
      fallbackUrls: signalingUrls.slice(1),
      user: this.#ctx.user,
      connect: this.#ctx.cfg.webSocket,
      presence: "watched", // only accepted contacts see us (docs/protocol/signaling.md, "Contacts only")
      crypto: providerOf(this.#ctx),
      ...(seenOffers ? { seenOffers } : {}),
    });
    this.#ctx.signaling = signaling;
    this.#ctx.direct = this.#ctx.cfg.transport({
      signaling,
      iceServers: () => iceServersFor(this.#ctx, settings),
      ...(settings.iceTransportPolicy ? { iceTransportPolicy: settings.iceTransportPolicy } : {}),
      openTimeoutMs: this.#ctx.cfg.openTimeoutMs,
      onOffer: (offer) => this.#onOffer(offer),
      onError: (e) => this.#ctx.cfg.log(e.message),
    });
    this.rooms?.attach(signaling, this.#ctx.direct);
    if (this.#ctx.pool && ownRelay && this.#ctx.cfg.relayTransport)
      this.#ctx.relayLive = this.#ctx.cfg.relayTransport({
        signaling,
        iceServers: () => [],
        openTimeoutMs: this.#ctx.cfg.openTimeoutMs,
        onOffer: (offer) => this.#onOffer(offer),
        onError: (e) => this.#ctx.cfg.log(e.message),
        relay: { pool: this.#ctx.pool, url: ownRelay, urls: this.#ctx.relayUrls },
      });
    this.rooms?.useRelay(this.#ctx.relayLive);
    signaling.on((e) => this.#links.onSignaling(e));
    signaling.on((e) => {
      if (e.type === "ice-servers") acceptServerIceServers(this.#ctx, e.servers, e.expiresAt);
    });
    void signaling.subscribe(watchKeys(this.#ctx));
    setService(this.#ctx, { signaling: "connecting" });
    // Resolves once registered; failures arrive as events and the client retries with backoff.
    signaling.start().catch(() => {});
    if (this.#ctx.cfg.warmUp)
      this.#warmUp = this.#ctx.cfg.warmUp.request(() => this.#warmUpAsk(), this.#ctx.cfg.log);
  }

  /**
   * The crypto warm-up's outcome (warm-up.ts `PageWarmUp`): what the page's ran, once it has,
   * whichever engine ran it; undefined when the engine runs none (`EngineConfig.warmUp`), it
   * stopped or began a real session first, or the warm-up failed (logged). Nothing waits on it.
   */
  get warmedUp(): Promise<WarmUp | undefined> {
    return this.#warmUp;
  }

  /**
   * At the page's idle moment: whether the warm-up should still run. Not once stopped, and not
   * once a real session is being set up (a contact or room member dialled or live, an offer
   * answered): that
   * session compiles the same code, and the warm-up would only take the page's thread from it.
   */
  #warmUpAsk(): WarmUpAsk | undefined {
    if (this.#ctx.stopped) return undefined;
    const begun =
      this.#offered ||
      this.rooms?.linking === true ||
      [...this.#ctx.peers.values()].some((p) => p.attempt !== undefined || p.live !== undefined);
    if (begun) {
      this.#ctx.cfg.log("crypto warm-up skipped: a session is already being set up");
      return undefined;
    }
    return { crypto: providerOf(this.#ctx) };
  }

  /** An incoming offer, a contact's or a room member's (transport.ts `onOffer`). */
  #onOffer(offer: IncomingOffer): void {
    this.#offered = true;
    if (offer.room) this.rooms?.onOffer(offer);
    else void this.#links.onOffer(offer);
  }

  readonly #applyTo = (peer: Peer, outcomes: Outcome[]) => this.#links.of(peer).apply(outcomes);

  /**
   * A relay connection's state, for relay-health.ts: when one of our relays is dead, our mailboxes
   * on it — contacts' and room members' — move to another of ours (docs/protocol/mailbox.md §1,
   * "Moving off a dead relay"). Tried again at each later failure while something is left on it.
   */
  async #relayHealth(url: string, state: RelayConnState): Promise<void> {
    const health = this.#health;
    if (!health || !(await health.onState(url, state)) || this.#ctx.stopped || this.#moving.has(url)) return;
    this.#moving.add(url);
    try {
      await moveOffRelay(this.#ctx, url, this.#applyTo);
      await this.rooms?.moveOff(url);
    } catch (e) {
      this.#ctx.cfg.log(`moving mailboxes off ${url} failed: ${(e as Error).message}`);
    } finally {
      this.#moving.delete(url);
    }
  }

  /**
   * Stop the engine, once: a call made while a stop runs gets that stop's end rather than
   * returning at once while its sessions still settle (a CLI signal handler that exits next cut
   * off what `#settled` waits for).
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    // Every wait below shares one deadline (stopSettleMs from here): a stop always ends, and what
    // a wait that ran out left is logged (docs/protocol/chat.md §6, "Stopping").
    const deadline = Date.now() + this.#ctx.cfg.stopSettleMs;
    // Messages already handed over are stored (and stay in the outbox) before we go; one whose
    // store is cut stays in the outbox journal, replayed at the next unlock (chat.md §9).
    await this.#bounded(deadline, "messages being stored", this.#lines.idle());
    this.calls.stop();
    this.roomCalls?.stop();
    this.#ctx.stopped = true;
    // Deferred saves not landed yet stay in the journal: the next unlock replays them (app/model.ts
    // `#enter`), and an engine started in their place in this page takes them over
    // (`deferredSaves`, `adoptDeferred`: a new username), so a later message cannot overtake them.
    clearTimeout(this.#deferTimer);
    this.#links.stop();
    this.rooms?.stop();
    clearTimeout(this.#ctx.addressTimer);
    this.#ctx.signaling?.close();
    // The sessions just closed seal their CLOSE after what they still had queued, then close their
    // links; a live relay link then sends what it holds, its close marker last. Only then do the
    // transports and the relay connections close (bounded): before, a message reported `sent` a
    // moment earlier was cut off with them when the process exited next (the CLI), and the contact
    // learnt we had left only from its probe or heartbeat — or, on a direct link closed before its
    // session had sealed the CLOSE, saw the link fail and redialled (docs/protocol/chat.md §6,
    // "Stopping").
    await this.#bounded(
      deadline,
      "links to settle",
      Promise.all([this.#ctx.direct?.settled?.(), this.#ctx.relayLive?.settled?.()]).then(() => {}),
    );
    // Live relay queues whose DEL was not answered in time would stay on their relays until the
    // idle expiry once the connections close: kept for the next start to delete. The write gets at
    // least LEFTOVERS_WRITE_MS of its own (a local store), even when the links used the whole
    // deadline — the one wait that may end past it, so a stop's true bound is stopSettleMs plus
    // that (config.ts `stopSettleMs`; docs/protocol/chat.md §6, "Stopping"). The waits after it
    // then get what is left of the deadline, which may be nothing: each is cut at once, logged.
    const undeleted = this.#ctx.relayLive?.undeleted?.() ?? [];
    if (undeleted.length > 0) {
      this.#ctx.cfg.log(`stop: ${undeleted.length} live relay queue(s) left for the next start to delete`);
      await this.#bounded(
        Math.max(deadline, Date.now() + LEFTOVERS_WRITE_MS),
        "the undeleted live queues' record",
        this.#liveLeftovers().add(undeleted),
      );
    }
    this.#ctx.direct?.close();
    this.#ctx.relayLive?.close();
    await this.#bounded(
      deadline,
      "sessions to end",
      Promise.allSettled([...this.#ctx.peers.values()].map((p) => p.queue)).then(() => {}),
    );
    this.#ctx.pool?.close();
    // Nothing of the transfers writes or opens a file after this (preparing, storing, sending),
    // then the files held open go (docs/protocol/files.md §6). Their stop gets the time left as
    // its bound and closes their store when it runs out, so it is waited for whole: cut here at
    // the deadline instead, with its own longer bound (STOP_WAIT_MS) still running, it saved
    // resume points into a store already released.
    if (!(await this.#files.stop(Math.max(0, deadline - Date.now()))))
      this.#ctx.cfg.log("stop: gave up waiting for the file transfers' stop");
    await this.#bounded(deadline, "the file store's release", this.#ctx.cfg.fileStore?.release?.());
    setService(this.#ctx, { signaling: "disabled", relay: "disabled" });
  }

  #liveLeftovers(): LiveLeftovers {
    this.#leftovers ??= new LiveLeftovers(this.#ctx.storage, this.#ctx.cfg.log);
    return this.#leftovers;
  }

  /** `waiting`, or until `deadline`, whichever ends first; a wait cut short is logged. */
  async #bounded(deadline: number, what: string, waiting: Promise<unknown> | undefined): Promise<void> {
    if (!waiting) return;
    if (!(await settledWithin(waiting, deadline - Date.now())))
      this.#ctx.cfg.log(`stop: gave up waiting for ${what}`);
  }

  subscribe(listener: EngineListener): () => void {
    this.#ctx.listeners.add(listener);
    return () => this.#ctx.listeners.delete(listener);
  }

  presence(contactId: ContactId): Presence {
    return this.#ctx.peers.get(contactId)?.presence ?? { status: "offline", since: Date.now() };
  }

  serviceStatus(): ServiceStatus {
    return { ...this.#ctx.service };
  }

  // ---- user actions ----------------------------------------------------------------------------

  connect(contactId: ContactId): void {
    if (this.#ctx.cfg.offline) return; // nothing to connect with (web/src/offline-engine.ts)
    const call = this.#userCall(contactId);
    void (async () => {
      const c = await this.#ctx.storage.getContact(contactId);
      // A disconnect (or another connect) called while the contact was read comes later and wins.
      if (this.#userCalls.get(contactId) !== call) {
        this.#ctx.cfg.log(`connect ${contactId.slice(0, 8)}: superseded by a later call`);
        return;
      }
      const refusal = refusalFor(c);
      if (refusal || !c) {
        if (refusal) emit(this.#ctx, { type: "error", contactId, error: refusal });
        return;
      }
      this.#links.for(c).connect();
    })();
  }

  disconnect(contactId: ContactId): void {
    this.#userCall(contactId);
    this.#links.get(contactId)?.disconnect();
  }

  /**
   * Number the user's connect and disconnect calls per contact: they take effect in the order they
   * were made, though `connect` reads the contact first (an await) and `disconnect` acts at once.
   */
  #userCall(contactId: ContactId): number {
    const n = ++this.#lastUserCall;
    this.#userCalls.set(contactId, n);
    return n;
  }

  /**
   * The contacts this engine keeps state for (controllers, the user's calls, deferred saves): a
   * deleted contact leaves nothing behind (engine.test checks it).
   */
  heldContacts(): ContactId[] {
    return [...new Set([...this.#ctx.peers.keys(), ...this.#userCalls.keys(), ...this.#deferred.keys()])];
  }

  handOver(contactId: ContactId, text: string): HandedOver {
    const message = newOutgoing(contactId, text, stamp(this.#ctx));
    const storage = this.#ctx.storage;
    // Journaled in this task, before the first await: from the moment the person sees the bubble,
    // a reload or a closed tab replays the message instead of losing it (storage/journal.ts;
    // docs/protocol/chat.md §9, "The outbox journal"). The entry goes once the commit lands, and on
    // a refusal (`EngineRefusal`) too — the screen then takes the bubble back and keeps the words,
    // so a later replay would send what the person was told was not. A commit that fails for a
    // storage reason (locked, quota, an aborted transaction) keeps the entry: the person may have
    // left the chat already, and the journal is then the one copy of the words (docs/design.md,
    // "a message shown is a message kept"); it is stored again later in this session, before any
    // later message of the contact, or else at the next start (`SaveDeferred`, `#storeDeferred`).
    // Only a store that can store a deferred hand-over later (`storeJournaled`) journals it.
    const journaled = storage.storeJournaled !== undefined && storage.journalOutgoing?.(message) === true;
    const stored = this.#lines.run(contactId, async () => {
      let c: ContactRecord;
      try {
        // An earlier message of this contact whose save was deferred is stored first: a later one
        // never overtakes it (chat.md §9). If it still cannot be, this one waits behind it.
        if (this.#deferred.has(contactId)) await this.#storeDeferred(contactId);
        c = await sendableContact(storage, contactId);
        await storage.queueOutgoing(message);
      } catch (e) {
        // A storage failure with the journal holding the words: stored later in this session.
        if (journaled && !(e instanceof EngineRefusal)) this.#defer(message);
        throw e;
      }
      emit(this.#ctx, { type: "message-state", contactId, id: message.id, state: "queued" });
      this.#links.for(c).queued();
      // Storage took a write: what waits for it may land now too.
      if (this.#deferred.size > 0) this.#retryDeferred();
      return message.id;
    });
    const forget = () => storage.forgetJournaled?.(message.id);
    const settled = stored.then(
      (id) => {
        forget();
        return id;
      },
      (e: unknown) => {
        if (e instanceof EngineRefusal || !journaled) {
          forget();
          throw e;
        }
        storage.keepJournaled?.(message.id);
        throw new SaveDeferred(e);
      },
    );
    return { message: { ...message }, stored: settled };
  }

  // ---- deferred saves (docs/protocol/chat.md §9, "The outbox journal") ---------------------------

  deferredSaves(): StoredMessage[] {
    return [...this.#deferred.values()].flat().map((m) => ({ ...m }));
  }

  adoptDeferred(messages: readonly StoredMessage[]): void {
    for (const m of messages) this.#defer({ ...m });
  }

  /** `message`'s commit failed for a storage reason and the journal holds it: store it later. */
  #defer(message: StoredMessage): void {
    const waiting = this.#deferred.get(message.contactId) ?? [];
    if (!waiting.some((m) => m.id === message.id)) waiting.push(message);
    this.#deferred.set(message.contactId, waiting);
    this.#scheduleDeferred();
  }

  /**
   * Store the contact's deferred hand-overs in order (on its send line): each as the journal
   * replay would (storage.ts `replayJournal`) — `queued` with its outbox entry, or `failed` with
   * the reason when the contact now refuses messages, nothing (its stored state is told) when a
   * message with its id is stored already (another tab's replay), dropped when the contact is
   * gone or its journal entry is (a restored backup replaced the history) — and its journal entry
   * goes. The store writes only when the id is absent and the entry still there, in one
   * transaction (`storeJournaled`): a check here and a write after it could overwrite what
   * another tab stored in between. Throws the storage error at the first one storage still
   * refuses; it and the later ones wait.
   */
  async #storeDeferred(contactId: ContactId): Promise<void> {
    const storage = this.#ctx.storage;
    const waiting = this.#deferred.get(contactId) ?? [];
    for (let m = waiting[0]; m; m = waiting[0]) {
      const c = await storage.getContact(contactId);
      const refusal = c && sendRefusal(c);
      let queued = false;
      if (c && storage.storeJournaled) {
        const mine: StoredMessage = refusal
          ? { ...m, state: "failed", failure: refusal }
          : { ...m, state: "queued" };
        const outcome = await storage.storeJournaled(mine);
        queued = outcome === "stored" && !refusal;
        const now = outcome === "stored" ? mine : outcome;
        // Stored here, or by another tab's replay (its start: storage.ts `replayJournal`): the
        // screen learns where it stands — its notice waits for this (Chat.tsx). Dropped: nothing.
        if (now !== "dropped")
          emit(this.#ctx, {
            type: "message-state",
            contactId,
            id: m.id,
            state: now.state,
            ...(now.failure ? { failure: now.failure } : {}),
          });
      }
      storage.forgetJournaled?.(m.id);
      waiting.shift();
      this.#ctx.cfg.log(`deferred save of a message to ${contactId.slice(0, 8)} landed`);
      if (c && queued) this.#links.for(c).queued();
    }
    this.#deferred.delete(contactId);
  }

  /** Try every contact's deferred saves now (a timer fired, or storage just took a write). */
  #retryDeferred(): void {
    clearTimeout(this.#deferTimer);
    this.#deferTimer = undefined;
    if (this.#ctx.stopped) return;
    for (const contactId of this.#deferred.keys())
      void this.#lines
        .run(contactId, () => this.#storeDeferred(contactId))
        .then(
          () => {
            this.#deferFailures = 0;
          },
          (e: unknown) => {
            this.#ctx.cfg.log(`a deferred save still fails (${(e as Error).name}): retried later`);
            this.#deferFailures++;
            this.#scheduleDeferred();
          },
        );
  }

  /** The next try of the deferred saves, with full-jitter backoff (`deferredSaveRetryMs`). */
  #scheduleDeferred(): void {
    if (this.#deferTimer !== undefined || this.#ctx.stopped || this.#deferred.size === 0) return;
    const cfg = this.#ctx.cfg;
    const ms = fullJitter(cfg.deferredSaveRetryMs, cfg.deferredSaveRetryMaxMs, this.#deferFailures);
    this.#deferTimer = setTimeout(() => this.#retryDeferred(), ms);
  }

  send(contactId: ContactId, text: string): Promise<MessageId> {
    try {
      return this.handOver(contactId, text).stored;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async retry(messageId: MessageId): Promise<void> {
    const storage = this.#ctx.storage;
    // Recorded in the call's task, before the first await, as a hand-over is journaled: a reload
    // before the retry's writes land replays it at the next start (docs/protocol/chat.md §9,
    // "Retries"). The record goes once they land, or when the retry is refused or has nothing to
    // do; a storage failure keeps it for the next start.
    const journaled = storage.journalRetry?.(messageId) === true;
    let keep = false;
    try {
      await this.#retry(messageId);
    } catch (e) {
      keep = journaled && !(e instanceof EngineRefusal);
      // Kept for the next start's replay: the screen says so, not that sending failed.
      throw keep ? new RetryDeferred(e) : e;
    } finally {
      if (!keep) storage.forgetRetry?.(messageId);
    }
  }

  async #retry(messageId: MessageId): Promise<void> {
    const first = await this.#ctx.storage.getMessage(messageId);
    if (first?.direction !== "out") return;
    // Behind the sends already handed over for this contact: a retry never overtakes them.
    await this.#lines.run(first.contactId, async () => {
      const m = await this.#ctx.storage.getMessage(messageId);
      if (m?.direction !== "out") return;
      // `queued` without its outbox entry is an earlier retry whose second write storage refused:
      // nothing would ever send it, so this retry finishes it — as the replay of its record at the
      // next start would (storage.ts `#replayRetries`; chat.md §9, "Retries"). Returning here
      // would also drop that record (`retry`'s `finally`), leaving the message stuck for good.
      if (m.state !== "failed" && !(m.state === "queued" && !(await this.#inOutbox(m)))) return;
      const c = await sendableContact(this.#ctx.storage, m.contactId);
      await this.#ctx.storage.setMessageState(messageId, "queued");
      await this.#ctx.storage.putOutbox({
        messageId,
        contactId: m.contactId,
        queuedAt: stamp(this.#ctx),
        attempts: 0,
      });
      emit(this.#ctx, { type: "message-state", contactId: m.contactId, id: messageId, state: "queued" });
      this.#links.for(c).queued(messageId);
    });
  }

  /** Whether `m` has its outbox entry (read only for a retry of a `queued` message: rare). */
  async #inOutbox(m: StoredMessage): Promise<boolean> {
    return (await this.#ctx.storage.listOutbox(m.contactId)).some((e) => e.messageId === m.id);
  }

  async changeContact(contactId: ContactId, ...changes: ContactChange[]): Promise<void> {
    const storage = this.#ctx.storage;
    for (const change of changes) {
      switch (change.kind) {
        case "add":
          await storage.putContact(change.contact);
          break;
        case "endpoints":
          await storage.setEndpoints(contactId, change.endpoints);
          break;
        case "identity":
          await storage.updateContactIdentity(contactId, change.identity, change.username);
          if (change.newRatchet) await storage.deleteSession(contactId);
          break;
        case "pending":
          await storage.recordIdentityChange(contactId, change.change);
          break;
        case "clear-pending":
          await storage.clearPending(contactId);
          break;
        case "accept-request":
          await storage.acceptRequest(contactId);
          break;
        case "decline-request":
          await storage.declineRequest(contactId);
          break;
        case "trust":
          // Blocked: links close as the user's own disconnect, before the record says why.
          if (change.trust === "rejected") this.disconnect(contactId);
          await storage.setTrust(contactId, change.trust);
          break;
        case "delete": {
          const wasOff = this.#ctx.peers.get(contactId)?.manualOff ?? false;
          this.disconnect(contactId);
          // The contact's record first: a deletion the storage refuses keeps the contact, and
          // then its files and device queue too (forgotten first, they were lost with the
          // contact kept — "loses nothing", docs/contributing.md). Kept, it is connected again
          // as it was: the disconnect above would otherwise hold it off until a reload.
          try {
            await storage.deleteContact(contactId);
          } catch (e) {
            if (!wasOff) this.connect(contactId);
            throw e;
          }
          // Deleted. Its files go next; a failure there is not the deletion's (the contact is
          // gone, and saying otherwise would be false), and leaves nothing for good: transfers of
          // a contact no longer stored are forgotten when the engine next reads its transfers
          // (files/transfers.ts `#withoutDeletedContacts`).
          await this.#files
            .forget(contactId)
            .catch((e: unknown) =>
              this.#ctx.cfg.log(`files: forgetting a deleted contact's files failed: ${(e as Error).name}`),
            );
          await this.devices.forget(contactId);
          break;
        }
      }
    }
    await this.#reread(contactId);
    emit(this.#ctx, { type: "contact-changed", contactId });
  }

  contactChanged(contactId: ContactId): void {
    void this.#reread(contactId);
  }

  /** Act on the stored contact: its controller re-reads it, or forgets it when it is gone. */
  async #reread(contactId: ContactId): Promise<void> {
    const c = await this.#ctx.storage.getContact(contactId);
    // A call with a contact that is now blocked, pending or gone ends with it (calls.md §1).
    if (!c || refusalFor(c)) this.calls.endFor(contactId);
    if (c) this.#links.for(c).changed(c);
    else {
      this.#links.forget(contactId);
      this.#userCalls.delete(contactId);
      this.#links.resubscribe();
    }
  }

  contactLinkRefs(): Promise<Record<string, Uint8Array> | undefined> {
    return contactLinkRefs(this.#ctx);
  }

  // ---- files (files/transfers.ts) ----------------------------------------------------------------

  sendFile(contactId: ContactId, file: Blob, name: string, thumb?: Uint8Array) {
    return this.#files.send(contactId, file, name, thumb);
  }
  acceptFile(key: string): Promise<void> {
    return this.#files.accept(key);
  }
  declineFile(key: string): Promise<void> {
    return this.#files.decline(key);
  }
  cancelFile(key: string): Promise<void> {
    return this.#files.cancel(key);
  }
  listFiles(contactId: ContactId) {
    return this.#files.list(contactId);
  }
  sendFileToRoom(roomId: string, file: Blob, name: string, thumb?: Uint8Array) {
    const members = this.rooms?.recipients(roomId) ?? [];
    return this.#files.sendToRoom(roomId, members, file, name, thumb);
  }
  listRoomFiles(roomId: string) {
    return this.#files.listRoom(roomId);
  }
  fileBlob(key: string): Promise<Blob | undefined> {
    return this.#files.blob(key);
  }
  fileStream(key: string): Promise<ReadableStream<Uint8Array> | undefined> {
    return this.#files.stream(key);
  }

  proxyClient(contactId: ContactId): ProxyClient | undefined {
    return proxyClientOf(this.#ctx, this.#ctx.peers.get(contactId));
  }

  serveProxy(serving: ProxyServing | undefined): void {
    serveProxy(this.#ctx, serving);
  }
}

/**
 * Our relay's SMP bridge, beside its `/relay` (docs/protocol/smp.md, "The bridge"): the same
 * origin and path with its last segment `smp-bridge` (`wss://r.example/relay` →
 * `wss://r.example/smp-bridge`).
 */
function smpBridgeOf(ownRelay: string): { smpBridgeUrl?: string } {
  try {
    return { smpBridgeUrl: new URL("smp-bridge", ownRelay).href };
  } catch {
    return {};
  }
}

/** Room calls and room files on the member sessions: each takes the frames of its own range. */
function bothLanes(a: RoomFrameLane, b: RoomFrameLane): RoomFrameLane {
  return {
    onFrame: (roomId, member, frame) => a.onFrame(roomId, member, frame) || b.onFrame(roomId, member, frame),
    onMailFrame: (roomId, member, frame) =>
      a.onMailFrame?.(roomId, member, frame) ?? b.onMailFrame?.(roomId, member, frame),
    memberUp: (roomId, member) => {
      a.memberUp(roomId, member);
      b.memberUp(roomId, member);
    },
    memberDown: (roomId, member) => {
      a.memberDown(roomId, member);
      b.memberDown(roomId, member);
    },
    forgetRoom: async (roomId) => {
      await a.forgetRoom?.(roomId);
      await b.forgetRoom?.(roomId);
    },
  };
}
