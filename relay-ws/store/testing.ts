/**
 * Records for tests of the store (and its crash workers): fresh random ids and keys, as the relay
 * would create them; and the harness that SIGKILLs a worker mid-write. Never imported by the relay
 * itself.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { NewMessage, QueueRecord, RelayStore } from "./types.ts";

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

/**
 * The `appendBatch` contract (types.ts; docs/protocol/relay.md §Batches), run on any engine: what
 * it observed, to compare with APPEND_BATCH_EXPECTED. A fresh queue, quota 6: a batch with a
 * duplicate of a stored message and one of its own, then one over the quota, then one on a
 * suspended queue and one on a missing queue; the bodies read back in order.
 */
export async function appendBatchContract(store: RelayStore): Promise<unknown> {
  const now = Date.now();
  const q = randomQueue();
  await store.createQueue(q);
  const m = (k: number) => newMessage(Uint8Array.of(k), now, 60_000);
  const stored = m(1);
  const first = await store.append(q.recipientId, stored, 6);
  const again = m(3);
  const dupInside = { ...again, msgId: new Uint8Array(randomBytes(24)) };
  const batch = await store.appendBatch(q.recipientId, [m(2), stored, again, dupInside, m(4)], 6);
  const over = await store.appendBatch(q.recipientId, [m(5), m(6), m(7), m(8)], 6);
  const bodies: number[] = [];
  let cursor = -1;
  for (let k = 0; k < 10; k++) {
    const next = await store.next(q.recipientId, cursor);
    if (!next) break;
    cursor = next.seq;
    const block = await store.read(q.recipientId, next.seq);
    bodies.push(block ? block[2]! : -1);
  }
  await store.suspendQueue(q.recipientId);
  const suspended = await store.appendBatch(q.recipientId, [m(9), m(10)], 100);
  const missing = await store.appendBatch(randomQueue().recipientId, [m(11)], 100);
  return { first, batch, over, bodies, suspended, missing };
}

export const APPEND_BATCH_EXPECTED = {
  first: "ok",
  batch: ["ok", "duplicate", "ok", "duplicate", "ok"],
  over: ["ok", "ok", "quota", "quota"],
  bodies: [1, 2, 3, 4, 5, 6],
  suspended: ["suspended", "suspended"],
  missing: ["missing"],
};
