/**
 * The LMDB store's own guarantees, against the real store on temp dirs (no relay around it):
 * epoch keys across restarts and rotations, the keyring's crash safety and master-key rotation,
 * the byte budget (global quota, per-queue bytes, what a 0-byte body costs), idle-queue expiry,
 * migration of records written before epoch keys, and a data dir whose name has a dot.
 */
import { randomBytes } from "node:crypto";
import diagnosticsChannel from "node:diagnostics_channel";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Worker } from "node:worker_threads";
import fc from "fast-check";
import { open } from "lmdb";
import { afterEach, describe, expect, it } from "vitest";
import { BLOCK_SIZE, padBlock } from "../../core/relay/protocol.ts";
import { FUZZ_RUNS } from "../../test/support/fuzz.ts";
import { sealAtRest } from "../node-crypto.ts";
import { bucketSize } from "./at-rest.ts";
import { DueHeap } from "./due-heap.ts";
import { KEYRING_FILE, keyringEpochs, LEGACY_KEYRING_FILE, SLOT_SIZE } from "./keyring.ts";
import { failedOpensClosed, LmdbStore, type LmdbStoreOptions, type OpenStage, STORE_FORMAT } from "./lmdb.ts";
import { type Sealed, SealPool } from "./seal-pool.ts";
import {
  APPEND_BATCH_EXPECTED,
  appendBatchContract,
  newMessage,
  randomQueue as queue,
  SEND_ID_EXPECTED,
  sendIdContract,
  ZERO_EXPIRY_EXPECTED,
  zeroExpiryContract,
} from "./testing.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const dirs: string[] = [];
const tempDir = (prefix = "loft-relay-store-") => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
const stores: LmdbStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function openStore(options: LmdbStoreOptions): LmdbStore {
  const s = new LmdbStore(options);
  stores.push(s);
  return s;
}
async function reopen(s: LmdbStore, options: LmdbStoreOptions): Promise<LmdbStore> {
  await s.close();
  stores.splice(stores.indexOf(s), 1);
  return openStore(options);
}
/** A store in a new folder holding one queue with one message `body`, closed again (tests then change its files). */
async function closedStoreWithOne(body: string, masterKey: Uint8Array = randomBytes(32)) {
  const path = tempDir();
  const store = openStore({ path, masterKey });
  const q = queue();
  await store.createQueue(q);
  expect(await store.append(q.recipientId, msg(utf8(body), Date.now()), 10)).toBe("ok");
  await store.close();
  stores.splice(stores.indexOf(store), 1);
  return { path, masterKey, q };
}
/** The store's LMDB environment opened directly: tests write earlier layouts and read what is on disk. */
const openRaw = (path: string, readOnly = false) =>
  open({ path, noSubdir: false, maxDbs: 16, ...(readOnly ? { readOnly: true } : {}) });
/** A sub-database as the store opens it (binary keys and values, uncompressed). */
const rawDb = (env: ReturnType<typeof open>, name: string) =>
  env.openDB<Buffer, Buffer>(name, { keyEncoding: "binary", encoding: "binary", compression: false });

const msg = (body: Uint8Array, now: number, ttl = 48 * HOUR) => newMessage(body, now, ttl);

/** A `commitFault` that fails the next group commit with `kind` once `arm()` was called, then none. */
function oneFault(kind: "before" | "after" | "midway") {
  let armed = false;
  return {
    arm: () => {
      armed = true;
    },
    commitFault: () => {
      const fault = armed ? kind : undefined;
      armed = false;
      return fault;
    },
  };
}

const text = (block: Uint8Array | undefined) => {
  if (!block) return undefined;
  const len = (block[0]! << 8) | block[1]!;
  return new TextDecoder().decode(block.subarray(2, 2 + len));
};
const utf8 = (s: string) => new TextEncoder().encode(s);

