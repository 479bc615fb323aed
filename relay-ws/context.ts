/**
 * What the relay's connections share with the service that owns them (relay-ws/service.ts): the
 * context (config, store, metrics, subscriptions) and the subscription record. Its own module so
 * that service.ts (which creates connections) and connection.ts (which uses the context) both
 * depend on it instead of on each other (issue #9: no import cycles).
 */

import type { ServerFrame } from "../core/relay/protocol.ts";
import type { Deadlines } from "../host/deadlines.ts";
import type { Logger } from "../host/log.ts";
import type { AuthenticatorStats } from "./authenticator.ts";
import type { BundleCache } from "./bundle-cache.ts";
import type { RelayConfig } from "./config.ts";
import type { RelayMetrics } from "./metrics.ts";
import type { OutputBudget } from "./output-budget.ts";
import type { SharedSourceLimits } from "./shared-limits.ts";
import type { PrekeyBudget } from "./source-limits.ts";
import type { RelayStore, StoredMessageMeta } from "./store/types.ts";
import type { SignatureVerifier } from "./verifier.ts";
import type { VerifyPool } from "./verify-pool.ts";

/** What the service holds of a connection (relay-ws/connection.ts): subscriptions, pump, heartbeat, close. */
export interface ConnectionHandle {
  /** This connection's subscriptions, hex recipient id → subscription. */
  readonly subs: Map<string, Subscription>;
  /** Delivered messages not yet acknowledged, across its subscriptions. */
  readonly inFlight: number;
  /** True while its unread output is above the push high-water mark. */
  readonly congested: boolean;
  sendFrame(frame: ServerFrame): void;
  /**
   * Push one message of `sub`; a boolean at once when nothing had to wait (the LMDB store reads
   * synchronously), else a promise of it. A block that had to be waited for goes out only if
   * `sub` still wants it (`pushStillWanted`); otherwise it is wiped and false returned.
   */
  deliver(
    rid: Uint8Array,
    rcvKey: Uint8Array,
    m: StoredMessageMeta,
    sub: Subscription,
  ): boolean | Promise<boolean>;
  /** Terminate the connection if it did not answer the previous ping; ping it otherwise. */
  heartbeat(): void;
  close(code: number, reason: string, isError?: boolean): void;
}

export interface Subscription {
  conn: ConnectionHandle;
  rid: Uint8Array;
  hex: string;
  rcvKey: Uint8Array;
  window: number;
  /** Delivered, unacknowledged: hex message id → seq. */
  inflight: Map<string, number>;
  /** Highest seq handed out so far (-1: none). */
  cursor: number;
  /**
   * Seqs up to this one were walked before: the cursor went back to a message whose ACK's
   * deletion failed (service.ts `acknowledge`), and a message up to here still in the window is
   * skipped, not pushed twice (-1: no such walk).
   */
  rewalkTo: number;
  pumping: boolean;
  again: boolean;
  active: boolean;
  /**
   * This subscription's name across relay instances (store hub, store/types.ts SubscriptionHub):
   * an END from another instance names the subscription it ends. Unset without a hub.
   */
  token?: string;
}

/**
 * A push of `m` that waited for its block (Redis, a message dropped first) is still this
 * subscription's to send: not ended meanwhile, and no SUB again reset its cursor (`subscribe` in
 * service.ts) — that SUB's OK went out first, and its window redelivers the unacknowledged
 * messages oldest first (docs/protocol/relay.md §Commands, SUB): the old window's push would
 * reach the client after it, out of order and twice.
 */
export function pushStillWanted(sub: Subscription, m: StoredMessageMeta): boolean {
  return sub.active && sub.cursor === m.seq;
}

/** The message a connection's last GET on a queue handed out (kept by rid hex until ACKed). */
export interface HandedOut {
  seq: number;
  /** Hex message id. */
  msgId: string;
  rid: Uint8Array;
}

/**
 * The seq of message `msgHex` that this connection handed out on queue `hex` — in its
 * subscription's window or by its last GET — taken off that record, as an ACK does; undefined when
 * it handed out no such message. Shared by every protocol that serves the store (the WebSocket
 * mailbox and the SMP listener).
 */
