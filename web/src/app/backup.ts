/**
 * Backups as app actions (docs/user-guide.md, "Backup"): make one, restore one here, restore one
 * in place of a forgotten passphrase, and what starting over would delete. A wrong file or
 * passphrase is a `BackupError` with its own words; a storage failure says what could not be
 * done and that nothing was changed (each restore is one IndexedDB transaction).
 */
import { encryptBackup } from "../storage/backup.ts";
import type { BackupBundle } from "../storage/storage.ts";
import type { AppModel } from "./model.ts";
import { tellOtherTabs } from "./other-tabs.ts";
import { attempt } from "./problems.ts";

/** The whole device (identity, contacts, history, settings) encrypted under `passphrase`. */
export function exportBackup(app: AppModel, passphrase: string): Promise<string> {
  return attempt(
    "make the backup",
    async () => encryptBackup(await app.storage.exportBundle(), passphrase),
    false,
  );
}

/**
 * Replace this device's identity, contacts and history with a backup's (read and decrypted
 * first: a wrong file or passphrase changes nothing), then start over from storage.
 */
export async function restoreBackup(app: AppModel, read: () => Promise<BackupBundle>): Promise<void> {
  const bundle = await read();
  // Before anything is replaced: the other tabs stop writing (app/other-tabs.ts).
  tellOtherTabs("backup-restoring");
  await attempt("restore the backup", () => app.storage.importBundle(bundle));
  await app.reload();
}

/** The passphrase is forgotten: replace everything here with a backup; no passphrase after. */
export async function restoreForgotten(app: AppModel, read: () => Promise<BackupBundle>): Promise<void> {
  const bundle = await read();
  tellOtherTabs("backup-restoring");
  await attempt("restore the backup", () => app.restoreForgotten(bundle));
}

/** What is on this device (for the warning before starting over). */
export function deviceHoldings(
  app: AppModel,
): Promise<{ username?: string; contacts: number; messages: number }> {
  return attempt("count what is on this device", () => app.storage.holdings(), false);
}
