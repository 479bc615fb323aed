/**
 * Secrets at rest (DESIGN.md, Cryptography: "Private keys at rest in IndexedDB are wrapped by a
 * non-extractable WebCrypto AES-GCM key (also in IndexedDB), optionally by a passphrase").
 *
 * Layers, innermost first:
 *  1. optional passphrase layer: AES-256-GCM under a key derived with PBKDF2-HMAC-SHA-256
 *     (600 000 iterations, 16-byte random salt; OWASP Password Storage Cheat Sheet, 2023), held
 *     only in memory while the app is unlocked;
 *  2. device layer: AES-256-GCM under a non-extractable CryptoKey generated once by WebCrypto and
 *     stored in IndexedDB by structured clone — script can use it, nobody can read its bytes.
 * Each layer uses a fresh 96-bit random IV (NIST SP 800-38D §8.2.2) and binds the record's name
 * as additional data, so a sealed blob can't be swapped into another record.
 *
 * WebCrypto: https://w3c.github.io/webcrypto/ (AES-GCM §27, PBKDF2 §30).
 */
import { concatBytes } from "../../../core/bytes.ts";

export const PBKDF2_ITERATIONS = 600_000;
const IV_BYTES = 12;

/** One sealed secret as stored in IndexedDB. */
export interface Sealed {
  /** Format version of this envelope. */
  v: 1;
  /** Whether the passphrase layer is inside. */
  pass: boolean;
  iv: Uint8Array;
  ct: Uint8Array;
}

/** Passphrase parameters stored next to the device key (never the passphrase or its key). */
export interface PassphraseConfig {
  kdf: "PBKDF2-SHA256";
  iterations: number;
  salt: Uint8Array;
  /** A known constant sealed with the passphrase layer, to tell a wrong passphrase at unlock. */
  check: Sealed;
}

export class WrongPassphraseError extends Error {
  constructor() {
    super("That passphrase is not right.");
    this.name = "WrongPassphraseError";
  }
}

export class LockedError extends Error {
  constructor() {
    super("Storage is locked: enter your passphrase first.");
    this.name = "LockedError";
  }
}

const enc = new TextEncoder();
const CHECK = enc.encode("loft/passphrase-check/v1");

const randomBytes = (n: number) => crypto.getRandomValues(new Uint8Array(n));
/** WebCrypto wants a BufferSource backed by an ArrayBuffer. */
const buf = (b: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(b);

/** The device key: AES-GCM 256, non-extractable, usable only for encrypt/decrypt. */
export function generateDeviceKey(): Promise<CryptoKey> {
  return crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/** PBKDF2-HMAC-SHA-256 → non-extractable AES-GCM 256 key (WebCrypto §30). */
export async function derivePassphraseKey(
  passphrase: string,
  salt: Uint8Array,
  iterations = PBKDF2_ITERATIONS,
): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey(
    "raw",
    buf(enc.encode(passphrase.normalize("NFC"))),
    "PBKDF2",
    false,
    ["deriveKey"],
  );
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt: buf(salt), iterations },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

async function gcmSeal(key: CryptoKey, plaintext: Uint8Array, aad: Uint8Array) {
  const iv = randomBytes(IV_BYTES);
  const ct = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: buf(aad) }, key, buf(plaintext)),
  );
  return { iv, ct };
}

async function gcmOpen(key: CryptoKey, iv: Uint8Array, ct: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.decrypt({ name: "AES-GCM", iv: buf(iv), additionalData: buf(aad) }, key, buf(ct)),
  );
}

/**
 * Holds the keys for sealing: always the device key, and the passphrase key while unlocked.
 * `name` is the record's address (e.g. "session/<contactId>") and is bound as AES-GCM AAD.
 */
export class Vault {
  #device: CryptoKey;
  #pass: CryptoKey | null;
  #passRequired: boolean;

  constructor(device: CryptoKey, passRequired: boolean, pass: CryptoKey | null = null) {
    this.#device = device;
    this.#passRequired = passRequired;
    this.#pass = pass;
  }

  get locked(): boolean {
    return this.#passRequired && this.#pass === null;
  }

  get hasPassphrase(): boolean {
    return this.#passRequired;
  }

  async seal(name: string, plaintext: Uint8Array): Promise<Sealed> {
    if (this.locked) throw new LockedError();
    const aad = enc.encode(`loft/sealed/v1/${name}`);
    let inner = plaintext;
    if (this.#pass) {
      const p = await gcmSeal(this.#pass, plaintext, aad);
      inner = concatBytes(p.iv, p.ct);
    }
    const { iv, ct } = await gcmSeal(this.#device, inner, aad);
    return { v: 1, pass: this.#pass !== null, iv, ct };
  }

  async open(name: string, sealed: Sealed): Promise<Uint8Array> {
    const aad = enc.encode(`loft/sealed/v1/${name}`);
    const inner = await gcmOpen(this.#device, sealed.iv, sealed.ct, aad);
    if (!sealed.pass) return inner;
    if (!this.#pass) throw new LockedError();
    try {
      return await gcmOpen(this.#pass, inner.subarray(0, IV_BYTES), inner.subarray(IV_BYTES), aad);
    } finally {
      inner.fill(0);
    }
  }

  /** Unlock with a passphrase; throws WrongPassphraseError if `config.check` does not open. */
  async unlock(passphrase: string, config: PassphraseConfig): Promise<void> {
    const key = await derivePassphraseKey(passphrase, config.salt, config.iterations);
    const probe = new Vault(this.#device, true, key);
    try {
      await probe.open("passphrase-check", config.check);
    } catch {
      throw new WrongPassphraseError();
    }
    this.#pass = key;
  }

  lock(): void {
    if (this.#passRequired) this.#pass = null;
  }

  /**
   * A new vault with a different passphrase layer (or none, for `null`), and its config to store.
   * The caller re-seals every secret from this vault into the returned one.
   */
  async withPassphrase(
    passphrase: string | null,
  ): Promise<{ vault: Vault; config: PassphraseConfig | null }> {
    if (passphrase === null) return { vault: new Vault(this.#device, false), config: null };
    const salt = randomBytes(16);
    const key = await derivePassphraseKey(passphrase, salt);
    const vault = new Vault(this.#device, true, key);
    const check = await vault.seal("passphrase-check", CHECK);
    return { vault, config: { kdf: "PBKDF2-SHA256", iterations: PBKDF2_ITERATIONS, salt, check } };
  }
}

// ------------------------------------------------------------------------------------------------
// Passphrase-protected files (backups): one AES-256-GCM blob under a PBKDF2 key, own salt.
// ------------------------------------------------------------------------------------------------

export interface PassphraseBlob {
  kdf: "PBKDF2-SHA256";
  iterations: number;
  salt: Uint8Array;
  iv: Uint8Array;
  ct: Uint8Array;
}

export async function sealWithPassphrase(
  passphrase: string,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Promise<PassphraseBlob> {
  const salt = randomBytes(16);
  const key = await derivePassphraseKey(passphrase, salt);
  const { iv, ct } = await gcmSeal(key, plaintext, aad);
  return { kdf: "PBKDF2-SHA256", iterations: PBKDF2_ITERATIONS, salt, iv, ct };
}

export async function openWithPassphrase(
  passphrase: string,
  blob: PassphraseBlob,
  aad: Uint8Array,
): Promise<Uint8Array> {
  const key = await derivePassphraseKey(passphrase, blob.salt, blob.iterations);
  try {
    return await gcmOpen(key, blob.iv, blob.ct, aad);
  } catch {
    throw new WrongPassphraseError();
  }
}
