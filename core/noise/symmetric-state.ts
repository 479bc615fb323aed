/**
 * Noise Protocol Framework rev 34, §5.2 processing rules: the `SymmetricState` object (`ck`, `h`
 * and a CipherState), with BLAKE2s (§12.7) and HKDF over HMAC-BLAKE2s (§4.3).
 * https://noiseprotocol.org/noise.html#the-symmetricstate-object
 *
 * Our one extension, `exportSecret(label)` (see transport.ts), derives from the final `ck` at
 * `finish()`, before `ck` is wiped; nothing here changes the spec's own functions.
 */
import { utf8, wipe } from "../bytes.ts";
import type { Result } from "../errors.ts";
import { CipherState } from "./cipher-state.ts";
import { HASHLEN, hash, hash2, hkdf } from "./primitives.ts";

const EMPTY = new Uint8Array(0);

export class SymmetricState {
  readonly cipherState = new CipherState();
  #ck: Uint8Array;
  #h: Uint8Array;

  /**
   * Noise §5.2 `InitializeSymmetric(protocol_name)`: `h` = the name zero-padded to HASHLEN if it
   * fits, else HASH(name); `ck = h`; `InitializeKey(empty)`.
   */
  constructor(protocolName: string) {
    const name = utf8(protocolName);
    if (name.length <= HASHLEN) {
      this.#h = new Uint8Array(HASHLEN);
      this.#h.set(name);
    } else {
      this.#h = hash(name);
    }
    this.#ck = this.#h.slice();
  }

  /** Noise §5.2 `MixKey(ikm)`: `ck, temp_k = HKDF(ck, ikm, 2)`; `InitializeKey(temp_k)`. */
  mixKey(inputKeyMaterial: Uint8Array): void {
    const [ck, tempK] = hkdf(this.#ck, inputKeyMaterial, 2) as [Uint8Array, Uint8Array];
    this.#ck.fill(0);
    this.#ck = ck;
    this.cipherState.initializeKey(tempK); // HASHLEN is 32: no truncation (§5.2)
    tempK.fill(0);
  }

  /** Noise §5.2 `MixHash(data)`: `h = HASH(h ‖ data)`. */
  mixHash(data: Uint8Array): void {
    this.#h = hash2(this.#h, data);
  }

  /**
   * Noise §5.2 `MixKeyAndHash(ikm)` (used for PSKs, §9.1): `ck, temp_h, temp_k = HKDF(ck, ikm, 3)`;
   * `MixHash(temp_h)`; `InitializeKey(temp_k)`.
   */
  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    const [ck, tempH, tempK] = hkdf(this.#ck, inputKeyMaterial, 3) as [Uint8Array, Uint8Array, Uint8Array];
    this.#ck.fill(0);
    this.#ck = ck;
    this.mixHash(tempH);
    this.cipherState.initializeKey(tempK);
    wipe(tempH, tempK);
  }

  /** Noise §5.2 `GetHandshakeHash()`: a copy of `h` (meant for after Split, §11.2). */
  getHandshakeHash(): Uint8Array {
    return this.#h.slice();
  }

  /** Noise §5.2 `EncryptAndHash(plaintext)`: `c = EncryptWithAd(h, plaintext)`; `MixHash(c)`. */
  encryptAndHash(plaintext: Uint8Array): Result<Uint8Array> {
    const ciphertext = this.cipherState.encryptWithAd(this.#h, plaintext);
    if (ciphertext.ok) this.mixHash(ciphertext.value);
    return ciphertext;
  }

  /** Noise §5.2 `DecryptAndHash(ciphertext)`: `p = DecryptWithAd(h, c)`; `MixHash(c)`. */
  decryptAndHash(ciphertext: Uint8Array): Result<Uint8Array> {
    const plaintext = this.cipherState.decryptWithAd(this.#h, ciphertext);
    if (plaintext.ok) this.mixHash(ciphertext);
    return plaintext;
  }

  /**
   * Noise §5.2 `Split()`: `temp_k1, temp_k2 = HKDF(ck, zerolen, 2)`; two CipherStates. The
   * first encrypts initiator → responder, the second responder → initiator.
   */
  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf(this.#ck, EMPTY, 2) as [Uint8Array, Uint8Array];
    const pair: [CipherState, CipherState] = [new CipherState(k1), new CipherState(k2)];
    wipe(k1, k2);
    return pair;
  }

  /**
   * Our extension (docs/protocol/noise.md, "Our extension"), computed at Split time from the final
   * chaining key: `HKDF(ck, h ‖ UTF-8(label), 1)` (§4.3, first output). Never exposes `ck` itself.
   */
  exportSecret(label: string): Uint8Array {
    const labelBytes = utf8(label);
    const ikm = new Uint8Array(this.#h.length + labelBytes.length);
    ikm.set(this.#h);
    ikm.set(labelBytes, this.#h.length);
    const [secret] = hkdf(this.#ck, ikm, 1) as [Uint8Array];
    return secret;
  }

  /** Zero `ck`, `h` and `k` (a failed or finished handshake leaves nothing behind). */
  wipe(): void {
    this.#ck.fill(0);
    this.#h.fill(0);
    this.cipherState.wipe();
  }
}
