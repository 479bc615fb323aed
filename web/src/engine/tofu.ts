/**
 * Trust on first use for an identity a known contact presents — in a handshake (session.ts) or
 * inside a first-contact message (first-contact.ts): one decision (core/identity `decideIdentity`,
 * SREMP §identity) and one way to record what it means (docs/protocol/chat.md §2).
 */
import { decodeIdentity, encodeIdentity, type Identity } from "../../../core/identity/identity.ts";
import { decideIdentity } from "../../../core/identity/tofu.ts";
import type { ContactId, ContactRecord, PendingIdentityChange } from "./api.ts";
import { type EngineContext, emit } from "./context.ts";

/** What the engine does with the offered identity. */
export type IdentityVerdict =
  | { verdict: "unchanged" | "updated" | "refused" }
  | { verdict: "pending"; change: PendingIdentityChange["kind"] };

/** The outcome for `offered` against the stored contact; nothing is written. */
export function judgeIdentity(contact: ContactRecord, offered: Identity, now: number): IdentityVerdict {
  const known = decodeIdentity(contact.identity);
  if (!known.ok) return { verdict: "refused" };
  const d = decideIdentity({
    offered,
    known: {
      identity: known.value,
      trust: contact.trust,
      firstSeen: contact.firstSeen,
      lastSeen: contact.lastSeen,
    },
    now,
  });
  switch (d.kind) {
    case "unchanged":
    case "updated":
      return { verdict: d.kind };
    case "noise-key-rotated":
    case "conflict":
    case "downgrade":
      return { verdict: "pending", change: d.kind };
    default:
      return { verdict: "refused" };
  }
}

/** A newer version with the same keys: store it and tell the UI. */
export async function recordIdentityUpdate(
  ctx: EngineContext,
  id: ContactId,
  offered: Identity,
): Promise<void> {
  await ctx.storage.updateContactIdentity(id, encodeIdentity(offered), offered.verified.username);
  emit(ctx, { type: "contact-updated", contactId: id });
}

/** A change that needs the user: store it as pending and tell the UI. */
export async function recordIdentityChange(
  ctx: EngineContext,
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
