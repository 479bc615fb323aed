/**
 * What this device keeps beside the `loft` database (lib/device-stores.ts), forgotten with the
 * identity: Delete identity deletes (docs/user-guide.md). Files with their names and image previews,
 * shared folders, received files being saved to disk, and files shared from the system and not yet sent.
 */

import { OPFS_IDLE_CLOSE_MS } from "../engine/files/opfs-protocol.ts";
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

/**
 * Remove a folder of the origin-private file system with all it holds (absent: nothing to do).
 * A file in it held open by a sync access handle cannot be removed (NoModificationAllowedError):
 * the file store's worker lets go of a file once unused for `OPFS_IDLE_CLOSE_MS` — one a chunk
 * was stored in after the engine's release, say (docs/protocol/files.md §6) — so the removal is
 * tried again for up to four times that (a loaded machine runs the worker's timer late), rather
 * than the identity's files staying behind unsaid.
 */
async function forgetOpfsDir(name: string): Promise<void> {
  if (!navigator.storage?.getDirectory) return;
  const root = await navigator.storage.getDirectory();
  const until = Date.now() + 4 * OPFS_IDLE_CLOSE_MS;
  for (;;) {
    const failed = await root.removeEntry(name, { recursive: true }).then(
      () => undefined,
      (e: Error) => e.name,
    );
    if (failed === undefined || failed === "NotFoundError") return;
    if (failed !== "NoModificationAllowedError" || Date.now() >= until) {
      console.warn(`Delete identity: ${name} could not be removed (${failed})`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
