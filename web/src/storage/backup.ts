/**
 * Encrypted backup files. A backup is a small JSON document (so a person can tell what it is)
 * whose payload is the MessagePack-encoded `BackupBundle`, sealed with AES-256-GCM under a key
 * derived from the backup passphrase (vault.ts `derivePassphraseKey`), with its own salt. The
 * header fields are bound as AES-GCM additional data, so none can be altered unnoticed.
 *
 * The whole format, byte by byte, is docs/protocol/backup.md.
 *
 * Version 3 (written now): Argon2id (RFC 9106), parameters in the header —
 *   { "format": "loft-backup", "version": 3, "kdf": "Argon2id", "m": 32768, "t": 2, "p": 1,
 *     "salt": b64url, "iv": b64url, "ciphertext": b64url }
 *   AAD = "loft-backup/v3/Argon2id/m=32768,t=2,p=1"
 *   The bundle carries `local` (backup.md §3): rooms, their histories, the names given them, drafts.
 * Version 2 (read only): as version 3, without `local` — AAD "loft-backup/v2/Argon2id/…".
 * Version 1 (read only): PBKDF2-HMAC-SHA-256 —
 *   { ..., "version": 1, "kdf": "PBKDF2-SHA256", "iterations": 600000, ... }
 *   AAD = "loft-backup/v1/PBKDF2-SHA256/600000"
 * A backup file is exposed to offline guessing by whoever holds it; Argon2id's memory cost is what
 * makes each guess expensive on GPUs, and the passphrase strength meter (passphrase-strength.ts)
 * what keeps the number of guesses high.
 */
import { encode } from "@msgpack/msgpack";
import { decodeOwnRecord } from "../../../core/codec/codec.ts";
import { fromBase64url, toBase64url } from "../lib/base64url.ts";
import { checkLocal } from "./backup-local.ts";
import { passphraseStrength } from "./passphrase-strength.ts";
import type { BackupBundle } from "./storage.ts";
import {
  acceptableKdf,
  KDF_BOUNDS,
  type KdfParams,
  kdfTooCostly,
  openWithPassphrase,
  sealWithPassphrase,
} from "./vault.ts";

export const BACKUP_FORMAT = "loft-backup";
export const BACKUP_VERSION = 3;
/** Backups made before rooms, room names and drafts travelled (no `local`): still read. */
export const V2_BACKUP_VERSION = 2;
/** Backups made before Argon2id: still read. */
export const LEGACY_BACKUP_VERSION = 1;
/** Largest backup we read (history included); bounds memory on a hostile file. */
export const MAX_BACKUP_BYTES = 64 * 1024 * 1024;
export const MIN_BACKUP_PASSPHRASE = 8;

export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackupError";
  }
}

/** The additional data binding the header: format, version and every KDF parameter. */
export function backupAad(version: number, kdf: KdfParams): Uint8Array {
  const params = kdf.kdf === "Argon2id" ? `m=${kdf.m},t=${kdf.t},p=${kdf.p}` : String(kdf.iterations);
  return new TextEncoder().encode(`${BACKUP_FORMAT}/v${version}/${kdf.kdf}/${params}`);
}

/**
 * A new passphrase must be at least MIN_BACKUP_PASSPHRASE characters and not "too weak" by the
 * strength meter; the message says why, in words the user can act on. Null when acceptable.
 */
export function passphraseProblem(passphrase: string): string | null {
  if ([...passphrase].length < MIN_BACKUP_PASSPHRASE)
    return `Choose a passphrase of at least ${MIN_BACKUP_PASSPHRASE} characters.`;
  const strength = passphraseStrength(passphrase);
  if (strength.score === 0) return `That passphrase is too easy to guess. ${strength.advice}`;
  return null;
}

export async function encryptBackup(bundle: BackupBundle, passphrase: string): Promise<string> {
  const problem = passphraseProblem(passphrase);
  if (problem) throw new BackupError(problem);
  // `local` always present in a version 3 file (docs/protocol/backup.md §3), even empty.
  const { localDropped: _, ...carried } = bundle;
  const plain = encode({ ...carried, local: bundle.local ?? [] }, { ignoreUndefined: true });
  const text = await sealBackupFile(BACKUP_VERSION, plain, passphrase);
  plain.fill(0);
  return text;
}

/**
 * The backup file for an encoded bundle at `version` (Argon2id versions: 2 and 3). Tests write
 * version 2 files with it, and may pass a cheaper Argon2id setting within KDF_BOUNDS (the header
 * names it, so the reader derives with it); the app only writes BACKUP_VERSION (`encryptBackup`).
 */
