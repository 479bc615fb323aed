/**
 * Noise Protocol Framework rev 34, §5.1 processing rules: the `CipherState` object (`k`, `n`),
 * with the suite's AEAD (ChaChaPoly §12.3 by default, from the crypto provider) and the default
 * `Rekey()` (§4.2, §11.3). https://noiseprotocol.org/noise.html#the-cipherstate-object
 *
 * `n` is kept as two 32-bit halves. The value 2^64-1 is reserved (§5.1): once `n` reaches it
 * every further encrypt/decrypt is `LOFT_ERR_NONCE_EXHAUSTED`, and the owner must drop the
 * CipherState and end the session.
 *
 * The AEAD is async (core/crypto/provider.ts), so a CipherState orders its own work
 * (docs/decisions.md, "Cryptography: one async provider, carried explicitly"):
 * - `encryptWithAd` takes its nonce synchronously, before its first await: two encrypts started
 *   one after the other use n and n+1, whatever order their AEAD calls finish in;
 * - encrypts, decrypts and rekeys run one at a time, in call order (a per-instance queue), so a
 *   rekey applies exactly to the operations called after it, and decrypts complete in order;
 * - a decrypt that fails authentication leaves `n` unchanged (§5.1);
 * - each AEAD call gets its own copy of `k`, wiped when it returns, so `wipe()` or a rekey never
 *   changes key bytes under a call in flight;
 * - where the AEAD offers it (`Aead.withKey`: WebCrypto), `k` is imported once, on first use, into
 *   a non-extractable key that InitializeKey, Rekey and `wipe()` drop: no import per message. A
 *   call in flight keeps the key object it started with, so the rule above holds.
 * - `encryptBatchWithAd` / `decryptBatchWithAd` are each one queued operation whose AEAD calls
 *   run together (nonces n, n+1, … in order): the same bytes as one call per message, with the
 *   round trips of an asynchronous AEAD overlapping (docs/protocol/session.md §5, "Runs of frames").
 * A CipherState carries one direction (Noise §5.2 Split): don't mix encrypts and decrypts on one
 * instance concurrently.
 */
import { abytes } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { Aead, KeyedAead } from "../crypto/provider.ts";
import { err, LoftError, ok, type Result } from "../errors.ts";
import { KEYLEN, rekey, TAGLEN } from "./primitives.ts";
import { CHACHAPOLY_BLAKE2S, type NoiseSuite } from "./suite.ts";

const U32 = 0x1_0000_0000;
const MAX_U32 = 0xffff_ffff;

/**
 * One AEAD call with its own copy of `k`, wiped when that call returns (`#aeadForOneCall`). A class,
 * not closures made per call: a bulk body seals and opens thousands of frames a second.
 */
class KeyCopyAead implements KeyedAead {
  readonly #aead: Aead;
  readonly #k: Uint8Array;

  constructor(aead: Aead, k: Uint8Array) {
    this.#aead = aead;
    this.#k = k;
  }

  /** Wipe the key copy of a call that will not be made. */
  wipeCopy(): void {
    this.#k.fill(0);
  }

  async seal(
    nonce: Uint8Array,
    ad: Uint8Array,
    plaintext: Uint8Array,
    output?: Uint8Array,
  ): Promise<Uint8Array> {
    try {
      return await this.#aead.seal(this.#k, nonce, ad, plaintext, output);
    } finally {
      this.#k.fill(0);
    }
  }

  async open(
    nonce: Uint8Array,
    ad: Uint8Array,
    ciphertext: Uint8Array,
    output?: Uint8Array,
  ): Promise<Uint8Array | undefined> {
    try {
      return await this.#aead.open(this.#k, nonce, ad, ciphertext, output);
    } finally {
      this.#k.fill(0);
    }
  }
}

