/**
 * Noise Protocol Framework rev 34, §5.3 processing rules: the `HandshakeState` object, for the
 * patterns in patterns.ts (`XX`, `XXpsk3`, and `XXhfs` from the Noise HFS extension rev 1, §4).
 * https://noiseprotocol.org/noise.html#the-handshakestate-object
 *
 * Habits from WireGuard's `noise-protocol.go`: the state is an explicit enum, whose turn it is
 * is checked before anything is touched, and a handshake either completes or is zeroed — any
 * error (bad length, failed AEAD, a low-order key, a call out of turn) moves it to `failed`, wipes
 * every secret it holds, and every later call returns `LOFT_ERR_HANDSHAKE_STATE`. A `failed`
 * handshake never yields a transport. A crypto provider that throws mid-step is no protocol error
 * (its exception goes up as it came, not as a Result) but fails the handshake all the same: the
 * step had mixed part of a message into `h` and `ck` (Noise §5.3 processes a message whole), so
 * nothing may run on them again.
 *
 * Every step is async (the crypto provider is; docs/decisions.md, "Cryptography: one async
 * provider, carried explicitly"). One step runs at a time: a `writeMessage`/`readMessage`/`finish`
 * called while another is still running is refused with `LOFT_ERR_HANDSHAKE_STATE` and leaves the
 * running one alone; `abort()` during a step wipes the state, and that step then ends in
 * `LOFT_ERR_HANDSHAKE_STATE` instead of producing anything.
 */
import { abytes, allOrWipe, concatBytes, wipe } from "../bytes.ts";
import { nobleCrypto } from "../crypto/noble.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { err, type LoftErrorCode, ok, type Result } from "../errors.ts";
import type { CipherState } from "./cipher-state.ts";
import type { HandshakePattern, Token } from "./patterns.ts";
import {
  DHLEN,
  dh,
  KEM_CIPHERTEXT_LEN,
  KEM_PUBLIC_KEY_LEN,
  type KemKeyPair,
  type KeyPair,
  kemDecapsulate,
  kemEncapsulate,
  kemKeyPairFromSeed,
  keyPairFromPrivate,
  MAX_MESSAGE_LEN,
  type NoiseEntropy,
  providerEntropy,
  TAGLEN,
} from "./primitives.ts";
import { SymmetricState } from "./symmetric-state.ts";
import { NoiseTransport } from "./transport.ts";

export type HandshakeRole = "initiator" | "responder";

/**
 * `write`: our turn to send the next message; `read`: waiting for the peer's; `complete`: the
 * last message went through, `finish()` may Split once; `finished`: split done, state wiped;
 * `failed`: an error happened, state wiped.
 */
export type HandshakeStatus = "write" | "read" | "complete" | "finished" | "failed";

export interface HandshakeConfig {
  pattern: HandshakePattern;
  role: HandshakeRole;
  /** Noise §6: bytes both sides must agree on; hashed right after the protocol name. */
  prologue: Uint8Array;
  /**
   * Local static key pair `s` (copied; the caller keeps its own). Taken as given, like §5.3's
   * `Initialize(..., s, ...)`: build it with `keyPairFromPrivate` / `generateKeyPair`.
   */
  staticKeyPair: KeyPair;
  /** 32-byte pre-shared key, required exactly when the pattern has a `psk` token (§9). */
  psk?: Uint8Array;
  /** Randomness for `e`, `e1` and `ekem1`; fixed bytes for vectors, the provider's CSPRNG otherwise. */
  entropy?: NoiseEntropy;
  /**
   * Ephemeral key pairs generated ahead of time (`prepareEphemerals`), e.g. while the link opens:
   * the `e` and `e1` tokens take them instead of generating their own. Taken at most once: the
   * handshake empties the object's fields as it takes them, so a second handshake given the same
   * object generates fresh keys, and the handshake's wipe covers them from then on.
   */
  prepared?: PreparedEphemerals;
  /** The primitives (core/crypto/provider.ts); noble when absent. */
  crypto?: CryptoProvider;
}

