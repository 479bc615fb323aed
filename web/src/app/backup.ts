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
import { ActionFailed, attempt, problemText, storageProblem } from "./problems.ts";

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
 * first: a wrong file or passphrase changes nothing), then start over from storage. One restore
 * at a time in a tab, shown while it runs (app/model.ts `whileRestoring`).
 */
export function restoreBackup(app: AppModel, read: () => Promise<BackupBundle>): Promise<void> {
  // Before anything is replaced: the other tabs stop writing (app/other-tabs.ts, told first by
  // app/model.ts `replaceStored`), and this tab's engine stops before the import writes
  // (docs/protocol/backup.md §5); a failed import starts it again over what was kept.
  return restoreWith(app, read, (bundle) =>
    app.replaceStored(() => attempt("restore the backup", () => app.storage.importBundle(bundle))),
  );
}

/**
 * The passphrase is forgotten: replace everything on this device with a backup (decrypted with
 * the backup's own passphrase first, so a wrong file or passphrase changes nothing). The device
 * has no passphrase afterwards.
 */
export function restoreForgotten(app: AppModel, read: () => Promise<BackupBundle>): Promise<void> {
  return restoreWith(app, read, (bundle) =>
    attempt("restore the backup", () => app.replaceStored(() => app.storage.restoreReplacingAll(bundle))),
  );
}

/** One restore's steps around its `replace`: read, what it restored, replace, start over. */
function restoreWith(
  app: AppModel,
  read: () => Promise<BackupBundle>,
  replace: (bundle: BackupBundle) => Promise<void>,
): Promise<void> {
  return app.whileRestoring(async () => {
    const bundle = await read();
    const result = restoreResultOf(bundle); // before the import marks unsent messages as failed
    await replace(bundle);
    setLastRestore(result);
    await startOverRestored(app);
  });
}

/**
 * The app started over from the restored device (app/model.ts `reload`). The restore is done
 * whatever happens here: a failure says so and what to do, not "Could not restore the backup"
 * (a person would restore it again, or give up on a device that holds it already).
 */
async function startOverRestored(app: AppModel): Promise<void> {
  try {
    await app.reload();
  } catch (x) {
    throw new ActionFailed(
      `The backup was restored, but Loft could not start again with it: ${storageProblem(x)} Reload the page.`,
      x,
    );
  }
}

/**
 * A restore from Settings (`restoreBackup`), whose failure is kept here in words, not in the
 * screen: Settings left while it runs and opened again shows how it ended (ui/Settings.tsx; the
 * run itself shows through app/model.ts `restoring`). Resolves to whether it went through.
 */
export async function restoreFromSettings(
  app: AppModel,
  read: () => Promise<BackupBundle>,
): Promise<boolean> {
  setRestoreFailure(undefined);
  try {
    await restoreBackup(app, read);
    // A second one refused while this ran said so here: this one's end replaces it.
    setRestoreFailure(undefined);
    return true;
  } catch (x) {
    setRestoreFailure(problemText(x, "restore the backup"));
    return false;
  }
}

const [restoreFailure, setRestoreFailure] = createSignal<string>();

/**
 * Why the last restore from Settings did not go through, until another form's result replaces it
 * or the Settings screen that showed it is left (one that said it in the notice instead, the person
 * typing in another field, did not show it: kept for the next; ui/Settings.tsx).
 */
export { restoreFailure };
export const dismissRestoreFailure = (): void => {
  setRestoreFailure(undefined);
};

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
