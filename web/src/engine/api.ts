/**
 * The contract between the PWA's UI and the chat engine (docs/design.md, "The chat engine"; SREMP §3–§5).
 *
 * The engine (web/src/engine/, written against this file) owns everything that talks to
 * the network: signaling, WebRTC data channels (web/src/net/webrtc-link.ts), the Noise handshake,
 * the Double Ratchet, the outbox and the relay fallback/mailbox. The UI owns onboarding,
 * contacts, trust decisions and history display. They meet here:
 *
 *  - The UI unlocks the user's identity and opens storage, then calls
 *    `createChatEngine({ user, storage })` and `start()`.
 *  - Persistent state lives in storage (IndexedDB, web/src/storage/). The engine reads and writes
 *    it only through `EngineStorage` below; the UI reads history from storage directly and keeps
 *    it live with engine events. The engine persists a message *before* emitting its event, so a
 *    reload never loses what the UI has shown.
 *  - Everything is keyed by `ContactId`: the lowercase hex of the contact's Ed25519 identity key
 *    (SREMP: "the public identity key serves as a unique identifier").
 *  - The UI works without a network (web/src/offline-engine.ts: this engine with no transports;
 *    everyone offline, sends stay `queued` in the outbox). A real engine started later picks the
 *    outbox up.
 *
 * Loading: the UI imports `web/src/chat-engine.ts` (the engine with the browser's transports)
 * and calls its `createChatEngine` export (type `CreateChatEngine`). Only one tab per device runs an engine
 * (the UI holds the "loft-engine" Web Lock); other tabs get the offline stand-in.
 *
 * What the UI already does, and what it expects of the engine:
 *  - Contacts are added, trusted, blocked and deleted by the UI through `changeContact`, which
 *    stores the change and acts on it (the UI never writes contact records itself).
 *    Links are checked with core/identity `decideIdentity`; outcomes that need the user become
 *    `ContactRecord.pending`. The engine runs the same TOFU check on the identity a peer presents
 *    in the Noise handshake: `unchanged`/`updated` → `touchContact`/`updateContactIdentity`;
 *    `noise-key-rotated`/`conflict`/`downgrade` → close the link, `recordIdentityChange`, emit
 *    `identity-change`; an unknown identity key connecting to us → store it as an Unknown contact
 *    and emit `contact-added` (or ignore it; a product decision to write down).
 *  - The engine never dials, accepts or sends to a contact whose trust is `rejected` or that has
 *    `pending` set (`refusalFor` in web/src/engine/outgoing.ts says why).
 *  - Endpoints: our own come from `getSettings()`; a contact's from `ContactRecord.endpoints`
 *    (the link they gave us). The UI puts `getSettings()` and `contactLinkRefs()` in our link.
 *  - History: the UI reads `StoredMessage`s from storage a page at a time and keeps them live
 *    with `message` and `message-state` events, updating one message per event; the engine
 *    writes first, then emits. Own messages appear from `handOver` at once, before they are
 *    stored.
 *
 * Nothing in this file runs except the tiny `EngineRefusal` error class.
 */
import type { DeviceLink } from "../../../core/device/messages.ts";
import type { DeviceAppMessage, DeviceRatchet } from "../../../core/device/relay.ts";
import type { ProxyClient } from "../../../core/proxy/client.ts";
import type { TokenBucket } from "../../../core/proxy/rate-limit.ts";
import type { AccessRecord, ProxyHandler } from "../../../core/proxy/server.ts";
import type { Identity, Trust, UserIdentity } from "../identity.ts";
import type { FileTransfer } from "./files/store.ts";

export type { FileState, FileTransfer } from "./files/store.ts";

import type { CallControls, CallEndKind, CallView, RoomCallControls } from "./calls/types.ts";
import type { RoomsApi } from "./rooms/api.ts";

// ---------------------------------------------------------------------------------------------
// Identifiers and records shared with storage
// ---------------------------------------------------------------------------------------------

/** Lowercase hex of the contact's 32-byte Ed25519 identity key (64 chars). Never changes. */
export type ContactId = string;

/** Local message id: 22 chars of base64url (16 random bytes). Unique per device. */
export type MessageId = string;

/**
 * Lifecycle of one message.
 *  outgoing: queued → sending → sent (direct, the peer's Noise session accepted it)
 *                             ↘ relayed (left in the peer's relay mailbox)
 *            sent | relayed → delivered (the peer acknowledged, end to end)
 *            any non-final → failed (with a reason; `retry` puts it back to queued)
 *  incoming: always `received`.
 */
