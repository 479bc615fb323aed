/**
 * File transfer on the wire (docs/protocol/files.md): the `file.*` application messages that
 * travel inside the contact's Double Ratchet (offer with the per-transfer key, accept/resume,
 * decline, cancel, done), and the two session frames that carry the bytes over the live Noise
 * session — FILE_CHUNK (0x10: the fields of SREMP §chunking `CHUNK_HEADER`, fixed width, then the
 * chunk sealed once with AES-256-GCM under the per-transfer key) and FILE_ACK (0x11: how many
 * chunks the receiver has stored, the sender's window and resume point).
 *
 * Pure: no I/O, no engine state. The AEAD comes from the CryptoProvider (core/crypto/provider.ts),
 * native AES-GCM where WebCrypto has it.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import * as v from "valibot";
import { utf8 } from "../../../../core/bytes.ts";
import { bytesSchema, uintSchema } from "../../../../core/codec/codec.ts";
import type { CryptoProvider } from "../../../../core/crypto/provider.ts";
import { err, ok, type Result } from "../../../../core/errors.ts";
import { MIN_MESSAGE_LEN } from "../../../../core/ratchet/message.ts";
import { MAX_PART } from "../mailbox.ts";

/**
 * Session frame types of the files range (0x10–0x17 in web/src/engine/wire.ts `FRAME`). FILE_MSG
 * carries a `file.*` message on a room member session only (files/room-files.ts; a contact's go
 * inside its ratchet): `decodeFileFrame` refuses it like the unassigned types.
 */
export const FILE_FRAME = { CHUNK: 0x10, ACK: 0x11, MSG: 0x12, CHUNK_WIDE: 0x13 } as const;

/**
 * Plaintext bytes per chunk of a transfer whose offer names no chunk size (every transfer before
 * session 18, and every one that may go through a relay mailbox or to a peer of an older
 * version): a sealed chunk frame stays one Noise DATA frame (≤ 65518 bytes).
 */
export const FILE_CHUNK_BYTES = 65_024;
export const AEAD_TAG_BYTES = 16;
/** `chunk_size` in a FILE_CHUNK (0x10) header: the sealed size of a full chunk of that size. */
export const SEALED_CHUNK_BYTES = FILE_CHUNK_BYTES + AEAD_TAG_BYTES;
/** SREMP `CHUNK_HEADER.total_chunks` is a u16: the largest file is 65535 full chunks. */
export const MAX_FILE_CHUNKS = 0xffff;
export const MAX_FILE_BYTES = MAX_FILE_CHUNKS * FILE_CHUNK_BYTES;
/** type ‖ message_id u32 ‖ chunk_index u16 ‖ total_chunks u16 ‖ chunk_size u16. */
export const CHUNK_HEADER_BYTES = 11;
/** FILE_CHUNK_WIDE (0x13): the same header with `chunk_size` a u32 (docs/protocol/files.md §2). */
export const WIDE_CHUNK_HEADER_BYTES = 13;
/**
 * The largest data-channel message Chromium sends and takes (its SCTP `maxMessageSize`, 256 KiB):
 * a wide chunk frame is one bulk-lane message, never cut.
 */
export const LANE_MESSAGE_BYTES = 256 * 1024;
/** The largest chunk (plaintext) an offer may name: its wide frame is one lane message. */
export const MAX_CHUNK_BYTES = LANE_MESSAGE_BYTES - WIDE_CHUNK_HEADER_BYTES - AEAD_TAG_BYTES;
/**
 * The chunk size a sender offers on a direct link whose peer takes it (bulk-lane.ts, the lane's
 * `BULK_CHUNKS`): 255 KiB. The receiver's costs are per chunk — a WebCrypto open and digest, a
 * slot copy, a worker message, an ACK — so four times fewer of them per MiB (bench/README.md,
 * bench:files, session 18).
 */
export const LANE_CHUNK_BYTES = 255 * 1024;

