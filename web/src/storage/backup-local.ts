/**
 * What a backup carries beside identity, contacts, history and settings (docs/protocol/backup.md
 * §3): the engine secrets a person would miss on a new device — the rooms they are in, each room's
 * history, the names they gave rooms, and drafts. Each travels as it is stored (its name and its
 * clear value) and is checked by the decoder of its own record when a file is read.
 */
import { toHex } from "../../../core/bytes.ts";
import { decodeDraftRecord, decodeRoomName } from "../engine/local-notes.ts";
import { decodeLog, decodeRooms } from "../engine/rooms/store.ts";

/** One engine secret carried by a backup: its name and its value (clear). */
export interface BackupLocalEntry {
  n: string;
  v: Uint8Array;
}

/** At most this many `local` entries (backup.md §3): rooms' logs, names and drafts, bounded. */
export const MAX_LOCAL_ENTRIES = 20_000;
/** Largest `local` value (bytes): a room history of MAX_LOG entries fits. */
export const MAX_LOCAL_VALUE_BYTES = 32 * 1024 * 1024;

/** The engine secrets a backup carries (backup.md §3), each with the check its value must pass. */
const ID_HEX = "[0-9a-f]{32}";
/** An empty list (MessagePack 0x90): no rooms left, a room with nothing said yet. */
const emptyList = (v: Uint8Array) => v.length === 1 && v[0] === 0x90;
const LOCAL_KINDS: { name: RegExp; ok: (v: Uint8Array) => boolean }[] = [
  { name: /^rooms$/, ok: (v) => decodeRooms(v).length > 0 || emptyList(v) },
  { name: new RegExp(`^room-log/${ID_HEX}$`), ok: (v) => decodeLog(v).length > 0 || emptyList(v) },
  { name: new RegExp(`^room-name/${ID_HEX}$`), ok: (v) => decodeRoomName(v) !== undefined },
  { name: new RegExp(`^draft/room:${ID_HEX}$`), ok: (v) => decodeDraftRecord(v) !== undefined },
  { name: /^draft\/chat:[0-9a-f]{64}$/, ok: (v) => decodeDraftRecord(v) !== undefined },
];

/** Whether an engine secret of this name travels in a backup (backup.md §3). */
export function travelsInBackup(name: string): boolean {
  return LOCAL_KINDS.some((k) => k.name.test(name));
}

/**
 * The `local` section of a version 3 bundle, checked (backup.md §3): null when it is not a list of
 * at most MAX_LOCAL_ENTRIES `{ n, v }` (the file is damaged). Entries that are not ours — an
 * unknown name, a repeated one, a value that does not read, a room's entry without its room, a
 * chat's draft without its contact — are left out and counted: they cost only themselves.
 */
export function checkLocal(
  local: unknown,
  bundle: { contacts: readonly { id: string }[] },
): { entries: BackupLocalEntry[]; dropped: number } | null {
  if (!Array.isArray(local) || local.length > MAX_LOCAL_ENTRIES) return null;
  const seen = new Set<string>();
  const kept: BackupLocalEntry[] = [];
  let dropped = 0;
  for (const e of local as unknown[]) {
    const { n, v } = (typeof e === "object" && e !== null ? e : {}) as Record<string, unknown>;
    const fits =
      typeof n === "string" &&
      v instanceof Uint8Array &&
      v.length <= MAX_LOCAL_VALUE_BYTES &&
      !seen.has(n) &&
      LOCAL_KINDS.some((k) => k.name.test(n) && k.ok(v));
    if (!fits) {
      dropped++;
      continue;
    }
    seen.add(n);
    kept.push({ n, v });
  }
  const contactIds = new Set(bundle.contacts.map((c) => c.id));
  const entries = listedRoomsOnly(kept).filter((e) => {
    const chat = /^draft\/chat:(.+)$/.exec(e.n)?.[1];
    return chat === undefined || contactIds.has(chat);
  });
  return { entries, dropped: dropped + kept.length - entries.length };
}

/**
 * `entries` without a room's history, name or draft when `rooms` among them does not list the room:
 * on reading a file (`checkLocal`), and on writing one (storage.ts) — where such entries are what
 * is left of a room the person left whose clean-up has not finished yet (docs/protocol/rooms.md
 * §7): what they asked to be gone must not travel in a backup meanwhile.
 */
export function listedRoomsOnly(entries: readonly BackupLocalEntry[]): BackupLocalEntry[] {
  const rooms = entries.find((e) => e.n === "rooms");
  const roomIds = new Set(rooms ? decodeRooms(rooms.v).map((r) => toHex(r.id)) : []);
  return entries.filter((e) => {
    const room = /^(?:room-log\/|room-name\/|draft\/room:)([0-9a-f]{32})$/.exec(e.n)?.[1];
    return room === undefined || roomIds.has(room);
  });
}
