/**
 * bench:proxy's split topology (bench/README.md §bench:proxy): the exposing side — Bob's engines,
 * each serving `httpOriginHandler` (host/proxy-origin.ts, what `loft expose` serves) — run in a
 * worker thread of their own, as `loft expose` runs on another machine than the requester, and
 * the HTTP origin they serve in a third thread (`startOriginThread`: the local service is another
 * process than `loft expose`; `--origin-with-exposing` puts it in the exposing thread, the layout
 * before session 15); Alice's engines stay on the main thread. The links between them are
 * MessagePorts carrying the same messages the harness's in-memory link carries
 * (test/support/engine.ts `TestLink`): one copy per message, its buffer transferred, not cloned.
 *
 * This module is both sides: the main thread imports `PortTransport` and `startExposingSide`; run
 * as a worker, it is the exposing side.
 */
import { createServer } from "node:http";
import { Session } from "node:inspector/promises";
import type { AddressInfo } from "node:net";
import type { EventLoopUtilization } from "node:perf_hooks";
import {
  isMainThread,
  MessageChannel,
  type MessagePort,
  parentPort,
  Worker,
  workerData,
} from "node:worker_threads";
import { toHex } from "../core/bytes.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import { createUserIdentity, encodeIdentity, type UserIdentity } from "../core/identity/identity.ts";
import type { LinkCloseInfo } from "../core/link/link.ts";
import { QueueLink } from "../core/link/queue-link.ts";
import { TokenBucket } from "../core/proxy/rate-limit.ts";
import { DEFAULT_SEND_WINDOW } from "../core/relay/live-link.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { httpOriginHandler } from "../host/proxy-origin.ts";
import { EngineHarness, type EngineNode, type HarnessBase, TestLink, until } from "../test/support/engine.ts";
import type { ContactId } from "../web/src/engine/api.ts";
import type { DialedLink, LiveTransport, TransportDeps } from "../web/src/engine/transport.ts";
import { RelayLiveTransport } from "../web/src/net/relay-live.ts";
import type { CpuProfile } from "./cpu-profile.ts";

/** What a peer on the other thread needs to make us its contact. */
export interface PeerCard {
  id: ContactId;
  identity: Uint8Array;
  username: string;
}

export const cardOf = (user: UserIdentity): PeerCard => ({
  id: toHex(user.identity.verified.identity_key),
  identity: encodeIdentity(user.identity),
  username: user.identity.verified.username,
});

/** Make `card` a contact in `node`'s storage (as `MemoryStorage.addUser`, from the encoded identity). */
export function addCard(node: EngineNode, card: PeerCard): void {
  node.storage.contacts.set(card.id, {
    id: card.id,
    identity: card.identity,
    username: card.username,
    trust: "unknown",
    firstSeen: Date.now(),
    lastSeen: Date.now(),
  });
}

/**
 * An engine of bench:proxy (either side, either topology): quiet, on `crypto` (noble when
 * undefined), and with a relay its live relay link keeps up to `sendWindow` SENDs in flight.
 */
export function benchEngine(
  signalingUrl: string,
  relayUrl: string | undefined,
  crypto: CryptoProvider | undefined,
  sendWindow: number,
): HarnessBase {
  return {
    signalingUrl,
    ...(relayUrl ? { relayUrl } : {}),
    config: {
      log: () => {},
      ...(crypto ? { crypto } : {}),
      ...(relayUrl
        ? { relayTransport: (deps) => new RelayLiveTransport(deps, { sendWindow }), relayFallbackMs: 200 }
        : {}),
    },
  };
}

/** `bob` serves the HTTP origin at `base` to `contact` alone, as `loft expose`, with no rate limit. */
export function serveOrigin(bob: EngineNode, base: string, contact: ContactId): void {
  bob.engine.serveProxy({
    handler: httpOriginHandler({
      origin: base,
      contacts: new Set([contact]),
      isContact: (id) => id === contact,
    }),
    limiter: new TokenBucket(1e9, 1e9),
    log: () => {},
  });
}

type PortControl = { close: LinkCloseInfo } | { refuse: string } | { offline: true };