/** A transfer's chunk size: the offer's `cs`, or `FILE_CHUNK_BYTES` when it names none. */
export type ChunkBytes = number;
/** Whether a transfer of `size` bytes in chunks of `cs` fits the wire (u16 counts, a wide frame). */
export function validChunking(size: number, cs: ChunkBytes): boolean {
  return (
    Number.isSafeInteger(cs) &&
    cs >= 1 &&
    cs <= Math.max(MAX_CHUNK_BYTES, FILE_CHUNK_BYTES) &&
    Math.ceil(size / cs) <= MAX_FILE_CHUNKS
  );
}
/** The header length of a transfer's chunk frames: 0x10 for the default size, else 0x13. */
export const chunkHeaderBytes = (cs: ChunkBytes): number =>
  cs === FILE_CHUNK_BYTES ? CHUNK_HEADER_BYTES : WIDE_CHUNK_HEADER_BYTES;
export const ACK_FRAME_BYTES = 7;
export const FILE_KEY_BYTES = 32;
export const FILE_HASH_BYTES = 32;
export const MAX_FILE_NAME_CHARS = 255;
export const MAX_FILE_TYPE_CHARS = 127;
/** A preview the sender made of an image (WebP), sent ahead in the offer. */
export const MAX_THUMB_BYTES = 16 * 1024;
/**
 * Through the relay mailbox (docs/protocol/files.md §9) a sealed chunk goes in `file.part`
 * messages, each one ratchet message in one mailbox body: the largest bucket whose ratchet
 * message (97 bytes more: core/ratchet/message.ts) fits one body part (mailbox.ts `MAX_PART`,
 * from the relay's body cap) — 8 192 bytes — less the padding marker and the part's own fields.
 */
const MAILBOX_BUCKET = 2 ** Math.floor(Math.log2(MAX_PART - MIN_MESSAGE_LEN));
/** MessagePack of a `file.part` without its bytes: at most 47 bytes (`t`, `id`, `i`, `s`, `n`, `d`'s header). */
const PART_FIELDS_BYTES = 64;
/** Bytes of a sealed chunk one `file.part` carries. */
export const MAILBOX_PART_BYTES = MAILBOX_BUCKET - 1 - PART_FIELDS_BYTES;
/** A sealed chunk is at most this many parts. */
export const MAX_CHUNK_PARTS = Math.ceil(SEALED_CHUNK_BYTES / MAILBOX_PART_BYTES);
/** Parts (one mailbox body each) a file of `size` bytes takes, in chunks of the default size. */
export function mailboxParts(size: number): number {
  const full = Math.floor(size / FILE_CHUNK_BYTES);
  const last = chunkPlainBytes(size, full);
  return (
    full * MAX_CHUNK_PARTS +
    (full < chunkCount(size) ? Math.ceil((last + AEAD_TAG_BYTES) / MAILBOX_PART_BYTES) : 0)
  );
}
/** Domain separation of the chunk AAD (docs/protocol/files.md §3). */
const AAD_LABEL = utf8("loft/file/v1");
/** Domain separation of the file hash (docs/protocol/files.md §1). */
const HASH_LABEL = utf8("loft/file-hash/v1");

/** Chunks a file of `size` bytes is cut into (an empty file is one empty chunk). */
export function chunkCount(size: number, cs: ChunkBytes = FILE_CHUNK_BYTES): number {
  return Math.max(1, Math.ceil(size / cs));
}

/** Plaintext bytes of chunk `index` of a file of `size` bytes in chunks of `cs`. */
export function chunkPlainBytes(size: number, index: number, cs: ChunkBytes = FILE_CHUNK_BYTES): number {
  return Math.max(0, Math.min(cs, size - index * cs));
}

/**
 * The file hash the offer carries (docs/protocol/files.md §1): SHA-256 over "loft/file-hash/v1"
 * and the SHA-256 of every plaintext chunk in order. Each chunk's digest is native (WebCrypto
 * through the CryptoProvider) and can run while the next chunk is read or opened; only 32 bytes
 * per chunk go through the running JavaScript hash, so hashing is no longer the hot path.
 */
export class FileHasher {
  readonly #outer = sha256.create().update(HASH_LABEL);

  /** Start the digest of one chunk's plaintext (the provider copies it before this resolves). */
  static chunkDigest(crypto: ChunkCrypto, plaintext: Uint8Array): Promise<Uint8Array> {
    return crypto.sha256(plaintext);
  }

