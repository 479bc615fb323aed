/**
 * The one harness for the chat engine in Node (web/src/engine/*.test.ts): storage in memory,
 * links in memory, a hub standing in for signaling-brokered WebRTC, and `EngineHarness`, which
 * makes engines ("nodes") against the real signaling and relay services a test started, pairs
 * two of them, and stops them all — failing a test whose engines logged a link-state move the
 * controller's table does not allow (web/src/engine/link/state.ts).
 */
import { afterAll, afterEach, beforeAll } from "vitest";
import WebSocket from "ws";
import { toHex } from "../../core/bytes.ts";
import { nobleCrypto } from "../../core/crypto/noble.ts";
import type { Aead, CryptoProvider } from "../../core/crypto/provider.ts";
import { createUserIdentity, encodeIdentity, type UserIdentity } from "../../core/identity/identity.ts";
import type { LinkCloseInfo } from "../../core/link/link.ts";
import { QueueLink } from "../../core/link/queue-link.ts";
import type { WebSocketLike as RelayWebSocketLike } from "../../core/relay/ws-link.ts";
import { establishSession, type Session } from "../../core/session/index.ts";
import { type RunningSignaling, startSignaling, wsFactory } from "../../signaling/testing.ts";
import type {
  ContactEndpoints,
  ContactId,
  ContactRecord,
  EngineError,
  EngineEvent,
  EngineSettings,
  EngineStorage,
  MessageId,
  MessageState,
  OutboxEntry,
  PendingIdentityChange,
  StoredMessage,
} from "../../web/src/engine/api.ts";
import { Engine, type EngineConfig } from "../../web/src/engine/engine.ts";
import { SECRET } from "../../web/src/engine/mailbox.ts";
import type {
  DialedLink,
  IncomingOffer,
  LiveTransport,
  TransportDeps,
} from "../../web/src/engine/transport.ts";
import { BulkLane } from "../../web/src/net/bulk-lane.ts";
import { createRelayPool } from "../../web/src/net/relay-pool.ts";
import { type FakeBulkChannel, fakeChannelPair } from "./bulk-channel.ts";