export function takeHandedOut(
  sub: Subscription | undefined,
  gets: Map<string, HandedOut>,
  hex: string,
  msgHex: string,
): number | undefined {
  const inWindow = sub?.inflight.get(msgHex);
  if (inWindow !== undefined) {
    sub!.inflight.delete(msgHex);
    return inWindow;
  }
  const got = gets.get(hex);
  if (got?.msgId !== msgHex) return undefined;
  gets.delete(hex);
  return got.seq;
}

/** What connections share: config, store, metrics, subscriptions. */
export interface RelayContext {
  readonly config: RelayConfig;
  readonly store: RelayStore;
  readonly metrics: RelayMetrics;
  readonly log: Logger;
  readonly clock: () => number;
  /**
   * Monotonic milliseconds for every rate bucket — each connection's (connection.ts `#takeToken`)
   * and each source's (source-limits.ts): performance.now, or a test's own clock so that refills
   * are exact (relay-ws/testing.ts).
   */
  readonly now: () => number;
  /** Protocol 1.1 authenticators: the dummy key and the work counters (authenticator.ts). */
  readonly authStats: AuthenticatorStats;
  /** Signature checks with the bounded cache of keys that verified (verifier.ts). */
  readonly verifier: SignatureVerifier;
  /** Worker threads for the verifications themselves (`--relay-verify-threads`; none: inline). */
  readonly verifyPool: VerifyPool | undefined;
  /** Unread output bytes across all connections (`--relay-send-buffer-total`). */
  readonly output: OutputBudget;
  /** One-time prekeys handed out per queue (`--relay-prekey-queue-rate`). */
  readonly prekeysPerQueue: PrekeyBudget;
  /**
   * Connections still in their opening (version header), by deadline: one timer for all of them
   * (host/deadlines.ts), not one per connection (`--relay-opening-timeout`).
   */
  readonly openings: Deadlines<{ openingDue(): void }>;
  /** Bundles recently handed out, for bundle-only answers without a store write. */
  readonly bundles: BundleCache;
  /** With --redis: per-source budgets over all instances (shared-limits.ts); else undefined. */
  readonly shared?: SharedSourceLimits | undefined;
  subscribe(conn: ConnectionHandle, rid: Uint8Array, rcvKey: Uint8Array, window: number): void;
  unsubscribe(sub: Subscription): void;
  /** Drop the subscription of a queue (DEL); the owner is told END unless it is `by`. */
  endSubscription(hex: string, by: ConnectionHandle): void;
  pump(sub: Subscription): void;
  /**
   * An accepted ACK of message `seq` (taken off the window or the GET record): the store's
   * deletion, marked under way until it settles, so no push or GET hands the message out again
   * meanwhile (`deletionUnderWay`). A deletion that fails leaves it stored: the queue's
   * subscription on this relay delivers it again (docs/protocol/relay.md §Commands, ACK).
   */
  acknowledge(rid: Uint8Array, hex: string, seq: number, msgId: Uint8Array): Promise<boolean>;
  /** Whether the ACK of message `seq` of queue `hex` was accepted and its deletion is under way. */
  deletionUnderWay(hex: string, seq: number): boolean;
  track(p: Promise<unknown>): void;
  connectionClosed(conn: ConnectionHandle): void;
}

/**
 * Whether a stored message may still be handed out (docs/protocol/relay.md, "Limits": message TTL and failed deliveries): one that
 * expired, or already failed `maxDeliveries` times, is dropped here and false returned. Shared by
 * every protocol that delivers from the store (the WebSocket mailbox and the SMP listener).
 */
export function stillDeliverable(
  ctx: RelayContext,
  rid: Uint8Array,
  m: StoredMessageMeta,
): true | Promise<false> {
  // `true` at once for nearly every message: a push makes no promise unless it drops one.
  if (m.expiresAt <= ctx.clock()) return dropUndeliverable(ctx, rid, m.seq, "expired");
  if (m.deliveries >= ctx.config.maxDeliveries)
    return dropUndeliverable(ctx, rid, m.seq, "delivery_failures");
  return true;
}

async function dropUndeliverable(
  ctx: RelayContext,
  rid: Uint8Array,
  seq: number,
  reason: "expired" | "delivery_failures",
): Promise<false> {
  if (await ctx.store.drop(rid, seq)) ctx.metrics.gcRemoved.inc({ reason });
  return false;
}
