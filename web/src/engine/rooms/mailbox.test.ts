/**
 * Room mailboxes at rest (docs/protocol/rooms.md §9): forgetting a pair (a member left or was
 * removed) deletes its records for good — work queued on the pair behind the forget stores none
 * of them again. The forget's deletes are held at the storage so that work queues behind it.
 */
import { describe, expect, it, vi } from "vitest";
import { RoomMailboxes } from "./mailbox.ts";

class HeldDeletes {
  readonly map = new Map<string, Uint8Array>();
  readonly held: (() => void)[] = [];
  hold = false;
  /** Reads of each secret, by name. */
  readonly loads = new Map<string, number>();
  async loadSecret(name: string) {
    this.loads.set(name, (this.loads.get(name) ?? 0) + 1);
    return this.map.get(name)?.slice();
  }
  async saveSecret(name: string, value: Uint8Array) {
    this.map.set(name, value.slice());
  }
  async deleteSecret(name: string) {
    if (this.hold) await new Promise<void>((r) => this.held.push(r));
    this.map.delete(name);
  }
}

const ROOM = "0a".repeat(16);
const MEMBER = "0b".repeat(32);
const queue = { u: "wss://relay.example", s: new Uint8Array(24).fill(1), k: new Uint8Array(32).fill(2) };

describe("room mailboxes", () => {
  it("a member's queue announced behind the forget of its pair is not stored again for a member gone", async () => {
    const s = new HeldDeletes();
    const mail = new RoomMailboxes({
      storage: s,
      selfKey: new Uint8Array(32),
      log: () => {},
      onFrame: () => {},
    });
    await mail.announced(ROOM, MEMBER, queue);
    expect(s.map.has(`room-tx/${ROOM}/${MEMBER}`)).toBe(true);
    s.hold = true;
    const forgotten = mail.forgetPair(ROOM, MEMBER);
    await vi.waitFor(() => expect(s.held.length).toBeGreaterThan(0));
    // Asked while the forget runs (its `room.mbox` read just before its bye was handled).
    const late = mail.announced(ROOM, MEMBER, queue);
    s.hold = false;
    for (const r of s.held.splice(0)) r();
    await Promise.all([forgotten, late]);
    expect([...s.map.keys()].filter((k) => k.includes(MEMBER))).toEqual([]);
    // A pair made again later (the member back in the room) stores its records as before.
    await mail.announced(ROOM, MEMBER, queue);
    expect(s.map.has(`room-tx/${ROOM}/${MEMBER}`)).toBe(true);
  });

  it("forgetting members never paired with reads the pair list once, and stores nothing", async () => {
    const s = new HeldDeletes();
    const mail = new RoomMailboxes({
      storage: s,
      selfKey: new Uint8Array(32),
      log: () => {},
      onFrame: () => {},
    });
    await mail.announced(ROOM, MEMBER, queue);
    const saved = new Map(s.map);
    // A state removing two members of another room, none of them ever paired with here.
    await mail.forgetPairs("0c".repeat(16), ["0d".repeat(32), "0e".repeat(32)]);
    expect(s.loads.get("room-pairs")).toBe(1); // before: read again to change nothing
    expect(s.map).toEqual(saved);
    // One that matched still changes the list as it is then (and deletes the pair's records).
    await mail.forgetPair(ROOM, MEMBER);
    expect(s.loads.get("room-pairs")).toBe(3);
    expect([...s.map.keys()].filter((k) => k.includes(MEMBER))).toEqual([]);
  });
});
