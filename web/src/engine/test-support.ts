/**
 * Test doubles for the engine in Node (engine.test.ts, relay.test.ts): storage in memory, links
 * in memory, and a hub standing in for signaling-brokered WebRTC.
 */
import { toHex } from "../../../core/bytes.ts";
import { encodeIdentity, type UserIdentity } from "../../../core/identity/identity.ts";
import type { LinkCloseInfo } from "../../../core/link/link.ts";
import { QueueLink } from "../../../core/link/queue-link.ts";
import type {
  ContactId,
  ContactRecord,
  EngineError,
  EngineSettings,
  EngineStorage,
  MessageId,
  MessageState,
  OutboxEntry,
  PendingIdentityChange,
  StoredMessage,
} from "./api.ts";
import type { DialedLink, IncomingOffer, LiveTransport, TransportDeps } from "./transport.ts";

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
  override setMessageState(id: MessageId, state: MessageState, failure?: EngineError) {
    return this.#write(() => super.setMessageState(id, state, failure));
  }
}

export class TestLink extends QueueLink implements DialedLink {
  peer: TestLink | undefined;
  cut = false;
  readonly opened: Promise<void>;
  /** `neverOpens`: stands for a data channel whose ICE never connects (opened rejects on close). */
  constructor(neverOpens = false) {
    super(neverOpens ? "connecting" : "open");
    this.opened = neverOpens
      ? this.closed.then((info) =>
          Promise.reject(Object.assign(new Error(info.reason), { code: info.reason })),
        )
      : Promise.resolve();
    this.opened.catch(() => {});
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
    this.finish({ reason: "remote-closed", detail: info.reason }, false);
  }
}

/** Stands in for signaling-brokered WebRTC: offers go straight to the other engine's handler. */
export class Hub {
  readonly endpoints = new Map<string, TransportDeps>();
  readonly links: TestLink[] = [];
  offers = 0;
  /** No direct channel ever opens (offers still reach the peer, as with blocked UDP). */
  blockDirect = false;
  factory(self: UserIdentity) {
    const key = self.identity.verified.identity_key;
    const hex = toHex(key);
    return (deps: TransportDeps): LiveTransport => {
      this.endpoints.set(hex, deps);
      return {
        path: "direct",
        dial: (peer) => {
          const mine = new TestLink(this.blockDirect);
          const theirs = new TestLink(this.blockDirect);
          mine.peer = theirs;
          theirs.peer = mine;
          this.links.push(mine, theirs);
          const target = this.endpoints.get(toHex(peer));
          queueMicrotask(() => {
            if (!target) return mine.close("LOFT_ERR_SIGNALING_PEER_OFFLINE");
            this.offers++;
            const offer: IncomingOffer = {
              from: key,
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
