/**
 * Room messages for members who are away, through their relay mailboxes (docs/protocol/rooms.md
 * §9), as for contacts (docs/protocol/mailbox.md): per pair of members (room, member)
 *
 *   a Double Ratchet   bootstrapped from the pair's member session (ratchet-store.ts: the
 *                      responder's ratchet key in the handshake payload, `exportSecret`), kept
 *                      across sessions while both ends hold the same one (`room.rs` compares ids,
 *                      as HELLO does for contacts); the initiator's first sealed frame (`room.dr`
 *                      over the live session) lets the responder's ratchet send too
 *   a receiving queue  on one of our relays — spread across them as contacts' queues are
 *                      (core/relay/choice.ts; docs/protocol/mailbox.md §1, "Several relays") —,
 *                      secured with a sender key we make and hand over inside the session
 *                      (`room.mbox {u, s, k}`, the `mbox` fields)
 *   deposits           a room frame sealed with the pair's ratchet, cut into mailbox bodies
 *                      (mailbox.ts `ratchetBodies`), SENT into the member's queue
 *
 * Stored sealed through EngineStorage secrets: `room-dr/<room>/<member>` (the ratchet),
 * `room-rx/…`, `room-tx/…` (queues), `room-rxo/…` (our queue on a dead relay we moved off, read
 * until retired: docs/protocol/mailbox.md §1, "Moving off a dead relay"), and `room-pairs` (which
 * pairs have a receiving queue).
 * Everything for one pair runs in order on one chain (the ratchet state is read and written there).
 */
import * as v from "valibot";
import { equalBytes, toHex, wipe } from "../../../../core/bytes.ts";
import { decodeWith, encodeCanonical } from "../../../../core/codec/codec.ts";
import type { CryptoProvider } from "../../../../core/crypto/provider.ts";
import { isLoftError, type Result } from "../../../../core/errors.ts";
import {
  canSend,
  type RatchetKeyPair,
  ratchetDecrypt,
  ratchetEncrypt,
} from "../../../../core/ratchet/index.ts";
import { relayOrder } from "../../../../core/relay/choice.ts";
import type { RelayMessage } from "../../../../core/relay/client.ts";
import { newAuthKeyPair } from "../../../../core/relay/crypto.ts";
import type { Session } from "../../../../core/session/index.ts";
import type { EngineStorage } from "../api.ts";
import {
  announcedLate,
  decodeMailboxBody,
  decodeRx,
  decodeTx,
  encodeRx,
  encodeTx,
  nextQueueOrder,
  PieceBuffer,
  type RxQueue,
  ratchetBodies,
  readsOrder,
  replacesQueue,
  sameAnnounce,
  stampOrder,
  type TxQueue,
  txOfAnnouncement,
} from "../mailbox.ts";
import {
  bootstrapChatRatchet,
  type ChatRatchet,
  decodeChatRatchet,
  encodeChatRatchet,
} from "../ratchet-store.ts";
import type { RelayConnections } from "../transport.ts";

/** The largest room message a mailbox reassembles (a 16 000-character message is ~66 KB). */
const MAX_MAILBOX_MESSAGE = 256 * 1024;
const PAIRS = "room-pairs";

type Secrets = Pick<EngineStorage, "loadSecret" | "saveSecret" | "deleteSecret">;

export interface RoomMailboxDeps {
  storage: Secrets;
  crypto?: CryptoProvider;
  selfKey: Uint8Array;
  log: (message: string) => void;
  /**
   * A room frame read from a member's mailbox (or a `room.dr` frame), in order per pair. A promise
   * is awaited before the relay's copy is acknowledged and the ratchet's new state stored (a chat
   * message is in the stored history first, a file's chunk is stored: docs/protocol/files.md §9),
   * and before the next frame is read; a rejected one leaves both, to read the message again.
   * `Keeping` (a room message, in the history in memory) is stored later: the next frames of the
   * same read are opened first, and `keep` is called for all of them at once, so that their history
   * writes coalesce into one (rooms/store.ts); what it returns is awaited just as well before the
   * acknowledgement and the ratchet's state. It must not wait on this pair's deposits (they run
   * after it).
   */
  onFrame: (roomHex: string, memberHex: string, frame: Uint8Array) => void | Promise<void> | Keeping;
}

/** A frame taken in memory, stored by `keep` (a room message: its history write). */
export interface Keeping {
  readonly keep: () => Promise<void>;
}

/**
 * A mailbox message opened, not stored yet (#settle): `ratchet` is the pair's state after it,
 * `moved` whether opening it moved the state, `keep` stores what it brought, `ack` acknowledges
 * its pieces.
 */
interface Unsettled {
  readonly ratchet: ChatRatchet | undefined;
  readonly moved: boolean;
  readonly keep: () => Promise<void>;
  readonly ack: () => Promise<void>;
}
/** Messages of one read opened before their keeping is awaited (a relay's SUB window is smaller). */
const MAX_UNSETTLED = 64;

interface Pair {
  readonly room: string;
  readonly member: string;
  ratchet: ChatRatchet | undefined;
  rx: RxQueue | undefined;
  /** Our former queue for the member, on a dead relay we moved off (`moveOff`): read until retired. */
  rxOld: RxQueue | undefined;
  tx: TxQueue | undefined;
  /** Forgotten (#forgetNow): what was queued on its chain behind the forget stores nothing, and a
   *  push reads and acknowledges nothing (#readOne). */
  gone?: boolean;
  /** Relay pushes queued on the chain and not read yet: a read settles once none is left. */
  reads: number;
  /** Opened and taken, waiting for their keeping before the ratchet is stored and the relay acknowledged. */
  readonly unsettled: Unsettled[];
  /** On the stored pair list (`room-pairs`), as read at `attach` or listed since (#list): each of the
   *  member's sessions asks for our queue (`receivingQueue`), and re-reading the list every time
   *  cost a secret load and open per session for nothing. */
  listed?: boolean;
  loaded: Promise<void> | undefined;
  chain: Promise<void>;
  readonly pieces: PieceBuffer;
  /**
   * How many times the member's queue for us was replaced this run (`announced`): a room's
   * mailbox pass deposits only into the queue it started with (`deposit`'s `since`).
   */
  moves: number;
  /** The member's queue for us was dropped on an `AUTH` (`deposit`): the relay lost it, and the
   *  queue the member announces next replaces it (`announced`). */
  txLost?: boolean;
  /**
   * The order (`room.mbox` `n`) of the last announcement taken from the member (a live one may
   * lower it), from its stored record or since (kept when an `AUTH` drops the record): one read
   * from the mailbox below it is an older one read late (`announced`).
   */
  seen?: number;
  /**
   * A message cut short in the member's queue it has since replaced (`announced`): the rest is
   * tried once into that queue, at the next deposit, then let go either way (`deposit`).
   */
  cutInOld?: { tx: TxQueue; d: PendingDeposit };
  /** Messages sealed and partly sent (a relay error): retried with the same pieces and send ids. */
  readonly deposits: Map<string, PendingDeposit>;
}

