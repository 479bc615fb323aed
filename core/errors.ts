/**
 * Loft's one error vocabulary: typed errors with stable codes, shared by every decoder and state
 * machine in core/, the relay client and server, the signaling client and server, and the engine.
 *
 * Style follows `ws` (lib/receiver.js): every protocol violation has a stable code
 * (`LOFT_ERR_*`) that servers map to a reply or a close code and that tests name one by one.
 * Nothing in core/ throws anything else across its public API for bad *input*; programming
 * errors (wrong key length passed by our own code) still throw plain errors at the call.
 *
 * `LoftErrorCode` is closed: a new failure class is added here, then mapped to its wire code in
 * the one table of its protocol — relay `ERR` codes in core/relay/errors.ts, signaling `ERROR`
 * codes in core/signaling/errors.ts — and given words for people in web/src/engine/errors.ts.
 * The full table is in docs/protocol/wire.md §Error codes.
 */

export type LoftErrorCode =
  // wire / codecs
  | "LOFT_ERR_MALFORMED"
  | "LOFT_ERR_SCHEMA"
  | "LOFT_ERR_FRAME_TOO_LARGE"
  | "LOFT_ERR_UNSUPPORTED_VERSION"
  | "LOFT_ERR_UNKNOWN_TYPE"
  | "LOFT_ERR_CHUNK_LIMIT"
  | "LOFT_ERR_CHUNK_TIMEOUT"
  | "LOFT_ERR_PADDING"
  // identity
  | "LOFT_ERR_BAD_SIGNATURE"
  | "LOFT_ERR_BAD_IDENTITY"
  // noise / handshake
  | "LOFT_ERR_DECRYPT"
  | "LOFT_ERR_NONCE_EXHAUSTED"
  | "LOFT_ERR_HANDSHAKE_STATE"
  | "LOFT_ERR_HANDSHAKE_IDENTITY"
  | "LOFT_ERR_NOISE_KEY_MISMATCH"
  | "LOFT_ERR_LINK_CLOSED"
  | "LOFT_ERR_TIMEOUT"
  // ratchet
  | "LOFT_ERR_REPLAY"
  | "LOFT_ERR_TOO_MANY_SKIPPED"
  | "LOFT_ERR_STATE_VERSION"
  // prekeys: a bundle without a signed creation time, or outside the accepted window
  | "LOFT_ERR_STALE_PREKEY"
  // relay mailbox (docs/protocol/relay.md §Errors; wire codes mapped in core/relay/errors.ts)
  | "LOFT_ERR_RELAY_AUTH"
  | "LOFT_ERR_RELAY_QUOTA"
  | "LOFT_ERR_RELAY_FULL"
  | "LOFT_ERR_RELAY_NO_MSG"
  | "LOFT_ERR_RELAY_PROHIBITED"
  | "LOFT_ERR_RELAY_DUPLICATE"
  | "LOFT_ERR_RELAY_LIMIT"
  | "LOFT_ERR_RELAY_RATE"
  | "LOFT_ERR_RELAY_SOURCE_RATE"
  | "LOFT_ERR_RELAY_STORE_RATE"
  | "LOFT_ERR_RELAY_NO_BUNDLE"
  | "LOFT_ERR_RELAY_INTERNAL"
  | "LOFT_ERR_RELAY_UNAVAILABLE"
  | "LOFT_ERR_RELAY_UNEXPECTED"
  // an ERR code this client does not know (a newer relay): `LoftError.wire` keeps it
  | "LOFT_ERR_RELAY_UNRECOGNIZED"
  // signaling (docs/protocol/signaling.md §Error codes; wire codes mapped in core/signaling/errors.ts)
  | "LOFT_ERR_SIGNALING_STALE_TIMESTAMP"
  | "LOFT_ERR_SIGNALING_WRONG_AUDIENCE"
  | "LOFT_ERR_SIGNALING_REPLAY"
  | "LOFT_ERR_SIGNALING_BAD_CHALLENGE"
  | "LOFT_ERR_SIGNALING_NOT_REGISTERED"
  | "LOFT_ERR_SIGNALING_ALREADY_REGISTERED"
  | "LOFT_ERR_SIGNALING_STALE_IDENTITY"
  | "LOFT_ERR_SIGNALING_FROM_MISMATCH"
  | "LOFT_ERR_SIGNALING_PEER_OFFLINE"
  | "LOFT_ERR_SIGNALING_PAYLOAD_TOO_LARGE"
  | "LOFT_ERR_SIGNALING_RATE_LIMITED"
  | "LOFT_ERR_SIGNALING_REGISTRY_FULL"
  | "LOFT_ERR_SIGNALING_SOURCE_LIMIT"
  | "LOFT_ERR_SIGNALING_BUSY"
  | "LOFT_ERR_SIGNALING_TOO_MANY_SUBSCRIPTIONS"
  | "LOFT_ERR_SIGNALING_LIST_ALL_DISABLED"
  | "LOFT_ERR_SIGNALING_INTERNAL"
  | "LOFT_ERR_SIGNALING_ROOM_FULL"
  | "LOFT_ERR_SIGNALING_TOO_MANY_ROOMS"
  | "LOFT_ERR_SIGNALING_UNAVAILABLE"
  // signaling, client side: never on the wire
  | "LOFT_ERR_SIGNALING_UNREACHABLE"
  | "LOFT_ERR_SIGNALING_TIMEOUT"
  | "LOFT_ERR_SIGNALING_CLOSED"
  | "LOFT_ERR_SIGNALING_PROTOCOL"
  | "LOFT_ERR_SIGNALING_BAD_PEER_IDENTITY"
  | "LOFT_ERR_SIGNALING_REPLACED"
  | "LOFT_ERR_SIGNALING_UNRECOGNIZED";

