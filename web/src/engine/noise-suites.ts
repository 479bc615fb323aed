/**
 * Which Noise suite the engine asks for (docs/protocol/noise.md, "Cipher suites";
 * docs/decisions.md, "AES-GCM Noise suite, negotiated by the dialler"). A browser has AES-GCM and
 * SHA-256 natively but no ChaCha20-Poly1305, so it prefers `AESGCM_SHA256` — but a peer from
 * before suites refuses an offer, so the engine offers only to a contact known to answer one:
 *
 * - every session we open, in either role, carries the handshake extension `noise.suites` (the
 *   suites we accept, comma-separated ASCII): a peer that sends it answers offers;
 * - a contact seen sending it is marked on its `Peer` and, sealed with the contact, in storage
 *   (`ContactRecord.answersSuiteOffers`), and our next dial to it — also the first one after a
 *   reload — offers AES-GCM first when our provider runs AES-GCM natively;
 * - an offer the contact refuses (`LOFT_ERR_UNSUPPORTED_VERSION`) clears the mark, so the next
 *   dial is a plain one.
 *
 * The extension travels inside the encrypted, authenticated handshake payload, so a man in the
 * middle can neither forge it nor strip it; and the offer itself is bound into the prologue.
 */
import type { CryptoProvider } from "../../../core/crypto/provider.ts";
import { isLoftError } from "../../../core/errors.ts";
import { SUITE_NAMES, type SuiteName } from "../../../core/noise/suite.ts";
import type { Session } from "../../../core/session/index.ts";
import type { SessionOptions } from "../../../core/session/session.ts";

/** Handshake extension: the Noise suites this side accepts (its presence: it answers offers). */
export const SUITES_EXTENSION = "noise.suites";

const ACCEPTED = new TextEncoder().encode(SUITE_NAMES.join(","));
const AES_FIRST: readonly SuiteName[] = ["AESGCM_SHA256", "ChaChaPoly_BLAKE2s"];

/** What a contact told us about suites, on its runtime `Peer`. */
export interface SuitePeer {
  answersSuiteOffers?: boolean;
}

/** The extension every engine session sends. */
export function suitesExtension(): Record<string, Uint8Array> {
  return { [SUITES_EXTENSION]: ACCEPTED };
}

/** `suites` for a session we dial: AES-GCM first when the contact answers offers and AES is native. */
export function offeredSuites(
  crypto: CryptoProvider,
  peer: SuitePeer,
  role: "initiator" | "responder",
): Pick<SessionOptions, "suites"> {
  if (role !== "initiator" || !peer.answersSuiteOffers) return {};
  if (crypto.backends.aes256gcm === "noble") return {};
  return { suites: AES_FIRST };
}

/** After a session: remember whether the contact answers offers. True when the mark changed (store it). */
export function learnSuites(peer: SuitePeer, session: Session): boolean {
  const answers = Object.hasOwn(session.remoteExtensions, SUITES_EXTENSION);
  const changed = (peer.answersSuiteOffers ?? false) !== answers;
  peer.answersSuiteOffers = answers;
  return changed;
}

/**
 * After a failed handshake: an offer refused means dial plainly next time. True when the mark
 * changed (store it).
 */
export function forgetSuitesOnRefusal(peer: SuitePeer, error: unknown, offered: boolean): boolean {
  if (!offered || !isLoftError(error) || error.code !== "LOFT_ERR_UNSUPPORTED_VERSION") return false;
  const changed = peer.answersSuiteOffers !== false;
  peer.answersSuiteOffers = false;
  return changed;
}
