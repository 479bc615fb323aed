/**
 * Loft's Noise layer: `Noise_XX_25519_ChaChaPoly_BLAKE2s` and the hybrid
 * `Noise_XXhfs_25519+MLKEM768_ChaChaPoly_BLAKE2s` (Noise Protocol Framework rev 34 and the Noise
 * HFS extension rev 1). See docs/protocol/noise.md for every byte on the wire.
 */
export { CipherState } from "./cipher-state.ts";
export {
  type HandshakeConfig,
  type HandshakeRole,
  HandshakeState,
  type HandshakeStatus,
} from "./handshake-state.ts";
export {
  type HandshakePattern,
  PATTERNS,
  patternByName,
  type Token,
  XX,
  XX_HFS,
  XX_PSK3,
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
export { SymmetricState } from "./symmetric-state.ts";
export { NoiseTransport } from "./transport.ts";
export { runVector, runVectorFile, type VectorOutcome, type VectorStatus } from "./vectors.ts";