  /** Add the next chunk's digest, in chunk order. */
  add(chunkDigest: Uint8Array): void {
    if (chunkDigest.length !== FILE_HASH_BYTES) throw new Error("a chunk digest is 32 bytes");
    this.#outer.update(chunkDigest);
  }

  digest(): Uint8Array {
    return this.#outer.digest();
  }
}

/**
 * The file hash of a whole file held in memory (vectors and tests; the engine streams), over the
 * transfer's chunks of `cs` bytes (§1: the chunking is the offer's).
 */
export async function fileHash(
  crypto: CryptoProvider,
  file: Uint8Array,
  cs: ChunkBytes = FILE_CHUNK_BYTES,
): Promise<Uint8Array> {
  const h = new FileHasher();
  for (let index = 0; index < chunkCount(file.length, cs); index++) {
    const at = index * cs;
    h.add(
      await FileHasher.chunkDigest(crypto, file.subarray(at, at + chunkPlainBytes(file.length, index, cs))),
    );
  }
  return h.digest();
}

// ---- application messages (inside the ratchet) ------------------------------------------------

/** A transfer id: chosen by the sender, unique among its transfers to this contact. */
const transferId = v.pipe(uintSchema(0xffffffff), v.minValue(1));
const chunkIndex = uintSchema(MAX_FILE_CHUNKS);

/** `chunks`: the offer's chunk size is above what the receiver takes, or does not fit its size (§2). */
export const FILE_DECLINE_REASONS = ["declined", "too-large", "busy", "chunks"] as const;
export type FileDeclineReason = (typeof FILE_DECLINE_REASONS)[number];
/**
 * Why a receiver ended a transfer it had accepted (`file.fail`, docs/protocol/files.md §1): a
 * chunk beyond the window (§5), a malformed or out-of-order chunk (§4), one that failed its AEAD
 * (§3), or its storage failed.
 */
export const FILE_FAIL_REASONS = ["window", "malformed", "damaged", "storage"] as const;
export type FileFailReason = (typeof FILE_FAIL_REASONS)[number];

/** The `file.*` members of the application-message union (web/src/engine/wire.ts `appSchema`). */
export const fileAppSchemas = [
  v.strictObject({
    t: v.literal("file.offer"),
    id: transferId,
    name: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_FILE_NAME_CHARS)),
    size: uintSchema(MAX_FILE_BYTES),
    type: v.pipe(v.string(), v.maxLength(MAX_FILE_TYPE_CHARS)),
    hash: bytesSchema(FILE_HASH_BYTES),
    key: bytesSchema(FILE_KEY_BYTES),
    thumb: v.optional(bytesSchema(1, MAX_THUMB_BYTES)),
    /**
     * Plaintext bytes per chunk (§2, since session 18); absent: `FILE_CHUNK_BYTES`. Any u32 ≥ 1
     * decodes: the receiver declines one above its maximum (`chunks`), in words, not silently.
     */
    cs: v.optional(v.pipe(uintSchema(0xffffffff), v.minValue(1))),
  }),
  v.strictObject({ t: v.literal("file.accept"), id: transferId, from: chunkIndex }),
  v.strictObject({ t: v.literal("file.decline"), id: transferId, r: v.picklist(FILE_DECLINE_REASONS) }),
  v.strictObject({ t: v.literal("file.cancel"), id: transferId, own: v.boolean() }),
  v.strictObject({ t: v.literal("file.done"), id: transferId, ok: v.boolean() }),
  /** Slice `s` of `n` of sealed chunk `i`, through the relay mailbox (§9). */
  v.strictObject({
    t: v.literal("file.part"),
    id: transferId,
    i: chunkIndex,
    s: uintSchema(MAX_CHUNK_PARTS - 1),
    n: v.pipe(uintSchema(MAX_CHUNK_PARTS), v.minValue(1)),
    d: bytesSchema(1, MAILBOX_PART_BYTES),
  }),
  /** The receiver ended the transfer, and why (before its `file.cancel`, which older peers read). */
  v.strictObject({ t: v.literal("file.fail"), id: transferId, r: v.picklist(FILE_FAIL_REASONS) }),
  /**
   * The sender ended a transfer it sends (`own`, as `file.cancel`'s) because its sealed copy could
   * not give a chunk — damaged or unreadable — and the picked file is no longer at hand (§1, §5).
   * Before its `file.cancel`; an older receiver drops it as a message that does not decode.
   */
  v.strictObject({ t: v.literal("file.fail"), id: transferId, own: v.literal(true), r: v.literal("copy") }),
] as const;