const EMPTY = new Uint8Array(0);

/** Ephemeral key pairs made before a handshake (`HandshakeConfig.prepared`), each used at most once. */
export interface PreparedEphemerals {
  e?: KeyPair;
  e1?: KemKeyPair;
}

/**
 * `e` and `e1` generated now from `crypto`'s CSPRNG: the initiator's ephemeral keys do not depend
 * on the peer, so a dialler can make them while ICE and DTLS run instead of on the handshake's
 * critical path (docs/decisions.md, "The client's data path and handshake, measured"). Wipe what
 * no handshake took with `wipeEphemerals`.
 */
export async function prepareEphemerals(crypto: CryptoProvider): Promise<PreparedEphemerals> {
  const entropy = providerEntropy(crypto);
  const secret = entropy.ephemeralPrivateKey();
  let seed: Uint8Array | undefined;
  try {
    seed = entropy.kemKeySeed();
    // A provider exception: the pair that was made is wiped, not returned (allOrWipe).
    const [e, e1] = await allOrWipe(
      [keyPairFromPrivate(secret, crypto), (pair) => wipeEphemerals({ e: pair }, crypto)],
      [kemKeyPairFromSeed(crypto, seed), (pair) => wipeEphemerals({ e1: pair }, crypto)],
    );
    return { e, e1 };
  } finally {
    secret.fill(0);
    seed?.fill(0);
  }
}

/**
 * Wipe and drop whatever of `prepared` no handshake took; with the provider that made them, its
 * copies go too (core/crypto/provider.ts, X25519.forget and MlKem768.forget).
 */
export function wipeEphemerals(prepared: PreparedEphemerals | undefined, crypto?: CryptoProvider): void {
  if (!prepared) return;
  if (prepared.e) crypto?.x25519.forget?.(prepared.e.privateKey);
  if (prepared.e1) crypto?.mlkem768.forget?.(prepared.e1.secretKey);
  prepared.e?.privateKey.fill(0);
  prepared.e1?.secretKey.fill(0);
  prepared.e = undefined;
  prepared.e1 = undefined;
}

export class HandshakeState {
  readonly pattern: HandshakePattern;
  readonly role: HandshakeRole;
  #status: HandshakeStatus;
  #index = 0;
  readonly #symmetric: SymmetricState;
  readonly #entropy: NoiseEntropy;
  readonly #crypto: CryptoProvider;
  /** A step (write, read, finish) is running. */
  #busy = false;
  /** Why the handshake failed, when a later call's error should say more than "failed". */
  #failedBecause: string | undefined;
  #s: KeyPair;
  #e: KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #psk: Uint8Array | undefined;
  /** HFS §4: our KEM key pair (`e1`, initiator) and the peer's KEM public key (responder). */
  #e1: KemKeyPair | undefined;
  #re1: Uint8Array | undefined;
  /** `HandshakeConfig.prepared`: taken field by field by the `e` and `e1` tokens. */
  readonly #prepared: PreparedEphemerals | undefined;

  /**
   * Noise §5.3 `Initialize(handshake_pattern, initiator, prologue, s, e, rs, re)`: InitializeSymmetric
   * and MixHash(prologue), then the state is ready for its first step.
   */
  static async create(config: HandshakeConfig): Promise<HandshakeState> {
    abytes(config.prologue, undefined, "prologue");
    abytes(config.staticKeyPair.privateKey, DHLEN, "static private key");
    abytes(config.staticKeyPair.publicKey, DHLEN, "static public key");
    if (config.pattern.psk) abytes(config.psk, 32, "psk");
    else if (config.psk !== undefined) throw new Error(`${config.pattern.protocolName} takes no psk`);
    const crypto = config.crypto ?? nobleCrypto;
    const symmetric = await SymmetricState.create(config.pattern.protocolName, crypto);
    await symmetric.mixHash(config.prologue);
    return new HandshakeState(config, crypto, symmetric);
  }

