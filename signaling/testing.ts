/**
 * Test helpers for the signaling service: start the real service on a real host bound to
 * loopback (port 0), and a raw protocol client over a real `ws` WebSocket for the tests that send
 * malformed or hostile frames. Used by signaling/*.test.ts, test/fuzz/signaling-*.test.ts,
 * test/abuse/ and bench/signaling-registrations.ts; never by production code.
 */
import type { ClientRequestArgs } from "node:http";
import WebSocket, { type ClientOptions } from "ws";
import { decodeVersionHeader, encodeVersionHeader, SIGNALING_VERSION } from "../core/codec/version.ts";
import { nobleCrypto } from "../core/crypto/noble.ts";
import { createUserIdentity, type UserIdentity } from "../core/identity/identity.ts";
import type { WebSocketFactory, WebSocketLike } from "../core/signaling/client.ts";
import { type ClientMessage, clientCodec, type ServerMessage, serverCodec } from "../core/wire/signaling.ts";
import { signRegisterRequest } from "../core/wire/signed.ts";
import { createHost, createRegistry, type Host } from "../host/host.ts";
import { createLogger } from "../host/log.ts";
import { defaultSignalingConfig, type SignalingConfig } from "./config.ts";
import { createSignalingService, type SignalingService } from "./service.ts";

export interface RunningSignaling {
  url: string;
  port: number;
  host: Host;
  service: SignalingService;
  metrics(): Promise<string>;
  close(): Promise<void>;
}

export async function startSignaling(
  overrides: Partial<SignalingConfig> = {},
  port = 0,
  now?: () => number,
): Promise<RunningSignaling> {
  const log = createLogger("signaling-test", process.env.LOG_LEVEL ?? "silent");
  const registry = createRegistry();
  const config = { ...defaultSignalingConfig(), ...overrides };
  const host = createHost({ port, host: "127.0.0.1", staticDir: undefined, registry, log });
  const service = createSignalingService(config, now ? { registry, log, now } : { registry, log });
  host.mount(service);
  const bound = await host.listen();
  if (config.redis && !(await service.ready(10_000))) {
    await host.close();
    throw new Error("signaling could not reach Redis within 10 s");
  }
  return {
    url: `ws://127.0.0.1:${bound}/signal`,
    port: bound,
    host,
    service,
    metrics: () => registry.metrics(),
    close: () => host.close(),
  };
}

export function makeUser(username = "alice"): UserIdentity {
  return createUserIdentity({ username, now: Date.now() });
}

/** A `ws` WebSocket as the client's WebSocketLike (optionally from another loopback address). */
export function wsFactory(options: ClientOptions & ClientRequestArgs = {}): WebSocketFactory {
  return (url) => new WebSocket(url, options) as unknown as WebSocketLike;
}

export interface RawFrame {
  bytes: Uint8Array;
  message: ServerMessage | undefined;
}

/**
 * A protocol-level client: sends whatever bytes a test wants and queues what the server sends.
 * `hello()` does the version-header exchange.
 */
export class RawClient {
  readonly ws: WebSocket;
  readonly #inbox: RawFrame[] = [];
  readonly #waiters: ((f: RawFrame | undefined) => void)[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  isClosed = false;
  /** The connection's REGISTER challenge (the server pushes it after its VERSION_HEADER). */
  challenge: Uint8Array<ArrayBuffer> | undefined;
  /** Resolves with the challenge once pushed (undefined if the connection closed first). */
  readonly challenged: Promise<Uint8Array<ArrayBuffer> | undefined>;
  #onChallenge: (c: Uint8Array<ArrayBuffer> | undefined) => void = () => {};

