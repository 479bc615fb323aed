/**
 * The signaling/rendezvous service (docs/protocol/signaling.md): a `ws` WebSocketServer in
 * noServer mode that the host mounts at `/signal`.
 *
 * - SREMP §rendezvous: REGISTER (signed by the identity key over this connection's CHALLENGE,
 *   this server as audience, a fresh and increasing timestamp; TTL with renewal), LOOKUP,
 *   LIST_SERVERS; SREMP §version: VERSION_HEADER first each way (signaling speaks 1.1,
 *   core/codec/version.ts SIGNALING_VERSION).
 * - WebRTC signaling: OFFER / ANSWER / ICE / BYE envelopes signed by the sender's identity key,
 *   verified here and forwarded verbatim to the recipient's connection; payloads are opaque.
 * - Presence: a connection watches up to N identity keys and is told when they go on/offline;
 *   with SUBSCRIBE `only_watched` a registration is visible only to the identities its
 *   connection watches (offline to everyone else); LOOKUP's last_seen is whole minutes.
 * - Hygiene: ws maxPayload, Origin check, token buckets per connection and per source address,
 *   a per-source budget of verification CPU time checked before any signature is verified
 *   (natively: signaling/register-check.ts), caps on connections and registrations (total and
 *   per source), ping/pong heartbeat that reaps dead sockets, Prometheus metrics, logs without
 *   addresses, identities or payloads, graceful close.
 *
 * Source addresses (host/client-source.ts, behind `--trust-proxy` proxies only) are map keys in
 * memory only (signaling/limits.ts).
 */
import { createHmac, createSecretKey, type KeyObject, randomBytes } from "node:crypto";
import type { Duplex } from "node:stream";
import type { Registry } from "prom-client";
import { equalBytes, fromHex, toHex } from "../core/bytes.ts";
import { decodeVersionHeader, encodeVersionHeader, SIGNALING_VERSION } from "../core/codec/version.ts";
import { MAX_IDENTITY_BYTES } from "../core/identity/identity.ts";
import { signedBytes } from "../core/identity/signature.ts";
import { signalingWireFor } from "../core/signaling/errors.ts";
import {
  CLOSE,
  type ClientMessage,
  clientCodec,
  envelopeSignedPayload,
  type ServerMessage,
  SIGNALING,
  type SignalEnvelope,
  type SignalingErrorCode,
  serverCodec,
} from "../core/wire/signaling.ts";
import type { DnsEndpoint, PeerInfo, RegisterRequest } from "../core/wire/sremp.ts";
import { sourceOf, trustedProxies } from "../host/client-source.ts";
import { Deadlines } from "../host/deadlines.ts";
import type { HostedService } from "../host/host.ts";
import type { Logger } from "../host/log.ts";
import { ed25519Verify } from "../host/node-ed25519.ts";
import { originAllowed, pageSourceKey } from "../host/origin.ts";
import { TokenBucket } from "../host/token-bucket.ts";
import { createUpgrader, type ServerSocket as WebSocket, type WsImpl } from "../host/websocket-server.ts";
import { audienceAccepted } from "./audience.ts";
import type { InstanceMessage, RoomPeer } from "./cluster-wire.ts";
import type { SignalingConfig } from "./config.ts";
import { Conn } from "./conn.ts";
import {
  EnvelopeNonceBudget,
  RecentNonces,
  type SourceState,
  SourceTable,
  VERIFY_COST_MS,
} from "./limits.ts";
import { createSharedMetrics, createSignalingMetrics } from "./metrics.ts";
import { PREFIX, SharedSignaling, SharedStateUnavailable } from "./redis-state.ts";
import { IdentityCache, registerSignatureValid } from "./register-check.ts";
import { PeerRegistry, type Registration } from "./registry.ts";
import { RoomTable } from "./rooms.ts";
import { SharedSourceLimits, sourceTagKey } from "./shared-limits.ts";
import { issueIceServers, needsIceRenewal } from "./turn-credentials.ts";

/** What a refused ROOM_JOIN says (signaling/rooms.ts decides which). */
const ROOM_REFUSALS = {
  ROOM_FULL: "the room has as many members as it accepts",
  TOO_MANY_ROOMS: "this connection or server is in as many rooms as it may be",
} as const;

export interface SignalingDeps {
  /** Prometheus registry the service's metrics are registered in (the host's). */
  registry: Registry;
  log: Logger;
  /** Clock in ms since epoch (tests may pin it); defaults to Date.now. */
  now?: () => number;
  /** The WebSocket server layer (host/websocket-server.ts); lean by default. */
  wsImpl?: WsImpl;
}

/** A refusal while Redis cannot be used (docs/operations.md, "Scale-out on Redis", failures). */
const UNAVAILABLE_MESSAGE = "the server cannot reach its shared state (Redis) right now; retry shortly";
/** Requests one connection may have waiting behind one that waits for Redis; more are refused. */
const MAX_BACKLOG = 64;
/** Distinct Host header values shared between connections (internHost). */
const MAX_HOSTS = 64;

export interface SignalingStats {
  connections: number;
  registrations: number;
  subscriptions: number;
  /** Verified identities remembered (signaling/register-check.ts). */
  identities: number;
  sources: number;
  /** Envelope nonces remembered, over all connections. */
  envelopeNonces: number;
  /** Room rendezvous with anyone present (docs/protocol/rooms.md §2). */
  rooms: number;
}

export interface SignalingService extends HostedService {
  /** Figures for tests and measurements (no identities, no addresses). */
  stats(): SignalingStats;
  /** With --redis: resolves true once Redis is reachable (false after `ms`); true without it. */
  ready(ms: number): Promise<boolean>;
  /** One heartbeat round now, what the timer runs every `heartbeatMs` (tests run it by hand). */
  heartbeat(): void;
}

/** The socket's property naming its connection (for the shared listeners). */
const CONN = Symbol("loft.signalingConn");
type ConnSocket = WebSocket & { [CONN]?: Conn };
/** An upgrade's source admission, on its socket until the handshake completes. */
const ADMITTED = Symbol("loft.signalingAdmitted");
type AdmittedSocket = Duplex & { [ADMITTED]?: SourceState | undefined };

/**
 * The watched keys of every connection that watches none: one shared empty set, not one per
 * connection (idle WebSockets are counted in bytes, bench/README.md "bench:scale").
 */
const NONE: ReadonlySet<string> = new Set();

/** Room kept for the LOOKUP_RESPONSE envelope around its PeerInfo list. */
const LOOKUP_BUDGET_BYTES = 60_000;

/** What `shown` keeps of a connection's last answers once it watches `next` (undefined: nothing). */
function keepShown(shown: Map<string, boolean> | undefined, next: ReadonlyMap<string, unknown>) {
  if (!shown) return undefined;
  for (const keyHex of shown.keys()) if (!next.has(keyHex)) shown.delete(keyHex);
  return shown.size > 0 ? shown : undefined;
}

/** Whether two `visibleTo` settings are the same: both public, or the same identities. */
function sameVisibility(a: ReadonlySet<string> | undefined, b: ReadonlySet<string> | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.size === b.size && [...a].every((k) => b.has(k));
}

/** Rate-limited frames per connection answered with RATE_LIMITED (later ones are dropped). */
const RATE_LIMIT_REPLIES = 20;
/**
 * Envelope nonces remembered per registered sender (see RecentNonces): a dial uses 10–20
 * envelopes (offer or answer, ICE candidates, bye), so 64 covers a few dials within the window.
 */
const ENVELOPE_NONCES_PER_SENDER = 64;
/** Coarseness of LOOKUP's `last_seen` (docs/protocol/signaling.md, "Privacy"). */
const LAST_SEEN_GRANULARITY_MS = 60_000;

