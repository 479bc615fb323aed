/**
 * Rooms at rest (docs/protocol/rooms.md §7): the rooms this device is in and each room's history,
 * sealed like every engine secret (EngineStorage `saveSecret`: the vault's AES-GCM key, under the
 * passphrase when there is one). No new IndexedDB store, so no schema step:
 *
 *   secret "rooms"             canonical MessagePack [RoomRecord, ...]
 *   secret "room-log/<id hex>" canonical MessagePack [LogEntry, ...] (the newest MAX_LOG kept)
 *   secret "room-name/<id hex>" the name this person gave the room, on this device only
 *                               (engine/local-notes.ts; never sent, no wire change)
 *   secret "rooms-left"        canonical MessagePack [id hex, ...]: rooms left whose leftovers
 *                               (history, name, draft, files, mailbox pairs) are not all deleted
 *                               yet — swept at the next registration or start (mesh.ts `#sweep`);
 *                               never in backups
 *
 * `rooms`, the logs and the names travel in backups (docs/protocol/backup.md §3).
 *
 * Writes of one name are serialized and coalesced: a burst of messages costs a few writes, and
 * the last state always lands.
 */
import * as v from "valibot";
import { bytesSchema, decodeWith, encodeCanonical, uintSchema } from "../../../../core/codec/codec.ts";
import type { EngineStorage } from "../api.ts";
import { cleanRoomName, decodeRoomName, draftSecret, roomNameSecret } from "../local-notes.ts";

export const MAX_LOG = 2_000;

const recordSchema = v.strictObject({
  id: bytesSchema(16),
  k: bytesSchema(32),
  h: bytesSchema(32),
  /** The host's private room key (the creator only). */
  hk: v.optional(bytesSchema(32)),
  joinedAt: uintSchema(),
  /** Entries of the log read so far (the unread count is what follows). */
  read: uintSchema(),
  /** Our member room key (Ed25519 private): what the host role can be handed over to (§8). */
  mk: v.optional(bytesSchema(32)),
  /** The newest host-signed room state we verified (host.ts). */
  st: v.optional(bytesSchema(1, 16 * 1024)),
  /** The epoch of `k` (0, absent, for the link's secret) and the secret before it (§8). */
  e: v.optional(uintSchema(0xffff_ffff)),
  pk: v.optional(bytesSchema(32)),
  /** Older secrets still (newest first, at most 7): listed members away during several removals
   *  come back on one of them (§8). */
  ok: v.optional(v.pipe(v.array(bytesSchema(32)), v.maxLength(7))),
  /** Members whose safety code we compared and marked verified (identity keys, hex). */
  vf: v.optional(v.array(v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)))),
  /** The host removed us: the room stays, read-only, until we leave it. */
  gone: v.optional(v.boolean()),
});
export type RoomRecord = v.InferOutput<typeof recordSchema>;

const entrySchema = v.strictObject({
  id: v.string(),
  /** Sender's identity key (hex); absent for our own messages. */
  from: v.optional(v.string()),
  name: v.optional(v.string()),
  at: uintSchema(),
  text: v.string(),
  /** Ours: the members it was for (hex keys), and those who confirmed it. */
  to: v.optional(v.array(v.string())),
  got: v.optional(v.array(v.string())),
  /** Ours: the members whose copy their relay mailbox stored (docs/protocol/rooms.md §9). */
  rl: v.optional(v.array(v.string())),
});
export type LogEntry = v.InferOutput<typeof entrySchema>;

const LIMITS = { maxBytes: 64 * 1024 * 1024, maxArrayLength: 1 << 20, maxMapLength: 16 };

type Secrets = Pick<EngineStorage, "loadSecret" | "saveSecret" | "deleteSecret">;

/** The stored room records; anything malformed or oversized reads as none (never a throw). */
export function decodeRooms(bytes: Uint8Array): RoomRecord[] {
  const r = decodeWith(bytes, v.array(recordSchema), LIMITS);
  return r.ok ? r.value : [];
}

/** Rooms left and not yet cleaned up, at most this many (the oldest dropped: a disk refusing every
 *  delete must not grow the list for good). */
export const MAX_LEFT = 256;

/** The stored `rooms-left` list; anything malformed or oversized reads as none (never a throw). */
export function decodeLeft(bytes: Uint8Array): string[] {
  const r = decodeWith(
    bytes,
    v.pipe(v.array(v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/))), v.maxLength(MAX_LEFT)),
    LIMITS,
  );
  return r.ok ? r.value : [];
}

