/**
 * Home's unread counts and previews (activity.ts) against an in-memory stand-in for the four
 * storage reads and writes it uses, counting them: loaded once per contact, then kept by events
 * without reading history again. The browser test (test/e2e/unread-notifications.e2e.ts) runs the
 * same code against IndexedDB.
 */
import { describe, expect, it } from "vitest";
import type { ContactRecord, MessageState, StoredMessage } from "../engine/api.ts";
import { Activity, type ActivityStorage, UNREAD_CAP } from "./activity.ts";

const BOB = "b".repeat(64);
const CAROL = "c".repeat(64);

function contact(id: string, readAt?: number): ContactRecord {
  return {
    id,
    identity: new Uint8Array(),
    username: id === BOB ? "Bob" : "Carol",
    trust: "unknown",
    firstSeen: 0,
    lastSeen: 0,
    ...(readAt === undefined ? {} : { readAt }),
  };
}

let seq = 0;
function msg(contactId: string, direction: "in" | "out", at: number, text = `m${at}`): StoredMessage {
  const state: MessageState = direction === "in" ? "received" : "queued";
  return { id: `id${seq++}`, contactId, direction, text, at, state };
}

class MemoryStorage implements ActivityStorage {
  messages: StoredMessage[] = [];
  reads = 0;
  marks: [string, number][] = [];
  async lastMessage(id: string) {
    this.reads++;
    return this.messages.filter((m) => m.contactId === id).sort((a, b) => b.at - a.at)[0];
  }
  async countIncomingAfter(id: string, after: number, cap: number) {
    this.reads++;
    const n = this.messages.filter((m) => m.contactId === id && m.direction === "in" && m.at > after).length;
    return Math.min(n, cap);
  }
  async getMessage(id: string) {
    this.reads++;
    return this.messages.find((m) => m.id === id);
  }
  async markRead(id: string, at: number) {
    this.marks.push([id, at]);
  }
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe("activity: unread counts and previews", () => {
  it("knows whether anything from a contact is stored (heard), reading history only when it must", async () => {
    const s = new MemoryStorage();
    const DAVE = "d".repeat(64);
    // Bob: an old incoming message, read, behind a newer outgoing one; Carol: only outgoing.
    s.messages.push(msg(BOB, "in", 10), msg(BOB, "out", 20), msg(CAROL, "out", 30));
    const a = new Activity(s);
    await a.sync([contact(BOB, 15), contact(CAROL), contact(DAVE)]);
    expect(a.byContact[BOB]?.heard).toBe(true);
    expect(a.byContact[CAROL]?.heard).toBe(false);
    expect(a.byContact[DAVE]?.heard).toBe(false);
    // Dave has no message at all: two reads, no history scan.
    expect(s.reads).toBe(2 + 3 + 3);
    a.sent(msg(CAROL, "out", 40));
    expect(a.byContact[CAROL]?.heard).toBe(false);
    a.incoming(msg(CAROL, "in", 50), false);
    expect(a.byContact[CAROL]?.heard).toBe(true);
    a.sent(msg(CAROL, "out", 60));
    expect(a.byContact[CAROL]?.heard).toBe(true);
  });

  it("loads each contact once: incoming messages after the read marker, and the newest message", async () => {
    const s = new MemoryStorage();
    s.messages.push(msg(BOB, "in", 10), msg(BOB, "out", 20), msg(BOB, "in", 30, "latest"));
    const a = new Activity(s);
    await a.sync([contact(BOB, 15), contact(CAROL)]);
    expect(a.byContact[BOB]?.unread).toBe(1);
    expect(a.byContact[BOB]?.last?.text).toBe("latest");
    expect(a.byContact[CAROL]).toEqual({ unread: 0, heard: false });
    expect(a.total()).toBe(1);
    const reads = s.reads;
    await a.sync([contact(BOB, 15), contact(CAROL)]);
    expect(s.reads).toBe(reads); // already loaded: no reads
  });

  it("counts incoming messages from events without reading storage, capped", async () => {
    const s = new MemoryStorage();
    const a = new Activity(s);
    await a.sync([contact(BOB)]);
    const reads = s.reads;
    for (let i = 1; i <= 5; i++) a.incoming(msg(BOB, "in", 100 + i), false);
    expect(a.byContact[BOB]?.unread).toBe(5);
    expect(a.byContact[BOB]?.last?.at).toBe(105);
    expect(s.reads).toBe(reads);
    for (let i = 0; i < UNREAD_CAP + 10; i++) a.incoming(msg(BOB, "in", 200 + i), false);
    expect(a.byContact[BOB]?.unread).toBe(UNREAD_CAP);
  });

  it("doesn't count twice a message loaded from storage before its event arrived", async () => {
    const s = new MemoryStorage();
    const m = msg(BOB, "in", 50);
    s.messages.push(m);
    const a = new Activity(s);
    await a.sync([contact(BOB)]);
    a.incoming(m, false);
    expect(a.byContact[BOB]?.unread).toBe(1);
  });

  it("a message in the open, visible chat is read: count 0 and the marker moves to it", async () => {
    const s = new MemoryStorage();
    const a = new Activity(s);
    await a.sync([contact(BOB)]);
    a.incoming(msg(BOB, "in", 10), false);
    a.incoming(msg(BOB, "in", Date.now() + 60_000), true);
    expect(a.byContact[BOB]?.unread).toBe(0);
    await settle();
    expect(s.marks.at(-1)?.[1]).toBeGreaterThanOrEqual(Date.now() + 59_000);
  });

  it("writes a burst of read marks as few writes, ending on the newest", async () => {
    const s = new MemoryStorage();
    const a = new Activity(s);
    await a.sync([contact(BOB)]);
    const base = Date.now() + 1_000_000;
    for (let i = 0; i < 100; i++) a.read(BOB, base + i);
    for (let i = 0; i < 5; i++) await settle();
    expect(s.marks.length).toBeLessThanOrEqual(2);
    expect(s.marks.at(-1)).toEqual([BOB, base + 99]);
  });

  it("read marks held (a restore's import): none written meanwhile, the newest written once let go, none after a restore that went through", async () => {
    const s = new MemoryStorage();
    const a = new Activity(s);
    await a.sync([contact(BOB), contact(CAROL)]);
    const base = Date.now() + 1_000_000;
    // A mark being written as the import begins: its next pass waits too.
    a.read(BOB, base);
    const letGo = a.holdReads();
    a.read(BOB, base + 1);
    a.read(CAROL, base + 2);
    for (let i = 0; i < 5; i++) await settle();
    // Before, each was written at once: queued behind the import, it landed in the restored device.
    expect(s.marks).toEqual([[BOB, base]]);
    // The import failed: the newest marks are written.
    letGo();
    for (let i = 0; i < 5; i++) await settle();
    expect(s.marks.slice(1).sort()).toEqual([
      [BOB, base + 1],
      [CAROL, base + 2],
    ]);
    // Held again, and the import went through: the app starts over (`clear`), nothing is written.
    const written = s.marks.length;
    const letGoAgain = a.holdReads();
    a.read(BOB, base + 3);
    a.clear();
    letGoAgain();
    for (let i = 0; i < 5; i++) await settle();
    expect(s.marks.length).toBe(written);
    // Nor later: the restored device's next read of that chat writes its own mark, not the held
    // one of the device it replaced (kept, it was folded into that next write as the newest).
    a.read(BOB, base - 1);
    for (let i = 0; i < 5; i++) await settle();
    expect(s.marks.slice(written)).toEqual([[BOB, base - 1]]);
  });

  it("an outgoing message is read once by id on its first state event; later events only change its state", async () => {
    const s = new MemoryStorage();
    const a = new Activity(s);
    await a.sync([contact(BOB)]);
    const m = msg(BOB, "out", 70, "mine");
    s.messages.push(m);
    const reads = s.reads;
    await a.outgoing(BOB, m.id, "sending");
    expect(a.byContact[BOB]?.last?.text).toBe("mine");
    await a.outgoing(BOB, m.id, "sent");
    await a.outgoing(BOB, m.id, "delivered");
    expect(s.reads).toBe(reads + 1);
    expect(a.byContact[BOB]?.last?.state).toBe("delivered");
  });

  it("an older outgoing message never replaces a newer preview", async () => {
    const s = new MemoryStorage();
    const a = new Activity(s);
    await a.sync([contact(BOB)]);
    const old = msg(BOB, "out", 10, "old");
    s.messages.push(old);
    a.incoming(msg(BOB, "in", 20, "newer"), false);
    await a.outgoing(BOB, old.id, "failed");
    expect(a.byContact[BOB]?.last?.text).toBe("newer");
  });

  it("forgets deleted contacts and everything on clear()", async () => {
    const s = new MemoryStorage();
    const a = new Activity(s);
    await a.sync([contact(BOB), contact(CAROL)]);
    a.incoming(msg(CAROL, "in", 5), false);
    await a.sync([contact(BOB)]);
    expect(a.byContact[CAROL]).toBeUndefined();
    a.clear();
    expect(Object.keys(a.byContact)).toEqual([]);
  });
});
