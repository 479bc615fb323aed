/**
 * Where the app keeps data beside its main `loft` database (storage/db.ts), named once so that
 * Delete identity (app/device-files.ts) finds every one of them. sw/share-target.ts has its own copy
 * of `SHARE_CACHE` (the worker is a separate build).
 */
/** Sent and received files: transfer records, previews, sealed chunks (engine/files/idb-store.ts). */
export const FILES_DB_NAME = "loft-files";
/**
 * Sealed chunks of sent and received files, one file per transfer, where the browser has sync
 * access handles (engine/files/opfs-store.ts; the records stay in `FILES_DB_NAME`).
 */
export const FILES_DIR = "loft-file-chunks";
/** Shared folders in the origin-private file system (proxy/opfs-shares.ts). */
export const SHARES_DIR = "loft-shares";
/** Received files being saved: written here streamed, downloaded from here, then deleted (ui/save-file.ts). */
export const SAVING_DIR = "loft-saving";
/** Files shared to Loft from the system, waiting for a contact to be picked (app/share.ts). */
export const SHARE_CACHE = "loft-share";
