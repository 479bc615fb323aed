/**
 * The page's memory of signaling offers it accepted, in localStorage so that it survives a
 * reload (issue #17: a recorded offer under 120 s old was answered again after a reload — a
 * wasted attempt and a misleading "no direct connection" while the contact was offline).
 * core/signaling/client.ts checks and fills it (`seenOffers`); entries are
 * `[sender key ‖ nonce, expiry]`, at most 256, each gone 240 s after it was seen. Nothing secret:
 * who sent us an offer, and a random nonce — the same metadata the contact list already holds.
 */
import type { SeenOfferStore } from "../../../core/signaling/client.ts";

const PREFIX = "loft.signal.seen-offers.";
/** Refuse to parse anything larger than 256 entries could ever be. */
const MAX_CHARS = 64 * 1024;

/** A store for the identity `selfHex`, or undefined where localStorage is unavailable (Node). */
export function localSeenOffers(selfHex: string): SeenOfferStore | undefined {
  let storage: Storage;
  try {
    if (typeof localStorage === "undefined") return undefined;
    storage = localStorage;
  } catch {
    return undefined; // blocked by the browser's privacy settings
  }
  const key = `${PREFIX}${selfHex.slice(0, 16)}`;
  return {
    load() {
      const raw = storage.getItem(key);
      if (!raw || raw.length > MAX_CHARS) return [];
      const parsed: unknown = JSON.parse(raw);
      return Array.isArray(parsed) ? (parsed as [string, number][]) : [];
    },
    save(entries) {
      storage.setItem(key, JSON.stringify(entries));
    },
  };
}

/**
 * Forget every identity's offer memory on this device ("Start over", "Delete identity": storage.ts
 * `destroy`): nothing of a deleted identity stays behind. Quietly nothing where localStorage is
 * unavailable.
 */
export function clearSeenOffers(): void {
  try {
    if (typeof localStorage === "undefined") return;
    const keys: string[] = [];
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (k?.startsWith(PREFIX)) keys.push(k);
    }
    for (const k of keys) localStorage.removeItem(k);
  } catch {
    // blocked by the browser's privacy settings: nothing was stored either
  }
}