/**
 * A failure with its stable code. `code` is always a `LoftErrorCode`: programs branch on it, and
 * it is the same whichever layer failed. `wire` is the code as the protocol spelled it, for the
 * failures that have one: a relay `ERR` code or a signaling `ERROR` code as the server sent it
 * (an unknown one kept verbatim, while `code` says UNRECOGNIZED), or the signaling client's own
 * name for a local failure (`UNREACHABLE`, `TIMEOUT`…). Decoders of Loft's own formats leave it
 * undefined. See docs/decisions.md "One error vocabulary".
 */
export class LoftError extends Error {
  readonly code: LoftErrorCode;
  readonly wire: string | undefined;
  /**
   * What failed, without the code: the `message` argument as given. `message` is `code: detail`
   * for people and logs; code that re-words or re-wraps a failure takes `code` and `detail`
   * rather than cutting the code off `message`.
   */
  readonly detail: string;
  constructor(code: LoftErrorCode, message: string, wire?: string) {
    super(`${code}: ${message}`);
    this.name = "LoftError";
    this.code = code;
    this.wire = wire;
    this.detail = message;
  }
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: LoftError };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const err = <T = never>(code: LoftErrorCode, message: string): Result<T> => ({
  ok: false,
  error: new LoftError(code, message),
});

export const isLoftError = (e: unknown): e is LoftError => e instanceof LoftError;

/**
 * What failed, in words, without a code in front: a LoftError's `detail`, an Error's `message`, a
 * thrown string itself. Anything else thrown (a bug, or a `Link` that rejects with no Error) is
 * named by its type, never by its value (`what` names who threw it) — reading `.message` of
 * `undefined` would throw.
 */
export const detailOf = (e: unknown, what = "it"): string =>
  isLoftError(e)
    ? e.detail
    : e instanceof Error
      ? e.message
      : typeof e === "string"
        ? e
        : `${what} failed with a value of type ${e === null ? "null" : typeof e}`;
