/**
 * The one IndexedDB database of the PWA (`loft`), opened with `idb`
 * (https://github.com/jakearchibald/idb). The schema is versioned: each version adds an upgrade
 * step, and `upgrade` runs every step from the stored version up, so a device that skipped
 * releases still migrates in order. Never edit a released step; add the next one.
 */
import { type DBSchema, deleteDB, type IDBPDatabase, openDB } from "idb";
import type {
  ContactRecord,
  IceServerConfig,
  IceTransportPolicy,
  OutboxEntry,
  StoredMessage,
} from "../engine/api.ts";
import type { PassphraseConfig, Sealed } from "./vault.ts";

export const DB_NAME = "loft";
export const DB_VERSION = 1;

/** The user's own identity: public part in clear, private keys sealed. */
export interface SelfRecord {
  /** `encodeIdentity` bytes of the signed public identity. */
  identity: Uint8Array;
  username: string;
  /** MessagePack `{ ik, nk }` (private identity and noise keys), sealed as "self/keys". */
  keys: Sealed;
  createdAt: number;
}

/** Overrides of the defaults; absent means "this page's origin". */
export interface SettingsRecord {
  signalingUrl?: string;
  /** Every signaling server, in order, when there are several (`signalingUrl` is the first). */
  signalingUrls?: string[];
  relayUrls?: string[];
  /** STUN/TURN servers for direct links; absent: none (host candidates only). */
  iceServers?: IceServerConfig[];
  /** "relay": direct links use TURN relay candidates only; absent: all candidates. */
  iceTransportPolicy?: IceTransportPolicy;
  /** An `smp://` server for our mailboxes (EngineSettings.mailboxServer); absent: the first relay. */
  mailboxServer?: string;
  /**
   * Message notifications (web/src/app/notifications.ts): "on" (name and text), "private" (the
   * name only, never the text), "off". Absent: "on" — shown only once the browser permission is
   * granted, which the user is asked for from a button, never on load.
   */
  notifications?: "on" | "private" | "off";
  /** The user answered "Not now" to the offer to turn notifications on (Home asks no more). */
  notificationOfferDismissed?: boolean;
}

/**
 * A contact as stored since issue #17 (storage.ts "What stays clear"): identity, username, pending
 * change and endpoints are sealed as "contact/<id>". Records from earlier versions are plain
 * `ContactRecord`s (no `sealed`) until storage.ts seals them.
 */
export type SealedContactRecord = Pick<ContactRecord, "id" | "trust" | "firstSeen" | "lastSeen"> &
  Partial<Pick<ContactRecord, "verifiedAt" | "request" | "readAt">> & { sealed: Sealed };

/** A message as stored since issue #17: direction, text, sentAt and failure sealed as "message/<id>". */
export type SealedMessageRecord = Pick<StoredMessage, "id" | "contactId" | "at" | "state"> &
  Partial<Pick<StoredMessage, "remoteId">> & { sealed: Sealed };

export interface LoftDB extends DBSchema {
  /**
   * "device-key" → CryptoKey, "passphrase" → PassphraseConfig, "history-sealed" → { at } once
   * storage.ts has sealed every clear contact and message an earlier version left.
   */
  meta: { key: string; value: CryptoKey | PassphraseConfig | { at: number } };
  /** "self" → SelfRecord. */
  self: { key: string; value: SelfRecord };
  contacts: { key: string; value: ContactRecord | SealedContactRecord; indexes: { "by-username": string } };
  messages: {
    key: string;
    value: StoredMessage | SealedMessageRecord;
    indexes: { "by-contact": [string, number]; "by-remote": [string, string] };
  };
  /** ContactId → sealed Double Ratchet state. */
  sessions: { key: string; value: Sealed };
  /** Engine secret name → sealed bytes. */
  secrets: { key: string; value: Sealed };
  outbox: { key: string; value: OutboxEntry; indexes: { "by-contact": [string, number]; "by-time": number } };
  /** "settings" → SettingsRecord. */
  settings: { key: string; value: SettingsRecord };
}

export type Database = IDBPDatabase<LoftDB>;

/** Upgrade steps, index = the version the step produces minus one. */
const STEPS: ((db: Database) => void)[] = [
  // v1: the initial schema.
  (db) => {
    db.createObjectStore("meta");
    db.createObjectStore("self");
    db.createObjectStore("contacts", { keyPath: "id" }).createIndex("by-username", "username");
    const messages = db.createObjectStore("messages", { keyPath: "id" });
    messages.createIndex("by-contact", ["contactId", "at"]);
    messages.createIndex("by-remote", ["contactId", "remoteId"]);
    db.createObjectStore("sessions");
    db.createObjectStore("secrets");
    const outbox = db.createObjectStore("outbox", { keyPath: "messageId" });
    outbox.createIndex("by-contact", ["contactId", "queuedAt"]);
    outbox.createIndex("by-time", "queuedAt");
    db.createObjectStore("settings");
  },
];

/**
 * Open (creating or upgrading) the database. `onBlocking` runs when another tab needs this
 * connection closed (a newer schema after an update, or — `deleting` — the identity being
 * deleted); the connection is closed first so that tab can proceed.
 */
export async function openDatabase(
  name = DB_NAME,
  onBlocking?: (deleting: boolean) => void,
): Promise<Database> {
  const db: Database = await openDB<LoftDB>(name, DB_VERSION, {
    upgrade(db, oldVersion, newVersion) {
      for (let v = oldVersion; v < (newVersion ?? DB_VERSION); v++) STEPS[v]!(db);
    },
    blocking(_current, blocked) {
      db.close();
      // No version asked for: the database is being deleted (Delete identity in another tab).
      onBlocking?.(blocked === null);
    },
  });
  return db;
}

export function deleteDatabase(name = DB_NAME): Promise<void> {
  return deleteDB(name);
}
