/**
 * A crypto provider that runs the real primitives of `base` but holds every call back by a delay
 * the test chooses (its inputs copied at the call, as WebCrypto does): operations then finish in
 * any order, as with an asynchronous backend. For properties of core's ordering rules (CipherState
 * nonces, the ratchet's per-state queue); nothing is mocked but the timing. Every function of the
 * base is there, optional ones included (`withKey`, `hmacSha256Key`, `forget`: core/crypto/
 * provider.test.ts checks it), so a caller takes the same paths as without the wrapper.
 */
import type { Aead, CryptoProvider, KeyedAead } from "../../core/crypto/provider.ts";

type AnyAsync = (...args: never[]) => Promise<unknown>;

export function jitteredProvider(base: CryptoProvider, delays: () => number): CryptoProvider {
  const hold = () => new Promise<void>((resolve) => setTimeout(resolve, delays()));
  const copy = (args: unknown[]) => args.map((a) => (a instanceof Uint8Array ? a.slice() : a));
  const wrap = <F extends AnyAsync>(f: F): F =>
    (async (...args: unknown[]) => {
      const copied = copy(args);
      await hold();
      return (f as unknown as (...a: unknown[]) => Promise<unknown>)(...copied);
    }) as unknown as F;
  const keyedAead = (keyed: KeyedAead): KeyedAead => ({
    seal: async (n, ad, p, o) => {
      const [nc, adc, pc] = [n.slice(), ad.slice(), p.slice()];
      await hold();
      return keyed.seal(nc, adc, pc, o);
    },
    open: async (n, ad, c, o) => {
      const [nc, adc, cc] = [n.slice(), ad.slice(), c.slice()];
      await hold();
      return keyed.open(nc, adc, cc, o);
    },
  });
  const aead = (a: Aead): Aead => ({
    nonceLength: a.nonceLength,
    // The output buffer is the caller's: pass it through, not a copy.
    seal: async (k, n, ad, p, o) => {
      const [kc, nc, adc, pc] = [k.slice(), n.slice(), ad.slice(), p.slice()];
      await hold();
      return a.seal(kc, nc, adc, pc, o);
    },
    open: async (k, n, ad, c, o) => {
      const [kc, nc, adc, cc] = [k.slice(), n.slice(), ad.slice(), c.slice()];
      await hold();
      return a.open(kc, nc, adc, cc, o);
    },
    // Only where the base has it: a caller then takes the same path (one import) as without jitter.
    ...(a.withKey && {
      withKey: async (k: Uint8Array) => {
        const kc = k.slice();
        await hold();
        const keyed = await a.withKey!(kc);
        return keyed && keyedAead(keyed);
      },
    }),
  });
  return {
    name: `${base.name}+jitter`,
    backends: base.backends,
    randomBytes: base.randomBytes,
    x25519: {
      publicKey: wrap(base.x25519.publicKey),
      sharedSecret: wrap(base.x25519.sharedSecret),
      // Synchronous and never throws (core/crypto/provider.ts): forwarded as it is, no delay.
      ...(base.x25519.forget && { forget: base.x25519.forget.bind(base.x25519) }),
    },
    ed25519: {
      publicKey: wrap(base.ed25519.publicKey),
      sign: wrap(base.ed25519.sign),
      verify: wrap(base.ed25519.verify),
    },
    chacha20poly1305: aead(base.chacha20poly1305),
    xchacha20poly1305: aead(base.xchacha20poly1305),
    aes256gcm: aead(base.aes256gcm),
    sha256: wrap(base.sha256),
    sha512: wrap(base.sha512),
    blake2s: wrap(base.blake2s),
    hmacSha256: wrap(base.hmacSha256),
    ...(base.hmacSha256Key && {
      hmacSha256Key: async (key: Uint8Array) => {
        const kc = key.slice();
        await hold();
        const keyed = await base.hmacSha256Key!(kc);
        return { sign: wrap(keyed.sign.bind(keyed)) };
      },
    }),
    hmacBlake2s: wrap(base.hmacBlake2s),
    hkdfSha256: wrap(base.hkdfSha256),
    mlkem768: {
      keyPairFromSeed: wrap(base.mlkem768.keyPairFromSeed),
      encapsulate: wrap(base.mlkem768.encapsulate),
      decapsulate: wrap(base.mlkem768.decapsulate),
      ...(base.mlkem768.forget && { forget: base.mlkem768.forget.bind(base.mlkem768) }),
    },
  };
}
