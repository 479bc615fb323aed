/**
 * LoftStorage: everything the PWA keeps on this device, in one IndexedDB database (db.ts), with
 * private keys, ratchet sessions and engine secrets sealed by the vault (vault.ts). Implements the
 * engine's `EngineStorage` (engine/api.ts) and the UI's needs (identity, contacts, history,
 * settings, passphrase, backups).
 */
import { decode, encode } from "@msgpack/msgpack";
import type {
  ContactEndpoints,
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
} from "../engine/api.ts";
import type { Trust } from "../identity.ts";
import { type Database, deleteDatabase, openDatabase, type SelfRecord, type SettingsRecord } from "./db.ts";
import { generateDeviceKey, type PassphraseConfig, type Sealed, Vault } from "./vault.ts";

/** The user's own identity as stored, with private keys opened. */
export interface StoredSelf {
  /** `encodeIdentity` bytes. */
  identity: Uint8Array;
  username: string;
  privateIdentityKey: Uint8Array;
  privateNoiseKey: Uint8Array;
  createdAt: number;
}

/** Default endpoints: this page's own origin, `/signal` and `/relay` (same host serves all). */
export function defaultSettings(origin: string = location.origin): EngineSettings {
  const ws = origin.replace(/^http/, "ws");
  return { signalingUrl: `${ws}/signal`, relayUrls: [`${ws}/relay`] };
}

export class LoftStorage implements EngineStorage {
  readonly #db: Database;
  #vault: Vault;
  readonly #name: string;

  private constructor(db: Database, vault: Vault, name: string) {
    this.#db = db;
    this.#vault = vault;
    this.#name = name;
  }

  /**
   * Open the database, creating the device key on first use. If a passphrase is set, the storage
   * starts `locked`: public data reads fine, secrets need `unlock` first.
   */
  static async open(name?: string, onBlocking?: () => void): Promise<LoftStorage> {
    const db = await openDatabase(name, onBlocking);
    let device = (await db.get("meta", "device-key")) as CryptoKey | undefined;
    if (!device) {
      const fresh = await generateDeviceKey();
      // add() rather than put(): if another tab raced us, keep its key and use that one.
      await db.add("meta", fresh, "device-key").catch(() => undefined);
      device = (await db.get("meta", "device-key")) as CryptoKey;
    }
    const pass = (await db.get("meta", "passphrase")) as PassphraseConfig | undefined;
    return new LoftStorage(db, new Vault(device, pass !== undefined), name ?? "loft");
  }

  close(): void {
    this.#db.close();
  }