  constructor(url: string, options: ClientOptions & ClientRequestArgs = {}) {
    this.ws = new WebSocket(url, options);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      this.ws.once("error", reject);
    });
    this.opened.catch(() => {});
    this.challenged = new Promise((resolve) => {
      this.#onChallenge = resolve;
    });
    this.closed = new Promise((resolve) => {
      this.ws.on("close", (code, reason) => {
        this.isClosed = true;
        this.#onChallenge(undefined);
        for (const w of this.#waiters.splice(0)) w(undefined);
        resolve({ code, reason: reason.toString() });
      });
    });
    this.ws.on("error", () => {});
    this.ws.on("message", (data: Buffer) => {
      const bytes = new Uint8Array(data);
      const decoded = serverCodec.decode(bytes);
      const frame = { bytes, message: decoded.ok ? decoded.value : undefined };
      if (frame.message?.t === "CHALLENGE") {
        // Kept aside rather than queued: tests read replies, and sign REGISTERs with this.
        this.challenge = frame.message.challenge;
        this.#onChallenge(this.challenge);
        return;
      }
      const w = this.#waiters.shift();
      if (w) w(frame);
      else this.#inbox.push(frame);
    });
  }

  static async connect(url: string, options: ClientOptions & ClientRequestArgs = {}): Promise<RawClient> {
    const c = new RawClient(url, options);
    await c.opened;
    return c;
  }

  /** Open, exchange VERSION_HEADERs. */
  static async hello(url: string, options: ClientOptions & ClientRequestArgs = {}): Promise<RawClient> {
    const c = await RawClient.connect(url, options);
    const first = await c.nextFrame();
    if (!first || !decodeVersionHeader(first.bytes, SIGNALING_VERSION).ok)
      throw new Error("server did not send VERSION_HEADER");
    c.sendRaw(encodeVersionHeader(SIGNALING_VERSION));
    return c;
  }

  sendRaw(bytes: Uint8Array | string): void {
    this.ws.send(bytes);
  }

  send(message: ClientMessage): void {
    this.ws.send(clientCodec.encode(message));
  }

  /** Next frame, or undefined once closed. */
  nextFrame(): Promise<RawFrame | undefined> {
    const f = this.#inbox.shift();
    if (f) return Promise.resolve(f);
    if (this.isClosed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Next decoded message; throws if the connection closed or the frame is not a server message. */
  async next(): Promise<ServerMessage> {
    const f = await this.nextFrame();
    if (!f) throw new Error("connection closed");
    if (!f.message) throw new Error("undecodable server frame");
    return f.message;
  }

  /** Skip frames until one matches. */
  async until<T extends ServerMessage["t"]>(
    t: T,
    pred: (m: Extract<ServerMessage, { t: T }>) => boolean = () => true,
  ): Promise<Extract<ServerMessage, { t: T }>> {
    for (;;) {
      const m = await this.next();
      if (m.t === t && pred(m as Extract<ServerMessage, { t: T }>))
        return m as Extract<ServerMessage, { t: T }>;
    }
  }

  /** Send and return the reply carrying the same id. */
  async request(message: ClientMessage): Promise<ServerMessage> {
    if (message.id === undefined) throw new Error("request needs an id");
    this.send(message);
    for (;;) {
      const m = await this.next();
      if ("id" in m && m.id === message.id) return m;
    }
  }

  close(): void {
    this.ws.close();
  }
}

export interface RegisterOptions {
  id: number;
  ttl?: number;
  timestamp?: number;
  /** Default: the URL the client dialled (what the core client sends). */
  audience?: string;
  /** Default: the connection's challenge. */
  nonce?: Uint8Array;
}

/** A REGISTER_REQUEST for `user` as a well-behaved client on connection `c` would sign it. */
export async function registerOn(
  c: RawClient,
  user: UserIdentity,
  o: RegisterOptions,
): Promise<ClientMessage> {
  const challenge = o.nonce ?? (await c.challenged);
  if (!challenge) throw new Error("the connection closed before its CHALLENGE");
  return signRegisterRequest(nobleCrypto, user, {
    ttl_seconds: o.ttl ?? 60,
    timestamp: o.timestamp ?? Date.now(),
    nonce: challenge,
    audience: o.audience ?? c.ws.url,
    id: o.id,
  });
}
