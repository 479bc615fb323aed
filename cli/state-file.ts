/**
 * The headless peer's engine storage (web/src/engine/api.ts `EngineStorage`) in one sealed file
 * next to the identity file (docs/user-guide.md "The command line"): settings, contacts, the
 * message history the engine needs (de-duplication, receipts, the outbox), ratchet states and the
 * engine's secrets (prekeys, mailbox keys).
 *
 * Sealing: AES-256-GCM under a key derived from the identity's secret key with HKDF-SHA-256
 * (salt "loft-cli-state", info "v1"), a fresh 12-byte IV per write — whoever cannot open the
 * identity file cannot read or forge these files, and no second passphrase derivation is paid per
 * run.
 *
 * Two files:
 * - the snapshot `<file>`: `LOFTST01 ‖ iv (12) ‖ ciphertext ‖ tag`, the header bound as associated
 *   data; plaintext: MessagePack of `Snapshot` (below), with its generation `g`;
 * - the log `<file>.log`, append-only: `LOFTLG01 ‖ generation u32`, then one record per write,
 *   `length u32 ‖ iv (12) ‖ ciphertext ‖ tag`, the associated data `LOFTLG01 ‖ generation ‖ record
 *   index u32` (a record cannot be moved, repeated or carried into another generation); plaintext:
 *   MessagePack of the changes (`Change[]`) made since the previous record.
 *
 * Writes: every mutation changes memory and resolves only once a record holding it is on disk
 * (appended and fsynced), coalesced so that a burst of mutations costs one or two appends — a
 * change is a few hundred bytes, not the whole state. Like IndexedDB in the browser, the engine
 * may rely on an awaited write having happened, and a `kill -9` loses nothing that was awaited
 * (tested: cli/state-file.test.ts). Opening reads the snapshot, then replays the log if its
 * generation is the snapshot's; a torn last record (a crash mid-append) fails its tag and is
 * dropped with whatever followed it — its writers had not been answered. Once the log outgrows
 * the snapshot (and 256 KiB), the state is compacted: a new snapshot of generation g + 1 (write
 * to a temporary file, fsync, rename), then a fresh log of g + 1. A crash between the two leaves
 * a log of generation g, which the next open ignores: everything in it is in the snapshot.
 *
 * One process at a time: `lock()` takes `<file>.lock` (O_EXCL, holding the pid); a lock whose
 * process is gone is taken over, a live one is refused with a clear error.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { type FileHandle, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { encode } from "@msgpack/msgpack";
import { decodeOwnRecord } from "../core/codec/codec.ts";
import { processExists } from "../host/process-alive.ts";
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
} from "../web/src/engine/api.ts";

const MAGIC = new TextEncoder().encode("LOFTST01");
const LOG_MAGIC = new TextEncoder().encode("LOFTLG01");
const LOG_HEADER = LOG_MAGIC.length + 4;
/** Compact once the log is larger than the snapshot and than this. */
const COMPACT_AFTER_BYTES = 256 * 1024;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** A state file larger than this is not ours (a contact list, a capped history and some ratchets). */
export const MAX_STATE_BYTES = 64 * 1024 * 1024;
/** Messages kept (oldest delivered or received ones go first; the outbox is never dropped). */
export const MAX_KEPT_MESSAGES = 10_000;

/** The state file could not be read, opened or written, or another process holds it. */
export class StateFileError extends Error {
  override name = "StateFileError";
  constructor(
    readonly code: "malformed" | "wrong_key" | "locked" | "io",
    message: string,
  ) {
    super(message);
  }
}

interface Snapshot {
  v: 1;
  /** Generation: the log replayed onto this snapshot is the one of the same generation (absent: 0). */
  g?: number;
  settings: EngineSettings;
  contacts: ContactRecord[];
  messages: StoredMessage[];
  outbox: OutboxEntry[];
  sessions: [ContactId, Uint8Array][];
  secrets: [string, Uint8Array][];
}

/** One change, as the log records it: whole records put, or removed by key. */
type Change =
  | { k: "settings"; v: EngineSettings }
  | { k: "contact"; v: ContactRecord }
  | { k: "contact-del"; id: ContactId }
  | { k: "msg"; v: StoredMessage }
  | { k: "msg-del"; id: MessageId }
  | { k: "outbox"; v: OutboxEntry }
  | { k: "outbox-del"; id: MessageId }
  | { k: "session"; id: ContactId; v: Uint8Array | null }
  | { k: "secret"; id: string; v: Uint8Array | null };

