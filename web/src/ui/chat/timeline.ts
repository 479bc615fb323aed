/**
 * The chat screen's messages as a keyed Solid store, split into chunks of at most CHUNK_SIZE ids.
 * `<For>` maps the chunks, and each chunk maps its ids, so appending a message touches one chunk
 * (one new row, no other row re-rendered) and the browser lays out that chunk, not the whole
 * history (a flat list of 10 000 bubbles costs ~180 ms per append in layout alone; see bench:ui).
 * Messages are kept by id, so a state change updates the fields of one row. Nothing here re-reads
 * history: the screen inserts pages from storage and single messages from engine events
 * (docs/user-guide.md "Chatting").
 */
import { type Accessor, batch, createSignal, type Setter } from "solid-js";
import { createStore } from "solid-js/store";
import type { EngineError, MessageId, MessageState, StoredMessage } from "../../engine/api.ts";
import { localDay } from "../format.ts";

/** Messages per chunk: the layout work of one append is bounded by this. */
export const CHUNK_SIZE = 100;

export interface Entry extends StoredMessage {
  /** False while a message just handed over is being written to storage. */
  stored: boolean;
  /** First message of its calendar day in the loaded history: a date separator goes above it. */
  dayStart: boolean;
  /**
   * A file transfer's place in the timeline (its key, `FileTransfer.key`), not a message: the
   * row is drawn from the files of the chat (chat/Files.tsx), kept live there without touching
   * the timeline; only its time and day separator are the timeline's.
   */
  file?: string;
}

export interface Chunk {
  readonly key: number;
  ids: Accessor<MessageId[]>;
  set: Setter<MessageId[]>;
}

export interface Timeline {
  /** The chunks, oldest first; each holds its ids (messages and files) oldest first. */
  chunks: Accessor<Chunk[]>;
  byId: Readonly<Record<MessageId, Entry>>;
  /** How many entries are loaded: messages and the files placed among them (`insertFile`). */
  size(): number;
  has(id: MessageId): boolean;
  /** The oldest message loaded (files are not history pages: chat paging reads messages only). */
  oldest(): Entry | undefined;
  /** Insert one message in `at` order (normally at the end); false when the id is known. */
  insert(m: StoredMessage, stored?: boolean): boolean;
  /** Place a file transfer by its time (`Entry.file`); false when it is placed already. */
  insertFile(key: string, at: number): boolean;
  /** Insert many (a page of history); returns how many were new. */
  insertMany(ms: StoredMessage[]): number;
  /** Apply a state change; false when the id is not in the timeline. */
  update(id: MessageId, state: MessageState, failure?: EngineError): boolean;
  /** A hand-over that was refused before it was stored. */
  remove(id: MessageId): void;
}

