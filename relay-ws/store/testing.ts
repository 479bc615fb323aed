/**
 * Records for tests of the store (and its crash workers): fresh random ids and keys, as the relay
 * would create them; the harness that SIGKILLs a worker mid-write; and the contracts every engine
 * keeps (lmdb.test.ts and redis.test.ts run each against their store). Never imported by the relay
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
  const bodies = await bodiesOf(store, q.recipientId);
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

/** The bodies (first byte of each) of `rid`'s messages, oldest first. */
async function bodiesOf(store: RelayStore, rid: Uint8Array): Promise<number[]> {
  const bodies: number[] = [];
  for (let m = await store.next(rid, -1), k = 0; m && k < 100; m = await store.next(rid, m.seq), k++) {
    const block = await store.read(rid, m.seq);
    bodies.push(block ? block[2]! : -1);
  }
  return bodies;
}

/**
 * The send-id contract (docs/protocol/relay.md, SEND: replays), run on any engine: what it
 * observed, to compare with SEND_ID_EXPECTED. On one queue: a retry of a stored message, of one
 * whose ACK is running, of an acknowledged and of a dropped one (all DUPLICATE: "already
 * stored"); the zero send id, never DUPLICATE of a stored or acknowledged message (send ids are
 * random; on LMDB zero is a migrated record's "unknown", and a DUPLICATE for a message not stored
 * is a message lost), twice in one batch too; a batch retrying a send id whose first write is
 * not answered yet (DUPLICATE, and the batch's later message after it); the bodies read back.
 * That first write failing while the batch waits is LMDB's case alone (lmdb.test.ts): on Redis
 * each write is one script, run whole in call order on the store's one connection, so the batch's
 * script meets whatever the first one left — nothing is pending in memory for it to wait on.
 */
export async function sendIdContract(store: RelayStore): Promise<unknown> {
  const now = Date.now();
  const q = randomQueue();
  const rid = q.recipientId;
  await store.createQueue(q);
  const m = (k: number) => newMessage(Uint8Array.of(k), now, 3_600_000);
  const zero = (k: number) => ({ ...m(k), sendId: new Uint8Array(16) });
  const again = (x: NewMessage) => ({ ...x, msgId: new Uint8Array(randomBytes(24)) });
  const oldest = async () => (await store.next(rid, -1))!;

  const a = m(1);
  const stored = [await store.append(rid, a, 100), await store.append(rid, again(a), 100)];
  const first = await oldest();
  const acking = store.ack(rid, first.seq, first.msgId);
  const duringAck = store.append(rid, again(a), 100);
  const acked = [await acking, await duringAck, await store.append(rid, again(a), 100)];
  const b = m(2);
  await store.append(rid, b, 100);
  const dropped = [await store.drop(rid, (await oldest()).seq), await store.append(rid, again(b), 100)];

  const zeros = [await store.append(rid, zero(3), 100), await store.append(rid, zero(4), 100)];
  const z3 = await oldest();
  const zeroAcked = [await store.ack(rid, z3.seq, z3.msgId), await store.append(rid, zero(5), 100)];
  const zeroBatch = await store.appendBatch(rid, [zero(6), zero(7)], 100);

  const c = m(8);
  const inFlight = store.append(rid, c, 100);
  const batch = store.appendBatch(rid, [again(c), m(9)], 100);
  const retried = { first: await inFlight, batch: await batch };
  return { stored, acked, dropped, zeros, zeroAcked, zeroBatch, retried, bodies: await bodiesOf(store, rid) };
}

export const SEND_ID_EXPECTED = {
  stored: ["ok", "duplicate"],
  acked: [true, "duplicate", "duplicate"],
  dropped: [true, "duplicate"],
  zeros: ["ok", "ok"],
  zeroAcked: [true, "ok"],
  zeroBatch: ["ok", "ok"],
  retried: { first: "ok", batch: ["duplicate", "ok"] },
  bodies: [4, 5, 6, 7, 8, 9],
};

/**
 * Messages sent with the zero send id expire each at its own expiry (`gc`), as any other: several
 * stored under one send id must not share one expiry (docs/protocol/relay.md, SEND). What it
 * observed, to compare with ZERO_EXPIRY_EXPECTED.
 */
export async function zeroExpiryContract(store: RelayStore): Promise<unknown> {
  const now = Date.now();
  const q = randomQueue();
  await store.createQueue(q);
  const zero = (k: number, ttlMs: number) => ({
    ...newMessage(Uint8Array.of(k), now, ttlMs),
    sendId: new Uint8Array(16),
  });
  const sent = [
    await store.append(q.recipientId, zero(1, 60_000), 100),
    await store.append(q.recipientId, zero(2, 120_000), 100),
    await store.append(q.recipientId, zero(3, 60_000), 100),
  ];
  const early = await bodiesOf(store, q.recipientId);
  const firstGc = (await store.gc(now + 90_000)).expiredMessages;
  const middle = await bodiesOf(store, q.recipientId);
  const secondGc = (await store.gc(now + 180_000)).expiredMessages;
  return { sent, early, firstGc, middle, secondGc, late: await bodiesOf(store, q.recipientId) };
}

export const ZERO_EXPIRY_EXPECTED = {
  sent: ["ok", "ok", "ok"],
  early: [1, 2, 3],
  firstGc: 2,
  middle: [2],
  secondGc: 1,
  late: [],
};

/** One step of `storeOps`: a SEND or a SENDS batch of send ids (by number), or the oldest message ACKed or dropped. */
export type StoreOp =
  | { readonly k: "send"; readonly id: number }
  | { readonly k: "batch"; readonly ids: readonly number[] }
  | { readonly k: "ack" }
  | { readonly k: "drop" };

/**
 * Runs `ops` on a fresh queue of `store` (queue quota `quota`), one after the other, and returns
 * every answer and the bodies left, oldest first: two engines given the same steps must answer
 * the same. `sendIds[n]` is send id number n (send ids repeat on purpose: retries); each message's
 * body is its step's number.
 */
export async function storeOps(
  store: RelayStore,
  ops: readonly StoreOp[],
  sendIds: readonly Uint8Array[],
  quota: number,
): Promise<unknown[]> {
  const now = Date.now();
  const q = randomQueue();
  const rid = q.recipientId;
  await store.createQueue(q);
  let body = 0;
  const m = (id: number) => ({ ...newMessage(Uint8Array.of(++body), now, 3_600_000), sendId: sendIds[id]! });
  const out: unknown[] = [];
  for (const op of ops) {
    if (op.k === "send") out.push(await store.append(rid, m(op.id), quota));
    else if (op.k === "batch")
      out.push(
        await store.appendBatch(
          rid,
          op.ids.map((id) => m(id)),
          quota,
        ),
      );
    else {
      const oldest = await store.next(rid, -1);
      if (!oldest) out.push("empty");
      else if (op.k === "ack") out.push(await store.ack(rid, oldest.seq, oldest.msgId));
      else out.push(await store.drop(rid, oldest.seq));
    }
  }
  out.push(await bodiesOf(store, rid));
  return out;
}