export class CipherState {
  #k: Uint8Array | undefined;
  /** Set by `wipe()`: a wiped CipherState refuses to work instead of falling back to plaintext. */
  #wiped = false;
  #lo = 0;
  #hi = 0;
  readonly #aead: Aead;
  /** The suite's nonce encoding (Noise §12.3 little-endian for ChaChaPoly, §12.4 big-endian for AESGCM). */
  readonly #writeNonce: NoiseSuite["writeNonce"];
  /** `k` imported once (`Aead.withKey`), made by the first operation that needs it. */
  #keyed: Promise<KeyedAead | undefined> | undefined;
  /** The tail of this instance's queue of AEAD work (resolves, never rejects). */
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * Noise §5.1 `InitializeKey(key)`: sets `k = key` (copied), `n = 0`; `undefined` = empty.
   * `aead` is the suite's cipher (noble ChaChaPoly unless the handshake's provider says otherwise).
   */
  constructor(
    key?: Uint8Array,
    aead: Aead = nobleCrypto.chacha20poly1305,
    writeNonce: NoiseSuite["writeNonce"] = CHACHAPOLY_BLAKE2S.writeNonce,
  ) {
    this.#aead = aead;
    this.#writeNonce = writeNonce;
    this.initializeKey(key);
  }

  /** Noise §5.1 `InitializeKey(key)`. The previous key is wiped. */
  initializeKey(key: Uint8Array | undefined): void {
    if (this.#wiped) throw new Error("InitializeKey() on a wiped CipherState");
    this.#k?.fill(0);
    if (key !== undefined) abytes(key, KEYLEN, "cipher key");
    this.#k = key?.slice();
    this.#keyed = undefined;
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

  /** The current `n` (the nonce the next encrypt will take). */
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

  /** Run `op` after every operation called before it; the queue survives a failing op. */
  #enqueue<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(op);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** A copy of `k` for one AEAD call (undefined once wiped), and the nonce bytes of (lo, hi). */
  #keyCopy(): Uint8Array | undefined {
    return this.#wiped ? undefined : this.#k?.slice();
  }

  /**
   * `k` imported once, when the AEAD can (`withKey`); undefined otherwise, or when the import
   * failed (then every call imports, as without `withKey`). Called from queued work only, so a
   * rekey queued before has already replaced `k`.
   */
  #keyedAead(): Promise<KeyedAead | undefined> {
    if (this.#aead.withKey === undefined) return Promise.resolve(undefined);
    if (this.#keyed === undefined) {
      const k = this.#keyCopy();
      if (k === undefined) return Promise.resolve(undefined);
      this.#keyed = this.#aead
        .withKey(k)
        .catch(() => undefined)
        .finally(() => k.fill(0));
    }
    return this.#keyed;
  }

  /**
   * The AEAD for one `seal` or `open` with the current `k` (undefined once wiped): the imported
   * key when there is one, else a copy of `k` taken now and wiped when that one call returns.
   */
  async #aeadForOneCall(): Promise<KeyedAead | undefined> {
    const keyed = await this.#keyedAead();
    if (this.#wiped) return undefined;
    if (keyed) return keyed;
    const k = this.#keyCopy();
    if (k === undefined) return undefined;
    return new KeyCopyAead(this.#aead, k);
  }

  /**
   * Noise §5.1 `EncryptWithAd(ad, plaintext)`: `ENCRYPT(k, n++, ad, plaintext)`, or the plaintext
   * itself while `k` is empty. `n` is taken (and incremented) synchronously, at the call.
   * `output` (optional, `plaintext.length + 16` bytes; `plaintext` may be its prefix) lets callers
   * encrypt in place where the AEAD can (one called with a key copy: node:crypto, noble); neither
   * may change until the promise settles. The ciphertext is the returned array: in `output`, or a
   * fresh one where the AEAD makes one anyway (a keyed WebCrypto AEAD), and then `output` is left
   * as it was.
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array, output?: Uint8Array): Promise<Result<Uint8Array>> {
    if (this.#wiped) return Promise.resolve(err("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped"));
    if (this.#k === undefined) return Promise.resolve(ok(plaintext));
    if (this.#exhausted())
      return Promise.resolve(err("LOFT_ERR_NONCE_EXHAUSTED", "nonce 2^64-1 is reserved (Noise §5.1)"));
    const nonce = new Uint8Array(12);
    this.#writeNonce(nonce, this.#lo, this.#hi);
    this.#increment();
    return this.#enqueue(async () => {
      const aead = await this.#aeadForOneCall();
      if (aead === undefined) return err("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped");
      // A keyed AEAD (WebCrypto) seals into a fresh buffer whatever we ask: writing that into
      // `output` would only add a copy (and a wipe) of every frame. The result is what counts.
      return ok(await aead.seal(nonce, ad, plaintext, aead instanceof KeyCopyAead ? output : undefined));
    });
  }

  /**
   * Noise §5.1 `DecryptWithAd(ad, ciphertext)`: `DECRYPT(k, n++, ad, ciphertext)`; on an
   * authentication failure `n` is not incremented and `LOFT_ERR_DECRYPT` is returned. Decrypts run
   * in call order. `output` (optional, `ciphertext.length - 16` bytes, may be the ciphertext's
   * prefix) decrypts in place.
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array, output?: Uint8Array): Promise<Result<Uint8Array>> {
    if (this.#wiped) return Promise.resolve(err("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped"));
    if (this.#k === undefined) return Promise.resolve(ok(ciphertext));
    return this.#enqueue(() => this.#openOne(ad, ciphertext, output));
  }

  /**
   * `encryptWithAd(ad, p)` for each plaintext in order, as one queued operation: nonces n, n+1, …
   * taken at the call, the same ciphertexts — but every AEAD call of the batch in flight at once
   * (an asynchronous AEAD such as WebCrypto then overlaps them instead of one round trip after
   * another; docs/protocol/session.md §5, "Runs of frames"). `outputs[i]`, when given, is
   * `encryptWithAd`'s `output` for plaintext i (used where that one would be: an AEAD called with
   * a key copy), else the ciphertexts are fresh arrays. An error (wiped, a batch that would reach
   * nonce 2^64-1) fails the whole batch; the exhausted check comes first, so that one takes no nonce.
   */
  encryptBatchWithAd(
    ad: Uint8Array,
    plaintexts: readonly Uint8Array[],
    outputs?: readonly Uint8Array[],
  ): Promise<Result<Uint8Array[]>> {
    if (this.#wiped) return Promise.resolve(err("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped"));
    if (this.#k === undefined) return Promise.resolve(ok([...plaintexts]));
    // The whole batch must fit below the reserved 2^64-1 before any nonce is taken: a batch that
    // fails uses none (Noise §5.1), as the doc above says.
    const left = (MAX_U32 - this.#hi) * U32 + (MAX_U32 - this.#lo);
    if (plaintexts.length > left)
      return Promise.resolve(err("LOFT_ERR_NONCE_EXHAUSTED", "nonce 2^64-1 is reserved (Noise §5.1)"));
    const nonces: Uint8Array[] = [];
    for (let i = 0; i < plaintexts.length; i++) {
      const nonce = new Uint8Array(12);
      this.#writeNonce(nonce, this.#lo, this.#hi);
      this.#increment();
      nonces.push(nonce);
    }
    return this.#enqueue(async () => {
      const aead = await this.#aeadForOneCall();
      if (aead === undefined) return err("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped");
      if (aead instanceof KeyCopyAead) {
        // One key copy per call (each wiped when its call returns): one after the other.
        aead.wipeCopy();
        const out: Uint8Array[] = [];
        for (let i = 0; i < plaintexts.length; i++) {
          const one = await this.#aeadForOneCall();
          if (one === undefined) return err("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped");
          out.push(await one.seal(nonces[i]!, ad, plaintexts[i]!, outputs?.[i]));
        }
        return ok(out);
      }
      return ok(await Promise.all(plaintexts.map((p, i) => aead.seal(nonces[i]!, ad, p))));
    });
  }

  /**
   * `decryptWithAd(ad, c)` for each ciphertext in order until one fails, as one queued operation,
   * the AEAD calls in flight at once (nonces n, n+1, …): `opened` holds the plaintexts of the
   * ciphertexts before the first that failed (n advanced past them only), `error` why that one
   * failed (Noise §5.1: its nonce is not used up); the ones after it are not reported.
   */
  decryptBatchWithAd(
    ad: Uint8Array,
    ciphertexts: readonly Uint8Array[],
  ): Promise<{ opened: Uint8Array[]; error?: LoftError }> {
    const wiped = () => ({
      opened: [],
      error: new LoftError("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped"),
    });
    if (this.#wiped) return Promise.resolve(wiped());
    if (this.#k === undefined) return Promise.resolve({ opened: [...ciphertexts] });
    return this.#enqueue(async () => {
      const aead = await this.#aeadForOneCall();
      if (aead === undefined) return wiped();
      if (aead instanceof KeyCopyAead) {
        aead.wipeCopy();
        const opened: Uint8Array[] = [];
        for (const c of ciphertexts) {
          const one = await this.#openOne(ad, c);
          if (!one.ok) return { opened, error: one.error };
          opened.push(one.value);
        }
        return { opened };
      }
      // Nonces for every ciphertext as if all before it open; n advances past the prefix that did.
      let lo = this.#lo;
      let hi = this.#hi;
      const calls: Promise<Uint8Array | undefined>[] = [];
      let stop: LoftError | undefined;
      for (const c of ciphertexts) {
        if (lo === MAX_U32 && hi === MAX_U32) {
          stop = new LoftError("LOFT_ERR_NONCE_EXHAUSTED", "nonce 2^64-1 is reserved (Noise §5.1)");
          break;
        }
        if (c.length < TAGLEN) {
          stop = new LoftError("LOFT_ERR_DECRYPT", "ciphertext shorter than the tag");
          break;
        }
        const nonce = new Uint8Array(12);
        this.#writeNonce(nonce, lo, hi);
        calls.push(aead.open(nonce, ad, c));
        lo++;
        if (lo === U32) {
          lo = 0;
          hi++;
        }
      }
      const results = await Promise.all(calls);
      if (this.#wiped) return wiped();
      const opened: Uint8Array[] = [];
      for (const r of results) {
        if (r === undefined) {
          for (const later of results.slice(opened.length + 1)) later?.fill(0);
          return { opened, error: new LoftError("LOFT_ERR_DECRYPT", "authentication failed") };
        }
        this.#increment();
        opened.push(r);
      }
      return stop ? { opened, error: stop } : { opened };
    });
  }

  /**
   * One decrypt inside queued work (`decryptWithAd`'s, and a batch's one-key-copy-per-call way);
   * `n` moves only when it authenticates.
   */
  async #openOne(ad: Uint8Array, ciphertext: Uint8Array, output?: Uint8Array): Promise<Result<Uint8Array>> {
    if (this.#exhausted()) return err("LOFT_ERR_NONCE_EXHAUSTED", "nonce 2^64-1 is reserved (Noise §5.1)");
    if (ciphertext.length < TAGLEN) return err("LOFT_ERR_DECRYPT", "ciphertext shorter than the tag");
    const aead = await this.#aeadForOneCall();
    if (aead === undefined) return err("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped");
    const nonce = new Uint8Array(12);
    this.#writeNonce(nonce, this.#lo, this.#hi);
    const plaintext = await aead.open(nonce, ad, ciphertext, output);
    if (plaintext === undefined) return err("LOFT_ERR_DECRYPT", "authentication failed");
    if (this.#wiped) return err("LOFT_ERR_HANDSHAKE_STATE", "CipherState was wiped");
    this.#increment();
    return ok(plaintext);
  }

  /**
   * Noise §5.1 / §11.3 `Rekey()`: `k = REKEY(k)`; `n` is unchanged. The old key is wiped. Applies
   * to every encrypt/decrypt called after it (they wait for it).
   */
  rekey(): Promise<void> {
    if (this.#k === undefined) throw new Error("Rekey() on a CipherState without a key (or wiped)");
    return this.#enqueue(async () => {
      const k = this.#keyCopy();
      if (k === undefined) return; // wiped meanwhile: nothing left to rekey
      const next = await rekey(this.#aead, k);
      k.fill(0);
      if (this.#k !== undefined && !this.#wiped) this.#k.set(next);
      next.fill(0);
      this.#keyed = undefined; // the next operation imports the new k
    });
  }

  /**
   * Wipe the key (docs/design.md, "Cryptography": secrets are zeroed when done). Every later
   * encrypt/decrypt is an error, never a plaintext pass-through; queued ones fail the same way.
   */
  wipe(): void {
    this.#wiped = true;
    this.#k?.fill(0);
    this.#k = undefined;
    this.#keyed = undefined;
    this.#lo = 0;
    this.#hi = 0;
  }
}
