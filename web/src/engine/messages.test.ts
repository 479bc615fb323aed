/**
 * messages.ts on the first message's path (bench/README-chat.md, `first_message_phases_ms`):
 * an incoming chat message is de-duplicated and stored while the sealed ratchet state write is
 * still in flight, but nothing is shown before that write is in (Signal DR §3.5); the outbox
 * carries the first ratchet message a fresh responder waits for, and a `sync` goes only when it
 * held nothing to send (docs/protocol/chat.md §4, "Who can send"). Real ratchets (core/ratchet),
 * the in-memory storage of the engine tests, a session stand-in that records its frames.
 */
import { describe, expect, it } from "vitest";
import { concatBytes } from "../../../core/bytes.ts";
import {
  BODY_FAILED,
  generateRatchetKeyPair,
  MESSAGE_PREFIX_LEN,
  ratchetDecrypt,
  ratchetEncrypt,
  ratchetFromSecret,
} from "../../../core/ratchet/index.ts";
import { MemoryStorage, until } from "../../../test/support/engine.ts";
import type { EngineEvent, StoredMessage } from "./api.ts";
import type { Live, Peer } from "./context.ts";
import { FLUSH_BATCH, flushLive, type MessagesContext, receive } from "./messages.ts";
import { decodeChatRatchet, encodeChatRatchet } from "./ratchet-store.ts";
import { type AppMessage, decodeAppMessage, decodeSessionFrame, encodeAppMessage } from "./wire.ts";

/** saveSession calls park until released. */
class HeldSessions extends MemoryStorage {
  parked: (() => void)[] = [];
  override saveSession(id: string, state: Uint8Array): Promise<void> {
    const copy = state.slice(); // the caller wipes its blob once the write settles
    return new Promise((resolve) => {
      this.parked.push(() => {
        this.sessions.set(id, copy);
        resolve();
      });
    });
  }
}

/** The first saveSession fails (a full disk, say); later ones succeed. */
class FailingOnce extends MemoryStorage {
  failed = false;
  override saveSession(id: string, state: Uint8Array): Promise<void> {
    if (!this.failed) {
      this.failed = true;
      return Promise.reject(new Error("QuotaExceededError"));
    }
    return super.saveSession(id, state);
  }
}

async function setup(storage: MemoryStorage) {
  const secret = new Uint8Array(32).fill(9);
  const ad = new Uint8Array(64).fill(2);
  const bobKeys = await generateRatchetKeyPair();
  const alice = await ratchetFromSecret({ role: "alice", secret, bobRatchetPublic: bobKeys.publicKey, ad });
  const bob = await ratchetFromSecret({ role: "bob", secret, bobRatchetKeyPair: bobKeys, ad });
  if (!alice.ok || !bob.ok) throw new Error("ratchet setup");
  const events: EngineEvent[] = [];
  const ctx = {
    cfg: { log: () => {} },
    stopped: false,
    storage,
    listeners: new Set([(e: EngineEvent) => events.push(e)]),
    lastStamp: 0,
  } as unknown as MessagesContext;
  const frames: Uint8Array[] = [];
  // A session stand-in that records frames; `sendParts` as Session's contract says: the message
  // is the parts' concatenation (peer-ratchet.ts sends ratchet frames that way).
  const live = {
    session: {
      state: "open",
      writable: true,
      flushed: () => Promise.resolve(),
      remoteExtensions: {},
      send: (f: Uint8Array) => frames.push(f.slice()),
      sendParts: (parts: readonly Uint8Array[]) => frames.push(concatBytes(...parts)),
      sendDetached: (head: readonly Uint8Array[], body: Uint8Array) =>
        frames.push(concatBytes(...head, body)),
    },
    sent: new Set(),
  } as unknown as Live;
  const peerWith = (state: typeof alice.value) =>
    ({
      id: "peer",
      name: "Peer",
      ratchet: { id: new Uint8Array(16), state },
      queue: Promise.resolve(),
      receipts: new Set(),
      blocked: false,
      live,
    }) as unknown as Peer;
  return { alice: alice.value, bob: bob.value, ctx, events, frames, live, peerWith };
}

