/**
 * The relay as a HostedService (host/host.ts): WebSocket mailbox at `/relay`, SMP-like queues
 * (docs/protocol/relay.md), an embedded LMDB store, push delivery, garbage collection, limits and
 * metrics. `relay-ws/main.ts` runs it alone; the one-process host mounts it next to signaling.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Registry } from "prom-client";
import { sourceOf, trustedProxies } from "../host/client-source.ts";
import { Deadlines } from "../host/deadlines.ts";
import type { HostedService } from "../host/host.ts";
import type { Logger } from "../host/log.ts";
import { originAllowed, pageSourceKey } from "../host/origin.ts";
import { createUpgrader, type ServerSocket as WebSocket, type WsImpl } from "../host/websocket-server.ts";
import { AuthenticatorStats } from "./authenticator.ts";
import { BundleCache } from "./bundle-cache.ts";
import type { RelayConfig } from "./config.ts";
import { RelayConnection } from "./connection.ts";
import { type ConnectionHandle, pushStillWanted, type RelayContext, type Subscription } from "./context.ts";
import { boundFramesPerTurn, TurnBudget } from "./frame-turns.ts";
import { toHex } from "./hex.ts";
import { createRelayMetrics } from "./metrics.ts";
import { OutputBudget } from "./output-budget.ts";
import { type SharedCounters, SharedSourceLimits } from "./shared-limits.ts";
import { PrekeyBudget, type RelaySource, SourceTable } from "./source-limits.ts";
import { openRelayStore } from "./store/open.ts";
import { SeqMap } from "./store/seq-map.ts";
import type { GcResult, RelayStore } from "./store/types.ts";
import { SignatureVerifier } from "./verifier.ts";
import { VerifyPool } from "./verify-pool.ts";

export interface RelayServiceDeps {
  registry: Registry;
  log: Logger;
  /** Milliseconds since the epoch; injectable for TTL tests. */
  clock?: () => number;
  /** Monotonic milliseconds for every rate bucket (per connection, per source); injectable for rate tests. */
  now?: () => number;
  /** A store engine; by default LMDB in `config.dataDir`. */
  store?: RelayStore;
  /** The WebSocket server layer (host/websocket-server.ts); lean by default. */
  wsImpl?: WsImpl;
}

/** What the relay holds right now, for tests and operators' debugging (never per source). */
export interface RelayDiagnostics {
  /** Open sockets, closing ones included, until their TCP connection is gone. */
  sockets: number;
  /** Bytes waiting in the sockets' user-space buffers (the sum of ws `bufferedAmount`). */
  bufferedBytes: number;
  /** The relay's own count of unread output (what `--relay-send-buffer-total` bounds). */
  outputQueued: number;
  keyCacheEntries: number;
  keyCacheBytes: number;
  keyParses: number;
  verifies: number;
  /** Protocol 1.1: key agreements (one per queue per connection) and authenticator checks. */
  authAgreements: number;
  authChecks: number;
  /** Source addresses tracked in memory. */
  sources: number;
}

/**
 * Another protocol's listener on the same queues (smp/server/, docs/protocol/smp.md): it serves
 * with the relay's context (store, subscriptions, verifier, metrics) and per-source table, shows
 * in the relay's /health under its name, and is closed before the store is.
 */
export interface RelayCompanion {
  readonly name: string;
  health(): Record<string, unknown>;
  close(): Promise<void>;
}

export interface RelayShared {
  readonly context: RelayContext;
  readonly sources: SourceTable;
  readonly closing: boolean;
}

export interface RelayService extends HostedService {
  readonly store: RelayStore;
  /** What a companion listener serves with (smp/server/listener.ts). */
  readonly shared: RelayShared;
  attach(companion: RelayCompanion): void;
  /** Run one garbage collection now (also runs every gcIntervalSeconds). */
  runGc(): Promise<GcResult>;
  readonly connectionCount: number;
  diagnostics(): RelayDiagnostics;
  /** One heartbeat round now (also runs every 30 s): pings, dead connections cut, full buckets forgotten. */
  heartbeat(): void;
}

const HEARTBEAT_MS = 30_000;