export class MemoryStorage implements EngineStorage {
  settings: EngineSettings;
  contacts = new Map<ContactId, ContactRecord>();
  messages = new Map<MessageId, StoredMessage>();
  outbox = new Map<MessageId, OutboxEntry>();
  sessions = new Map<ContactId, Uint8Array>();
  secrets = new Map<string, Uint8Array>();
  constructor(signalingUrl: string, relayUrls: string[] = []) {
    this.settings = { signalingUrl, relayUrls };
  }
  async getSettings() {
    return this.settings;
  }
  async getContact(id: ContactId) {
    const c = this.contacts.get(id);
    return c && structuredClone(c);
  }
  async addContact(c: ContactRecord) {
    if (!this.contacts.has(c.id)) this.contacts.set(c.id, structuredClone(c));
  }
  async listContacts() {
    return [...this.contacts.values()].map((c) => structuredClone(c));
  }
  async touchContact(id: ContactId, at: number) {
    const c = this.contacts.get(id);
    if (c) c.lastSeen = Math.max(c.lastSeen, at);
  }
  async recordIdentityChange(id: ContactId, change: PendingIdentityChange) {
    const c = this.contacts.get(id);
    if (c) c.pending = change;
  }
  async updateContactIdentity(id: ContactId, identity: Uint8Array, username: string) {
    const c = this.contacts.get(id);
    if (c) Object.assign(c, { identity, username });
  }
  async putContact(c: ContactRecord) {
    this.contacts.set(c.id, structuredClone(c));
  }
  async setAnswersSuiteOffers(id: ContactId, answers: boolean) {
    const c = this.contacts.get(id);
    if (c) c.answersSuiteOffers = answers;
  }
  async setEndpoints(id: ContactId, endpoints: ContactEndpoints) {
    const c = this.contacts.get(id);
    if (c) c.endpoints = structuredClone(endpoints);
  }
  async acceptRequest(id: ContactId) {
    const c = this.contacts.get(id);
    if (c) delete c.request;
  }
  async declineRequest(id: ContactId) {
    const c = this.contacts.get(id);
    if (c) {
      delete c.request;
      c.trust = "rejected";
    }
  }
  async setTrust(id: ContactId, trust: ContactRecord["trust"]) {
    const c = this.contacts.get(id);
    if (c) c.trust = trust;
  }
  async clearPending(id: ContactId) {
    const c = this.contacts.get(id);
    if (c) delete c.pending;
  }
  async deleteContact(id: ContactId) {
    this.contacts.delete(id);
    this.sessions.delete(id);
    for (const [k, m] of this.messages) if (m.contactId === id) this.messages.delete(k);
    for (const [k, e] of this.outbox) if (e.contactId === id) this.outbox.delete(k);
  }
  /** As EngineStorage says: nothing when a message with this id is stored already. */
  async queueOutgoing(m: StoredMessage) {
    if (this.messages.has(m.id)) return;
    this.messages.set(m.id, { ...m });
    this.outbox.set(m.id, { messageId: m.id, contactId: m.contactId, queuedAt: m.at, attempts: 0 });
  }
  async getMessage(id: MessageId) {
    const m = this.messages.get(id);
    return m && { ...m };
  }
  async putMessage(m: StoredMessage) {
    this.messages.set(m.id, { ...m });
  }
  async setMessageState(id: MessageId, state: MessageState, failure?: EngineError) {
    const m = this.messages.get(id);
    if (m) Object.assign(m, { state, failure });
  }
  async findIncoming(contactId: ContactId, remoteId: string) {
    return [...this.messages.values()].find((m) => m.contactId === contactId && m.remoteId === remoteId);
  }
  async listOutbox(contactId?: ContactId) {
    return [...this.outbox.values()]
      .filter((e) => contactId === undefined || e.contactId === contactId)
      .sort((a, b) => a.queuedAt - b.queuedAt)
      .map((e) => ({ ...e }));
  }
  async putOutbox(e: OutboxEntry) {
    this.outbox.set(e.messageId, { ...e });
  }
  async deleteOutbox(id: MessageId) {
    this.outbox.delete(id);
  }
  async loadSession(id: ContactId) {
    return this.sessions.get(id)?.slice();
  }
  async saveSession(id: ContactId, state: Uint8Array) {
    this.sessions.set(id, state.slice());
  }
  async deleteSession(id: ContactId) {
    this.sessions.delete(id);
  }
  async loadSecret(name: string) {
    return this.secrets.get(name)?.slice();
  }
  async saveSecret(name: string, v: Uint8Array) {
    this.secrets.set(name, v.slice());
  }
  async deleteSecret(name: string) {
    this.secrets.delete(name);
  }
  addUser(user: UserIdentity, trust: ContactRecord["trust"] = "unknown"): ContactId {
    const id = toHex(user.identity.verified.identity_key);
    this.contacts.set(id, {
      id,
      identity: encodeIdentity(user.identity),
      username: user.identity.verified.username,
      trust,
      firstSeen: Date.now(),
      lastSeen: Date.now(),
    });
    return id;
  }
  texts(contactId: ContactId, direction: "in" | "out"): string[] {
    return [...this.messages.values()]
      .filter((m) => m.contactId === contactId && m.direction === direction)
      .sort((a, b) => a.at - b.at)
      .map((m) => m.text);
  }
}

/** An in-memory link pair that a test can cut silently (frames vanish, nobody is told). */
/**
 * A slow IndexedDB: every call takes a pseudo-random time (0–`maxDelayMs`, seeded). Reads finish
 * in any order; writes finish in the order they were issued (IndexedDB runs overlapping
 * read-write transactions in creation order). A send path that stamps or orders messages after
 * an `await` on storage gets them out of order here.
 */
export class SlowStorage extends MemoryStorage {
  #seed: number;
  readonly #maxDelayMs: number;
  #writes: Promise<unknown> = Promise.resolve();
  constructor(signalingUrl: string, seed = 1, maxDelayMs = 6) {
    super(signalingUrl);
    this.#seed = seed;
    this.#maxDelayMs = maxDelayMs;
  }
  /** xorshift32: the same delays for the same seed. */
  #delay(): Promise<void> {
    let x = this.#seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#seed = x >>> 0;
    return new Promise((r) => setTimeout(r, this.#seed % (this.#maxDelayMs + 1)));
  }
  #read<T>(f: () => Promise<T>): Promise<T> {
    return this.#delay().then(f);
  }
  #write<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#writes.then(() => this.#delay()).then(f);
    this.#writes = run.catch(() => {});
    return run;
  }
  override getContact(id: ContactId) {
    return this.#read(() => super.getContact(id));
  }
  override getMessage(id: MessageId) {
    return this.#read(() => super.getMessage(id));
  }
  override listOutbox(contactId?: ContactId) {
    return this.#read(() => super.listOutbox(contactId));
  }
  override putMessage(m: StoredMessage) {
    return this.#write(() => super.putMessage(m));
  }
  override putOutbox(e: OutboxEntry) {
    return this.#write(() => super.putOutbox(e));
  }
  override queueOutgoing(m: StoredMessage) {
    return this.#write(() => super.queueOutgoing(m));
  }
  override setMessageState(id: MessageId, state: MessageState, failure?: EngineError) {
    return this.#write(() => super.setMessageState(id, state, failure));
  }
}

