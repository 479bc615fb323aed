/**
 * Double Ratchet with header encryption (Signal DR revision 1, §4): public API of core/ratchet.
 * Protocol details, byte layouts and limits: docs/protocol/ratchet.md.
 */
export {
  RATCHET_EXPORT_LABEL,
  type RatchetFromHandshakeParams,
  ratchetAssociatedData,
  ratchetFromHandshake,
} from "./bootstrap.ts";
export {
  RATCHET_ID_BYTES,
  RATCHET_ID_LABEL,
  type RatchetPeerKey,
  ratchetFromSession,
  ratchetIdOf,
  type SessionRatchet,
} from "./from-session.ts";
export { type BootstrapKeys, kdfChain, kdfRoot, splitBootstrapSecret } from "./kdf.ts";
export {
  ENCRYPTED_HEADER_LEN,
  GCM_NONCE_LEN,
  HEADER_LEN,
  isMessageVersion,
  MAX_MESSAGE_LEN,
  MESSAGE_PREFIX_LEN,
  MESSAGE_VERSION,
  MESSAGE_VERSION_2,
  MESSAGE_VERSION_3,
  type MessageVersion,
  MIN_MESSAGE_LEN,
  NONCE_LEN,
  type SealedParts,
  TAG_LEN,
} from "./message.ts";
export {
  BODY_FAILED,
  BodyFailureError,
  canSend,
  type DecryptBatchResult,
  type DecryptResult,
  type EncryptBatchResult,
  type EncryptPartsResult,
  type EncryptResult,
  expireSkippedKeys,
  generateRatchetKeyPair,
  type InitAliceParams,
  type InitBobParams,
  initAlice,
  initBob,
  isBodyFailure,
  type RandomBytes,
  type RatchetFromSecretParams,
  type RatchetKeyPair,
  type RatchetOptions,
  ratchetDecrypt,
  ratchetDecryptBatch,
  ratchetEncrypt,
  ratchetEncryptBatch,
  ratchetEncryptParts,
  ratchetFromSecret,
} from "./ratchet.ts";
export {
  DEFAULT_RATCHET_LIMITS,
  deserializeRatchet,
  LIMITS_CEILING,
  MAX_SKIPPED_CHAINS,
  RATCHET_STATE_VERSION,
  type RatchetLimits,
  type RatchetState,
  type SkippedMessageKey,
  serializeRatchet,
  wipeRatchetState,
} from "./state.ts";
