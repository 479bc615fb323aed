/**
 * Opening the store from configuration (relay-ws/store/open.ts): where the master key comes from
 * (file, environment, generated beside the data with a warning), the warnings an operator gets,
 * master-key rotation through the config, and data-dir checks.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  constants as fsConstants,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { type LoftStartError, startLoft } from "../../test/support/loft-process.ts";
import { defaultRelayConfig } from "../config.ts";
import {
  dataDirLockFile,
  dataDirLockHolder,
  formatDataDirLock,
  type LockHolder,
  lockDataDir,
  lockReadOutcome,
  parseDataDirLock,
  processHolder,
} from "./dir-lock.ts";
import { keyringEpochs } from "./keyring.ts";
import {
  GENERATED_KEY_FILE,
  loadMasterKeys,
  openRelayStore,
  prepareDataDir,
  sealFailoverMessage,
} from "./open.ts";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "loft-relay-open-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function recordingLog() {
  const lines: string[] = [];
  return {
    lines,
    warn: (msg: unknown) => void lines.push(String(msg)),
    info: (obj: unknown, msg?: string) => void lines.push(`${msg ?? ""} ${JSON.stringify(obj)}`),
  };
}

/** A process's state as /proc/<pid>/stat gives it (field 3; the name before it may hold spaces). */
const procState = (pid: number): string | undefined => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
};

/**
 * A process that has exited and stays a zombie until `reap()` (or `stop()`). Its parent is a Node
 * process blocked in a read of a FIFO: Node collects its children on its event loop (libuv's
 * SIGCHLD watcher), which does not turn while that read blocks. A shell is no such parent: dash
 * collects finished background jobs after each built-in, so `sh -c 'sleep 0 & echo $!; exec sleep
 * 60'` lost its zombie whenever the sleep ended before the echo did, and the test read a /proc
 * entry that was gone.
 */
