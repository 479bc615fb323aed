/**
 * What is typed in a composer and not sent yet, per conversation ("chat:<contact id>",
 * "room:<room id hex>"): leaving a chat for Home, another chat or Settings, or reloading the page,
 * and coming back finds the words where they were (docs/user-guide.md "Chatting").
 *
 * Two layers. In memory, per keystroke and synchronous: the composer reads and writes a Map, so
 * typing never waits on storage and fast typing loses nothing. On disk, sealed (storage/
 * engine/local-notes.ts: an engine secret, sealed like messages — a draft is never written in clear): at
 * most one write per conversation every DRAFT_WRITE_MS while typing, each writing the newest text
 * when it runs (a burst of keys costs a write or two), one write at a time per conversation in
 * order, and all pending writes at once when the page is hidden or left (`pagehide`). An emptied
 * draft (sent, or erased) is deleted at once, not after the delay: a reload right after sending
 * must not bring the sent words back.
 */
import type { DraftKey, DraftStore } from "../engine/local-notes.ts";

/** How long typing may go on before what is typed is written (ms): the debounce of the disk layer. */
export const DRAFT_WRITE_MS = 400;

const drafts = new Map<string, string>();
/** Conversations whose stored draft was read (or written) this run: memory holds the truth for them. */
const known = new Set<string>();
const timers = new Map<string, ReturnType<typeof setTimeout>>();
/** Per conversation, the chain of writes (each settles before the next starts). */
const chains = new Map<string, Promise<void>>();
let store: DraftStore | undefined;
let listening = false;

/**
 * Where drafts are kept on disk (the app's storage), or none. Changing it (Delete identity, a
 * restored backup) drops every draft in memory and every write not yet started: they belong to
 * what was replaced.
 */
export function useDraftStore(next: DraftStore | undefined): void {
  for (const t of timers.values()) clearTimeout(t);
  timers.clear();
  drafts.clear();
  known.clear();
  store = next;
  if (!listening && typeof window !== "undefined") {
    listening = true;
    // A reload or a closed tab right after a burst of typing: write what waits now.
    window.addEventListener("pagehide", flushDrafts);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") flushDrafts();
    });
  }
}

/** The draft in memory (synchronous: what the composer shows at once). */
export function draftOf(key: DraftKey): string {
  return drafts.get(key) ?? "";
}

/**
 * The draft as stored, read once per run (after a reload, memory is empty); undefined when there
 * is none, storage is locked, or the record does not open. Later calls answer from memory.
 */
export async function loadDraft(key: DraftKey): Promise<string | undefined> {
  const s = store;
  if (known.has(key) || !s) return drafts.get(key);
  try {
    const text = await s.load(key);
    // Typed (or deleted) meanwhile, or the store changed: memory is newer than what was read.
    if (known.has(key) || store !== s) return drafts.get(key);
    known.add(key);
    if (text) drafts.set(key, text);
    return text;
  } catch (e) {
    console.warn(`drafts: a stored draft did not open (${(e as Error).name})`);
    return drafts.get(key);
  }
}

/** Keep `text` as the draft of `key`: in memory now, on disk after DRAFT_WRITE_MS (at once when empty). */
export function keepDraft(key: DraftKey, text: string): void {
  known.add(key);
  if (text) drafts.set(key, text);
  else drafts.delete(key);
  if (!store) return;
  if (!text) {
    void write(key);
    return;
  }
  if (!timers.has(key))
    timers.set(
      key,
      setTimeout(() => write(key), DRAFT_WRITE_MS),
    );
}

/** Forget a conversation's draft (its contact or room is deleted): memory, pending and stored. */
export function forgetDraft(key: DraftKey): Promise<void> {
  keepDraft(key, "");
  return chains.get(key) ?? Promise.resolve();
}

/** Start every pending write now. */
export function flushDrafts(): void {
  for (const key of [...timers.keys()]) write(key as DraftKey);
}

/** Every write started so far has settled (tests, and before the storage closes). */
export async function draftsWritten(): Promise<void> {
  flushDrafts();
  await Promise.all(chains.values());
}

function write(key: DraftKey): Promise<void> {
  clearTimeout(timers.get(key));
  timers.delete(key);
  const s = store;
  if (!s) return Promise.resolve();
  const run = (chains.get(key) ?? Promise.resolve())
    // The newest text when the write runs, not when it was asked for: writes queued behind a
    // slow one collapse into the latest state, and the last state always lands.
    .then(() => (store === s ? s.save(key, drafts.get(key) ?? "") : undefined))
    .catch((e: unknown) => console.warn(`drafts: a draft was not stored (${(e as Error).name})`));
  chains.set(key, run);
  void run.then(() => {
    if (chains.get(key) === run) chains.delete(key);
  });
  return run;
}