/**
 * One end of a link whose other end is on the other thread: as `TestLink`, one copy of each
 * message (the sender may reuse its buffer), but the copy's buffer is transferred to the other
 * thread rather than cloned again.
 */
class PortLink extends QueueLink implements DialedLink {
  readonly opened = Promise.resolve();
  readonly #port: MessagePort;
  constructor(port: MessagePort) {
    super("open");
    this.#port = port;
    port.on("message", (m: Uint8Array | PortControl) => {
      if (m instanceof Uint8Array) return this.deliver(m);
      if ("close" in m) this.#remoteClosed(m.close);
      else if ("refuse" in m) this.close(`bye-${m.refuse}`);
      else this.close("LOFT_ERR_SIGNALING_PEER_OFFLINE");
      port.close();
    });
    // The engines' own timers and sockets keep the threads alive; a link must not outlive them.
    port.unref();
  }
  protected transmit(m: Uint8Array): void {
    const copy = m.slice();
    this.#port.postMessage(copy, [copy.buffer]);
  }
  protected teardown(info: LinkCloseInfo): void {
    this.#port.postMessage({ close: info } satisfies PortControl);
  }
  #remoteClosed(info: LinkCloseInfo): void {
    // As test/support/engine.ts `TestLink.remoteClosed` (web/src/net/direct.ts's bye semantics).
    if (this.state === "connecting" && !info.reason.startsWith("bye-") && info.reason !== "transport-closed")
      this.finish({ reason: "bye-cancelled", detail: "the peer said cancelled" }, false);
    else this.finish({ reason: "remote-closed", detail: info.reason }, false);
  }
}

interface OfferMessage {
  type: "offer";
  from: Uint8Array;
  to: ContactId;
  room?: Uint8Array;
  /** Absent when direct links are blocked (`--relay`): the offer arrives, no channel ever opens. */
  port?: MessagePort;
}

/**
 * The harness's `Hub` across two threads: offers go to the other thread over `control` (a
 * Worker or the worker's parentPort), each with a MessagePort for the link. `blockDirect`: no
 * direct channel ever opens (offers still reach the peer, as with blocked UDP), as `Hub`'s.
 */
