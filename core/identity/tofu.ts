/**
 * Trust on first use (SREMP 0.1-draft §identity "Trust", "TOFU"; docs/design.md, "Cryptography":
 * "a changed noise key, a lower version or a name collision is put to the user, never accepted
 * silently").
 *
 * `decideIdentity` is a pure function from (what we know, what a peer just presented) to one of
 * a closed set of typed outcomes; the caller stores `contact` when the outcome says so and shows
 * the user what `surface` says. It never mutates its inputs. docs/protocol/identity.md, "TOFU",
 * has the table.
 *
 * The identity key is the contact id (SREMP: "ContactId := Ed25519PublicKey"), so a different
 * identity key is always a different contact; a *username* already used by a known contact with a
 * different key is the impersonation case and is surfaced as `username-collision` — and so is a
 * known contact *renaming itself* to such a name (`rename-collision`): the check runs on every name
 * change, not only for new keys. Names are compared by `usernameKey` (NFKC, case-folded), so
 * "carol" or full-width "ＣＡＲＯＬ" collide with "Carol".
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
  /**
   * A newer version with the same noise key (name, flags, extensions changed) whose name, if it
   * changed, collides with no other contact: store it. `renamedFrom` is the previous username when
   * the name changed (show it: "Bob is now called Robert"), else null.
   */
  | {
      kind: "updated";
      action: "accept";
      contact: ContactIdentity;
      previous: Identity;
      renamedFrom: string | null;
    }
  /**
   * A newer version, same noise key, whose new username is one other known contacts use: a known
   * contact taking another's name (impersonation from inside the contact list). Surface; store
   * only if the user accepts. Trust is unchanged until then.
   */
  | {
      kind: "rename-collision";
      action: "ask";
      contact: ContactIdentity;
      previous: Identity;
      sameUsername: readonly ContactIdentity[];
    }
  /**
   * A newer version that rotates the noise key. Signed by the same identity key, so trust is kept,
   * but the user is told (docs/design.md, "Cryptography"): `ask` before storing. If the name changed too, `renamedFrom`
   * says from what and `sameUsername` lists other contacts already using the new name.
   */
  | {
      kind: "noise-key-rotated";
      action: "ask";
      contact: ContactIdentity;
      previous: Identity;
      renamedFrom: string | null;
      sameUsername: readonly ContactIdentity[];
    }
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
  /**
   * Other stored contacts (any key) whose username matches `offered.verified.username` by
   * `usernameKey`; entries with the offered identity key are ignored.
   */
  sameUsername?: readonly ContactIdentity[];
  /** ms since the epoch. */
  now: number;
}

/**
 * The form two usernames are compared in for collisions: Unicode NFKC (compatibility forms such as
 * full-width letters fold to ASCII) then lower case. Display keeps the name as signed.
 */
export function usernameKey(username: string): string {
  return username.normalize("NFKC").toLowerCase();
}

/** SREMP §identity TOFU: classify a presented identity against what we know. */
export function decideIdentity(input: DecideIdentityInput): IdentityDecision {
  const { offered, known, now } = input;
  const name = usernameKey(offered.verified.username);
  const others = (input.sameUsername ?? []).filter(
    (c) =>
      !equalBytes(c.identity.verified.identity_key, offered.verified.identity_key) &&
      usernameKey(c.identity.verified.username) === name,
  );
  if (known === undefined) {
    const contact: ContactIdentity = { identity: offered, trust: "unknown", firstSeen: now, lastSeen: now };
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
  const previous = known.identity;
  const renamedFrom = had.username !== got.username ? had.username : null;
  // Every name change is checked, not only new keys (a known contact taking another's name).
  const collides = usernameKey(had.username) !== name ? others : [];
  if (!equalBytes(had.noise_key, got.noise_key))
    return {
      kind: "noise-key-rotated",
      action: "ask",
      contact,
      previous,
      renamedFrom,
      sameUsername: collides,
    };
  if (collides.length > 0)
    return { kind: "rename-collision", action: "ask", contact, previous, sameUsername: collides };
  return { kind: "updated", action: "accept", contact, previous, renamedFrom };
}

/** Set a contact's trust (Unknown → Trusted / Rejected, or back); returns a new record. */
export function withTrust(contact: ContactIdentity, trust: Trust): ContactIdentity {
  return { ...contact, trust };
}
