/**
 * Secrets at rest (docs/design.md, "Cryptography": "Keys at rest in IndexedDB are wrapped by a
 * non-extractable WebCrypto AES-GCM key (also in IndexedDB), optionally under a passphrase").
 *
 * Layers, innermost first:
 *  1. optional passphrase layer: AES-256-GCM under a key derived with Argon2id (RFC 9106;
 *     `PASSPHRASE_KDF`: 32 MiB, 2 passes, 1 lane, 16-byte random salt — above the OWASP Password
 *     Storage Cheat Sheet's 19 MiB / 2 passes, and about 1 s in Chromium on our machine:
 *     bench/README.md "bench:kdf"), held only in memory while the app is unlocked. Configs and
 *     backups made with PBKDF2-HMAC-SHA-256 (600 000 iterations, the previous default) still open
 *     and are re-derived with Argon2id at the next unlock or export;
 *  2. device layer: AES-256-GCM under a non-extractable CryptoKey generated once by WebCrypto and
 *     stored in IndexedDB by structured clone — script can use it, nobody can read its bytes.
 * Each layer uses a fresh 96-bit random IV (NIST SP 800-38D §8.2.2) and binds the record's name
 * as additional data, so a sealed blob can't be swapped into another record.
 *
 * WebCrypto: https://w3c.github.io/webcrypto/ (AES-GCM §27, PBKDF2 §30). Argon2id: @noble/hashes
 * (`argon2idAsync`, which yields to the event loop so the page stays responsive while it runs).
 */
import { argon2idAsync } from "@noble/hashes/argon2.js";
import { concatBytes } from "../../../core/bytes.ts";

/** The legacy KDF's work factor (configs and backups made before Argon2id). */
export const PBKDF2_ITERATIONS = 600_000;

/** How a passphrase becomes a key: Argon2id (current) or PBKDF2-HMAC-SHA-256 (legacy, read only). */
export type KdfParams =
  | {
      kdf: "Argon2id";
      /** Memory in KiB (RFC 9106 `m`). */
      m: number;
      /** Passes (RFC 9106 `t`). */
      t: number;
      /** Lanes (RFC 9106 `p`). */
      p: number;
    }
  | { kdf: "PBKDF2-SHA256"; iterations: number };

/** What new passphrase keys use (RFC 9106 Argon2id; OWASP's floor is m = 19 MiB, t = 2). */
export const PASSPHRASE_KDF: Extract<KdfParams, { kdf: "Argon2id" }> = Object.freeze({
  kdf: "Argon2id",
  m: 32 * 1024,
  t: 2,
  p: 1,
});

/**
 * Work accepted from stored configs and files: low enough bounds brute force of what we open,
 * high bounds a hang (or an out-of-memory tab) on a hostile file. The Argon2id ceiling — 256 MiB,
 * 8 passes: 8× our own setting's memory, 32× its work — is what a phone's tab can still run
 * (docs/decisions.md, "Passphrase KDF"); a backup asking for more is refused unopened.
 */
export const KDF_BOUNDS = Object.freeze({
  argon2: { minM: 19 * 1024, maxM: 256 * 1024, minT: 1, maxT: 8, minP: 1, maxP: 8 },
  pbkdf2: { minIterations: 100_000, maxIterations: 10_000_000 },
});

/** True when `params` names a KDF we know but asks for more memory or time than KDF_BOUNDS allows. */
export function kdfTooCostly(params: unknown): boolean {
  const k = params as Record<string, unknown> | null;
  if (typeof k !== "object" || k === null) return false;
  const over = (x: unknown, hi: number) => typeof x === "number" && x > hi;
  const a = KDF_BOUNDS.argon2;
  if (k.kdf === "Argon2id") return over(k.m, a.maxM) || over(k.t, a.maxT) || over(k.p, a.maxP);
  if (k.kdf === "PBKDF2-SHA256") return over(k.iterations, KDF_BOUNDS.pbkdf2.maxIterations);
  return false;
}

/** Whether `params` is a KDF we run (known and within KDF_BOUNDS). */
export function acceptableKdf(params: unknown): params is KdfParams {
  const k = params as Record<string, unknown> | null;
  if (typeof k !== "object" || k === null) return false;
  const int = (x: unknown, lo: number, hi: number) =>
    typeof x === "number" && Number.isInteger(x) && x >= lo && x <= hi;
  const a = KDF_BOUNDS.argon2;
  if (k.kdf === "Argon2id")
    return int(k.m, a.minM, a.maxM) && int(k.t, a.minT, a.maxT) && int(k.p, a.minP, a.maxP);
  if (k.kdf === "PBKDF2-SHA256")
    return int(k.iterations, KDF_BOUNDS.pbkdf2.minIterations, KDF_BOUNDS.pbkdf2.maxIterations);
  return false;
}

