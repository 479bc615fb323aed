/**
 * A contact's status in words (contact-status.ts): a contact we have never heard from is waiting
 * to accept us, never "offline" (presence is shown only to accepted contacts); once we have heard
 * from them, presence as usual.
 */
import { describe, expect, it } from "vitest";
import type { ContactRecord, Presence } from "../engine/api.ts";
import { contactStatus, encryptionLabel, presenceLabel } from "./contact-status.ts";
import type { ContactView } from "./model.ts";

const offline: Presence = { status: "offline", since: 0 };

function view(change: Partial<ContactRecord> = {}): ContactView {
  const record: ContactRecord = {
    id: "a".repeat(64),
    identity: new Uint8Array(),
    username: "Alice",
    trust: "unknown",
    firstSeen: 1000,
    lastSeen: 1000,
    endpoints: { signaling: [], relay: ["ws://relay"], refs: { addr: new Uint8Array([1]) } },
    ...change,
  };
  return { record, identity: {} as ContactView["identity"] };
}

describe("contact status", () => {
  it("a contact that refused the connection is not called offline", () => {
    const refused: Presence = {
      status: "offline",
      since: 0,
      lastError: { kind: "not-accepted", message: "Alice hasn't accepted you yet" },
    };
    expect(presenceLabel(refused)).toBe("hasn't accepted you yet");
    expect(presenceLabel(offline)).toBe("offline");
    expect(contactStatus(view(), refused, false)).toEqual({
      label: "hasn't accepted you yet",
      notice: { kind: "not-accepted", message: "Alice hasn't accepted you yet" },
    });
  });

  it("a contact we never heard from is waiting to accept us; with their address, writing is a request", () => {
    expect(contactStatus(view(), offline, false)).toEqual({
      label: "waiting to be accepted",
      notice: {
        kind: "awaiting-acceptance",
        message: "Waiting for Alice to accept — your messages reach Alice as a contact request.",
      },
    });
    const noAddress = view({ endpoints: { signaling: [], relay: [] } });
    expect(contactStatus(noAddress, offline, false).notice?.message).toBe(
      "Waiting for Alice to add you — messages wait on this device until Alice opens your contact link.",
    );
  });

  it("a failure of our own side is said while waiting; a contact merely unreachable is not 'offline'", () => {
    const relayDown: Presence = {
      ...offline,
      lastError: { kind: "relay-unreachable", url: "ws://relay", message: "The relay can't be reached." },
    };
    expect(contactStatus(view(), relayDown, false)).toEqual({
      label: "waiting to be accepted",
      notice: { kind: "relay-unreachable", message: "The relay can't be reached." },
    });
    const unreachable: Presence = {
      ...offline,
      lastError: { kind: "peer-offline", message: "Alice is offline." },
    };
    expect(contactStatus(view(), unreachable, false).notice?.kind).toBe("awaiting-acceptance");
  });

  it("once we have heard from them (a connection or a message), presence as usual", () => {
    expect(contactStatus(view({ lastSeen: 2000 }), offline, false)).toEqual({ label: "offline" });
    expect(contactStatus(view(), offline, true)).toEqual({ label: "offline" });
    const online: Presence = { status: "online", path: "relay", since: 0 };
    expect(contactStatus(view(), online, false)).toEqual({ label: "online · via relay" });
    expect(contactStatus(view(), { status: "connecting", since: 0 }, false).label).toBe("connecting…");
  });

  it("their own request, a blocked contact or a pending identity change is never 'waiting'", () => {
    expect(contactStatus(view({ request: { at: 1 } }), offline, false).label).toBe("offline");
    expect(contactStatus(view({ trust: "rejected" }), offline, false).label).toBe("offline");
    const pending = {
      kind: "conflict" as const,
      identity: new Uint8Array(),
      seenAt: 1,
      source: "link" as const,
    };
    expect(contactStatus(view({ pending }), offline, false).label).toBe("offline");
    expect(contactStatus(undefined, offline, false)).toEqual({ label: "offline" });
  });
});

describe("encryption label (contact screen)", () => {
  it("names the live session's cipher, and nothing without a session", () => {
    const online = (suite?: string): Presence => ({
      status: "online",
      path: "direct",
      since: 1,
      ...(suite ? { suite } : {}),
    });
    expect(encryptionLabel(online("AESGCM_SHA256"))).toMatch(/ML-KEM-768, AES-256-GCM$/);
    expect(encryptionLabel(online("ChaChaPoly_BLAKE2s"))).toMatch(/ChaCha20-Poly1305$/);
    expect(encryptionLabel(online())).toBeUndefined();
    expect(encryptionLabel({ status: "connecting", since: 1, suite: "AESGCM_SHA256" })).toBeUndefined();
  });
});
