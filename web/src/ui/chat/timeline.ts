/**
 * The chat screen's messages as a keyed Solid store: an ordered list of ids (what `<For>` maps,
 * so an append creates one row and touches no other) and the messages by id (a state change
 * updates the fields of one row). Nothing here re-reads history: the screen inserts pages from
 * storage and single messages from engine events (docs/user-guide.md "Chatting").
 */
import { batch, createSignal } from "solid-js";
import { createStore } from "solid-js/store";
import type { EngineError, MessageId, MessageState, StoredMessage } from "../../engine/api.ts";
import { localDay } from "../format.ts";

export interface Entry extends StoredMessage {
  /** False while a message just handed over is being written to storage. */
  stored: boolean;
  /** First message of its calendar day in the loaded history: a date separator goes above it. */
  dayStart: boolean;
}

export interface Timeline {
  /** Message ids, oldest first. */
  ids: () => MessageId[];
  byId: Readonly<Record<MessageId, Entry>>;
  has(id: MessageId): boolean;
  oldest(): Entry | undefined;
  /** Insert one message in `at` order (normally at the end); false when the id is known. */
  insert(m: StoredMessage, stored?: boolean): boolean;
  /** Insert many (a page of history); returns how many were new. */
  insertMany(ms: StoredMessage[]): number;
  /** Apply a state change; false when the id is not in the timeline. */
  update(id: MessageId, state: MessageState, failure?: EngineError): boolean;
  /** A hand-over that was refused before it was stored. */
  remove(id: MessageId): void;
}

export function createTimeline(): Timeline {
  const [ids, setIds] = createSignal<MessageId[]>([]);
  const [byId, setById] = createStore<Record<MessageId, Entry>>({});

  const atOf = (id: MessageId | undefined) => (id === undefined ? undefined : byId[id]?.at);

  /** Index where a message at `at` goes: after every message at or before it. */
  function slot(list: MessageId[], at: number): number {
    let i = list.length;
    // New messages land at the end: walk back only past the (rare) ones newer than it.
    while (i > 0 && (atOf(list[i - 1]) ?? 0) > at) i--;
    return i;
  }

  /** Recompute the date-separator flag of the messages at these indexes. */
  function refreshDayStarts(list: MessageId[], indexes: number[]) {
    for (const i of indexes) {
      const id = list[i];
      if (id === undefined) continue;
      const at = atOf(id)!;
      const prev = atOf(list[i - 1]);
      const dayStart = prev === undefined || localDay(prev) !== localDay(at);
      if (byId[id]!.dayStart !== dayStart) setById(id, "dayStart", dayStart);
    }
  }

  function entry(m: StoredMessage, stored: boolean): Entry {
    return { ...m, stored, dayStart: false };
  }

  return {
    ids,
    byId,
    has: (id) => byId[id] !== undefined,
    oldest: () => {
      const first = ids()[0];
      return first === undefined ? undefined : byId[first];
    },
    insert(m, stored = true) {
      if (byId[m.id]) return false;
      batch(() => {
        setById(m.id, entry(m, stored));
        const list = ids();
        const at = slot(list, m.at);
        const next = at === list.length ? [...list, m.id] : [...list.slice(0, at), m.id, ...list.slice(at)];
        setIds(next);
        refreshDayStarts(next, [at, at + 1]);
      });
      return true;
    },
    insertMany(ms) {
      const fresh = ms.filter((m) => !byId[m.id]).sort((a, b) => a.at - b.at);
      if (fresh.length === 0) return 0;
      batch(() => {
        for (const m of fresh) setById(m.id, entry(m, true));
        const list = ids();
        const firstAt = atOf(list[0]);
        let next: MessageId[];
        const changed: number[] = [];
        if (firstAt === undefined || fresh[fresh.length - 1]!.at <= firstAt) {
          // A page of older history: goes in front as a whole.
          next = [...fresh.map((m) => m.id), ...list];
          for (let i = 0; i <= fresh.length; i++) changed.push(i);
        } else {
          next = [...list];
          for (const m of fresh) {
            const at = slot(next, m.at);
            next.splice(at, 0, m.id);
          }
          for (let i = 0; i < next.length; i++) changed.push(i);
        }
        setIds(next);
        refreshDayStarts(next, changed);
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
        const list = ids();
        const at = list.indexOf(id);
        const next = list.filter((x) => x !== id);
        setIds(next);
        setById(id, undefined!);
        refreshDayStarts(next, [at]);
      });
    },
  };
}