/** Field count of the largest `file.*` message (the application decoder's map limit). */
export const FILE_APP_MAX_FIELDS = 9;

export type FileOffer = v.InferOutput<(typeof fileAppSchemas)[0]>;
export type FileAppMessage =
  | FileOffer
  | v.InferOutput<(typeof fileAppSchemas)[1]>
  | v.InferOutput<(typeof fileAppSchemas)[2]>
  | v.InferOutput<(typeof fileAppSchemas)[3]>
  | v.InferOutput<(typeof fileAppSchemas)[4]>
  | FilePart
  | FileFail
  | FileSenderFail;
export type FilePart = v.InferOutput<(typeof fileAppSchemas)[5]>;
export type FileFail = v.InferOutput<(typeof fileAppSchemas)[6]>;
export type FileSenderFail = v.InferOutput<(typeof fileAppSchemas)[7]>;

export function isFileAppMessage(m: { t: string }): m is FileAppMessage {
  return m.t.startsWith("file.");
}

// ---- session frames ---------------------------------------------------------------------------

/** SREMP §chunking `CHUNK_HEADER`, with `message_id` = the transfer id. */
export interface FileChunkHeader {
  id: number;
  index: number;
  total: number;
  /**
   * Sealed bytes of a full chunk (the offer's chunk size + the tag; the last may carry fewer):
   * `SEALED_CHUNK_BYTES` goes as FILE_CHUNK (0x10, a u16), any other as FILE_CHUNK_WIDE (0x13, a u32).
   */
  chunkSize: number;
}

export interface FileChunkFrame {
  header: FileChunkHeader;
  /** AES-256-GCM ciphertext ‖ tag of the chunk's plaintext. */
  sealed: Uint8Array;
}

export interface FileAckFrame {
  id: number;
  /** Chunks 0..next-1 are stored: the sender may have up to its window beyond this. */
  next: number;
}

export function isFileFrame(bytes: Uint8Array): boolean {
  const t = bytes[0];
  return t !== undefined && t >= 0x10 && t <= 0x17;
}

/** Whether a header goes as FILE_CHUNK_WIDE (any chunk size but the default's). */
const isWide = (h: FileChunkHeader): boolean => h.chunkSize !== SEALED_CHUNK_BYTES;
/** The header bytes of a frame carrying `h`: 11 (0x10) or 13 (0x13). */
export const headerBytesOf = (h: FileChunkHeader): number =>
  isWide(h) ? WIDE_CHUNK_HEADER_BYTES : CHUNK_HEADER_BYTES;
/** The largest `chunk_size` of a wide frame: the frame is one lane message. */
const MAX_WIDE_SEALED = MAX_CHUNK_BYTES + AEAD_TAG_BYTES;

function writeHeader(out: Uint8Array, h: FileChunkHeader): void {
  const wide = isWide(h);
  const dv = new DataView(out.buffer, out.byteOffset, wide ? WIDE_CHUNK_HEADER_BYTES : CHUNK_HEADER_BYTES);
  dv.setUint8(0, wide ? FILE_FRAME.CHUNK_WIDE : FILE_FRAME.CHUNK);
  dv.setUint32(1, h.id);
  dv.setUint16(5, h.index);
  dv.setUint16(7, h.total);
  if (wide) dv.setUint32(9, h.chunkSize);
  else dv.setUint16(9, h.chunkSize);
}

