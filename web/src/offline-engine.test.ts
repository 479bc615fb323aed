/**
 * The offline stand-in keeps the same hand-over contract as the engine (web/src/engine/api.ts
 * `handOver`): ids and strictly increasing times at the call, storage in hand-over order even when
 * storage calls finish out of order, refusals that store nothing, retries under the same id.
 * Storage here is a slow in-memory stand-in for the few LoftStorage calls a hand-over makes. The
 * offline engine is the engine with no transports (web/src/offline-engine.ts).
 */
import { describe, expect, it } from "vitest";
import { createUserIdentity } from "../../core/identity/identity.ts";
import { MemoryStorage } from "../../test/support/engine.ts";
import type {
  ContactRecord,
  EngineError,
  EngineEvent,
  MessageState,
  OutboxEntry,
  StoredMessage,
} from "./engine/api.ts";
import { createOfflineEngine } from "./offline-engine.ts";
import type { LoftStorage } from "./storage/storage.ts";

function slowStorage(seed = 3) {
  let s = seed;
  const delay = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return new Promise((r) => setTimeout(r, s % 5));
  };
  const contact: ContactRecord = {
    id: "c".repeat(64),
    identity: new Uint8Array(),
    username: "bob",
    trust: "unknown",
    firstSeen: 0,
    lastSeen: 0,
  };
  const messages: StoredMessage[] = [];
  const outbox = new Map<string, OutboxEntry>();
  const storage = {
    contact,
    messages,
    outbox,
    async getContact() {
      await delay(); // reads finish in any order
      return { ...contact };
    },
    async queueOutgoing(m: StoredMessage) {
      await delay();
      messages.push({ ...m });
      outbox.set(m.id, { messageId: m.id, contactId: m.contactId, queuedAt: m.at, attempts: 0 });
    },
    async getMessage(id: string) {
      await delay();
      const m = messages.find((x) => x.id === id);
      return m && { ...m };
    },
    async setMessageState(id: string, state: MessageState, failure?: EngineError) {
      const m = messages.find((x) => x.id === id);
      if (m) Object.assign(m, { state, failure });
    },
    async putOutbox(e: OutboxEntry) {
      outbox.set(e.messageId, e);
    },
    // A retry of a `queued` message asks whether it has its outbox entry (engine.ts `#inOutbox`).
    async listOutbox(contactId?: string) {
      return [...outbox.values()].filter((e) => contactId === undefined || e.contactId === contactId);
    },
  };
  return storage;
}

const user = createUserIdentity({ username: "alice", now: Date.now() });

describe("offline engine hand-over", () => {
  it("stores sends handed over in one tick in that order, with strictly increasing times", async () => {
    const storage = slowStorage();
    const engine = await createOfflineEngine(storage as unknown as LoftStorage, user);
    const texts = Array.from({ length: 50 }, (_, i) => `offline ${i}`);
    const ids = await Promise.all(texts.map((t) => engine.send(storage.contact.id, t)));
    expect(storage.messages.map((m) => m.text)).toEqual(texts);
    expect(storage.messages.map((m) => m.id)).toEqual(ids);
    const ats = storage.messages.map((m) => m.at);
    for (let i = 1; i < ats.length; i++) expect(ats[i]).toBeGreaterThan(ats[i - 1]!);
    expect([...storage.outbox.values()].map((e) => e.messageId)).toEqual(ids);
  });

  it("gives the id at the call, refuses bad text at once and blocked contacts with nothing stored", async () => {
    const storage = slowStorage();
    const engine = await createOfflineEngine(storage as unknown as LoftStorage, user);
    const handed = engine.handOver(storage.contact.id, "hello");
    expect(handed.message.state).toBe("queued");
    expect(storage.messages).toHaveLength(0);
    expect(await handed.stored).toBe(handed.message.id);
    expect(() => engine.handOver(storage.contact.id, "x".repeat(16_001))).toThrow(/limit/);
    storage.contact.trust = "rejected";
    const refused = engine.handOver(storage.contact.id, "blocked");
    await expect(refused.stored).rejects.toThrow(/blocked/);
    expect(storage.messages.map((m) => m.text)).toEqual(["hello"]);
  });

  it("retries a failed message under the same id, and nothing else", async () => {
    const storage = slowStorage();
    const engine = await createOfflineEngine(storage as unknown as LoftStorage, user);
    const id = await engine.send(storage.contact.id, "later");
    await engine.retry(id);
    expect(storage.messages[0]!.state).toBe("queued");
    storage.messages[0]!.state = "failed";
    storage.outbox.clear();
    await engine.retry(id);
    expect(storage.messages).toHaveLength(1);
    expect(storage.messages[0]!.state).toBe("queued");
    expect([...storage.outbox.keys()]).toEqual([id]);
  });
});

describe("offline engine is the engine with no transports", () => {
  it("connects to nothing, even with servers configured, and still takes contact changes", async () => {
    // Nothing listens on the discard port: a connection attempt would show up as an error event.
    const storage = new MemoryStorage("ws://127.0.0.1:9/signal", ["ws://127.0.0.1:9/relay"]);
    const bob = createUserIdentity({ username: "bob", now: Date.now() });
    const bobId = storage.addUser(bob);
    const engine = await createOfflineEngine(storage as unknown as LoftStorage, user);
    const events: EngineEvent[] = [];
    engine.subscribe((e) => events.push(e));
    await engine.start();
    // A started engine with servers says "connecting" at once; this one has none to connect to.
    expect(engine.serviceStatus()).toEqual({ signaling: "disabled", relay: "disabled" });
    engine.connect(bobId);
    const id = await engine.send(bobId, "waits here");
    expect(storage.messages.get(id)?.state).toBe("queued");
    expect(storage.outbox.has(id)).toBe(true);
    await engine.changeContact(bobId, { kind: "trust", trust: "rejected" });
    expect(storage.contacts.get(bobId)?.trust).toBe("rejected");
    await expect(engine.send(bobId, "blocked")).rejects.toThrow(/blocked/);
    await engine.stop();
    expect(engine.serviceStatus()).toEqual({ signaling: "disabled", relay: "disabled" });
    expect(events.filter((e) => e.type === "error" || e.type === "service")).toEqual([]);
    expect(events.filter((e) => e.type === "presence" && e.presence.status !== "offline")).toEqual([]);
    expect(events).toContainEqual({ type: "contact-changed", contactId: bobId });
  });
});