/** A message sealed for a member, its pieces, and how many of them the relay has (`deposit`). */
interface PendingDeposit {
  bodies: { body: Uint8Array; sendId: Uint8Array }[];
  next: number;
}

/** SEND what the relay does not have yet of `d` into `tx` (one already stored answers DUPLICATE). */
async function sendRest(
  client: Awaited<ReturnType<RelayConnections["client"]>>,
  tx: TxQueue,
  d: PendingDeposit,
): Promise<void> {
  for (; d.next < d.bodies.length; d.next++) {
    const b = d.bodies[d.next]!;
    try {
      await client.send(tx.queue, b.body, { sendId: b.sendId });
    } catch (e) {
      if (!(isLoftError(e) && e.code === "LOFT_ERR_RELAY_DUPLICATE")) throw e;
    }
  }
}

export type DepositResult = "sent" | "no-route" | "failed";
/** Half-sent messages kept per pair for their retry. */
const MAX_PENDING_DEPOSITS = 64;
/** `deposits` key of a deposit without a key of its own cut short at the relay (`deposit`); the
 *  other keys are room message ids (22 characters of base64url, §5), never this. */
const CUT_SHORT = "cut-short";
/** Forgotten queue ids remembered for their late pushes: a window of them each, at most. */
const MAX_FORGOTTEN = 256;

const name = (kind: string, p: Pick<Pair, "room" | "member">) => `room-${kind}/${p.room}/${p.member}`;

export class RoomMailboxes {
  readonly #d: RoomMailboxDeps;
  readonly #pairs = new Map<string, Pair>();
  readonly #byRecipient = new Map<string, Pair>();
  /**
   * Recipient ids of room queues of ours forgotten this run (a pair forgotten, an old queue
   * retired), newest last, at most MAX_FORGOTTEN: a push already on its way when the queue was
   * dropped is still ours (`onRelayMessage`), not a queue nobody knows for the 1:1 links.
   */
  readonly #forgotten = new Set<string>();
  #pool: RelayConnections | undefined;
  /** Our relays, in the user's order, and how many of our other queues (contacts') each holds. */
  #urls: readonly string[] = [];
  #otherQueues: (url: string) => number = () => 0;
  /** Queues being made right now, per relay: pairs make theirs at once (a room of several members
   *  joined), and each must see the others' choice to spread. */
  readonly #making = new Map<string, number>();

  constructor(deps: RoomMailboxDeps) {
    this.#d = deps;
  }

  /**
   * The engine's relay connections and our relays (the user's order): subscribe every stored
   * receiving queue. `otherQueues(url)`: how many of our contacts' queues `url` holds, so that
   * new room queues spread over all our queues together.
   */
  async attach(
    pool: RelayConnections,
    urls: readonly string[],
    otherQueues: (url: string) => number = () => 0,
  ): Promise<void> {
    this.#pool = pool;
    this.#urls = urls;
    this.#otherQueues = otherQueues;
    for (const key of await this.#pairList()) {
      const [room, member] = key.split("/");
      if (!room || !member) continue;
      const p = this.#pair(room, member);
      p.listed = true;
      await this.#load(p);
      if (p.rx) pool.subscribe(p.rx.url, p.rx.queue);
      if (p.rxOld) pool.subscribe(p.rxOld.url, p.rxOld.queue);
    }
  }

  get available(): boolean {
    return this.#pool !== undefined;
  }

  /** Our ratchet id with this member, for `room.rs` (undefined: none stored). */
  async ratchetId(room: string, member: string): Promise<Uint8Array | undefined> {
    const p = this.#pair(room, member);
    await this.#load(p);
    return p.ratchet?.id.slice();
  }

  /**
   * Their `room.rs`: keep our ratchet if both hold the same, else start one from this session.
   * Returns whether we started one as the session's initiator (we then send the first `room.dr`).
   */
  sync(
    room: string,
    member: string,
    theirs: Uint8Array | undefined,
    session: Session,
    ours: RatchetKeyPair | undefined,
  ): Promise<boolean> {
    return this.#afterForget(room, member, () => this.#sync(room, member, theirs, session, ours));
  }

