/**
 * Live links through the relay (docs/design.md, "Transports": "a WebSocket to relay-ws/, live when
 * no direct path comes up"; docs/protocol/mailbox.md §6): a core/relay `RelayLink`
 * over a pair of fresh queues on the dialer's relay, set up through signed signaling envelopes the
 * way a WebRTC offer/answer is. The same Noise XXhfs handshake (link kind "relay") and ratchet run
 * over it as over a data channel; the relay sees only Noise frames in pieces, and re-encrypts each
 * piece for the recipient. The pool's connections speak relay protocol 1.2, so each piece arrives
 * padded to its size bucket, not to a 16 KiB block (docs/decisions.md (Relay), "The app speaks
 * relay protocol 1.2").
 *
 *   dialer                                   signaling                     answerer
 *   NEW (own queue Qa, not subscribed)
 *   relay offer {c, ru: relay URL, rs: sid(Qa)}  ─────────────────────▶  (engine accepts: known contact)
 *                                                                        NEW Qb on ru; SKEY sid(Qa) with
 *                                                                        its own fresh key; SUB Qb
 *                                      ◀─────────────────────  relay answer {c, rs: sid(Qb)}
 *   SKEY sid(Qb) with a fresh key; SUB Qa: open
 *
 * Each side secures the other's queue with a key it made itself (SMP v9 "SKEY"), so only the two
 * peers can SEND into the pair: the signaling server learns queue ids but cannot inject a byte (a
 * forged answer makes SKEY fail, which only ends the attempt). Both queues are deleted when the
 * link closes. A refusal or an abandoned attempt travels as `bye`, as for direct links. The relay
 * rations each connection (RATE) and network address (SOURCE_RATE, STORE_RATE): a setup command
 * refused for rate is tried again after a pause (core/relay/live-link.ts `retryTemporary`), and
 * the link itself waits out such refusals before giving up with their code.
 */
import { toHex } from "../../../core/bytes.ts";
import { LoftError } from "../../../core/errors.ts";
import type { LinkCloseInfo } from "../../../core/link/link.ts";
import { QueueLink } from "../../../core/link/queue-link.ts";
import { preferredOrder } from "../../../core/relay/choice.ts";
import type { RecipientQueue, RelayClient, SenderQueue } from "../../../core/relay/client.ts";
import { newAuthKeyPair } from "../../../core/relay/crypto.ts";
import { RelayLink, type RelayLinkOptions, retryTemporary } from "../../../core/relay/live-link.ts";
import type { SignalingClient } from "../../../core/signaling/client.ts";
import type { SignalEnvelope } from "../../../core/wire/signaling.ts";
import type {
  DialedLink,
  IncomingOffer,
  LiveTransport,
  RelayConnections,
  TransportDeps,
} from "../engine/transport.ts";
import {
  type ByeReason,
  CONN_ID_BYTES,
  decodeSignalPayload,
  encodeSignalPayload,
  envelopeKind,
  type SignalPayload,
} from "./signal-payload.ts";

/** A link that opens once its relay queue pair is set up; then it forwards to the RelayLink. */
export class RelayDialLink extends QueueLink implements DialedLink {
  readonly opened: Promise<void>;
  #resolve!: () => void;
  #reject!: (e: unknown) => void;
  #inner: RelayLink | undefined;

