/**
 * Test and bench helpers: a real relay (host + service + LMDB in a temp dir) on 127.0.0.1:0, real
 * WebSocket clients, and a raw socket for sending hand-made frames. Nothing here is a mock.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import WebSocket from "ws";
import { encodeVersionHeader, type VersionHeader } from "../core/codec/version.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { LoftError } from "../core/errors.ts";
import { RelayClient, type RelayClientOptions } from "../core/relay/client.ts";
import { authenticateCommand, authPublicKey, deriveAuthKey, signCommand } from "../core/relay/crypto.ts";
import { RelayLink, type RelayLinkOptions } from "../core/relay/live-link.ts";
import {
  type Command,
  decodeServerFrame,
  encodeClientFrame,
  encodeCommand,
  RELAY_VERSION_AUTHENTICATOR,
  RELAY_VERSION_SIGNATURE,
  type RelayAuthMode,
  type ServerFrame,
} from "../core/relay/protocol.ts";
import { WebSocketLink } from "../core/relay/ws-link.ts";
import { createHost, type Host } from "../host/host.ts";
import { createLogger } from "../host/log.ts";
import { defaultRelayConfig, type RelayConfig } from "./config.ts";
import { createRelayService, type RelayService } from "./service.ts";
import { RedisStore } from "./store/redis.ts";
import type { RelayStore } from "./store/types.ts";

export interface TestRelay {
  url: string;
  port: number;
  dataDir: string;
  registry: Registry;
  service: RelayService;
  host: Host;
  /** Run one garbage collection now. */
  runGcForTest(): ReturnType<RelayService["runGc"]>;
  /** Close the relay (and remove its data dir unless `keep`). */
  close(keep?: boolean): Promise<void>;
}

/**
 * A monotonic clock for a test relay's rate buckets (`startTestRelay(…, { now: clock.now })`)
 * that the test stops and starts. Stopped, no connection's or source's bucket refills: how many
 * frames pass before RATE or SOURCE_RATE is exact, however slow the machine. Running, it advances with performance.now from
 * where it stopped (never backwards).
 */
export class StoppableClock {
  /** performance.now() minus this is the clock's time while running. */
  #lag = 0;
  #stoppedAt: number | undefined;

  readonly now = (): number => this.#stoppedAt ?? performance.now() - this.#lag;

  stop(): void {
    this.#stoppedAt ??= this.now();
  }

  run(): void {
    if (this.#stoppedAt === undefined) return;
    this.#lag = performance.now() - this.#stoppedAt;
    this.#stoppedAt = undefined;
  }
}

/**
 * The master key of a test data dir: the same for every restart on that dir in this process, and
 * handed to the relay in a key file of its own folder, apart from the data, as in production
 * (docs/operations-relay.md §Keys). The folder lives only while that relay runs.
 */
const masterKeys = new Map<string, Buffer>();
export function masterKeyFor(dataDir: string): Buffer {
  let key = masterKeys.get(dataDir);
  if (!key) {
    key = randomBytes(32);
    masterKeys.set(dataDir, key);
  }
  return key;
}

export async function startTestRelay(
  overrides: Partial<RelayConfig> = {},
  options: {
    clock?: () => number;
    /** Monotonic ms for every rate bucket, per connection and per source (default performance.now): `StoppableClock`. */
    now?: () => number;
    dataDir?: string;
    store?: (dataDir: string) => RelayStore;
    /** Listen on this port (a relay started again where its clients look for it); default: any. */
    port?: number;
  } = {},
): Promise<TestRelay> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "loft-relay-"));
  const keyDir = mkdtempSync(join(tmpdir(), "loft-relay-key-"));
  const masterKeyFile = join(keyDir, "master.key");
  writeFileSync(masterKeyFile, masterKeyFor(dataDir).toString("hex"), { mode: 0o600 });
  // Every test client comes from 127.0.0.1, one source: per-source rates are off unless a test
  // sets them (relay-ws/limits.test.ts; the abuse suite, test/abuse/relay.abuse.ts, runs the real
  // server with all its defaults); per-source connection caps stay.
  const config = defaultRelayConfig({
    dataDir,
    connectionsPerSecondPerSource: 0,
    sourceCostRate: 0,
    sourceStoreRate: 0,
    prekeyQueuePerHour: 0,
    prekeySourcePerHour: 0,
    masterKeyFile,
    ...overrides,
  });
  const registry = new Registry();
  const log = createLogger("relay-test", process.env.LOG_LEVEL ?? "warn");
  // LOFT_TEST_RELAY_REDIS=redis://…: the same tests against the Redis engine (a fresh key prefix
  // per relay), to check it keeps the embedded store's semantics (docs/operations.md).
  const redisUrl = process.env.LOFT_TEST_RELAY_REDIS;
  const redisStore =
    redisUrl && !options.store
      ? await RedisStore.open({
          url: redisUrl,
          masterKey: masterKeyFor(dataDir),
          // One prefix per data dir: a restart on the same dir finds its queues again.
          prefix: `test:${createHash("sha256").update(dataDir).digest("hex").slice(0, 12)}:`,
          keyEpochMs: config.keyEpochSeconds * 1000,
          quotaBytes: config.storeQuotaBytes,
          idleQueueMs: config.queueIdleDays * 86_400_000,
          hotBlockBytes: config.hotBlockBytes,
          ...(options.clock ? { clock: options.clock } : {}),
        })
      : undefined;
  // In-process tests read /metrics and the detailed /health on the relay's own port; every real
  // entry point serves them on a separate listener (relay-ws/main.ts, server/main.ts).
  const host = createHost({
    port: options.port ?? 0,
    host: "127.0.0.1",
    staticDir: undefined,
    registry,
    log,
    metrics: "public",
  });
  let service: RelayService;
  try {
    service = createRelayService(config, {
      registry,
      log,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.now ? { now: options.now } : {}),
      ...(options.store ? { store: options.store(dataDir) } : redisStore ? { store: redisStore } : {}),
    });
  } finally {
    rmSync(keyDir, { recursive: true, force: true }); // read once at start
  }
  host.mount(service);
  const port = await host.listen();
  return {
    url: `ws://127.0.0.1:${port}/relay`,
    port,
    dataDir,
    registry,
    service,
    host,
    runGcForTest: () => service.runGc(),
    async close(keep = false) {
      await host.close();
      if (!keep && !options.dataDir) {
        rmSync(dataDir, { recursive: true, force: true });
        masterKeys.delete(dataDir);
      }
    },
  };
}