  /** Close and delete the whole database: identity, device key, contacts, history. */
  async destroy(): Promise<void> {
    this.#db.close();
    await deleteDatabase(this.#name);
  }

  // --- passphrase ------------------------------------------------------------------------------

  get locked(): boolean {
    return this.#vault.locked;
  }

  get hasPassphrase(): boolean {
    return this.#vault.hasPassphrase;
  }

  async unlock(passphrase: string): Promise<void> {
    const config = (await this.#db.get("meta", "passphrase")) as PassphraseConfig | undefined;
    if (!config) return;
    await this.#vault.unlock(passphrase, config);
  }

  /**
   * Set, change (a string) or remove (`null`) the passphrase layer. Every sealed record is opened
   * with the current vault and re-sealed with the new one, then written in one transaction.
   */
  async setPassphrase(passphrase: string | null): Promise<void> {
    const { vault, config } = await this.#vault.withPassphrase(passphrase);
    const self = await this.#db.get("self", "self");
    const sessions = await this.#resealAll("sessions", "session/", vault);
    const secrets = await this.#resealAll("secrets", "secret/", vault);
    const selfKeys = self
      ? await vault.seal("self/keys", await this.#vault.open("self/keys", self.keys))
      : null;
    const tx = this.#db.transaction(["meta", "self", "sessions", "secrets"], "readwrite");
    if (config) tx.objectStore("meta").put(config, "passphrase");
    else tx.objectStore("meta").delete("passphrase");
    if (self && selfKeys) tx.objectStore("self").put({ ...self, keys: selfKeys }, "self");
    for (const [k, v] of sessions) tx.objectStore("sessions").put(v, k);
    for (const [k, v] of secrets) tx.objectStore("secrets").put(v, k);
    await tx.done;
    this.#vault = vault;
  }

  async #resealAll(store: "sessions" | "secrets", prefix: string, to: Vault): Promise<[string, Sealed][]> {
    const keys = await this.#db.getAllKeys(store);
    const out: [string, Sealed][] = [];
    for (const k of keys) {
      const sealed = await this.#db.get(store, k);
      if (!sealed) continue;
      const plain = await this.#vault.open(prefix + k, sealed);
      out.push([k, await to.seal(prefix + k, plain)]);
      plain.fill(0);
    }
    return out;
  }

  // --- own identity ----------------------------------------------------------------------------

  async hasSelf(): Promise<boolean> {
    return (await this.#db.count("self")) > 0;
  }

  /** Public part only (works while locked). */
  async getSelfPublic(): Promise<{ identity: Uint8Array; username: string; createdAt: number } | undefined> {
    const s = await this.#db.get("self", "self");
    return s && { identity: s.identity, username: s.username, createdAt: s.createdAt };
  }

  async getSelf(): Promise<StoredSelf | undefined> {
    const s = await this.#db.get("self", "self");
    if (!s) return undefined;
    const plain = await this.#vault.open("self/keys", s.keys);
    // decode() returns views into `plain`: copy the keys out before wiping it.
    const keys = decode(plain) as { ik: Uint8Array; nk: Uint8Array };
    const self: StoredSelf = {
      identity: s.identity,
      username: s.username,
      createdAt: s.createdAt,
      privateIdentityKey: keys.ik.slice(),
      privateNoiseKey: keys.nk.slice(),
    };
    plain.fill(0);
    return self;
  }

  async saveSelf(self: StoredSelf): Promise<void> {
    const plain = encode({ ik: self.privateIdentityKey, nk: self.privateNoiseKey });
    const keys = await this.#vault.seal("self/keys", plain);
    plain.fill(0);
    const record: SelfRecord = {
      identity: self.identity,
      username: self.username,
      keys,
      createdAt: self.createdAt,
    };
    await this.#db.put("self", record, "self");
  }

  // --- settings --------------------------------------------------------------------------------

  async getSettingsRecord(): Promise<SettingsRecord> {
    return (await this.#db.get("settings", "settings")) ?? {};
  }

  async setSettingsRecord(settings: SettingsRecord): Promise<void> {
    await this.#db.put("settings", settings, "settings");
  }

  async getSettings(): Promise<EngineSettings> {
    const s = await this.getSettingsRecord();
    const d = defaultSettings();
    return {
      signalingUrl: s.signalingUrl || d.signalingUrl,
      relayUrls: s.relayUrls && s.relayUrls.length > 0 ? s.relayUrls : d.relayUrls,
      ...(s.iceServers && s.iceServers.length > 0 ? { iceServers: s.iceServers } : {}),
      ...(s.iceTransportPolicy === "relay" ? { iceTransportPolicy: "relay" as const } : {}),
    };
  }

  // --- contacts --------------------------------------------------------------------------------

  getContact(id: ContactId): Promise<ContactRecord | undefined> {
    return this.#db.get("contacts", id);
  }

  async listContacts(): Promise<ContactRecord[]> {
    const all = await this.#db.getAll("contacts");
    return all.sort((a, b) => a.username.localeCompare(b.username) || a.id.localeCompare(b.id));
  }

  findContactsByUsername(username: string): Promise<ContactRecord[]> {
    return this.#db.getAllFromIndex("contacts", "by-username", username);
  }

  async putContact(contact: ContactRecord): Promise<void> {
    await this.#db.put("contacts", contact);
  }

  async addContact(contact: ContactRecord): Promise<void> {
    const tx = this.#db.transaction("contacts", "readwrite");
    if (!(await tx.store.get(contact.id))) await tx.store.put(contact);
    await tx.done;
  }

  /** The user accepted a first-contact request. */
  async acceptRequest(id: ContactId): Promise<void> {
    await this.#updateContact(id, (c) => {
      delete c.request;
    });
  }

  /** The user declined a first-contact request: the sender becomes Rejected (gets nothing). */
  async declineRequest(id: ContactId): Promise<void> {
    await this.#updateContact(id, (c) => {
      delete c.request;
      c.trust = "rejected";
      delete c.verifiedAt;
    });
  }