export async function sealBackupFile(
  version: number,
  plain: Uint8Array,
  passphrase: string,
  kdf?: Extract<KdfParams, { kdf: "Argon2id" }>,
): Promise<string> {
  const blob = await sealWithPassphrase(passphrase, plain, (k) => backupAad(version, k), kdf);
  if (blob.kdf !== "Argon2id") throw new Error("backup: the current KDF is Argon2id");
  return JSON.stringify({
    format: BACKUP_FORMAT,
    version,
    kdf: blob.kdf,
    m: blob.m,
    t: blob.t,
    p: blob.p,
    salt: toBase64url(blob.salt),
    iv: toBase64url(blob.iv),
    ciphertext: toBase64url(blob.ct),
  });
}

/** The KDF fields of a header as they are, per version (unchecked). */
function kdfFields(doc: Record<string, unknown>): unknown {
  return doc.version === LEGACY_BACKUP_VERSION
    ? { kdf: doc.kdf, iterations: doc.iterations }
    : { kdf: doc.kdf, m: doc.m, t: doc.t, p: doc.p };
}

/** The KDF fields of a header, per version; null when missing, unknown or out of bounds. */
function headerKdf(doc: Record<string, unknown>): KdfParams | null {
  const kdf = kdfFields(doc);
  if (!acceptableKdf(kdf)) return null;
  // v1 files are PBKDF2 only, v2 and v3 files Argon2id only.
  if ((doc.version === LEGACY_BACKUP_VERSION) !== (kdf.kdf === "PBKDF2-SHA256")) return null;
  return kdf;
}

export async function decryptBackup(text: string, passphrase: string): Promise<BackupBundle> {
  if (text.length > MAX_BACKUP_BYTES * 2)
    throw new BackupError("This file is too large to be a Loft backup.");
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new BackupError("This file is not a Loft backup.");
  }
  if (doc === null || typeof doc !== "object" || doc.format !== BACKUP_FORMAT)
    throw new BackupError("This file is not a Loft backup.");
  if (
    doc.version !== BACKUP_VERSION &&
    doc.version !== V2_BACKUP_VERSION &&
    doc.version !== LEGACY_BACKUP_VERSION
  )
    throw new BackupError("This backup was made by a newer version of Loft. Update the app and try again.");
  const version = doc.version;
  if (kdfTooCostly(kdfFields(doc)))
    throw new BackupError(
      `This backup asks for more memory or time to open than Loft allows (at most ${KDF_BOUNDS.argon2.maxM / 1024} MiB and ${KDF_BOUNDS.argon2.maxT} passes). It was not made by Loft, or it was changed.`,
    );
  const kdf = headerKdf(doc);
  const { salt, iv, ciphertext } = doc;
  if (!kdf || typeof salt !== "string" || typeof iv !== "string" || typeof ciphertext !== "string")
    throw new BackupError("This backup file is damaged.");
  let blob: Parameters<typeof openWithPassphrase>[1];
  try {
    blob = { ...kdf, salt: fromBase64url(salt), iv: fromBase64url(iv), ct: fromBase64url(ciphertext) };
  } catch {
    throw new BackupError("This backup file is damaged.");
  }
  if (blob.iv.length !== 12 || blob.salt.length < 16) throw new BackupError("This backup file is damaged.");
  let plain: Uint8Array;
  try {
    plain = await openWithPassphrase(passphrase, blob, backupAad(version, kdf));
  } catch {
    throw new BackupError("Wrong passphrase, or the backup file was changed.");
  }
  // decodeOwnRecord() returns byte fields as views into `plain`: clone them out before wiping it.
  let bundle: BackupBundle;
  try {
    bundle = structuredClone(decodeOwnRecord(plain)) as BackupBundle;
  } catch {
    throw new BackupError("This backup file is damaged.");
  } finally {
    plain.fill(0);
  }
  if (!isBundle(bundle)) throw new BackupError("This backup file is damaged.");
  // Only version 3 has `local`; an older file claiming one was not made by Loft.
  const { local: carried, localDropped: _, ...rest } = bundle;
  if (version !== BACKUP_VERSION) {
    if (carried !== undefined) throw new BackupError("This backup file is damaged.");
    return rest;
  }
  const local = checkLocal(carried, bundle);
  if (!local) throw new BackupError("This backup file is damaged.");
  return { ...rest, local: local.entries, ...(local.dropped ? { localDropped: local.dropped } : {}) };
}

function isBundle(b: unknown): b is BackupBundle {
  const x = b as BackupBundle;
  return (
    typeof x === "object" &&
    x !== null &&
    typeof x.self === "object" &&
    x.self !== null &&
    x.self.identity instanceof Uint8Array &&
    typeof x.self.username === "string" &&
    x.self.privateIdentityKey instanceof Uint8Array &&
    x.self.privateNoiseKey instanceof Uint8Array &&
    Array.isArray(x.contacts) &&
    Array.isArray(x.messages) &&
    x.contacts.every((c) => typeof c === "object" && c !== null && typeof c.id === "string") &&
    typeof x.settings === "object"
  );
}
