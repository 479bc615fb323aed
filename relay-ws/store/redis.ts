/**
 * The relay store on Redis, for several relay instances behind a load balancer (docs/operations.md,
 * "Scale-out on Redis"; key layout in docs/operations-relay.md, "Redis layout"). Same contract as
 * the embedded LMDB store (store/types.ts), same at-rest formats (store/at-rest.ts):
 *
 * - Atomic: every change is one Lua script (store/redis-scripts.ts), run whole or not at all.
 * - In order: one connection, commands written in call order and never re-sent (host/redis.ts), so
 *   operations on a queue take effect in the order they were called on this instance; sequence
 *   numbers are allocated inside the append script, so across instances order is commit order.
 * - Durable: "ok" is answered only after Redis replied to the script, and Redis (7.0+) replies to
 *   a write only after its AOF record is written and, under `appendfsync always`, fsync'd; with
 *   `--relay-redis-wait N` also after N replicas acknowledged it (WAIT). The store checks the
 *   server's AOF settings at start and warns when they do not give that (docs/operations.md,
 *   "What OK means on Redis").
 * - At rest (docs/protocol/relay.md §At rest): each blob is padded to its bucket and sealed with
 *   AES-256-GCM under a fresh data key, wrapped under the current epoch key. The epoch keys live in
 *   Redis in one keyring slot (store/keyring.ts format) sealed under the master key every instance
 *   shares; an epoch key is destroyed once it wraps nothing (the script checks, atomically), and
 *   the AOF is then rewritten so it no longer holds it. Nothing in Redis is plaintext, and no IP
 *   address or identity is written: queue ids are random, keys are public keys.
 * - Crypto deletion on ACK: the message's record and key record go in the same script.
 */
import { createHmac, randomBytes } from "node:crypto";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { Redis } from "ioredis";
import { BLOCK_SIZE, OTK_BLOCK_SIZE, padBlock } from "../../core/relay/protocol.ts";
import { connectRedis, isRedisOom, RedisUnavailableError, redisFailure } from "../../host/redis.ts";
import { toHex } from "../hex.ts";
import { AT_REST_KEY_LENGTH } from "../node-crypto.ts";
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
import { StoreError } from "./errors.ts";
import { HotBlocks } from "./hot-blocks.ts";
import { decodeSlot, EPOCH_KEY_LENGTH, type Epoch, encodeSlot, MAX_EPOCHS } from "./keyring.ts";
import {
  decodeCounts,
  decodeEpochRefs,
  decodeHubMessage,
  decodeKeyringReply,
  decodeNextBatch,
  decodeQueueReply,
  decodeReadReply,
  decodeTakeReply,
  MSG_HEADER_LENGTH,
  type NextReply,
  type QueueReply,
} from "./redis-codec.ts";
import { SCRIPTS, type ScriptName } from "./redis-scripts.ts";
import type {
  AppendResult,
  GcResult,
  NewMessage,
  PrekeyUpdate,
  QueueRecord,
  RelayStore,
  StoredMessageMeta,
  StoreStats,
  SubscriptionHub,
} from "./types.ts";

const KEY_COST = KEY_RECORD_LENGTH;
const DAY_MS = 86_400_000;
const RCV_CACHE_MAX = 100_000;
const EXPIRE_PER_RUN = 1_000;
const IDLE_PER_GC = 1_000;
const REWRAP_CHUNK = 512;
const STATS_EVERY_MS = 2_000;
/** How long the start-up waits for Redis's persistence settings (CONFIG GET) before going on. */
const CHECK_MS = 3_000;
const FETCHED_MAX = 10_000;
/**
 * Delivery counts held at most: entries go once persisted (releaseDeliveries) or on ACK here; a
 * message read but never delivered here leaves one, so the map is cleared past this (a count
 * lost that way is read back from `d:<rid>` as last persisted: a message may get a few more tries).
 */
const DELIVERY_COUNTS_MAX = 100_000;
const RECORD_CACHE_MAX = 50_000;
/** Messages one `next` round trip reads ahead, how long they stay usable, queues kept at most. */
const READ_AHEAD = 16;
const AHEAD_TTL_MS = 2_000;
const AHEAD_MAX = 10_000;
/** How long a secured queue's record is kept: a queue deleted or suspended through another instance looks alive here at most this long (its writes are refused in Redis all the same). */
const RECORD_TTL_MS = 10_000;
const KEYRING_EVERY_MS = 60_000;
/** Tries when a write meets an epoch another instance destroyed meanwhile (reload, reseal, retry). */
const STALE_TRIES = 3;

export interface RedisStoreOptions {
  url: string;
  /** 32 bytes sealing the keyring slot in Redis; every instance must have the same. Copied. */
  masterKey: Uint8Array;
  /** The master key being rotated out: a keyring sealed under it is re-sealed under `masterKey`. */
  previousMasterKey?: Uint8Array | undefined;
  /** Key prefix (default "loft:r:"): several relays, or tests, can share one Redis. */
  prefix?: string;
  keyEpochMs?: number;
  quotaBytes?: number;
  idleQueueMs?: number;
  /** Replicas that must acknowledge each write before it is answered (Redis WAIT; 0: none). */
  waitReplicas?: number;
  waitTimeoutMs?: number;
  hotBlockBytes?: number;
  clock?: () => number;
  /** Told when Redis goes away or comes back (for the log). */
  onStatus?: (status: "ready" | "down", reason: string) => void;
  /** Told once at open when the server's persistence does not make an OK durable. */
  onWeakDurability?: (why: string) => void;
}

type Call = (...args: (string | Buffer | number)[]) => Promise<unknown>;

