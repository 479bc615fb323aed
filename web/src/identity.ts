/**
 * The PWA's single door to core/identity (SREMP §identity, docs/design.md, "Cryptography"): identities,
 * contact ids, TOFU decisions, safety codes and contact links, in the shapes the UI uses. All
 * cryptography and codecs are core's; this file only adapts names and error messages.
 */
import { toHex } from "../../core/bytes.ts";
import {
  type ContactLink,
  contactLinkUrl,
  decodeContactLink,
  parseContactLinkUrl,
} from "../../core/identity/contact-link.ts";
import {
  createUserIdentityWith,
  decodeIdentity,
  encodeIdentity,
  type Identity,
  type UserIdentity,
  updateIdentityWith,
} from "../../core/identity/identity.ts";
import {
  safetyCode as coreSafetyCode,
  formatSafetyCode,
  safetyCodeQr,
} from "../../core/identity/safety-code.ts";
import {
  type ContactIdentity,
  decideIdentity,
  type IdentityDecision,
  type Trust,
  usernameKey,
} from "../../core/identity/tofu.ts";
import { validateUsername } from "../../core/identity/username.ts";
import { pageCrypto } from "./crypto.ts";

export type { ContactLink } from "../../core/identity/contact-link.ts";
export type {
  Identity,
  IdentityFlags,
  IdentityVerifiedData,
  UserIdentity,
} from "../../core/identity/identity.ts";
export type { IdentityDecision, Trust } from "../../core/identity/tofu.ts";
export { decodeIdentity, encodeIdentity, validateUsername };

/** ContactId as the PWA keys it: lowercase hex of the Ed25519 identity key. */
export function contactIdOf(identity: Identity): string {
  return toHex(identity.verified.identity_key);
}

/**
 * A fresh identity for `username` (already validated), created in this browser with the page's
 * provider: native Ed25519 and X25519 where the browser has them (docs/decisions.md, "Identity
 * creation on the provider").
 */
export function newUserIdentity(username: string, now = Date.now()): Promise<UserIdentity> {
  return createUserIdentityWith(pageCrypto, { username, now });
}

/** A new version of our identity with another username (SREMP: version + 1, a new signature). */
export function renamedUserIdentity(
  user: UserIdentity,
  username: string,
  now = Date.now(),
): Promise<UserIdentity> {
  return updateIdentityWith(pageCrypto, user, { username }, now);
}

// --- TOFU (core/identity/tofu.ts) ----------------------------------------------------------------

export interface KnownContact {
  id: string;
  identity: Identity;
  trust: Trust;
  firstSeen: number;
  lastSeen: number;
}

/** core's decision, plus which known contacts it concerns (by id). */
export type TofuOutcome = { decision: IdentityDecision; concerns: string[] };

/** Classify a verified `offered` identity against the stored contacts (SREMP TOFU). */
export function tofuDecide(known: readonly KnownContact[], offered: Identity, now = Date.now()): TofuOutcome {
  const id = contactIdOf(offered);
  const asCore = (k: KnownContact): ContactIdentity => ({
    identity: k.identity,
    trust: k.trust,
    firstSeen: k.firstSeen,
    lastSeen: k.lastSeen,
  });
  const mine = known.find((k) => k.id === id);
  const name = usernameKey(offered.verified.username);
  const sameName = known.filter((k) => k.id !== id && usernameKey(k.identity.verified.username) === name);
  const decision = decideIdentity({
    offered,
    known: mine && asCore(mine),
    sameUsername: sameName.map(asCore),
    now,
  });
  return {
    decision,
    // A rename into another's name is recorded on the renaming contact itself.
    concerns: decision.kind === "username-collision" ? sameName.map((k) => k.id) : mine ? [id] : [],
  };
}

// --- Safety code (core/identity/safety-code.ts: Signal's NumericFingerprint) --------------------

export interface SafetyCode {
  /** 60 digits, the same on both devices. */
  digits: string;
  /** 12 groups of 5 digits, for reading aloud. */
  groups: string[];
  /** What my QR code carries (my fingerprint ‖ theirs; the other device checks it crosswise). */
  qr: string;
}

export function safetyCode(mine: Uint8Array, theirs: Uint8Array): SafetyCode {
  const digits = coreSafetyCode(mine, theirs);
  return { digits, groups: formatSafetyCode(digits).split(" "), qr: safetyCodeQr(mine, theirs) };
}

// --- Contact links (core/identity/contact-link.ts) -----------------------------------------------

/** `<origin>/#c=<payload>`; throws with a plain reason if it can't be made (too large). */
export function makeContactLink(origin: string, link: ContactLink): string {
  const r = contactLinkUrl(origin, link);
  if (!r.ok) throw new Error(`Your contact link can't be made: ${r.error.message}`);
  return r.value;
}

export type ParsedLink = { ok: true; link: ContactLink } | { ok: false; reason: string };

/** Accepts a full link, a fragment (`#c=...`) or the bare payload; verifies the identity. */
export async function parseContactLink(text: string): Promise<ParsedLink> {
  const t = text.trim();
  if (t.length === 0) return { ok: false, reason: "Paste a contact link first." };
  const r = t.includes("#")
    ? await parseContactLinkUrl(pageCrypto, t)
    : await decodeContactLink(pageCrypto, t.replace(/^c=/, ""));
  if (r.ok) return { ok: true, link: r.value };
  switch (r.error.code) {
    case "LOFT_ERR_BAD_SIGNATURE":
    case "LOFT_ERR_BAD_IDENTITY":
      return { ok: false, reason: "The identity in that link does not verify. Do not use it." };
    case "LOFT_ERR_UNSUPPORTED_VERSION":
      return {
        ok: false,
        reason: "That link was made by a newer version of Loft. Update the app and try again.",
      };
    case "LOFT_ERR_FRAME_TOO_LARGE":
      return { ok: false, reason: "That link is too long to be a contact link." };
    default:
      return t.includes("c=")
        ? { ok: false, reason: "That contact link is damaged (maybe cut off when copied)." }
        : { ok: false, reason: "That is not a Loft contact link." };
  }
}
