/**
 * Loft's Noise layer: `Noise_XX_25519_ChaChaPoly_BLAKE2s` and the hybrid
 * `Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s`, and both with `AESGCM_SHA256` (Noise Protocol
 * Framework rev 34 and the Noise HFS extension rev 1). See docs/protocol/noise.md for every byte on the wire.
 */
export { CipherState } from "./cipher-state.ts";
export {
  type HandshakeConfig,
  type HandshakeRole,
  HandshakeState,
  type HandshakeStatus,
  type PreparedEphemerals,
  prepareEphemerals,
  wipeEphemerals,
} from "./handshake-state.ts";
export {
  type HandshakePattern,
  PATTERNS,
  patternByName,
  type Token,
  withSuite,
  XX,
  XX_AESGCM,
  XX_HFS,
  XX_HFS_AESGCM,
  XX_PSK3,
  XX_PSK3_AESGCM,
} from "./patterns.ts";
export {
  DHLEN,
  generateKeyPair,
  HASHLEN,
  KEM_CIPHERTEXT_LEN,
  KEM_PUBLIC_KEY_LEN,
  type KeyPair,
  keyPairFromPrivate,
  MAX_MESSAGE_LEN,
  type NoiseEntropy,
  providerEntropy,
  systemEntropy,
  TAGLEN,
} from "./primitives.ts";
export {
  AESGCM_SHA256,
  CHACHAPOLY_BLAKE2S,
  type NoiseSuite,
  SUITE_NAMES,
  type SuiteName,
  suiteByName,
  suiteOf,
} from "./suite.ts";
export { SymmetricState } from "./symmetric-state.ts";
export { NoiseTransport } from "./transport.ts";
export { runVector, runVectorFile, type VectorOutcome, type VectorStatus } from "./vectors.ts";
