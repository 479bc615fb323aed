/**
 * Command-signature checks of the relay (docs/protocol/relay.md §Commands, the "signed by" column) with a bounded
 * cache of parsed keys, and the same work on every failure path (SMP §"Error responses": an
 * unknown queue id is checked against a dummy key so it costs what a bad signature costs).
 *
 * Importing an Ed25519 key into an OpenSSL KeyObject costs about a tenth of a verification (as a
 * JWK; ten times that as SPKI DER — bench/relay-keys.ts), so keys are cached — but only keys that
 * have verified a signature: a key an unauthenticated command
 * merely names (NEW's `rk`, SKEY's `sk`, a guessed queue's key) never enters the cache, so a flood
 * of made-up keys neither fills memory nor evicts the keys of real clients. The cache is bounded
 * by bytes (`--relay-key-cache-bytes`) and evicts the least recently used key first.
 *
 * Equal work: every check that fails costs exactly one key parse and one verification, whether
 * the queue is unknown (the dummy key is parsed), its key cold (parsed) or cached (a dummy parse
 * is added after the failed verification). relay-ws/limits.test.ts counts both per command.
 * A check that succeeds may skip the parse (cached key): only the key's holder can produce it.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { ed25519PublicKey, ed25519Verify } from "../host/node-ed25519.ts";
import { toHex } from "./hex.ts";
import type { VerifyPool } from "./verify-pool.ts";

/**
 * Memory one cached key takes: the KeyObject with its OpenSSL EVP_PKEY and the map entry. The
 * review measured 270 MB for 100 000 keys; rounded up.
 */
export const KEY_CACHE_ENTRY_BYTES = 3_000;

const ZERO_SIGNATURE = new Uint8Array(64);

/** One verification between its key lookup and its verdict. */
interface Check {
  hex: string | undefined;
  /** The parsed (or cached) key, undefined when the bytes are not a valid key. */
  parsed: KeyObject | undefined;
  /** What is verified against: the key, or the dummy key. */
  key: KeyObject;
  /** The same key's 32 bytes. */
  raw: Uint8Array;
  cached: boolean;
  signature: Uint8Array;
  /** A real key and a real signature (else the verdict is false whatever OpenSSL says). */
  real: boolean;
}

export class SignatureVerifier {
  readonly #cache = new Map<string, KeyObject>();
  readonly #maxEntries: number;
  /** Raw bytes of a key nobody holds (drawn at start), parsed on every unknown-queue check. */
  readonly #dummyRaw: Uint8Array;
  readonly #dummyKey: KeyObject;
  /** Key parses and verifications so far (for tests and metrics). */
  parses = 0;
  verifies = 0;

  constructor(maxBytes: number) {
    this.#maxEntries = Math.floor(maxBytes / KEY_CACHE_ENTRY_BYTES);
    const { publicKey } = generateKeyPairSync("ed25519");
    this.#dummyKey = publicKey;
    this.#dummyRaw = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(12));
  }

  get cacheEntries(): number {
    return this.#cache.size;
  }

  get cacheBytes(): number {
    return this.#cache.size * KEY_CACHE_ENTRY_BYTES;
  }

  #parse(raw: Uint8Array): KeyObject | undefined {
    this.parses++;
    return ed25519PublicKey(raw);
  }

  /**
   * True when `signature` is a valid signature of `message` by `publicKey`. `publicKey` undefined
   * (unknown queue, command that takes no signature) checks against the dummy key and is false.
   * `remember` false: a good key is not cached (it does not belong to an existing queue).
   */
  verify(
    publicKey: Uint8Array | undefined,
    message: Uint8Array,
    signature: Uint8Array | undefined,
    remember = true,
  ): boolean {
    const check = this.#begin(publicKey, signature);
    return this.#end(check, ed25519Verify(check.key, message, check.signature), remember);
  }

  /**
   * The same check, with the OpenSSL verification on `pool` (relay-ws/verify-pool.ts) when a worker
   * has room: the key lookup, the counters and the cache happen here, on the event loop, exactly as
   * in `verify`. Answers synchronously when it verified inline.
   */
  verifyOn(
    pool: VerifyPool | undefined,
    publicKey: Uint8Array | undefined,
    message: Uint8Array,
    signature: Uint8Array | undefined,
    remember = true,
  ): boolean | Promise<boolean> {
    const check = this.#begin(publicKey, signature);
    const pending = pool?.submit(check.raw, check.key, message, check.signature);
    if (!pending) return this.#end(check, ed25519Verify(check.key, message, check.signature), remember);
    return pending.then((valid) => this.#end(check, valid, remember));
  }

  /** Find (or parse) the key to verify against; counts the verification and any parse. */
  #begin(publicKey: Uint8Array | undefined, signature: Uint8Array | undefined): Check {
    const hex = publicKey ? toHex(publicKey) : undefined;
    let key = hex === undefined ? undefined : this.#cache.get(hex);
    const cached = key !== undefined;
    if (cached) {
      // Most recently used last: Map iteration order is the eviction order.
      this.#cache.delete(hex!);
      this.#cache.set(hex!, key!);
    } else key = this.#parse(publicKey ?? this.#dummyRaw);
    this.verifies++;
    return {
      hex,
      raw: key !== undefined && publicKey ? publicKey : this.#dummyRaw,
      parsed: key,
      key: key ?? this.#dummyKey,
      cached,
      signature: signature ?? ZERO_SIGNATURE,
      real: publicKey !== undefined && signature !== undefined,
    };
  }

  #end(check: Check, valid: boolean, remember: boolean): boolean {
    const good = valid && check.real && check.parsed !== undefined;
    if (good && !check.cached && remember) this.#remember(check.hex!, check.parsed!);
    // A failure costs one parse whichever path it took.
    if (!good && check.cached) this.#parse(this.#dummyRaw);
    return good;
  }

  /** Whether bytes are an Ed25519 public key OpenSSL accepts (KEY's sender key); not cached. */
  validKey(raw: Uint8Array): boolean {
    return this.#parse(raw) !== undefined;
  }

  #remember(hex: string, key: KeyObject): void {
    if (this.#maxEntries === 0) return;
    while (this.#cache.size >= this.#maxEntries) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
    this.#cache.set(hex, key);
  }
}
