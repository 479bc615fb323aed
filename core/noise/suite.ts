/**
 * Noise cipher and hash suites (Noise Protocol Framework rev 34, §12): the part of a protocol name
 * after the DH section — `ChaChaPoly_BLAKE2s` (Loft's original suite, pure JavaScript in every
 * browser) and `AESGCM_SHA256` (hardware AES and SHA-256 through WebCrypto or node:crypto). The
 * handshake reads the suite from its protocol name (`suiteOf`), so a pattern names one exactly
 * (`withSuite`). Negotiation between peers: docs/protocol/noise.md, "Cipher suites".
 */
import { concatBytes } from "../bytes.ts";
import type { Aead, CryptoProvider } from "../crypto/provider.ts";

export type SuiteName = "ChaChaPoly_BLAKE2s" | "AESGCM_SHA256";

/** Loft's suites, in its order of preference where AES-GCM is native. */
export const SUITE_NAMES: readonly SuiteName[] = ["AESGCM_SHA256", "ChaChaPoly_BLAKE2s"];

export interface NoiseSuite {
  readonly name: SuiteName;
  /** Noise §4.2 `ENCRYPT` / `DECRYPT` (12-byte nonce, 16-byte tag). */
  aead(crypto: CryptoProvider): Aead;
  /** The 96-bit nonce for counter `n` (split into its low and high 32 bits), written into `out`. */
  writeNonce(out: Uint8Array, lo: number, hi: number): void;
  /** Noise §4.3 `HASH` of the concatenation of `parts` (HASHLEN = 32 for both suites). */
  hash(crypto: CryptoProvider, ...parts: Uint8Array[]): Promise<Uint8Array>;
  /** Noise §4.3 `HMAC-HASH` (RFC 2104; BLOCKLEN = 64 for both suites). */
  hmac(crypto: CryptoProvider, key: Uint8Array, ...parts: Uint8Array[]): Promise<Uint8Array>;
}

/** Noise §12.3: 32 zero bits ‖ 64-bit little-endian n. */
function littleEndianNonce(out: Uint8Array, lo: number, hi: number): void {
  out[4] = lo & 0xff;
  out[5] = (lo >>> 8) & 0xff;
  out[6] = (lo >>> 16) & 0xff;
  out[7] = lo >>> 24;
  out[8] = hi & 0xff;
  out[9] = (hi >>> 8) & 0xff;
  out[10] = (hi >>> 16) & 0xff;
  out[11] = hi >>> 24;
}

/** Noise §12.4: 32 zero bits ‖ 64-bit big-endian n. */
function bigEndianNonce(out: Uint8Array, lo: number, hi: number): void {
  out[4] = hi >>> 24;
  out[5] = (hi >>> 16) & 0xff;
  out[6] = (hi >>> 8) & 0xff;
  out[7] = hi & 0xff;
  out[8] = lo >>> 24;
  out[9] = (lo >>> 16) & 0xff;
  out[10] = (lo >>> 8) & 0xff;
  out[11] = lo & 0xff;
}

/** Noise §12.3 ChaChaPoly (RFC 8439) and §12.7 BLAKE2s. */
export const CHACHAPOLY_BLAKE2S: NoiseSuite = Object.freeze({
  name: "ChaChaPoly_BLAKE2s",
  aead: (crypto: CryptoProvider) => crypto.chacha20poly1305,
  writeNonce: littleEndianNonce,
  hash: (crypto: CryptoProvider, ...parts: Uint8Array[]) => crypto.blake2s(...parts),
  hmac: (crypto: CryptoProvider, key: Uint8Array, ...parts: Uint8Array[]) =>
    crypto.hmacBlake2s(key, ...parts),
});

/** Noise §12.4 AESGCM (AES-256-GCM, 128-bit tag) and §12.5 SHA256. */
export const AESGCM_SHA256: NoiseSuite = Object.freeze({
  name: "AESGCM_SHA256",
  aead: (crypto: CryptoProvider) => crypto.aes256gcm,
  writeNonce: bigEndianNonce,
  hash: (crypto: CryptoProvider, ...parts: Uint8Array[]) =>
    crypto.sha256(parts.length === 1 ? parts[0]! : concatBytes(...parts)),
  hmac: (crypto: CryptoProvider, key: Uint8Array, ...parts: Uint8Array[]) => crypto.hmacSha256(key, ...parts),
});

const SUITES: Record<SuiteName, NoiseSuite> = {
  ChaChaPoly_BLAKE2s: CHACHAPOLY_BLAKE2S,
  AESGCM_SHA256,
};

export function suiteByName(name: string): NoiseSuite | undefined {
  return Object.hasOwn(SUITES, name) ? SUITES[name as SuiteName] : undefined;
}

/** The suite a full protocol name ends with (`Noise_XX_25519_AESGCM_SHA256` → AESGCM_SHA256). */
export function suiteOf(protocolName: string): NoiseSuite | undefined {
  for (const name of SUITE_NAMES) if (protocolName.endsWith(`_${name}`)) return SUITES[name];
  return undefined;
}
