/**
 * Command authenticators of relay protocol 1.1 (docs/protocol/relay.md §Command authorization),
 * the relay's side, on node:crypto: SMP's "deniable client authentication scheme" (simplexmq
 * protocol/simplex-messaging.md) with X25519 + HKDF-SHA256 + HMAC-SHA256 in place of crypto_box.
 *
 * Each 1.1 connection has its own X25519 key pair (its public half goes out in HELLO). The first
 * command naming a queue on the connection agrees a key with the queue's auth key (one X25519,
 * one HKDF); every command after that costs one HMAC over its bytes — a few µs where an Ed25519
 * verification cost ~140 µs (bench/README-relay.md). The keys live as long as the connection and
 * are bounded per connection (least recently used out first).
 *
 * Equal work (docs/protocol/relay.md §Errors, "Same work for unknown ids and bad signatures"): a
 * check is one HMAC, after one key agreement the first time a (queue id, key) pair is seen on this
 * connection — the relay's dummy key standing in for an unknown queue, a queue without the key the
 * command needs or bytes that are no Ed25519 key. So an unknown queue and a wrong authenticator
 * cost the same, the first time and every time after. core/relay/crypto.ts (`deriveAuthKey`) is
 * the reference; relay-ws/authenticator.test.ts checks this against it byte for byte.
 */
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomFillSync,
  timingSafeEqual,
} from "node:crypto";
import { authDhPublic, authKeyInfo } from "../core/relay/crypto.ts";
import { AUTHENTICATOR_LENGTH, KEY_LENGTH, SESSION_ID_LENGTH } from "../core/relay/protocol.ts";
import { toHex } from "./hex.ts";
import { lastingSlab } from "./random-pool.ts";

/** Relay-wide: the dummy key and the work counters (for tests and /health). */
export class AuthenticatorStats {
  /** An Ed25519 public key nobody holds, drawn at start (checks of unknown queues use it). */
  readonly dummyKey: Uint8Array;
  /** X25519 key agreements and HMAC checks so far. */
  agreements = 0;
  checks = 0;

  constructor() {
    const { publicKey } = generateKeyPairSync("ed25519");
    this.dummyKey = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(12));
  }
}

const ZERO_TAG = Buffer.alloc(AUTHENTICATOR_LENGTH);
/** Where the parts of a connection's 96 bytes begin: session id (0), private key, public key. */
const SECRET_AT = SESSION_ID_LENGTH;
const PUBLIC_AT = SECRET_AT + 32;
/** PKCS #8 header of a raw X25519 private key (RFC 8410 §7). */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/** A cached agreement: the key to HMAC with, and whether it is a real queue key's. */
interface Agreed {
  key: Buffer;
  real: boolean;
}

export class ConnectionAuthenticator {
  /**
   * The connection's session id (0–31, the HKDF salt) and X25519 key pair, 96 raw bytes: the
   * private half (32–63), imported (as DER) for each agreement — an OpenSSL key object kept per
   * connection held ~4 KiB on every idle connection (bench:relay) — and the public half (64–95).
   * One slice of a slab of connection-long bytes (random-pool.ts `lastingSlab`), not ArrayBuffers
   * of their own nor three Buffer objects (96 bytes each): idle WebSockets are counted in bytes
   * (bench/README.md "bench:scale").
   */
  readonly #bytes: Buffer;
  readonly #stats: AuthenticatorStats;
  readonly #maxKeys: number;
  /** Agreed keys by `slot:key` (the dummy's agreement stands in for a missing or refused key); made on first use. */
  #keysMade: Map<string, Agreed> | undefined;
  /** The request id of the latest authenticated command (ids must grow; -1 before the first). */
  #lastId = -1;

  /**
   * `sessionId` (32 bytes, copied) undefined: drawn fresh here (the connection's, read back as
   * `sessionId`). `privateKey` (32 bytes) only to reproduce docs/vectors/relay-auth-v1.1.json;
   * else drawn fresh.
   */
  constructor(
    sessionId: Uint8Array | undefined,
    stats: AuthenticatorStats,
    maxKeys: number,
    privateKey?: Uint8Array,
  ) {
    // Encoded keys, not KeyObjects: OpenSSL's key is freed before this returns, instead of
    // waiting in native memory for the garbage collector (which does not see its size) — at a
    // few hundred openings per second that wait showed in the relay's RSS (bench:scale).
    const bytes = lastingSlab.take(PUBLIC_AT + KEY_LENGTH);
    const session = bytes.subarray(0, SECRET_AT);
    if (sessionId) {
      if (sessionId.length !== SESSION_ID_LENGTH) throw new RangeError("session id: 32 bytes");
      session.set(sessionId);
    } else randomFillSync(session);
    const secret = bytes.subarray(SECRET_AT, PUBLIC_AT);
    const pub = bytes.subarray(PUBLIC_AT);
    if (privateKey) {
      // X25519 takes any 32 bytes as a private key (RFC 7748 §5 clamps them).
      secret.set(privateKey);
      const der = Buffer.concat([X25519_PKCS8_PREFIX, secret]);
      const jwk = createPrivateKey({ key: der, format: "der", type: "pkcs8" }).export({ format: "jwk" });
      der.fill(0);
      pub.set(Buffer.from(jwk.x ?? "", "base64url"));
    } else {
      const fresh = generateKeyPairSync("x25519", {
        publicKeyEncoding: { format: "der", type: "spki" },
        privateKeyEncoding: { format: "der", type: "pkcs8" },
      });
      secret.set(fresh.privateKey.subarray(X25519_PKCS8_PREFIX.length));
      fresh.privateKey.fill(0);
      pub.set(fresh.publicKey.subarray(fresh.publicKey.length - KEY_LENGTH));
    }
    this.#bytes = bytes;
    this.#stats = stats;
    this.#maxKeys = Math.max(1, maxKeys);
  }

