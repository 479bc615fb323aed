/**
 * Why a link attempt or a session ended, and what the engine does about it: one typed table,
 * `CLOSE_REASONS`, with one row per reason — is it quiet (on purpose: no retry, no error shown),
 * does it mean the *peer* left on purpose (no redial at once), does it say the direct path failed
 * (a case for the relay), and what to tell a person (web/src/engine/api.ts, `EngineError`).
 *
 * Reasons are the engine's own close reasons and the stable codes the layers below close links
 * with: `LoftErrorCode`s (core/errors.ts, from core/session and the relay client), signaling codes
 * (core/signaling/errors.ts), the WebRTC link's ERR_* codes (web/src/net/webrtc-link.ts `WEBRTC_ERRORS`) and web/src/net/direct.ts's reasons. A
 * reason not in the table is an internal failure. Messages never include secrets or
 * server-supplied text.
 */
import type { LoftErrorCode } from "../../../core/errors.ts";
import { isTemporaryRefusal, type RelayOnlyErrorCode } from "../../../core/relay/errors.ts";
import type { EngineError, VerificationCheck } from "./api.ts";

/** What a description may use besides the reason itself. */
export interface FailureContext {
  /** The close reason or error code as given. */
  readonly reason: string;
  /** The contact's username. */
  readonly name: string;
  readonly detail?: string;
  /** We hold the contact's address (docs/protocol/mailbox.md): a message can reach them as a request. */
  readonly canRequest: boolean;
}

export interface CloseRule {
  /** Ends a session on purpose: no retry, no error shown. */
  readonly quiet: boolean;
  /** The peer gives this reason when it closes on purpose (`remote-closed` detail): no redial at once. */
  readonly peerOnPurpose: boolean;
  /** A direct attempt that closed with it failed on the path (a case for the relay). */
  readonly pathFailure: boolean;
  /** In words a person understands. */
  readonly describe: (c: FailureContext) => EngineError;
}

function verification(check: VerificationCheck, message: string): EngineError {
  return { kind: "verification-failed", check, message };
}

/**
 * Said when the relay rations what a connection or a network address may send and store
 * (core/relay/errors.ts `isTemporaryRefusal`, docs/operations-relay.md §Limits) and refused us for
 * now: nothing is lost, messages stay queued and are sent again after a pause
 * (web/src/engine/relay-mailbox.ts, core/relay/live-link.ts).
 */
export const RELAY_BUSY_MESSAGE = "The relay is busy; Loft will try again shortly.";

const internal = ({ reason, name, detail }: FailureContext): EngineError => ({
  kind: "internal",
  message: `The connection to ${name} failed.`,
  ...(detail || reason ? { detail: `${reason}${detail ? `: ${detail}` : ""}` } : {}),
});

const badSignature = ({ name }: FailureContext) =>
  verification(
    "identity-signature",
    `Verification failed: the identity presented as ${name} has an invalid signature. The connection was dropped before any message went over it.`,
  );

const badHandshake = ({ name }: FailureContext) =>
  verification(
    "handshake",
    `Verification failed: the secure handshake with ${name} did not complete (it was altered in transit or the other app is incompatible). The connection was dropped before any message went over it.`,
  );

const noDirectPath = ({ name }: FailureContext): EngineError => ({
  kind: "peer-offline",
  message: `No direct connection to ${name} could be made. Messages wait on this device.`,
});

const tooSlow = ({ name }: FailureContext): EngineError => ({
  kind: "peer-offline",
  message: `${name} did not finish connecting in time. Retrying…`,
});

const wentOffline = ({ name }: FailureContext): EngineError => ({
  kind: "peer-offline",
  message: `${name} went offline.`,
});

const signalingDown = (): EngineError => ({
  kind: "signaling-unreachable",
  url: "",
  message: "The signaling server can't be reached. Retrying…",
});

const relayDown = ({ name }: FailureContext): EngineError => ({
  kind: "peer-offline",
  message: `No connection to ${name} could be made, directly or through the relay. Retrying…`,
});

/** A live link through the relay gave up after its bounded retries of a rate refusal (core/relay/live-link.ts). */
const relayBusy = ({ name }: FailureContext): EngineError => ({
  kind: "peer-offline",
  message: `${RELAY_BUSY_MESSAGE} Messages to ${name} stay queued.`,
});