describe("relay LMDB store", () => {
  it("a stored message survives epoch rotations (re-wrapped), restarts, and its old epoch's destruction", async () => {
    const path = tempDir();
    const masterKey = randomBytes(32);
    let now = Date.UTC(2031, 5, 1);
    const options = { path, masterKey, clock: () => now, keyEpochMs: HOUR };
    let store = openStore(options);
    const q = queue();
    await store.createQueue(q);
    expect(await store.append(q.recipientId, msg(utf8("survivor"), now, 7 * DAY), 10)).toBe("ok");
    expect(await store.append(q.recipientId, msg(utf8("acked"), now, 7 * DAY), 10)).toBe("ok");
    const acked = await store.next(q.recipientId, 0);
    expect(await store.ack(q.recipientId, acked!.seq, acked!.msgId)).toBe(true);

    now += HOUR; // epoch 1 begins; epoch 0 still wraps "survivor"
    let r = await store.gc(now);
    expect(r).toMatchObject({ destroyedEpochs: 0, rewrappedKeys: 0 });
    expect(keyringEpochs(path, masterKey)).toEqual([
      [0, 1],
      [0, 1],
    ]);
    store = await reopen(store, options);
    now += HOUR; // epoch 2; epoch 0 began two epochs ago: re-wrapped, then destroyed
    r = await store.gc(now);
    // 0 (its survivor and the queue's rcv key re-wrapped) and 1 (empty)
    expect(r).toMatchObject({ destroyedEpochs: 2, rewrappedKeys: 2 });
    expect(keyringEpochs(path, masterKey)).toEqual([[2], [2]]);
    expect(store.stats().keyEpochs).toBe(1);
    store = await reopen(store, options);
    expect(text(await store.read(q.recipientId, 0))).toBe("survivor");
    expect(await store.read(q.recipientId, acked!.seq)).toBeUndefined();
  });

  it("appendBatch (SENDS, protocol 1.3): in order, duplicates skipped, a prefix up to the first refusal", async () => {
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32) });
    expect(await appendBatchContract(store)).toEqual(APPEND_BATCH_EXPECTED);
  });

  it("send ids (the contract Redis keeps too): DUPLICATE while stored, during and after an ACK, after a drop; the zero id never; each zero-id message expires at its own time", async () => {
    expect(await sendIdContract(openStore({ path: tempDir(), masterKey: randomBytes(32) }))).toEqual(
      SEND_ID_EXPECTED,
    );
    expect(await zeroExpiryContract(openStore({ path: tempDir(), masterKey: randomBytes(32) }))).toEqual(
      ZERO_EXPIRY_EXPECTED,
    );
  });

  it("an epoch that wraps only message keys (no byepoch entry) lives while they do, counted again at open", async () => {
    const path = tempDir();
    const masterKey = randomBytes(32);
    let now = Date.UTC(2031, 5, 1);
    const options = { path, masterKey, clock: () => now, keyEpochMs: HOUR };
    let store = openStore(options);
    const q = queue();
    await store.createQueue(q); // its rcv key: epoch 0
    now += HOUR;
    await store.gc(now); // epoch 1 begins
    expect(await store.append(q.recipientId, msg(utf8("in epoch 1"), now, 7 * DAY), 10)).toBe("ok");
    expect(await store.append(q.recipientId, msg(utf8("acked"), now, 7 * DAY), 10)).toBe("ok");
    const acked = await store.next(q.recipientId, 0);
    expect(await store.ack(q.recipientId, acked!.seq, acked!.msgId)).toBe(true);
    store = await reopen(store, options);
    now += HOUR; // epoch 2: epoch 0 (the rcv key) is re-wrapped and destroyed; epoch 1 holds one message record, nothing else
    expect(await store.gc(now)).toMatchObject({ destroyedEpochs: 1, rewrappedKeys: 1 });
    expect(keyringEpochs(path, masterKey)[0]).toEqual([1, 2]);
    store = await reopen(store, options);
    expect(text(await store.read(q.recipientId, 0))).toBe("in epoch 1");
    now += HOUR; // epoch 3: epoch 1's message is re-wrapped (a scan of the records), then 1 is empty
    expect(await store.gc(now)).toMatchObject({ destroyedEpochs: 1, rewrappedKeys: 1 });
    expect(keyringEpochs(path, masterKey)[0]).toEqual([2, 3]);
    store = await reopen(store, options);
    expect(text(await store.read(q.recipientId, 0))).toBe("in epoch 1");
    const m = await store.next(q.recipientId, -1);
    expect(await store.ack(q.recipientId, m!.seq, m!.msgId)).toBe(true);
    now += HOUR; // epoch 4: 3 wrapped only the ACKed message; 2 is re-wrapped
    expect(await store.gc(now)).toMatchObject({ destroyedEpochs: 2, rewrappedKeys: 1 });
    expect(keyringEpochs(path, masterKey)[0]).toEqual([4]);
  });

  it("the keyring survives a torn slot, refuses a wrong key, and rotates to a new master key", async () => {
    const k2 = randomBytes(32);
    const { path, masterKey: k1, q } = await closedStoreWithOne("kept");

    // A crash in the middle of writing slot A: the reader takes slot B, and repairs A.
    const fd = openSync(join(path, KEYRING_FILE), "r+");
    writeSync(fd, randomBytes(SLOT_SIZE / 2), 0, SLOT_SIZE / 2, 20);
    closeSync(fd);
    expect(keyringEpochs(path, k1)[0]).toBeUndefined();
    let store = openStore({ path, masterKey: k1 });
    expect(keyringEpochs(path, k1)).toEqual([[0], [0]]);
    expect(text(await store.read(q.recipientId, 0))).toBe("kept");
    await store.close();
    stores.splice(0);

    expect(() => new LmdbStore({ path, masterKey: k2 })).toThrow(
      expect.objectContaining({ code: "LOFT_ERR_RELAY_MASTER_KEY" }),
    );
    // Rotation: k2 with k1 as the previous key re-seals the keyring; then k2 alone opens it.
    store = openStore({ path, masterKey: k2, previousMasterKey: k1 });
    await store.close();
    stores.splice(0);
    expect(keyringEpochs(path, k1)).toEqual([undefined, undefined]);
    store = openStore({ path, masterKey: k2 });
    expect(text(await store.read(q.recipientId, 0))).toBe("kept");
  });

  it("refuses to start when the keyring is gone but records need it", async () => {
    const { path, masterKey } = await closedStoreWithOne("x");
    rmSync(join(path, KEYRING_FILE));
    expect(() => new LmdbStore({ path, masterKey })).toThrow(
      expect.objectContaining({ code: "LOFT_ERR_RELAY_KEYRING" }),
    );
  });

  it("an open failing at any stage closes what it opened in reverse: the lock goes last, after LMDB and the seal worker; the next open works", async () => {
    const { path, masterKey, q } = await closedStoreWithOne("kept");
    const lockFiles = () => readdirSync(path).filter((n) => /^relay\.lock\.[0-9]+$/.test(n));
    // Whether this process still has the environment's files open (lmdb-js closes them at env close).
    const lmdbFiles = [join(realpathSync(path), "data.mdb"), join(realpathSync(path), "lock.mdb")];
    const envOpen = () =>
      readdirSync("/proc/self/fd").some((fd) => {
        try {
          return lmdbFiles.includes(readlinkSync(`/proc/self/fd/${fd}`));
        } catch {
          return false; // closed between the listing and the read
        }
      });
    expect(envOpen()).toBe(false);
    // Every worker thread started meanwhile (the store's own seal worker).
    const workers: Worker[] = [];
    const started = (m: unknown) => void workers.push((m as { worker: Worker }).worker);
    diagnosticsChannel.subscribe("worker_threads", started);
    try {
      for (const stage of ["lmdb", "keyring", "migrate", "scan"] satisfies OpenStage[]) {
        workers.length = 0;
        const openFault = (at: OpenStage) => {
          if (at === stage) throw new Error(`open fault at ${stage}`);
        };
        expect(() => new LmdbStore({ path, masterKey, sealThreads: 1, openFault })).toThrow(
          `open fault at ${stage}`,
        );
        // Never the dir unlocked while this process still has its environment open.
        expect({ stage, locked: lockFiles().length > 0, envOpen: envOpen() }).not.toMatchObject({
          locked: false,
          envOpen: true,
        });
        await failedOpensClosed();
        expect({ stage, locks: lockFiles(), envOpen: envOpen() }).toEqual({
          stage,
          locks: [],
          envOpen: false,
        });
        expect(workers).toHaveLength(1);
        // A worker's threadId is -1 once it has exited.
        expect(workers.map((w) => w.threadId)).toEqual([-1]);
        const next = openStore({ path, masterKey });
        expect(text(await next.read(q.recipientId, 0))).toBe("kept");
        await next.close();
        stores.splice(0);
        expect(lockFiles()).toEqual([]);
      }
    } finally {
      diagnosticsChannel.unsubscribe("worker_threads", started);
    }
    // A store opened right after a failed open (the lock of the failed one not released yet) keeps
    // the dir locked past that release: the process's openers share the lock (dir-lock.ts).
    expect(
      () =>
        new LmdbStore({
          path,
          masterKey,
          openFault: (at) => {
            if (at === "scan") throw new Error("open fault at scan");
          },
        }),
    ).toThrow("open fault at scan");
    const next = openStore({ path, masterKey });
    await failedOpensClosed();
    expect(lockFiles()).toHaveLength(1);
    expect(text(await next.read(q.recipientId, 0))).toBe("kept");
  });

  it("stores what was sent: a 0-byte body costs one small bucket, not a 16 KiB block", async () => {
    expect(bucketSize(0, BLOCK_SIZE)).toBe(256);
    expect(bucketSize(254, BLOCK_SIZE)).toBe(256);
    expect(bucketSize(255, BLOCK_SIZE)).toBe(512);
    expect(bucketSize(16_382, BLOCK_SIZE)).toBe(BLOCK_SIZE);
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32) });
    const q = queue();
    await store.createQueue(q);
    for (let i = 0; i < 200; i++)
      expect(await store.append(q.recipientId, msg(new Uint8Array(0), Date.now()), 1000)).toBe("ok");
    // 200 × 16 KiB before; now a few hundred bytes each (the pages of the message records).
    expect(store.stats().bytes).toBeLessThan(200 * 1024);
    expect(store.queueBytes(q.recipientId)).toBe(store.stats().storedBytes);
    expect(store.queueBytes(q.recipientId)).toBeLessThan(200 * 512);
    // Delivered at full block size all the same (the wire hides sizes).
    const block = await store.read(q.recipientId, 0);
    expect(block).toHaveLength(BLOCK_SIZE);
    expect(text(block)).toBe("");
  });

  it("a global byte quota refuses new blobs with 'full', keeps what is stored, and frees with deletions (across a restart)", async () => {
    const path = tempDir();
    const masterKey = randomBytes(32);
    const options = { path, masterKey, quotaBytes: 20_000 };
    let store = openStore(options);
    const a = queue();
    const b = queue();
    await store.createQueue(a);
    await store.createQueue(b);
    const body = new Uint8Array(1000).fill(7);
    let stored = 0;
    let result = "ok";
    for (let i = 0; i < 1000 && result === "ok"; i++) {
      result = await store.append((i % 2 ? a : b).recipientId, msg(body, Date.now()), 1000);
      if (result === "ok") stored++;
    }
    expect(result).toBe("full");
    expect(stored).toBeGreaterThan(5);
    expect(store.stats().storedBytes).toBeLessThanOrEqual(20_000);
    expect(store.queueBytes(a.recipientId) + store.queueBytes(b.recipientId)).toBe(store.stats().storedBytes);
    expect(
      await store.setPrekeys(
        a.recipientId,
        { bundle: new Uint8Array(5000), oneTime: [], replaceOneTime: false },
        10,
      ),
    ).toBe("full");

    store = await reopen(store, options);
    expect(store.stats().storedBytes).toBe(store.queueBytes(a.recipientId) + store.queueBytes(b.recipientId));
    expect(await store.append(a.recipientId, msg(body, Date.now()), 1000)).toBe("full");
    const first = await store.next(a.recipientId, -1);
    expect(await store.read(a.recipientId, first!.seq)).toBeDefined();
    expect(await store.ack(a.recipientId, first!.seq, first!.msgId)).toBe(true);
    expect(await store.append(a.recipientId, msg(body, Date.now()), 1000)).toBe("ok");
    await store.deleteQueue(b.recipientId);
    expect(store.stats().storedBytes).toBe(store.queueBytes(a.recipientId));
  });

  it("deletes queues idle for longer than idleQueueMs, and keeps the active ones", async () => {
    const path = tempDir();
    let now = Date.UTC(2031, 0, 1);
    const options = { path, masterKey: randomBytes(32), clock: () => now, idleQueueMs: 30 * DAY };
    let store = openStore(options);
    const idle = queue();
    const busy = queue();
    const reading = queue();
    for (const q of [idle, busy, reading]) await store.createQueue(q);
    await store.append(idle.recipientId, msg(utf8("never read"), now, 7 * DAY), 10);
    await store.setPrekeys(
      idle.recipientId,
      { bundle: utf8("b"), oneTime: [utf8("o")], replaceOneTime: false },
      10,
    );
    for (let day = 0; day < 40; day++) {
      now += DAY;
      if (day % 7 === 0) await store.append(busy.recipientId, msg(utf8(`d${day}`), now, DAY), 100);
      if (day % 10 === 0) await store.next(reading.recipientId, -1); // a SUB or GET
      if (day === 20) store = await reopen(store, options);
      await store.gc(now);
    }
    expect(await store.queueByRecipient(idle.recipientId)).toBeUndefined();
    expect(await store.queueBySender(idle.senderId)).toBeUndefined();
    expect(await store.takePrekeys(idle.recipientId)).toBeUndefined();
    expect(await store.queueByRecipient(busy.recipientId)).toBeDefined();
    expect(await store.queueByRecipient(reading.recipientId)).toBeDefined();
    expect(store.stats().queues).toBe(2);
  });

  it("migrates a store written before epoch keys: raw key records are wrapped, 16 KiB blocks still read", async () => {
    const path = tempDir();
    const q = queue();
    const rid = Buffer.from(q.recipientId);
    // The previous layout, written by hand: raw 32-byte key record, 16-byte queue state.
    const env = openRaw(path);
    const db = (name: string) => rawDb(env, name);
    const recKey = Buffer.concat([rid, Buffer.alloc(8)]);
    const keyKey = Buffer.concat([Buffer.of(0x6d), recKey]);
    const { key, sealed } = sealAtRest(padBlock(utf8("from before"), BLOCK_SIZE), keyKey);
    const header = Buffer.alloc(40);
    Buffer.from(randomBytes(24)).copy(header);
    header.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000)), 24);
    header.writeBigUInt64BE(BigInt(Date.now() + DAY), 32);
    const { encodeCanonical } = await import("../../core/codec/codec.ts");
    await env.transaction(() => {
      db("queues").put(
        rid,
        Buffer.from(encodeCanonical([q.senderId, q.recipientKey, q.rcvKey, null, false])),
      );
      db("senders").put(Buffer.from(q.senderId), rid);
      db("seqs").put(rid, Buffer.alloc(16));
      db("msgs").put(recKey, Buffer.concat([header, sealed]));
      db("keys").put(keyKey, key);
    });
    await env.close();

    const masterKey = randomBytes(32);
    const store = openStore({ path, masterKey });
    expect(text(await store.read(q.recipientId, 0))).toBe("from before");
    expect(store.queueBytes(q.recipientId)).toBeGreaterThan(BLOCK_SIZE);
    expect((await store.queueByRecipient(q.recipientId))?.rcvKey).toEqual(q.rcvKey);
    expect((await store.queueBySender(q.senderId))?.rcvKey).toEqual(q.rcvKey);
    await store.close();
    stores.splice(0);
    const raw = openRaw(path, true);
    // One record per message: the wrapped key moved into the message record (header ‖ key
    // record ‖ sealed blob); nothing of it is left in `keys` or `byepoch`.
    const keys = rawDb(raw, "keys");
    expect(keys.get(keyKey)).toBeUndefined();
    const byEpoch = rawDb(raw, "byepoch");
    expect([...byEpoch.getKeys({})].some((k) => (k as Buffer).subarray(4).equals(keyKey))).toBe(false);
    const msgs = rawDb(raw, "msgs");
    const record = msgs.get(recKey)!;
    // Format 2: 0x02 ‖ send id (none known: zeros) ‖ header ‖ key record ‖ sealed blob.
    expect(record.length).toBe(17 + 40 + 64 + sealed.length);
    expect(record.subarray(0, 17)).toEqual(Buffer.concat([Buffer.of(2), Buffer.alloc(16)]));
    expect(record.subarray(17, 57)).toEqual(header);
    expect(record.subarray(121)).toEqual(sealed);
    // The queue's server→recipient key is sealed now too; its raw bytes are gone from the record.
    const queues = rawDb(raw, "queues");
    expect(queues.get(rid)?.includes(Buffer.from(q.rcvKey))).toBe(false);
    await raw.close();
  });

  it("migrates messages whose key record was in `keys` (with a `byepoch` entry) into one record each", async () => {
    const path = tempDir();
    const masterKey = randomBytes(32);
    let store = openStore({ path, masterKey });
    const q = queue();
    await store.createQueue(q);
    for (const body of ["one", "two", "three"])
      expect(await store.append(q.recipientId, msg(utf8(body), Date.now()), 10)).toBe("ok");
    await store.close();
    stores.splice(0);
    // Rewrite them in the previous layout: header ‖ sealed blob, key record under 'm' ‖ rid ‖ seq
    // (and without the format-2 prefix 0x02 ‖ send id).
    const env = openRaw(path);
    const db = (name: string) => rawDb(env, name);
    const before = [...db("msgs").getRange({})].map((e) => ({
      key: Buffer.from(e.key),
      value: Buffer.from(e.value),
    }));
    expect(before).toHaveLength(3);
    await env.transaction(() => {
      for (const { key, value: v2 } of before) {
        const value = v2.subarray(17);
        const keyKey = Buffer.concat([Buffer.of(0x6d), key]);
        db("msgs").put(key, Buffer.concat([value.subarray(0, 40), value.subarray(104)]));
        db("keys").put(keyKey, value.subarray(40, 104));
        db("byepoch").put(Buffer.concat([value.subarray(40, 44), keyKey]), Buffer.alloc(1));
      }
    });
    await env.close();
    store = openStore({ path, masterKey });
    expect(
      await Promise.all([0, 1, 2].map(async (seq) => text(await store.read(q.recipientId, seq)))),
    ).toEqual(["one", "two", "three"]);
    const m = await store.next(q.recipientId, -1);
    expect(await store.ack(q.recipientId, m!.seq, m!.msgId)).toBe(true);
    await store.close();
    stores.splice(0);
    const raw = openRaw(path, true);
    expect([...rawDb(raw, "msgs").getRange({})].map((e) => e.value.length)).toEqual(
      before.slice(1).map((e) => e.value.length),
    );
    expect([...rawDb(raw, "keys").getKeys({})].filter((k) => (k as Buffer)[0] === 0x6d)).toEqual([]);
    expect([...rawDb(raw, "byepoch").getKeys({})].filter((k) => (k as Buffer)[4] === 0x6d)).toEqual([]);
    await raw.close();
  });

  it("a format-1 store (send and expiry records, queue bytes counting messages) keeps working: migrated at open, same answers", async () => {
    // docs/protocol/relay.md §At rest, "Message record": format 1 is `msgId ‖ u64 ts ‖ u64 expiry ‖
    // key record ‖ sealed blob`, its send id in `sends` (rid ‖ send id → u64 expiry ‖ u64 seq)
    // with an expiry entry (u64 expiry ‖ 's' ‖ rid ‖ send id), and the queue state's bytes
    // counting every message record. Written here from format-2 records, byte by byte.
    let now = Date.UTC(2032, 0, 1);
    const clock = () => now;
    const path = tempDir();
    const masterKey = randomBytes(32);
    let store = openStore({ path, masterKey, clock });
    const q = queue();
    const rid = Buffer.from(q.recipientId);
    await store.createQueue(q);
    const sent = ["a", "bb", "ccc", "dddd"].map((b) => msg(utf8(b), now, HOUR));
    for (const m of sent) expect(await store.append(q.recipientId, m, 10)).toBe("ok");
    const freshBytes = store.queueBytes(q.recipientId);
    await store.close();
    stores.splice(0);
    const acked = randomBytes(16); // the send id of a message acknowledged before the upgrade
    const env = openRaw(path);
    const db = (name: string) => rawDb(env, name);
    const v2 = [...db("msgs").getRange({})].map((e) => ({
      key: Buffer.from(e.key),
      value: Buffer.from(e.value),
    }));
    expect(v2.map((e) => e.value.subarray(1, 17))).toEqual(sent.map((m) => Buffer.from(m.sendId)));
    const u64 = (n: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(n));
      return b;
    };
    await env.transaction(() => {
      let bytes = 0;
      for (const [i, { key, value }] of v2.entries()) {
        const v1 = value.subarray(17);
        expect(v1.length % 2).toBe(0);
        db("msgs").put(key, v1);
        bytes += v1.length;
        const sendKey = Buffer.concat([rid, sent[i]!.sendId]);
        db("sends").put(sendKey, Buffer.concat([u64(sent[i]!.expiresAt), key.subarray(24)]));
        db("expiry").put(Buffer.concat([u64(sent[i]!.expiresAt), Buffer.of(0x73), sendKey]), Buffer.alloc(1));
      }
      const ackedKey = Buffer.concat([rid, acked]);
      db("sends").put(ackedKey, Buffer.concat([u64(now + HOUR), u64(99)]));
      db("expiry").put(Buffer.concat([u64(now + HOUR), Buffer.of(0x73), ackedKey]), Buffer.alloc(1));
      const seqs = Buffer.from(db("seqs").get(rid)!);
      seqs.writeBigUInt64BE(BigInt(bytes), 16);
      db("seqs").put(rid, seqs);
    });
    await env.close();

    store = openStore({ path, masterKey, clock });
    // The same answers as before the rewrite: bodies, order, byte count, DUPLICATE for every
    // stored send id and for the acknowledged one (its `sends` record still refuses it).
    expect(
      await Promise.all([0, 1, 2, 3].map(async (seq) => text(await store.read(q.recipientId, seq)))),
    ).toEqual(["a", "bb", "ccc", "dddd"]);
    expect(store.queueBytes(q.recipientId)).toBe(freshBytes);
    expect(store.stats().storedBytes).toBe(freshBytes);
    for (const m of sent) expect(await store.append(q.recipientId, m, 10)).toBe("duplicate");
    expect(await store.append(q.recipientId, { ...msg(utf8("again"), now, HOUR), sendId: acked }, 10)).toBe(
      "duplicate",
    );
    const first = await store.next(q.recipientId, -1);
    expect(first?.msgId).toEqual(sent[0]!.msgId);
    expect(await store.ack(q.recipientId, first!.seq, first!.msgId)).toBe(true);
    expect(await store.append(q.recipientId, sent[0]!, 10)).toBe("duplicate");
    expect(store.queueBytes(q.recipientId)).toBe((freshBytes * 3) / 4);
    store = await reopen(store, { path, masterKey, clock });
    expect(store.queueBytes(q.recipientId)).toBe((freshBytes * 3) / 4);
    // Migrated: format-2 records with their send ids; the next seq continues.
    expect(await store.append(q.recipientId, msg(utf8("new"), now, HOUR), 10)).toBe("ok");
    expect((await store.next(q.recipientId, 3))?.seq).toBe(4);
    now += HOUR + 1;
    const gc = await store.gc(now);
    expect(gc.expiredMessages).toBe(4);
    expect(store.stats().messages).toBe(0);
    expect(store.queueBytes(q.recipientId)).toBe(0);
    expect(store.stats().storedBytes).toBe(0);
    await store.close();
    stores.splice(0);
    const raw = openRaw(path, true);
    expect([...rawDb(raw, "msgs").getKeys({})]).toEqual([]);
    expect([...rawDb(raw, "sends").getKeys({})]).toEqual([]);
    expect([...rawDb(raw, "expiry").getKeys({})]).toEqual([]);
    await raw.close();
  });

  it("a format-2 store whose queue state is of an older layout counts each message once (no double count at open)", async () => {
    const path = tempDir();
    const masterKey = randomBytes(32);
    let store = openStore({ path, masterKey });
    const q = queue();
    const rid = Buffer.from(q.recipientId);
    await store.createQueue(q);
    for (const b of ["a", "b", "c"])
      expect(await store.append(q.recipientId, msg(utf8(b), Date.now()), 10)).toBe("ok");
    const fresh = store.queueBytes(q.recipientId);
    await store.close();
    stores.splice(0);
    // The 16-byte queue state written before epoch keys (u64 next seq ‖ u64 next prekey seq).
    const env = openRaw(path);
    const seqs = rawDb(env, "seqs");
    await seqs.put(rid, Buffer.from(seqs.get(rid)!).subarray(0, 16));
    await env.close();
    store = openStore({ path, masterKey });
    expect(store.queueBytes(q.recipientId)).toBe(fresh);
    expect(store.stats().storedBytes).toBe(fresh);
    store = await reopen(store, { path, masterKey });
    expect(store.queueBytes(q.recipientId)).toBe(fresh);
    const first = await store.next(q.recipientId, -1);
    expect(await store.ack(q.recipientId, first!.seq, first!.msgId)).toBe(true);
    expect(store.queueBytes(q.recipientId)).toBe((fresh * 2) / 3);
    expect(text(await store.read(q.recipientId, 2))).toBe("c");
  });

  it("GC expires format-2 messages queue after queue, only those due, also behind a longer-lived head (TTL lowered)", async () => {
    let now = Date.UTC(2033, 0, 1);
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32), clock: () => now });
    const [q1, q2, q3] = [queue(), queue(), queue()];
    for (const q of [q1, q2, q3]) await store.createQueue(q!);
    const put = async (q: typeof q1, body: string, ttl: number) =>
      expect(await store.append(q.recipientId, msg(utf8(body), now, ttl), 10)).toBe("ok");
    for (const b of ["a", "b"]) await put(q1, b, HOUR);
    for (const b of ["c", "d"]) await put(q2, b, 3 * HOUR);
    for (const [b, ttl] of [
      ["e", HOUR],
      ["f", HOUR],
      ["g", 3 * HOUR],
    ] as const)
      await put(q3, b, ttl);
    expect((await store.gc(now)).expiredMessages).toBe(0);
    expect(store.lastGcVisit).toMatchObject({ queues: 0, records: 0 });
    now += HOUR + 1;
    expect((await store.gc(now)).expiredMessages).toBe(4);
    // Only the queues with something due are read (q2's earliest is 3 h away): all their records.
    expect(store.lastGcVisit).toMatchObject({ queues: 2, records: 5 });
    expect(store.stats().messages).toBe(3);
    expect(await store.next(q1.recipientId, -1)).toBeUndefined();
    expect((await store.next(q2.recipientId, -1))?.seq).toBe(0);
    expect((await store.next(q3.recipientId, -1))?.seq).toBe(2);
    expect(text(await store.read(q3.recipientId, 2))).toBe("g");
    expect(store.queueBytes(q1.recipientId)).toBe(0);
    now += 2 * HOUR;
    expect((await store.gc(now)).expiredMessages).toBe(3);
    expect(store.lastGcVisit).toMatchObject({ queues: 2, records: 3 });
    expect(store.stats().storedBytes).toBe(0);
    // --relay-ttl lowered from 7 days to 1 h across a restart: the messages stored since expire
    // on time even though the queue's head lives on.
    await put(q1, "7 days", 7 * DAY);
    for (const b of ["h", "i", "j"]) await put(q1, b, HOUR);
    now += HOUR + 1;
    expect((await store.gc(now)).expiredMessages).toBe(3);
    expect(store.lastGcVisit).toMatchObject({ queues: 1, records: 4 });
    expect(store.stats().messages).toBe(1);
    expect(text(await store.read(q1.recipientId, 2))).toBe("7 days");
    expect(await store.next(q1.recipientId, 2)).toBeUndefined();
  });

  it("GC reads the records of queues with something due only: their earliest expiry built at open, lowered by SEND, exact after a visit", async () => {
    // docs/operations-relay.md §Storage: a store of millions of messages must not be
    // read whole every run (the event loop paused seconds every 5 min).
    let now = Date.UTC(2034, 0, 1);
    const path = tempDir();
    const masterKey = randomBytes(32);
    const options = { path, masterKey, clock: () => now };
    let store = openStore(options);
    const qs = Array.from({ length: 10 }, () => queue());
    for (const q of qs) {
      await store.createQueue(q);
      const sent = Array.from({ length: 5 }, (_, i) => msg(utf8(`long${i}`), now, 7 * DAY));
      expect(await store.appendBatch(q.recipientId, sent, 10)).toEqual(Array(5).fill("ok"));
    }
    const short = qs[3]!;
    expect(await store.append(short.recipientId, msg(utf8("short"), now, HOUR), 10)).toBe("ok");
    store = await reopen(store, options);
    now += HOUR + 1;
    expect((await store.gc(now)).expiredMessages).toBe(1);
    expect(store.lastGcVisit).toMatchObject({ queues: 1, records: 6 });
    expect((await store.gc(now)).expiredMessages).toBe(0);
    expect(store.lastGcVisit).toMatchObject({ queues: 0, records: 0 });
    // An ACK leaves the bound as it is (still a lower bound); a SEND lowers it.
    const first = await store.next(qs[0]!.recipientId, -1);
    expect(await store.ack(qs[0]!.recipientId, first!.seq, first!.msgId)).toBe(true);
    expect(await store.append(qs[7]!.recipientId, msg(utf8("soon"), now, HOUR), 10)).toBe("ok");
    expect((await store.gc(now)).expiredMessages).toBe(0);
    expect(store.lastGcVisit).toMatchObject({ queues: 0, records: 0 });
    now += HOUR + 1;
    expect((await store.gc(now)).expiredMessages).toBe(1);
    expect(store.lastGcVisit).toMatchObject({ queues: 1, records: 6 });
    now += 7 * DAY;
    expect((await store.gc(now)).expiredMessages).toBe(49);
    expect(store.lastGcVisit).toMatchObject({ queues: 10, records: 49 });
    expect(store.stats().messages).toBe(0);
    expect((await store.gc(now)).expiredMessages).toBe(0);
    expect(store.lastGcVisit).toMatchObject({ queues: 0, records: 0 });
  });

  it("GC takes only the due queues' bounds off its heap: nothing due reads none, one due among many reads one; stale bounds are dropped once", async () => {
    // docs/operations-relay.md §Storage: a run's cost follows what is due, not the queues holding
    // messages (before, every run walked every queue's bound).
    let now = Date.UTC(2034, 6, 1);
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32), clock: () => now });
    const qs = Array.from({ length: 20 }, () => queue());
    for (const q of qs) {
      await store.createQueue(q);
      expect(await store.append(q.recipientId, msg(utf8("week"), now, 7 * DAY), 10)).toBe("ok");
    }
    // Lowered: q0's week-long bound becomes a stale entry.
    expect(await store.append(qs[0]!.recipientId, msg(utf8("hour"), now, HOUR), 10)).toBe("ok");
    const start = now;
    expect((await store.gc(now)).expiredMessages).toBe(0);
    expect(store.lastGcVisit).toEqual({ bounds: 0, queues: 0, records: 0 });
    now += HOUR + 1;
    expect((await store.gc(now)).expiredMessages).toBe(1);
    expect(store.lastGcVisit).toEqual({ bounds: 1, queues: 1, records: 2 });
    expect(await store.deleteQueue(qs[5]!.recipientId)).toBe(1);
    expect((await store.gc(now)).expiredMessages).toBe(0);
    expect(store.lastGcVisit).toEqual({ bounds: 0, queues: 0, records: 0 });
    now = start + 7 * DAY;
    expect((await store.gc(now)).expiredMessages).toBe(19);
    // 20 week-long entries (q5's stale: deleted), and q0's bound set again to the same value by
    // its visit: 21 entries, 19 queues visited once each.
    expect(store.lastGcVisit).toEqual({ bounds: 21, queues: 19, records: 19 });
    expect((await store.gc(now)).expiredMessages).toBe(0);
    expect(store.lastGcVisit).toEqual({ bounds: 0, queues: 0, records: 0 });
  });

  it("DueHeap pops in expiry order whatever the pushes and pops in between (against a sorted list)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }), { maxLength: 200 }),
        (ops) => {
          const heap = new DueHeap();
          const model: number[] = [];
          for (const [i, op] of ops.entries()) {
            if (op === undefined) {
              model.sort((a, b) => a - b);
              expect(heap.pop()?.at).toBe(model.shift());
            } else {
              heap.push(op, `q${i}`);
              model.push(op);
            }
            expect(heap.size).toBe(model.length);
            expect(heap.peek()).toBe(model.length ? Math.min(...model) : Number.POSITIVE_INFINITY);
          }
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a GC deletion whose group commit fails before its removal ran is collected by the next run, not the next reopen", async () => {
    let now = Date.UTC(2034, 7, 1);
    const fault = oneFault("before");
    const store = openStore({
      path: tempDir(),
      masterKey: randomBytes(32),
      clock: () => now,
      // Fails before any write of the group ran: as an earlier write of the commit failing.
      commitFault: fault.commitFault,
    });
    const q = queue();
    await store.createQueue(q);
    expect(await store.append(q.recipientId, msg(utf8("due"), now, HOUR), 10)).toBe("ok");
    expect(await store.append(q.recipientId, msg(utf8("later"), now, DAY), 10)).toBe("ok");
    now += HOUR + 1;
    fault.arm();
    await expect(store.gc(now)).rejects.toThrow("commit failed");
    expect(store.stats().messages).toBe(2);
    expect((await store.gc(now)).expiredMessages).toBe(1);
    expect(store.stats().messages).toBe(1);
    expect(text(await store.read(q.recipientId, 1))).toBe("later");
  });

  it("a damaged short format-2 record whose GC deletion fails to commit is collected by the next run", async () => {
    // Too short to name its send id (docs/protocol/relay.md §At rest, "Message record"): the
    // removal step runs but has nothing of its own to note again on failure.
    let now = Date.UTC(2034, 8, 1);
    const path = tempDir();
    const masterKey = randomBytes(32);
    let store = openStore({ path, masterKey, clock: () => now });
    const q = queue();
    await store.createQueue(q);
    expect(await store.append(q.recipientId, msg(utf8("damaged"), now, HOUR), 10)).toBe("ok");
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    const env = openRaw(path);
    const msgs = rawDb(env, "msgs");
    const [entry] = [...msgs.getRange({})];
    // 0x02 ‖ send id (16) ‖ msg id (24) ‖ timestamp (8) ‖ expiry (8): the header and 4 bytes more.
    await msgs.put(Buffer.from(entry!.key), Buffer.from(entry!.value).subarray(0, 1 + 16 + 24 + 8 + 8 + 4));
    await env.close();
    const fault = oneFault("after");
    store = openStore({
      path,
      masterKey,
      clock: () => now,
      // Fails after every write of the group ran (undone): the commit itself failed.
      commitFault: fault.commitFault,
    });
    // What the open wrote is committed first: the failure hits GC's commit.
    expect((await store.gc(now)).expiredMessages).toBe(0);
    now += HOUR + 1;
    fault.arm();
    await expect(store.gc(now)).rejects.toThrow("commit failed");
    expect(store.stats().messages).toBe(1);
    expect((await store.gc(now)).expiredMessages).toBe(1);
    expect(store.stats().messages).toBe(0);
  });

  it("a group commit whose step throws part-way stores nothing of it: its writer is told, and the retry is stored once", async () => {
    // lmdb-js commits the writes made before a throwing step of a transaction callback; the
    // group runs in a child transaction so "failed" means nothing of it is on disk.
    const now = Date.now();
    const path = tempDir();
    const masterKey = randomBytes(32);
    const fault = oneFault("midway");
    let store = openStore({
      path,
      masterKey,
      clock: () => now,
      commitFault: fault.commitFault,
    });
    const q = queue();
    await store.createQueue(q);
    const m = msg(utf8("told it failed"), now);
    fault.arm();
    await expect(store.append(q.recipientId, m, 10)).rejects.toThrow("commit failed");
    store = await reopen(store, { path, masterKey, clock: () => now });
    expect(store.stats().messages).toBe(0);
    expect(await store.append(q.recipientId, m, 10)).toBe("ok");
    expect(store.stats().messages).toBe(1);
    expect(text(await store.read(q.recipientId, 0))).toBe("told it failed");
  });

  it("one record per SEND (format 2): no send or expiry record; a retry is DUPLICATE while stored, after its ACK and across a reopen while stored", async () => {
    const now = Date.now();
    const path = tempDir();
    const masterKey = randomBytes(32);
    let store = openStore({ path, masterKey });
    const q = queue();
    await store.createQueue(q);
    const m = [msg(utf8("x"), now), msg(utf8("y"), now)];
    expect(await store.appendBatch(q.recipientId, [m[0]!, m[0]!, m[1]!], 10)).toEqual([
      "ok",
      "duplicate",
      "ok",
    ]);
    store = await reopen(store, { path, masterKey });
    expect(await store.append(q.recipientId, m[1]!, 10)).toBe("duplicate");
    const first = await store.next(q.recipientId, -1);
    expect(await store.ack(q.recipientId, first!.seq, first!.msgId)).toBe(true);
    expect(await store.append(q.recipientId, m[0]!, 10)).toBe("duplicate");
    await store.close();
    stores.splice(0);
    const raw = openRaw(path, true);
    expect([...rawDb(raw, "sends").getKeys({})]).toEqual([]);
    expect([...rawDb(raw, "expiry").getKeys({})]).toEqual([]);
    const records = [...rawDb(raw, "msgs").getRange({})].map((e) => Buffer.from(e.value));
    expect(records).toHaveLength(1);
    expect(records[0]![0]).toBe(2);
    expect(records[0]!.subarray(1, 17)).toEqual(Buffer.from(m[1]!.sendId));
    expect(records[0]!.subarray(17, 41)).toEqual(Buffer.from(m[1]!.msgId));
    expect(records[0]!.length).toBe(149 + 256);
    await raw.close();
  });

  it("DUPLICATE of stored messages comes from their queue's records: memory for send ids is bounded, not one per stored message, across a reopen", async () => {
    // docs/protocol/relay.md, SEND: memory holds pending writes' ids, recently gone ones and a
    // bounded cache of stored ones (here 150: room for one queue's 100 at a time).
    const now = Date.now();
    const path = tempDir();
    const masterKey = randomBytes(32);
    const options = { path, masterKey, sendIdCache: 150 };
    let store = openStore(options);
    const qs = [queue(), queue(), queue()];
    const sent = qs.map(() => Array.from({ length: 100 }, (_, i) => msg(utf8(`m${i}`), now)));
    for (const [i, q] of qs.entries()) {
      await store.createQueue(q);
      expect(await store.appendBatch(q.recipientId, sent[i]!, 100)).toEqual(Array(100).fill("ok"));
    }
    expect(store.sendIdsInMemory).toBeLessThanOrEqual(150);
    store = await reopen(store, options);
    expect(store.sendIdsInMemory).toBe(0);
    for (let round = 0; round < 2; round++)
      for (const [i, q] of qs.entries()) {
        expect(await store.appendBatch(q.recipientId, sent[i]!, 100)).toEqual(Array(100).fill("duplicate"));
        expect(store.sendIdsInMemory).toBeLessThanOrEqual(150);
      }
    // A send id is its queue's: the same id to another queue is a new message.
    expect(await store.append(qs[1]!.recipientId, sent[0]![5]!, 200)).toBe("ok");
    expect(await store.append(qs[1]!.recipientId, sent[0]![5]!, 200)).toBe("duplicate");
    // The zero id is a migrated record's "unknown", never a stored message's id: not DUPLICATE
    // (docs/protocol/relay.md, SEND; send ids are random).
    const zero = { ...msg(utf8("zero"), now), sendId: new Uint8Array(16) };
    expect(await store.append(qs[0]!.recipientId, zero, 200)).toBe("ok");
    store = await reopen(store, options);
    expect(await store.append(qs[0]!.recipientId, { ...zero, msgId: randomBytes(24) }, 200)).toBe("ok");
    // Acknowledged: gone from the records and the cache, remembered (bounded) while it could be
    // retried.
    const first = await store.next(qs[0]!.recipientId, -1);
    expect(await store.ack(qs[0]!.recipientId, first!.seq, first!.msgId)).toBe(true);
    expect(await store.append(qs[0]!.recipientId, sent[0]![0]!, 200)).toBe("duplicate");
    expect(await store.append(qs[0]!.recipientId, sent[0]![1]!, 200)).toBe("duplicate");
    expect(store.stats().messages).toBe(302);
    // Expired and collected: gone from the cache too, so the id is new again (not remembered
    // past its expiry).
    let clock = Date.now();
    store = await reopen(store, { ...options, clock: () => clock });
    const short = msg(utf8("short"), clock, HOUR);
    expect(await store.append(qs[2]!.recipientId, short, 200)).toBe("ok");
    expect(await store.append(qs[2]!.recipientId, short, 200)).toBe("duplicate");
    clock += HOUR + 1;
    expect((await store.gc(clock)).expiredMessages).toBe(1);
    expect(await store.append(qs[2]!.recipientId, short, 200)).toBe("ok");
  });

  it("a retry while the first write is pending waits for its outcome: DUPLICATE only if it was stored", async () => {
    // Seals held back: the first writes stay pending while their retries come in.
    let release!: () => void;
    let gate = new Promise<void>((r) => {
      release = r;
    });
    class HeldPool extends SealPool {
      override seal(...args: Parameters<SealPool["seal"]>): Promise<Sealed> {
        const held = gate;
        return super.seal(...args).then(async (s) => {
          await held;
          return s;
        });
      }
    }
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32), sealPool: new HeldPool() });
    const q = queue();
    await store.createQueue(q);
    const m = msg(utf8("once"), Date.now());
    const first = store.append(q.recipientId, m, 10);
    const retry = store.append(q.recipientId, m, 10);
    const retryInBatch = store.appendBatch(q.recipientId, [m], 10);
    release();
    expect(await first).toBe("ok");
    expect(await retry).toBe("duplicate");
    expect(await retryInBatch).toEqual(["duplicate"]);
    expect(store.stats().messages).toBe(1);
    // The first write is never stored (its queue is deleted before its seal comes back): the
    // retry is not told DUPLICATE — the client would drop a message no one holds.
    gate = new Promise<void>((r) => {
      release = r;
    });
    const lost = msg(utf8("not stored"), Date.now());
    const write = store.append(q.recipientId, lost, 10);
    const retried = store.append(q.recipientId, lost, 10);
    expect(await store.deleteQueue(q.recipientId)).toBe(1);
    release();
    expect(await write).toBe("missing");
    expect(await retried).toBe("missing");
    expect(store.sendIdsInMemory).toBe(0);
  });

  it("a retry in a batch waits for its first write, and the batch's later messages wait for it: stored in the batch's order when that write fails", async () => {
    // docs/protocol/relay.md §Batches: a batch stores a prefix, in its order. The first write of
    // "a" fails (its seal throws, as a failed commit does) while its retry is in a batch before
    // "b": "b" must not take a seq before the retry's.
    let fail!: () => void;
    const gate = new Promise<void>((r) => {
      fail = r;
    });
    let calls = 0;
    class FailingFirst extends SealPool {
      override seal(...args: Parameters<SealPool["seal"]>): Promise<Sealed> {
        const first = calls++ === 0;
        return super.seal(...args).then(async (s) => {
          if (!first) return s;
          await gate;
          throw new Error("the first write failed");
        });
      }
    }
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32), sealPool: new FailingFirst() });
    const q = queue();
    await store.createQueue(q);
    const a = msg(utf8("a"), Date.now());
    const b = msg(utf8("b"), Date.now());
    const first = store.append(q.recipientId, a, 10);
    first.catch(() => {});
    const batch = store.appendBatch(q.recipientId, [a, b], 10);
    // Let "b" be sealed and written if the batch did not wait (it would be, before the fix).
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    fail();
    await expect(first).rejects.toThrow("the first write failed");
    expect(await batch).toEqual(["ok", "ok"]);
    const bodies: string[] = [];
    for (let m = await store.next(q.recipientId, -1); m; m = await store.next(q.recipientId, m.seq))
      bodies.push(text(await store.read(q.recipientId, m.seq)) ?? "");
    expect(bodies).toEqual(["a", "b"]);
  });

  it("a retry between an ACK's commit and its end is DUPLICATE: the gone list takes the id in the removal's turn", async () => {
    // No cache of stored ids (sendIdCache 0): a retry looks in the queue's records, where the
    // ACKed record is gone once committed — before the ACK's own code after the commit runs
    // (overlapping sync: the flush comes after the commit, a macrotask later).
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32), sendIdCache: 0 });
    const q = queue();
    await store.createQueue(q);
    const m = msg(utf8("once"), Date.now());
    let inWindow = 0;
    // Rounds until the window was hit at least once (bounded): whether a turn lands between the
    // commit and the ACK's end depends on the machine's timing, and one round in a few misses it.
    for (let round = 0; round < 5 || (inWindow === 0 && round < 40); round++) {
      const again = { ...m, sendId: randomBytes(16) };
      expect(await store.append(q.recipientId, again, 10)).toBe("ok");
      const stored = await store.next(q.recipientId, -1);
      let acked = false;
      const ack = store.ack(q.recipientId, stored!.seq, stored!.msgId).then((r) => {
        acked = true;
        return r;
      });
      const retries: Promise<string>[] = [];
      for (let i = 0; i < 100_000 && !acked; i++) {
        const gone = store.stats().messages === 0;
        if (gone && !acked) inWindow++;
        retries.push(store.append(q.recipientId, again, 10));
        await new Promise((r) => setImmediate(r));
      }
      expect(await ack).toBe(true);
      expect(await Promise.all(retries)).toEqual(retries.map(() => "duplicate"));
      expect(store.stats().messages).toBe(0);
    }
    // The window was hit (else this test proves nothing).
    expect(inWindow).toBeGreaterThan(0);
  });

  it("an ACK whose commit fails leaves its message stored and its send id a stored one, not a gone one; a retry is DUPLICATE either way", async () => {
    // The removal's step puts the send id on the gone list before the commit (the test above);
    // a failed commit takes it off again by the record's own bytes, still stored (lmdb.ts
    // #deleteMessage): with no cache of stored ids, nothing is left in memory.
    const fault = oneFault("after");
    const store = openStore({
      path: tempDir(),
      masterKey: randomBytes(32),
      sendIdCache: 0,
      commitFault: fault.commitFault,
    });
    const q = queue();
    await store.createQueue(q);
    const m = msg(utf8("kept"), Date.now());
    expect(await store.append(q.recipientId, m, 10)).toBe("ok");
    const stored = (await store.next(q.recipientId, -1))!;
    fault.arm();
    await expect(store.ack(q.recipientId, stored.seq, stored.msgId)).rejects.toThrow("commit failed");
    expect(store.stats().messages).toBe(1);
    expect(store.sendIdsInMemory).toBe(0);
    expect(await store.append(q.recipientId, m, 10)).toBe("duplicate");
    expect(text(await store.read(q.recipientId, stored.seq))).toBe("kept");
    expect(await store.ack(q.recipientId, stored.seq, stored.msgId)).toBe(true);
    expect(store.sendIdsInMemory).toBe(1);
    expect(await store.append(q.recipientId, m, 10)).toBe("duplicate");
    // Another queue's message with the same send id is another message.
    const other = queue();
    await store.createQueue(other);
    expect(await store.append(other.recipientId, m, 10)).toBe("ok");
  });

  it("acknowledged messages leave nothing per message on the JS heap (the gone list is flat arrays, gone-sends.ts)", async () => {
    // What survives a message is what every collection pays for (bench/README-relay.md, "Results:
    // send ids and delivery counts without a string per message"): a Map of 40-character send
    // keys kept ~110 bytes of heap per acknowledged message until evicted, 262 144 messages later.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32), sync: false });
    const q = queue();
    await store.createQueue(q);
    const body = utf8("x");
    const round = async () => {
      const now = Date.now();
      const ms = Array.from({ length: 64 }, () => msg(body, now));
      expect(await store.appendBatch(q.recipientId, ms, 1000)).toEqual(ms.map(() => "ok"));
      const acks: Promise<boolean>[] = [];
      for (let after = -1, k = 0; k < 64; k++) {
        const next = (await store.next(q.recipientId, after))!;
        after = next.seq;
        (await store.readBucket(q.recipientId, next.seq))!.fill(0);
        await store.markDelivered(q.recipientId, next.seq);
        acks.push(store.ack(q.recipientId, next.seq, next.msgId));
      }
      expect(await Promise.all(acks)).toEqual(acks.map(() => true));
    };
    // Warm: the gone list's arrays grown past what the measured rounds add (1024 → 16 384 slots).
    for (let i = 0; i < 130; i++) await round();
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    const rounds = 100;
    for (let i = 0; i < rounds; i++) await round();
    gc();
    gc();
    const perMessage = (process.memoryUsage().heapUsed - before) / (rounds * 64);
    expect(store.sendIdsInMemory).toBe(230 * 64);
    expect(perMessage).toBeLessThan(40);
  });

  it("an ACK and a drop of one message at once remove it once: one answers true, its bytes released once", async () => {
    // lmdb.ts #deleteMessage: the deletions under way, by (queue, seq) (seq-map.ts), make the
    // second answer "not removed" at once; without them both would count the message and its
    // bytes off the queue (a removal that finds no record still releases what it read).
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32) });
    const q = queue();
    await store.createQueue(q);
    const now = Date.now();
    for (const t of ["a", "b"]) expect(await store.append(q.recipientId, msg(utf8(t), now), 10)).toBe("ok");
    const both = store.queueBytes(q.recipientId);
    const first = (await store.next(q.recipientId, -1))!;
    const removed = await Promise.all([
      store.ack(q.recipientId, first.seq, first.msgId),
      store.drop(q.recipientId, first.seq),
    ]);
    expect(removed.filter(Boolean)).toHaveLength(1);
    expect(store.stats().messages).toBe(1);
    expect(store.queueBytes(q.recipientId)).toBe(both / 2);
    const second = (await store.next(q.recipientId, first.seq))!;
    expect(text(await store.read(q.recipientId, second.seq))).toBe("b");
  });

  it("a record migrated without a known send id (16 zero bytes) does not make a zero send id DUPLICATE", async () => {
    // docs/protocol/relay.md §At rest, "Message record": a format-1 record that no `sends` record
    // names is migrated with a zero send id ("unknown"). A SEND with the zero id is a new message:
    // DUPLICATE would tell its sender it is stored, and it would be lost.
    const { path, masterKey, q } = await closedStoreWithOne("old");
    const env = openRaw(path);
    const msgs = rawDb(env, "msgs");
    const [old] = [...msgs.getRange({})].map((e) => ({
      key: Buffer.from(e.key),
      value: Buffer.from(e.value),
    }));
    await env.transaction(() => {
      msgs.put(old!.key, old!.value.subarray(17)); // format 1, and no `sends` record names it
      const meta = rawDb(env, "meta");
      meta.remove(Buffer.from("format", "latin1"));
    });
    await env.close();
    const store = openStore({ path, masterKey });
    const zero = { ...msg(utf8("zero"), Date.now()), sendId: new Uint8Array(16) };
    expect(await store.append(q.recipientId, zero, 10)).toBe("ok");
    expect(store.stats().messages).toBe(2);
    expect(text(await store.read(q.recipientId, 0))).toBe("old");
    expect(text(await store.read(q.recipientId, 1))).toBe("zero");
  });

  for (const sealThreads of [0, 1])
    it(`DEL while SENDs are in flight leaves nothing behind (no orphan message, key or byte count; seal threads ${sealThreads})`, async () => {
      const path = tempDir();
      const masterKey = randomBytes(32);
      let store = openStore({ path, masterKey, sealThreads });
      const q = queue();
      const other = queue();
      await store.createQueue(q);
      await store.createQueue(other);
      await store.append(other.recipientId, msg(utf8("stays"), Date.now()), 100);
      const sends = Array.from({ length: 20 }, (_, i) =>
        store.append(q.recipientId, msg(utf8(`m${i}`), Date.now()), 100),
      );
      const deleted = store.deleteQueue(q.recipientId);
      const late = Array.from({ length: 5 }, (_, i) =>
        store.append(q.recipientId, msg(utf8(`late${i}`), Date.now()), 100),
      );
      await Promise.all([...sends, deleted, ...late]);
      expect(await Promise.all(late)).toEqual(Array(5).fill("missing"));
      // Sealed inline, the 20 are written before the DEL's commit and deleted by it; sealed on a
      // worker, a seal that comes back after the DEL began is refused ("missing"): never stored.
      const sent = await Promise.all(sends);
      expect(sent.every((r) => r === "ok" || r === "missing")).toBe(true);
      if (sealThreads === 0) expect(sent).toEqual(Array(20).fill("ok"));
      expect(await deleted).toBe(sent.filter((r) => r === "ok").length);
      // The byte budget in memory too: each refused SEND's reservation given back exactly once.
      expect(store.stats().storedBytes).toBe(store.queueBytes(other.recipientId));
      store = await reopen(store, { path, masterKey, sealThreads });
      expect(store.stats().messages).toBe(1);
      expect(store.stats().storedBytes).toBe(store.queueBytes(other.recipientId));
      expect(await store.read(q.recipientId, 0)).toBeUndefined();
      expect(store.queueBytes(q.recipientId)).toBe(0);
    });

  it("seal threads: SENDs whose seals come back after their queue's DEL finished are refused, their bytes given back once", async () => {
    // A pool whose answers wait for a gate (in order, as the worker's do): the DEL commits first.
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    class HeldPool extends SealPool {
      override seal(...args: Parameters<SealPool["seal"]>): Promise<Sealed> {
        return super.seal(...args).then(async (s) => {
          await gate;
          return s;
        });
      }
    }
    const path = tempDir();
    const masterKey = randomBytes(32);
    const store = openStore({ path, masterKey, sealPool: new HeldPool() });
    const q = queue();
    const other = queue();
    await store.createQueue(q);
    await store.createQueue(other);
    const kept = store.append(other.recipientId, msg(utf8("stays"), Date.now()), 100);
    const sends = Array.from({ length: 5 }, (_, i) =>
      store.append(q.recipientId, msg(utf8(`m${i}`), Date.now()), 100),
    );
    expect(await store.deleteQueue(q.recipientId)).toBe(0);
    open();
    expect(await Promise.all(sends)).toEqual(Array(5).fill("missing"));
    expect(await kept).toBe("ok");
    expect(store.stats().storedBytes).toBe(store.queueBytes(other.recipientId));
    expect(store.stats().storedBytes).toBeGreaterThan(0);
    expect(store.stats().messages).toBe(1);
  });

  it("seal thread hung mid-load: the watchdog fails it over, every SEND is stored (in order) and it is counted", async () => {
    // seal-pool.ts, "Watchdog": without it these SENDs would wait forever, with nothing logged.
    const told: string[] = [];
    const pool = new SealPool({ batchTimeoutMs: 500, onFailover: (reason) => told.push(reason) });
    const path = tempDir();
    const masterKey = randomBytes(32);
    let store = openStore({ path, masterKey, sealPool: pool });
    const q = queue();
    await store.createQueue(q);
    expect(await store.append(q.recipientId, msg(utf8("before"), Date.now()), 100)).toBe("ok");
    expect(store.stats().sealFailovers).toBe(0);
    pool.hangForTest();
    const sent = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.append(q.recipientId, msg(utf8(`m${i}`), Date.now()), 100)),
    );
    expect(sent).toEqual(Array(20).fill("ok"));
    expect(told).toEqual(["timeout"]);
    expect(pool.alive).toBe(false);
    expect(store.stats().sealFailovers).toBe(1);
    // Later SENDs are sealed on the event loop; everything opens after a reopen, in seq order.
    expect(await store.append(q.recipientId, msg(utf8("after"), Date.now()), 100)).toBe("ok");
    store = await reopen(store, { path, masterKey });
    const got: string[] = [];
    for (let seq = 0; seq < 22; seq++) got.push(text(await store.read(q.recipientId, seq)) ?? "");
    expect(got).toEqual(["before", ...Array.from({ length: 20 }, (_, i) => `m${i}`), "after"]);
  });

  it("concurrent prekey fetches never hand out the same one-time prekey", async () => {
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32) });
    const q = queue();
    await store.createQueue(q);
    const otks = [utf8("otk-a"), utf8("otk-b"), utf8("otk-c")];
    await store.setPrekeys(
      q.recipientId,
      { bundle: utf8("bundle"), oneTime: otks, replaceOneTime: false },
      10,
    );
    const taken = await Promise.all([1, 2, 3, 4].map(() => store.takePrekeys(q.recipientId)));
    const got = taken.map((t) => (t?.oneTime ? new TextDecoder().decode(t.oneTime) : "none"));
    expect(got.sort()).toEqual(["none", "otk-a", "otk-b", "otk-c"]);
    expect(store.queueBytes(q.recipientId)).toBeLessThan(1024);
  });

  it("opens a data dir whose name has a dot (as mktemp -d makes)", async () => {
    const path = tempDir("loft.relay-");
    const masterKey = randomBytes(32);
    let store = openStore({ path, masterKey });
    const q = queue();
    await store.createQueue(q);
    await store.append(q.recipientId, msg(utf8("dotted"), Date.now()), 10);
    store = await reopen(store, { path, masterKey });
    expect(text(await store.read(q.recipientId, 0))).toBe("dotted");
  });

  it("upgrades and rollbacks (docs/operations-relay.md §Upgrades): the keyring becomes keyring.2 and a store format is checked at open", async () => {
    const path = tempDir();
    const masterKey = randomBytes(32);
    const now = Date.now();
    // The check a relay from before format 2 makes at open (its lmdb.ts): no `keyring` file while
    // the first record of `keys` is a 64-byte wrapped key → LOFT_ERR_RELAY_KEYRING, nothing read.
    const olderRelayRefuses = async () => {
      const env = openRaw(path, true);
      let first: Buffer | undefined;
      for (const { value } of rawDb(env, "keys").getRange({ limit: 1 })) first = Buffer.from(value);
      await env.close();
      return !existsSync(join(path, LEGACY_KEYRING_FILE)) && first?.length === 64;
    };
    // A new store that holds no queue yet is refused by an older relay too.
    let store = openStore({ path, masterKey });
    store = await reopen(store, { path, masterKey });
    await store.close();
    stores.splice(0);
    expect(existsSync(join(path, KEYRING_FILE))).toBe(true);
    expect(await olderRelayRefuses()).toBe(true);

    // A store as a relay from before format 2 left it: keyring under its old name, no format.
    store = openStore({ path, masterKey });
    const q = queue();
    await store.createQueue(q);
    const sent = msg(utf8("kept"), now);
    expect(await store.append(q.recipientId, sent, 10)).toBe("ok");
    await store.close();
    stores.splice(0);
    renameSync(join(path, KEYRING_FILE), join(path, LEGACY_KEYRING_FILE));
    let env = openRaw(path);
    await env.transaction(() => {
      rawDb(env, "meta").remove(Buffer.from("format"));
      rawDb(env, "keys").remove(Buffer.of(0));
    });
    await env.close();
    // A wrong master key on that dir stops the start and renames nothing: the earlier relay still
    // opens it as it left it.
    expect(() => new LmdbStore({ path, masterKey: randomBytes(32) })).toThrow(
      expect.objectContaining({ code: "LOFT_ERR_RELAY_MASTER_KEY" }),
    );
    expect(existsSync(join(path, LEGACY_KEYRING_FILE))).toBe(true);
    expect(existsSync(join(path, KEYRING_FILE))).toBe(false);
    store = openStore({ path, masterKey });
    expect(text(await store.read(q.recipientId, 0))).toBe("kept");
    expect(existsSync(join(path, LEGACY_KEYRING_FILE))).toBe(false);
    expect(existsSync(join(path, KEYRING_FILE))).toBe(true);
    await store.close();
    stores.splice(0);
    expect(await olderRelayRefuses()).toBe(true);

    // A store written by a later format: refused before anything is touched, clear error.
    env = openRaw(path);
    const meta = rawDb(env, "meta");
    const format = Buffer.from(meta.get(Buffer.from("format"))!);
    expect(format.readUInt32BE(0)).toBe(STORE_FORMAT);
    const later = Buffer.alloc(4);
    later.writeUInt32BE(STORE_FORMAT + 1);
    await meta.put(Buffer.from("format"), later);
    await env.close();
    expect(() => new LmdbStore({ path, masterKey })).toThrow(
      expect.objectContaining({ code: "LOFT_ERR_RELAY_STORE_FORMAT" }),
    );
    expect(keyringEpochs(path, masterKey)).toEqual([[0], [0]]);
    env = openRaw(path);
    expect(rawDb(env, "meta").get(Buffer.from("format"))).toEqual(later);
    // A damaged format record is refused too, and said to be unreadable (not "newer").
    await rawDb(env, "meta").put(Buffer.from("format"), Buffer.of(0, 2));
    await env.close();
    expect(() => new LmdbStore({ path, masterKey })).toThrow(
      expect.objectContaining({
        code: "LOFT_ERR_RELAY_STORE_FORMAT",
        message: expect.stringContaining("unreadable store format record (2 bytes, not 4)"),
      }),
    );
    env = openRaw(path);
    await rawDb(env, "meta").put(Buffer.from("format"), format);
    await env.close();
    store = openStore({ path, masterKey });
    expect(text(await store.read(q.recipientId, 0))).toBe("kept");
    expect(await store.append(q.recipientId, sent, 10)).toBe("duplicate");
  });

  it("a push's reads answer at once: next, readBucket and markDelivered return values, not promises", async () => {
    // The pump awaits only what is a promise (relay-ws/service.ts): a promise per step of each
    // push was garbage on the relay's hottest path (bench/README-relay.md, "Results: fewer
    // objects per message"). Both of next's paths: a range read, and a block kept since its SEND.
    const now = Date.now();
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32), clock: () => now });
    const q = queue();
    await store.createQueue(q);
    for (const t of ["one", "two"])
      expect(await store.append(q.recipientId, msg(utf8(t), now), 10)).toBe("ok");
    const first = store.next(q.recipientId, -1);
    expect(first).not.toBeInstanceOf(Promise);
    const m0 = first as Awaited<typeof first>;
    expect(m0).toMatchObject({ seq: 0, deliveries: 0 });
    const bucket = store.readBucket(q.recipientId, m0!.seq);
    expect(bucket).not.toBeInstanceOf(Promise);
    expect(text(bucket as Uint8Array)).toBe("one");
    expect(store.markDelivered(q.recipientId, m0!.seq)).toBe(1);
    expect(store.markDelivered(q.recipientId, m0!.seq)).toBe(2);
    const m1 = store.next(q.recipientId, m0!.seq) as Awaited<ReturnType<typeof store.next>>;
    expect(m1).toMatchObject({ seq: 1, deliveries: 0, expiresAt: now + 48 * HOUR });
    expect(text(store.readBucket(q.recipientId, 1) as Uint8Array)).toBe("two");
    expect(await store.ack(q.recipientId, 1, m1!.msgId)).toBe(true);
    expect(store.next(q.recipientId, 0)).toBeUndefined();
  });

  it("a queue lookup answers the same opened record until a write changes the queue", async () => {
    // Every SEND and ACK looks its queue up: one record with its key opened per queue, not a copy
    // per command (bench/README-relay.md, "Results: fewer objects per message") — and a write
    // (KEY, OFF) is seen by the next lookup, as before.
    const store = openStore({ path: tempDir(), masterKey: randomBytes(32) });
    const q = queue();
    await store.createQueue(q);
    const first = await store.queueBySender(q.senderId);
    const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString("hex") : undefined);
    expect(hex(first?.rcvKey)).toBe(hex(q.rcvKey));
    expect(await store.queueBySender(q.senderId)).toBe(first);
    expect(await store.queueByRecipient(q.recipientId)).toBe(first);
    const senderKey = randomBytes(32);
    expect(await store.secureQueue(q.recipientId, senderKey)).toBe("ok");
    const secured = await store.queueBySender(q.senderId);
    expect(secured).not.toBe(first);
    expect(hex(secured?.senderKey)).toBe(hex(senderKey));
    expect(hex(secured?.rcvKey)).toBe(hex(q.rcvKey));
    expect(await store.suspendQueue(q.recipientId)).toBe(true);
    expect((await store.queueByRecipient(q.recipientId))?.suspended).toBe(true);
  });
});
