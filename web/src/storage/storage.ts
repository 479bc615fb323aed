/**
 * LoftStorage: everything the PWA keeps on this device, in one IndexedDB database (db.ts), with
 * private keys, ratchet sessions, engine secrets, message history and contact records sealed by
 * the vault (vault.ts: under the device key, and the passphrase where set). Implements the
 * engine's `EngineStorage` (engine/api.ts) and the UI's needs (identity, contacts, history,
 * settings, passphrase, backups).
 *
 * What stays clear, so IndexedDB can index and list without the keys (issue #17):
 *  - contacts: `id` (the contact's identity key, hex), `trust`, `firstSeen`, `lastSeen`,
 *    `verifiedAt`, `request` (its time); sealed as "contact/<id>": identity, username, pending
 *    identity change, endpoints;
 *  - messages: `id`, `contactId`, `at` (the index by contact and time), `state`, `remoteId` (the
 *    peer's random message id, for de-duplication); sealed as "message/<id>": direction, text,
 *    sentAt, failure.
 * Records an earlier version wrote in clear are read as they are and sealed in the background after
 * open (or unlock): `#sealLegacyRecords`. A read-modify-write of a sealed record cannot keep one
 * IndexedDB transaction open across WebCrypto, so writes to one record are serialized per record in
 * this tab (`#serial`).
 *
 * Passphrase changes (`setPassphrase`) re-seal every record and switch vault. Every public method
 * that reads or writes a sealed record runs through a shared/exclusive gate (gate.ts) and the
 * re-seal takes it exclusively: no write seals under the old vault after the switch, no write is
 * overwritten by a stale re-sealed copy, and no read opens a record with the wrong vault. Private
 * helpers (`#…`) never take the gate (it is not re-entrant). A list (contacts, a page of history)
 * skips a record that does not open and counts it (`unreadableRecords`) rather than failing whole.
 *
 * Beside the database, in localStorage: the outbox journal (journal.ts; docs/protocol/chat.md §9,
 * "The outbox journal"), sealed entries of messages handed over and not yet committed here, so a
 * reload right after Enter replays them (`journalOutgoing`, `forgetJournaled`, `replayJournal`);
 * and the draft copies (draft-copies.ts; docs/protocol/chat.md §9, "Draft copies"), sealed copies of
 * unsent words made when the page goes, folded into the drafts at the next start (`copyDraft`,
 * `draftCopies`, `forgetDraftCopy`, `dropDraftCopy`).
 */
import { encode } from "@msgpack/msgpack";
import type { IDBPTransaction } from "idb";
import { decodeOwnRecord } from "../../../core/codec/codec.ts";
import type {
  ContactEndpoints,
  ContactId,
  ContactRecord,
  DeviceContactInfo,
  EngineError,
  EngineSettings,
  EngineStorage,
  MessageId,
  MessageState,
  OutboxEntry,
  PendingIdentityChange,
  StoredMessage,
} from "../engine/api.ts";
import { type DraftCopy, type DraftKey, draftSecret } from "../engine/local-notes.ts";
import type { Trust } from "../identity.ts";
import { clearSeenOffers } from "../net/seen-offers.ts";
import { type BackupLocalEntry, listedRoomsOnly, travelsInBackup } from "./backup-local.ts";
import {
  type Database,
  deleteDatabase,
  type LoftDB,
  openDatabase,
  type SealedContactRecord,
  type SealedMessageRecord,
  type SelfRecord,
  type SettingsRecord,
} from "./db.ts";
import { clearDraftCopies, DraftCopies, draftCopyKey } from "./draft-copies.ts";
import { StorageGate } from "./gate.ts";
import {
  clearJournals,
  type JournalEntry,
  journalKey,
  OutboxJournal,
  pageLocks,
  pageSyncStore,
} from "./journal.ts";
import {
  generateDeviceKey,
  kdfNeedsUpgrade,
  LockedError,
  type PassphraseConfig,
  type Sealed,
  Vault,
} from "./vault.ts";

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

/** The sealed part of a contact record. */
interface ContactSecret {
  identity: Uint8Array;
  username: string;
  pending?: PendingIdentityChange;
  endpoints?: ContactEndpoints;
  device?: DeviceContactInfo;
  answersSuiteOffers?: boolean;
}

/** The sealed part of a message record. */
interface MessageSecret {
  direction: StoredMessage["direction"];
  text: string;
  sentAt?: number;
  failure?: EngineError;
  call?: StoredMessage["call"];
}

/** Meta key set once every contact and message has been sealed (`#sealLegacyRecords`). */
const HISTORY_SEALED = "history-sealed";

const isSealedContact = (r: ContactRecord | SealedContactRecord): r is SealedContactRecord => "sealed" in r;
const isSealedMessage = (r: StoredMessage | SealedMessageRecord): r is SealedMessageRecord => "sealed" in r;
/** A sealed blob's IV as a map key (`#contactCache`). */
const ivKey = (iv: Uint8Array): string => Array.from(iv, (b) => b.toString(16).padStart(2, "0")).join("");

export class LoftStorage implements EngineStorage {
  readonly #db: Database;
  #vault: Vault;
  readonly #name: string;
  /** Per-record write chains (see the file comment). */
  readonly #chains = new Map<string, Promise<unknown>>();
  /** Shared for every sealed read and write, exclusive for a re-seal (see the file comment). */
  readonly #gate = new StorageGate();
  /**
   * Opened sealed parts of contacts, by contact id, keyed by the sealed blob's IV: every write
   * seals with a fresh random IV, so a record written since (here, in another tab, by a re-seal)
   * never matches and is opened again. Spares listContacts/findContactsByUsername one AES-GCM
   * open (two with a passphrase) per contact per call. Dropped on close, destroy and vault change.
   */
  readonly #contactCache = new Map<ContactId, { iv: string; secret: ContactSecret }>();
  /** Records a list skipped because they did not open (see `unreadableRecords`). */
  #unreadable = 0;
  /** The outbox journal of the unlocked identity (journal.ts), from `openJournal`. */
  #journal: OutboxJournal | undefined;
  /** The draft copies of the unlocked identity (draft-copies.ts), opened with the journal. */
  #draftCopies: DraftCopies | undefined;
  /** Messages handed over that neither the journal nor IndexedDB holds yet (`unsavedOutgoing`). */
  readonly #unsaved = new Set<MessageId>();

