/**
 * The relay's storage engine boundary (docs/operations-relay.md §Storage). The service talks to
 * a `RelayStore`; the embedded engine is LMDB (store/lmdb.ts). A Redis engine for scale-out
 * implements the same interface later (keys and records are laid out in docs/operations-relay.md
 * so it can mirror them).
 *
 * Contract every engine keeps:
 * - Operations on one queue take effect in call order (LMDB: writes are enqueued synchronously
 *   and committed in order; Redis: one pipelined connection or Lua scripts).
 * - A promise that resolves "ok" for `append`, `ack`, `drop`, `createQueue`, `secureQueue`,
 *   `suspendQueue`, `deleteQueue`, `setPrekeys` and `takePrekeys` means the change is durable
 *   (fsync'd / replicated as the engine defines it).
 * - Message bodies and prekey blobs are padded to a coarse size bucket and encrypted at rest with
 *   a fresh AES-256-GCM data key per blob, stored wrapped under a rotating epoch key that is kept
 *   outside the records (sealed under the operator's master key) and destroyed once its epoch
 *   holds no live blob (cryptographic deletion that survives copy-on-write; docs/protocol/relay.md
 *   §At rest).
 * - Storage is bounded: a global byte quota, and a refusal ("full") instead of an error when the
 *   disk has no room; what is stored stays readable and deletable.
 * - No IP address, no identity and no plaintext is ever written.
 */

export interface QueueRecord {
  recipientId: Uint8Array;
  senderId: Uint8Array;
  /** Ed25519 public key verifying recipient commands. */
  recipientKey: Uint8Array;
  /** Server→recipient key (derived once at NEW; the relay's DH secret is wiped). */
  rcvKey: Uint8Array;
  /** Ed25519 public key verifying SEND, once the queue is secured (KEY or SKEY). */
  senderKey: Uint8Array | undefined;
  /** OFF: SEND refused; messages already stored stay deliverable. */
  suspended: boolean;
}

export interface StoredMessageMeta {
  /** Order of acceptance within the queue (strictly increasing, never reused). */
  seq: number;
  msgId: Uint8Array;
  /** Seconds since the epoch when it was accepted. */
  timestamp: number;
  /** Milliseconds since the epoch after which it is garbage. */
  expiresAt: number;
  /** How many times it was handed to a recipient without being acknowledged. */
  deliveries: number;
}

export interface NewMessage {
  msgId: Uint8Array;
  sendId: Uint8Array;
  timestamp: number;
  expiresAt: number;
  body: Uint8Array;
}

/** "quota": the queue holds its message quota; "full": the relay's storage is full (quota or disk). */
export type AppendResult = "ok" | "quota" | "full" | "duplicate" | "missing" | "suspended";

export interface PrekeyUpdate {
  bundle?: Uint8Array;
  oneTime: Uint8Array[];
  replaceOneTime: boolean;
}

export interface GcResult {
  expiredMessages: number;
  expiredSendIds: number;
  /** Queues deleted for inactivity. */
  idleQueues: number;
  /** Epoch keys destroyed (every blob they wrapped is gone or re-wrapped). */
  destroyedEpochs: number;
  /** Data keys re-wrapped from a retiring epoch under the current one. */
  rewrappedKeys: number;
}

export interface StoreStats {
  queues: number;
  messages: number;
  /** Bytes the message records occupy in the engine. */
  bytes: number;
  /** Bytes counted against the storage quota (blobs and key records of every queue). */
  storedBytes: number;
  /** The storage quota in bytes (0: none). */
  quotaBytes: number;
  /** Epoch keys alive. */
  keyEpochs: number;
  /** Times the seal worker was failed over to the event loop (LMDB with a seal thread; else 0/absent). */
  sealFailovers?: number;
  /** Seal workers started in place of a failed one (LMDB with a seal thread). */
  sealRespawns?: number;
}

/**
 * A store answer that may be ready at once: the LMDB store reads synchronously, and the push path
 * (relay-ws/service.ts `pump`) then awaits nothing — no promise per step of a delivery
 * (bench/README-relay.md, "Results: fewer objects per message"). Redis answers with promises.
 */
export type MaybePromise<T> = T | Promise<T>;