function checkHeader(h: FileChunkHeader, wide: boolean): Result<FileChunkHeader> {
  if (h.id === 0) return err("LOFT_ERR_MALFORMED", "transfer id 0");
  if (h.total === 0) return err("LOFT_ERR_MALFORMED", "a file has at least one chunk");
  if (h.index >= h.total) return err("LOFT_ERR_CHUNK_LIMIT", "chunk index past the last chunk");
  // One encoding per chunk: the default size only as 0x10, every other only as 0x13.
  if (wide) {
    if (h.chunkSize === SEALED_CHUNK_BYTES)
      return err("LOFT_ERR_MALFORMED", "the default chunk_size in a wide frame");
    if (h.chunkSize <= AEAD_TAG_BYTES || h.chunkSize > MAX_WIDE_SEALED)
      return err("LOFT_ERR_CHUNK_LIMIT", "chunk_size out of range");
  } else if (h.chunkSize !== SEALED_CHUNK_BYTES) return err("LOFT_ERR_MALFORMED", "unexpected chunk_size");
  return ok(h);
}

/**
 * 0x10 ‖ header alone (docs/protocol/files.md §2): the first part of a FILE_CHUNK handed to
 * `Session.sendParts([header, sealed])`, which copies both straight into the Noise frame it seals —
 * no whole FILE_CHUNK built first only to be copied again.
 */
export function encodeChunkHeader(h: FileChunkHeader): Uint8Array {
  const out = new Uint8Array(headerBytesOf(h));
  writeHeader(out, h);
  return out;
}

/** 0x10 (or 0x13) ‖ header ‖ sealed (docs/protocol/files.md §2). */
export function encodeChunkFrame(f: FileChunkFrame): Uint8Array {
  return encodeChunkFrameInto(new Uint8Array(headerBytesOf(f.header) + f.sealed.length), f);
}

/**
 * The same bytes as `encodeChunkFrame`, written into `out` (at least the frame's length): the
 * sender's one buffer for every frame it hands a data channel, whose `send` copies what it is
 * given at the call. Returns the frame, a view of `out`.
 */
export function encodeChunkFrameInto(out: Uint8Array, f: FileChunkFrame): Uint8Array {
  const head = headerBytesOf(f.header);
  const length = head + f.sealed.length;
  if (out.length < length) throw new RangeError("the frame does not fit");
  writeHeader(out, f.header);
  out.set(f.sealed, head);
  return out.subarray(0, length);
}

export function encodeAckFrame(a: FileAckFrame): Uint8Array {
  const out = new Uint8Array(ACK_FRAME_BYTES);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, FILE_FRAME.ACK);
  dv.setUint32(1, a.id);
  dv.setUint16(5, a.next);
  return out;
}

export type FileFrame = { type: "chunk"; chunk: FileChunkFrame } | { type: "ack"; ack: FileAckFrame };

/** Decode a files-range session frame; typed errors for anything else, never a throw. */
export function decodeFileFrame(bytes: Uint8Array): Result<FileFrame> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (bytes[0]) {
    case FILE_FRAME.CHUNK: {
      if (bytes.length < CHUNK_HEADER_BYTES + AEAD_TAG_BYTES)
        return err("LOFT_ERR_MALFORMED", "chunk frame shorter than its header and tag");
      if (bytes.length > CHUNK_HEADER_BYTES + SEALED_CHUNK_BYTES)
        return err("LOFT_ERR_FRAME_TOO_LARGE", "chunk frame larger than a full chunk");
      const header = checkHeader(
        { id: dv.getUint32(1), index: dv.getUint16(5), total: dv.getUint16(7), chunkSize: dv.getUint16(9) },
        false,
      );
      if (!header.ok) return header;
      const sealed = bytes.subarray(CHUNK_HEADER_BYTES);
      const last = header.value.index === header.value.total - 1;
      if (!last && sealed.length !== SEALED_CHUNK_BYTES)
        return err("LOFT_ERR_MALFORMED", "only the last chunk may be short");
      return ok({ type: "chunk", chunk: { header: header.value, sealed } });
    }
    case FILE_FRAME.CHUNK_WIDE: {
      // The same header with chunk_size a u32 (§2, since session 18): chunks of another size
      // than the default, on the bulk lane (one message each) or inside a session.
      if (bytes.length < WIDE_CHUNK_HEADER_BYTES + AEAD_TAG_BYTES)
        return err("LOFT_ERR_MALFORMED", "chunk frame shorter than its header and tag");
      if (bytes.length > WIDE_CHUNK_HEADER_BYTES + MAX_WIDE_SEALED)
        return err("LOFT_ERR_FRAME_TOO_LARGE", "chunk frame larger than the largest chunk");
      const header = checkHeader(
        { id: dv.getUint32(1), index: dv.getUint16(5), total: dv.getUint16(7), chunkSize: dv.getUint32(9) },
        true,
      );
      if (!header.ok) return header;
      const sealed = bytes.subarray(WIDE_CHUNK_HEADER_BYTES);
      if (sealed.length > header.value.chunkSize)
        return err("LOFT_ERR_MALFORMED", "a chunk longer than its chunk_size");
      const last = header.value.index === header.value.total - 1;
      if (!last && sealed.length !== header.value.chunkSize)
        return err("LOFT_ERR_MALFORMED", "only the last chunk may be short");
      return ok({ type: "chunk", chunk: { header: header.value, sealed } });
    }
    case FILE_FRAME.ACK: {
      if (bytes.length !== ACK_FRAME_BYTES) return err("LOFT_ERR_MALFORMED", "an ACK frame is 7 bytes");
      const id = dv.getUint32(1);
      if (id === 0) return err("LOFT_ERR_MALFORMED", "transfer id 0");
      return ok({ type: "ack", ack: { id, next: dv.getUint16(5) } });
    }
    default:
      return err("LOFT_ERR_UNKNOWN_TYPE", `unknown file frame type ${bytes[0]}`);
  }
}

