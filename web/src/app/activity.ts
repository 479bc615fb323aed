/**
 * What Home shows about each conversation: the unread count and the last message (preview and
 * order by latest activity), plus the unread total for the tab title. Loaded once per contact
 * from storage (the newest message, and a count of incoming messages after the read marker
 * `ContactRecord.readAt`), then kept up to date from engine events one message at a time, never
 * by re-reading history.
 */
import type { Accessor } from "solid-js";
import { createStore, produce, reconcile } from "solid-js/store";
import type { ContactId, ContactRecord, MessageId, MessageState, StoredMessage } from "../engine/api.ts";
import type { LoftStorage } from "../storage/storage.ts";

/** What the activity needs from storage (LoftStorage; an in-memory stand-in in unit tests). */
export type ActivityStorage = Pick<
  LoftStorage,
  "lastMessage" | "countIncomingAfter" | "getMessage" | "markRead"
>;

/** Counted exactly up to this; Home shows "99+" past 99 anyway. */
export const UNREAD_CAP = 1000;
/** Outgoing ids remembered per contact, to tell a new message's first state event (bounded). */
const SEEN_OUTGOING = 64;

export interface LastMessage {
  id: MessageId;
  text: string;
  direction: "in" | "out";
  at: number;
  state: MessageState;
}

export interface ContactActivity {
  unread: number;
  last?: LastMessage;
  /**
   * A message from this contact is stored: we have heard from them, so they know us (a contact
   * we never heard from may not have accepted us yet: app/contact-status.ts).
   */
  heard?: boolean;
}

const lastOf = (m: StoredMessage): LastMessage => ({
  id: m.id,
  text: m.text,
  direction: m.direction,
  at: m.at,
  state: m.state,
});

export class Activity {
  readonly #storage: ActivityStorage;
  readonly byContact: Record<ContactId, ContactActivity>;
  readonly #set: ReturnType<typeof createStore<Record<ContactId, ContactActivity>>>[1];
  /** Sum of the unread counts (the tab title). */
  readonly total: Accessor<number>;
  readonly #seenOut = new Map<ContactId, MessageId[]>();
  /** Per contact, the newest read time waiting to be written, and whether a write is running. */
  readonly #readWrites = new Map<ContactId, { at: number; running: boolean }>();

  constructor(storage: ActivityStorage) {
    this.#storage = storage;
    const [byContact, set] = createStore<Record<ContactId, ContactActivity>>({});
    this.byContact = byContact;
    this.#set = set;
    // A plain derivation: reactive where it is read inside an effect (the title), and a few
    // additions over the contacts per change.
    this.total = () => Object.values(this.byContact).reduce((n, a) => n + a.unread, 0);
  }

