/**
 * Records for tests of the store (and its crash workers): fresh random ids and keys, as the relay
 * would create them; and the harness that SIGKILLs a worker mid-write. Never imported by the relay
 * itself.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { NewMessage, QueueRecord } from "./types.ts";

/** A queue with fresh random ids and keys, no sender key yet. */
export const randomQueue = (): QueueRecord => ({
  recipientId: new Uint8Array(randomBytes(24)),
  senderId: new Uint8Array(randomBytes(24)),
  recipientKey: new Uint8Array(randomBytes(32)),
  rcvKey: new Uint8Array(randomBytes(32)),
  senderKey: undefined,
  suspended: false,
});

/** A message of `body` sent at `now` (ms) that expires `ttlMs` later, with fresh ids. */
export const newMessage = (body: Uint8Array, now: number, ttlMs: number): NewMessage => ({
  msgId: new Uint8Array(randomBytes(24)),
  sendId: new Uint8Array(randomBytes(16)),
  timestamp: Math.floor(now / 1000),
  expiresAt: now + ttlMs,
  body,
});

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Runs a store worker (`relay-ws/store/<worker>.ts`, which prints one line per durable result) in
 * a child process, hands each line's space-separated fields to `onLine`, and SIGKILLs it as soon as
 * `enough()` holds after a chunk of output. Rejects if the worker exits first, or prints 500 000
 * lines without getting there (bounded: such a worker fails the test instead of running on).
 */
export async function killWorkerWhen(
  worker: string,
  args: string[],
  onLine: (fields: string[]) => void,
  enough: () => boolean,
): Promise<void> {
  const child = spawn(process.execPath, ["--import", "tsx", `relay-ws/store/${worker}.ts`, ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let buffered = "";
  let errors = "";
  child.stderr.on("data", (c: Buffer) => {
    errors += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let lineCount = 0;
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        if (++lineCount > 500_000) reject(new Error("worker never reached the kill point"));
        onLine(line.split(" "));
      }
      if (enough()) {
        child.kill("SIGKILL");
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`worker exited early:\n${errors}`)));
  });
  try {
    await ready;
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}
