/**
 * What this device keeps beside the `loft` database (lib/device-stores.ts), forgotten with the
 * identity: Delete identity deletes (docs/user-guide.md). Files with their names and image previews,
 * shared folders, received files being saved to disk, and files shared from the system and not yet sent.
 */
import { FILES_DB_NAME, FILES_DIR, SAVING_DIR, SHARE_CACHE, SHARES_DIR } from "../lib/device-stores.ts";
import { deleteDatabase } from "../storage/db.ts";

export async function forgetDeviceFiles(): Promise<void> {
  await Promise.all([
    deleteDatabase(FILES_DB_NAME),
    forgetOpfsDir(FILES_DIR),
    forgetOpfsDir(SHARES_DIR),
    forgetOpfsDir(SAVING_DIR),
    "caches" in globalThis && caches.delete(SHARE_CACHE),
  ]);
}

/** Remove a folder of the origin-private file system with all it holds (absent: nothing to do). */
async function forgetOpfsDir(name: string): Promise<void> {
  if (!navigator.storage?.getDirectory) return;
  await (await navigator.storage.getDirectory())
    .removeEntry(name, { recursive: true })
    .catch(() => undefined);
}
