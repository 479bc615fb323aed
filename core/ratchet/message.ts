/**
 * Byte layout of a Loft Double Ratchet message and its encrypted header — the `HEADER`,
 * `HENCRYPT`/`HDECRYPT` and `ENCRYPT`/`DECRYPT` functions of the Signal Double Ratchet with header
 * encryption (revision 1, §3.1 external functions, §4.2 header-encryption functions, §5.2 recommended
 * algorithms), https://signal.org/docs/specifications/doubleratchet/.
 *
 * One message on the wire (docs/protocol/ratchet.md, "Message layout"):
 *
 *   offset  size        field
 *   0       1           version = 0x01, 0x02 or 0x03
 *   1       24          nonce (random, fresh per message)
 *   25      56          encrypted header, AD = version byte:
 *                         0x01, 0x02: XChaCha20-Poly1305(HK, nonce, AD, header)
 *                         0x03: AES-256-GCM(HK, nonce[12..24], AD, header)
 *   81      len(pt)+16  body, AD = ad ‖ bytes 0..81:
 *                         0x01: XChaCha20-Poly1305(MK, nonce, AD, plaintext)
 *                         0x02, 0x03: AES-256-GCM(MK, nonce[0..12], AD, plaintext)
 *
 * and the 40-byte header plaintext is `DHs public key (32) ‖ PN (u32 BE) ‖ N (u32 BE)`.
 *
 * Why XChaCha20-Poly1305 with a random 192-bit nonce: a header key encrypts every header of a
 * sending chain (DR §4.1), so a deterministic nonce would repeat; a random 24-byte nonce never does
 * in practice. The body reuses that nonce under the message key MK, a different key, so the pair
 * (key, nonce) stays unique — and even a sender restored from an older stored state (re-deriving
 * the same MK) encrypts under a fresh nonce, so a rollback cannot repeat a keystream.
 *
 * Version 0x02 changes only the body's AEAD (DR §5.2 allows any AEAD for ENCRYPT): AES-256-GCM,
 * native in every browser's WebCrypto and in node:crypto, where XChaCha20-Poly1305 runs in
 * JavaScript. Its 12-byte IV is the first 12 bytes of the same random nonce, not derived from MK:
 * a sender restored from an older state re-derives the same MK, and a nonce derived from MK would
 * then repeat under it (fatal for GCM); 96 random bits do not (docs/protocol/ratchet.md,
 * "Version 0x02").
 *
 * Version 0x03 also moves the header to AES-256-GCM, so no JavaScript cipher is left on a
 * message's path in a browser. Its IV is the other half of the random nonce, N[12..24]: a header
 * key seals at most a chain's headers (MAX_COUNTER, below 2^32), inside NIST SP 800-38D §8.3's
 * bound for random IVs under one key (docs/protocol/ratchet.md, "Version 0x03").
 */
import type { CryptoProvider, KeyedAead } from "../crypto/provider.ts";
import { KEY_LEN } from "./kdf.ts";

