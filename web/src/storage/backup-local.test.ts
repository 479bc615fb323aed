/**
 * What a backup carries beside the history (docs/protocol/backup.md §3): the `local` section's
 * check (`checkLocal`) on valid, malformed, oversized, truncated and repeated entries, fuzzed; a
 * version 2 file (without it) still restores (version 3 round-trips in vault.test.ts); the words a
 * restore shows (`restoreSummary`).
 */

import { readFileSync } from "node:fs";
import { encode } from "@msgpack/msgpack";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeOwnRecord, encodeCanonical } from "../../../core/codec/codec.ts";
import {
  BACKUP_VECTOR_FILE,
  backupVectorText,
  type buildBackupVectors,
} from "../../../scripts/gen-backup-vectors.ts";
import { mutate, mutationArb } from "../../../test/fuzz/mutations.ts";
import { FUZZ_RUNS } from "../../../test/support/fuzz.ts";
import { restoreResultOf } from "../app/backup.ts";
import { encodeDraft, encodeRoomName } from "../engine/local-notes.ts";
import { decryptBackup, sealBackupFile, V2_BACKUP_VERSION } from "./backup.ts";
import {
  type BackupLocalEntry,
  checkLocal,
  listedRoomsOnly,
  MAX_LOCAL_ENTRIES,
  MAX_LOCAL_VALUE_BYTES,
  travelsInBackup,
} from "./backup-local.ts";
import type { BackupBundle } from "./storage.ts";
import { KDF_BOUNDS } from "./vault.ts";

const ROOM = "ab".repeat(16);
const OTHER_ROOM = "cd".repeat(16);
const CONTACT = "c".repeat(64);
const roomRecord = (idHex: string) => ({
  id: Uint8Array.from(idHex.match(/../g)!, (h) => Number.parseInt(h, 16)),
  k: new Uint8Array(32).fill(1),
  h: new Uint8Array(32).fill(2),
  joinedAt: 1_700_000_000_000,
  read: 1,
});
const local = (): BackupLocalEntry[] => [
  { n: "rooms", v: encodeCanonical([roomRecord(ROOM)]) },
  { n: `room-log/${ROOM}`, v: encodeCanonical([{ id: "e1", at: 5, text: "see you at eight" }]) },
  { n: `room-name/${ROOM}`, v: encodeRoomName("Book club") },
  { n: `draft/room:${ROOM}`, v: encodeDraft("half a thought", 7) },
  { n: `draft/chat:${CONTACT}`, v: encodeDraft("dear Bob", 8) },
];
const contacts = [{ id: CONTACT }];

const bundle = (extra: Partial<BackupBundle> = {}): BackupBundle => ({
  self: {
    identity: new Uint8Array([1, 2, 3]),
    username: "Alice",
    privateIdentityKey: new Uint8Array(32).fill(5),
    privateNoiseKey: new Uint8Array(32).fill(6),
    createdAt: 1_700_000_000_000,
  },
  contacts: [],
  messages: [
    { id: "m1", contactId: CONTACT, direction: "out", text: "hi", at: 1, state: "delivered" },
    { id: "m2", contactId: CONTACT, direction: "out", text: "later", at: 2, state: "queued" },
  ],
  settings: { signalingUrl: "wss://loft.example/signal" },
  ...extra,
});

