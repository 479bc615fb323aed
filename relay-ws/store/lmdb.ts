/**
 * The embedded relay store on LMDB (lmdb-js), layout in docs/operations-relay.md §Storage.
 *
 * Durability: the environment is opened with `overlappingSync: false`, so lmdb-js begins each
 * write transaction without MDB_NOSYNC and `mdb_txn_commit` fsyncs data and meta pages before the
 * write promise resolves (lmdb-js src/writer.cpp, WriteWorker::Write). A resolved `put` is
 * therefore on disk; the relay answers SEND only after that (docs/decisions.md (Relay)).
 *
 * At rest (docs/protocol/relay.md §At rest): every blob (message body, bundle, one-time prekey)
 * is padded to a coarse size bucket and sealed with AES-256-GCM under a fresh data key; the data
 * key is stored wrapped under the current epoch key K_N, which lives only in the keyring file
 * (relay-ws/store/keyring.ts), sealed under the master key. Deleting a blob removes its records in
 * one commit; the epoch key that could unwrap a stale copy of its data key (LMDB keeps freed pages
 * until reused) is destroyed once its epoch holds no live blob — survivors are re-wrapped under the
 * current epoch two epochs after theirs began — so a deleted blob stays decryptable from the disk
 * for at most about two epochs plus one GC interval (docs/decisions.md (Relay), "Epoch keys").
 *
 * Disk: a global byte quota, a free-disk floor and "no space" commit failures all refuse new
 * writes with "full" and keep what is stored; queues without activity for `idleQueueMs` are
 * deleted by GC.
 */
import { closeSync, existsSync, fsyncSync, openSync, renameSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { decode } from "@msgpack/msgpack";
import { type Database, open, type RootDatabase } from "lmdb";
import { encodeCanonical } from "../../core/codec/codec.ts";
import { BLOCK_SIZE, OTK_BLOCK_SIZE, padBlock } from "../../core/relay/protocol.ts";
import { toHex } from "../hex.ts";
import { AT_REST_IV_LENGTH, AT_REST_KEY_LENGTH } from "../node-crypto.ts";
import { pooledRandomBytes } from "../random-pool.ts";
import {
  blockBody,
  bucketSize,
  epochOf,
  KEY_RECORD_LENGTH,
  openBlob,
  sealBlob,
  TAG_BUNDLE,
  TAG_MSG,
  TAG_OTK,
  TAG_QUEUE,
  unwrapDataKey,
  wrapDataKey,
} from "./at-rest.ts";
import { lockDataDir } from "./dir-lock.ts";
import { DueHeap } from "./due-heap.ts";
import { commitCause, guardLmdbCommitRejections, isNoSpaceError, StoreError } from "./errors.ts";
import { GoneSends } from "./gone-sends.ts";
import { HotBlocks } from "./hot-blocks.ts";
import { checkMasterKey, KEYRING_FILE, Keyring, LEGACY_KEYRING_FILE } from "./keyring.ts";
import { SealPool, type SealPoolOptions } from "./seal-pool.ts";
import { SeqMap } from "./seq-map.ts";
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

/** Opened server→recipient keys kept in memory (cleared when full, like the relay's key cache). */
const RCV_CACHE_MAX = 100_000;
/** Decoded queue records (and sender → recipient ids) kept in memory; cleared when full. */
const RECORD_CACHE_MAX = 50_000;
/** Expiry-index tags. */
const EXP_MSG = 0x6d;
const EXP_SEND = 0x73; // 's'

const MSG_HEADER = 24 + 8 + 8; // msgId ‖ u64 timestamp ‖ u64 expiresAt (format 1)
const KEY_RECORD = KEY_RECORD_LENGTH;
/**
 * Where a format-1 message record's sealed blob begins: header ‖ key record ‖ sealed blob. The key
 * record lives inside the message record (one LMDB record per message: docs/decisions.md (Relay),
 * "One record per message"); stores written before kept it in `keys` and are migrated at open.
 */
const MSG_SEALED_AT = MSG_HEADER + KEY_RECORD;
/**
 * Message record format 2 (docs/protocol/relay.md §At rest, "Message record"): `0x02 ‖ send id(16)
 * ‖ msgId(24) ‖ u64 timestamp s ‖ u64 expiry ms ‖ key record(64) ‖ sealed blob`. The send id and
 * the expiry live in the record, so a SEND is one put (and its queue's head update) and an ACK
 * one delete: no `sends` or `expiry` entry per message. Its length is 149 + bucket, odd; a
 * format-1 record's is 132 + bucket, even (buckets are powers of two ≥ 256), so the two never
 * mix up even mid-migration.
 */
export const MSG_FORMAT_2 = 0x02;
const V2_SEND_AT = 1;
const V2_HEADER = 1 + 16;
const V2_SEALED_AT = V2_HEADER + MSG_SEALED_AT;

/** Where the parts of a message record are, by its format. */
interface MsgLayout {
  id: number;
  ts: number;
  exp: number;
  key: number;
  sealed: number;
}
const LAYOUT_1: MsgLayout = { id: 0, ts: 24, exp: 32, key: MSG_HEADER, sealed: MSG_SEALED_AT };
const LAYOUT_2: MsgLayout = {
  id: V2_HEADER,
  ts: V2_HEADER + 24,
  exp: V2_HEADER + 32,
  key: V2_HEADER + MSG_HEADER,
  sealed: V2_SEALED_AT,
};
const isFormat2 = (record: Uint8Array): boolean => record[0] === MSG_FORMAT_2 && (record.length & 1) === 1;
const layoutOf = (record: Uint8Array): MsgLayout => (isFormat2(record) ? LAYOUT_2 : LAYOUT_1);
/**
 * Send ids of stored messages cached in memory, at most (whole queues, least recently used
 * dropped first; ≈ 80 B each, ≈ 20 MiB): a dropped queue's are read from its records again.
 */
const QUEUE_SENDS_MAX = 262_144;
/** Send ids of messages no longer stored (acknowledged or dropped) kept for DUPLICATE, at most. */
const GONE_SENDS_MAX = 262_144;
/**
 * The store format this relay writes and reads (docs/operations-relay.md §Upgrades), kept in
 * `meta` under "format": 2 since message record format 2. An open refuses a higher number, so a
 * rolled-back relay never misreads a newer layout; a store without it is format 1 (or new).
 */
export const STORE_FORMAT = 2;
const META_FORMAT = Buffer.from("format", "latin1");
/**
 * A key-record-sized entry that sorts first in `keys` (key 0x00; every real key-key starts with a
 * tag letter): a relay from before format 2 takes a 64-byte first record for "records sealed under
 * the keyring" and, finding no `keyring` file (renamed to `keyring.2`), refuses to start — even on
 * a store that holds no queue yet.
 */
const KEYS_FENCE = Buffer.of(0x00);
/**
 * Message records rewritten per transaction when an open migrates an earlier layout (key records
 * moved in, format 1 → 2; a queue's records may span several transactions).
 */
const MIGRATE_CHUNK = 4096;
/** Bytes a blob's key record adds to its queue's stored bytes. */
const KEY_COST = KEY_RECORD;
const LEGACY_KEY_RECORD = AT_REST_KEY_LENGTH;
const EMPTY = Buffer.alloc(1);
const DAY_MS = 86_400_000;
/** How long a "no space" commit failure refuses new writes before the disk is tried again. */
const NO_SPACE_BACKOFF_MS = 5_000;
const FREE_DISK_CHECK_MS = 1_000;
/** Records re-wrapped per transaction when an epoch retires. */
const REWRAP_CHUNK = 512;
/** Idle queues deleted per GC run (the rest go at the next). */
const IDLE_PER_GC = 1_000;
/** Default memory for blocks awaiting their first delivery (hot-blocks.ts). */
const DEFAULT_HOT_BLOCK_BYTES = 16 * 1024 * 1024;

/**
 * u64 fields hold seqs, ms times and byte counts, all below 2^53: written and read as two u32
 * halves, without a BigInt per call (the SEND and ACK paths write and read several per message).
 */
const writeU64 = (b: Buffer, n: number, at: number): void => {
  b.writeUInt32BE(Math.floor(n / 0x1_0000_0000) >>> 0, at);
  b.writeUInt32BE(n >>> 0, at + 4);
};
const u64 = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, n, 0);
  return b;
};
/** A message record's key, rid ‖ u64 seq, in one allocation. */
const recKeyOf = (rid: Uint8Array, seq: number): Buffer => {
  const b = Buffer.allocUnsafe(rid.length + 8);
  b.set(rid, 0);
  writeU64(b, seq, rid.length);
  return b;
};
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const readU64 = (b: Uint8Array, at: number): number => readU64Num(b, at);
/** A u64 below 2^53 (expiries, seqs) without a BigInt: GC and open read one per record. */
const readU64Num = (b: Uint8Array, at: number): number => readU32(b, at) * 0x1_0000_0000 + readU32(b, at + 4);
const readU32 = (b: Uint8Array, at: number): number =>
  ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
const cat = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts);
/** rid ‖ send id as latin1: a send id's key in the in-memory maps (and, as bytes, in `sends`). */
const sendKeyOf = (rid: Buffer, sendId: Uint8Array): string => cat(rid, sendId).toString("latin1");
const MAX_U64 = Buffer.alloc(8, 0xff);
/**
 * The all-zero send id as the tail of a send key (latin1): what a record migrated without a known
 * send id holds, so it never refuses a SEND as DUPLICATE of a stored message (docs/protocol/relay.md,
 * SEND) — a DUPLICATE for a message not stored would be a message lost.
 */
const ZERO_SEND = "\0".repeat(16);
const isZero = (b: Uint8Array): boolean => {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
};
/** Bytes a message's record takes (format 2: 149 + bucket), what its queue's quota counts. */
const messageCost = (bodyLength: number): number =>
  V2_SEALED_AT + AT_REST_IV_LENGTH + bucketSize(bodyLength, BLOCK_SIZE) + 16;

/**
 * The epoch of a message record's key record (docs/protocol/relay.md §At rest: header ‖ key
 * record ‖ sealed blob); undefined if the record is too short to hold one.
 */
export function messageRecordEpoch(record: Uint8Array): number | undefined {
  const l = layoutOf(record);
  return record.length >= l.sealed ? readU32(record, l.key) : undefined;
}

/** Where a message record's send id starts (format 2), or -1 (format 1, or too short). */
const sendIdAt = (record: Uint8Array): number =>
  isFormat2(record) && record.length >= V2_SEALED_AT ? V2_SEND_AT : -1;

/** A message record's send id (format 2), or undefined (format 1, or too short). */
export function messageRecordSendId(record: Uint8Array): Uint8Array | undefined {
  const at = sendIdAt(record);
  return at < 0 ? undefined : record.subarray(at, at + 16);
}

/** A message record's header fields (either format), or undefined if too short. */
export function messageRecordHeader(
  record: Uint8Array,
): { msgId: Uint8Array; timestamp: number; expiresAt: number } | undefined {
  const l = layoutOf(record);
  if (record.length < l.key) return undefined;
  return {
    msgId: record.subarray(l.id, l.id + 24),
    timestamp: readU64(record, l.ts),
    expiresAt: readU64(record, l.exp),
  };
}

/**
 * A message record's padded block, given its key-key (`'m' ‖ rid ‖ seq`) and the live epoch keys;
 * undefined if the record is too short, its epoch key is destroyed, or it does not authenticate.
 */
export function openMessageRecord(
  record: Uint8Array,
  keyKey: Uint8Array,
  epochKey: (epoch: number) => Uint8Array | undefined,
): Buffer | undefined {
  const l = layoutOf(record);
  const epoch = messageRecordEpoch(record);
  const key = epoch === undefined ? undefined : epochKey(epoch);
  if (!key) return undefined;
  const dataKey = unwrapDataKey(record.subarray(l.key, l.sealed), key, keyKey);
  if (!dataKey) return undefined;
  const plain = openBlob(dataKey, record.subarray(l.sealed), keyKey);
  dataKey.fill(0);
  return plain;
}

/** A write: a put/remove, or a function run inside the transaction (it reads what came before). */
type WriteOp = [Database<Buffer, Buffer>, Buffer, Buffer | undefined] | (() => void);

/** A change of a queue's persisted state (`seqs`), applied to what is committed before it. */
interface StateDelta {
  bytes: number;
  nextSeq?: number | undefined;
  nextOtk?: number | undefined;
  day?: number | undefined;
}