/** The state file's key, from the identity's Ed25519 seed (the file is useless without it). */
export function stateKeyOf(identitySecret: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", identitySecret, "loft-cli-state", "v1", 32));
}

function seal(key: Uint8Array, plain: Uint8Array): Uint8Array {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(MAGIC);
  const body = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
  return Buffer.concat([MAGIC, iv, body]);
}

function unseal(key: Uint8Array, file: Uint8Array): Uint8Array {
  if (file.length < MAGIC.length + IV_BYTES + TAG_BYTES || !MAGIC.every((b, i) => file[i] === b))
    throw new StateFileError("malformed", "the state file is not a Loft state file (or a newer version)");
  const iv = file.subarray(MAGIC.length, MAGIC.length + IV_BYTES);
  const body = file.subarray(MAGIC.length + IV_BYTES, file.length - TAG_BYTES);
  const d = createDecipheriv("aes-256-gcm", key, iv);
  d.setAAD(MAGIC);
  d.setAuthTag(file.subarray(file.length - TAG_BYTES));
  try {
    return new Uint8Array(Buffer.concat([d.update(body), d.final()]));
  } catch {
    throw new StateFileError(
      "wrong_key",
      "the state file does not open with this identity (another identity's, or damaged)",
    );
  }
}

/** The log's associated data for record `index` of `generation`. */
function logAad(generation: number, index: number): Uint8Array {
  const aad = new Uint8Array(LOG_MAGIC.length + 8);
  aad.set(LOG_MAGIC);
  const view = new DataView(aad.buffer);
  view.setUint32(LOG_MAGIC.length, generation);
  view.setUint32(LOG_MAGIC.length + 4, index);
  return aad;
}

function logHeader(generation: number): Uint8Array {
  const h = new Uint8Array(LOG_HEADER);
  h.set(LOG_MAGIC);
  new DataView(h.buffer).setUint32(LOG_MAGIC.length, generation);
  return h;
}

/** `length ‖ iv ‖ ciphertext ‖ tag` of one log record. */
function sealRecord(key: Uint8Array, aad: Uint8Array, plain: Uint8Array): Uint8Array {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(aad);
  const body = Buffer.concat([iv, c.update(plain), c.final(), c.getAuthTag()]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** The record's plaintext, or undefined when it is not whole or not authentic (a torn append). */
function openRecord(key: Uint8Array, aad: Uint8Array, body: Uint8Array): Uint8Array | undefined {
  if (body.length < IV_BYTES + TAG_BYTES) return undefined;
  const d = createDecipheriv("aes-256-gcm", key, body.subarray(0, IV_BYTES));
  d.setAAD(aad);
  d.setAuthTag(body.subarray(body.length - TAG_BYTES));
  try {
    return new Uint8Array(
      Buffer.concat([d.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)), d.final()]),
    );
  } catch {
    return undefined;
  }
}

const clone = <T>(x: T): T => structuredClone(x);

export class StateFile implements EngineStorage {
  readonly path: string;
  readonly #key: Uint8Array;
  #settings: EngineSettings = { signalingUrl: "", relayUrls: [] };
  readonly #contacts = new Map<ContactId, ContactRecord>();
  readonly #messages = new Map<MessageId, StoredMessage>();
  readonly #outbox = new Map<MessageId, OutboxEntry>();
  readonly #sessions = new Map<ContactId, Uint8Array>();
  readonly #secrets = new Map<string, Uint8Array>();
  /** The snapshot's generation, and its size on disk (compaction waits until the log outgrows it). */
  #generation = 0;
  #snapshotBytes = 0;
  /** Where the next log record goes, and its index; `#logFresh`: no log of this generation yet. */
  #logEnd = 0;
  #logIndex = 0;
  #logFresh = true;
  /** Bytes past `#logEnd` (a torn record): cut before the next append. */
  #logTorn = false;
  /** Changes made in memory and not yet in a write. */
  #pending: Change[] = [];
  /** The write in progress, and whether another must follow it (state changed meanwhile). */
  #writing: Promise<void> | undefined;
  #again: Promise<void> | undefined;
  #locked = false;

  private constructor(path: string, key: Uint8Array) {
    this.path = path;
    this.#key = key;
  }