export class PortTransport {
  readonly #endpoints = new Map<ContactId, TransportDeps>();
  readonly #post: (m: OfferMessage, transfer: MessagePort[]) => void;
  readonly blockDirect: boolean;
  constructor(post: (m: OfferMessage, transfer: MessagePort[]) => void, blockDirect: boolean) {
    this.#post = post;
    this.blockDirect = blockDirect;
  }
  factory(self: UserIdentity) {
    const key = self.identity.verified.identity_key;
    const hex = toHex(key);
    return (deps: TransportDeps): LiveTransport => {
      this.#endpoints.set(hex, deps);
      return {
        path: "direct",
        dial: (peer, options) => {
          const to = toHex(peer);
          const room = options?.room ? { room: options.room } : {};
          if (this.blockDirect) {
            this.#post({ type: "offer", from: key, to, ...room }, []);
            return new TestLink(true);
          }
          const { port1, port2 } = new MessageChannel();
          this.#post({ type: "offer", from: key, to, ...room, port: port2 }, [port2]);
          return new PortLink(port1);
        },
        close: () => {
          if (this.#endpoints.get(hex) === deps) this.#endpoints.delete(hex);
        },
      };
    };
  }
  /** An offer from the other thread. */
  offer(m: OfferMessage): void {
    const target = this.#endpoints.get(m.to);
    const port = m.port;
    if (!target) {
      port?.postMessage({ offline: true } satisfies PortControl);
      return;
    }
    target.onOffer({
      from: m.from,
      ...(m.room ? { room: m.room } : {}),
      accept: () => (port ? new PortLink(port) : new TestLink(true)),
      refuse: (r) => port?.postMessage({ refuse: r } satisfies PortControl),
    });
  }
}

/** Main thread → worker. */
type ToWorker =
  | OfferMessage
  | { type: "bob"; n: number; alice: PeerCard; sendWindow: number }
  | { type: "profile-start" }
  | { type: "profile-stop" }
  | { type: "stop" };
/** Worker → main thread. */
type FromWorker =
  | OfferMessage
  | { type: "origin"; base: string }
  | { type: "bob"; n: number; card: PeerCard }
  | { type: "ready"; n: number }
  | { type: "profile-started" }
  | { type: "profile"; profile: CpuProfile }
  | { type: "stopped" }
  | { type: "error"; message: string };

export interface ExposingOptions {
  size: number;
  signalingUrl: string;
  relayUrl?: string;
  noble: boolean;
  blockDirect: boolean;
  /**
   * The origin's base URL when it runs in a thread of its own (the default); else
   * (`--origin-with-exposing`) the worker serves one.
   */
  originBase?: string;
}

/** The worker, seen from the main thread. */
export interface ExposingSide {
  /** The origin's base URL (served from the worker's thread). */
  base: string;
  transport: PortTransport;
  /** The worker thread's event-loop utilization (Node's `performance.eventLoopUtilization`), as the main thread's. */
  elu(): EventLoopUtilization;
  /**
   * Profile the worker's thread (`LOFT_BENCH_PROFILE=1`, split: the exposing side's profile next
   * to the requester's): resolves once the profiler runs; the function it gives stops it.
   */
  profile(): Promise<() => Promise<CpuProfile>>;
  /** A Bob in the worker serving the origin to `alice`; resolves with his card, then `ready` once online. */
  bob(alice: UserIdentity, sendWindow: number): Promise<{ card: PeerCard; ready: Promise<void> }>;
  stop(): Promise<void>;
}

export async function startExposingSide(options: ExposingOptions): Promise<ExposingSide> {
  const worker = workerOf(options);
  const transport = new PortTransport((m, t) => worker.postMessage(m, t), options.blockDirect);
  const waiting = new Map<string, { resolve: (m: FromWorker) => void; reject: (e: Error) => void }>();
  let failed: Error | undefined;
  const fail = (e: Error) => {
    failed = e;
    for (const w of waiting.values()) w.reject(e);
    waiting.clear();
  };
  const waitFor = (key: string) =>
    new Promise<FromWorker>((resolve, reject) => {
      if (failed) return reject(failed);
      waiting.set(key, { resolve, reject });
      const t = setTimeout(() => reject(new Error(`exposing side: no ${key} in 30 s`)), 30_000);
      t.unref();
    });
  worker.on("message", (m: FromWorker) => {
    if (m.type === "offer") return transport.offer(m);
    if (m.type === "error") return fail(new Error(`exposing side: ${m.message}`));
    const key = "n" in m ? `${m.type}:${m.n}` : m.type;
    waiting.get(key)?.resolve(m);
    waiting.delete(key);
  });
  worker.on("error", (e) => fail(e));
  worker.on("exit", (code) => fail(new Error(`exposing side: the worker exited (${code})`)));
  const origin = (await waitFor("origin")) as { base: string };
  let n = 0;
  return {
    base: origin.base,
    transport,
    elu: () => worker.performance.eventLoopUtilization(),
    async profile() {
      const started = waitFor("profile-started");
      worker.postMessage({ type: "profile-start" } satisfies ToWorker);
      await started;
      return async () => {
        const done = waitFor("profile");
        worker.postMessage({ type: "profile-stop" } satisfies ToWorker);
        return ((await done) as { profile: CpuProfile }).profile;
      };
    },
    async bob(alice, sendWindow) {
      const i = n++;
      const answer = waitFor(`bob:${i}`);
      const ready = waitFor(`ready:${i}`).then(() => {});
      ready.catch(() => {});
      worker.postMessage({ type: "bob", n: i, alice: cardOf(alice), sendWindow } satisfies ToWorker);
      return { card: ((await answer) as { card: PeerCard }).card, ready };
    },
    async stop() {
      const stopped = waitFor("stopped");
      worker.postMessage({ type: "stop" } satisfies ToWorker);
      try {
        await stopped;
      } finally {
        await worker.terminate();
      }
    },
  };
}

/** The bench's HTTP origin: `/big` (`size` bytes) and `/small` (1 KiB) on 127.0.0.1. */
export async function startOrigin(size: number) {
  const big = Uint8Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff);
  const small = new Uint8Array(1024).fill(0x61);
  const server = createServer((req, res) => {
    const body = req.url === "/big" ? big : req.url === "/small" ? small : undefined;
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    res.end(body);
  });
  // Longer than any pause in the run: a keep-alive socket the server closes while undici reuses it
  // is an ECONNRESET (Node's 5 s default races the slower proxied rounds).
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    server,
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: (done: () => void) => server.close(done),
  };
}

