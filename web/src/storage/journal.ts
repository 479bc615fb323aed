/**
 * The outbox journal: a sealed, synchronous record of each message handed over
 * (`ChatEngine.handOver`) and not yet committed to IndexedDB with its outbox entry
 * (docs/protocol/chat.md §9, "The outbox journal"; docs/decisions.md, "A sent message survives an
 * immediate reload"). The IndexedDB commit needs WebCrypto and a transaction — tens of
 * milliseconds, more on a loaded machine — and a reload or a closed tab inside that window would
 * lose a message the person saw go. The journal entry is written in the same task as the
 * hand-over, so nothing the page does later can come before it; it is removed once the commit
 * lands (or the hand-over is refused), and an entry still there at start-up is replayed into the
 * outbox (storage.ts `replayJournal`) with the same id and time.
 *
 * Never plaintext at rest, like the rest of the app's storage (docs/design.md, "Cryptography"):
 * each entry is XChaCha20-Poly1305 (@noble/ciphers; draft-irtf-cfrg-xchacha §2) under a key held
 * in memory only, derived at unlock with HKDF-SHA-256 (RFC 5869) from the private identity key —
 * itself sealed under the device key and the passphrase, so the journal is exactly as readable
 * as the history. A fresh random 24-byte nonce per entry; the associated data binds the entry to
 * this identity and to its message id (the store key), so an entry copied to another key or from
 * another profile does not open.
 *
 * Byte layout (docs/protocol/chat.md §9 has the table and the vectors' recipe):
 *   store key   "loft.outbox-journal." ‖ selfHex ‖ "." ‖ messageId
 *   value       base64url( 0x02 ‖ nonce[24] ‖ XChaCha20-Poly1305(key, nonce, plaintext, ad) )
 *   ad          "loft/outbox-journal/v1" ‖ 0x00 ‖ identity key[32] ‖ messageId (UTF-8)
 *   plaintext   padToBucket( at u64 BE ‖ len u8 ‖ contactId ‖ len u32 BE ‖ text (UTF-8) )
 * The plaintext is padded to a power-of-two bucket of at least 256 bytes (core/codec/padding.ts,
 * as every chat message is inside the ratchet; docs/design.md, "Padding"), so a value's size —
 * which lingers on disk after its removal until the browser compacts its localStorage files —
 * says only the bucket of the text's length, not the length. Version 0x01 (the same layout, not
 * padded) is still read, so an entry written just before an update is replayed after it.
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, fromUtf8, toHex } from "../../../core/bytes.ts";
import { paddedBucketSize, padToBucket, unpadBucket } from "../../../core/codec/padding.ts";
import { err, type LoftError, ok, type Result } from "../../../core/errors.ts";
import { MAX_TEXT_CHARS } from "../engine/outgoing.ts";
import { fromBase64url, toBase64url } from "../lib/base64url.ts";

/** What a journal entry holds: enough to store the message as it was handed over. */
export interface JournalEntry {
  id: string;
  contactId: string;
  /** The hand-over time (`StoredMessage.at`): the order of replay. */
  at: number;
  text: string;
}

