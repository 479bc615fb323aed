/**
 * The chat engine with a real relay (relay-ws/testing.ts `startTestRelay`, real WebSockets, LMDB
 * store) and real signaling, in Node: mailboxes exchanged inside the session, messages to an
 * offline contact `relayed` then read in order exactly once and `delivered`, retries across a relay
 * outage, a deposit cut short kept in front of the next, and the mailbox never used while a live
 * session is up. The browser versions are
 * test/e2e/relay-*.e2e.ts.
 */

import { randomBytes } from "@noble/hashes/utils.js";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { toHex } from "../../../core/bytes.ts";
import { createUserIdentity, type UserIdentity } from "../../../core/identity/identity.ts";
import {
  createPrekeyStore,
  EARLY_ROTATION_MIN_AGE_MS,
  EARLY_ROTATION_SEEN,
} from "../../../core/prekey/index.ts";
import type { RecipientQueue, RelayClient } from "../../../core/relay/client.ts";
import { newAuthKeyPair } from "../../../core/relay/crypto.ts";
import { RelayLink } from "../../../core/relay/live-link.ts";
import type { SignalingClient } from "../../../core/signaling/client.ts";
import { storedMessageBytes } from "../../../relay-ws/source-limits.ts";
import { connectRelay, relayCounter, startTestRelay, type TestRelay } from "../../../relay-ws/testing.ts";
import { type RunningSignaling, startSignaling } from "../../../signaling/testing.ts";
import {
  EngineHarness,
  type EngineNode,
  FAST_ENGINE,
  Hub,
  MemoryStorage,
  relaySocket,
  until,
} from "../../../test/support/engine.ts";
import { metricValue } from "../../../test/support/metrics.ts";
import { silentTcp } from "../../../test/support/silent-tcp.ts";
import { RelayLiveTransport } from "../net/relay-live.ts";
import { createRelayPool } from "../net/relay-pool.ts";
import type { MessageId } from "./api.ts";
import type { Peer } from "./context.ts";
import type { EngineConfig } from "./engine.ts";
import { RELAY_BUSY_MESSAGE } from "./errors.ts";
import { decodeLeftovers, encodeLeftovers, LIVE_LEFTOVERS_SECRET } from "./live-leftovers.ts";
import { decodeRx, decodeTx, SECRET } from "./mailbox.ts";
import type { Outcome } from "./outcome.ts";
import { decodePrekeyState, encodePrekeyState } from "./prekeys.ts";
import {
  type DepositContext,
  finishDeposit,
  hasUnfinishedDeposit,
  newDeposit,
  onAnnounce,
  sendDeposit,
} from "./queues.ts";
import type { RelayConnections } from "./transport.ts";

const FAST: Partial<EngineConfig> = {
  ...FAST_ENGINE,
  mailboxDelayMs: 200,
  relayBackoffInitialMs: 50,
  relayBackoffMaxMs: 300,
  // Far out of reach (docs/contributing.md, "Tests"): these tests are about what goes through the
  // mailbox, and a relay answer slower than the bound (2 s was beaten at load ~20 on 2 cores) made
  // a mailbox not made or a deposit failed. No test here waits on a relay request timing out (a
  // relay that is down refuses the connection).
  relayTimeoutMs: 120_000,
  relayFallbackMs: 300,
  relayTransport: (deps) => new RelayLiveTransport(deps),
};

/** A relay pool whose sockets leave from `address` (the relay keeps a storage budget per source). */
function depositPool(address: string, timeoutMs: number): RelayConnections {
  return createRelayPool({
    webSocket: (url) => relaySocket(url, address),
    timeoutMs,
    backoffInitialMs: 10,
    backoffMaxMs: 50,
    window: 16,
    onMessage: () => {},
    onState: () => {},
    log: () => {},
  });
}

/** What queues.ts `sendDeposit` needs, over `pool`, and the offline contact it deposits for. */
function depositParts(pool: RelayConnections): { ctx: DepositContext; peer: Peer } {
  const ctx = {
    cfg: { log: () => {}, relayBackoffInitialMs: 50, relayBackoffMaxMs: 300 },
    pool,
    storage: new MemoryStorage(""),
    listeners: new Set(),
  } as unknown as DepositContext;
  const peer = {
    id: "b0b0b0b0b0b0b0b0",
    name: "bob",
    presence: { status: "offline", since: 0 },
    relayFailures: 0,
  } as unknown as Peer;
  return { ctx, peer };
}

/** The first byte of each body on queue `q`, in queue order, each acked (at most `most`). */
async function drainFirstBytes(owner: RelayClient, q: RecipientQueue, most: number): Promise<number[]> {
  const out: number[] = [];
  for (let m = await owner.get(q); m && out.length < most; m = await owner.get(q)) {
    out.push(m.body[0]!);
    await owner.ack(q, m.msgId);
  }
  return out;
}

/** A queue on `owner`'s relay secured with a sender key of ours: the queue and our address for it. */
async function securedQueue(owner: RelayClient, url: string) {
  const q = await owner.createQueue({ subscribe: false });
  const sender = newAuthKeyPair();
  await owner.secureQueue(q, sender.publicKey);
  return { q, tx: { url, queue: { senderId: q.senderId, senderAuthSecret: sender.secretKey } } };
}

/**
 * Every receiving queue a live relay link subscribes from now on, with the connection it is on
 * (`RelayLink.open` spied on, still called); `spy.mockRestore()` ends it.
 */
function spyLiveQueues() {
  const links: { client: RelayClient; own: RecipientQueue }[] = [];
  const open = RelayLink.open;
  const spy = vi.spyOn(RelayLink, "open").mockImplementation((client, own, peer, options) => {
    links.push({ client, own });
    return open.call(RelayLink, client, own, peer, options);
  });
  return { links, spy };
}