async function unreapedZombie(dir: string): Promise<{ pid: number; reap(): void; stop(): Promise<void> }> {
  const fifo = join(dir, "reap");
  const made = spawnSync("mkfifo", [fifo], { timeout: 10_000 });
  if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr}`);
  // Read and write ends at once, so this open does not wait for a reader, nor the parent's for a
  // writer; the parent's read ends (EOF) when this end closes, whether it is reading by then or not.
  let writer: number | undefined = openSync(fifo, fsConstants.O_RDWR);
  const parentScript = [
    'const fs = require("node:fs");',
    "const fifo = fs.openSync(process.argv[1], 'r');",
    'const c = require("node:child_process").spawn("true", { stdio: "ignore" });',
    // A write to a pipe is synchronous on Linux: the pid is out before the read blocks.
    'process.stdout.write(String(c.pid) + "\\n");',
    "fs.readFileSync(fifo);",
  ].join("\n");
  const parent = spawn(process.execPath, ["-e", parentScript, fifo], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => parent.once("exit", () => resolve()));
  /** Let the parent's read return (false: done already). */
  const release = (): boolean => {
    if (writer === undefined) return false;
    closeSync(writer);
    writer = undefined;
    return true;
  };
  try {
    const pid = await new Promise<number>((resolve, reject) => {
      let out = "";
      parent.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.endsWith("\n")) resolve(Number(out.trim()));
      });
      void exited.then(() => reject(new Error("the zombie's parent exited before naming its child")));
    });
    // Its parent does not collect it before `release`, so its entry is there until it turns Z.
    await expect.poll(() => procState(pid), { timeout: 30_000 }).toBe("Z");
    return {
      pid,
      // Synchronous, for a hook inside a synchronous start: returns once the entry is gone.
      reap: () => {
        if (!release()) throw new Error("the zombie was let go already");
        const tick = new Int32Array(new SharedArrayBuffer(4));
        for (let i = 0; existsSync(`/proc/${pid}`); i++) {
          if (i > 6_000) throw new Error(`zombie ${pid} not reaped a minute after its parent was let go`);
          Atomics.wait(tick, 0, 0, 10);
        }
      },
      stop: async () => {
        release();
        await exited;
      },
    };
  } catch (e) {
    release();
    parent.kill("SIGKILL");
    throw e;
  }
}

describe("opening the relay store", () => {
  it("reads the master key from a file (no warning when it is private and apart from the data)", () => {
    const data = prepareDataDir(join(tempDir(), "data"));
    const keyFile = join(tempDir(), "master.key");
    const key = randomBytes(32);
    writeFileSync(keyFile, `${key.toString("hex")}\n`, { mode: 0o600 });
    const log = recordingLog();
    const keys = loadMasterKeys({ masterKeyFile: keyFile, previousMasterKeyFile: "" }, data, log, {});
    expect(keys.key).toEqual(key);
    expect(keys.source).toBe("file");
    expect(log.lines).toEqual([]);
  });

  it("warns when the key file sits in the data dir or others can read it", () => {
    const data = prepareDataDir(join(tempDir(), "data"));
    const keyFile = join(data, "my.key");
    writeFileSync(keyFile, randomBytes(32).toString("base64"), { mode: 0o644 });
    const log = recordingLog();
    loadMasterKeys({ masterKeyFile: keyFile, previousMasterKeyFile: "" }, data, log, {});
    expect(log.lines.join("\n")).toContain("inside the data dir");
    expect(log.lines.join("\n")).toContain("chmod 600");
  });

  it("takes LOFT_RELAY_MASTER_KEY from the environment, and refuses a malformed one", () => {
    const data = prepareDataDir(join(tempDir(), "data"));
    const key = randomBytes(32);
    const log = recordingLog();
    expect(
      loadMasterKeys({ masterKeyFile: "", previousMasterKeyFile: "" }, data, log, {
        LOFT_RELAY_MASTER_KEY: key.toString("hex"),
      }).key,
    ).toEqual(key);
    expect(() =>
      loadMasterKeys({ masterKeyFile: "", previousMasterKeyFile: "" }, data, log, {
        LOFT_RELAY_MASTER_KEY: "short",
      }),
    ).toThrow(expect.objectContaining({ code: "LOFT_ERR_RELAY_MASTER_KEY" }));
  });

  it("without a key, generates one beside the data (0600), reuses it, and warns every time", () => {
    const data = prepareDataDir(join(tempDir(), "data"));
    const log = recordingLog();
    const a = loadMasterKeys({ masterKeyFile: "", previousMasterKeyFile: "" }, data, log, {});
    const b = loadMasterKeys({ masterKeyFile: "", previousMasterKeyFile: "" }, data, log, {});
    expect(a.source).toBe("generated");
    expect(b.key).toEqual(a.key);
    expect(statSync(join(data, GENERATED_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(log.lines.filter((l) => l.includes("generated beside the data"))).toHaveLength(2);
  });

  it("rotates the master key through --relay-previous-master-key-file", async () => {
    const data = join(tempDir(), "data");
    const keys = tempDir();
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    writeFileSync(join(keys, "old"), oldKey.toString("hex"), { mode: 0o600 });
    writeFileSync(join(keys, "new"), newKey.toString("hex"), { mode: 0o600 });
    const log = recordingLog();
    let store = openRelayStore(defaultRelayConfig({ dataDir: data, masterKeyFile: join(keys, "old") }), {
      log,
    });
    await store.close();
    store = openRelayStore(
      defaultRelayConfig({
        dataDir: data,
        masterKeyFile: join(keys, "new"),
        previousMasterKeyFile: join(keys, "old"),
      }),
      { log },
    );
    await store.close();
    expect(keyringEpochs(data, newKey)).toEqual([[0], [0]]);
    expect(keyringEpochs(data, oldKey)).toEqual([undefined, undefined]);
    expect(log.lines.some((l) => l.includes('"rotatingFromPrevious":true'))).toBe(true);
    expect(log.lines.join("\n")).not.toContain(newKey.toString("hex"));
    expect(() =>
      openRelayStore(defaultRelayConfig({ dataDir: data, masterKeyFile: join(keys, "old") }), { log }),
    ).toThrow(expect.objectContaining({ code: "LOFT_ERR_RELAY_MASTER_KEY" }));
  });

  it("creates a missing data dir (0700, dotted names included) and refuses a file", () => {
    const parent = tempDir();
    const dotted = prepareDataDir(join(parent, "a.b", "relay.data"));
    expect(statSync(dotted).isDirectory()).toBe(true);
    expect(statSync(dotted).mode & 0o777).toBe(0o700);
    writeFileSync(join(parent, "file"), "x");
    expect(() => prepareDataDir(join(parent, "file"))).toThrow(
      expect.objectContaining({ code: "LOFT_ERR_RELAY_DATA_DIR" }),
    );
    mkdirSync(join(parent, "ok"));
    expect(prepareDataDir(join(parent, "ok"))).toBe(join(parent, "ok"));
    expect(existsSync(join(parent, "ok"))).toBe(true);
    expect(readFileSync(join(parent, "file"), "utf8")).toBe("x");
  });

  it("the seal-worker warning says what happened: a replacement that could not be started is not one that died", () => {
    for (const reason of ["timeout", "error", "exit"] as const)
      expect(sealFailoverMessage(reason)).toContain("stopped answering or died");
    expect(sealFailoverMessage("start")).toContain("a new seal worker could not be started");
    expect(sealFailoverMessage("start")).not.toContain("died");
  });
});

describe("one relay process per data dir (dir-lock.ts; docs/operations-relay.md §Storage)", () => {
  const lockOf = dataDirLockHolder;
  /** The lock files in `data` (generations and their temporary names alike). */
  const lockFiles = (data: string) => readdirSync(data).filter((n) => n.startsWith("relay.lock"));

  it("a second relay on a data dir in use stops with LOFT_ERR_RELAY_DATA_DIR_IN_USE; after kill -9 of the holder the next open takes the dir over", async () => {
    const data = join(tempDir(), "data");
    const log = recordingLog();
    const holder = await startLoft({ entry: "relay-ws/main.ts", args: ["--relay-data-dir", data] });
    try {
      expect(lockOf(data)?.pid).toBe(holder.child.pid);
      // What an operator sees: the second process exits before listening, naming the holder.
      const second = await startLoft({ entry: "relay-ws/main.ts", args: ["--relay-data-dir", data] }).then(
        async (p) => {
          await p.stop("SIGKILL");
          return undefined;
        },
        (e: LoftStartError) => e,
      );
      expect(second?.reason).toBe("exited");
      expect(second?.exitCode).toBe(2);
      expect(second?.output).toContain(
        `LOFT_ERR_RELAY_DATA_DIR_IN_USE: --relay-data-dir ${data} is in use by relay process ${holder.child.pid}`,
      );
      expect(() => openRelayStore(defaultRelayConfig({ dataDir: data }), { log })).toThrow(
        expect.objectContaining({ code: "LOFT_ERR_RELAY_DATA_DIR_IN_USE" }),
      );
      // kill -9 leaves the file; its process is gone, so the next open takes it over.
      await holder.stop("SIGKILL");
      expect(lockOf(data)?.pid).toBe(holder.child.pid);
      const store = openRelayStore(defaultRelayConfig({ dataDir: data }), { log });
      expect(lockOf(data)?.pid).toBe(process.pid);
      await store.close();
      expect(lockFiles(data)).toEqual([]);
    } finally {
      await holder.stop("SIGKILL");
    }
  });

  it("a lock whose holder is gone, reused or unreadable is taken over; a running process's is not", () => {
    const data = tempDir();
    const path = join(data, dataDirLockFile(1));
    const take = () => {
      const release = lockDataDir(data);
      expect(lockOf(data)).toEqual(processHolder(process.pid));
      // The stale lock is superseded by the next generation and swept.
      expect(lockFiles(data)).toEqual([dataDirLockFile(2)]);
      release();
      expect(lockFiles(data)).toEqual([]);
    };
    const exited = spawnSync(process.execPath, ["-e", ""], { timeout: 10_000 }).pid;
    const parent = processHolder(process.ppid);
    const stale: string[] = [
      formatDataDirLock({ ...processHolder(process.pid), pid: exited }),
      // The parent's pid with another start time: a pid reused after the holder died.
      formatDataDirLock({ ...parent, start: `${Number(parent.start) + 1}` }),
      // From before a reboot.
      formatDataDirLock({ ...parent, boot: "00000000-0000-0000-0000-000000000000" }),
      "",
      "loft-relay-lock 1 ",
      "not a lock at all",
      `${formatDataDirLock(parent)}${"x".repeat(300)}`,
    ];
    for (const text of stale) {
      writeFileSync(path, text);
      take();
    }
    // A running process other than this one (the test runner's parent) holds it: refused, untouched.
    writeFileSync(path, formatDataDirLock(parent));
    expect(() => lockDataDir(data)).toThrow(
      expect.objectContaining({
        code: "LOFT_ERR_RELAY_DATA_DIR_IN_USE",
        message: expect.stringContaining(`relay process ${parent.pid}`),
      }),
    );
    expect(readFileSync(path, "utf8")).toBe(formatDataDirLock(parent));
    expect(lockFiles(data)).toEqual([dataDirLockFile(1)]);
    // This process's own lock (a store reopened in one process) is no conflict.
    writeFileSync(path, formatDataDirLock(processHolder(process.pid)));
    take();
  });

  it("a holder that exited but is not reaped yet (a zombie: its parent has not waited) is gone: its lock is taken over", async () => {
    const data = tempDir();
    const zombie = await unreapedZombie(tempDir());
    try {
      const holder = processHolder(zombie.pid);
      expect(holder.start).not.toBe("");
      writeFileSync(join(data, dataDirLockFile(1)), formatDataDirLock(holder));
      const release = lockDataDir(data);
      expect(lockOf(data)).toEqual(processHolder(process.pid));
      release();
      expect(lockFiles(data)).toEqual([]);
    } finally {
      await zombie.stop();
    }
  });

  it("a holder that had exited is gone whenever its parent reaps it, between two looks at it too", async () => {
    const data = tempDir();
    const zombie = await unreapedZombie(tempDir());
    try {
      writeFileSync(join(data, dataDirLockFile(1)), formatDataDirLock(processHolder(zombie.pid)));
      // Reaped after the start's first look at it: whatever that look was, the next finds no
      // process (kill(0) then /proc refused the start: the vanished entry counted as running).
      let looks = 0;
      const release = lockDataDir(data, {
        betweenLooks: () => {
          looks++;
          zombie.reap();
        },
      });
      // The reaping did come between the looks (a hook never called tests only the zombie case).
      expect(looks).toBe(1);
      expect(lockOf(data)).toEqual(processHolder(process.pid));
      release();
      expect(lockFiles(data)).toEqual([]);
    } finally {
      await zombie.stop();
    }
  });

  it("where /proc is missing (not Linux) the pid alone is checked: a running one refuses the start whatever start time its lock names, a gone one is taken over", () => {
    const data = tempDir();
    const proc = tempDir(); // empty: no process table, no boot id
    const path = join(data, dataDirLockFile(1));
    const parent = processHolder(process.ppid);
    for (const lock of [
      // Written where /proc is missing too, and written on Linux (the data dir moved since).
      { pid: parent.pid, start: "", boot: "" },
      { ...parent, start: `${Number(parent.start) + 1}` },
    ]) {
      writeFileSync(path, formatDataDirLock(lock));
      expect(() => lockDataDir(data, { proc })).toThrow(
        expect.objectContaining({
          code: "LOFT_ERR_RELAY_DATA_DIR_IN_USE",
          message: expect.stringContaining(`relay process ${parent.pid}`),
        }),
      );
      expect(lockFiles(data)).toEqual([dataDirLockFile(1)]);
    }
    const exited = spawnSync(process.execPath, ["-e", ""], { timeout: 10_000 }).pid;
    writeFileSync(path, formatDataDirLock({ pid: exited, start: "", boot: "" }));
    const release = lockDataDir(data, { proc });
    // This start's own lock names its pid alone, as such a system writes it.
    expect(lockOf(data)).toEqual({ pid: process.pid, start: "", boot: "" });
    release();
    expect(lockFiles(data)).toEqual([]);
  });

  it("two starts that find one stale lock at once: exactly one holds the dir, whichever step the other is at", () => {
    const data = tempDir();
    const exited = spawnSync(process.execPath, ["-e", ""], { timeout: 10_000 }).pid;
    const staleLock = () =>
      writeFileSync(
        join(data, dataDirLockFile(1)),
        formatDataDirLock({ ...processHolder(process.pid), pid: exited }),
      );
    // Start A acts as the test runner's parent (alive, not this process); the rival start is this
    // process, run from inside A's start once A judged the lock stale and before A claims.
    const parent = processHolder(process.ppid);
    const startA = (rival: () => void) => {
      let once = false;
      return () =>
        lockDataDir(data, {
          holder: parent,
          beforeClaim: () => {
            if (once) return;
            once = true;
            rival();
          },
        });
    };
    const refusedNaming = (pid: number) =>
      expect.objectContaining({
        code: "LOFT_ERR_RELAY_DATA_DIR_IN_USE",
        message: expect.stringContaining(`is in use by relay process ${pid}:`),
      });

    // 1. The rival takes the stale lock over between A's look and A's claim: A is refused, naming
    // the rival, and the rival's lock stays (removing the stale file then creating one name let
    // both through: each removed what the other had just made).
    staleLock();
    let releaseB: (() => void) | undefined;
    expect(startA(() => (releaseB = lockDataDir(data)))).toThrow(refusedNaming(process.pid));
    expect(lockOf(data)).toEqual(processHolder(process.pid));
    expect(lockFiles(data)).toEqual([dataDirLockFile(2)]);
    releaseB?.();
    expect(lockFiles(data)).toEqual([]);

    // 2. Meanwhile the dir passed through a start that died (generation 2) to one that runs (3),
    // which swept the older names: A's claim of the freed name 2 succeeds, yet the newer holder is
    // there, so A gives its claim back and is refused.
    staleLock();
    expect(
      startA(() => {
        writeFileSync(join(data, dataDirLockFile(3)), formatDataDirLock(processHolder(process.pid)));
        rmSync(join(data, dataDirLockFile(1)));
      }),
    ).toThrow(refusedNaming(process.pid));
    expect(lockFiles(data)).toEqual([dataDirLockFile(3)]);
    rmSync(join(data, dataDirLockFile(3)));

    // 3. The rival's start came and went (released) before A claims: A holds the dir.
    staleLock();
    const releaseA = startA(() => lockDataDir(data)())();
    expect(lockOf(data)).toEqual(parent);
    releaseA();
    expect(lockFiles(data)).toEqual([]);
  });

  it("two stores of one process on one dir share its lock: the first's file stays until the last closes", async () => {
    const data = tempDir();
    const log = recordingLog();
    const config = defaultRelayConfig({ dataDir: data });
    const first = openRelayStore(config, { log });
    const [file] = lockFiles(data);
    // A crash test's second store on the dir of one it abandoned: no conflict, and the same file.
    const second = openRelayStore(config, { log });
    expect(lockFiles(data)).toEqual([file]);
    expect(lockOf(data)).toEqual(processHolder(process.pid));
    await second.close();
    // The first still runs on the dir: still locked against another relay.
    expect(lockFiles(data)).toEqual([file]);
    const other = processHolder(process.ppid);
    expect(() => lockDataDir(data, { holder: other })).toThrow(
      expect.objectContaining({ code: "LOFT_ERR_RELAY_DATA_DIR_IN_USE" }),
    );
    await first.close();
    expect(lockFiles(data)).toEqual([]);
    // A release called twice counts once: the third opener's claim survives the second's repeats.
    const a = lockDataDir(data);
    const b = lockDataDir(data);
    b();
    b();
    expect(lockFiles(data)).toHaveLength(1);
    a();
    expect(lockFiles(data)).toEqual([]);
    // The file gone under a running opener (the dir emptied): the next opener claims the dir again.
    const c = lockDataDir(data);
    for (const name of lockFiles(data)) rmSync(join(data, name));
    const d = lockDataDir(data);
    expect(lockOf(data)).toEqual(processHolder(process.pid));
    c();
    expect(lockFiles(data)).toHaveLength(1);
    d();
    expect(lockFiles(data)).toEqual([]);
  });

  it("the lock file is readable by all (0644, whatever the umask); an unreadable one is refused naming it, never taken over", () => {
    const data = tempDir();
    const previous = process.umask(0o077);
    let release: () => void;
    try {
      release = lockDataDir(data);
    } finally {
      process.umask(previous);
    }
    const [file] = lockFiles(data);
    expect(statSync(join(data, file!)).mode & 0o777).toBe(0o644);
    release();
    // As root nothing is unreadable, so the decision is checked by the read's error code.
    expect(lockReadOutcome("EACCES")).toBe("foreign");
    expect(lockReadOutcome("EPERM")).toBe("foreign");
    expect(lockReadOutcome("ENOENT")).toBe("released");
    for (const code of ["EISDIR", "EIO", undefined]) expect(lockReadOutcome(code)).toBe("stale");
  });

  it("temporary lock names a killed start left are swept at the next claim; a running start's are not", () => {
    const data = tempDir();
    const exited = spawnSync(process.execPath, ["-e", ""], { timeout: 10_000 }).pid;
    const dead = `${dataDirLockFile(1)}.tmp-${exited}-0123456789ab`;
    const live = `${dataDirLockFile(1)}.tmp-${process.ppid}-0123456789ab`;
    const other = "relay.lock.notes";
    for (const name of [dead, live, other]) writeFileSync(join(data, name), "loft-relay-lock 1 ");
    const release = lockDataDir(data);
    expect(lockFiles(data).sort()).toEqual([dataDirLockFile(1), live, other].sort());
    release();
    expect(lockFiles(data).sort()).toEqual([live, other].sort());
  });

  it("reads only its own lock line: any other text is no holder, never an exception; a holder round-trips", () => {
    const holder: fc.Arbitrary<LockHolder> = fc.record({
      pid: fc.integer({ min: 1, max: 0x7fffffff }),
      start: fc.stringMatching(/^[0-9]{0,20}$/),
      boot: fc.oneof(fc.constant(""), fc.uuid()),
    });
    fc.assert(
      fc.property(holder, (h) => {
        const text = formatDataDirLock(h);
        expect(parseDataDirLock(text)).toEqual(h);
        // Cut short, or with anything after it: not a lock this relay wrote.
        expect(parseDataDirLock(text.slice(0, -1))).toBeUndefined();
        expect(parseDataDirLock(`${text}\n`)).toBeUndefined();
      }),
      { numRuns: FUZZ_RUNS },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), holder, fc.nat(60), (junk, h, at) => {
        // Arbitrary text, and a valid line with arbitrary text spliced in: undefined or a holder.
        for (const text of [junk, formatDataDirLock(h).slice(0, at) + junk]) {
          const parsed = parseDataDirLock(text);
          if (parsed !== undefined) expect(formatDataDirLock(parsed)).toBe(text);
        }
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});