export type MessageState = "queued" | "sending" | "sent" | "relayed" | "delivered" | "failed" | "received";

export interface StoredMessage {
  id: MessageId;
  contactId: ContactId;
  direction: "out" | "in";
  text: string;
  /** Local clock when created (outgoing) or received (incoming), ms since epoch; orders history. */
  at: number;
  /** Sender's clock as claimed by the peer (incoming only), ms since epoch. Display only. */
  sentAt?: number;
  state: MessageState;
  /** Set when `state === "failed"`. */
  failure?: EngineError;
  /** Peer's id for this message (incoming), for de-duplication and delivery receipts. */
  remoteId?: string;
  /**
   * Set on a history entry that records a call rather than a message (calls/history.ts): local
   * only, never sent. `text` holds its summary in words ("Missed voice call").
   */
  call?: CallRecord;
}

/** A call in the history: how it went and, once answered, how long it lasted. */
export interface CallRecord {
  video: boolean;
  outcome: CallEndKind;
  durationMs?: number;
}

/**
 * How a contact's identity changed relative to what we stored: the `kind`s of core/identity/tofu.ts
 * `decideIdentity` that need the user (SREMP TOFU; docs/design.md, "Cryptography": "a changed
 * noise key, a lower version or a name collision is put to the user, never accepted silently").
 */
export type IdentityChangeKind =
  /** A newer version of the same identity key with a different noise key (`action: "ask"`). */
  | "noise-key-rotated"
  /**
   * A *different* identity key using the username of this contact: a new identity of the same
   * person, or an impersonator. Recorded on the known contact(s) with that name.
   */
  | "username-collision"
  /**
   * A newer version of the same identity key (same noise key) whose new username is one another
   * contact already uses: a known contact taking someone else's name. Recorded on this contact.
   */
  | "rename-collision"
  /** Same identity key, same version, different signed data: a bug or a compromised key. */
  | "conflict"
  /** Same identity key, lower version than stored: a replayed old identity. */
  | "downgrade";

/** A change the user must accept or reject before the contact can be used again. */
export interface PendingIdentityChange {
  kind: IdentityChangeKind;
  /** The new signed identity, `encodeIdentity` bytes, already signature-verified. */
  identity: Uint8Array;
  seenAt: number;
  /** Where it came from: a contact link the user opened, or a handshake. */
  source: "link" | "handshake";
}

export interface ContactRecord {
  id: ContactId;
  /** The accepted signed identity (`encodeIdentity` bytes, verified when stored). */
  identity: Uint8Array;
  /** Cached from the verified identity, for lists and search. */
  username: string;
  trust: Trust;
  firstSeen: number;
  lastSeen: number;
  /** Set when the user marked this contact verified after comparing safety codes. */
  verifiedAt?: number;
  /** A TOFU outcome awaiting the user's decision. While set, sending is blocked. */
  pending?: PendingIdentityChange;
  /** Signaling and relay endpoints from the contact link the contact was added with. */
  endpoints?: ContactEndpoints;
  /**
   * A first-contact request (someone who has our link wrote to us through the relay while we were
   * offline, docs/protocol/mailbox.md). Until the user accepts (the UI removes this field) the
   * engine sends nothing to them — no receipts, no replies, no connections; declining makes the
   * contact Rejected.
   */
  request?: { at: number };
  /**
   * The UI's read marker: incoming messages with `at` up to this time have been seen (the chat was
   * open and visible). Written by the UI only (`LoftStorage.markRead`); the engine ignores it.
   */
  readAt?: number;
  /**
   * Set on a device paired over a cable (kind: device, docs/device.md §7): what the PWA needs to
   * reconnect without a code. Written by the UI's device module; the engine does not dial devices.
   */
  device?: DeviceContactInfo;
  /**
   * Whether the contact answers a Noise suite offer (engine/noise-suites.ts): `true` it sent
   * `noise.suites` in a session, `false` it did not or refused an offer (our dials to it then
   * offer nothing), absent not known yet (our dials offer AES-GCM first). Learned and written by
   * the engine (`setAnswersSuiteOffers`), sealed with the contact, so a reload keeps it.
   */
  answersSuiteOffers?: boolean;
}