/**
 * Decode a frame from a direct link's bulk lane (docs/protocol/files.md §2, "The bulk lane"):
 * FILE_CHUNK only, with the checks of `decodeFileFrame`. Acknowledgements and every other type
 * belong inside the session (`LOFT_ERR_UNKNOWN_TYPE`); nothing here throws.
 */
export function decodeBulkFrame(bytes: Uint8Array): Result<FileChunkFrame> {
  if (bytes[0] !== FILE_FRAME.CHUNK && bytes[0] !== FILE_FRAME.CHUNK_WIDE)
    return err("LOFT_ERR_UNKNOWN_TYPE", `frame type ${bytes[0]} does not go on the bulk lane`);
  const frame = decodeFileFrame(bytes);
  if (!frame.ok) return frame;
  return frame.value.type === "chunk"
    ? ok(frame.value.chunk)
    : err("LOFT_ERR_UNKNOWN_TYPE", "not a chunk frame");
}

// ---- the chunk AEAD ---------------------------------------------------------------------------

/** AES-GCM nonce of chunk `index`: 10 zero bytes ‖ u16be(index); the key is fresh per transfer. */
export function chunkNonce(index: number): Uint8Array {
  const n = new Uint8Array(12);
  n[10] = index >>> 8;
  n[11] = index & 0xff;
  return n;
}

/**
 * AAD: "loft/file/v1" ‖ the header bytes after the type (id, index, total, chunk_size): 10 for
 * FILE_CHUNK, 12 for FILE_CHUNK_WIDE — of different lengths, so no header of one is read as the other's.
 */
export function chunkAad(h: FileChunkHeader): Uint8Array {
  const head = headerBytesOf(h);
  const header = new Uint8Array(head);
  writeHeader(header, h);
  const out = new Uint8Array(AAD_LABEL.length + head - 1);
  out.set(AAD_LABEL);
  out.set(header.subarray(1), AAD_LABEL.length);
  return out;
}

/** Seal one chunk's plaintext into a FILE_CHUNK frame. */
export async function sealChunk(
  crypto: CryptoProvider,
  key: Uint8Array,
  header: FileChunkHeader,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  return encodeChunkFrame({ header, sealed: await sealChunkBytes(crypto, key, header, plaintext) });
}

/** Seal one chunk's plaintext: the frame's `sealed` part (ciphertext ‖ tag), as kept at rest. */
export function sealChunkBytes(
  crypto: CryptoProvider,
  key: Uint8Array,
  header: FileChunkHeader,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  return crypto.aes256gcm.seal(key, chunkNonce(header.index), chunkAad(header), plaintext);
}

