/**
 * Offline first contact (PQXDH-style, Signal PQXDH rev 2 adapted to SREMP identities): public API
 * of core/prekey. Protocol details and byte layouts: docs/protocol/prekeys.md.
 */
export {
  decodePrekeyBundle,
  encodePrekeyBundle,
  KEM_CIPHERTEXT_LEN,
  KEM_PUBLIC_KEY_LEN,
  MAX_BUNDLE_LEN,
  MAX_ONE_TIME_KEM_PREKEYS,
  MAX_ONE_TIME_PREKEYS,
  type OneTimePrekeyPublic,
  PREKEY_BUNDLE_VERSION,
  PREKEY_SIGNATURE_CONTEXT,
  type PrekeyBundle,
  PrekeyKind,
  parsePrekeyBundle,
  prekeySignaturePayload,
  type SignedPrekeyPublic,
} from "./bundle.ts";
export {
  type AcceptedSession,
  type AcceptInitialMessageParams,
  acceptInitialMessage,
  decodeInitialMessage,
  encodeInitialMessage,
  INITIAL_MESSAGE_VERSION,
  type InitialHeader,
  type InitialMessage,
  type InitiatedSession,
  type InitiateSessionParams,
  initiateSession,
  MAX_INITIAL_MESSAGE_LEN,
} from "./pqxdh.ts";
export {
  type CreatePrekeyStoreParams,
  createPrekeyStore,
  DEFAULT_ONE_TIME_KEM_PREKEYS,
  DEFAULT_ONE_TIME_PREKEYS,
  deserializePrekeyStore,
  MAX_SEEN_BASE_KEYS,
  MAX_SIGNED_GENERATIONS,
  PREKEY_STORE_VERSION,
  type PrekeyStore,
  prekeyBundle,
  type ReplenishParams,
  type RotateParams,
  replenishOneTimePrekeys,
  rotateSignedPrekeys,
  serializePrekeyStore,
} from "./store.ts";
