/**
 * A child process for cli/state-file.test.ts "kill -9 loses nothing": it opens the state file
 * named on its command line (key in hex) and writes without end — a message of ~6 KiB, the
 * session's bytes and an outbox entry per step — printing `i` once step i's writes have resolved
 * (the engine's promise that they are on disk). The parent kills it with SIGKILL at any point,
 * mid-append or mid-compaction, and checks every printed step survived.
 */
import { StateFile } from "../../cli/state-file.ts";

const [path, keyHex] = process.argv.slice(2);
if (!path || !keyHex) throw new Error("usage: state-file-writer.ts <path> <key hex>");
const storage = await StateFile.open(path, Buffer.from(keyHex, "hex"));
await storage.lock();
const contactId = "c".repeat(64);
const text = "x".repeat(6000);
for (let i = 0; ; i++) {
  const id = `m${i}`;
  await Promise.all([
    storage.queueOutgoing({ id, contactId, direction: "out", text: `${i} ${text}`, at: i, state: "queued" }),
    storage.saveSession(contactId, Uint8Array.of(i & 0xff, (i >> 8) & 0xff)),
  ]);
  await storage.setMessageState(id, "sent");
  process.stdout.write(`${i}\n`);
}
