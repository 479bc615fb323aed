/**
 * One relay process per data dir (docs/operations-relay.md §Storage, "One relay process per data
 * dir"). The LMDB store keeps each queue's next seq, its bytes, the send ids it refuses, the GC heap
 * and the keyring in process memory, so a second process on the same environment gives two
 * messages one seq — the second record overwrites the first, an acknowledged message lost — and
 * destroys epoch keys the first still seals under. LMDB itself lets both in, so the store takes
 * this lock at open and a second process is refused with `LOFT_ERR_RELAY_DATA_DIR_IN_USE`.
 *
 * The lock is the newest of the files `relay.lock.<n>` (lockDataDir says why generations) naming
 * its holder: pid, the holder's start time (field 22 of /proc/<pid>/stat, so a pid reused by
 * another process after a `kill -9` does not count) and the boot id (a pid from before a reboot
 * never counts). It is created complete or not at all (written to a temporary name, then
 * hard-linked into place: `link` fails if the name exists), removed at close, and taken over when
 * its holder is gone — `kill -9` leaves the file, and the next start must not need an operator. A
 * lock naming this very process is not a conflict: a process may reopen its own store (tests,
 * migrations). Where /proc is missing (not Linux) the pid alone is checked.
 *
 * Within one process the claim is shared: a second store on a dir this process already holds
 * counts one more opener of the same lock file, and the file goes at the last release — a second
 * claim of its own superseded and swept the first's file, and its release left the dir unlocked
 * while the first store still ran on it.
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { processExists } from "../../host/process-alive.ts";
import { StoreError } from "./errors.ts";

/** The lock files' common name: `relay.lock.<generation>`. */
const DATA_DIR_LOCK_FILE = "relay.lock";
const LOCK_NAME = /^relay\.lock\.([1-9][0-9]{0,14})$/;
/** A lock file's temporary name (createComplete): `relay.lock.<n>.tmp-<pid>-<hex>`. */
const TEMP_NAME = /^relay\.lock\.[1-9][0-9]{0,14}\.tmp-([1-9][0-9]{0,9})-[0-9a-f]{1,32}$/;
/**
 * Readable by all (0644): it names a pid, nothing secret, and a relay under another account must
 * read it to tell a live holder from a stale one (lockReadOutcome).
 */
const LOCK_MODE = 0o644;

/** Who holds a data dir: what its newest `relay.lock.<n>` says. */
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

/** Where the process table is read (`DataDirLockOptions.proc`: tests act as a system without it). */
const PROC = "/proc";

/** A process's state and start time (fields 3 and 22 of /proc/<pid>/stat), "" if unknown or gone. */
function procStat(pid: number, proc: string): { state: string; start: string } {
  const stat = readOr(`${proc}/${pid}/stat`, "");
  // The command name (field 2) may hold spaces and parentheses: count from the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0] ?? "", start: fields[19] ?? "" };
}

const bootId = (proc: string): string => readOr(`${proc}/sys/kernel/random/boot_id`, "").trim();

/** A running process as a lock would name it (this one: `processHolder(process.pid)`). */
export function processHolder(pid: number, proc = PROC): LockHolder {
  return { pid, start: procStat(pid, proc).start, boot: bootId(proc) };
}

/**
 * Whether the process a lock names still runs (the same process, not a reuse of its pid).
 * `betweenLooks` runs once the first look at its process (/proc) is taken, whatever it found, and
 * before anything else is asked (tests reap a zombie holder there: a look that could be fooled by
 * a reaping after it is fooled in every run, not only when the reaping races it).
 */
function holderAlive(h: LockHolder, betweenLooks: (() => void) | undefined, proc: string): boolean {
  const boot = bootId(proc);
  if (h.boot !== "" && boot !== "" && h.boot !== boot) return false;
  // /proc first, kill(0) only where /proc has no entry for the pid. Asked the other way round, a
  // holder that had already exited and was reaped between the two looks (its parent collecting the
  // zombie) passed kill(0), then had no /proc entry, and an entry-less pid counted as running: the
  // start was refused naming a process gone before it looked.
  const now = procStat(h.pid, proc);
  betweenLooks?.();
  // No entry: gone, or /proc missing (not Linux), or hidden (hidepid: a relay under another
  // account) — kill(0) tells gone (ESRCH) from the other two (the pid alone is checked).
  if (now.state === "") return processExists(h.pid);
  // A zombie (Z; X: being reaped) has exited — its files and LMDB handles closed — and only waits
  // for its parent to collect its status: a holder that stays one until then is gone all the same.
  if (now.state === "Z" || now.state === "X") return false;
  return h.start === "" || now.start === h.start;
}