  private constructor(db: Database, vault: Vault, name: string) {
    this.#db = db;
    this.#vault = vault;
    this.#name = name;
  }

  /**
   * Open the database, creating the device key on first use. If a passphrase is set, the storage
   * starts `locked`: public data reads fine, secrets need `unlock` first.
   */
  static async open(name?: string, onBlocking?: (deleting: boolean) => void): Promise<LoftStorage> {
    const db = await openDatabase(name, onBlocking);
    let device = (await db.get("meta", "device-key")) as CryptoKey | undefined;
    if (!device) {
      const fresh = await generateDeviceKey();
      // add() rather than put(): if another tab raced us, keep its key and use that one.
      await db.add("meta", fresh, "device-key").catch(() => undefined);
      device = (await db.get("meta", "device-key")) as CryptoKey;
    }
    const pass = (await db.get("meta", "passphrase")) as PassphraseConfig | undefined;
    const storage = new LoftStorage(db, new Vault(device, pass !== undefined), name ?? "loft");
    if (!storage.locked) void storage.#sealLegacyRecords();
    return storage;
  }

  // --- sealing of contacts and messages (see the file comment) ----------------------------------

  /** Run `task` after the previous write to `key`, under the shared gate. */
  #serial<T>(key: string, task: () => Promise<T>): Promise<T> {
    const gated = () => this.#gate.shared(task);
    const run = (this.#chains.get(key) ?? Promise.resolve()).then(gated, gated);
    const tail = run.catch(() => {});
    this.#chains.set(key, tail);
    void tail.then(() => {
      if (this.#chains.get(key) === tail) this.#chains.delete(key);
    });
    return run;
  }

  async #sealContact(c: ContactRecord, vault = this.#vault): Promise<SealedContactRecord> {
    const secret: ContactSecret = { identity: c.identity, username: c.username };
    if (c.pending) secret.pending = c.pending;
    if (c.endpoints) secret.endpoints = c.endpoints;
    if (c.device) secret.device = c.device;
    if (c.answersSuiteOffers !== undefined) secret.answersSuiteOffers = c.answersSuiteOffers;
    const plain = encode(secret, { ignoreUndefined: true });
    const sealed = await vault.seal(`contact/${c.id}`, plain);
    plain.fill(0);
    const out: SealedContactRecord = {
      id: c.id,
      trust: c.trust,
      firstSeen: c.firstSeen,
      lastSeen: c.lastSeen,
      sealed,
    };
    if (c.verifiedAt !== undefined) out.verifiedAt = c.verifiedAt;
    if (c.request) out.request = c.request;
    if (c.readAt !== undefined) out.readAt = c.readAt;
    return out;
  }

  async #openContact(r: ContactRecord | SealedContactRecord): Promise<ContactRecord> {
    if (!isSealedContact(r)) return r;
    const iv = ivKey(r.sealed.iv);
    let secret = this.#contactCache.get(r.id)?.iv === iv ? this.#contactCache.get(r.id)?.secret : undefined;
    if (!secret) {
      const vault = this.#vault;
      const plain = await vault.open(`contact/${r.id}`, r.sealed);
      // decodeOwnRecord() returns byte fields as views into `plain`: clone them out before wiping it.
      secret = structuredClone(decodeOwnRecord(plain)) as ContactSecret;
      plain.fill(0);
      // Not cached if the vault changed meanwhile (a re-seal clears the cache before switching).
      if (vault === this.#vault) this.#contactCache.set(r.id, { iv, secret });
    }
    const { sealed: _, ...clear } = r;
    // A copy: callers change what they get (`#updateContact`), the cache must not change with it.
    return { ...clear, ...structuredClone(secret) };
  }

