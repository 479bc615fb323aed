/**
 * Noise Protocol Framework rev 34, §5.1 processing rules: the `CipherState` object (`k`, `n`),
 * with ChaChaPoly (§12.3) and the default `Rekey()` (§4.2, §11.3).
 * https://noiseprotocol.org/noise.html#the-cipherstate-object
 *
 * `n` is kept as two 32-bit halves and written straight into a reused 12-byte nonce, so the
 * transport hot path allocates nothing but the ciphertext. The value 2^64-1 is reserved (§5.1):
 * once `n` reaches it every further encrypt/decrypt is `LOFT_ERR_NONCE_EXHAUSTED`, and the owner
 * must drop the CipherState and end the session.
 */
import { abytes } from "../bytes.ts";
import { err, ok, type Result } from "../errors.ts";
import { aeadDecrypt, aeadEncrypt, KEYLEN, rekey, TAGLEN, writeNonce } from "./primitives.ts";

const U32 = 0x1_0000_0000;
const MAX_U32 = 0xffff_ffff;

export class CipherState {
  #k: Uint8Array | undefined;
  /** Set by `wipe()`: a wiped CipherState refuses to work instead of falling back to plaintext. */
  #wiped = false;
  #lo = 0;
  #hi = 0;
  readonly #nonce = new Uint8Array(12);

  /** Noise §5.1 `InitializeKey(key)`: sets `k = key` (copied), `n = 0`; `undefined` = empty. */
  constructor(key?: Uint8Array) {
    this.initializeKey(key);
  }

  /** Noise §5.1 `InitializeKey(key)`. The previous key is wiped. */
  initializeKey(key: Uint8Array | undefined): void {
    if (this.#wiped) throw new Error("InitializeKey() on a wiped CipherState");
    this.#k?.fill(0);
    if (key !== undefined) abytes(key, KEYLEN, "cipher key");
    this.#k = key?.slice();
    this.#lo = 0;
    this.#hi = 0;
  }

  /** Noise §5.1 `HasKey()`. */
  hasKey(): boolean {
    return this.#k !== undefined;
  }

  /** Noise §5.1 `SetNonce(nonce)` (§11.4); a u64. */
  setNonce(nonce: bigint): void {
    if (nonce < 0n || nonce > 0xffff_ffff_ffff_ffffn) throw new RangeError("nonce must be a u64");
    this.#lo = Number(nonce & 0xffff_ffffn);
    this.#hi = Number(nonce >> 32n);
  }

  /** The current `n` (the nonce the next encrypt/decrypt will use). */
  get nonce(): bigint {
    return (BigInt(this.#hi) << 32n) | BigInt(this.#lo);
  }

  #exhausted(): boolean {
    return this.#lo === MAX_U32 && this.#hi === MAX_U32;
  }

  #increment(): void {
    this.#lo++;
    if (this.#lo === U32) {
      this.#lo = 0;
      this.#hi++;
    }
  }

  /**
   * Noise §5.1 `EncryptWithAd(ad, plaintext)`: `ENCRYPT(k, n++, ad, plaintext)`, or the plaintext
   * itself while `k` is empty. `output` (optional, `plaintext.length + 16` bytes; `plaintext` may
   * be its prefix) lets callers encrypt in place.
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array, output?: Uint8Array): Result<Uint8Array> {
    const k = this.#k;
    if (this.#wiped) return err("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped");
    if (k === undefined) return ok(plaintext);
    if (this.#exhausted()) return err("LOFT_ERR_NONCE_EXHAUSTED", "nonce 2^64-1 is reserved (Noise §5.1)");
    writeNonce(this.#nonce, this.#lo, this.#hi);
    const ciphertext = aeadEncrypt(k, this.#nonce, ad, plaintext, output);
    this.#increment();
    return ok(ciphertext);
  }

  /**
   * Noise §5.1 `DecryptWithAd(ad, ciphertext)`: `DECRYPT(k, n++, ad, ciphertext)`; on an
   * authentication failure `n` is not incremented and `LOFT_ERR_DECRYPT` is returned. `output`
   * (optional, `ciphertext.length - 16` bytes, may be the ciphertext's prefix) decrypts in place.
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array, output?: Uint8Array): Result<Uint8Array> {
    const k = this.#k;
    if (this.#wiped) return err("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped");
    if (k === undefined) return ok(ciphertext);
    if (this.#exhausted()) return err("LOFT_ERR_NONCE_EXHAUSTED", "nonce 2^64-1 is reserved (Noise §5.1)");
    if (ciphertext.length < TAGLEN) return err("LOFT_ERR_DECRYPT", "ciphertext shorter than the tag");
    writeNonce(this.#nonce, this.#lo, this.#hi);
    const plaintext = aeadDecrypt(k, this.#nonce, ad, ciphertext, output);
    if (plaintext === undefined) return err("LOFT_ERR_DECRYPT", "authentication failed");
    this.#increment();
    return ok(plaintext);
  }

  /** Noise §5.1 / §11.3 `Rekey()`: `k = REKEY(k)`; `n` is unchanged. The old key is wiped. */
  rekey(): void {
    const k = this.#k;
    if (k === undefined) throw new Error("Rekey() on a CipherState without a key (or wiped)");
    const next = rekey(k);
    k.set(next);
    next.fill(0);
  }

  /**
   * Wipe the key (docs/design.md, "Cryptography": secrets are zeroed when done). Every later encrypt/decrypt is an error,
   * never a plaintext pass-through.
   */
  wipe(): void {
    this.#wiped = true;
    this.#k?.fill(0);
    this.#k = undefined;
    this.#lo = 0;
    this.#hi = 0;
    this.#nonce.fill(0);
  }
}
