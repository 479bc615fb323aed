/**
 * What the UI says about a contact's reachability: the short label (Home, the contact screen, the
 * chat header) and the one-line status under the chat header.
 *
 * Presence is shown only to accepted contacts (docs/protocol/signaling.md, "Contacts only"): a
 * contact who has not accepted us looks exactly like one who is offline — that is the point. So
 * for a contact we have never heard from (no verified connection, no message stored) we say we are
 * waiting for them, never "offline": we can't know, and what matters is where our words go
 * (docs/user-guide.md, "Writing to someone who is offline, and contact requests").
 */
import type { ContactId, EngineError, Presence } from "../engine/api.ts";
import type { AppModel, ContactView } from "./model.ts";

/** A contact's presence in a few words. */
export function presenceLabel(p: Presence): string {
  if (p.status === "online") return p.path === "relay" ? "online · via relay" : "online · direct";
  if (p.status === "connecting") return "connecting…";
  // Its device answered and refused us: reachable, not offline (web/src/engine/errors.ts).
  if (p.lastError?.kind === "not-accepted") return "hasn't accepted you yet";
  if (p.directUnavailable) return "direct connection unavailable";
  return "offline";
}

/**
 * The live session's encryption in words, for the contact screen (docs/protocol/noise.md,
 * "Cipher suites"); undefined when no session runs.
 */
export function encryptionLabel(p: Presence): string | undefined {
  if (p.status !== "online" || p.suite === undefined) return undefined;
  return suiteLabel(p.suite);
}

/** A session's Noise suite in words (a contact's, or a room member's: Room.tsx). */
export function suiteLabel(suite: string): string {
  const cipher =
    suite === "AESGCM_SHA256" ? "AES-256-GCM" : suite === "ChaChaPoly_BLAKE2s" ? "ChaCha20-Poly1305" : suite;
  return `end-to-end encrypted: Noise with X25519 + ML-KEM-768, ${cipher}`;
}

export interface ContactStatus {
  /** The short label ("online · direct", "offline", "waiting to be accepted", …). */
  label: string;
  /** A sentence for the chat's status line, when there is something to say. */
  notice?: { kind: EngineError["kind"] | "awaiting-acceptance"; message: string };
}

/**
 * Whether this contact may not have accepted us yet: we added them (it is not a request of
 * theirs), nothing blocks it, they are not reachable, and we have never heard from them — no
 * verified connection (`lastSeen` moves only after one) and no message of theirs stored.
 */
export function awaitingAcceptance(view: ContactView, presence: Presence, heard: boolean): boolean {
  const r = view.record;
  if (r.request || r.pending || r.trust === "rejected") return false;
  if (presence.status !== "offline" || presence.lastError?.kind === "not-accepted") return false;
  return !heard && r.lastSeen <= r.firstSeen;
}

/**
 * The contact's status in words. `heard`: a message from them is stored (app/activity.ts).
 * A contact link with a contact address lets our first message reach them as a contact request
 * (docs/protocol/mailbox.md); without one, messages wait here until they add us.
 */
export function contactStatus(
  view: ContactView | undefined,
  presence: Presence,
  heard: boolean,
): ContactStatus {
  const error = presence.status !== "online" ? presence.lastError : undefined;
  const failure = error ? { notice: { kind: error.kind, message: error.message } } : {};
  if (!view || !awaitingAcceptance(view, presence, heard))
    return { label: presenceLabel(presence), ...failure };
  // A failure of our own side (relay, signaling) says more than "waiting"; "offline" says less.
  if (error && error.kind !== "peer-offline") return { label: "waiting to be accepted", ...failure };
  const name = view.record.username;
  const canRequest = Object.keys(view.record.endpoints?.refs ?? {}).length > 0;
  return {
    label: "waiting to be accepted",
    notice: {
      kind: "awaiting-acceptance",
      message: canRequest
        ? `Waiting for ${name} to accept — your messages reach ${name} as a contact request.`
        : `Waiting for ${name} to add you — messages wait on this device until ${name} opens your contact link.`,
    },
  };
}

/** `contactStatus` from the app's state (reactive where read inside a Solid computation). */
export function statusOf(app: AppModel, id: ContactId): ContactStatus {
  return contactStatus(app.contact(id), app.presenceOf(id), app.activity.byContact[id]?.heard === true);
}