/** The part of the Web Storage API the journal uses (localStorage in the page). */
export interface SyncStore {
  readonly length: number;
  key(index: number): string | null;
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export const JOURNAL_PREFIX = "loft.outbox-journal.";
/**
 * Retries (`ChatEngine.retry`) not yet committed: `RETRY_PREFIX` ‖ own identity key (64 hex) ‖
 * "." ‖ message id, value `RETRY_VALUE`. Nothing sealed: the key says only a message id (clear in
 * IndexedDB too) and the message itself is already stored (docs/protocol/chat.md §9, "Retries").
 */
export const RETRY_PREFIX = "loft.outbox-retry.";
export const RETRY_VALUE = "1";
/** A message id as `randomId` makes them (base64url), with room to spare; anything else is junk. */
const MESSAGE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** The version written: padded plaintext. */
export const JOURNAL_VERSION = 0x02;
/** The first version, read only: the same plaintext layout without padding. */
export const JOURNAL_VERSION_UNPADDED = 0x01;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const AD_LABEL = new TextEncoder().encode("loft/outbox-journal/v1\0");
const KEY_INFO = new TextEncoder().encode("loft/outbox-journal/v1 key");
/** Longest contact id and message id (bytes): ours are 64 hex and 22 base64url characters. */
const MAX_ID_BYTES = 255;
/**
 * The longest value a journal entry can have: a text of MAX_TEXT_CHARS UTF-16 code units is at
 * most 3 bytes a unit in UTF-8; with the fixed fields and the contact id's room, padded to its
 * bucket (65 536 bytes), plus the header and the tag, in base64url.
 */
export const MAX_ENTRY_CHARS = Math.ceil(
  ((1 + NONCE_BYTES + paddedBucketSize(8 + 1 + MAX_ID_BYTES + 4 + 3 * MAX_TEXT_CHARS) + TAG_BYTES) * 4) / 3,
);

const utf8 = new TextEncoder();

/** The journal key for an identity: HKDF-SHA-256(ikm = private identity key, salt = identity key). */
export function journalKey(identityKey: Uint8Array, privateIdentityKey: Uint8Array): Uint8Array {
  return hkdf(sha256, privateIdentityKey, identityKey, KEY_INFO, 32);
}

/** The associated data of entry `id` of identity `identityKey` (see the file comment). */
export function associatedData(identityKey: Uint8Array, id: string): Uint8Array {
  return concatBytes(AD_LABEL, identityKey, utf8.encode(id));
}

/**
 * An entry's plaintext as sealed (version 0x02): padToBucket(at u64 BE ‖ len u8 ‖ contactId ‖
 * len u32 BE ‖ text) (see the file comment).
 */
export function entryPlaintext(entry: JournalEntry): Uint8Array {
  const layout = entryLayout(entry);
  const padded = padToBucket(layout);
  layout.fill(0);
  return padded;
}

/** The fields of an entry before padding: at u64 BE ‖ len u8 ‖ contactId ‖ len u32 BE ‖ text. */
export function entryLayout(entry: JournalEntry): Uint8Array {
  const contact = utf8.encode(entry.contactId);
  const text = utf8.encode(entry.text);
  if (contact.length === 0 || contact.length > MAX_ID_BYTES || entry.id.length === 0)
    throw new RangeError("journal entry: bad id");
  if (!Number.isSafeInteger(entry.at) || entry.at < 0) throw new RangeError("journal entry: bad time");
  const plain = new Uint8Array(8 + 1 + contact.length + 4 + text.length);
  const view = new DataView(plain.buffer);
  view.setBigUint64(0, BigInt(entry.at));
  plain[8] = contact.length;
  plain.set(contact, 9);
  view.setUint32(9 + contact.length, text.length);
  plain.set(text, 13 + contact.length);
  text.fill(0);
  return plain;
}

/** Seal one entry (synchronous: noble, no WebCrypto). `nonce` is for vectors and tests only. */
export function sealEntry(
  key: Uint8Array,
  identityKey: Uint8Array,
  entry: JournalEntry,
  nonce: Uint8Array = crypto.getRandomValues(new Uint8Array(NONCE_BYTES)),
): string {
  const plain = entryPlaintext(entry);
  const value = sealValue(JOURNAL_VERSION, key, nonce, associatedData(identityKey, entry.id), plain);
  plain.fill(0);
  return value;
}

/**
 * A sealed value as the journal and the draft copies (draft-copies.ts) store it:
 * base64url( version ‖ nonce[24] ‖ XChaCha20-Poly1305(key, nonce, plain, ad) ).
 */
export function sealValue(
  version: number,
  key: Uint8Array,
  nonce: Uint8Array,
  ad: Uint8Array,
  plain: Uint8Array,
): string {
  const ct = xchacha20poly1305(key, nonce, ad).encrypt(plain);
  return toBase64url(concatBytes(new Uint8Array([version]), nonce, ct));
}

/**
 * Open a `sealValue` value, `what` naming it in the errors: oversized past `maxChars`
 * (FRAME_TOO_LARGE, before any decoding), not base64url or shorter than its header, tag and
 * `minPlain` bytes (MALFORMED), a version not in `versions` (UNSUPPORTED_VERSION), anything that
 * does not open (DECRYPT). The caller zeroes the plaintext.
 */
export function openValue(
  what: string,
  value: string,
  limits: { maxChars: number; minPlain: number; versions: readonly number[] },
  key: Uint8Array,
  ad: Uint8Array,
): Result<{ version: number; plain: Uint8Array }> {
  if (value.length > limits.maxChars) return err("LOFT_ERR_FRAME_TOO_LARGE", `${what} too large`);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64url(value);
  } catch {
    return err("LOFT_ERR_MALFORMED", `${what} is not base64url`);
  }
  if (bytes.length < 1 + NONCE_BYTES + TAG_BYTES + limits.minPlain)
    return err("LOFT_ERR_MALFORMED", `${what} truncated`);
  const version = bytes[0] ?? 0;
  if (!limits.versions.includes(version))
    return err("LOFT_ERR_UNSUPPORTED_VERSION", `${what} version ${version}`);
  try {
    const plain = xchacha20poly1305(key, bytes.subarray(1, 1 + NONCE_BYTES), ad).decrypt(
      bytes.subarray(1 + NONCE_BYTES),
    );
    return ok({ version, plain });
  } catch {
    return err("LOFT_ERR_DECRYPT", `${what} does not open`);
  }
}

