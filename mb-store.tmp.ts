import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { LmdbStore } from "./relay-ws/store/lmdb.ts";
import { randomQueue, newMessage } from "./relay-ws/store/testing.ts";
const body = new Uint8Array(randomBytes(1024));
const store = new LmdbStore({ path: mkdtempSync(join(tmpdir(), "mb-")), masterKey: new Uint8Array(32), sync: false });
const qs = Array.from({ length: 4 }, randomQueue);
for (const q of qs) await store.createQueue(q);
const s = performance.now();
let n = 0;
for (let r = 0; r < 400; r++) {
  await Promise.all(qs.flatMap((q) => Array.from({ length: 16 }, () => store.append(q.recipientId, newMessage(body, Date.now(), 3600_000), 1e9))));
  for (const q of qs) {
    let after = -1;
    const got: { seq: number; msgId: Uint8Array }[] = [];
    for (;;) { const m = await store.next(q.recipientId, after); if (!m) break; after = m.seq; const b = await store.readBucket(q.recipientId, m.seq); b!.fill(0); await store.markDelivered(q.recipientId, m.seq); got.push(m); n++; }
    await Promise.all(got.map((m) => store.ack(q.recipientId, m.seq, m.msgId)));
  }
}
console.log("store cycle", ((performance.now() - s) * 1000 / n).toFixed(1), "µs/msg", n);
await store.close();
