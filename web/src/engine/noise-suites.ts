/**
 * Which Noise suite the engine asks for (docs/protocol/noise.md, "Cipher suites";
 * docs/decisions.md, "AES-GCM Noise suite, offered from the first dial"). A browser has AES-GCM
 * and SHA-256 natively but no ChaCha20-Poly1305, so it prefers `AESGCM_SHA256`, and offers it from
 * the very first dial to a contact, when our provider runs AES-GCM natively:
 *
 * - every session we open, in either role, carries the handshake extension `noise.suites` (the
 *   suites we accept, comma-separated ASCII): a peer that sends it answers offers;
 * - what a contact showed is kept on its `Peer` and, sealed with the contact, in storage
 *   (`ContactRecord.answersSuiteOffers`): `true` it sent the extension, `false` it did not (a
 *   session without it, or an offer it refused), absent nothing known yet;
 * - every dial offers AES-GCM first unless the mark is `false` — a new contact included, since
 *   every Loft peer since suites answers offers (docs/protocol/session.md §2);
 * - an offer the contact refuses (`LOFT_ERR_UNSUPPORTED_VERSION`: a peer from before suites)
 *   sets the mark to `false` and ends the attempt as `suite-offer-refused`, which dials again at
 *   once, plainly (dialing.ts `attemptFailed`): one extra connection setup, once per such contact.
 *
 * Room member links (rooms/mesh.ts) follow the same rules, with the mark on the runtime `Member`
 * only (a member is not a stored contact): the dialing member offers, the newcomer answers, and a
 * refusal marks the member and dials it again at once, plainly (docs/protocol/rooms.md §4).
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

/** What a contact told us about suites, on its runtime `Peer` (undefined: nothing yet). */
export interface SuitePeer {
  answersSuiteOffers?: boolean;
}

/** The reason an attempt ends with when the contact refused our offer: dial again, plainly. */
export const SUITE_OFFER_REFUSED = "suite-offer-refused";

/** The extension every engine session sends. */
export function suitesExtension(): Record<string, Uint8Array> {
  return { [SUITES_EXTENSION]: ACCEPTED };
}

/**
 * `suites` for a session we dial: AES-GCM first when AES is native, unless the contact is known
 * not to answer offers (an unknown contact is offered: docs/decisions.md, "AES-GCM Noise suite,
 * offered from the first dial").
 */
export function offeredSuites(
  crypto: CryptoProvider,
  peer: SuitePeer,
  role: "initiator" | "responder",
): Pick<SessionOptions, "suites"> {
  if (role !== "initiator" || peer.answersSuiteOffers === false) return {};
  if (crypto.backends.aes256gcm === "noble") return {};
  return { suites: AES_FIRST };
}

/**
 * After a session: remember whether the contact answers offers. True when the mark changed
 * (store it) — also from unknown to `false`, since unknown means "offer".
 */
export function learnSuites(peer: SuitePeer, session: Session): boolean {
  const answers = Object.hasOwn(session.remoteExtensions, SUITES_EXTENSION);
  const changed = peer.answersSuiteOffers !== answers;
  peer.answersSuiteOffers = answers;
  return changed;
}

/**
 * After a failed handshake: an offer refused (docs/protocol/session.md §2, "Answer") means dial
 * plainly next time. True when the mark changed (store it, and dial again at once); false for
 * any other failure, and for a refusal while the mark was already `false` (no loop).
 */
export function forgetSuitesOnRefusal(peer: SuitePeer, error: unknown, offered: boolean): boolean {
  if (!offered || !isLoftError(error) || error.code !== "LOFT_ERR_UNSUPPORTED_VERSION") return false;
  const changed = peer.answersSuiteOffers !== false;
  peer.answersSuiteOffers = false;
  return changed;
}
