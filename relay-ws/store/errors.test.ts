/**
 * Which commit failures the store treats as "the disk took no more" (refuse with FULL, keep what
 * is stored) and how lmdb-js's wrapped commit errors are unwrapped. The real failures are driven
 * in relay-ws/storage.test.ts (EFBIG/EIO under ulimit -f); MDB_MAP_FULL cannot be reached with
 * lmdb-js 3.x, which grows the map on demand, so its shape is checked here.
 */
import { describe, expect, it } from "vitest";
import { commitCause, isNoSpaceError } from "./errors.ts";

const errno = (code: string | number, message: string) => Object.assign(new Error(message), { code });

describe("relay store errors", () => {
  it("no-space errors: ENOSPC, EFBIG, EDQUOT, EIO (short write), MDB_MAP_FULL; nothing else", () => {
    expect(isNoSpaceError(errno("ENOSPC", "No space left on device"))).toBe(true);
    expect(isNoSpaceError(errno(27, "File too large: Attempting to write page"))).toBe(true);
    expect(isNoSpaceError(errno(5, "Input/output error"))).toBe(true);
    expect(isNoSpaceError(errno("EDQUOT", "Disk quota exceeded"))).toBe(true);
    expect(isNoSpaceError(errno(-30792, "MDB_MAP_FULL: Environment mapsize limit reached"))).toBe(true);
    expect(isNoSpaceError(errno("EACCES", "permission denied"))).toBe(false);
    expect(isNoSpaceError(new TypeError("x is undefined"))).toBe(false);
    expect(isNoSpaceError(undefined)).toBe(false);
    expect(isNoSpaceError("ENOSPC")).toBe(false);
  });

  it("unwraps lmdb-js's commitError, and falls back to the error itself", async () => {
    const cause = errno(5, "Input/output error");
    const pending = Promise.reject(cause);
    pending.catch(() => {});
    const wrapped = Object.assign(new Error("Commit failed (see commitError for details)"), {
      commitError: pending,
    });
    expect(await commitCause(wrapped)).toBe(cause);
    const plain = new Error("other");
    expect(await commitCause(plain)).toBe(plain);
  });
});