/** A paired device (docs/device.md §7): its HELLO name, the protocol pinned at pairing, when. */
export interface DeviceContactInfo {
  kind: "device";
  /** The name the device announced in its HELLO (≤ 32 bytes). */
  name: string;
  /** Pinned at pairing: a HELLO offering less later is refused (downgrade). */
  protocol: "XXhfs" | "XX";
  /** HELLO capability bits (docs/device.md §3). */
  caps: number;
  pairedAt: number;
}

/** From the contact link (core/identity/contact-link.ts `ContactLink`). */
export interface ContactEndpoints {
  signaling: string[];
  relay: string[];
  /** Opaque references other modules put in links (mailbox queue ids, prekey bundles). */
  refs?: Record<string, Uint8Array>;
}

/** User settings the engine needs. URLs are absolute (`ws:`/`wss:`). */
export interface EngineSettings {
  /** Our first signaling server ("" for none: no signaling, mailboxes only). */
  signalingUrl: string;
  /**
   * Every signaling server of ours, in order, when there are several (the first is
   * `signalingUrl`): instances of one service; the engine is on the first that answers and falls
   * back to the next (docs/protocol/signaling.md, "Several servers").
   */
  signalingUrls?: string[];
  /** Our relays, in order: new mailboxes spread across them (docs/protocol/mailbox.md §1). */
  relayUrls: string[];
  /**
   * STUN/TURN servers for direct (WebRTC) links, shaped like `RTCIceServer`. Absent or empty by
   * default: only host candidates are used (same machine or LAN), and nothing is sent to a third
   * party's STUN server. Add STUN to cross NATs, TURN for networks that block UDP.
   */
  iceServers?: IceServerConfig[];
  /**
   * `RTCConfiguration.iceTransportPolicy` for direct links. `"relay"`: only TURN relay
   * candidates are gathered and offered, so a contact never learns this device's IP addresses
   * (only the TURN server's); it needs a TURN server in `iceServers`. Absent means `"all"`.
   */
  iceTransportPolicy?: IceTransportPolicy;
  /**
   * Our mailbox server, when it is not our relay: an `smp://<fingerprint>[:password]@host[:port]`
   * SMP server reached through our relay's bridge (docs/protocol/mailbox.md §1, "Mailboxes on SMP
   * servers"). New receiving queues for contacts go there; absent: on `relayUrls[0]`.
   */
  mailboxServer?: string;
}

/** Which ICE candidates direct links may use (`RTCIceTransportPolicy`). */
export type IceTransportPolicy = "all" | "relay";

/** One STUN or TURN server (`RTCIceServer`): `stun:host:port`, `turn:host:port?transport=udp`. */
export interface IceServerConfig {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** One entry in the outbox: an outgoing message the engine still has to hand off. */
export interface OutboxEntry {
  messageId: MessageId;
  contactId: ContactId;
  /** When it was queued; the outbox drains oldest first per contact. */
  queuedAt: number;
  attempts: number;
}

// ---------------------------------------------------------------------------------------------
// Storage as the engine sees it (implemented by web/src/storage/)
// ---------------------------------------------------------------------------------------------

/**
 * Persistence for the engine. Secret blobs (`loadSession`, `loadSecret`) are encrypted at rest
 * by storage (AES-GCM under the device key, plus the passphrase key when one is set); the engine
 * hands over and receives plaintext and should wipe its copies when done.
 */
export interface EngineStorage {
  getSettings(): Promise<EngineSettings>;

  getContact(id: ContactId): Promise<ContactRecord | undefined>;
  listContacts(): Promise<ContactRecord[]>;
  /**
   * Store a contact the engine learned of itself: a first-contact request (`request` set) from
   * someone who has our link. Does nothing if the id exists.
   */
  addContact(contact: ContactRecord): Promise<void>;
  /** Bump `lastSeen` after a verified handshake. */
  touchContact(id: ContactId, at: number): Promise<void>;
  /**
   * Record a TOFU outcome that needs the user (the engine must already have dropped the link).
   * Storage sets `pending` on the contact; the UI shows the warning and blocks sending.
   */
  recordIdentityChange(id: ContactId, change: PendingIdentityChange): Promise<void>;
  /**
   * Store a newer identity for a known contact when TOFU accepts it silently (same identity
   * key, same noise key, higher version — e.g. a new username or flags).
   */
  updateContactIdentity(id: ContactId, identity: Uint8Array, username: string): Promise<void>;
  /** Store a contact the user added (from a link), replacing a record with the same id. */
  putContact(contact: ContactRecord): Promise<void>;
  /** Whether the contact answers Noise suite offers (`ContactRecord.answersSuiteOffers`). */
  setAnswersSuiteOffers(id: ContactId, answers: boolean): Promise<void>;
  /** The endpoints from the contact's link. */
  setEndpoints(id: ContactId, endpoints: ContactEndpoints): Promise<void>;
  /** The user accepted a first-contact request: `request` goes, the contact stays Unknown. */
  acceptRequest(id: ContactId): Promise<void>;
  /** The user declined a first-contact request: `request` goes, the contact becomes Rejected. */
  declineRequest(id: ContactId): Promise<void>;
  setTrust(id: ContactId, trust: Trust): Promise<unknown>;
  /** The user decided on a pending identity change. */
  clearPending(id: ContactId): Promise<void>;
  /** Delete a contact with its history, outbox entries and ratchet session. */
  deleteContact(id: ContactId): Promise<void>;