export function createTimeline(): Timeline {
  const [chunks, setChunks] = createSignal<Chunk[]>([]);
  const [byId, setById] = createStore<Record<MessageId, Entry>>({});
  /** Every loaded id in order (plain array: positions and neighbours without tracking). */
  let order: MessageId[] = [];
  let nextKey = 0;

  const atOf = (id: MessageId | undefined) => (id === undefined ? undefined : byId[id]?.at);

  function newChunk(ids: MessageId[]): Chunk {
    const [get, set] = createSignal(ids);
    return { key: nextKey++, ids: get, set };
  }

  /** Index in `order` where a message at `at` goes: after every message at or before it. */
  function slot(at: number): number {
    let i = order.length;
    // New messages land at the end: walk back only past the (rare) ones newer than it.
    while (i > 0 && (atOf(order[i - 1]) ?? 0) > at) i--;
    return i;
  }

  /** The chunk holding `id`, searched from the newest (where changes happen). */
  function chunkOf(id: MessageId): Chunk | undefined {
    const list = chunks();
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.ids().includes(id)) return list[i];
    return undefined;
  }

  /** Recompute the date-separator flag of the messages at these positions of `order`. */
  function refreshDayStarts(positions: number[]) {
    for (const i of positions) {
      const id = order[i];
      if (id === undefined) continue;
      const prev = atOf(order[i - 1]);
      const dayStart = prev === undefined || localDay(prev) !== localDay(atOf(id)!);
      if (byId[id]!.dayStart !== dayStart) setById(id, "dayStart", dayStart);
    }
  }

  function placeOne(id: MessageId, at: number) {
    const p = slot(at);
    order.splice(p, 0, id);
    const list = chunks();
    const last = list[list.length - 1];
    if (p === order.length - 1) {
      if (last && last.ids().length < CHUNK_SIZE) last.set([...last.ids(), id]);
      else setChunks([...list, newChunk([id])]);
    } else {
      // Before the message now at p + 1, in that message's chunk.
      const after = order[p + 1]!;
      const chunk = chunkOf(after)!;
      const ids = chunk.ids();
      const i = ids.indexOf(after);
      const next = [...ids.slice(0, i), id, ...ids.slice(i)];
      if (next.length <= CHUNK_SIZE) chunk.set(next);
      else {
        // Split a full chunk in two (its rows are rebuilt once) so no chunk outgrows the bound.
        const half = next.length >> 1;
        const at = list.indexOf(chunk);
        setChunks([
          ...list.slice(0, at),
          newChunk(next.slice(0, half)),
          newChunk(next.slice(half)),
          ...list.slice(at + 1),
        ]);
      }
    }
    refreshDayStarts([p, p + 1]);
  }

  return {
    chunks,
    byId,
    size: () => order.length,
    has: (id) => byId[id] !== undefined,
    oldest: () => {
      for (const id of order) if (!byId[id]!.file) return byId[id];
      return undefined;
    },
    insertFile(key, at) {
      const id = `file:${key}` as MessageId;
      if (byId[id]) return false;
      batch(() => {
        // Only what the list reads of an entry: its time, its day, and the file it stands for.
        setById(id, { id, at, file: key, stored: true, dayStart: false } as unknown as Entry);
        placeOne(id, at);
      });
      return true;
    },
    insert(m, stored = true) {
      if (byId[m.id]) return false;
      batch(() => {
        setById(m.id, { ...m, stored, dayStart: false });
        placeOne(m.id, m.at);
      });
      return true;
    },
    insertMany(ms) {
      const fresh = ms.filter((m) => !byId[m.id]).sort((a, b) => a.at - b.at);
      if (fresh.length === 0) return 0;
      batch(() => {
        for (const m of fresh) setById(m.id, { ...m, stored: true, dayStart: false });
        const firstAt = atOf(order[0]);
        if (firstAt === undefined || fresh[fresh.length - 1]!.at <= firstAt) {
          // A page of older history: new chunks in front, existing ones untouched.
          const ids = fresh.map((m) => m.id);
          const front: Chunk[] = [];
          for (let i = 0; i < ids.length; i += CHUNK_SIZE) front.push(newChunk(ids.slice(i, i + CHUNK_SIZE)));
          order = [...ids, ...order];
          setChunks([...front, ...chunks()]);
          refreshDayStarts(Array.from({ length: ids.length + 1 }, (_, i) => i));
        } else for (const m of fresh) placeOne(m.id, m.at);
      });
      return fresh.length;
    },
    update(id, state, failure) {
      if (!byId[id]) return false;
      batch(() => {
        setById(id, "state", state);
        setById(id, "stored", true);
        setById(id, "failure", failure);
      });
      return true;
    },
    remove(id) {
      if (!byId[id]) return;
      batch(() => {
        const p = order.indexOf(id);
        order.splice(p, 1);
        const chunk = chunkOf(id);
        if (chunk) {
          const ids = chunk.ids().filter((x) => x !== id);
          if (ids.length > 0) chunk.set(ids);
          else setChunks(chunks().filter((c) => c !== chunk));
        }
        setById(id, undefined!);
        refreshDayStarts([p]);
      });
    },
  };
}
