/**
 * Start-up failures of the relay store: a bad data dir, a master key that does not open the
 * keyring, a keyring missing beside records that need it. They are configuration errors (the
 * process prints the message and exits 2, host/config.ts `ConfigError`) with a stable code so
 * tests and operators' tooling can tell them apart. Never carries key bytes.
 */
import { ConfigError } from "../../host/config.ts";

export type StoreErrorCode =
  | "LOFT_ERR_RELAY_DATA_DIR"
  | "LOFT_ERR_RELAY_DATA_DIR_IN_USE"
  | "LOFT_ERR_RELAY_MASTER_KEY"
  | "LOFT_ERR_RELAY_KEYRING"
  | "LOFT_ERR_RELAY_STORE_FORMAT"
  | "LOFT_ERR_RELAY_REDIS";

export class StoreError extends ConfigError {
  override name = "StoreError";
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/**
 * Errors of a commit that mean "the disk took no more": no space, a file-size or disk quota limit,
 * LMDB's map full, or EIO — LMDB reports a short write (what a full disk gives it) as EIO
 * (mdb.c, mdb_page_flush). The store then refuses new writes and keeps what it holds.
 */
export function isNoSpaceError(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | undefined;
  const code = typeof err?.code === "string" || typeof err?.code === "number" ? String(err.code) : "";
  const message = typeof err?.message === "string" ? err.message : "";
  return (
    ["ENOSPC", "EFBIG", "EDQUOT", "EIO", "5", "28", "27", "122", "-30792"].includes(code) ||
    /MDB_MAP_FULL|ENOSPC|EFBIG|EDQUOT|EIO|No space left|File too large|quota exceeded|Input\/output error/i.test(
      message,
    )
  );
}

/**
 * lmdb-js rejects every write of a failed commit with "Commit failed" and puts the cause (the
 * errno or LMDB code) in a `commitError` promise that rejects just after: the real reason, or the
 * error itself if none comes within a second.
 */
export async function commitCause(e: unknown): Promise<unknown> {
  const pending = (e as { commitError?: unknown } | undefined)?.commitError;
  if (!(pending instanceof Promise)) return e;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<unknown>((resolve) => {
    timer = setTimeout(() => resolve(e), 1_000);
  });
  try {
    return await Promise.race([
      pending.then(
        () => e,
        (cause: unknown) => cause,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const LMDB_COMMIT_FAILED = "Commit failed (see commitError for details)";
let orphanGuardInstalled = false;

/**
 * lmdb-js 3.x leaves one internal promise per failed commit without a handler (besides the ones it
 * returns to us, which the store handles): under Node's default `--unhandled-rejections=throw` a
 * full disk would then crash the relay instead of refusing writes. This hook drops exactly that
 * rejection (lmdb's "Commit failed" error carrying its `commitError` promise) and rethrows every
 * other one, so any other unhandled rejection still ends the process as before.
 */
export function guardLmdbCommitRejections(): void {
  if (orphanGuardInstalled) return;
  orphanGuardInstalled = true;
  process.on("unhandledRejection", (reason) => {
    const e = reason as { message?: unknown; commitError?: unknown } | undefined;
    if (e?.message === LMDB_COMMIT_FAILED && e.commitError instanceof Promise) return;
    throw reason;
  });
}