  #sync(
    room: string,
    member: string,
    theirs: Uint8Array | undefined,
    session: Session,
    ours: RatchetKeyPair | undefined,
  ): Promise<boolean> {
    const p = this.#pair(room, member);
    // Forgotten before this ran: by a forget asked after it (`#afterForget` waited for those asked
    // before) — this session's own bye, or the room left or we were removed. Nothing is started
    // for it: a ratchet made anew here was stored, with our queue asked for next, for a member
    // gone (§9).
    return this.#runLive(p, false, async () => {
      await this.#load(p);
      if (p.ratchet && theirs && equalBytes(p.ratchet.id, theirs)) return false;
      const fresh = await bootstrapChatRatchet(session, this.#d.selfKey, ours, this.#d.crypto);
      if (!fresh.ok) {
        this.#d.log(`room ratchet not started: ${fresh.error.code}`);
        return false;
      }
      await this.#saveRatchet(p, fresh.value);
      return session.role === "initiator";
    });
  }

  /** Seal a room frame with the pair's ratchet (undefined if it cannot send yet). */
  seal(room: string, member: string, frame: Uint8Array): Promise<Uint8Array | undefined> {
    const p = this.#pair(room, member);
    return this.#run(p, () => this.#seal(p, frame));
  }

  /** A `room.dr` from the live session: open it and hand the frame on. */
  open(room: string, member: string, sealed: Uint8Array): Promise<void> {
    return this.#afterForget(room, member, () => this.#openFrom(room, member, sealed));
  }

  #openFrom(room: string, member: string, sealed: Uint8Array): Promise<void> {
    const p = this.#pair(room, member);
    // As for `sync`: forgotten by a forget asked after this frame came (the member's first frame
    // after a forget asked before it runs on the pair made anew: `#afterForget`), so nothing
    // opens it — its ratchet is deleted.
    return this.#runLive(p, undefined, () =>
      this.#open(p, sealed, (frame) => this.#d.onFrame(room, member, frame)),
    );
  }

  /** How many of our room queues `url` holds (pairs loaded: `attach` loads every stored one). */
  queuesOn(url: string): number {
    let n = this.#making.get(url) ?? 0;
    for (const p of this.#pairs.values()) if (p.rx?.url === url) n++;
    return n;
  }

  /**
   * Our receiving queue for this member (made and stored once), for `room.mbox`. `withOrder`: it is
   * announced to a member that reads `n` — one made before `n` gets one then, as for contacts
   * (queues.ts `stampOrder`; §9, "The order of announcements").
   */
  receivingQueue(room: string, member: string, withOrder = false): Promise<RxQueue | undefined> {
    const p = this.#pair(room, member);
    // Forgotten while this waited: asked by the session that said its bye (rooms/mesh.ts
    // `#onRatchetSync` asks once its `sync` is done, and the bye came meanwhile) — nothing is made
    // for a member gone (§9). A new session's asks once its own `sync` is done, which waited for
    // the forget (`#afterForget`): on the pair made anew, never here.
    return this.#runLive(p, undefined, async () => {
      await this.#load(p);
      if (!p.rx) return this.#createRx(p);
      // A queue stored but not listed (two pairs once listed themselves at the same time and one
      // lost its entry: #changePairs) was never subscribed at start: what its member left there
      // is read from now on.
      if (this.#pool && !p.listed && (await this.#list(p).catch(() => false)))
        this.#pool.subscribe(p.rx.url, p.rx.queue);
      if (withOrder && p.rx.n === undefined) await this.#stampOrder(p, p.rx);
      return p.rx;
    });
  }

  /** `n` for a queue of ours made before it (mailbox.ts `stampOrder`), on the pair's chain: no move runs meanwhile. */
  async #stampOrder(p: Pair, rx: RxQueue): Promise<void> {
    await stampOrder(
      rx,
      (sealed) => this.#d.storage.saveSecret(name("rx", p), sealed),
      (line) => this.#d.log(`room mailbox order ${line}`),
    );
  }

  /**
   * `url`, one of our relays, is dead: each of our room queues on it moves to another of our relays
   * (docs/protocol/mailbox.md §1, "Moving off a dead relay"); the old one stays subscribed, read
   * until retired. Returns the pairs that moved, whose members must be told (`room.mbox`).
   */
  async moveOff(url: string): Promise<{ room: string; member: string; rx: RxQueue }[]> {
    const moved: { room: string; member: string; rx: RxQueue }[] = [];
    if (!this.#pool || !this.#urls.some((u) => u !== url)) return moved;
    for (const key of await this.#pairList()) {
      const [room = "", member = ""] = key.split("/");
      const p = this.#pair(room, member);
      const rx = await this.#run(p, async () => {
        await this.#load(p);
        const old = p.rx;
        if (!old || old.url !== url) return undefined;
        return this.#createRx(p, url, old);
      });
      if (rx) {
        this.#d.log(`room mailbox ${room.slice(0, 8)}/${member.slice(0, 8)} moved off ${url} to ${rx.url}`);
        moved.push({ room, member, rx });
      }
    }
    return moved;
  }

  /**
   * A relay refused to SUB one of our room queues with AUTH: the queue is gone. A current queue
   * moves (another relay of ours first, this one last) and the old one retires at once — nothing
   * is left to read; an old one already moved off just retires. Returns the pair that moved.
   */
  async queueGone(
    url: string,
    recipientId: Uint8Array,
  ): Promise<{ room: string; member: string; rx: RxQueue } | undefined> {
    const p = this.#byRecipient.get(toHex(recipientId));
    if (!p) return undefined;
    return this.#run(p, async () => {
      if (p.rxOld && equalBytes(p.rxOld.queue.recipientId, recipientId)) {
        await this.#retireOld(p);
        return undefined;
      }
      const old = p.rx;
      if (!old || !equalBytes(old.queue.recipientId, recipientId)) return undefined;
      this.#d.log(`room mailbox ${p.room.slice(0, 8)}/${p.member.slice(0, 8)} is gone at ${url}: moving it`);
      const rx = (await this.#createRx(p, url, old)) ?? (await this.#createRx(p, undefined, old));
      if (!rx) return undefined;
      await this.#retireOld(p);
      return { room: p.room, member: p.member, rx };
    });
  }

  /** Pairs whose old queue has not retired yet, with their current queue: to announce again. */
  async unretired(): Promise<{ room: string; member: string; rx: RxQueue }[]> {
    const out: { room: string; member: string; rx: RxQueue }[] = [];
    for (const p of this.#pairs.values()) {
      await this.#load(p);
      if (p.rxOld && p.rx) out.push({ room: p.room, member: p.member, rx: p.rx });
    }
    return out;
  }

  /**
   * Whether a `room.mbox` deposited for this member may carry `n`: its queue for us was announced
   * with one, so the app that reads it reads `n` (mailbox.ts `readsOrder`; §9, "The order of
   * announcements"). An app from before `n` refuses a frame of five keys.
   */
  readsOrder(room: string, member: string): Promise<boolean> {
    const p = this.#pair(room, member);
    return this.#runLive(p, false, async () => {
      await this.#load(p);
      return readsOrder(p.tx);
    });
  }

  /**
   * The member has our new queue (it took `room.mbox` over a live session, or wrote into the new
   * queue): the old one retires — unsubscribed, deleted at its relay if that answers, forgotten.
   */
  retireOld(room: string, member: string): Promise<void> {
    const p = this.#pair(room, member);
    return this.#run(p, () => this.#retireOld(p));
  }

  async #retireOld(p: Pair): Promise<void> {
    const old = p.rxOld;
    if (!old) return;
    p.rxOld = undefined;
    this.#dropRecipient(old.queue.recipientId);
    this.#pool?.unsubscribe(old.url, old.queue.recipientId);
    await this.#d.storage.deleteSecret(name("rxo", p)).catch(() => undefined);
    this.#d.log(`old room mailbox ${p.room.slice(0, 8)}/${p.member.slice(0, 8)} on ${old.url} retired`);
    if (this.#pool && !this.#pool.isDown(old.url)) {
      const client = await this.#pool.client(old.url).catch(() => undefined);
      await client?.deleteQueue(old.queue).catch(() => undefined);
    }
  }

  /**
   * A new receiving queue for the pair (inside its chain): on the reachable relay of ours holding
   * the fewest of our queues, the next one at once when that fails (core/relay/choice.ts;
   * docs/protocol/mailbox.md §1, "Several relays"); `avoid`: a relay not to use (a dead one).
   */
  async #createRx(p: Pair, avoid?: string, replacing?: RxQueue): Promise<RxQueue | undefined> {
    const pool = this.#pool;
    if (!pool || p.gone) return undefined;
    const order = relayOrder(
      this.#urls.filter((u) => u !== avoid),
      (u) => this.queuesOn(u) + this.#otherQueues(u),
      (u) => pool.isDown(u),
    );
    for (const url of order) {
      this.#making.set(url, (this.#making.get(url) ?? 0) + 1);
      try {
        const client = await pool.client(url);
        const queue = await client.createQueue({ subscribe: false });
        const sender = newAuthKeyPair();
        await client.secureQueue(queue, sender.publicKey);
        // Ordered after the queue it replaces (or our last one): the member ignores an older
        // announcement read after this one's (§9, "The order of announcements").
        const n = nextQueueOrder(Date.now(), (replacing ?? p.rx)?.n);
        const rx: RxQueue = { url, queue, senderSecret: sender.secretKey, n };
        if (replacing) {
          // Moved twice before the first old one retired: that one goes now.
          await this.#retireOld(p);
          await this.#d.storage.saveSecret(name("rxo", p), encodeRx(replacing));
          p.rxOld = replacing; // stays in #byRecipient and subscribed: read while it lives
        }
        await this.#d.storage.saveSecret(name("rx", p), encodeRx(rx));
        await this.#list(p);
        p.rx = rx;
        this.#byRecipient.set(toHex(queue.recipientId), p);
        pool.subscribe(url, queue);
        return rx;
      } catch (e) {
        this.#d.log(`room mailbox not created at ${url}: ${isLoftError(e) ? e.code : (e as Error).message}`);
      } finally {
        this.#making.set(url, (this.#making.get(url) ?? 1) - 1);
      }
    }
    return undefined;
  }

  /**
   * The member's queue for us (`room.mbox`): `live` over its session, or read from our mailbox. A
   * live one waits for the member's forgets asked before it (`#afterForget`), as `sync` and `open`
   * do: a new session's `room.mbox` read while its last session's bye is being forgotten ran on
   * the pair being deleted, and was lost with it — every deposit for the member then had no route
   * until its next session announced again. One read from our mailbox does not wait: it is read on
   * the pair's chain, the member's word from before any bye asked since, and on a pair made anew
   * it was stored for a member gone. True when it replaces a queue of the member's we held (it
   * moved its queue): what we left in the old one may never be read (rooms/mesh.ts `#depositAgain`).
   * `replaced` is then called on the pair's chain, before any deposit into the new queue, so that
   * what is to go again is marked so before anything later goes there.
   */
  announced(
    room: string,
    member: string,
    m: { u: string; s: Uint8Array; k: Uint8Array; n?: number },
    from: "live" | "mailbox",
    replaced?: () => void,
  ): Promise<boolean> {
    const store = () => this.#announced(room, member, m, from, replaced);
    return from === "live" ? this.#afterForget(room, member, store) : store();
  }

  /**
   * How many times the member's queue for us was replaced this run: `deposit`'s `since`. Read
   * without making the pair (`#pair` would bring back one a forget deleted, on every mail pass): a
   * pair not there is at 0, as one `deposit` makes anew starts, and a pair made since and moved
   * is past 0 — either way `since` compares as it did.
   */
  queueMoves(room: string, member: string): number {
    return this.#pairs.get(`${room}/${member}`)?.moves ?? 0;
  }

  #announced(
    room: string,
    member: string,
    m: { u: string; s: Uint8Array; k: Uint8Array; n?: number },
    from: "live" | "mailbox",
    onReplaced?: () => void,
  ): Promise<boolean> {
    const p = this.#pair(room, member);
    return this.#runLive(p, false, async () => {
      if (!/^wss?:\/\//.test(m.u)) return false;
      await this.#load(p);
      // An older queue of the member's read late (engine/mailbox.ts `announcedLate`).
      if (announcedLate(from, m.n, p.seen)) {
        this.#d.log(
          `room ${room.slice(0, 8)}: an older queue of ${member.slice(0, 8)}'s announced late, ignored`,
        );
        return false;
      }
      if (m.n !== undefined) p.seen = m.n;
      const old = p.tx;
      const tx = txOfAnnouncement(m);
      // The address we hold already (every session of the member announces it): nothing to store —
      // one sealed write per member per session for nothing (as queues.ts `onAnnounce` for contacts).
      if (sameAnnounce(old, tx)) {
        this.#d.log(`room ${room.slice(0, 8)}: ${member.slice(0, 8)}'s queue announced again, unchanged`);
        return false;
      }
      // Another queue (or any after an `AUTH` dropped ours), as for contacts: a new key for the
      // same queue is not a move — what we left there is still read, and marking it to go again
      // (#depositAgain) only doubled it in the member's queue.
      const replaced = replacesQueue(old, p.txLost === true, tx);
      p.txLost = undefined;
      await this.#d.storage.saveSecret(name("tx", p), encodeTx(tx));
      p.tx = tx;
      if (replaced) {
        // Half-sent messages went partly into the old queue: sealed anew for the new one, whole.
        // The one cut short there (at most one: `deposit` finishes it before anything else) is
        // finished there if its relay is back, as for contacts (queues.ts `finishDeposit`): the
        // member reads its old queue until a body arrives in the new one, and a lone piece read
        // there would be joined to the next body it reads (one piece buffer per pair).
        const cut = [...p.deposits.values()].find((d) => d.next > 0 && d.next < d.bodies.length);
        p.cutInOld = old && cut ? { tx: old, d: cut } : undefined;
        p.deposits.clear();
        p.moves++;
        onReplaced?.();
      }
      return replaced;
    });
  }

  /** Whether we can leave messages for this member (its queue known, our ratchet can send). */
  async canDeposit(room: string, member: string): Promise<boolean> {
    const p = this.#pair(room, member);
    await this.#load(p);
    return (
      this.#pool !== undefined && p.tx !== undefined && p.ratchet !== undefined && canSend(p.ratchet.state)
    );
  }

  /**
   * The queue quota (messages) of the relay that holds the member's queue for us (its HELLO `qq`),
   * when we can leave messages there: what a file deposited there may take (docs/protocol/files.md §9).
   */
  async quota(room: string, member: string): Promise<number | undefined> {
    if (!(await this.canDeposit(room, member))) return undefined;
    const tx = this.#pair(room, member).tx;
    if (!tx || !this.#pool) return undefined;
    try {
      return (await this.#pool.client(tx.url)).hello.queueQuota;
    } catch {
      return undefined; // its relay is unreachable now: the file waits for the member's session
    }
  }

  /**
   * Seal `frame` for the member and SEND it into its queue. `sent`: the relay stored every piece;
   * `no-route`: nowhere to leave it (no queue of the member's known, or no ratchet that can send);
   * `failed`: the relay or the way to it failed — try again later with the same `key`: the pieces
   * sealed once are sent again with the same send ids, so a piece the relay stored before an
   * answer was lost is not stored twice (`LOFT_ERR_RELAY_DUPLICATE`, docs/protocol/relay.md) and
   * the ratchet moves on once per message. `since` (`queueMoves`, read when a mailbox pass
   * started): `no-route` if the member's queue was replaced since — what the pass had not sent yet
   * would go into the new queue before what goes there again (rooms/mesh.ts `#depositAgain`); the
   * next pass sends it all, in order.
   */
  deposit(
    room: string,
    member: string,
    frame: Uint8Array,
    key?: string,
    since?: number,
  ): Promise<DepositResult> {
    const p = this.#pair(room, member);
    return this.#run(p, async () => {
      await this.#load(p);
      const pool = this.#pool;
      const tx = p.tx;
      if (!pool || !tx) return "no-route";
      if (since !== undefined && since !== p.moves) return "no-route";
      const cut = p.cutInOld;
      if (cut) {
        // Once, either way: its relay is most likely the dead one the queue moved off, and its
        // failure says nothing of the member's current queue (mailbox.md §1, "Moving off a dead relay").
        p.cutInOld = undefined;
        try {
          await sendRest(await pool.client(cut.tx.url), cut.tx, cut.d);
        } catch (e) {
          this.#d.log(
            `a room message cut short in a member's former mailbox dropped: ${isLoftError(e) ? e.code : (e as Error).message}`,
          );
        }
      }
      let d = key === undefined ? undefined : p.deposits.get(key);
      if (!d) {
        const sealed = await this.#seal(p, frame);
        if (!sealed) return "no-route";
        d = {
          bodies: ratchetBodies(sealed).map((body) => ({
            body,
            sendId: crypto.getRandomValues(new Uint8Array(16)),
          })),
          next: 0,
        };
        if (key !== undefined) {
          // Bounded: the oldest half-sent message is resealed if it ever comes back. Never one cut
          // short (at most one: the loop below finishes it before anything else goes).
          if (p.deposits.size >= MAX_PENDING_DEPOSITS) {
            const oldest = [...p.deposits].find(([, o]) => !(o.next > 0 && o.next < o.bodies.length));
            p.deposits.delete(oldest?.[0] ?? "");
          }
          p.deposits.set(key, d);
        }
      }
      try {
        const client = await pool.client(tx.url);
        // The rest of a message cut short goes first, whatever is deposited now (a receipt, a file's
        // frame, a later message): the member joins pieces until one marked last, so a body between
        // its pieces would spoil both (docs/protocol/mailbox.md §2, as queues.ts `unfinished` does
        // for contacts). Kept, done, for its own deposit: that one then sends nothing again.
        for (const other of p.deposits.values())
          if (other !== d && other.next > 0 && other.next < other.bodies.length)
            await sendRest(client, tx, other);
        p.deposits.delete(CUT_SHORT);
        await sendRest(client, tx, d);
        if (key !== undefined) p.deposits.delete(key);
        return "sent";
      } catch (e) {
        this.#d.log(`room mailbox send failed: ${isLoftError(e) ? e.code : (e as Error).message}`);
        // One without a key (a file's frame, files.md §9; a receipt; a `room.mbox`) cut short is
        // kept too, as the pair's one cut short: nobody retries it by its key, and dropped, the
        // pieces the relay took were joined by the member to the next body it read (mailbox.md §2).
        // The next deposit sends its rest first (above), then lets it go.
        if (key === undefined && d.next > 0) p.deposits.set(CUT_SHORT, d);
        if (isLoftError(e) && e.code === "LOFT_ERR_RELAY_AUTH") {
          // The member's queue is gone (it left while we were away) or no longer takes our key:
          // nowhere to leave messages until it announces a queue again (as for contacts, queues.ts).
          p.tx = undefined;
          p.txLost = true;
          p.deposits.clear();
          await this.#d.storage.deleteSecret(name("tx", p)).catch(() => undefined);
          return "no-route";
        }
        return "failed";
      }
    });
  }

  /**
   * A relay push: ours if it is for a room queue (then read in order and acknowledged). The
   * messages one read brings (a member's backlog, pushed a SUB window at a time) are opened one
   * after another and stored together (#settle: no push left queued, or before any other work of
   * the pair): their history writes coalesce (rooms/store.ts), so a backlog costs a sealed write
   * of the history per read rather than per message. The ratchet's state is stored, and the
   * relay's copies acknowledged, only once the history holds them — docs/protocol/rooms.md §9,
   * "Reading".
   */
  onRelayMessage(url: string, m: RelayMessage): boolean {
    const hex = toHex(m.recipientId);
    const p = this.#byRecipient.get(hex);
    // Our current queue for the pair, or the one we moved off a dead relay (`moveOff`).
    const rx = [p?.rx, p?.rxOld].find((q) => q && equalBytes(q.queue.recipientId, m.recipientId));
    if (!p || !rx) {
      if (!this.#forgotten.has(hex)) return false;
      // Pushed before the queue's DEL ended the relay's subscription (the relay hears of no
      // unsubscribe): not acknowledged — the DEL deletes it with the queue (docs/protocol/relay.md
      // §Commands, DEL). A DEL that failed leaves the relay pushing at most a window of them to
      // this connection until it closes, and the messages to expire (docs/protocol/mailbox.md,
      // "Moving off a dead relay").
      this.#d.log("a push for a room queue we forgot: left for the queue's deletion at the relay");
      return true;
    }
    p.reads++;
    void this.#chain(p, async () => {
      p.reads--;
      try {
        await this.#readOne(p, url, rx, m);
      } finally {
        if (p.reads === 0 || p.unsettled.length >= MAX_UNSETTLED) await this.#settle(p);
      }
    }).catch((e: unknown) =>
      // Not stored (a full disk): not acknowledged either, read again when the relay delivers it again.
      this.#d.log(`a room mailbox message was not taken, left at the relay: ${(e as Error).message}`),
    );
    return true;
  }

  /** One push of a pair's queue (inside its chain): opened and taken, left to #settle. */
  async #readOne(p: Pair, url: string, rx: RxQueue, m: RelayMessage): Promise<void> {
    // Pushed before the forget dropped the queue, and queued behind it on the pair's chain: the
    // queue is deleted at the relay by now (an ACK there is refused), and a pair gone reads nothing
    // — as a push that comes after the forget (`onRelayMessage`).
    if (p.gone) {
      this.#d.log("a push for a room queue we forgot: left for the queue's deletion at the relay");
      return;
    }
    // An old queue retired while this push waited behind its retirement (#retireOld) is deleted at
    // its relay: what it brought is read, and nothing acknowledged there (refused).
    const held = () => rx === p.rx || rx === p.rxOld;
    const item = decodeMailboxBody(m.body);
    if (!item.ok || item.value.type !== "ratchet") {
      if (held()) await this.#pool?.ack(url, rx.queue, m.msgId);
      return;
    }
    const done = p.pieces.add(m.msgId, item.value.part, item.value.last);
    if (!done) return;
    const ack = async () => {
      if (!held()) return;
      for (const id of done.ids) await this.#pool?.ack(url, rx.queue, id);
      // The member wrote into the new queue: it has our new address, the old one retires.
      if (rx === p.rx && p.rxOld) await this.#retireOld(p);
    };
    await this.#load(p);
    let keep = () => Promise.resolve();
    let moved = false;
    const opened = done.message ? await this.#decrypt(p, done.message, "mailbox") : undefined;
    if (opened) {
      moved = true;
      // A frame of the files lane is stored before the next is read (backpressure: files.md §9);
      // a room message is stored with the others of this read (`Keeping`).
      try {
        const taken = await this.#d.onFrame(p.room, p.member, opened.plaintext);
        if (taken) keep = taken.keep;
      } catch (e) {
        keep = () => Promise.reject(e);
      }
    }
    p.unsettled.push({ ratchet: p.ratchet, moved, keep, ack });
  }

  /**
   * The messages opened since the last settle, stored: once each is, the ratchet's state after the
   * last of them is stored and their pieces acknowledged (DR §3.5: a used message key is deleted,
   * so the state must not move on at rest before the history holds the message). One that was not
   * kept (a full disk) stops there: the ones before it are stored and acknowledged, it and those
   * after it are not — the relay delivers them again, they open again from the state before it
   * (one already in the history again is not shown twice: rooms/mesh.ts `#take`).
   */
  async #settle(p: Pair): Promise<void> {
    const batch = p.unsettled.splice(0);
    if (batch.length === 0) return;
    // Asked all at once: the history writes collapse into one (rooms/store.ts `#write`).
    const results = await Promise.allSettled(batch.map((b) => b.keep()));
    const bad = results.findIndex((r) => r.status === "rejected");
    const kept = bad === -1 ? batch : batch.slice(0, bad);
    const last = kept.at(-1);
    if (last?.ratchet && kept.some((b) => b.moved)) await this.#saveRatchet(p, last.ratchet);
    // Asked in one turn: the relay client sends them in one ACKS frame (core/relay/client.ts).
    await Promise.all(kept.map((b) => b.ack()));
    const failed = results[bad];
    if (failed?.status === "rejected") {
      p.ratchet = last ? last.ratchet : await this.#loadOne(p, "dr", decodeChatRatchet);
      throw failed.reason;
    }
  }

  /** No pair reads `recipientId` any more; pushes still on their way are ours (`#forgotten`). */
  #dropRecipient(recipientId: Uint8Array): void {
    const hex = toHex(recipientId);
    this.#byRecipient.delete(hex);
    this.#forgotten.add(hex);
    if (this.#forgotten.size > MAX_FORGOTTEN) this.#forgotten.delete(this.#forgotten.values().next().value!);
  }

  /** The room is left: forget every pair of it, and delete its queues at the relay. */
  forgetRoom(room: string): Promise<void> {
    return this.#forget((k) => k.startsWith(`${room}/`));
  }

  /** Forget every pair of a room `keep` does not name: rooms left whose clean-up did not finish. */
  forgetRoomsBut(keep: (room: string) => boolean): Promise<void> {
    return this.#forget((k) => !keep(k.slice(0, k.indexOf("/"))));
  }

  /**
   * A member left (`room.bye`) or was removed: its queue for us goes at the relay, with the pair's
   * ratchet and records (docs/protocol/rooms.md §9), so departed members never hold queues.
   */
  forgetPair(room: string, member: string): Promise<void> {
    return this.#forgetMembers(new Set([`${room}/${member}`]));
  }

  /** Forget several members of a room at once (the removed ones of a state). */
  forgetPairs(room: string, members: readonly string[]): Promise<void> {
    return this.#forgetMembers(new Set(members.map((m) => `${room}/${m}`)));
  }

  #forgetMembers(keys: ReadonlySet<string>): Promise<void> {
    const done = this.#forget((k) => keys.has(k));
    const settled = done.catch(() => undefined);
    for (const key of keys) this.#memberForgets.set(key, settled);
    void settled.then(() => {
      for (const key of keys) if (this.#memberForgets.get(key) === settled) this.#memberForgets.delete(key);
    });
    return done;
  }

  /**
   * `f` once the member's forgets asked for before it are done (`#memberForgets`): on the pair
   * made anew, not on the one a forget deletes — at once when none is pending. Only those: forgets
   * run one at a time, in order, so the last one pending now ends after the others. Not one asked
   * after `f` (the same session's bye, read after its `room.rs`): `f` waited for it too and ran
   * after it, on a pair made anew for a member gone — its ratchet stored, and our queue then
   * asked for (rooms/mesh.ts `#onRatchetSync`) listed and subscribed at every start (§9).
   */
  #afterForget<T>(room: string, member: string, f: () => Promise<T>): Promise<T> {
    const pending = this.#memberForgets.get(`${room}/${member}`);
    return pending ? pending.then(f) : f();
  }

  /** One forget at a time. */
  #forgetting: Promise<void> = Promise.resolve();
  /**
   * Members' forgets asked for and not done, by pair key: a forget waits for the one before it
   * (`#forgetting`) and for the pair list before it reaches the pair, and a member back meanwhile
   * must not work on the pair it then deletes: its new session's `sync`, `room.dr` (`open`) and
   * `room.mbox` (`announced`) wait for it (`#afterForget`) — they come only from a session after
   * the bye (the session is
   * ordered, and `#onRatchetSync` asks for `sync` as the `room.rs` comes), and our queue is asked
   * for once `sync` is done (rooms/mesh.ts `#onRatchetSync`).
   */
  readonly #memberForgets = new Map<string, Promise<void>>();

  #forget(which: (key: string) => boolean): Promise<void> {
    const next = this.#forgetting.then(() => this.#forgetNow(which));
    this.#forgetting = next.catch(() => undefined);
    return next;
  }

  async #forgetNow(which: (key: string) => boolean): Promise<void> {
    const list = await this.#pairList();
    // Listed pairs (with a receiving queue) and pairs used this run (a ratchet, their queue).
    const gone = [...new Set([...list, ...this.#pairs.keys()])].filter(which);
    for (const key of gone) {
      const [room = "", member = ""] = key.split("/");
      const p = this.#pair(room, member);
      // After whatever the pair is doing (a deposit, a read), and with its records loaded: a pair
      // not used since the start still has its queue at the relay.
      await this.#run(p, async () => {
        await this.#load(p);
        await this.#retireOld(p);
        if (p.rx) {
          this.#pool?.unsubscribe(p.rx.url, p.rx.queue.recipientId);
          this.#dropRecipient(p.rx.queue.recipientId);
          const client = await this.#pool?.client(p.rx.url).catch(() => undefined);
          await client?.deleteQueue(p.rx.queue).catch(() => undefined);
        }
        // Work queued on the pair behind this (a deposit, a member's new queue) must not store
        // its records again once deleted: they stayed on disk for a member gone (§9).
        p.gone = true;
        p.ratchet = p.rx = p.rxOld = p.tx = p.cutInOld = undefined;
        p.deposits.clear();
        for (const kind of ["dr", "rx", "rxo", "tx"])
          await this.#d.storage.deleteSecret(name(kind, p)).catch(() => undefined);
        // Its records gone: what is asked from now on is for a pair made anew (the member back:
        // its session's `sync` and `open` waited for this, `#afterForget`) — off the map, so that
        // it does not find this one again; what was queued behind this finds it gone.
        if (this.#pairs.get(key) === p) this.#pairs.delete(key);
      });
    }
    // Nothing of it listed or in use: the list is not read again for nothing (a state removing
    // members we never paired with, a sweep with no room left to clean).
    if (gone.length === 0) return;
    // On the list as it is now, not as read above: a pair made its queue meanwhile. A key listed
    // again since by a pair made anew (the member back while the forget ran on other pairs) stays:
    // that pair is known listed, so nothing lists it again this run — dropped here, its queue was
    // not subscribed at the next start and its messages waited at the relay. One of a room still
    // left goes with the next sweep (`forgetRoomsBut`).
    await this.#changePairs((now) =>
      now.filter((k) => {
        const current = this.#pairs.get(k);
        return !which(k) || (current?.listed === true && !current.gone);
      }),
    );
  }

  // ---- inside a pair's chain ------------------------------------------------------------------

  async #seal(p: Pair, frame: Uint8Array): Promise<Uint8Array | undefined> {
    await this.#load(p);
    const r = p.ratchet;
    if (!r || !canSend(r.state)) return undefined;
    const { state, message } = await ratchetEncrypt(r.state, frame, Date.now(), this.#opts());
    // Stored before the ciphertext leaves: a crash never reuses a chain key (Signal DR §3.5).
    await this.#saveRatchet(p, { id: r.id, state });
    return message;
  }

  /**
   * Open a sealed frame with the pair's ratchet and hand it to `take`; the ratchet's new state is
   * stored only once `take` is done (the frame kept: our history written, a file's chunk stored).
   * A `take` that fails leaves the stored ratchet as it was — and the relay's copy unacknowledged
   * (`onRelayMessage`) —, so the message opens again when the relay delivers it again: had the
   * state moved on first, that copy could never be read again (DR §3.5: a used message key is
   * deleted), and a message whose history write failed was lost.
   */
  async #open(
    p: Pair,
    sealed: Uint8Array,
    take: (frame: Uint8Array) => void | Promise<void> | Keeping,
  ): Promise<void> {
    const opened = await this.#decrypt(p, sealed, "live");
    if (!opened) return;
    try {
      const taken = await take(opened.plaintext);
      if (taken) await taken.keep();
    } catch (e) {
      // The state before this message was used up by the decrypt: the stored one is read back.
      p.ratchet = await this.#loadOne(p, "dr", decodeChatRatchet);
      throw e;
    }
    await this.#saveRatchet(p, opened.next);
  }

  /**
   * `sealed` opened with the pair's ratchet (Signal DR §3.5), which moves on in memory only
   * (`p.ratchet`): the caller stores the new state once what it carried is kept (`#open`,
   * `#settle`). Undefined, and logged, when it does not open — or when the pair has no ratchet:
   * never opened then, as a ratchet started later is a new one (`sync`), not the one that sealed it.
   * `from`: where it came from, for the log — a `room.dr` over the member's session (`open`) or a
   * message read from our mailbox (`onRelayMessage`).
   */
  async #decrypt(
    p: Pair,
    sealed: Uint8Array,
    from: "live" | "mailbox",
  ): Promise<{ plaintext: Uint8Array; next: ChatRatchet } | undefined> {
    await this.#load(p);
    const r = p.ratchet;
    const dropped = from === "live" ? "a sealed room frame (room.dr, live)" : "a room mailbox message";
    if (!r) {
      this.#d.log(`dropped ${dropped}: the pair has no ratchet`);
      return undefined;
    }
    const opened = await ratchetDecrypt(r.state, sealed, Date.now(), this.#opts());
    if (!opened.ok) {
      this.#d.log(`dropped ${dropped}: ${opened.error.code}`);
      return undefined;
    }
    const next = { id: r.id, state: opened.value.state };
    p.ratchet = next;
    return { plaintext: opened.value.plaintext, next };
  }

  async #saveRatchet(p: Pair, r: ChatRatchet): Promise<void> {
    if (p.gone) return;
    p.ratchet = r;
    const blob = encodeChatRatchet(r);
    try {
      await this.#d.storage.saveSecret(name("dr", p), blob);
    } finally {
      wipe(blob);
    }
  }

  #opts(): { crypto?: CryptoProvider } {
    return this.#d.crypto ? { crypto: this.#d.crypto } : {};
  }

  // ---- bookkeeping -----------------------------------------------------------------------------

  #pair(room: string, member: string): Pair {
    const key = `${room}/${member}`;
    let p = this.#pairs.get(key);
    if (!p) {
      p = {
        room,
        member,
        ratchet: undefined,
        rx: undefined,
        rxOld: undefined,
        tx: undefined,
        loaded: undefined,
        chain: Promise.resolve(),
        pieces: new PieceBuffer(MAX_MAILBOX_MESSAGE),
        deposits: new Map(),
        moves: 0,
        reads: 0,
        unsettled: [],
      };
      this.#pairs.set(key, p);
    }
    return p;
  }

  #load(p: Pair): Promise<void> {
    p.loaded ??= (async () => {
      const ratchet = await this.#loadOne(p, "dr", decodeChatRatchet);
      if (ratchet) p.ratchet = ratchet;
      const rx = await this.#loadOne(p, "rx", decodeRx);
      if (rx) {
        p.rx = rx;
        this.#byRecipient.set(toHex(rx.queue.recipientId), p);
      }
      const rxOld = await this.#loadOne(p, "rxo", decodeRx);
      if (rxOld) {
        p.rxOld = rxOld;
        this.#byRecipient.set(toHex(rxOld.queue.recipientId), p);
      }
      const tx = await this.#loadOne(p, "tx", decodeTx);
      if (tx) p.tx = tx;
      if (tx?.n !== undefined) p.seen = Math.max(p.seen ?? 0, tx.n);
    })();
    return p.loaded;
  }

  /** One of the pair's stored records, decoded (undefined: none, or unreadable); the bytes wiped. */
  async #loadOne<T>(p: Pair, kind: string, decode: (bytes: Uint8Array) => Result<T>): Promise<T | undefined> {
    const bytes = await this.#d.storage.loadSecret(name(kind, p));
    if (!bytes) return undefined;
    const r = decode(bytes);
    wipe(bytes);
    return r.ok ? r.value : undefined;
  }

  /** List the pair (`room-pairs`: subscribed at start) if it is not; true when it was not. */
  async #list(p: Pair): Promise<boolean> {
    const key = `${p.room}/${p.member}`;
    if (p.gone) return false;
    let added = false;
    await this.#changePairs(
      (list) => {
        if (list.includes(key)) return list;
        added = true;
        return [...list, key];
      },
      // Known listed before the next change of the list reads it (a forget's, #forgetNow). Not
      // when forgotten meanwhile (its key went off the list since): a pair made again starts unlisted.
      () => {
        if (!p.gone) p.listed = true;
      },
    );
    return added;
  }

  /** Pair-list changes, one after another (#changePairs). */
  #listing: Promise<void> = Promise.resolve();

  /**
   * Change the stored pair list, one change at a time, each reading the list the one before left.
   * Each pair's chain runs on its own, so a member joining a room of several makes its queues for
   * them at once: two pairs read the same list and each stored it with only itself added — the
   * other's queue, unlisted, was not subscribed at the next start, and what its member left there
   * while we were away was never read (docs/protocol/rooms.md §9). `stored`: run once the change
   * is stored, before the next change reads the list.
   */
  #changePairs(change: (list: string[]) => string[], stored?: () => void): Promise<void> {
    const next = this.#listing.then(async () => {
      const list = await this.#pairList();
      const changed = change(list);
      if (changed.length !== list.length || changed.some((k, i) => k !== list[i]))
        await this.#d.storage.saveSecret(PAIRS, encodeCanonical(changed));
      stored?.();
    });
    this.#listing = next.catch(() => undefined);
    return next;
  }

  async #pairList(): Promise<string[]> {
    const bytes = await this.#d.storage.loadSecret(PAIRS);
    if (!bytes) return [];
    const r = decodeWith(bytes, v.array(v.pipe(v.string(), v.maxLength(200))), {
      maxBytes: 1 << 20,
      maxArrayLength: 1 << 14,
    });
    return r.ok ? r.value : [];
  }

  /**
   * Run `f` after everything before it for this pair (a failure does not stop the chain), once
   * what a read opened is settled: `f` may store the ratchet (a seal, a new one), which must not
   * cover messages our history does not hold yet.
   */
  #run<T>(p: Pair, f: () => Promise<T>): Promise<T> {
    return this.#chain(p, async () => {
      await this.#settle(p).catch((e: unknown) =>
        this.#d.log(`a room mailbox message was not taken, left at the relay: ${(e as Error).message}`),
      );
      return f();
    });
  }

  /**
   * `f` on the pair's chain (#run), unless the pair was forgotten before it ran (#forgetNow): then
   * `gone`, and nothing done — what was queued behind a forget must neither store the pair's records
   * again nor make anything at the relay for a member gone (§9). (A relay push queued behind a
   * forget is checked in #readOne: it runs on the chain as it is, and says what it left.)
   */
  #runLive<T>(p: Pair, gone: T, f: () => Promise<T>): Promise<T> {
    return this.#run(p, () => (p.gone ? Promise.resolve(gone) : f()));
  }

  /** `f` on the pair's chain as it is (#run settles first). */
  #chain<T>(p: Pair, f: () => Promise<T>): Promise<T> {
    const next = p.chain.then(f);
    p.chain = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }
}
