/**
 * The embedded relay store on LMDB (lmdb-js), layout in docs/operations-relay.md §Storage.
 *
 * Durability: the environment is opened with `overlappingSync: false`, so lmdb-js begins each
 * write transaction without MDB_NOSYNC and `mdb_txn_commit` fsyncs data and meta pages before the
 * write promise resolves (lmdb-js src/writer.cpp, WriteWorker::Write). A resolved `put` is
 * therefore on disk; the relay answers SEND only after that (docs/decisions.md (Relay)).
 *
 * Every message body is padded to one 16 KiB block and sealed with AES-256-GCM under a fresh key
 * kept in a separate sub-database; the ciphertext is bound to its record key by the AAD.
 * Deletion overwrites the key record with zeros in one transaction, then removes the key and the
 * ciphertext in the next (cryptographic deletion; see the LMDB copy-on-write caveat in
 * docs/decisions.md (Relay)).
 */
import { decode } from "@msgpack/msgpack";
import { type Database, open, type RootDatabase } from "lmdb";
import { toHex } from "../../core/bytes.ts";
import { BLOCK_SIZE, OTK_BLOCK_SIZE, padBlock } from "../../core/relay/protocol.ts";
import { encodeCanonical } from "../../core/wire/codec.ts";
import { AT_REST_KEY_LENGTH, openAtRest, sealAtRest } from "../node-crypto.ts";
import type {
  AppendResult,
  GcResult,
  NewMessage,
  PrekeyUpdate,
  QueueRecord,
  RelayStore,
  StoredMessageMeta,
  StoreStats,
} from "./types.ts";

/** Key-record tags: which kind of blob a key belongs to. */
const TAG_MSG = 0x6d; // 'm'
const TAG_BUNDLE = 0x62; // 'b'
const TAG_OTK = 0x6f; // 'o'
/** Expiry-index tags. */
const EXP_MSG = 0x6d;
const EXP_SEND = 0x73; // 's'

const MSG_HEADER = 24 + 8 + 8; // msgId ‖ u64 timestamp ‖ u64 expiresAt
const ZERO_KEY = Buffer.alloc(AT_REST_KEY_LENGTH);
const EMPTY = Buffer.alloc(1);

const u64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const readU64 = (b: Uint8Array, at: number): number =>
  Number(Buffer.from(b.buffer, b.byteOffset, b.byteLength).readBigUInt64BE(at));
const cat = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts);
const MAX_U64 = Buffer.alloc(8, 0xff);

type WriteOp = [Database<Buffer, Buffer>, Buffer, Buffer | undefined];

interface Batch {
  ops: WriteOp[];
  done: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

interface QueueState {
  /** Messages stored (including in flight). */
  count: number;
  nextSeq: number;
  nextOtk: number;
  otks: number;
}

export interface LmdbStoreOptions {
  path: string;
  /**
   * lmdb-js `overlappingSync`: commit without fsync under the write lock and flush afterwards, so
   * the next transaction overlaps the flush. Every durable operation here still waits for the
   * flush of its own commit (`db.flushed`). Default true (docs/decisions.md (Relay)).
   */
  overlappingSync?: boolean;
  /**
   * false: no fsync at all (lmdb `noSync`) — an acknowledged SEND can be lost in a power cut or
   * kernel crash (not in a process crash). For throwaway relays and to measure the cost of fsync.
   */
  sync?: boolean;
}

export class LmdbStore implements RelayStore {
  readonly engine = "lmdb";
  readonly #root: RootDatabase;
  readonly #queues: Database<Buffer, Buffer>;
  readonly #senders: Database<Buffer, Buffer>;
  readonly #seqs: Database<Buffer, Buffer>;
  readonly #msgs: Database<Buffer, Buffer>;
  readonly #keys: Database<Buffer, Buffer>;
  readonly #deliveries: Database<Buffer, Buffer>;
  readonly #sends: Database<Buffer, Buffer>;
  readonly #expiry: Database<Buffer, Buffer>;
  readonly #bundles: Database<Buffer, Buffer>;
  readonly #otks: Database<Buffer, Buffer>;
  readonly #state = new Map<string, QueueState>();
  /** send ids accepted but not committed yet (rid‖sendId hex). */
  readonly #pendingSends = new Set<string>();
  /** Message records being deleted (rid‖seq hex), so ack/drop/gc never race. */
  readonly #deleting = new Set<string>();
  readonly #listeners: ((recipientId: Uint8Array) => void)[] = [];
  /** Delivery counts written but maybe not committed yet (rid‖seq hex → count). */
  readonly #deliveryCounts = new Map<string, number>();
  #closed = false;