  /** Load contacts not loaded yet; forget those gone. Two small reads per new contact. */
  async sync(contacts: ContactRecord[]): Promise<void> {
    const ids = new Set(contacts.map((c) => c.id));
    for (const id of Object.keys(this.byContact))
      if (!ids.has(id)) {
        this.#set(produce((s) => delete s[id]));
        this.#seenOut.delete(id);
      }
    for (const c of contacts) {
      if (this.byContact[c.id]) continue;
      const [last, unread] = await Promise.all([
        this.#storage.lastMessage(c.id),
        this.#storage.countIncomingAfter(c.id, c.readAt ?? 0, UNREAD_CAP),
      ]);
      // Read all history only when the two reads above can't tell (and then stop at the first).
      const heard =
        unread > 0 ||
        last?.direction === "in" ||
        (last !== undefined && (await this.#storage.countIncomingAfter(c.id, 0, 1)) > 0);
      if (this.byContact[c.id]) continue; // an event filled it meanwhile
      this.#set(c.id, { unread, heard, ...(last ? { last: lastOf(last) } : {}) });
    }
  }

  /** Forget everything (storage was replaced: a backup restored); the next `sync` reloads. */
  clear(): void {
    this.#set(reconcile({}));
    this.#seenOut.clear();
    // Read markers held for an import that went through belong to the device it replaced.
    for (const [id, job] of this.#readWrites) if (!job.running) this.#readWrites.delete(id);
    this.#readsHeld = false;
  }

  /** Read markers are not written (`holdReads`): a restore's import runs. */
  #readsHeld = false;

  /**
   * Read markers are kept, not written, until the returned `letGo` writes them (app/model.ts
   * `#replaceStored`, around a restore's import): a marker written during the import waits for it
   * and lands after it, in the restored device. A failed import lets them go; one that went
   * through starts over (`clear` drops them).
   */
  holdReads(): () => void {
    this.#readsHeld = true;
    return () => {
      if (!this.#readsHeld) return;
      this.#readsHeld = false;
      for (const [id, job] of this.#readWrites) if (!job.running) void this.#writeRead(id, job);
    };
  }

  /** An outgoing message announced whole (already stored): it becomes the preview if newest. */
  sent(m: StoredMessage): void {
    this.#remember(m.contactId, m.id);
    const cur = this.byContact[m.contactId];
    if (cur?.last && cur.last.at > m.at) return;
    this.#set(m.contactId, (a) => ({ unread: a?.unread ?? 0, heard: a?.heard ?? false, last: lastOf(m) }));
  }

  /** A new incoming message, already stored; `seen` when its chat is open and visible. */
  incoming(m: StoredMessage, seen: boolean): void {
    const cur = this.byContact[m.contactId];
    // Loaded from storage after it was stored, before its event: already counted.
    if (cur?.last?.id === m.id) {
      if (seen) this.read(m.contactId, m.at);
      return;
    }
    const newer = !cur?.last || m.at >= cur.last.at;
    this.#set(m.contactId, (a) => ({
      unread: seen ? 0 : Math.min(UNREAD_CAP, (a?.unread ?? 0) + 1),
      heard: true,
      ...(newer ? { last: lastOf(m) } : a?.last ? { last: a.last } : {}),
    }));
    if (seen) this.read(m.contactId, m.at);
  }

  /**
   * An outgoing message changed state. Its first event is the moment it exists for Home: the
   * message is read once by id (a keyed get) to update the preview; later events only update the
   * state of the message shown.
   */
  async outgoing(contactId: ContactId, id: MessageId, state: MessageState): Promise<void> {
    const cur = this.byContact[contactId];
    if (cur?.last?.id === id) {
      this.#set(contactId, "last", "state", state);
      return;
    }
    if (!this.#remember(contactId, id)) return;
    const m = await this.#storage.getMessage(id);
    if (!m || m.contactId !== contactId) return;
    const now = this.byContact[contactId];
    if (now?.last && now.last.at > m.at) return;
    this.#set(contactId, (a) => ({ unread: a?.unread ?? 0, heard: a?.heard ?? false, last: lastOf(m) }));
  }

  /** Note an outgoing id as known; false if it already was. */
  #remember(contactId: ContactId, id: MessageId): boolean {
    const seen = this.#seenOut.get(contactId) ?? [];
    if (seen.includes(id)) return false;
    seen.push(id);
    if (seen.length > SEEN_OUTGOING) seen.shift();
    this.#seenOut.set(contactId, seen);
    return true;
  }

  /**
   * The chat with `contactId` is open and visible: nothing is unread. The read marker is written
   * to storage once per burst (the newest time wins; at most one write in flight per contact).
   */
  read(contactId: ContactId, at = Date.now()): void {
    if (this.byContact[contactId]?.unread) this.#set(contactId, "unread", 0);
    const last = this.byContact[contactId]?.last?.at ?? 0;
    const mark = Math.max(at, last);
    const w = this.#readWrites.get(contactId);
    if (w) {
      w.at = Math.max(w.at, mark);
      if (w.running) return;
    }
    const job = w ?? { at: mark, running: false };
    this.#readWrites.set(contactId, job);
    if (!this.#readsHeld) void this.#writeRead(contactId, job);
  }

  async #writeRead(contactId: ContactId, job: { at: number; running: boolean }): Promise<void> {
    job.running = true;
    let written = 0;
    try {
      // Each pass writes the newest mark; a mark raised meanwhile gets one more pass (bounded),
      // unless the markers are held meanwhile: it waits for them to be let go (`holdReads`).
      for (let pass = 0; pass < 8 && job.at > written && !this.#readsHeld; pass++) {
        written = job.at;
        await this.#storage.markRead(contactId, written);
      }
    } catch {
      // The marker only moves the count on the next start; the screen is already right.
    } finally {
      job.running = false;
      if (!(this.#readsHeld && job.at > written)) this.#readWrites.delete(contactId);
    }
  }
}
