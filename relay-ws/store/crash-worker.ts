/**
 * Test helper for relay-ws/store/crash.test.ts (not part of the relay): drives a real LmdbStore
 * with a very short key epoch — appends, ACKs and GC runs (rotation, re-wrapping, destruction)
 * overlapping — and prints one line per durable result, until it is SIGKILLed:
 *   Q <rid hex>            the queue
 *   A <seq> <body>         append resolved "ok" (durable)
 *   K <seq>                ack resolved true (durable)
 *   D <destroyed epochs>   a GC destroyed epoch keys
 * Usage: node --import tsx relay-ws/store/crash-worker.ts <data dir> <master key hex>
 */
import { LmdbStore } from "./lmdb.ts";
import { newMessage, randomQueue } from "./testing.ts";

const [dir, keyHex] = process.argv.slice(2);
if (!dir || !keyHex) throw new Error("usage: crash-worker.ts <dir> <master key hex>");
const store = new LmdbStore({ path: dir, masterKey: Buffer.from(keyHex, "hex"), keyEpochMs: 15 });
const queue = randomQueue();
const rid = queue.recipientId;
await store.createQueue(queue);
const out = (line: string) => process.stdout.write(`${line}\n`);
out(`Q ${Buffer.from(rid).toString("hex")}`);

const acked = new Set<number>();
async function appendOne(i: number): Promise<void> {
  const body = `crash-${i}`;
  const r = await store.append(
    rid,
    newMessage(new TextEncoder().encode(body), Date.now(), 3_600_000),
    1_000_000,
  );
  if (r === "ok") out(`A ${i} ${body}`);
}
async function ackOldest(): Promise<void> {
  const m = await store.next(rid, -1);
  if (!m || acked.has(m.seq)) return;
  acked.add(m.seq);
  if (await store.ack(rid, m.seq, m.msgId)) out(`K ${m.seq}`);
}
async function gc(): Promise<void> {
  const r = await store.gc(Date.now());
  if (r.destroyedEpochs > 0) out(`D ${r.destroyedEpochs}`);
}

// Sequence numbers follow append order: append i gets seq i (one queue, appends in order).
for (let i = 0; i < 1_000_000; i += 4) {
  await Promise.all([appendOne(i), appendOne(i + 1), appendOne(i + 2), appendOne(i + 3), ackOldest(), gc()]);
}