function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export function createSignalingService(config: SignalingConfig, deps: SignalingDeps): SignalingService {
  const now = deps.now ?? Date.now;
  const log = deps.log.child({ service: "signaling" });
  const metrics = createSignalingMetrics(deps.registry);
  const skewMs = config.clockSkewSeconds * 1000;
  const maxBuffered = Math.max(1_048_576, 8 * config.maxFrameBytes);
  // A browser has no dialable address: a registered peer is reached through this server's SIGNAL
  // forwarding. PeerInfo.endpoint names this server when the operator configured its public
  // name, and is absent otherwise ("the server you asked").
  const endpoint: DnsEndpoint | undefined = config.publicHost
    ? { host: config.publicHost, port: config.publicPort }
    : undefined;

  const wss = createUpgrader(deps.wsImpl ?? "lean", { maxPayload: config.maxFrameBytes });
  const conns = new Set<Conn>();
  const sources = new SourceTable(config);
  const identities = new IdentityCache(config.identityCacheSize);
  const nonceBudget = new EnvelopeNonceBudget(config.envelopeNonceBytes);
  const proxies = trustedProxies(config.trustProxy);
  const rooms = new RoomTable<Conn>(config);
  // With --redis, registrations, presence, envelope nonces and room presence are shared through
  // Redis (signaling/redis-state.ts) and this process holds only its own connections' share; the
  // local registry then keeps this instance's registrations (their expiry, their connections) and
  // presence pushes come from Redis's change events, not from the local registry.
  const shared = config.redis
    ? new SharedSignaling(
        config.redis,
        {
          message: (m) => onInstanceMessage(m),
          presence: (keyHex, key) => {
            for (const viewer of registry.watchersOf(keyHex)) refresh(viewer, keyHex, key);
          },
          roomGone: (room, keyHex, others) => pushRoomPresence(others, fromHex(room), fromHex(keyHex), false),
          resync: () => void resync(),
          reaped: () => sharedMetrics?.instancesReaped.inc(),
        },
        { log, deadAfterMs: config.redisDeadAfterMs, heartbeatMs: Math.ceil(config.redisDeadAfterMs / 5) },
      )
    : undefined;
  // Per-source spending counted over all instances (signaling/shared-limits.ts), beside the
  // local token buckets.
  const sharedLimits =
    shared && config.redis
      ? new SharedSourceLimits(
          sourceTagKey(config.sourceSecret, config.redis),
          { m: config.sourceBurst, u: config.upgradeBurst, c: config.sourceCpuBurstMs * 1000 },
          (batch, ttlMs) => shared.incr(batch, ttlMs),
          PREFIX,
        )
      : undefined;
  const limitsFlush = sharedLimits ? setInterval(() => void sharedLimits.flush(), 250) : undefined;
  limitsFlush?.unref();
  const sharedMetrics = shared ? createSharedMetrics(deps.registry, () => shared.available()) : undefined;
  const connsById = new Map<number, Conn>();
  /** Removals Redis did not take (it was down); tried again when it is back. */
  const orphans = new Map<string, number>();
  /** Room leaves Redis did not take, `<room>|<key>` → connection; tried again when it is back. */
  const roomOrphans = new Map<string, number>();
  /** Redis work started by a connection's close, awaited by close(). */
  const inFlight = new Set<Promise<unknown>>();
  const registry = new PeerRegistry<Conn>(now(), (subscriber, key) => {
    if (!shared) refresh(subscriber, toHex(key), key);
  });
  const turn = { urls: config.turnUrls, secret: config.turnSecret, ttlSeconds: config.turnTtlSeconds };
  let nextConnId = 1;
  /** At shutdown, what each connection's close resolves (close() waits for them). */
  const closeWaiters = new Map<Conn, () => void>();
  /**
   * The CHALLENGE of a connection (docs/protocol/signaling.md, "Replay protection"): HMAC-SHA-256
   * of its number under a key drawn when the service starts, cut to 16 bytes. Unpredictable to
   * clients, never the same for two connections of this process (their numbers differ), nor after
   * a restart or on another instance (each draws its own key). Computed when it is pushed and when
   * a REGISTER is checked, stored nowhere: an idle connection holds no buffer for it (a 16-byte
   * slice of Node's buffer pool kept that pool's 8 KiB slabs alive, ~230 bytes per connection;
   * bench/idle-census.ts).
   */
  const challengeKey = createSecretKey(randomBytes(32));
  const challengeOf = (conn: Conn): Uint8Array<ArrayBuffer> =>
    new Uint8Array(
      createHmac("sha256", challengeKey).update(String(conn.id)).digest().subarray(0, SIGNALING.NONCE_BYTES),
    );
  /**
   * Host header values, one string shared by every connection that sent it (the audience check
   * reads it at REGISTER): a deployment has a few names, so idle connections do not each keep a
   * copy. Bounded (MAX_HOSTS values of a host name's length at most): others are kept by their
   * connection as before.
   */
  const hosts = new Map<string, string>();
  function internHost(host: string | undefined): string | undefined {
    if (host === undefined) return undefined;
    const known = hosts.get(host);
    if (known !== undefined) return known;
    // A host name and port fit in 261 characters; longer values are not worth keeping for others.
    if (hosts.size < MAX_HOSTS && host.length <= 261) hosts.set(host, host);
    return host;
  }
  let closing = false;
  let closePromise: Promise<void> | undefined;

  const updateGauges = () => {
    metrics.connections.set(conns.size);
    metrics.registrations.set(registry.size);
    metrics.subscriptions.set(registry.subscriptions);
  };

  // ---- who sees whom (docs/protocol/signaling.md, "Privacy of presence and last-seen") -------

  /** Whether `viewer` may see registration `r`: public, or `viewer` is registered as one it watches. */
  function visible(r: Registration<Conn>, viewer: Conn): boolean {
    const allowed = r.conn.visibleTo;
    return allowed === undefined || (viewer.reg !== undefined && allowed.has(viewer.reg.keyHex));
  }

  function shownOnline(viewer: Conn, keyHex: string): boolean {
    if (shared) {
      // The watched key's state as Redis last told this instance (every watched key has one).
      const state = shared.state(keyHex);
      if (!state?.online) return false;
      return (
        state.visibleTo === undefined || (viewer.reg !== undefined && state.visibleTo.has(viewer.reg.keyHex))
      );
    }
    const r = registry.get(keyHex);
    return r !== undefined && !r.conn.closed && visible(r, viewer);
  }

  /**
   * The states a SUBSCRIBE answers with, one per key `conn` now watches, each kept in `shown` as
   * what `conn` was told (refresh pushes only what differs from it).
   */
  function tellStates(conn: Conn, next: ReadonlyMap<string, Uint8Array<ArrayBuffer>>) {
    if (next.size === 0) return [];
    conn.shown ??= new Map();
    const shown = conn.shown;
    return [...next].map(([keyHex, key]) => {
      const online = shownOnline(conn, keyHex);
      shown.set(keyHex, online);
      return { key, online };
    });
  }

  /** Push `keyHex`'s state to `viewer` if it watches it and it changed from what it was told. */
  function refresh(viewer: Conn, keyHex: string, key: Uint8Array): void {
    if (viewer.closed || !viewer.watching.has(keyHex)) return;
    const online = shownOnline(viewer, keyHex);
    if ((viewer.shown?.get(keyHex) ?? false) === online) return;
    viewer.shown ??= new Map();
    viewer.shown.set(keyHex, online);
    send(viewer, { t: "PRESENCE", peers: [{ key: key as Uint8Array<ArrayBuffer>, online }] });
  }

  /** `conn`'s own view changed (it registered or unregistered): re-check what it watches. */
  function refreshViewer(conn: Conn): void {
    if (shared) {
      for (const keyHex of conn.watching) refresh(conn, keyHex, fromHex(keyHex));
      return;
    }
    for (const keyHex of conn.watching) {
      const r = registry.get(keyHex);
      if (r) refresh(conn, keyHex, r.key);
      else if (conn.shown?.get(keyHex)) refresh(conn, keyHex, fromHex(keyHex));
    }
  }

  /** Who may see `reg` changed: re-check everyone watching it. */
  function refreshWatchers(reg: Registration<Conn>): void {
    // Shared: Redis's change event reaches every instance's watchers, this one's included.
    if (shared) return;
    for (const viewer of registry.watchersOf(reg.keyHex)) refresh(viewer, reg.keyHex, reg.key);
  }

  // ---- sending -------------------------------------------------------------------------------

  function send(conn: Conn, message: ServerMessage): void {
    if (conn.closed || conn.ws.readyState !== conn.ws.OPEN) return;
    if (conn.ws.bufferedAmount > maxBuffered) {
      // A reader that does not keep up is dropped rather than buffered without bound.
      closeConn(conn, CLOSE.TRY_AGAIN_LATER, "slow consumer");
      return;
    }
    conn.ws.send(serverCodec.encode(message));
  }

  function fail(conn: Conn, id: number | undefined, code: SignalingErrorCode, message: string): void {
    metrics.errors.inc({ code });
    send(conn, id === undefined ? { t: "ERROR", code, message } : { t: "ERROR", id, code, message });
  }

  function closeConn(conn: Conn, code: number, reason: string): void {
    if (conn.closed) return;
    log.debug({ conn: conn.id, code }, "closing connection");
    conn.ws.close(code, reason);
  }

  // ---- registration bookkeeping --------------------------------------------------------------

  /**
   * `conn` is no longer registered. Shared: its registration leaves Redis too unless `moved`
   * (another connection, maybe on another instance, holds it now).
   */
  function unbind(conn: Conn, moved = false): Registration<Conn> | undefined {
    const reg = conn.reg;
    if (!reg) return undefined;
    conn.reg = undefined;
    if (!conn.closed) queueMicrotask(() => refreshViewer(conn));
    conn.publicKey = undefined;
    if (conn.envelopeNonces) nonceBudget.release(conn.envelopeNonces);
    conn.envelopeNonces = undefined;
    conn.source.registrations--;
    leaveRooms(conn, reg);
    if (shared && !moved) track(sharedRemove(reg.keyHex, conn.id));
    return reg;
  }

  /** Remove a registration from Redis; one Redis cannot take now is remembered for later. */
  async function sharedRemove(keyHex: string, connId: number): Promise<void> {
    try {
      await shared!.remove(keyHex, connId);
      if (orphans.get(keyHex) === connId) orphans.delete(keyHex);
    } catch {
      orphans.set(keyHex, connId);
    }
  }

  /** Leave a room in Redis; a leave Redis cannot take now is remembered for later (else a ghost member). */
  async function sharedRoomLeave(
    room: string,
    keyHex: string,
    connId: number,
  ): Promise<RoomPeer[] | undefined> {
    const id = `${room}|${keyHex}`;
    try {
      const others = await shared!.roomLeave(room, keyHex, connId);
      if (roomOrphans.get(id) === connId) roomOrphans.delete(id);
      return others;
    } catch (e) {
      roomOrphans.set(id, connId);
      throw e;
    }
  }

  function track(p: Promise<unknown>): void {
    const safe = p.catch((e) => log.warn({ err: (e as Error).message }, "shared state update failed"));
    inFlight.add(safe);
    void safe.finally(() => inFlight.delete(safe));
  }

  /** `conn` (registered as `reg`) is no longer present in any room: the others are told. */
  function leaveRooms(conn: Conn, reg: Registration<Conn>): void {
    if (conn.rooms) for (const room of [...conn.rooms]) leaveRoom(conn, reg, room);
  }

  function leaveRoom(conn: Conn, reg: Registration<Conn>, room: string): void {
    const key = reg.key as Uint8Array<ArrayBuffer>;
    const roomBytes = fromHex(room) as Uint8Array<ArrayBuffer>;
    if (shared) {
      conn.rooms?.delete(room);
      track(
        sharedRoomLeave(room, reg.keyHex, conn.id).then((others) => {
          if (others) pushRoomPresence(others, roomBytes, key, false);
        }),
      );
      return;
    }
    for (const other of rooms.leave(room, reg.keyHex, conn))
      send(other.conn, { t: "ROOM_PRESENCE", room: roomBytes, key, present: false });
  }

  /** ROOM_PRESENCE to room members wherever they are connected: here directly, elsewhere by Redis. */
  function pushRoomPresence(
    others: readonly RoomPeer[],
    room: Uint8Array,
    key: Uint8Array,
    present: boolean,
  ): void {
    const byInstance = new Map<string, number[]>();
    for (const o of others) {
      const list = byInstance.get(o.owner.inst) ?? [];
      list.push(o.owner.conn);
      byInstance.set(o.owner.inst, list);
    }
    const roomBytes = room as Uint8Array<ArrayBuffer>;
    const keyBytes = key as Uint8Array<ArrayBuffer>;
    for (const [inst, c] of byInstance) {
      const m: InstanceMessage = { t: "ROOM", c, room: roomBytes, key: keyBytes, present };
      if (inst === shared?.inst) onInstanceMessage(m);
      else track(shared!.send(inst, m));
    }
  }

  /** What another instance (or this one's reaper) tells a connection held here. */
  function onInstanceMessage(m: InstanceMessage) {
    const conn = connsById.get(typeof m.c === "number" ? m.c : -1);
    switch (m.t) {
      case "SIGNAL": {
        // Untrusted bytes from Redis: forwarded only if they are a SIGNAL to this connection's identity.
        const frame = serverCodec.decode(m.frame);
        if (!conn?.reg || !frame.ok || frame.value.t !== "SIGNAL") return;
        if (toHex(frame.value.envelope.to) !== conn.reg.keyHex) return;
        send(conn, frame.value);
        metrics.envelopesForwarded.inc({ kind: frame.value.envelope.kind });
        return;
      }
      case "REPLACED": {
        // A move older than this connection's own latest REGISTER is stale: that REGISTER won.
        if (!conn?.reg || conn.reg.keyHex !== toHex(m.key) || m.q < conn.sharedQ) return;
        const reg = unbind(conn, true);
        if (reg) registry.remove(reg);
        updateGauges();
        return send(conn, { t: "REGISTRATION_ENDED", reason: "replaced" });
      }
      case "ROOM_MOVED":
        conn?.rooms?.delete(toHex(m.room));
        return;
      case "ROOM": {
        const room = toHex(m.room);
        for (const c of m.c) {
          const member = connsById.get(c);
          if (member?.reg && member.rooms?.has(room))
            send(member, {
              t: "ROOM_PRESENCE",
              room: m.room as Uint8Array<ArrayBuffer>,
              key: m.key as Uint8Array<ArrayBuffer>,
              present: m.present,
            });
        }
        return;
      }
    }
  }

  /**
   * Redis lost this instance's registrations (it reaped us while we were cut off, or it came back
   * empty): put back every live one that no other connection took meanwhile, with its rooms, and
   * retry the removals it missed.
   */
  async function resync(): Promise<void> {
    if (!shared) return;
    for (const [keyHex, connId] of [...orphans]) await sharedRemove(keyHex, connId);
    for (const [id, connId] of [...roomOrphans]) {
      const [room = "", keyHex = ""] = id.split("|");
      // Joined again on that connection since: present after all.
      if (connsById.get(connId)?.rooms?.has(room)) {
        roomOrphans.delete(id);
        continue;
      }
      try {
        const others = await sharedRoomLeave(room, keyHex, connId);
        if (others) pushRoomPresence(others, fromHex(room), fromHex(keyHex), false);
      } catch (e) {
        log.warn({ err: (e as Error).message }, "resync stopped; Redis unreachable again");
        return;
      }
    }
    for (const conn of conns) {
      const reg = conn.reg;
      if (!reg || conn.closed) continue;
      try {
        const reply = await shared.register({
          keyHex: reg.keyHex,
          conn: conn.id,
          version: reg.version,
          identity: reg.identity,
          now: reg.lastSeen,
          expiresAt: reg.expiresAt,
          maxRegistrations: config.maxRegistrations,
          visibleTo: conn.visibleTo,
          onlyIfFree: true,
        });
        if (reply.status === "TAKEN") {
          onInstanceMessage({
            t: "REPLACED",
            c: conn.id,
            key: reg.key as Uint8Array<ArrayBuffer>,
            q: Number.MAX_SAFE_INTEGER,
          });
          continue;
        }
        for (const room of conn.rooms ?? NONE) {
          const joined = await shared.roomJoin({
            room,
            keyHex: reg.keyHex,
            conn: conn.id,
            max: config.maxRoomMembers,
            maxMembers: config.maxRoomMembers,
            maxRooms: config.maxRooms,
          });
          if (joined.status === "OK" && joined.fresh)
            pushRoomPresence(joined.others, fromHex(room), reg.key, true);
        }
      } catch (e) {
        log.warn({ err: (e as Error).message }, "resync stopped; Redis unreachable again");
        return;
      }
    }
  }

  function onExpired(reg: Registration<Conn>): void {
    const conn = reg.conn;
    if (conn.reg === reg) unbind(conn);
    metrics.expired.inc();
    send(conn, { t: "REGISTRATION_ENDED", reason: "expired" });
  }

  // ---- message handlers ----------------------------------------------------------------------

  /**
   * Run signature work charged to `conn`'s source: refused (false) without doing it when the
   * source is over its budget; otherwise the fixed cost of what `work` reports it did
   * (VERIFY_COST_MS) is charged afterwards.
   */
  function verifyCharged<T>(
    conn: Conn,
    work: () => { value: T; costMs: number },
  ): { ran: false } | { ran: true; value: T } {
    const src = conn.source.key;
    if (conn.source.cpu.overdrawn(0, now()) || (src !== undefined && sharedLimits?.over(src, "c", now()))) {
      metrics.rateLimited.inc({ scope: "cpu" });
      return { ran: false };
    }
    const started = performance.now();
    const { value, costMs } = work();
    conn.source.cpu.charge(costMs, now());
    if (src !== undefined) sharedLimits?.spend(src, "c", Math.ceil(costMs * 1000), now());
    // The metric is what it really took (wall time), for operators; the budget is not.
    metrics.verifySeconds.inc((performance.now() - started) / 1000);
    return { ran: true, value };
  }

  // Checks in order of cost (docs/protocol/signaling.md, REGISTER_REQUEST): everything that needs
  // no cryptography first, then the source's CPU budget, then native signature verification.
  function onRegister(conn: Conn, req: RegisterRequest) {
    const t = now();
    const refuse = (code: SignalingErrorCode, message: string) => {
      metrics.registersTotal.inc({ outcome: "refused" });
      fail(conn, req.id, code, message);
    };
    if (Math.abs(t - req.timestamp) > skewMs)
      return refuse(
        "STALE_TIMESTAMP",
        `timestamp is more than ${config.clockSkewSeconds} s from server time`,
      );
    if (!equalBytes(req.nonce, challengeOf(conn)))
      return refuse("BAD_CHALLENGE", "nonce is not this connection's CHALLENGE");
    if (req.timestamp <= conn.lastRegisterAt)
      return refuse("REPLAY", "timestamp not after the last REGISTER on this connection");
    if (!audienceAccepted(req.audience, conn.host, config.audience))
      return refuse("WRONG_AUDIENCE", "the request does not name this server as its audience");
    type Checked = ReturnType<IdentityCache["check"]> | { readonly ok: false; readonly signature: true };
    const verified = verifyCharged<Checked>(conn, () => {
      const identity = identities.check(req.identity);
      const costMs =
        identity.ok && identity.cached ? VERIFY_COST_MS.signature : VERIFY_COST_MS.firstSeenIdentity;
      if (!identity.ok) return { value: identity, costMs };
      const value = registerSignatureValid(identity.value, req)
        ? identity
        : ({ ok: false, signature: true } as const);
      return { value, costMs };
    });
    if (!verified.ran)
      return refuse("BUSY", "this network address used its verification budget; retry in a few seconds");
    const result = verified.value;
    if (!result.ok)
      return "signature" in result
        ? refuse("BAD_SIGNATURE", "REGISTER signature does not verify under the identity key")
        : refuse("BAD_IDENTITY", result.error.message.slice(0, 200));
    conn.lastRegisterAt = req.timestamp;
    const { key, version, publicKey } = result.value;
    const keyHex = toHex(key);
    if (conn.reg && conn.reg.keyHex !== keyHex)
      return refuse("ALREADY_REGISTERED", "this connection is bound to another identity");
    if (shared) return registerShared(conn, req, t, keyHex, version, publicKey, refuse);
    const existing = registry.get(keyHex);
    if (existing && existing.version > version)
      return refuse("STALE_IDENTITY", "a higher identity version is registered");
    if (!existing && registry.size >= config.maxRegistrations)
      return refuse("REGISTRY_FULL", "the server holds its maximum number of registrations");
    const movesHere = existing?.conn !== conn;
    if (movesHere && conn.source.registrations >= config.maxRegistrationsPerSource)
      return refuse("SOURCE_LIMIT", "too many registrations from this network address");

    const ttl = Math.min(config.ttlMaxSeconds, Math.max(config.ttlMinSeconds, req.ttl_seconds));
    const expiresAt = t + ttl * 1000;
    const { registration, replaced, fresh } = registry.upsert(key, {
      identity: req.identity.slice(),
      version,
      conn,
      now: t,
      expiresAt,
    });
    if (replaced) {
      if (replaced.reg === registration) unbind(replaced);
      send(replaced, { t: "REGISTRATION_ENDED", reason: "replaced" });
    }
    if (movesHere) {
      conn.reg = registration;
      conn.source.registrations++;
      conn.envelopeNonces = new RecentNonces(ENVELOPE_NONCES_PER_SENDER, nonceBudget);
      // As a viewer it now has a key; as a target its visibility is now this connection's.
      refreshViewer(conn);
      refreshWatchers(registration);
    }
    conn.publicKey = publicKey;
    metrics.registersTotal.inc({ outcome: fresh ? "new" : replaced ? "replaced" : "renewed" });
    updateGauges();
    sendRegistered(conn, req, t, expiresAt, ttl);
  }

  /**
   * REGISTER's success (local or shared): the credentials go first: a client dials as soon as it
   * learns it is registered, and a connection made before they arrived would have no TURN server
   * (no path at all when the user chose relay-only).
   */
  function sendRegistered(conn: Conn, req: RegisterRequest, t: number, expiresAt: number, ttl: number): void {
    const response: ServerMessage = {
      t: "REGISTER_RESPONSE",
      success: true,
      expires_at: expiresAt,
      renewal_interval: Math.max(1, Math.floor(ttl / 2)),
    };
    if (req.id !== undefined) response.id = req.id;
    pushIceServers(conn, t);
    send(conn, response);
  }

  /**
   * REGISTER's last steps with --redis: the identity-version, total-capacity and move checks are
   * made in Redis, atomically with the write (signaling/redis-state.ts `register`); the
   * connection it moved from, here or on another instance, is told "replaced".
   */
  async function registerShared(
    conn: Conn,
    req: RegisterRequest,
    t: number,
    keyHex: string,
    version: number,
    publicKey: KeyObject,
    refuse: (code: SignalingErrorCode, message: string) => void,
  ): Promise<void> {
    if (conn.reg === undefined && conn.source.registrations >= config.maxRegistrationsPerSource)
      return refuse("SOURCE_LIMIT", "too many registrations from this network address");
    const ttl = Math.min(config.ttlMaxSeconds, Math.max(config.ttlMinSeconds, req.ttl_seconds));
    const expiresAt = t + ttl * 1000;
    const reply = await shared!.register({
      keyHex,
      conn: conn.id,
      version,
      identity: req.identity,
      now: t,
      expiresAt,
      maxRegistrations: config.maxRegistrations,
      visibleTo: conn.visibleTo,
    });
    if (reply.status === "STALE") return refuse("STALE_IDENTITY", "a higher identity version is registered");
    if (reply.status === "FULL")
      return refuse("REGISTRY_FULL", "the server holds its maximum number of registrations");
    if (reply.status !== "OK") return refuse("INTERNAL", "internal error");
    // Closed while Redis answered: nobody is there to hold it.
    if (conn.closed) return track(sharedRemove(keyHex, conn.id));
    // Judged now, not before Redis answered: a move elsewhere may have unbound a renewing
    // connection meanwhile, and this later REGISTER wins it back.
    const movesHere = conn.reg === undefined;
    const { registration, replaced } = registry.upsert(fromHex(keyHex), {
      identity: req.identity.slice(),
      version,
      conn,
      now: t,
      expiresAt,
    });
    if (replaced) {
      if (replaced.reg === registration) unbind(replaced, true);
      send(replaced, { t: "REGISTRATION_ENDED", reason: "replaced" });
    }
    const previous = reply.previous;
    if (previous && previous.inst !== shared!.inst)
      track(
        shared!.send(previous.inst, { t: "REPLACED", c: previous.conn, key: registration.key, q: reply.q }),
      );
    if (movesHere) {
      conn.reg = registration;
      conn.source.registrations++;
      conn.envelopeNonces = new RecentNonces(ENVELOPE_NONCES_PER_SENDER, nonceBudget);
      refreshViewer(conn);
    }
    conn.publicKey = publicKey;
    conn.sharedQ = reply.q;
    const renewed = previous !== undefined && previous.inst === shared!.inst && previous.conn === conn.id;
    metrics.registersTotal.inc({
      outcome: previous === undefined ? "new" : renewed ? "renewed" : "replaced",
    });
    updateGauges();
    sendRegistered(conn, req, t, expiresAt, ttl);
  }

  /**
   * After a REGISTER (first or renewal): the operator's STUN/TURN servers with fresh TURN
   * credentials, when the connection holds none or half their lifetime has passed. Renewals come
   * at half the granted TTL (≤ ttlMaxSeconds / 2: 150 s by default) and credentials live ≥ 600 s,
   * so while --turn-ttl exceeds --signal-ttl-max a registered client never holds expired ones.
   */
  function pushIceServers(conn: Conn, t: number) {
    // The tag exists once a REGISTER verified here (signaling/conn.ts), as it has by now.
    const tag = conn.turnTag;
    if (tag === undefined || !needsIceRenewal(turn, conn.iceUntil, t)) return;
    const issued = issueIceServers(turn, tag, t);
    if (!issued) return;
    conn.iceUntil = issued.expiresAt;
    send(conn, { t: "ICE_SERVERS", servers: issued.servers, expires_at: issued.expiresAt });
  }

  function onMessage(conn: Conn, msg: ClientMessage) {
    switch (msg.t) {
      case "REGISTER_REQUEST":
        return onRegister(conn, msg);
      case "UNREGISTER": {
        if (shared && conn.reg) {
          // The reply says it is gone everywhere, so this one waits for Redis.
          const reg = unbind(conn, true)!;
          registry.remove(reg);
          updateGauges();
          return shared.remove(reg.keyHex, conn.id).then(
            () => send(conn, { t: "UNREGISTER_RESPONSE", id: msg.id }),
            (e: unknown) => {
              orphans.set(reg.keyHex, conn.id);
              throw e;
            },
          );
        }
        const reg = unbind(conn);
        if (reg) registry.remove(reg);
        updateGauges();
        return send(conn, { t: "UNREGISTER_RESPONSE", id: msg.id });
      }
      case "LOOKUP_REQUEST": {
        if (shared) return lookupShared(conn, msg);
        const t = now();
        let regs: Registration<Conn>[] = [];
        if (msg.target_identity) {
          const r = registry.get(toHex(msg.target_identity));
          if (r && visible(r, conn)) regs = [r];
        } else {
          if (!config.listAll)
            return fail(conn, msg.id, "LIST_ALL_DISABLED", "this server does not list peers");
          // Bounded by count and by one frame (identities are up to 32 KiB each).
          let bytes = 64;
          for (const r of registry.list(config.listAllMax)) {
            if (!visible(r, conn)) continue;
            bytes += r.identity.length + 96;
            if (bytes > LOOKUP_BUDGET_BYTES) break;
            regs.push(r);
          }
        }
        const peers: PeerInfo[] = regs.map((r) => {
          // Whole minutes: enough to say "recently", not a log of someone's activity.
          const lastSeen = Math.min(r.lastSeen, t);
          const info: PeerInfo = {
            identity: r.identity,
            last_seen: lastSeen - (lastSeen % LAST_SEEN_GRANULARITY_MS),
            online: true,
          };
          if (endpoint) info.endpoint = endpoint;
          return info;
        });
        return send(conn, { t: "LOOKUP_RESPONSE", id: msg.id, peers });
      }
      case "LIST_SERVERS_REQUEST":
        return send(conn, {
          t: "LIST_SERVERS_RESPONSE",
          id: msg.id,
          servers: config.servers,
          timestamp: now(),
        });
      case "SIGNAL": {
        const e = msg.envelope;
        if (!conn.reg) return fail(conn, msg.id, "NOT_REGISTERED", "REGISTER before sending envelopes");
        if (toHex(e.from) !== conn.reg.keyHex)
          return fail(
            conn,
            msg.id,
            "FROM_MISMATCH",
            "`from` is not the identity registered on this connection",
          );
        if (e.payload.length > config.maxPayloadBytes)
          return fail(conn, msg.id, "PAYLOAD_TOO_LARGE", `payload exceeds ${config.maxPayloadBytes} bytes`);
        const t = now();
        if (Math.abs(t - e.timestamp) > skewMs)
          return fail(conn, msg.id, "STALE_TIMESTAMP", "envelope timestamp outside the accepted clock skew");
        const nonceHex = toHex(e.nonce);
        if (conn.envelopeNonces?.has(nonceHex, t))
          return fail(conn, msg.id, "REPLAY", "this envelope nonce was already used");
        const checked = verifyCharged(conn, () => ({
          value: envelopeValid(conn, e),
          costMs: VERIFY_COST_MS.signature,
        }));
        if (!checked.ran) return fail(conn, msg.id, "BUSY", "verification budget used; retry shortly");
        if (!checked.value)
          return fail(conn, msg.id, "BAD_SIGNATURE", "envelope signature does not verify under `from`");
        conn.envelopeNonces?.add(nonceHex, t, t + 2 * skewMs);
        if (shared) return signalShared(conn, msg.id, e, nonceHex);
        const target = registry.get(toHex(e.to));
        // One that does not show itself to the sender is offline to it, not "refusing".
        if (!target || target.conn.closed || !(visible(target, conn) || rooms.together(target.conn, conn)))
          return fail(conn, msg.id, "PEER_OFFLINE", "the recipient is not online here");
        send(target.conn, { t: "SIGNAL", envelope: e });
        metrics.envelopesForwarded.inc({ kind: e.kind });
        return send(conn, { t: "SIGNAL_ACK", id: msg.id });
      }
      case "ROOM_JOIN": {
        const reg = conn.reg;
        if (!reg) return fail(conn, msg.id, "NOT_REGISTERED", "REGISTER before joining a room");
        conn.joinBucket ??= new TokenBucket(config.roomJoinRate, 5 * config.roomJoinRate, now());
        if (!conn.joinBucket.take(1, now())) {
          metrics.rateLimited.inc({ scope: "room" });
          return fail(conn, msg.id, "RATE_LIMITED", "too many room joins; slow down");
        }
        const room = toHex(msg.room);
        if (shared) return roomJoinShared(conn, reg, msg.id, msg.room, room, msg.max);
        const joined = rooms.join(room, reg.keyHex, reg.key as Uint8Array<ArrayBuffer>, conn, msg.max);
        if (!joined.ok) return fail(conn, msg.id, joined.code, ROOM_REFUSALS[joined.code]);
        if (joined.fresh)
          for (const other of joined.others)
            send(other.conn, {
              t: "ROOM_PRESENCE",
              room: msg.room,
              key: reg.key as Uint8Array<ArrayBuffer>,
              present: true,
            });
        return send(conn, {
          t: "ROOM_MEMBERS",
          id: msg.id,
          room: msg.room,
          members: joined.others.map((p) => p.key),
        });
      }
      case "ROOM_LEAVE": {
        if (conn.reg) leaveRoom(conn, conn.reg, toHex(msg.room));
        return send(conn, { t: "ROOM_LEAVE_RESPONSE", id: msg.id });
      }
      case "SUBSCRIBE": {
        const next = new Map<string, Uint8Array<ArrayBuffer>>();
        for (const k of msg.keys) next.set(toHex(k), k);
        if (next.size > config.maxSubscriptions)
          return fail(conn, msg.id, "TOO_MANY_SUBSCRIPTIONS", `at most ${config.maxSubscriptions} keys`);
        if (shared) return subscribeShared(conn, msg.id, next, msg.only_watched === true);
        registry.watch(conn, conn.watching, next);
        conn.watching = next.size > 0 ? new Set(next.keys()) : NONE;
        conn.shown = keepShown(conn.shown, next);
        const states = tellStates(conn, next);
        const visibleTo = msg.only_watched ? new Set(next.keys()) : undefined;
        const changed = !sameVisibility(visibleTo, conn.visibleTo);
        conn.visibleTo = visibleTo;
        if (changed && conn.reg) refreshWatchers(conn.reg);
        updateGauges();
        return send(conn, { t: "PRESENCE", id: msg.id, peers: states });
      }
    }
  }

  // ---- the same requests with --redis (signaling/redis-state.ts) ------------------------------

  async function lookupShared(
    conn: Conn,
    msg: Extract<ClientMessage, { t: "LOOKUP_REQUEST" }>,
  ): Promise<void> {
    if (!msg.target_identity && !config.listAll)
      return fail(conn, msg.id, "LIST_ALL_DISABLED", "this server does not list peers");
    const rows = await shared!.lookup(
      msg.target_identity ? toHex(msg.target_identity) : undefined,
      conn.reg?.keyHex,
      config.listAllMax,
      MAX_IDENTITY_BYTES,
    );
    const t = now();
    const peers: PeerInfo[] = [];
    let bytes = 64;
    for (const r of rows) {
      bytes += r.identity.length + 96;
      if (bytes > LOOKUP_BUDGET_BYTES) break;
      const lastSeen = Math.min(r.lastSeen, t);
      const info: PeerInfo = {
        identity: r.identity,
        last_seen: lastSeen - (lastSeen % LAST_SEEN_GRANULARITY_MS),
        online: true,
      };
      if (endpoint) info.endpoint = endpoint;
      peers.push(info);
    }
    send(conn, { t: "LOOKUP_RESPONSE", id: msg.id, peers });
  }

  /**
   * SIGNAL's last steps with --redis: the nonce is checked and used in Redis (a nonce used on
   * another instance is a REPLAY here), the recipient found wherever it is connected, and the
   * envelope handed to its instance. SIGNAL_ACK then means "handed to the recipient's instance".
   */
  async function signalShared(conn: Conn, id: number | undefined, e: SignalEnvelope, nonceHex: string) {
    const fromHex = conn.reg!.keyHex;
    const toHexKey = toHex(e.to);
    const reply = await shared!.signal({
      fromHex,
      toHex: toHexKey,
      nonceHex,
      ttlMs: 2 * skewMs,
      conn: conn.id,
      rooms: conn.rooms ?? NONE,
    });
    if (reply.status === "REPLAY") return fail(conn, id, "REPLAY", "this envelope nonce was already used");
    const offline = () => fail(conn, id, "PEER_OFFLINE", "the recipient is not online here");
    if (reply.status !== "OK") return offline();
    if (reply.to.inst === shared!.inst) {
      const target = connsById.get(reply.to.conn);
      if (!target || target.closed || target.reg?.keyHex !== toHexKey) return offline();
      send(target, { t: "SIGNAL", envelope: e });
      metrics.envelopesForwarded.inc({ kind: e.kind });
    } else {
      const frame = serverCodec.encode({ t: "SIGNAL", envelope: e }) as Uint8Array<ArrayBuffer>;
      if (!(await shared!.send(reply.to.inst, { t: "SIGNAL", c: reply.to.conn, frame }))) return offline();
    }
    send(conn, { t: "SIGNAL_ACK", id });
  }

  async function roomJoinShared(
    conn: Conn,
    reg: Registration<Conn>,
    id: number | undefined,
    roomBytes: Uint8Array<ArrayBuffer>,
    room: string,
    max: number,
  ): Promise<void> {
    const wasIn = conn.rooms?.has(room) ?? false;
    if (!wasIn && (conn.rooms?.size ?? 0) >= config.maxRoomsPerConnection)
      return fail(conn, id, "TOO_MANY_ROOMS", ROOM_REFUSALS.TOO_MANY_ROOMS);
    // Counted as present before Redis answers, so pushes for the room already reach it.
    conn.rooms ??= new Set();
    conn.rooms.add(room);
    let joined: Awaited<ReturnType<SharedSignaling["roomJoin"]>>;
    try {
      joined = await shared!.roomJoin({
        room,
        keyHex: reg.keyHex,
        conn: conn.id,
        max,
        maxMembers: config.maxRoomMembers,
        maxRooms: config.maxRooms,
      });
    } catch (e) {
      if (!wasIn) conn.rooms?.delete(room);
      throw e;
    }
    if (joined.status !== "OK") {
      if (!wasIn) conn.rooms?.delete(room);
      return fail(conn, id, joined.status, ROOM_REFUSALS[joined.status]);
    }
    // Closed or unregistered meanwhile: it is not present after all.
    if (conn.reg !== reg) return track(sharedRoomLeave(room, reg.keyHex, conn.id));
    const previous = joined.previous;
    if (previous && previous.inst === shared!.inst) connsById.get(previous.conn)?.rooms?.delete(room);
    else if (previous)
      track(shared!.send(previous.inst, { t: "ROOM_MOVED", c: previous.conn, room: roomBytes }));
    if (joined.fresh) pushRoomPresence(joined.others, roomBytes, reg.key, true);
    send(conn, { t: "ROOM_MEMBERS", id, room: roomBytes, members: joined.others.map((p) => p.key) });
  }

  async function subscribeShared(
    conn: Conn,
    id: number | undefined,
    next: Map<string, Uint8Array<ArrayBuffer>>,
    onlyWatched: boolean,
  ): Promise<void> {
    const added = [...next.keys()].filter((k) => !conn.watching.has(k));
    const removed = [...conn.watching].filter((k) => !next.has(k));
    // Who may see this connection's registration is its own setting, in force at once even if
    // Redis fails below: a REGISTER that follows is never public by accident (it is written to
    // Redis with it; a registration already there gets it below, or at the resync after an outage).
    const visibleTo = onlyWatched ? new Set(next.keys()) : undefined;
    const changed = !sameVisibility(visibleTo, conn.visibleTo);
    conn.visibleTo = visibleTo;
    // Subscribed to the added keys' changes and their states read before anything is answered.
    await shared!.watch(added, []);
    if (conn.closed) return shared!.unwatch(added);
    registry.watch(conn, conn.watching, next);
    shared!.unwatch(removed);
    conn.watching = next.size > 0 ? new Set(next.keys()) : NONE;
    conn.shown = keepShown(conn.shown, next);
    if (changed && conn.reg) await shared!.setVisibility(conn.reg.keyHex, conn.id, visibleTo);
    const states = tellStates(conn, next);
    updateGauges();
    send(conn, { t: "PRESENCE", id, peers: states });
  }

  /**
   * Requests of one connection are handled in order. Without Redis each is handled at once; with
   * it, one that waits for Redis holds the later ones in a bounded backlog (a SUBSCRIBE
   * `only_watched` must be in force before the REGISTER that follows it; docs/protocol/signaling.md).
   */
  function dispatch(conn: Conn, msg: ClientMessage) {
    if (conn.busy) {
      conn.backlog ??= [];
      if (conn.backlog.length >= MAX_BACKLOG) return fail(conn, msg.id, "RATE_LIMITED", "slow down");
      conn.backlog.push(msg);
      return;
    }
    let pending: unknown;
    try {
      pending = onMessage(conn, msg);
    } catch (e) {
      return failed(conn, msg, e);
    }
    if (!(pending instanceof Promise)) return;
    conn.busy = true;
    pending
      .catch((e: unknown) => failed(conn, msg, e))
      .finally(() => {
        conn.busy = false;
        while (!conn.busy && conn.backlog && conn.backlog.length > 0 && !conn.closed)
          dispatch(conn, conn.backlog.shift()!);
        if (conn.backlog?.length === 0) conn.backlog = undefined;
      });
  }

  function failed(conn: Conn, msg: ClientMessage, e: unknown) {
    if (e instanceof SharedStateUnavailable) {
      return fail(conn, msg.id, "UNAVAILABLE", UNAVAILABLE_MESSAGE);
    }
    // A bug must not take the process down; the peer gets a typed reply, the log a stack.
    log.error({ err: e, conn: conn.id }, "signaling handler failed");
    fail(conn, msg.id, "INTERNAL", "internal error");
  }

  function onFrame(conn: Conn, data: Buffer, isBinary: boolean) {
    if (conn.closed) return;
    conn.alive = true;
    if (!isBinary) return closeConn(conn, CLOSE.UNSUPPORTED_DATA, "binary frames only");
    const t = now();
    const src = conn.source.key;
    conn.bucket ??= new TokenBucket(config.connRate, config.connBurst, t);
    const scope = !conn.bucket.take(1, t)
      ? "connection"
      : !conn.source.messages.take(1, t) || (src !== undefined && sharedLimits?.over(src, "m", t))
        ? "source"
        : undefined;
    if (!scope && src !== undefined) sharedLimits?.spend(src, "m", 1, t);
    if (scope) {
      metrics.rateLimited.inc({ scope });
      if (++conn.violations > config.maxViolations) return closeConn(conn, CLOSE.RATE_LIMIT, "rate limit");
      // The first few refusals say so (decoding the frame for its id, so the client's request
      // fails at once); past that a flooding connection gets silence until it is closed — a
      // refusal must cost less than the request.
      if (!conn.hello || conn.violations > RATE_LIMIT_REPLIES) return;
      return fail(conn, clientCodec.decode(data).id, "RATE_LIMITED", "slow down");
    }
    if (!conn.hello) {
      const header = decodeVersionHeader(data, SIGNALING_VERSION);
      if (!header.ok)
        return header.error.code === "LOFT_ERR_UNSUPPORTED_VERSION"
          ? closeConn(
              conn,
              CLOSE.UNSUPPORTED_VERSION,
              "unsupported version; this server speaks signaling SREMP 1.1",
            )
          : closeConn(conn, CLOSE.VERSION_EXPECTED, "VERSION_HEADER expected first");
      conn.hello = true;
      return;
    }
    const decoded = clientCodec.decode(data);
    if (!decoded.ok)
      return fail(
        conn,
        decoded.id,
        signalingWireFor(decoded.error.code),
        decoded.error.message.slice(0, 200),
      );
    dispatch(conn, decoded.value);
  }

  function envelopeValid(conn: Conn, e: SignalEnvelope): boolean {
    return (
      conn.publicKey !== undefined &&
      ed25519Verify(
        conn.publicKey,
        signedBytes(SIGNALING.ENVELOPE_CONTEXT, envelopeSignedPayload(e)),
        e.signature,
      )
    );
  }

  const openings = new Deadlines<Conn>(config.helloTimeoutMs, (conn) => {
    if (!conn.hello && !conn.closed) closeConn(conn, CLOSE.HELLO_TIMEOUT, "no VERSION_HEADER");
  });

  function releaseUnupgraded(this: AdmittedSocket): void {
    const state = this[ADMITTED];
    this[ADMITTED] = undefined;
    if (state) sources.release(state);
  }

  function onSocketMessage(this: ConnSocket, data: Buffer, isBinary: boolean): void {
    const conn = this[CONN];
    if (!conn) return;
    try {
      onFrame(conn, data, isBinary);
    } catch (e) {
      // A bug must not take the process down; the peer gets a typed reply, the log a stack.
      log.error({ err: e, conn: conn.id }, "signaling handler failed");
      fail(conn, undefined, "INTERNAL", "internal error");
    }
  }

  function onSocketPong(this: ConnSocket): void {
    const conn = this[CONN];
    if (conn) conn.alive = true;
  }

  // ws answers each ping with a pong by itself: pings cost tokens like messages, and a client
  // that pings without reading is dropped once its unread output passes the limit.
  function onSocketPing(this: ConnSocket): void {
    const conn = this[CONN];
    if (!conn || conn.closed) return;
    conn.alive = true;
    if (this.bufferedAmount > maxBuffered) {
      closeConn(conn, CLOSE.TRY_AGAIN_LATER, "slow consumer");
      return;
    }
    const t = now();
    conn.bucket ??= new TokenBucket(config.connRate, config.connBurst, t);
    const scope = !conn.bucket.take(1, t)
      ? "connection"
      : !conn.source.messages.take(1, t)
        ? "source"
        : undefined;
    if (!scope) return;
    metrics.rateLimited.inc({ scope });
    if (++conn.violations > config.maxViolations) closeConn(conn, CLOSE.RATE_LIMIT, "rate limit");
  }

  function onSocketError(this: ConnSocket, e: Error): void {
    log.debug({ conn: this[CONN]?.id, code: (e as { code?: string }).code }, "socket error");
  }

  function onSocketClose(this: ConnSocket, code: number): void {
    const conn = this[CONN];
    if (!conn) return;
    conn.closed = true;
    const reg = unbind(conn);
    if (reg) registry.remove(reg);
    registry.unwatchAll(conn, conn.watching);
    shared?.unwatch(conn.watching);
    conn.watching = NONE;
    conn.backlog = undefined;
    conns.delete(conn);
    connsById.delete(conn.id);
    sources.release(conn.source);
    metrics.closes.inc({ code: String(code) });
    updateGauges();
    const waiter = closeWaiters.get(conn);
    if (waiter) {
      closeWaiters.delete(conn);
      waiter();
    }
  }

  function onConnection(ws: WebSocket, source: SourceState, host: string | undefined): void {
    const conn = new Conn(nextConnId++, ws, source, internHost(host), NONE);
    conns.add(conn);
    connsById.set(conn.id, conn);
    metrics.connectionsTotal.inc();
    updateGauges();
    // One timer for every connection still owing its VERSION_HEADER, and listeners shared by all
    // connections (`this` is the socket, the connection its CONN property): no closure and no
    // Timeout per connection (idle WebSockets are counted in bytes, bench/README.md "bench:scale").
    openings.add(conn);
    (ws as ConnSocket)[CONN] = conn;
    ws.on("message", onSocketMessage);
    ws.on("pong", onSocketPong);
    ws.on("ping", onSocketPing);
    ws.on("error", onSocketError);
    ws.on("close", onSocketClose);
    if (ws.readyState === ws.OPEN) {
      ws.send(encodeVersionHeader(SIGNALING_VERSION));
      ws.send(serverCodec.encode({ t: "CHALLENGE", challenge: challengeOf(conn) }));
    }
  }

  // ---- timers --------------------------------------------------------------------------------

  function heartbeat(): void {
    const t = now();
    for (const conn of conns) {
      // Buckets that refilled are forgotten: the next frame makes a full one, as they were.
      if (conn.bucket?.full(t)) conn.bucket = undefined;
      if (conn.joinBucket?.full(t)) conn.joinBucket = undefined;
      if (!conn.alive) {
        metrics.reaped.inc();
        log.debug({ conn: conn.id }, "heartbeat missed; terminating");
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      if (conn.ws.readyState === conn.ws.OPEN) conn.ws.ping();
    }
  }
  const heartbeatTimer = setInterval(heartbeat, config.heartbeatMs);
  heartbeatTimer.unref();

  const sweeper = setInterval(() => {
    const t = now();
    registry.sweep(t, onExpired);
    sources.sweep(t);
    sharedLimits?.sweep(t);
    updateGauges();
  }, config.sweepMs);
  sweeper.unref();

  // ---- HostedService -------------------------------------------------------------------------

  return {
    name: "signaling",
    path: "/signal",

    handleUpgrade(req, socket, head) {
      if (closing) {
        metrics.upgradesRefused.inc({ reason: "closing" });
        return refuseUpgrade(socket, 503, "Service Unavailable");
      }
      if (conns.size >= config.maxConnections) {
        metrics.upgradesRefused.inc({ reason: "capacity" });
        return refuseUpgrade(socket, 503, "Service Unavailable");
      }
      // One rule for relay and signaling while Redis is unreachable (docs/operations.md, "Redis
      // down: one rule"): no new WebSocket on an instance that can do nothing with it — the client
      // goes to its next server at once, a load balancer to another instance. Connections already
      // open stay, and their requests are answered UNAVAILABLE.
      if (shared && !shared.available()) {
        metrics.upgradesRefused.inc({ reason: "unavailable" });
        return refuseUpgrade(socket, 503, "Service Unavailable");
      }
      // Users may pick this server in another deployment's Settings, so pages of other origins
      // are accepted by default, but counted apart from this origin's own pages: a hostile page
      // cannot spend its visitors' budget here (docs/decisions.md, "The relay and signaling
      // accept pages of other origins, on a budget of their own").
      const ownPage = originAllowed(req, config.allowedOrigins);
      if (!ownPage && config.crossOriginPages === "refuse") {
        metrics.upgradesRefused.inc({ reason: "origin" });
        return refuseUpgrade(socket, 403, "Forbidden");
      }
      const t = now();
      const source = pageSourceKey(sourceOf(req, proxies), ownPage);
      const verdict = sharedLimits?.over(source, "u", t) ? "rate" : sources.admit(source, t);
      if (verdict !== "ok") {
        metrics.upgradesRefused.inc({ reason: verdict === "rate" ? "rate" : "source_connections" });
        if (verdict === "rate") metrics.rateLimited.inc({ scope: "upgrade" });
        return refuseUpgrade(socket, 429, "Too Many Requests");
      }
      const state = sources.get(source, t);
      state.key = source;
      sharedLimits?.spend(source, "u", 1, t);
      // Release the admission if the handshake fails before the callback (bad headers, reset):
      // one shared listener, the admission on the socket until the WebSocket takes it over.
      const admitted = socket as AdmittedSocket;
      admitted[ADMITTED] = state;
      socket.on("close", releaseUnupgraded);
      wss.handleUpgrade(req, socket, head, (ws) => {
        admitted[ADMITTED] = undefined;
        socket.removeListener("close", releaseUnupgraded);
        onConnection(ws, state, req.headers.host);
      });
    },

    health() {
      return {
        ...shared?.health(),
        accepting: !closing,
        connections: conns.size,
        registrations: registry.size,
        presence_subscriptions: registry.subscriptions,
        list_all: config.listAll,
      };
    },

    ready(ms) {
      return shared ? shared.ready(ms) : Promise.resolve(true);
    },

    heartbeat,

    unavailable() {
      return shared && !shared.available() ? "redis unreachable" : undefined;
    },

    stats() {
      return {
        connections: conns.size,
        registrations: registry.size,
        subscriptions: registry.subscriptions,
        identities: identities.size,
        sources: sources.size,
        envelopeNonces: nonceBudget.entries,
        rooms: rooms.size,
      };
    },

    close() {
      if (closePromise) return closePromise;
      closing = true;
      clearInterval(heartbeatTimer);
      openings.close();
      clearInterval(sweeper);
      clearInterval(limitsFlush);
      const open = [...conns];
      log.info({ connections: open.length, registrations: registry.size }, "signaling shutting down");
      const closed = open.map(
        (conn) =>
          new Promise<void>((resolve) => {
            if (conn.closed) return resolve();
            closeWaiters.set(conn, resolve);
            // Spread the reconnects of every client over a few seconds.
            const spread = config.reconnectSpreadMs;
            const reconnect = Math.floor(spread / 10 + Math.random() * (spread - spread / 10));
            send(conn, { t: "GOING_AWAY", reconnect_after_ms: reconnect });
            closeConn(conn, CLOSE.GOING_AWAY, "server shutting down; reconnect");
          }),
      );
      closePromise = (async () => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all(closed),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, config.shutdownGraceMs);
          }),
        ]);
        clearTimeout(timer);
        for (const conn of conns) conn.ws.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        // The closed connections' registrations leave Redis before we do (bounded: each
        // command times out), so other instances see them offline now rather than when reaped.
        if (shared) {
          await Promise.all(inFlight);
          await shared.close();
        }
      })();
      return closePromise;
    },
  };
}