/** Version 0x01: the body is XChaCha20-Poly1305. */
export const MESSAGE_VERSION = 0x01;
/** Version 0x02: the body is AES-256-GCM (docs/protocol/ratchet.md, "Version 0x02"). */
export const MESSAGE_VERSION_2 = 0x02;
/** Version 0x03: header and body AES-256-GCM (docs/protocol/ratchet.md, "Version 0x03"). */
export const MESSAGE_VERSION_3 = 0x03;
/** The message versions this code reads (and can write). */
export type MessageVersion = typeof MESSAGE_VERSION | typeof MESSAGE_VERSION_2 | typeof MESSAGE_VERSION_3;
export const NONCE_LEN = 24;
/** The AES-256-GCM IV of a version 0x02/0x03 body: the first bytes of the random nonce. */
export const GCM_NONCE_LEN = 12;
/** Where a version 0x03 header's AES-256-GCM IV starts in the nonce: its last 12 bytes. */
export const HEADER_GCM_NONCE_OFFSET = NONCE_LEN - GCM_NONCE_LEN;
export const TAG_LEN = 16;
/** DR §3.1 `HEADER(dh_pair, pn, n)`: DH public key ‖ PN ‖ N. */
export const HEADER_LEN = KEY_LEN + 4 + 4;
export const ENCRYPTED_HEADER_LEN = HEADER_LEN + TAG_LEN;
/** version ‖ nonce ‖ encrypted header: the part of a message the body's AD covers after `ad`. */
export const MESSAGE_PREFIX_LEN = 1 + NONCE_LEN + ENCRYPTED_HEADER_LEN;
/** Smallest message: an empty plaintext still carries the body's tag. */
export const MIN_MESSAGE_LEN = MESSAGE_PREFIX_LEN + TAG_LEN;
/** Largest message accepted (16 MiB): far above any frame, refused before any work. */
export const MAX_MESSAGE_LEN = 16 * 1024 * 1024;
/** PN and N are u32 (DR §3.1 leaves the encoding to us); a chain never reaches this. */
export const MAX_COUNTER = 0xffff_ffff;

/** The header's AD is the version byte, so a version swapped in transit fails at HDECRYPT. */
const HEADER_AD: Readonly<Record<MessageVersion, Uint8Array>> = {
  [MESSAGE_VERSION]: new Uint8Array([MESSAGE_VERSION]),
  [MESSAGE_VERSION_2]: new Uint8Array([MESSAGE_VERSION_2]),
  [MESSAGE_VERSION_3]: new Uint8Array([MESSAGE_VERSION_3]),
};

/** True for a version byte this code reads. */
export function isMessageVersion(v: number | undefined): v is MessageVersion {
  return v === MESSAGE_VERSION || v === MESSAGE_VERSION_2 || v === MESSAGE_VERSION_3;
}

/** DR §3.1 ENCRYPT/DECRYPT for `version`: the AEAD and the body nonce it takes. */
function bodyCipher(
  crypto: CryptoProvider,
  version: MessageVersion,
  nonce: Uint8Array,
): { aead: CryptoProvider["aes256gcm"]; nonce: Uint8Array } {
  return version === MESSAGE_VERSION
    ? { aead: crypto.xchacha20poly1305, nonce }
    : { aead: crypto.aes256gcm, nonce: nonce.subarray(0, GCM_NONCE_LEN) };
}

/**
 * DR §4.2 HENCRYPT/HDECRYPT for `version`: XChaCha20-Poly1305 under the whole nonce (0x01, 0x02),
 * or AES-256-GCM under its last 12 bytes (0x03) — the half the body's IV does not use, so even the
 * IVs of one message differ (the keys HK and MK differ already).
 */
function headerCipher(
  crypto: CryptoProvider,
  version: MessageVersion,
  nonce: Uint8Array,
): { aead: CryptoProvider["aes256gcm"]; nonce: Uint8Array } {
  return version === MESSAGE_VERSION_3
    ? { aead: crypto.aes256gcm, nonce: nonce.subarray(HEADER_GCM_NONCE_OFFSET) }
    : { aead: crypto.xchacha20poly1305, nonce };
}

/**
 * A header key made ready for a run of messages under it (a batch's HKs or HKr): for a 0x03 header
 * on a backend that imports keys (WebCrypto), imported once instead of once per header.
 */
export interface HeaderSealer {
  readonly key: Uint8Array;
  readonly keyed?: KeyedAead;
}

/** `headerKey` ready for many 0x03 headers (imported once where the backend gains from it). */
export async function headerSealer(
  crypto: CryptoProvider,
  version: MessageVersion,
  headerKey: Uint8Array,
): Promise<HeaderSealer> {
  if (version !== MESSAGE_VERSION_3 || !crypto.aes256gcm.withKey) return { key: headerKey };
  const keyed = await crypto.aes256gcm.withKey(headerKey);
  return keyed ? { key: headerKey, keyed } : { key: headerKey };
}

