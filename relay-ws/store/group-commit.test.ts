/**
 * Group commit in the LMDB store (docs/decisions.md (Relay), "Group commit"): appends and ACKs of
 * several queues ride one commit, each queue's state record is updated once per commit (merged),
 * and a pushed message's block comes from memory (hot-blocks.ts) — with the same results as
 * commits one by one: per-queue bytes and sequence numbers across restarts and a SIGKILL, every
 * message delivered in order, exactly once.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LmdbStore, type LmdbStoreOptions } from "./lmdb.ts";
import { killWorkerWhen, newMessage, randomQueue } from "./testing.ts";

const HOUR = 3_600_000;
/** What one message with a body ≤ 254 bytes costs its queue: header, 256-byte sealed bucket, key record. */
const SMALL_COST = 1 + 16 + 40 + 64 + 12 + 256 + 16; // a format-2 message record (docs/protocol/relay.md §At rest)
const dirs: string[] = [];
const stores: LmdbStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "loft-relay-group-"));
  dirs.push(d);
  return d;
};
const openStore = (o: LmdbStoreOptions) => {
  const s = new LmdbStore(o);
  stores.push(s);
  return s;
};
const text = (block: Uint8Array | undefined) =>
  block ? new TextDecoder().decode(block.subarray(2, 2 + ((block[0]! << 8) | block[1]!))) : undefined;
const utf8 = (s: string) => new TextEncoder().encode(s);

/** Every message of a queue in order, read as a pushed delivery would (next, then readBucket). */
async function drain(
  store: LmdbStore,
  rid: Uint8Array,
): Promise<{ seq: number; msgId: Uint8Array; body: string }[]> {
  const out: { seq: number; msgId: Uint8Array; body: string }[] = [];
  let after = -1;
  for (let i = 0; i < 10_000; i++) {
    const m = await store.next(rid, after);
    if (!m) break;
    after = m.seq;
    out.push({
      seq: m.seq,
      msgId: m.msgId,
      body: text(await store.readBucket(rid, m.seq)) ?? "<unreadable>",
    });
  }
  return out;
}