/**
 * Open one entry stored under message id `id`. Typed errors, never a throw: oversized
 * (FRAME_TOO_LARGE, before any decoding), not base64url or too short (MALFORMED), another version
 * (UNSUPPORTED_VERSION), wrong key, another profile, another id or any changed byte (DECRYPT),
 * fields that break the layout or the message rules (SCHEMA).
 */
export function openEntry(
  key: Uint8Array,
  identityKey: Uint8Array,
  id: string,
  value: string,
): Result<JournalEntry> {
  const opened = openValue(
    "journal entry",
    value,
    { maxChars: MAX_ENTRY_CHARS, minPlain: 13, versions: [JOURNAL_VERSION, JOURNAL_VERSION_UNPADDED] },
    key,
    associatedData(identityKey, id),
  );
  if (!opened.ok) return opened;
  const { version, plain } = opened.value;
  try {
    if (version === JOURNAL_VERSION_UNPADDED) return parsePlaintext(id, plain);
    // It opened, so the padding is as its writer sealed it: a bad one is a writer's bug.
    const unpadded = unpadBucket(plain);
    if (!unpadded.ok) return err("LOFT_ERR_PADDING", "journal entry padding");
    try {
      return parsePlaintext(id, unpadded.value);
    } finally {
      unpadded.value.fill(0);
    }
  } finally {
    plain.fill(0);
  }
}

function parsePlaintext(id: string, plain: Uint8Array): Result<JournalEntry> {
  if (plain.length < 13) return err("LOFT_ERR_SCHEMA", "journal entry shorter than its fixed fields");
  const view = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
  const at = view.getBigUint64(0);
  if (at > BigInt(Number.MAX_SAFE_INTEGER)) return err("LOFT_ERR_SCHEMA", "journal entry time out of range");
  const n = plain[8] ?? 0;
  if (n === 0 || plain.length < 13 + n) return err("LOFT_ERR_SCHEMA", "journal entry contact id");
  const m = view.getUint32(9 + n);
  if (plain.length !== 13 + n + m) return err("LOFT_ERR_SCHEMA", "journal entry length");
  let contactId: string;
  let text: string;
  try {
    contactId = fromUtf8(plain.subarray(9, 9 + n));
    text = fromUtf8(plain.subarray(13 + n));
  } catch {
    return err("LOFT_ERR_SCHEMA", "journal entry is not UTF-8");
  }
  if (text.length === 0 || text.length > MAX_TEXT_CHARS) return err("LOFT_ERR_SCHEMA", "journal entry text");
  return ok({ id, contactId, at: Number(at), text });
}