/** True when `params` is weaker than (or not) the current Argon2id setting: re-derive and re-seal. */
export function kdfNeedsUpgrade(params: KdfParams): boolean {
  if (params.kdf !== "Argon2id") return true;
  return params.m * params.t < PASSPHRASE_KDF.m * PASSPHRASE_KDF.t || params.m < PASSPHRASE_KDF.m;
}

/** Only the KDF fields of a config or blob (drops salt, check, iv, ...). */
export function kdfOf(x: KdfParams): KdfParams {
  return x.kdf === "Argon2id"
    ? { kdf: x.kdf, m: x.m, t: x.t, p: x.p }
    : { kdf: x.kdf, iterations: x.iterations };
}
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
export type PassphraseConfig = KdfParams & {
  salt: Uint8Array;
  /** A known constant sealed with the passphrase layer, to tell a wrong passphrase at unlock. */
  check: Sealed;
};

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

/**
 * The passphrase (NFC) → non-extractable AES-GCM 256 key: Argon2id (RFC 9106, 32-byte tag, no
 * secret or associated data) imported as a raw key and wiped, or PBKDF2-HMAC-SHA-256 (WebCrypto
 * §30) for legacy parameters.
 */
export async function derivePassphraseKey(
  passphrase: string,
  salt: Uint8Array,
  params: KdfParams = PASSPHRASE_KDF,
): Promise<CryptoKey> {
  if (!acceptableKdf(params)) throw new RangeError("passphrase KDF: unknown or out-of-bounds parameters");
  if (params.kdf === "Argon2id") {
    const password = enc.encode(passphrase.normalize("NFC"));
    const raw = await argon2idAsync(password, salt, {
      m: params.m,
      t: params.t,
      p: params.p,
      dkLen: 32,
      asyncTick: 10,
    });
    password.fill(0);
    try {
      return await crypto.subtle.importKey("raw", buf(raw), { name: "AES-GCM", length: 256 }, false, [
        "encrypt",
        "decrypt",
      ]);
    } finally {
      raw.fill(0);
    }
  }
  const iterations = params.iterations;
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

  /**
   * Unlock with a passphrase; throws WrongPassphraseError if `config.check` does not open. The
   * caller re-derives with `withPassphrase` when `kdfNeedsUpgrade(config)` (storage.ts does).
   */
  async unlock(passphrase: string, config: PassphraseConfig): Promise<void> {
    const key = await derivePassphraseKey(passphrase, config.salt, kdfOf(config));
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
    const key = await derivePassphraseKey(passphrase, salt, PASSPHRASE_KDF);
    const vault = new Vault(this.#device, true, key);
    const check = await vault.seal("passphrase-check", CHECK);
    return { vault, config: { ...PASSPHRASE_KDF, salt, check } };
  }
}

// ------------------------------------------------------------------------------------------------
// Passphrase-protected files (backups): one AES-256-GCM blob under a passphrase key, own salt.
// ------------------------------------------------------------------------------------------------

export type PassphraseBlob = KdfParams & {
  salt: Uint8Array;
  iv: Uint8Array;
  ct: Uint8Array;
};

/**
 * Seal under a fresh salt and the current KDF; `aad` comes from the caller's KDF fields (`kdf`).
 * Another Argon2id setting within KDF_BOUNDS is for tests only (the cheapest a reader accepts, so a
 * test that writes real files does not pay the app's setting twice per file). Anything else is a
 * wrong caller, refused at the call with a RangeError that says so (docs/contributing.md,
 * "Errors"): a setting out of bounds would write a file no reader opens, and PBKDF2 is only read
 * (legacy files), never written.
 */
export async function sealWithPassphrase(
  passphrase: string,
  plaintext: Uint8Array,
  aad: (kdf: KdfParams) => Uint8Array,
  kdf: Extract<KdfParams, { kdf: "Argon2id" }> = PASSPHRASE_KDF,
): Promise<PassphraseBlob> {
  if ((kdf as { kdf?: unknown } | null)?.kdf !== "Argon2id" || !acceptableKdf(kdf)) {
    const a = KDF_BOUNDS.argon2;
    throw new RangeError(
      `sealWithPassphrase: kdf must be Argon2id with integer m in [${a.minM}, ${a.maxM}], ` +
        `t in [${a.minT}, ${a.maxT}], p in [${a.minP}, ${a.maxP}] (KDF_BOUNDS), got ${JSON.stringify(kdf)}`,
    );
  }
  const params = kdfOf(kdf) as Extract<KdfParams, { kdf: "Argon2id" }>;
  const salt = randomBytes(16);
  const key = await derivePassphraseKey(passphrase, salt, params);
  const { iv, ct } = await gcmSeal(key, plaintext, aad(params));
  return { ...params, salt, iv, ct };
}

export async function openWithPassphrase(
  passphrase: string,
  blob: PassphraseBlob,
  aad: Uint8Array,
): Promise<Uint8Array> {
  const key = await derivePassphraseKey(passphrase, blob.salt, kdfOf(blob));
  try {
    return await gcmOpen(key, blob.iv, blob.ct, aad);
  } catch {
    throw new WrongPassphraseError();
  }
}
