/**
 * Draft copies: a sealed, synchronous copy of a conversation's unsent words, written when the page
 * is hidden or left (docs/protocol/chat.md §9, "Draft copies"). The draft itself is an engine
 * secret sealed with WebCrypto and written to IndexedDB (engine/local-notes.ts, app/drafts.ts):
 * the write `pagehide` starts does not finish before a reload or a closed tab, so the words typed
 * in the last moment before it were lost. The copy goes to localStorage in the same task, the way
 * the outbox journal does (journal.ts), and is folded into the sealed draft at the next start
 * (app/drafts.ts `foldDraftCopies`), then removed.
 *
 * Never plaintext at rest, like the journal and for the same reasons (docs/design.md,
 * "Cryptography"): XChaCha20-Poly1305 (@noble/ciphers; draft-irtf-cfrg-xchacha §2) under a key
 * held in memory only, derived at unlock with HKDF-SHA-256 (RFC 5869) from the private identity
 * key with its own label, a fresh random 24-byte nonce per copy, associated data binding the copy
 * to this identity and to its conversation (a copy moved to another conversation's key or into
 * another profile does not open), and the plaintext padded to a power-of-two bucket
 * (core/codec/padding.ts; docs/design.md, "Padding") so a value's size says only the bucket of the
 * text's length.
 *
 * Byte layout (docs/protocol/chat.md §9, "Draft copies", has the table and a vector):
 *   store key   "loft.draft-copy." ‖ selfHex ‖ "." ‖ draft key ("chat:<contact id>", "room:<room id hex>")
 *   value       base64url( 0x01 ‖ nonce[24] ‖ XChaCha20-Poly1305(key, nonce, plaintext, ad) )
 *   ad          "loft/draft-copy/v1" ‖ 0x00 ‖ identity key[32] ‖ draft key (UTF-8)
 *   plaintext   padToBucket( at u64 BE ‖ text (UTF-8) )   — an empty text: the draft was erased
 */
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, fromUtf8, toHex } from "../../../core/bytes.ts";
import { paddedBucketSize, padToBucket, unpadBucket } from "../../../core/codec/padding.ts";
import { err, type LoftError, ok, type Result } from "../../../core/errors.ts";
import { type DraftCopy, type DraftKey, MAX_DRAFT_CHARS } from "../engine/local-notes.ts";
import { openValue, type SyncStore, sealValue, storeKeys } from "./journal.ts";

export const DRAFT_COPY_PREFIX = "loft.draft-copy.";
export const DRAFT_COPY_VERSION = 0x01;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const AD_LABEL = new TextEncoder().encode("loft/draft-copy/v1\0");
const KEY_INFO = new TextEncoder().encode("loft/draft-copy/v1 key");
/** A draft key as local-notes.ts makes them: a contact id (64 hex) or a room id in hex. */
const DRAFT_KEY = /^(chat|room):[0-9a-f]{1,128}$/;
/**
 * The longest value a copy can have: MAX_DRAFT_CHARS UTF-16 code units at most 3 bytes each in
 * UTF-8, with the time, padded to its bucket, plus the header and the tag, in base64url.
 */
export const MAX_COPY_CHARS = Math.ceil(
  ((1 + NONCE_BYTES + paddedBucketSize(8 + 3 * MAX_DRAFT_CHARS) + TAG_BYTES) * 4) / 3,
);

const utf8 = new TextEncoder();

/** The copies' key: HKDF-SHA-256(ikm = private identity key, salt = identity key, info = KEY_INFO). */
export function draftCopyKey(identityKey: Uint8Array, privateIdentityKey: Uint8Array): Uint8Array {
  return hkdf(sha256, privateIdentityKey, identityKey, KEY_INFO, 32);
}

/** A copy's associated data: the label, the identity key and the conversation's draft key. */
export function draftCopyAd(identityKey: Uint8Array, key: DraftKey): Uint8Array {
  return concatBytes(AD_LABEL, identityKey, utf8.encode(key));
}

/** A copy's plaintext: `at` (u64 BE) ‖ text (UTF-8, cut at MAX_DRAFT_CHARS), padded to its bucket. */
export function draftCopyPlaintext(copy: DraftCopy): Uint8Array {
  if (!Number.isSafeInteger(copy.at) || copy.at < 0) throw new RangeError("draft copy: bad time");
  const text = utf8.encode(copy.text.slice(0, MAX_DRAFT_CHARS));
  const fields = new Uint8Array(8 + text.length);
  new DataView(fields.buffer).setBigUint64(0, BigInt(copy.at));
  fields.set(text, 8);
  text.fill(0);
  const plain = padToBucket(fields);
  fields.fill(0);
  return plain;
}

/** Seal one copy (synchronous: noble, no WebCrypto). `nonce` is for vectors and tests only. */
export function sealDraftCopy(
  key: Uint8Array,
  identityKey: Uint8Array,
  copy: DraftCopy,
  nonce: Uint8Array = crypto.getRandomValues(new Uint8Array(NONCE_BYTES)),
): string {
  const plain = draftCopyPlaintext(copy);
  const value = sealValue(DRAFT_COPY_VERSION, key, nonce, draftCopyAd(identityKey, copy.key), plain);
  plain.fill(0);
  return value;
}

/**
 * Open the copy stored for conversation `draftKey`. Typed errors, never a throw: oversized
 * (FRAME_TOO_LARGE, before any decoding), not base64url or too short (MALFORMED), another version
 * (UNSUPPORTED_VERSION), wrong key, another profile, another conversation or any changed byte
 * (DECRYPT), bad padding (PADDING), a time or text that breaks the layout (SCHEMA).
 */