export class RedisStore implements RelayStore, SubscriptionHub {
  readonly engine = "redis";
  readonly hub: SubscriptionHub = this;
  readonly #redis: Redis;
  readonly #sub: Redis;
  readonly #p: string;
  readonly #instance = randomBytes(16).toString("hex");
  readonly #master: Buffer;
  /** Names sources in Redis (sourceTag): HKDF of the master key, info "source tag". */
  readonly #sourceKey: Buffer;
  readonly #previous: Buffer | undefined;
  readonly #clock: () => number;
  readonly #epochMs: number;
  readonly #quotaBytes: number;
  readonly #idleMs: number;
  readonly #waitReplicas: number;
  readonly #waitTimeoutMs: number;
  readonly #hot: HotBlocks;
  readonly #listeners: ((rid: Uint8Array) => void)[] = [];
  readonly #endListeners: ((rid: Uint8Array, token: string) => void)[] = [];
  readonly #resyncListeners: (() => void)[] = [];
  /** Delivery counts not persisted yet (rid hex ‖ ":" ‖ seq). */
  readonly #deliveryCounts = new Map<string, number>();
  /**
   * Subscriptions held here (rid hex → token), and whether Redis took their claim: after an
   * outage they are claimed again (#reclaim), else appends through other instances wake nobody.
   */
  readonly #claims = new Map<string, { token: string; taken: boolean }>();
  #commandReadyOnce = false;
  /** Sealed blocks `next` brought along, until their read (rid hex ‖ ":" ‖ seq; ciphertext only). */
  readonly #fetched = new Map<string, { msgId: Buffer; sealed: Buffer; keyRecord: Buffer }>();
  /** Messages read ahead per queue (rid hex): the cursor they were read after, and when. */
  readonly #ahead = new Map<string, { from: number; at: number; items: NextReply[] }>();
  /** Secured queue records by "r" ‖ rid hex and "s" ‖ sid hex (#lookup). */
  readonly #records = new Map<string, { q: QueueRecord; at: number }>();
  readonly #lookups = new Map<string, Promise<QueueRecord | undefined>>();
  /** Opened server→recipient keys by rid hex (immutable once the queue exists). */
  readonly #rcvKeys = new Map<string, Uint8Array>();
  #epochs: Epoch[] = [];
  /** The keyring's generation in Redis (bumped by every write of the slot). */
  #generation = 0;
  #stats: StoreStats;
  #down: string | undefined = "connecting";
  #subReadyOnce = false;
  #closed = false;
  #gcChain: Promise<unknown> = Promise.resolve();
  readonly #timers: NodeJS.Timeout[] = [];