/** A row: a description, and the flags that differ from "not quiet, not on purpose, not the path". */
const row = (
  describe: CloseRule["describe"],
  flags: Partial<Pick<CloseRule, "quiet" | "peerOnPurpose" | "pathFailure">> = {},
): CloseRule => ({ quiet: false, peerOnPurpose: false, pathFailure: false, ...flags, describe });

/** On purpose, ours or the peer's: neither retried nor shown. */
const onPurpose = row(internal, { quiet: true, peerOnPurpose: true });
const quiet = row(internal, { quiet: true });

/**
 * The relay's failure classes: whatever the class, neither path reached the contact — except the
 * relay's rations (per connection and per source address, core/relay/errors.ts
 * `TEMPORARY_REFUSALS`), which say "not now": the relay is busy, nothing is lost.
 */
const RELAY_FAILURES: Record<RelayOnlyErrorCode, CloseRule> = {
  LOFT_ERR_RELAY_AUTH: row(relayDown),
  LOFT_ERR_RELAY_QUOTA: row(relayDown),
  LOFT_ERR_RELAY_FULL: row(relayDown),
  LOFT_ERR_RELAY_NO_MSG: row(relayDown),
  LOFT_ERR_RELAY_PROHIBITED: row(relayDown),
  LOFT_ERR_RELAY_DUPLICATE: row(relayDown),
  LOFT_ERR_RELAY_LIMIT: row(relayDown),
  LOFT_ERR_RELAY_RATE: row(relayBusy),
  LOFT_ERR_RELAY_SOURCE_RATE: row(relayBusy),
  LOFT_ERR_RELAY_STORE_RATE: row(relayBusy),
  LOFT_ERR_RELAY_NO_BUNDLE: row(relayDown),
  LOFT_ERR_RELAY_INTERNAL: row(relayDown),
  LOFT_ERR_RELAY_UNAVAILABLE: row(relayDown),
  LOFT_ERR_RELAY_UNEXPECTED: row(relayDown),
  LOFT_ERR_RELAY_UNRECOGNIZED: row(relayDown),
};