export interface RelayStore {
  readonly engine: string;
  createQueue(queue: QueueRecord): Promise<void>;
  queueByRecipient(recipientId: Uint8Array): Promise<QueueRecord | undefined>;
  queueBySender(senderId: Uint8Array): Promise<QueueRecord | undefined>;
  secureQueue(recipientId: Uint8Array, senderKey: Uint8Array): Promise<"ok" | "conflict" | "missing">;
  suspendQueue(recipientId: Uint8Array): Promise<boolean>;
  /** Crypto-deletes every message and prekey of the queue, then the queue. Returns messages deleted. */
  deleteQueue(recipientId: Uint8Array): Promise<number>;
  /** Store one message (padded, sealed) if the queue has room and the send id is new. */
  append(recipientId: Uint8Array, message: NewMessage, quota: number): Promise<AppendResult>;
  /**
   * SENDS (protocol 1.3): store several messages of one queue in order, in one commit (LMDB) or
   * one script (Redis), one result each. At the first refusal other than "duplicate" every later
   * message gets that refusal and is not stored: what is stored is a prefix of the batch (its
   * duplicates aside), so the queue keeps the batch's order (docs/protocol/relay.md §Batches).
   */
  appendBatch(recipientId: Uint8Array, messages: NewMessage[], quota: number): Promise<AppendResult[]>;
  /** The oldest message with seq > afterSeq. */
  next(recipientId: Uint8Array, afterSeq: number): MaybePromise<StoredMessageMeta | undefined>;
  /** The padded plaintext block of a message (decrypted from rest), or undefined if gone. */
  read(recipientId: Uint8Array, seq: number): Promise<Uint8Array | undefined>;
  /**
   * The same block padded only to its at-rest size bucket (≤ BLOCK_SIZE; the rest of the wire's
   * block is zeros): what delivery seals, without a 16 KiB copy per message.
   */
  readBucket(recipientId: Uint8Array, seq: number): MaybePromise<Uint8Array | undefined>;
  /** Count one delivery (in memory; the count reaches the disk with `releaseDeliveries`). */
  markDelivered(recipientId: Uint8Array, seq: number): MaybePromise<number>;
  /**
   * Deliveries that ended without an ACK (connection closed, subscription moved, GET repeated):
   * persist their counts so the failed-delivery limit survives a restart. Not awaited by callers;
   * a crash loses at most the count of deliveries still in flight.
   */
  releaseDeliveries(recipientId: Uint8Array, seqs: number[]): void;
  /** Crypto-delete one message if its id matches. */
  ack(recipientId: Uint8Array, seq: number, msgId: Uint8Array): Promise<boolean>;
  /** Crypto-delete one message (expired, or too many failed deliveries). */
  drop(recipientId: Uint8Array, seq: number): Promise<boolean>;
  setPrekeys(
    recipientId: Uint8Array,
    update: PrekeyUpdate,
    maxOneTime: number,
  ): Promise<"ok" | "limit" | "missing" | "full">;
  /** The bundle and one one-time prekey, which is crypto-deleted. */
  takePrekeys(recipientId: Uint8Array): Promise<{ bundle: Uint8Array; oneTime?: Uint8Array } | undefined>;
  /** Remove everything that expired at `nowMs`. */
  gc(nowMs: number): Promise<GcResult>;
  stats(): StoreStats;
  /** Bytes one queue stores (blobs and key records), for per-source storage quotas; 0 if unknown. */
  queueBytes(recipientId: Uint8Array): number;
  /** Called after a durable append, with the queue's recipient id. */
  onAppend(listener: (recipientId: Uint8Array) => void): void;
  /** Wait for pending writes, then close. */
  close(): Promise<void>;
  /**
   * Engines shared by several relay instances (Redis): who holds each queue's subscription, so a
   * SEND on one instance reaches a subscriber on another and a SUB ends the one elsewhere
   * (docs/operations.md, "Scale-out on Redis"). Absent for the embedded store.
   */
  readonly hub?: SubscriptionHub;
  /** Undefined while the engine can serve; otherwise why not (shown by /health with 503). */
  unavailable?(): string | undefined;
}

/**
 * Subscriptions across relay instances. Appends to a queue subscribed on another instance reach
 * that instance's `onAppend` listeners; a claim ends the previous owner's subscription there.
 */
export interface SubscriptionHub {
  /** This connection's subscription to `recipientId` (its `token`) is now the one. */
  claim(recipientId: Uint8Array, token: string): void;
  /** The subscription `token` ended here (if it is still the one, nobody holds the queue now). */
  release(recipientId: Uint8Array, token: string): void;
  /** Another instance took the queue, or it was deleted: end subscription `token` here. */
  onEnd(listener: (recipientId: Uint8Array, token: string) => void): void;
  /** Notifications may have been missed (the pub/sub link was down): look at every subscription. */
  onResync(listener: () => void): void;
  /** A fresh subscription token. */
  newToken(): string;
}
