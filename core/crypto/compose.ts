/**
 * Build a provider from a backend's native primitives, primitive by primitive: each one is
 * checked against noble on known answers (self-test.ts) and kept only if it agrees; every
 * primitive the backend lacks or fails falls back to noble. `backends` then says which
 * implementation serves what (for /health and the benchmarks).
 */
import { nobleCrypto } from "./noble.ts";
import { type Aead, type CryptoProvider, keyedHmacSha256, PRIMITIVES, type Primitive } from "./provider.ts";
import { agreesWithNoble } from "./self-test.ts";

type Parts = Omit<CryptoProvider, "name" | "backends" | "randomBytes" | "hmacSha256Key">;

/** What a backend implements natively; `random` is `randomBytes`, the rest keep their names. */
export type NativeParts = Partial<
  Parts & { random: CryptoProvider["randomBytes"]; hmacSha256Key: CryptoProvider["hmacSha256Key"] }
>;

/**
 * `base` with `primitive` from `native`. `hmacSha256Key` belongs to `hmacSha256`: it comes with
 * it from the same backend (and is checked with it, self-test.ts), or is noble's.
 */
function withPart(base: CryptoProvider, primitive: Primitive, native: NativeParts): CryptoProvider {
  if (primitive === "random") return { ...base, randomBytes: native.random! };
  if (primitive === "hmacSha256")
    return {
      ...base,
      hmacSha256: native.hmacSha256!,
      hmacSha256Key: native.hmacSha256Key ?? nobleCrypto.hmacSha256Key!,
    };
  return { ...base, [primitive]: native[primitive] } as CryptoProvider;
}

/**
 * A provider named `name` whose primitives come from `native` where they pass the known-answer
 * check, and from noble otherwise. `label` names the native implementation in `backends`.
 */
export async function composeProvider(
  name: string,
  label: string,
  native: NativeParts,
): Promise<CryptoProvider> {
  let provider: CryptoProvider = nobleCrypto;
  const backends = { ...nobleCrypto.backends } as Record<Primitive, string>;
  const results = await Promise.all(
    PRIMITIVES.map(async (primitive) => {
      const part = native[primitive];
      if (part === undefined) return false;
      return agreesWithNoble(primitive, withPart(nobleCrypto, primitive, native));
    }),
  );
  PRIMITIVES.forEach((primitive, i) => {
    if (!results[i]) return;
    provider = withPart(provider, primitive, native);
    backends[primitive] = label;
  });
  return Object.freeze({ ...provider, name, backends: Object.freeze(backends) });
}

/** One line for logs and /health: `x25519=node ed25519=node … mlkem768=noble`. */
export function describeBackends(provider: CryptoProvider): string {
  return PRIMITIVES.map((p) => `${p}=${provider.backends[p]}`).join(" ");
}

/**
 * A provider usable at once whose calls go to `ready` once it has resolved (and wait for it until
 * then): lets a synchronous composition root (the PWA's engine factory) hand over the WebCrypto
 * provider while its per-primitive detection still runs. `backends` reads noble's until then.
 * If `ready` rejects, noble serves everything.
 */
export function deferredProvider(name: string, ready: Promise<CryptoProvider>): CryptoProvider {
  let current: CryptoProvider | undefined;
  const settled = ready.then(
    (p) => {
      current = p;
      return p;
    },
    () => {
      current = nobleCrypto;
      return nobleCrypto;
    },
  );
  const get = (): CryptoProvider | Promise<CryptoProvider> => current ?? settled;
  // Once `ready` has resolved, a call goes straight to the provider (no await of its own: the
  // ratchet and the Noise transport make several calls per message, and an extra promise turn
  // each adds up); a synchronous throw still comes back as a rejection, as from an async call.
  const call =
    <A extends unknown[], R>(pick: (p: CryptoProvider) => (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      if (current === undefined) return settled.then((p) => pick(p)(...args));
      try {
        return pick(current)(...args);
      } catch (e) {
        return Promise.reject(e);
      }
    };
  const aead = (pick: (p: CryptoProvider) => Aead, nonceLength: number): Aead => ({
    nonceLength,
    seal: call((p) => pick(p).seal),
    open: call((p) => pick(p).open),
    withKey: async (key) => {
      const a = pick(await get());
      return a.withKey ? a.withKey(key) : undefined;
    },
  });
  return {
    name,
    get backends() {
      return (current ?? nobleCrypto).backends;
    },
    randomBytes: (length) => (current ?? nobleCrypto).randomBytes(length),
    x25519: {
      publicKey: call((p) => p.x25519.publicKey),
      sharedSecret: call((p) => p.x25519.sharedSecret),
      // A call still waiting for the provider may make a handle after this: forgotten once it is there.
      forget: (privateKey) => {
        if (current) current.x25519.forget?.(privateKey);
        else void settled.then((p) => p.x25519.forget?.(privateKey));
      },
    },
    ed25519: {
      publicKey: call((p) => p.ed25519.publicKey),
      sign: call((p) => p.ed25519.sign),
      verify: call((p) => p.ed25519.verify),
    },
    chacha20poly1305: aead((p) => p.chacha20poly1305, 12),
    xchacha20poly1305: aead((p) => p.xchacha20poly1305, 24),
    aes256gcm: aead((p) => p.aes256gcm, 12),
    sha256: call((p) => p.sha256),
    sha512: call((p) => p.sha512),
    blake2s: call((p) => p.blake2s),
    hmacSha256: call((p) => p.hmacSha256),
    hmacSha256Key: async (key) => keyedHmacSha256(await get(), key),
    hmacBlake2s: call((p) => p.hmacBlake2s),
    hkdfSha256: call((p) => p.hkdfSha256),
    mlkem768: {
      keyPairFromSeed: call((p) => p.mlkem768.keyPairFromSeed),
      encapsulate: call((p) => p.mlkem768.encapsulate),
      decapsulate: call((p) => p.mlkem768.decapsulate),
      forget: (secretKey) => {
        if (current) current.mlkem768.forget?.(secretKey);
        else void settled.then((p) => p.mlkem768.forget?.(secretKey));
      },
    },
  };
}