/** Every close reason the engine treats in its own way; the one place these rules live. */
export const CLOSE_REASONS = {
  // ---- the engine's own, on purpose
  stopped: onPurpose,
  "user-disconnect": onPurpose,
  "contact-blocked": onPurpose,
  "identity-change": onPurpose,
  // the peer replaced this session with a newer one it is setting up with us
  replaced: onPurpose,
  superseded: onPurpose,
  "glare-yield": quiet,
  // the contact refused our Noise suite offer (a peer from before suites): dialled again plainly
  "suite-offer-refused": quiet,
  "bye-glare": quiet,
  "transport-closed": quiet,
  // our direct attempt gave way to a live link through the relay
  "relay-fallback": quiet,
  // no ratchet state this side can send with yet (web/src/engine/peer-ratchet.ts)
  "ratchet-cannot-send": row(internal),

  // ---- the peer's device said no (web/src/net/direct.ts, `bye-*`)
  // The contact is online (its device answered) but does not know us yet: say what writing does.
  "bye-refused": row(({ name, canRequest }) => ({
    kind: "not-accepted",
    message: canRequest
      ? `${name} hasn't accepted you yet — your first message will reach ${name} as a contact request.`
      : `${name} hasn't added you yet. Messages wait on this device until ${name} opens your contact link.`,
  })),
  "bye-cancelled": row(({ name }) => ({
    kind: "peer-offline",
    message: `${name}'s device gave up connecting. Retrying…`,
  })),
  "bye-busy": row(({ name }) => ({ kind: "peer-offline", message: `${name}'s device is busy. Retrying…` })),
  // The peer has no direct transport (a headless peer, cli/no-direct.ts): a path failure, so the
  // dial goes to the relay at once instead of waiting out relayFallbackMs (docs/protocol/chat.md §1).
  "bye-no-direct": row(noDirectPath, { pathFailure: true }),

  // ---- the path: WebRTC (web/src/net/webrtc-link.ts `WEBRTC_ERRORS`) and the engine's timers
  "open-timeout": row(noDirectPath, { pathFailure: true }),
  ERR_ICE_CONNECTION_FAILURE: row(noDirectPath, { pathFailure: true }),
  ERR_CONNECTION_FAILURE: row(noDirectPath, { pathFailure: true }),
  ERR_ICE_CONNECTION_CLOSED: row(noDirectPath, { pathFailure: true }),
  ERR_WEBRTC_SUPPORT: row(internal, { pathFailure: true }),
  "hello-timeout": row(tooSlow),
  LOFT_ERR_TIMEOUT: row(tooSlow),
  "heartbeat-timeout": row(({ name }) => ({
    kind: "peer-offline",
    message: `The connection to ${name} stopped responding. Reconnecting…`,
  })),
  "remote-closed": row(wentOffline),
  // Signaling said the contact left and the live session did not answer the probe (chat.md §6).
  "presence-offline": row(wentOffline),
  LOFT_ERR_LINK_CLOSED: row(wentOffline),

  // ---- verification: who answered is not who we asked for, or the bytes were altered
  LOFT_ERR_BAD_SIGNATURE: row(badSignature),
  LOFT_ERR_BAD_IDENTITY: row(badSignature),
  LOFT_ERR_NOISE_KEY_MISMATCH: row(({ name }) =>
    verification(
      "noise-static-key",
      `Verification failed: the device answering as ${name} does not hold ${name}'s key (Noise static key mismatch). The connection was dropped before any message went over it.`,
    ),
  ),
  LOFT_ERR_HANDSHAKE_IDENTITY: row(({ name }) =>
    verification(
      "identity-key",
      `Verification failed: the device that answered is not ${name} (a different identity key). The connection was dropped before any message went over it.`,
    ),
  ),
  LOFT_ERR_DECRYPT: row(badHandshake),
  LOFT_ERR_HANDSHAKE_STATE: row(badHandshake),
  LOFT_ERR_UNSUPPORTED_VERSION: row(badHandshake),
  LOFT_ERR_MALFORMED: row(badHandshake),
  LOFT_ERR_SCHEMA: row(badHandshake),
  LOFT_ERR_UNKNOWN_TYPE: row(badHandshake),
  BAD_SIGNAL_SIGNATURE: row(({ name }) =>
    verification(
      "signaling-signature",
      `Verification failed: a connection message claiming to come from ${name} had an invalid signature — the signaling server may be tampering. That connection was refused before any message went over it; messages wait or travel through the relay, end-to-end encrypted.`,
    ),
  ),
  "ratchet-desync": row(({ name }) =>
    verification(
      "message-decrypt",
      `Verification failed: a message from ${name} could not be decrypted. A new secure session will be started.`,
    ),
  ),

  // ---- signaling (core/signaling/errors.ts: each signaling code's LoftErrorCode)
  LOFT_ERR_SIGNALING_PEER_OFFLINE: row(({ name }) => ({
    kind: "peer-offline",
    message: `${name} is offline. Messages wait on this device.`,
  })),
  LOFT_ERR_SIGNALING_UNREACHABLE: row(signalingDown),
  LOFT_ERR_SIGNALING_TIMEOUT: row(signalingDown),
  LOFT_ERR_SIGNALING_CLOSED: row(signalingDown),
  LOFT_ERR_SIGNALING_NOT_REGISTERED: row(signalingDown),

  // ---- the relay
  ...RELAY_FAILURES,
} as const satisfies Record<string, CloseRule>;

export type CloseReason = keyof typeof CLOSE_REASONS;

/** What the engine closes a link with itself: a row of the table, or a core failure passed on. */
export type EngineCloseReason = CloseReason | LoftErrorCode;

/** Anything else: an internal failure, retried, with the reason kept as detail. */
const UNKNOWN_REASON = row(internal);

/**
 * A close's detail as the debug log shows it. With `remote-closed` the detail is the peer's CLOSE
 * reason (core/session/frames.ts: any text up to MAX_CLOSE_REASON bytes — the peer's words, a line
 * break included): logged when it is one of our reasons (a row of CLOSE_REASONS), otherwise by its
 * length only, so what a peer wrote never reaches the log (as web/src/engine/messages.ts logs a
 * refused message by code and length). Any other reason's detail is this side's own words.
 */