export class TestLink extends QueueLink implements DialedLink {
  peer: TestLink | undefined;
  /** The identity key (hex) of the engine whose end this is (set by `Hub`). */
  owner: string | undefined;
  #cut = false;
  readonly opened: Promise<void>;
  /** The bulk lane beside the session (web/src/net/bulk-lane.ts over in-memory channels: `joinBulk`). */
  bulk: BulkLane | undefined;
  /** This end's channel under `bulk`. */
  channel: FakeBulkChannel | undefined;
  /** `neverOpens`: stands for a data channel whose ICE never connects (opened rejects on close). */
  constructor(neverOpens = false) {
    super(neverOpens ? "connecting" : "open");
    this.opened = neverOpens
      ? this.closed.then((info) =>
          Promise.reject(Object.assign(new Error(info.reason), { code: info.reason })),
        )
      : Promise.resolve();
    this.opened.catch(() => {});
    void this.closed.then((info) => this.bulk?.close(info.reason));
  }
  /** The network vanished (both the session's channel and the bulk lane's): nobody sees a close. */
  get cut(): boolean {
    return this.#cut;
  }
  set cut(v: boolean) {
    this.#cut = v;
    if (this.channel) this.channel.cut = v;
  }
  protected transmit(m: Uint8Array): void {
    if (this.cut) return;
    const copy = m.slice();
    queueMicrotask(() => this.peer?.fromPeer(copy));
  }
  fromPeer(m: Uint8Array): void {
    if (!this.cut) this.deliver(m);
  }
  protected teardown(info: LinkCloseInfo): void {
    if (this.cut) return;
    const p = this.peer;
    queueMicrotask(() => p?.remoteClosed(info));
  }
  remoteClosed(info: LinkCloseInfo): void {
    // As web/src/net/direct.ts: an attempt given up before its channel opened says `bye` `cancelled`.
    if (this.state === "connecting" && !info.reason.startsWith("bye-") && info.reason !== "transport-closed")
      this.finish({ reason: "bye-cancelled", detail: "the peer said cancelled" }, false);
    else this.finish({ reason: "remote-closed", detail: info.reason }, false);
  }
}

/**
 * `link` refuses the first frame sent after `arm()` and closes as it does — a data channel found
 * closing (web/src/net/webrtc-link.ts `transmit`): the link closes under the session that sent it
 * while that session still reads (core/session `writable`; docs/protocol/session.md §5).
 * `onRefuse` runs at the refusal, before the close.
 */
export function refuseWhenArmed(
  link: TestLink,
  onRefuse: () => void = () => {},
): { arm: () => void; refused: () => boolean } {
  const send = link.send.bind(link);
  let armed = false;
  let refused = false;
  link.send = (m: Uint8Array) => {
    if (armed) {
      armed = false;
      refused = true;
      onRefuse();
      link.close("ERR_CONNECTION_FAILURE", "the connection failed"); // the send below throws
    }
    send(m);
  };
  return {
    arm: () => {
      if (!refused) armed = true;
    },
    refused: () => refused,
  };
}

/**
 * Hold the reader of the session on `link` at its next read (`release` lets it go on): the link
 * can then close under a session that still has frames to read (core/session `writable`;
 * docs/protocol/session.md §5).
 */
export function holdReader(link: TestLink): { held: () => boolean; release: () => void } {
  const read = link.receiveMany.bind(link);
  let held = false;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  link.receiveMany = async (max: number) => {
    held = true;
    await gate;
    return read(max);
  };
  return { held: () => held, release };
}

/**
 * Give two joined test links a bulk lane each, as a direct link's `loft-bulk` channel pair.
 * `chunkBytes`: the largest chunk each lane says its end takes (`BULK_CHUNKS`); 0, the lanes say
 * nothing — as those of session 17 and before, whose peers are offered the default chunk size only.
 */