  constructor() {
    super("connecting");
    this.opened = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.opened.catch(() => {});
    void this.closed.then((info) => this.#reject(new LoftError("LOFT_ERR_LINK_CLOSED", info.reason)));
  }

  get isOpen(): boolean {
    return this.#inner !== undefined;
  }

  /**
   * Resolves once this link is closed and the relay link under it, if it opened, has sent what
   * it had queued (core/relay/live-link.ts `settled`). Never rejects.
   */
  get settled(): Promise<void> {
    return this.closed.then(() => this.#inner?.settled);
  }

  attach(inner: RelayLink): void {
    if (this.state === "closed") {
      inner.close("closed");
      return;
    }
    this.#inner = inner;
    this.markOpen();
    this.#resolve();
    // Everything the relay link received is passed on before its close is: a link closed by
    // its own failed send (the peer deleted its queue on closing, say) still hands over the
    // frames that came before — the peer's last messages and its CLOSE (receive() yields what is
    // queued before it rejects).
    void (async () => {
      for (;;) {
        let m: Uint8Array;
        try {
          m = await inner.receive();
        } catch {
          break;
        }
        this.deliver(m);
      }
      const info = await inner.closed;
      this.finish(
        { reason: info.reason, ...(info.detail === undefined ? {} : { detail: info.detail }) },
        false,
      );
    })();
  }

  protected transmit(message: Uint8Array): void {
    if (!this.#inner) throw new LoftError("LOFT_ERR_LINK_CLOSED", "the relay link is not open yet");
    this.#inner.send(message);
  }

  protected teardown(info: LinkCloseInfo): void {
    this.#inner?.close(info.reason, info.detail);
  }
}

/** Our receiving queue of a link, once made, and the connection it was made on. */
interface Made {
  client: RelayClient;
  own: RecipientQueue;
}

interface Attempt {
  link: RelayDialLink;
  peer: Uint8Array;
  conn: Uint8Array;
  client?: RelayClient;
  own?: RecipientQueue;
  answered: boolean;
}

const reasonOf = (e: unknown): [string, string] =>
  e instanceof LoftError
    ? [e.code, e.message]
    : [(e as { code?: string })?.code ?? "LOFT_ERR_LINK_CLOSED", (e as Error)?.message ?? String(e)];

/**
 * SKEY the other side's queue with one fresh key, retried with that same key after a rate refusal
 * (docs/protocol/relay.md: an SKEY retry with the same key is idempotent).
 */
function secure(client: RelayClient, sid: Uint8Array): Promise<SenderQueue> {
  const queue: SenderQueue = { senderId: sid, senderAuthSecret: newAuthKeyPair().secretKey };
  return retryTemporary(() => client.senderSecure(queue));
}

export class RelayLiveTransport implements LiveTransport {
  readonly path = "relay" as const;
  readonly #signaling: SignalingClient;
  readonly #pool: RelayConnections;
  /** Our relays, in the user's order: a live link's queue goes on the first not known down. */
  readonly #urls: readonly string[];
  readonly #onOffer: (offer: IncomingOffer) => void;
  readonly #attempts = new Map<string, Attempt>();
  /**
   * Every link made (dialed or accepted), until it has settled and our receiving queue of it is
   * deleted: what `settled` waits for (`#track`).
   */
  readonly #links = new Map<RelayDialLink, Promise<void>>();
  /** Our receiving queues made and not yet deleted, with their relay (`undeleted`). */
  readonly #queues = new Map<RecipientQueue, string>();
  readonly #off: () => void;

  /** Options for each RelayLink (core/relay/live-link.ts); a benchmark sets the send window. */
  readonly #linkOptions: RelayLinkOptions;

  constructor(deps: TransportDeps, linkOptions: RelayLinkOptions = {}) {
    this.#linkOptions = linkOptions;
    if (!deps.relay) throw new Error("RelayLiveTransport needs the engine's relay pool");
    this.#signaling = deps.signaling;
    this.#pool = deps.relay.pool;
    this.#urls = deps.relay.urls?.length ? deps.relay.urls : [deps.relay.url];
    this.#onOffer = deps.onOffer;
    this.#off = deps.signaling.on((event) => {
      if (event.type === "signal") this.#onEnvelope(event.envelope);
    });
  }

  close(): void {
    this.#off();
    for (const a of this.#attempts.values()) a.link.close("transport-closed");
    this.#attempts.clear();
  }

  /**
   * Resolves once every link made so far is closed and has sent what it had queued — the last
   * messages, the session's CLOSE, the close marker — to the relay (`RelayDialLink.settled`), and
   * our receiving queue of it is deleted (`#track`). The engine waits for it, bounded, between
   * closing its sessions and closing the relay connections (engine.ts `stop`): a process that
   * exits right after `stop` (the CLI) otherwise cut off a message it had reported `sent`, and a
   * DEL still being authorized when the connection closed was never sent (the queue stayed at
   * the relay until its idle expiry). Never rejects.
   */
  settled(): Promise<void> {
    return Promise.all(this.#links.values()).then(() => {});
  }

  /**
   * Our receiving queues made and not yet deleted, with their relay: when the engine's bounded
   * wait for `settled` runs out, the relay connections close before their DEL is answered (or
   * sent), and the engine keeps these for its next start to delete (engine/live-leftovers.ts;
   * docs/protocol/chat.md §6, "Stopping").
   */
  undeleted(): { url: string; queue: RecipientQueue }[] {
    return [...this.#queues].map(([queue, url]) => ({ url, queue }));
  }

  /**
   * Track `link` until it has settled and `queue` — our receiving queue of it, once made — is
   * deleted. The queue goes once what we sent has settled (closed, and what the link queued — its
   * close marker last — answered by the relay), not when the link closes: until the peer has read
   * our close marker it may still send (a PONG, a receipt), and a send refused because the queue
   * is gone closed its link before our last pieces, stored behind that refusal's answer, were
   * delivered to it (docs/protocol/relay.md §Live links). What it sends meanwhile is deleted with
   * the queue, unread.
   */
  #track(link: RelayDialLink, made: Promise<Made>): void {
    // `made` settles once the queue is made or its making failed: a link closed while its queue
    // was still being made (a cancelled dial, a stop) has it deleted here too, after the link
    // settled — what `settled` waits for — not by the dial or accept code on its own, which
    // nothing waited for and the pool's close could cut.
    const done = Promise.all([link.settled, made.catch(() => undefined)])
      .then(([, m]) => (m ? this.#dropQueue(m.client, m.own) : undefined))
      .then(() => {
        this.#links.delete(link);
      });
    this.#links.set(link, done);
  }

  /** Make our receiving queue on `url`, remembered (`undeleted`) until `#dropQueue` deletes it. */
  async #make(url: string): Promise<Made> {
    const client = await this.#pool.client(url);
    const own = await retryTemporary(() => client.createQueue({ subscribe: false }));
    this.#queues.set(own, url);
    return { client, own };
  }

  dial(peer: Uint8Array, options?: { room?: Uint8Array }): RelayDialLink {
    const room = options?.room?.slice();
    const conn = crypto.getRandomValues(new Uint8Array(CONN_ID_BYTES));
    const link = new RelayDialLink();
    const a: Attempt = { link, peer: peer.slice(), conn, answered: false };
    const key = `${toHex(peer)}/${toHex(conn)}`;
    this.#attempts.set(key, a);
    void link.closed.then((info) => {
      this.#attempts.delete(key);
      if (!link.isOpen && !info.reason.startsWith("bye-") && info.reason !== "transport-closed")
        this.#bye(a.peer, conn, "cancelled");
    });
    // The first of our relays not known to be down (core/relay/choice.ts): one down relay does
    // not stop live links through the others.
    const url = preferredOrder(this.#urls, (u) => this.#pool.isDown(u))[0] ?? this.#urls[0]!;
    const made = this.#make(url);
    // Our queue goes once what we sent has settled, not at the close (`#track`).
    this.#track(link, made);
    void (async () => {
      const { client, own } = await made;
      a.client = client;
      a.own = own;
      if (link.state === "closed") return; // `#track` deletes it
      await this.#send(peer, {
        kind: "relay-offer",
        conn,
        url,
        sid: own.senderId,
        ...(room ? { room } : {}),
      });
    })().catch((e: unknown) => link.close(...reasonOf(e)));
    return link;
  }

  /** Delete our receiving queue `own`, best effort; resolves once answered (never rejects). */
  #dropQueue(client: RelayClient, own: RecipientQueue): Promise<void> {
    if (client.closed) return Promise.resolve(); // stays in `undeleted` for the engine's next start
    return client.deleteQueue(own).then(
      () => {
        this.#queues.delete(own);
      },
      (e: unknown) => {
        // AUTH: the relay no longer has it. Anything else (the connection closed): it stays.
        if (e instanceof LoftError && e.code === "LOFT_ERR_RELAY_AUTH") this.#queues.delete(own);
      },
    );
  }

  #send(peer: Uint8Array, p: SignalPayload): Promise<void> {
    return this.#signaling.signal(peer, envelopeKind(p), encodeSignalPayload(p));
  }

  #bye(peer: Uint8Array, conn: Uint8Array, reason: ByeReason): void {
    this.#send(peer, { kind: "bye", conn, reason }).catch(() => {});
  }

