/**
 * Backups as app actions (docs/user-guide.md, "Backup"): make one, restore one here, restore one
 * in place of a forgotten passphrase, and what starting over would delete. A wrong file or
 * passphrase is a `BackupError` with its own words; a storage failure says what could not be
 * done and that nothing was changed (each restore is one IndexedDB transaction).
 */
import { createSignal } from "solid-js";
import { decodeRooms } from "../engine/rooms/store.ts";
import { encryptBackup } from "../storage/backup.ts";
import type { BackupBundle } from "../storage/storage.ts";
import { draftsWritten } from "./drafts.ts";
import type { AppModel } from "./model.ts";
import { attempt } from "./problems.ts";

/** The whole device (identity, contacts, history, settings) encrypted under `passphrase`. */
export function exportBackup(app: AppModel, passphrase: string): Promise<string> {
  return attempt(
    "make the backup",
    async () => {
      // Words typed in the last moments are written first: drafts travel (docs/protocol/backup.md §3).
      await draftsWritten();
      return encryptBackup(await app.storage.exportBundle(), passphrase);
    },
    false,
  );
}

/**
 * Replace this device's identity, contacts and history with a backup's (read and decrypted
 * first: a wrong file or passphrase changes nothing), then start over from storage.
 */
export async function restoreBackup(app: AppModel, read: () => Promise<BackupBundle>): Promise<void> {
  const bundle = await read();
  const result = restoreResultOf(bundle); // before the import marks unsent messages as failed
  // Before anything is replaced: the other tabs stop writing (app/other-tabs.ts, told first by
  // app/model.ts `replaceStored`), and this tab's engine stops before the import writes
  // (docs/protocol/backup.md §5); a failed import starts it again over what was kept.
  await app.replaceStored(() => attempt("restore the backup", () => app.storage.importBundle(bundle)));
  setLastRestore(result);
  await app.reload();
}

/** The passphrase is forgotten: replace everything here with a backup; no passphrase after. */
export async function restoreForgotten(app: AppModel, read: () => Promise<BackupBundle>): Promise<void> {
  const bundle = await read();
  const result = restoreResultOf(bundle);
  await attempt("restore the backup", () => app.restoreForgotten(bundle));
  setLastRestore(result);
}

/** What a restore brought back and what it did not, each item a sentence for people. */
export interface RestoreResult {
  back: string[];
  not: string[];
}

// The last restore's result, shown on Home until the person dismisses it (ui/RestoreResult.tsx):
// a notice would be replaced by the next one (a session restarting with a contact, say).
const [lastRestore, setLastRestore] = createSignal<RestoreResult>();

export { lastRestore };
export const dismissRestoreResult = (): void => {
  setLastRestore(undefined);
};

const count = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * What a restore brings back and what it does not, in people's words (docs/user-guide.md
 * "Backups"; docs/protocol/backup.md §4).
 */
export function restoreResultOf(bundle: BackupBundle): RestoreResult {
  const local = bundle.local;
  const rooms = local?.find((e) => e.n === "rooms");
  const roomCount = rooms ? decodeRooms(rooms.v).length : 0;
  const names = local?.filter((e) => e.n.startsWith("room-name/")).length ?? 0;
  const drafts = local?.filter((e) => e.n.startsWith("draft/")).length ?? 0;
  const unsent = bundle.messages.filter(
    (m) => m.direction === "out" && (m.state === "queued" || m.state === "sending"),
  ).length;
  const back = [
    `Your identity, ${bundle.self.username}`,
    count(bundle.contacts.length, "contact"),
    count(bundle.messages.length, "message"),
    ...(local ? [count(roomCount, "room"), count(names, "room name"), count(drafts, "unsent draft")] : []),
  ];
  const not = [
    ...(local
      ? []
      : [
          "Rooms, the names you gave them and drafts: this backup was made by an older version of Loft without them. Open a room's link again to rejoin it.",
        ]),
    ...(unsent > 0
      ? [
          `${count(unsent, "message")} not yet sent before the backup: ${unsent === 1 ? "it shows" : "they show"} as not sent, with Retry.`,
        ]
      : []),
    ...(bundle.localDropped
      ? [`${count(bundle.localDropped, "item")} of rooms or drafts that could not be read in the file.`]
      : []),
    "Encrypted sessions: they start again by themselves the next time you and your contacts are online.",
    // What a member wrote after the backup and the old device confirmed is not sent again; what
    // it had not confirmed is, live, to this device when both are in the room (rooms.md §6, §9).
    "Room messages your old device received after the backup was made: they stay with it. The ones it had not received reach this device when their writer is in the room with you.",
  ];
  return { back, not };
}

/** What is on this device (for the warning before starting over). */
export function deviceHoldings(
  app: AppModel,
): Promise<{ username?: string; contacts: number; messages: number }> {
  return attempt("count what is on this device", () => app.storage.holdings(), false);
}
