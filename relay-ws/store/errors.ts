/**
 * Start-up failures of the relay store: a bad data dir, a master key that does not open the
 * keyring, a keyring missing beside records that need it. They are configuration errors (the
 * process prints the message and exits 2, server/config.ts `ConfigError`) with a stable code so
 * tests and operators' tooling can tell them apart. Never carries key bytes.
 */
import { ConfigError } from "../../server/config.ts";

export type StoreErrorCode =
  | "LOFT_ERR_RELAY_DATA_DIR"
  | "LOFT_ERR_RELAY_MASTER_KEY"
  | "LOFT_ERR_RELAY_KEYRING";

export class StoreError extends ConfigError {
  override name = "StoreError";
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** Errors of a commit that mean "no room": the disk, a file-size limit, a quota or LMDB's map. */
export function isNoSpaceError(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | undefined;
  const code = typeof err?.code === "string" || typeof err?.code === "number" ? String(err.code) : "";
  const message = typeof err?.message === "string" ? err.message : "";
  return (
    ["ENOSPC", "EFBIG", "EDQUOT", "-30792"].includes(code) ||
    /MDB_MAP_FULL|ENOSPC|EFBIG|EDQUOT|No space left|File too large|quota exceeded/i.test(message)
  );
}
