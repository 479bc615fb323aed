/**
 * Why a link attempt or a session ended, in words a person understands (web/src/engine/api.ts,
 * `EngineError`). Inputs are the stable codes the layers below close links with: LoftErrorCodes
 * from core/session, SignalingError codes from core/signaling/client.ts, simple-peer's ERR_* codes
 * and web/src/net/direct.ts's reasons. Messages never include secrets or server-supplied text.
 */
import { isTemporaryRefusal } from "../../../core/relay/errors.ts";
import type { EngineError, VerificationCheck } from "./api.ts";

/** Close reasons that end a session on purpose: no retry, no error shown. */
export const QUIET_REASONS = new Set([
  "stopped",
  "user-disconnect",
  "replaced",
  "glare-yield",
  "superseded",
  "bye-glare",
  "transport-closed",
  "contact-blocked",
  "identity-change",
  // our direct attempt gave way to a live link through the relay
  "relay-fallback",
]);

/** Reasons the *peer* gives when it closes on purpose: we do not redial at once. */
export const PEER_LEFT_ON_PURPOSE = new Set([
  "stopped",
  "user-disconnect",
  "contact-blocked",
  "identity-change",
  // the peer replaced this session with a newer one it is setting up with us
  "replaced",
  "superseded",
]);

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
  if (isTemporaryRefusal(reason))
    // A live link through the relay gave up after its bounded retries (core/relay/live-link.ts).
    return { kind: "peer-offline", message: `${RELAY_BUSY_MESSAGE} Messages to ${name} stay queued.` };
  switch (reason) {
    case "LOFT_ERR_BAD_SIGNATURE":
    case "LOFT_ERR_BAD_IDENTITY":
      return verification(
        "identity-signature",
        `Verification failed: the identity presented as ${name} has an invalid signature. The connection was dropped before any message went over it.`,
      );
    case "LOFT_ERR_NOISE_KEY_MISMATCH":
      return verification(
        "noise-static-key",
        `Verification failed: the device answering as ${name} does not hold ${name}'s key (Noise static key mismatch). The connection was dropped before any message went over it.`,
      );
    case "LOFT_ERR_HANDSHAKE_IDENTITY":
      return verification(
        "identity-key",
        `Verification failed: the device that answered is not ${name} (a different identity key). The connection was dropped before any message went over it.`,
      );
    case "LOFT_ERR_DECRYPT":
    case "LOFT_ERR_HANDSHAKE_STATE":
    case "LOFT_ERR_UNSUPPORTED_VERSION":
    case "LOFT_ERR_MALFORMED":
    case "LOFT_ERR_SCHEMA":
    case "LOFT_ERR_UNKNOWN_TYPE":
      return verification(
        "handshake",
        `Verification failed: the secure handshake with ${name} did not complete (it was altered in transit or the other app is incompatible). The connection was dropped before any message went over it.`,
      );
    case "BAD_SIGNAL_SIGNATURE":
      return verification(
        "signaling-signature",
        `Verification failed: a connection message claiming to come from ${name} had an invalid signature — the signaling server may be tampering. That connection was refused before any message went over it; messages wait or travel through the relay, end-to-end encrypted.`,
      );
    case "ratchet-desync":
      return verification(
        "message-decrypt",
        `Verification failed: a message from ${name} could not be decrypted. A new secure session will be started.`,
      );
    case "PEER_OFFLINE":
      return { kind: "peer-offline", message: `${name} is offline. Messages wait on this device.` };
    case "bye-refused":
      // The contact is online (its device answered) but does not know us yet: say what writing does.
      return {
        kind: "not-accepted",
        message: canRequest
          ? `${name} hasn't accepted you yet — your first message will reach ${name} as a contact request.`
          : `${name} hasn't added you yet. Messages wait on this device until ${name} opens your contact link.`,
      };
    case "bye-cancelled":
      return { kind: "peer-offline", message: `${name}'s device gave up connecting. Retrying…` };
    case "bye-busy":
      return { kind: "peer-offline", message: `${name}'s device is busy. Retrying…` };
    case "open-timeout":
    case "ERR_ICE_CONNECTION_FAILURE":
    case "ERR_CONNECTION_FAILURE":
    case "ERR_ICE_CONNECTION_CLOSED":
      return {
        kind: "peer-offline",
        message: `No direct connection to ${name} could be made. Messages wait on this device.`,
      };
    case "LOFT_ERR_TIMEOUT":
    case "hello-timeout":
      return { kind: "peer-offline", message: `${name} did not finish connecting in time. Retrying…` };
    case "heartbeat-timeout":
      return { kind: "peer-offline", message: `The connection to ${name} stopped responding. Reconnecting…` };
    case "remote-closed":
    case "LOFT_ERR_LINK_CLOSED":
      return { kind: "peer-offline", message: `${name} went offline.` };
    case "UNREACHABLE":
    case "TIMEOUT":
    case "CLOSED":
    case "NOT_REGISTERED":
      return {
        kind: "signaling-unreachable",
        url: "",
        message: "The signaling server can't be reached. Retrying…",
      };
    default:
      if (reason.startsWith("LOFT_ERR_RELAY_"))
        return {
          kind: "peer-offline",
          message: `No connection to ${name} could be made, directly or through the relay. Retrying…`,
        };
      return {
        kind: "internal",
        message: `The connection to ${name} failed.`,
        ...(detail || reason ? { detail: `${reason}${detail ? `: ${detail}` : ""}` } : {}),
      };
  }
}