function sealHeaderBytes(
  crypto: CryptoProvider,
  version: MessageVersion,
  headerKey: Uint8Array | HeaderSealer,
  nonce: Uint8Array,
  headerBytes: Uint8Array,
  output: Uint8Array,
): Promise<Uint8Array> {
  const cipher = headerCipher(crypto, version, nonce);
  const ad = HEADER_AD[version];
  if (headerKey instanceof Uint8Array)
    return cipher.aead.seal(headerKey, cipher.nonce, ad, headerBytes, output);
  if (version === MESSAGE_VERSION_3 && headerKey.keyed)
    return headerKey.keyed.seal(cipher.nonce, ad, headerBytes, output);
  return cipher.aead.seal(headerKey.key, cipher.nonce, ad, headerBytes, output);
}

export interface Header {
  /** The sender's current ratchet public key (DR §3.1 `dh`). */
  readonly dh: Uint8Array;
  /** Number of messages in the sender's previous sending chain (DR §3.1 `pn`). */
  readonly pn: number;
  /** Message number in the current sending chain (DR §3.1 `n`). */
  readonly n: number;
}

function writeU32(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value >>> 24;
  out[offset + 1] = (value >>> 16) & 0xff;
  out[offset + 2] = (value >>> 8) & 0xff;
  out[offset + 3] = value & 0xff;
}

function readU32(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>>
    0
  );
}

/**
 * HENCRYPT (DR §4.2) into `out`: version ‖ nonce ‖ encrypted header, the message's first
 * MESSAGE_PREFIX_LEN bytes.
 */
async function sealPrefix(
  crypto: CryptoProvider,
  version: MessageVersion,
  headerKey: Uint8Array | HeaderSealer,
  header: Header,
  nonce: Uint8Array,
  out: Uint8Array,
): Promise<void> {
  out[0] = version;
  out.set(nonce, 1);
  const headerBytes = new Uint8Array(HEADER_LEN);
  headerBytes.set(header.dh, 0);
  writeU32(headerBytes, KEY_LEN, header.pn);
  writeU32(headerBytes, KEY_LEN + 4, header.n);
  await sealHeaderBytes(
    crypto,
    version,
    headerKey,
    nonce,
    headerBytes,
    out.subarray(1 + NONCE_LEN, MESSAGE_PREFIX_LEN),
  );
}

/** The body's AD: `ad` ‖ version ‖ nonce ‖ encrypted header (DR §3.4 `CONCAT(AD, header)`). */
function bodyAdOf(ad: Uint8Array, prefix: Uint8Array): Uint8Array {
  const bodyAd = new Uint8Array(ad.length + MESSAGE_PREFIX_LEN);
  bodyAd.set(ad, 0);
  bodyAd.set(prefix.subarray(0, MESSAGE_PREFIX_LEN), ad.length);
  return bodyAd;
}

/**
 * DR §4.2 `RatchetEncryptHE` output, laid out as one byte string: header encrypted under `headerKey`
 * (HENCRYPT), body under `messageKey` (ENCRYPT, the AEAD of `version`) with AD = `ad` ‖ version ‖
 * nonce ‖ encrypted header.
 */
export async function sealMessage(
  crypto: CryptoProvider,
  version: MessageVersion,
  headerKey: Uint8Array,
  messageKey: Uint8Array,
  header: Header,
  nonce: Uint8Array,
  ad: Uint8Array,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const out = new Uint8Array(MESSAGE_PREFIX_LEN + plaintext.length + TAG_LEN);
  await sealPrefix(crypto, version, headerKey, header, nonce, out);
  const body = bodyCipher(crypto, version, nonce);
  await body.aead.seal(
    messageKey,
    body.nonce,
    bodyAdOf(ad, out),
    plaintext,
    out.subarray(MESSAGE_PREFIX_LEN),
  );
  return out;
}