export function openDraftCopy(
  key: Uint8Array,
  identityKey: Uint8Array,
  draftKey: DraftKey,
  value: string,
): Result<DraftCopy> {
  const opened = openValue(
    "draft copy",
    value,
    { maxChars: MAX_COPY_CHARS, minPlain: 8, versions: [DRAFT_COPY_VERSION] },
    key,
    draftCopyAd(identityKey, draftKey),
  );
  if (!opened.ok) return opened;
  const { plain } = opened.value;
  try {
    const fields = unpadBucket(plain);
    if (!fields.ok) return err("LOFT_ERR_PADDING", "draft copy padding");
    try {
      if (fields.value.length < 8) return err("LOFT_ERR_SCHEMA", "draft copy shorter than its time");
      const view = new DataView(fields.value.buffer, fields.value.byteOffset, fields.value.byteLength);
      const at = view.getBigUint64(0);
      if (at > BigInt(Number.MAX_SAFE_INTEGER)) return err("LOFT_ERR_SCHEMA", "draft copy time out of range");
      let text: string;
      try {
        text = fromUtf8(fields.value.subarray(8));
      } catch {
        return err("LOFT_ERR_SCHEMA", "draft copy is not UTF-8");
      }
      if (text.length > MAX_DRAFT_CHARS) return err("LOFT_ERR_SCHEMA", "draft copy text too long");
      return ok({ key: draftKey, at: Number(at), text });
    } finally {
      fields.value.fill(0);
    }
  } finally {
    plain.fill(0);
  }
}

/** What `DraftCopies.read` found: copies that open, and the ones that do not (removed). */
export interface DraftCopiesRead {
  copies: DraftCopy[];
  unreadable: { key: string; error: LoftError }[];
}

/** One identity's draft copies in a synchronous store (localStorage in the page). */
export class DraftCopies {
  readonly #store: SyncStore;
  readonly #identityKey: Uint8Array;
  readonly #key: Uint8Array;
  readonly #prefix: string;
  /**
   * Per conversation, the value this page last wrote or read: the one copy `remove` may take. The
   * store is shared by every tab of the origin, and another tab may have written a newer copy since
   * (it went with words of its own): that one is not this page's to remove.
   */
  readonly #mine = new Map<string, string>();

  constructor(store: SyncStore, identityKey: Uint8Array, key: Uint8Array) {
    this.#store = store;
    this.#identityKey = identityKey.slice();
    this.#key = key;
    this.#prefix = `${DRAFT_COPY_PREFIX}${toHex(identityKey)}.`;
  }

  /** Whether the copy is in the store (false: the store refused it — full, or blocked). */
  write(copy: DraftCopy): boolean {
    try {
      const value = sealDraftCopy(this.#key, this.#identityKey, copy);
      this.#store.setItem(this.#prefix + copy.key, value);
      this.#mine.set(copy.key, value);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Remove the copy of `key` this page wrote or read (a write after it landed, or it was folded),
   * and only that one: a copy another tab wrote since stays for the next start (each copy's nonce
   * makes its value unique, so an equal value is the same copy).
   */
  remove(key: DraftKey): void {
    const mine = this.#mine.get(key);
    this.#mine.delete(key);
    try {
      if (mine !== undefined && this.#store.getItem(this.#prefix + key) === mine)
        this.#store.removeItem(this.#prefix + key);
    } catch {
      // a store that stopped working holds nothing we could remove
    }
  }

  /** Remove the copy of `key`, whoever wrote it (its conversation is deleted). */
  discard(key: DraftKey): void {
    this.#mine.delete(key);
    try {
      this.#store.removeItem(this.#prefix + key);
    } catch {
      // a store that stopped working holds nothing we could remove
    }
  }

  /**
   * Every copy of this identity that opens. One that does not (damaged, moved, of another
   * identity's key, a key that names no conversation) is removed and listed apart: it can never
   * open, and a draft is not worth keeping junk for. A newer version's copy is left for it.
   */
  read(): DraftCopiesRead {
    const copies: DraftCopy[] = [];
    const unreadable: DraftCopiesRead["unreadable"] = [];
    try {
      for (const name of storeKeys(this.#store, this.#prefix)) {
        const key = name.slice(this.#prefix.length);
        const value = this.#store.getItem(name);
        if (value === null) continue;
        const opened = DRAFT_KEY.test(key)
          ? openDraftCopy(this.#key, this.#identityKey, key as DraftKey, value)
          : err("LOFT_ERR_SCHEMA", "draft copy key names no conversation");
        if (opened.ok) {
          copies.push(opened.value);
          this.#mine.set(key, value);
        } else {
          unreadable.push({ key, error: opened.error });
          if (opened.error.code !== "LOFT_ERR_UNSUPPORTED_VERSION") this.#store.removeItem(name);
        }
      }
    } catch {
      // the store cannot be read: nothing to fold this time
    }
    return { copies, unreadable };
  }

  /** Forget the key (the storage closes or is replaced). */
  close(): void {
    this.#key.fill(0);
  }
}

/** Remove every identity's draft copies (start over, a restored backup: storage.ts). */
export function clearDraftCopies(store: SyncStore | undefined): void {
  if (!store) return;
  try {
    for (const k of storeKeys(store, DRAFT_COPY_PREFIX)) store.removeItem(k);
  } catch {
    // blocked: nothing was stored either
  }
}