  get #logPath(): string {
    return `${this.path}.log`;
  }

  /** Open the state at `path` (empty when there is no file yet) with the state key. */
  static async open(path: string, key: Uint8Array): Promise<StateFile> {
    const s = new StateFile(path, key);
    const read = async (file: string, limit: number) => {
      try {
        if ((await stat(file)).size > limit) throw new StateFileError("malformed", `${file} is too large`);
        return await readFile(file);
      } catch (e) {
        if (e instanceof StateFileError) throw e;
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new StateFileError("io", `cannot read ${file}: ${(e as Error).message}`);
      }
    };
    return StateFile.fromBytes(
      path,
      key,
      await read(path, MAX_STATE_BYTES),
      await read(s.#logPath, MAX_STATE_BYTES),
    );
  }

  /**
   * What `open` does with the two files' bytes (either absent): the state they hold, or a
   * StateFileError. Nothing is written until a change is made (fuzzed: test/fuzz/cli-inputs.test.ts).
   */
  static fromBytes(path: string, key: Uint8Array, snapshot?: Uint8Array, log?: Uint8Array): StateFile {
    const s = new StateFile(path, key);
    if (snapshot) {
      s.#load(unseal(key, snapshot));
      s.#snapshotBytes = snapshot.length;
    }
    if (log) s.#replay(log);
    return s;
  }

  #load(plain: Uint8Array): void {
    let snap: Snapshot;
    try {
      // Decoded byte strings are views into `plain`: copied out before it is wiped.
      snap = ownBytes(decodeOwnRecord(plain)) as Snapshot;
    } catch {
      throw new StateFileError("malformed", "the state file's content is damaged");
    } finally {
      plain.fill(0);
    }
    if (snap?.v !== 1 || !Array.isArray(snap.contacts) || !Array.isArray(snap.messages))
      throw new StateFileError("malformed", "the state file's content is damaged");
    this.#generation = snap.g ?? 0;
    this.#settings = snap.settings;
    for (const c of snap.contacts) this.#contacts.set(c.id, c);
    for (const m of snap.messages) this.#messages.set(m.id, m);
    for (const e of snap.outbox) this.#outbox.set(e.messageId, e);
    for (const [k, v] of snap.sessions) this.#sessions.set(k, v);
    for (const [k, v] of snap.secrets) this.#secrets.set(k, v);
  }

  /** Apply the log's records onto the snapshot, up to the first one that is not whole and authentic. */
  #replay(log: Uint8Array): void {
    const view = new DataView(log.buffer, log.byteOffset, log.byteLength);
    if (
      log.length < LOG_HEADER ||
      !LOG_MAGIC.every((b, i) => log[i] === b) ||
      view.getUint32(LOG_MAGIC.length) !== this.#generation
    )
      return; // another generation's log (a crash during compaction): all of it is in the snapshot
    let at = LOG_HEADER;
    let index = 0;
    while (at + 4 <= log.length) {
      const length = view.getUint32(at);
      if (at + 4 + length > log.length) break;
      const plain = openRecord(
        this.#key,
        logAad(this.#generation, index),
        log.subarray(at + 4, at + 4 + length),
      );
      if (!plain) {
        // A torn append is always the log's last record; a bad record with more after it is damage.
        if (at + 4 + length < log.length)
          throw new StateFileError(
            "malformed",
            "the state log is damaged (a record in the middle fails to open)",
          );
        break;
      }
      let changes: Change[];
      try {
        changes = ownBytes(decodeOwnRecord(plain)) as Change[];
      } catch {
        throw new StateFileError("malformed", "the state log's content is damaged");
      } finally {
        plain.fill(0);
      }
      if (!Array.isArray(changes))
        throw new StateFileError("malformed", "the state log's content is damaged");
      for (const c of changes) this.#apply(c);
      at += 4 + length;
      index++;
    }
    this.#logEnd = at;
    this.#logIndex = index;
    this.#logFresh = false;
    this.#logTorn = at < log.length;
  }

  /** One change to memory (what a mutation did, or a log record replayed). */
  #apply(c: Change): void {
    switch (c.k) {
      case "settings":
        this.#settings = c.v;
        return;
      case "contact":
        this.#contacts.set(c.v.id, c.v);
        return;
      case "contact-del": {
        this.#contacts.delete(c.id);
        this.#sessions.get(c.id)?.fill(0);
        this.#sessions.delete(c.id);
        for (const [k, m] of this.#messages) if (m.contactId === c.id) this.#messages.delete(k);
        for (const [k, e] of this.#outbox) if (e.contactId === c.id) this.#outbox.delete(k);
        return;
      }
      case "msg":
        this.#messages.set(c.v.id, c.v);
        return;
      case "msg-del":
        this.#messages.delete(c.id);
        return;
      case "outbox":
        this.#outbox.set(c.v.messageId, c.v);
        return;
      case "outbox-del":
        this.#outbox.delete(c.id);
        return;
      case "session":
      case "secret": {
        const map = c.k === "session" ? this.#sessions : this.#secrets;
        map.get(c.id)?.fill(0);
        if (c.v) map.set(c.id, c.v);
        else map.delete(c.id);
        return;
      }
      default:
        throw new StateFileError("malformed", "the state log holds an unknown change");
    }
  }

  // ---- one process at a time ------------------------------------------------------------------

  /** Take the lock (`<file>.lock`); throws `locked` when a live process holds it. */
  async lock(): Promise<void> {
    const lockPath = `${this.path}.lock`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(lockPath, "wx", 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        this.#locked = true;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST")
          throw new StateFileError("io", `cannot create ${lockPath}: ${(e as Error).message}`);
      }
      const pid = Number.parseInt(await readFile(lockPath, "utf8").catch(() => ""), 10);
      if (Number.isInteger(pid) && pid > 0 && processExists(pid))
        throw new StateFileError(
          "locked",
          `another loft process (pid ${pid}) is using this identity; stop it first (one process per identity)`,
        );
      await unlink(lockPath).catch(() => {}); // its process is gone: a stale lock
    }
    throw new StateFileError("locked", `cannot take ${lockPath}`);
  }

  /** Write what is pending and release the lock. */
  async close(): Promise<void> {
    await this.flushed();
    if (this.#locked) await unlink(`${this.path}.lock`).catch(() => {});
    this.#locked = false;
  }

  // ---- persistence ----------------------------------------------------------------------------

  /** Resolves once every change made so far is on disk. */
  async flushed(): Promise<void> {
    await this.#again?.catch(() => {});
    await this.#writing?.catch(() => {});
  }

  /** Make `changes` in memory; resolves once a record holding them is on disk. */
  #change(...changes: Change[]): Promise<void> {
    for (const c of changes) {
      this.#apply(c);
      this.#pending.push(c);
    }
    return this.#persist();
  }

  /** Persist the pending changes; resolves when a write that started after this call has finished. */
  #persist(): Promise<void> {
    if (!this.#writing) {
      this.#writing = this.#write().finally(() => {
        this.#writing = undefined;
      });
      return this.#writing;
    }
    // A write is running with older changes: one more after it covers every caller meanwhile.
    this.#again ??= this.#writing
      .catch(() => {})
      .then(() => {
        this.#again = undefined;
        return this.#persist();
      });
    return this.#again;
  }

  async #write(): Promise<void> {
    const changes = this.#pending.splice(0);
    try {
      const logBytes = this.#logEnd - LOG_HEADER;
      if (this.#logFresh || logBytes > Math.max(COMPACT_AFTER_BYTES, this.#snapshotBytes))
        await this.#compact();
      else if (changes.length > 0) await this.#append(changes);
    } catch (e) {
      // Not on disk: the next write carries them (memory already has them).
      this.#pending.unshift(...changes);
      throw e instanceof StateFileError
        ? e
        : new StateFileError("io", `cannot write ${this.path}: ${(e as Error).message}`);
    }
  }

  /** One record at the log's end, fsynced. */
  async #append(changes: Change[]): Promise<void> {
    const plain = encode(changes, { ignoreUndefined: true });
    const record = sealRecord(this.#key, logAad(this.#generation, this.#logIndex), plain);
    plain.fill(0);
    const fh = await open(this.#logPath, "r+");
    try {
      if (this.#logTorn) {
        await fh.truncate(this.#logEnd);
        this.#logTorn = false;
      }
      await fh.write(record, 0, record.length, this.#logEnd);
      await fh.sync();
    } catch (e) {
      // A partial record may be on disk past #logEnd: cut it before the next append.
      this.#logTorn = true;
      throw e;
    } finally {
      await fh.close();
    }
    this.#logEnd += record.length;
    this.#logIndex++;
  }

  /** The whole state as a snapshot of the next generation, then an empty log of that generation. */
  async #compact(): Promise<void> {
    const generation = this.#generation + 1;
    const snap: Snapshot = {
      v: 1,
      g: generation,
      settings: this.#settings,
      contacts: [...this.#contacts.values()],
      messages: [...this.#messages.values()],
      outbox: [...this.#outbox.values()],
      sessions: [...this.#sessions],
      secrets: [...this.#secrets],
    };
    const plain = encode(snap, { ignoreUndefined: true });
    const sealed = seal(this.#key, plain);
    plain.fill(0);
    await replaceFile(this.path, sealed);
    // The snapshot is the state now; until the log of its generation exists, every write compacts.
    this.#generation = generation;
    this.#snapshotBytes = sealed.length;
    this.#logFresh = true;
    await replaceFile(this.#logPath, logHeader(generation));
    this.#logEnd = LOG_HEADER;
    this.#logIndex = 0;
    this.#logFresh = false;
    this.#logTorn = false;
  }

  /** Drop the oldest finished messages beyond MAX_KEPT_MESSAGES (the outbox's stay). */
  #trim(): Change[] {
    if (this.#messages.size <= MAX_KEPT_MESSAGES) return [];
    const finished = [...this.#messages.values()]
      .filter((m) => !this.#outbox.has(m.id))
      .sort((a, b) => a.at - b.at);
    return finished
      .slice(0, this.#messages.size - MAX_KEPT_MESSAGES)
      .map((m): Change => ({ k: "msg-del", id: m.id }));
  }

  // ---- settings (the CLI's own) ---------------------------------------------------------------

  async setSettings(settings: EngineSettings): Promise<void> {
    await this.#change({ k: "settings", v: clone(settings) });
  }

  /** Messages of a contact (or all), oldest first. */
  messages(contactId?: ContactId): StoredMessage[] {
    return [...this.#messages.values()]
      .filter((m) => contactId === undefined || m.contactId === contactId)
      .sort((a, b) => a.at - b.at)
      .map(clone);
  }

  // ---- EngineStorage --------------------------------------------------------------------------

  async getSettings(): Promise<EngineSettings> {
    return clone(this.#settings);
  }
  async getContact(id: ContactId): Promise<ContactRecord | undefined> {
    const c = this.#contacts.get(id);
    return c && clone(c);
  }
  async listContacts(): Promise<ContactRecord[]> {
    return [...this.#contacts.values()].map(clone);
  }
  async addContact(c: ContactRecord): Promise<void> {
    if (this.#contacts.has(c.id)) return;
    await this.#change({ k: "contact", v: clone(c) });
  }
  async touchContact(id: ContactId, at: number): Promise<void> {
    await this.#contact(id, (c) => {
      c.lastSeen = Math.max(c.lastSeen, at);
    });
  }
  async recordIdentityChange(id: ContactId, change: PendingIdentityChange): Promise<void> {
    await this.#contact(id, (c) => {
      c.pending = clone(change);
    });
  }
  async updateContactIdentity(id: ContactId, identity: Uint8Array, username: string): Promise<void> {
    await this.#contact(id, (c) => {
      c.identity = identity.slice();
      c.username = username;
    });
  }
  async putContact(c: ContactRecord): Promise<void> {
    await this.#change({ k: "contact", v: clone(c) });
  }
  async setEndpoints(id: ContactId, endpoints: ContactEndpoints): Promise<void> {
    await this.#contact(id, (c) => {
      c.endpoints = clone(endpoints);
    });
  }
  async acceptRequest(id: ContactId): Promise<void> {
    await this.#contact(id, (c) => {
      delete c.request;
    });
  }
  async declineRequest(id: ContactId): Promise<void> {
    await this.#contact(id, (c) => {
      delete c.request;
      c.trust = "rejected";
    });
  }
  async setTrust(id: ContactId, trust: ContactRecord["trust"]): Promise<void> {
    await this.#contact(id, (c) => {
      c.trust = trust;
    });
  }
  async setAnswersSuiteOffers(id: ContactId, answers: boolean): Promise<void> {
    await this.#contact(id, (c) => {
      c.answersSuiteOffers = answers;
    });
  }
  async clearPending(id: ContactId): Promise<void> {
    await this.#contact(id, (c) => {
      delete c.pending;
    });
  }
  async deleteContact(id: ContactId): Promise<void> {
    await this.#change({ k: "contact-del", id });
  }
  /** Change a copy of the contact and put it whole (nothing when there is no such contact). */
  async #contact(id: ContactId, f: (c: ContactRecord) => void): Promise<void> {
    const known = this.#contacts.get(id);
    if (!known) return;
    const c = clone(known);
    f(c);
    await this.#change({ k: "contact", v: c });
  }

  async getMessage(id: MessageId): Promise<StoredMessage | undefined> {
    const m = this.#messages.get(id);
    return m && clone(m);
  }
  async putMessage(m: StoredMessage): Promise<void> {
    this.#messages.set(m.id, clone(m));
    await this.#change({ k: "msg", v: clone(m) }, ...this.#trim());
  }
  async queueOutgoing(m: StoredMessage): Promise<void> {
    // EngineStorage.queueOutgoing: an id already stored is left as it is (never set back to queued).
    if (this.#messages.has(m.id)) return;
    this.#messages.set(m.id, clone(m));
    this.#outbox.set(m.id, { messageId: m.id, contactId: m.contactId, queuedAt: m.at, attempts: 0 });
    await this.#change(
      { k: "msg", v: clone(m) },
      { k: "outbox", v: { messageId: m.id, contactId: m.contactId, queuedAt: m.at, attempts: 0 } },
      ...this.#trim(),
    );
  }
  async setMessageState(id: MessageId, state: MessageState, failure?: EngineError): Promise<void> {
    const known = this.#messages.get(id);
    if (!known) return;
    const m = clone(known);
    m.state = state;
    if (failure) m.failure = clone(failure);
    else delete m.failure;
    await this.#change({ k: "msg", v: m });
  }
  async findIncoming(contactId: ContactId, remoteId: string): Promise<StoredMessage | undefined> {
    for (const m of this.#messages.values())
      if (m.contactId === contactId && m.remoteId === remoteId) return clone(m);
    return undefined;
  }
  async listOutbox(contactId?: ContactId): Promise<OutboxEntry[]> {
    return [...this.#outbox.values()]
      .filter((e) => contactId === undefined || e.contactId === contactId)
      .sort((a, b) => a.queuedAt - b.queuedAt)
      .map(clone);
  }
  async putOutbox(e: OutboxEntry): Promise<void> {
    await this.#change({ k: "outbox", v: clone(e) });
  }
  async deleteOutbox(id: MessageId): Promise<void> {
    if (!this.#outbox.has(id)) return;
    await this.#change({ k: "outbox-del", id });
  }

  async loadSession(id: ContactId): Promise<Uint8Array | undefined> {
    return this.#sessions.get(id)?.slice();
  }
  async saveSession(id: ContactId, state: Uint8Array): Promise<void> {
    await this.#change({ k: "session", id, v: state.slice() });
  }
  async deleteSession(id: ContactId): Promise<void> {
    if (!this.#sessions.has(id)) return;
    await this.#change({ k: "session", id, v: null });
  }
  async loadSecret(name: string): Promise<Uint8Array | undefined> {
    return this.#secrets.get(name)?.slice();
  }
  async saveSecret(name: string, value: Uint8Array): Promise<void> {
    await this.#change({ k: "secret", id: name, v: value.slice() });
  }
  async deleteSecret(name: string): Promise<void> {
    if (!this.#secrets.has(name)) return;
    await this.#change({ k: "secret", id: name, v: null });
  }
}

/** Write `bytes` to `path` whole or not at all: a temporary file, fsync, rename, fsync the folder. */
async function replaceFile(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw new StateFileError("io", `cannot write ${path}: ${(e as Error).message}`);
  }
  let dir: FileHandle | undefined;
  try {
    dir = await open(dirname(path), "r");
    await dir.sync();
  } catch {
    // Some filesystems refuse fsync on a folder; the rename itself is atomic.
  } finally {
    await dir?.close();
  }
}

/** `x` with every Uint8Array in it copied into its own buffer. */
function ownBytes(x: unknown): unknown {
  if (x instanceof Uint8Array) return x.slice();
  if (Array.isArray(x)) return x.map(ownBytes);
  if (x && typeof x === "object")
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, ownBytes(v)]));
  return x;
}
