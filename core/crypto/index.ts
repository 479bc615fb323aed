/**
 * Loft's crypto provider seam (provider.ts) and its isomorphic backends: noble (the reference and
 * the fallback) and WebCrypto (detected per primitive). The node:crypto backend is outside core,
 * in host/crypto-node.ts.
 */
export { composeProvider, deferredProvider, describeBackends, type NativeParts } from "./compose.ts";
export { ed25519StrictInputs } from "./ed25519-strict.ts";
export { nobleCrypto } from "./noble.ts";
export {
  type Aead,
  type CryptoProvider,
  type Ed25519,
  type MlKem768,
  PRIMITIVES,
  type Primitive,
  type X25519,
} from "./provider.ts";
export { agreesWithNoble } from "./self-test.ts";
export {
  createWebCryptoProvider,
  platformWebCrypto,
  type SubtleLike,
  type WebCryptoLike,
  webCryptoParts,
} from "./webcrypto.ts";