/** What an accepted socket carries for its close listener: its source slot and its WebSocket. */
const HELD_SOURCE = Symbol("loft.relaySource");
const HELD_WS = Symbol("loft.relayWs");
type HeldSocket = Duplex & { [HELD_SOURCE]?: RelaySource | undefined; [HELD_WS]?: WebSocket | undefined };
/** Memory for bundles answered without a one-time prekey (bundle-cache.ts): ~1000 full bundles. */
const BUNDLE_CACHE_BYTES = 16 << 20;

/** After close frames are sent on shutdown, how long clients get to answer before being cut. */
const SHUTDOWN_GRACE_MS = 2_000;

export function createRelayService(config: RelayConfig, deps: RelayServiceDeps): RelayService {
  const log = deps.log.child({ service: "relay" });
  const clock = deps.clock ?? Date.now;
  const store: RelayStore =
    deps.store ?? openRelayStore(config, { log, ...(deps.clock ? { clock: deps.clock } : {}) });
  const theStore = store;
  const hub = store.hub;
  // Scale-out: what each source spends, summed over all instances in Redis (shared-limits.ts).
  const counters = store as Partial<SharedCounters>;
  const shared =
    counters.sourceTag && counters.spendShared
      ? new SharedSourceLimits(counters as SharedCounters, {
          conn: config.connectionsPerSecondPerSource > 0 ? config.connectionsPerSecondPerSource * 3 : 0,
          cost: config.sourceCostRate > 0 ? config.sourceCostBurst : 0,
          store: config.sourceStoreRate > 0 ? config.sourceStoreBurst : 0,
        })
      : undefined;
  const connections = new Set<ConnectionHandle>();
  /** Every open socket, until its TCP close (a closing connection leaves `connections` at once). */
  const sockets = new Set<WebSocket>();
  const subscriptions = new Map<string, Subscription>();
  /**
   * Messages whose ACK was accepted and whose deletion is not durable yet (a group commit, a Redis
   * round trip): still in the store, so a SUB again (or another connection's SUB, or a GET) would
   * read them and hand them out again, and their second ACK would get NO_MSG. The pump and GET skip
   * them (docs/protocol/relay.md §Commands, ACK). The value counts the deletions of the message
   * under way: one handed out twice (a subscription's window, and another connection's GET) may
   * be ACKed on both, and it counts as acknowledged until the last of them settles.
   */
  const deletions = new SeqMap<number>();
  const pending = new Set<Promise<unknown>>();
  const sources = new SourceTable(config);
  const trusted = trustedProxies(config.trustProxy);
  const verifier = new SignatureVerifier(config.keyCacheBytes);
  const authStats = new AuthenticatorStats();
  const verifyPool =
    config.verifyThreads > 0
      ? new VerifyPool(config.verifyThreads, undefined, undefined, {
          onFailure: (detail) =>
            log.warn(
              detail,
              "relay: a verify thread died or stopped answering; its checks ran on the event loop, a new thread replaces it after the back-off",
            ),
          onRespawn: (detail) => log.info(detail, "relay: a new verify thread replaced a failed one"),
        })
      : undefined;
  const output = new OutputBudget(config.sendBufferTotal);
  const companions: RelayCompanion[] = [];
  let closing = false;
  /** Where close() is, for stillPending() (the stop bound's log line, host/host.ts closeOnSignals). */
  let closeStep: "companions" | "operations" | "clients" | "verify threads" | "store" | "closed" | undefined;

  const metrics = createRelayMetrics(deps.registry, {
    connections: () => connections.size,
    subscriptions: () => subscriptions.size,
    store: () => theStore.stats(),
    storeAvailable: () => theStore.unavailable?.() === undefined,
    outputQueued: () => output.queued,
    keyCacheBytes: () => verifier.cacheBytes,
    authenticators: () => ({ agreements: authStats.agreements, checks: authStats.checks }),
    verifications: () => {
      const thread = verifyPool?.submitted ?? 0;
      return {
        thread,
        eventLoop: Math.max(0, verifier.verifies - thread),
        threadFailures: verifyPool?.failures ?? 0,
        threadRespawns: verifyPool?.respawns ?? 0,
      };
    },
  });

  const ctx: RelayContext = {
    config,
    store: theStore,
    metrics,
    log,
    clock,
    now: deps.now ?? (() => performance.now()),
    verifier,
    verifyPool,
    authStats,
    output,
    prekeysPerQueue: new PrekeyBudget(config.prekeyQueuePerHour, config.prekeyQueueBurst),
    openings: new Deadlines(config.openingTimeoutSeconds * 1000, (c) => c.openingDue()),
    bundles: new BundleCache(BUNDLE_CACHE_BYTES),
    shared,
    subscribe(conn, rid, rcvKey, window) {
      const hex = toHex(rid);
      const existing = subscriptions.get(hex);
      if (existing && existing.conn !== conn) {
        ctx.unsubscribe(existing);
        existing.conn.subs.delete(hex);
        existing.conn.sendFrame({ k: "END", q: rid });
      }
      let sub: Subscription;
      if (existing && existing.conn === conn) {
        sub = existing;
        sub.window = window;
        // Re-subscribing asks for everything not acknowledged again.
        sub.cursor = -1;
        sub.rewalkTo = -1;
        theStore.releaseDeliveries(sub.rid, [...sub.inflight.values()]);
        sub.inflight.clear();
      } else {
        sub = {
          conn,
          rid,
          hex,
          rcvKey,
          window,
          inflight: new Map(),
          cursor: -1,
          rewalkTo: -1,
          pumping: false,
          again: false,
          active: true,
        };
        subscriptions.set(hex, sub);
        conn.subs.set(hex, sub);
        // Scale-out: this instance holds the queue now; one elsewhere is told to END its own.
        if (hub) {
          sub.token = hub.newToken();
          hub.claim(rid, sub.token);
        }
      }
      ctx.pump(sub);
    },
    unsubscribe(sub) {
      const wasActive = sub.active;
      sub.active = false;
      theStore.releaseDeliveries(sub.rid, [...sub.inflight.values()]);
      sub.inflight.clear();
      if (subscriptions.get(sub.hex) === sub) subscriptions.delete(sub.hex);
      if (hub && sub.token && wasActive) hub.release(sub.rid, sub.token);
    },
    endSubscription(hex, by) {
      const sub = subscriptions.get(hex);
      if (!sub) return;
      if (sub.conn !== by) sub.conn.sendFrame({ k: "END", q: sub.rid });
      sub.conn.subs.delete(hex);
      ctx.unsubscribe(sub);
    },
    pump(sub) {
      if (sub.pumping) {
        sub.again = true;
        return;
      }
      sub.pumping = true;
      // Started as a microtask: after the continuations already queued — every SEND of a group
      // commit awaits the commit's one promise, so when the first of them appends, the others'
      // are queued and each puts its message in the hot blocks before the pump reads (a pump run
      // at once would read them back from LMDB) — and before this turn's writes are uncorked, so
      // the pushes leave in the same `writev` as the rest (a pump on process.nextTick ran after
      // the uncork: one more write system call per turn, bench/README-relay.md, "Results: fewer
      // objects per message"). The appends of one turn are one run of the loop.
      queueMicrotask(() => pumpNow(sub));
    },
    acknowledge(rid, hex, seq, msgId) {
      deletions.set(hex, seq, (deletions.get(hex, seq) ?? 0) + 1);
      /** This deletion settled: whether another of the same message is still under way. */
      const settled = (): boolean => {
        const left = (deletions.get(hex, seq) ?? 1) - 1;
        if (left > 0) deletions.set(hex, seq, left);
        else deletions.delete(hex, seq);
        return left > 0;
      };
      return theStore.ack(rid, seq, msgId).then(
        (removed) => {
          settled();
          return removed;
        },
        (e: unknown) => {
          // Another ACK's deletion of it still under way: that one's outcome decides (its failure
          // rewinds); a rewind now would hand out a message that deletion is taking.
          if (settled()) throw e;
          // Not deleted (the store's contract: a failed commit changed nothing): the message is
          // the queue's again. Its subscription here may have walked past it meanwhile (a SUB
          // again skipped it): the cursor goes back to it, and what is still in the window after
          // it is skipped on the way (`rewalkTo`), so it comes again and nothing twice. Without a
          // subscription here, the next SUB or GET reads it.
          const sub = subscriptions.get(hex);
          if (sub?.active && sub.cursor >= seq) {
            sub.rewalkTo = Math.max(sub.rewalkTo, sub.cursor);
            sub.cursor = seq - 1;
            ctx.pump(sub);
          }
          throw e;
        },
      );
    },
    deletionUnderWay(hex, seq) {
      return deletions.has(hex, seq);
    },
    track(p) {
      pending.add(p);
      void p.finally(() => pending.delete(p));
    },
    connectionClosed(conn) {
      connections.delete(conn);
    },
  };

  /**
   * Push what the window has room for. The LMDB store answers at once, so this loop awaits only a
   * store or delivery that had to wait (Redis, a message dropped as undeliverable): no promise
   * per push.
   */
  function pumpNow(sub: Subscription): void {
    ctx.track(
      (async () => {
        try {
          do {
            sub.again = false;
            // A connection whose client reads slowly gets no more pushes until it catches up
            // (connection.ts resumes its subscriptions when its backlog drains).
            while (
              sub.active &&
              sub.inflight.size < sub.window &&
              sub.conn.inFlight < config.maxInFlight &&
              !sub.conn.congested
            ) {
              const from = sub.cursor;
              let m = theStore.next(sub.rid, from);
              if (m instanceof Promise) {
                m = await m;
                // A SUB again meanwhile reset the cursor and released what was in flight
                // (`subscribe`): this answer is for the old cursor, and taking it would skip the
                // released messages on this subscription. Ask again from the new one.
                if (sub.cursor !== from) continue;
              }
              if (!m || !sub.active) break;
              sub.cursor = m.seq;
              // Acknowledged, its deletion not durable yet: handed out again, its second ACK would
              // be NO_MSG. Or still in this window, met again after a failed deletion's rewind.
              if (ctx.deletionUnderWay(sub.hex, m.seq)) continue;
              if (m.seq <= sub.rewalkTo && sub.inflight.has(toHex(m.msgId))) continue;
              let delivered = sub.conn.deliver(sub.rid, sub.rcvKey, m, sub);
              if (delivered instanceof Promise) {
                delivered = await delivered;
                // The same rule as for the store's answer: a SUB again (or the subscription's
                // end) while the block was read released the window this push was taken for. The
                // connection did not send it then (context.ts `pushStillWanted`); one sent just
                // before went out as the old window's, released as the SUB released the others
                // (a counted delivery). Either way the new window delivers it in its turn, oldest
                // first (docs/protocol/relay.md §Commands, SUB): kept in the new window, it took a
                // slot that window's own pushes needed.
                if (!pushStillWanted(sub, m)) {
                  if (delivered) theStore.releaseDeliveries(sub.rid, [m.seq]);
                  continue;
                }
              }
              if (delivered) sub.inflight.set(toHex(m.msgId), m.seq);
            }
          } while (sub.again && sub.active);
        } catch (e) {
          log.error({ err: e }, "relay delivery failed");
        } finally {
          sub.pumping = false;
        }
      })(),
    );
  }

  theStore.onAppend((rid) => {
    const sub = subscriptions.get(toHex(rid));
    if (sub) ctx.pump(sub);
  });
  // Scale-out (docs/operations.md, "Scale-out on Redis"): a SUB on another instance, or a DEL
  // there, ends the subscription held here — as between two connections of one instance.
  hub?.onEnd((rid, token) => {
    const sub = subscriptions.get(toHex(rid));
    if (!sub || sub.token !== token) return;
    sub.conn.sendFrame({ k: "END", q: sub.rid });
    sub.conn.subs.delete(sub.hex);
    ctx.unsubscribe(sub);
  });
  hub?.onResync(() => {
    for (const sub of subscriptions.values()) ctx.pump(sub);
  });

  // Frames per event-loop turn, shared by all connections (frame-turns.ts): each accepted socket
  // gets its share of it through boundFramesPerTurn.
  const turnBudget = new TurnBudget();
  const wss = createUpgrader(deps.wsImpl ?? "lean", {
    // Frames up to maxFrameBytes get a typed error when oversized for their kind; beyond twice the
    // limit the connection is closed with 1009 before more is buffered (transport-level violation).
    maxPayload: config.maxFrameBytes * 2,
    // A connection that delivers a chunk of hundreds of frames at once cannot hold the loop while
    // they are all handled: boundFramesPerTurn lets it handle its share of the turn budget, then
    // waits for the next turn, so an innocent client's PING waits for at most max(budget, busy
    // connections) frames, not for all of them. This option is where that falls back to when ws
    // lacks the per-receiver flag: one message per connection per turn.
    allowSynchronousEvents: false,
  });

  async function runGc(): Promise<GcResult> {
    const r = await theStore.gc(clock());
    if (r.expiredMessages) metrics.gcRemoved.inc({ reason: "expired" }, r.expiredMessages);
    if (r.expiredSendIds) metrics.gcRemoved.inc({ reason: "send_ids" }, r.expiredSendIds);
    if (r.idleQueues) metrics.gcRemoved.inc({ reason: "idle_queues" }, r.idleQueues);
    if (r.expiredMessages || r.expiredSendIds || r.idleQueues || r.destroyedEpochs) log.info(r, "relay gc");
    return r;
  }

  const gcTimer = setInterval(() => {
    ctx.track(runGc().catch((e) => log.error({ err: e }, "relay gc failed")));
  }, config.gcIntervalSeconds * 1000);
  gcTimer.unref();
  function heartbeat(): void {
    for (const c of connections) c.heartbeat();
    // Source entries are kept in memory only, and only while they matter.
    const now = ctx.now();
    sources.sweep(now);
    ctx.prekeysPerQueue.sweep(now);
  }
  const heartbeatTimer = setInterval(heartbeat, HEARTBEAT_MS);
  heartbeatTimer.unref();

  function onHeldSocketClose(this: HeldSocket): void {
    const source = this[HELD_SOURCE];
    if (source) sources.release(source);
    const ws = this[HELD_WS];
    if (ws) sockets.delete(ws);
    this[HELD_SOURCE] = undefined;
    this[HELD_WS] = undefined;
  }

  function refuse(socket: Duplex, status: string): void {
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }

  log.info({ engine: theStore.engine, sync: config.sync }, "relay store open");
  if (!config.sync) log.warn("relay store without fsync: acknowledged messages can be lost in a power cut");

  return {
    name: "relay",
    path: "/relay",
    store: theStore,
    shared: {
      context: ctx,
      sources,
      get closing() {
        return closing;
      },
    },
    attach(companion) {
      companions.push(companion);
    },
    runGc,
    heartbeat,
    get connectionCount() {
      return connections.size;
    },
    diagnostics() {
      let bufferedBytes = 0;
      for (const ws of sockets) bufferedBytes += ws.bufferedAmount;
      return {
        sockets: sockets.size,
        bufferedBytes,
        outputQueued: output.queued,
        keyCacheEntries: verifier.cacheEntries,
        keyCacheBytes: verifier.cacheBytes,
        keyParses: verifier.parses,
        verifies: verifier.verifies,
        authAgreements: authStats.agreements,
        authChecks: authStats.checks,
        sources: sources.size,
      };
    },
    handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
      if (closing) {
        metrics.connectionsTotal.inc({ result: "closing" });
        return refuse(socket, "503 Service Unavailable");
      }
      // The shared store (Redis) is unreachable: the client, or the load balancer in front,
      // tries another relay instead of opening a connection that can do nothing.
      if (theStore.unavailable?.() !== undefined) {
        metrics.connectionsTotal.inc({ result: "unavailable" });
        return refuse(socket, "503 Service Unavailable");
      }
      // A contact's app served from another origin deposits into our queues (docs/design.md,
      // Relay mailbox): such pages are accepted by default, but counted apart from this origin's
      // own pages, so a hostile page cannot spend its visitors' budget here (docs/decisions.md).
      const ownPage = originAllowed(req, config.allowedOrigins);
      if (!ownPage && config.crossOriginPages === "refuse") {
        metrics.connectionsTotal.inc({ result: "origin" });
        return refuse(socket, "403 Forbidden");
      }
      // Sockets still closing count: each holds its buffers until its TCP connection is gone.
      if (sockets.size >= config.maxConnections) {
        metrics.connectionsTotal.inc({ result: "full" });
        return refuse(socket, "503 Service Unavailable");
      }
      const now = ctx.now();
      const key = pageSourceKey(sourceOf(req, trusted), ownPage);
      const tag = shared?.tag(key);
      if (tag && shared?.over(tag, "conn")) {
        metrics.connectionsTotal.inc({ result: "rate_limited" });
        return refuse(socket, "429 Too Many Requests");
      }
      const verdict = sources.admit(key, now);
      if (verdict !== "ok") {
        metrics.connectionsTotal.inc({ result: verdict === "rate" ? "rate_limited" : "source_full" });
        return refuse(socket, "429 Too Many Requests");
      }
      const source = sources.get(key, now);
      if (tag) {
        source.sharedTag = tag;
        shared?.spend(tag, "conn", 1);
      }
      // The slot goes back when the TCP connection is gone, whether the handshake failed (bad
      // headers, socket error) or the WebSocket lived: one shared listener, its state on the socket.
      const held = socket as HeldSocket;
      held[HELD_SOURCE] = source;
      socket.on("close", onHeldSocketClose);
      wss.handleUpgrade(req, socket, head, (ws) => {
        metrics.connectionsTotal.inc({ result: "accepted" });
        sockets.add(ws);
        held[HELD_WS] = ws;
        if (closing) {
          ws.close(1001, "going away");
          return;
        }
        boundFramesPerTurn(ws, turnBudget);
        connections.add(new RelayConnection(ctx, ws, source));
      });
    },
    handleHttp(req: IncomingMessage, res: ServerResponse) {
      const path = new URL(req.url ?? "/", "http://host.invalid").pathname;
      if (path !== "/relay") return false;
      res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" });
      res.end("WebSocket only\n");
      return true;
    },
    unavailable() {
      const why = theStore.unavailable?.();
      // The public /health shows this: no addresses (the detailed /health has the cause).
      return why === undefined ? undefined : `relay store (${theStore.engine}) unavailable`;
    },
    health() {
      const s = theStore.stats();
      const down = theStore.unavailable?.();
      return {
        ...(down === undefined ? {} : { status: "unavailable", reason: down }),
        connections: connections.size,
        subscriptions: subscriptions.size,
        queues: s.queues,
        stored_messages: s.messages,
        engine: theStore.engine,
        ...Object.fromEntries(companions.map((c) => [c.name, c.health()])),
      };
    },
    async close() {
      if (closing) return;
      closing = true;
      clearInterval(gcTimer);
      clearInterval(heartbeatTimer);
      ctx.openings.close();
      shared?.close();
      closeStep = "companions";
      await Promise.all(companions.map((c) => c.close()));
      for (const c of [...connections]) c.close(1001, "going away", false);
      // Commands and deliveries under way finish first: their writes are the clients' data. No
      // bound here: closing the store under a write would be worse than waiting; the process's stop
      // bound (docs/operations.md, "Stopping") ends a wait that never ends, naming this step.
      closeStep = "operations";
      while (pending.size > 0) await Promise.allSettled([...pending]);
      closeStep = "clients";
      // A client that never answers the close frame would hold the process for ws's 30 s close
      // timeout; give well-behaved clients a short grace, then cut the rest.
      const answered = Promise.all(
        [...sockets].map((ws) => new Promise<void>((resolve) => ws.once("close", () => resolve()))),
      );
      let graceTimer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        graceTimer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
      });
      await Promise.race([answered, grace]);
      clearTimeout(graceTimer);
      for (const ws of sockets) ws.terminate();
      wss.close();
      closeStep = "verify threads";
      await verifyPool?.close();
      closeStep = "store";
      await theStore.close();
      closeStep = "closed";
      log.info("relay closed");
    },
    stillPending() {
      if (closeStep === undefined) return undefined;
      return { step: closeStep, operations: pending.size, sockets: sockets.size };
    },
  };
}
