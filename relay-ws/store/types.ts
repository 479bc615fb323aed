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
 * - Message bodies and prekey blobs are padded to a fixed block and encrypted at rest with a
 *   fresh AES-256-GCM key per blob; deleting a blob first overwrites its key record, then removes
 *   both records (cryptographic deletion).
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

export type AppendResult = "ok" | "quota" | "duplicate" | "missing" | "suspended";

export interface PrekeyUpdate {
  bundle?: Uint8Array;
  oneTime: Uint8Array[];
  replaceOneTime: boolean;
}

export interface GcResult {
  expiredMessages: number;
  expiredSendIds: number;
}

export interface StoreStats {
  queues: number;
  messages: number;
  /** Bytes the message records occupy in the engine. */
  bytes: number;
}

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
  /** The oldest message with seq > afterSeq. */
  next(recipientId: Uint8Array, afterSeq: number): Promise<StoredMessageMeta | undefined>;
  /** The padded plaintext block of a message (decrypted from rest), or undefined if gone. */
  read(recipientId: Uint8Array, seq: number): Promise<Uint8Array | undefined>;
  /** Count one delivery (in memory; the count reaches the disk with `releaseDeliveries`). */
  markDelivered(recipientId: Uint8Array, seq: number): Promise<number>;
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
  ): Promise<"ok" | "limit" | "missing">;
  /** The bundle and one one-time prekey, which is crypto-deleted. */
  takePrekeys(recipientId: Uint8Array): Promise<{ bundle: Uint8Array; oneTime?: Uint8Array } | undefined>;
  /** Remove everything that expired at `nowMs`. */
  gc(nowMs: number): Promise<GcResult>;
  stats(): StoreStats;
  /** Called after a durable append, with the queue's recipient id. */
  onAppend(listener: (recipientId: Uint8Array) => void): void;
  /** Wait for pending writes, then close. */
  close(): Promise<void>;
}
