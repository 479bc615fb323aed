/**
 * This page's crypto provider, one per page: WebCrypto where the browser has the primitive
 * natively (X25519, Ed25519, AES-GCM, SHA-2, HMAC, HKDF), noble for the rest (ChaCha20-Poly1305,
 * BLAKE2s, ML-KEM), each primitive detected once (core/crypto/webcrypto.ts; docs/decisions.md,
 * "Cryptography: one async provider, carried explicitly"). The chat engine and the app's own
 * checks (stored identities, pasted contact links) share it; Settings → About shows `backends`.
 */
import { deferredProvider } from "../../core/crypto/compose.ts";
import type { CryptoProvider } from "../../core/crypto/provider.ts";
import { createWebCryptoProvider } from "../../core/crypto/webcrypto.ts";

/** Detection starts when this module loads; calls made before it finishes wait for it. */
export const pageCrypto: CryptoProvider = deferredProvider("webcrypto", createWebCryptoProvider());
