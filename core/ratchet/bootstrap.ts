/**
 * Starting a Double Ratchet session from a finished Noise handshake (docs/design.md, "Cryptography":
 * "a session starts from a finished Noise handshake"), and the associated data both parties bind.
 *
 * The Noise session exports a 32-byte secret (`exportSecret(RATCHET_EXPORT_LABEL)`, an HKDF of the
 * final chaining key, so it is bound to the whole handshake transcript). We split it into the
 * three values Signal DR §4.4 initialisation takes — SK, shared_hka, shared_nhkb — with
 * `splitBootstrapSecret` (HKDF-SHA-256, info "LoftDoubleRatchet/v1/bootstrap"). The Noise responder
 * plays Bob with the ratchet key pair it advertised in its handshake payload; the initiator plays
 * Alice and must send the first ratchet message. See docs/protocol/ratchet.md, "Starting a session".
 */

import { abytes, concatBytes } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import type { Result } from "../errors.ts";
import { KEY_LEN } from "./kdf.ts";
import { type RandomBytes, type RatchetKeyPair, ratchetFromSecret } from "./ratchet.ts";
import type { RatchetLimits, RatchetState } from "./state.ts";

/** Label the session layer passes to Noise `exportSecret` to obtain the ratchet bootstrap secret. */
export const RATCHET_EXPORT_LABEL = "loft/ratchet/v1";

/** Ed25519 identity keys are 32 bytes (SREMP §identity). */
const IDENTITY_KEY_LEN = 32;

/**
 * The associated data of every message of a session: Alice's (the initiator's) Ed25519 identity
 * key ‖ Bob's (the responder's), 64 bytes — as X3DH §3.3 sets AD = Encode(IK_A) ‖ Encode(IK_B), so
 * a message cannot be replayed into a session between other identities.
 */
export function ratchetAssociatedData(aliceIdentityKey: Uint8Array, bobIdentityKey: Uint8Array): Uint8Array {
  abytes(aliceIdentityKey, IDENTITY_KEY_LEN, "aliceIdentityKey");
  abytes(bobIdentityKey, IDENTITY_KEY_LEN, "bobIdentityKey");
  return concatBytes(aliceIdentityKey, bobIdentityKey);
}

interface HandshakeCommon {
  /** `exportSecret(RATCHET_EXPORT_LABEL)` of the finished Noise session: 32 bytes. */
  readonly exported: Uint8Array;
  /** `ratchetAssociatedData(initiator identity key, responder identity key)`. */
  readonly ad: Uint8Array;
  readonly limits?: RatchetLimits;
  /** The primitives (core/crypto/provider.ts); noble when absent. */
  readonly crypto?: CryptoProvider;
}

export type RatchetFromHandshakeParams =
  | (HandshakeCommon & {
      readonly role: "initiator";
      /** The ratchet public key the responder carried in its handshake payload. */
      readonly responderRatchetPublic: Uint8Array;
      readonly random?: RandomBytes;
    })
  | (HandshakeCommon & {
      readonly role: "responder";
      /** The key pair whose public half this side advertised in its handshake payload. */
      readonly ratchetKeyPair: RatchetKeyPair;
    });

/**
 * A ratchet session from a finished Noise handshake: initiator = Alice (sends first), responder =
 * Bob. A low-order responder ratchet key is `LOFT_ERR_MALFORMED`.
 */
export function ratchetFromHandshake(p: RatchetFromHandshakeParams): Promise<Result<RatchetState>> {
  abytes(p.exported, KEY_LEN, "exported");
  const limits = p.limits ? { limits: p.limits } : {};
  if (p.role === "initiator")
    return ratchetFromSecret({
      role: "alice",
      secret: p.exported,
      bobRatchetPublic: p.responderRatchetPublic,
      ad: p.ad,
      ...limits,
      ...(p.random ? { random: p.random } : {}),
      ...(p.crypto ? { crypto: p.crypto } : {}),
    });
  return ratchetFromSecret({
    role: "bob",
    secret: p.exported,
    bobRatchetKeyPair: p.ratchetKeyPair,
    ad: p.ad,
    ...limits,
    ...(p.crypto ? { crypto: p.crypto } : {}),
  });
}