interface Batch {
  ops: WriteOp[];
  /**
   * The state change of each queue (rid, latin1) in this batch: the messages of one queue in one
   * commit update its `seqs` record once, not once each (docs/decisions.md (Relay), "Group commit").
   */
  deltas: Map<string, StateDelta>;
  done: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** A write whose outcome is not known yet; the retries of its send id wait for it. */
interface PendingSend {
  waiters: ((committed: boolean) => void)[] | undefined;
}

interface QueueState {
  /** Messages stored (including in flight). */
  count: number;
  /** Of those, writes whose outcome is not known yet (their ids are in #pendingSends). */
  writing: number;
  nextSeq: number;
  nextOtk: number;
  otks: number;
  /** Bytes of this queue's blobs and key records (reserved at write, released after deletion). */
  bytes: number;
  /** Day number (ms / 86 400 000) of the last SEND, SUB/GET, PKSET or ACK. */
  activeDay: number;
}

/** The persisted per-queue record (`seqs`): u64 next seq ‖ u64 next otk ‖ u64 bytes ‖ u32 day. */
interface PersistedState {
  nextSeq: number;
  nextOtk: number;
  bytes: number;
  activeDay: number;
}
const STATE_RECORD = 8 + 8 + 8 + 4;

export interface LmdbStoreOptions {
  path: string;
  /** 32 bytes that seal the keyring (docs/operations-relay.md §Keys); copied, the caller wipes its own. */
  masterKey: Uint8Array;
  /** The master key before a rotation: a keyring sealed under it is re-sealed under `masterKey`. */
  previousMasterKey?: Uint8Array | undefined;
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
  /** Length of a key epoch (default 1 h). */
  keyEpochMs?: number;
  /** Bytes all queues together may store (blobs + key records); 0: no quota. */
  quotaBytes?: number;
  /** Refuse new writes while the data dir's filesystem has less free space than this (0: never). */
  minFreeDiskBytes?: number;
  /** A queue with no SEND, SUB/GET, PKSET or ACK for this long is deleted by GC (0: never). */
  idleQueueMs?: number;
  /** Milliseconds since the epoch (activity days, epoch starts). */
  clock?: () => number;
  /** Where fresh keys come from (default the CSPRNG through random-pool.ts); tests record what it hands out. */
  keySource?: (length: number) => Buffer;
  /** Told when the disk refuses a commit (then at most once per back-off period), for the log. */
  onNoSpace?: (cause: unknown) => void;
  /**
   * Memory for padded blocks kept from SEND to their first delivery, so a pushed message is not
   * read back and opened (hot-blocks.ts; default 16 MiB, 0: none).
   */
  hotBlockBytes?: number;
  /**
   * 1: messages are sealed at rest on a worker thread (seal-pool.ts), so a second core takes the
   * AES-GCM work of each SEND; 0 (default): on the event loop.
   */
  sealThreads?: number;
  /**
   * Send ids of stored messages cached in memory for DUPLICATE, at most (default 262 144; whole
   * queues, read again from their records when dropped).
   */
  sendIdCache?: number;
  /**
   * The pool to seal on (implies a worker; closed with the store — not when the open fails: it is
   * then still the caller's): tests hold its answers back.
   */
  sealPool?: SealPool;
  /**
   * Told when the seal worker is failed over to the event loop (stuck past its batch timeout,
   * crashed, exited), for the log; counted in `stats().sealFailovers` either way.
   */
  onSealFailover?: SealPoolOptions["onFailover"];
  /** Told when a new seal worker replaces a failed one (counted in `stats().sealRespawns`). */
  onSealRespawn?: SealPoolOptions["onRespawn"];
  /**
   * Tests only: asked at each group commit whether it fails. "before": before any of its writes
   * ran (as an earlier write of the group throwing); "after": once all ran, undone (as the disk
   * refusing the commit); "midway": the group's own last step throws once the others ran (as a
   * step reading a damaged record). The commit's writers get the error "commit failed (test fault)".
   */
  commitFault?: () => "before" | "after" | "midway" | undefined;
  /**
   * Tests only: told each stage of the open as it is reached, and throws to fail the open there
   * ("lmdb": the environment open; "keyring": the keyring open too; "migrate": in the migration of
   * earlier layouts; "scan": in the pass over the message records, at each queue's first).
   */
  openFault?: (stage: OpenStage) => void;
}

/** The stages of an open a test can fail (LmdbStoreOptions.openFault). */
export type OpenStage = "lmdb" | "keyring" | "migrate" | "scan";

/**
 * Failed opens still closing what they had opened; each releases its data dir's lock last
 * (closeFailedOpen). Their promises never reject.
 */
const closingOpens = new Set<Promise<void>>();

/** Settles once every open that failed so far has closed its environment and worker and released its lock. */
export async function failedOpensClosed(): Promise<void> {
  await Promise.all(closingOpens);
}

/**
 * A failed open closes what it had opened, in reverse order, and releases the data dir's lock
 * last: the keyring's keys wiped, the LMDB environment closed (lmdb-js closes it once its writes
 * have flushed: asynchronously), the store's own seal worker stopped, then the lock. Released
 * before the environment closed, the lock let another relay process open the environment while
 * this one still had it open (docs/operations-relay.md §Storage, "One relay process per data dir").
 */
function closeFailedOpen(
  keyring: Keyring | undefined,
  root: RootDatabase | undefined,
  sealer: SealPool | undefined,
  unlock: () => void,
): void {
  keyring?.close();
  const closing = (async () => {
    try {
      await root?.close();
    } catch {
      // lmdb-js closes the environment whether or not its last writes flushed.
    }
    try {
      await sealer?.close();
    } catch {
      // close terminates the worker however its last jobs ended.
    }
  })().finally(() => {
    unlock();
    closingOpens.delete(closing);
  });
  closingOpens.add(closing);
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
  /** u32 epoch ‖ key-record key → 1 byte: which blobs each epoch key wraps. */
  readonly #byEpoch: Database<Buffer, Buffer>;
  /** u32 day ‖ rid → 1 byte: queues by last activity (idle expiry). */
  readonly #active: Database<Buffer, Buffer>;
  /** "format" → u32 store format (STORE_FORMAT). */
  readonly #meta: Database<Buffer, Buffer>;
  readonly #keyring: Keyring;
  readonly #state = new Map<string, QueueState>();
  /**
   * Send ids of the messages accepted but not committed yet (rid‖sendId, latin1) → the retries
   * waiting for that write's outcome (#afterPending). Stored messages' ids are not all held in
   * memory (it would grow with the store, ~100 B each): a SEND that is not pending looks in its
   * queue's own records (format 2 holds the send id at offset 1), through the bounded cache
   * #queueSends (docs/protocol/relay.md, SEND).
   */
  readonly #pendingSends = new Map<string, PendingSend>();
  /**
   * The send ids of each queue's committed messages (rid latin1 → send ids latin1), read from its
   * records at the queue's first SEND that needs them and kept up to date: a cache, at most
   * QUEUE_SENDS_MAX ids in all (least recently used queues dropped, read again when needed), so a
   * SEND to a queue that holds many messages costs one lookup, not a pass over its records.
   */
  readonly #queueSends = new Map<string, Set<string>>();
  #queueSendsTotal = 0;
  /** The queue #storedSendId moved last to the end of #queueSends (the most recently used). */
  #queueSendsLast: string | undefined;
  readonly #queueSendsMax: number;
  /**
   * Send ids of messages no longer stored (acknowledged, dropped) → their expiry: a retry of one
   * is still DUPLICATE while the relay runs (at most GONE_SENDS_MAX, oldest forgotten first;
   * pruned by GC at expiry). Not on disk: after a restart only stored messages' ids are known
   * (docs/protocol/relay.md, SEND). Flat arrays, not a Map of strings: nothing per message for
   * the collector to copy and promote (gone-sends.ts).
   */
  readonly #goneSends = new GoneSends(GONE_SENDS_MAX, pooledRandomBytes);
  /** Whether `sends` may hold records written before format 2 (their ids still refuse retries). */
  #legacySends: boolean;
  /**
   * A lower bound of the earliest expiry among each queue's format-2 message records (rid latin1 →
   * ms; no entry: the queue holds none): built at open from the pass over the records it makes
   * anyway, lowered at each SEND (before its commit), kept as it is at ACK or drop (still a lower
   * bound), and made exact again when GC visits the queue. So a GC run reads the records of the
   * queues with something due only, not every stored message's expiry (docs/operations-relay.md
   * §Storage).
   */
  readonly #earliest = new Map<string, number>();
  /**
   * #earliest's queues ordered by their bound (an entry pushed at each new bound, stale ones dropped
   * when popped): a GC run pops the due ones only, instead of walking every queue holding messages.
   */
  readonly #due = new DueHeap();
  /**
   * What the last GC run read: the bounds it took off #due (due or stale), the queues it visited
   * and their message records (tests, bench).
   */
  lastGcVisit = { bounds: 0, queues: 0, records: 0 };
  /** Bytes of each queue's message records (rid latin1), counted at open, taken by #loadState. */
  readonly #openMsgBytes = new Map<string, number>();
  /** Decoded queue records by rid hex, as committed (#queueSync). */
  readonly #records = new Map<string, QueueRecord>();
  /** Recipient ids by sender id hex, as committed. */
  readonly #ridBySender = new Map<string, Buffer>();
  /** Opened server→recipient keys by rid hex (the relay holds them in memory anyway). */
  readonly #rcvKeys = new Map<string, Uint8Array>();
  /**
   * The record with its key opened, for each cached record (#records): every SEND and ACK looks
   * its queue up, and answered a new copy each time. A write forgets the cached record, and so
   * its entry here.
   */
  readonly #withKeys = new WeakMap<QueueRecord, QueueRecord>();
  /** Queues whose deletion is not committed yet (rid hex): writes to them are refused. */
  readonly #deletingQueues = new Set<string>();
  /** One-time prekeys handed out whose removal is not committed yet (rid‖seq hex). */
  readonly #takenOtks = new Set<string>();
  /** Messages being deleted (rid hex, seq), so ack/drop/gc never race. */
  readonly #deleting = new SeqMap<true>();
  readonly #listeners: ((recipientId: Uint8Array) => void)[] = [];
  /** Delivery counts written but maybe not committed yet ((rid hex, seq) → count). */
  readonly #deliveryCounts = new SeqMap<number>();
  /** Blocks of committed messages not delivered yet (hot-blocks.ts). */
  readonly #hot: HotBlocks;
  /** Seals message blocks on a worker (`sealThreads`), or undefined: on the event loop. */
  readonly #sealer: SealPool | undefined;
  /**
   * Message records per epoch whose key record that epoch's key wraps: counted when a record is
   * sealed (before its commit) and released once its deletion or re-wrap is durable, so an epoch
   * is never destroyed while a committed — or about to be committed — message needs its key.
   * Rebuilt from the records at open (messages have no `byepoch` entries: one record each).
   */
  readonly #msgEpochs = new Map<number, number>();
  /**
   * Whether `deliveries` may hold a count: false while it is empty (a healthy relay's usual state:
   * counts are written only for deliveries that end without ACK), so the hot path skips its reads.
   */
  #deliveriesStored: boolean;
  #closed = false;
  /** Releases the data dir's lock (dir-lock.ts), at close. */
  readonly #unlock: () => void;

  readonly #overlapping: boolean;
  readonly #keySource: (length: number) => Buffer;
  readonly #clock: () => number;
  readonly #epochMs: number;
  readonly #quotaBytes: number;
  readonly #minFree: number;
  readonly #idleMs: number;
  readonly #path: string;
  readonly #onNoSpace: ((cause: unknown) => void) | undefined;
  readonly #commitFault: LmdbStoreOptions["commitFault"];
  readonly #openFault: LmdbStoreOptions["openFault"];
  /** Bytes stored by all queues (sum of the per-queue counts, including reservations). */
  #totalBytes = 0;
  #noSpaceUntil = 0;
  #freeCheckedAt = -Infinity;
  #freeLow = false;
  #gcChain: Promise<unknown> = Promise.resolve();

  constructor(options: LmdbStoreOptions) {
    const sync = options.sync ?? true;
    this.#path = options.path;
    this.#overlapping = sync && (options.overlappingSync ?? true);
    this.#keySource = options.keySource ?? pooledRandomBytes;
    this.#clock = options.clock ?? Date.now;
    this.#epochMs = options.keyEpochMs ?? 3_600_000;
    this.#quotaBytes = options.quotaBytes ?? 0;
    this.#minFree = options.minFreeDiskBytes ?? 0;
    this.#idleMs = options.idleQueueMs ?? 0;
    this.#onNoSpace = options.onNoSpace;
    this.#commitFault = options.commitFault;
    this.#openFault = options.openFault;
    this.#queueSendsMax = options.sendIdCache ?? QUEUE_SENDS_MAX;
    this.#hot = new HotBlocks(options.hotBlockBytes ?? DEFAULT_HOT_BLOCK_BYTES);
    // One relay process per data dir (dir-lock.ts): taken before anything starts (a second process
    // is refused without a seal worker to stop), released at close — or, when the open fails below,
    // last, once what it opened is closed (closeFailedOpen).
    const unlock = lockDataDir(options.path);
    let ownSealer: SealPool | undefined;
    let root: RootDatabase | undefined;
    let keyring: Keyring | undefined;
    try {
      ownSealer =
        options.sealPool || (options.sealThreads ?? 0) <= 0
          ? undefined
          : new SealPool({
              ...(options.onSealFailover ? { onFailover: options.onSealFailover } : {}),
              ...(options.onSealRespawn ? { onRespawn: options.onSealRespawn } : {}),
            });
      this.#sealer = options.sealPool ?? ownSealer;
      guardLmdbCommitRejections();
      root = this.#root = open({
        path: options.path,
        // A folder whatever its name: lmdb-js takes a path with an extension ("x.y") for a file.
        noSubdir: false,
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
      this.#byEpoch = db("byepoch");
      this.#active = db("active");
      this.#meta = db("meta");
      this.#openFault?.("lmdb");
      // Refused before anything is touched: a newer relay wrote this dir (a rollback past a format
      // change); this relay would misread its records and its GC would destroy their keys.
      const format = this.#meta.get(META_FORMAT);
      if (format && (format.length !== 4 || format.readUInt32BE(0) > STORE_FORMAT))
        throw new StoreError(
          "LOFT_ERR_RELAY_STORE_FORMAT",
          format.length === 4
            ? `${options.path} holds store format ${format.readUInt32BE(0)}, newer than this relay's ${STORE_FORMAT}; run the relay version that wrote it (docs/operations-relay.md, "Upgrades")`
            : `${options.path} holds an unreadable store format record (${format.length} bytes, not 4); this relay does not know what wrote it and reads nothing (docs/operations-relay.md, "Upgrades")`,
        );
      // Format 2's keyring file name: from now on a relay from before format 2 finds no keyring and
      // stops (docs/operations-relay.md §Upgrades). Renamed before the migration below, so a crash in
      // it leaves a dir only a format-2 relay opens (it resumes the migration) — but after the master
      // key is known to open it, so a start with a wrong key changes nothing.
      renameLegacyKeyring(options.path, options.masterKey, options.previousMasterKey);
      const hadKeyring = keyringExists(options.path);
      if (!hadKeyring && this.#hasWrappedKeys())
        throw new StoreError(
          "LOFT_ERR_RELAY_KEYRING",
          `${options.path}/${KEYRING_FILE} is missing but the store holds records sealed under it; restore the keyring file (or move the data dir away to start empty)`,
        );
      keyring = this.#keyring = Keyring.open(options.path, options.masterKey, this.#clock(), {
        previous: options.previousMasterKey,
        keySource: this.#keySource,
      });
      this.#openFault?.("keyring");
      if (!format || !this.#keys.doesExist(KEYS_FENCE))
        this.#root.transactionSync(() => {
          this.#meta.put(META_FORMAT, u32(STORE_FORMAT));
          this.#keys.put(KEYS_FENCE, Buffer.alloc(KEY_RECORD));
        });
      this.#migrate();
      this.#migrateMessageKeys();
      // One pass over the records; a second only after a format 1 → 2 migration (once per store).
      if (this.#scanMessages()) {
        this.#migrateSendIds();
        this.#scanMessages();
      }
      this.#deliveriesStored = false;
      for (const _ of this.#deliveries.getKeys({ limit: 1 })) this.#deliveriesStored = true;
      this.#legacySends = false;
      for (const _ of this.#sends.getKeys({ limit: 1 })) this.#legacySends = true;
      for (const { value } of this.#seqs.getRange({})) this.#totalBytes += decodeState(value).bytes;
    } catch (e) {
      closeFailedOpen(keyring, root, ownSealer, unlock);
      throw e;
    }
    this.#unlock = unlock;
  }

  /**
   * Every message record, read in place: its key record's epoch, its bytes (the queue state on
   * disk counts prekeys and bundles only since format 2). Whether a format-1 record is left.
   */
  #scanMessages(): boolean {
    this.#msgEpochs.clear();
    this.#openMsgBytes.clear();
    this.#earliest.clear();
    this.#due.clear();
    this.#totalBytes = 0;
    let format1 = false;
    // Keys are rid ‖ seq, so one queue's records come together: each queue's bytes and earliest
    // expiry are summed locally and stored once (an open of millions of records pays a map write
    // per queue, not per record); likewise runs of one epoch.
    const runRid = Buffer.alloc(24);
    let runId: string | undefined;
    let runBytes = 0;
    let runMin = Number.POSITIVE_INFINITY;
    const endRun = () => {
      if (runId === undefined) return;
      this.#openMsgBytes.set(runId, (this.#openMsgBytes.get(runId) ?? 0) + runBytes);
      if (runMin !== Number.POSITIVE_INFINITY) this.#noteExpiry(runId, runMin);
    };
    let epochRun: number | undefined;
    let epochCount = 0;
    for (const key of this.#msgs.getKeys({}) as Iterable<Buffer>) {
      const rec = this.#msgs.getBinaryFast(key);
      if (!rec) continue;
      if (runId === undefined || runRid.compare(key, 0, 24, 0, 24) !== 0) {
        endRun();
        this.#openFault?.("scan");
        key.copy(runRid, 0, 0, 24);
        runId = key.toString("latin1", 0, 24);
        runBytes = 0;
        runMin = Number.POSITIVE_INFINITY;
      }
      // Format 1 expires through its `expiry` entries; format 2 through #earliest.
      if (!isFormat2(rec)) format1 = true;
      else if (rec.length >= LAYOUT_2.key) {
        const exp = readU64Num(rec, LAYOUT_2.exp);
        if (exp < runMin) runMin = exp;
      }
      const epoch = messageRecordEpoch(rec);
      if (epoch !== epochRun) {
        if (epochRun !== undefined) this.#countEpoch(epochRun, epochCount);
        epochRun = epoch;
        epochCount = 0;
      }
      epochCount++;
      runBytes += rec.length;
      this.#totalBytes += rec.length;
    }
    endRun();
    if (epochRun !== undefined) this.#countEpoch(epochRun, epochCount);
    return format1;
  }

  /**
   * Format 1 → 2 (docs/protocol/relay.md §At rest, "Message record"): each message record gets its
   * send id (from its `sends` record, which names its seq; 16 zero bytes when none does) and the
   * queue's persisted bytes stop counting message records (counted from the records at open).
   * In key order, in transactions of up to MIGRATE_CHUNK records each (those records rewritten
   * and their queues' bytes lowered together), so a crash in the middle leaves records of either
   * format, each counted once, and the next open moves the rest. The `sends` and `expiry` entries
   * stay: GC expires them as before, and a retry of their ids stays DUPLICATE until then. No
   * crypto: the key record and sealed blob are the same bytes (the key-key does not change).
   */
  #migrateSendIds(): void {
    /** rid‖seq (latin1) → send id, from the send records that name their message. */
    const sendOf = new Map<string, Buffer>();
    for (const { key, value } of this.#sends.getRange({}))
      if (value.length === 16 && key.length === 24 + 16)
        sendOf.set(
          cat(key.subarray(0, 24), value.subarray(8, 16)).toString("latin1"),
          Buffer.from(key.subarray(24)),
        );
    // Walks `msgs` itself (not the queues in `seqs`), so a record of a queue without a `seqs`
    // record is migrated too; chunks may split a queue: each lowers its queues' bytes by exactly
    // the records it rewrites.
    let start: Buffer | undefined;
    for (;;) {
      const chunk: { key: Buffer; value: Buffer }[] = [];
      for (const key of this.#msgs.getKeys(start ? { start } : {}) as Iterable<Buffer>) {
        const rec = this.#msgs.getBinaryFast(key);
        if (!rec || isFormat2(rec)) continue;
        // A copy (getBinaryFast's buffer is reused by the next read).
        const value = this.#msgs.get(key);
        if (value) chunk.push({ key: Buffer.from(key), value: Buffer.from(value) });
        if (chunk.length >= MIGRATE_CHUNK) break;
      }
      if (chunk.length === 0) return;
      this.#root.transactionSync(() => {
        const freed = new Map<string, number>();
        for (const { key, value } of chunk) {
          const sendId = sendOf.get(key.toString("latin1")) ?? Buffer.alloc(16);
          this.#msgs.put(key, cat(Buffer.of(MSG_FORMAT_2), sendId, value));
          const rid = key.toString("latin1", 0, 24);
          freed.set(rid, (freed.get(rid) ?? 0) + value.length);
        }
        for (const [id, n] of freed) {
          const rid = Buffer.from(id, "latin1");
          const raw = this.#seqs.get(rid);
          if (raw && raw.length === STATE_RECORD) {
            const st = decodeState(raw);
            st.bytes = Math.max(0, st.bytes - n);
            this.#seqs.put(rid, encodeState(st));
          }
        }
      });
      // Past the last record rewritten (keys are rid ‖ u64 seq).
      start = cat(chunk[chunk.length - 1]!.key, EMPTY);
    }
  }

  /** A format-2 record of queue `id` (rid latin1) expires at `expiresAt` (#earliest). */
  #noteExpiry(id: string, expiresAt: number): void {
    const known = this.#earliest.get(id);
    if (known === undefined || expiresAt < known) this.#setEarliest(id, expiresAt);
  }

  /** Queue `id`'s bound is now `at` (#earliest), and #due holds it. */
  #setEarliest(id: string, at: number): void {
    this.#earliest.set(id, at);
    this.#due.push(at, id);
    // Stale entries (bounds lowered or raised since, queues deleted) wait for their turn at the
    // top; when they outnumber the live ones, #due is rebuilt from #earliest (amortized O(1)).
    if (this.#due.size > 2 * this.#earliest.size + 1024) {
      this.#due.clear();
      for (const [q, t] of this.#earliest) this.#due.push(t, q);
    }
  }

  #countEpoch(epoch: number, n: number): void {
    const left = (this.#msgEpochs.get(epoch) ?? 0) + n;
    if (left > 0) this.#msgEpochs.set(epoch, left);
    else this.#msgEpochs.delete(epoch);
  }

  /**
   * Messages stored before one record per message kept their key record in `keys` (tag `m`) with
   * a `byepoch` entry: move each key record into its message record (header ‖ key record ‖ sealed
   * blob) — the same bytes, so no crypto — and remove both. Once, at open, in chunks; a crash
   * in the middle leaves moved and unmoved messages, and the next open moves the rest.
   */
  #migrateMessageKeys(): void {
    const start = Buffer.of(TAG_MSG);
    const end = Buffer.of(TAG_MSG + 1);
    for (let round = 0; round < 1_000_000; round++) {
      const chunk = [...this.#keys.getRange({ start, end, limit: MIGRATE_CHUNK })].map((e) => ({
        keyKey: Buffer.from(e.key),
        record: Buffer.from(e.value),
      }));
      if (chunk.length === 0) return;
      this.#root.transactionSync(() => {
        for (const { keyKey, record } of chunk) {
          const recKey = keyKey.subarray(1);
          const rec = this.#msgs.get(recKey);
          if (rec && record.length === KEY_RECORD && rec.length > MSG_HEADER)
            this.#msgs.put(recKey, cat(rec.subarray(0, MSG_HEADER), record, rec.subarray(MSG_HEADER)));
          if (record.length === KEY_RECORD) this.#byEpoch.remove(cat(record.subarray(0, 4), keyKey));
          this.#keys.remove(keyKey);
        }
      });
    }
  }

  #hasWrappedKeys(): boolean {
    // Past the fence: it wraps nothing.
    for (const { value } of this.#keys.getRange({ start: Buffer.of(0x01), limit: 1 }))
      return value.length === KEY_RECORD;
    return false;
  }

  /**
   * Records written before epoch keys (raw 32-byte key records, 16-byte queue state): wrap the keys
   * under the current epoch, count each queue's bytes, index its activity. Once, at open.
   */
  #migrate(): void {
    this.#openFault?.("migrate");
    const legacyKeys: { key: Buffer; value: Buffer }[] = [];
    for (const { key, value } of this.#keys.getRange({}))
      if (value.length === LEGACY_KEY_RECORD)
        legacyKeys.push({ key: Buffer.from(key), value: Buffer.from(value) });
    const legacyStates: Buffer[] = [];
    for (const { key, value } of this.#seqs.getRange({}))
      if (value.length !== STATE_RECORD) legacyStates.push(Buffer.from(key));
    const unindexed: Buffer[] = [];
    const plainRcv: Buffer[] = [];
    for (const { key, value } of this.#queues.getRange({})) {
      const rid = Buffer.from(key);
      if (!this.#seqs.doesExist(rid)) unindexed.push(rid);
      if (decodeQueue(rid, value).rcvKey.length === AT_REST_KEY_LENGTH) plainRcv.push(rid);
    }
    if (legacyKeys.length + legacyStates.length + unindexed.length + plainRcv.length === 0) return;
    const epoch = this.#keyring.current;
    const today = this.#today();
    this.#root.transactionSync(() => {
      for (const { key, value } of legacyKeys) {
        this.#keys.put(key, this.#wrap(epoch.id, epoch.key, value, key));
        this.#byEpoch.put(cat(u32(epoch.id), key), EMPTY);
        value.fill(0);
      }
      for (const rid of [...legacyStates, ...unindexed]) {
        const old = this.#seqs.get(rid);
        const st: PersistedState = {
          nextSeq: old && old.length >= 8 ? readU64(old, 0) : 0,
          nextOtk: old && old.length >= 16 ? readU64(old, 8) : 0,
          bytes: this.#scanBytes(rid),
          activeDay: today,
        };
        this.#seqs.put(rid, encodeState(st));
        this.#active.put(cat(u32(today), rid), EMPTY);
      }
      for (const rid of plainRcv) {
        const q = decodeQueue(rid, this.#queues.get(rid)!);
        const keyKey = cat(Buffer.of(TAG_QUEUE), rid);
        const { sealed, keyRecord, epoch: id } = this.#seal(q.rcvKey, keyKey);
        this.#keys.put(keyKey, keyRecord);
        this.#byEpoch.put(cat(u32(id), keyKey), EMPTY);
        this.#queues.put(rid, encodeQueue({ ...q, rcvKey: sealed }));
      }
    });
  }

  /**
   * Bytes of a queue's blobs and key records, counted from the records (migration only), in the
   * format-2 sense the open ends with: a format-2 message record is not counted (it is counted
   * from itself at every open); an older one is, at the length it will have in format 1 (its key
   * record moved in, #migrateMessageKeys), which #migrateSendIds then takes off again — so each
   * message is counted once, whatever mix of formats the queue holds.
   */
  #scanBytes(rid: Buffer): number {
    let n = 0;
    const range = { start: cat(rid, u64(0)), end: cat(rid, MAX_U64) };
    for (const { key, value } of this.#msgs.getRange(range))
      if (!isFormat2(value))
        n += value.length + (this.#keys.doesExist(cat(Buffer.of(TAG_MSG), key)) ? KEY_RECORD : 0);
    for (const { value } of this.#otks.getRange(range)) n += value.length + KEY_COST;
    const b = this.#bundles.get(rid);
    if (b) n += b.length + KEY_COST;
    return n;
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
      this.#forming = { ops: [], deltas: new Map(), done, resolve, reject };
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
    const fault = this.#commitFault?.();
    if (fault === "midway")
      batch.ops.push(() => {
        throw new Error("commit failed (test fault)");
      });
    // Inside a transaction callback lmdb-js applies each put/remove at once, in this order, and
    // reads see the writes before them. A step that throws rejects the commit, but lmdb-js keeps
    // the writes made before it in the transaction it commits: the group runs in a child
    // transaction, which a throw undoes, so a commit its writers are told failed stored nothing.
    const writes = () =>
      this.#root.childTransaction(() => {
        for (const op of batch.ops) {
          if (typeof op === "function") op();
          else if (op[2] === undefined) op[0].remove(op[1]);
          else op[0].put(op[1], op[2]);
        }
      });
    this.#root
      .transaction(fault === "before" || fault === "after" ? () => this.#faulty(fault, writes) : writes)
      .then(async () => {
        if (this.#overlapping) await this.#root.flushed;
      })
      .then(batch.resolve, async (e: unknown) => {
        const cause = await commitCause(e);
        if (isNoSpaceError(cause)) {
          if (performance.now() >= this.#noSpaceUntil) this.#onNoSpace?.(cause);
          this.#noSpaceUntil = performance.now() + NO_SPACE_BACKOFF_MS;
        }
        batch.reject(cause);
      })
      .finally(() => {
        this.#inflight = false;
        if (this.#forming) this.#flush();
      });
  }

  /** A group commit's writes under a test fault (LmdbStoreOptions.commitFault). */
  #faulty(fault: "before" | "after", writes: () => unknown): void {
    if (fault === "after")
      try {
        // A child transaction that throws is undone, with the group's own inside it.
        this.#root.childTransaction(() => {
          writes();
          throw new Error("undo");
        });
      } catch {}
    throw new Error("commit failed (test fault)");
  }

  /**
   * What to wait on until `write` (or everything written so far) is committed and on disk: the
   * commit's own promise, not one more around it per SEND and per ACK.
   */
  #durable(write?: Promise<unknown>): Promise<unknown> {
    return write ?? this.#lastDone;
  }

  onAppend(listener: (recipientId: Uint8Array) => void): void {
    this.#listeners.push(listener);
  }

  // ------------------------------------------------------------------------------------------
  // Keys: a fresh data key per blob, wrapped under an epoch key

  #today(): number {
    return Math.floor(this.#clock() / DAY_MS);
  }

  #wrap(epoch: number, epochKey: Buffer, dataKey: Uint8Array, keyKey: Buffer): Buffer {
    return wrapDataKey(epoch, epochKey, dataKey, keyKey);
  }

  /** The data key of a key record, or undefined (epoch destroyed, record damaged). */
  #unwrap(record: Buffer, keyKey: Buffer): Buffer | undefined {
    const epoch = epochOf(record);
    const epochKey = epoch === undefined ? undefined : this.#keyring.key(epoch);
    return epochKey ? unwrapDataKey(record, epochKey, keyKey) : undefined;
  }

  /** Seal a padded blob under a fresh data key; the key record goes under the current epoch. */
  #seal(block: Uint8Array, keyKey: Buffer): { sealed: Buffer; keyRecord: Buffer; epoch: number } {
    const dataKey = this.#keySource(AT_REST_KEY_LENGTH);
    const sealed = sealBlob(dataKey, block, keyKey);
    const { id, key } = this.#keyring.current;
    const keyRecord = wrapDataKey(id, key, dataKey, keyKey);
    dataKey.fill(0);
    return { sealed, keyRecord, epoch: id };
  }

  /**
   * Open a sealed blob and return its plaintext, padded to `blockSize` (what the wire carries;
   * 0: as stored).
   */
  #open(sealed: Buffer, keyKey: Buffer, blockSize: number): Buffer | undefined {
    const record = this.#keys.get(keyKey);
    if (!record) return undefined;
    return this.#openWith(record, sealed, keyKey, blockSize);
  }

  /** #open with the key record given (a message's lives in its message record). */
  #openWith(record: Buffer, sealed: Buffer, keyKey: Buffer, blockSize: number): Buffer | undefined {
    const dataKey = this.#unwrap(record, keyKey);
    if (!dataKey) return undefined;
    const plain = openBlob(dataKey, sealed, keyKey);
    dataKey.fill(0);
    return toBlockSize(plain, blockSize);
  }

  /** Enqueue a blob's key record and its epoch-index entry. */
  #putKey(keyKey: Buffer, keyRecord: Buffer, epoch: number): void {
    this.#put(this.#keys, keyKey, keyRecord);
    this.#put(this.#byEpoch, cat(u32(epoch), keyKey), EMPTY);
  }

  /** Enqueue the removal of a key record and its epoch-index entry (whatever epoch it is in by then). */
  #delKey(keyKey: Buffer): void {
    this.#enqueue(() => {
      const record = this.#keys.get(keyKey);
      if (!record) return;
      if (record.length === KEY_RECORD) this.#byEpoch.remove(cat(record.subarray(0, 4), keyKey));
      this.#keys.remove(keyKey);
    });
  }

  // ------------------------------------------------------------------------------------------
  // Queue state and the disk budget

  /** Enqueue a change of the persisted queue state, applied to what is committed before it. */
  #stateDelta(
    rid: Buffer,
    change: { bytes?: number; nextSeq?: number; nextOtk?: number; day?: number },
  ): Promise<void> {
    // Merged into this batch's change of the queue when it has one: the merged change runs at the
    // earlier one's place, which no write in between depends on (only this function and the
    // queue's deletion touch `seqs`, and a deletion after it removes the record either way).
    const id = rid.toString("latin1");
    const pending = this.#forming?.deltas.get(id);
    if (pending && this.#forming) {
      pending.bytes += change.bytes ?? 0;
      if (change.nextSeq !== undefined) pending.nextSeq = Math.max(pending.nextSeq ?? 0, change.nextSeq);
      if (change.nextOtk !== undefined) pending.nextOtk = Math.max(pending.nextOtk ?? 0, change.nextOtk);
      if (change.day !== undefined) pending.day = change.day;
      return this.#forming.done;
    }
    const d: StateDelta = {
      bytes: change.bytes ?? 0,
      nextSeq: change.nextSeq,
      nextOtk: change.nextOtk,
      day: change.day,
    };
    const done = this.#enqueue(() => {
      const raw = this.#seqs.get(rid);
      if (!raw && !this.#queues.doesExist(rid)) return;
      const st = raw ? decodeState(raw) : { nextSeq: 0, nextOtk: 0, bytes: 0, activeDay: 0 };
      st.bytes = Math.max(0, st.bytes + d.bytes);
      if (d.nextSeq !== undefined) st.nextSeq = Math.max(st.nextSeq, d.nextSeq);
      if (d.nextOtk !== undefined) st.nextOtk = Math.max(st.nextOtk, d.nextOtk);
      if (d.day !== undefined && d.day !== st.activeDay) {
        this.#active.remove(cat(u32(st.activeDay), rid));
        this.#active.put(cat(u32(d.day), rid), EMPTY);
        st.activeDay = d.day;
      }
      this.#seqs.put(rid, encodeState(st));
    });
    this.#forming?.deltas.set(id, d);
    return done;
  }

  /** Record activity on a queue (at most one write per queue per day). */
  #touch(rid: Buffer, st: QueueState): void {
    const today = this.#today();
    if (st.activeDay === today) return;
    st.activeDay = today;
    void this.#stateDelta(rid, { day: today });
  }

  /** Whether `bytes` more may be written now (quota, free-disk floor, recent "no space"). */
  #hasRoom(bytes: number): boolean {
    if (performance.now() < this.#noSpaceUntil) return false;
    if (this.#quotaBytes > 0 && this.#totalBytes + bytes > this.#quotaBytes) return false;
    if (this.#minFree > 0) {
      const t = performance.now();
      if (t - this.#freeCheckedAt >= FREE_DISK_CHECK_MS) {
        this.#freeCheckedAt = t;
        try {
          const s = statfsSync(this.#path);
          this.#freeLow = s.bavail * s.bsize < this.#minFree;
        } catch {
          this.#freeLow = false;
        }
      }
      if (this.#freeLow) return false;
    }
    return true;
  }

  #reserve(st: QueueState, bytes: number): void {
    st.bytes += bytes;
    this.#totalBytes += bytes;
  }

  #release(st: QueueState | undefined, bytes: number): void {
    if (st) st.bytes = Math.max(0, st.bytes - bytes);
    this.#totalBytes = Math.max(0, this.#totalBytes - bytes);
  }

  /** Bytes a queue stores (blobs and key records): what per-source quotas count. */
  queueBytes(recipientId: Uint8Array): number {
    const rid = Buffer.from(recipientId);
    return this.#queueSync(rid) ? this.#loadState(rid).bytes : 0;
  }

  // ------------------------------------------------------------------------------------------
  // Queues

  async createQueue(q: QueueRecord): Promise<void> {
    const rid = Buffer.from(q.recipientId);
    const today = this.#today();
    // The server→recipient key is a secret too: sealed like a blob, its data key under the epoch.
    const keyKey = cat(Buffer.of(TAG_QUEUE), rid);
    const { sealed, keyRecord, epoch } = this.#seal(q.rcvKey, keyKey);
    this.#putKey(keyKey, keyRecord, epoch);
    this.#put(this.#queues, rid, encodeQueue({ ...q, rcvKey: sealed }));
    this.#put(this.#seqs, rid, encodeState({ nextSeq: 0, nextOtk: 0, bytes: 0, activeDay: today }));
    this.#put(this.#active, cat(u32(today), rid), EMPTY);
    await this.#durable(this.#put(this.#senders, Buffer.from(q.senderId), rid));
    this.#state.set(toHex(rid), {
      count: 0,
      writing: 0,
      nextSeq: 0,
      nextOtk: 0,
      otks: 0,
      bytes: 0,
      activeDay: today,
    });
  }

  async queueByRecipient(recipientId: Uint8Array): Promise<QueueRecord | undefined> {
    return this.#withRcvKey(this.#queueSync(Buffer.from(recipientId)));
  }

  async queueBySender(senderId: Uint8Array): Promise<QueueRecord | undefined> {
    const hex = toHex(senderId);
    let rid = this.#ridBySender.get(hex);
    if (!rid) {
      rid = this.#senders.get(Buffer.from(senderId));
      if (!rid) return undefined;
      if (this.#ridBySender.size >= RECORD_CACHE_MAX) this.#ridBySender.clear();
      this.#ridBySender.set(hex, rid);
    }
    return this.#withRcvKey(this.#queueSync(rid));
  }

  /**
   * The queue record as stored (its rcvKey sealed): for the store's own checks and updates. Every
   * command looks its queue up, twice with verify threads (connection.ts), so decoded records are
   * kept — as committed: each write to a record forgets it when enqueued and again once durable
   * (a read in between sees, and may keep, the committed record, as without the cache).
   */
  #queueSync(rid: Buffer, hex = toHex(rid)): QueueRecord | undefined {
    const known = this.#records.get(hex);
    if (known) return known;
    const raw = this.#queues.get(rid);
    if (!raw) return undefined;
    const q = decodeQueue(rid, raw);
    if (this.#records.size >= RECORD_CACHE_MAX) this.#records.clear();
    this.#records.set(hex, q);
    return q;
  }

  /** Forget the decoded record of `rid` (and the sender id's entry). */
  #forget(rid: Buffer, senderId?: Uint8Array): void {
    this.#records.delete(rid.toString("hex"));
    if (senderId) this.#ridBySender.delete(Buffer.from(senderId).toString("hex"));
  }

  /** Write a queue record: forgotten now, and again once the write is durable. */
  async #putQueue(rid: Buffer, record: Buffer): Promise<void> {
    this.#forget(rid);
    try {
      await this.#durable(this.#put(this.#queues, rid, record));
    } finally {
      this.#forget(rid);
    }
  }

  /** The record with its server→recipient key opened (cached: every command looks a queue up). */
  #withRcvKey(q: QueueRecord | undefined): QueueRecord | undefined {
    if (!q) return undefined;
    if (q.rcvKey.length === AT_REST_KEY_LENGTH) return q; // written before it was sealed
    const ready = this.#withKeys.get(q);
    if (ready) return ready;
    const hex = toHex(q.recipientId);
    let rcvKey = this.#rcvKeys.get(hex);
    if (!rcvKey) {
      const opened = this.#open(
        Buffer.from(q.rcvKey),
        cat(Buffer.of(TAG_QUEUE), Buffer.from(q.recipientId)),
        0,
      );
      if (!opened) return undefined;
      rcvKey = new Uint8Array(opened);
      opened.fill(0);
      if (this.#rcvKeys.size >= RCV_CACHE_MAX) this.#rcvKeys.clear();
      this.#rcvKeys.set(hex, rcvKey);
    }
    const withKey = { ...q, rcvKey };
    this.#withKeys.set(q, withKey);
    return withKey;
  }

  async secureQueue(recipientId: Uint8Array, senderKey: Uint8Array): Promise<"ok" | "conflict" | "missing"> {
    const rid = Buffer.from(recipientId);
    const q = this.#queueSync(rid);
    if (!q) return "missing";
    if (q.senderKey) return Buffer.from(q.senderKey).equals(Buffer.from(senderKey)) ? "ok" : "conflict";
    await this.#putQueue(rid, encodeQueue({ ...q, senderKey: new Uint8Array(senderKey) }));
    return "ok";
  }

  async suspendQueue(recipientId: Uint8Array): Promise<boolean> {
    const rid = Buffer.from(recipientId);
    const q = this.#queueSync(rid);
    if (!q) return false;
    if (!q.suspended) await this.#putQueue(rid, encodeQueue({ ...q, suspended: true }));
    return true;
  }

  async deleteQueue(recipientId: Uint8Array): Promise<number> {
    const rid = Buffer.from(recipientId);
    const q = this.#queueSync(rid);
    const hex = toHex(rid);
    if (!q || this.#deletingQueues.has(hex)) return 0;
    // From here on, writes to this queue are refused ("missing"), and the removal below runs inside
    // the transaction, so it also takes whatever earlier writes to the queue are still pending.
    this.#deletingQueues.add(hex);
    const st = this.#loadState(rid);
    let removed = 0;
    const range = { start: cat(rid, u64(0)), end: cat(rid, MAX_U64) };
    const removeKey = (keyKey: Buffer) => {
      const record = this.#keys.get(keyKey);
      if (!record) return;
      if (record.length === KEY_RECORD) this.#byEpoch.remove(cat(record.subarray(0, 4), keyKey));
      this.#keys.remove(keyKey);
    };
    /** Epochs of the message records removed: released once the removal is durable. */
    const epochs: number[] = [];
    const done = this.#enqueue(() => {
      removed = 0;
      epochs.length = 0;
      for (const { key, value } of [...this.#msgs.getRange(range)].map((e) => ({
        key: Buffer.from(e.key),
        value: Buffer.from(e.value),
      }))) {
        // Format 1 only: a message stored before send records named it has an `m` expiry entry.
        if (!isFormat2(value)) this.#expiry.remove(cat(u64(readU64(value, 32)), Buffer.of(EXP_MSG), key));
        this.#hot.drop(key);
        this.#msgs.remove(key);
        this.#deliveries.remove(key);
        const epoch = messageRecordEpoch(value);
        if (epoch !== undefined) epochs.push(epoch);
        removed++;
      }
      for (const key of [...this.#otks.getKeys(range)].map((k) => Buffer.from(k as Buffer))) {
        this.#otks.remove(key);
        removeKey(cat(Buffer.of(TAG_OTK), key));
      }
      this.#bundles.remove(rid);
      removeKey(cat(Buffer.of(TAG_BUNDLE), rid));
      removeKey(cat(Buffer.of(TAG_QUEUE), rid));
      const sends = [
        ...this.#sends.getRange({
          start: cat(rid, Buffer.alloc(16)),
          end: cat(rid, Buffer.alloc(16, 0xff)),
          inclusiveEnd: true,
        }),
      ].map((e) => ({ key: Buffer.from(e.key), value: Buffer.from(e.value) }));
      for (const { key, value } of sends) {
        this.#sends.remove(key);
        this.#expiry.remove(cat(value.subarray(0, 8), Buffer.of(EXP_SEND), key));
      }
      const raw = this.#seqs.get(rid);
      if (raw) this.#active.remove(cat(u32(decodeState(raw).activeDay), rid));
      this.#seqs.remove(rid);
      this.#queues.remove(rid);
      this.#senders.remove(Buffer.from(q.senderId));
    });
    this.#forget(rid, q.senderId);
    try {
      await this.#durable(done);
    } finally {
      this.#deletingQueues.delete(hex);
      this.#forget(rid, q.senderId);
    }
    for (const e of epochs) this.#countEpoch(e, -1);
    this.#earliest.delete(rid.toString("latin1"));
    const sends = this.#queueSends.get(rid.toString("latin1"));
    if (sends) {
      this.#queueSends.delete(rid.toString("latin1"));
      this.#queueSendsTotal -= sends.size;
    }
    this.#release(undefined, st.bytes);
    // Dropped, not wiped: a delivery in flight may still hold this buffer.
    this.#rcvKeys.delete(hex);
    this.#deliveryCounts.deleteQueue(hex);
    this.#state.delete(hex);
    return removed;
  }

  /**
   * A message left the store: its send id (16 bytes of `record` from `at`) is no longer a stored
   * one, but a retry stays DUPLICATE until it expires (not the zero id of a message migrated
   * without one). Read from the record's bytes: no string unless its queue's ids are cached.
   */
  #forgetSend(rid: Buffer, record: Uint8Array, at: number, expiresAt: number): void {
    if (this.#queueSends.size > 0) this.#cachedSend(sendKeyOf(rid, record.subarray(at, at + 16)), false);
    if (isZero(record.subarray(at, at + 16)) || expiresAt <= this.#clock()) return;
    this.#goneSends.add(rid, record, at, expiresAt);
  }

  /** A removal that #forgetSend saw did not commit: its message is stored, its id a stored one. */
  #unforgetSend(rid: Buffer, sendId: Uint8Array): void {
    this.#goneSends.delete(rid, sendId);
    this.#cachedSend(sendKeyOf(rid, sendId), true);
  }

  #loadState(rid: Buffer, hex = toHex(rid)): QueueState {
    let st = this.#state.get(hex);
    if (!st) {
      const persisted = decodeState(this.#seqs.get(rid));
      // Message records' bytes are not in the persisted state (format 2): counted at open.
      const id = rid.toString("latin1");
      const msgBytes = this.#openMsgBytes.get(id) ?? 0;
      this.#openMsgBytes.delete(id);
      st = {
        count: this.#msgs.getKeysCount({ start: cat(rid, u64(0)), end: cat(rid, MAX_U64) }),
        writing: 0,
        nextSeq: persisted.nextSeq,
        nextOtk: persisted.nextOtk,
        otks: this.#otks.getKeysCount({ start: cat(rid, u64(0)), end: cat(rid, MAX_U64) }),
        bytes: persisted.bytes + msgBytes,
        activeDay: persisted.activeDay,
      };
      this.#state.set(hex, st);
    }
    return st;
  }

  // ------------------------------------------------------------------------------------------
  // Messages

  /**
   * The refusal `append` would answer now, before any write (undefined: it would store). Every
   * check is synchronous against the state as enqueued, so `appendBatch` can stop at the first
   * refusal before anything after it is written.
   */
  #refusal(
    rid: Buffer,
    ridHex: string,
    m: NewMessage,
    quota: number,
    sendStr: string,
  ): AppendResult | undefined {
    const q = this.#queueSync(rid, ridHex);
    if (!q || this.#deletingQueues.has(ridHex)) return "missing";
    if (q.suspended) return "suspended";
    const st = this.#loadState(rid, ridHex);
    // Not pending: every caller sent a pending send id to #afterPending in this same turn.
    if (
      this.#goneSends.has(rid, m.sendId) ||
      (this.#legacySends && this.#sends.doesExist(Buffer.from(sendStr, "latin1"))) ||
      (st.count > st.writing && !sendStr.endsWith(ZERO_SEND) && this.#storedSendId(rid, sendStr))
    )
      return "duplicate";
    if (st.count >= quota) return "quota";
    const cost = messageCost(m.body.length);
    if (!this.#hasRoom(cost)) return "full";
    return undefined;
  }

  /**
   * Whether one of the queue's stored messages was sent with the send id of `sendStr` (rid ‖ send
   * id, latin1): its records' send ids (format 2, offset 1), read in place — a queue holds at most
   * --relay-queue-quota records. Never asked about the zero id (a migrated record's "unknown",
   * #refusal): send ids are random (docs/protocol/relay.md, SEND).
   */
  #storedSendId(rid: Buffer, sendStr: string): boolean {
    const id = sendStr.slice(0, 24);
    const want = sendStr.slice(24);
    let ids = this.#queueSends.get(id);
    if (ids) {
      // Most recently used last (a Map iterates in insertion order); a queue's SENDs come in runs,
      // so the last one used is not moved again.
      if (this.#queueSendsLast !== id) {
        this.#queueSends.delete(id);
        this.#queueSends.set(id, ids);
        this.#queueSendsLast = id;
      }
      return ids.has(want);
    }
    ids = new Set<string>();
    for (const key of this.#msgs.getKeys({
      start: cat(rid, u64(0)),
      end: cat(rid, MAX_U64),
    }) as Iterable<Buffer>) {
      const rec = this.#msgs.getBinaryFast(key);
      if (rec && isFormat2(rec)) ids.add(rec.toString("latin1", V2_SEND_AT, V2_SEND_AT + 16));
    }
    if (ids.size <= this.#queueSendsMax) {
      this.#queueSends.set(id, ids);
      this.#queueSendsLast = id;
      this.#queueSendsTotal += ids.size;
      this.#trimQueueSends(id);
    }
    return ids.has(want);
  }

  /** Drop the least recently used queues' cached send ids while over QUEUE_SENDS_MAX. */
  #trimQueueSends(keep: string): void {
    for (const [id, ids] of this.#queueSends) {
      if (this.#queueSendsTotal <= this.#queueSendsMax) return;
      if (id === keep) continue;
      this.#queueSends.delete(id);
      this.#queueSendsTotal -= ids.size;
    }
  }

  /** A message's send id joined (committed) or left its queue's records (`send`: rid ‖ send id). */
  #cachedSend(send: string, stored: boolean): void {
    const rid = send.slice(0, 24);
    const ids = this.#queueSends.get(rid);
    if (!ids) return;
    const id = send.slice(24);
    if (stored === ids.has(id)) return;
    if (stored) ids.add(id);
    else ids.delete(id);
    this.#queueSendsTotal += stored ? 1 : -1;
    if (stored) this.#trimQueueSends(rid);
  }

  /**
   * A retry of a send id whose first write is not committed yet (the connection died meanwhile):
   * answered once that write's outcome is known — DUPLICATE if it committed, otherwise looked at
   * again and stored now if admitted (a retry answered DUPLICATE for a write that then failed would
   * be a message lost: the client drops what it was told is stored).
   */
  async #afterPending(
    rid: Buffer,
    ridHex: string,
    m: NewMessage,
    quota: number,
    sendStr: string,
  ): Promise<AppendResult> {
    for (let pending = this.#pendingSends.get(sendStr); pending; pending = this.#pendingSends.get(sendStr)) {
      const waiting = pending;
      const committed = await new Promise<boolean>((resolve) => {
        waiting.waiters ??= [];
        waiting.waiters.push(resolve);
      });
      if (committed) return "duplicate";
    }
    return this.#refusal(rid, ridHex, m, quota, sendStr) ?? this.#write(rid, ridHex, m, sendStr);
  }

  /**
   * SENDS (protocol 1.3, docs/protocol/relay.md §Batches): the messages in order, each through
   * `append`, whose decisions are all taken synchronously — so every write lands in the same
   * group commit. At the first refusal other than "duplicate" the rest of the batch gets that
   * refusal unwritten: a batch stores a prefix (duplicates skipped), never a message after a
   * refused one, and the queue's order stays the batch's. The one exception to "synchronously":
   * a retry of a send id whose first write is still pending; from it on the batch waits (see
   * below), so the prefix and the order hold whatever that write's outcome.
   */
  async appendBatch(recipientId: Uint8Array, messages: NewMessage[], quota: number): Promise<AppendResult[]> {
    const rid = Buffer.from(recipientId);
    const ridHex = toHex(rid);
    const out: (AppendResult | Promise<AppendResult>)[] = [];
    let stop: AppendResult | undefined;
    for (const m of messages) {
      if (stop) {
        out.push(stop);
        continue;
      }
      const sendStr = sendKeyOf(rid, m.sendId);
      if (this.#pendingSends.has(sendStr)) {
        // A retry of a write not committed yet: its answer waits for that write's outcome, and
        // the messages after it wait for its own — decided now, they could be stored ahead of it
        // (or after it is refused) if that write fails. What came before it in the batch is
        // settled first for the same reason: a prefix, in the batch's order.
        for (const r of await Promise.all(out))
          if (r !== "ok" && r !== "duplicate") {
            stop = r;
            break;
          }
        const r = stop ?? (await this.#afterPending(rid, ridHex, m, quota, sendStr));
        if (r !== "ok" && r !== "duplicate") stop = r;
        out.push(r);
        continue;
      }
      const refused = this.#refusal(rid, ridHex, m, quota, sendStr);
      if (refused && refused !== "duplicate") stop = refused;
      // Admitted: written at once, without `append`'s second look at the same state.
      out.push(refused ?? this.#write(rid, ridHex, m, sendStr));
    }
    return Promise.all(out);
  }

  // Async, so a throw is a rejection; everything up to #write's first await still runs in the
  // caller's turn.
  async append(recipientId: Uint8Array, m: NewMessage, quota: number): Promise<AppendResult> {
    const rid = Buffer.from(recipientId);
    const ridHex = toHex(rid);
    const sendStr = sendKeyOf(rid, m.sendId);
    if (this.#pendingSends.has(sendStr)) return this.#afterPending(rid, ridHex, m, quota, sendStr);
    const refused = this.#refusal(rid, ridHex, m, quota, sendStr);
    return refused ?? this.#write(rid, ridHex, m, sendStr);
  }

  /**
   * Store one message `#refusal` admitted just now (same turn): its decisions hold. Its send id is
   * pending until the outcome is known (a retry meanwhile waits for it: #afterPending); from then
   * on, if stored, its queue's records show it.
   */
  #write(rid: Buffer, ridHex: string, m: NewMessage, sendStr: string): Promise<AppendResult> {
    const pending: PendingSend = { waiters: undefined };
    this.#pendingSends.set(sendStr, pending);
    const st = this.#loadState(rid, ridHex);
    st.writing++;
    let settled = false;
    // Called in the same turn as `st.count` changes (the scan in #refusal compares the two).
    const settle = (committed: boolean) => {
      if (settled) return;
      settled = true;
      st.writing--;
      if (committed) this.#cachedSend(sendStr, true);
      if (this.#pendingSends.get(sendStr) === pending) this.#pendingSends.delete(sendStr);
      if (pending.waiters) for (const w of pending.waiters) w(committed);
    };
    // The send key begins with the rid in latin1: #earliest's key, without another string.
    const done = this.#store(rid, ridHex, m, st, settle, sendStr.slice(0, 24));
    done.catch(() => settle(false));
    return done;
  }

  async #store(
    rid: Buffer,
    ridHex: string,
    m: NewMessage,
    st: QueueState,
    settle: (committed: boolean) => void,
    ridLatin1: string,
  ): Promise<AppendResult> {
    const bucket = bucketSize(m.body.length, BLOCK_SIZE);
    const cost = messageCost(m.body.length);
    const seq = st.nextSeq++;
    st.count++;
    this.#reserve(st, cost);
    // Before the commit: #earliest stays a lower bound whatever lands (a failed write costs GC one
    // visit of the queue, no more).
    this.#noteExpiry(ridLatin1, m.expiresAt);
    const recKey = recKeyOf(rid, seq);
    const keyKey = Buffer.allocUnsafe(1 + recKey.length);
    keyKey[0] = TAG_MSG;
    recKey.copy(keyKey, 1);
    const block = padBlock(m.body, bucket);
    const { id: epoch, key: epochKey } = this.#keyring.current;
    // Counted before the seal: the epoch is not destroyed while this record may still land.
    this.#countEpoch(epoch, 1);
    let sealed: Buffer;
    let keyRecord: Buffer;
    if (this.#sealer) {
      // On the worker: every decision above was taken now, in arrival order; the writes below
      // are enqueued when the seal comes back, in the same order (seal-pool.ts).
      const dataKey = this.#keySource(AT_REST_KEY_LENGTH);
      ({ sealed, keyRecord } = await this.#sealer.seal(
        epoch,
        epochKey,
        dataKey,
        keyKey,
        block,
        pooledRandomBytes(AT_REST_IV_LENGTH),
        pooledRandomBytes(AT_REST_IV_LENGTH),
      ));
      // A DEL that began meanwhile removes what the queue holds when its commit runs: nothing
      // may be written after it.
      if (this.#deletingQueues.has(ridHex) || !this.#queueSync(rid, ridHex)) {
        st.count--;
        settle(false);
        this.#countEpoch(epoch, -1);
        // A DEL already done released every byte the queue held, this reservation included.
        if (this.#state.get(ridHex) === st) this.#release(st, cost);
        block.fill(0);
        return "missing";
      }
    } else {
      const dataKey = this.#keySource(AT_REST_KEY_LENGTH);
      sealed = sealBlob(dataKey, block, keyKey);
      keyRecord = wrapDataKey(epoch, epochKey, dataKey, keyKey);
      dataKey.fill(0);
    }
    // One record, format 2: 0x02 ‖ send id ‖ header ‖ key record ‖ sealed blob — no `keys`,
    // `byepoch`, `sends` or `expiry` write per message (docs/protocol/relay.md §At rest).
    const record = Buffer.allocUnsafe(V2_SEALED_AT + sealed.length);
    record[0] = MSG_FORMAT_2;
    record.set(m.sendId, V2_SEND_AT);
    record.set(m.msgId, LAYOUT_2.id);
    writeU64(record, m.timestamp, LAYOUT_2.ts);
    writeU64(record, m.expiresAt, LAYOUT_2.exp);
    keyRecord.copy(record, LAYOUT_2.key);
    sealed.copy(record, V2_SEALED_AT);
    this.#put(this.#msgs, recKey, record);
    const today = this.#today();
    const day = st.activeDay === today ? undefined : today;
    st.activeDay = today;
    // The queue's head (next seq; once per queue per commit): its bytes count prekeys and
    // bundles only, message records are counted from themselves at open.
    const committed = this.#stateDelta(rid, { nextSeq: seq + 1, ...(day === undefined ? {} : { day }) });
    try {
      await this.#durable(committed);
    } catch (e) {
      st.count--;
      settle(false);
      this.#countEpoch(epoch, -1);
      this.#release(st, cost);
      block.fill(0);
      if (isNoSpaceError(e)) return "full";
      throw e;
    }
    // Durable: from now on its queue's records show its send id.
    settle(true);
    // Kept for its first delivery, unless a deletion already began.
    const kept =
      !this.#deleting.has(ridHex, seq) &&
      !this.#deletingQueues.has(ridHex) &&
      this.#hot.put(recKey, Buffer.from(block.buffer, block.byteOffset, block.byteLength), {
        seq,
        msgId: new Uint8Array(m.msgId),
        timestamp: m.timestamp,
        expiresAt: m.expiresAt,
        deliveries: 0,
      });
    if (!kept) block.fill(0);
    for (const l of this.#listeners) l(rid);
    return "ok";
  }

  // next, readBucket and markDelivered answer at once (types.ts MaybePromise): a push awaits nothing.
  next(recipientId: Uint8Array, afterSeq: number): StoredMessageMeta | undefined {
    const rid = Buffer.from(recipientId);
    if (afterSeq < 0 && this.#queues.doesExist(rid)) this.#touch(rid, this.#loadState(rid));
    const start = recKeyOf(rid, afterSeq < 0 ? 0 : afterSeq + 1);
    // Seqs of a queue are consecutive: a kept message right after the cursor is the next one.
    // A kept block's message exists: deletions drop its block first (hot-blocks.ts).
    const hot = afterSeq < 0 ? undefined : this.#hot.header(start);
    if (hot) {
      // The header kept with the block is the answer (seq afterSeq + 1; its id a copy the cache
      // owns, only read): no new record or id per push. A kept block was never read, so never
      // delivered: a count can only be one in memory.
      hot.deliveries =
        this.#deliveryCounts.size > 0 ? (this.#deliveryCounts.get(toHex(rid), afterSeq + 1) ?? 0) : 0;
      return hot;
    }
    for (const key of this.#msgs.getKeys({ start, end: cat(rid, MAX_U64), limit: 1 }) as Iterable<Buffer>) {
      // The header only, read in place (getBinaryFast: valid until the next read, so copied now).
      const value = this.#msgs.getBinaryFast(key);
      if (!value) return undefined;
      const l = layoutOf(value);
      const meta = {
        seq: readU64(key, 24),
        msgId: new Uint8Array(value.subarray(l.id, l.id + 24)),
        timestamp: readU64(value, l.ts),
        expiresAt: readU64(value, l.exp),
        deliveries: 0,
      };
      meta.deliveries =
        (this.#deliveryCounts.size > 0 ? this.#deliveryCounts.get(toHex(rid), meta.seq) : undefined) ??
        (this.#deliveriesStored ? this.#deliveries.get(key)?.readUInt32BE(0) : undefined) ??
        0;
      return meta;
    }
    return undefined;
  }

  async read(recipientId: Uint8Array, seq: number): Promise<Uint8Array | undefined> {
    return this.#read(recipientId, seq, BLOCK_SIZE);
  }

  readBucket(recipientId: Uint8Array, seq: number): Uint8Array | undefined {
    return this.#read(recipientId, seq, 0);
  }

  #read(recipientId: Uint8Array, seq: number, blockSize: number): Uint8Array | undefined {
    const recKey = recKeyOf(recipientId, seq);
    const hot = this.#hot.take(recKey);
    if (hot) {
      if (blockSize === 0 || hot.length === blockSize) return hot;
      const block = Buffer.alloc(blockSize);
      hot.copy(block, 0, 0, Math.min(hot.length, blockSize));
      hot.fill(0);
      return block;
    }
    const rec = this.#msgs.get(recKey);
    if (!rec) return undefined;
    const keyKey = cat(Buffer.of(TAG_MSG), recKey);
    return toBlockSize(
      openMessageRecord(rec, keyKey, (e) => this.#keyring.key(e)),
      blockSize,
    );
  }

  markDelivered(recipientId: Uint8Array, seq: number): number {
    const recKey = recKeyOf(recipientId, seq);
    const ridHex = toHex(recipientId);
    const n =
      (this.#deliveryCounts.get(ridHex, seq) ??
        (this.#deliveriesStored ? this.#deliveries.get(recKey)?.readUInt32BE(0) : undefined) ??
        0) + 1;
    if (this.#msgs.doesExist(recKey)) this.#deliveryCounts.set(ridHex, seq, n);
    return n;
  }

  releaseDeliveries(recipientId: Uint8Array, seqs: number[]): void {
    const ridHex = toHex(recipientId);
    for (const seq of seqs) {
      const recKey = cat(Buffer.from(recipientId), u64(seq));
      const n = this.#deliveryCounts.get(ridHex, seq);
      if (n === undefined || this.#deleting.has(ridHex, seq) || !this.#msgs.doesExist(recKey)) continue;
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      this.#deliveriesStored = true;
      // Only while the message is still there when the transaction runs (no orphan counts).
      void this.#enqueue(() => {
        if (this.#msgs.doesExist(recKey)) this.#deliveries.put(recKey, b);
      }).catch(() => {});
    }
  }

  async ack(recipientId: Uint8Array, seq: number, msgId: Uint8Array): Promise<boolean> {
    const rid = Buffer.from(recipientId);
    const recKey = recKeyOf(rid, seq);
    // In place: only the id is compared, before any other read.
    const rec = this.#msgs.getBinaryFast(recKey);
    if (!rec) return false;
    const l = layoutOf(rec);
    if (!rec.subarray(l.id, l.id + 24).equals(msgId)) return false;
    const cost = rec.length;
    const ridHex = toHex(rid);
    const st = this.#state.get(ridHex) ?? (this.#queues.doesExist(rid) ? this.#loadState(rid) : undefined);
    if (st) this.#touch(rid, st);
    return this.#deleteMessage(rid, seq, recKey, cost, st, ridHex);
  }

  async drop(recipientId: Uint8Array, seq: number): Promise<boolean> {
    return this.#deleteMessage(Buffer.from(recipientId), seq);
  }

  /**
   * Remove a message's ciphertext, key record and indexes in one commit. Its data key, if a stale
   * page still holds it, is wrapped under an epoch key that GC destroys (#rotateKeys).
   */
  async #deleteMessage(
    rid: Buffer,
    seq: number,
    // What `ack` read already, as arguments (no record per ACK): the record key, the record's
    // length, the queue's state (undefined: none) and the rid as hex.
    recKey = recKeyOf(rid, seq),
    knownCost?: number,
    knownSt?: QueueState | undefined,
    ridHex = toHex(rid),
  ): Promise<boolean> {
    if (this.#deleting.has(ridHex, seq)) return false;
    let cost = knownCost;
    if (cost === undefined) {
      // In place: its length is read before any other read reuses the buffer.
      const rec = this.#msgs.getBinaryFast(recKey);
      if (!rec) return false;
      cost = rec.length;
    }
    this.#deleting.set(ridHex, seq, true);
    this.#hot.drop(recKey);
    const st = knownSt ?? this.#loadState(rid, ridHex);
    let epoch: number | undefined;
    // Whether the removal's step took the send id off (#forgetSend): numbers, not a record.
    let gone = false;
    let goneExpiry = 0;
    try {
      // One removal and nothing else (format 2): the record holds the message's key record (a
      // re-wrap before it in this commit may have changed its epoch, so it is read here), its
      // send id and expiry; the queue's persisted bytes do not count it. Most messages never had
      // a failed delivery: a read instead of a write for them. A message stored before format 2
      // keeps its `sends` and `expiry` entries, which GC drops once due.
      const done = this.#enqueue(() => {
        const stored = this.#msgs.getBinaryFast(recKey);
        if (!stored) return;
        epoch = messageRecordEpoch(stored);
        // Read in place, as messageRecordSendId does, without a view of it.
        const at = sendIdAt(stored);
        if (at >= 0) {
          gone = true;
          goneExpiry = readU64(stored, LAYOUT_2.exp);
          // In the same turn as the removal, before its commit: from the moment the record is gone
          // from reads, the gone list refuses a retry of its id — a retry between the commit and
          // the code after it would otherwise find neither (docs/protocol/relay.md, SEND).
          this.#forgetSend(rid, stored, at, goneExpiry);
        }
        this.#msgs.remove(recKey);
        if (this.#deliveriesStored && this.#deliveries.doesExist(recKey)) this.#deliveries.remove(recKey);
      });
      try {
        await this.#durable(done);
      } catch (e) {
        // Not removed: the message is still stored, its id one of its queue's again, and its
        // expiry due to GC again (a GC visit that counted on this removal forgot it).
        // Its send id is read from the record again, still stored.
        const stored = gone ? this.#msgs.get(recKey) : undefined;
        const sendId = stored && messageRecordSendId(stored);
        if (sendId) {
          this.#unforgetSend(rid, sendId);
          this.#noteExpiry(rid.toString("latin1"), goneExpiry);
        }
        throw e;
      }
      if (epoch !== undefined) this.#countEpoch(epoch, -1);
      this.#deliveryCounts.delete(ridHex, seq);
      st.count = Math.max(0, st.count - 1);
      this.#release(st, cost);
      return true;
    } finally {
      this.#deleting.delete(ridHex, seq);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Prekeys

  async setPrekeys(
    recipientId: Uint8Array,
    u: PrekeyUpdate,
    maxOneTime: number,
  ): Promise<"ok" | "limit" | "missing" | "full"> {
    const rid = Buffer.from(recipientId);
    if (!this.#queueSync(rid) || this.#deletingQueues.has(toHex(rid))) return "missing";
    const st = this.#loadState(rid);
    const existing = u.replaceOneTime ? 0 : st.otks;
    if (existing + u.oneTime.length > maxOneTime) return "limit";
    let cost = u.bundle ? 12 + bucketSize(u.bundle.length, BLOCK_SIZE) + 16 + KEY_COST : 0;
    for (const otk of u.oneTime) cost += 12 + bucketSize(otk.length, OTK_BLOCK_SIZE) + 16 + KEY_COST;
    if (!this.#hasRoom(cost)) return "full";
    this.#touch(rid, st);
    let freed = 0;
    const range = { start: cat(rid, u64(0)), end: cat(rid, MAX_U64) };
    if (u.replaceOneTime) {
      for (const { key, value } of this.#otks.getRange(range)) {
        const k = Buffer.from(key);
        freed += value.length + KEY_COST;
        this.#del(this.#otks, k);
        this.#delKey(cat(Buffer.of(TAG_OTK), k));
      }
      st.otks = 0;
    }
    if (u.bundle) {
      const keyKey = cat(Buffer.of(TAG_BUNDLE), rid);
      const old = this.#bundles.get(rid);
      if (old) {
        freed += old.length + KEY_COST;
        this.#delKey(keyKey);
      }
      const block = padBlock(u.bundle, bucketSize(u.bundle.length, BLOCK_SIZE));
      const { sealed, keyRecord, epoch } = this.#seal(block, keyKey);
      block.fill(0);
      this.#put(this.#bundles, rid, sealed);
      this.#putKey(keyKey, keyRecord, epoch);
    }
    for (const otk of u.oneTime) {
      const k = cat(rid, u64(st.nextOtk++));
      const keyKey = cat(Buffer.of(TAG_OTK), k);
      const block = padBlock(otk, bucketSize(otk.length, OTK_BLOCK_SIZE));
      const { sealed, keyRecord, epoch } = this.#seal(block, keyKey);
      block.fill(0);
      this.#put(this.#otks, k, sealed);
      this.#putKey(keyKey, keyRecord, epoch);
      st.otks++;
    }
    this.#reserve(st, cost);
    this.#stateDelta(rid, { bytes: cost - freed, nextOtk: st.nextOtk });
    try {
      await this.#durable();
    } catch (e) {
      this.#release(st, cost);
      if (isNoSpaceError(e)) return "full";
      throw e;
    }
    this.#release(st, freed);
    return "ok";
  }

  async takePrekeys(
    recipientId: Uint8Array,
  ): Promise<{ bundle: Uint8Array; oneTime?: Uint8Array } | undefined> {
    const rid = Buffer.from(recipientId);
    const sealedBundle = this.#bundles.get(rid);
    if (!sealedBundle) return undefined;
    const bundle = this.#open(sealedBundle, cat(Buffer.of(TAG_BUNDLE), rid), BLOCK_SIZE);
    if (!bundle) return undefined;
    const st = this.#loadState(rid);
    // One-time prekeys handed out but whose removal is not committed yet are skipped, so two
    // fetches in flight never get the same one.
    for (const { key, value } of this.#otks.getRange({
      start: cat(rid, u64(0)),
      end: cat(rid, MAX_U64),
      limit: this.#takenOtks.size + 1,
    })) {
      const k = Buffer.from(key);
      const hex = toHex(k);
      if (this.#takenOtks.has(hex)) continue;
      this.#takenOtks.add(hex);
      const keyKey = cat(Buffer.of(TAG_OTK), k);
      const otk = this.#open(Buffer.from(value), keyKey, OTK_BLOCK_SIZE);
      const cost = value.length + KEY_COST;
      st.otks = Math.max(0, st.otks - 1);
      this.#del(this.#otks, k);
      this.#delKey(keyKey);
      try {
        await this.#durable(this.#stateDelta(rid, { bytes: -cost }));
      } catch (e) {
        st.otks++;
        throw e;
      } finally {
        this.#takenOtks.delete(hex);
      }
      this.#release(st, cost);
      const out = otk
        ? { bundle: blockBody(bundle), oneTime: blockBody(otk) }
        : { bundle: blockBody(bundle) };
      bundle.fill(0);
      otk?.fill(0);
      return out;
    }
    const out = { bundle: blockBody(bundle) };
    bundle.fill(0);
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // Garbage collection: expiry, idle queues, epoch keys

  gc(nowMs: number): Promise<GcResult> {
    const run = this.#gcChain.then(() => this.#gc(nowMs));
    this.#gcChain = run.catch(() => {});
    return run;
  }

  /**
   * GC's deletion of an expired format-2 record (queue `id`, expiry `exp`). The visit that asks for
   * it left `exp` out of the queue's bound, counting on the removal: if the removal does not commit
   * (the group commit failed, possibly before the removal's own step ran, or the record is too
   * short to name its send id), or another removal of it is under way and may still fail, the
   * expiry is noted again, so the next run collects the record, not the next reopen.
   */
  #expire(rid: Buffer, seq: number, id: string, exp: number): Promise<boolean> {
    return this.#deleteMessage(rid, seq).then(
      (removed) => {
        if (!removed && this.#msgs.doesExist(recKeyOf(rid, seq))) this.#noteExpiry(id, exp);
        return removed;
      },
      (e: unknown) => {
        this.#noteExpiry(id, exp);
        throw e;
      },
    );
  }

  async #gc(nowMs: number): Promise<GcResult> {
    const result: GcResult = {
      expiredMessages: 0,
      expiredSendIds: 0,
      idleQueues: 0,
      destroyedEpochs: 0,
      rewrappedKeys: 0,
    };
    const deletions: Promise<boolean>[] = [];
    for (const key of this.#expiry.getKeys({
      start: u64(0),
      end: cat(u64(nowMs), Buffer.of(0xff)),
    }) as Iterable<Buffer>) {
      const tag = key[8];
      if (tag === EXP_MSG && key.length === 8 + 1 + 24 + 8) {
        const rid = Buffer.from(key.subarray(9, 33));
        const seq = readU64(key, 33);
        if (!this.#msgs.doesExist(cat(rid, u64(seq)))) this.#del(this.#expiry, Buffer.from(key));
        else deletions.push(this.#deleteMessage(rid, seq));
      } else {
        if (tag === EXP_SEND) {
          const sendKey = Buffer.from(key.subarray(9));
          const record = this.#sends.get(sendKey);
          // u64 expiry ‖ u64 seq: the message sent with this id expires with it (8 bytes: stored
          // before send records named their message, which then has an `m` entry of its own).
          if (record?.length === 16 && sendKey.length === 24 + 16) {
            const rid = Buffer.from(sendKey.subarray(0, 24));
            const seq = readU64(record, 8);
            if (this.#msgs.doesExist(cat(rid, u64(seq)))) deletions.push(this.#deleteMessage(rid, seq));
          }
          this.#del(this.#sends, sendKey);
          result.expiredSendIds++;
        }
        this.#del(this.#expiry, Buffer.from(key));
      }
    }
    // Format 2: a message's expiry is in its record. Only the queues whose earliest expiry
    // (#earliest, a lower bound) is due are visited, and every record of each of those is read in
    // place (8 bytes; at most --relay-queue-quota per queue), not only its head: after --relay-ttl
    // is lowered (or the clock steps back) a younger message can expire before an older one, and
    // must not wait behind it (docs/protocol/relay.md, SEND). The visit makes the queue's entry
    // exact again: the earliest expiry of what it keeps.
    const visit = { bounds: 0, queues: 0, records: 0 };
    // Off #due: the entries due, each still its queue's bound (else stale: the queue's current
    // bound has an entry of its own). All taken before any visit, which may push some back.
    // A queue's bound may have two entries (set to the value it had before): one visit.
    const due = new Set<string>();
    while (this.#due.peek() <= nowMs) {
      const { at, id } = this.#due.pop()!;
      visit.bounds++;
      if (this.#earliest.get(id) === at) due.add(id);
    }
    for (const id of due) {
      visit.queues++;
      const rid = Buffer.from(id, "latin1");
      let next = Number.POSITIVE_INFINITY;
      for (const key of this.#msgs.getKeys({
        start: cat(rid, u64(0)),
        end: cat(rid, MAX_U64),
      }) as Iterable<Buffer>) {
        const rec = this.#msgs.getBinaryFast(key);
        if (!rec || !isFormat2(rec) || rec.length < LAYOUT_2.key) continue;
        visit.records++;
        const exp = readU64Num(rec, LAYOUT_2.exp);
        if (exp > nowMs) {
          if (exp < next) next = exp;
          continue;
        }
        result.expiredSendIds++;
        deletions.push(this.#expire(rid, readU64Num(key, 24), id, exp));
      }
      // Writes not committed yet are not in the records: their expiries were noted at SEND, so the
      // old bound stays for them (the queue is visited again next run).
      const st = this.#state.get(toHex(rid));
      if (st && st.writing > 0) next = Math.min(next, this.#earliest.get(id) ?? next);
      if (next === Number.POSITIVE_INFINITY) this.#earliest.delete(id);
      else this.#setEarliest(id, next);
    }
    this.lastGcVisit = visit;
    result.expiredSendIds += this.#goneSends.prune(nowMs);
    for (const ok of await Promise.all(deletions)) if (ok) result.expiredMessages++;
    if (this.#legacySends) {
      this.#legacySends = false;
      for (const _ of this.#sends.getKeys({ limit: 1 })) this.#legacySends = true;
    }
    if (this.#idleMs > 0) {
      const lastIdleDay = Math.floor((nowMs - this.#idleMs) / DAY_MS);
      const idle: Buffer[] = [];
      for (const key of this.#active.getKeys({
        start: u32(0),
        end: u32(Math.max(0, lastIdleDay)),
      }) as Iterable<Buffer>) {
        if (idle.length >= IDLE_PER_GC) break;
        idle.push(Buffer.from(key));
      }
      for (const indexKey of idle) {
        const rid = indexKey.subarray(4);
        const st = this.#queueSync(rid) ? this.#loadState(rid) : undefined;
        // Activity since the index entry was read keeps the queue.
        if (st && st.activeDay >= lastIdleDay) continue;
        if (st) {
          await this.deleteQueue(rid);
          result.idleQueues++;
        } else this.#del(this.#active, indexKey);
      }
    }
    await this.#durable();
    const keys = await this.#rotateKeys(nowMs);
    result.destroyedEpochs = keys.destroyed;
    result.rewrappedKeys = keys.rewrapped;
    return result;
  }

  /**
   * Start a new epoch once the current one is `keyEpochMs` old; re-wrap the blobs of epochs that
   * began two epochs ago under the current one; destroy every non-current epoch key that wraps
   * nothing any more. Destruction waits for the commits that emptied the epoch to be on disk, so a
   * crash never leaves a committed record whose key is gone.
   */
  async #rotateKeys(nowMs: number): Promise<{ destroyed: number; rewrapped: number }> {
    const ring = this.#keyring;
    if (nowMs >= ring.current.startMs + this.#epochMs) await ring.rotate(nowMs);
    await this.#durable();
    let rewrapped = 0;
    const empty: number[] = [];
    for (const e of [...ring.epochs]) {
      if (e.id === ring.current.id) continue;
      if (nowMs >= e.startMs + 2 * this.#epochMs) rewrapped += await this.#rewrapEpoch(e.id);
      const prefix = u32(e.id);
      let holds = (this.#msgEpochs.get(e.id) ?? 0) > 0;
      for (const _ of this.#byEpoch.getKeys({ start: prefix, end: u32(e.id + 1), limit: 1 })) holds = true;
      if (!holds) empty.push(e.id);
    }
    if (empty.length > 0) await ring.destroy(empty);
    return { destroyed: empty.length, rewrapped };
  }

  /** Re-wrap every data key of epoch `id` under the current epoch (chunked transactions). */
  async #rewrapEpoch(id: number): Promise<number> {
    let n = 0;
    for (let round = 0; round < 1_000_000; round++) {
      const chunk = [
        ...(this.#byEpoch.getKeys({
          start: u32(id),
          end: u32(id + 1),
          limit: REWRAP_CHUNK,
        }) as Iterable<Buffer>),
      ].map((k) => Buffer.from(k));
      if (chunk.length === 0) break;
      for (const indexKey of chunk) {
        const keyKey = indexKey.subarray(4);
        this.#enqueue(() => {
          this.#byEpoch.remove(indexKey);
          const record = this.#keys.get(keyKey);
          if (!record || record.length !== KEY_RECORD || record.readUInt32BE(0) !== id) return;
          const dataKey = this.#unwrap(Buffer.from(record), keyKey);
          if (!dataKey) return;
          const cur = this.#keyring.current;
          this.#keys.put(keyKey, this.#wrap(cur.id, cur.key, dataKey, keyKey));
          this.#byEpoch.put(cat(u32(cur.id), keyKey), EMPTY);
          dataKey.fill(0);
        });
      }
      await this.#durable();
      n += chunk.length;
    }
    return n + (await this.#rewrapMessages(id));
  }

  /**
   * Re-wrap the key records of epoch `id` held in message records (a scan of the message records:
   * they have no `byepoch` entries; once per retiring epoch that still holds messages).
   */
  async #rewrapMessages(id: number): Promise<number> {
    if ((this.#msgEpochs.get(id) ?? 0) === 0) return 0;
    let n = 0;
    let after: Buffer | undefined;
    for (let round = 0; round < 1_000_000; round++) {
      const chunk: Buffer[] = [];
      let last: Buffer | undefined;
      let scanned = 0;
      for (const key of this.#msgs.getKeys(after ? { start: after } : {}) as Iterable<Buffer>) {
        if (after && key.equals(after)) continue;
        last = Buffer.from(key);
        const rec = this.#msgs.getBinaryFast(key);
        if (rec && messageRecordEpoch(rec) === id) chunk.push(last);
        if (++scanned >= REWRAP_CHUNK * 8 || chunk.length >= REWRAP_CHUNK) break;
      }
      if (!last) break;
      after = last;
      const moved: number[] = [];
      for (const recKey of chunk) {
        const keyKey = cat(Buffer.of(TAG_MSG), recKey);
        this.#enqueue(() => {
          const rec = this.#msgs.get(recKey);
          if (!rec || messageRecordEpoch(rec) !== id) return;
          const l = layoutOf(rec);
          const dataKey = this.#unwrap(Buffer.from(rec.subarray(l.key, l.sealed)), keyKey);
          if (!dataKey) return;
          const cur = this.#keyring.current;
          this.#wrap(cur.id, cur.key, dataKey, keyKey).copy(rec, l.key);
          dataKey.fill(0);
          // Counted under the new epoch before the commit, released from the old one after it.
          this.#countEpoch(cur.id, 1);
          moved.push(cur.id);
          this.#msgs.put(recKey, rec);
        });
      }
      try {
        await this.#durable();
      } catch (e) {
        for (const cur of moved) this.#countEpoch(cur, -1);
        throw e;
      }
      this.#countEpoch(id, -moved.length);
      n += moved.length;
      if ((this.#msgEpochs.get(id) ?? 0) === 0) break;
    }
    return n;
  }

  /**
   * Send ids held in memory for DUPLICATE: those of writes not committed yet, those of messages no
   * longer stored (at most GONE_SENDS_MAX) and the cached ones of stored messages (at most
   * `sendIdCache`; the rest are read from their records). Tests, diagnostics.
   */
  get sendIdsInMemory(): number {
    return this.#pendingSends.size + this.#goneSends.size + this.#queueSendsTotal;
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
      storedBytes: this.#totalBytes,
      quotaBytes: this.#quotaBytes,
      keyEpochs: this.#keyring.epochs.length,
      sealFailovers: this.#sealer?.failovers ?? 0,
      sealRespawns: this.#sealer?.respawns ?? 0,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#sealer?.close();
      await this.#gcChain;
      await this.#durable().catch(() => {});
      await this.#root.close();
      this.#hot.clear();
      for (const k of this.#rcvKeys.values()) k.fill(0);
      this.#rcvKeys.clear();
      this.#keyring.close();
    } finally {
      // After LMDB closed (or failed to): the next process may open the dir.
      this.#unlock();
    }
  }
}

function keyringExists(dir: string): boolean {
  return existsSync(join(dir, KEYRING_FILE));
}

/**
 * `keyring` → `keyring.2` (atomic rename, then the folder fsync'd so the new name is durable), once
 * `master` (or `previous`) is known to open it.
 */
function renameLegacyKeyring(dir: string, master: Uint8Array, previous: Uint8Array | undefined): void {
  const legacy = join(dir, LEGACY_KEYRING_FILE);
  if (keyringExists(dir) || !existsSync(legacy)) return;
  checkMasterKey(legacy, master, previous);
  renameSync(legacy, join(dir, KEYRING_FILE));
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function encodeState(s: PersistedState): Buffer {
  const b = Buffer.alloc(STATE_RECORD);
  b.writeBigUInt64BE(BigInt(s.nextSeq), 0);
  b.writeBigUInt64BE(BigInt(s.nextOtk), 8);
  b.writeBigUInt64BE(BigInt(s.bytes), 16);
  b.writeUInt32BE(s.activeDay >>> 0, 24);
  return b;
}

function decodeState(raw: Uint8Array | undefined): PersistedState {
  if (!raw || raw.length < 16) return { nextSeq: 0, nextOtk: 0, bytes: 0, activeDay: 0 };
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  return {
    nextSeq: readU64(b, 0),
    nextOtk: readU64(b, 8),
    bytes: b.length >= STATE_RECORD ? readU64(b, 16) : 0,
    activeDay: b.length >= STATE_RECORD ? b.readUInt32BE(24) : 0,
  };
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

/** A plaintext padded (or cut) to `blockSize` (0: as it is); the original is wiped when copied. */
function toBlockSize(plain: Buffer | undefined, blockSize: number): Buffer | undefined {
  if (!plain || blockSize === 0 || plain.length === blockSize) return plain;
  const block = Buffer.alloc(blockSize);
  plain.copy(block, 0, 0, Math.min(plain.length, blockSize));
  plain.fill(0);
  return block;
}