describe("relay store group commit", () => {
  // Sealed on the event loop, and on a worker thread (seal-pool.ts): the same results.
  for (const [hotBlockBytes, sealThreads] of [
    [0, 0],
    [1024, 0],
    [undefined, 0],
    [undefined, 1],
  ] as const) {
    it(`appends and ACKs of several queues in the same commits keep order, bytes and seqs (hot blocks ${hotBlockBytes ?? "default"}, seal threads ${sealThreads})`, async () => {
      const path = tempDir();
      const options: LmdbStoreOptions = { path, masterKey: randomBytes(32), hotBlockBytes, sealThreads };
      let store = openStore(options);
      const queues = [randomQueue(), randomQueue(), randomQueue(), randomQueue()];
      await Promise.all(queues.map((q) => store.createQueue(q)));
      const now = Date.now();
      // 4 × 50 appends started in one tick: one or two commits for all of them.
      const first = await Promise.all(
        queues.flatMap((q, qi) =>
          Array.from({ length: 50 }, (_, i) =>
            store.append(q.recipientId, newMessage(utf8(`m-${qi}-${i}`), now, HOUR), 1000),
          ),
        ),
      );
      expect(first.every((r) => r === "ok")).toBe(true);
      for (const [qi, q] of queues.entries()) {
        const got = await drain(store, q.recipientId);
        expect(got.map((m) => m.body)).toEqual(Array.from({ length: 50 }, (_, i) => `m-${qi}-${i}`));
        expect(got.map((m) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i));
        expect(store.queueBytes(q.recipientId)).toBe(50 * SMALL_COST);
      }
      // ACK the first 30 of each queue while 10 more are appended to each, all in one tick.
      const firstMsgs = await Promise.all(queues.map((q) => drain(store, q.recipientId)));
      const mixed = await Promise.all([
        ...queues.flatMap((q, qi) =>
          firstMsgs[qi]!.slice(0, 30).map((m) => store.ack(q.recipientId, m.seq, m.msgId)),
        ),
        ...queues.flatMap((q, qi) =>
          Array.from({ length: 10 }, (_, i) =>
            store.append(q.recipientId, newMessage(utf8(`m-${qi}-${50 + i}`), now, HOUR), 1000),
          ),
        ),
      ]);
      expect(mixed.every((r) => r === true || r === "ok")).toBe(true);

      // What a restart reads back: the persisted bytes and seqs, not the in-memory ones.
      await store.close();
      stores.splice(stores.indexOf(store), 1);
      store = openStore(options);
      for (const [qi, q] of queues.entries()) {
        const got = await drain(store, q.recipientId);
        expect(got.map((m) => m.body)).toEqual(Array.from({ length: 30 }, (_, i) => `m-${qi}-${30 + i}`));
        expect(store.queueBytes(q.recipientId)).toBe(30 * SMALL_COST);
        expect(await store.append(q.recipientId, newMessage(utf8("after"), now, HOUR), 1000)).toBe("ok");
        const last = (await drain(store, q.recipientId)).at(-1);
        expect(last).toMatchObject({ seq: 60, body: "after" });
      }
    });
  }

  it("a message expires through its send record (no expiry entry of its own); ACKed ones leave nothing for GC", async () => {
    let now = Date.UTC(2031, 0, 1);
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32), clock: () => now });
    const q = randomQueue();
    await store.createQueue(q);
    for (let i = 0; i < 5; i++)
      expect(await store.append(q.recipientId, newMessage(utf8(`e-${i}`), now, HOUR), 100)).toBe("ok");
    const [first, second] = await drain(store, q.recipientId);
    expect(
      await Promise.all([
        store.ack(q.recipientId, first!.seq, first!.msgId),
        store.ack(q.recipientId, second!.seq, second!.msgId),
      ]),
    ).toEqual([true, true]);
    expect(await store.gc(now)).toMatchObject({ expiredMessages: 0, expiredSendIds: 0 });
    now += HOUR + 1;
    // Three messages left, five send ids: every one expires, each message once.
    expect(await store.gc(now)).toMatchObject({ expiredMessages: 3, expiredSendIds: 5 });
    expect(store.stats().messages).toBe(0);
    expect(store.queueBytes(q.recipientId)).toBe(0);
    expect(await store.gc(now + HOUR)).toMatchObject({ expiredMessages: 0, expiredSendIds: 0 });
  });

  for (const sealThreads of [0, 1])
    it(`SIGKILL with appends and ACKs of four queues in every commit: nothing durable lost, no ACKed message back, bytes match (seal threads ${sealThreads})`, async () => {
      const dir = tempDir();
      const masterKey = randomBytes(32);
      const rids = new Map<number, string>();
      const appended = new Map<string, string>(); // "q seq" → body
      const acked = new Set<string>();
      await killWorkerWhen(
        "group-commit-worker",
        [dir, masterKey.toString("hex"), "4", String(sealThreads)],
        ([kind, q, a, b]) => {
          if (kind === "Q") rids.set(Number(q), a!);
          else if (kind === "A") appended.set(`${q} ${a}`, b!);
          else if (kind === "K") acked.add(`${q} ${a}`);
        },
        () => appended.size >= 600 && acked.size >= 100,
      );
      expect(rids.size).toBe(4);

      const store = openStore({ path: dir, masterKey });
      for (const [qi, ridHex] of rids) {
        const rid = Buffer.from(ridHex, "hex");
        const stored = await drain(store, rid);
        const bySeq = new Map(stored.map((m) => [m.seq, m.body]));
        expect(new Set(stored.map((m) => m.seq)).size).toBe(stored.length);
        for (const [key, body] of appended) {
          const [q, seq] = key.split(" ").map(Number) as [number, number];
          if (q !== qi) continue;
          if (acked.has(key)) expect(bySeq.has(seq), `${key} was ACKed but came back`).toBe(false);
          // Not confirmed ACKed: an ACK in flight at the kill may have deleted it; if there, intact.
          else if (bySeq.has(seq)) expect(bySeq.get(seq)).toBe(body);
        }
        // ACKs take the oldest one at a time: all durable appends but those ACKed or being ACKed remain.
        const durable = [...appended.keys()].filter((k) => k.startsWith(`${qi} `) && !acked.has(k)).length;
        expect(stored.length).toBeGreaterThanOrEqual(durable - 1);
        // The persisted byte count agrees with the records that survived (merged state changes were
        // committed with the records they describe).
        expect(store.queueBytes(rid)).toBe(stored.length * SMALL_COST);
      }
    });
});
