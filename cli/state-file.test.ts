/**
 * The CLI's state: a sealed snapshot plus an append-only sealed log (cli/state-file.ts). A change
 * appends one record, not the whole state; a torn last record (a crash mid-append) is dropped, a
 * damaged one in the middle refused; a log of another generation (a crash during compaction) is
 * ignored; and a writer killed with SIGKILL at any point — mid-append, mid-compaction — loses
 * nothing it was told was written.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFile, copyFile, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StoredMessage } from "../web/src/engine/api.ts";
import { StateFile } from "./state-file.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WRITER = join(ROOT, "test/support/state-file-writer.ts");
const CONTACT = "c".repeat(64);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "loft-state-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const message = (i: number, text = `message ${i}`): StoredMessage => ({
  id: `m${i}`,
  contactId: CONTACT,
  direction: "out",
  text,
  at: i,
  state: "queued",
});

/** Everything a state holds, for comparing two opens. */
async function contents(s: StateFile) {
  return {
    settings: await s.getSettings(),
    contacts: await s.listContacts(),
    messages: s.messages(),
    outbox: await s.listOutbox(),
    session: await s.loadSession(CONTACT),
    secret: await s.loadSecret("k"),
  };
}

describe("the state file: snapshot and append-only log", () => {
  it("a change appends one record (the snapshot stays as it is); reopened, the state is the same", async () => {
    const path = join(dir, "append.state");
    const key = randomBytes(32);
    const s = await StateFile.open(path, key);
    await s.lock();
    await s.setSettings({ signalingUrl: "ws://127.0.0.1:1/signal", relayUrls: ["ws://127.0.0.1:2/relay"] });
    const snapshot = await readFile(path);
    const logBefore = (await stat(`${path}.log`)).size;
    await s.queueOutgoing(message(1));
    await s.saveSession(CONTACT, Uint8Array.of(1, 2, 3));
    await s.saveSecret("k", Uint8Array.of(9));
    await s.setMessageState("m1", "sent");
    await s.deleteSecret("k");
    await s.saveSecret("k", Uint8Array.of(7, 7));
    await s.deleteOutbox("m1");
    expect(await readFile(path)).toEqual(snapshot);
    const grown = (await stat(`${path}.log`)).size - logBefore;
    // Seven changes, a few hundred bytes — not seven copies of the state.
    expect(grown).toBeGreaterThan(0);
    expect(grown).toBeLessThan(7 * 200);
    const before = await contents(s);
    expect(before.messages.map((m) => m.state)).toEqual(["sent"]);
    expect(before.outbox).toEqual([]);
    await s.close();
    const again = await StateFile.open(path, key);
    expect(await contents(again)).toEqual(before);
  });

  it("a long text starting with U+FEFF reads back with it after a reopen", async () => {
    // Over 200 bytes the library's reader dropped a leading U+FEFF (core/codec/codec.ts, decodeOwnRecord).
    const path = join(dir, "bom.state");
    const key = randomBytes(32);
    const text = `\ufeff${"long text ".repeat(30)}`;
    const s = await StateFile.open(path, key);
    await s.lock();
    await s.queueOutgoing(message(1, text));
    await s.close();
    const again = await StateFile.open(path, key);
    expect(again.messages().map((m) => m.text)).toEqual([text]);
  });

  it("compacts once the log outgrows the snapshot: a new snapshot, an empty log, nothing lost", async () => {
    const path = join(dir, "compact.state");
    const key = randomBytes(32);
    const s = await StateFile.open(path, key);
    await s.lock();
    const big = "y".repeat(10_000);
    for (let i = 0; i < 60; i++) await s.putMessage(message(i, `${i} ${big}`));
    // 60 × 10 KB went through the log: it was compacted at least once on the way.
    expect((await stat(`${path}.log`)).size).toBeLessThan(60 * 10_000);
    const before = await contents(s);
    expect(before.messages).toHaveLength(60);
    await s.close();
    expect(await contents(await StateFile.open(path, key))).toEqual(before);
  });

  it("a torn last record (a crash mid-append) is dropped, and the next append cuts it off", async () => {
    const path = join(dir, "torn.state");
    const key = randomBytes(32);
    const s = await StateFile.open(path, key);
    await s.lock();
    await s.putMessage(message(1));
    await s.close();
    const before = await contents(await StateFile.open(path, key));
    // Half a record: a length that runs past the end, then a record's worth of bytes cut short.
    await appendFile(`${path}.log`, Buffer.concat([Buffer.from([0, 0, 1, 0]), randomBytes(100)]));
    const torn = await StateFile.open(path, key);
    expect(await contents(torn)).toEqual(before);
    await torn.lock();
    await torn.putMessage(message(2));
    await torn.close();
    const after = await StateFile.open(path, key);
    expect(after.messages().map((m) => m.id)).toEqual(["m1", "m2"]);
  });

  it("a damaged record with records after it is refused, not skipped", async () => {
    const path = join(dir, "damaged.state");
    const key = randomBytes(32);
    const s = await StateFile.open(path, key);
    await s.lock();
    await s.putMessage(message(1)); // the first write makes the snapshot and an empty log
    await s.putMessage(message(2));
    await s.putMessage(message(3));
    await s.close();
    const log = await readFile(`${path}.log`);
    log[12 + 4 + 20]! ^= 1; // inside the first record's ciphertext
    await writeFile(`${path}.log`, log);
    await expect(StateFile.open(path, key)).rejects.toMatchObject({ code: "malformed" });
  });

  it("a log of the previous generation (a crash between the new snapshot and its log) is ignored", async () => {
    const path = join(dir, "generation.state");
    const key = randomBytes(32);
    const s = await StateFile.open(path, key);
    await s.lock();
    await s.putMessage(message(1));
    await s.setMessageState("m1", "sent");
    await copyFile(`${path}.log`, join(dir, "old.log")); // holds m1 → "sent"
    await s.setMessageState("m1", "delivered");
    // Write until a compaction replaces the snapshot (it holds everything; the new log is empty).
    const first = await readFile(path);
    for (let i = 2; (await readFile(path)).equals(first); i++) {
      expect(i).toBeLessThan(200);
      await s.putMessage(message(i, "z".repeat(10_000)));
    }
    await s.close();
    const now = await contents(await StateFile.open(path, key));
    expect(now.messages[0]!.state).toBe("delivered");
    // The crash: the old generation's log still in place. Replayed, it would take m1 back to "sent".
    await copyFile(join(dir, "old.log"), `${path}.log`);
    expect(await contents(await StateFile.open(path, key))).toEqual(now);
  });

  it("kill -9 at any point loses nothing the writer was told was on disk", async () => {
    const path = join(dir, "killed.state");
    const key = randomBytes(32);
    let acknowledged = -1;
    for (const stopAfter of [9, 45]) {
      const child: ChildProcess = spawn(
        process.execPath,
        ["--import", "tsx", WRITER, path, key.toString("hex")],
        { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
      );
      const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
      let err = "";
      child.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
      });
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`the writer stalled: ${err}`)), 60_000);
          let buffered = "";
          child.stdout!.on("data", (d: Buffer) => {
            buffered += d.toString();
            const lines = buffered.split("\n");
            buffered = lines.pop()!;
            for (const l of lines) acknowledged = Math.max(acknowledged, Number(l));
            if (acknowledged >= stopAfter) {
              clearTimeout(timer);
              child.kill("SIGKILL"); // wherever it is: mid-append, mid-compaction, between writes
              resolve();
            }
          });
          child.on("exit", () => {
            clearTimeout(timer);
            reject(new Error(`the writer exited: ${err}`));
          });
        });
      } finally {
        child.kill("SIGKILL");
        await exited;
      }
      // The lock of the killed process is stale: the next writer takes it over.
      const s = await StateFile.open(path, key);
      const ids = new Set(s.messages().map((m) => m.id));
      for (let i = 0; i <= acknowledged; i++) {
        expect(ids.has(`m${i}`), `m${i}`).toBe(true);
        // Its state change was awaited before the step was printed.
        expect((await s.getMessage(`m${i}`))?.state).toBe("sent");
      }
      expect((await s.loadSession(CONTACT))?.[0]).toBeGreaterThanOrEqual(acknowledged & 0xff);
    }
  }, 120_000);
});
