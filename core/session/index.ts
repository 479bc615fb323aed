/**
 * Authenticated sessions over any Link: version header, Noise XXhfs (or XX) with signed SREMP
 * identities, then encrypted, chunked, rekeyed transport. docs/protocol/session.md.
 */
export {
  closeFrame,
  DETACHED_EXTENSION,
  DETACHED_FRAME_OVERHEAD,
  DETACHED_TAIL_LEN,
  detachedFrameOf,
  FRAME_CHUNK,
  FRAME_CLOSE,
  FRAME_DATA,
  FRAME_DETACHED,
  FrameAssembler,
  type Inbound,
  LINK_PREFIX_LEN,
  linkMessageOf,
  MAX_CLOSE_REASON,
  MAX_DATA_PAYLOAD,
  MAX_DETACHED_MESSAGE,
  MAX_FRAME_PLAINTEXT,
  messageFrames,
  splitLinkMessage,
} from "./frames.ts";
export {
  announcesFlag,
  decodeHandshakePayload,
  EXTENSION_NAME,
  type Extensions,
  encodeHandshakePayload,
  type HandshakePayload,
  MAX_EXTENSION_BYTES,
  MAX_EXTENSIONS,
} from "./payload.ts";
export { LINK_KINDS, type LinkKind, PROLOGUE_LABEL, sessionPrologue } from "./prologue.ts";
export {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  establishSession,
  REKEY_INTERVAL,
  type SendOptions,
  Session,
  type SessionOptions,
  type SessionProtocol,
  type VersionCodec,
  verifyPeer,
} from "./session.ts";
