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
 * This file is the `ChatEngine` facade: lifecycle (start/stop) and user actions. The work is
 * done by modules with one job each, sharing state through `EngineContext` (context.ts):
 *
 *   config.ts         timings and injectable transports (`EngineConfig`, `DEFAULT_ENGINE_CONFIG`)
 *   context.ts        `Peer`, `EngineContext`, events, presence/service status, per-contact task chain
 *   presence.ts       signaling state and errors, watched keys, contacts coming online/offline
 *   dialing.ts        when to dial, backoff, direct → live relay fallback, direct retry, offers, glare
 *   session.ts        TOFU, HELLO and ratchet bootstrap, the live session, heartbeats, read loop
 *   peer-ratchet.ts   the per-contact ratchet: load, persist, seal for a session or the mailbox
 *   messages.ts       outbox flushing, message states, incoming messages, receipts
 *   relay-mailbox.ts  our queues and the contacts' queues, deposits, relay messages and states
 *   first-contact.ts  prekeys and contact address, first contacts sent and received, requests
 *
 * Per contact there is at most one live session. Dialing happens when a contact comes online
 * (presence), when the user opens the chat (`connect`), when a message is queued, and after a
 * failure with exponential backoff and full jitter; incoming offers are accepted only from
 * known contacts that are neither Rejected nor waiting on an identity decision. When both sides
 * dial at once (glare) the lower identity key's attempt wins (docs/protocol/chat.md §1, "Who dials, who accepts").
 */

import { toHex } from "../../../core/bytes.ts";
import { SignalingClient } from "../../../core/signaling/client.ts";
import type {
  ChatEngine,
  ContactId,
  EngineListener,
  EngineStartOptions,
  HandedOver,
  MessageId,
  Presence,
  ServiceStatus,
} from "./api.ts";
import { DEFAULT_ENGINE_CONFIG, type EngineConfig } from "./config.ts";
import {
  addressRefOf,
  dropLinks,
  type EngineContext,
  emit,
  type Peer,
  peerFor,
  reachableLive,
  serial,
  setPresence,
  setService,
  stamp,
} from "./context.ts";
import { dial, maybeDial, onOffer } from "./dialing.ts";
import { describeFailure } from "./errors.ts";
import { afterAccept, contactLinkRefs, setupAddress } from "./first-contact.ts";
import { afterQueued } from "./messages.ts";
import { newOutgoing, refusalFor, SendLines, sendableContact } from "./outgoing.ts";
import { onSignaling, resubscribe, watchKeys } from "./presence.ts";
import {
  allowMailbox,
  ensureRx,
  forgetMailbox,
  loadMailboxes,
  onRelayMessage,
  onRelayState,
} from "./relay-mailbox.ts";

export { DEFAULT_ENGINE_CONFIG, type EngineConfig } from "./config.ts";