  private constructor(options: RedisStoreOptions) {
    this.#p = options.prefix ?? "loft:r:";
    this.#master = Buffer.from(options.masterKey);
    this.#sourceKey = Buffer.from(
      hkdf(
        sha256,
        options.masterKey,
        new TextEncoder().encode("loft-relay/1 redis"),
        new TextEncoder().encode("source tag"),
        32,
      ),
    );
    this.#previous = options.previousMasterKey ? Buffer.from(options.previousMasterKey) : undefined;
    this.#clock = options.clock ?? Date.now;
    this.#epochMs = options.keyEpochMs ?? 3_600_000;
    this.#quotaBytes = options.quotaBytes ?? 0;
    this.#idleMs = options.idleQueueMs ?? 0;
    this.#waitReplicas = options.waitReplicas ?? 0;
    this.#waitTimeoutMs = options.waitTimeoutMs ?? 1_000;
    this.#hot = new HotBlocks(options.hotBlockBytes ?? 16 * 1024 * 1024);
    this.#stats = {
      queues: 0,
      messages: 0,
      bytes: 0,
      storedBytes: 0,
      quotaBytes: this.#quotaBytes,
      keyEpochs: 0,
    };
    this.#redis = connectRedis(options.url, {
      name: "loft-relay",
      onStatus: (status, reason) => {
        const changed = (status === "ready") !== (this.#down === undefined);
        this.#down = status === "ready" ? undefined : reason || "unreachable";
        if (status === "ready" && changed && this.#commandReadyOnce) this.#reclaim();
        if (status === "ready") this.#commandReadyOnce = true;
        // Passed on when the status changes only: while Redis stays down every reconnection
        // attempt fails again (at most 1 s apart) and would otherwise fill the log.
        if (changed) options.onStatus?.(status, reason);
      },
    });
    this.#sub = connectRedis(options.url, { name: "loft-relay-sub" });
    for (const [name, def] of Object.entries(SCRIPTS))
      this.#redis.defineCommand(name, {
        lua: def.lua,
        numberOfKeys: 0,
        ...("readOnly" in def ? { readOnly: true } : {}),
      });
    this.#sub.on("messageBuffer", (_channel: Buffer, message: Buffer) => this.#onHubMessage(message));
    this.#sub.on("ready", () => {
      void this.#sub.subscribe(this.#channel).catch(() => {});
      // After a reconnect, notifications published meanwhile are lost: every subscription here
      // looks at its queue again, and claims it again (Redis may have come back without it).
      if (this.#subReadyOnce) {
        this.#reclaim();
        for (const l of this.#resyncListeners) l();
      }
      this.#subReadyOnce = true;
    });
  }

  /**
   * Connect, check the server's persistence, load (or create) the shared keyring. Waits for Redis
   * (reconnecting) up to `waitMs`; then fails with a StoreError the operator can act on.
   */
  static async open(options: RedisStoreOptions & { waitMs?: number }): Promise<RedisStore> {
    const store = new RedisStore(options);
    try {
      await store.#connect(options.waitMs ?? 30_000);
      // Advisory only: never holds the start-up longer than CHECK_MS.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        store.#checkDurability(options.onWeakDurability),
        new Promise((resolve) => {
          timer = setTimeout(resolve, CHECK_MS);
        }),
      ]);
      clearTimeout(timer);
      await store.#loadKeyring();
      await store.#refreshStats();
    } catch (e) {
      await store.close();
      throw e;
    }
    const statsTimer = setInterval(() => void store.#refreshStats().catch(() => {}), STATS_EVERY_MS);
    const keyringTimer = setInterval(() => void store.#loadKeyring().catch(() => {}), KEYRING_EVERY_MS);
    statsTimer.unref();
    keyringTimer.unref();
    store.#timers.push(statsTimer, keyringTimer);
    return store;
  }

  get #channel(): string {
    return `${this.#p}ch:${this.#instance}`;
  }

  async #connect(waitMs: number): Promise<void> {
    const deadline = Date.now() + waitMs;
    const first = Promise.all([this.#redis.connect(), this.#sub.connect()]).catch(() => {});
    for (;;) {
      if (this.#redis.status === "ready" && this.#sub.status === "ready") break;
      if (Date.now() > deadline)
        throw new StoreError(
          "LOFT_ERR_RELAY_REDIS",
          `Redis did not answer within ${Math.round(waitMs / 1000)} s (${this.#down ?? "not ready"})`,
        );
      await Promise.race([first, new Promise((r) => setTimeout(r, 50))]);
    }
    await this.#sub.subscribe(this.#channel);
  }

  /** AOF on with appendfsync always: what makes a reply mean "on disk" (docs/operations.md). */
  async #checkDurability(warn: ((why: string) => void) | undefined): Promise<void> {
    try {
      const aof = (await this.#redis.config("GET", "appendonly")) as string[];
      const fsync = (await this.#redis.config("GET", "appendfsync")) as string[];
      if (aof[1] !== "yes")
        warn?.("Redis has appendonly no: an acknowledged message is lost if Redis restarts");
      else if (fsync[1] !== "always")
        warn?.(
          `Redis has appendfsync ${fsync[1]}: an acknowledged message can be lost in a crash of the Redis host`,
        );
    } catch {
      warn?.(
        "cannot read Redis's persistence settings (CONFIG GET refused): make sure it runs with appendonly yes and appendfsync always",
      );
    }
  }

  // ------------------------------------------------------------------------------------------
  // Calls

  /** Run script `name` (its key prefix first); connection failures become RedisUnavailableError. */
  #run(name: ScriptName, ...args: (string | Buffer | number)[]): Promise<unknown> {
    if (this.#closed) return Promise.reject(new RedisUnavailableError("store closed"));
    const fn = (this.#redis as unknown as Record<string, Call>)[`${name}Buffer`]!;
    return fn.call(this.#redis, this.#p, ...args).catch((e: unknown) => {
      throw redisFailure(e);
    });
  }

  /** A write: the script, then (pipelined behind it) WAIT for replicas when configured. */
  #write(name: ScriptName, ...args: (string | Buffer | number)[]): Promise<unknown> {
    return this.#writeThen(name, undefined, ...args);
  }

  /**
   * A write whose reply `counted` sees first, in reply order — the order Redis ran the scripts,
   * the order the stats refresh's reply is applied in too (#refreshStats), so this instance's
   * figures never count a change twice or miss one.
   */
  #writeThen(
    name: ScriptName,
    counted: ((reply: unknown) => void) | undefined,
    ...args: (string | Buffer | number)[]
  ): Promise<unknown> {
    const result = this.#run(name, ...args).then((r) => {
      counted?.(r);
      return r;
    });
    if (this.#waitReplicas === 0) return result;
    return this.#waited(result);
  }

  async #waited(result: Promise<unknown>): Promise<unknown> {
    const acked = this.#redis.wait(this.#waitReplicas, this.#waitTimeoutMs).catch((e: unknown) => {
      throw redisFailure(e);
    });
    const [r, n] = await Promise.all([result, acked]);
    if (n < this.#waitReplicas)
      throw new RedisUnavailableError(`${n} of ${this.#waitReplicas} replicas acknowledged the write`);
    return r;
  }

  unavailable(): string | undefined {
    if (this.#closed) return "closed";
    return this.#down;
  }

  // ------------------------------------------------------------------------------------------
  // Keyring: the epoch keys, one slot in Redis sealed under the master key

  async #loadKeyring(): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const got = decodeKeyringReply(await this.#run("keyringGet"));
      if (!got) throw new StoreError("LOFT_ERR_RELAY_KEYRING", "the keyring in Redis is damaged");
      if (!got.slot) {
        const epochs = [{ id: 0, startMs: this.#clock(), key: pooledRandomBytes(EPOCH_KEY_LENGTH) }];
        if (await this.#putKeyring(got.generation, epochs, [])) return;
        continue;
      }
      let state = decodeSlot(this.#master, got.slot);
      if (!state && this.#previous) {
        state = decodeSlot(this.#previous, got.slot);
        if (state) {
          // Master-key rotation: re-sealed under the new key by the first instance that has it.
          if (!(await this.#putKeyring(got.generation, state.epochs, []))) continue;
          return;
        }
      }
      if (!state)
        throw new StoreError(
          "LOFT_ERR_RELAY_MASTER_KEY",
          "the master key does not open the keyring in Redis (every instance needs the same --relay-master-key-file)",
        );
      this.#setEpochs(state.epochs, got.generation);
      return;
    }
    throw new StoreError("LOFT_ERR_RELAY_KEYRING", "the keyring in Redis keeps changing under us");
  }

  #setEpochs(epochs: Epoch[], generation: number): void {
    const keep = new Set(epochs.map((e) => e.id));
    for (const e of this.#epochs) if (!keep.has(e.id)) e.key.fill(0);
    this.#epochs = [...epochs].sort((a, b) => a.id - b.id);
    this.#generation = generation;
  }

  /** Write the keyring if nobody wrote it since `generation`; false (reloaded) if somebody did. */
  async #putKeyring(generation: number, epochs: Epoch[], destroyed: number[]): Promise<boolean> {
    const slot = encodeSlot(this.#master, { generation: generation + 1, epochs });
    const r = await this.#write(
      "keyringPut",
      String(generation),
      slot,
      epochs.map((e) => e.id).join(","),
      destroyed.join(","),
    );
    if (r === 1) {
      this.#setEpochs(epochs, generation + 1);
      return true;
    }
    return false;
  }

  get #current(): Epoch {
    const e = this.#epochs[this.#epochs.length - 1];
    if (!e) throw new RedisUnavailableError("keyring not loaded");
    return e;
  }

  #seal(block: Uint8Array, keyKey: Buffer): { sealed: Buffer; keyRecord: Buffer; epoch: number } {
    const dataKey = pooledRandomBytes(AT_REST_KEY_LENGTH);
    const sealed = sealBlob(dataKey, block, keyKey);
    const { id, key } = this.#current;
    const keyRecord = wrapDataKey(id, key, dataKey, keyKey);
    dataKey.fill(0);
    return { sealed, keyRecord, epoch: id };
  }

  /** Open a sealed blob; undefined when its key record does not unwrap (epoch gone, damaged). */
  async #open(sealed: Buffer, keyRecord: Buffer, keyKey: Buffer): Promise<Buffer | undefined> {
    const epoch = epochOf(keyRecord);
    if (epoch === undefined) return undefined;
    let e = this.#epochs.find((x) => x.id === epoch);
    if (!e && epoch > this.#current.id) {
      // Another instance rotated: its new epoch is in Redis already.
      await this.#loadKeyring();
      e = this.#epochs.find((x) => x.id === epoch);
    }
    if (!e) return undefined;
    const dataKey = unwrapDataKey(keyRecord, e.key, keyKey);
    if (!dataKey) return undefined;
    const plain = openBlob(dataKey, sealed, keyKey);
    dataKey.fill(0);
    return plain;
  }

  /** Run a write that seals under the current epoch; if that epoch was destroyed meanwhile, reload and reseal. */
  async #sealed<T>(attempt: () => Promise<T | "stale">): Promise<T> {
    for (let i = 0; i < STALE_TRIES; i++) {
      const r = await attempt();
      if (r !== "stale") return r;
      await this.#loadKeyring();
    }
    throw new RedisUnavailableError("the keyring keeps changing");
  }

  // ------------------------------------------------------------------------------------------
  // Queues

  async createQueue(q: QueueRecord): Promise<void> {
    const rid = Buffer.from(q.recipientId);
    const ridHex = toHex(rid);
    const r = await this.#sealed(async () => {
      const keyKey = Buffer.concat([Buffer.of(TAG_QUEUE), rid]);
      const { sealed, keyRecord, epoch } = this.#seal(q.rcvKey, keyKey);
      const text = String(
        await this.#writeThen(
          "create",
          (r) => {
            if (String(r) === "ok") this.#count(1, 0, 0);
          },
          ridHex,
          toHex(q.senderId),
          Buffer.from(q.recipientKey),
          sealed,
          keyRecord,
          String(epoch),
          String(this.#today()),
        ),
      );
      return text === "stale" ? "stale" : text;
    });
    if (r !== "ok") throw new Error(`createQueue: ${r}`);
  }

  queueByRecipient(recipientId: Uint8Array): Promise<QueueRecord | undefined> {
    return this.#lookup("r", toHex(recipientId));
  }

  queueBySender(senderId: Uint8Array): Promise<QueueRecord | undefined> {
    return this.#lookup("s", toHex(senderId));
  }

  /**
   * Every command looks its queue up (twice with verify threads): secured queues are kept for
   * RECORD_TTL_MS. Only secured ones — their keys never change any more (a sender key is set
   * once, store/types.ts), so a kept record never lets a SEND skip a signature; what can still
   * change (suspended, deleted) is checked again by the write scripts themselves. Concurrent
   * lookups of one id share one round trip and resolve in the order they were asked (the
   * connection's ordering, connection.ts).
   */
  #lookup(by: "r" | "s", hex: string): Promise<QueueRecord | undefined> {
    const id = by + hex;
    const pending = this.#lookups.get(id);
    if (pending) return pending;
    const kept = this.#records.get(id);
    if (kept && performance.now() - kept.at < RECORD_TTL_MS) return Promise.resolve(kept.q);
    const p = this.#run(by === "r" ? "byRecipient" : "bySender", hex)
      .then((r) => this.#record(r))
      .then(
        (q) => {
          this.#lookups.delete(id);
          if (q?.senderKey && !q.suspended) {
            if (this.#records.size >= RECORD_CACHE_MAX) this.#records.clear();
            const at = performance.now();
            this.#records.set(`r${toHex(q.recipientId)}`, { q, at });
            this.#records.set(`s${toHex(q.senderId)}`, { q, at });
          }
          return q;
        },
        (e: unknown) => {
          this.#lookups.delete(id);
          throw e;
        },
      );
    this.#lookups.set(id, p);
    return p;
  }

  /** Forget the kept record of a queue this instance changed. */
  #forgetRecord(recipientId: Uint8Array): void {
    const hex = toHex(recipientId);
    const kept = this.#records.get(`r${hex}`);
    this.#records.delete(`r${hex}`);
    if (kept) this.#records.delete(`s${toHex(kept.q.senderId)}`);
  }

  async #record(reply: unknown): Promise<QueueRecord | undefined> {
    const q: QueueReply | undefined = decodeQueueReply(reply);
    if (!q) return undefined;
    let rcvKey = this.#rcvKeys.get(q.ridHex);
    if (!rcvKey) {
      const rid = Buffer.from(q.ridHex, "hex");
      const opened = await this.#open(
        q.sealedRcv,
        q.rcvKeyRecord,
        Buffer.concat([Buffer.of(TAG_QUEUE), rid]),
      );
      if (opened?.length !== 32) return undefined;
      rcvKey = new Uint8Array(opened);
      opened.fill(0);
      if (this.#rcvKeys.size >= RCV_CACHE_MAX) this.#rcvKeys.clear();
      this.#rcvKeys.set(q.ridHex, rcvKey);
    }
    return {
      recipientId: new Uint8Array(Buffer.from(q.ridHex, "hex")),
      senderId: new Uint8Array(Buffer.from(q.sidHex, "hex")),
      recipientKey: new Uint8Array(q.recipientKey),
      rcvKey,
      senderKey: q.senderKey ? new Uint8Array(q.senderKey) : undefined,
      suspended: q.suspended,
    };
  }

  async secureQueue(recipientId: Uint8Array, senderKey: Uint8Array): Promise<"ok" | "conflict" | "missing"> {
    const r = String(await this.#write("secure", toHex(recipientId), Buffer.from(senderKey)));
    return r === "ok" || r === "conflict" ? r : "missing";
  }

  async suspendQueue(recipientId: Uint8Array): Promise<boolean> {
    this.#forgetRecord(recipientId);
    return (await this.#write("suspend", toHex(recipientId))) === 1;
  }

  async deleteQueue(recipientId: Uint8Array): Promise<number> {
    return (await this.#deleteQueue(recipientId)) ?? 0;
  }

  /** Messages deleted with the queue, or undefined if it was not there. */
  async #deleteQueue(recipientId: Uint8Array): Promise<number | undefined> {
    const hex = toHex(recipientId);
    this.#forgetRecord(recipientId);
    this.#ahead.delete(hex);
    const n = Number(
      await this.#writeThen(
        "deleteQueue",
        (r) => {
          if (Number(r) >= 0) this.#count(-1, -Number(r), 0);
        },
        hex,
      ),
    );
    // Its bytes: counted in Redis, brought in by a refresh.
    if (n >= 0) void this.#refreshStats().catch(() => {});
    this.#rcvKeys.delete(hex);
    for (const k of [...this.#deliveryCounts.keys()]) if (k.startsWith(hex)) this.#deliveryCounts.delete(k);
    return n >= 0 ? n : undefined;
  }

  queueBytes(_recipientId: Uint8Array): number {
    return 0;
  }

  // ------------------------------------------------------------------------------------------
  // Messages

  async append(recipientId: Uint8Array, m: NewMessage, quota: number): Promise<AppendResult> {
    const rid = Buffer.from(recipientId);
    const ridHex = toHex(rid);
    const bucket = bucketSize(m.body.length, BLOCK_SIZE);
    const block = padBlock(m.body, bucket);
    // The AAD names the message by its id (unique, random): the sequence number is allocated inside
    // the script, after sealing (docs/operations-relay.md, "Redis layout").
    const keyKey = Buffer.concat([Buffer.of(TAG_MSG), rid, m.msgId]);
    const header = Buffer.alloc(MSG_HEADER_LENGTH);
    Buffer.from(m.msgId).copy(header, 0);
    header.writeBigUInt64BE(BigInt(m.timestamp), 24);
    header.writeBigUInt64BE(BigInt(m.expiresAt), 32);
    let result: { status: string; seq: number };
    try {
      result = await this.#sealed(async () => {
        const { sealed, keyRecord, epoch } = this.#seal(block, keyKey);
        const record = Buffer.concat([header, sealed]);
        const cost = record.length + KEY_COST;
        const r = (await this.#writeThen(
          "append",
          (reply) => {
            if (Array.isArray(reply) && String(reply[0]) === "ok") this.#count(0, 1, cost);
          },
          ridHex,
          toHex(m.sendId),
          String(quota),
          String(this.#quotaBytes),
          String(cost),
          record,
          keyRecord,
          String(epoch),
          String(m.expiresAt),
          String(this.#today()),
          this.#instance,
        )) as unknown[];
        const status = Buffer.isBuffer(r?.[0]) ? r[0].toString("latin1") : "";
        if (status === "stale") return "stale";
        return { status, seq: Number(r?.[1] ?? -1) };
      });
    } catch (e) {
      block.fill(0);
      if (isRedisOom(e)) return "full";
      throw e;
    }
    if (result.status !== "ok") {
      block.fill(0);
      if (["quota", "full", "duplicate", "missing", "suspended"].includes(result.status))
        return result.status as AppendResult;
      throw new Error(`append: unexpected reply ${result.status.slice(0, 20)}`);
    }
    if (
      !this.#hot.put(
        this.#recKey(rid, result.seq),
        Buffer.from(block.buffer, block.byteOffset, block.byteLength),
      )
    )
      block.fill(0);
    for (const l of this.#listeners) l(rid);
    return "ok";
  }

  /**
   * SENDS (protocol 1.3): every message sealed here under the current epoch, then one script
   * (`appendBatch`) stores the batch's prefix in order — one round trip and one AOF write for the
   * batch (docs/protocol/relay.md §Batches; types.ts `appendBatch`).
   */
  async appendBatch(recipientId: Uint8Array, messages: NewMessage[], quota: number): Promise<AppendResult[]> {
    const rid = Buffer.from(recipientId);
    const ridHex = toHex(rid);
    const blocks = messages.map((m) => padBlock(m.body, bucketSize(m.body.length, BLOCK_SIZE)));
    const wipe = () => {
      for (const b of blocks) b.fill(0);
    };
    let replies: { status: string; seq: number }[];
    try {
      replies = await this.#sealed(async () => {
        const args: (string | Buffer)[] = [];
        const costs: number[] = [];
        let epoch = 0;
        messages.forEach((m, k) => {
          const keyKey = Buffer.concat([Buffer.of(TAG_MSG), rid, m.msgId]);
          const header = Buffer.alloc(MSG_HEADER_LENGTH);
          Buffer.from(m.msgId).copy(header, 0);
          header.writeBigUInt64BE(BigInt(m.timestamp), 24);
          header.writeBigUInt64BE(BigInt(m.expiresAt), 32);
          const sealed = this.#seal(blocks[k]!, keyKey);
          epoch = sealed.epoch;
          const record = Buffer.concat([header, sealed.sealed]);
          costs.push(record.length + KEY_COST);
          args.push(
            toHex(m.sendId),
            String(record.length + KEY_COST),
            record,
            sealed.keyRecord,
            String(m.expiresAt),
          );
        });
        const r = (await this.#writeThen(
          "appendBatch",
          (reply) => {
            if (!Array.isArray(reply)) return;
            for (let k = 0; 2 * k < reply.length; k++)
              if (String(reply[2 * k]) === "ok") this.#count(0, 1, costs[k]!);
          },
          ridHex,
          String(quota),
          String(this.#quotaBytes),
          String(this.#today()),
          this.#instance,
          String(epoch),
          ...args,
        )) as unknown[];
        const first = Buffer.isBuffer(r?.[0]) ? r[0].toString("latin1") : "";
        if (first === "stale") return "stale";
        return messages.map((_, k) => ({
          status: Buffer.isBuffer(r?.[2 * k]) ? (r[2 * k] as Buffer).toString("latin1") : "",
          seq: Number(r?.[2 * k + 1] ?? -1),
        }));
      });
    } catch (e) {
      wipe();
      if (isRedisOom(e)) return messages.map(() => "full");
      throw e;
    }
    const out: AppendResult[] = [];
    let stored = false;
    replies.forEach(({ status, seq }, k) => {
      const block = blocks[k]!;
      if (status !== "ok") {
        block.fill(0);
        if (!["quota", "full", "duplicate", "missing", "suspended"].includes(status))
          throw new Error(`appendBatch: unexpected reply ${status.slice(0, 20)}`);
        out.push(status as AppendResult);
        return;
      }
      stored = true;
      if (
        !this.#hot.put(this.#recKey(rid, seq), Buffer.from(block.buffer, block.byteOffset, block.byteLength))
      )
        block.fill(0);
      out.push("ok");
    });
    if (stored) for (const l of this.#listeners) l(rid);
    return out;
  }

  #recKey(rid: Buffer, seq: number): Buffer {
    const b = Buffer.alloc(rid.length + 8);
    rid.copy(b);
    b.writeBigUInt64BE(BigInt(seq), rid.length);
    return b;
  }

  /**
   * The oldest message after `afterSeq`. A subscription's pump asks for one after the other: the
   * script hands back up to READ_AHEAD at once, kept here briefly, so the pump's next questions
   * need no round trip (each one waits for Redis's AOF fsync otherwise). What is kept was read
   * with a cursor at or before `afterSeq`, so nothing in between is skipped; messages appended
   * since come after the kept ones and are read when those are used up.
   */
  async next(recipientId: Uint8Array, afterSeq: number): Promise<StoredMessageMeta | undefined> {
    const ridHex = toHex(recipientId);
    const ahead = this.#ahead.get(ridHex);
    if (ahead && ahead.from <= afterSeq && performance.now() - ahead.at < AHEAD_TTL_MS) {
      const i = ahead.items.findIndex((m) => m.seq > afterSeq);
      if (i >= 0) {
        const m = ahead.items[i]!;
        ahead.items.splice(0, i + 1);
        ahead.from = m.seq;
        return this.#meta(ridHex, m);
      }
    }
    this.#ahead.delete(ridHex);
    const batch = decodeNextBatch(
      await this.#run(
        "next",
        ridHex,
        String(afterSeq),
        afterSeq < 0 ? String(this.#today()) : "",
        String(READ_AHEAD),
      ),
    );
    if (batch === "damaged") throw new Error("next: damaged record in Redis");
    const first = batch[0];
    if (!first) return undefined;
    if (batch.length > 1) {
      if (this.#ahead.size >= AHEAD_MAX) this.#ahead.clear();
      this.#ahead.set(ridHex, { from: first.seq, at: performance.now(), items: batch.slice(1) });
    }
    return this.#meta(ridHex, first);
  }

  #meta(ridHex: string, r: NextReply): StoredMessageMeta {
    const key = `${ridHex}:${r.seq}`;
    const local = this.#deliveryCounts.get(key);
    // Failed deliveries counted before (by another instance, or before a restart): the next one
    // counts on from there (markDelivered), as the LMDB store reads its persisted count.
    if (r.deliveries > (local ?? 0)) this.#countDelivery(key, r.deliveries);
    // The sealed block came along: its delivery (readBucket, right after) needs no round trip.
    if (r.sealed && r.keyRecord) {
      if (this.#fetched.size >= FETCHED_MAX) this.#fetched.clear();
      this.#fetched.set(key, { msgId: r.msgId, sealed: r.sealed, keyRecord: r.keyRecord });
    }
    return {
      seq: r.seq,
      msgId: new Uint8Array(r.msgId),
      timestamp: r.timestamp,
      expiresAt: r.expiresAt,
      deliveries: Math.max(local ?? 0, r.deliveries),
    };
  }

  read(recipientId: Uint8Array, seq: number): Promise<Uint8Array | undefined> {
    return this.#read(recipientId, seq, BLOCK_SIZE);
  }

  readBucket(recipientId: Uint8Array, seq: number): Promise<Uint8Array | undefined> {
    return this.#read(recipientId, seq, 0);
  }

  async #read(recipientId: Uint8Array, seq: number, blockSize: number): Promise<Uint8Array | undefined> {
    const rid = Buffer.from(recipientId);
    const hot = this.#hot.take(this.#recKey(rid, seq));
    const key = `${toHex(rid)}:${seq}`;
    const fetched = hot ? undefined : this.#fetched.get(key);
    this.#fetched.delete(key);
    const plain =
      hot ??
      (fetched
        ? await this.#open(
            fetched.sealed,
            fetched.keyRecord,
            Buffer.concat([Buffer.of(TAG_MSG), rid, fetched.msgId]),
          )
        : await this.#readStored(rid, seq));
    if (!plain || blockSize === 0 || plain.length === blockSize) return plain;
    const block = Buffer.alloc(blockSize);
    plain.copy(block, 0, 0, Math.min(plain.length, blockSize));
    plain.fill(0);
    return block;
  }

  async #readStored(rid: Buffer, seq: number): Promise<Buffer | undefined> {
    const r = decodeReadReply(await this.#run("read", toHex(rid), String(seq)));
    if (!r) return undefined;
    return this.#open(r.sealed, r.keyRecord, Buffer.concat([Buffer.of(TAG_MSG), rid, r.msgId]));
  }

  async markDelivered(recipientId: Uint8Array, seq: number): Promise<number> {
    const key = `${toHex(recipientId)}:${seq}`;
    const n = (this.#deliveryCounts.get(key) ?? 0) + 1;
    this.#countDelivery(key, n);
    return n;
  }

  #countDelivery(key: string, n: number): void {
    if (this.#deliveryCounts.size >= DELIVERY_COUNTS_MAX && !this.#deliveryCounts.has(key))
      this.#deliveryCounts.clear();
    this.#deliveryCounts.set(key, n);
  }

  releaseDeliveries(recipientId: Uint8Array, seqs: number[]): void {
    const hex = toHex(recipientId);
    for (const seq of seqs) {
      const key = `${hex}:${seq}`;
      const n = this.#deliveryCounts.get(key);
      if (n === undefined) continue;
      // Once persisted, `#meta` reads the count back from `d:<rid>`: the entry goes (else it
      // stayed for every message expired in Lua or ACKed through another instance).
      void this.#run("deliveries", hex, String(seq), String(n)).then(
        () => {
          if (this.#deliveryCounts.get(key) === n) this.#deliveryCounts.delete(key);
        },
        () => {},
      );
    }
  }

  /** Entries in the delivery-count map (tests: it does not grow without bound). */
  deliveryCountsHeldForTest(): number {
    return this.#deliveryCounts.size;
  }

  async ack(recipientId: Uint8Array, seq: number, msgId: Uint8Array): Promise<boolean> {
    const hex = toHex(recipientId);
    const freed = Number(
      await this.#writeThen("ack", this.#freed, hex, String(seq), Buffer.from(msgId), String(this.#today())),
    );
    if (freed > 0) this.#forgetMessage(recipientId, seq);
    return freed > 0;
  }

  async drop(recipientId: Uint8Array, seq: number): Promise<boolean> {
    const freed = Number(await this.#writeThen("drop", this.#freed, toHex(recipientId), String(seq)));
    if (freed > 0) this.#forgetMessage(recipientId, seq);
    return freed > 0;
  }

  readonly #freed = (reply: unknown): void => {
    const freed = Number(reply);
    if (freed > 0) this.#count(0, -1, -freed);
  };

  #forgetMessage(recipientId: Uint8Array, seq: number): void {
    this.#fetched.delete(`${toHex(recipientId)}:${seq}`);
    const ahead = this.#ahead.get(toHex(recipientId));
    if (ahead) ahead.items = ahead.items.filter((m) => m.seq !== seq);
    this.#deliveryCounts.delete(`${toHex(recipientId)}:${seq}`);
    this.#hot.drop(this.#recKey(Buffer.from(recipientId), seq));
  }

  onAppend(listener: (recipientId: Uint8Array) => void): void {
    this.#listeners.push(listener);
  }

  // ------------------------------------------------------------------------------------------
  // Prekeys

  async setPrekeys(
    recipientId: Uint8Array,
    u: PrekeyUpdate,
    maxOneTime: number,
  ): Promise<"ok" | "limit" | "missing" | "full"> {
    const rid = Buffer.from(recipientId);
    try {
      const r = await this.#sealed(async () => {
        let cost = 0;
        const epoch = this.#current.id;
        let bundle: { sealed: Buffer; keyRecord: Buffer } | undefined;
        if (u.bundle) {
          const block = padBlock(u.bundle, bucketSize(u.bundle.length, BLOCK_SIZE));
          bundle = this.#seal(block, Buffer.concat([Buffer.of(TAG_BUNDLE), rid]));
          block.fill(0);
          cost += bundle.sealed.length + KEY_COST;
        }
        const otks: (string | Buffer)[] = [];
        for (const otk of u.oneTime) {
          const id = randomBytes(16);
          const block = padBlock(otk, bucketSize(otk.length, OTK_BLOCK_SIZE));
          const s = this.#seal(block, Buffer.concat([Buffer.of(TAG_OTK), rid, id]));
          block.fill(0);
          cost += s.sealed.length + KEY_COST;
          otks.push(id.toString("hex"), s.sealed, s.keyRecord);
        }
        return String(
          await this.#write(
            "setPrekeys",
            toHex(rid),
            String(maxOneTime === Number.MAX_SAFE_INTEGER ? 1e15 : maxOneTime),
            u.replaceOneTime ? "1" : "0",
            String(this.#quotaBytes),
            String(cost),
            String(epoch),
            bundle?.sealed ?? "",
            bundle?.keyRecord ?? "",
            String(this.#today()),
            ...otks,
          ),
        );
      });
      if (r === "ok" || r === "limit" || r === "missing" || r === "full") return r;
      throw new Error(`setPrekeys: unexpected reply ${r.slice(0, 20)}`);
    } catch (e) {
      if (isRedisOom(e)) return "full";
      throw e;
    }
  }

  async takePrekeys(
    recipientId: Uint8Array,
  ): Promise<{ bundle: Uint8Array; oneTime?: Uint8Array } | undefined> {
    const rid = Buffer.from(recipientId);
    const t = decodeTakeReply(await this.#write("takePrekeys", toHex(rid)));
    if (!t) return undefined;
    const bundle = await this.#open(t.bundle, t.bundleKeyRecord, Buffer.concat([Buffer.of(TAG_BUNDLE), rid]));
    if (!bundle) return undefined;
    const otk = t.oneTime
      ? await this.#open(
          t.oneTime.sealed,
          t.oneTime.keyRecord,
          Buffer.concat([Buffer.of(TAG_OTK), rid, Buffer.from(t.oneTime.idHex, "hex")]),
        )
      : undefined;
    const out = otk ? { bundle: blockBody(bundle), oneTime: blockBody(otk) } : { bundle: blockBody(bundle) };
    bundle.fill(0);
    otk?.fill(0);
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // Per-source budgets across instances (relay-ws/shared-limits.ts)

  /**
   * A source's name in Redis: HMAC-SHA256 under a key derived from the master key (every instance
   * has it; nobody without it can test guessed addresses against the names), 16 bytes hex.
   */
  sourceTag(sourceKey: string): string {
    return createHmac("sha256", this.#sourceKey).update(sourceKey).digest("hex").slice(0, 32);
  }

  async spendShared(entries: { tag: string; kind: string; n: number }[], second: number): Promise<number[]> {
    const args: string[] = [String(second)];
    for (const e of entries) args.push(e.tag, e.kind, String(Math.ceil(e.n)));
    const r = await this.#run("spend", ...args);
    return Array.isArray(r) ? r.map((v) => (typeof v === "number" ? v : Number(v))) : [];
  }

  // ------------------------------------------------------------------------------------------
  // Subscriptions across instances (SubscriptionHub)

  newToken(): string {
    return randomBytes(8).toString("hex");
  }

  /**
   * Resolves once Redis ran the claim (the service does not wait: its pump is ordered after it).
   * A claim Redis did not take (it was unreachable) is made again when Redis is back (#reclaim).
   */
  claim(recipientId: Uint8Array, token: string): Promise<void> {
    const hex = toHex(recipientId);
    const c = { token, taken: false };
    this.#claims.set(hex, c);
    return this.#run("claim", hex, this.#instance + token, "").then(
      () => {
        c.taken = true;
      },
      () => {},
    );
  }

  /**
   * After an outage: a claim Redis never took is made now; one it took is made again only where
   * nobody else holds the queue (Redis came back without it: a restart before the AOF had it, a
   * failover to a replica that had not), so a SUB through another instance meanwhile keeps it.
   */
  #reclaim(): void {
    for (const [hex, c] of this.#claims)
      void this.#run("claim", hex, this.#instance + c.token, c.taken ? "1" : "").then(
        () => {
          c.taken = true;
        },
        () => {},
      );
  }

  release(recipientId: Uint8Array, token: string): void {
    const hex = toHex(recipientId);
    if (this.#claims.get(hex)?.token === token) this.#claims.delete(hex);
    void this.#run("release", hex, this.#instance + token).catch(() => {});
  }

  onEnd(listener: (recipientId: Uint8Array, token: string) => void): void {
    this.#endListeners.push(listener);
  }

  onResync(listener: () => void): void {
    this.#resyncListeners.push(listener);
  }

  #onHubMessage(raw: Buffer): void {
    const m = decodeHubMessage(raw);
    if (!m) return;
    const rid = new Uint8Array(Buffer.from(m.ridHex, "hex"));
    if (m.kind === "append") for (const l of this.#listeners) l(rid);
    else {
      if (this.#claims.get(m.ridHex)?.token === m.token) this.#claims.delete(m.ridHex);
      for (const l of this.#endListeners) l(rid, m.token);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Garbage collection, epochs, stats

  #today(): number {
    return Math.floor(this.#clock() / DAY_MS);
  }

  gc(nowMs: number): Promise<GcResult> {
    const run = this.#gcChain.then(() => this.#gc(nowMs));
    this.#gcChain = run.catch(() => {});
    return run;
  }

  async #gc(nowMs: number): Promise<GcResult> {
    const result: GcResult = {
      expiredMessages: 0,
      expiredSendIds: 0,
      idleQueues: 0,
      destroyedEpochs: 0,
      rewrappedKeys: 0,
    };
    for (let round = 0; round < 1_000; round++) {
      const c = decodeCounts(await this.#write("expire", String(nowMs), String(EXPIRE_PER_RUN)), 2);
      if (!c) break;
      result.expiredMessages += c[0]!;
      result.expiredSendIds += c[1]!;
      if (c[1]! < EXPIRE_PER_RUN) break;
    }
    if (this.#idleMs > 0) {
      const lastIdleDay = Math.floor((nowMs - this.#idleMs) / DAY_MS);
      const idle = await this.#run("idle", String(Math.max(0, lastIdleDay)), String(IDLE_PER_GC));
      for (const raw of Array.isArray(idle) ? idle : []) {
        const hex = Buffer.isBuffer(raw) ? raw.toString("latin1") : "";
        if (!/^[0-9a-f]{48}$/.test(hex)) continue;
        // Counted only if it was still there (another instance's GC may have taken it first).
        if ((await this.#deleteQueue(Buffer.from(hex, "hex"))) !== undefined) result.idleQueues++;
      }
    }
    await this.#loadKeyring();
    const keys = await this.#rotateKeys(nowMs);
    result.destroyedEpochs = keys.destroyed;
    result.rewrappedKeys = keys.rewrapped;
    await this.#refreshStats();
    return result;
  }

  /**
   * As the LMDB store (lmdb.ts #rotateKeys): a new epoch once the current one is `keyEpochMs` old;
   * survivors of epochs that began two epochs ago re-wrapped under the current one; every
   * non-current epoch that wraps nothing destroyed — the script refuses if one still does.
   */
  async #rotateKeys(nowMs: number): Promise<{ destroyed: number; rewrapped: number }> {
    if (nowMs >= this.#current.startMs + this.#epochMs && this.#epochs.length < MAX_EPOCHS) {
      const epoch = {
        id: (this.#current.id + 1) >>> 0,
        startMs: nowMs,
        key: pooledRandomBytes(EPOCH_KEY_LENGTH),
      };
      if (!(await this.#putKeyring(this.#generation, [...this.#epochs, epoch], [])))
        await this.#loadKeyring();
    }
    let rewrapped = 0;
    const current = this.#current.id;
    for (const e of [...this.#epochs]) {
      if (e.id === current || nowMs < e.startMs + 2 * this.#epochMs) continue;
      rewrapped += await this.#rewrapEpoch(e);
    }
    const empty: number[] = [];
    for (const e of this.#epochs) {
      if (e.id === current) continue;
      if (
        Number(
          await this.#redis
            .scard(`${this.#p}e:${e.id}`)
            .catch((x: unknown) => Promise.reject(redisFailure(x))),
        ) === 0
      )
        empty.push(e.id);
    }
    if (empty.length === 0) return { destroyed: 0, rewrapped };
    const keep = this.#epochs.filter((e) => !empty.includes(e.id));
    if (!(await this.#putKeyring(this.#generation, keep, empty))) {
      await this.#loadKeyring();
      return { destroyed: 0, rewrapped };
    }
    // The AOF still holds the destroyed keys' old values until it is rewritten.
    await this.#redis.bgrewriteaof().catch(() => {});
    return { destroyed: empty.length, rewrapped };
  }

  async #rewrapEpoch(e: Epoch): Promise<number> {
    let n = 0;
    let cursor = "0";
    for (let round = 0; round < 100_000; round++) {
      const page = decodeEpochRefs(await this.#run("epochRefs", String(e.id), cursor, String(REWRAP_CHUNK)));
      if (!page) break;
      for (const r of page.refs) {
        const rid = Buffer.from(r.ridHex, "hex");
        const tag =
          r.field[0] === "q"
            ? TAG_QUEUE
            : r.field[0] === "b"
              ? TAG_BUNDLE
              : r.field[0] === "m"
                ? TAG_MSG
                : TAG_OTK;
        const extra =
          r.field[0] === "m"
            ? r.msgId
            : r.field[0] === "o"
              ? Buffer.from(r.field.slice(1), "hex")
              : Buffer.alloc(0);
        const keyKey = Buffer.concat([Buffer.of(tag), rid, extra]);
        if (r.record.length !== KEY_RECORD_LENGTH) continue;
        const dataKey = unwrapDataKey(r.record, e.key, keyKey);
        if (!dataKey) continue;
        const cur = this.#current;
        const fresh = wrapDataKey(cur.id, cur.key, dataKey, keyKey);
        dataKey.fill(0);
        if ((await this.#write("rewrap", r.ref, r.record, fresh, String(e.id), String(cur.id))) === 1) n++;
      }
      cursor = page.cursor;
      if (cursor === "0") break;
    }
    return n;
  }

  /** The figures every instance shares, applied in reply order (see #writeThen). */
  #refreshStats(): Promise<void> {
    return this.#run("stats").then((reply) => {
      const c = decodeCounts(reply, 4);
      if (!c) return;
      this.#stats = {
        queues: c[0]!,
        messages: c[1]!,
        bytes: c[2]!,
        storedBytes: c[2]!,
        quotaBytes: this.#quotaBytes,
        keyEpochs: c[3]!,
      };
    });
  }

  stats(): StoreStats {
    return this.#stats;
  }

  /**
   * This instance's own changes, counted at once (the figures are refreshed from Redis every
   * STATS_EVERY_MS, which brings in the other instances' changes).
   */
  #count(queues: number, messages: number, bytes: number): void {
    const s = this.#stats;
    this.#stats = {
      ...s,
      queues: Math.max(0, s.queues + queues),
      messages: Math.max(0, s.messages + messages),
      bytes: Math.max(0, s.bytes + bytes),
      storedBytes: Math.max(0, s.storedBytes + bytes),
    };
  }

  /** This instance's id (its pub/sub channel); for tests and logs. */
  get instance(): string {
    return this.#instance;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#gcChain;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#sub.disconnect();
    // QUIT lets the replies in flight arrive; bounded, and skipped when Redis is not there.
    if (this.#redis.status === "ready") {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.#redis.quit().catch(() => {}),
        new Promise((resolve) => {
          timer = setTimeout(resolve, 2_000);
        }),
      ]);
      clearTimeout(timer);
    }
    this.#redis.disconnect();
    this.#hot.clear();
    for (const k of this.#rcvKeys.values()) k.fill(0);
    this.#rcvKeys.clear();
    for (const e of this.#epochs) e.key.fill(0);
    this.#master.fill(0);
    this.#sourceKey.fill(0);
    this.#previous?.fill(0);
  }
}
