/**
 * A Double Ratchet started from a finished Noise session, with the id both ends derive for it —
 * the one path chat contacts (web/src/engine/ratchet-store.ts), room members and devices
 * (core/device/relay.ts) all take (docs/protocol/ratchet.md, "Starting a session"). The Noise initiator
 * plays Alice with the ratchet key the responder advertised in its handshake; the responder plays
 * Bob with that key pair. The associated data binds both identity keys, initiator first (X3DH §3.3).
 */
import { wipe } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import { ok, type Result } from "../errors.ts";
import type { Session } from "../session/session.ts";
import { RATCHET_EXPORT_LABEL, ratchetAssociatedData, ratchetFromHandshake } from "./bootstrap.ts";
import type { RatchetKeyPair } from "./ratchet.ts";
import type { RatchetState } from "./state.ts";

/**
 * Label of the session export the ratchet id comes from (core/session/session.ts
 * `SESSION_EXPORT_LABELS` exports it with every session).
 */
export const RATCHET_ID_LABEL = "loft/chat/ratchet-id/v1";
/** A ratchet id: the first 16 bytes of that export, equal on both ends of the session. */
export const RATCHET_ID_BYTES = 16;

/** A ratchet and its id (equal on both sides). */
export interface SessionRatchet {
  id: Uint8Array;
  state: RatchetState;
}

/** The ratchet id both ends of `session` derive (16 bytes). */
export function ratchetIdOf(session: Session): Uint8Array {
  const full = session.exportSecret(RATCHET_ID_LABEL);
  const id = full.slice(0, RATCHET_ID_BYTES);
  wipe(full);
  return id;
}

/** The initiator passes the key the responder advertised; the responder, that key pair. */
export type RatchetPeerKey = { responderRatchetPublic: Uint8Array } | { ratchetKeyPair: RatchetKeyPair };

/**
 * Start the ratchet of `session`. Passing the wrong half for this side's Noise role is a
 * programming error and throws; a bad key from the peer is a `Result` error (LOFT_ERR_MALFORMED).
 */
export async function ratchetFromSession(
  session: Session,
  selfIdentityKey: Uint8Array,
  key: RatchetPeerKey,
  crypto?: CryptoProvider,
): Promise<Result<SessionRatchet>> {
  const peerKey = session.remoteIdentity.verified.identity_key;
  const initiator = session.role === "initiator";
  const ad = initiator
    ? ratchetAssociatedData(selfIdentityKey, peerKey)
    : ratchetAssociatedData(peerKey, selfIdentityKey);
  if (initiator !== "responderRatchetPublic" in key)
    throw new Error(
      initiator
        ? "ratchetFromSession: the initiator starts from the responder's advertised key"
        : "ratchetFromSession: the responder starts from the key pair it advertised",
    );
  const exported = session.exportSecret(RATCHET_EXPORT_LABEL);
  try {
    const common = { exported, ad, ...(crypto ? { crypto } : {}) };
    const state =
      "responderRatchetPublic" in key
        ? await ratchetFromHandshake({
            role: "initiator",
            responderRatchetPublic: key.responderRatchetPublic,
            ...common,
          })
        : await ratchetFromHandshake({ role: "responder", ratchetKeyPair: key.ratchetKeyPair, ...common });
    if (!state.ok) return state;
    return ok({ id: ratchetIdOf(session), state: state.value });
  } finally {
    wipe(exported);
  }
}