/**
 * The relay's error code a command is refused with, or `resolved` when it succeeds; any other
 * failure is rethrown.
 */
export async function refusalCode(p: Promise<unknown>, resolved = "resolved"): Promise<string> {
  try {
    await p;
    return resolved;
  } catch (e) {
    if (e instanceof LoftError) return e.code;
    throw e;
  }
}

/** A test relay's counter `name`, summed over the series whose labels include `labels`. */
export async function relayCounter(
  r: TestRelay,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = r.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  return (await metric.get()).values
    .filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, string>)[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

/** Where a test connection comes from: a loopback source address, extra handshake headers. */
export interface ConnectFrom {
  /** 127.0.0.2 … 127.0.0.5: a different source for per-source limits. */
  localAddress?: string;
  /** e.g. `{ origin: "https://evil.example" }` or `{ "x-forwarded-for": "203.0.113.7" }`. */
  headers?: Record<string, string>;
}

const wsOptions = (from: ConnectFrom, maxPayload?: number): WebSocket.ClientOptions => ({
  perMessageDeflate: false,
  ...(maxPayload ? { maxPayload } : {}),
  ...(from.localAddress ? { localAddress: from.localAddress } : {}),
  ...(from.headers ? { headers: from.headers } : {}),
});

/** Open a WebSocket and run the relay opening; returns the client. */
export async function connectRelay(
  url: string,
  options: RelayClientOptions = {},
  from: ConnectFrom = {},
): Promise<RelayClient> {
  return (await connectRelayOver(url, options, from)).client;
}

/** connectRelay, also returning the WebSocket (to pause its TCP socket, for slow-reader tests). */
export async function connectRelayOver(
  url: string,
  options: RelayClientOptions = {},
  from: ConnectFrom = {},
): Promise<{ client: RelayClient; ws: WebSocket }> {
  const ws = new WebSocket(url, wsOptions(from));
  return { client: await RelayClient.connect(new WebSocketLink(ws), options), ws };
}

/**
 * The HTTP status of an upgrade attempt: 101 when the relay accepts (the socket is closed again),
 * or the refusal status (429, 403, 503).
 */
export function upgradeStatus(url: string, from: ConnectFrom = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, wsOptions(from));
    ws.once("open", () => {
      ws.terminate();
      resolve(101);
    });
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("error", (e) => reject(e));
  });
}

/** A WebSocket that speaks raw frames: for bad input, floods and fuzzing. */
export class RawSocket {
  readonly ws: WebSocket;
  readonly frames: Uint8Array[] = [];
  readonly #waiters: (() => void)[] = [];
  closeCode: number | undefined;
  closeReason = "";
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;