describe("receive: a chat message is stored beside the state write, shown after it", () => {
  it("finds and stores the message while the sealed state write is held; the event waits for it", async () => {
    const storage = new HeldSessions("");
    const { alice, bob, ctx, events, live, peerWith } = await setup(storage);
    const peer = peerWith(bob);
    const message: AppMessage = { t: "msg", id: "m1".padEnd(22, "A"), at: 1_700_000_000_000, text: "first" };
    const sealed = await ratchetEncrypt(alice, encodeAppMessage(message), Date.now());
    const read = receive(ctx, peer, live, sealed.message);
    await until(() => storage.messages.size === 1, "the message stored");
    // Stored while the state write is still held, and nothing shown or receipted yet.
    expect(storage.parked).toHaveLength(1);
    expect(storage.sessions.size).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(events).toEqual([]);
    let done = false;
    void read.then(() => {
      done = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    storage.parked[0]!();
    const out = await read;
    expect(events.map((e) => e.type)).toEqual(["message"]);
    const stored = [...storage.messages.values()][0] as StoredMessage;
    expect(events[0]).toEqual({ type: "message", message: stored });
    expect(stored).toMatchObject({ direction: "in", text: "first", remoteId: message.id, state: "received" });
    const state = decodeChatRatchet(storage.sessions.get("peer")!);
    expect(state.ok && state.value.state.recvCount).toBe(1);
    expect(out.some((o) => o.kind === "schedule" && o.timer === "receipt")).toBe(true);
    // The same message again (a resend after a lost receipt) is a replay: nothing new.
    const again = await receive(ctx, peer, live, sealed.message);
    expect(again).toEqual([]);
    expect(storage.messages.size).toBe(1);
  });
});

describe("receive: a message stored while its state write failed is shown when it comes again", () => {
  it("the resend finds it stored and shows it, once", async () => {
    const storage = new FailingOnce("");
    const { alice, bob, ctx, events, live, peerWith } = await setup(storage);
    const peer = peerWith(bob);
    // What storage holds when the message comes: the state in use (saveRatchet falls back to it).
    storage.sessions.set("peer", encodeChatRatchet(peer.ratchet!));
    const message: AppMessage = { t: "msg", id: "m2".padEnd(22, "A"), at: 1_700_000_000_000, text: "again" };
    const first = await ratchetEncrypt(alice, encodeAppMessage(message), Date.now());
    await expect(receive(ctx, peer, live, first.message)).rejects.toThrow("QuotaExceededError");
    // Stored beside the failed write, shown to nobody, no receipt.
    expect(storage.messages.size).toBe(1);
    expect(events).toEqual([]);
    // No receipt went, so the sender sends it again (a new ratchet message, same message id).
    const resend = await ratchetEncrypt(first.state, encodeAppMessage(message), Date.now());
    const out = await receive(ctx, peer, live, resend.message);
    const stored = [...storage.messages.values()][0] as StoredMessage;
    expect(storage.messages.size).toBe(1);
    expect(events).toEqual([{ type: "message", message: stored }]);
    expect(out.some((o) => o.kind === "schedule" && o.timer === "receipt")).toBe(true);
    // A third copy is a plain duplicate: nothing shown again.
    const third = await ratchetEncrypt(resend.state, encodeAppMessage(message), Date.now());
    await receive(ctx, peer, live, third.message);
    expect(events).toHaveLength(1);
  });
});

describe("receive: a detached ratchet body that fails (docs/protocol/session.md §5, 'Detached frames')", () => {
  /** Bob's end with his ratchet stored as in use, and what closed the live session (`closes`). */
  async function closingSetup() {
    const storage = new MemoryStorage("");
    const s = await setup(storage);
    const closes: string[][] = [];
    (s.live.session as unknown as { close: (...a: string[]) => void }).close = (...a) => closes.push(a);
    const peer = s.peerWith(s.bob);
    storage.sessions.set("peer", encodeChatRatchet(peer.ratchet!));
    return { ...s, storage, closes, peer };
  }

  /** Alice's message with one byte of its body's ciphertext (not its tag) changed, as in transit. */
  async function tampered(alice: Parameters<typeof ratchetEncrypt>[0]) {
    const message: AppMessage = {
      t: "msg",
      id: "m3".padEnd(22, "A"),
      at: 1_700_000_000_000,
      text: "changed",
    };
    const sealed = (await ratchetEncrypt(alice, encodeAppMessage(message), Date.now())).message.slice();
    sealed[MESSAGE_PREFIX_LEN + 2]! ^= 1;
    return sealed;
  }

  it("detached: the session closes with LOFT_ERR_DECRYPT and the ratchet is kept", async () => {
    const { alice, bob, ctx, events, live, closes, peer, storage } = await closingSetup();
    expect(await receive(ctx, peer, live, await tampered(alice), true)).toEqual([]);
    expect(closes).toEqual([["LOFT_ERR_DECRYPT", BODY_FAILED]]);
    expect(peer.ratchet?.state).toBe(bob);
    expect(storage.sessions.has("peer")).toBe(true);
    expect(events).toEqual([]);
  });

  it("read after its session closed (chat.md §6, 'Stopping'): a failing body is dropped, nothing closed, the ratchet kept; the genuine one is read", async () => {
    const { alice, bob, ctx, events, live, closes, peer, storage } = await closingSetup();
    peer.live = undefined; // the session this came on closed, and no other replaced it
    const message: AppMessage = { t: "msg", id: "m4".padEnd(22, "A"), at: 1_700_000_000_000, text: "late" };
    const sealed = (await ratchetEncrypt(alice, encodeAppMessage(message), Date.now())).message;
    const changed = sealed.slice();
    changed[MESSAGE_PREFIX_LEN + 2]! ^= 1;
    expect(await receive(ctx, peer, live, changed, true)).toEqual([]);
    expect(closes).toEqual([]);
    expect(peer.ratchet?.state).toBe(bob);
    expect(storage.sessions.has("peer")).toBe(true);
    expect(events).toEqual([]);
    // The same message as sent: read with the kept ratchet, stored and shown once.
    await receive(ctx, peer, live, sealed, true);
    expect(closes).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(["message"]);
    expect(peer.ratchet?.state.recvCount).toBe(1);
  });

  it("inside a Noise frame (not detached): as before, the ratchets disagree — ours is dropped", async () => {
    const { alice, ctx, live, closes, peer, storage } = await closingSetup();
    await receive(ctx, peer, live, await tampered(alice));
    expect(closes).toEqual([["ratchet-desync", "LOFT_ERR_DECRYPT"]]);
    expect(peer.ratchet).toBeUndefined();
    expect(storage.sessions.has("peer")).toBe(false);
  });
});

describe("flushLive: the outbox carries the first ratchet message a fresh responder waits for", () => {
  /** Flush `queued` outgoing messages (the sync owed or not) and open what went out. */
  async function flushOnce(queued: number, owed: boolean, storage = new MemoryStorage("")) {
    const { alice, bob, ctx, frames, live, peerWith } = await setup(storage);
    const peer = peerWith(alice);
    storage.sessions.set("peer", encodeChatRatchet(peer.ratchet!));
    for (let i = 0; i < queued; i++) {
      const m: StoredMessage = {
        id: `out${i}`.padEnd(22, "A"),
        contactId: "peer",
        direction: "out",
        text: "waiting",
        at: 1_700_000_000_000 + i,
        state: "queued",
      };
      await storage.queueOutgoing(m);
    }
    if (owed) live.syncOwed = true;
    await flushLive(ctx, peer, live).catch(() => {});
    let state = bob;
    const opened: AppMessage[] = [];
    for (const f of frames) {
      const frame = decodeSessionFrame(f);
      if (!frame.ok || frame.value.type !== "ratchet") throw new Error("not a ratchet frame");
      const r = await ratchetDecrypt(state, frame.value.message, Date.now());
      if (!r.ok) throw r.error;
      state = r.value.state;
      const app = decodeAppMessage(r.value.plaintext);
      if (!app.ok) throw app.error;
      opened.push(app.value);
    }
    return { opened: opened.map((m) => m.t), owed: live.syncOwed, storage };
  }

  it("a waiting message is the first ratchet message: no sync before it", async () => {
    const r = await flushOnce(1, true);
    expect(r.opened).toEqual(["msg"]);
    expect(r.owed).toBe(false);
    expect([...r.storage.messages.values()][0]?.state).toBe("sent");
  });

  it("an outbox with nothing to send sends the sync it was to carry", async () => {
    const r = await flushOnce(0, true);
    expect(r.opened).toEqual(["sync"]);
    expect(r.owed).toBe(false);
  });

  it("no sync owed, nothing queued: nothing sent", async () => {
    const r = await flushOnce(0, false);
    expect(r.opened).toEqual([]);
  });

  it("a full batch whose state write fails still sends the sync owed (a failed batch is an early way out)", async () => {
    const r = await flushOnce(FLUSH_BATCH, true, new FailingOnce(""));
    // Nothing of the failed batch left; the sync did, so the peer can send; the batch waits.
    expect(r.opened).toEqual(["sync"]);
    expect(r.owed).toBe(false);
    expect(await r.storage.listOutbox("peer")).toHaveLength(FLUSH_BATCH);
  });

  it("a storage error part-way through the outbox still sends the sync owed", async () => {
    class UnreadableMessages extends MemoryStorage {
      override getMessage(): Promise<StoredMessage | undefined> {
        return Promise.reject(new Error("the message does not open"));
      }
    }
    const r = await flushOnce(1, true, new UnreadableMessages(""));
    expect(r.opened).toEqual(["sync"]);
    expect(r.owed).toBe(false);
  });
});