/** The lock files' generations in `dir`, newest first (`relay.lock.<n>`, n decimal). */
function generations(dir: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync(dir)) {
    const m = LOCK_NAME.exec(name);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => b - a);
}

export const dataDirLockFile = (generation: number): string => `${DATA_DIR_LOCK_FILE}.${generation}`;

/** Who holds `dir` as its newest lock file says (undefined: no lock file, or not one this relay wrote). */
export function dataDirLockHolder(dir: string): LockHolder | undefined {
  const top = generations(dir)[0];
  return top === undefined ? undefined : parseDataDirLock(readOr(join(dir, dataDirLockFile(top)), ""));
}

const unlinkQuiet = (path: string): void => {
  try {
    unlinkSync(path);
  } catch {
    // Gone already (released, or swept by the start that took the dir over).
  }
};

/**
 * Create `path` holding `text`, complete or not at all; false if it exists (another start claimed
 * it), or if the temporary name went first (a start that took the dir over swept it as a crash
 * leftover: sweepTemps judges the pid in the name, so only when this pid was dead or reused).
 */
function createComplete(path: string, text: string): boolean {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
  writeFileSync(temp, text, { mode: LOCK_MODE });
  try {
    // The mode given at create passes through the umask; a 077 one would hide the holder.
    chmodSync(temp, LOCK_MODE);
    linkSync(temp, path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EEXIST" && code !== "ENOENT") throw e;
    return false;
  } finally {
    unlinkQuiet(temp);
  }
}

/**
 * Remove temporary lock names left by starts that died between writing and removing them
 * (`kill -9`, a crash): those whose pid no longer runs. A live pid's may be a start in the middle
 * of its claim, so it stays (a leftover whose pid was reused waits for that process to end).
 */
function sweepTemps(dir: string): void {
  for (const name of readdirSync(dir)) {
    const m = TEMP_NAME.exec(name);
    if (m && !processExists(Number(m[1]))) unlinkQuiet(join(dir, name));
  }
}

/**
 * What a failed read of the newest lock file means (`code`: its errno code). "released": it went
 * meanwhile, look again. "foreign": it is there but this process may not read it — a relay under
 * another account wrote it (0600 before lock files were 0644), so it may well be running: refused,
 * never taken over (taking it over could run two relays on one dir). "stale": anything else (a
 * directory in its place, an I/O error): no holder, superseded like a crash leftover.
 */
export function lockReadOutcome(code: string | undefined): "released" | "foreign" | "stale" {
  if (code === "ENOENT") return "released";
  if (code === "EACCES" || code === "EPERM") return "foreign";
  return "stale";
}

/** This process's claims, by the dir's real path: how many stores share each (see the top). */
const held = new Map<string, { openers: number; claim: Claim }>();

/** A release that counts once however often it is called; the shared claim goes with the last. */
function shareOf(key: string): () => void {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const shared = held.get(key);
    if (!shared || --shared.openers > 0) return;
    held.delete(key);
    shared.claim.release();
  };
}

/** Rounds before giving up: each lost round means another start claimed or released the dir meanwhile. */
const MAX_ROUNDS = 4;

export interface DataDirLockOptions {
  /** Who takes the lock: this process unless a test acts as another. */
  holder?: LockHolder;
  /** Called each round once the newest lock is judged stale or absent, before claiming the next (tests run a rival start there). */
  beforeClaim?: () => void;
  /** Called after the first look at a holder's process (holderAlive; tests reap a zombie holder there). */
  betweenLooks?: () => void;
  /** Where /proc is (default "/proc"; tests give an empty dir to act as a system without one). */
  proc?: string;
}

