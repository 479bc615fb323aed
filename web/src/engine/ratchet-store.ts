/**
 * The per-contact Double Ratchet as the engine keeps it (docs/protocol/chat.md, "Ratchet
 * bootstrap"): started once from a finished Noise handshake over a direct link and then kept
 * across connections, stored through `EngineStorage.saveSession` (sealed at rest by storage).
 *
 * Bootstrap (core/ratchet/bootstrap.ts): the Noise responder sends a fresh X25519 ratchet public
 * key in its handshake payload (extension `ratchet-key`); both sides take
 * `exportSecret("loft/ratchet/v1")` of the session and run `ratchetFromHandshake` — the Noise
 * initiator as Alice, the responder as Bob, with AD = initiator identity key ‖ responder identity
 * key. The same handshake also gives the ratchet's id, `exportSecret("loft/chat/ratchet-id/v1")`
 * truncated to 16 bytes: equal on both sides, unpredictable to anyone else, and what the HELLO
 * frames compare to decide whether both still hold the same ratchet.
 *
 * Stored blob := canonical MessagePack { v: 1, id: bin(16), dr: bin (serializeRatchet) }.
 */
import * as v from "valibot";
import { wipe } from "../../../core/bytes.ts";
import { bytesSchema, decodeWith, encodeCanonical, uintSchema } from "../../../core/codec/codec.ts";
import type { CryptoProvider } from "../../../core/crypto/provider.ts";
import { err, ok, type Result } from "../../../core/errors.ts";
import {
  deserializeRatchet,
  generateRatchetKeyPair,
  type RatchetKeyPair,
  ratchetFromSession,
  type SessionRatchet,
  serializeRatchet,
} from "../../../core/ratchet/index.ts";
import type { Session } from "../../../core/session/index.ts";
import { RATCHET_ID_BYTES } from "./wire.ts";

export { RATCHET_ID_LABEL, ratchetIdOf } from "../../../core/ratchet/index.ts";

/** Handshake-payload extension carrying the responder's ratchet public key (32 bytes). */
export const RATCHET_KEY_EXTENSION = "ratchet-key";
const STORED_VERSION = 1;

/** A contact's ratchet and its id (core/ratchet/from-session.ts). */
export type ChatRatchet = SessionRatchet;

const storedSchema = v.strictObject({
  v: uintSchema(0xffff),
  id: bytesSchema(RATCHET_ID_BYTES),
  dr: bytesSchema(1, 1 << 21),
});

export function encodeChatRatchet(r: ChatRatchet): Uint8Array {
  const dr = serializeRatchet(r.state);
  const out = encodeCanonical({ v: STORED_VERSION, id: r.id, dr });
  wipe(dr);
  return out;
}

/** A stored ratchet, or a typed error (an unreadable blob counts as lost state). */
export function decodeChatRatchet(bytes: Uint8Array): Result<ChatRatchet> {
  const r = decodeWith(bytes, storedSchema, { maxBytes: (1 << 21) + 64, maxMapLength: 3, maxArrayLength: 0 });
  if (!r.ok) return r;
  if (r.value.v !== STORED_VERSION)
    return err("LOFT_ERR_STATE_VERSION", `stored chat ratchet: unknown version ${r.value.v}`);
  const state = deserializeRatchet(r.value.dr);
  if (!state.ok) return state;
  return ok({ id: r.value.id.slice(), state: state.value });
}

/** The key pair a Noise responder advertises, in case this handshake has to start a ratchet. */
export function freshRatchetKeyPair(crypto?: CryptoProvider): Promise<RatchetKeyPair> {
  return generateRatchetKeyPair(undefined, crypto);
}

/**
 * Start a new ratchet from this session. `ours` is the responder's advertised key pair (the
 * responder's side only); the initiator reads the responder's key from the handshake extensions.
 */
export function bootstrapChatRatchet(
  session: Session,
  selfIdentityKey: Uint8Array,
  ours: RatchetKeyPair | undefined,
  crypto?: CryptoProvider,
): Promise<Result<ChatRatchet>> {
  if (session.role === "initiator") {
    const theirs = session.remoteExtensions[RATCHET_KEY_EXTENSION];
    if (theirs?.length !== 32)
      return Promise.resolve(err("LOFT_ERR_MALFORMED", "the responder sent no ratchet key in its handshake"));
    return ratchetFromSession(session, selfIdentityKey, { responderRatchetPublic: theirs }, crypto);
  }
  if (!ours) throw new Error("bootstrapChatRatchet: the responder needs its advertised key pair");
  return ratchetFromSession(session, selfIdentityKey, { ratchetKeyPair: ours }, crypto);
}
