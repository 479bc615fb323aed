/**
 * `npm run bench:handshake-profile` — where an XX and an XXhfs+ML-KEM-768 handshake spend their
 * time, per crypto backend (noble, WebCrypto, node:crypto), in one Node process: each primitive
 * call of the provider is timed (a wrapper around the backend, nothing else changes) over many
 * complete handshakes (bench/loft-subjects.ts `handshake`, both sides in this process, empty
 * payloads, run one after the other so no two calls overlap). Per primitive: ms per handshake and
 * its share of the handshake's time; "state machine" is what no primitive accounts for (Noise's
 * own JavaScript, codecs, promise hops). Backends and patterns alternate round by round, so the
 * machine's load falls on all of them alike.
 *
 * `--json`: the last line is one JSON object; `--quick`: fewer handshakes. Method and figures:
 * bench/README.md ("bench:handshake-profile").
 */
import { nobleCrypto } from "../core/crypto/noble.ts";
import type { CryptoProvider } from "../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../core/crypto/webcrypto.ts";
import type { HandshakePattern } from "../core/noise/index.ts";
import { XX, XX_AESGCM, XX_HFS, XX_HFS_AESGCM } from "../core/noise/index.ts";
import { createNodeCryptoProvider } from "../host/crypto-node.ts";
import { JSON_OUTPUT, log, machine, QUICK } from "./harness.ts";
import { handshake } from "./loft-subjects.ts";

const ROUNDS = QUICK ? 3 : 8;
const PER_ROUND = QUICK ? 10 : 40;

/** Time spent inside each primitive (ms), summed over every call made through the wrapper. */
type Spent = Map<string, number>;

/**
 * `base` with every async primitive timed into `spent` under "<primitive>.<function>" (the
 * objects are copied, never changed; `randomBytes` is synchronous and cheap, left alone).
 */
function timed(base: CryptoProvider, spent: Spent): CryptoProvider {
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
    for (const [k, v] of Object.entries(o))
      out[k] = typeof v === "function" ? wrapFn(`${prefix}.${k}`, v.bind(o)) : v;
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
    hmacBlake2s: wrapFn("hmacBlake2s", base.hmacBlake2s),
    hkdfSha256: wrapFn("hkdfSha256", base.hkdfSha256),
    mlkem768: wrapObject("mlkem768", base.mlkem768),
  };
}

interface Profile {
  /** Whole handshakes measured. */
  handshakes: number;
  /** ms per handshake (both sides). */
  ms: number;
  /** Primitive → ms per handshake; "state machine" is the rest. */
  parts: Record<string, number>;
}

interface Case {
  key: string;
  pattern: HandshakePattern;
  crypto: CryptoProvider;
  spent: Spent;
  total: number;
  handshakes: number;
}

const providers: [string, CryptoProvider][] = [
  ["noble", nobleCrypto],
  ["webcrypto", await createWebCryptoProvider()],
  ["node", await createNodeCryptoProvider()],
];
const patterns: [string, HandshakePattern][] = [
  ["XX", XX],
  ["XXhfs", XX_HFS],
  ["XX_AESGCM", XX_AESGCM],
  ["XXhfs_AESGCM", XX_HFS_AESGCM],
];
const cases: Case[] = [];
for (const [backend, base] of providers)
  for (const [pattern, p] of patterns) {
    // The browser's pair is AES-GCM on WebCrypto; noble and node:crypto run ChaChaPoly.
    if (pattern.endsWith("AESGCM") !== (backend === "webcrypto")) continue;
    const spent: Spent = new Map();
    cases.push({
      key: `${pattern}_${backend}`,
      pattern: p,
      crypto: timed(base, spent),
      spent,
      total: 0,
      handshakes: 0,
    });
  }

for (const c of cases) await handshake(c.pattern, c.crypto); // warm-up (JIT, noble's tables)
for (const c of cases) c.spent.clear();
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? cases : [...cases].reverse();
  for (const c of order) {
    const t0 = performance.now();
    for (let i = 0; i < PER_ROUND; i++) await handshake(c.pattern, c.crypto);
    c.total += performance.now() - t0;
    c.handshakes += PER_ROUND;
  }
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const profiles: Record<string, Profile> = {};
for (const c of cases) {
  const parts: Record<string, number> = {};
  let attributed = 0;
  for (const [name, ms] of [...c.spent].sort((a, b) => b[1] - a[1])) {
    parts[name] = round2(ms / c.handshakes);
    attributed += ms;
  }
  parts["state machine"] = round2((c.total - attributed) / c.handshakes);
  profiles[c.key] = { handshakes: c.handshakes, ms: round2(c.total / c.handshakes), parts };
}

if (!JSON_OUTPUT)
  for (const [key, p] of Object.entries(profiles)) {
    log(`${key}: ${p.ms} ms per handshake (both sides), ${p.handshakes} handshakes`);
    for (const [name, ms] of Object.entries(p.parts))
      log(
        `  ${name.padEnd(28)} ${ms.toFixed(2).padStart(7)} ms  ${((100 * ms) / p.ms).toFixed(0).padStart(3)} %`,
      );
  }
const share = (key: string, prefix: string) => {
  const p = profiles[key]!;
  const ms = Object.entries(p.parts)
    .filter(([n]) => n.startsWith(prefix))
    .reduce((sum, [, v]) => sum + v, 0);
  return Math.round((1000 * ms) / p.ms) / 1000;
};
console.log(
  JSON.stringify({
    bench: "handshake-profile",
    profiles,
    mlkem_share_xxhfs_webcrypto: share("XXhfs_AESGCM_webcrypto", "mlkem768"),
    x25519_share_xxhfs_webcrypto: share("XXhfs_AESGCM_webcrypto", "x25519"),
    mlkem_share_xxhfs_node: share("XXhfs_node", "mlkem768"),
    x25519_share_xxhfs_node: share("XXhfs_node", "x25519"),
    xxhfs_vs_xx_webcrypto: round2(profiles.XX_AESGCM_webcrypto!.ms / profiles.XXhfs_AESGCM_webcrypto!.ms),
    xxhfs_vs_xx_node: round2(profiles.XX_node!.ms / profiles.XXhfs_node!.ms),
    machine: machine(),
  }),
);