  /** The relay's X25519 public key for this connection (HELLO `x`): a view of its pair. */
  get publicKey(): Uint8Array {
    return this.#bytes.subarray(PUBLIC_AT);
  }

  /** The connection's session id (HELLO `s`, the HKDF salt): a view, made when asked. */
  get sessionId(): Uint8Array {
    return this.#bytes.subarray(0, SECRET_AT);
  }

  get #keys(): Map<string, Agreed> {
    this.#keysMade ??= new Map();
    return this.#keysMade;
  }

  /**
   * Whether an authenticated command with request id `id` may run: ids grow strictly on a
   * connection, so the same frame again (a replay) or an older one is refused. Advances on success.
   */
  admit(id: number): boolean {
    if (id <= this.#lastId) return false;
    this.#lastId = id;
    return true;
  }

  /**
   * True when `tag` is the authenticator of `transmission` under the key agreed with `authPublic`
   * for `slot` (the queue id the command names, hex, or "" for NEW). `authPublic` undefined (unknown
   * queue, queue not secured, command that takes no authorization) checks against the dummy key
   * and is false; so is a tag of the wrong length. Always one HMAC.
   */
  check(
    slot: string,
    authPublic: Uint8Array | undefined,
    transmission: Uint8Array,
    tag: Uint8Array | undefined,
  ): boolean {
    const agreed = this.#agreed(slot, authPublic);
    this.#stats.checks++;
    const mac = createHmac("sha256", agreed.key).update(transmission).digest();
    const given = tag?.length === AUTHENTICATOR_LENGTH ? tag : ZERO_TAG;
    const equal = timingSafeEqual(mac, given);
    return equal && agreed.real && given !== ZERO_TAG;
  }

  /** The agreement of `slot` and `authPublic`: cached, else exactly one successful X25519 + HKDF. */
  #agreed(slot: string, authPublic: Uint8Array | undefined): Agreed {
    const id = `${slot}:${authPublic ? toHex(authPublic) : "-"}`;
    const known = this.#keys.get(id);
    if (known) {
      // Most recently used last: Map iteration order is the eviction order.
      this.#keys.delete(id);
      this.#keys.set(id, known);
      return known;
    }
    const real = authPublic ? this.#agree(authPublic) : undefined;
    // No key, or bytes that are no usable key: the dummy's agreement, so a miss costs the same.
    const agreed: Agreed = real
      ? { key: real, real: true }
      : { key: this.#agree(this.#stats.dummyKey) ?? Buffer.alloc(KEY_LENGTH), real: false };
    while (this.#keys.size >= this.#maxKeys) {
      const oldest = this.#keys.keys().next().value;
      if (oldest === undefined) break;
      this.#keys.get(oldest)?.key.fill(0);
      this.#keys.delete(oldest);
    }
    this.#keys.set(id, agreed);
    return agreed;
  }

  /** HKDF-SHA256(X25519(ours, Montgomery(authPublic)), session id, info), or undefined. */
  #agree(authPublic: Uint8Array): Buffer | undefined {
    this.#stats.agreements++;
    const u = authDhPublic(authPublic);
    if (!u) return undefined;
    let shared: Buffer;
    try {
      const theirs = createPublicKey({
        key: { kty: "OKP", crv: "X25519", x: Buffer.from(u).toString("base64url") },
        format: "jwk",
      });
      const der = Buffer.concat([X25519_PKCS8_PREFIX, this.#bytes.subarray(SECRET_AT, PUBLIC_AT)]);
      const ours = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
      der.fill(0);
      shared = diffieHellman({ privateKey: ours, publicKey: theirs });
    } catch {
      return undefined; // OpenSSL refuses an all-zero result (a low-order key)
    }
    let any = 0;
    for (const b of shared) any |= b;
    if (any === 0) return undefined;
    const key = Buffer.from(
      hkdfSync("sha256", shared, this.sessionId, authKeyInfo(this.publicKey, authPublic), KEY_LENGTH),
    );
    shared.fill(0);
    return key;
  }

  /** The connection ended: wipe the private key and the agreed keys. */
  dispose(): void {
    this.#bytes.fill(0, SECRET_AT, PUBLIC_AT);
    if (!this.#keysMade) return;
    for (const a of this.#keysMade.values()) a.key.fill(0);
    this.#keysMade.clear();
  }
}
