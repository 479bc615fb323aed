/**
 * A crypto provider that runs the real primitives of `base` and fails one chosen call: the k-th
 * call made through it (every function of the provider counts, keyed AEAD and HMAC handles
 * included, `forget` excepted — it never throws, core/crypto/provider.ts) throws `InjectedFault`
 * — a rejection for the async functions, a throw for `randomBytes`. Everything else is the base
 * provider's own answer; nothing is mocked but the one failure (a backend that rejects: an
 * OpenSSL error, a WebCrypto `OperationError`, a CSPRNG that fails).
 *
 * Every call is logged with its arguments and result (by reference, not copied), the failed one
 * with its arguments only, so a test can keep the secrets the code under test made or used
 * (`secretsSeen`) and check that a failure zeroed them — a key copied for the failed call alone too.
 */
import type { CryptoProvider } from "../../core/crypto/provider.ts";

export class InjectedFault extends Error {
  constructor(
    readonly call: number,
    readonly primitive: string,
  ) {
    super(`injected fault at call ${call} (${primitive})`);
    this.name = "InjectedFault";
  }
}

export interface LoggedCall {
  /** "<primitive>.<function>", e.g. "x25519.sharedSecret"; a keyed handle's: "aes256gcm.withKey.seal". */
  readonly name: string;
  readonly args: readonly unknown[];
  readonly result: unknown;
}

export interface FaultyCrypto {
  readonly crypto: CryptoProvider;
  /** The calls made, in order: those that returned, and the failed one (`result` undefined). */
  readonly log: LoggedCall[];
  /** Calls counted so far (the failed one included): run once with `failAt` 0 to learn a total. */
  calls(): number;
}

/** Functions documented never to throw: forwarded, not counted, never failed. */
const NEVER_THROWS = new Set(["forget"]);
/** Functions whose result is a handle of more functions (`Aead.withKey`, `hmacSha256Key`). */
const HANDLES = new Set(["withKey", "hmacSha256Key"]);

/** `base` with its `failAt`-th call (1-based) failing; 0 never fails. */
export function faultyProvider(base: CryptoProvider, failAt: number): FaultyCrypto {
  const log: LoggedCall[] = [];
  let count = 0;
  const wrapFn = (name: string, key: string, fn: (...args: unknown[]) => unknown) => {
    if (NEVER_THROWS.has(key)) return fn;
    return (...args: unknown[]): unknown => {
      const n = ++count;
      if (n === failAt) {
        const fault = new InjectedFault(n, name);
        log.push({ name, args, result: undefined });
        if (key === "randomBytes") throw fault;
        return Promise.reject(fault);
      }
      const answer = fn(...args);
      const done = (result: unknown) => {
        log.push({ name, args, result });
        return HANDLES.has(key) && result && typeof result === "object"
          ? wrapObject(`${name}.`, result)
          : result;
      };
      return answer instanceof Promise ? answer.then(done) : done(answer);
    };
  };
  const wrapObject = <T extends object>(prefix: string, o: T): T => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) {
      if (typeof v === "function") out[k] = wrapFn(`${prefix}${k}`, k, v.bind(o));
      else if (v && typeof v === "object" && !(v instanceof Uint8Array) && k !== "backends")
        out[k] = wrapObject(`${prefix}${k}.`, v);
      else out[k] = v;
    }
    return out as T;
  };
  const crypto = { ...wrapObject("", base), name: `${base.name}+fault` };
  return { crypto, log, calls: () => count };
}

const bytes = (x: unknown): Uint8Array[] => (x instanceof Uint8Array ? [x] : []);
const field = (x: unknown, key: string): Uint8Array[] =>
  x && typeof x === "object" ? bytes((x as Record<string, unknown>)[key]) : [];

/**
 * The secret byte arrays the logged calls made or took, each once: random bytes, X25519 and
 * ML-KEM shared secrets, HMAC and HKDF outputs, new ML-KEM secret keys; and the keys passed in —
 * X25519 and ML-KEM private keys, HMAC keys, HKDF input key material and salt, AEAD keys, ML-KEM
 * seeds and encapsulation randomness. The caller's own long-lived keys are among them: a test
 * takes those out before checking that a failure zeroed the rest.
 */
export function secretsSeen(log: readonly LoggedCall[]): Uint8Array[] {
  const seen = new Set<Uint8Array>();
  for (const { name, args, result } of log) {
    const found: Uint8Array[] = [];
    if (name === "randomBytes" || name === "x25519.sharedSecret" || name === "mlkem768.decapsulate")
      found.push(...bytes(result));
    if (name === "x25519.publicKey" || name === "x25519.sharedSecret" || name === "mlkem768.decapsulate")
      found.push(...bytes(args[0]));
    if (name === "hmacSha256" || name === "hmacBlake2s" || name === "hkdfSha256" || name === "hmacSha256Key")
      found.push(...bytes(args[0]));
    if (
      name === "hmacSha256" ||
      name === "hmacBlake2s" ||
      name === "hkdfSha256" ||
      name === "hmacSha256Key.sign"
    )
      found.push(...bytes(result));
    if (name === "hkdfSha256") found.push(...bytes(args[1]));
    if (name === "mlkem768.encapsulate") found.push(...bytes(args[1]), ...field(result, "sharedSecret"));
    if (name === "mlkem768.keyPairFromSeed") found.push(...bytes(args[0]), ...field(result, "secretKey"));
    // An AEAD's key (its first argument; a keyed handle's calls have none, its `withKey` took it).
    if (/^(chacha20poly1305|xchacha20poly1305|aes256gcm)\.(seal|open|withKey)$/.test(name))
      found.push(...bytes(args[0]));
    for (const b of found) seen.add(b);
  }
  return [...seen];
}
