/**
 * The headless peer's engine storage (web/src/engine/api.ts `EngineStorage`) in one sealed file
 * next to the identity file (docs/user-guide.md "The command line"): settings, contacts, the
 * message history the engine needs (de-duplication, receipts, the outbox), ratchet states and the
 * engine's secrets (prekeys, mailbox keys).
 *
 * Sealing: AES-256-GCM under a key derived from the identity's secret key with HKDF-SHA-256
 * (salt "loft-cli-state", info "v1"), a fresh 12-byte IV per write, the header bound as
 * associated data — whoever cannot open the identity file cannot read or forge this one, and no
 * second passphrase derivation is paid per run. File: `LOFTST01 ‖ iv (12) ‖ ciphertext ‖ tag`;
 * plaintext: MessagePack of `Snapshot` (below).
 *
 * Writes: every mutation resolves only once the new state is on disk (write to a temporary file,
 * fsync, rename: a crash leaves the old file or the new one, never half of one), coalesced so a
 * burst of mutations costs one or two writes. Like IndexedDB in the browser, the engine may rely on
 * an awaited write having happened.
 *
 * One process at a time: `lock()` takes `<file>.lock` (O_EXCL, holding the pid); a lock whose
 * process is gone is taken over, a live one is refused with a clear error.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { open, readFile, rename, unlink } from "node:fs/promises";
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
} from "../web/src/engine/api.ts";

const MAGIC = new TextEncoder().encode("LOFTST01");
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
  settings: EngineSettings;
  contacts: ContactRecord[];
  messages: StoredMessage[];
  outbox: OutboxEntry[];
  sessions: [ContactId, Uint8Array][];
  secrets: [string, Uint8Array][];
}

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
  /** The write in progress, and whether another must follow it (state changed meanwhile). */
  #writing: Promise<void> | undefined;
  #again: Promise<void> | undefined;
  #locked = false;

  private constructor(path: string, key: Uint8Array) {
    this.path = path;
    this.#key = key;
  }

  /** Open the state at `path` (empty when there is no file yet) with the state key. */
  static async open(path: string, key: Uint8Array): Promise<StateFile> {
    const s = new StateFile(path, key);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
        throw new StateFileError("io", `cannot read ${path}: ${(e as Error).message}`);
    }
    if (bytes) {
      if (bytes.length > MAX_STATE_BYTES) throw new StateFileError("malformed", `${path} is too large`);
      s.#load(unseal(key, bytes));
    }
    return s;
  }

  #load(plain: Uint8Array): void {
    let snap: Snapshot;
    try {
      // Decoded byte strings are views into `plain`: copied out before it is wiped.
      snap = ownBytes(decode(plain)) as Snapshot;
    } catch {
      throw new StateFileError("malformed", "the state file's content is damaged");
    } finally {
      plain.fill(0);
    }
    if (snap?.v !== 1 || !Array.isArray(snap.contacts) || !Array.isArray(snap.messages))
      throw new StateFileError("malformed", "the state file's content is damaged");
    this.#settings = snap.settings;
    for (const c of snap.contacts) this.#contacts.set(c.id, c);
    for (const m of snap.messages) this.#messages.set(m.id, m);
    for (const e of snap.outbox) this.#outbox.set(e.messageId, e);
    for (const [k, v] of snap.sessions) this.#sessions.set(k, v);
    for (const [k, v] of snap.secrets) this.#secrets.set(k, v);
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
      if (Number.isInteger(pid) && pid > 0 && alive(pid))
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

  /** Persist the current state; resolves when a write that started after this call has finished. */
  #persist(): Promise<void> {
    if (!this.#writing) {
      this.#writing = this.#write().finally(() => {
        this.#writing = undefined;
      });
      return this.#writing;
    }
    // A write is running with an older snapshot: one more after it covers every caller meanwhile.
    this.#again ??= this.#writing
      .catch(() => {})
      .then(() => {
        this.#again = undefined;
        return this.#persist();
      });
    return this.#again;
  }

  async #write(): Promise<void> {
    const snap: Snapshot = {
      v: 1,
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
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      const fh = await open(tmp, "w", 0o600);
      try {
        await fh.writeFile(sealed);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw new StateFileError("io", `cannot write ${this.path}: ${(e as Error).message}`);
    }
  }

  /** Drop the oldest finished messages beyond MAX_KEPT_MESSAGES (the outbox's stay). */
  #trim(): void {
    if (this.#messages.size <= MAX_KEPT_MESSAGES) return;
    const finished = [...this.#messages.values()]
      .filter((m) => !this.#outbox.has(m.id))
      .sort((a, b) => a.at - b.at);
    for (const m of finished.slice(0, this.#messages.size - MAX_KEPT_MESSAGES)) this.#messages.delete(m.id);
  }

  // ---- settings (the CLI's own) ---------------------------------------------------------------

  async setSettings(settings: EngineSettings): Promise<void> {
    this.#settings = clone(settings);
    await this.#persist();
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
    this.#contacts.set(c.id, clone(c));
    await this.#persist();
  }
  async touchContact(id: ContactId, at: number): Promise<void> {
    const c = this.#contacts.get(id);
    if (!c) return;
    c.lastSeen = Math.max(c.lastSeen, at);
    await this.#persist();
  }
  async recordIdentityChange(id: ContactId, change: PendingIdentityChange): Promise<void> {
    await this.#change(id, (c) => {
      c.pending = clone(change);
    });
  }
  async updateContactIdentity(id: ContactId, identity: Uint8Array, username: string): Promise<void> {
    await this.#change(id, (c) => {
      c.identity = identity.slice();
      c.username = username;
    });
  }
  async putContact(c: ContactRecord): Promise<void> {
    this.#contacts.set(c.id, clone(c));
    await this.#persist();
  }
  async setEndpoints(id: ContactId, endpoints: ContactEndpoints): Promise<void> {
    await this.#change(id, (c) => {
      c.endpoints = clone(endpoints);
    });
  }
  async acceptRequest(id: ContactId): Promise<void> {
    await this.#change(id, (c) => {
      delete c.request;
    });
  }
  async declineRequest(id: ContactId): Promise<void> {
    await this.#change(id, (c) => {
      delete c.request;
      c.trust = "rejected";
    });
  }
  async setTrust(id: ContactId, trust: ContactRecord["trust"]): Promise<void> {
    await this.#change(id, (c) => {
      c.trust = trust;
    });
  }
  async setAnswersSuiteOffers(id: ContactId, answers: boolean): Promise<void> {
    await this.#change(id, (c) => {
      c.answersSuiteOffers = answers;
    });
  }
  async clearPending(id: ContactId): Promise<void> {
    await this.#change(id, (c) => {
      delete c.pending;
    });
  }
  async deleteContact(id: ContactId): Promise<void> {
    this.#contacts.delete(id);
    this.#sessions.get(id)?.fill(0);
    this.#sessions.delete(id);
    for (const [k, m] of this.#messages) if (m.contactId === id) this.#messages.delete(k);
    for (const [k, e] of this.#outbox) if (e.contactId === id) this.#outbox.delete(k);
    await this.#persist();
  }
  async #change(id: ContactId, f: (c: ContactRecord) => void): Promise<void> {
    const c = this.#contacts.get(id);
    if (!c) return;
    f(c);
    await this.#persist();
  }

  async getMessage(id: MessageId): Promise<StoredMessage | undefined> {
    const m = this.#messages.get(id);
    return m && clone(m);
  }
  async putMessage(m: StoredMessage): Promise<void> {
    this.#messages.set(m.id, clone(m));
    this.#trim();
    await this.#persist();
  }
  async queueOutgoing(m: StoredMessage): Promise<void> {
    this.#messages.set(m.id, clone(m));
    this.#outbox.set(m.id, { messageId: m.id, contactId: m.contactId, queuedAt: m.at, attempts: 0 });
    this.#trim();
    await this.#persist();
  }
  async setMessageState(id: MessageId, state: MessageState, failure?: EngineError): Promise<void> {
    const m = this.#messages.get(id);
    if (!m) return;
    m.state = state;
    if (failure) m.failure = clone(failure);
    else delete m.failure;
    await this.#persist();
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
    this.#outbox.set(e.messageId, clone(e));
    await this.#persist();
  }
  async deleteOutbox(id: MessageId): Promise<void> {
    if (!this.#outbox.delete(id)) return;
    await this.#persist();
  }

  async loadSession(id: ContactId): Promise<Uint8Array | undefined> {
    return this.#sessions.get(id)?.slice();
  }
  async saveSession(id: ContactId, state: Uint8Array): Promise<void> {
    await this.#setBytes(this.#sessions, id, state);
  }
  async deleteSession(id: ContactId): Promise<void> {
    await this.#setBytes(this.#sessions, id, undefined);
  }
  async loadSecret(name: string): Promise<Uint8Array | undefined> {
    return this.#secrets.get(name)?.slice();
  }
  async saveSecret(name: string, value: Uint8Array): Promise<void> {
    await this.#setBytes(this.#secrets, name, value);
  }
  async deleteSecret(name: string): Promise<void> {
    await this.#setBytes(this.#secrets, name, undefined);
  }
  /** Replace (a copy of `value`) or drop a session or secret, wiping the old bytes; persisted if it changed. */
  async #setBytes(map: Map<string, Uint8Array>, key: string, value: Uint8Array | undefined): Promise<void> {
    map.get(key)?.fill(0);
    if (value) map.set(key, value.slice());
    else if (!map.delete(key)) return;
    await this.#persist();
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
