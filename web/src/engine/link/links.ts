/**
 * Every contact's link controller, and the engine-wide inbound dispatch (docs/design.md, "The
 * link controller"): signaling events (presence.ts) and relay connection states (relay-mailbox.ts)
 * become outcomes per contact, handed to each contact's controller; relay messages are routed by
 * queue — our contact address to first-contact.ts, our mailbox for a contact to that contact's
 * controller; offers go to the contact's controller once its record allows them.
 */
import { equalBytes, toHex } from "../../../../core/bytes.ts";
import type { LoftError } from "../../../../core/errors.ts";
import type { RelayMessage } from "../../../../core/relay/client.ts";
import type { SignalingEvent } from "../../../../core/signaling/client.ts";
import type { ContactId, ContactRecord } from "../api.ts";
import { addressSerial, type EngineContext, emit, type Peer, peerFor } from "../context.ts";
import { onIntroBody, scheduleAddressSetup } from "../first-contact.ts";
import { follow } from "../outcome.ts";
import { onPresence, onSignaling, type PeerOutcomes, watchKeys } from "../presence.ts";
import { loadMailboxes, queueOf } from "../queues.ts";
import { relayStateChanged } from "../relay-mailbox.ts";
import type { IncomingOffer, RelayConnState } from "../transport.ts";
import { LinkController } from "./controller.ts";

export class Links {
  readonly #ctx: EngineContext;
  readonly #controllers = new Map<ContactId, LinkController>();
  /** A known contact changed in a way the engine re-reads (an identity change from a first contact). */
  readonly #contactChanged: (id: ContactId) => void;

  constructor(ctx: EngineContext, contactChanged: (id: ContactId) => void) {
    this.#ctx = ctx;
    this.#contactChanged = contactChanged;
  }

  /** The controller of this contact's peer, made on first use. */
  of(peer: Peer): LinkController {
    let c = this.#controllers.get(peer.id);
    if (!c || c.peer !== peer) {
      c = new LinkController(this.#ctx, peer, { resubscribe: () => this.resubscribe() });
      this.#controllers.set(peer.id, c);
    }
    return c;
  }

  /** The controller for a stored contact (its peer made from the record on first use). */
  for(contact: ContactRecord): LinkController {
    return this.of(peerFor(this.#ctx, contact));
  }

  get(id: ContactId): LinkController | undefined {
    const peer = this.#ctx.peers.get(id);
    return peer ? this.of(peer) : undefined;
  }

  all(): LinkController[] {
    return [...this.#ctx.peers.values()].map((p) => this.of(p));
  }

  #hand(outcomes: PeerOutcomes): void {
    for (const { peer, outcomes: o } of outcomes)
      if (this.#ctx.peers.get(peer.id) === peer) this.of(peer).apply(o);
  }

  /** The mailboxes from storage; then, for every contact, the outbox may go there soon. */
  async loadMailboxes(): Promise<void> {
    await loadMailboxes(this.#ctx);
    for (const c of this.all())
      c.apply([follow({ step: "allow-mailbox", delayMs: this.#ctx.cfg.mailboxDelayMs })]);
  }

  /** No signaling: the mailbox is the only way, at once. */
  mailboxOnly(): void {
    for (const c of this.all()) c.apply([follow({ step: "allow-mailbox", delayMs: 0 })]);
  }

  onSignaling(e: SignalingEvent): void {
    this.#hand(onSignaling(this.#ctx, e));
  }

  resubscribe(): void {
    const s = this.#ctx.signaling;
    if (!s) return;
    s.subscribe(watchKeys(this.#ctx)).then(
      (states) => {
        // An answer to our own (re)subscription after a contact changed: no glare delay needed.
        for (const st of states) this.#hand(onPresence(this.#ctx, st.key, st.online, "changed"));
      },
      () => {}, // re-sent by the client after its next (re)connect
    );
  }

  async onOffer(offer: IncomingOffer): Promise<void> {
    const id = toHex(offer.from);
    const contact = await this.#ctx.storage.getContact(id);
    const link = this.get(id);
    if (!link) {
      this.#ctx.cfg.log(`refused an offer from ${id.slice(0, 8)}`);
      offer.refuse("refused");
      return;
    }
    await link.offer(offer, contact);
  }

  onRelayMessage(url: string, m: RelayMessage): void {
    const ctx = this.#ctx;
    const address = ctx.address;
    if (address && equalBytes(address.queue.recipientId, m.recipientId)) {
      addressSerial(ctx, async () => {
        const r = await onIntroBody(ctx, url, address, m);
        if (r.kind === "repeat") await this.of(r.peer).introRepeat(r.message, r.ack);
        else if (r.kind === "identity-change") this.#contactChanged(r.contactId);
        else if (r.kind === "accepted") {
          if (r.request) {
            this.resubscribe();
            emit(ctx, { type: "contact-added", contactId: r.peer.id });
          } else void this.of(r.peer).afterAccept();
        }
      }).catch((e) => ctx.cfg.log(`first-contact message failed: ${(e as Error).message}`));
      return;
    }
    const id = ctx.rids.get(toHex(m.recipientId));
    const peer = id ? ctx.peers.get(id) : undefined;
    if (!peer || !queueOf(peer, m.recipientId)) {
      ctx.cfg.log("a relay message for a queue we do not know");
      return;
    }
    this.of(peer).relayMessage(url, m);
  }

  onRelayState(url: string, state: RelayConnState, error?: LoftError): void {
    const changed = relayStateChanged(this.#ctx, url, state, error);
    for (const { peer, outcomes, resetPieces } of changed.peers) {
      const c = this.of(peer);
      if (resetPieces) c.resetPieces();
      c.apply(outcomes);
    }
    if (changed.setupAddress) scheduleAddressSetup(this.#ctx, 0);
  }

  /** The contact is gone from storage: its controller stops and forgets its mailbox. */
  forget(id: ContactId): void {
    const peer = this.#ctx.peers.get(id);
    if (!peer) return;
    const c = this.of(peer);
    this.#ctx.peers.delete(id);
    this.#controllers.delete(id);
    void c.forget();
  }

  stop(): void {
    for (const c of this.all()) c.stop();
  }
}