export function closeDetailForLog(reason: string, detail: string | undefined): string | undefined {
  if (reason !== "remote-closed" || detail === undefined || Object.hasOwn(CLOSE_REASONS, detail))
    return detail;
  return `a reason of ${new TextEncoder().encode(detail).length} bytes, not shown`;
}

/** The row for `reason` (own keys only: a reason such as "constructor" is just unknown). */
export function closeRule(reason: string): CloseRule {
  return Object.hasOwn(CLOSE_REASONS, reason) ? CLOSE_REASONS[reason as CloseReason] : UNKNOWN_REASON;
}

/** The relay (ours, or the contact's mailbox relay) can't be reached; `name` when about one contact. */
export function relayUnreachable(url: string, name?: string, code?: string): EngineError {
  if (code !== undefined && isTemporaryRefusal(code))
    return {
      kind: "relay-unreachable",
      url,
      message: name
        ? `${RELAY_BUSY_MESSAGE} Messages to ${name} wait on this device until then.`
        : RELAY_BUSY_MESSAGE,
    };
  const why =
    code === "LOFT_ERR_RELAY_QUOTA"
      ? "the mailbox is full"
      : code === "LOFT_ERR_RELAY_FULL"
        ? "the relay is out of storage"
        : code === "LOFT_ERR_RELAY_UNAVAILABLE"
          ? "the relay is unavailable"
          : "the relay can't be reached";
  return {
    kind: "relay-unreachable",
    url,
    message: name
      ? `${name} is offline and ${why} right now. Messages wait on this device and are sent when it is back.`
      : "The relay server can't be reached. Messages to offline contacts wait on this device; retrying…",
  };
}

/**
 * `reason` is a close reason or error code; `name` the contact's username. `canRequest`: we hold
 * the contact's address (docs/protocol/mailbox.md), so a message can reach them as a contact
 * request even before they add us.
 */
export function describeFailure(
  reason: string,
  name: string,
  detail?: string,
  canRequest = false,
): EngineError {
  return closeRule(reason).describe({ reason, name, detail, canRequest });
}

/**
 * Words for a signaling failure that leaves us without signaling (the server is down or gone, or
 * runs an incompatible version); undefined for any other failure.
 */
export function signalingLostMessage(code: LoftErrorCode, everRegistered: boolean): string | undefined {
  switch (code) {
    case "LOFT_ERR_SIGNALING_UNREACHABLE":
    case "LOFT_ERR_SIGNALING_CLOSED":
      return everRegistered
        ? "Lost the connection to the signaling server. Reconnecting…"
        : "The signaling server can't be reached. Retrying…";
    case "LOFT_ERR_UNSUPPORTED_VERSION":
      return "The signaling server runs an incompatible version. Reload the app to update it, or pick another server in Settings → Servers.";
    default:
      return undefined;
  }
}

/** BUSY refusals in a row before the user is told (the client retries each after 1–5 s). */
const BUSY_TOLD_AFTER = 3;

/**
 * Plain words for a server that refuses to register us (docs/protocol/signaling.md,
 * REGISTER_REQUEST): without a registration contacts see us offline, so this must not be silent.
 * Undefined for codes that are not a registration refusal, and for BUSY until it repeated
 * `BUSY_TOLD_AFTER` times in a row.
 */
export function registerRefusalMessage(code: LoftErrorCode, busyInARow = 0): string | undefined {
  switch (code) {
    case "LOFT_ERR_SIGNALING_WRONG_AUDIENCE":
      return "The signaling server refused to sign you in: it expects to be reached at another address. Check the server address in Settings → Servers.";
    case "LOFT_ERR_SIGNALING_BAD_CHALLENGE":
      return "The signaling server refused to sign you in: its sign-in check did not match this connection (a proxy in between may be changing it). Reconnecting…";
    case "LOFT_ERR_SIGNALING_STALE_TIMESTAMP":
      return "The signaling server refused to sign you in because this device's clock is off by more than two minutes. Check the date and time.";
    case "LOFT_ERR_SIGNALING_UNAVAILABLE":
      return "The signaling server is having trouble with its database, so you can't be signed in right now. Retrying…";
    case "LOFT_ERR_SIGNALING_BUSY":
      return busyInARow >= BUSY_TOLD_AFTER
        ? "The signaling server is too busy to sign you in right now. Retrying…"
        : undefined;
    default:
      return undefined;
  }
}
