/**
 * This page's crypto provider, one per page: WebCrypto where the browser has the primitive
 * natively (X25519, Ed25519, AES-GCM, SHA-2, HMAC, HKDF), noble for the rest (ChaCha20-Poly1305,
 * BLAKE2s, ML-KEM), each primitive detected once (core/crypto/webcrypto.ts; docs/decisions.md,
 * "Cryptography: one async provider, carried explicitly"). The chat engine and the app's own
 * checks (stored identities, pasted contact links) share it; Settings shows its backend table.
 */
import { deferredProvider } from "../../core/crypto/compose.ts";
import { nobleCrypto } from "../../core/crypto/noble.ts";
import type { CryptoProvider, Primitive } from "../../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../../core/crypto/webcrypto.ts";

/** Detection starts when this module loads. */
const detected = createWebCryptoProvider();

/** The page's provider; calls made before detection finishes wait for it. */
export const pageCrypto: CryptoProvider = deferredProvider("webcrypto", detected);

/** Which implementation serves each primitive ("webcrypto" or "noble"), once detection is done. */
export async function pageCryptoBackends(): Promise<Readonly<Record<Primitive, string>>> {
  try {
    return (await detected).backends;
  } catch {
    return nobleCrypto.backends;
  }
}
