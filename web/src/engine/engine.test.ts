/**
 * The chat engine in Node, between engines in one process: real signaling service
 * (signaling/testing.ts `startSignaling`, real WebSockets), real Noise sessions and ratchets, and
 * in-memory Links in place of WebRTC data channels (the engine's `transport` seam) — which lets
 * these tests do what a browser test cannot: cut a link silently, race two dials, present a
 * rotated key. Storage is an in-memory `EngineStorage`. The same flows run in real Chromium in
 * test/e2e/chat.e2e.ts and test/e2e/tamper.e2e.ts.
 */
import { describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { toHex } from "../../../core/bytes.ts";
import { createUserIdentity, type UserIdentity, updateIdentity } from "../../../core/identity/identity.ts";
import { Session } from "../../../core/session/index.ts";
import { SignalingClient, type WebSocketLike } from "../../../core/signaling/client.ts";
import { startSignaling, wsFactory } from "../../../signaling/testing.ts";
import {
  type EngineNode,
  engineHarnessPerSuite,
  FAST_ENGINE,
  Hub,
  holdReader,
  MemoryStorage,
  refuseWhenArmed,
  SlowStorage,
  until,
} from "../../../test/support/engine.ts";
import { fileTransfers, seededBytes } from "../../../test/support/files.ts";
import { Held } from "../../../test/support/held.ts";
import { sendProblem } from "../app/conversation.ts";
import {
  EngineRefusal,
  type EngineStorage,
  type MessageId,
  RetryDeferred,
  SaveDeferred,
  type StoredMessage,
} from "./api.ts";
import type { EngineConfig } from "./config.ts";
import { type FileRecord, type FileStore, MemoryFileStore } from "./files/store.ts";
import { STOP_CUT_SHORT_ENDED } from "./files/transfers.ts";
import { FILE_CHUNK_BYTES } from "./files/wire.ts";
import { MAX_TEXT_CHARS } from "./outgoing.ts";
import { decodeChatRatchet } from "./ratchet-store.ts";
import type { DialedLink } from "./transport.ts";
import { FRAME } from "./wire.ts";

/**
 * `queueOutgoing` (a hand-over's commit) refuses with what `failure()` gives while it gives
 * something — a full quota, a locked store; the store's own commit, for writing around it.
 */
function refuseCommits(
  storage: MemoryStorage,
  failure: () => Error | undefined,
): (m: StoredMessage) => Promise<void> {
  const queue = storage.queueOutgoing.bind(storage);
  Object.assign(storage, {
    queueOutgoing: (m: StoredMessage) => {
      const refused = failure();
      return refused ? Promise.reject(refused) : queue(m);
    },
  });
  return queue;
}

/**
 * The outbox journal hooks of EngineStorage (storage/journal.ts fills them in the page) on
 * `storage`, as the set of message ids journaled; the journal takes an entry while `takes()`.
 */
function journalOn(storage: MemoryStorage, takes: () => boolean = () => true): Set<MessageId> {
  const journaled = new Set<MessageId>();
  Object.assign(storage, {
    journalOutgoing: (m: StoredMessage) => takes() && journaled.add(m.id) !== undefined,
    forgetJournaled: (id: MessageId) => journaled.delete(id),
    // As storage.ts: stored only while the entry is there and the id absent, with no await between
    // the checks and the write (one transaction there).
    storeJournaled: (m: StoredMessage) => {
      const stored = storage.messages.get(m.id);
      if (stored) return Promise.resolve({ ...stored });
      if (!journaled.has(m.id)) return Promise.resolve("dropped");
      return (m.state === "queued" ? storage.queueOutgoing(m) : storage.putMessage(m)).then(() => "stored");
    },
  });
  return journaled;
}

describe("chat engine (Node, real signaling, in-memory links)", () => {
  const { h, signaling } = engineHarnessPerSuite(FAST_ENGINE);
  const node = (name: string, user?: UserIdentity, storage?: MemoryStorage) => h.node(name, user, storage);
  const online = (n: EngineNode, peer: EngineNode) => h.online(n, peer);
  const stateOf = (n: EngineNode, id: MessageId) => h.stateOf(n, id);
  const pair = () => h.pair();

  it("delivers both ways; states queued → sending → sent → delivered, stored before each event", async () => {
    const [a, b] = await pair();
    const m1 = await a.engine.send(b.id, "hello bob");
    await until(() => stateOf(a, m1) === "delivered", "m1 delivered");
    const m2 = await b.engine.send(a.id, "hello alice");
    await until(() => stateOf(b, m2) === "delivered", "m2 delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(["hello bob"]);
    expect(a.storage.texts(b.id, "in")).toEqual(["hello alice"]);
    const states = a.events
      .filter((e) => e.type === "message-state" && e.id === m1)
      .map((e) => (e as { state: string }).state);
    expect(states).toEqual(["queued", "sending", "sent", "delivered"]);
    for (const s of [...a.storedAtEmit, ...b.storedAtEmit]) expect(s.stored).toBe(s.event);
    const incoming = a.events.find((e) => e.type === "message");
    expect(incoming && incoming.type === "message" && a.storage.messages.has(incoming.message.id)).toBe(true);
    expect(a.storage.outbox.size + b.storage.outbox.size).toBe(0);
    // The ratchet state is stored (sealed by real storage), never the plaintext.
    expect(a.storage.sessions.has(b.id)).toBe(true);
  });

  it.each([
    ["a PROXY frame", [FRAME.PROXY, 0], `a detached frame of type ${FRAME.PROXY}`],
    // The type byte and 80 of the ratchet prefix's 81 bytes: a prefix byte would travel outside the
    // Noise AEAD, which the security argument does not allow (docs/protocol/ratchet.md).
    [
      "a RATCHET frame with an 81-byte head",
      [FRAME.RATCHET, ...new Uint8Array(80).fill(1)],
      "a detached RATCHET frame with a head of 81 bytes",
    ],
  ])(
    "a detached frame that is not a RATCHET frame with its 82-byte head closes the session (LOFT_ERR_MALFORMED); the chat goes on over the next (%s)",
    async (_what, head, why) => {
      // Only a ratchet body carries its own AEAD, so only a RATCHET frame may come detached, its
      // whole prefix in the head (docs/protocol/session.md §5, "Detached frames"; link/controller.ts):
      // here Alice's live session sends a frame whose last bytes are outside the Noise AEAD, as a
      // faulty or hostile peer could — the engine never does.
      const [a, b] = await pair();
      const spy = vi.spyOn(Session.prototype, "sendDetached");
      let alices: Session | undefined;
      try {
        const m1 = await a.engine.send(b.id, "before");
        await until(() => stateOf(a, m1) === "delivered", "m1 delivered");
        // Her session to Bob that is still open (an earlier one may have been replaced meanwhile).
        alices = (spy.mock.contexts as Session[]).findLast(
          (s) => toHex(s.remoteIdentity.verified.identity_key) === b.id && s.state !== "closed",
        );
      } finally {
        spy.mockRestore();
      }
      expect(alices?.detachedFrames).toBe(true);
      alices!.sendDetached([Uint8Array.from(head)], new Uint8Array(32).fill(7));
      const closed = `session ${a.id.slice(0, 8)} closed: LOFT_ERR_MALFORMED (${why})`;
      await until(() => b.logs.includes(closed), "Bob closed the session on the detached frame");
      await until(() => alices!.state === "closed", "Alice's session closed too");
      // Nothing was lost: the next session carries the next message.
      const m2 = await a.engine.send(b.id, "after");
      await until(() => stateOf(a, m2) === "delivered", "m2 delivered");
      expect(b.storage.texts(a.id, "in")).toEqual(["before", "after"]);
    },
  );

  it("a detached ratchet body changed in transit: the session closes (LOFT_ERR_DECRYPT), both ratchets go on, the message comes again", async () => {
    // docs/protocol/ratchet.md, "One AEAD pass per byte": a body outside the Noise AEAD may be
    // changed by the network, so its failure closes the session as a Noise failure does and is
    // not read as disagreeing ratchets (messages.ts). The link messages reaching Bob now: the
    // first one with bytes after its Noise message (a DETACHED frame) gets its first body byte
    // flipped; links made later (the next session's) are left alone.
    const [a, b] = await pair();
    let flipped = 0;
    for (const link of h.hub.links.filter((l) => l.owner === b.id)) {
      const fromPeer = link.fromPeer.bind(link);
      link.fromPeer = (m: Uint8Array) => {
        const sealedEnd = 2 + ((m[0]! << 8) | m[1]!);
        if (flipped === 0 && m.length > sealedEnd) {
          flipped++;
          m[sealedEnd]! ^= 1;
        }
        fromPeer(m);
      };
    }
    const ratchetId = () => {
      const r = decodeChatRatchet(b.storage.sessions.get(a.id) ?? new Uint8Array(0));
      return r.ok ? toHex(r.value.id) : r.error.code;
    };
    await until(() => b.storage.sessions.has(a.id), "Bob's ratchet stored");
    const before = ratchetId();
    const m1 = await a.engine.send(b.id, "through a changed body");
    await until(
      () => b.logs.some((l) => l.startsWith(`session ${a.id.slice(0, 8)} closed: LOFT_ERR_DECRYPT`)),
      "closed",
    );
    expect(flipped).toBe(1);
    await until(() => stateOf(a, m1) === "delivered", "m1 delivered on the next session");
    expect(b.storage.texts(a.id, "in")).toEqual(["through a changed body"]);
    // The same ratchet read it: none was dropped and bootstrapped again.
    expect(ratchetId()).toBe(before);
    expect([...a.logs, ...b.logs].filter((l) => /desync|re-bootstrapped/.test(l))).toEqual([]);
    const m2 = await b.engine.send(a.id, "and back");
    await until(() => stateOf(b, m2) === "delivered", "m2 delivered");
  });

  it("the first verified connection with a contact stores lastSeen and tells the app (contact-updated)", async () => {
    const [a, b] = await pair();
    await online(a, b);
    // The app's "waiting to be accepted" reads lastSeen (web/src/app/contact-status.ts): the
    // record moved, and an event says so, or the app keeps showing the stale one.
    await until(
      () => (a.storage.contacts.get(b.id)?.lastSeen ?? 0) > (a.storage.contacts.get(b.id)?.firstSeen ?? 0),
      "lastSeen moved",
    );
    await until(
      () => a.events.some((e) => e.type === "contact-updated" && e.contactId === b.id),
      "contact-updated",
    );
  });

  it("a first session's dialer with a waiting outbox sends no sync: its first ratchet message is the chat message", async () => {
    // The lower key dials first (chat.md §1), so it is the Noise initiator, whose fresh ratchet
    // can send at once; the answering side cannot until the dialer's first ratchet message.
    const users = [0, 1].map((i) => createUserIdentity({ username: `u${i}`, now: Date.now() }));
    const key = (u: UserIdentity) => toHex(u.identity.verified.identity_key);
    users.sort((x, y) => (key(x) < key(y) ? -1 : 1));
    const bob = node("bob", users[0]);
    /** The answering side's receiving count at the moment it stores the incoming message. */
    const countsAtStore: number[] = [];
    class Recording extends MemoryStorage {
      override async putMessage(m: StoredMessage) {
        if (m.direction === "in") {
          const r = decodeChatRatchet(this.sessions.get(m.contactId) ?? new Uint8Array(0));
          countsAtStore.push(r.ok ? r.value.state.recvCount : -1);
        }
        await super.putMessage(m);
      }
    }
    const alice = node("alice", users[1], new Recording(signaling().url));
    alice.storage.addUser(bob.user);
    bob.storage.addUser(alice.user);
    await bob.engine.start();
    const sent = await bob.engine.send(alice.id, "queued before alice came online");
    await alice.engine.start();
    await until(() => stateOf(bob, sent) === "delivered", "delivered");
    expect(bob.logs).toContain(`session initiator ${alice.id.slice(0, 8)} open`);
    expect(alice.storage.texts(bob.id, "in")).toEqual(["queued before alice came online"]);
    // 1: the message itself opened the receiving chain; 2 would mean a `sync` went first
    // (one more encryption and sealed write on the first message's path, bench/README-chat.md).
    expect(countsAtStore).toEqual([1]);
  });

  it("keeps the order of many messages sent in the same millisecond; a burst shares ratchet writes", async () => {
    // The burst runs in one turn of the event loop (in-memory links and storage), so the first
    // heartbeat tick waits for it: past FAST_ENGINE's 600 ms on a loaded machine, and that tick
    // closed the session for a `heartbeat-timeout` mid-burst — the undelivered batches then went
    // again on the next session (the receiver keeping one copy), each one more ratchet write on
    // both ends. The counts below are about batching, not liveness: no heartbeat verdict here.
    const [a, b] = await h.pair(false, false, { heartbeatTimeoutMs: 120_000 });
    const saves = new Map<MemoryStorage, number>();
    for (const s of [a.storage, b.storage]) {
      const save = s.saveSession.bind(s);
      s.saveSession = (id, state) => {
        saves.set(s, (saves.get(s) ?? 0) + 1);
        return save(id, state);
      };
    }
    const texts = Array.from({ length: 40 }, (_, i) => `rapid ${i}`);
    const ids = await Promise.all(texts.map((t) => a.engine.send(b.id, t)));
    await until(() => ids.every((id) => stateOf(a, id) === "delivered"), "all delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(texts);
    expect(a.storage.texts(b.id, "out")).toEqual(texts);
    // Sealed ratchet writes: Alice, one per batch sent (messages.ts FLUSH_BATCH) and one per
    // `rcpt` read; Bob, one per message read and one per `rcpt` sent, each `rcpt` acknowledging
    // the messages read meanwhile. One of each per message was 2 × 40 on each side.
    expect(saves.get(a.storage)).toBeLessThan(texts.length);
    expect(saves.get(b.storage)).toBeLessThan(1.5 * texts.length);
  });

  it("a burst typed fast goes in bundles (chat.bundle): complete, in order, each message delivered; fewer ratchet messages than messages", async () => {
    // docs/protocol/chat.md §5, "Bundles": both engines list chat.bundle, so the outbox flush puts
    // consecutive chat messages under one ratchet message. Bob's sealed ratchet writes count the
    // ratchet messages he read (one each) and the `rcpt`s he sent: one message per ratchet
    // message was at least one write per chat message. No heartbeat verdict, as above.
    const [a, b] = await h.pair(false, false, { heartbeatTimeoutMs: 120_000 });
    let bobSaves = 0;
    const save = b.storage.saveSession.bind(b.storage);
    b.storage.saveSession = (id, state) => {
      bobSaves++;
      return save(id, state);
    };
    const texts = Array.from({ length: 40 }, (_, i) => `typed ${i} ${"x".repeat(i * 37)}`);
    const ids = await Promise.all(texts.map((t) => a.engine.send(b.id, t)));
    await until(() => ids.every((id) => stateOf(a, id) === "delivered"), "all delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(texts);
    const shown = b.events
      .filter((e) => e.type === "message")
      .map((e) => (e as { message: { text: string } }).message.text);
    expect(shown).toEqual(texts);
    for (const s of b.storedAtEmit) expect(s.stored).toBe(s.event);
    expect(a.storage.outbox.size).toBe(0);
    expect(bobSaves).toBeLessThan(texts.length);
  });

  it("a message the peer refuses does not keep its bundle's neighbours from it: on the next session each message sent before goes alone", async () => {
    // docs/protocol/chat.md §5, "Bundles": a bundle with one message its reader refuses is refused
    // whole, and the sender learns nothing until no receipt comes. A message over Bob's
    // MAX_TEXT_CHARS (a newer sender's, past this engine's own length check) is put in Alice's
    // outbox as her hand-over would, ahead of two Bob reads. Sent again in a bundle with the same
    // neighbours, it would keep them from Bob on every session.
    const [a, b] = await h.pair(false, false, { heartbeatTimeoutMs: 120_000 });
    const poison = "poison".padEnd(22, "P");
    await a.storage.queueOutgoing({
      id: poison,
      contactId: b.id,
      direction: "out",
      text: "x".repeat(MAX_TEXT_CHARS + 1),
      at: Date.now(),
      state: "queued",
    });
    const ids = await Promise.all(["read me 1", "read me 2"].map((t) => a.engine.send(b.id, t)));
    // The refusal is logged by code and kind, not by the decoder's words (messages.ts).
    await until(
      () =>
        b.logs.some((l) =>
          /^dropped an application message: LOFT_ERR_SCHEMA \(a bundle of \d+ bytes\)$/.test(l),
        ),
      "Bob refused the bundle",
    );
    expect(stateOf(a, ids[0]!)).toBe("sent");
    // The session drops; on the next one Alice's outbox goes again.
    h.hub.links
      .findLast((l) => l.owner === a.id && l.state === "open")!
      .close("ERR_CONNECTION_FAILURE", "cut");
    await until(
      () => ids.every((id) => stateOf(a, id) === "delivered"),
      "both delivered on the next session",
    );
    // Each once; "read me 2" may have gone in a flush of its own and arrived first.
    expect(b.storage.texts(a.id, "in").sort()).toEqual(["read me 1", "read me 2"]);
    expect(stateOf(a, poison)).toBe("sent");
  });

  it("keeps hand-over order when storage calls finish out of order (sends in the same tick)", async () => {
    h.hub = new Hub();
    const a = node("alice", undefined, new SlowStorage(signaling().url, 7));
    const b = node("bob");
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await a.engine.start();
    await b.engine.start();
    await until(() => online(a, b) && online(b, a), "both online");
    const texts = Array.from({ length: 60 }, (_, i) => `burst ${i}`);
    const ids = await Promise.all(texts.map((t) => a.engine.send(b.id, t)));
    expect(new Set(ids).size).toBe(texts.length);
    expect(a.storage.texts(b.id, "out")).toEqual(texts);
    await until(() => b.storage.texts(a.id, "in").length === texts.length, "all received");
    expect(b.storage.texts(a.id, "in")).toEqual(texts);
    // A receipt that overtakes the "sent" write must not be undone by it.
    await until(() => ids.every((id) => stateOf(a, id) === "delivered"), "all delivered");
  });

  it("hands over synchronously: id and time at the call, refusals leave nothing, a retry reuses the id", async () => {
    const [a, b] = await pair();
    // The outbox journal (storage/journal.ts): written in the hand-over's task, gone once settled.
    const journaled = journalOn(a.storage);
    const first = a.engine.handOver(b.id, "one");
    const second = a.engine.handOver(b.id, "two");
    // Known before any storage call finished: the UI shows them at once, in this order.
    expect(a.storage.messages.has(first.message.id)).toBe(false);
    expect([...journaled]).toEqual([first.message.id, second.message.id]);
    expect(first.message).toMatchObject({ contactId: b.id, direction: "out", text: "one", state: "queued" });
    expect(second.message.at).toBeGreaterThan(first.message.at);
    expect(await first.stored).toBe(first.message.id);
    expect(await second.stored).toBe(second.message.id);
    expect(journaled.size).toBe(0);
    expect(() => a.engine.handOver(b.id, "x".repeat(16_001))).toThrow(/limit is 16,000/);
    expect(() => a.engine.handOver(b.id, "")).toThrow(/empty/);
    await expect(a.engine.send(b.id, "x".repeat(16_001))).rejects.toThrow(/limit/);
    expect(a.storage.texts(b.id, "out")).toEqual(["one", "two"]);
    await until(() => stateOf(a, second.message.id) === "delivered", "delivered");
    // A send that failed is retried under the same id; the receiver keeps one copy. The retry is
    // recorded in the call's task (a reload before its writes land replays it: chat.md §9,
    // "Retries"), and the record goes once they land.
    const retries = new Set<MessageId>();
    Object.assign(a.storage, {
      journalRetry: (id: MessageId) => retries.add(id) !== undefined,
      forgetRetry: (id: MessageId) => retries.delete(id),
    });
    a.storage.messages.get(first.message.id)!.state = "failed";
    const retried = a.engine.retry(first.message.id);
    expect([...retries]).toEqual([first.message.id]);
    await retried;
    expect(retries.size).toBe(0);
    await until(() => stateOf(a, first.message.id) === "delivered", "retried and delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(["one", "two"]);
    // A retry of a message that is not failed changes nothing (a double click); its record goes.
    const before = a.events.length;
    await a.engine.retry(second.message.id);
    expect(a.events.slice(before).some((e) => e.type === "message-state")).toBe(false);
    expect(retries.size).toBe(0);
    // A retry whose writes storage refuses keeps its record for the next start.
    a.storage.messages.get(first.message.id)!.state = "failed";
    const putOutbox = a.storage.putOutbox.bind(a.storage);
    a.storage.putOutbox = () => Promise.reject(new DOMException("quota", "QuotaExceededError"));
    // Kept for the next start: a `RetryDeferred` (the screen says it is kept, in the app's words),
    // with the storage error as its cause — not the bare error, read as "sending failed".
    const kept = await a.engine.retry(first.message.id).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(kept).toBeInstanceOf(RetryDeferred);
    expect(((kept as RetryDeferred).cause as Error).name).toBe("QuotaExceededError");
    expect(sendProblem(kept)).toBe(
      "Loft could not save this retry yet. It keeps it and sends the message the next time you open Loft. No need to retry again.",
    );
    expect([...retries]).toEqual([first.message.id]);
    a.storage.putOutbox = putOutbox;
    // Its first write landed: `queued` without an outbox entry, which nothing sends. Retry again:
    // it finishes the first (queued with its entry, sent, delivered) and only then drops the
    // record — not "nothing to do", which dropped the record and left the message stuck.
    expect(stateOf(a, first.message.id)).toBe("queued");
    const again = a.events.length;
    await a.engine.retry(first.message.id);
    expect(retries.size).toBe(0);
    expect(a.events.slice(again)).toContainEqual(
      expect.objectContaining({ type: "message-state", id: first.message.id, state: "queued" }),
    );
    await until(() => stateOf(a, first.message.id) === "delivered", "the stuck retry finished and delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(["one", "two"]);
    // A blocked contact: `stored` rejects and nothing is stored.
    a.storage.contacts.get(b.id)!.trust = "rejected";
    const refused = a.engine.handOver(b.id, "after blocking");
    expect(journaled.has(refused.message.id)).toBe(true);
    await expect(refused.stored).rejects.toThrow(/blocked/);
    expect(a.storage.messages.has(refused.message.id)).toBe(false);
    // Refused: the screen takes the bubble back, so no later replay may send it.
    expect(journaled.size).toBe(0);
  });

  it("a hand-over whose commit fails for a storage reason keeps its journal entry (SaveDeferred), and is stored in this session first", async () => {
    const [a, b] = await pair();
    let journalTakes = true;
    const journaled = journalOn(a.storage, () => journalTakes);
    let failing: Error | undefined;
    const queue = refuseCommits(a.storage, () => failing);
    // A full quota in the commit: not stored, but the journal keeps the words (the person may
    // have left the chat, so giving the words back to the composer loses them).
    failing = new DOMException("quota", "QuotaExceededError");
    const full = a.engine.handOver(b.id, "kept for later");
    const deferred = await full.stored.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(deferred).toBeInstanceOf(SaveDeferred);
    expect((deferred as SaveDeferred).cause).toBe(failing);
    expect(journaled.has(full.message.id)).toBe(true);
    expect(a.storage.messages.has(full.message.id)).toBe(false);
    // The app locked in the commit window: the same; it waits behind the first.
    failing = Object.assign(new Error("locked"), { name: "LockedError" });
    const locked = a.engine.handOver(b.id, "locked mid-commit");
    await expect(locked.stored).rejects.toBeInstanceOf(SaveDeferred);
    expect(journaled.has(locked.message.id)).toBe(true);
    // No journal to keep it (localStorage full or blocked): the storage error itself, nothing left.
    journalTakes = false;
    const lost = a.engine.handOver(b.id, "not kept");
    await expect(lost.stored).rejects.toBe(failing);
    expect(journaled.has(lost.message.id)).toBe(false);
    journalTakes = true;
    // Storage works again and a new message is handed over before the retry timer fires: the
    // deferred ones are stored first, in hand-over order, then it (chat.md §9) — not it first,
    // nor the deferred ones only at the next start.
    failing = undefined;
    const after = a.engine.handOver(b.id, "after storage came back");
    expect(await after.stored).toBe(after.message.id);
    expect(a.storage.texts(b.id, "out")).toEqual([
      "kept for later",
      "locked mid-commit",
      "after storage came back",
    ]);
    expect(journaled.size).toBe(0);
    await until(() => stateOf(a, after.message.id) === "delivered", "delivered");
    expect(b.storage.texts(a.id, "in")).toEqual([
      "kept for later",
      "locked mid-commit",
      "after storage came back",
    ]);
    // Nothing handed over after it: the retry timer (with backoff) stores a deferred message once
    // storage takes writes again, in the same session.
    failing = new DOMException("quota", "QuotaExceededError");
    const mark = a.logs.length;
    const alone = a.engine.handOver(b.id, "stored by the timer");
    await expect(alone.stored).rejects.toBeInstanceOf(SaveDeferred);
    const retried = () => a.logs.slice(mark).some((l) => l.startsWith("a deferred save still fails"));
    await until(retried, "a retry that failed");
    failing = undefined;
    await until(() => stateOf(a, alone.message.id) === "delivered", "stored by the retry, then delivered");
    expect(journaled.size).toBe(0);
    // Stored meanwhile by another tab's replay (its start: storage.ts `replayJournal`): not stored
    // twice, and its state is still told — the screen's notice waits for that event (Chat.tsx).
    // Bob offline, so no send's state event stands in for it.
    await b.engine.stop();
    failing = new DOMException("quota", "QuotaExceededError");
    const elsewhere = a.engine.handOver(b.id, "stored by another tab");
    await expect(elsewhere.stored).rejects.toBeInstanceOf(SaveDeferred);
    failing = undefined;
    await queue({ ...elsewhere.message });
    const told = a.events.length;
    const toldState = () =>
      a.events.slice(told).some((e) => e.type === "message-state" && e.id === elsewhere.message.id);
    await until(toldState, "the state of the message another tab stored");
    expect(journaled.size).toBe(0);
    expect(a.storage.texts(b.id, "out").filter((t) => t === "stored by another tab")).toHaveLength(1);
    expect(a.events.slice(told)).toContainEqual(
      expect.objectContaining({ type: "message-state", id: elsewhere.message.id, state: "queued" }),
    );
    // Deferred, then the contact blocked before storage came back: stored `failed` with the
    // reason, as a replay at the next start would; a new hand-over is refused as before.
    failing = new DOMException("quota", "QuotaExceededError");
    const blocked = a.engine.handOver(b.id, "before blocking");
    await expect(blocked.stored).rejects.toBeInstanceOf(SaveDeferred);
    a.storage.contacts.get(b.id)!.trust = "rejected";
    failing = undefined;
    const refused = a.engine.handOver(b.id, "after blocking");
    await expect(refused.stored).rejects.toBeInstanceOf(EngineRefusal);
    expect(stateOf(a, blocked.message.id)).toBe("failed");
    expect(a.storage.messages.get(blocked.message.id)?.failure?.kind).toBe("contact-rejected");
    expect(a.storage.messages.has(refused.message.id)).toBe(false);
    expect(journaled.size).toBe(0);
  });

  it("a deferred save whose journal entry is gone (a restored backup) is not stored; one another tab stores in its window is not overwritten", async () => {
    const [a, b] = await pair();
    const journaled = journalOn(a.storage);
    let failing: Error | undefined;
    refuseCommits(a.storage, () => failing);
    failing = new DOMException("quota", "QuotaExceededError");
    const before = a.engine.handOver(b.id, "before the backup was restored");
    await expect(before.stored).rejects.toBeInstanceOf(SaveDeferred);
    // A backup restored meanwhile drops every journal (storage.ts `importBundle`): the deferred
    // message belongs to the history that was replaced, so it must not land in the restored one.
    journaled.clear();
    failing = undefined;
    const after = a.engine.handOver(b.id, "after the restore");
    expect(await after.stored).toBe(after.message.id);
    expect(a.storage.messages.has(before.message.id)).toBe(false);
    expect(a.storage.texts(b.id, "out")).toEqual(["after the restore"]);
    await until(() => stateOf(a, after.message.id) === "delivered", "delivered");
    // Deferred, then the contact blocked; another tab's replay stores it (and its send goes on:
    // `sent`) between the engine's reads and its write. Not overwritten with `failed`.
    await b.engine.stop();
    failing = new DOMException("quota", "QuotaExceededError");
    const raced = a.engine.handOver(b.id, "stored by another tab meanwhile");
    await expect(raced.stored).rejects.toBeInstanceOf(SaveDeferred);
    a.storage.contacts.get(b.id)!.trust = "rejected";
    failing = undefined;
    let otherTab = () => {
      otherTab = () => {};
      a.storage.messages.set(raced.message.id, { ...raced.message, state: "sent" });
    };
    const getMessage = a.storage.getMessage.bind(a.storage);
    const storeJournaled = (a.storage as Pick<EngineStorage, "storeJournaled">).storeJournaled!;
    Object.assign(a.storage, {
      // The other tab's write lands right after the engine's first look at the message (or
      // before its write, when it does not look first).
      getMessage: async (id: MessageId) => {
        const m = await getMessage(id);
        if (id === raced.message.id) otherTab();
        return m;
      },
      storeJournaled: (m: StoredMessage) => {
        if (m.id === raced.message.id) otherTab();
        return storeJournaled(m);
      },
    });
    const told = a.events.length;
    await expect(a.engine.handOver(b.id, "refused").stored).rejects.toBeInstanceOf(EngineRefusal);
    expect(stateOf(a, raced.message.id)).toBe("sent");
    expect(a.events.slice(told)).toContainEqual(
      expect.objectContaining({ type: "message-state", id: raced.message.id, state: "sent" }),
    );
    expect(journaled.size).toBe(0);
  });

  it("deferred saves go to the engine that replaces this one in the page (a new username), before a later message", async () => {
    const [a, b] = await pair();
    const journaled = journalOn(a.storage);
    let failing: Error | undefined = new DOMException("quota", "QuotaExceededError");
    refuseCommits(a.storage, () => failing);
    const first = a.engine.handOver(b.id, "deferred before the restart");
    await expect(first.stored).rejects.toBeInstanceOf(SaveDeferred);
    await a.engine.stop();
    // app/model.ts `changeUsername`: the stopped engine's deferred saves, to the new one, before
    // any hand-over reaches it.
    const deferred = a.engine.deferredSaves();
    expect(deferred.map((m) => m.id)).toEqual([first.message.id]);
    const next = node("alice", a.user, a.storage);
    next.engine.adoptDeferred(deferred);
    await next.engine.start();
    failing = undefined;
    const later = next.engine.handOver(b.id, "after the restart");
    expect(await later.stored).toBe(later.message.id);
    expect(a.storage.texts(b.id, "out")).toEqual(["deferred before the restart", "after the restart"]);
    expect(journaled.size).toBe(0);
    await until(() => stateOf(next, later.message.id) === "delivered", "delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(["deferred before the restart", "after the restart"]);
  });

  it("flushes an outbox written while the contact was offline, in order, once", async () => {
    h.hub = new Hub();
    const a = node("alice");
    const bobUser = createUserIdentity({ username: "bob", now: Date.now() });
    const bId = a.storage.addUser(bobUser);
    await a.engine.start();
    const ids: MessageId[] = [];
    for (let i = 1; i <= 5; i++) ids.push(await a.engine.send(bId, `queued ${i}`));
    expect(ids.map((id) => stateOf(a, id))).toEqual(["queued", "queued", "queued", "queued", "queued"]);
    const b = node("bob", bobUser);
    b.storage.addUser(a.user);
    await b.engine.start();
    await until(() => ids.every((id) => stateOf(a, id) === "delivered"), "all delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(["queued 1", "queued 2", "queued 3", "queued 4", "queued 5"]);
  });

  it("detects a silently dead link by heartbeat, replaces it, and resends what was in flight", async () => {
    const [a, b] = await pair();
    const before = h.hub.links.length;
    for (const l of h.hub.links) l.cut = true; // the network vanishes; nobody sees a close
    const m = await a.engine.send(b.id, "sent into the void");
    await until(() => stateOf(a, m) === "sent", "handed to the dead session");
    // Heartbeats notice, the session is closed and a new link comes up (glare-safe redial).
    await until(() => h.hub.links.length > before && online(a, b) && online(b, a), "a new session");
    await until(() => stateOf(a, m) === "delivered", "delivered on the new session");
    expect(b.storage.texts(a.id, "in")).toEqual(["sent into the void"]);
    const closed = a.events.find(
      (e) => e.type === "presence" && e.presence.lastError?.message.includes("stopped responding"),
    );
    expect(closed).toBeDefined();
  });

  /**
   * The closed-link window's set-up (core/session `writable`, `flushed`): Alice and Bob online
   * with a far heartbeat timeout — a held reader or a refused send must not end the window by a
   * timeout of their own (docs/contributing.md, "Tests"); Bob's open link to Alice; `opened()`,
   * how many sessions Bob's log says opened; `sentAfter`, for each message of Bob's reported
   * `sent`, how many had opened by then.
   */
  const closedLinkWindow = async () => {
    const [a, b] = await h.pair(false, false, { heartbeatTimeoutMs: 60_000 });
    const bobLink = h.hub.links.findLast((l) => l.owner === b.id && l.state === "open")!;
    const opened = () =>
      b.logs.filter((l) => / [0-9a-f]{8} open$/.test(l) && l.startsWith("session ")).length;
    const sentAfter: number[] = [];
    b.engine.subscribe((e) => {
      if (e.type === "message-state" && e.state === "sent") sentAfter.push(opened());
    });
    return { a, b, bobLink, opened, sentAfter };
  };

  it("a message sent while the link is closed under a session still reading is not `sent`: it goes on the next session", async () => {
    // core/session `writable`: a link that closed under the session leaves the session `open`
    // until its reader has read what arrived before the close; whatever is sent in that window is
    // dropped. The message must not be reported `sent` then — `loft send` exits on `sent` — but
    // stay in the outbox and go out on the next session. A far heartbeat timeout: the held reader
    // must not end the window by a timeout of its own (docs/contributing.md, "Tests").
    const { a, b, bobLink, opened, sentAfter } = await closedLinkWindow();
    const aliceLink = bobLink.peer!;
    const { held, release } = holdReader(bobLink);
    await until(held, "Bob's session reader holds at the gate"); // after a PING, say
    const last = await a.engine.send(b.id, "before the close");
    await until(() => stateOf(a, last) === "sent", "Alice's message waits in Bob's link");
    bobLink.close("ERR_CONNECTION_FAILURE", "the connection failed"); // under Bob's session
    expect(opened()).toBe(1);
    const m = await b.engine.send(a.id, "sent in the window");
    await until(() => sentAfter.length > 0 || b.logs.some((l) => l.startsWith("send stopped")), "the flush");
    expect(sentAfter).toEqual([]); // not `sent` on the session whose link had closed
    expect(stateOf(b, m)).not.toBe("sent");
    expect(aliceLink.state).toBe("closed");
    release();
    // The reader still reads what arrived before the close; the message goes on the next session.
    await until(() => b.storage.texts(a.id, "in").includes("before the close"), "Bob read the last message");
    await until(() => stateOf(b, m) === "delivered", "delivered on the next session");
    expect(sentAfter).toEqual([2]);
    expect(a.storage.texts(b.id, "in")).toEqual(["sent in the window"]);
  });

  it("a message whose frames the link refuses as it closes under the session is not `sent`: flushed() says so, it goes on the next session", async () => {
    // The other half of the window above: the session was still `writable` when the message was
    // encrypted, and the link closes while the send chain hands it over (a data channel found
    // closing: web/src/net/webrtc-link.ts `transmit`). The session drops the frames; only
    // core/session `flushed` tells the outbox, which must not mark the message `sent`.
    const { a, b, bobLink, opened, sentAfter } = await closedLinkWindow();
    const { arm, refused } = refuseWhenArmed(bobLink);
    expect(opened()).toBe(1);
    arm();
    const m = await b.engine.send(a.id, "handed over as the link closed");
    await until(refused, "the link refused the message's frames");
    await until(() => stateOf(b, m) === "delivered", "delivered on the next session");
    expect(sentAfter).toEqual([2]); // `sent` once, on the next session — never on the first
    expect(a.storage.texts(b.id, "in")).toEqual(["handed over as the link closed"]);
  });

  it("a stopping engine closes its direct transport after its sessions' CLOSE: the contact sees it stopped, no error", async () => {
    // As web/src/net/direct.ts: `close` closes every link the transport made at once, `settled`
    // waits for the open ones to be closed (by their sessions, once the CLOSE is sealed).
    const directLike =
      (user: UserIdentity): EngineConfig["transport"] =>
      (deps) => {
        const links = new Set<DialedLink>();
        const track = (l: DialedLink) => {
          links.add(l);
          void l.closed.then(() => links.delete(l));
          return l;
        };
        const inner = h.hub.factory(user)({
          ...deps,
          onOffer: (o) => deps.onOffer({ ...o, accept: () => track(o.accept()) }),
        });
        return {
          path: "direct",
          dial: (peer, options) => track(inner.dial(peer, options)),
          close: () => {
            inner.close();
            for (const l of links) l.close("transport-closed");
          },
          settled: () =>
            Promise.all([...links].filter((l) => l.state === "open").map((l) => l.closed)).then(() => {}),
        };
      };
    h.hub = new Hub();
    const aUser = createUserIdentity({ username: "alice", now: Date.now() });
    const bUser = createUserIdentity({ username: "bob", now: Date.now() });
    const a = h.node("alice", aUser, undefined, undefined, { transport: directLike(aUser) });
    const b = h.node("bob", bUser, undefined, undefined, { transport: directLike(bUser) });
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await a.engine.start();
    await b.engine.start();
    await until(() => online(a, b) && online(b, a), "both online");
    await a.engine.stop();
    const closedLine = `session ${a.id.slice(0, 8)} closed: `;
    await until(() => b.logs.some((l) => l.startsWith(closedLine)), "Bob's session with Alice ends");
    // Before, the transport closed the link before Alice's session had sealed its CLOSE: Bob saw
    // the link fail (transport-closed), showed an error and redialled.
    expect(b.logs.filter((l) => l.startsWith(closedLine))).toEqual([`${closedLine}remote-closed (stopped)`]);
    expect(b.engine.presence(a.id).lastError).toBeUndefined();
  });

  it("a stop while start still reads the settings: start then opens nothing, the engine stays stopped", async () => {
    class HeldSettings extends MemoryStorage {
      readonly calls = new Held();
      override async getSettings() {
        await this.calls.wait();
        return super.getSettings();
      }
    }
    const storage = new HeldSettings(signaling().url);
    const a = node("alice", undefined, storage);
    const starting = a.engine.start();
    await until(() => storage.calls.held.length > 0, "start reads the settings");
    await a.engine.stop();
    storage.calls.letGo();
    await starting;
    // Before, start went on after the stop: a signaling connection (and relay pool, live
    // transports) that nothing would close, on an engine said to be stopped.
    expect(a.engine.serviceStatus()).toMatchObject({ signaling: "disabled", relay: "disabled" });
  });

  it("stop ends by its deadline though a wait never ends (the file store's release), and logs what it cut", async () => {
    // A file store whose release never answers (a stuck worker, say): before, stop waited for it
    // for ever, as it did for `#lines.idle()` and the sessions' queues (docs/protocol/chat.md §6).
    const fileStore: FileStore = new MemoryFileStore();
    let asked = false;
    fileStore.release = () => {
      asked = true;
      return new Promise<void>(() => {});
    };
    const a = h.node("alice", undefined, undefined, undefined, { fileStore, stopSettleMs: 200 });
    await a.engine.start();
    await until(() => a.engine.serviceStatus().signaling === "connected", "signaling connected");
    await a.engine.stop();
    expect(asked).toBe(true);
    expect(a.logs).toContain("stop: gave up waiting for the file store's release");
    expect(a.engine.serviceStatus()).toMatchObject({ signaling: "disabled", relay: "disabled" });
  });

  // 400 ms: a deadline well inside the transfers' own bound (STOP_WAIT_MS, 4 s). 0: a deadline
  // spent before the transfers' stop begins — as when the record of undeleted live relay queues
  // took its second past it (engine.ts LEFTOVERS_WRITE_MS; chat.md §6, "Stopping"): the
  // transfers' stop is given nothing, and must still close its store before the files' release.
  it.each([400, 0])(
    "stop gives the file transfers' stop the time left (stopSettleMs %i): a chunk write held past the deadline leaves nothing to write after the files' release (files.md §6)",
    async (stopSettleMs) => {
      /** Bob's file store: chunk writes held until let go; every write begun after `release` noted. */
      class HeldWrites extends MemoryFileStore {
        readonly writes = new Held();
        released = false;
        landed = 0;
        readonly late: string[] = [];
        #write(what: string): void {
          if (this.released) this.late.push(what);
        }
        override async putChunks(key: string, first: number, sealed: Uint8Array[]): Promise<void> {
          this.#write(`chunks from ${first}`);
          await this.writes.wait();
          await super.putChunks(key, first, sealed);
          this.landed++;
        }
        override async putRecord(r: FileRecord): Promise<void> {
          this.#write(`record ${r.key}`);
          await super.putRecord(r);
        }
        override async deleteChunks(key: string): Promise<void> {
          this.#write(`delete chunks ${key}`);
          await super.deleteChunks(key);
        }
        override async deleteTransfer(key: string): Promise<void> {
          this.#write(`delete ${key}`);
          await super.deleteTransfer(key);
        }
        async release(): Promise<void> {
          this.released = true;
        }
      }
      h.hub = new Hub();
      const store = new HeldWrites();
      const a = h.node("alice");
      const b = h.node("bob", undefined, undefined, undefined, { fileStore: store, stopSettleMs });
      a.storage.addUser(b.user);
      b.storage.addUser(a.user);
      await a.engine.start();
      await b.engine.start();
      await until(() => online(a, b) && online(b, a), "both online");
      await a.engine.sendFile(b.id, new Blob([seededBytes(3 * FILE_CHUNK_BYTES, 5)]), "held.bin");
      const offered = () => [...fileTransfers(b).values()].find((t) => t.direction === "in");
      await until(() => offered()?.state === "offered", "Bob is offered the file");
      await b.engine.acceptFile(offered()!.key);
      await until(() => store.writes.held.length > 0, "Bob's first chunk write is under way");
      await b.engine.stop();
      expect(store.released).toBe(true);
      // The write under way ends only now, after the release (a store that answers late).
      store.writes.letGo();
      await until(() => store.landed > 0, "the held write lands");
      // Before, the transfers' stop still waited (its 4 s) when the engine released the files, and
      // saved the resume point once the write ended: a record written after the release. Checked
      // once everything the stop cut short has ended (its log line), not after a fixed wait — or
      // as soon as a write comes after the release.
      await until(
        () => b.logs.includes(STOP_CUT_SHORT_ENDED) || store.late.length > 0,
        "what the files' stop cut short ends",
      );
      expect(store.late).toEqual([]);
      expect(b.logs).toContain("stop: gave up waiting for the file transfers' stop");
    },
  );

  /** Heartbeats too slow to notice anything within a test: only the presence probe can (chat.md §6). */
  const PROBE_ONLY = { heartbeatIntervalMs: 60_000, heartbeatTimeoutMs: 120_000, presenceProbeMs: 150 };

  it("signaling says the contact left while the link is silently dead: offline at the probe, not the heartbeat timeout", async () => {
    h.hub = new Hub();
    const a = h.node("alice", undefined, undefined, undefined, PROBE_ONLY);
    const b = h.node("bob", undefined, undefined, undefined, PROBE_ONLY);
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await a.engine.start();
    await b.engine.start();
    await until(() => online(a, b) && online(b, a), "both online");
    for (const l of h.hub.links) l.cut = true; // Bob's tab dies: nobody sees the link close
    await b.engine.stop(); // …but the signaling server sees his WebSocket go
    await until(() => a.engine.presence(b.id).status === "offline", "Alice sees Bob offline");
    expect(a.logs.join("\n")).toContain("went offline and the live session stopped answering");
    // Said as what happened, not as a fault being repaired ("stopped responding. Reconnecting…").
    expect(a.engine.presence(b.id).lastError?.message).toMatch(/^bob went offline\.$/);
  });

  /**
   * Alice (presence probe after `probeMs`) and Bob, contacts, online to each other on a new Hub;
   * Bob's signaling WebSockets are kept so that a test can drop one.
   */
  const onlineWithBobsSockets = async (probeMs: number) => {
    h.hub = new Hub();
    const bobSockets: WebSocket[] = [];
    const a = h.node("alice", undefined, undefined, undefined, { ...PROBE_ONLY, presenceProbeMs: probeMs });
    const b = h.node("bob", undefined, undefined, undefined, {
      ...PROBE_ONLY,
      webSocket: (url) => {
        const ws = new WebSocket(url);
        bobSockets.push(ws);
        return ws as unknown as WebSocketLike;
      },
    });
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await a.engine.start();
    await b.engine.start();
    await until(() => online(a, b) && online(b, a), "both online");
    return { a, b, bobSockets };
  };

  it("a link that outlives the contact's signaling connection answers the probe and stays", async () => {
    // A window a loaded machine's PING round trip fits in: this test is about the answer.
    const { a, b, bobSockets } = await onlineWithBobsSockets(3_000);
    const links = h.hub.links.length;
    bobSockets.at(-1)?.terminate(); // only Bob's signaling connection drops (a server restart, say)
    await until(
      () => bobSockets.length > 1 && bobSockets.at(-1)?.readyState === WebSocket.OPEN,
      "Bob re-registers",
    );
    // The probe's time came and the PING had been answered over the same link, which stays.
    await until(() => a.logs.some((l) => l.includes("the live session answered")), "the probe answered");
    expect(a.logs.join("\n")).not.toContain("stopped answering");
    expect(online(a, b)).toBe(true);
    const m = await a.engine.send(b.id, "still direct");
    await until(() => stateOf(a, m) === "delivered", "delivered");
    expect(h.hub.links.length).toBe(links);
  });

  it("our own signaling comes back while the link died silently (a network change): probed and redialled, not left to the heartbeat timeout", async () => {
    // Alice's probe outlasts the test: only Bob's own reconnect can notice the dead link.
    const { a, b, bobSockets } = await onlineWithBobsSockets(120_000);
    const links = h.hub.links.length;
    for (const l of h.hub.links) l.cut = true; // Bob's network changes: the path dies silently…
    bobSockets.at(-1)?.terminate(); // …and his signaling connection with it, which comes back
    await until(
      () => b.logs.some((l) => l.includes("our signaling connection came back and the live session stopped")),
      "Bob's probe after re-registering",
    );
    await until(() => h.hub.links.length > links && online(a, b) && online(b, a), "a new session");
    const m = await b.engine.send(a.id, "after the network change");
    await until(() => stateOf(b, m) === "delivered", "delivered");
    expect(a.storage.texts(b.id, "in")).toEqual(["after the network change"]);
  });

  it("a dial still connecting when the contact reloads gives way to the offer of their new page", async () => {
    h.hub = new Hub();
    // Alice holds the lower key: her dial is the one the glare rule keeps (chat.md §1).
    let alice = createUserIdentity({ username: "alice", now: Date.now() });
    let bob = createUserIdentity({ username: "bob", now: Date.now() });
    const keyOf = (u: UserIdentity) => Buffer.from(u.identity.verified.identity_key).toString("hex");
    if (keyOf(alice) > keyOf(bob)) [alice, bob] = [bob, alice];
    // Only the presence change can end Alice's doomed dial: no stale-dial rule, no open timeout.
    const slow = { staleDialMs: 120_000, openTimeoutMs: 120_000 };
    h.hub.blockDirect = true; // the first dial never connects (Bob's page is about to go)
    const a = h.node("alice", alice, undefined, undefined, slow);
    const b = h.node("bob", bob, undefined, undefined, slow);
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await a.engine.start();
    await b.engine.start();
    await until(() => a.logs.some((l) => l.startsWith(`dial ${b.id.slice(0, 8)}`)), "Alice dials");
    for (const l of h.hub.links) l.cut = true; // Bob reloads: his page vanishes, no close arrives…
    await b.engine.stop(); // …and his signaling connection ends
    h.hub.blockDirect = false;
    const b2 = h.node("bob", bob, b.storage, undefined, slow); // …and his new page comes up
    await b2.engine.start();
    await until(() => online(a, b2) && online(b2, a), "online with Bob's new page");
    expect(a.logs.join("\n")).toContain("ended: presence-offline");
  });

  it("after a restart (a reload) keeps the ratchet, the history and the outbox; duplicates are dropped", async () => {
    const [a, b] = await pair();
    const m1 = await a.engine.send(b.id, "before restart");
    await until(() => stateOf(a, m1) === "delivered", "m1 delivered");
    const ratchetBefore = b.storage.sessions.get(a.id);
    await b.engine.stop();
    const m2 = await a.engine.send(b.id, "while bob restarts");
    const b2 = node("bob", b.user, b.storage);
    await b2.engine.start();
    await until(() => stateOf(a, m2) === "delivered", "m2 delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(["before restart", "while bob restarts"]);
    // Same ratchet continued (no re-bootstrap notice), though its state advanced.
    expect(b2.events.some((e) => e.type === "error")).toBe(false);
    expect(b.storage.sessions.get(a.id)).not.toEqual(ratchetBefore);
  });

  it("re-bootstraps visibly when one side lost its ratchet state, and keeps delivering", async () => {
    const [a, b] = await pair();
    const m1 = await a.engine.send(b.id, "first");
    await until(() => stateOf(a, m1) === "delivered", "m1 delivered");
    await b.engine.stop();
    b.storage.sessions.set(a.id, new Uint8Array([0xc1, 0x00])); // unreadable
    const b2 = node("bob", b.user, b.storage);
    await b2.engine.start();
    await until(() => online(a, b2) && online(b2, a), "online again");
    const notice = (n: EngineNode) =>
      n.events.find((e) => e.type === "error" && e.error.message.includes("new secure session"));
    await until(() => notice(a) !== undefined && notice(b2) !== undefined, "both told");
    const m2 = await b2.engine.send(a.id, "after the reset");
    await until(() => stateOf(b2, m2) === "delivered", "m2 delivered");
    const m3 = await a.engine.send(b.id, "and back");
    await until(() => stateOf(a, m3) === "delivered", "m3 delivered");
  });

  it("glare: both dial at once, the lower key's attempt wins, one session results", async () => {
    h.hub = new Hub();
    const a = node("alice");
    const b = node("bob");
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await Promise.all([a.engine.start(), b.engine.start()]);
    // Both learn the other is online and both try at once (through `connect` too).
    a.engine.connect(b.id);
    b.engine.connect(a.id);
    await until(() => online(a, b) && online(b, a), "one session");
    const m = await a.engine.send(b.id, "after glare");
    await until(() => stateOf(a, m) === "delivered", "delivered");
    expect(b.storage.texts(a.id, "in")).toEqual(["after glare"]);
  });

  it("disconnect, then connect at once: a new session comes up, whichever key is the higher", async () => {
    // Each engine's SUBSCRIBE goes out beside its REGISTER: answered before the REGISTER is
    // verified, it says the watched-only contact is offline, and the push that follows the
    // REGISTER says online. Read in that order's reverse (the answer a microtask late), the stale
    // answer won: the engine believed the contact offline, so connect() after a disconnect dialed
    // nothing and both ends stayed offline (core/signaling/client.ts `#sendSubscribe`).
    const [low, high] = ["x", "y"]
      .map((name) => createUserIdentity({ username: name, now: Date.now() }))
      .sort((u, v) =>
        toHex(u.identity.verified.identity_key) < toHex(v.identity.verified.identity_key) ? -1 : 1,
      );
    for (const [aliceUser, bobUser] of [
      [high!, low!],
      [low!, high!],
    ] as const) {
      h.hub = new Hub();
      const a = node("alice", aliceUser);
      const b = node("bob", bobUser);
      a.storage.addUser(b.user);
      b.storage.addUser(a.user);
      await a.engine.start();
      await b.engine.start();
      await until(() => online(a, b) && online(b, a), "both online");
      b.engine.disconnect(a.id);
      expect(online(b, a)).toBe(false);
      b.engine.connect(a.id);
      await until(() => online(a, b) && online(b, a), "online again after connect()");
      const m = await b.engine.send(a.id, "after a reconnect");
      await until(() => stateOf(b, m) === "delivered", "delivered");
      await h.stopAll();
    }
  });

  it("disconnect and connect take effect in call order, whatever the microtasks between the close and the read", async () => {
    const [a, b] = await pair();
    const short = a.id.slice(0, 8);
    // The link dies in the very task the person presses disconnect, then connect: the session's
    // close event now waits on the link's close too (one microtask more than connect's read of
    // the contact). The session must be retired by the disconnect itself, so connect dials at
    // once; before, connect found the closing session still live, dialed nothing, and only Alice's
    // heartbeat timeout brought a session back (controller.ts `#retire`).
    const bLink = h.hub.links.filter((l) => l.owner === b.id && l.state === "open").at(-1);
    if (!bLink) throw new Error("no open link of Bob's");
    bLink.cut = true; // Alice is told nothing: only Bob's own dial brings the session back soon
    bLink.close("transport-closed");
    b.engine.disconnect(a.id);
    const mark = b.logs.length;
    b.engine.connect(a.id);
    await until(() => online(b, a), "Bob online again");
    expect(b.logs.slice(mark)).toContain(`dial ${short}`);
    const m = await b.engine.send(a.id, "after the reconnect");
    await until(() => stateOf(b, m) === "delivered", "delivered");
    // connect, then disconnect at once: the disconnect is the later call and wins, though connect
    // acts only after reading the contact (engine.ts `#userCall`).
    b.engine.disconnect(a.id);
    await until(() => !online(a, b), "Alice sees Bob leave");
    const offers = h.hub.offers;
    b.engine.connect(a.id);
    b.engine.disconnect(a.id);
    const superseded = `connect ${short}: superseded by a later call`;
    await until(() => b.logs.includes(superseded) || online(b, a), "the connect settled");
    expect(b.logs).toContain(superseded);
    expect(online(b, a)).toBe(false);
    expect(h.hub.offers).toBe(offers);
  });

  it("a rotated noise key in the handshake is recorded as pending; nothing is sent until decided", async () => {
    const [a, b] = await pair();
    await b.engine.stop();
    // Bob's CLOSE frame is sealed asynchronously (core/session): wait until Alice has read it, so
    // the message below is queued for the mailbox rather than caught in flight on the old session.
    await until(() => !online(a, b), "alice sees bob gone");
    const q = await a.engine.send(b.id, "hold this");
    const rotated = updateIdentity(b.user, { rotateNoiseKey: true }, Date.now());
    const b2 = node("bob", rotated, b.storage);
    await b2.engine.start();
    await until(() => a.storage.contacts.get(b.id)?.pending !== undefined, "pending recorded");
    expect(a.storage.contacts.get(b.id)?.pending?.kind).toBe("noise-key-rotated");
    expect(a.storage.contacts.get(b.id)?.pending?.source).toBe("handshake");
    expect(a.events.some((e) => e.type === "identity-change")).toBe(true);
    await expect(a.engine.send(b.id, "refused")).rejects.toThrow(/identity changed/);
    expect(stateOf(a, q)).toBe("queued");
    expect(b.storage.texts(a.id, "in")).not.toContain("hold this");
    // The user accepts the new key (the UI stores it and drops the ratchet): chat resumes.
    const c = a.storage.contacts.get(b.id)!;
    c.identity = c.pending!.identity;
    delete c.pending;
    a.storage.sessions.delete(b.id);
    a.engine.contactChanged(b.id);
    await until(() => stateOf(a, q) === "delivered", "delivered after accepting");
  });

  it("a contact renaming itself to another contact's name is a pending decision; a plain rename is announced", async () => {
    const [a, b] = await pair();
    const carol = createUserIdentity({ username: "Carol", now: Date.now() });
    a.storage.addUser(carol, "trusted");
    await b.engine.stop();
    await until(() => !online(a, b), "alice sees bob gone"); // as above: the CLOSE frame is async
    const q = await a.engine.send(b.id, "for bob");
    // Bob comes back as "carol" (same keys, newer version): not a silent update.
    const asCarol = updateIdentity(b.user, { username: "carol" }, Date.now());
    const b2 = node("bob", asCarol, b.storage);
    await b2.engine.start();
    await until(() => a.storage.contacts.get(b.id)?.pending !== undefined, "pending recorded");
    expect(a.storage.contacts.get(b.id)?.pending?.kind).toBe("rename-collision");
    expect(a.storage.contacts.get(b.id)?.username).toBe("bob");
    expect(a.storage.contacts.get(b.id)?.trust).toBe("unknown");
    await expect(a.engine.send(b.id, "refused")).rejects.toThrow(/identity changed/);
    expect(stateOf(a, q)).toBe("queued");
    await b2.engine.stop();

    // Bob instead becomes "Robert" (a name nobody else has): stored, and a contact-renamed event says so.
    delete a.storage.contacts.get(b.id)!.pending;
    const asRobert = updateIdentity(b.user, { username: "Robert" }, Date.now() + 1);
    const b3 = node("bob", asRobert, b.storage);
    a.engine.contactChanged(b.id);
    await b3.engine.start();
    await until(() => a.storage.contacts.get(b.id)?.username === "Robert", "renamed");
    expect(a.storage.contacts.get(b.id)?.pending).toBeUndefined();
    expect(a.events).toContainEqual({ type: "contact-renamed", contactId: b.id, from: "bob", to: "Robert" });
    await until(() => stateOf(a, q) === "delivered", "delivered after the rename");
  });

  it("an unreachable signaling server: start() still resolves, the status and an error say so, sends wait", async () => {
    h.hub = new Hub();
    const storage = new MemoryStorage("ws://127.0.0.1:9/signal"); // discard port: nothing listens
    const a = node("alice", undefined, storage);
    const bId = a.storage.addUser(createUserIdentity({ username: "bob", now: Date.now() }));
    await a.engine.start();
    await until(() => a.engine.serviceStatus().signaling === "unreachable", "unreachable");
    const err = a.events.find((e) => e.type === "error");
    expect(err?.type === "error" && err.error.kind).toBe("signaling-unreachable");
    const m = await a.engine.send(bId, "later");
    expect(stateOf(a, m)).toBe("queued");
  });

  it("a signaling server that refuses our REGISTER (another audience) is said in plain words, not silence", async () => {
    h.hub = new Hub();
    // A server configured for another public address: every REGISTER naming the URL we dialled
    // is refused WRONG_AUDIENCE, so contacts would see us offline forever.
    const elsewhere = await startSignaling({ audience: ["wss://elsewhere.example/signal"] });
    try {
      const a = node("alice", undefined, new MemoryStorage(elsewhere.url));
      await a.engine.start();
      await until(() => a.events.some((e) => e.type === "error"), "an error event");
      const err = a.events.find((e) => e.type === "error");
      expect(err?.type === "error" && err.error.kind).toBe("signaling-unreachable");
      expect(err?.type === "error" && err.error.message).toMatch(/refused to sign you in.*another address/);
      expect(a.engine.serviceStatus().signaling).toBe("unreachable");
    } finally {
      await elsewhere.close();
    }
  });

  it("changes a contact through changeContact: stored, acted on, announced", async () => {
    const [a, b] = await pair();
    const changed = () => a.events.filter((e) => e.type === "contact-changed" && e.contactId === b.id).length;
    await a.engine.changeContact(b.id, { kind: "trust", trust: "rejected" });
    expect(a.storage.contacts.get(b.id)?.trust).toBe("rejected");
    expect(changed()).toBe(1);
    await until(() => !online(a, b) && !online(b, a), "the link closed both ways");
    expect(a.engine.presence(b.id).lastError?.kind).toBe("contact-rejected");
    await expect(a.engine.send(b.id, "blocked")).rejects.toThrow(/blocked/);
    await a.engine.changeContact(b.id, { kind: "trust", trust: "unknown" });
    expect(changed()).toBe(2);
    a.engine.connect(b.id);
    await until(() => online(a, b) && online(b, a), "back online");
    const m = await a.engine.send(b.id, "unblocked");
    await until(() => stateOf(a, m) === "delivered", "delivered");
    await a.engine.changeContact(b.id, { kind: "delete" });
    expect(a.storage.contacts.has(b.id)).toBe(false);
    expect(a.storage.texts(b.id, "out")).toEqual([]);
    expect(changed()).toBe(3);
    await until(() => !online(b, a), "bob sees alice gone");
    expect(a.engine.presence(b.id).status).toBe("offline");
    // Nothing of the deleted contact stays in the engine: before, its connect/disconnect number
    // (`#userCalls`) did, one entry per contact ever deleted.
    expect(a.engine.heldContacts()).not.toContain(b.id);
  });

  it("a deletion the storage refuses keeps the contact connected: its link comes back, messages flow", async () => {
    const [a, b] = await pair();
    await until(() => online(a, b) && online(b, a), "both online");
    // A full disk for this one deletion (the way loft-ui.ts failWrites stands in for it in e2e).
    const deleteContact = a.storage.deleteContact.bind(a.storage);
    a.storage.deleteContact = () =>
      Promise.reject(new DOMException("The quota has been exceeded.", "QuotaExceededError"));
    await expect(a.engine.changeContact(b.id, { kind: "delete" })).rejects.toThrow(/quota/);
    a.storage.deleteContact = deleteContact;
    expect(a.storage.contacts.has(b.id)).toBe(true);
    // Before: the deletion's disconnect held the kept contact off (manual) until a reload.
    await until(() => online(a, b) && online(b, a), "online again after the refused deletion");
    const m = await a.engine.send(b.id, "still here");
    await until(() => stateOf(a, m) === "delivered", "delivered");
  });

  it("shows presence only to accepted contacts; a stranger's direct offer is still refused", async () => {
    h.hub = new Hub();
    const a = node("alice");
    const bob = node("bob");
    const stranger = node("mallory");
    a.storage.addUser(bob.user);
    bob.storage.addUser(a.user);
    stranger.storage.addUser(a.user);
    await a.engine.start();
    await bob.engine.start();
    await stranger.engine.start();
    // Alice is registered and her contact sees her (docs/protocol/signaling.md, "Contacts only").
    await until(() => online(bob, a), "alice online for her contact");
    // The server's answer to a registered stranger who watches her: offline, no LOOKUP result.
    const eve = new SignalingClient({
      url: signaling().url,
      user: createUserIdentity({ username: "eve", now: Date.now() }),
      connect: wsFactory(),
      reconnect: false,
    });
    try {
      await eve.start();
      expect(await eve.subscribe([a.user.identity.verified.identity_key])).toEqual([
        { key: a.user.identity.verified.identity_key, online: false },
      ]);
      expect((await eve.lookup(a.user.identity.verified.identity_key)).online).toBe(false);
    } finally {
      eve.close();
    }
    // The stranger's engine never saw her online, so it never dialed and was never refused.
    expect(stranger.engine.presence(a.id).status).toBe("offline");
    expect(stranger.engine.presence(a.id).lastError).toBeUndefined();
    // A direct offer that comes anyway (a stranger who dials blind) is refused before any session.
    const transport = h.hub.factory(stranger.user)(h.hub.endpoints.get(stranger.id)!);
    const dialed = transport.dial(a.user.identity.verified.identity_key);
    expect((await dialed.closed).reason).toBe("bye-refused");
    const m = await stranger.engine.send(a.id, "let me in");
    expect(stateOf(stranger, m)).toBe("queued");
    expect(a.storage.messages.size).toBe(0);
    expect(await a.storage.getContact(stranger.id)).toBeUndefined();
  });
});
