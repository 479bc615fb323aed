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
 *
 * The writes started when the page is left do not finish: a sealed write needs WebCrypto and an
 * IndexedDB transaction, and the page is gone first. So, in the same task, every conversation
 * whose write is pending or running also gets a sealed synchronous copy in localStorage
 * (storage/draft-copies.ts, the way the outbox journal keeps a message: docs/protocol/chat.md §9,
 * "Draft copies"), folded into the sealed draft at the next start (`foldDraftCopies`, before any
 * composer reads it) — or removed once a write started after it lands, when the page stayed.
 */
import type { DraftKey, DraftStore } from "../engine/local-notes.ts";

/** How long typing may go on before what is typed is written (ms): the debounce of the disk layer. */
export const DRAFT_WRITE_MS = 400;

const drafts = new Map<string, string>();
/** Conversations whose stored draft was read (or written) this run: memory holds the truth for them. */
const known = new Set<string>();
const timers = new Map<string, ReturnType<typeof setTimeout>>();
/** When each conversation's words were last typed (ms): the time a copy carries. */
const typedAt = new Map<string, number>();
/** Per conversation, the number of its copy in the store (`keepCopies`); a write started later removes it. */
const copies = new Map<string, number>();
let copyCount = 0;
/** Per conversation, the chain of writes (each settles before the next starts). */
const chains = new Map<string, Promise<void>>();
let store: DraftStore | undefined;
let listening = false;
/**
 * Writes held (`holdDraftWrites`): the store they go to once let go, the conversations typed in
 * (or whose write was waiting) meanwhile, and those whose stored draft was asked for or typed
 * over meanwhile without having been read this run (`readBack`).
 */
let held:
  | { readonly store: DraftStore; readonly keys: Set<string>; readonly unread: Set<string> }
  | undefined;
/** Told when a conversation's draft in memory changes under its composer (`readBack`). */
const readBackListeners = new Set<(key: DraftKey) => void>();
/** The `readBack`s under way: their writes start once they have read. */
const readingBack = new Set<Promise<void>>();

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
  typedAt.clear();
  copies.clear();
  held = undefined;
  store = next;
  if (!listening && typeof window !== "undefined") {
    listening = true;
    // A reload or a closed tab right after a burst of typing: copy what waits, synchronously,
    // then start its writes (which may not finish).
    window.addEventListener("pagehide", leaving);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") leaving();
    });
  }
}

/**
 * Nothing is written from now on — no sealed write, no copy — and what is typed stays in memory,
 * until the returned `letGo` writes every conversation typed in meanwhile (or whose write was
 * waiting). A restore's import (app/model.ts `replaceStored`): a write asked for during it would
 * land after it, in the restored device; if the import fails, the words are the device's again
 * and must not be lost (a composer shows only its own conversation, and reads memory when opened
 * again). A store changed meanwhile (`useDraftStore`: the import done, the tab closed) drops them:
 * `letGo` then does nothing.
 */
export function holdDraftWrites(): () => void {
  const s = store;
  if (!s) return () => undefined;
  const h = { store: s, keys: new Set(timers.keys()), unread: new Set<string>() };
  for (const t of timers.values()) clearTimeout(t);
  timers.clear();
  held = h;
  store = undefined;
  return () => {
    if (held !== h) return;
    held = undefined;
    store = s;
    for (const key of h.unread) {
      const reading = readBack(key as DraftKey, s);
      readingBack.add(reading);
      void reading.finally(() => readingBack.delete(reading));
    }
    for (const key of h.keys) if (!h.unread.has(key)) void write(key as DraftKey);
  };
}

/**
 * Held writes let go (a failed import): a conversation whose stored draft could not be read while
 * they were held — a composer opened during the import found it empty — is read now. Words typed
 * over it meanwhile come after the stored ones (a line between, as Composer.tsx's `restore` puts a
 * refused text back), and both are shown and written. Before, the typed words alone were written
 * over the stored draft, which was lost.
 */