describe("backup local section (checkLocal)", () => {
  it("keeps rooms, logs, names and drafts; only those names travel", () => {
    expect(checkLocal(local(), { contacts })).toEqual({ entries: local(), dropped: 0 });
    for (const n of ["sessions", "relay/live-undeleted", "room-dr/x/y", "room-pairs", `room-rx/${ROOM}/a`])
      expect(travelsInBackup(n)).toBe(false);
    // An empty room list and an empty log are what leaving every room and a quiet room store.
    const empty = [
      { n: "rooms", v: encodeCanonical([]) },
      { n: `room-log/${ROOM}`, v: encodeCanonical([]) },
    ];
    expect(checkLocal(empty, { contacts: [] })).toEqual({ entries: [empty[0]], dropped: 1 });
  });

  it("a section that is not a list, or too long, is a damaged file; bad entries are left out and counted", () => {
    for (const bad of [undefined, null, {}, "x", 7, new Uint8Array(3)])
      expect(checkLocal(bad, { contacts })).toBeNull();
    expect(checkLocal(new Array(MAX_LOCAL_ENTRIES + 1).fill(local()[0]), { contacts })).toBeNull();
    const good = local();
    const name = good[2]!;
    const entries = [
      ...good,
      name, // repeated
      { n: "sessions", v: new Uint8Array(4) }, // not carried
      { n: `room-name/${ROOM.toUpperCase()}`, v: name.v }, // not a name of ours
      { n: `room-name/${OTHER_ROOM}`, v: name.v }, // a room the backup does not hold
      { n: `draft/chat:${"d".repeat(64)}`, v: good[4]!.v }, // a contact the backup does not hold
      { n: `room-log/${ROOM}x`, v: good[1]!.v },
      { n: `draft/room:${ROOM}`, v: good[3]!.v.subarray(0, 5) }, // truncated (and repeated)
      { n: "rooms", v: "text" },
      { n: 5, v: name.v },
      null,
      "rooms",
    ];
    expect(checkLocal(entries, { contacts })).toEqual({ entries: good, dropped: 11 });
    // Truncated or oversized values read as nothing.
    const cut = good.map((e) => ({ n: e.n, v: e.v.subarray(0, e.v.length - 1) }));
    expect(checkLocal(cut, { contacts })).toEqual({ entries: [], dropped: 5 });
    const long = { n: `draft/chat:${CONTACT}`, v: encode({ v: 1, t: "x".repeat(64_001), at: 1 }) };
    expect(checkLocal([long], { contacts })).toEqual({ entries: [], dropped: 1 });
    // A history that would read (rooms/store.ts allows 64 MiB) but is over the section's bound.
    const huge = {
      n: `room-log/${ROOM}`,
      v: encodeCanonical([{ id: "e", at: 1, text: "x".repeat(MAX_LOCAL_VALUE_BYTES) }]),
    };
    expect(checkLocal([local()[0], huge], { contacts })).toEqual({ entries: [local()[0]], dropped: 1 });
  });

  it("fuzz: never throws; what it keeps is a carried name whose value reads", () => {
    const valid = local().map((e) => e.v);
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            n: fc.oneof(fc.constantFrom(...local().map((e) => e.n)), fc.string({ maxLength: 80 })),
            v: fc.oneof(
              fc.uint8Array({ maxLength: 200 }),
              fc.tuple(fc.nat(valid.length - 1), mutationArb).map(([i, m]) => mutate(valid[i]!, m, valid)),
            ),
          }),
          { maxLength: 8 },
        ),
        (entries) => {
          const r = checkLocal(entries, { contacts });
          expect(r).not.toBeNull();
          expect(r!.entries.length + r!.dropped).toBe(entries.length);
          for (const e of r!.entries) expect(travelsInBackup(e.n)).toBe(true);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("a backup written while a left room's clean-up is unfinished (listedRoomsOnly)", () => {
  it("carries nothing of a room `rooms` does not list: its history, name and draft stay out", () => {
    // What is left of OTHER_ROOM after a leave whose clean-up failed (docs/protocol/rooms.md §7):
    // `rooms` no longer lists it, its other records are still stored.
    const leftovers: BackupLocalEntry[] = [
      { n: `room-log/${OTHER_ROOM}`, v: encodeCanonical([{ id: "e9", at: 6, text: "asked to be gone" }]) },
      { n: `room-name/${OTHER_ROOM}`, v: encodeRoomName("Left") },
      { n: `draft/room:${OTHER_ROOM}`, v: encodeDraft("never sent", 9) },
    ];
    expect(listedRoomsOnly([...local(), ...leftovers])).toEqual(local());
    // With no room listed at all (the last one left), every room's record stays out.
    const noRooms = [{ n: "rooms", v: encodeCanonical([]) }, ...leftovers];
    expect(listedRoomsOnly(noRooms).map((e) => e.n)).toEqual(["rooms"]);
    expect(listedRoomsOnly(leftovers)).toEqual([]);
  });
});

describe("version 2 files (before the local section) still restore", () => {
  it("a version 2 file restores, without rooms or drafts, and says so", async () => {
    const v2 = (b: BackupBundle) =>
      sealBackupFile(V2_BACKUP_VERSION, encode(b, { ignoreUndefined: true }), "old backup pass");
    const back = await decryptBackup(await v2(bundle()), "old backup pass");
    expect(back.self.username).toBe("Alice");
    expect(back.local).toBeUndefined();
    expect(restoreResultOf(back).back).toEqual(["Your identity, Alice", "0 contacts", "2 messages"]);
    expect(restoreResultOf(back).not[0]).toBe(
      "Rooms, the names you gave them and drafts: this backup was made by an older version of Loft without them. Open a room's link again to rejoin it.",
    );
  });
});

describe("the restore result, in words", () => {
  const always = [
    "Encrypted sessions: they start again by themselves the next time you and your contacts are online.",
    "Room messages your old device received after the backup was made: they stay with it. The ones it had not received reach this device when their writer is in the room with you.",
  ];
  it("names what came back and what did not", () => {
    expect(restoreResultOf(bundle({ contacts: [{ id: CONTACT } as never], local: local() }))).toEqual({
      back: ["Your identity, Alice", "1 contact", "2 messages", "1 room", "1 room name", "2 unsent drafts"],
      not: ["1 message not yet sent before the backup: it shows as not sent, with Retry.", ...always],
    });
    expect(restoreResultOf(bundle({ messages: [], local: [], localDropped: 2 }))).toEqual({
      back: [
        "Your identity, Alice",
        "0 contacts",
        "0 messages",
        "0 rooms",
        "0 room names",
        "0 unsent drafts",
      ],
      not: ["2 items of rooms or drafts that could not be read in the file.", ...always],
    });
  });
});

/** docs/vectors/backup-v3.json (scripts/gen-backup-vectors.ts; recomputed by test/interop/vectorcheck). */
describe("docs/protocol/backup.md", () => {
  const file = JSON.parse(readFileSync(BACKUP_VECTOR_FILE, "utf8")) as ReturnType<typeof buildBackupVectors>;

  it("prints the file's AADs, its first entry and its draft", () => {
    const doc = readFileSync(new URL("../../../docs/protocol/backup.md", import.meta.url), "utf8");
    for (const a of file.aad.slice(0, 3)) expect(doc).toContain(`\`${a.aad}\``);
    const squeezed = doc.replace(/\s+/g, "");
    const [entry, draft] = file.local;
    expect(entry!.n).toBe(`room-name/${ROOM}`);
    expect(squeezed).toContain(entry!.entry);
    expect(draft!.n).toBe(`draft/room:${ROOM}`);
    expect(squeezed).toContain(draft!.v);
  });

  it("the file is what the generator produces", () => {
    expect(backupVectorText()).toBe(readFileSync(BACKUP_VECTOR_FILE, "utf8"));
  });

  it("a real version 3 file holding a vector's `local` restores as the file says: damaged, or the entries kept and the count left out", async () => {
    // A few of the cases (each file costs two Argon2id derivations, so at the cheapest setting a
    // reader accepts, which the header names); checkLocal itself made them all.
    const cheapest = {
      kdf: "Argon2id",
      m: KDF_BOUNDS.argon2.minM,
      t: KDF_BOUNDS.argon2.minT,
      p: KDF_BOUNDS.argon2.minP,
    } as const;
    const picked = [
      "one of each kind, each with its room or contact",
      "not an array (a map): damaged",
      "a name twice, the first not reading: the second kept",
    ];
    for (const label of picked) {
      const x = file.locals.find((l) => l.label === label)!;
      const carried = decodeOwnRecord(Uint8Array.from(Buffer.from(x.local, "hex")));
      const plain = encode(
        { ...bundle(), contacts: x.contacts.map((id) => ({ id })), local: carried },
        { ignoreUndefined: true },
      );
      const text = await sealBackupFile(3, plain, "vector pass", cheapest);
      expect(JSON.parse(text)).toMatchObject({ version: 3, m: cheapest.m, t: cheapest.t, p: cheapest.p });
      const read = decryptBackup(text, "vector pass");
      if ("damaged" in x) {
        await expect(read, label).rejects.toThrow("This backup file is damaged.");
        continue;
      }
      const back = await read;
      const items = carried as { n: string; v: Uint8Array }[];
      expect([label, back.local]).toEqual([label, x.kept!.map((k) => ({ n: items[k]!.n, v: items[k]!.v }))]);
      expect([label, back.localDropped ?? 0]).toEqual([label, x.dropped]);
    }
  });
});