/**
 * Take the data dir's lock, or throw `LOFT_ERR_RELAY_DATA_DIR_IN_USE` naming the live holder.
 * Returns the release (idempotent; removes this start's lock file only).
 *
 * A stale lock is never removed to make room, it is superseded: the newest generation `relay.lock.<n>`
 * names the holder, and a start that finds it stale claims `<n+1>` by an exclusive `link`. Removing
 * the stale file and then creating the one name (the first version) let two starts that both judged
 * it stale each remove what the other had just created, and both ran. Of several starts only one
 * creates `<n+1>`; a start that claimed a lower name than one created meanwhile (it listed before,
 * and the newer holder's sweep freed the name) sees the higher one after its claim and backs off, so
 * exactly one holds the dir. Lower generations are then swept: their holders are gone, or are starts
 * that will back off; so are temporary names that starts killed mid-claim left (sweepTemps).
 */
export function lockDataDir(dir: string, options: DataDirLockOptions = {}): () => void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // A test acting as another process (options.holder) claims on its own, never sharing this one's.
  if (options.holder) return claimDataDir(dir, options.holder, options).release;
  const key = realpathSync(dir);
  const shared = held.get(key);
  if (!shared)
    held.set(key, {
      openers: 1,
      claim: claimDataDir(dir, processHolder(process.pid, options.proc), options),
    });
  else {
    // Its file gone (the dir emptied under a store that still runs): claimed again, shared as before.
    if (!shared.claim.intact())
      shared.claim = claimDataDir(dir, processHolder(process.pid, options.proc), options);
    shared.openers++;
  }
  return shareOf(key);
}

/** A lock file this process created: its release (idempotent), and whether it still names it. */
interface Claim {
  release(): void;
  intact(): boolean;
}

/** One claim of `dir` by `me` (lockDataDir). */
function claimDataDir(dir: string, me: LockHolder, options: DataDirLockOptions): Claim {
  const mine = formatDataDirLock(me);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const top = generations(dir)[0] ?? 0;
    if (top > 0) {
      let text: string;
      try {
        text = readFileSync(join(dir, dataDirLockFile(top)), "utf8");
      } catch (e) {
        const path = join(dir, dataDirLockFile(top));
        const code = (e as NodeJS.ErrnoException).code;
        const outcome = lockReadOutcome(code);
        if (outcome === "released") continue;
        if (outcome === "foreign")
          throw new StoreError(
            "LOFT_ERR_RELAY_DATA_DIR_IN_USE",
            `--relay-data-dir ${dir}: its lock file ${path} cannot be read (${code}), so a relay under another account may hold the dir (docs/operations-relay.md §Storage); run this relay as the account that owns the data dir, or remove ${path} once no relay runs on it`,
          );
        text = "";
      }
      const holder = parseDataDirLock(text);
      if (holder && holder.pid !== me.pid && holderAlive(holder, options.betweenLooks, options.proc ?? PROC))
        throw new StoreError(
          "LOFT_ERR_RELAY_DATA_DIR_IN_USE",
          `--relay-data-dir ${dir} is in use by relay process ${holder.pid}: one relay process per data dir (docs/operations-relay.md §Storage); stop it first, or give this one its own data dir`,
        );
    }
    // Stale (its holder is gone), not a lock line, this process's own, or none: claim the next generation.
    options.beforeClaim?.();
    const generation = top + 1;
    const path = join(dir, dataDirLockFile(generation));
    if (!createComplete(path, mine)) continue;
    if (generations(dir)[0] !== generation) {
      unlinkQuiet(path);
      continue;
    }
    for (const older of generations(dir))
      if (older < generation) unlinkQuiet(join(dir, dataDirLockFile(older)));
    sweepTemps(dir);
    let released = false;
    const intact = () => readOr(path, "") === mine;
    return {
      release: () => {
        if (released) return;
        released = true;
        if (intact()) unlinkQuiet(path);
      },
      intact,
    };
  }
  throw new StoreError(
    "LOFT_ERR_RELAY_DATA_DIR_IN_USE",
    `--relay-data-dir ${dir}: other relay processes took or released the data dir's lock ${MAX_ROUNDS} times while this one started (docs/operations-relay.md §Storage); start it again once they settled`,
  );
}