async function readBack(key: DraftKey, s: DraftStore): Promise<void> {
  let stored: string | undefined;
  try {
    stored = await s.load(key);
  } catch (e) {
    console.warn(`drafts: a stored draft did not open (${(e as Error).name})`);
  }
  if (store !== s) return;
  const typed = drafts.get(key);
  if (stored) {
    drafts.set(key, typed ? `${stored}\n${typed}` : stored);
    for (const listener of readBackListeners) listener(key);
  }
  known.add(key);
  if (typed) void write(key);
}

/**
 * Follow drafts read back once held writes are let go (`readBack`): a composer showing `key`
 * shows `draftOf(key)` then. Returns the unsubscribe.
 */
export function onDraftReadBack(listener: (key: DraftKey) => void): () => void {
  readBackListeners.add(listener);
  return () => readBackListeners.delete(listener);
}

/** The page is hidden or left: copy every draft not yet on disk, then write them. */
function leaving(): void {
  keepCopies();
  flushDrafts();
}

/**
 * A sealed copy, now, of each draft whose write is waiting or running (see the file comment):
 * the words in memory, with the time they were typed; an erased one as an empty copy.
 */
export function keepCopies(): void {
  const s = store;
  if (!s) return;
  for (const key of new Set([...timers.keys(), ...chains.keys()])) {
    if (s.copy(key as DraftKey, drafts.get(key) ?? "", typedAt.get(key) ?? Date.now()))
      copies.set(key, ++copyCount);
  }
}

/**
 * Fold the copies left by the last page into the sealed drafts (DraftStore `fold`): at start,
 * right after unlock and before any screen reads a draft (app/model.ts). A conversation typed in
 * since is left alone (memory is newer; its copy goes with its next write or the next start).
 * A copy of a conversation `exists` says is gone is dropped, not folded: another tab can go with
 * words of a contact or room deleted meanwhile in this one, and they must not come back (a
 * contact added again would find them in its composer). When `exists` fails, the copy is folded.
 */
export async function foldDraftCopies(
  exists: (key: DraftKey) => Promise<boolean> = async () => true,
): Promise<void> {
  const s = store;
  if (!s) return;
  for (const copy of s.copies()) {
    if (store !== s) return;
    if (known.has(copy.key)) continue;
    try {
      if (!(await exists(copy.key).catch(() => true))) {
        if (store === s) s.dropCopy(copy.key);
        continue;
      }
      await s.fold(copy);
    } catch (e) {
      console.warn(`drafts: a draft copy was not stored (${(e as Error).name})`);
    }
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
  if (known.has(key)) return drafts.get(key);
  if (!s) {
    // Writes held (an import runs): read once they are let go, if ever (`readBack`).
    held?.unread.add(key);
    return drafts.get(key);
  }
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
  // Typed over a stored draft not read yet, while writes are held: read back before any write.
  if (held && !known.has(key)) held.unread.add(key);
  known.add(key);
  typedAt.set(key, Date.now());
  if (text) drafts.set(key, text);
  else drafts.delete(key);
  held?.keys.add(key);
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
  // A copy of it still in the store — another tab's, written when that tab went, or one a fold
  // could not store (docs/protocol/chat.md §9, "Draft copies") — would be folded back at the next
  // start and bring the deleted conversation's words back: it goes now, whoever wrote it.
  store?.dropCopy(key);
  keepDraft(key, "");
  return chains.get(key) ?? Promise.resolve();
}

/** Start every pending write now. */
export function flushDrafts(): void {
  for (const key of [...timers.keys()]) write(key as DraftKey);
}

/** Every write started so far has settled (tests, and before the storage closes). */
export async function draftsWritten(): Promise<void> {
  await Promise.all(readingBack);
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
    .then(async () => {
      if (store !== s) {
        // Started before writes were held, queued behind another: written once they are let go.
        if (held?.store === s) held.keys.add(key);
        return;
      }
      // A copy made before this write holds no newer words than it: once it lands, the copy goes.
      const copy = copies.get(key);
      await s.save(key, drafts.get(key) ?? "");
      if (copy !== undefined && copies.get(key) === copy) {
        copies.delete(key);
        s.forgetCopy(key);
      }
    })
    .catch((e: unknown) => console.warn(`drafts: a draft was not stored (${(e as Error).name})`));
  chains.set(key, run);
  void run.then(() => {
    if (chains.get(key) === run) chains.delete(key);
  });
  return run;
}