  constructor(url: string, from: ConnectFrom = {}) {
    this.ws = new WebSocket(url, wsOptions(from, 1 << 22));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("error", reject);
    });
    this.closed = new Promise((resolve) =>
      this.ws.once("close", (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        for (const w of this.#waiters.splice(0)) w();
        resolve();
      }),
    );
    this.ws.on("error", () => {});
    this.ws.on("message", (data) => {
      this.frames.push(new Uint8Array(data as Buffer));
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** The session id from HELLO (after `open` with the header). */
  sessionId: Uint8Array = new Uint8Array(32);
  /** Protocol 1.1: the relay's connection key from HELLO. */
  connectionKey: Uint8Array | undefined;

  /** Open with the 1.0 header (signatures) by default, or `"authenticator"` for 1.1. */
  static async open(
    url: string,
    withHeader = true,
    from: ConnectFrom = {},
    auth: RelayAuthMode = "signature",
    /** Another header than `auth`'s (1.2, 1.3). */
    header?: VersionHeader,
  ): Promise<RawSocket> {
    const s = new RawSocket(url, from);
    await s.opened;
    if (withHeader) {
      s.send(
        encodeVersionHeader(
          header ?? (auth === "authenticator" ? RELAY_VERSION_AUTHENTICATOR : RELAY_VERSION_SIGNATURE),
        ),
      );
      await s.next(); // the relay's version header
      const hello = await s.nextFrame();
      if (hello.k !== "HELLO") throw new Error(`expected HELLO, got ${hello.k}`);
      s.sessionId = hello.s;
      s.connectionKey = hello.x;
    }
    return s;
  }

  /**
   * 1.1: the authenticator of `t` by the holder of `authSecret` on the connection with
   * `connectionKey` and `sessionId` (this one's by default; another's to test cross-connection use).
   */
  async authenticator(
    t: Uint8Array,
    authSecret: Uint8Array,
    on: { connectionKey: Uint8Array; sessionId: Uint8Array } = {
      connectionKey: this.connectionKey!,
      sessionId: this.sessionId,
    },
  ): Promise<Uint8Array> {
    const key = await deriveAuthKey(
      nobleCrypto,
      authSecret,
      authPublicKey(authSecret),
      on.connectionKey,
      on.sessionId,
    );
    if (!key.ok) throw key.error;
    return authenticateCommand(nobleCrypto, key.value, t);
  }

  /** 1.1: a command frame with its authenticator (or unauthorized without a key). */
  async authFrame(command: Command, authSecret?: Uint8Array): Promise<Uint8Array> {
    const t = encodeCommand(command);
    return encodeClientFrame(t, authSecret ? await this.authenticator(t, authSecret) : undefined);
  }

  /** 1.1: send an authenticated command and return the next frame. */
  async authRequest(command: Command, authSecret?: Uint8Array): Promise<ServerFrame> {
    this.send(await this.authFrame(command, authSecret));
    return this.nextFrame();
  }

  /** Encode (and sign with `key`, over this session) a command frame. */
  frame(command: Command, key?: Uint8Array): Uint8Array {
    const t = encodeCommand(command);
    return encodeClientFrame(t, key ? signCommand(key, this.sessionId, t) : undefined);
  }

  /** Send a command and return the next frame. */
  async request(command: Command, key?: Uint8Array): Promise<ServerFrame> {
    this.send(this.frame(command, key));
    return this.nextFrame();
  }

  send(bytes: Uint8Array | string, binary = true): void {
    this.ws.send(bytes, { binary });
  }

  /** The next raw frame (waits), or undefined once the socket is closed and drained. */
  async next(): Promise<Uint8Array | undefined> {
    for (;;) {
      const f = this.frames.shift();
      if (f) return f;
      if (this.closeCode !== undefined) return undefined;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** The next frame decoded as a server frame (throws if it is not one). */
  async nextFrame(): Promise<ServerFrame> {
    const f = await this.next();
    if (!f) throw new Error(`socket closed (${this.closeCode} ${this.closeReason})`);
    const d = decodeServerFrame(f);
    if (!d.ok) throw d.error;
    return d.value;
  }

  close(): void {
    this.ws.close();
  }
}

/**
 * A live link between the clients `ca` and `cb` (docs/protocol/relay.md §Live links): a new queue
 * of each, the other's sender side secured, a RelayLink at each end — `a` on `ca`, `b` on `cb`.
 * `sendBothWays`: each body sent both ways at once, then what each end received, in order.
 */
export async function relayLinkPair(ca: RelayClient, cb: RelayClient, options?: RelayLinkOptions) {
  const qa = await ca.createQueue({ subscribe: false });
  const qb = await cb.createQueue({ subscribe: false });
  const toB = await ca.senderSecure({ senderId: qb.senderId });
  const toA = await cb.senderSecure({ senderId: qa.senderId });
  const a = await RelayLink.open(ca, qa, toB, options);
  const b = await RelayLink.open(cb, qb, toA, options);
  const sendBothWays = async (sent: Uint8Array[]) => {
    for (const m of sent) {
      a.send(m);
      b.send(m);
    }
    const atA: Uint8Array[] = [];
    const atB: Uint8Array[] = [];
    for (const _ of sent) {
      atB.push(await b.receive());
      atA.push(await a.receive());
    }
    return { atA, atB };
  };
  return { a, b, sendBothWays };
}

/**
 * Blocks the event loop (as a long synchronous pass or a major GC would) until a worker's answer
 * counter (`VerifyPool.countAnswersForTest`, `SealPool.countAnswersForTest`) reaches `n`; false
 * if it did not within `timeoutMs`. The worker counts just after posting, so at `true` its answer
 * waits in the port, undelivered.
 */
export function blockUntilAnswered(counter: Int32Array, n: number, timeoutMs = 60_000): boolean {
  const end = performance.now() + timeoutMs;
  for (let c = Atomics.load(counter, 0); c < n; c = Atomics.load(counter, 0)) {
    const left = end - performance.now();
    if (left <= 0) return false;
    Atomics.wait(counter, 0, c, left);
  }
  return true;
}