  private constructor(config: HandshakeConfig, crypto: CryptoProvider, symmetric: SymmetricState) {
    this.pattern = config.pattern;
    this.role = config.role;
    this.#crypto = crypto;
    this.#entropy = config.entropy ?? providerEntropy(crypto);
    this.#symmetric = symmetric;
    this.#s = {
      privateKey: config.staticKeyPair.privateKey.slice(),
      publicKey: config.staticKeyPair.publicKey.slice(),
    };
    this.#psk = config.psk?.slice();
    this.#prepared = config.prepared;
    // XX has no pre-messages (§7.5), so nothing else is hashed here.
    this.#status = config.role === "initiator" ? "write" : "read";
  }

  get status(): HandshakeStatus {
    return this.#status;
  }

  /** Index of the next handshake message (0-based). */
  get messageIndex(): number {
    return this.#index;
  }

  /** The peer's static public key `rs`, once its `s` token has been read. */
  get remoteStaticKey(): Uint8Array | undefined {
    return this.#rs?.slice();
  }

  /** Noise §5.2 `GetHandshakeHash()` — meaningful (and stable) only once complete (§11.2). */
  get handshakeHash(): Uint8Array {
    return this.#symmetric.getHandshakeHash();
  }

  /**
   * Run one step; refuse a step while another runs, and turn anything a concurrent `abort()`
   * broke into LOFT_ERR_HANDSHAKE_STATE.
   */
  async #step<T>(name: string, body: () => Promise<Result<T>>): Promise<Result<T>> {
    if (this.#busy) return err("LOFT_ERR_HANDSHAKE_STATE", `${name} while another handshake step is running`);
    this.#busy = true;
    try {
      const result = await body();
      if (this.#status === "failed" && result.ok)
        return err("LOFT_ERR_HANDSHAKE_STATE", `${name}: the handshake was aborted`);
      return result;
    } catch (e) {
      if (this.#status === "failed")
        return err("LOFT_ERR_HANDSHAKE_STATE", `${name}: the handshake was aborted`);
      // Something threw (see the file comment): wipe and fail, then let its exception go up. Not
      // necessarily the provider — a caller's wrong-size prepared key or a payload that is not
      // bytes throw too — so later errors name the step and the exception's name, no more.
      if (this.#status !== "finished") {
        this.#wipe();
        this.#status = "failed";
        const what = e instanceof Error ? e.name : typeof e;
        this.#failedBecause = `an exception was thrown during ${name}: ${what}`;
      }
      throw e;
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Noise §5.3 `WriteMessage(payload, message_buffer)`: processes the next message pattern's
   * tokens and appends `EncryptAndHash(payload)`. Resolves with the whole handshake message.
   */
  writeMessage(payload: Uint8Array = EMPTY): Promise<Result<Uint8Array>> {
    return this.#step("write", async () => {
      if (this.#status !== "write") return this.#outOfTurn("write");
      const tokens = this.pattern.messages[this.#index]!;
      const size = this.pattern.overhead[this.#index]! + payload.length;
      if (size > MAX_MESSAGE_LEN)
        return this.#fail(
          "LOFT_ERR_FRAME_TOO_LARGE",
          `handshake message of ${size} bytes exceeds 65535 (§3)`,
        );
      const parts: Uint8Array[] = [];
      for (const token of tokens) {
        const step = await this.#writeToken(token, parts);
        if (step !== undefined) return step;
      }
      const body = await this.#symmetric.encryptAndHash(payload);
      if (!body.ok) return this.#fail(body.error.code, body.error.message);
      parts.push(body.value);
      this.#advance();
      return ok(concatBytes(...parts));
    });
  }

  /**
   * Noise §5.3 `ReadMessage(message, payload_buffer)`: processes the next message pattern's
   * tokens and resolves with `DecryptAndHash()` of the remaining bytes (the payload).
   */
  readMessage(message: Uint8Array): Promise<Result<Uint8Array>> {
    return this.#step("read", async () => {
      if (this.#status !== "read") return this.#outOfTurn("read");
      if (!(message instanceof Uint8Array)) return this.#fail("LOFT_ERR_MALFORMED", "not a byte array");
      if (message.length > MAX_MESSAGE_LEN)
        return this.#fail("LOFT_ERR_FRAME_TOO_LARGE", `handshake message of ${message.length} bytes (§3)`);
      const minimum = this.pattern.overhead[this.#index]!;
      if (message.length < minimum)
        return this.#fail(
          "LOFT_ERR_MALFORMED",
          `handshake message ${this.#index + 1} needs at least ${minimum} bytes, got ${message.length}`,
        );
      const tokens = this.pattern.messages[this.#index]!;
      let offset = 0;
      const take = (n: number): Uint8Array => {
        const field = message.subarray(offset, offset + n);
        offset += n;
        return field;
      };
      for (const token of tokens) {
        const step = await this.#readToken(token, take);
        if (step !== undefined) return step;
      }
      const payload = await this.#symmetric.decryptAndHash(message.subarray(offset));
      if (!payload.ok) return this.#fail(payload.error.code, "handshake payload failed authentication");
      this.#advance();
      // A plaintext payload (message 1 of XX) is a view into `message`; hand out our own bytes.
      return ok(payload.value.buffer === message.buffer ? payload.value.slice() : payload.value);
    });
  }

  /**
   * Noise §5.3: "If there are no more message patterns returns two new CipherState objects by
   * calling Split()". Once complete, resolves with the transport (CipherStates for our direction
   * and the peer's, `h`, `rs`, and the secrets of our `exportSecret` extension for `exportLabels`)
   * and wipes the handshake state, final `ck` included: the exports are derived here, so no
   * chaining key outlives the handshake (docs/protocol/noise.md, "Our extension"). Only once.
   */
  finish(exportLabels: readonly string[] = []): Promise<Result<NoiseTransport>> {
    for (const label of exportLabels)
      if (label.length === 0) throw new RangeError("exportSecret: label must be non-empty");
    return this.#step("finish", async () => {
      if (this.#status !== "complete")
        return err("LOFT_ERR_HANDSHAKE_STATE", `finish() while the handshake is ${this.#state()}`);
      // The exports first, Split last: both only read `ck` and `h`, so the order changes no byte,
      // but a provider that throws (#step then fails the handshake) leaves no CipherState behind,
      // only the exports made so far, wiped here.
      const exports = new Map<string, Uint8Array>();
      let split: [CipherState, CipherState];
      try {
        for (const label of exportLabels) exports.set(label, await this.#symmetric.exportSecret(label));
        split = await this.#symmetric.split();
      } catch (e) {
        wipe(...exports.values());
        throw e;
      }
      const [c1, c2] = split;
      const initiator = this.role === "initiator";
      const handshakeHash = this.#symmetric.getHandshakeHash();
      if (this.#status !== "complete") {
        c1.wipe();
        c2.wipe();
        wipe(...exports.values());
        return err("LOFT_ERR_HANDSHAKE_STATE", "finish: the handshake was aborted");
      }
      const transport = new NoiseTransport({
        protocolName: this.pattern.protocolName,
        send: initiator ? c1 : c2,
        receive: initiator ? c2 : c1,
        handshakeHash,
        remoteStaticKey: this.#rs!.slice(),
        exports,
      });
      this.#wipe();
      this.#status = "finished";
      return ok(transport);
    });
  }

  /** Give up: wipe everything and refuse any further call (e.g. on a timeout or a bad identity). */
  abort(): void {
    if (this.#status === "finished") return;
    this.#wipe();
    this.#status = "failed";
  }

  #advance(): void {
    this.#index++;
    if (this.#index === this.pattern.messages.length) this.#status = "complete";
    else this.#status = this.#status === "write" ? "read" : "write";
  }

  #outOfTurn(attempted: "write" | "read"): Result<never> {
    const was = this.#status;
    if (was === "failed" || was === "finished" || was === "complete")
      return err("LOFT_ERR_HANDSHAKE_STATE", `${attempted} after the handshake is ${this.#state()}`);
    return this.#fail("LOFT_ERR_HANDSHAKE_STATE", `${attempted} out of turn (expected ${was})`);
  }

  /** The status, with why it failed when known ("failed (an exception was thrown during read: TypeError)"). */
  #state(): string {
    return this.#status === "failed" && this.#failedBecause
      ? `failed (${this.#failedBecause})`
      : this.#status;
  }

  #fail(code: LoftErrorCode, message: string): Result<never> {
    this.#wipe();
    this.#status = "failed";
    return err(code, message);
  }

  #wipe(): void {
    this.#symmetric.wipe();
    // The backend drops what it made from the private keys (node: OpenSSL's copies) now, not when
    // this object is collected: it keeps #s, wiped (core/crypto/provider.ts, X25519.forget and
    // MlKem768.forget).
    this.#crypto.x25519.forget?.(this.#s.privateKey);
    if (this.#e) this.#crypto.x25519.forget?.(this.#e.privateKey);
    if (this.#e1) this.#crypto.mlkem768.forget?.(this.#e1.secretKey);
    wipe(this.#s.privateKey, this.#e?.privateKey, this.#e1?.secretKey, this.#psk);
    this.#e = undefined;
    this.#e1 = undefined;
    this.#psk = undefined;
  }

  /** One token of §5.3 WriteMessage (plus HFS §4 `e1` / `ekem1`); returns a Result only on failure. */
  async #writeToken(token: Token, out: Uint8Array[]): Promise<Result<never> | undefined> {
    const sym = this.#symmetric;
    switch (token) {
      case "e": {
        // §5.3: e = GENERATE_KEYPAIR(); append e.public_key; MixHash(e.public_key).
        const prepared = this.#prepared?.e;
        if (prepared) {
          this.#prepared!.e = undefined; // used once
          // Ours from here, before the check: a refused pair goes with the handshake's wipe.
          this.#e = prepared;
          abytes(prepared.publicKey, DHLEN, "prepared ephemeral public key");
        } else {
          const secret = this.#entropy.ephemeralPrivateKey();
          try {
            this.#e = await keyPairFromPrivate(secret, this.#crypto);
          } finally {
            secret.fill(0);
          }
        }
        out.push(this.#e.publicKey);
        await sym.mixHash(this.#e.publicKey);
        if (this.pattern.psk) await sym.mixKey(this.#e.publicKey); // §9.2
        return undefined;
      }
      case "s":
        return this.#appendEncrypted(await sym.encryptAndHash(this.#s.publicKey), out);
      case "e1": {
        // HFS §4: e1 = GENERATE_KEM_KEYPAIR(); public key sent like a static key (EncryptAndHash).
        const prepared = this.#prepared?.e1;
        if (prepared) {
          this.#prepared!.e1 = undefined; // used once
          this.#e1 = prepared;
        } else {
          const seed = this.#entropy.kemKeySeed();
          try {
            this.#e1 = await kemKeyPairFromSeed(this.#crypto, seed);
          } finally {
            seed.fill(0);
          }
        }
        return this.#appendEncrypted(await sym.encryptAndHash(this.#e1.publicKey), out);
      }
      case "ekem1": {
        // HFS §4: GENERATE_KEM_CIPHERTEXT(re1); EncryptAndHash(ciphertext); MixKey(kem_output).
        const randomness = this.#entropy.kemEncapsulationRandomness();
        let kem: Awaited<ReturnType<typeof kemEncapsulate>>;
        try {
          kem = await kemEncapsulate(this.#crypto, this.#re1!, randomness);
        } finally {
          randomness.fill(0);
        }
        if (kem === undefined) return this.#fail("LOFT_ERR_MALFORMED", "peer's ML-KEM public key is invalid");
        try {
          const sent = this.#appendEncrypted(await sym.encryptAndHash(kem.ciphertext), out);
          if (sent === undefined) await sym.mixKey(kem.output);
          return sent;
        } finally {
          kem.output.fill(0);
        }
      }
      case "psk":
        await sym.mixKeyAndHash(this.#psk!); // §9.2
        return undefined;
      default:
        return this.#mixDh(token);
    }
  }

  /** One token of §5.3 ReadMessage (plus HFS §4 `e1` / `ekem1`); lengths were checked up front. */
  async #readToken(token: Token, take: (n: number) => Uint8Array): Promise<Result<never> | undefined> {
    const sym = this.#symmetric;
    const tag = sym.cipherState.hasKey() ? TAGLEN : 0;
    switch (token) {
      case "e":
        // §5.3: re = next DHLEN bytes; MixHash(re).
        this.#re = take(DHLEN).slice();
        await sym.mixHash(this.#re);
        if (this.pattern.psk) await sym.mixKey(this.#re); // §9.2
        return undefined;
      case "s": {
        // §5.3: rs = DecryptAndHash(next DHLEN + 16 bytes if HasKey(), else DHLEN).
        const rs = await sym.decryptAndHash(take(DHLEN + tag));
        if (!rs.ok) return this.#fail("LOFT_ERR_DECRYPT", "remote static key failed authentication");
        this.#rs = rs.value.slice();
        return undefined;
      }
      case "e1": {
        const re1 = await sym.decryptAndHash(take(KEM_PUBLIC_KEY_LEN + tag));
        if (!re1.ok) return this.#fail("LOFT_ERR_DECRYPT", "KEM public key failed authentication");
        this.#re1 = re1.value.slice();
        return undefined;
      }
      case "ekem1": {
        const ciphertext = await sym.decryptAndHash(take(KEM_CIPHERTEXT_LEN + tag));
        if (!ciphertext.ok) return this.#fail("LOFT_ERR_DECRYPT", "KEM ciphertext failed authentication");
        const output = await kemDecapsulate(this.#crypto, this.#e1!.secretKey, ciphertext.value);
        if (output === undefined) return this.#fail("LOFT_ERR_MALFORMED", "KEM ciphertext rejected");
        try {
          await sym.mixKey(output);
        } finally {
          output.fill(0);
        }
        return undefined;
      }
      case "psk":
        await sym.mixKeyAndHash(this.#psk!);
        return undefined;
      default:
        return this.#mixDh(token);
    }
  }

  /** §5.3 `ee`, `es`, `se`, `ss`: MixKey(DH(...)) with the role-dependent key choice. */
  async #mixDh(token: "ee" | "es" | "se" | "ss"): Promise<Result<never> | undefined> {
    const initiator = this.role === "initiator";
    const e = this.#e!;
    const s = this.#s;
    let local: KeyPair;
    let remote: Uint8Array;
    switch (token) {
      case "ee":
        [local, remote] = [e, this.#re!];
        break;
      case "es":
        [local, remote] = initiator ? [e, this.#rs!] : [s, this.#re!];
        break;
      case "se":
        [local, remote] = initiator ? [s, this.#re!] : [e, this.#rs!];
        break;
      case "ss":
        [local, remote] = [s, this.#rs!];
        break;
    }
    const shared = await dh(this.#crypto, local.privateKey, remote);
    if (shared === undefined)
      return this.#fail("LOFT_ERR_MALFORMED", `${token}: low-order X25519 public key`);
    try {
      await this.#symmetric.mixKey(shared);
    } finally {
      shared.fill(0);
    }
    return undefined;
  }

  #appendEncrypted(field: Result<Uint8Array>, out: Uint8Array[]): Result<never> | undefined {
    if (!field.ok) return this.#fail(field.error.code, field.error.message);
    out.push(field.value);
    return undefined;
  }
}