  getMessage(id: MessageId): Promise<StoredMessage | undefined>;
  /** Insert or replace one message. */
  putMessage(message: StoredMessage): Promise<void>;
  /**
   * Store a new outgoing message and its outbox entry (`queuedAt` = `at`, no attempts) together;
   * nothing when a message with its id is stored already (a replayed journal entry: below).
   */
  queueOutgoing(message: StoredMessage): Promise<void>;
  /**
   * Record a message being handed over, synchronously, until its `queueOutgoing` lands: a reload
   * or a closed tab in between replays it at the next start instead of losing it (the outbox
   * journal, web/src/storage/journal.ts; docs/protocol/chat.md §9). Returns whether the journal
   * holds it. Optional: a store without it is only as durable as its commit.
   */
  journalOutgoing?(message: StoredMessage): boolean;
  /**
   * The hand-over of `id` settled (stored, or refused by a contact rule): drop its journal entry.
   * Not called when the store failed for a storage reason and the journal holds the message: the
   * entry stays until the deferred save lands (`SaveDeferred`; then called), or for the next start.
   */
  forgetJournaled?(id: MessageId): void;
  /**
   * The hand-over of `id` failed for a storage reason and its journal entry stays (`SaveDeferred`:
   * stored later in this session, or at the next start): no longer pending, so any tab's replay
   * may store it.
   */
  keepJournaled?(id: MessageId): void;
  /**
   * Store a deferred hand-over (`SaveDeferred`) as given — `queued` with its outbox entry, `failed`
   * without — only while its journal entry still exists and no message with its id is stored,
   * checked in the write's transaction (docs/protocol/chat.md §9). Returns "stored", the stored
   * message when the id is stored already, or "dropped" when the journal no longer holds it (a
   * restored backup dropped it). A store with `journalOutgoing` has it; without, nothing is deferred.
   */
  storeJournaled?(message: StoredMessage): Promise<"stored" | "dropped" | StoredMessage>;
  /**
   * Record, synchronously, that the person asked to send stored message `id` again
   * (`ChatEngine.retry`): a reload before the retry's writes land replays it at the next start
   * (docs/protocol/chat.md §9, "Retries"). Returns whether the journal holds it; without, the retry
   * counts as unsaved until `forgetRetry`. Optional, like `journalOutgoing`.
   */
  journalRetry?(id: MessageId): boolean;
  /** The retry of `id` settled (stored, refused, or nothing to do): its record goes. */
  forgetRetry?(id: MessageId): void;
  /** Change a message's state (and failure reason). */
  setMessageState(id: MessageId, state: MessageState, failure?: EngineError): Promise<void>;
  /** Incoming de-duplication: the stored message with this peer id, if any. */
  findIncoming(contactId: ContactId, remoteId: string): Promise<StoredMessage | undefined>;

  /** Oldest first. With a contact, only that contact's entries. */
  listOutbox(contactId?: ContactId): Promise<OutboxEntry[]>;
  putOutbox(entry: OutboxEntry): Promise<void>;
  deleteOutbox(messageId: MessageId): Promise<void>;

  /** Double Ratchet state for one contact, opaque to storage (encrypted at rest). */
  loadSession(id: ContactId): Promise<Uint8Array | undefined>;
  saveSession(id: ContactId, state: Uint8Array): Promise<void>;
  deleteSession(id: ContactId): Promise<void>;

