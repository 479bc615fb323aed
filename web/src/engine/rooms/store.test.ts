/**
 * Rooms at rest (docs/protocol/rooms.md §7): the records and history read back as written,
 * including the older secrets `ok` (§8) and the relay-stored marks `rl` (§9); anything malformed
 * or oversized reads as nothing (never a throw, never a partial record); fuzzed.
 */
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { encodeCanonical } from "../../../../core/codec/codec.ts";
import { mutate, mutationArb } from "../../../../test/fuzz/mutations.ts";
import { FUZZ_RUNS } from "../../../../test/support/fuzz.ts";
import {
  decodeLeft,
  decodeLog,
  decodeRooms,
  type LogEntry,
  MAX_LEFT,
  type RoomRecord,
  RoomStore,
} from "./store.ts";

class Secrets {
  readonly map = new Map<string, Uint8Array>();
  async loadSecret(name: string) {
    return this.map.get(name)?.slice();
  }
  async saveSecret(name: string, value: Uint8Array) {
    this.map.set(name, value.slice());
  }
  async deleteSecret(name: string) {
    this.map.delete(name);
  }
}

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const record = (ok: NonNullable<RoomRecord["ok"]>): RoomRecord => ({
  id: bytes(16, 1),
  k: bytes(32, 2),
  h: bytes(32, 3),
  joinedAt: 5,
  read: 0,
  e: 3,
  pk: bytes(32, 4),
  ok,
});

describe("rooms store", () => {
  it("keeps the older secrets and the relay-stored marks", async () => {
    const s = new Secrets();
    const store = new RoomStore(s);
    const older = [bytes(32, 5), bytes(32, 6)];
    await store.saveRooms([record(older)]);
    expect((await store.rooms())[0]?.ok).toEqual(older);
    const entry: LogEntry = { id: "a".repeat(22), at: 1, text: "hi", to: ["b"], got: [], rl: ["b"] };
    await store.saveLog("00", () => [entry]);
    expect(await store.log("00")).toEqual([entry]);
  });

  it("keeps the room's local name (cleaned); leaving forgets it with the history and the draft", async () => {
    const s = new Secrets();
    const store = new RoomStore(s);
    expect(await store.name("0a")).toBeUndefined();
    await store.saveName("0a", "  Book\n club ");
    expect(await store.name("0a")).toBe("Book club");
    await store.saveName("0a", "");
    expect(await store.name("0a")).toBeUndefined();
    await store.saveName("0a", "Family");
    s.map.set("draft/room:0a", new Uint8Array([1]));
    await store.saveLog("0a", () => []);
    await store.forget("0a");
    expect([...s.map.keys()]).toEqual([]);
  });

  it("leaving waits for a history write still running: the left room's history never lands after its delete", async () => {
    // The history write is held at the storage while the room is forgotten (a message taken just
    // before the leave), then lands: the delete must come after it, not beside it.
    class Held extends Secrets {
      readonly held: (() => void)[] = [];
      override async saveSecret(name: string, value: Uint8Array) {
        if (name.startsWith("room-log/")) await new Promise<void>((r) => this.held.push(r));
        return super.saveSecret(name, value);
      }
    }
    const s = new Held();
    const store = new RoomStore(s);
    await store.saveName("0a", "Family");
    const written = store.saveLog("0a", () => [{ id: "a".repeat(22), from: "b", at: 1, text: "late" }]);
    await vi.waitFor(() => expect(s.held).toHaveLength(1));
    const forgotten = store.forget("0a");
    s.held.shift()?.();
    await Promise.all([written, forgotten]);
    expect([...s.map.keys()]).toEqual([]);
    // A write asked after the leave's delete comes after it (nothing reorders on the chain).
    const after = store.saveLog("0a", () => []);
    await vi.waitFor(() => expect(s.held).toHaveLength(1));
    s.held.shift()?.();
    await after;
    expect([...s.map.keys()]).toEqual(["room-log/0a"]);
  });

  it("refuses more than 7 older secrets, or one of the wrong size: nothing read, nothing thrown", async () => {
    const s = new Secrets();
    const store = new RoomStore(s);
    s.map.set("rooms", encodeCanonical([record(Array.from({ length: 8 }, (_, i) => bytes(32, i)))]));
    expect(await store.rooms()).toEqual([]);
    s.map.set("rooms", encodeCanonical([record([bytes(31, 1)])]));
    expect(await store.rooms()).toEqual([]);
    s.map.set("room-log/00", encodeCanonical([{ id: "x", at: 1, text: "t", rl: [7] }]));
    expect(await store.log("00")).toEqual([]);
  });

  it("fuzz: random bytes and mutated records never throw; what reads back is a list", () => {
    const valid = [
      encodeCanonical([record([bytes(32, 5), bytes(32, 6)])]),
      encodeCanonical([{ id: "a".repeat(22), at: 1, text: "hi", to: ["b"], got: [], rl: ["b"] }]),
      encodeCanonical(["ab".repeat(16), "cd".repeat(16)]),
    ];
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 512 }),
      fc.tuple(fc.constantFrom(...valid), mutationArb).map(([b, m]) => mutate(b, m, valid)),
    );
    fc.assert(
      fc.property(input, (b) => {
        expect(Array.isArray(decodeRooms(b))).toBe(true);
        expect(Array.isArray(decodeLog(b))).toBe(true);
        expect(Array.isArray(decodeLeft(b))).toBe(true);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("rooms-left: read back as written, the newest MAX_LEFT kept; a malformed list, an id of the wrong form or one too many reads as none", async () => {
    const store = new RoomStore(new Secrets());
    expect(await store.left()).toEqual([]);
    const ids = Array.from({ length: MAX_LEFT + 3 }, (_, i) => i.toString(16).padStart(32, "0"));
    await store.saveLeft(ids);
    expect(await store.left()).toEqual(ids.slice(-MAX_LEFT));
    expect(decodeLeft(encodeCanonical(["ab".repeat(16)]))).toEqual(["ab".repeat(16)]);
    expect(decodeLeft(encodeCanonical(["AB".repeat(16)]))).toEqual([]);
    expect(decodeLeft(encodeCanonical(["ab".repeat(15)]))).toEqual([]);
    expect(decodeLeft(encodeCanonical(ids))).toEqual([]);
    expect(decodeLeft(encodeCanonical({ a: 1 }))).toEqual([]);
  });
});
