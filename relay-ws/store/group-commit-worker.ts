/**
 * Test helper for relay-ws/store/group-commit.test.ts (not part of the relay): drives a real
 * LmdbStore with appends and ACKs to several queues in the same commits (group commit, merged
 * per-queue state changes) and prints one line per durable result, until it is SIGKILLed:
 *   Q <queue index> <rid hex>     a queue
 *   A <queue index> <seq> <body>  append resolved "ok" (durable)
 *   K <queue index> <seq>         ack resolved true (durable)
 * Usage: node --import tsx relay-ws/store/group-commit-worker.ts <data dir> <master key hex> <queues> [seal threads]
 */
import { LmdbStore } from "./lmdb.ts";
import { newMessage, randomQueue } from "./testing.ts";

const [dir, keyHex, queuesArg, sealArg] = process.argv.slice(2);
if (!dir || !keyHex) throw new Error("usage: group-commit-worker.ts <dir> <master key hex> <queues>");
const store = new LmdbStore({
  path: dir,
  masterKey: Buffer.from(keyHex, "hex"),
  sealThreads: Number(sealArg ?? 0),
});
const out = (line: string) => process.stdout.write(`${line}\n`);
const rids: Uint8Array[] = [];
for (let q = 0; q < Math.max(1, Number(queuesArg ?? 4)); q++) {
  const queue = randomQueue();
  await store.createQueue(queue);
  rids.push(queue.recipientId);
  out(`Q ${q} ${Buffer.from(queue.recipientId).toString("hex")}`);
}

const acked = rids.map(() => new Set<number>());
async function appendOne(q: number, i: number): Promise<void> {
  const body = `gc-${q}-${i}`;
  const r = await store.append(
    rids[q]!,
    newMessage(new TextEncoder().encode(body), Date.now(), 3_600_000),
    1_000_000,
  );
  if (r === "ok") out(`A ${q} ${i} ${body}`);
}
async function ackOldest(q: number): Promise<void> {
  const m = await store.next(rids[q]!, -1);
  if (!m || acked[q]!.has(m.seq)) return;
  acked[q]!.add(m.seq);
  if (await store.ack(rids[q]!, m.seq, m.msgId)) out(`K ${q} ${m.seq}`);
}

// Each round: three appends per queue and one ACK per queue, all started in the same tick, so one
// commit carries appends and deletions of every queue. Seqs follow the append order per queue.
for (let i = 0; i < 1_000_000; i += 3) {
  const work: Promise<void>[] = [];
  for (let q = 0; q < rids.length; q++)
    work.push(appendOne(q, i), appendOne(q, i + 1), appendOne(q, i + 2), ackOldest(q));
  await Promise.all(work);
}
