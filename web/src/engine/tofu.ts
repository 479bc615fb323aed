/**
 * Trust on first use for an identity a known contact presents — in a handshake (session.ts) or
 * inside a first-contact message (first-contact.ts): one decision (core/identity `decideIdentity`,
 * SREMP §identity) and one way to record what it means (docs/protocol/chat.md §2).
 *
 * Every name change is checked against the other contacts (issue #17): a contact renaming itself
 * to a name another contact uses is a pending decision (`rename-collision`), and a plain rename is
 * stored and announced (`contact-renamed`), never silent.
 */
import { decodeIdentity, encodeIdentity, type Identity } from "../../../core/identity/identity.ts";
import { type ContactIdentity, decideIdentity, usernameKey } from "../../../core/identity/tofu.ts";
import type { ContactId, ContactRecord, PendingIdentityChange } from "./api.ts";
import { type EngineContext, emit, providerOf } from "./context.ts";

/** What TOFU reads of the engine: the contacts in storage, and the listeners it tells. */
export type TofuContext = Pick<EngineContext, "storage" | "listeners" | "cfg">;

/** What the engine does with the offered identity. */
export type IdentityVerdict =
  | { verdict: "unchanged" | "refused" }
  /** Store it; `renamedFrom` is the previous username when the name changed. */
  | { verdict: "updated"; renamedFrom: string | null }
  | { verdict: "pending"; change: PendingIdentityChange["kind"] };

function asContactIdentity(c: ContactRecord, identity: Identity): ContactIdentity {
  return { identity, trust: c.trust, firstSeen: c.firstSeen, lastSeen: c.lastSeen };
}

/** Other stored contacts whose name matches `username` (by `usernameKey`). */
async function contactsNamed(
  ctx: TofuContext,
  username: string,
  except: ContactId,
): Promise<ContactIdentity[]> {
  const key = usernameKey(username);
  const out: ContactIdentity[] = [];
  for (const c of await ctx.storage.listContacts()) {
    if (c.id === except || usernameKey(c.username) !== key) continue;
    const identity = await decodeIdentity(providerOf(ctx), c.identity);
    if (identity.ok) out.push(asContactIdentity(c, identity.value));
  }
  return out;
}

/** The outcome for `offered` against the stored contact and, on a rename, the others; nothing is written. */
export async function judgeIdentity(
  ctx: TofuContext,
  contact: ContactRecord,
  offered: Identity,
  now: number,
): Promise<IdentityVerdict> {
  const known = await decodeIdentity(providerOf(ctx), contact.identity);
  if (!known.ok) return { verdict: "refused" };
  const renamed = usernameKey(known.value.verified.username) !== usernameKey(offered.verified.username);
  const d = decideIdentity({
    offered,
    known: asContactIdentity(contact, known.value),
    ...(renamed ? { sameUsername: await contactsNamed(ctx, offered.verified.username, contact.id) } : {}),
    now,
  });
  switch (d.kind) {
    case "unchanged":
      return { verdict: "unchanged" };
    case "updated":
      return { verdict: "updated", renamedFrom: d.renamedFrom };
    case "noise-key-rotated":
    case "rename-collision":
    case "conflict":
    case "downgrade":
      return { verdict: "pending", change: d.kind };
    default:
      return { verdict: "refused" };
  }
}

/** A newer version with the same keys: store it and tell the UI (and say so when the name changed). */
export async function recordIdentityUpdate(
  ctx: TofuContext,
  id: ContactId,
  offered: Identity,
  renamedFrom: string | null = null,
): Promise<void> {
  await ctx.storage.updateContactIdentity(id, encodeIdentity(offered), offered.verified.username);
  emit(ctx, { type: "contact-updated", contactId: id });
  if (renamedFrom !== null)
    emit(ctx, { type: "contact-renamed", contactId: id, from: renamedFrom, to: offered.verified.username });
}

/** A change that needs the user: store it as pending and tell the UI. */
export async function recordIdentityChange(
  ctx: TofuContext,
  id: ContactId,
  kind: PendingIdentityChange["kind"],
  offered: Identity,
  now: number,
): Promise<PendingIdentityChange> {
  const change: PendingIdentityChange = {
    kind,
    identity: encodeIdentity(offered),
    seenAt: now,
    source: "handshake",
  };
  await ctx.storage.recordIdentityChange(id, change);
  emit(ctx, { type: "identity-change", contactId: id, change, candidate: offered });
  return change;
}
