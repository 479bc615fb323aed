/**
 * Generates the backup vectors (docs/protocol/backup.md §1, §3) from web/src/storage/backup.ts,
 * backup-local.ts and web/src/engine/local-notes.ts:
 *
 *   docs/vectors/backup-v3.json  the AAD of each version's header, `local` entries (a room's name,
 *                                a room's and a contact's draft) as the bundle carries them, and
 *                                which entry names travel in a backup.
 *
 * web/src/storage/backup-local.test.ts checks that backup.md prints what the file holds and that
 * this script regenerates the file byte for byte; test/interop/vectorcheck/backup.py recomputes
 * it from backup.md (and the records from chat.md §9 and rooms.md §7, localnotes.py).
 *
 *   npx tsx scripts/gen-backup-vectors.ts          # rewrite the file
 *   npx tsx scripts/gen-backup-vectors.ts --check  # exit 1 if the committed file differs
 */

import { fileURLToPath } from "node:url";
import { encode } from "@msgpack/msgpack";
import { fromHex, toHex } from "../core/bytes.ts";
import { decodeOwnRecord, encodeCanonical } from "../core/codec/codec.ts";
import { encodeDraft, encodeRoomName } from "../web/src/engine/local-notes.ts";
import { backupAad, V2_BACKUP_VERSION } from "../web/src/storage/backup.ts";
import { checkLocal, MAX_LOCAL_ENTRIES, travelsInBackup } from "../web/src/storage/backup-local.ts";
import type { KdfParams } from "../web/src/storage/vault.ts";
import { isScript, writeOrCheck } from "./vector-files.ts";

export const BACKUP_VECTOR_FILE = fileURLToPath(new URL("../docs/vectors/backup-v3.json", import.meta.url));

const ARGON: KdfParams = { kdf: "Argon2id", m: 32_768, t: 2, p: 1 };
const HEADERS: { version: number; kdf: KdfParams }[] = [
  { version: 3, kdf: ARGON },
  { version: V2_BACKUP_VERSION, kdf: ARGON },
  { version: 1, kdf: { kdf: "PBKDF2-SHA256", iterations: 600_000 } },
  { version: 3, kdf: { kdf: "Argon2id", m: 262_144, t: 8, p: 4 } },
];

const ROOM = "ab".repeat(16);
const CONTACT = "c0".repeat(32);
const ENTRIES: ({ label: string; n: string } & ({ name: string } | { text: string; at: number }))[] = [
  { label: "the docs' entry: room abab…ab named Book club", n: `room-name/${ROOM}`, name: "Book club" },
  { label: "the docs' draft, of that room", n: `draft/room:${ROOM}`, text: "hi", at: 1_700_000_000_000 },
  { label: "a draft to a contact", n: `draft/chat:${CONTACT}`, text: "see you 👋", at: 1_700_000_000_001 },
];

const NAMES = [
  "rooms",
  `room-log/${ROOM}`,
  `room-name/${ROOM}`,
  `draft/room:${ROOM}`,
  `draft/chat:${CONTACT}`,
  `room-name/${ROOM.toUpperCase()}`,
  `room-name/${ROOM}00`,
  `draft/chat:${ROOM}`,
  `room-dr/${ROOM}/${CONTACT}`,
  `room-rx/${ROOM}/${CONTACT}`,
  "room-pairs",
  "rooms/",
  "draft/",
];

const ROOM2 = "cd".repeat(16);
/** A `rooms` record (rooms.md §7) holding the rooms of these ids. */
const roomsRecord = (...ids: string[]) =>
  encodeCanonical(
    ids.map((id, k) => ({
      id: fromHex(id),
      k: new Uint8Array(32).fill(k + 1),
      h: new Uint8Array(32).fill(0x40 + k),
      joinedAt: AT,
      read: 0,
    })),
  );
const AT = 1_700_000_000_000;
const logRecord = encodeCanonical([{ at: AT, id: "m1", text: "hello", from: CONTACT, name: "Bob" }]);
const entry = (n: string, v: Uint8Array) => ({ n, v });
const ROOMS = entry("rooms", roomsRecord(ROOM));
const NAME = entry(`room-name/${ROOM}`, encodeRoomName("Book club"));
const DRAFT = entry(`draft/room:${ROOM}`, encodeDraft("hi", AT));