  #onEnvelope(e: SignalEnvelope): void {
    const decoded = decodeSignalPayload(e.kind, e.payload);
    if (!decoded.ok) return; // reported by the direct transport, which reads every envelope too
    const p = decoded.value;
    const key = `${toHex(e.from)}/${toHex(p.conn)}`;
    switch (p.kind) {
      case "relay-offer":
        this.#offered(e.from.slice(), p.conn.slice(), p.url, p.sid.slice(), p.room?.slice());
        return;
      case "relay-answer": {
        const a = this.#attempts.get(key);
        if (!a?.client || !a.own || a.answered || a.link.state === "closed") return;
        a.answered = true;
        void this.#connect(a, a.client, a.own, p.sid.slice());
        return;
      }
      case "bye":
        this.#attempts.get(key)?.link.close(`bye-${p.reason}`, `the peer said ${p.reason}`);
        return;
      default:
        return;
    }
  }

  async #connect(a: Attempt, client: RelayClient, own: RecipientQueue, sid: Uint8Array): Promise<void> {
    try {
      const theirs = await secure(client, sid);
      const relayLink = await RelayLink.open(client, own, theirs, this.#linkOptions);
      a.link.attach(relayLink);
    } catch (e) {
      a.link.close(...reasonOf(e));
    }
  }

  #offered(from: Uint8Array, conn: Uint8Array, url: string, sid: Uint8Array, room?: Uint8Array): void {
    let decided = false;
    this.#onOffer({
      from,
      path: "relay",
      ...(room ? { room } : {}),
      accept: () => {
        if (decided) throw new Error("offer already decided");
        decided = true;
        const link = new RelayDialLink();
        const made = this.#make(url);
        this.#track(link, made);
        void (async () => {
          const { client, own } = await made;
          if (link.state === "closed") return; // `#track` deletes it
          const theirs = await secure(client, sid);
          const relayLink = await RelayLink.open(client, own, theirs, this.#linkOptions);
          // Subscribed before answering: the dialer's first handshake message finds us listening.
          link.attach(relayLink);
          await this.#send(from, { kind: "relay-answer", conn, sid: own.senderId });
        })().catch((e: unknown) => link.close(...reasonOf(e)));
        return link;
      },
      refuse: (reason) => {
        if (decided) return;
        decided = true;
        this.#bye(from, conn, reason);
      },
    });
  }
}
