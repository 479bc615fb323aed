/**
 * What this device keeps for the person and never sends anywhere (docs/user-guide.md "Chatting"
 * and "Rooms"): drafts — what is typed in a composer and not sent yet — and the names a person gives
 * rooms. Both are engine secrets (EngineStorage `saveSecret`): sealed by the vault like messages
 * and contacts (AES-GCM under the device key, and the passphrase where set; storage/storage.ts), re-sealed
 * on a passphrase change, gone with Delete identity (the whole database goes). No new IndexedDB
 * store, so no schema step:
 *
 *   secret "draft/chat:<contact id>"   canonical MessagePack { v: 1, t: text, at: ms }
 *   secret "draft/room:<room id hex>"  the same
 *   secret "room-name/<room id hex>"   canonical MessagePack { v: 1, n: name }
 *
 * Both travel in a backup with the rooms themselves (docs/protocol/backup.md §3, the `local`
 * section): a restore replaces them with the file's (docs/user-guide.md "Backups").
 *
 * Reads are lenient: a record that is malformed, oversized, of another version or with fields an
 * older version did not write reads as what it holds when that is usable, else as none — never a
 * throw, so a damaged draft costs the draft, not the chat screen.
 */
import * as v from "valibot";
import { decodeWith, encodeCanonical, uintSchema } from "../../../core/codec/codec.ts";
import type { EngineStorage } from "./api.ts";

/** Longest draft kept (characters); longer than any message (outgoing.ts MAX_TEXT_CHARS), bounded. */
export const MAX_DRAFT_CHARS = 64_000;
/** Longest room name (characters, after trimming). */
export const MAX_ROOM_NAME_CHARS = 64;

const LIMITS = { maxBytes: 4 * MAX_DRAFT_CHARS + 64, maxArrayLength: 16, maxMapLength: 16 };

/** A draft's conversation: "chat:<contact id>" or "room:<room id hex>". */
export type DraftKey = `chat:${string}` | `room:${string}`;

export const draftSecret = (key: DraftKey): string => `draft/${key}`;
export const roomNameSecret = (roomIdHex: string): string => `room-name/${roomIdHex}`;

// v.object, not strictObject: fields a later version adds are ignored, not a reason to lose the draft.
const draftSchema = v.object({
  v: v.literal(1),
  t: v.pipe(v.string(), v.maxLength(MAX_DRAFT_CHARS)),
  at: uintSchema(),
});
const nameSchema = v.object({ v: v.literal(1), n: v.string() });

export function encodeDraft(text: string, at: number): Uint8Array {
  return encodeCanonical({ v: 1, t: text.slice(0, MAX_DRAFT_CHARS), at: Math.max(0, Math.floor(at)) });
}

/** The draft's text; undefined for anything malformed, oversized or of another version. */
export function decodeDraft(bytes: Uint8Array): string | undefined {
  return decodeDraftRecord(bytes)?.text;
}

/** The draft's text and when it was written; undefined as for `decodeDraft`. */
export function decodeDraftRecord(bytes: Uint8Array): { text: string; at: number } | undefined {
  const r = decodeWith(bytes, draftSchema, LIMITS);
  return r.ok && r.value.t !== "" ? { text: r.value.t, at: r.value.at } : undefined;
}

/**
 * A room name as kept and shown: whitespace runs (newlines included) become one space, trimmed,
 * at most MAX_ROOM_NAME_CHARS characters (whole code points). Empty: no name.
 */
export function cleanRoomName(name: string): string {
  return [...name.replace(/\s+/g, " ").trim()].slice(0, MAX_ROOM_NAME_CHARS).join("").trim();
}

export function encodeRoomName(name: string): Uint8Array {
  return encodeCanonical({ v: 1, n: cleanRoomName(name) });
}

/** The name, cleaned again (a record written by anything else is held to the same rule); or undefined. */
export function decodeRoomName(bytes: Uint8Array): string | undefined {
  const r = decodeWith(bytes, nameSchema, LIMITS);
  const name = r.ok ? cleanRoomName(r.value.n) : "";
  return name || undefined;
}

/**
 * A draft's synchronous copy (storage/draft-copies.ts; docs/protocol/chat.md §9, "Draft copies"):
 * the words as they were when the page was hidden or left, folded into the sealed draft at the
 * next start. An empty text: the draft was erased (or sent) and its delete may not have landed.
 */
export interface DraftCopy {
  key: DraftKey;
  /** When the words were last typed (ms). */
  at: number;
  text: string;
}

/** Where copies are kept (LoftStorage, once unlocked; none in tests without a page). */
export interface DraftCopyStore {
  /** Seal and write a copy now, synchronously; whether it is stored. */
  copyDraft(copy: DraftCopy): boolean;
  /** Every copy left (the ones that do not open are dropped). */
  draftCopies(): DraftCopy[];
  /** Remove the copy this page wrote or read (one another tab wrote since stays). */
  forgetDraftCopy(key: DraftKey): void;
  /** Remove the copy, whoever wrote it (its conversation is deleted). */
  dropDraftCopy(key: DraftKey): void;
}

type Secrets = Pick<EngineStorage, "loadSecret" | "saveSecret" | "deleteSecret"> & Partial<DraftCopyStore>;

/** Drafts over the engine's sealed secrets (see the file comment). */
export class DraftStore {
  readonly #s: Secrets;

  constructor(storage: Secrets) {
    this.#s = storage;
  }

  async load(key: DraftKey): Promise<string | undefined> {
    return (await this.loadRecord(key))?.text;
  }

  async loadRecord(key: DraftKey): Promise<{ text: string; at: number } | undefined> {
    const bytes = await this.#s.loadSecret(draftSecret(key));
    return bytes && decodeDraftRecord(bytes);
  }

  /** Keep a synchronous copy of `text` now (see DraftCopy); false when there is nowhere to. */
  copy(key: DraftKey, text: string, at: number): boolean {
    return this.#s.copyDraft?.({ key, text, at }) ?? false;
  }

  copies(): DraftCopy[] {
    return this.#s.draftCopies?.() ?? [];
  }

  forgetCopy(key: DraftKey): void {
    this.#s.forgetDraftCopy?.(key);
  }

  dropCopy(key: DraftKey): void {
    this.#s.dropDraftCopy?.(key);
  }

  /**
   * Fold a copy into the sealed draft: its words replace the stored ones unless those were
   * written later (another tab typed on after this one closed); then the copy goes (the one read:
   * a newer one another tab wrote meanwhile stays for the next start, DraftCopyStore). A failing
   * save rejects and leaves the copy for the next start.
   */
  async fold(copy: DraftCopy): Promise<void> {
    const stored = await this.loadRecord(copy.key);
    if (!stored || stored.at <= copy.at) await this.save(copy.key, copy.text, copy.at);
    this.forgetCopy(copy.key);
  }

  /** Keep `text` as the draft of `key`; an empty one (sent, or erased) deletes the record. */
  save(key: DraftKey, text: string, at = Date.now()): Promise<void> {
    if (!text) return this.#s.deleteSecret(draftSecret(key));
    return this.#s.saveSecret(draftSecret(key), encodeDraft(text, at));
  }
}
