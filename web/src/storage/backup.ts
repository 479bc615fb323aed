/**
 * Encrypted backup files. A backup is a small JSON document (so a person can tell what it is)
 * whose payload is the MessagePack-encoded `BackupBundle`, sealed with AES-256-GCM under a key
 * derived from the backup passphrase with PBKDF2-HMAC-SHA-256 (vault.ts), with its own salt.
 * The header fields are bound as AES-GCM additional data, so none can be altered unnoticed.
 *
 *   { "format": "loft-backup", "version": 1, "kdf": "PBKDF2-SHA256", "iterations": 600000,
 *     "salt": b64url, "iv": b64url, "ciphertext": b64url }
 */
import { decode, encode } from "@msgpack/msgpack";
import { fromBase64url, toBase64url } from "../lib/base64url.ts";
import type { BackupBundle } from "./storage.ts";
import { openWithPassphrase, PBKDF2_ITERATIONS, sealWithPassphrase } from "./vault.ts";

export const BACKUP_FORMAT = "loft-backup";
export const BACKUP_VERSION = 1;
/** Largest backup we read (history included); bounds memory on a hostile file. */
export const MAX_BACKUP_BYTES = 64 * 1024 * 1024;
/** PBKDF2 work accepted from a file: low enough bounds brute force, high bounds a hang. */
const MIN_ITERATIONS = 100_000;
const MAX_ITERATIONS = 10_000_000;
export const MIN_BACKUP_PASSPHRASE = 8;

export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackupError";
  }
}

const aadFor = (iterations: number) =>
  new TextEncoder().encode(`${BACKUP_FORMAT}/v${BACKUP_VERSION}/PBKDF2-SHA256/${iterations}`);

export async function encryptBackup(bundle: BackupBundle, passphrase: string): Promise<string> {
  if (passphrase.length < MIN_BACKUP_PASSPHRASE)
    throw new BackupError(`Choose a backup passphrase of at least ${MIN_BACKUP_PASSPHRASE} characters.`);
  const plain = encode(bundle, { ignoreUndefined: true });
  const blob = await sealWithPassphrase(passphrase, plain, aadFor(PBKDF2_ITERATIONS));
  plain.fill(0);
  return JSON.stringify({
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    kdf: blob.kdf,
    iterations: blob.iterations,
    salt: toBase64url(blob.salt),
    iv: toBase64url(blob.iv),
    ciphertext: toBase64url(blob.ct),
  });
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
  if (doc.version !== BACKUP_VERSION)
    throw new BackupError("This backup was made by a newer version of Loft. Update the app and try again.");
  const { iterations, salt, iv, ciphertext } = doc;
  if (
    doc.kdf !== "PBKDF2-SHA256" ||
    typeof iterations !== "number" ||
    !Number.isInteger(iterations) ||
    iterations < MIN_ITERATIONS ||
    iterations > MAX_ITERATIONS ||
    typeof salt !== "string" ||
    typeof iv !== "string" ||
    typeof ciphertext !== "string"
  )
    throw new BackupError("This backup file is damaged.");
  let blob: Parameters<typeof openWithPassphrase>[1];
  try {
    blob = {
      kdf: "PBKDF2-SHA256",
      iterations,
      salt: fromBase64url(salt),
      iv: fromBase64url(iv),
      ct: fromBase64url(ciphertext),
    };
  } catch {
    throw new BackupError("This backup file is damaged.");
  }
  if (blob.iv.length !== 12 || blob.salt.length < 16) throw new BackupError("This backup file is damaged.");
  let plain: Uint8Array;
  try {
    plain = await openWithPassphrase(passphrase, blob, aadFor(iterations));
  } catch {
    throw new BackupError("Wrong passphrase, or the backup file was changed.");
  }
  // decode() returns byte fields as views into `plain`: clone them out before wiping it.
  const bundle = structuredClone(decode(plain)) as BackupBundle;
  plain.fill(0);
  if (!isBundle(bundle)) throw new BackupError("This backup file is damaged.");
  return bundle;
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
    typeof x.settings === "object"
  );
}