/** What `OutboxJournal.read` found: entries in replay order, and the ones that do not open. */
export interface JournalRead {
  entries: JournalEntry[];
  unreadable: { id: string; error: LoftError }[];
}

/**
 * Entries in replay order — by hand-over time, then id — with one entry per message id (a
 * duplicate keeps the first): the order the messages were handed over in (outgoing.ts `SendLines`
 * stores them in that order too, and `stamp` gives strictly increasing times).
 */
export function replayOrder(entries: readonly JournalEntry[]): JournalEntry[] {
  const seen = new Set<string>();
  const out: JournalEntry[] = [];
  for (const e of entries) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    out.push(e);
  }
  return out.sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** The part of the Web Locks API the journal uses (navigator.locks in the page). */
export interface JournalLocks {
  request(name: string, callback: () => Promise<void>): Promise<unknown>;
  query(): Promise<{ held?: { name?: string }[]; pending?: { name?: string }[] }>;
}

/**
 * One identity's journal in a synchronous store.
 *
 * Several tabs share the store (localStorage is per origin), and each replays the journal when it
 * unlocks: a tab opening while another tab's hand-over is still committing must leave that entry
 * alone, or it would store a message the other tab is about to refuse (its screen then gives the
 * words back, and sending them again makes two). So while a hand-over is pending its tab holds a
 * Web Lock named like the entry's store key, requested in the same task and before the entry is
 * written; `busy` lists the entries whose lock is held or requested, and replay skips them
 * (docs/protocol/chat.md §9, "Several tabs"). A tab that closes or crashes drops its locks, so its
 * entries replay at the next start as before.
 */
export class OutboxJournal {
  readonly #store: SyncStore;
  readonly #identityKey: Uint8Array;
  readonly #key: Uint8Array;
  readonly #prefix: string;
  readonly #retryPrefix: string;
  readonly #locks: JournalLocks | undefined;
  /** This tab's pending hand-overs: message id → release of its lock. */
  readonly #held = new Map<string, () => void>();

  constructor(store: SyncStore, identityKey: Uint8Array, key: Uint8Array, locks?: JournalLocks) {
    this.#store = store;
    this.#identityKey = identityKey.slice();
    this.#key = key;
    this.#prefix = `${JOURNAL_PREFIX}${toHex(identityKey)}.`;
    this.#retryPrefix = `${RETRY_PREFIX}${toHex(identityKey)}.`;
    this.#locks = locks;
  }

  /**
   * Whether the entry is in the store (false: the store refused it — full, or disabled). Until
   * `remove` or `release`, the entry is this tab's pending hand-over (its lock is held).
   */
  write(entry: JournalEntry): boolean {
    this.#hold(entry.id);
    try {
      this.#store.setItem(this.#prefix + entry.id, sealEntry(this.#key, this.#identityKey, entry));
      return true;
    } catch {
      this.release(entry.id);
      return false;
    }
  }

  remove(id: string): void {
    try {
      this.#store.removeItem(this.#prefix + id);
    } catch {
      // a store that stopped working holds nothing we could remove
    } finally {
      this.release(id);
    }
  }

  /** Whether entry `id` is still in the store (false too when the store cannot be read). */
  has(id: string): boolean {
    try {
      return this.#store.getItem(this.#prefix + id) !== null;
    } catch {
      return false;
    }
  }

  /** The hand-over of `id` settled but its entry stays (for the next start): any tab may replay it. */
  release(id: string): void {
    this.#held.get(id)?.();
    this.#held.delete(id);
  }

  /**
   * Request the lock of entry `id` before the entry is written: a tab that reads the entry reads
   * it after this request was made (same task), so its `busy` query finds it held or pending.
   */
  #hold(id: string): void {
    if (!this.#locks || this.#held.has(id)) return;
    let release = () => {};
    const until = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.#held.set(id, release);
    try {
      this.#locks.request(this.#prefix + id, () => until).catch(() => {});
    } catch {
      // no locks here (an opaque origin): replay in another tab may not know this one is pending
    }
  }