  async #updateContact(
    id: ContactId,
    change: (c: ContactRecord) => void,
  ): Promise<ContactRecord | undefined> {
    const tx = this.#db.transaction("contacts", "readwrite");
    const c = await tx.store.get(id);
    if (c) {
      change(c);
      await tx.store.put(c);
    }
    await tx.done;
    return c;
  }

  async touchContact(id: ContactId, at: number): Promise<void> {
    await this.#updateContact(id, (c) => {
      c.lastSeen = Math.max(c.lastSeen, at);
    });
  }

  async recordIdentityChange(id: ContactId, change: PendingIdentityChange): Promise<void> {
    await this.#updateContact(id, (c) => {
      c.pending = change;
    });
  }

  async updateContactIdentity(id: ContactId, identity: Uint8Array, username: string): Promise<void> {
    await this.#updateContact(id, (c) => {
      c.identity = identity;
      c.username = username;
    });
  }

  async setEndpoints(id: ContactId, endpoints: ContactEndpoints): Promise<void> {
    await this.#updateContact(id, (c) => {
      c.endpoints = endpoints;
    });
  }

  async setTrust(id: ContactId, trust: Trust, at = Date.now()): Promise<ContactRecord | undefined> {
    return this.#updateContact(id, (c) => {
      c.trust = trust;
      if (trust === "trusted") c.verifiedAt = at;
      else delete c.verifiedAt;
    });
  }

  async clearPending(id: ContactId): Promise<void> {
    await this.#updateContact(id, (c) => {
      delete c.pending;
    });
  }

  /** Delete a contact with its history, outbox entries and ratchet session. */
  async deleteContact(id: ContactId): Promise<void> {
    const tx = this.#db.transaction(["contacts", "messages", "outbox", "sessions"], "readwrite");
    tx.objectStore("contacts").delete(id);
    tx.objectStore("sessions").delete(id);
    const range = IDBKeyRange.bound([id, -Infinity], [id, Infinity]);
    for await (const cur of tx.objectStore("messages").index("by-contact").iterate(range)) cur.delete();
    for await (const cur of tx.objectStore("outbox").index("by-contact").iterate(range)) cur.delete();
    await tx.done;
  }

  // --- messages --------------------------------------------------------------------------------

  /** One contact's history, oldest first; with `limit`, the newest `limit` messages. */
  async listMessages(contactId: ContactId, limit?: number): Promise<StoredMessage[]> {
    const range = IDBKeyRange.bound([contactId, -Infinity], [contactId, Infinity]);
    if (limit === undefined) return this.#db.getAllFromIndex("messages", "by-contact", range);
    const out: StoredMessage[] = [];
    const tx = this.#db.transaction("messages");
    for await (const cur of tx.store.index("by-contact").iterate(range, "prev")) {
      out.push(cur.value);
      if (out.length >= limit) break;
    }
    await tx.done;
    return out.reverse();
  }

  /**
   * One page of a contact's history for the chat screen, oldest first: the newest `limit`
   * messages with `at` ≤ `before` (all of history when `before` is undefined). `at` is inclusive
   * so messages sharing the boundary's time are not skipped; the caller drops ids it already has.
   * One cursor walk over the `by-contact` index: the cost is the page, not the history.
   */
  async listMessagesPage(contactId: ContactId, limit: number, before?: number): Promise<StoredMessage[]> {
    const upper = before === undefined ? Infinity : before;
    const range = IDBKeyRange.bound([contactId, -Infinity], [contactId, upper]);
    const out: StoredMessage[] = [];
    const tx = this.#db.transaction("messages");
    for await (const cur of tx.store.index("by-contact").iterate(range, "prev")) {
      out.push(cur.value);
      if (out.length >= limit) break;
    }
    await tx.done;
    return out.reverse();
  }

  getMessage(id: MessageId): Promise<StoredMessage | undefined> {
    return this.#db.get("messages", id);
  }

  async putMessage(message: StoredMessage): Promise<void> {
    await this.#db.put("messages", message);
  }

  async setMessageState(id: MessageId, state: MessageState, failure?: EngineError): Promise<void> {
    const tx = this.#db.transaction("messages", "readwrite");
    const m = await tx.store.get(id);
    if (m) {
      m.state = state;
      if (failure) m.failure = failure;
      else delete m.failure;
      await tx.store.put(m);
    }
    await tx.done;
  }

  findIncoming(contactId: ContactId, remoteId: string): Promise<StoredMessage | undefined> {
    return this.#db.getFromIndex("messages", "by-remote", [contactId, remoteId]);
  }

  /** Store a new outgoing message and its outbox entry together. */
  async queueOutgoing(message: StoredMessage): Promise<void> {
    const tx = this.#db.transaction(["messages", "outbox"], "readwrite");
    tx.objectStore("messages").put(message);
    tx.objectStore("outbox").put({
      messageId: message.id,
      contactId: message.contactId,
      queuedAt: message.at,
      attempts: 0,
    });
    await tx.done;
  }

  // --- outbox ----------------------------------------------------------------------------------

  listOutbox(contactId?: ContactId): Promise<OutboxEntry[]> {
    if (contactId === undefined) return this.#db.getAllFromIndex("outbox", "by-time");
    return this.#db.getAllFromIndex(
      "outbox",
      "by-contact",
      IDBKeyRange.bound([contactId, -Infinity], [contactId, Infinity]),
    );
  }

  async putOutbox(entry: OutboxEntry): Promise<void> {
    await this.#db.put("outbox", entry);
  }

  async deleteOutbox(messageId: MessageId): Promise<void> {
    await this.#db.delete("outbox", messageId);
  }

  // --- sealed engine state ---------------------------------------------------------------------

  async loadSession(id: ContactId): Promise<Uint8Array | undefined> {
    const s = await this.#db.get("sessions", id);
    return s && this.#vault.open(`session/${id}`, s);
  }

  async saveSession(id: ContactId, state: Uint8Array): Promise<void> {
    await this.#db.put("sessions", await this.#vault.seal(`session/${id}`, state), id);
  }

  async deleteSession(id: ContactId): Promise<void> {
    await this.#db.delete("sessions", id);
  }

  async loadSecret(name: string): Promise<Uint8Array | undefined> {
    const s = await this.#db.get("secrets", name);
    return s && this.#vault.open(`secret/${name}`, s);
  }

  async saveSecret(name: string, value: Uint8Array): Promise<void> {
    await this.#db.put("secrets", await this.#vault.seal(`secret/${name}`, value), name);
  }

  async deleteSecret(name: string): Promise<void> {
    await this.#db.delete("secrets", name);
  }

  // --- backups (see backup.ts for the file format) ---------------------------------------------

  /** Everything a backup carries, in clear: own identity with keys, contacts, history, settings. */
  async exportBundle(): Promise<BackupBundle> {
    const self = await this.getSelf();
    if (!self) throw new Error("There is no identity on this device to back up.");
    return {
      self,
      contacts: await this.#db.getAll("contacts"),
      messages: await this.#db.getAll("messages"),
      settings: await this.getSettingsRecord(),
    };
  }

  /**
   * Replace this device's identity, contacts, history and settings with a backup's. Ratchet
   * sessions, engine secrets and the outbox are cleared (sessions restart with a new handshake;
   * a restored ratchet would fork the peer's). The passphrase layer stays as it is.
   */
  async importBundle(bundle: BackupBundle): Promise<void> {
    const plain = encode({ ik: bundle.self.privateIdentityKey, nk: bundle.self.privateNoiseKey });
    const keys = await this.#vault.seal("self/keys", plain);
    plain.fill(0);
    const stores = ["self", "contacts", "messages", "sessions", "secrets", "outbox", "settings"] as const;
    const tx = this.#db.transaction([...stores], "readwrite");
    for (const s of stores) tx.objectStore(s).clear();
    tx.objectStore("self").put(
      {
        identity: bundle.self.identity,
        username: bundle.self.username,
        keys,
        createdAt: bundle.self.createdAt,
      },
      "self",
    );
    for (const c of bundle.contacts) tx.objectStore("contacts").put(c);
    for (const m of bundle.messages) {
      // Anything not yet handed off before the backup can't be resumed without its session.
      if (m.direction === "out" && (m.state === "queued" || m.state === "sending")) {
        m.state = "failed";
        m.failure = { kind: "internal", message: "Not sent before the backup was made. Retry to send it." };
      }
      tx.objectStore("messages").put(m);
    }
    tx.objectStore("settings").put(bundle.settings, "settings");
    await tx.done;
  }
}

export interface BackupBundle {
  self: StoredSelf;
  contacts: ContactRecord[];
  messages: StoredMessage[];
  settings: SettingsRecord;
}