  readonly #overlapping: boolean;

  constructor(options: LmdbStoreOptions) {
    const sync = options.sync ?? true;
    this.#overlapping = sync && (options.overlappingSync ?? true);
    this.#root = open({
      path: options.path,
      maxDbs: 16,
      compression: false,
      overlappingSync: this.#overlapping,
      noSync: !sync,
      eventTurnBatching: true,
      noMemInit: false,
    });
    const db = (name: string) =>
      this.#root.openDB<Buffer, Buffer>(name, {
        keyEncoding: "binary",
        encoding: "binary",
        compression: false,
      });
    this.#queues = db("queues");
    this.#senders = db("senders");
    this.#seqs = db("seqs");
    this.#msgs = db("msgs");
    this.#keys = db("keys");
    this.#deliveries = db("deliveries");
    this.#sends = db("sends");
    this.#expiry = db("expiry");
    this.#bundles = db("bundles");
    this.#otks = db("otks");
  }

  // ------------------------------------------------------------------------------------------
  // Group commit: at most one write transaction in flight; everything written meanwhile forms
  // the next one. Without this, lmdb-js commits each event turn's writes as its own transaction,
  // and one frame per turn caps the relay at one message per commit cycle.

  #forming: Batch | undefined;
  #inflight = false;
  #lastDone: Promise<void> = Promise.resolve();

  #put(db: Database<Buffer, Buffer>, key: Buffer, value: Buffer): Promise<void> {
    return this.#enqueue([db, key, value]);
  }

  #del(db: Database<Buffer, Buffer>, key: Buffer): Promise<void> {
    return this.#enqueue([db, key, undefined]);
  }

  #enqueue(op: WriteOp): Promise<void> {
    if (!this.#forming) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      done.catch(() => {});
      this.#forming = { ops: [], done, resolve, reject };
      this.#lastDone = done;
      if (!this.#inflight) queueMicrotask(() => this.#flush());
    }
    this.#forming.ops.push(op);
    return this.#forming.done;
  }

  #flush(): void {
    const batch = this.#forming;
    if (this.#inflight || !batch) return;
    this.#forming = undefined;
    this.#inflight = true;
    // Inside a transaction callback lmdb-js applies each put/remove at once, in this order.
    this.#root
      .transaction(() => {
        for (const [db, key, value] of batch.ops) {
          if (value === undefined) db.remove(key);
          else db.put(key, value);
        }
      })
      .then(async () => {
        if (this.#overlapping) await this.#root.flushed;
      })
      .then(batch.resolve, batch.reject)
      .finally(() => {
        this.#inflight = false;
        if (this.#forming) this.#flush();
      });
  }

  /** Wait until `write` (or everything written so far) is committed and on disk. */
  async #durable(write?: Promise<unknown>): Promise<void> {
    await (write ?? this.#lastDone);
  }

  onAppend(listener: (recipientId: Uint8Array) => void): void {
    this.#listeners.push(listener);
  }

  // ------------------------------------------------------------------------------------------
  // Queues

  async createQueue(q: QueueRecord): Promise<void> {
    const rid = Buffer.from(q.recipientId);
    this.#put(this.#queues, rid, encodeQueue(q));
    await this.#durable(this.#put(this.#senders, Buffer.from(q.senderId), rid));
    this.#state.set(toHex(rid), { count: 0, nextSeq: 0, nextOtk: 0, otks: 0 });
  }

  async queueByRecipient(recipientId: Uint8Array): Promise<QueueRecord | undefined> {
    return this.#queueSync(Buffer.from(recipientId));
  }

  async queueBySender(senderId: Uint8Array): Promise<QueueRecord | undefined> {
    const rid = this.#senders.get(Buffer.from(senderId));
    return rid ? this.#queueSync(rid) : undefined;
  }

  #queueSync(rid: Buffer): QueueRecord | undefined {
    const raw = this.#queues.get(rid);
    return raw ? decodeQueue(rid, raw) : undefined;
  }

  async secureQueue(recipientId: Uint8Array, senderKey: Uint8Array): Promise<"ok" | "conflict" | "missing"> {
    const rid = Buffer.from(recipientId);
    const q = this.#queueSync(rid);
    if (!q) return "missing";
    if (q.senderKey) return Buffer.from(q.senderKey).equals(Buffer.from(senderKey)) ? "ok" : "conflict";
    await this.#durable(
      this.#put(this.#queues, rid, encodeQueue({ ...q, senderKey: new Uint8Array(senderKey) })),
    );
    return "ok";
  }

  async suspendQueue(recipientId: Uint8Array): Promise<boolean> {
    const rid = Buffer.from(recipientId);
    const q = this.#queueSync(rid);
    if (!q) return false;
    if (!q.suspended)
      await this.#durable(this.#put(this.#queues, rid, encodeQueue({ ...q, suspended: true })));
    return true;
  }

  async deleteQueue(recipientId: Uint8Array): Promise<number> {
    const rid = Buffer.from(recipientId);
    const q = this.#queueSync(rid);
    if (!q) return 0;
    const hex = toHex(rid);
    // Messages, bundle and one-time prekeys: crypto-delete (zero keys, then remove).
    const msgKeys = [...this.#msgs.getKeys({ start: cat(rid, u64(0)), end: cat(rid, MAX_U64) })] as Buffer[];
    const otkKeys = [...this.#otks.getKeys({ start: cat(rid, u64(0)), end: cat(rid, MAX_U64) })] as Buffer[];
    const hasBundle = this.#bundles.get(rid) !== undefined;
    const removals: (() => void)[] = [];
    for (const k of msgKeys) {
      const seq = readU64(k, 24);
      const rec = this.#msgs.get(k);
      const expiresAt = rec ? readU64(rec, 32) : 0;
      this.#deleting.add(toHex(k));
      removals.push(() => {
        this.#del(this.#msgs, k);
        this.#del(this.#keys, cat(Buffer.of(TAG_MSG), k));
        this.#del(this.#deliveries, k);
        this.#del(this.#expiry, cat(u64(expiresAt), Buffer.of(EXP_MSG), rid, u64(seq)));
      });
      this.#put(this.#keys, cat(Buffer.of(TAG_MSG), k), ZERO_KEY);
    }
    for (const k of otkKeys) {
      this.#put(this.#keys, cat(Buffer.of(TAG_OTK), k), ZERO_KEY);
      removals.push(() => {
        this.#del(this.#otks, k);
        this.#del(this.#keys, cat(Buffer.of(TAG_OTK), k));
      });
    }
    if (hasBundle) {
      this.#put(this.#keys, cat(Buffer.of(TAG_BUNDLE), rid), ZERO_KEY);
      removals.push(() => {
        this.#del(this.#bundles, rid);
        this.#del(this.#keys, cat(Buffer.of(TAG_BUNDLE), rid));
      });
    }
    await this.#durable();
    for (const r of removals) r();
    for (const { key, value } of this.#sends.getRange({
      start: cat(rid, Buffer.alloc(16)),
      end: cat(rid, Buffer.alloc(16, 0xff)),
      inclusiveEnd: true,
    })) {
      this.#del(this.#sends, key);
      this.#del(this.#expiry, cat(value.subarray(0, 8), Buffer.of(EXP_SEND), key));
    }
    this.#del(this.#queues, rid);
    this.#del(this.#seqs, rid);
    await this.#durable(this.#del(this.#senders, Buffer.from(q.senderId)));
    for (const k of msgKeys) this.#deleting.delete(toHex(k));
    this.#state.delete(hex);
    return msgKeys.length;
  }

  #loadState(rid: Buffer): QueueState {
    const hex = toHex(rid);
    let st = this.#state.get(hex);
    if (!st) {
      const seqs = this.#seqs.get(rid);
      st = {
        count: this.#msgs.getKeysCount({ start: cat(rid, u64(0)), end: cat(rid, MAX_U64) }),
        nextSeq: seqs ? readU64(seqs, 0) : 0,
        nextOtk: seqs ? readU64(seqs, 8) : 0,
        otks: this.#otks.getKeysCount({ start: cat(rid, u64(0)), end: cat(rid, MAX_U64) }),
      };
      this.#state.set(hex, st);
    }
    return st;
  }

  #writeSeqs(rid: Buffer, st: QueueState): void {
    this.#put(this.#seqs, rid, cat(u64(st.nextSeq), u64(st.nextOtk)));
  }

  // ------------------------------------------------------------------------------------------
  // Messages

  async append(recipientId: Uint8Array, m: NewMessage, quota: number): Promise<AppendResult> {
    const rid = Buffer.from(recipientId);
    const q = this.#queueSync(rid);
    if (!q) return "missing";
    if (q.suspended) return "suspended";
    const st = this.#loadState(rid);
    const sendKey = cat(rid, m.sendId);
    const sendHex = toHex(sendKey);
    if (this.#pendingSends.has(sendHex) || this.#sends.get(sendKey) !== undefined) return "duplicate";
    if (st.count >= quota) return "quota";
    const seq = st.nextSeq++;
    st.count++;
    this.#pendingSends.add(sendHex);
    const recKey = cat(rid, u64(seq));
    const block = padBlock(m.body, BLOCK_SIZE);
    const { key, sealed } = sealAtRest(block, cat(Buffer.of(TAG_MSG), recKey));
    block.fill(0);
    const header = cat(Buffer.from(m.msgId), u64(m.timestamp), u64(m.expiresAt));
    this.#put(this.#msgs, recKey, cat(header, sealed));
    this.#put(this.#keys, cat(Buffer.of(TAG_MSG), recKey), key);
    this.#writeSeqs(rid, st);
    this.#put(this.#sends, sendKey, u64(m.expiresAt));
    this.#put(this.#expiry, cat(u64(m.expiresAt), Buffer.of(EXP_SEND), sendKey), EMPTY);
    const committed = this.#put(this.#expiry, cat(u64(m.expiresAt), Buffer.of(EXP_MSG), recKey), EMPTY);
    try {
      await this.#durable(committed);
    } catch (e) {
      st.count--;
      throw e;
    } finally {
      // lmdb-js reads value buffers when the transaction runs: wipe our copy only afterwards.
      key.fill(0);
      this.#pendingSends.delete(sendHex);
    }
    for (const l of this.#listeners) l(rid);
    return "ok";
  }

  async next(recipientId: Uint8Array, afterSeq: number): Promise<StoredMessageMeta | undefined> {
    const rid = Buffer.from(recipientId);
    const start = afterSeq < 0 ? cat(rid, u64(0)) : cat(rid, u64(afterSeq + 1));
    for (const { key, value } of this.#msgs.getRange({ start, end: cat(rid, MAX_U64), limit: 1 })) {
      const seq = readU64(key, 24);
      const d = this.#deliveryCounts.get(toHex(key)) ?? this.#deliveries.get(key)?.readUInt32BE(0) ?? 0;
      return {
        seq,
        msgId: new Uint8Array(value.subarray(0, 24)),
        timestamp: readU64(value, 24),
        expiresAt: readU64(value, 32),
        deliveries: d,
      };
    }
    return undefined;
  }

  async read(recipientId: Uint8Array, seq: number): Promise<Uint8Array | undefined> {
    const recKey = cat(Buffer.from(recipientId), u64(seq));
    const rec = this.#msgs.get(recKey);
    const key = this.#keys.get(cat(Buffer.of(TAG_MSG), recKey));
    if (!rec || !key) return undefined;
    return openAtRest(key, rec.subarray(MSG_HEADER), cat(Buffer.of(TAG_MSG), recKey));
  }

  async markDelivered(recipientId: Uint8Array, seq: number): Promise<number> {
    const recKey = cat(Buffer.from(recipientId), u64(seq));
    const hex = toHex(recKey);
    const n = (this.#deliveryCounts.get(hex) ?? this.#deliveries.get(recKey)?.readUInt32BE(0) ?? 0) + 1;
    if (this.#msgs.doesExist(recKey)) this.#deliveryCounts.set(hex, n);
    return n;
  }

  releaseDeliveries(recipientId: Uint8Array, seqs: number[]): void {
    for (const seq of seqs) {
      const recKey = cat(Buffer.from(recipientId), u64(seq));
      const hex = toHex(recKey);
      const n = this.#deliveryCounts.get(hex);
      if (n === undefined || this.#deleting.has(hex) || !this.#msgs.doesExist(recKey)) continue;
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      void this.#put(this.#deliveries, recKey, b).catch(() => {});
    }
  }

  async ack(recipientId: Uint8Array, seq: number, msgId: Uint8Array): Promise<boolean> {
    const recKey = cat(Buffer.from(recipientId), u64(seq));
    const rec = this.#msgs.get(recKey);
    if (!rec?.subarray(0, 24).equals(Buffer.from(msgId))) return false;
    return this.#cryptoDelete(Buffer.from(recipientId), seq);
  }

  async drop(recipientId: Uint8Array, seq: number): Promise<boolean> {
    return this.#cryptoDelete(Buffer.from(recipientId), seq);
  }

  /** Zero the message key (one commit), then remove key, ciphertext and index (next commit). */
  async #cryptoDelete(rid: Buffer, seq: number): Promise<boolean> {
    const recKey = cat(rid, u64(seq));
    const hex = toHex(recKey);
    if (this.#deleting.has(hex)) return false;
    const rec = this.#msgs.get(recKey);
    if (!rec) return false;
    this.#deleting.add(hex);
    const st = this.#loadState(rid);
    st.count = Math.max(0, st.count - 1);
    const expiresAt = readU64(rec, 32);
    const keyKey = cat(Buffer.of(TAG_MSG), recKey);
    try {
      // Commit order is enough here: the removal below is what must reach the disk.
      await this.#put(this.#keys, keyKey, ZERO_KEY);
      this.#deliveryCounts.delete(hex);
      this.#del(this.#msgs, recKey);
      this.#del(this.#deliveries, recKey);
      this.#del(this.#expiry, cat(u64(expiresAt), Buffer.of(EXP_MSG), recKey));
      await this.#durable(this.#del(this.#keys, keyKey));
      return true;
    } finally {
      this.#deleting.delete(hex);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Prekeys

  async setPrekeys(
    recipientId: Uint8Array,
    u: PrekeyUpdate,
    maxOneTime: number,
  ): Promise<"ok" | "limit" | "missing"> {
    const rid = Buffer.from(recipientId);
    if (!this.#queueSync(rid)) return "missing";
    const st = this.#loadState(rid);
    const existing = u.replaceOneTime ? 0 : st.otks;
    if (existing + u.oneTime.length > maxOneTime) return "limit";
    if (u.replaceOneTime) {
      const old = [...this.#otks.getKeys({ start: cat(rid, u64(0)), end: cat(rid, MAX_U64) })] as Buffer[];
      for (const k of old) this.#put(this.#keys, cat(Buffer.of(TAG_OTK), k), ZERO_KEY);
      if (old.length > 0) await this.#durable();
      for (const k of old) {
        this.#del(this.#otks, k);
        this.#del(this.#keys, cat(Buffer.of(TAG_OTK), k));
      }
      st.otks = 0;
    }
    const wipeLater: Buffer[] = [];
    if (u.bundle) {
      const aad = cat(Buffer.of(TAG_BUNDLE), rid);
      if (this.#bundles.get(rid) !== undefined) {
        await this.#durable(this.#put(this.#keys, aad, ZERO_KEY));
      }
      const block = padBlock(u.bundle, BLOCK_SIZE);
      const { key, sealed } = sealAtRest(block, aad);
      block.fill(0);
      this.#put(this.#bundles, rid, sealed);
      this.#put(this.#keys, aad, key);
      wipeLater.push(key);
    }
    for (const otk of u.oneTime) {
      const k = cat(rid, u64(st.nextOtk++));
      const aad = cat(Buffer.of(TAG_OTK), k);
      const block = padBlock(otk, OTK_BLOCK_SIZE);
      const { key, sealed } = sealAtRest(block, aad);
      block.fill(0);
      this.#put(this.#otks, k, sealed);
      this.#put(this.#keys, aad, key);
      wipeLater.push(key);
      st.otks++;
    }
    this.#writeSeqs(rid, st);
    await this.#durable();
    for (const k of wipeLater) k.fill(0);
    return "ok";
  }

  async takePrekeys(
    recipientId: Uint8Array,
  ): Promise<{ bundle: Uint8Array; oneTime?: Uint8Array } | undefined> {
    const rid = Buffer.from(recipientId);
    const sealedBundle = this.#bundles.get(rid);
    const bundleKey = this.#keys.get(cat(Buffer.of(TAG_BUNDLE), rid));
    if (!sealedBundle || !bundleKey) return undefined;
    const bundle = openAtRest(bundleKey, sealedBundle, cat(Buffer.of(TAG_BUNDLE), rid));
    if (!bundle) return undefined;
    const st = this.#loadState(rid);
    for (const { key, value } of this.#otks.getRange({
      start: cat(rid, u64(0)),
      end: cat(rid, MAX_U64),
      limit: 1,
    })) {
      const aad = cat(Buffer.of(TAG_OTK), key);
      const otkKey = this.#keys.get(aad);
      const otk = otkKey ? openAtRest(otkKey, value, aad) : undefined;
      // Take it out before answering so no two senders get the same one-time prekey.
      st.otks = Math.max(0, st.otks - 1);
      this.#del(this.#otks, key);
      await this.#durable(this.#put(this.#keys, aad, ZERO_KEY));
      await this.#durable(this.#del(this.#keys, aad));
      return otk ? { bundle: blockBody(bundle), oneTime: blockBody(otk) } : { bundle: blockBody(bundle) };
    }
    return { bundle: blockBody(bundle) };
  }

  // ------------------------------------------------------------------------------------------

  async gc(nowMs: number): Promise<GcResult> {
    const result: GcResult = { expiredMessages: 0, expiredSendIds: 0 };
    const deletions: Promise<boolean>[] = [];
    for (const key of this.#expiry.getKeys({
      start: u64(0),
      end: cat(u64(nowMs), Buffer.of(0xff)),
    }) as Iterable<Buffer>) {
      const tag = key[8];
      if (tag === EXP_MSG && key.length === 8 + 1 + 24 + 8) {
        const rid = key.subarray(9, 33);
        const seq = readU64(key, 33);
        if (!this.#msgs.doesExist(cat(rid, u64(seq)))) this.#del(this.#expiry, key);
        else deletions.push(this.#cryptoDelete(Buffer.from(rid), seq));
      } else {
        if (tag === EXP_SEND) {
          this.#del(this.#sends, key.subarray(9));
          result.expiredSendIds++;
        }
        this.#del(this.#expiry, key);
      }
    }
    for (const ok of await Promise.all(deletions)) if (ok) result.expiredMessages++;
    await this.#durable();
    return result;
  }

  stats(): StoreStats {
    const s = (db: Database) =>
      db.getStats() as {
        entryCount: number;
        pageSize: number;
        treeBranchPageCount: number;
        treeLeafPageCount: number;
        overflowPages: number;
      };
    const m = s(this.#msgs);
    return {
      queues: s(this.#queues).entryCount,
      messages: m.entryCount,
      bytes: (m.treeBranchPageCount + m.treeLeafPageCount + m.overflowPages) * m.pageSize,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#durable();
    await this.#root.close();
  }
}

function blockBody(block: Uint8Array): Uint8Array {
  const len = (block[0]! << 8) | block[1]!;
  return new Uint8Array(block.subarray(2, 2 + len));
}

function encodeQueue(q: QueueRecord): Buffer {
  return Buffer.from(
    encodeCanonical([q.senderId, q.recipientKey, q.rcvKey, q.senderKey ?? null, q.suspended]),
  );
}

function decodeQueue(rid: Buffer, raw: Buffer): QueueRecord {
  const [senderId, recipientKey, rcvKey, senderKey, suspended] = decode(raw) as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array | null,
    boolean,
  ];
  return {
    recipientId: new Uint8Array(rid),
    senderId,
    recipientKey,
    rcvKey,
    senderKey: senderKey ?? undefined,
    suspended,
  };
}