/** A stored room history; anything malformed or oversized reads as none (never a throw). */
export function decodeLog(bytes: Uint8Array): LogEntry[] {
  const r = decodeWith(bytes, v.array(entrySchema), LIMITS);
  return r.ok ? r.value : [];
}

export class RoomStore {
  readonly #s: Secrets;
  readonly #writes = new Map<string, { chain: Promise<void>; queued: boolean; value: () => unknown }>();

  constructor(storage: Secrets) {
    this.#s = storage;
  }

  async rooms(): Promise<RoomRecord[]> {
    const bytes = await this.#s.loadSecret("rooms");
    return bytes ? decodeRooms(bytes) : [];
  }

  saveRooms(rooms: readonly RoomRecord[]): Promise<void> {
    return this.#write("rooms", () => rooms);
  }

  /** Rooms left whose leftovers are not all deleted yet (`rooms-left`). */
  async left(): Promise<string[]> {
    const bytes = await this.#s.loadSecret("rooms-left");
    return bytes ? decodeLeft(bytes) : [];
  }

  saveLeft(ids: readonly string[]): Promise<void> {
    return this.#write("rooms-left", () => ids.slice(-MAX_LEFT));
  }

  async log(idHex: string): Promise<LogEntry[]> {
    const bytes = await this.#s.loadSecret(`room-log/${idHex}`);
    return bytes ? decodeLog(bytes) : [];
  }

  /** Store the log as `current()` returns it when the write runs (the newest MAX_LOG entries). */
  saveLog(idHex: string, current: () => readonly LogEntry[]): Promise<void> {
    return this.#write(`room-log/${idHex}`, () => current().slice(-MAX_LOG));
  }

  /** The room's local name (engine/local-notes.ts); undefined when none, or it does not read. */
  async name(idHex: string): Promise<string | undefined> {
    const bytes = await this.#s.loadSecret(roomNameSecret(idHex));
    return bytes && decodeRoomName(bytes);
  }

  /**
   * Name the room on this device (cleaned: local-notes.ts `cleanRoomName`). An empty name is
   * written too (it reads as none) rather than deleted: on the same write chain, a rename and an
   * unnaming right after land in order.
   */
  saveName(idHex: string, name: string): Promise<void> {
    return this.#write(roomNameSecret(idHex), () => ({ v: 1, n: cleanRoomName(name) }));
  }

  /**
   * Everything kept of a room we left: its history, its local name and its draft. The history and
   * the name go on their write chains (#delete), after any write asked before: deleted beside
   * them, a history write still running (a message taken just before the leave) landed after the
   * delete and kept the left room's history on disk for good, listed nowhere
   * (docs/protocol/rooms.md §6, "Leaving").
   */
  async forget(idHex: string): Promise<void> {
    await this.#delete(`room-log/${idHex}`);
    await this.#delete(roomNameSecret(idHex));
    await this.#s.deleteSecret(draftSecret(`room:${idHex}`));
  }

  /** Delete `name` after every write asked before (#write); a write asked after comes after it. */
  #delete(name: string): Promise<void> {
    const w = this.#writes.get(name);
    if (!w) return this.#s.deleteSecret(name);
    // A write still waiting runs first, then this; one asked from now on waits for this.
    w.queued = false;
    const chain = w.chain.catch(() => undefined).then(() => this.#s.deleteSecret(name));
    w.chain = chain;
    const done = () => {
      if (this.#writes.get(name)?.chain === chain) this.#writes.delete(name);
    };
    void chain.then(done, done);
    return chain;
  }

  /** One write per name at a time; writes asked meanwhile collapse into one with the latest value. */
  #write(name: string, value: () => unknown): Promise<void> {
    let w = this.#writes.get(name);
    if (!w) {
      w = { chain: Promise.resolve(), queued: false, value };
      this.#writes.set(name, w);
    }
    w.value = value;
    if (w.queued) return w.chain;
    w.queued = true;
    const entry = w;
    // A failed write (no space left) must not stop the later ones: each starts after the last settled.
    entry.chain = entry.chain
      .catch(() => undefined)
      .then(() => {
        entry.queued = false;
        return this.#s.saveSecret(name, encodeCanonical(entry.value()));
      });
    return entry.chain;
  }
}
