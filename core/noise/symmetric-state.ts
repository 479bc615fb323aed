/**
 * Noise Protocol Framework rev 34, §5.2 processing rules: the `SymmetricState` object (`ck`, `h`
 * and a CipherState), with the suite's hash and HKDF over its HMAC (§4.3; BLAKE2s §12.7 or
 * SHA-256 §12.5, suite.ts), from the crypto provider the handshake carries. https://noiseprotocol.org/noise.html#the-symmetricstate-object
 *
 * Our one extension, `exportSecret(label)` (see transport.ts), derives from the final `ck` at
 * `finish()`, before `ck` is wiped; nothing here changes the spec's own functions. Every function
 * that hashes is async (the provider is); the handshake awaits each before the next.
 */
import { utf8, wipe } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { Aead, CryptoProvider } from "../crypto/provider.ts";
import type { Result } from "../errors.ts";
import { CipherState } from "./cipher-state.ts";
import { HASHLEN, hkdf } from "./primitives.ts";
import { type NoiseSuite, suiteOf } from "./suite.ts";

const EMPTY = new Uint8Array(0);

export class SymmetricState {
  readonly cipherState: CipherState;
  readonly #crypto: CryptoProvider;
  readonly #aead: Aead;
  readonly #suite: NoiseSuite;
  #ck: Uint8Array;
  #h: Uint8Array;
  /** Set by `wipe()`: an operation that was awaiting when the state was wiped stores nothing. */
  #wiped = false;

  private constructor(crypto: CryptoProvider, suite: NoiseSuite, h: Uint8Array) {
    this.#crypto = crypto;
    this.#suite = suite;
    this.#aead = suite.aead(crypto);
    this.cipherState = new CipherState(undefined, this.#aead, suite.writeNonce);
    this.#h = h;
    this.#ck = h.slice();
  }

  /**
   * Noise §5.2 `InitializeSymmetric(protocol_name)`: `h` = the name zero-padded to HASHLEN if it
   * fits, else HASH(name); `ck = h`; `InitializeKey(empty)`. The suite (cipher, hash) is the one
   * the protocol name ends with (suite.ts `suiteOf`).
   */
  static async create(protocolName: string, crypto: CryptoProvider = nobleCrypto): Promise<SymmetricState> {
    const suite = suiteOf(protocolName);
    if (suite === undefined) throw new RangeError(`no Noise suite in ${JSON.stringify(protocolName)}`);
    const name = utf8(protocolName);
    let h: Uint8Array;
    if (name.length <= HASHLEN) {
      h = new Uint8Array(HASHLEN);
      h.set(name);
    } else {
      h = await suite.hash(crypto, name);
    }
    return new SymmetricState(crypto, suite, h);
  }

  /** Noise §5.2 `MixKey(ikm)`: `ck, temp_k = HKDF(ck, ikm, 2)`; `InitializeKey(temp_k)`. */
  async mixKey(inputKeyMaterial: Uint8Array): Promise<void> {
    const [ck, tempK] = (await hkdf(this.#crypto, this.#ck, inputKeyMaterial, 2, this.#suite)) as [
      Uint8Array,
      Uint8Array,
    ];
    try {
      this.#refuseIfWiped(ck, tempK);
      this.#ck.fill(0);
      this.#ck = ck;
      this.cipherState.initializeKey(tempK); // HASHLEN is 32: no truncation (§5.2)
    } finally {
      tempK.fill(0);
    }
  }

  /** Noise §5.2 `MixHash(data)`: `h = HASH(h ‖ data)`. */
  async mixHash(data: Uint8Array): Promise<void> {
    const h = await this.#suite.hash(this.#crypto, this.#h, data);
    this.#refuseIfWiped(h);
    this.#h = h;
  }

  /**
   * Noise §5.2 `MixKeyAndHash(ikm)` (used for PSKs, §9.1): `ck, temp_h, temp_k = HKDF(ck, ikm, 3)`;
   * `MixHash(temp_h)`; `InitializeKey(temp_k)`.
   */
  async mixKeyAndHash(inputKeyMaterial: Uint8Array): Promise<void> {
    const [ck, tempH, tempK] = (await hkdf(this.#crypto, this.#ck, inputKeyMaterial, 3, this.#suite)) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    try {
      this.#refuseIfWiped(ck, tempH, tempK);
      this.#ck.fill(0);
      this.#ck = ck;
      await this.mixHash(tempH);
      this.cipherState.initializeKey(tempK);
    } finally {
      // Also when MixHash's provider call throws (the handshake then fails and wipes `ck`).
      wipe(tempH, tempK);
    }
  }

  /** Noise §5.2 `GetHandshakeHash()`: a copy of `h` (meant for after Split, §11.2). */
  getHandshakeHash(): Uint8Array {
    return this.#h.slice();
  }

  /** Noise §5.2 `EncryptAndHash(plaintext)`: `c = EncryptWithAd(h, plaintext)`; `MixHash(c)`. */
  async encryptAndHash(plaintext: Uint8Array): Promise<Result<Uint8Array>> {
    const ciphertext = await this.cipherState.encryptWithAd(this.#h, plaintext);
    if (ciphertext.ok) await this.mixHash(ciphertext.value);
    return ciphertext;
  }

  /** Noise §5.2 `DecryptAndHash(ciphertext)`: `p = DecryptWithAd(h, c)`; `MixHash(c)`. */
  async decryptAndHash(ciphertext: Uint8Array): Promise<Result<Uint8Array>> {
    const plaintext = await this.cipherState.decryptWithAd(this.#h, ciphertext);
    if (plaintext.ok) await this.mixHash(ciphertext);
    return plaintext;
  }

  /**
   * Noise §5.2 `Split()`: `temp_k1, temp_k2 = HKDF(ck, zerolen, 2)`; two CipherStates. The
   * first encrypts initiator → responder, the second responder → initiator.
   */
  async split(): Promise<[CipherState, CipherState]> {
    const [k1, k2] = (await hkdf(this.#crypto, this.#ck, EMPTY, 2, this.#suite)) as [Uint8Array, Uint8Array];
    const pair: [CipherState, CipherState] = [
      new CipherState(k1, this.#aead, this.#suite.writeNonce),
      new CipherState(k2, this.#aead, this.#suite.writeNonce),
    ];
    wipe(k1, k2);
    return pair;
  }

  /**
   * Our extension (docs/protocol/noise.md, "Our extension"), computed at Split time from the final
   * chaining key: `HKDF(ck, h ‖ UTF-8(label), 1)` (§4.3, first output). Never exposes `ck` itself.
   */
  async exportSecret(label: string): Promise<Uint8Array> {
    const labelBytes = utf8(label);
    const ikm = new Uint8Array(this.#h.length + labelBytes.length);
    ikm.set(this.#h);
    ikm.set(labelBytes, this.#h.length);
    const [secret] = (await hkdf(this.#crypto, this.#ck, ikm, 1, this.#suite)) as [Uint8Array];
    return secret;
  }

  /** After `wipe()`, zero what an operation just derived and stop it (its caller sees a throw). */
  #refuseIfWiped(...derived: Uint8Array[]): void {
    if (!this.#wiped) return;
    wipe(...derived);
    throw new Error("SymmetricState was wiped during the operation");
  }

  /** Zero `ck`, `h` and `k` (a failed or finished handshake leaves nothing behind). */
  wipe(): void {
    this.#wiped = true;
    this.#ck.fill(0);
    this.#h.fill(0);
    this.cipherState.wipe();
  }
}