  /**
   * Other engine-private secrets by name (relay queue keys, signed prekeys, ...), opaque and
   * encrypted at rest. Names are the engine's to choose, e.g. "relay/queue/<contactId>".
   */
  loadSecret(name: string): Promise<Uint8Array | undefined>;
  saveSecret(name: string, value: Uint8Array): Promise<void>;
  deleteSecret(name: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Errors a person understands
// ---------------------------------------------------------------------------------------------

/** Which verification failed while bringing up a link (SREMP §3.1.4, §4). */
export type VerificationCheck =
  /** The peer's Identity signature did not verify. */
  | "identity-signature"
  /** The Noise static key differs from the noise key in the peer's signed identity. */
  | "noise-static-key"
  /** The peer authenticated as a different identity key than the contact we dialled. */
  | "identity-key"
  /** The Noise handshake itself failed (bad MAC, wrong prologue/version: possible downgrade). */
  | "handshake"
  /** A ratchet message failed to decrypt or was a replay. */
  | "message-decrypt"
  /** A signaling envelope's signature did not verify. */
  | "signaling-signature";

export type EngineError =
  | { kind: "peer-offline"; message: string }
  /**
   * The contact is online but its device refused our connection: it has not added us (yet).
   * Not "offline"; with the contact's address known, the first message goes as a contact request.
   */
  | { kind: "not-accepted"; message: string }
  | { kind: "verification-failed"; check: VerificationCheck; message: string }
  | { kind: "signaling-unreachable"; url: string; message: string }
  | { kind: "relay-unreachable"; url: string; message: string }
  /** The contact is Rejected (blocked): the engine neither dials nor accepts it. */
  | { kind: "contact-rejected"; message: string }
  /** A TOFU change awaits the user's decision: nothing is sent until then. */
  | { kind: "identity-change-pending"; message: string }
  /** A first-contact request the user has not accepted yet: nothing is sent until then. */
  | { kind: "contact-request"; message: string }
  /** The message is too large or otherwise refused before sending. */
  | { kind: "message-refused"; message: string }
  /** Anything else; `message` still in plain words, `detail` for logs (never secrets). */
  | { kind: "internal"; message: string; detail?: string };

export type EngineErrorKind = EngineError["kind"];

// ---------------------------------------------------------------------------------------------
// Presence and events
// ---------------------------------------------------------------------------------------------

export type PresenceStatus = "offline" | "connecting" | "online";
/** `direct`: a WebRTC data channel; `relay`: live through the relay WebSocket. */
export type LinkPath = "direct" | "relay";

export interface Presence {
  status: PresenceStatus;
  /** Set when `status === "online"`. */
  path?: LinkPath;
  /** When this status began, ms since epoch. */
  since: number;
  /** Why the last attempt ended (offline after a failure), if known. */
  lastError?: EngineError;
  /**
   * The signaling server says the contact is online, yet several direct attempts in a row
   * failed: retries continue quietly with a long backoff instead of flashing "connecting…".
   */
  directUnavailable?: boolean;
  /**
   * Set when `status === "online"`: the live session's Noise cipher suite (docs/protocol/noise.md,
   * "Cipher suites"), e.g. "AESGCM_SHA256".
   */
  suite?: string;
}

/** Connection to our own infrastructure (signaling + relay), shown as one status line. */
export interface ServiceStatus {
  signaling: "connecting" | "connected" | "unreachable" | "disabled";
  relay: "connecting" | "connected" | "unreachable" | "disabled";
  /**
   * The signaling server hands out time-limited TURN credentials (ICE_SERVERS): direct links may
   * use its TURN relay, and "TURN relays only" works without a TURN server in Settings.
   */
  serverTurn?: boolean;
}

export type EngineEvent =
  /** A new incoming message, already stored. */
  | { type: "message"; message: StoredMessage }
  /** An outgoing message changed state, already stored. */
  | { type: "message-state"; contactId: ContactId; id: MessageId; state: MessageState; failure?: EngineError }
  | { type: "presence"; contactId: ContactId; presence: Presence }
  /**
   * A TOFU outcome that needs the user (already recorded with `recordIdentityChange`). The
   * candidate identity is decoded for display; `change.identity` holds its bytes.
   */
  | { type: "identity-change"; contactId: ContactId; change: PendingIdentityChange; candidate: Identity }
  /** A known contact's identity was updated silently (higher version, same keys). */
  | { type: "contact-updated"; contactId: ContactId }
  /**
   * That update changed the contact's name (to a name no other contact uses; a collision is an
   * `identity-change` instead). Show it: "Bob is now called Robert".
   */
  | { type: "contact-renamed"; contactId: ContactId; from: string; to: string }
  /**
   * A contact we did not know appeared, already stored: a first-contact request through the relay
   * (`ContactRecord.request`), which the user accepts or declines.
   */
  | { type: "contact-added"; contactId: ContactId }
  /** A contact change made through `ChatEngine.changeContact`, already stored. */
  | { type: "contact-changed"; contactId: ContactId }
  | { type: "service"; status: ServiceStatus }
  /** An error not tied to one message (e.g. the signaling server went away). */
  | { type: "error"; contactId?: ContactId; error: EngineError }
  /** A file transfer changed (state or progress), already stored (docs/protocol/files.md). */
  | { type: "file"; transfer: FileTransfer }
  /** A call started, rang, connected, changed its media or ended (calls/; docs/protocol/calls.md). */
  | { type: "call"; call: CallView }
  /**
   * A paired device's message through the relay (telemetry, a console answer; docs/device.md
   * §13): read from our mailbox for it, not stored by the engine.
   */
  | { type: "device"; contactId: ContactId; message: DeviceAppMessage };

export type EngineListener = (event: EngineEvent) => void;

// ---------------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------------

export interface EngineStartOptions {
  /** The unlocked user identity. The engine must not persist or log the private keys. */
  user: UserIdentity;
  storage: EngineStorage;
}

export interface ChatEngine {
  /**
   * Connect to signaling (and the relay for the mailbox), drain the outbox as contacts come
   * online. Resolves once started; unreachable services are reported as `service` events and
   * retried with backoff, never thrown.
   */
  start(): Promise<void>;
  /** Close every link and socket, flush pending state to storage. Idempotent. */
  stop(): Promise<void>;

  /**
   * Try to bring up a link to a contact (direct first, relay when no direct path comes up).
   * No-op if already online/connecting. Presence events report progress; a Rejected contact or
   * one with a pending identity change yields an `error` event instead.
   */
  connect(contactId: ContactId): void;
  /** Close the link to a contact (stays offline until `connect` or an incoming connection). */
  disconnect(contactId: ContactId): void;

  /**
   * Hand an outgoing message over (web/src/engine/outgoing.ts). Synchronously, before any I/O:
   * checks the text (throws `EngineRefusal` `message-refused` when empty or longer than
   * `MAX_TEXT_CHARS`, leaving nothing behind) and gives the message its id and time; returns it
   * as `message` (state `queued`) so the UI can show it at once. Then, on a per-contact line in
   * hand-over order — however slow storage is — stores it with its outbox entry, emits its
   * `queued` `message-state` event and tries to send it; `stored` resolves with its id then.
   * `stored` rejects with `EngineRefusal` (nothing stored) for a contact that is Rejected, has a
   * pending identity change or an unaccepted request, or no longer exists.
   */
  handOver(contactId: ContactId, text: string): HandedOver;
  /** `handOver(contactId, text).stored`, with the synchronous refusal as a rejection. */
  send(contactId: ContactId, text: string): Promise<MessageId>;
  /**
   * Put a `failed` message back in the outbox (same id, so the receiver de-duplicates a copy
   * that did arrive) and try again, after the sends already handed over for that contact. Does
   * nothing for a message that is not `failed`.
   */
  retry(messageId: MessageId): Promise<void>;
  /**
   * The hand-overs whose save is still deferred (`SaveDeferred`), in hand-over order per contact:
   * read after `stop` to hand them to the engine that replaces this one in the page (a new
   * username: app/model.ts), so they keep their place before later messages (docs/protocol/chat.md §9).
   */
  deferredSaves?(): StoredMessage[];
  /**
   * Take over deferred saves from the engine this one replaces (`deferredSaves`), before any
   * hand-over reaches this one: they are stored as its own deferred ones are, first.
   */
  adoptDeferred?(messages: readonly StoredMessage[]): void;

  /**
   * Change a contact (docs/design.md, "Contact records"): the changes are stored in order, the
   * engine acts on the result — drops links to Rejected or deleted contacts, reconnects accepted
   * ones — and emits `contact-changed`. The one way the UI writes contact records.
   */
  changeContact(contactId: ContactId, ...changes: ContactChange[]): Promise<void>;

  /**
   * A contact was changed in storage by someone else than `changeContact` (tests, a restored
   * backup): the engine re-reads it, as `changeContact` does after storing.
   */
  contactChanged(contactId: ContactId): void;

  /** Current presence; `offline` for unknown contacts. */
  presence(contactId: ContactId): Presence;
  serviceStatus(): ServiceStatus;

  /**
   * Opaque references to put in the user's own contact link (core ContactLink `refs`, e.g. a
   * relay mailbox queue id or a prekey bundle reference for offline first contact). Optional;
   * keys `[a-z0-9._-]{1,32}`, values ≤ 512 bytes, at most 8 entries.
   */
  contactLinkRefs?(): Promise<Record<string, Uint8Array> | undefined>;

  /**
   * Subscribe to events; returns the unsubscribe function (use it in Solid's `onCleanup`). Events
   * flow from inside `start` (the mailboxes are read there): a listener that must see every message
   * subscribes before `start` (engine-loader.ts `loadEngine`).
   */
  subscribe(listener: EngineListener): () => void;

  /**
   * Send a file to a contact (docs/protocol/files.md): prepared (hash, sealed copy), offered
   * inside the ratchet, sent over the live session once the contact accepts; progress comes as
   * `file` events. To a contact not connected the transfer is `queued`: offered on its next
   * session (files go device to device). Rejects with `EngineRefusal` when the file is over the
   * size limit or the contact is blocked or unknown. `thumb`: a small WebP preview of an image (≤ 16 KiB), sent
   * ahead in the offer.
   */
  sendFile(contactId: ContactId, file: Blob, name: string, thumb?: Uint8Array): Promise<FileTransfer>;
  /** Accept an offered file (`key` = `FileTransfer.key`): it starts, or resumes, at once. */
  acceptFile(key: string): Promise<void>;
  declineFile(key: string): Promise<void>;
  /** Cancel a transfer either way; the contact is told. */
  cancelFile(key: string): Promise<void>;
  /** The contact's transfers, oldest first. */
  listFiles(contactId: ContactId): Promise<FileTransfer[]>;
  /**
   * Send a file to everyone in a room (docs/protocol/files.md §8): read and sealed once, then one
   * transfer per member over its member session (each with its own progress and cancel); a
   * member who is away is offered it when back. Rejects with `EngineRefusal` when nobody else is
   * in the room or the file is over the size limit.
   */
  sendFileToRoom(roomId: string, file: Blob, name: string, thumb?: Uint8Array): Promise<FileTransfer[]>;
  /** Transfers with the members of a room, both ways. */
  listRoomFiles(roomId: string): Promise<FileTransfer[]>;
  /** A received file whose hash matched (or one being sent), to download or preview. */
  fileBlob(key: string): Promise<Blob | undefined>;
  /** A received file whose hash matched, read one chunk at a time (a streamed save to disk). */
  fileStream(key: string): Promise<ReadableStream<Uint8Array> | undefined>;
  /**
   * Rooms (web/src/engine/rooms/mesh.ts; docs/protocol/rooms.md): absent when this tab does not
   * run the engine (offline engine), since a room is nothing but live member links.
   */
  readonly rooms?: RoomsApi;
  /** One-to-one voice and video calls (web/src/engine/calls/); absent where media is unavailable. */
  readonly calls?: CallControls;
  /** Voice calls in rooms (web/src/engine/calls/room-call.ts); absent where rooms are. */
  readonly roomCalls?: RoomCallControls;
  /**
   * The E2EE fetch proxy's requesting side over the contact's live session (proxy-link.ts), or
   * undefined when there is none (the contact is offline).
   */
  proxyClient?(contactId: ContactId): ProxyClient | undefined;
  /** What serves this device's shares to contacts over their sessions (undefined: nothing). */
  serveProxy?(serving: ProxyServing | undefined): void;
  /** Paired devices through the relay (devices.ts; docs/device.md §13); absent without a relay. */
  readonly devices?: DeviceRelayApi;
}

/**
 * What the device screens need from the engine to reach a paired device through the relay
 * (web/src/engine/devices.ts; docs/device.md §13). Refusals are `EngineRefusal`s in plain words.
 */
export interface DeviceRelayApi {
  /** The device's queue (created now at our relay) and our queue for it: the `link` message. */
  prepareLink(contactId: ContactId): Promise<DeviceLink>;
  /** The device answered `linked`: keep the ratchet; returns our first message for `relay-in`. */
  completeLink(contactId: ContactId, ratchet: DeviceRatchet): Promise<Uint8Array>;
  /** The device has a queue at our relay and a ratchet with us. */
  isLinked(contactId: ContactId): boolean;
  /** A console line into the device's queue; the answer comes as a `device` event (`dev.out`). */
  command(contactId: ContactId, id: number, line: string): Promise<void>;
  /** The bridge: a ratchet message the device handed over the cable, into our mailbox for it. */
  deposit(contactId: ContactId, message: Uint8Array): Promise<void>;
  /** The bridge: the oldest message waiting for the device; call `taken` once it is on the cable. */
  nextForDevice(
    contactId: ContactId,
  ): Promise<{ message: Uint8Array; taken: () => Promise<void> } | undefined>;
}

/** What serves this device's shares to contacts (web/src/proxy/start.ts sets it; proxy-link.ts). */
export interface ProxyServing {
  handler: ProxyHandler;
  /** Per-contact request rate limit (keyed by contact id: it outlives sessions). */
  limiter: TokenBucket;
  /** Every request served or refused, for the owner. */
  log: (record: AccessRecord) => void;
}

/** One change to a contact record (`ChatEngine.changeContact`). */
export type ContactChange =
  /** A contact added from a link (a record with the same id is replaced). */
  | { kind: "add"; contact: ContactRecord }
  | { kind: "endpoints"; endpoints: ContactEndpoints }
  /**
   * A newer identity with the same identity key (a link, or an accepted change); `newRatchet`:
   * the stored ratchet goes too (an accepted noise-key rotation), the next session starts anew.
   */
  | { kind: "identity"; identity: Uint8Array; username: string; newRatchet?: boolean }
  /** A TOFU outcome from a link that needs the user. */
  | { kind: "pending"; change: PendingIdentityChange }
  | { kind: "clear-pending" }
  | { kind: "accept-request" }
  | { kind: "decline-request" }
  | { kind: "trust"; trust: Trust }
  /** The contact, its history, outbox and ratchet are deleted; links close, its mailbox goes. */
  | { kind: "delete" };

/** What `ChatEngine.handOver` returns. */
export interface HandedOver {
  /** The message as it will be stored: id and `at` fixed at the hand-over, state `queued`. */
  message: StoredMessage;
  /**
   * Resolves with `message.id` once stored with its outbox entry; rejects with `EngineRefusal`
   * (not sent: the words go back to the person), with `SaveDeferred` (not stored now, but kept in
   * the outbox journal and stored later), or with the storage error (neither stored nor kept).
   */
  stored: Promise<MessageId>;
}

/** The export web/src/chat-engine.ts provides. */
export type CreateChatEngine = (options: EngineStartOptions) => ChatEngine;

/**
 * `HandedOver.stored` failed for a storage reason — the app locked in the commit window, a full
 * quota, a transaction another tab aborted — while the outbox journal holds the message
 * (docs/protocol/chat.md §9, "The outbox journal"). The entry stays: the engine stores the message
 * with its id and time later in this session (with backoff, before any later message of the
 * contact; "Deferred saves are retried in the same session"), or the next start does, and sends
 * it. So the screen keeps the bubble and does not give the words back (sending them again would
 * make two). `cause` is the storage error.
 */
export class SaveDeferred extends Error {
  constructor(cause: unknown) {
    super(`not stored yet (${(cause as Error)?.name ?? "error"}); kept, and stored later`, { cause });
    this.name = "SaveDeferred";
  }
}

/**
 * `ChatEngine.retry` failed for a storage reason — the app locked, a full quota, a transaction
 * another tab aborted — while the outbox journal holds its record (docs/protocol/chat.md §9,
 * "Retries"). The record stays: the next start replays it (the message becomes `queued` and goes).
 * So the screen says the retry is kept, not that sending failed. `cause` is the storage error.
 */
export class RetryDeferred extends Error {
  constructor(cause: unknown) {
    super(`retry not stored yet (${(cause as Error)?.name ?? "error"}); kept for the next start`, { cause });
    this.name = "RetryDeferred";
  }
}

/**
 * A received file the engine can no longer give (docs/protocol/files.md §7, "What a person
 * reads"): its stored chunks are gone or do not open. Its `message` is already in words for the
 * person (engine/files/words.ts) and is shown as it is; the screen tells it from the browser's
 * own errors (a full disk while saving) by this type, never by the text.
 */
export class FileUnavailable extends Error {
  readonly code = "LOFT_ERR_FILE_UNAVAILABLE";
  constructor(message: string) {
    super(message);
    this.name = "FileUnavailable";
  }
}

/** Error thrown by `send`/`retry` when refused; carries the person-readable reason. */
export class EngineRefusal extends Error {
  readonly reason: EngineError;
  constructor(reason: EngineError) {
    super(reason.message);
    this.name = "EngineRefusal";
    this.reason = reason;
  }
}
