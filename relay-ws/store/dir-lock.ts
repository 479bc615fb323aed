/**
 * One relay process per data dir (docs/operations-relay.md §Storage, "One relay process per data
 * dir"). The LMDB store keeps each queue's next seq, its bytes, the send ids it refuses, the GC heap
 * and the keyring in process memory, so a second process on the same environment gives two
 * messages one seq — the second record overwrites the first, an acknowledged message lost — and
 * destroys epoch keys the first still seals under. LMDB itself lets both in, so the store takes
 * this lock at open and a second process is refused with `LOFT_ERR_RELAY_DATA_DIR_IN_USE`.
 *
 * The lock is the file `relay.lock` naming its holder: pid, the holder's start time (field 22 of
 * /proc/<pid>/stat, so a pid reused by another process after a `kill -9` does not count) and the
 * boot id (a pid from before a reboot never counts). It is created complete or not at all (written
 * to a temporary name, then hard-linked into place: `link` fails if the name exists), removed at
 * close, and taken over when its holder is gone — `kill -9` leaves the file, and the next start
 * must not need an operator. A lock naming this very process is not a conflict: a process may
 * reopen its own store (tests, migrations). Where /proc is missing (not Linux) the pid alone is
 * checked.
 */
import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StoreError } from "./errors.ts";

export const DATA_DIR_LOCK_FILE = "relay.lock";

/** Who holds a data dir: what `relay.lock` says. */
export interface LockHolder {
  pid: number;
  /** Start time of the process in clock ticks after boot, "" where /proc is missing. */
  start: string;
  /** /proc/sys/kernel/random/boot_id, "" where missing. */
  boot: string;
}

/** The lock file is a few dozen bytes; anything longer is not ours (read as no holder). */
const MAX_LOCK_BYTES = 256;

/**
 * Parse a lock file's text: `loft-relay-lock 1 <pid> <start> <boot>\n`. Anything else (empty, cut
 * short, another tool's file, oversized) is no holder: the lock is taken over, as after a crash.
 */
export function parseDataDirLock(text: string): LockHolder | undefined {
  if (text.length > MAX_LOCK_BYTES) return undefined;
  const m = /^loft-relay-lock 1 ([1-9][0-9]{0,9}) ([0-9]{0,20}) ([0-9a-f-]{0,36})\n$/.exec(text);
  if (!m) return undefined;
  const pid = Number(m[1]);
  if (!Number.isSafeInteger(pid) || pid > 0x7fffffff) return undefined;
  return { pid, start: m[2]!, boot: m[3]! };
}

export function formatDataDirLock(h: LockHolder): string {
  return `loft-relay-lock 1 ${h.pid} ${h.start} ${h.boot}\n`;
}

const readOr = (path: string, fallback: string): string => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
};

/** A process's start time (field 22 of /proc/<pid>/stat), "" if unknown or gone. */
function startTime(pid: number): string {
  const stat = readOr(`/proc/${pid}/stat`, "");
  // The command name (field 2) may hold spaces and parentheses: count from the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19] ?? "";
}

const bootId = (): string => readOr("/proc/sys/kernel/random/boot_id", "").trim();

/** A running process as a lock would name it (this one: `processHolder(process.pid)`). */
export function processHolder(pid: number): LockHolder {
  return { pid, start: startTime(pid), boot: bootId() };
}

/** Whether the process a lock names still runs (the same process, not a reuse of its pid). */
export function holderAlive(h: LockHolder): boolean {
  const boot = bootId();
  if (h.boot !== "" && boot !== "" && h.boot !== boot) return false;
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    // EPERM: it exists, owned by another user (another relay under another account).
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const now = startTime(h.pid);
  return h.start === "" || now === "" || now === h.start;
}

/**
 * Take the data dir's lock, or throw `LOFT_ERR_RELAY_DATA_DIR_IN_USE` naming the live holder.
 * Returns the release (idempotent; removes the file only while it still names this process).
 */
export function lockDataDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, DATA_DIR_LOCK_FILE);
  const me = processHolder(process.pid);
  const mine = formatDataDirLock(me);
  // Two tries: a stale lock is removed once, then the link decides between racing starts.
  for (let attempt = 0; attempt < 2; attempt++) {
    const temp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}`;
    writeFileSync(temp, mine, { mode: 0o600 });
    try {
      linkSync(temp, path);
      return () => {
        if (readOr(path, "") === mine) {
          try {
            unlinkSync(path);
          } catch {
            // Gone already: nothing to release.
          }
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    } finally {
      unlinkSync(temp);
    }
    const holder = parseDataDirLock(readOr(path, ""));
    if (holder && holder.pid !== me.pid && holderAlive(holder))
      throw new StoreError(
        "LOFT_ERR_RELAY_DATA_DIR_IN_USE",
        `--relay-data-dir ${dir} is in use by relay process ${holder.pid}: one relay process per data dir (docs/operations-relay.md §Storage); stop it first, or give this one its own data dir`,
      );
    // Stale (its holder is gone), unreadable, or this process's own: take it over.
    try {
      unlinkSync(path);
    } catch {
      // Removed meanwhile by its holder's close or another start: the next link decides.
    }
  }
  throw new StoreError(
    "LOFT_ERR_RELAY_DATA_DIR_IN_USE",
    `--relay-data-dir ${dir}: another relay process took the data dir's lock while this one started (docs/operations-relay.md §Storage)`,
  );
}