export function joinBulk(a: TestLink, b: TestLink, chunkBytes = 0): void {
  const [ca, cb] = fakeChannelPair();
  for (const [link, channel] of [
    [a, ca],
    [b, cb],
  ] as const) {
    const lane = new BulkLane({ onFailure: (info) => link.close(info.reason, info.detail), chunkBytes });
    lane.attach(channel);
    link.bulk = lane;
    link.channel = channel;
  }
}

/**
 * `base`'s primitives, every AEAD call the real one — but after `arm()` the first Noise transport
 * seal (empty AD: docs/protocol/session.md §5) of a frame over 60 000 bytes (a file chunk or a
 * proxy DATA inside a session) waits until `release()`. The send chain of the session sealing it
 * stops there, so what its engine sends meanwhile queues in the session — for tests of the order
 * the session picks (session.md §5, "Bulk frames"). `seals`: each other seal done, by AD
 * ("file": a chunk's, "loft/file/v1"; "other": a non-empty AD, a ratchet message's; "none") and
 * plaintext length.
 */
export function sealGate(base: CryptoProvider = nobleCrypto) {
  let armed = false;
  let held = false;
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const seals: { ad: "file" | "other" | "none"; length: number }[] = [];
  const gated = (aead: Aead): Aead => ({
    ...aead,
    async seal(key, nonce, ad, plaintext, output) {
      if (armed && ad.length === 0 && plaintext.length > 60_000) {
        armed = false;
        held = true;
        await gate;
      }
      const sealed = await aead.seal(key, nonce, ad, plaintext, output);
      const file = new TextDecoder().decode(ad.subarray(0, 12)) === "loft/file/v1";
      seals.push({ ad: file ? "file" : ad.length > 0 ? "other" : "none", length: plaintext.length });
      return sealed;
    },
  });
  const provider: CryptoProvider = {
    ...base,
    chacha20poly1305: gated(base.chacha20poly1305),
    aes256gcm: gated(base.aes256gcm),
  };
  return {
    provider,
    seals,
    arm: () => {
      armed = true;
    },
    held: () => held,
    release: () => release(),
  };
}

/**
 * Record what `link` is handed, in order, by size class: a frame over 60 000 bytes "big", one of
 * `classes` (name → [min, max] bytes) by its name, else "other" (PINGs, small messages).
 */
export function handedSizes(link: TestLink, classes: Record<string, [number, number]>): string[] {
  const handed: string[] = [];
  const send = link.send.bind(link);
  link.send = (m: Uint8Array) => {
    const named = Object.entries(classes).find(([, [min, max]]) => m.length >= min && m.length <= max);
    handed.push(m.length > 60_000 ? "big" : (named?.[0] ?? "other"));
    send(m);
  };
  return handed;
}

/** Stands in for signaling-brokered WebRTC: offers go straight to the other engine's handler. */
export class Hub {
  readonly endpoints = new Map<string, TransportDeps>();
  readonly links: TestLink[] = [];
  offers = 0;
  /** No direct channel ever opens (offers still reach the peer, as with blocked UDP). */
  blockDirect = false;
  /** Links with no bulk lane (a peer of an older version, or the relay: everything in the session). */
  noBulk = false;
  /**
   * What the links' bulk lanes say their ends take (`joinBulk`): 0 by default, so files go in
   * chunks of the default size (the tests that count chunks were written for it); a test of the
   * larger chunks (docs/protocol/files.md §2) sets `BULK_CHUNK_MAX`.
   */
  laneChunks = 0;
  /** Runs on each pair of links as it is made (after `joinBulk`): a test's hook on its lanes. */
  onLinks: ((mine: TestLink, theirs: TestLink) => void) | undefined;
  factory(self: UserIdentity) {
    const key = self.identity.verified.identity_key;
    const hex = toHex(key);
    return (deps: TransportDeps): LiveTransport => {
      this.endpoints.set(hex, deps);
      return {
        path: "direct",
        dial: (peer, options) => {
          const mine = new TestLink(this.blockDirect);
          const theirs = new TestLink(this.blockDirect);
          mine.peer = theirs;
          theirs.peer = mine;
          mine.owner = hex;
          theirs.owner = toHex(peer);
          if (!this.blockDirect && !this.noBulk) joinBulk(mine, theirs, this.laneChunks);
          this.onLinks?.(mine, theirs);
          this.links.push(mine, theirs);
          const target = this.endpoints.get(toHex(peer));
          queueMicrotask(() => {
            if (!target) return mine.close("LOFT_ERR_SIGNALING_PEER_OFFLINE");
            this.offers++;
            const offer: IncomingOffer = {
              from: key,
              ...(options?.room ? { room: options.room } : {}),
              accept: () => theirs,
              refuse: (r) => mine.close(`bye-${r}`),
            };
            target.onOffer(offer);
          });
          return mine;
        },
        close: () => {
          if (this.endpoints.get(hex) === deps) this.endpoints.delete(hex);
        },
      };
    };
  }
}