/** `local` sections (backup.md §3) and how a device reads them (`checkLocal`), with the bundle's contacts. */
const LOCALS: { label: string; local: unknown; contacts?: string[] }[] = [
  {
    label: "one of each kind, each with its room or contact",
    local: [
      ROOMS,
      entry(`room-log/${ROOM}`, logRecord),
      NAME,
      DRAFT,
      entry(`draft/chat:${CONTACT}`, encodeDraft("see you", AT)),
    ],
  },
  { label: "a room's entries before the rooms entry", local: [NAME, DRAFT, ROOMS] },
  { label: "an empty local", local: [] },
  {
    label: "rooms an empty list (kept), and an empty history of a room not in it",
    local: [entry("rooms", fromHex("90")), entry(`room-log/${ROOM}`, fromHex("90"))],
  },
  { label: "not an array (a map): damaged", local: { n: "rooms", v: roomsRecord(ROOM) } },
  { label: "nil: damaged", local: null },
  { label: "bytes: damaged", local: fromHex("90") },
  { label: `${MAX_LOCAL_ENTRIES + 1} entries: damaged`, local: new Array(MAX_LOCAL_ENTRIES + 1).fill(null) },
  {
    label: `${MAX_LOCAL_ENTRIES} entries, none an entry: all left out`,
    local: new Array(MAX_LOCAL_ENTRIES).fill(null),
  },
  { label: "an entry that is nil", local: [ROOMS, null] },
  { label: "an entry that is an array", local: [ROOMS, [NAME.n, NAME.v]] },
  { label: "an entry without v", local: [ROOMS, { n: NAME.n }] },
  { label: "an entry whose n is a number", local: [ROOMS, { n: 7, v: NAME.v }] },
  { label: "an entry whose v is a str", local: [ROOMS, { n: NAME.n, v: "Book club" }] },
  {
    label: "an entry with a key more (kept: other keys are not looked at)",
    local: [ROOMS, { n: NAME.n, v: NAME.v, x: 1 }],
  },
  {
    label: "a name a backup does not carry (room-pairs)",
    local: [ROOMS, entry("room-pairs", fromHex("90"))],
  },
  { label: "a room id in upper-case hex", local: [ROOMS, entry(`room-name/${ROOM.toUpperCase()}`, NAME.v)] },
  { label: "a room id of 33 hex digits", local: [ROOMS, entry(`room-name/${ROOM}0`, NAME.v)] },
  { label: "a room name that does not read (c1)", local: [ROOMS, entry(NAME.n, fromHex("c1"))] },
  {
    label: "a room name empty once cleaned",
    local: [ROOMS, entry(NAME.n, encodeCanonical({ n: " \t ", v: 1 }))],
  },
  {
    label: "a draft of version 2",
    local: [ROOMS, entry(DRAFT.n, encodeCanonical({ at: AT, t: "hi", v: 2 }))],
  },
  {
    label: "a draft with an empty text",
    local: [ROOMS, entry(DRAFT.n, encodeCanonical({ at: AT, t: "", v: 1 }))],
  },
  {
    label: "a history that does not read",
    local: [ROOMS, entry(`room-log/${ROOM}`, encodeCanonical([{ at: AT, id: "m1" }]))],
  },
  {
    label: "rooms that do not read: the room's entries go too",
    local: [entry("rooms", fromHex("91c0")), NAME, DRAFT],
  },
  {
    label: "rooms with a key more in a record: the room's entries go too",
    local: [
      entry(
        "rooms",
        encodeCanonical([
          { id: fromHex(ROOM), k: new Uint8Array(32), h: new Uint8Array(32), joinedAt: AT, read: 0, x: 1 },
        ]),
      ),
      NAME,
    ],
  },
  { label: "rooms an empty list, and a room's name", local: [entry("rooms", fromHex("90")), NAME] },
  { label: "no rooms entry, and a room's name", local: [NAME] },
  {
    label: "a room's name and draft for a room not in rooms",
    local: [ROOMS, entry(`room-name/${ROOM2}`, NAME.v), entry(`draft/room:${ROOM2}`, DRAFT.v)],
  },
  {
    label: "two rooms, an entry for each",
    local: [
      entry("rooms", roomsRecord(ROOM, ROOM2)),
      NAME,
      entry(`room-name/${ROOM2}`, encodeRoomName("Chess")),
    ],
  },
  { label: "a draft to a contact not in contacts", local: [entry(`draft/chat:${"d0".repeat(32)}`, DRAFT.v)] },
  {
    label: "a draft to a contact, with no contacts",
    local: [entry(`draft/chat:${CONTACT}`, DRAFT.v)],
    contacts: [],
  },
  { label: "a name twice: the first kept", local: [ROOMS, NAME, entry(NAME.n, encodeRoomName("Chess"))] },
  {
    label: "a name twice, the first not reading: the second kept",
    local: [ROOMS, entry(NAME.n, fromHex("c1")), entry(NAME.n, encodeRoomName("Chess"))],
  },
  {
    label: "rooms twice: the first kept",
    local: [ROOMS, entry("rooms", roomsRecord(ROOM2)), entry(`room-name/${ROOM2}`, NAME.v)],
  },
];

export function buildBackupVectors() {
  return {
    description:
      "Backups (docs/protocol/backup.md): AAD = 'loft-backup/v' ‖ version ‖ '/' ‖ kdf ‖ '/' ‖ params (§1); a `local` entry is the MessagePack map { n: name, v: bin(value) } with v the record as the device stores it (§3; room names rooms.md §7, drafts chat.md §9); `travels` says whether a name is one a backup carries.",
    aad: HEADERS.map(({ version, kdf }) => ({
      version,
      ...kdf,
      aad: new TextDecoder().decode(backupAad(version, kdf)),
    })),
    local: ENTRIES.map((e) => {
      const v = "name" in e ? encodeRoomName(e.name) : encodeDraft(e.text, e.at);
      const { label, n, ...fields } = e;
      return { label, n, ...fields, v: toHex(v), entry: toHex(encode({ n, v })) };
    }),
    names: NAMES.map((n) => ({ n, travels: travelsInBackup(n) })),
    locals: LOCALS.map(({ label, local, contacts = [CONTACT] }) => {
      const bytes = encode(local);
      // As a version 3 file is read (backup.ts): the bundle decoded by decodeOwnRecord, then checkLocal.
      const items = decodeOwnRecord(bytes);
      const read = checkLocal(items, { contacts: contacts.map((id) => ({ id })) });
      // Which entries it kept, by their place in the section (the same value objects it was given).
      const kept = read?.entries.map((e) => (items as { v?: unknown }[]).findIndex((x) => x?.v === e.v));
      return {
        label,
        local: toHex(bytes),
        contacts,
        ...(read === null ? { damaged: true } : { kept, dropped: read.dropped }),
      };
    }),
  };
}

export const backupVectorText = () => `${JSON.stringify(buildBackupVectors(), null, 2)}\n`;

if (isScript(import.meta.url)) writeOrCheck([[BACKUP_VECTOR_FILE, backupVectorText()]]);