export class Engine implements ChatEngine {
  readonly #ctx: EngineContext;
  /** Sends and retries per contact, stored in hand-over order (outgoing.ts). */
  readonly #lines = new SendLines();

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
      contactChanged: (contactId) => this.contactChanged(contactId),
    };
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.#ctx.started) return;
    this.#ctx.started = true;
    const settings = await this.#ctx.storage.getSettings();
    this.#ctx.signalingUrl = settings.signalingUrl;
    for (const c of await this.#ctx.storage.listContacts()) peerFor(this.#ctx, c);
    this.#ctx.relayUrls = (settings.relayUrls ?? []).filter((u) => u.length > 0);
    const ownRelay = this.#ctx.relayUrls[0];
    if (ownRelay) {
      this.#ctx.pool = this.#ctx.cfg.relayConnections({
        webSocket: this.#ctx.cfg.relayWebSocket,
        timeoutMs: this.#ctx.cfg.relayTimeoutMs,
        backoffInitialMs: this.#ctx.cfg.relayBackoffInitialMs,
        backoffMaxMs: this.#ctx.cfg.relayBackoffMaxMs,
        window: 16,
        onMessage: (url, m) => onRelayMessage(this.#ctx, url, m),
        onState: (url, state, error) => onRelayState(this.#ctx, url, state, error),
        log: this.#ctx.cfg.log,
      });
      setService(this.#ctx, { relay: "connecting" });
      this.#ctx.pool.keep(ownRelay);
      await loadMailboxes(this.#ctx);
      this.#ctx.addressReady = setupAddress(this.#ctx);
    }
    if (!settings.signalingUrl) {
      setService(this.#ctx, { signaling: "disabled" });
      for (const p of this.#ctx.peers.values()) allowMailbox(this.#ctx, p, 0);
      return;
    }
    const seenOffers = this.#ctx.cfg.seenOffers?.(this.#ctx.selfId);
    const signaling = new SignalingClient({
      url: settings.signalingUrl,
      user: this.#ctx.user,
      connect: this.#ctx.cfg.webSocket,
      presence: "watched", // only accepted contacts see us (docs/protocol/signaling.md, "Contacts only")
      ...(seenOffers ? { seenOffers } : {}),
    });
    this.#ctx.signaling = signaling;
    this.#ctx.direct = this.#ctx.cfg.transport({
      signaling,
      iceServers: settings.iceServers ?? [],
      ...(settings.iceTransportPolicy ? { iceTransportPolicy: settings.iceTransportPolicy } : {}),
      openTimeoutMs: this.#ctx.cfg.openTimeoutMs,
      onOffer: (offer) => void onOffer(this.#ctx, offer),
      onError: (e) => this.#ctx.cfg.log(e.message),
    });
    if (this.#ctx.pool && ownRelay && this.#ctx.cfg.relayTransport)
      this.#ctx.relayLive = this.#ctx.cfg.relayTransport({
        signaling,
        iceServers: [],
        openTimeoutMs: this.#ctx.cfg.openTimeoutMs,
        onOffer: (offer) => void onOffer(this.#ctx, offer),
        onError: (e) => this.#ctx.cfg.log(e.message),
        relay: { pool: this.#ctx.pool, url: ownRelay },
      });
    signaling.on((e) => onSignaling(this.#ctx, e));
    void signaling.subscribe(watchKeys(this.#ctx));
    setService(this.#ctx, { signaling: "connecting" });
    // Resolves once registered; failures arrive as events and the client retries with backoff.
    signaling.start().catch(() => {});
  }

  async stop(): Promise<void> {
    if (this.#ctx.stopped) return;
    // Messages already handed over are stored (and stay in the outbox) before we go.
    await this.#lines.idle();
    this.#ctx.stopped = true;
    for (const p of this.#ctx.peers.values()) {
      clearTimeout(p.retryTimer);
      clearTimeout(p.mailboxTimer);
      clearTimeout(p.receiptTimer);
      clearTimeout(p.upgradeTimer);
      p.attempt?.link.close("stopped");
      p.live?.session.close("stopped");
    }
    clearTimeout(this.#ctx.addressTimer);
    this.#ctx.direct?.close();
    this.#ctx.relayLive?.close();
    this.#ctx.signaling?.close();
    await Promise.allSettled([...this.#ctx.peers.values()].map((p) => p.queue));
    this.#ctx.pool?.close();
    setService(this.#ctx, { signaling: "disabled", relay: "disabled" });
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
    void (async () => {
      const c = await this.#ctx.storage.getContact(contactId);
      const refusal = refusalFor(c);
      if (refusal || !c) {
        if (refusal) emit(this.#ctx, { type: "error", contactId, error: refusal });
        return;
      }
      const peer = peerFor(this.#ctx, c);
      peer.manualOff = false;
      if (peer.live || peer.attempt) return;
      if (!peer.online) {
        setPresence(
          this.#ctx,
          peer,
          "offline",
          undefined,
          describeFailure("LOFT_ERR_SIGNALING_PEER_OFFLINE", peer.name),
        );
        return;
      }
      peer.failures = 0;
      clearTimeout(peer.retryTimer);
      void dial(this.#ctx, peer);
    })();
  }

  disconnect(contactId: ContactId): void {
    const peer = this.#ctx.peers.get(contactId);
    if (!peer) return;
    peer.manualOff = true;
    clearTimeout(peer.retryTimer);
    dropLinks(peer, "user-disconnect");
    setPresence(this.#ctx, peer, "offline");
  }

  handOver(contactId: ContactId, text: string): HandedOver {
    const message = newOutgoing(contactId, text, stamp(this.#ctx));
    const stored = this.#lines.run(contactId, async () => {
      const c = await sendableContact(this.#ctx.storage, contactId);
      await this.#ctx.storage.putMessage(message);
      await this.#ctx.storage.putOutbox({
        messageId: message.id,
        contactId,
        queuedAt: message.at,
        attempts: 0,
      });
      emit(this.#ctx, { type: "message-state", contactId, id: message.id, state: "queued" });
      afterQueued(this.#ctx, peerFor(this.#ctx, c));
      return message.id;
    });
    return { message: { ...message }, stored };
  }

  send(contactId: ContactId, text: string): Promise<MessageId> {
    try {
      return this.handOver(contactId, text).stored;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async retry(messageId: MessageId): Promise<void> {
    const first = await this.#ctx.storage.getMessage(messageId);
    if (first?.direction !== "out") return;
    // Behind the sends already handed over for this contact: a retry never overtakes them.
    await this.#lines.run(first.contactId, async () => {
      const m = await this.#ctx.storage.getMessage(messageId);
      if (m?.direction !== "out" || m.state !== "failed") return;
      const c = await sendableContact(this.#ctx.storage, m.contactId);
      await this.#ctx.storage.setMessageState(messageId, "queued");
      await this.#ctx.storage.putOutbox({
        messageId,
        contactId: m.contactId,
        queuedAt: stamp(this.#ctx),
        attempts: 0,
      });
      emit(this.#ctx, { type: "message-state", contactId: m.contactId, id: messageId, state: "queued" });
      const peer = peerFor(this.#ctx, c);
      // Sent again even on the session that carried it once (the receiver drops a second copy).
      peer.live?.sent.delete(messageId);
      afterQueued(this.#ctx, peer);
    });
  }

  contactChanged(contactId: ContactId): void {
    void (async () => {
      const c = await this.#ctx.storage.getContact(contactId);
      const peer = this.#ctx.peers.get(contactId);
      if (!c) {
        if (peer) {
          clearTimeout(peer.retryTimer);
          clearTimeout(peer.mailboxTimer);
          clearTimeout(peer.upgradeTimer);
          dropLinks(peer, "contact-blocked");
          this.#ctx.peers.delete(contactId);
          void forgetMailbox(this.#ctx, peer);
        }
        resubscribe(this.#ctx);
        return;
      }
      const p = peerFor(this.#ctx, c);
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
        clearTimeout(p.retryTimer);
        dropLinks(p, c.pending ? "identity-change" : "contact-blocked");
        p.ratchet = undefined;
        setPresence(this.#ctx, p, "offline", undefined, refusal);
      } else if (!p.live) {
        // The UI may have replaced the stored identity and dropped the ratchet (accepted key).
        p.ratchet = undefined;
        p.failures = 0;
      }
      resubscribe(this.#ctx);
      if (!refusal) {
        maybeDial(this.#ctx, p, "changed");
        // A new contact gets its mailbox now, announced on the first session.
        void ensureRx(this.#ctx, p);
        // What waited on the relay while the user decided is delivered again (SUB redelivers).
        if (wasBlocked && p.rx) {
          const rx = p.rx;
          void serial(p, async () => {
            p.pieces.reset();
            this.#ctx.pool?.subscribe(rx.url, rx.queue);
          });
        }
        if (wasRequest) void afterAccept(this.#ctx, p);
        else if (!p.live)
          allowMailbox(this.#ctx, p, reachableLive(this.#ctx, p) ? this.#ctx.cfg.mailboxDelayMs : 0);
      }
    })();
  }

  contactLinkRefs(): Promise<Record<string, Uint8Array> | undefined> {
    return contactLinkRefs(this.#ctx);
  }
}