describe("chat engine with relay mailboxes (Node, real relay and signaling)", () => {
  let signaling: RunningSignaling;
  let relay: TestRelay;
  const h = new EngineHarness(() => ({ signalingUrl: signaling.url, relayUrl: relay.url, config: FAST }));
  const node = (
    name: string,
    user?: UserIdentity,
    storage?: MemoryStorage,
    signalingUrl?: string,
    config?: Partial<EngineConfig>,
  ) => h.node(name, user, storage, signalingUrl ?? signaling.url, config);
  const online = (n: EngineNode, peer: EngineNode) => h.online(n, peer);
  const stateOf = (n: EngineNode, id: MessageId) => h.stateOf(n, id);
  const knowsMailboxOf = (n: EngineNode, peer: EngineNode) => h.knowsMailboxOf(n, peer);
  /** Two contacts that met once (directly unless `blockDirect`), so both hold the other's mailbox. */
  const pair = (blockDirect = false) => h.pair(blockDirect);

  /** Alice, who holds only Bob's link (his contact address at the relay), started without signaling. */
  const strangerWithLink = async (bob: EngineNode, refs: Record<string, Uint8Array>) => {
    const a = node("alice", undefined, undefined, "");
    const bobInA = a.storage.addUser(bob.user);
    a.storage.contacts.get(bobInA)!.endpoints = { signaling: [], relay: [relay.url], refs };
    await a.engine.start();
    return a;
  };

  beforeAll(async () => {
    signaling = await startSignaling();
    relay = await startTestRelay();
  });
  afterAll(async () => {
    await relay?.close();
    await signaling?.close();
  });
  afterEach(async () => {
    await h.stopAll();
  });

  it("messages to an offline contact are relayed, then read in order exactly once and delivered", async () => {
    const [a, b] = await pair();
    const m0 = await a.engine.send(b.id, "while online");
    await until(() => stateOf(a, m0) === "delivered", "m0 delivered live");
    await b.engine.stop();
    await until(() => !online(a, b), "bob offline");
    const texts = Array.from({ length: 20 }, (_, i) => `offline ${i + 1}`);
    const ids: MessageId[] = [];
    for (const t of texts) ids.push(await a.engine.send(b.id, t));
    await until(() => ids.every((id) => stateOf(a, id) === "relayed"), "all relayed", 20_000);
    const states = a.events
      .filter((e) => e.type === "message-state" && e.id === ids[0])
      .map((e) => (e as { state: string }).state);
    expect(states).toEqual(["queued", "sending", "relayed"]);

    // Bob comes back without signaling: only the mailbox can bring the messages. The first read
    // of his ratchet fails once (a storage hiccup at page start): the first body is left on the
    // relay, so the ones after it must wait for it instead of being read first — the relay
    // redelivers it only on a new SUB (mailbox.md §4, "In order"; relay-fault.e2e showed #01 last).
    const loadSession = b.storage.loadSession.bind(b.storage);
    let hiccups = 1;
    b.storage.loadSession = async (id) => {
      if (hiccups-- > 0) throw new Error("storage hiccup");
      return loadSession(id);
    };
    const b2 = node("bob", b.user, b.storage, "");
    await b2.engine.start();
    await until(() => b.storage.texts(a.id, "in").length === 21, "bob read all", 20_000);
    expect(b.storage.texts(a.id, "in")).toEqual(["while online", ...texts]);
    expect(b2.logs.some((l) => /mailbox of .* held \(failed\)/.test(l))).toBe(true);
    b.storage.loadSession = loadSession;
    // Receipts come back through Alice's mailbox.
    await until(() => ids.every((id) => stateOf(a, id) === "delivered"), "all delivered", 20_000);
    expect(a.storage.outbox.size).toBe(0);
    // Nothing was left on the relay for a second reading: a restart reads nothing new.
    await b2.engine.stop();
    const b3 = node("bob", b.user, b.storage, "");
    await b3.engine.start();
    const m = await b3.engine.send(a.id, "reply through the mailbox");
    await until(() => a.storage.texts(b.id, "in").includes("reply through the mailbox"), "reply read");
    await until(() => stateOf(b3, m) === "delivered", "reply delivered");
    expect(b.storage.texts(a.id, "in")).toHaveLength(21);
  });

  it("a long message goes in pieces and arrives whole", async () => {
    const [a, b] = await pair();
    await b.engine.stop();
    await until(() => !online(a, b), "bob offline");
    const long = "ü".repeat(16_000);
    const id = await a.engine.send(b.id, long);
    await until(() => stateOf(a, id) === "relayed", "relayed");
    const b2 = node("bob", b.user, b.storage, "");
    await b2.engine.start();
    await until(() => b.storage.texts(a.id, "in").length === 1, "read");
    expect(b.storage.texts(a.id, "in")[0]).toBe(long);
    await until(() => stateOf(a, id) === "delivered", "delivered");
  });

  it("says so in plain words when the relay is down, and the message waits", async () => {
    const [a, b] = await pair();
    await b.engine.stop();
    await until(() => !online(a, b), "bob offline");
    await relay.close();
    const id = await a.engine.send(b.id, "waiting for the relay");
    await until(
      () => a.engine.presence(b.id).lastError?.kind === "relay-unreachable",
      "relay-unreachable shown",
    );
    expect(a.engine.presence(b.id).lastError?.message).toMatch(/relay can't be reached/);
    expect(a.engine.serviceStatus().relay).toBe("unreachable");
    expect(a.events.some((e) => e.type === "error" && e.error.kind === "relay-unreachable")).toBe(true);
    expect(stateOf(a, id)).toBe("queued");
    relay = await startTestRelay(); // for the next test (recovery after a restart: relay-fault.e2e.ts)
  });

  it("a relay whose upgrade is never answered: the engine gives up the opening at relayOpenTimeoutMs, far inside relayTimeoutMs, and closes its socket", async () => {
    // While that socket is CONNECTING the browser holds the page's signaling behind it (RFC 6455
    // §4.1; docs/decisions.md (Relay), "A relay socket's opening has its own bound").
    const stuck = await silentTcp();
    try {
      const storage = new MemoryStorage(signaling.url, [stuck.url("/relay")]);
      const a = node("alice", undefined, storage, undefined, {
        relayTimeoutMs: 600_000,
        relayOpenTimeoutMs: 200,
      });
      await a.engine.start();
      await until(() => a.engine.serviceStatus().relay === "unreachable", "relay unreachable");
      await until(() => stuck.closed() >= 1, "the stuck relay socket closed by the engine");
    } finally {
      await stuck.close();
    }
  });

  it("says the relay is busy when it rations our address, keeps the messages queued, then sends them all in order once", async () => {
    // A relay that lets one address store about four messages a second after a 2 MiB burst.
    const busy = await startTestRelay({
      sourceStoreRate: 4 * 16_640,
      sourceStoreBurst: 2 << 20,
      queueQuota: 1_000,
    });
    try {
      h.hub = new Hub();
      // Alice's engine and the "neighbour" below share one address: 127.0.0.3.
      const fromNeighbourhood = (url: string) => relaySocket(url, "127.0.0.3");
      const a = node("alice", undefined, new MemoryStorage(signaling.url, [busy.url]), signaling.url, {
        relayWebSocket: fromNeighbourhood,
      });
      const b = node("bob", undefined, new MemoryStorage(signaling.url, [busy.url]));
      a.storage.addUser(b.user);
      b.storage.addUser(a.user);
      await a.engine.start();
      await b.engine.start();
      await until(() => online(a, b) && online(b, a), "both online");
      await until(() => knowsMailboxOf(a, b) && knowsMailboxOf(b, a), "mailboxes exchanged");
      await b.engine.stop();
      await until(() => !online(a, b), "bob offline");

      // A neighbour on the same address spends its storage ration, and keeps taking each refill
      // until Alice has been told the relay is busy.
      const neighbour = await connectRelay(busy.url, {}, { localAddress: "127.0.0.3" });
      const q = await neighbour.createQueue({ subscribe: false });
      const into = await neighbour.senderSecure({ senderId: q.senderId });
      const fill = () =>
        // Full-size bodies: the relay charges what it stores (relay-ws/source-limits.ts).
        neighbour.send(into, new Uint8Array(16_000)).then(
          () => true,
          (e: { code?: string }) => {
            if (e.code !== "LOFT_ERR_RELAY_STORE_RATE") throw e;
            return false;
          },
        );
      for (let i = 0; i < 1_000 && (await fill()); i++);
      let hogging = true;
      const hog = (async () => {
        for (let i = 0; i < 3_000 && hogging; i++) {
          await fill().catch(() => false);
          await new Promise((r) => setTimeout(r, 10));
        }
      })();

      const texts = Array.from({ length: 5 }, (_, i) => `while the relay is busy ${i + 1}`);
      const ids: MessageId[] = [];
      for (const t of texts) ids.push(await a.engine.send(b.id, t));
      await until(
        () => a.engine.presence(b.id).lastError?.message.startsWith(RELAY_BUSY_MESSAGE) ?? false,
        "relay busy shown",
      );
      expect(a.engine.presence(b.id).lastError?.message).toBe(
        `${RELAY_BUSY_MESSAGE} Messages to bob wait on this device until then.`,
      );
      expect(ids.some((id) => stateOf(a, id) === "queued")).toBe(true);
      expect(a.engine.serviceStatus().relay).toBe("connected");
      hogging = false;
      await hog;

      await until(() => ids.every((id) => stateOf(a, id) === "relayed"), "all relayed", 30_000);
      await until(() => a.engine.presence(b.id).lastError === undefined, "busy notice cleared");
      const b2 = node("bob", b.user, b.storage, "");
      await b2.engine.start();
      await until(() => b.storage.texts(a.id, "in").length >= texts.length, "bob read them", 20_000);
      await until(() => ids.every((id) => stateOf(a, id) === "delivered"), "all delivered", 20_000);
      expect(b.storage.texts(a.id, "in")).toEqual(texts);
      neighbour.close();
    } finally {
      for (const e of h.running.splice(0)) await e.stop();
      await busy.close();
    }
  });

  it("a deposit cut short after its first piece stays in front: the next one sends its rest first, nothing between", async () => {
    // Pieces carry no message id (mailbox.md §2): A0 B A1 A2 on the queue would be two garbage
    // messages at the receiver. The relay's per-source storage budget fits three bodies and does
    // not refill; a neighbour on the sender's address spends two, so the second piece of A is
    // refused (STORE_RATE). The sender then gets a fresh budget (another address).
    const BODY = 1_000;
    const r = await startTestRelay({
      sourceStoreRate: 1,
      sourceStoreBurst: 3 * storedMessageBytes(BODY) + 64,
      queueQuota: 1_000,
    });
    const pools: RelayConnections[] = [];
    const owner = await connectRelay(r.url);
    const neighbour = await connectRelay(r.url, {}, { localAddress: "127.0.0.3" });
    try {
      const q = await owner.createQueue({ subscribe: false });
      const other = await owner.createQueue({ subscribe: false });
      for (let i = 0; i < 2; i++) await neighbour.send({ senderId: other.senderId }, new Uint8Array(BODY));
      const poolFrom = (address: string) => {
        const p = depositPool(address, 2_000);
        pools.push(p);
        return p;
      };
      const { ctx, peer } = depositParts(poolFrom("127.0.0.3"));
      const target = { url: r.url, queue: { senderId: q.senderId } };
      const body = (tag: number) => new Uint8Array(BODY).fill(tag);
      const out: Outcome[] = [];
      const a = newDeposit("", "tx", target, [body(0xa0), body(0xa1), body(0xa2)]);
      expect(await sendDeposit(ctx, peer, a, out)).toBe(false);
      expect(a.next).toBe(1);
      // Still no budget: the next deposit into that queue sends nothing of its own.
      expect(await sendDeposit(ctx, peer, newDeposit("", "tx", target, [body(0xbb)]), out)).toBe(false);
      ctx.pool = poolFrom("127.0.0.4");
      expect(await sendDeposit(ctx, peer, newDeposit("", "tx", target, [body(0xb0)]), out)).toBe(true);
      expect(await finishDeposit(ctx, peer, out)).toBe(true); // nothing left
      expect(await drainFirstBytes(owner, q, 10)).toEqual([0xa0, 0xa1, 0xa2, 0xb0]);
    } finally {
      for (const p of pools) p.close();
      owner.close();
      neighbour.close();
      await r.close();
    }
  });

  for (const oldRelay of ["dead", "back"] as const)
    it(`a deposit cut short in a mailbox the contact has since replaced is tried once and let go (old relay ${oldRelay}): the flush is not stuck on it`, async () => {
      // As above, the second piece of A is refused (STORE_RATE) on the contact's queue on r1; then
      // the contact moves its queue to r2 and tells us (`mbox`, mailbox.md §1, "Moving off a dead
      // relay"). A flush sends a deposit cut short first (relay-mailbox.ts `flushMailbox`): before,
      // that was the rest of A into r1 — dead, it failed every time, so nothing went into the new
      // queue until a live session. Back (the contact still reads its old queue), the rest goes.
      const BODY = 1_000;
      const r1 = await startTestRelay({
        sourceStoreRate: 1,
        sourceStoreBurst: 3 * storedMessageBytes(BODY) + 64,
        queueQuota: 1_000,
      });
      const r2 = await startTestRelay({ queueQuota: 1_000 });
      const owner1 = await connectRelay(r1.url);
      const neighbour = await connectRelay(r1.url, {}, { localAddress: "127.0.0.3" });
      const owner2 = await connectRelay(r2.url);
      const pool = depositPool("127.0.0.3", 2_000);
      const fresh = depositPool("127.0.0.4", 2_000); // a fresh budget at r1: another address
      let r1Up = true;
      try {
        const { q: q1, tx: tx1 } = await securedQueue(owner1, r1.url);
        const other = await owner1.createQueue({ subscribe: false });
        for (let i = 0; i < 2; i++) await neighbour.send({ senderId: other.senderId }, new Uint8Array(BODY));
        const { ctx, peer } = depositParts(pool);
        peer.tx = tx1;
        const body = (tag: number) => new Uint8Array(BODY).fill(tag);
        const out: Outcome[] = [];
        const a = newDeposit("", "tx", tx1, [body(0xa0), body(0xa1), body(0xa2)]);
        expect(await sendDeposit(ctx, peer, a, out)).toBe(false);
        expect(a.next).toBe(1);
        expect(hasUnfinishedDeposit(peer)).toBe(true);
        if (oldRelay === "dead") {
          r1Up = false;
          await r1.close();
        }
        const { q: q2, tx: tx2 } = await securedQueue(owner2, r2.url);
        await onAnnounce(ctx, peer, { u: r2.url, s: q2.senderId, k: tx2.queue.senderAuthSecret }, "mailbox");
        expect(peer.tx?.url).toBe(r2.url);
        // Back: the rest goes where the old queue is still read, so that no lone piece is left
        // there to be joined with the next message read (mailbox.md §8).
        if (oldRelay === "back") ctx.pool = fresh;
        expect(await finishDeposit(ctx, peer, out)).toBe(true);
        expect(hasUnfinishedDeposit(peer)).toBe(false);
        if (oldRelay === "back") expect(await drainFirstBytes(owner1, q1, 10)).toEqual([0xa0, 0xa1, 0xa2]);
        const b = newDeposit("", "tx", { url: r2.url, queue: peer.tx!.queue }, [body(0xb0)]);
        expect(await sendDeposit(ctx, peer, b, out)).toBe(true);
        expect(await drainFirstBytes(owner2, q2, 10)).toEqual([0xb0]);
      } finally {
        pool.close();
        fresh.close();
        owner1.close();
        neighbour.close();
        owner2.close();
        if (r1Up) await r1.close();
        await r2.close();
      }
    });

  /**
   * A contact's queues for us at a fresh relay (`owner` makes them), our deposit parts over a pool
   * to it, and a message of ours left in the contact's mailbox without a receipt yet (`relayed`):
   * `f` runs with them; all of it is closed after, passed or failed.
   */
  const withLeftMessage = async (
    id: MessageId,
    f: (scene: {
      r: TestRelay;
      owner: RelayClient;
      ctx: ReturnType<typeof depositParts>["ctx"];
      peer: Peer;
      storage: MemoryStorage;
    }) => Promise<void>,
  ) => {
    const r = await startTestRelay({ queueQuota: 1_000 });
    const owner = await connectRelay(r.url);
    const pool = depositPool("127.0.0.1", 5_000);
    try {
      const { ctx, peer } = depositParts(pool);
      const storage = ctx.storage as MemoryStorage;
      await storage.putMessage({
        id,
        contactId: peer.id,
        direction: "out",
        text: "hi",
        at: 1,
        state: "relayed",
      });
      await storage.putOutbox({ messageId: id, contactId: peer.id, queuedAt: 1, attempts: 1 });
      await f({ r, owner, ctx, peer, storage });
    } finally {
      pool.close();
      owner.close();
      await r.close();
    }
  };

  it("a contact's mailbox its relay lost (AUTH on our deposit): what we had left there goes again into the queue the contact announces next", async () => {
    // The relay lost the queue (its store wiped): our next deposit gets AUTH and we drop the
    // address; the contact, refused on SUB, moves its queue and announces it (mailbox.md §1, "A
    // queue the relay lost"). Before: an announcement with no address held was taken as a first
    // one, and what the lost queue held reached the contact only at their next live session.
    // A message we left there, with no receipt yet.
    const id = "left-in-the-lost-queue" as MessageId;
    await withLeftMessage(id, async ({ r, owner, ctx, peer, storage }) => {
      const lost = await securedQueue(owner, r.url);
      peer.tx = lost.tx;
      await owner.deleteQueue(lost.q);
      const out: Outcome[] = [];
      expect(await sendDeposit(ctx, peer, newDeposit("", "tx", lost.tx, [new Uint8Array(10)]), out)).toBe(
        false,
      );
      expect(peer.tx).toBeUndefined();
      const next = await securedQueue(owner, r.url);
      const k = next.tx.queue.senderAuthSecret;
      await onAnnounce(ctx, peer, { u: r.url, s: next.q.senderId, k }, "mailbox");
      expect(peer.tx?.queue.senderId).toEqual(next.q.senderId);
      expect((await storage.getMessage(id))?.state).toBe("queued");
      // Once: the same address again (every session announces it) changes nothing.
      await storage.setMessageState(id, "relayed");
      await onAnnounce(ctx, peer, { u: r.url, s: next.q.senderId, k }, "mailbox");
      expect((await storage.getMessage(id))?.state).toBe("relayed");
      // A new key for the same queue is that queue re-keyed, not a move (mailbox.ts `replacesQueue`,
      // as for rooms): what we left there is still read. Before: sent again, doubled.
      await onAnnounce(ctx, peer, { u: r.url, s: next.q.senderId, k: new Uint8Array(32).fill(9) }, "live");
      expect(peer.tx?.queue.senderAuthSecret).toEqual(new Uint8Array(32).fill(9));
      expect((await storage.getMessage(id))?.state).toBe("relayed");
    });
  });

  it("an older mbox read after a newer one (its n below) is ignored: the contact's newer queue stays ours to write to", async () => {
    // Two announcements of the contact's queue read out of order: the newer live, the older one
    // left in our mailbox before the contact moved (mailbox.md §1, "The order of announcements").
    // Before: the older was taken last — deposits went into a queue the contact had retired.
    const id = "left-in-the-newer-queue" as MessageId;
    await withLeftMessage(id, async ({ r, owner, ctx, peer, storage }) => {
      const older = await securedQueue(owner, r.url);
      const newer = await securedQueue(owner, r.url);
      const announce = (q: typeof older, n?: number, from: "live" | "mailbox" = "mailbox") =>
        onAnnounce(
          ctx,
          peer,
          {
            u: r.url,
            s: q.q.senderId,
            k: q.tx.queue.senderAuthSecret,
            ...(n === undefined ? {} : { n }),
          },
          from,
        );
      await announce(newer, 2_000, "live");
      expect(peer.tx?.n).toBe(2_000);
      await announce(older, 1_000);
      expect(peer.tx?.queue.senderId).toEqual(newer.q.senderId);
      expect((await storage.getMessage(id))?.state).toBe("relayed"); // nothing "goes again"
      // The order is in the stored record: a restart still knows it.
      const stored = decodeTx((await storage.loadSecret(SECRET.tx(peer.id)))!);
      expect(stored.ok && stored.value.n).toBe(2_000);
      // A newer one replaces it; one without n (an app from before it) is taken as it always was.
      const third = await securedQueue(owner, r.url);
      await announce(third, 3_000);
      expect(peer.tx?.queue.senderId).toEqual(third.q.senderId);
      await announce(older);
      expect(peer.tx?.queue.senderId).toEqual(older.q.senderId);
      // Dropped on an AUTH, the order is still known: an older one than the last is ignored.
      await owner.deleteQueue(older.q);
      const out: Outcome[] = [];
      expect(await sendDeposit(ctx, peer, newDeposit("", "tx", peer.tx!, [new Uint8Array(10)]), out)).toBe(
        false,
      );
      expect(peer.tx).toBeUndefined();
      await announce(newer, 2_000);
      expect(peer.tx).toBeUndefined();
      await announce(third, 3_000);
      expect(peer.tx?.queue.senderId).toEqual(third.q.senderId);
      // Over a live session the contact's queue is taken whatever its n, and its order is the one
      // kept: a contact restored onto a device whose clock is behind makes queues below the n we
      // hold. Before: refused, live or not — its mailbox got nothing until that clock caught up.
      const restored = await securedQueue(owner, r.url);
      await announce(restored, 2_500, "live");
      expect(peer.tx?.queue.senderId).toEqual(restored.q.senderId);
      expect(peer.tx?.n).toBe(2_500);
      expect(await sendDeposit(ctx, peer, newDeposit("", "tx", peer.tx!, [new Uint8Array(10)]), [])).toBe(
        true,
      );
      // Read late from our mailbox, an older one than that is still ignored.
      await announce(newer, 2_000);
      expect(peer.tx?.queue.senderId).toEqual(restored.q.senderId);
    });
  });

  it("a deposit of many pieces is pipelined in SENDS frames (1.3): in order, once each, a whole retry all DUPLICATE", async () => {
    // queues.ts sendRest: what fits one SENDS frame is issued in one tick (one round trip and one
    // commit per frame, not per piece); docs/protocol/relay.md §Batches.
    const r = await startTestRelay({ queueQuota: 1_000 });
    const owner = await connectRelay(r.url);
    const pool = depositPool("127.0.0.1", 5_000);
    try {
      const q = await owner.createQueue({ subscribe: false });
      const { ctx, peer } = depositParts(pool);
      const target = { url: r.url, queue: { senderId: q.senderId } };
      // 40 pieces of 1 000 bytes: 32 fit one frame (MAX_BATCH), then 8.
      const bodies = Array.from({ length: 40 }, (_, k) => new Uint8Array(1_000).fill(k));
      const d = newDeposit("", "tx", target, bodies);
      const out: Outcome[] = [];
      expect(await sendDeposit(ctx, peer, d, out)).toBe(true);
      expect(d.next).toBe(40);
      const sends = (command: string) =>
        relayCounter(r, "loft_relay_commands_total", { command, result: "ok" });
      expect(await sends("SENDS")).toBe(2);
      expect(await sends("SEND")).toBe(0);
      // The same deposit again (a retry after a lost answer): every piece DUPLICATE, nothing stored twice.
      d.next = 0;
      expect(await sendDeposit(ctx, peer, d, out)).toBe(true);
      expect(d.next).toBe(40);
      expect(await drainFirstBytes(owner, q, 100)).toEqual(bodies.map((_, k) => k));
    } finally {
      pool.close();
      owner.close();
      await r.close();
    }
  });

  it("uses the live session, not the mailbox, while both are online", async () => {
    const [a, b] = await pair();
    const ids: MessageId[] = [];
    for (let i = 0; i < 5; i++) ids.push(await a.engine.send(b.id, `live ${i}`));
    await until(() => ids.every((id) => stateOf(a, id) === "delivered"), "delivered");
    expect(a.events.some((e) => e.type === "message-state" && e.state === "relayed")).toBe(false);
  });

  it("runs live through the relay when no direct channel opens: both ways, delivered, path relay", async () => {
    const openings13 = () => relayCounter(relay, "loft_relay_openings_total", { version: "1.3" });
    const before = await openings13();
    const [a, b] = await pair(true);
    // Both engines' connections speak 1.3 (1.2's bucketed deliveries, plus batches), so every
    // live piece was delivered in its size bucket (such a client opens no other form;
    // docs/decisions.md (Relay), "The app speaks relay protocol 1.2", "Several messages per
    // frame (protocol 1.3)").
    expect((await openings13()) - before).toBeGreaterThanOrEqual(2);
    expect(a.engine.presence(b.id).path).toBe("relay");
    expect(b.engine.presence(a.id).path).toBe("relay");
    const m1 = await a.engine.send(b.id, "through the relay");
    const m2 = await b.engine.send(a.id, "and back");
    await until(() => stateOf(a, m1) === "delivered" && stateOf(b, m2) === "delivered", "delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(["through the relay"]);
    expect(a.storage.texts(b.id, "in")).toEqual(["and back"]);
    // Live, not mailbox: nothing was ever "relayed".
    expect([...a.events, ...b.events].some((e) => e.type === "message-state" && e.state === "relayed")).toBe(
      false,
    );
  });

  it("a burst over a live relay link goes in bundles (chat.bundle): in order, each delivered, none through the mailbox", async () => {
    // docs/protocol/chat.md §5, "Bundles": a live session through the relay negotiates chat.bundle
    // as a direct one does, and a bundle (up to 65 400 bytes) is one link message, cut in relay
    // pieces like any other (core/relay/live-link.ts). Bob's engine logs each bundle it reads.
    // A long heartbeat timeout: on a loaded machine the burst can outlast FAST's, the session
    // closes and the rest goes by mailbox ("relayed") — as engine.test.ts's bundle tests do.
    const [a, b] = await h.pair(true, false, { heartbeatTimeoutMs: 120_000 });
    expect(a.engine.presence(b.id).path).toBe("relay");
    const texts = Array.from({ length: 30 }, (_, i) => `relayed live ${i} ${"r".repeat(i * 500)}`);
    const ids = await Promise.all(texts.map((t) => a.engine.send(b.id, t)));
    await until(() => ids.every((id) => stateOf(a, id) === "delivered"), "all delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(texts);
    const bundled = b.logs
      .map((l) => /^read a bundle of (\d+) chat messages$/.exec(l)?.[1])
      .filter((k) => k !== undefined)
      .map(Number);
    expect(bundled.length).toBeGreaterThan(0);
    expect(a.events.some((e) => e.type === "message-state" && e.state === "relayed")).toBe(false);
  });

  it("a stopping engine deletes its live relay links' receiving queues before it closes its relay connections; a second stop waits for the first", async () => {
    const { links, spy } = spyLiveQueues();
    // The live transports' `settled`, held until `release`: `asked` once a stop waits on it.
    let asked!: () => void;
    const settling = new Promise<void>((r) => {
      asked = r;
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const relayTransport: EngineConfig["relayTransport"] = (deps) => {
      const t = new RelayLiveTransport(deps);
      const settled = t.settled.bind(t);
      t.settled = () => {
        asked();
        return gate.then(settled);
      };
      return t;
    };
    const owner = await connectRelay(relay.url);
    try {
      const [a, b] = await h.pair(true, false, { relayTransport });
      expect(a.engine.presence(b.id).path).toBe("relay");
      const m = await a.engine.send(b.id, "live, then stop");
      await until(() => stateOf(a, m) === "delivered", "delivered");
      const first = a.engine.stop();
      await settling;
      // A second stop while the first waits for the links (a CLI signal handler, say) ends with
      // it: before, it returned at once, and a process exiting then cut off what the first
      // waited for.
      let secondEnded = false;
      const second = a.engine.stop().then(() => {
        secondEnded = true;
      });
      await new Promise((r) => setTimeout(r, 0));
      expect(secondEnded).toBe(false);
      release();
      await Promise.all([first, second]);
      // Alice's links (a first one may have lost a glare): those whose connection her stop closed.
      const alices = links.filter((l) => l.client.closed);
      expect(alices.length).toBeGreaterThanOrEqual(1);
      // Her queue went once her link had settled (relay-live.ts `#track`), and her stop waited for
      // the relay's answer to that DEL: before, stop returned with it unanswered — unsent when the
      // pool closed first, and the queue stayed at the relay until its idle expiry.
      for (const l of alices)
        await expect(owner.get(l.own)).rejects.toMatchObject({ code: "LOFT_ERR_RELAY_AUTH" });
    } finally {
      release();
      spy.mockRestore();
      owner.close();
    }
  });

  it("live relay queues a stop could not delete in time are kept (sealed) and deleted at the next start; one the relay no longer has counts as done", async () => {
    const { links, spy } = spyLiveQueues();
    // Alice's first relay connections never see their DEL answered (a relay that stalls, say): her
    // stop's wait runs out (stopSettleMs) and the connections close with the DELs unanswered.
    let stuck = true;
    const relayConnections: EngineConfig["relayConnections"] = (options) => {
      const pool = createRelayPool(options);
      if (!stuck) return pool;
      const client = pool.client.bind(pool);
      pool.client = async (url) => {
        const c = await client(url);
        c.deleteQueue = () => new Promise<void>(() => {});
        return c;
      };
      return pool;
    };
    const owner = await connectRelay(relay.url);
    try {
      const [a, b] = await h.pair(true, false, { relayConnections, stopSettleMs: 300 });
      stuck = false;
      expect(a.engine.presence(b.id).path).toBe("relay");
      await a.engine.stop();
      const alices = links.filter((l) => l.client.closed);
      expect(alices.length).toBeGreaterThanOrEqual(1);
      // Still on the relay (an empty queue answers GET with nothing, not AUTH)…
      for (const l of alices) await owner.get(l.own);
      // …and kept, sealed, for the next start (live-leftovers.ts); before, nothing remembered
      // them and they stayed until the relay's idle expiry.
      const kept = decodeLeftovers(a.storage.secrets.get(LIVE_LEFTOVERS_SECRET));
      expect(kept.map((k) => toHex(k.queue.recipientId)).sort()).toEqual(
        alices.map((l) => toHex(l.own.recipientId)).sort(),
      );
      // One of them went meanwhile (the relay lost it, say): the next start takes AUTH as done.
      await owner.deleteQueue(alices[0]!.own);
      const a2 = node("alice", a.user, a.storage);
      await a2.engine.start();
      await until(() => !a.storage.secrets.has(LIVE_LEFTOVERS_SECRET), "the record is emptied");
      for (const l of alices)
        await expect(owner.get(l.own)).rejects.toMatchObject({ code: "LOFT_ERR_RELAY_AUTH" });
      // Stopped once connected (a signaling connection closed while it opens throws in ws).
      await until(() => a2.engine.serviceStatus().signaling === "connected", "signaling connected");
      await a2.engine.stop();
      // A queue left on a relay Alice has since removed from her list (a loopback port nothing
      // listens on stands for it): the next start drops the entry without connecting there.
      const removed = "ws://127.0.0.1:9/relay";
      await a.storage.saveSecret(
        LIVE_LEFTOVERS_SECRET,
        encodeLeftovers([{ url: removed, queue: alices[0]!.own }]),
      );
      const asked: string[] = [];
      const a3 = node("alice", a.user, a.storage, undefined, {
        relayConnections: (options) => {
          const pool = createRelayPool(options);
          const client = pool.client.bind(pool);
          pool.client = (url) => {
            asked.push(url);
            return client(url);
          };
          return pool;
        },
      });
      await a3.engine.start();
      await until(
        () => !a.storage.secrets.has(LIVE_LEFTOVERS_SECRET),
        "the removed relay's entry is dropped",
      );
      expect(asked).not.toContain(removed);
      await until(() => a3.engine.serviceStatus().signaling === "connected", "signaling connected");
      await a3.engine.stop();
      await b.engine.stop();
    } finally {
      spy.mockRestore();
      owner.close();
    }
  });

  it("a live link closed before its queue was made: the transport's settled waits for that queue's DEL", async () => {
    const pool = depositPool("127.0.0.1", 5_000);
    const owner = await connectRelay(relay.url);
    try {
      const client = await pool.client(relay.url);
      const made: Promise<RecipientQueue>[] = [];
      const create = client.createQueue.bind(client);
      client.createQueue = (o) => {
        const p = create(o);
        made.push(p);
        return p;
      };
      // No envelope is sent before the queue exists, and the `bye` for a cancelled dial goes
      // nowhere: a signaling client that only listens and swallows what is sent is enough here.
      const signaling = { on: () => () => {}, signal: async () => {} } as unknown as SignalingClient;
      const t = new RelayLiveTransport({
        signaling,
        iceServers: () => [],
        openTimeoutMs: 5_000,
        onOffer: () => {},
        onError: () => {},
        relay: { pool, url: relay.url },
      });
      const link = t.dial(new Uint8Array(32).fill(7));
      link.close("closed"); // before its queue is made
      await t.settled();
      // Closed right after `settled`, as engine.ts `stop` does: before, the queue was deleted by
      // the dial code outside what `settled` waited for, and this close cut its NEW or its DEL.
      pool.close();
      t.close();
      expect(made.length).toBe(1);
      const own = await made[0]!;
      await expect(owner.get(own)).rejects.toMatchObject({ code: "LOFT_ERR_RELAY_AUTH" });
      expect(t.undeleted()).toEqual([]);
    } finally {
      pool.close();
      owner.close();
    }
  });

  it("a relay from before protocol 1.2: the engines fall back to 1.1, live link and mailbox work as before", async () => {
    const current = relay;
    const old = await startTestRelay({ bucketed: false });
    relay = old; // the harness and `pair` read `relay.url`
    try {
      const [a, b] = await pair(true);
      expect(a.engine.presence(b.id).path).toBe("relay");
      const m1 = await a.engine.send(b.id, "live over 1.1");
      await until(() => stateOf(a, m1) === "delivered", "live delivered");
      await b.engine.stop();
      await until(() => !online(a, b), "bob offline");
      const m2 = await a.engine.send(b.id, "mailbox over 1.1");
      await until(() => stateOf(a, m2) === "relayed", "relayed");
      const b2 = node("bob", b.user, b.storage, "");
      await b2.engine.start();
      await until(() => b.storage.texts(a.id, "in").length === 2, "bob read it");
      expect(b.storage.texts(a.id, "in")).toEqual(["live over 1.1", "mailbox over 1.1"]);
      await until(() => stateOf(a, m2) === "delivered", "mailbox message delivered");
      expect(await relayCounter(old, "loft_relay_openings_total", { version: "1.2" })).toBe(0);
      expect(await relayCounter(old, "loft_relay_openings_total", { version: "1.1" })).toBeGreaterThanOrEqual(
        3,
      );
      expect(a.logs).toContain("relay: protocol 1.2 refused (a relay from before it); speaking 1.1 to it");
    } finally {
      await h.stopAll();
      relay = current;
      await old.close();
    }
  });

  it("switches to direct when a direct channel becomes possible; only one side dials each step", async () => {
    h.hub = new Hub();
    h.hub.blockDirect = true;
    // The glare delay as deployed (1 s), so that the lower key's dials always come first.
    const a = node("alice", undefined, undefined, undefined, { directRetryMs: 300, glareDelayMs: 1_000 });
    const b = node("bob", undefined, undefined, undefined, { directRetryMs: 300, glareDelayMs: 1_000 });
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await a.engine.start();
    await b.engine.start();
    await until(
      () => a.engine.presence(b.id).path === "relay" && b.engine.presence(a.id).path === "relay",
      "on the relay",
    );
    h.hub.blockDirect = false;
    await until(
      () => a.engine.presence(b.id).path === "direct" && b.engine.presence(a.id).path === "direct",
      "direct",
    );
    const m = await a.engine.send(b.id, "now direct");
    await until(() => stateOf(a, m) === "delivered", "delivered");
    // The lower key dials (chat.md §1) and falls back to the relay; the other side, its attempt
    // ended with `bye cancelled`, waits for the relay offer instead of dialling back into it; the
    // upgrade is the lower key's too (dialing.ts `planUpgrade`). No offer lost.
    const [low, high] = a.id < b.id ? [a, b] : [b, a];
    expect(low.logs.filter((l) => l.startsWith("dial "))).toEqual([
      `dial ${high.id.slice(0, 8)}`,
      `dial ${high.id.slice(0, 8)} through the relay`,
      `dial ${high.id.slice(0, 8)} (direct, while on the relay)`,
    ]);
    expect(high.logs.filter((l) => l.startsWith("dial "))).toEqual([]);
    expect(high.logs).toContain(`attempt in ${low.id.slice(0, 8)} ended: bye-cancelled`);
  });

  it("a direct session lost to an ICE failure: the first redial goes through the relay, direct comes back from there", async () => {
    h.hub = new Hub();
    // Direct would open again at once (nothing is blocked): the order of the dials after the
    // failure is what says which path the redial took, not a timer.
    // A glare delay far beyond a relay offer's way on a loaded machine: the higher key's redial
    // after the path loss always finds the lower key's relay attempt (dialing.ts `retryLater`).
    const timings = { directRetryMs: 300, glareDelayMs: 3_000 };
    const a = node("alice", undefined, undefined, undefined, timings);
    const b = node("bob", undefined, undefined, undefined, timings);
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await a.engine.start();
    await b.engine.start();
    await until(
      () => a.engine.presence(b.id).path === "direct" && b.engine.presence(a.id).path === "direct",
      "direct",
    );
    const mark = [a.logs.length, b.logs.length] as const;
    // ICE fails on both ends (what web/src/net/webrtc-link.ts reports).
    for (const l of h.hub.links)
      if (l.state !== "closed") l.close("ERR_ICE_CONNECTION_FAILURE", "ICE failed");
    await until(
      () => a.engine.presence(b.id).path === "relay" && b.engine.presence(a.id).path === "relay",
      "live on the relay",
    );
    const m = await a.engine.send(b.id, "after the ICE failure");
    await until(() => stateOf(a, m) === "delivered", "delivered through the relay");
    // Event order, per side: the session closed for the path, then the first dial after it goes
    // through the relay — no direct dial in between.
    const since = (n: EngineNode, from: number) => n.logs.slice(from);
    for (const [n, peer, from] of [
      [a, b, mark[0]],
      [b, a, mark[1]],
    ] as const) {
      const after = since(n, from);
      const closed = after.findIndex((l) =>
        l.startsWith(`session ${peer.id.slice(0, 8)} closed: LOFT_ERR_LINK_CLOSED (ICE failed)`),
      );
      expect(closed, "the session closed for the path").toBeGreaterThanOrEqual(0);
      // (An upgrade from the relay session is a later direct dial, by design.)
      const dials = after
        .slice(closed)
        .filter((l) => l.startsWith("dial ") && !l.endsWith("(direct, while on the relay)"));
      if (dials.length > 0) expect(dials[0]).toBe(`dial ${peer.id.slice(0, 8)} through the relay`);
    }
    // Both ends lost the path: only the lower key dials the relay; the higher one answers it
    // (dialing.ts `retryLater`), so no relay setup is wasted on glare.
    const relayFirst = [since(a, mark[0]), since(b, mark[1])]
      .flat()
      .filter((l) => l.endsWith("through the relay first"));
    const [low, high] = a.id < b.id ? [a, b] : [b, a];
    expect(relayFirst).toEqual([
      `no direct channel to ${high.id.slice(0, 8)} (the direct path was lost): through the relay first`,
    ]);
    expect(since(high, high === a ? mark[0] : mark[1])).not.toContain(
      `dial ${low.id.slice(0, 8)} through the relay`,
    );
    // Direct is retried in the background (the upgrade timer) and comes back.
    await until(
      () => a.engine.presence(b.id).path === "direct" && b.engine.presence(a.id).path === "direct",
      "direct again",
    );
    const upgrades = [since(a, mark[0]), since(b, mark[1])]
      .flat()
      .filter((l) => l.endsWith("(direct, while on the relay)"));
    expect(upgrades.length, "direct came back by an upgrade from the relay").toBeGreaterThanOrEqual(1);
    const m2 = await b.engine.send(a.id, "direct again");
    await until(() => stateOf(b, m2) === "delivered", "delivered direct");
  });

  it("a reply that reaches the first contact before the accepter's mailbox is still receipted", async () => {
    h.hub = new Hub();
    const b = node("bob", undefined, undefined, "");
    await b.engine.start();
    const refs = await b.engine.contactLinkRefs();
    await b.engine.stop();
    const a = await strangerWithLink(b, refs!);
    const m1 = await a.engine.send(b.id, "hi Bob, we have not met");
    await until(() => stateOf(a, m1) === "relayed", "relayed");

    // Bob's new mailbox for Alice is held at SECURE until Alice has read his reply: the reply
    // (sent to her queue from the first contact) overtakes the announcement of his mailbox.
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const heldSecure: EngineConfig["relayConnections"] = (options) => {
      const pool = createRelayPool(options);
      return new Proxy(pool, {
        get(target, key) {
          // Mailbox queues are made through `mailbox` (relay or SMP), prekeys through `client`.
          if (key !== "client" && key !== "mailbox") {
            const v = Reflect.get(target, key, target);
            return typeof v === "function" ? v.bind(target) : v;
          }
          return async (url: string) => {
            const client = await (key === "client" ? target.client(url) : target.mailbox(url));
            return new Proxy(client, {
              get(c, k) {
                const v = Reflect.get(c, k, c);
                if (k === "secureQueue")
                  return (...args: Parameters<typeof c.secureQueue>) =>
                    gate.then(() => c.secureQueue(...args));
                return typeof v === "function" ? v.bind(c) : v;
              },
            });
          };
        },
      });
    };
    const b2 = node("bob", b.user, b.storage, "", { relayConnections: heldSecure });
    await b2.engine.start();
    await until(() => b.storage.texts(a.id, "in").length === 1, "request read");
    delete b.storage.contacts.get(a.id)!.request;
    b2.engine.contactChanged(a.id);
    const r = await b2.engine.send(a.id, "nice to meet you");
    await until(() => a.storage.texts(b.id, "in").includes("nice to meet you"), "reply read");
    await until(
      () => a.logs.some((l) => l.includes("wait for a session or their mailbox")),
      "Alice's receipt held back",
    );
    expect(knowsMailboxOf(a, b)).toBe(false);
    open();
    await until(() => knowsMailboxOf(a, b), "Bob's mailbox known");
    // The receipt Alice held back for want of Bob's mailbox goes once she learns it.
    await until(() => stateOf(b2, r) === "delivered", "reply delivered");
  });

  it("first contact while the other side is offline: a request, accepted, then both ways", async () => {
    h.hub = new Hub();
    // Bob has been online once: his contact address and prekeys are at the relay.
    const b = node("bob", undefined, undefined, "");
    await b.engine.start();
    const refs = await b.engine.contactLinkRefs();
    expect(refs?.addr).toBeDefined();
    await b.engine.stop();

    // Alice opens Bob's link (Bob offline) and writes twice.
    const a = await strangerWithLink(b, refs!);
    const m1 = await a.engine.send(b.id, "hi Bob, we have not met");
    const m2 = await a.engine.send(b.id, "second message before you answer");
    await until(() => stateOf(a, m1) === "relayed" && stateOf(a, m2) === "relayed", "relayed");

    // Bob comes back: a contact request with both messages; nothing goes back yet.
    const b2 = node("bob", b.user, b.storage, "");
    await b2.engine.start();
    await until(() => b.storage.texts(a.id, "in").length === 2, "request read");
    expect(b.storage.contacts.get(a.id)?.request).toBeDefined();
    expect(b.storage.contacts.get(a.id)?.username).toBe("alice");
    expect(b.storage.texts(a.id, "in")).toEqual([
      "hi Bob, we have not met",
      "second message before you answer",
    ]);
    expect(b2.events.some((e) => e.type === "contact-added" && e.contactId === a.id)).toBe(true);
    await expect(b2.engine.send(a.id, "too early")).rejects.toThrow(/contact request/);
    expect(stateOf(a, m1)).toBe("relayed");

    // Bob accepts: receipts and his mailbox go back; then a reply both ways.
    delete b.storage.contacts.get(a.id)!.request;
    b2.engine.contactChanged(a.id);
    await until(() => stateOf(a, m1) === "delivered" && stateOf(a, m2) === "delivered", "delivered");
    const r = await b2.engine.send(a.id, "nice to meet you");
    await until(() => a.storage.texts(b.id, "in").includes("nice to meet you"), "reply read");
    await until(() => stateOf(b2, r) === "delivered", "reply delivered");
    const m3 = await a.engine.send(b.id, "after the reply");
    await until(() => stateOf(a, m3) === "delivered", "m3 delivered");
    expect(b.storage.texts(a.id, "in")).toContain("after the reply");
  });

  it("junk filled half the replay cache: Bob rotates early, republishes, and first contacts still get through", async () => {
    h.hub = new Hub();
    const bobUser = createUserIdentity({ username: "bob", now: Date.now() });
    const storage = new MemoryStorage("", [relay.url]);
    // Bob's stored prekeys: two days old, and half of the signed prekey's replay cache already
    // taken by first contacts without one-time keys (docs/protocol/prekeys.md, "Replay cache").
    const created = Date.now() - EARLY_ROTATION_MIN_AGE_MS - 3_600_000;
    const fresh = createPrekeyStore({
      identitySecretKey: bobUser.privateIdentityKey,
      now: created,
      oneTimePrekeys: 0,
      oneTimeKemPrekeys: 0,
    });
    const junk = Array.from({ length: EARLY_ROTATION_SEEN }, (_, i) => ({
      baseKey: randomBytes(32),
      sender: new Uint8Array(8).fill(i % 251),
    }));
    const [spk] = fresh.signedPrekeys;
    const store = { ...fresh, signedPrekeys: [{ ...spk!, seenBaseKeys: junk }] };
    const oldSpk = spk!.id;
    await storage.saveSecret(SECRET.prekeys, encodePrekeyState({ store, published: 0, bundleSpk: 0 }));
    const b = node("bob", bobUser, storage, "");
    await b.engine.start();
    const refs = await b.engine.contactLinkRefs();
    expect(refs?.addr).toBeDefined();
    const state = decodePrekeyState(storage.secrets.get(SECRET.prekeys)!);
    expect(state.ok).toBe(true);
    if (!state.ok) return;
    // Rotated early (not by age: it is two days old), and the new bundle is the published one.
    expect(state.value.store.signedPrekeys[0]!.id).not.toBe(oldSpk);
    expect(state.value.store.signedPrekeys[0]!.seenBaseKeys).toEqual([]);
    expect(state.value.bundleSpk).toBe(state.value.store.signedPrekeys[0]!.id);
    expect(state.value.store.signedPrekeys[1]!.seenBaseKeys.length).toBe(EARLY_ROTATION_SEEN);
    await b.engine.stop();

    // A stranger writes while Bob is offline: the request arrives.
    const a = await strangerWithLink(b, refs!);
    const m = await a.engine.send(b.id, "hello through a fresh bundle");
    await until(() => stateOf(a, m) === "relayed", "relayed");
    const b2 = node("bob", b.user, storage, "");
    await b2.engine.start();
    await until(() => storage.texts(a.id, "in").length === 1, "request read");
    expect(storage.contacts.get(a.id)?.request).toBeDefined();
  });

  it("deleting a contact stops every timer it had, the batched receipt of a mailbox message included", async () => {
    const [a, b] = await pair();
    await b.engine.stop();
    await until(() => !online(a, b), "bob offline");
    const id = await a.engine.send(b.id, "read, then deleted");
    await until(() => stateOf(a, id) === "relayed", "relayed");
    // Timers of the receipt batch's delay (50 ms) set while Bob reads the message; Alice is
    // deleted in the next turn, before they are due: each must be cleared, none may fire.
    const setTimer = globalThis.setTimeout;
    const clearTimer = globalThis.clearTimeout;
    const watched = new Map<unknown, { fired: boolean; cleared: boolean }>();
    let watching = false;
    globalThis.setTimeout = ((fn: () => void, ms?: number, ...rest: unknown[]) => {
      if (!watching || ms !== 50) return setTimer(fn, ms, ...rest);
      const t = { fired: false, cleared: false };
      const handle = setTimer(() => {
        t.fired = true;
        fn();
      }, ms);
      watched.set(handle, t);
      return handle;
    }) as typeof setTimeout;
    globalThis.clearTimeout = ((handle?: Parameters<typeof clearTimeout>[0]) => {
      const t = watched.get(handle);
      if (t) t.cleared = true;
      clearTimer(handle);
    }) as typeof clearTimeout;
    try {
      const b2 = node("bob", b.user, b.storage, "");
      b2.engine.subscribe((e) => {
        if (e.type !== "message" || e.message.contactId !== a.id) return;
        watching = true;
        setTimer(() => {
          watching = false;
          b.storage.contacts.delete(a.id);
          b2.engine.contactChanged(a.id);
        }, 0);
      });
      await b2.engine.start();
      await until(() => b.storage.texts(a.id, "in").length === 1, "bob read it");
      await until(() => !b.storage.secrets.has(SECRET.rx(a.id)), "Alice forgotten");
      await until(
        () => [...watched.values()].every((t) => t.fired || t.cleared),
        "every watched timer ended",
      );
      expect(watched.size).toBeGreaterThan(0);
      expect([...watched.values()].filter((t) => t.fired)).toEqual([]);
    } finally {
      globalThis.setTimeout = setTimer;
      globalThis.clearTimeout = clearTimer;
    }
  });

  it("a contact deleted while its new mailbox is being stored: the queue goes at the relay, no secret or subscription stays", async () => {
    // The write of the new queue's secret is held until Bob is deleted (one IndexedDB write wide,
    // review finding #9): before, the queue was then subscribed and kept, its secret stored.
    class HeldRx extends MemoryStorage {
      hold: string | undefined;
      readonly held: { name: string; value: Uint8Array; go: () => void }[] = [];
      override async saveSecret(name: string, value: Uint8Array): Promise<void> {
        if (name === this.hold) await new Promise<void>((go) => this.held.push({ name, value, go }));
        return super.saveSecret(name, value);
      }
    }
    const storage = new HeldRx(signaling.url, [relay.url]);
    const a = node("alice", undefined, storage);
    const bob = createUserIdentity({ username: "bob", now: Date.now() });
    const bobId = storage.addUser(bob);
    storage.hold = SECRET.rx(bobId);
    await a.engine.start(); // Alice makes Bob's mailbox at start (he has none yet)
    await until(() => storage.held.length > 0, "the new queue's secret is being written");
    const rx = decodeRx(storage.held[0]!.value);
    if (!rx.ok) throw new Error("not a queue record");
    storage.contacts.delete(bobId);
    a.engine.contactChanged(bobId);
    for (const w of storage.held) w.go();
    const owner = await connectRelay(relay.url);
    try {
      // Gone at the relay: its owner's key no longer reaches it.
      await until(
        () =>
          owner.get(rx.value.queue).then(
            () => false,
            () => true,
          ),
        "the queue is deleted at the relay",
      );
      await until(() => !storage.secrets.has(SECRET.rx(bobId)), "no secret of it stays");
      expect(a.logs.filter((l) => l.includes(`mailbox for ${bobId.slice(0, 8)} created`))).toEqual([]);
    } finally {
      owner.close();
    }
  });

  it("a declined first contact gets nothing back, now or later", async () => {
    h.hub = new Hub();
    const b = node("bob", undefined, undefined, "");
    await b.engine.start();
    const refs = await b.engine.contactLinkRefs();
    const m = node("mallory", undefined, undefined, "");
    const bobInM = m.storage.addUser(b.user);
    m.storage.contacts.get(bobInM)!.endpoints = { signaling: [], relay: [relay.url], refs: refs! };
    await m.engine.start();
    const m1 = await m.engine.send(b.id, "let me in");
    await until(() => b.storage.texts(m.id, "in").length === 1, "request read");
    expect(b.storage.contacts.get(m.id)?.request).toBeDefined();
    const c = b.storage.contacts.get(m.id)!;
    delete c.request;
    c.trust = "rejected";
    b.engine.contactChanged(m.id);
    const m2 = await m.engine.send(b.id, "please");
    await until(() => stateOf(m, m2) === "relayed", "relayed");
    expect(stateOf(m, m1)).toBe("relayed");
    // Bob reads nothing more from Mallory and sends nothing: no receipts, no mailbox.
    await until(async () => (await b.storage.listOutbox()).length === 0, "bob idle");
    expect(b.storage.texts(m.id, "in")).toEqual(["let me in"]);
    expect(m.storage.texts(b.id, "in")).toEqual([]);
    expect(m.storage.secrets.has(SECRET.tx(b.id))).toBe(false);
  });

  /** A contact of Bob's writes to him through his contact address (Bob has them already). */
  async function knownFirstContact(
    b: EngineNode,
    refs: Record<string, Uint8Array>,
    text: string,
  ): Promise<void> {
    const d = node("dave", undefined, undefined, "");
    b.storage.addUser(d.user);
    const bobInD = d.storage.addUser(b.user);
    d.storage.contacts.get(bobInD)!.endpoints = { signaling: [], relay: [relay.url], refs };
    await d.engine.start();
    await d.engine.send(b.id, text);
    // The contact-address queue is read in order: what was left there before is processed now.
    await until(() => b.storage.texts(d.id, "in").includes(text), "marker read");
  }

  it("a first contact with an identity decision pending: its later messages are dropped, not shown", async () => {
    h.hub = new Hub();
    const b = node("bob", undefined, undefined, "");
    await b.engine.start();
    const refs = (await b.engine.contactLinkRefs())!;
    const a = node("alice", undefined, undefined, "");
    const bobInA = a.storage.addUser(b.user);
    a.storage.contacts.get(bobInA)!.endpoints = { signaling: [], relay: [relay.url], refs };
    await a.engine.start();
    await a.engine.send(b.id, "first");
    await until(() => b.storage.texts(a.id, "in").length === 1, "request read");
    // A TOFU outcome for Alice now waits on Bob's decision.
    const c = b.storage.contacts.get(a.id)!;
    c.pending = { kind: "conflict", identity: c.identity, seenAt: Date.now(), source: "handshake" };
    b.engine.contactChanged(a.id);
    // Alice has no reply yet: this one carries the same initial header (routed by base key).
    const m2 = await a.engine.send(b.id, "while pending");
    await until(() => stateOf(a, m2) === "relayed", "relayed");
    await knownFirstContact(b, refs, "marker");
    expect(b.storage.texts(a.id, "in")).toEqual(["first"]);
    expect(b.events.filter((e) => e.type === "message" && e.message.contactId === a.id)).toHaveLength(1);
  });

  it("a flood of first contacts from strangers: at most maxContactRequests requests wait on the user", async () => {
    h.hub = new Hub();
    const b = node("bob", undefined, undefined, "", { maxContactRequests: 1 });
    await b.engine.start();
    const refs = (await b.engine.contactLinkRefs())!;
    const strangers: EngineNode[] = [];
    for (const name of ["mallory", "trudy"]) {
      const m = node(name, undefined, undefined, "");
      const bobInM = m.storage.addUser(b.user);
      m.storage.contacts.get(bobInM)!.endpoints = { signaling: [], relay: [relay.url], refs };
      await m.engine.start();
      const id = await m.engine.send(b.id, `hello from ${name}`);
      await until(() => stateOf(m, id) === "relayed", "relayed");
      strangers.push(m);
    }
    await knownFirstContact(b, refs, "marker");
    const [m1, m2] = strangers as [EngineNode, EngineNode];
    expect(b.storage.contacts.get(m1.id)?.request).toBeDefined();
    expect(b.storage.contacts.has(m2.id)).toBe(false);
    expect(b.storage.texts(m2.id, "in")).toEqual([]);
    // Once the user decides on the waiting one, a new stranger can write again.
    const c = b.storage.contacts.get(m1.id)!;
    delete c.request;
    c.trust = "rejected";
    b.engine.contactChanged(m1.id);
    await until(() => b.events.some((e) => e.type === "presence" && e.contactId === m1.id), "declined");
    const m3 = node("oscar", undefined, undefined, "");
    const bobInM3 = m3.storage.addUser(b.user);
    m3.storage.contacts.get(bobInM3)!.endpoints = { signaling: [], relay: [relay.url], refs };
    await m3.engine.start();
    await m3.engine.send(b.id, "hello from oscar");
    await until(() => b.storage.contacts.get(m3.id)?.request !== undefined, "a new request");
  });

  it("a crash while a first contact is being stored: redelivered after the restart and accepted then", async () => {
    h.hub = new Hub();
    class CrashOnce extends MemoryStorage {
      crashed = false;
      override async addContact(c: Parameters<MemoryStorage["addContact"]>[0]) {
        if (!this.crashed) {
          this.crashed = true;
          throw new Error("crash");
        }
        return super.addContact(c);
      }
    }
    const storage = new CrashOnce("", [relay.url]);
    const b = node("bob", undefined, storage, "");
    await b.engine.start();
    const refs = (await b.engine.contactLinkRefs())!;
    const a = node("alice", undefined, undefined, "");
    const bobInA = a.storage.addUser(b.user);
    a.storage.contacts.get(bobInA)!.endpoints = { signaling: [], relay: [relay.url], refs };
    await a.engine.start();
    await a.engine.send(b.id, "are you there?");
    await until(() => storage.crashed, "crashed while storing the request");
    await b.engine.stop();
    // The restart reads the stored state only; the relay redelivers what was not acknowledged.
    const b2 = node("bob", b.user, storage, "");
    await b2.engine.start();
    await until(() => storage.contacts.get(a.id)?.request !== undefined, "the request after the restart");
    await until(() => storage.texts(a.id, "in").length === 1, "read once");
    expect(storage.texts(a.id, "in")).toEqual(["are you there?"]);
  });

  it("first contact with someone online who does not have us yet: not visible, so through the address; live once accepted", async () => {
    h.hub = new Hub();
    const b = node("bob");
    await b.engine.start();
    const refs = await b.engine.contactLinkRefs();
    const a = node("alice");
    const bobInA = a.storage.addUser(b.user);
    a.storage.contacts.get(bobInA)!.endpoints = {
      signaling: [signaling.url],
      relay: [relay.url],
      refs: refs!,
    };
    await a.engine.start();
    const m1 = await a.engine.send(b.id, "knock knock");
    await until(() => b.storage.contacts.get(a.id)?.request !== undefined, "a request at Bob", 20_000);
    await until(() => b.storage.texts(a.id, "in").includes("knock knock"), "read");
    expect(stateOf(a, m1)).toBe("relayed");
    // Presence only to accepted contacts (docs/protocol/signaling.md, "Contacts only"): an open
    // request is not one, so Bob still watches nobody, Alice never saw him online, never dialed.
    expect(metricValue(await signaling.metrics(), "loft_signaling_presence_subscriptions")).toBe(1);
    expect(online(a, b)).toBe(false);
    expect(h.hub.offers).toBe(0);
    delete b.storage.contacts.get(a.id)!.request;
    b.engine.contactChanged(a.id);
    await until(() => stateOf(a, m1) === "delivered", "delivered");
    // Now contacts on both sides: a live session comes up and continues the same ratchet.
    await until(() => online(a, b) && online(b, a), "live");
    const m2 = await b.engine.send(a.id, "who's there?");
    await until(() => stateOf(b, m2) === "delivered", "reply delivered");
    expect(a.events.some((e) => e.type === "error" && e.error.message.includes("new secure session"))).toBe(
      false,
    );
  });
});
