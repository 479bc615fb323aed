/**
 * The signaling protocol's error codes and their place in Loft's one vocabulary (core/errors.ts;
 * docs/protocol/signaling.md §Error codes, docs/protocol/wire.md §Error codes).
 *
 * The server answers a refused request with `ERROR` and a short wire code; the client adds codes
 * of its own for what it sees locally (no server, no answer, a reply it cannot use). Both kinds
 * form one closed union, `SignalingClientErrorCode`, and each maps to one stable `LOFT_ERR_*`
 * code in the table below — the only place the two vocabularies meet. Codes every layer shares
 * (malformed, unknown type, bad identity, bad signature, unsupported version) map to the shared
 * `LoftErrorCode`; the rest are `LOFT_ERR_SIGNALING_*`, one each, so the table can be read
 * backwards for the server's replies.
 */
import { LoftError, type LoftErrorCode } from "../errors.ts";
import { SIGNALING_ERROR_CODES, type SignalingErrorCode } from "../wire/signaling.ts";

/**
 * Codes the client reports that never travel on the wire: `UNRECOGNIZED` stands for an `ERROR`
 * code this client does not know (a newer server); the error's message keeps the server's code.
 */
export const SIGNALING_CLIENT_ONLY_CODES = [
  "UNREACHABLE",
  "TIMEOUT",
  "CLOSED",
  "PROTOCOL",
  "UNSUPPORTED_VERSION",
  "BAD_PEER_IDENTITY",
  "REPLACED",
  "UNRECOGNIZED",
] as const;
export type SignalingClientOnlyCode = (typeof SIGNALING_CLIENT_ONLY_CODES)[number];

/** Every signaling name a failure has (`LoftError.wire`): the server's `ERROR` codes plus the client's own. */
export type SignalingClientErrorCode = SignalingErrorCode | SignalingClientOnlyCode;

/** The one table: signaling code → `LoftErrorCode`. */
export const SIGNALING_TO_LOFT: Readonly<Record<SignalingClientErrorCode, LoftErrorCode>> = {
  // on the wire (ERROR.code)
  MALFORMED: "LOFT_ERR_MALFORMED",
  UNKNOWN_TYPE: "LOFT_ERR_UNKNOWN_TYPE",
  BAD_IDENTITY: "LOFT_ERR_BAD_IDENTITY",
  BAD_SIGNATURE: "LOFT_ERR_BAD_SIGNATURE",
  STALE_TIMESTAMP: "LOFT_ERR_SIGNALING_STALE_TIMESTAMP",
  WRONG_AUDIENCE: "LOFT_ERR_SIGNALING_WRONG_AUDIENCE",
  REPLAY: "LOFT_ERR_SIGNALING_REPLAY",
  BAD_CHALLENGE: "LOFT_ERR_SIGNALING_BAD_CHALLENGE",
  NOT_REGISTERED: "LOFT_ERR_SIGNALING_NOT_REGISTERED",
  ALREADY_REGISTERED: "LOFT_ERR_SIGNALING_ALREADY_REGISTERED",
  STALE_IDENTITY: "LOFT_ERR_SIGNALING_STALE_IDENTITY",
  FROM_MISMATCH: "LOFT_ERR_SIGNALING_FROM_MISMATCH",
  PEER_OFFLINE: "LOFT_ERR_SIGNALING_PEER_OFFLINE",
  PAYLOAD_TOO_LARGE: "LOFT_ERR_SIGNALING_PAYLOAD_TOO_LARGE",
  RATE_LIMITED: "LOFT_ERR_SIGNALING_RATE_LIMITED",
  REGISTRY_FULL: "LOFT_ERR_SIGNALING_REGISTRY_FULL",
  SOURCE_LIMIT: "LOFT_ERR_SIGNALING_SOURCE_LIMIT",
  BUSY: "LOFT_ERR_SIGNALING_BUSY",
  TOO_MANY_SUBSCRIPTIONS: "LOFT_ERR_SIGNALING_TOO_MANY_SUBSCRIPTIONS",
  LIST_ALL_DISABLED: "LOFT_ERR_SIGNALING_LIST_ALL_DISABLED",
  INTERNAL: "LOFT_ERR_SIGNALING_INTERNAL",
  ROOM_FULL: "LOFT_ERR_SIGNALING_ROOM_FULL",
  TOO_MANY_ROOMS: "LOFT_ERR_SIGNALING_TOO_MANY_ROOMS",
  UNAVAILABLE: "LOFT_ERR_SIGNALING_UNAVAILABLE",
  // the client's own
  UNREACHABLE: "LOFT_ERR_SIGNALING_UNREACHABLE",
  TIMEOUT: "LOFT_ERR_SIGNALING_TIMEOUT",
  CLOSED: "LOFT_ERR_SIGNALING_CLOSED",
  PROTOCOL: "LOFT_ERR_SIGNALING_PROTOCOL",
  UNSUPPORTED_VERSION: "LOFT_ERR_UNSUPPORTED_VERSION",
  BAD_PEER_IDENTITY: "LOFT_ERR_SIGNALING_BAD_PEER_IDENTITY",
  REPLACED: "LOFT_ERR_SIGNALING_REPLACED",
  UNRECOGNIZED: "LOFT_ERR_SIGNALING_UNRECOGNIZED",
};

const WIRE_CODES: ReadonlySet<string> = new Set(SIGNALING_ERROR_CODES);

/** Whether `code` is an `ERROR` code of this protocol version. */
export const isSignalingWireCode = (code: string): code is SignalingErrorCode => WIRE_CODES.has(code);

/** The client's code for an `ERROR` frame's code: itself if known, else `UNRECOGNIZED`. */
export const signalingCodeOfWire = (code: string): SignalingClientErrorCode =>
  isSignalingWireCode(code) ? code : "UNRECOGNIZED";

const LOFT_TO_WIRE = new Map<LoftErrorCode, SignalingErrorCode>(
  SIGNALING_ERROR_CODES.map((wire) => [SIGNALING_TO_LOFT[wire], wire]),
);

/**
 * The `ERROR` code the server answers a failure with: the table read backwards; a failure with no
 * wire code of its own (a decoder's schema, size or padding error) is `MALFORMED`.
 */
export const signalingWireFor = (code: LoftErrorCode): SignalingErrorCode =>
  LOFT_TO_WIRE.get(code) ?? "MALFORMED";

/** A signaling failure: `code` from the table, `wire` the signaling name. */
export const signalingError = (wire: SignalingClientErrorCode, message: string): LoftError =>
  new LoftError(SIGNALING_TO_LOFT[wire], message, wire);

/**
 * An `ERROR` frame as a failure. A code this client does not know (a newer server, or garbage)
 * becomes `LOFT_ERR_SIGNALING_UNRECOGNIZED`, never a crash; `wire` keeps what the server sent.
 */
export const signalingErrorOfWire = (wire: string, message: string): LoftError =>
  new LoftError(SIGNALING_TO_LOFT[signalingCodeOfWire(wire)], message, wire);
