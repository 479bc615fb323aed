/**
 * Trust on first use (SREMP 0.1-draft §identity "Trust", "TOFU"; DESIGN.md, Cryptography: "a
 * changed noise key or a lower version is surfaced to the user, never silently accepted").
 *
 * `decideIdentity` is a pure function from (what we know, what a peer just presented) to one of
 * a closed set of typed outcomes; the caller stores `contact` when the outcome says so and shows
 * the user what `surface` says. It never mutates its inputs. docs/protocol/identity.md, "TOFU",
 * has the table.
 *
 * The identity key is the contact id (SREMP: "ContactId := Ed25519PublicKey"), so a different
 * identity key is always a different contact; a *username* already used by a known contact with a
 * different key is the impersonation case and is surfaced as `username-collision`.
 *
 * Trust (SREMP): `unknown` on first use, `trusted` after the user verified the safety code (or
 * accepted the contact), `rejected` when the user marked it untrusted. A rejected contact's
 * identity is refused whatever it presents — newer versions included — and its record is not
 * touched, so rejecting is sticky until the user changes it.
 */
import { equalBytes } from "../bytes.ts";
import { encodeIdentityVerifiedData, type Identity } from "./identity.ts";

export type Trust = "unknown" | "trusted" | "rejected";

/** SREMP §identity `ContactIdentity` (times in ms since the epoch). */
export interface ContactIdentity {
  identity: Identity;
  trust: Trust;
  firstSeen: number;
  lastSeen: number;
}

export type IdentityDecision =
  /** First time we see this identity key and no known contact uses its username: store as unknown. */
  | { kind: "new-contact"; action: "accept"; contact: ContactIdentity }
  /**
   * First time we see this identity key, but known contacts already use this username with other
   * keys: possibly an impersonator. Surface; store only if the user accepts.
   */
  | {
      kind: "username-collision";
      action: "ask";
      contact: ContactIdentity;
      sameUsername: readonly ContactIdentity[];
    }
  /** Exactly what we have (same version, same signed data): refresh lastSeen. */
  | { kind: "unchanged"; action: "accept"; contact: ContactIdentity }
  /** A newer version with the same noise key (name, flags, extensions changed): store it. */
  | { kind: "updated"; action: "accept"; contact: ContactIdentity; previous: Identity }
  /**
   * A newer version that rotates the noise key. Signed by the same identity key, so trust is kept,
   * but the user is told (DESIGN.md): `ask` before storing.
   */
  | { kind: "noise-key-rotated"; action: "ask"; contact: ContactIdentity; previous: Identity }
  /** A lower version than we have: a replayed old identity (maybe an old, compromised noise key). Refuse. */
  | { kind: "downgrade"; action: "refuse"; known: ContactIdentity; offered: Identity }
  /**
   * The same version with different signed data: the key holder signed two different identities
   * for one version (a bug or a compromised key). Refuse and surface.
   */
  | { kind: "conflict"; action: "refuse"; known: ContactIdentity; offered: Identity }
  /** The user rejected this contact: refuse the link, change nothing. */
  | { kind: "rejected"; action: "refuse"; known: ContactIdentity; offered: Identity };

export interface DecideIdentityInput {
  /** A verified identity (`verifyIdentity` / `decodeIdentity` / a finished handshake). */
  offered: Identity;
  /** What we stored for `offered.verified.identity_key`, if anything. */
  known: ContactIdentity | undefined;
  /** Other stored contacts (any key) whose username equals `offered.verified.username`. */
  sameUsername?: readonly ContactIdentity[];
  /** ms since the epoch. */
  now: number;
}

/** SREMP §identity TOFU: classify a presented identity against what we know. */
export function decideIdentity(input: DecideIdentityInput): IdentityDecision {
  const { offered, known, now } = input;
  if (known === undefined) {
    const contact: ContactIdentity = { identity: offered, trust: "unknown", firstSeen: now, lastSeen: now };
    const others = (input.sameUsername ?? []).filter(
      (c) => !equalBytes(c.identity.verified.identity_key, offered.verified.identity_key),
    );
    return others.length > 0
      ? { kind: "username-collision", action: "ask", contact, sameUsername: others }
      : { kind: "new-contact", action: "accept", contact };
  }
  if (!equalBytes(known.identity.verified.identity_key, offered.verified.identity_key))
    throw new RangeError("decideIdentity: `known` is the record of another identity key");
  if (known.trust === "rejected") return { kind: "rejected", action: "refuse", known, offered };
  const had = known.identity.verified;
  const got = offered.verified;
  if (got.version < had.version) return { kind: "downgrade", action: "refuse", known, offered };
  const lastSeen = Math.max(known.lastSeen, now);
  if (got.version === had.version) {
    return equalBytes(encodeIdentityVerifiedData(had), encodeIdentityVerifiedData(got))
      ? { kind: "unchanged", action: "accept", contact: { ...known, lastSeen } }
      : { kind: "conflict", action: "refuse", known, offered };
  }
  const contact: ContactIdentity = { ...known, identity: offered, lastSeen };
  return equalBytes(had.noise_key, got.noise_key)
    ? { kind: "updated", action: "accept", contact, previous: known.identity }
    : { kind: "noise-key-rotated", action: "ask", contact, previous: known.identity };
}

/** Set a contact's trust (Unknown → Trusted / Rejected, or back); returns a new record. */
export function withTrust(contact: ContactIdentity, trust: Trust): ContactIdentity {
  return { ...contact, trust };
}