  /**
   * Open every record of a list; one that does not open (damaged, or sealed under a key this
   * vault lacks) is skipped, counted and logged (a count and the error's name: no id, no content),
   * so the rest still shows. Locked storage is not damage: the list fails with LockedError.
   */
  async #openEach<R extends { id: string }, T>(raw: R[], open: (r: R) => Promise<T>): Promise<T[]> {
    const opened = await Promise.allSettled(raw.map(open));
    const out: T[] = [];
    const failures: unknown[] = [];
    for (const o of opened)
      if (o.status === "fulfilled") out.push(o.value);
      else failures.push(o.reason);
    const locked = failures.find((e) => e instanceof LockedError);
    if (locked) throw locked;
    if (failures.length > 0) {
      this.#unreadable += failures.length;
      console.warn(
        `storage: skipped ${failures.length} record(s) that do not open (${(failures[0] as Error)?.name})`,
      );
    }
    return out;
  }

  /** How many records lists have skipped so far because they did not open (`#openEach`). */
  get unreadableRecords(): number {
    return this.#unreadable;
  }

  async #sealMessage(m: StoredMessage, vault = this.#vault): Promise<SealedMessageRecord> {
    const secret: MessageSecret = { direction: m.direction, text: m.text };
    if (m.sentAt !== undefined) secret.sentAt = m.sentAt;
    if (m.failure) secret.failure = m.failure;
    if (m.call) secret.call = m.call;
    const plain = encode(secret, { ignoreUndefined: true });
    const sealed = await vault.seal(`message/${m.id}`, plain);
    plain.fill(0);
    const out: SealedMessageRecord = { id: m.id, contactId: m.contactId, at: m.at, state: m.state, sealed };
    if (m.remoteId !== undefined) out.remoteId = m.remoteId;
    return out;
  }

  async #openMessage(r: StoredMessage | SealedMessageRecord): Promise<StoredMessage> {
    if (!isSealedMessage(r)) return r;
    const plain = await this.#vault.open(`message/${r.id}`, r.sealed);
    const secret = structuredClone(decodeOwnRecord(plain)) as MessageSecret;
    plain.fill(0);
    const { sealed: _, ...clear } = r;
    return { ...clear, ...secret };
  }

  /**
   * Seal what an earlier version stored in clear (contacts, messages), a batch at a time, each
   * record re-read under its write chain so a concurrent update is never overwritten.
   */
  async #sealLegacyRecords(): Promise<void> {
    try {
      if ((await this.#db.get("meta", HISTORY_SEALED)) !== undefined) return;
      for (const c of await this.#db.getAll("contacts"))
        if (!isSealedContact(c))
          await this.#serial(`contact/${c.id}`, async () => {
            const now = await this.#db.get("contacts", c.id);
            if (now && !isSealedContact(now)) await this.#db.put("contacts", await this.#sealContact(now));
          });
      const clear = (await this.#db.getAllKeys("messages")) as string[];
      for (const id of clear)
        await this.#serial(`message/${id}`, async () => {
          const now = await this.#db.get("messages", id);
          if (now && !isSealedMessage(now)) await this.#db.put("messages", await this.#sealMessage(now));
        });
      // Done once: later writes are sealed anyway, and reads still accept a clear record.
      await this.#db.put("meta", { at: Date.now() }, HISTORY_SEALED);
    } catch (e) {
      // Locked again, or closed: the next open/unlock continues.
      console.warn("sealing stored history paused:", (e as Error).message);
    }
  }

  close(): void {
    this.#contactCache.clear();
    this.#closeJournal();
    this.#db.close();
  }

  /**
   * Another tab deleted the identity or is restoring a backup (app/other-tabs.ts): nothing more is
   * read or written from this one — the journal and the draft copies closed (none is written when
   * the page goes), the passphrase key dropped, the database closed (later writes fail).
   */
  retire(): void {
    this.#contactCache.clear();
    this.#closeJournal();
    this.#unsaved.clear();
    this.#vault.lock();
    this.#db.close();
  }

  /**
   * Close and delete the whole database (identity, device key, contacts, history) and the
   * signaling offer nonces this identity kept in localStorage (seen-offers.ts).
   */
  async destroy(): Promise<void> {
    this.#contactCache.clear();
    this.#closeJournal();
    this.#db.close();
    clearSeenOffers();
    clearJournals();
    clearDraftCopies(pageSyncStore());
    await deleteDatabase(this.#name);
  }

  // --- passphrase ------------------------------------------------------------------------------

  get locked(): boolean {
    return this.#vault.locked;
  }

  get hasPassphrase(): boolean {
    return this.#vault.hasPassphrase;
  }

  /**
   * Unlock with the passphrase. A passphrase layer made with an older KDF (PBKDF2, vault.ts
   * `kdfNeedsUpgrade`) is re-derived with Argon2id right away: every sealed record is re-sealed,
   * as when the passphrase changes, so the next unlock (and an attacker with a copy) faces Argon2id.
   */
  async unlock(passphrase: string): Promise<void> {
    const config = (await this.#db.get("meta", "passphrase")) as PassphraseConfig | undefined;
    if (!config) return;
    await this.#vault.unlock(passphrase, config);
    if (kdfNeedsUpgrade(config)) await this.setPassphrase(passphrase);
    void this.#sealLegacyRecords();
  }

  /**
   * Set, change (a string) or remove (`null`) the passphrase layer. Every sealed record is opened
   * with the current vault and re-sealed with the new one, then written in one transaction.
   */
  async setPassphrase(passphrase: string | null): Promise<void> {
    // The key derivation (about 1 s) runs before the gate closes; only the re-seal holds it.
    const { vault, config } = await this.#vault.withPassphrase(passphrase);
    await this.#gate.exclusive(() => this.#reseal(vault, config));
  }

  /**
   * Re-read every sealed record, re-seal it for `vault`, write all in one transaction and switch.
   * Runs under the exclusive gate: nothing else reads or writes sealed records meanwhile.
   */
  async #reseal(vault: Vault, config: PassphraseConfig | null): Promise<void> {
    const self = await this.#db.get("self", "self");
    const sessions = await this.#resealAll("sessions", "session/", vault);
    const secrets = await this.#resealAll("secrets", "secret/", vault);
    const contacts = await this.#resealRecords("contacts", "contact/", vault);
    const messages = await this.#resealRecords("messages", "message/", vault);
    const selfKeys = self
      ? await vault.seal("self/keys", await this.#vault.open("self/keys", self.keys))
      : null;
    const tx = this.#db.transaction(
      ["meta", "self", "sessions", "secrets", "contacts", "messages"],
      "readwrite",
    );
    if (config) tx.objectStore("meta").put(config, "passphrase");
    else tx.objectStore("meta").delete("passphrase");
    if (self && selfKeys) tx.objectStore("self").put({ ...self, keys: selfKeys }, "self");
    for (const [k, v] of sessions) tx.objectStore("sessions").put(v, k);
    for (const [k, v] of secrets) tx.objectStore("secrets").put(v, k);
    for (const c of contacts) tx.objectStore("contacts").put(c as SealedContactRecord);
    for (const m of messages) tx.objectStore("messages").put(m as SealedMessageRecord);
    await tx.done;
    this.#contactCache.clear();
    this.#vault = vault;
  }

  /**
   * Contacts or messages with their sealed part re-sealed for `to`; records still in clear (an
   * earlier version's) are sealed for `to` here too, so they get the passphrase layer at once.
   */
  async #resealRecords(
    store: "contacts" | "messages",
    prefix: string,
    to: Vault,
  ): Promise<(SealedContactRecord | SealedMessageRecord)[]> {
    const out: (SealedContactRecord | SealedMessageRecord)[] = [];
    for (const r of await this.#db.getAll(store)) {
      if (!("sealed" in r)) {
        if (store === "contacts") out.push(await this.#sealContact(r as ContactRecord, to));
        else out.push(await this.#sealMessage(r as StoredMessage, to));
        continue;
      }
      const plain = await this.#vault.open(prefix + r.id, r.sealed);
      out.push({ ...r, sealed: await to.seal(prefix + r.id, plain) });
      plain.fill(0);
    }
    return out;
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

  getSelf(): Promise<StoredSelf | undefined> {
    return this.#gate.shared(() => this.#getSelf());
  }

  async #getSelf(): Promise<StoredSelf | undefined> {
    const s = await this.#db.get("self", "self");
    if (!s) return undefined;
    const plain = await this.#vault.open("self/keys", s.keys);
    // decodeOwnRecord() returns views into `plain`: copy the keys out before wiping it.
    const keys = decodeOwnRecord(plain) as { ik: Uint8Array; nk: Uint8Array };
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

  saveSelf(self: StoredSelf): Promise<void> {
    return this.#gate.shared(() => this.#saveSelf(self));
  }

  async #saveSelf(self: StoredSelf): Promise<void> {
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

  /** Change some settings and keep the others, in one transaction. */
  async updateSettingsRecord(change: Partial<SettingsRecord>): Promise<SettingsRecord> {
    const tx = this.#db.transaction("settings", "readwrite");
    const next: SettingsRecord = { ...((await tx.store.get("settings")) ?? {}), ...change };
    for (const k of Object.keys(next) as (keyof SettingsRecord)[]) if (next[k] === undefined) delete next[k];
    await tx.store.put(next, "settings");
    await tx.done;
    return next;
  }

  async getSettings(): Promise<EngineSettings> {
    const s = await this.getSettingsRecord();
    const d = defaultSettings();
    const signalingUrls = s.signalingUrls?.length ? s.signalingUrls : undefined;
    return {
      signalingUrl: signalingUrls?.[0] || s.signalingUrl || d.signalingUrl,
      ...(signalingUrls && signalingUrls.length > 1 ? { signalingUrls } : {}),
      relayUrls: s.relayUrls && s.relayUrls.length > 0 ? s.relayUrls : d.relayUrls,
      ...(s.iceServers && s.iceServers.length > 0 ? { iceServers: s.iceServers } : {}),
      ...(s.iceTransportPolicy === "relay" ? { iceTransportPolicy: "relay" as const } : {}),
      ...(s.mailboxServer ? { mailboxServer: s.mailboxServer } : {}),
    };
  }

  // --- contacts --------------------------------------------------------------------------------

  getContact(id: ContactId): Promise<ContactRecord | undefined> {
    return this.#gate.shared(async () => {
      const r = await this.#db.get("contacts", id);
      return r && this.#openContact(r);
    });
  }

  /** Every contact that opens, by name (one that does not is skipped: `#openEach`). */
  listContacts(): Promise<ContactRecord[]> {
    return this.#gate.shared(() => this.#listContacts());
  }

  async #listContacts(): Promise<ContactRecord[]> {
    const all = await this.#openEach(await this.#db.getAll("contacts"), (r) => this.#openContact(r));
    return all.sort((a, b) => a.username.localeCompare(b.username) || a.id.localeCompare(b.id));
  }

  /**
   * Names are sealed, so the by-username index only finds legacy records: this goes through every
   * contact, opened ones from `#contactCache`.
   */
  findContactsByUsername(username: string): Promise<ContactRecord[]> {
    return this.#gate.shared(async () => (await this.#listContacts()).filter((c) => c.username === username));
  }

  async putContact(contact: ContactRecord): Promise<void> {
    await this.#serial(`contact/${contact.id}`, async () => {
      await this.#db.put("contacts", await this.#sealContact(contact));
    });
  }

  async addContact(contact: ContactRecord): Promise<void> {
    await this.#serial(`contact/${contact.id}`, async () => {
      const sealed = await this.#sealContact(contact);
      const tx = this.#db.transaction("contacts", "readwrite");
      if (!(await tx.store.get(contact.id))) await tx.store.put(sealed);
      await tx.done;
    });
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

  /** Read, open, change, seal, write — serialized per contact (see the file comment). */
  #updateContact(id: ContactId, change: (c: ContactRecord) => void): Promise<ContactRecord | undefined> {
    return this.#serial(`contact/${id}`, async () => {
      const r = await this.#db.get("contacts", id);
      if (!r) return undefined;
      const c = await this.#openContact(r);
      change(c);
      const sealed = await this.#sealContact(c);
      // Deleted meanwhile (deleteContact is not on this chain): do not bring it back.
      const tx = this.#db.transaction("contacts", "readwrite");
      if (await tx.store.get(id)) await tx.store.put(sealed);
      await tx.done;
      return c;
    });
  }

  /**
   * Change only fields kept in clear (`lastSeen`, `readAt`): one IndexedDB transaction, the sealed
   * part untouched — no open and re-seal per handshake or read, and the opened-contact cache stays
   * valid. On the contact's chain, so a sealed update in flight cannot undo it.
   */
  #updateClearFields(
    id: ContactId,
    change: (c: Pick<ContactRecord, "lastSeen" | "readAt">) => void,
  ): Promise<void> {
    return this.#serial(`contact/${id}`, async () => {
      const tx = this.#db.transaction("contacts", "readwrite");
      const r = await tx.store.get(id);
      if (r) {
        change(r);
        await tx.store.put(r);
      }
      await tx.done;
    });
  }

  touchContact(id: ContactId, at: number): Promise<void> {
    return this.#updateClearFields(id, (c) => {
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

  /** Sealed like the rest of what the engine learned about the contact (its endpoints, identity). */
  async setAnswersSuiteOffers(id: ContactId, answers: boolean): Promise<void> {
    await this.#updateContact(id, (c) => {
      c.answersSuiteOffers = answers;
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

  /** Delete a contact with its history, outbox entries, ratchet session and draft (engine/local-notes.ts). */
  deleteContact(id: ContactId): Promise<void> {
    return this.#gate.shared(() => this.#deleteContact(id));
  }

  async #deleteContact(id: ContactId): Promise<void> {
    this.#contactCache.delete(id);
    const tx = this.#db.transaction(["contacts", "messages", "outbox", "sessions", "secrets"], "readwrite");
    tx.objectStore("contacts").delete(id);
    tx.objectStore("sessions").delete(id);
    tx.objectStore("secrets").delete(draftSecret(`chat:${id}`));
    const range = IDBKeyRange.bound([id, -Infinity], [id, Infinity]);
    for await (const cur of tx.objectStore("messages").index("by-contact").iterate(range)) cur.delete();
    for await (const cur of tx.objectStore("outbox").index("by-contact").iterate(range)) cur.delete();
    await tx.done;
  }

  // --- messages --------------------------------------------------------------------------------

  /** One contact's history, oldest first; with `limit`, the newest `limit` messages. */
  listMessages(contactId: ContactId, limit?: number): Promise<StoredMessage[]> {
    return this.#gate.shared(() => this.#listMessages(contactId, limit));
  }

  async #listMessages(contactId: ContactId, limit?: number): Promise<StoredMessage[]> {
    const range = IDBKeyRange.bound([contactId, -Infinity], [contactId, Infinity]);
    let raw: (StoredMessage | SealedMessageRecord)[];
    if (limit === undefined) raw = await this.#db.getAllFromIndex("messages", "by-contact", range);
    else {
      raw = [];
      const tx = this.#db.transaction("messages");
      for await (const cur of tx.store.index("by-contact").iterate(range, "prev")) {
        raw.push(cur.value);
        if (raw.length >= limit) break;
      }
      await tx.done;
      raw.reverse();
    }
    return this.#openEach(raw, (r) => this.#openMessage(r));
  }

  /**
   * One page of a contact's history for the chat screen, oldest first: the newest `limit`
   * messages with `at` ≤ `before` (all of history when `before` is undefined). `at` is inclusive
   * so messages sharing the boundary's time are not skipped; the caller drops ids it already has.
   * One cursor walk over the `by-contact` index: the cost is the page, not the history.
   */
  listMessagesPage(contactId: ContactId, limit: number, before?: number): Promise<StoredMessage[]> {
    return this.#gate.shared(() => this.#listMessagesPage(contactId, limit, before));
  }

  async #listMessagesPage(contactId: ContactId, limit: number, before?: number): Promise<StoredMessage[]> {
    const upper = before === undefined ? Infinity : before;
    const range = IDBKeyRange.bound([contactId, -Infinity], [contactId, upper]);
    const raw: (StoredMessage | SealedMessageRecord)[] = [];
    const tx = this.#db.transaction("messages");
    for await (const cur of tx.store.index("by-contact").iterate(range, "prev")) {
      raw.push(cur.value);
      if (raw.length >= limit) break;
    }
    await tx.done;
    // Opened after the walk: the transaction cannot stay open across WebCrypto.
    return this.#openEach(raw.reverse(), (r) => this.#openMessage(r));
  }

  getMessage(id: MessageId): Promise<StoredMessage | undefined> {
    return this.#gate.shared(async () => {
      const r = await this.#db.get("messages", id);
      return r && this.#openMessage(r);
    });
  }

  async putMessage(message: StoredMessage): Promise<void> {
    await this.#serial(`message/${message.id}`, async () => {
      await this.#db.put("messages", await this.#sealMessage(message));
    });
  }

  /** `state` is clear (one transaction); a failure reason is sealed with the rest. */
  async setMessageState(id: MessageId, state: MessageState, failure?: EngineError): Promise<void> {
    await this.#serial(`message/${id}`, async () => {
      const r = await this.#db.get("messages", id);
      if (!r) return;
      const m = await this.#openMessage(r);
      m.state = state;
      if (failure) m.failure = failure;
      else delete m.failure;
      const sealed = await this.#sealMessage(m);
      const tx = this.#db.transaction("messages", "readwrite");
      if (await tx.store.get(id)) await tx.store.put(sealed);
      await tx.done;
    });
  }

  findIncoming(contactId: ContactId, remoteId: string): Promise<StoredMessage | undefined> {
    return this.#gate.shared(async () => {
      const r = await this.#db.getFromIndex("messages", "by-remote", [contactId, remoteId]);
      return r && this.#openMessage(r);
    });
  }

  /** Store a new outgoing message and its outbox entry together. */
  queueOutgoing(message: StoredMessage): Promise<void> {
    return this.#gate.shared(async () => {
      await this.#queueOutgoing(message);
    });
  }

  /**
   * Written only if no message with this id is stored yet, checked in the same transaction: a
   * journal replay (`replayJournal`) and the hand-over it stands in for may both run — a reload
   * while another tab commits — and the second must neither duplicate nor roll back the first
   * (a message already `sent` or `delivered`, its outbox entry gone). Returns whether it wrote.
   */
  async #queueOutgoing(message: StoredMessage, outbox = true, allowed = () => true): Promise<boolean> {
    const sealed = await this.#sealMessage(message);
    const tx = this.#db.transaction(["messages", "outbox"], "readwrite");
    const messages = tx.objectStore("messages");
    // `allowed` is synchronous (a localStorage read), so the transaction stays open across it.
    const fresh = (await messages.getKey(message.id)) === undefined && allowed();
    if (fresh) {
      void messages.put(sealed);
      if (outbox)
        void tx.objectStore("outbox").put({
          messageId: message.id,
          contactId: message.contactId,
          queuedAt: message.at,
          attempts: 0,
        });
    }
    await tx.done;
    return fresh;
  }

  /**
   * Store a deferred hand-over (engine.ts `#storeDeferred`; docs/protocol/chat.md §9, "Deferred
   * saves"): `message` as given — `queued` with its outbox entry, `failed` without — only while
   * its journal entry still exists and no message with its id is stored, both checked in the
   * write's transaction. So a deferred save never overwrites what another tab's replay stored
   * (it may be `sent` by now), and never stores a message whose journal a restored backup dropped
   * (`importBundle`: the message belongs to the history that was replaced). Returns "stored", the
   * stored message when its id is stored already, or "dropped" when the journal no longer holds it.
   */
  storeJournaled(message: StoredMessage): Promise<"stored" | "dropped" | StoredMessage> {
    return this.#gate.shared(async () => {
      const journal = this.#journal;
      const wrote = await this.#queueOutgoing(
        message,
        message.state === "queued",
        () => journal !== undefined && journal === this.#journal && journal.has(message.id),
      );
      if (wrote) return "stored";
      const r = await this.#db.get("messages", message.id);
      return r ? this.#openMessage(r) : "dropped";
    });
  }

  // --- the outbox journal (journal.ts; docs/protocol/chat.md §9, "The outbox journal") ----------

  /**
   * Derive the journal key for the unlocked identity and open its journal in localStorage (the
   * app does this at unlock, before anything is handed over or replayed). Without localStorage
   * (blocked, or not a page) there is no journal: hand-overs are then only as safe as their commit.
   */
  openJournal(identityKey: Uint8Array, privateIdentityKey: Uint8Array): void {
    this.#closeJournal();
    const store = pageSyncStore();
    if (store)
      this.#journal = new OutboxJournal(
        store,
        identityKey,
        journalKey(identityKey, privateIdentityKey),
        pageLocks(),
      );
    if (store)
      this.#draftCopies = new DraftCopies(store, identityKey, draftCopyKey(identityKey, privateIdentityKey));
  }

  #closeJournal(): void {
    this.#journal?.close();
    this.#journal = undefined;
    this.#draftCopies?.close();
    this.#draftCopies = undefined;
  }

  // --- draft copies (draft-copies.ts; docs/protocol/chat.md §9, "Draft copies") -----------------

  /** Seal and write a draft's copy now, in this task (app/drafts.ts, when the page goes). */
  copyDraft(copy: DraftCopy): boolean {
    return this.#draftCopies?.write(copy) ?? false;
  }

  /** The copies left from the last time the page went (those that do not open are dropped). */
  draftCopies(): DraftCopy[] {
    const read = this.#draftCopies?.read();
    if (!read) return [];
    if (read.unreadable.length > 0)
      console.warn(`drafts: ${read.unreadable.length} draft copies did not open`);
    return read.copies;
  }

  /** Remove the copy this page wrote or read of `key` (not one another tab wrote since). */
  forgetDraftCopy(key: DraftKey): void {
    this.#draftCopies?.remove(key);
  }

  /** Remove the copy of `key`, whoever wrote it (its conversation is deleted). */
  dropDraftCopy(key: DraftKey): void {
    this.#draftCopies?.discard(key);
  }

  /**
   * Journal a message being handed over, synchronously (engine.ts `handOver`, in the same task):
   * from here on a reload or a closed tab replays it instead of losing it. A message the journal
   * could not take (none, or localStorage full) counts as unsaved until `forgetJournaled`.
   * Returns whether the journal holds it.
   */
  journalOutgoing(message: StoredMessage): boolean {
    const entry: JournalEntry = {
      id: message.id,
      contactId: message.contactId,
      at: message.at,
      text: message.text,
    };
    if (this.#journal?.write(entry)) return true;
    this.#unsaved.add(message.id);
    return false;
  }

  /**
   * The hand-over is settled (stored with its outbox entry, or refused): its journal entry goes.
   * Not called after a commit that failed for a storage reason: the entry then waits for the next
   * start (engine.ts `handOver`, api.ts `SaveDeferred`).
   */
  forgetJournaled(id: MessageId): void {
    this.#unsaved.delete(id);
    this.#journal?.remove(id);
  }

  /**
   * The hand-over settled without a commit (a storage failure) and its journal entry stays for
   * the next start: it is no longer pending here, so any tab's replay may store it.
   */
  keepJournaled(id: MessageId): void {
    this.#unsaved.delete(id);
    this.#journal?.release(id);
  }

  /**
   * Record a retry of stored message `id` (engine.ts `retry`, in the call's task): a reload before
   * its writes land replays it (`replayJournal`). A retry the journal could not take counts as
   * unsaved until `forgetRetry`. Returns whether the journal holds it.
   */
  journalRetry(id: MessageId): boolean {
    if (this.#journal?.writeRetry(id)) return true;
    this.#unsaved.add(`retry/${id}`);
    return false;
  }

  /** The retry of `id` settled (its writes landed, it was refused, or there was nothing to do). */
  forgetRetry(id: MessageId): void {
    this.#unsaved.delete(`retry/${id}`);
    this.#journal?.removeRetry(id);
  }

  /**
   * Handed-over messages a reload would lose now: neither journaled nor committed (the chat warns
   * before the page unloads while there are any, on every screen: web/src/ui/App.tsx).
   */
  get unsavedOutgoing(): number {
    return this.#unsaved.size;
  }

  /**
   * Store what the journal still holds — hand-overs whose commit never landed (a reload, a closed
   * tab, a crash) — in hand-over order, each with its id and time and, when `refusal` allows it,
   * its outbox entry, so the engine sends it like any other queued message. `refusal` is the
   * engine's rule for sending to the contact (outgoing.ts `sendRefusal`): a refused message is
   * stored `failed` with the reason (the person saw it go; now they see why it did not). Entries
   * of a deleted contact go. An entry already committed is only removed (idempotent). Entries
   * that do not open are removed and counted, except one of a newer format (left for that
   * version); one whose storing fails stays for the next start with the contact's later ones (the
   * order), and other contacts' go on. An entry whose hand-over is still pending in another tab
   * (its Web Lock: journal.ts `busy`) is left to that tab, with the contact's later ones.
   * Returns the ids stored.
   */
  replayJournal(refusal: (c: ContactRecord) => EngineError | undefined): Promise<MessageId[]> {
    return this.#gate.shared(async () => {
      const journal = this.#journal;
      if (!journal) return [];
      const { entries, unreadable } = journal.read();
      const retried = await this.#replayRetries(journal, refusal);
      // The usual start: an empty journal, and no lock query on the way to the first screen.
      if (entries.length === 0 && unreadable.length === 0) return retried;
      // After the read (journal.ts `#hold`): another tab's hand-over still committing is left to
      // it, or this replay could store a message that tab is about to refuse.
      const busy = await journal.busy();
      for (const u of unreadable)
        if (u.error.code !== "LOFT_ERR_UNSUPPORTED_VERSION") {
          console.warn(`storage: dropped an outbox journal entry that does not open (${u.error.code})`);
          this.#unreadable++;
          journal.remove(u.id);
        }
      const stored: MessageId[] = [];
      /** Contacts with an entry that could not be stored: their later entries wait too (order). */
      const waiting = new Set<ContactId>();
      for (const e of entries) {
        if (busy.has(e.id)) waiting.add(e.contactId);
        if (waiting.has(e.contactId)) continue;
        try {
          const r = await this.#db.get("contacts", e.contactId);
          const contact = r && (await this.#openContact(r));
          if (contact) {
            const failure = refusal(contact);
            const m: StoredMessage = {
              id: e.id,
              contactId: e.contactId,
              direction: "out",
              text: e.text,
              at: e.at,
              state: failure ? "failed" : "queued",
              ...(failure ? { failure } : {}),
            };
            if (await this.#queueOutgoing(m, !failure)) stored.push(e.id);
          }
          journal.remove(e.id);
        } catch (x) {
          waiting.add(e.contactId);
          // Kept for the next start (a contact that does not open now, storage refusing writes).
          console.warn(`storage: an outbox journal entry waits for the next start (${(x as Error).name})`);
        }
      }
      return [...retried, ...stored];
    });
  }

  /**
   * Replay the retries whose writes did not land (docs/protocol/chat.md §9, "Retries"): a stored
   * outgoing message still `failed` — or left `queued` without its outbox entry, between the
   * retry's two writes — becomes `queued` with its outbox entry, in one transaction, unless the
   * contact now refuses messages (`refusal`): a failed one stays failed (the person can retry
   * again), a queued one without its entry is stored `failed` with the reason (nothing would send
   * it). The write happens only if the record, re-read inside that transaction, is still in the
   * state read before it (the message was opened outside it: WebCrypto cannot run inside one) —
   * another tab's retry that landed meanwhile, and the send that followed (`sending`, `sent`), is
   * never rolled back. Any other state means the retry landed (or the message moved on): only the
   * record goes. One that cannot be written now stays for the next start, and a journal that
   * cannot even be listed (localStorage throwing) leaves every retry for the next start without
   * stopping the replay of the hand-overs. Returns the ids queued again.
   */
  async #replayRetries(
    journal: OutboxJournal,
    refusal: (c: ContactRecord) => EngineError | undefined,
  ): Promise<MessageId[]> {
    const queued: MessageId[] = [];
    let ids: string[];
    try {
      ids = journal.retries();
    } catch (x) {
      console.warn(`storage: the retries wait for the next start (${(x as Error).name})`);
      return queued;
    }
    for (const id of ids) {
      try {
        const r = await this.#db.get("messages", id);
        const m = r && (await this.#openMessage(r));
        const c = m && (await this.#db.get("contacts", m.contactId));
        const contact = c && (await this.#openContact(c));
        if (r && m?.direction === "out" && (m.state === "failed" || m.state === "queued") && contact) {
          const failed = m.state === "failed";
          const refused = refusal(contact);
          // A failed message the contact now refuses stays as it is: nothing to write.
          if (!failed || !refused) {
            const next: StoredMessage = refused
              ? { ...m, state: "failed", failure: refused }
              : { ...m, state: "queued" };
            if (!refused) delete next.failure;
            const sealed = await this.#sealMessage(next);
            const tx = this.#db.transaction(["messages", "outbox"], "readwrite");
            const outbox = tx.objectStore("outbox");
            const now = await tx.objectStore("messages").get(id);
            const missing = (await outbox.getKey(id)) === undefined;
            // Still as read: the same state, and (queued) still without its outbox entry.
            if (now?.state === r.state && (failed || missing)) {
              if (failed || refused) void tx.objectStore("messages").put(sealed);
              if (!refused && missing) {
                void outbox.put({ messageId: id, contactId: m.contactId, queuedAt: Date.now(), attempts: 0 });
                queued.push(id);
              }
            }
            await tx.done;
          }
        }
        journal.removeRetry(id);
      } catch (x) {
        console.warn(`storage: a retry waits for the next start (${(x as Error).name})`);
      }
    }
    return queued;
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

  loadSession(id: ContactId): Promise<Uint8Array | undefined> {
    return this.#gate.shared(async () => {
      const s = await this.#db.get("sessions", id);
      return s && this.#vault.open(`session/${id}`, s);
    });
  }

  saveSession(id: ContactId, state: Uint8Array): Promise<void> {
    return this.#gate.shared(async () => {
      await this.#db.put("sessions", await this.#vault.seal(`session/${id}`, state), id);
    });
  }

  /** Gated too: a re-seal in progress must not write back a session deleted meanwhile. */
  deleteSession(id: ContactId): Promise<void> {
    return this.#gate.shared(() => this.#db.delete("sessions", id));
  }

  loadSecret(name: string): Promise<Uint8Array | undefined> {
    return this.#gate.shared(async () => {
      const s = await this.#db.get("secrets", name);
      return s && this.#vault.open(`secret/${name}`, s);
    });
  }

  saveSecret(name: string, value: Uint8Array): Promise<void> {
    return this.#gate.shared(async () => {
      await this.#db.put("secrets", await this.#vault.seal(`secret/${name}`, value), name);
    });
  }

  deleteSecret(name: string): Promise<void> {
    return this.#gate.shared(() => this.#db.delete("secrets", name));
  }

  // --- activity: unread counts and previews on Home (app/activity.ts) ------------------------

  /** The newest message with a contact (for the preview on Home), if any. */
  lastMessage(contactId: ContactId): Promise<StoredMessage | undefined> {
    return this.#gate.shared(async () => {
      const range = IDBKeyRange.bound([contactId, -Infinity], [contactId, Infinity]);
      const cur = await this.#db.transaction("messages").store.index("by-contact").openCursor(range, "prev");
      return cur ? this.#openMessage(cur.value) : undefined;
    });
  }

  /**
   * Incoming messages from a contact received after `after` (ms), counted up to `cap`: the unread
   * count on Home. Reads only the messages after the read marker, never the whole history.
   */
  async countIncomingAfter(contactId: ContactId, after: number, cap: number): Promise<number> {
    const range = IDBKeyRange.bound([contactId, after], [contactId, Infinity], true, false);
    let n = 0;
    const tx = this.#db.transaction("messages");
    for await (const cur of tx.store.index("by-contact").iterate(range)) {
      // `state` is clear (the direction is sealed): incoming messages are always "received".
      if (cur.value.state === "received") n++;
      if (n >= cap) break;
    }
    await tx.done;
    return n;
  }

  /** Move a contact's read marker (`ContactRecord.readAt`) forward to `at`; never backward. */
  markRead(contactId: ContactId, at: number): Promise<void> {
    return this.#updateClearFields(contactId, (c) => {
      c.readAt = Math.max(c.readAt ?? 0, at);
    });
  }

  // --- backups (see backup.ts for the file format) ---------------------------------------------

  /** Everything a backup carries, in clear: own identity with keys, contacts, history, settings. */
  exportBundle(): Promise<BackupBundle> {
    return this.#gate.shared(() => this.#exportBundle());
  }

  async #exportBundle(): Promise<BackupBundle> {
    const self = await this.#getSelf();
    if (!self) throw new Error("There is no identity on this device to back up.");
    // All or nothing: a backup silently missing a message is worse than a clear failure.
    const messages = await Promise.all((await this.#db.getAll("messages")).map((r) => this.#openMessage(r)));
    const contacts = await Promise.all((await this.#db.getAll("contacts")).map((r) => this.#openContact(r)));
    // Rooms, their histories, the names given them and drafts (docs/protocol/backup.md §3): the
    // engine secrets a person would miss on a new device. Sessions, queues and ratchets stay out.
    const local: BackupLocalEntry[] = [];
    for (const name of (await this.#db.getAllKeys("secrets")).filter(travelsInBackup)) {
      const sealed = await this.#db.get("secrets", name);
      try {
        if (sealed) local.push({ n: name, v: await this.#vault.open(`secret/${name}`, sealed) });
      } catch (e) {
        // A record the app itself cannot open reads as none there too (local-notes.ts, rooms/store.ts):
        // it costs itself, not the whole backup.
        console.warn(`backup: ${name.split("/")[0]} record left out (${(e as Error).name})`);
      }
    }
    return {
      self,
      contacts,
      messages,
      settings: await this.getSettingsRecord(),
      // Not what is left of a room left whose clean-up has not finished (docs/protocol/rooms.md §7).
      local: listedRoomsOnly(local),
    };
  }

  /**
   * Replace this device's identity, contacts, history and settings with a backup's. Ratchet
   * sessions, engine secrets and the outbox are cleared (sessions restart with a new handshake;
   * a restored ratchet would fork the peer's). The passphrase layer stays as it is.
   */
  importBundle(bundle: BackupBundle): Promise<void> {
    // Exclusive: a write still in flight (a draft, a late store of the stopped engine) lands
    // before the bundle's transaction, not over it (app/model.ts `replaceStored`).
    return this.#gate.exclusive(() => this.#importBundle(bundle));
  }

  async #importBundle(bundle: BackupBundle): Promise<void> {
    const keys = await this.#sealSelfKeys(this.#vault, bundle.self);
    const sealed = await this.#sealBundle(this.#vault, bundle);
    const tx = this.#db.transaction([...BUNDLE_STORES], "readwrite");
    this.#writeBundle(tx, bundle, keys, sealed);
    await tx.done;
    this.#dropJournals();
  }

  /**
   * Restore a backup on a device whose passphrase is forgotten (the unlock screen): a new device
   * key, no passphrase, and the backup in place of everything stored here, in one transaction —
   * if anything fails, the device stays as it was. Nothing sealed here can be opened anyway
   * without the passphrase; it is all replaced.
   */
  restoreReplacingAll(bundle: BackupBundle): Promise<void> {
    return this.#gate.exclusive(() => this.#restoreReplacingAll(bundle));
  }

  async #restoreReplacingAll(bundle: BackupBundle): Promise<void> {
    const device = await generateDeviceKey();
    const vault = new Vault(device, false);
    const keys = await this.#sealSelfKeys(vault, bundle.self);
    const sealed = await this.#sealBundle(vault, bundle);
    const tx = this.#db.transaction(["meta", ...BUNDLE_STORES], "readwrite");
    tx.objectStore("meta").put(device, "device-key");
    tx.objectStore("meta").delete("passphrase");
    this.#writeBundle(tx, bundle, keys, sealed);
    await tx.done;
    this.#contactCache.clear();
    this.#vault = vault;
    this.#dropJournals();
  }

  /**
   * A backup replaced the identity and the outbox: what the journals hold belongs to what was
   * replaced (a restore fails messages not sent before the backup, `#sealBundle`), so they go.
   */
  #dropJournals(): void {
    this.#closeJournal();
    this.#unsaved.clear();
    clearJournals();
    // Draft copies belong to what was replaced: the drafts a restore brings are the file's
    // (docs/protocol/backup.md §3), and a copy folded at the next start would overwrite them.
    clearDraftCopies(pageSyncStore());
  }

  /** What this device holds, in numbers (readable while locked): for "start over" warnings. */
  async holdings(): Promise<{ username?: string; contacts: number; messages: number }> {
    const self = await this.#db.get("self", "self");
    return {
      ...(self ? { username: self.username } : {}),
      contacts: await this.#db.count("contacts"),
      messages: await this.#db.count("messages"),
    };
  }

  async #sealSelfKeys(vault: Vault, self: StoredSelf): Promise<Sealed> {
    const plain = encode({ ik: self.privateIdentityKey, nk: self.privateNoiseKey });
    try {
      return await vault.seal("self/keys", plain);
    } finally {
      plain.fill(0);
    }
  }

  /** A bundle's contacts and history sealed under `vault`, before the transaction (it cannot stay open across WebCrypto). */
  async #sealBundle(
    vault: Vault,
    bundle: BackupBundle,
  ): Promise<{
    contacts: SealedContactRecord[];
    messages: SealedMessageRecord[];
    local: [string, Sealed][];
  }> {
    const contacts = await Promise.all(bundle.contacts.map((c) => this.#sealContact(c, vault)));
    // Sealed as `saveSecret` seals (docs/protocol/backup.md §3); a bundle's entries were checked
    // when the file was read (backup-local.ts `checkLocal`): only the names that travel.
    const local: [string, Sealed][] = [];
    for (const e of bundle.local ?? [])
      if (travelsInBackup(e.n)) local.push([e.n, await vault.seal(`secret/${e.n}`, e.v)]);
    const messages: SealedMessageRecord[] = [];
    for (const m of bundle.messages) {
      // Anything not yet handed off before the backup can't be resumed without its session.
      if (m.direction === "out" && (m.state === "queued" || m.state === "sending")) {
        m.state = "failed";
        m.failure = { kind: "internal", message: "Not sent before the backup was made. Retry to send it." };
      }
      messages.push(await this.#sealMessage(m, vault));
    }
    return { contacts, messages, local };
  }

  /** Clear the bundle's stores and write the bundle (inside the caller's transaction). */
  #writeBundle(
    tx: BundleTransaction,
    bundle: BackupBundle,
    keys: Sealed,
    sealed: { contacts: SealedContactRecord[]; messages: SealedMessageRecord[]; local: [string, Sealed][] },
  ): void {
    const { contacts, messages, local } = sealed;
    for (const s of BUNDLE_STORES) tx.objectStore(s).clear();
    tx.objectStore("self").put(
      {
        identity: bundle.self.identity,
        username: bundle.self.username,
        keys,
        createdAt: bundle.self.createdAt,
      },
      "self",
    );
    for (const c of contacts) tx.objectStore("contacts").put(c);
    for (const m of messages) tx.objectStore("messages").put(m);
    for (const [name, value] of local) tx.objectStore("secrets").put(value, name);
    tx.objectStore("settings").put(bundle.settings, "settings");
  }
}

/** The stores a backup replaces (everything but the device key and passphrase config). */
const BUNDLE_STORES = ["self", "contacts", "messages", "sessions", "secrets", "outbox", "settings"] as const;
type BundleTransaction = IDBPTransaction<LoftDB, ("meta" | (typeof BUNDLE_STORES)[number])[], "readwrite">;

export interface BackupBundle {
  self: StoredSelf;
  contacts: ContactRecord[];
  messages: StoredMessage[];
  settings: SettingsRecord;
  /**
   * Version 3 on (docs/protocol/backup.md §3): rooms, room histories, room names and drafts, as
   * the engine secrets they are here, in clear inside the encrypted bundle. Absent in older files.
   */
  local?: BackupLocalEntry[];
  /** Not in the file: how many `local` entries reading it left out (backup-local.ts `checkLocal`). */
  localDropped?: number;
}