/** Engine timings for tests on in-memory links: a dead link is noticed, and redialled, in well under a second. */
export const FAST_ENGINE: Partial<EngineConfig> = {
  heartbeatIntervalMs: 100,
  heartbeatTimeoutMs: 600,
  backoffInitialMs: 50,
  backoffMaxMs: 300,
  glareDelayMs: 50,
  // Lanes of `laneChunks` 0 never say which chunks they take: a multi-chunk file waits this long.
  laneAnswerMs: 50,
  deferredSaveRetryMs: 50,
  deferredSaveRetryMaxMs: 300,
  log: () => {},
};

export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 15_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** WebSockets to a relay from Node (no compression, as in the browser), from `localAddress` if given. */
export const relaySocket = (url: string, localAddress?: string) =>
  new WebSocket(url, {
    perMessageDeflate: false,
    ...(localAddress ? { localAddress } : {}),
  }) as unknown as RelayWebSocketLike;

/**
 * Alice's and Bob's Noise XXhfs sessions over a pair of in-memory links (no engine); both send
 * `extensions` in their handshakes. `links` are Alice's and Bob's ends, if the caller needs to reach
 * them (a fresh pair, joined, if not).
 */
export function sessionPair(
  extensions: Readonly<Record<string, Uint8Array>> = {},
  [a, b]: [TestLink, TestLink] = [new TestLink(), new TestLink()],
): Promise<[Session, Session]> {
  const alice = createUserIdentity({ username: "alice", now: Date.now() });
  const bob = createUserIdentity({ username: "bob", now: Date.now() });
  a.peer = b;
  b.peer = a;
  return Promise.all([
    establishSession({
      link: a,
      role: "initiator",
      kind: "direct",
      self: alice,
      expectedIdentityKey: bob.identity.verified.identity_key,
      extensions,
    }),
    establishSession({
      link: b,
      role: "responder",
      kind: "direct",
      self: bob,
      expectedIdentityKey: alice.identity.verified.identity_key,
      extensions,
    }),
  ]);
}

/** One engine under test, with what it emitted and logged. */
export interface EngineNode {
  user: UserIdentity;
  id: ContactId;
  storage: MemoryStorage;
  engine: Engine;
  events: EngineEvent[];
  /** Storage states seen at the moment each message-state event was emitted. */
  storedAtEmit: { event: MessageState; stored: MessageState | undefined }[];
  logs: string[];
}

/** Where the engines of a test connect, read when a node is made (the services start in beforeAll). */
export interface HarnessBase {
  signalingUrl: string;
  /** Our relay, when the test runs one (the engine then gets relay connections and mailboxes). */
  relayUrl?: string;
  config: Partial<EngineConfig>;
}

export class EngineHarness {
  /** The in-memory stand-in for WebRTC the nodes dial through; a test may replace it. */
  hub = new Hub();
  readonly running: Engine[] = [];
  readonly #nodes: EngineNode[] = [];
  readonly #base: () => HarnessBase;

  constructor(base: () => HarnessBase) {
    this.#base = base;
  }