/**
 * A sealed message in its two parts, the same bytes as `sealMessage`'s: the message is
 * `prefix ‖ body`.
 */
export interface SealedParts {
  /** version ‖ nonce ‖ encrypted header (MESSAGE_PREFIX_LEN bytes). */
  readonly prefix: Uint8Array;
  /** The body: ciphertext ‖ tag. */
  readonly body: Uint8Array;
}

/**
 * `sealMessage` without joining: the body is the AEAD's own output. A native AEAD (WebCrypto,
 * node:crypto) seals into a fresh buffer in any case, so writing into one message-sized buffer
 * costs a copy of the body (and its wipe); a caller that copies the parts once more anyway (into a
 * Noise transport frame: core/session `sendParts`) saves that copy.
 */
export async function sealMessageParts(
  crypto: CryptoProvider,
  version: MessageVersion,
  headerKey: Uint8Array | HeaderSealer,
  messageKey: Uint8Array,
  header: Header,
  nonce: Uint8Array,
  ad: Uint8Array,
  plaintext: Uint8Array,
): Promise<SealedParts> {
  const prefix = new Uint8Array(MESSAGE_PREFIX_LEN);
  await sealPrefix(crypto, version, headerKey, header, nonce, prefix);
  const cipher = bodyCipher(crypto, version, nonce);
  const body = await cipher.aead.seal(messageKey, cipher.nonce, bodyAdOf(ad, prefix), plaintext);
  return { prefix, body };
}

/** A message split at its fixed offsets. */
export interface MessageParts {
  readonly version: MessageVersion;
  readonly nonce: Uint8Array;
  readonly encryptedHeader: Uint8Array;
  readonly prefix: Uint8Array;
  readonly body: Uint8Array;
}

/** Split at the fixed offsets; the caller has already checked the length and version byte. */
export function splitMessage(message: Uint8Array): MessageParts {
  const version = message[0];
  if (!isMessageVersion(version)) throw new RangeError("ratchet message: unchecked version byte");
  return {
    version,
    nonce: message.subarray(1, 1 + NONCE_LEN),
    encryptedHeader: message.subarray(1 + NONCE_LEN, MESSAGE_PREFIX_LEN),
    prefix: message.subarray(0, MESSAGE_PREFIX_LEN),
    body: message.subarray(MESSAGE_PREFIX_LEN),
  };
}

/** DR §4.2 `HDECRYPT(hk, enc_header)`: the header, or `undefined` when authentication fails. */
export async function openHeader(
  crypto: CryptoProvider,
  headerKey: Uint8Array | HeaderSealer,
  parts: MessageParts,
): Promise<Header | undefined> {
  const cipher = headerCipher(crypto, parts.version, parts.nonce);
  const ad = HEADER_AD[parts.version];
  const plain =
    !(headerKey instanceof Uint8Array) && headerKey.keyed && parts.version === MESSAGE_VERSION_3
      ? await headerKey.keyed.open(cipher.nonce, ad, parts.encryptedHeader)
      : await cipher.aead.open(
          headerKey instanceof Uint8Array ? headerKey : headerKey.key,
          cipher.nonce,
          ad,
          parts.encryptedHeader,
        );
  if (plain === undefined) return undefined;
  return { dh: plain.slice(0, KEY_LEN), pn: readU32(plain, KEY_LEN), n: readU32(plain, KEY_LEN + 4) };
}

/** DR §3.1 `DECRYPT(mk, ciphertext, associated_data)`: the plaintext, or `undefined`. */
export function openBody(
  crypto: CryptoProvider,
  messageKey: Uint8Array,
  parts: MessageParts,
  ad: Uint8Array,
): Promise<Uint8Array | undefined> {
  const body = bodyCipher(crypto, parts.version, parts.nonce);
  return body.aead.open(messageKey, body.nonce, bodyAdOf(ad, parts.prefix), parts.body);
}
