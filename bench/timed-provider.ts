/**
 * A crypto provider that times every primitive call of another (bench/handshake-profile.ts): the
 * same results, plus the ms spent inside each "<primitive>.<function>". Runs in Node and in a
 * bench page alike (no Node built-ins).
 */
import type { CryptoProvider, KeyedAead } from "../core/crypto/provider.ts";

/** Time spent inside each primitive (ms), summed over every call made through the wrapper. */
export type Spent = Map<string, number>;

/**
 * `base` with every async primitive timed into `spent` under "<primitive>.<function>" (the
 * objects are copied, never changed; `randomBytes` and `forget` are synchronous and cheap, left
 * alone). Every function of the base is there, optional ones included (core/crypto/provider.test.ts
 * checks it), so the code measured takes the same paths as without the wrapper.
 */
export function timed(base: CryptoProvider, spent: Spent): CryptoProvider {
  const wrapFn =
    <A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const t0 = performance.now();
      try {
        return await fn(...args);
      } finally {
        spent.set(name, (spent.get(name) ?? 0) + performance.now() - t0);
      }
    };
  const wrapObject = <T extends object>(prefix: string, o: T): T => {
    const out: Record<string, unknown> = {};
    // `forget` is synchronous and never throws (core/crypto/provider.ts): forwarded, not timed.
    for (const [k, v] of Object.entries(o))
      if (k === "forget") out[k] = typeof v === "function" ? v.bind(o) : v;
      else if (k !== "withKey") out[k] = typeof v === "function" ? wrapFn(`${prefix}.${k}`, v.bind(o)) : v;
    if (typeof (o as { withKey?: unknown }).withKey === "function") {
      // The key imported once: its seal/open are timed under the AEAD's name too.
      const withKey = wrapFn(
        `${prefix}.withKey`,
        (o as { withKey: (k: Uint8Array) => Promise<KeyedAead | undefined> }).withKey.bind(o),
      );
      out.withKey = async (key: Uint8Array) => {
        const keyed = await withKey(key);
        return keyed && wrapObject(prefix, keyed);
      };
    }
    return out as T;
  };
  return {
    name: base.name,
    backends: base.backends,
    randomBytes: (n) => base.randomBytes(n),
    x25519: wrapObject("x25519", base.x25519),
    ed25519: wrapObject("ed25519", base.ed25519),
    chacha20poly1305: wrapObject("chacha20poly1305", base.chacha20poly1305),
    xchacha20poly1305: wrapObject("xchacha20poly1305", base.xchacha20poly1305),
    aes256gcm: wrapObject("aes256gcm", base.aes256gcm),
    sha256: wrapFn("sha256", base.sha256),
    sha512: wrapFn("sha512", base.sha512),
    blake2s: wrapFn("blake2s", base.blake2s),
    hmacSha256: wrapFn("hmacSha256", base.hmacSha256),
    // The key imported once: its signatures are timed under "hmacSha256" too, as withKey's seals.
    ...(base.hmacSha256Key && {
      hmacSha256Key: async (key: Uint8Array) => {
        const keyed = await wrapFn("hmacSha256Key", base.hmacSha256Key!.bind(base))(key);
        return { sign: wrapFn("hmacSha256", keyed.sign.bind(keyed)) };
      },
    }),
    hmacBlake2s: wrapFn("hmacBlake2s", base.hmacBlake2s),
    hkdfSha256: wrapFn("hkdfSha256", base.hkdfSha256),
    mlkem768: wrapObject("mlkem768", base.mlkem768),
  };
}