  /**
   * An engine for `name` (a new identity unless `user`), on `storage` (new unless given), with
   * signaling at `signalingUrl` ("" for none; the storage's own when not given) and `config` over
   * the harness's.
   */
  node(
    name: string,
    user = createUserIdentity({ username: name, now: Date.now() }),
    storage?: MemoryStorage,
    signalingUrl?: string,
    config: Partial<EngineConfig> = {},
  ): EngineNode {
    const base = this.#base();
    const s = storage ?? new MemoryStorage(base.signalingUrl, base.relayUrl ? [base.relayUrl] : []);
    if (signalingUrl !== undefined) s.settings.signalingUrl = signalingUrl;
    const logs: string[] = [];
    const n: EngineNode = {
      user,
      id: toHex(user.identity.verified.identity_key),
      storage: s,
      engine: new Engine(
        { user, storage: s },
        {
          ...base.config,
          webSocket: wsFactory(),
          relayWebSocket: relaySocket,
          transport: this.hub.factory(user),
          ...config,
          relayConnections: config.relayConnections ?? createRelayPool,
          log: (m) => {
            logs.push(m);
            config.log?.(m);
          },
        },
      ),
      events: [],
      storedAtEmit: [],
      logs,
    };
    n.engine.subscribe((e) => {
      n.events.push(e);
      if (e.type === "message-state")
        n.storedAtEmit.push({ event: e.state, stored: s.messages.get(e.id)?.state });
    });
    this.running.push(n.engine);
    this.#nodes.push(n);
    return n;
  }

  online(n: EngineNode, peer: EngineNode): boolean {
    return n.engine.presence(peer.id).status === "online";
  }

  stateOf(n: EngineNode, id: MessageId): MessageState | undefined {
    return n.storage.messages.get(id)?.state;
  }

  knowsMailboxOf(n: EngineNode, peer: EngineNode): boolean {
    return n.storage.secrets.has(SECRET.tx(peer.id));
  }

  /**
   * Alice and Bob, each the other's contact, both started and online (directly unless
   * `blockDirect`); with a relay, once both hold the other's mailbox. `noBulk`: their links
   * have no bulk lane (as to a peer of an older version). `config`: over the harness's, for both.
   */
  async pair(
    blockDirect = false,
    noBulk = false,
    config: Partial<EngineConfig> = {},
    laneChunks = 0,
  ): Promise<[EngineNode, EngineNode]> {
    this.hub = new Hub();
    this.hub.blockDirect = blockDirect;
    this.hub.noBulk = noBulk;
    this.hub.laneChunks = laneChunks;
    const a = this.node("alice", undefined, undefined, undefined, config);
    const b = this.node("bob", undefined, undefined, undefined, config);
    a.storage.addUser(b.user);
    b.storage.addUser(a.user);
    await a.engine.start();
    await b.engine.start();
    await until(() => this.online(a, b) && this.online(b, a), "both online");
    // Lanes that take wide chunks: each says so before a test sends, so the chunk size a file gets is
    // the lanes' answer, not the sender's bound (`laneAnswerMs`) winning a race on a loaded machine.
    if (laneChunks > 0 && !blockDirect && !noBulk)
      await until(() => {
        const lanes = this.hub.links.filter((l) => l.state === "open" && l.bulk);
        return lanes.length >= 2 && lanes.every((l) => l.bulk?.peerChunkBytes !== undefined);
      }, "each lane told which chunks its peer takes");
    if (this.#base().relayUrl)
      await until(() => this.knowsMailboxOf(a, b) && this.knowsMailboxOf(b, a), "mailboxes exchanged");
    return [a, b];
  }

  /** Stop every engine; throws when one logged a link-state move its table does not allow. */
  async stopAll(): Promise<void> {
    for (const e of this.running.splice(0)) await e.stop();
    const nodes = this.#nodes.splice(0);
    const bad = nodes.flatMap((n) => n.logs.filter((l) => l.includes("unexpected transition")));
    if (bad.length > 0) throw new Error(`link state moves outside the table:\n${bad.join("\n")}`);
  }
}

/**
 * The set-up of a `describe` whose engines meet through a real signaling service and no relay
 * (called in its body): signaling starts before the first test and closes after the last; each
 * test's engines are stopped after it, failing it on a link-state move outside the table
 * (`stopAll`). `config`: the engines' config. `signaling()`: the running service (once started).
 */
export function engineHarnessPerSuite(config: Partial<EngineConfig>): {
  h: EngineHarness;
  signaling: () => RunningSignaling;
} {
  let running: RunningSignaling | undefined;
  const signaling = () => {
    if (!running) throw new Error("signaling is not started (before the describe's first test)");
    return running;
  };
  const h = new EngineHarness(() => ({ signalingUrl: signaling().url, config }));
  beforeAll(async () => {
    running = await startSignaling();
  });
  afterAll(async () => {
    await running?.close();
  });
  afterEach(async () => {
    await h.stopAll();
  });
  return { h, signaling };
}