/** Open one chunk; `LOFT_ERR_DECRYPT` when it was changed, moved or sealed under another key. */
export async function openChunk(
  crypto: CryptoProvider,
  key: Uint8Array,
  chunk: FileChunkFrame,
): Promise<Result<Uint8Array>> {
  const plain = await crypto.aes256gcm.open(
    key,
    chunkNonce(chunk.header.index),
    chunkAad(chunk.header),
    chunk.sealed,
  );
  return plain ? ok(plain) : err("LOFT_ERR_DECRYPT", "a file chunk failed its integrity check");
}

/** What opening and digesting chunks takes of a provider: its AES-256-GCM and SHA-256. */
export type ChunkCrypto = Pick<CryptoProvider, "aes256gcm" | "sha256">;

/** The chunk AEAD under one per-transfer key (§3), for every chunk of the transfer. */
export interface ChunkCipher {
  /** The sealed bytes of one chunk (ciphertext ‖ tag), as `sealChunkBytes`. */
  seal(header: FileChunkHeader, plaintext: Uint8Array): Promise<Uint8Array>;
  /** As `openChunk`. */
  open(chunk: FileChunkFrame): Promise<Result<Uint8Array>>;
}

/**
 * The chunk AEAD with `key` imported once where the provider gains from it (`Aead.withKey`:
 * WebCrypto's `importKey` per chunk was a visible share of both pages' time in bench:files);
 * otherwise each call passes `key` (kept by reference: wiping it ends the cipher too).
 */
export async function chunkCipher(crypto: ChunkCrypto, key: Uint8Array): Promise<ChunkCipher> {
  const keyed = await crypto.aes256gcm.withKey?.(key);
  const seal = (h: FileChunkHeader, p: Uint8Array) =>
    keyed
      ? keyed.seal(chunkNonce(h.index), chunkAad(h), p)
      : crypto.aes256gcm.seal(key, chunkNonce(h.index), chunkAad(h), p);
  return {
    seal,
    async open(chunk) {
      const { header, sealed } = chunk;
      const plain = keyed
        ? await keyed.open(chunkNonce(header.index), chunkAad(header), sealed)
        : await crypto.aes256gcm.open(key, chunkNonce(header.index), chunkAad(header), sealed);
      return plain ? ok(plain) : err("LOFT_ERR_DECRYPT", "a file chunk failed its integrity check");
    },
  };
}

// ---- the receiver's rule for the next chunk ---------------------------------------------------

/** What the receiver knows of a transfer it accepted: the offer's size, and chunks stored. */
export interface ChunkExpectation {
  id: number;
  size: number;
  /** The offer's chunk size (`FILE_CHUNK_BYTES` when it named none). */
  cs?: ChunkBytes;
  /** Chunks 0..next-1 are stored. */
  next: number;
}

/**
 * Whether `chunk` is the next one of the transfer (docs/protocol/files.md §4): an earlier index is
 * a replay (`LOFT_ERR_REPLAY`, dropped quietly: a resend after a resume), a later one is out of
 * order, and the header and length must agree with the offer.
 */
export function checkChunk(expect: ChunkExpectation, chunk: FileChunkFrame): Result<FileChunkFrame> {
  const { header, sealed } = chunk;
  const cs = expect.cs ?? FILE_CHUNK_BYTES;
  if (header.id !== expect.id) return err("LOFT_ERR_MALFORMED", "chunk of another transfer");
  if (header.chunkSize !== cs + AEAD_TAG_BYTES)
    return err("LOFT_ERR_MALFORMED", "chunk_size disagrees with the offered chunk size");
  if (header.total !== chunkCount(expect.size, cs))
    return err("LOFT_ERR_MALFORMED", "total_chunks disagrees with the offered size");
  if (header.index < expect.next) return err("LOFT_ERR_REPLAY", "a chunk already stored");
  if (header.index > expect.next) return err("LOFT_ERR_MALFORMED", "a chunk out of order");
  if (sealed.length !== chunkPlainBytes(expect.size, header.index, cs) + AEAD_TAG_BYTES)
    return err("LOFT_ERR_MALFORMED", "chunk length disagrees with the offered size");
  return ok(chunk);
}
