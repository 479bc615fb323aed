/**
 * Per-source limits of the relay (docs/operations-relay.md §Limits and abuse): what one client
 * address may hold and spend, whatever number of connections it opens.
 *
 * A source is the key `sourceOf` (host/client-source.ts) gives a request: the client address
 * behind `--trust-proxy` proxies, IPv6 by /64. The table itself (memory only, entries forgotten
 * once they hold no connection and every bucket is full again) is host/source-table.ts.
 *
 * Each source has:
 *   - a connection count (`--relay-max-connections-per-source`) and a connection-rate bucket;
 *   - a command-cost bucket: every command is charged what it costs the relay's one thread
 *     (`commandCost`), so a signature check or a NEW weighs what it really takes, and all the
 *     source's connections draw on the same budget;
 *   - a storage bucket in bytes: every write is charged the bytes it adds to the store
 *     (`storedBytes`, a 0-byte SEND stores a whole padded block), reserved before the write and
 *     refunded when the write does not happen;
 *   - a one-time-prekey bucket: how many one-time prekeys the source may take (PKGET); beyond it
 *     a fetch gets the bundle alone (the last-resort path) and drains nothing.
 */
import { BLOCK_SIZE, type Command, OTK_BLOCK_SIZE } from "../core/relay/protocol.ts";
import { SourceTable as SharedSourceTable, type SourceEntry } from "../host/source-table.ts";
import { TokenBucket } from "../host/token-bucket.ts";
import type { RelayConfig } from "./config.ts";
import { bucketSize } from "./store/at-rest.ts";

// ---------------------------------------------------------------------------------------------
// Costs

/**
 * Cost units, about 10 µs of the relay's thread each (measured on the 2-core reference machine:
 * decoding and answering a PING ≈ 1 unit; verifying an Ed25519 signature ≈ 9 units and importing
 * the key ≈ 1 unit with
 * node:crypto — bench/relay-keys.ts; the X25519 key pair, shared secret and HKDF of a NEW ≈ 15
 * units, also native).
 */
export const COST = {
  frame: 1,
  /** One key parse and one Ed25519 verification (every command naming a queue does exactly one). */
  signature: 10,
  /** A store read or write (LMDB, AES-GCM seal or open of a block). */
  store: 4,
  /** NEW: X25519 key pair, shared secret, HKDF, fresh ids (relay-ws/queue-dh.ts). */
  newQueue: 15,
  /** DEL crypto-deletes every message of the queue. */
  deleteQueue: 40,
} as const;

/** What a command costs, known before any work is done (it is charged before). */
export function commandCost(cmd: Command): number {
  switch (cmd.k) {
    case "PING":
      return COST.frame;
    case "NEW":
      return COST.frame + COST.signature + COST.newQueue + COST.store;
    case "KEY":
      return COST.frame + 2 * COST.signature + COST.store;
    case "DEL":
      return COST.frame + COST.signature + COST.deleteQueue;
    case "PKSET":
      return COST.frame + COST.signature + COST.store * (1 + cmd.po.length);
    case "SUB":
      return COST.frame + COST.signature + COST.store;
    case "SENDS":
    case "ACKS":
      // 1.3 batches: one frame and one authorization, a store write per message.
      return COST.frame + COST.signature + COST.store * cmd.ms.length;
    default:
      // SKEY, SEND, GET, ACK, OFF, PKGET: one signature check, one read or write.
      return COST.frame + COST.signature + COST.store;
  }
}

/**
 * Refused frames (in cost units) a source may send after its budget is spent before each of its
 * connections that sends again is closed (1008): refusing still costs decoding, so a source that
 * ignores SOURCE_RATE is cut instead of refused forever.
 */
export const SOURCE_DEBT = 256;

/**
 * Bytes one stored message takes: its body sealed at the store's size bucket (relay-ws/store/
 * at-rest.ts `bucketSize`: the next power of two of length + 2, at least 256 B), plus its wrapped
 * key, send id and index records.
 */
