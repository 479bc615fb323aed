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
import { toHex } from "../core/bytes.ts";
import { encodeDraft, encodeRoomName } from "../web/src/engine/local-notes.ts";
import { backupAad, V2_BACKUP_VERSION } from "../web/src/storage/backup.ts";
import { travelsInBackup } from "../web/src/storage/backup-local.ts";
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
  };
}

export const backupVectorText = () => `${JSON.stringify(buildBackupVectors(), null, 2)}\n`;

if (isScript(import.meta.url)) writeOrCheck([[BACKUP_VECTOR_FILE, backupVectorText()]]);
