/**
 * The relay mailbox client API for the PWA (docs/protocol/relay.md): connect over a WebSocket,
 * manage queues, send, receive, publish and fetch prekey bundles, and run live links.
 */

export { isLoftError, LoftError } from "../errors.ts";
export {
  type PrekeyFetch,
  type RecipientQueue,
  RelayClient,
  type RelayClientOptions,
  type RelayHello,
  type RelayMessage,
  type SenderQueue,
} from "./client.ts";
export { authPublicKey, deriveRcvKey, newAuthKeyPair, type OpenedMessage, openFromRelay } from "./crypto.ts";
export {
  codeForWire,
  type RelayErrorCode,
  type RelayOnlyErrorCode,
  type WireErrorCode,
} from "./errors.ts";
export { RelayLink, type RelayLinkOptions } from "./live-link.ts";
export { BLOCK_SIZE, MAX_BODY, MAX_BUNDLE, MAX_OTK } from "./protocol.ts";
export { type WebSocketLike, WebSocketLink } from "./ws-link.ts";