export function storedMessageBytes(bodyLength: number): number {
  return bucketSize(bodyLength, BLOCK_SIZE) + 256;
}
/** Bytes of a queue's records (queue, sender index, sequence numbers). */
export const STORED_QUEUE_BYTES = 256;
const storedBundleBytes = (length: number) => bucketSize(length, BLOCK_SIZE) + 128;
const storedOtkBytes = (length: number) => bucketSize(length, OTK_BLOCK_SIZE) + 128;

/**
 * Bytes a command adds to the store if it succeeds: what is stored, not what was sent (a 0-byte
 * SEND stores a whole block). When relay-store changes what a message takes at rest, this is the
 * one place to follow it.
 */
export function storedBytes(cmd: Command): number {
  switch (cmd.k) {
    case "SEND":
      return storedMessageBytes(cmd.b.length);
    case "NEW":
      return STORED_QUEUE_BYTES;
    case "PKSET":
      return (
        (cmd.pb ? storedBundleBytes(cmd.pb.length) : 0) +
        cmd.po.reduce((n, o) => n + storedOtkBytes(o.length), 0)
      );
    default:
      return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// The table

export interface RelaySource extends SourceEntry {
  readonly commands: TokenBucket;
  readonly storage: TokenBucket;
  readonly prekeys: TokenBucket;
  /** With --redis: the source's keyed-hash name for the budgets shared by all instances (shared-limits.ts). */
  sharedTag?: string;
}

type Limits = Pick<
  RelayConfig,
  | "connectionsPerSecondPerSource"
  | "maxConnectionsPerSource"
  | "sourceCostRate"
  | "sourceCostBurst"
  | "sourceStoreRate"
  | "sourceStoreBurst"
  | "prekeySourcePerHour"
  | "prekeySourceBurst"
>;

/** The relay's sources: the shared table (host/source-table.ts) with the relay's budgets. */
export class SourceTable extends SharedSourceTable<RelaySource, Limits> {
  protected create(now: number): RelaySource {
    const l = this.limits;
    return {
      connections: 0,
      upgrades: new TokenBucket(l.connectionsPerSecondPerSource, l.connectionsPerSecondPerSource * 3, now),
      commands: new TokenBucket(l.sourceCostRate, l.sourceCostBurst, now),
      storage: new TokenBucket(l.sourceStoreRate, l.sourceStoreBurst, now),
      prekeys: new TokenBucket(l.prekeySourcePerHour / 3600, l.prekeySourceBurst, now),
    };
  }

  protected rested(s: RelaySource, now: number): boolean {
    return s.upgrades.full(now) && s.commands.full(now) && s.storage.full(now) && s.prekeys.full(now);
  }
}

/**
 * One-time prekeys handed out per queue (`--relay-prekey-queue-rate`/`-burst`), by hex recipient
 * id, for queues fetched from recently. Bounded: when `maxEntries` queues are tracked, a queue not
 * yet tracked is treated as out of budget (its fetch gets the bundle alone) — failing towards not
 * draining, never towards refusing the bundle.
 */
export class PrekeyBudget {
  readonly #map = new Map<string, TokenBucket>();
  constructor(
    readonly perHour: number,
    readonly burst: number,
    readonly maxEntries = 100_000,
  ) {}

  take(queueHex: string, now: number): boolean {
    if (this.perHour === 0) return true;
    let b = this.#map.get(queueHex);
    if (!b) {
      if (this.#map.size >= this.maxEntries) return false;
      b = new TokenBucket(this.perHour / 3600, this.burst, now);
      this.#map.set(queueHex, b);
    }
    return b.take(1, now);
  }

  /** Give back a prekey that was not handed out after all. */
  refund(queueHex: string): void {
    this.#map.get(queueHex)?.refund(1);
  }

  sweep(now: number): void {
    for (const [k, b] of this.#map) if (b.full(now)) this.#map.delete(k);
  }
}