  /**
   * The message ids whose hand-over is still pending in some tab of this origin, this one
   * included: their lock is held or requested. Query after `read` (see `#hold`). Empty when the
   * browser has no Web Locks.
   */
  async busy(): Promise<Set<string>> {
    const out = new Set<string>(this.#held.keys());
    if (!this.#locks) return out;
    try {
      const { held = [], pending = [] } = await this.#locks.query();
      for (const l of [...held, ...pending])
        if (l.name?.startsWith(this.#prefix)) out.add(l.name.slice(this.#prefix.length));
    } catch {
      // no answer: replay all, as without locks
    }
    return out;
  }

  /**
   * Every entry of this identity, opened and in replay order; the ones that do not open are
   * listed apart with their error (the caller decides what to drop).
   */
  read(): JournalRead {
    const entries: JournalEntry[] = [];
    const unreadable: JournalRead["unreadable"] = [];
    for (const name of storeKeys(this.#store, this.#prefix)) {
      const id = name.slice(this.#prefix.length);
      const value = this.#store.getItem(name);
      if (value === null) continue;
      const opened = openEntry(this.#key, this.#identityKey, id, value);
      if (opened.ok) entries.push(opened.value);
      else unreadable.push({ id, error: opened.error });
    }
    return { entries: replayOrder(entries), unreadable };
  }

  /**
   * Record that the person asked to send stored message `id` again (`ChatEngine.retry`), in the
   * task of the call: a reload before the retry's commit lands replays it. Whether the store took it.
   */
  writeRetry(id: string): boolean {
    try {
      this.#store.setItem(this.#retryPrefix + id, RETRY_VALUE);
      return true;
    } catch {
      return false;
    }
  }

  removeRetry(id: string): void {
    try {
      this.#store.removeItem(this.#retryPrefix + id);
    } catch {
      // a store that stopped working holds nothing we could remove
    }
  }

  /**
   * The message ids of retries not yet committed, oldest key first as the store lists them; a
   * key that does not name a message id, or holds another value, is removed (nothing to replay).
   */
  retries(): string[] {
    const out: string[] = [];
    for (const name of storeKeys(this.#store, this.#retryPrefix)) {
      const id = name.slice(this.#retryPrefix.length);
      if (MESSAGE_ID.test(id) && this.#store.getItem(name) === RETRY_VALUE) out.push(id);
      else this.#store.removeItem(name);
    }
    return out;
  }

  /** Forget the key (the storage closes or is replaced); this tab's locks go. */
  close(): void {
    for (const id of [...this.#held.keys()]) this.release(id);
    this.#key.fill(0);
  }
}

/** The store keys starting with `prefix` (collected first: removing shifts the indices). */
export function storeKeys(store: SyncStore, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < store.length; i++) {
    const k = store.key(i);
    if (k?.startsWith(prefix)) out.push(k);
  }
  return out;
}

/** The page's Web Locks (`navigator.locks`), or undefined where there are none. */
export function pageLocks(): JournalLocks | undefined {
  try {
    return typeof navigator === "undefined" ? undefined : navigator.locks;
  } catch {
    return undefined;
  }
}

/** The page's localStorage, or undefined where there is none or the browser blocks it. */
export function pageSyncStore(): SyncStore | undefined {
  try {
    return typeof localStorage === "undefined" ? undefined : localStorage;
  } catch {
    return undefined;
  }
}

/** Remove every identity's journal and retries (start over, a restored backup: storage.ts). */
export function clearJournals(store: SyncStore | undefined = pageSyncStore()): void {
  if (!store) return;
  try {
    for (const k of [...storeKeys(store, JOURNAL_PREFIX), ...storeKeys(store, RETRY_PREFIX)])
      store.removeItem(k);
  } catch {
    // blocked: nothing was stored either
  }
}
