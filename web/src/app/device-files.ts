/**
 * What this device keeps beside the `loft` database (lib/device-stores.ts), forgotten with the
 * identity: Delete identity deletes (docs/user-guide.md). Files with their names and image previews,
 * shared folders, and files shared from the system and not yet sent.
 */
import { FILES_DB_NAME, SAVING_DIR, SHARE_CACHE, SHARES_DIR } from "../lib/device-stores.ts";
import { deleteDatabase } from "../storage/db.ts";

export async function forgetDeviceFiles(): Promise<void> {
  await Promise.all([
    deleteDatabase(FILES_DB_NAME),
    forgetShares(),
    forgetSaving(),
    "caches" in globalThis && caches.delete(SHARE_CACHE),
  ]);
}

async function forgetSaving(): Promise<void> {
  if (!navigator.storage?.getDirectory) return;
  await (await navigator.storage.getDirectory())
    .removeEntry(SAVING_DIR, { recursive: true })
    .catch(() => undefined);
}

async function forgetShares(): Promise<void> {
  if (!navigator.storage?.getDirectory) return;
  await (await navigator.storage.getDirectory())
    .removeEntry(SHARES_DIR, { recursive: true })
    .catch(() => undefined);
}