/** This module in a worker thread (tsx's hooks registered again: Node 20 keeps them per thread). */
function workerOf(data: ExposingOptions | OriginOptions): Worker {
  const entry = `import { register } from ${JSON.stringify(import.meta.resolve("tsx/esm/api"))};
register();
await import(${JSON.stringify(import.meta.url)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(entry)}`), { workerData: data });
}

interface OriginOptions {
  role: "origin";
  size: number;
}

/**
 * The default (bench/proxy.ts; `--origin-with-exposing` for the layout before session 15): the
 * origin in a thread of its own, as the local service `loft expose` serves is another process
 * than `loft expose` itself.
 */
export async function startOriginThread(size: number): Promise<{ base: string; stop: () => Promise<void> }> {
  const worker = workerOf({ role: "origin", size });
  const base = await new Promise<string>((resolve, reject) => {
    worker.once("message", (m: { base: string }) => resolve(m.base));
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`the origin thread exited (${code})`)));
  });
  return {
    base,
    stop: async () => {
      await worker.terminate();
    },
  };
}

async function exposingSide(port: MessagePort, options: ExposingOptions): Promise<void> {
  const send = (m: FromWorker, transfer: MessagePort[] = []) => port.postMessage(m, transfer);
  const origin = options.originBase === undefined ? await startOrigin(options.size) : undefined;
  const base = options.originBase ?? origin!.base;
  const crypto = options.noble ? undefined : await createNodeCryptoProvider();
  const transport = new PortTransport((m, t) => send(m, t), options.blockDirect);
  let sendWindow = DEFAULT_SEND_WINDOW;
  const h = new EngineHarness(() => benchEngine(options.signalingUrl, options.relayUrl, crypto, sendWindow));
  const fail = (e: unknown) => send({ type: "error", message: e instanceof Error ? e.message : String(e) });
  let inspector: Session | undefined;
  port.on("message", (m: ToWorker) => {
    if (m.type === "offer") return transport.offer(m);
    if (m.type === "profile-start") {
      inspector = new Session();
      inspector.connect();
      void (async () => {
        await inspector.post("Profiler.enable");
        await inspector.post("Profiler.setSamplingInterval", { interval: 100 });
        await inspector.post("Profiler.start");
        send({ type: "profile-started" });
      })().catch(fail);
      return;
    }
    if (m.type === "profile-stop") {
      const s = inspector;
      void (async () => {
        if (!s) throw new Error("no profile started");
        const { profile } = await s.post("Profiler.stop");
        s.disconnect();
        send({ type: "profile", profile: profile as CpuProfile });
      })().catch(fail);
      return;
    }
    if (m.type === "stop") {
      void h
        .stopAll()
        .catch(fail)
        .finally(() => (origin ? origin.close(() => send({ type: "stopped" })) : send({ type: "stopped" })));
      origin?.server.closeAllConnections();
      return;
    }
    sendWindow = m.sendWindow;
    const user = createUserIdentity({ username: "bob", now: Date.now() });
    const bob = h.node("bob", user, undefined, undefined, { transport: transport.factory(user) });
    addCard(bob, m.alice);
    serveOrigin(bob, base, m.alice.id);
    void (async () => {
      await bob.engine.start();
      send({ type: "bob", n: m.n, card: cardOf(user) });
      await until(() => h.online(bob, { id: m.alice.id } as EngineNode), "Bob sees Alice online", 30_000);
      if (options.relayUrl)
        await until(
          () => h.knowsMailboxOf(bob, { id: m.alice.id } as EngineNode),
          "Bob holds Alice's mailbox",
          30_000,
        );
      send({ type: "ready", n: m.n });
    })().catch(fail);
  });
  send({ type: "origin", base });
}

if (!isMainThread && parentPort) {
  const data = workerData as ExposingOptions | OriginOptions;
  if ("role" in data) parentPort.postMessage({ base: (await startOrigin(data.size)).base });
  else await exposingSide(parentPort, data);
}
